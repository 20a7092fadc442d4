"""What only a CUDA machine can check, in a few minutes: one line per check, exit status 1 if any fails.

1. Every registered trainer (discovered from TRAINER_REGISTRY, so new ones are included) through
   train.py on the tiny CLIP (12 blocks per tower) and a 4-class miniature EuroSAT, with its PREC set to fp16 and to amp
   (trainers without a PREC key run once): 1 epoch of 2 iterations, every logged loss finite, then
   the epoch-1 checkpoint reloaded with --eval-only --model-dir --load-epoch 1. Trainers that do not
   train (no forward_backward or run_epoch of their own: zero-shot) run --eval-only only.
2. The CoOp-100 / CoCoOp-100 / MaPLe-100 train-step workloads of bench/train_step.py ("ours") on
   ViT-B/16 shapes with CLIP in fp16, as PREC fp16 builds it: loss and gradients finite, median
   step time and peak GPU memory.

A trainer may set a class attribute `cuda_check = {"config": path, "dataset": yaml path,
"opts": [...]}` when the defaults (its configs/trainers/<name>/vit_b16*.yaml, else CoOp's
vit_b16.yaml, and configs/datasets/eurosat.yaml) do not fit it.

    bash bench/cuda_check.sh            # without CUDA it says so and exits 1
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import io
import math
import os
import re
import statistics
import sys
import tempfile
import time
import traceback
from typing import Optional

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

LOSS = re.compile(r"\bloss (\S+) \(")
WORKLOADS = ("coop-100", "cocoop-100", "maple-100")
TRAIN_OPTS = ["DATASET.NUM_SHOTS", "2", "DATASET.SUBSAMPLE_CLASSES", "base", "OPTIM.MAX_EPOCH", "1",
              "DATALOADER.TRAIN_X.BATCH_SIZE", "2", "DATALOADER.TEST.BATCH_SIZE", "8",
              "DATALOADER.NUM_WORKERS", "0", "TRAIN.PRINT_FREQ", "1", "TRAIN.CHECKPOINT_FREQ", "1"]


def report(name: str, ok: bool, detail: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {name:<34} {detail}", flush=True)
    return ok


def run_train(argv: list[str]) -> tuple[int, str]:
    """train.py in this process (CUDA stays initialised between runs); (exit status, output)."""
    import train

    saved, captured = sys.stdout, io.StringIO()
    train.collect_env_info = lambda: "(skipped by cuda_check)"  # seconds of subprocesses per run
    try:
        with contextlib.redirect_stderr(captured):
            sys.stdout = captured
            code = train.cli(argv)
    except Exception:
        code = 1
        captured.write(traceback.format_exc())
    finally:
        logger, sys.stdout = sys.stdout, saved
        if logger is not captured and hasattr(logger, "close"):
            logger.close()  # the tee train.py installed (its console was `captured`)
    return code, captured.getvalue()


def trains(cls) -> bool:
    from dassl.engine import TrainerBase, TrainerX, TrainerXU

    return cls.forward_backward is not TrainerBase.forward_backward or \
        cls.run_epoch not in (TrainerX.run_epoch, TrainerXU.run_epoch)


def trainer_setup(name: str, cls) -> tuple[str, str, list[str]]:
    own = getattr(cls, "cuda_check", {}) or {}
    configs = sorted(glob.glob(os.path.join(REPO, "configs", "trainers", name, "*.yaml")))
    preferred = [c for c in configs if os.path.basename(c).startswith("vit_b16")] or configs
    config = own.get("config") or (preferred[0] if preferred else
                                   os.path.join(REPO, "configs", "trainers", "CoOp", "vit_b16.yaml"))
    dataset = own.get("dataset") or os.path.join(REPO, "configs", "datasets", "eurosat.yaml")
    return config, dataset, list(own.get("opts", []))


def prec_key(name: str, cls) -> Optional[str]:
    from dassl.config import get_cfg_default

    import train

    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    node = getattr(cls, "config_node", name.upper())
    return f"TRAINER.{node}.PREC" if "PREC" in cfg.TRAINER.get(node, {}) else None


def check_trainers(work: str, backbone: str, root: str, only: Optional[list[str]]) -> list[bool]:
    import trainers  # noqa: F401 - registers the trainers
    from dassl.engine import TRAINER_REGISTRY

    results = []
    for name in TRAINER_REGISTRY.registered_names():
        if only and name not in only:
            continue
        cls = TRAINER_REGISTRY.get(name)
        config, dataset, own_opts = trainer_setup(name, cls)
        key = prec_key(name, cls)
        for prec in ("fp16", "amp") if key else (None,):
            label = f"{name} PREC {prec}" if prec else name
            out = os.path.join(work, name, prec or "default")
            base = ["--root", root, "--seed", "1", "--trainer", name, "--backbone", backbone,
                    "--dataset-config-file", dataset, "--config-file", config]
            opts = TRAIN_OPTS + own_opts + ([key, prec] if key else [])
            start = time.time()
            if not trains(cls):
                code, log = run_train(base + ["--output-dir", out, "--eval-only"] + opts)
                ok = code == 0 and "* accuracy:" in log
                results.append(report(label, ok, f"eval-only (nothing to train), {time.time() - start:.1f} s"
                                      if ok else f"exit {code}: {tail(log)}"))
                continue
            code, log = run_train(base + ["--output-dir", out] + opts)
            losses = [float(v) for v in LOSS.findall(log)]
            if code != 0:
                results.append(report(label, False, f"training exit {code}: {tail(log)}"))
                continue
            finite = all(math.isfinite(v) for v in losses)
            checkpoints = glob.glob(os.path.join(out, "*", "model.pth.tar-1"))
            if not checkpoints:
                results.append(report(label, finite, f"{len(losses)} losses finite={finite}, no checkpoint written"))
                continue
            code, eval_log = run_train(base + ["--output-dir", out + "_eval", "--eval-only", "--model-dir", out,
                                               "--load-epoch", "1"] + opts)
            reloaded = code == 0 and "* accuracy:" in eval_log
            # No loss line: a trainer that fits without gradient steps (the linear probe).
            losses_text = (f"{len(losses)} losses, all finite={finite} (last {losses[-1]:.4f})" if losses
                           else "no loss logged (no gradient steps)")
            detail = (f"{losses_text}, checkpoint reload {'ok' if reloaded else 'FAILED: ' + tail(eval_log)}, "
                      f"{time.time() - start:.1f} s")
            results.append(report(label, finite and reloaded, detail))
    return results


def tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def check_workloads(device: str, depth: int, steps: int) -> list[bool]:
    import train_step

    results = []
    for name in WORKLOADS:
        label = f"train step {name} fp16"
        try:
            case = train_step.CASES[name]
            _, variants = train_step.build_variants(case, depth, fp16=True, device=device)
            ours = variants["ours"]
            images, labels = (t.to(device) for t in train_step.inputs(case))
            images = images.half()
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times, losses, grads_finite = [], [], True
            for i in range(steps + 1):  # step 0: warm-up
                if device == "cuda":
                    torch.cuda.synchronize()
                seconds, loss, grads = train_step.step(ours, images, labels)
                if device == "cuda":
                    torch.cuda.synchronize()
                losses.append(loss)
                grads_finite = grads_finite and all(bool(torch.isfinite(g).all()) for g in grads)
                if i:
                    times.append(seconds)
            peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
            finite = all(math.isfinite(v) for v in losses) and grads_finite
            results.append(report(label, finite, f"ViT-B/16 shapes ({depth} blocks), {case.classes} classes, batch "
                                  f"{case.batch}: {1000 * statistics.median(times):.0f} ms/step (median of {steps}), "
                                  f"loss {losses[0]:.4f} finite={finite}, peak {peak:.0f} MB"))
            del variants, ours
            if device == "cuda":
                torch.cuda.empty_cache()
        except Exception as e:
            results.append(report(label, False, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainers", help="comma-separated subset of the registered trainers")
    parser.add_argument("--skip-workloads", action="store_true")
    parser.add_argument("--steps", type=int, default=5, help="timed train steps per workload")
    # Development only: run the same checks on CPU (fp16 falls back to fp32 in the trainers).
    parser.add_argument("--cpu-dry-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--depth", type=int, default=12, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if not torch.cuda.is_available() and not args.cpu_dry_run:
        print(f"CUDA check: no CUDA device is available (torch {torch.__version__}, built for CUDA "
              f"{torch.version.cuda}); nothing was checked. Run this on a machine with a CUDA GPU.")
        return 1
    device = "cuda" if torch.cuda.is_available() and not args.cpu_dry_run else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (dry run)"
    print(f"CUDA check on {name}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="cuda_check_") as work:
        os.environ.setdefault("PROMPTKIT_IMAGE_FEATURE_CACHE", os.path.join(work, "image_features"))
        from clip.testing import write_tiny_checkpoint
        from datasets.miniature import make_miniature

        # 12 blocks per tower (tiny widths): the shipped configs' prompt depths (up to 12) fit.
        backbone = write_tiny_checkpoint(os.path.join(work, "tiny_vit.pt"), arch="ViT", text_layers=12,
                                         vision_layers=12)
        root = os.path.join(work, "data")
        make_miniature("EuroSAT", root, n_classes=4, n_per_class=12)
        only = args.trainers.split(",") if args.trainers else None
        results = check_trainers(os.path.join(work, "runs"), backbone, root, only)
        if not args.skip_workloads:
            results += check_workloads(device, args.depth, args.steps)
    failed = results.count(False)
    print(f"{len(results) - failed}/{len(results)} checks passed in {time.time() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
