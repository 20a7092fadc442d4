"""MVLPT end to end through train.py (tiny CLIP): multitask source training of MCoOp, MVPT and MUPT
on three miniature CoOp datasets with the reference's flags, deterministic reruns, checkpoint
averaging, and target fine-tuning from the averaged prompt on miniature ELEVATER tasks (multiclass
and multi-label) in their published layout."""
from __future__ import annotations

import importlib.util
import os
import re

import pytest
import torch

from fixtures.trainer_fixtures import repo_path, run_train

SOURCES = "DescribableTextures,OxfordPets,EuroSAT"
FAMILIES = {  # the reference scripts' families: (COOP.N_CTX, VPT.N_CTX)
    "MCoOp": ("4", "0"), "MVPT": ("0", "2"), "MUPT": ("2", "2"),
}
CONFIG = repo_path("configs/trainers/MVLPT/demo_cpu.yaml")
COMMON_OPTS = ("OPTIM.MAX_EPOCH", "1", "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "TRAIN.PRINT_FREQ", "1",
               "TEST.FINAL_MODEL", "best_val", "DATASET.NAME", "")
LOSS = re.compile(r"^epoch \[\d+/\d+\] batch \[\d+/\d+\] .* loss ([\d.]+) ", re.M)
TASK_LINE = re.compile(r"^\* task: (\d+) \(([^)]+)\)\ttotal: ([\d,]+)\tmetric: ([\d.]+)%$", re.M)


def load_avg_ckpt():
    spec = importlib.util.spec_from_file_location("avg_ckpt", repo_path("scripts/mvlpt/avg_ckpt.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mvlpt_data(tmp_path_factory) -> str:
    from datasets.miniature import make_elevater_miniature, make_miniature

    root = str(tmp_path_factory.mktemp("mvlpt_data"))
    for name in SOURCES.split(","):
        make_miniature(name, root, n_classes=3, n_per_class=8)
    make_elevater_miniature("cifar-10", root, n_classes=3, n_train=4, n_test=2)
    make_elevater_miniature("voc-2007-classification", root, n_classes=3, n_train=4, n_test=2)
    return root


def source_run(out: str, family: str, root: str, backbone: str) -> str:
    coop, vpt = FAMILIES[family]
    return run_train(out, "--seed", "1", "--trainer", "MVLPT", "--config-file", CONFIG,
                     "--dataset-coop", "--multi-task", "--dataset", SOURCES, "--shots", "2", "--cut-contextlen",
                     "--multi-task-label_pertask",
                     opts=[*COMMON_OPTS, "TRAINER.MVLPT.COOP.N_CTX", coop, "TRAINER.MVLPT.VPT.N_CTX", vpt],
                     root=root, backbone=backbone)


@pytest.fixture(scope="module")
def sources(tmp_path_factory, mvlpt_data, tiny_vit_path) -> dict[str, tuple[str, str]]:
    runs = {}
    for family in FAMILIES:
        out = str(tmp_path_factory.mktemp(f"source_{family}") / "seed1")
        runs[family] = (out, source_run(out, family, mvlpt_data, tiny_vit_path))
    return runs


@pytest.mark.parametrize("family", list(FAMILIES))
def test_multitask_source_training(sources, family):
    out, log = sources[family]
    assert "Multitask dataset: 3 tasks (DescribableTextures, OxfordPets, EuroSAT)" in log
    test_part = log[log.rindex("Evaluate on the *test* set"):]
    tasks = TASK_LINE.findall(test_part)
    assert [(t[0], t[1]) for t in tasks] == [("0", "DescribableTextures"), ("1", "OxfordPets"), ("2", "EuroSAT")]
    mean = sum(float(t[3]) for t in tasks) / 3
    assert float(re.search(r"^\* average: ([\d.]+)%$", test_part, re.M).group(1)) == pytest.approx(mean, abs=0.01)
    assert LOSS.findall(log)
    state = torch.load(os.path.join(out, "prompt_learner", "model-best.pth.tar"), weights_only=True)["state_dict"]
    learned = {k for k in state if k not in ("token_prefix", "token_suffix")}
    expected = {"MCoOp": {"ctx"}, "MVPT": {"vpt_embeddings", "vpt_embeddings_deep"}}.get(family)
    if expected is not None:
        assert learned == expected
    else:
        assert {"ctx", "vpt_embeddings", "vpt_embeddings_deep", "mvlpt_proj_ctx_coop_pre.weight",
                "mvlpt_proj.resblocks.0.attn.in_proj_weight"} <= learned
    n_union = 9  # 3 tasks x 3 classes, all classes scored by one text-encoder call
    assert state["token_prefix"].shape[0] == n_union


def test_deterministic_losses_twice(sources, tmp_path, mvlpt_data, tiny_vit_path):
    first = LOSS.findall(sources["MUPT"][1])
    again = LOSS.findall(source_run(str(tmp_path / "seed1"), "MUPT", mvlpt_data, tiny_vit_path))
    assert first and again == first


def test_average_checkpoints(tmp_path):
    avg_ckpt = load_avg_ckpt()
    from dassl.utils import save_checkpoint

    for seed, value in ((1, 1.0), (2, 3.0)):
        state = {"state_dict": {"ctx": torch.full((2, 3), value), "token_prefix": torch.zeros(1)},
                 "epoch": seed * 3, "val_result": value * 10}
        save_checkpoint(state, str(tmp_path / f"seed{seed}" / "prompt_learner"), is_best=True)
    assert avg_ckpt.main([str(tmp_path / "avg"), str(tmp_path / "seed1"), str(tmp_path / "seed2")]) == 0
    averaged = torch.load(tmp_path / "avg" / "prompt_learner" / "model-best.pth.tar", weights_only=True)
    assert torch.equal(averaged["state_dict"]["ctx"], torch.full((2, 3), 2.0))
    assert averaged["epoch"] == 4 and averaged["val_result"] == 20.0
    assert os.path.isfile(tmp_path / "avg" / "prompt_learner" / "model.pth.tar-4")
    assert avg_ckpt.main([str(tmp_path / "avg2"), str(tmp_path / "seed3")]) == 2


@pytest.mark.parametrize("family, target", [
    ("MUPT", "cifar-10"), ("MCoOp", "voc-2007-classification"), ("MVPT", "cifar-10"),
])
def test_target_finetuning_from_averaged_prompt(sources, tmp_path, mvlpt_data, tiny_vit_path, family, target):
    avg_dir = str(tmp_path / "avg")
    assert load_avg_ckpt().main([avg_dir, sources[family][0]]) == 0
    coop, vpt = FAMILIES[family]
    train = family == "MUPT" or target.startswith("voc")  # the third family only loads (keeps the suite fast)
    log = run_train(str(tmp_path / "target"), "--seed", "1", "--trainer", "MVLPT", "--config-file", CONFIG,
                    "--dataset", target, "--shots", "2", "--model-dir", avg_dir, *([] if train else ["--no-train"]),
                    opts=[*COMMON_OPTS[:-2], "DATASET.NAME", target,
                          "TRAINER.MVLPT.COOP.N_CTX", coop, "TRAINER.MVLPT.VPT.N_CTX", vpt],
                    root=mvlpt_data, backbone=tiny_vit_path)
    assert f'Loading weights to prompt_learner from "{avg_dir}' in log
    assert "has no value for" not in log and "ignored entries" not in log
    counts = "3 train / 3 val" if target == "cifar-10" else r"\d+ train / \d+ val"  # VOC: multi-label cover
    assert re.search(rf"ELEVATER {target}: {counts} images \(2-shot", log)
    if train:
        tasks = TASK_LINE.findall(log[log.rindex("Evaluate on the *test* set"):])
        assert [(t[1], t[2]) for t in tasks] == [(target, "6")]


def test_read_record_csv(tmp_path):
    """Per-task CSV of the target runs with the average over the targets."""
    spec = importlib.util.spec_from_file_location("read_record", repo_path("scripts/mvlpt/read_record.py"))
    read_record = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(read_record)
    tasks = ["cifar-10", "mnist"]
    results = {("cifar-10", 1): 50.0, ("mnist", 1): 70.0, ("cifar-10", 2): 60.0}
    for (task, seed), value in results.items():
        directory = read_record.run_dir(str(tmp_path), task, "UPT", "vit_b16", 5, 4, seed)
        os.makedirs(directory)
        with open(os.path.join(directory, "log.txt"), "w") as f:
            f.write(f"Evaluate on the *val* set\n=> per-task result\n* task: 0 ({task})\ttotal: 3\tmetric: 1.00%\n"
                    f"Evaluate on the *test* set\n=> result\n=> per-task result\n"
                    f"* task: 0 ({task})\ttotal: 9\tmetric: {value:.2f}%\n* average: {value:.2f}%\n")
    out = tmp_path / "r.csv"
    assert read_record.main([str(tmp_path), "--trainer", "UPT", "--nctx", "4", "--seeds", "1", "2",
                             "--tasks", *tasks, "--out", str(out)]) == 0
    assert out.read_text().splitlines() == [
        " ,cifar-10,mnist,average", "seed1,50.00,70.00,60.00", "seed2,60.00,,", "mean,55.00,70.00,60.00"]


def test_elevater_multitask_adaptation_selects_on_named_task(tmp_path, mvlpt_data, tiny_vit_path):
    """--multi-task on ELEVATER tasks: sorted task order, per-task metrics (mAP for VOC), selection
    on one task's val metric (--multi-task-evalkey)."""
    log = run_train(str(tmp_path / "mt"), "--seed", "1", "--trainer", "MVLPT", "--config-file", CONFIG,
                    "--dataset", "voc-2007-classification,cifar-10", "--multi-task", "--shots", "2",
                    "--multi-task-evalkey", "voc-2007-classification", "--multi-task-label-pertask",
                    opts=[*COMMON_OPTS, "TRAINER.MVLPT.COOP.N_CTX", "4"], root=mvlpt_data, backbone=tiny_vit_path)
    assert "Multitask dataset: 2 ELEVATER tasks (cifar-10, voc-2007-classification)" in log
    val_part = log[log.index("Evaluate on the *val* set"):log.index("Evaluate on the *test* set")]
    voc_val = float(re.search(r"^\* task: 1 \(voc-2007-classification\)\t.*metric: ([\d.]+)%$", val_part, re.M).group(1))
    state = torch.load(os.path.join(tmp_path, "mt", "prompt_learner", "model-best.pth.tar"), weights_only=True)
    assert state["val_result"] == pytest.approx(voc_val, abs=0.01)  # selected on VOC's val mAP, not the mean
    tasks = TASK_LINE.findall(log[log.rindex("Evaluate on the *test* set"):])
    assert [(t[0], t[1], t[2]) for t in tasks] == [("0", "cifar-10", "6"), ("1", "voc-2007-classification", "6")]
