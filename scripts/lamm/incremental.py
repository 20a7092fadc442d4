"""Class-incremental learning with LAMM, and zero-shot CLIP and CoOp as baselines.

The classes (in label order) are cut into N consecutive groups (DATASET.SUBSAMPLE_CLASSES
"group:K/N"; N = 2 gives LAMM's set1/set2 = base/new). Stage K:
- LAMM (CoOp trainer, --triplet-loss --origin-clip --shots SHOTS): label embeddings of group K
  trained from scratch (CLIP and the context stay frozen, as the set1/set2 runs); the label
  embeddings of stages 1..K are then merged in the original label order into one checkpoint and
  evaluated on all classes seen so far ("seen:K/N"). Every stage uses the same number of label
  tokens (the shortest name over all classes), so that the stages merge.
- CoOp: the context trained on group K, starting from stage K-1's context (sequential
  fine-tuning), evaluated on the seen classes.
- ZeroshotCLIP: the seen classes, no training.
It prints the accuracy of each method after each stage and the average incremental accuracy (the
mean over stages), and writes them to <output-dir>/results.json. Trained stages are kept and
skipped when the script runs again (their checkpoint exists).

    python scripts/lamm/incremental.py --root DATA --dataset cifar100 --seed 1 --stages 10 \
        --output-dir output/incremental/cifar100/stages_10/seed1 [KEY VALUE ...]

Trailing KEY VALUE options go to every train.py run (e.g. OPTIM.MAX_EPOCH 10).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import statistics
import sys
from typing import Sequence

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

import train  # noqa: E402
from dassl.data.datasets import build_dataset  # noqa: E402
from dassl.utils import load_checkpoint, save_checkpoint  # noqa: E402
from datasets.splits import class_groups  # noqa: E402
from trainers.label_alignment import merge_label_embeddings  # noqa: E402
from trainers.prompting import name_token_counts  # noqa: E402

METHODS = ("ZeroshotCLIP", "CoOp", "LAMM")
ACCURACY = re.compile(r"^\* accuracy: ([\d.]+)%$", re.M)


def run_train(argv: Sequence[str]) -> str:
    """train.py in this process (no interpreter start-up per run); returns the run's log text."""
    stdout = sys.stdout
    try:
        code = train.cli(list(argv))
    finally:
        if sys.stdout is not stdout:  # train.py tees stdout into the run's log file
            sys.stdout.close()
            sys.stdout = stdout
    if code != 0:
        raise SystemExit(f"error: train.py {' '.join(argv)} exited with {code}")
    out = argv[list(argv).index("--output-dir") + 1]
    logs = [os.path.join(out, f) for f in os.listdir(out) if f.startswith("log.txt")]
    with open(max(logs, key=os.path.getmtime)) as f:
        return f.read()


def accuracy(log: str) -> float:
    found = ACCURACY.findall(log)
    if not found:
        raise SystemExit("error: a test run printed no accuracy")
    return float(found[-1])


def saved_epoch(run_dir: str) -> int:
    """The epoch of the last checkpoint of a finished training run (its `checkpoint` pointer)."""
    with open(os.path.join(run_dir, "prompt_learner", "checkpoint")) as f:
        return int(f.read().strip().rsplit("-", 1)[1])


def last_state(run_dir: str) -> dict:
    """The prompt learner's state dict saved at the end of a training run."""
    path = os.path.join(run_dir, "prompt_learner", f"model.pth.tar-{saved_epoch(run_dir)}")
    return load_checkpoint(path)["state_dict"]


class Protocol:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = args.output_dir
        self.common = ["--root", args.root, "--seed", str(args.seed),
                       "--dataset-config-file", os.path.join(REPO, "configs", "datasets", f"{args.dataset}.yaml")]
        self.opts = ["DATASET.NUM_SHOTS", str(args.shots), *args.opts]
        self.coop_cfg = os.path.join(REPO, "configs", "trainers", "CoOp", f"{args.config}.yaml")
        classnames = self.classnames()
        self.n_cls = len(classnames)
        self.groups = class_groups(self.n_cls, args.stages)
        # One label length for every stage, so that their embeddings merge.
        self.n_tokens = min(name_token_counts(classnames))
        self.lamm_flags = ["--trainer", "CoOp", "--config-file", self.coop_cfg, "--triplet-loss", "--origin-clip",
                           "--shots", str(args.shots)]

    def classnames(self) -> list[str]:
        args = train.build_parser().parse_args([*self.common, *self.opts])
        return build_dataset(train.setup_cfg(args)).classnames

    def run(self, out: str, flags: Sequence[str], *opts: str) -> str:
        return run_train([*self.common, "--output-dir", out, *flags, *self.opts, *opts])

    def trained(self, run_dir: str) -> bool:
        if os.path.isfile(os.path.join(run_dir, "prompt_learner", "checkpoint")):
            print(f"Stage already trained: {run_dir} (delete it to train again)")
            return True
        return False

    def lamm_stage(self, k: int) -> float:
        n = self.args.stages
        tokens = ("TRAINER.LAMM.N_TOKENS", str(self.n_tokens))
        stage_dir = os.path.join(self.out, "LAMM", f"stage{k}")
        if not self.trained(stage_dir):
            self.run(stage_dir, self.lamm_flags, "DATASET.SUBSAMPLE_CLASSES", f"group:{k}/{n}", *tokens)
        # Merge the label embeddings of stages 1..k (the context and CLIP are the same frozen ones).
        states = [last_state(os.path.join(self.out, "LAMM", f"stage{s}")) for s in range(1, k + 1)]
        seen = self.groups[k - 1].stop
        state = {"ctx": states[-1]["ctx"]}
        for key in ("token_classes", "fix_token"):
            state[key] = merge_label_embeddings(
                [(self.groups[s], st[key]) for s, st in enumerate(states)], seen)
        epoch = saved_epoch(stage_dir)
        model_dir = os.path.join(self.out, "LAMM", f"seen{k}", "merged")
        save_checkpoint({"state_dict": state, "epoch": epoch}, os.path.join(model_dir, "prompt_learner"))
        log = self.run(os.path.join(self.out, "LAMM", f"seen{k}"),
                       [*self.lamm_flags, "--eval-only", "--model-dir", model_dir, "--load-epoch", str(epoch)],
                       "DATASET.SUBSAMPLE_CLASSES", f"seen:{k}/{n}", *tokens)
        return accuracy(log)

    def coop_stage(self, k: int) -> float:
        n = self.args.stages
        flags = ["--trainer", "CoOp", "--config-file", self.coop_cfg]
        stage_dir = os.path.join(self.out, "CoOp", f"stage{k}")
        if not self.trained(stage_dir):
            init = []
            if k > 1:  # sequential fine-tuning: start from the previous stage's context only
                ctx = last_state(os.path.join(self.out, "CoOp", f"stage{k - 1}"))["ctx"]
                init_dir = os.path.join(self.out, "CoOp", f"init{k}")
                save_checkpoint({"state_dict": {"ctx": ctx}, "epoch": 0}, init_dir)
                init = ["MODEL.INIT_WEIGHTS", os.path.join(init_dir, "model.pth.tar-0")]
            self.run(stage_dir, flags, "DATASET.SUBSAMPLE_CLASSES", f"group:{k}/{n}", *init)
        log = self.run(os.path.join(self.out, "CoOp", f"seen{k}"),
                       [*flags, "--eval-only", "--model-dir", stage_dir, "--load-epoch", str(saved_epoch(stage_dir))],
                       "DATASET.SUBSAMPLE_CLASSES", f"seen:{k}/{n}")
        return accuracy(log)

    def zero_shot_stage(self, k: int) -> float:
        flags = ["--trainer", "ZeroshotCLIP", "--eval-only",
                 "--config-file", os.path.join(REPO, "configs", "trainers", "CoOp", f"{self.args.zs_config}.yaml")]
        log = self.run(os.path.join(self.out, "ZeroshotCLIP", f"seen{k}"), flags,
                       "DATASET.SUBSAMPLE_CLASSES", f"seen:{k}/{self.args.stages}")
        return accuracy(log)

    def main(self) -> dict:
        stages = {"ZeroshotCLIP": self.zero_shot_stage, "CoOp": self.coop_stage, "LAMM": self.lamm_stage}
        results: dict = {"dataset": self.args.dataset, "seed": self.args.seed, "stages": self.args.stages,
                         "classes_seen": [g.stop for g in self.groups], "accuracy": {m: [] for m in METHODS}}
        for k in range(1, self.args.stages + 1):
            for method in METHODS:
                results["accuracy"][method].append(stages[method](k))
        results["average_incremental_accuracy"] = {m: statistics.mean(v) for m, v in results["accuracy"].items()}
        report = table(results)
        print(report)
        os.makedirs(self.out, exist_ok=True)
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        with open(os.path.join(self.out, "results.txt"), "w") as f:
            f.write(report + "\n")
        return results


def table(results: dict) -> str:
    lines = [f"Class-incremental {results['dataset']}, seed {results['seed']}, {results['stages']} stages: "
             "accuracy (%) on all classes seen so far",
             f"{'stage':>5} {'classes':>7} " + " ".join(f"{m:>12}" for m in METHODS)]
    for k, seen in enumerate(results["classes_seen"]):
        lines.append(f"{k + 1:>5} {seen:>7} " + " ".join(f"{results['accuracy'][m][k]:>12.2f}" for m in METHODS))
    lines.append(f"{'average incremental accuracy':<14} " + " ".join(
        f"{results['average_incremental_accuracy'][m]:>12.2f}" for m in METHODS))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="datasets folder (DATA)")
    parser.add_argument("--dataset", required=True, help="configs/datasets/<DATASET>.yaml, e.g. cifar100")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stages", type=int, default=10, help="number of class groups (2: set1/set2)")
    parser.add_argument("--shots", type=int, default=16, help="DATASET.NUM_SHOTS and LAMM's --shots")
    parser.add_argument("--config", default="vit_b16_ep50_ctxv1", help="configs/trainers/CoOp/<CONFIG>.yaml")
    parser.add_argument("--zs-config", default="vit_b16", help="configs/trainers/CoOp/<ZS_CONFIG>.yaml (ZeroshotCLIP)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE options for every train.py run")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    # Every run is in this process, whose environment does not change: describe it once.
    train.collect_env_info = functools.cache(train.collect_env_info)
    return Protocol(build_parser().parse_args(argv)).main()


if __name__ == "__main__":
    main()
