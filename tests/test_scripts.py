"""The run scripts (scripts/<method>/*.sh, thin wrappers over scripts/lib/run.sh): the train.py
commands, output folders, messages and skip / re-run behaviour of the reference repositories'
scripts (CoOp, CoCoOp, MaPLe), run from the repository root and from the script's own folder.

PYTHON is a stub that prints its working directory and arguments, and the scripts run on a copy of
scripts/ in a temporary "repository", so nothing is trained and the checkout's output/ is never read.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEP = "\x1f"
STUB = "#!/bin/bash\nprintf '@@ %s' \"$PWD\"; printf '\\x1f%s' \"$@\"; printf '\\n'\n"

# folder: (file suffix, TRAINER, base-to-new CFG, cross-dataset CFG, cross-dataset load epoch)
DEEP = {
    "maple": ("maple", "MaPLe", "vit_b16_c2_ep5_batch4_2ctx", "vit_b16_c2_ep5_batch4_2ctx_cross_datasets", 2),
    "independent-vlp": ("ivlp", "IVLP", "vit_b16_c2_ep5_batch4_2+2ctx", "vit_b16_c2_ep5_batch4_2+2ctx", 5),
    "language-prompting": ("lp", "IVLP", "vit_b16_c2_ep5_batch4_4ctx_language_only",
                           "vit_b16_c2_ep5_batch4_4ctx_language_only", 5),
    "vpt": ("vpt", "VPT", "vit_b16_c2_ep5_batch4_4", "vit_b16_c2_ep5_batch4_4", 5),
}
DEEP_KINDS = ["base2new_train", "base2new_test", "xd_train", "xd_test", "reproduce"]
DEEP_SCRIPTS = [f"{folder}/{kind}_{v[0]}.sh" for folder, v in DEEP.items() for kind in DEEP_KINDS]
DEEP_SCRIPTS.append("maple/reproduce_maple_xd.sh")
COCOOP_SCRIPTS = ["cocoop/base2new_train.sh", "cocoop/base2new_test.sh", "cocoop/xd_train.sh", "cocoop/xd_test.sh"]
COOP_SCRIPTS = ["coop/main.sh", "coop/eval.sh", "coop/zeroshot.sh"]
ARGS = {"coop/main.sh": ["caltech101", "rn50_ep50", "end", "16", "1", "False"],
        "coop/eval.sh": ["imagenetv2", "rn50_ep50"], "coop/zeroshot.sh": ["caltech101", "rn50"],
        "cocoop/xd_train.sh": ["1"]}
CC_CFG = "vit_b16_c4_ep10_batch1_ctxv1"


def script_args(script: str) -> list[str]:
    if script in ARGS:
        return ARGS[script]
    if "xd_train" in script:
        return ["imagenet", "1"]
    return ["caltech101", "1"] + (["weights"] if "/reproduce" in script else [])


class Run:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc, self.stderr = proc.returncode, proc.stderr
        lines = proc.stdout.splitlines()
        self.messages = [line for line in lines if not line.startswith("@@ ")]
        self.calls = [line[3:].split(SEP) for line in lines if line.startswith("@@ ")]


class Repo:
    """A copy of scripts/ under tmp/repo; run(script, *args) from the root or the script's folder."""

    def __init__(self, tmp):
        self.root = str(tmp / "repo")
        shutil.copytree(os.path.join(REPO, "scripts"), os.path.join(self.root, "scripts"))
        self.stub = str(tmp / "python")
        with open(self.stub, "w") as f:
            f.write(STUB)
        os.chmod(self.stub, 0o755)

    def cwd(self, script: str, where: str) -> str:
        return self.root if where == "root" else os.path.join(self.root, "scripts", os.path.dirname(script))

    def run(self, script: str, *args: str, where: str = "root", env: dict | None = None) -> Run:
        cwd = self.cwd(script, where)
        for name in ("data", "weights"):  # DATA and WEIGHTSPATH are given relative to the caller's folder
            os.makedirs(os.path.join(cwd, name), exist_ok=True)
        path = f"scripts/{script}" if where == "root" else os.path.basename(script)
        full_env = {k: v for k, v in os.environ.items() if k not in ("TRAINER", "CFG", "LOADEP")}
        full_env.update({"DATA": "data", "PYTHON": self.stub}, **(env or {}))
        full_env = {k: v for k, v in full_env.items() if v is not None}
        run = Run(subprocess.run(["bash", path, *args], cwd=cwd, env=full_env, capture_output=True, text=True))
        for call in run.calls:
            assert call[0] == self.root  # train.py always runs in the repository root
        run.calls = [call[1:] for call in run.calls]
        return run

    def make(self, *dirs: str) -> None:
        for d in dirs:
            os.makedirs(os.path.join(self.root, d))


@pytest.fixture
def repo(tmp_path):
    return Repo(tmp_path)


def cmd(data, seed, trainer, dataset, cfg, out, *opts, model=None, epoch=None):
    argv = ["train.py", "--root", data, "--seed", str(seed), "--trainer", trainer,
            "--dataset-config-file", f"configs/datasets/{dataset}.yaml",
            "--config-file", f"configs/trainers/{trainer}/{cfg}.yaml", "--output-dir", out]
    if model is not None:
        argv += ["--model-dir", model, "--load-epoch", str(epoch), "--eval-only"]
    return argv + list(opts)


def expected_deep(script: str, data: str, weights: str, rerun: bool):
    """(messages, calls) of a MaPLe-repository script on caltech101 (imagenet for xd_train), seed 1."""
    folder, name = script.split("/")
    _, trainer, cfg, xcfg, xep = DEEP[folder]
    b2n = f"caltech101/shots_16/{trainer}/{cfg}/seed1"
    train_dir, test_dir = f"output/base2new/train_base/{b2n}", f"output/base2new/test_new/{b2n}"
    xd_model = f"output/imagenet/{trainer}/{xcfg}_16shots/seed1"
    xd_dir = f"output/evaluation/{trainer}/{xcfg}_16shots/caltech101/seed1"
    skip = "Oops! The results exist at {} (so skip this job)"
    if name.startswith("base2new_train"):
        msg = f"Results are available in {train_dir}. Resuming..." if rerun else \
            f"Run this job and save the output to {train_dir}"
        return [msg], [cmd(data, 1, trainer, "caltech101", cfg, train_dir, "DATASET.NUM_SHOTS", "16",
                           "DATASET.SUBSAMPLE_CLASSES", "base")]
    if name.startswith("base2new_test"):
        return [f"Evaluating the model of {train_dir}; output in {test_dir}"], [
            cmd(data, 1, trainer, "caltech101", cfg, test_dir, "DATASET.NUM_SHOTS", "16",
                "DATASET.SUBSAMPLE_CLASSES", "new", model=train_dir, epoch=5)]
    if name.startswith("xd_train"):
        if rerun:
            return [skip.format(xd_model)], []
        return [], [cmd(data, 1, trainer, "imagenet", xcfg, xd_model, "DATASET.NUM_SHOTS", "16")]
    if name.startswith("xd_test"):
        if rerun:
            return [skip.format(xd_dir)], []
        return [], [cmd(data, 1, trainer, "caltech101", xcfg, xd_dir, model=xd_model, epoch=xep)]
    if name == "reproduce_maple_xd.sh":
        return [f"Evaluating the released model on caltech101; output in {xd_dir}"], [
            cmd(data, 1, trainer, "caltech101", xcfg, xd_dir, model=f"{weights}/seed1", epoch=2)]
    assert name.startswith("reproduce_")
    messages, calls = [], []
    for sub in ("base", "new"):
        out = f"output/base2new/test_{sub}/{b2n}"
        messages.append(f"Evaluating the released model on the {sub} classes; output in {out}")
        calls.append(cmd(data, 1, trainer, "caltech101", cfg, out, "DATASET.NUM_SHOTS", "16",
                         "DATASET.SUBSAMPLE_CLASSES", sub, model=f"{weights}/base/seed1", epoch=5))
    return messages, calls


def out_dirs(calls):
    return [call[call.index("--output-dir") + 1] for call in calls]


@pytest.mark.parametrize("rerun", [False, True], ids=["fresh", "rerun"])
@pytest.mark.parametrize("where", ["root", "own"])
@pytest.mark.parametrize("script", DEEP_SCRIPTS)
def test_maple_repo_scripts(repo, script, where, rerun):
    """MaPLe, IVLP, language prompting, VPT: commands, folders, messages; when the output folder
    exists, training resumes into it, base-to-new and released-weight tests run again, xd skips."""
    cwd = repo.cwd(script, where)
    data, weights = os.path.join(cwd, "data"), os.path.join(cwd, "weights")
    messages, calls = expected_deep(script, data, weights, rerun=False)
    if rerun:
        repo.make(*out_dirs(calls))
        messages, calls = expected_deep(script, data, weights, rerun=True)
    run = repo.run(script, *script_args(script), where=where)
    assert (run.rc, run.stderr) == (0, "")
    assert run.messages == messages
    assert run.calls == calls


@pytest.mark.parametrize("rerun", [False, True], ids=["fresh", "rerun"])
@pytest.mark.parametrize("where", ["root", "own"])
@pytest.mark.parametrize("script", COCOOP_SCRIPTS)
def test_cocoop_scripts(repo, script, where, rerun):
    """CoCoOp: the reference commands; any job whose output folder exists is skipped."""
    data = os.path.join(repo.cwd(script, where), "data")
    b2n = f"caltech101/shots_16/CoCoOp/{CC_CFG}/seed1"
    xd_model = f"output/imagenet/CoCoOp/{CC_CFG}_16shots/seed1"
    expected = {
        "cocoop/base2new_train.sh": cmd(data, 1, "CoCoOp", "caltech101", CC_CFG, f"output/base2new/train_base/{b2n}",
                                        "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base"),
        "cocoop/base2new_test.sh": cmd(data, 1, "CoCoOp", "caltech101", CC_CFG, f"output/base2new/test_new/{b2n}",
                                       "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "new",
                                       model=f"output/base2new/train_base/{b2n}", epoch=10),
        "cocoop/xd_train.sh": cmd(data, 1, "CoCoOp", "imagenet", CC_CFG, xd_model, "DATASET.NUM_SHOTS", "16"),
        "cocoop/xd_test.sh": cmd(data, 1, "CoCoOp", "caltech101", CC_CFG,
                                 f"output/evaluation/CoCoOp/{CC_CFG}_16shots/caltech101/seed1",
                                 model=xd_model, epoch=10),
    }[script]
    if rerun:
        repo.make(out_dirs([expected])[0])
    run = repo.run(script, *script_args(script), where=where)
    assert (run.rc, run.stderr) == (0, "")
    if rerun:
        assert run.messages == [f"Oops! The results exist at {out_dirs([expected])[0]} (so skip this job)"]
        assert run.calls == []
    else:
        assert (run.messages, run.calls) == ([], [expected])


def test_cocoop_environment_overrides(repo):
    """TRAINER / CFG / LOADEP from the environment (CoOp base-to-new through the CoCoOp scripts)."""
    env = {"TRAINER": "CoOp", "CFG": "vit_b16_ctxv1", "LOADEP": "200"}
    data = os.path.join(repo.root, "data")
    b2n = "caltech101/shots_16/CoOp/vit_b16_ctxv1/seed2"
    run = repo.run("cocoop/base2new_test.sh", "caltech101", "2", env=env)
    assert run.calls == [cmd(data, 2, "CoOp", "caltech101", "vit_b16_ctxv1", f"output/base2new/test_new/{b2n}",
                             "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "new",
                             model=f"output/base2new/train_base/{b2n}", epoch=200)]
    run = repo.run("cocoop/xd_train.sh", "3", env=env)
    assert run.calls == [cmd(data, 3, "CoOp", "imagenet", "vit_b16_ctxv1",
                             "output/imagenet/CoOp/vit_b16_ctxv1_16shots/seed3", "DATASET.NUM_SHOTS", "16")]
    # the MaPLe-repository scripts fix their trainer, config and epoch
    run = repo.run("vpt/xd_test_vpt.sh", "caltech101", "1", env=env)
    assert run.calls[0][run.calls[0].index("--trainer") + 1] == "VPT"
    assert run.calls[0][run.calls[0].index("--load-epoch") + 1] == "5"


@pytest.mark.parametrize("where", ["root", "own"])
def test_coop_scripts(repo, where):
    data = os.path.join(repo.cwd("coop/main.sh", where), "data")
    coop = ("TRAINER.COOP.N_CTX", "16", "TRAINER.COOP.CSC", "False", "TRAINER.COOP.CLASS_TOKEN_POSITION", "end")
    main = [cmd(data, s, "CoOp", "caltech101", "rn50_ep50",
                f"output/caltech101/CoOp/rn50_ep50_1shots/nctx16_cscFalse_ctpend/seed{s}", *coop,
                "DATASET.NUM_SHOTS", "1") for s in (1, 2, 3)]
    run = repo.run("coop/main.sh", *ARGS["coop/main.sh"], where=where)
    assert (run.rc, run.messages, run.calls) == (0, [], main)
    repo.make(out_dirs(main)[1])  # an existing seed is skipped, the others run
    run = repo.run("coop/main.sh", *ARGS["coop/main.sh"], where=where)
    assert run.messages == [f"Oops! The results exist at {out_dirs(main)[1]} (so skip this job)"]
    assert run.calls == [main[0], main[2]]

    evaluation = [cmd(data, s, "CoOp", "imagenetv2", "rn50_ep50",
                      f"output/evaluation/CoOp/rn50_ep50_16shots/nctx16_cscFalse_ctpend/imagenetv2/seed{s}", *coop,
                      model=f"output/imagenet/CoOp/rn50_ep50_16shots/nctx16_cscFalse_ctpend/seed{s}", epoch=50)
                  for s in (1, 2, 3)]
    repo.make(*out_dirs(evaluation))  # evaluation always runs again
    run = repo.run("coop/eval.sh", *ARGS["coop/eval.sh"], where=where)
    assert (run.rc, run.messages, run.calls) == (0, [], evaluation)

    for trainer, env in (("ZeroshotCLIP", None), ("ZeroshotCLIP2", {"TRAINER": "ZeroshotCLIP2"})):
        run = repo.run("coop/zeroshot.sh", "caltech101", "rn50", where=where, env=env)
        assert run.calls == [["train.py", "--root", data, "--trainer", trainer,
                              "--dataset-config-file", "configs/datasets/caltech101.yaml",
                              "--config-file", "configs/trainers/CoOp/rn50.yaml",
                              "--output-dir", f"output/{trainer}/rn50/caltech101", "--eval-only"]]


@pytest.mark.parametrize("script", DEEP_SCRIPTS + COCOOP_SCRIPTS + COOP_SCRIPTS)
def test_scripts_need_data(repo, script):
    run = repo.run(script, *script_args(script), env={"DATA": None})
    hint = "the folder holding the datasets" if script in DEEP_SCRIPTS else "your datasets folder"
    assert run.rc == 1 and run.calls == [] and run.messages == []
    assert run.stderr.startswith(f"scripts/{script}: line ")
    assert run.stderr.endswith(f": DATA: set DATA to {hint}\n")


@pytest.mark.parametrize("script", DEEP_SCRIPTS)
def test_maple_repo_scripts_check_arguments(repo, script):
    """A missing argument is bash's `${N:?usage: ...}` error naming the script; nothing runs."""
    args = script_args(script)
    usage = "DATASET SEED WEIGHTSPATH" if "/reproduce" in script else "DATASET SEED"
    # the reference checks WEIGHTSPATH (argument 3) first, then DATASET, then SEED
    for given, missing in ([args[:1], "3" if len(args) == 3 else "2"], [[], "3" if len(args) == 3 else "1"],
                           [[""] + args[1:], "1"], [args[:1] + [""] + args[2:], "2"]):
        run = repo.run(script, *given)
        assert run.rc == 1 and run.calls == [] and run.messages == []
        assert run.stderr.startswith(f"scripts/{script}: line ")
        assert run.stderr.endswith(f": {missing}: usage: scripts/{script} {usage}\n")


def test_values_reach_train_py_as_in_the_references(repo):
    """MaPLe's scripts quote SEED and the folders; CoOp's and CoCoOp's leave them unquoted (split)."""
    run = repo.run("maple/xd_train_maple.sh", "imagenet", "1 2")
    assert run.calls[0][3:5] == ["--seed", "1 2"] and "output/imagenet/MaPLe/" in run.calls[0][-3]
    run = repo.run("cocoop/xd_train.sh", "1 2")
    assert run.calls[0][3:6] == ["--seed", "1", "2"]
    assert run.calls[0][-4:-2] == [f"output/imagenet/CoCoOp/{CC_CFG}_16shots/seed1", "2"]
    run = repo.run("cocoop/base2new_train.sh", "caltech101")  # no SEED: an empty, unquoted one
    assert run.calls[0][3:5] == ["--seed", "--trainer"]


def test_python_override_may_hold_options(repo):
    run = repo.run("maple/base2new_train_maple.sh", "caltech101", "1", env={"PYTHON": f"{repo.stub} -u"})
    assert run.calls[0][:2] == ["-u", "train.py"]
    run = repo.run("coop/zeroshot.sh", "caltech101", "rn50", env={"PYTHON": f"{repo.stub} -u"})
    assert run.calls[0][:2] == ["-u", "train.py"]


# ---------------------------------------------------------------- scripts/mvlpt
MVLPT_FAMILY = ["TRAINER.MVLPT.COOP.N_CTX", "4", "TRAINER.MVLPT.VPT.N_CTX", "4", "TRAINER.CUT_CONTEXTLEN", "True",
                "TRAINER.MVLPT.COOP.CLASS_TOKEN_POSITION", "middle", "TRAINER.MVLPT.COOP.CSC", "False",
                "TEST.NO_TEST", "False", "TEST.FINAL_MODEL", "best_val"]
COOP_SOURCES = ("ImageNet,Caltech101,Food101,StanfordCars,OxfordPets,OxfordFlowers,FGVCAircraft,SUN397,"
                "DescribableTextures,EuroSAT,UCF101")


def mvlpt_cmd(data, seed, out, *flags):
    return ["train.py", "--root", data, "--seed", str(seed), "--trainer", "MVLPT",
            "--config-file", "configs/trainers/MVLPT/vit_b16.yaml", "--output-dir", out, "--shots", "5", *flags]


@pytest.mark.parametrize("where", ["root", "own"])
def test_mvlpt_scripts(repo, where):
    """Source training on the CoOp 11, ELEVATER multitask (3 seeds), single targets from the
    averaged source prompt (MCoOp too, unlike the reference), reference flags and folders."""
    data = os.path.join(repo.cwd("mvlpt/main_mt_coopdata_cut.sh", where), "data")
    source = f"output/{COOP_SOURCES}/UPT/vit_b16_5shots/nctx4_csc_ctp"
    run = repo.run("mvlpt/main_mt_coopdata_cut.sh", "UPT", "vit_b16", "4", "5", "2", where=where)
    assert (run.rc, run.stderr) == (0, "")
    assert run.calls == [mvlpt_cmd(data, 2, f"{source}/seed2", "--dataset", COOP_SOURCES, "--dataset-coop",
                                   "--multi-task", *MVLPT_FAMILY)]

    run = repo.run("mvlpt/main_single_elevater_cut.sh", "CoOp", "vit_b16", "16", "5", "1", "cifar-10", where=where)
    coop = ["TRAINER.MVLPT.COOP.N_CTX", "16", "TRAINER.MVLPT.VPT.N_CTX", "0", *MVLPT_FAMILY[4:]]
    assert run.calls == [mvlpt_cmd(
        data, 1, "output/CoCoOp_single_task_20/cifar-10/CoOp/vit_b16_5shots/nctx16_csc_ctp/seed1", "--dataset",
        "cifar-10", "--model-dir", f"output/{COOP_SOURCES}/CoOp/vit_b16_5shots/nctx16_csc_ctp", *coop)]

    run = repo.run("mvlpt/main_mt_elevater_cut.sh", "VPT", "vit_b16", "16", "5", where=where,
                   env={"MODEL_DIR": "src"})
    vpt = ["TRAINER.MVLPT.COOP.N_CTX", "0", "TRAINER.MVLPT.VPT.N_CTX", "16", *MVLPT_FAMILY[6:]]
    assert [call[call.index("--output-dir") + 1] for call in run.calls] == [
        f"output/CoCoOp_mt_20/VPT/vit_b16_5shots/nctx16_csc_ctp/seed{s}" for s in (1, 2, 3)]
    tasks = run.calls[0][run.calls[0].index("--dataset") + 1].split(",")
    assert len(tasks) == 20 and "voc-2007-classification" in tasks
    assert run.calls[0][-len(vpt) - 4:] == ["DATALOADER.TRAIN_X.BATCH_SIZE", "64", "DATALOADER.TRAIN_X.SAMPLER",
                                            "SequentialSampler", *vpt]
    assert ["--model-dir", "src"] == run.calls[0][run.calls[0].index("--model-dir"):][:2]

    run = repo.run("mvlpt/main_single_elevater_cut.sh", "Prompt", "vit_b16", "16", "5", "1", "mnist", where=where)
    assert run.rc == 1 and run.calls == [] and "TRAINER must be CoOp, VPT, UPT or COCOOP" in run.stderr
    run = repo.run("mvlpt/main_single_coopdata_cut.sh", "VPT", "vit_b16", "16", "5", where=where)
    assert run.rc == 1 and run.stderr.endswith(": 5: usage: " + (
        "scripts/mvlpt/" if where == "root" else "") + "main_single_coopdata_cut.sh TRAINER CFG NCTX SHOTS SEED DATASET\n")
