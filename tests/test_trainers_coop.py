"""End to end through train.py on the tiny CLIP and a learnable miniature EuroSAT (4 classes):
CoOp, CoCoOp, ZeroshotCLIP(2), LinearProbeCLIP; logs, checkpoints, eval-only, base->new."""
from __future__ import annotations

import os
import re

import pytest
import torch

from fixtures.trainer_fixtures import COOP_EPOCHS, repo_path, run_train

TRAIN_LINE = re.compile(
    r"^epoch \[(\d+)/(\d+)\] batch \[(\d+)/(\d+)\] time \d+\.\d{3} \(\d+\.\d{3}\) "
    r"data \d+\.\d{3} \(\d+\.\d{3}\) (.+) lr \d\.\d{4}e[-+]\d\d eta \d+:\d\d:\d\d$"
)
RESULT = re.compile(r"^\* accuracy: ([\d.]+)%$", re.M)
TOTAL = re.compile(r"^\* total: ([\d,]+)$", re.M)
N_TEST = 16  # 4 classes x 4 test images


def accuracy(log: str) -> float:
    return float(RESULT.findall(log)[-1])


def losses_by_epoch(log: str) -> dict[int, float]:
    """Running mean loss at the last printed batch of each epoch."""
    means = {}
    for line in log.splitlines():
        match = TRAIN_LINE.match(line)
        if match:
            means[int(match.group(1))] = float(re.search(r"loss [\d.]+ \(([\d.]+)\)", match.group(5)).group(1))
    return means


def test_coop_log_checkpoint_and_learning(coop_run):
    out, log = coop_run
    lines = log.splitlines()
    train_lines = [line for line in lines if line.startswith("epoch [")]
    assert train_lines and all(TRAIN_LINE.match(line) for line in train_lines)
    assert re.search(r" loss \d+\.\d{4} \(\d+\.\d{4}\) acc \d+\.\d{4} \(\d+\.\d{4}\) lr ", train_lines[0])
    assert lines.count("WARNING: PREC=fp16 needs CUDA; running CLIP in fp32 on cpu") == 1
    end = lines.index("Finish training")
    assert lines[end + 1] == "Deploy the last-epoch model"
    assert "=> result" in lines[end:] and TOTAL.findall(log)[-1] == str(N_TEST)

    ckpt_dir = os.path.join(out, "prompt_learner")
    with open(os.path.join(ckpt_dir, "checkpoint")) as f:
        assert f.read() == f"model.pth.tar-{COOP_EPOCHS}\n"
    ckpt = torch.load(os.path.join(ckpt_dir, f"model.pth.tar-{COOP_EPOCHS}"), weights_only=True)
    assert set(ckpt["state_dict"]) == {"ctx", "token_prefix", "token_suffix"}
    assert ckpt["epoch"] == COOP_EPOCHS and ckpt["state_dict"]["ctx"].shape == (16, 128)

    # Learning: the loss goes down and the test accuracy clearly beats chance (25%).
    losses = losses_by_epoch(log)
    assert losses[COOP_EPOCHS] < losses[1] - 0.2
    assert accuracy(log) >= 50.0


def test_coop_eval_only_reproduces_the_final_test(coop_run, coop_data_root, tiny_vit_path, tmp_path):
    out, log = coop_run
    eval_log = run_train(str(tmp_path / "eval"), "--trainer", "CoOp", "--config-file",
                         repo_path("configs/trainers/CoOp/vit_b16_ep50.yaml"), "--eval-only",
                         "--model-dir", out, "--load-epoch", str(COOP_EPOCHS),
                         opts=("DATALOADER.TEST.BATCH_SIZE", "5"),
                         root=coop_data_root, backbone=tiny_vit_path)
    path = os.path.join(out, "prompt_learner", f"model.pth.tar-{COOP_EPOCHS}")
    assert f'Loading weights to prompt_learner from "{path}" (epoch = {COOP_EPOCHS})' in eval_log
    assert accuracy(eval_log) == accuracy(log)


def test_coop_base_to_new(coop_data_root, tiny_vit_path, tmp_path):
    flags = ("--seed", "1", "--trainer", "CoOp", "--config-file", repo_path("configs/trainers/CoOp/vit_b16_ep50.yaml"))
    # Also the amp path and the middle class-token position.
    # amp on CPU is bf16 autocast, slow without bf16 instructions: one batch of 2 images.
    opts = ("TRAINER.COOP.CLASS_TOKEN_POSITION", "middle", "TRAINER.COOP.PREC", "amp", "DATASET.NUM_SHOTS", "1",
            "DATALOADER.TRAIN_X.BATCH_SIZE", "2", "OPTIM.MAX_EPOCH", "1")
    base = str(tmp_path / "train_base")
    base_log = run_train(base, *flags, opts=(*opts, "DATASET.SUBSAMPLE_CLASSES", "base"),
                         root=coop_data_root, backbone=tiny_vit_path)
    assert TOTAL.findall(base_log)[-1] == "8"  # the 2 base classes' test images
    assert "WARNING" not in base_log and any(TRAIN_LINE.match(line) for line in base_log.splitlines())
    new_log = run_train(str(tmp_path / "test_new"), *flags, "--eval-only", "--model-dir", base, "--load-epoch", "1",
                        opts=(*opts, "DATASET.SUBSAMPLE_CLASSES", "new"), root=coop_data_root, backbone=tiny_vit_path)
    assert "Loading weights to prompt_learner" in new_log
    assert TOTAL.findall(new_log)[-1] == "8"
    # The new classes' buffers are those of the new class names, not the checkpoint's.
    assert "=> result" in new_log


def test_cocoop_train_and_eval_on_new_classes(coop_data_root, tiny_vit_path, tmp_path):
    flags = ("--seed", "1", "--trainer", "CoCoOp",
             "--config-file", repo_path("configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml"))
    opts = ("DATASET.NUM_SHOTS", "2", "DATALOADER.TRAIN_X.BATCH_SIZE", "2", "OPTIM.MAX_EPOCH", "1",
            "DATALOADER.TEST.BATCH_SIZE", "8", "TRAIN.PRINT_FREQ", "1")
    base = str(tmp_path / "train_base")
    log = run_train(base, *flags, opts=(*opts, "DATASET.SUBSAMPLE_CLASSES", "base"),
                    root=coop_data_root, backbone=tiny_vit_path)
    train_lines = [line for line in log.splitlines() if line.startswith("epoch [")]
    assert len(train_lines) == 2 and all(TRAIN_LINE.match(line) for line in train_lines)
    assert " acc " not in train_lines[0] and re.search(r" loss \d+\.\d{4} \(\d+\.\d{4}\) lr ", train_lines[0])
    ckpt = torch.load(os.path.join(base, "prompt_learner", "model.pth.tar-1"), weights_only=True)
    assert set(ckpt["state_dict"]) == {
        "ctx", "token_prefix", "token_suffix", "meta_net.linear1.weight", "meta_net.linear1.bias",
        "meta_net.linear2.weight", "meta_net.linear2.bias"}
    new_log = run_train(str(tmp_path / "test_new"), *flags, "--eval-only", "--model-dir", base, "--load-epoch", "1",
                        opts=(*opts, "DATASET.SUBSAMPLE_CLASSES", "new"), root=coop_data_root, backbone=tiny_vit_path)
    assert "Loading weights to prompt_learner" in new_log and TOTAL.findall(new_log)[-1] == "8"


@pytest.mark.parametrize("trainer, marker", [
    ("ZeroshotCLIP", "Prompts: ["),
    ("ZeroshotCLIP2", "Prompt ensembling (n=8)"),
])
def test_zero_shot(trainer, marker, coop_data_root, tiny_vit_path, tmp_path):
    log = run_train(str(tmp_path / trainer), "--trainer", trainer, "--config-file",
                    repo_path("configs/trainers/CoOp/vit_b16.yaml"), "--eval-only",
                    opts=("DATALOADER.TEST.BATCH_SIZE", "16"), root=coop_data_root, backbone=tiny_vit_path)
    assert marker in log
    assert "Note that load_model() is skipped as no pretrained model is given" in log
    assert TOTAL.findall(log)[-1] == str(N_TEST) and 0.0 <= accuracy(log) <= 100.0


def test_linear_probe(coop_data_root, tiny_vit_path, tmp_path):
    out = str(tmp_path / "lp")
    flags = ("--seed", "1", "--trainer", "LinearProbeCLIP",
             "--config-file", repo_path("configs/trainers/CoOp/rn50_val.yaml"))
    opts = ("DATASET.NUM_SHOTS", "4", "DATALOADER.TEST.BATCH_SIZE", "16", "TRAINER.LINEAR_PROBE.NUM_STEP", "2")
    log = run_train(out, *flags, opts=opts, root=coop_data_root, backbone=tiny_vit_path)
    lines = log.splitlines()
    assert any(line.startswith("Chosen C = ") for line in lines)
    end = lines.index("Finish training")
    assert lines[end + 1] == "Deploy the last-epoch model" and TOTAL.findall(log)[-1] == str(N_TEST)
    # The random tiny CLIP still separates the colour classes linearly.
    assert accuracy(log) >= 50.0
    assert os.path.isfile(os.path.join(out, "classifier", "model.pth.tar-1"))
    eval_log = run_train(str(tmp_path / "lp_eval"), *flags, "--eval-only", "--model-dir", out, "--load-epoch", "1",
                         opts=opts, root=coop_data_root, backbone=tiny_vit_path)
    assert accuracy(eval_log) == accuracy(log)


def test_predict_top_k(coop_run, coop_data_root, tiny_vit_path):
    from trainers import predict

    out, _ = coop_run
    folder = os.path.join(coop_data_root, "eurosat", "2750", "Forest")
    common = ["--config-file", repo_path("configs/trainers/CoOp/vit_b16_ep50.yaml"),
              "--dataset-config-file", repo_path("configs/datasets/eurosat.yaml"), "--root", coop_data_root,
              "--backbone", tiny_vit_path, "--topk", "3", folder]
    args = predict.build_parser().parse_args(
        common + ["--model-dir", out, "--load-epoch", str(COOP_EPOCHS)])
    results = predict.main(args)
    assert len(results) == len(os.listdir(folder))
    for path, ranked in results:
        assert path.startswith(folder) and len(ranked) == 3
        probs = [p for _, p in ranked]
        assert probs == sorted(probs, reverse=True) and 0.0 < sum(probs) <= 1.0 + 1e-6
    # The trained prompt mostly ranks the images' own class first.
    assert sum(ranked[0][0] == "Forest" for _, ranked in results) > len(results) / 2

    zero_shot = predict.main(predict.build_parser().parse_args(common + ["--classnames", "forest,river,sea"]))
    assert {name for name, _ in zero_shot[0][1]} == {"forest", "river", "sea"}


def test_lpclip_scripts(coop_data_root, tiny_vit_path, tmp_path):
    import importlib.util

    import numpy as np

    def load(name):
        spec = importlib.util.spec_from_file_location(name, repo_path(f"scripts/lpclip/{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    extractor = load("feat_extractor")
    args = extractor.build_parser().parse_args([
        "--split", "val", "--root", coop_data_root, "--seed", "1",
        "--dataset-config-file", repo_path("configs/datasets/eurosat.yaml"),
        "--config-file", repo_path("configs/trainers/CoOp/rn50_val.yaml"), "--output-dir", str(tmp_path / "feat"),
        "--backbone", tiny_vit_path, "--eval-only", "DATALOADER.NUM_WORKERS", "0"])
    data = np.load(extractor.main(args))
    assert data["feature_list"].shape == (8, 128) and data["label_list"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]

    # The protocol on synthetic features (3 classes): report lines and per-seed Dassl logs.
    from trainers.linear_probe import run_protocol

    rng = np.random.RandomState(0)
    centers = rng.randn(3, 4) * 3
    feature_dir = tmp_path / "synthetic"
    (feature_dir / "Toy").mkdir(parents=True)
    for split, n in (("train", 6), ("val", 4), ("test", 10)):
        labels = np.repeat(np.arange(3), n)
        np.savez(feature_dir / "Toy" / f"{split}.npz", feature_list=centers[labels] + rng.randn(len(labels), 4),
                 label_list=labels)
    stats = run_protocol("Toy", str(feature_dir), num_step=1, num_run=2, report_dir=str(tmp_path / "report"),
                         log_dir=str(tmp_path / "logs"), shots_list=(1, 2))
    assert set(stats) == {1, 2}
    with open(tmp_path / "report" / "synthetic_s1r2.txt") as f:
        assert f.read().splitlines()[0].startswith("Toy, 1 Shot, Test acc stat: ")
    import parse_test_res

    assert parse_test_res.main([str(tmp_path / "logs" / "Toy" / "shots_2")]) == 0


@pytest.mark.parametrize("script", ["coop/main.sh", "coop/eval.sh", "coop/zeroshot.sh", "cocoop/base2new_train.sh",
                                    "cocoop/base2new_test.sh", "cocoop/xd_train.sh", "cocoop/xd_test.sh",
                                    "lpclip/feat_extractor.sh", "demo.sh"])
def test_scripts_parse_and_need_data(script):
    import subprocess

    path = repo_path(f"scripts/{script}")
    assert subprocess.run(["bash", "-n", path]).returncode == 0
    if script != "demo.sh":
        env = {k: v for k, v in os.environ.items() if k != "DATA"}
        run = subprocess.run(["bash", path, "caltech101", "1"], env=env, capture_output=True, text=True)
        assert run.returncode != 0 and "set DATA to your datasets folder" in run.stderr
