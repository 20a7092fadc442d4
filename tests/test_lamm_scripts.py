"""scripts/lamm/*.sh: the train.py command lines and output folders of the LAMM repository's runs
(PYTHON is a stub that prints its arguments; nothing is trained)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = "#!/bin/bash\nprintf '@@'; printf ' %s' \"$@\"; printf '\\n'\n"
LAMM = "--trainer CoOp --dataset-config-file configs/datasets/dtd.yaml --config-file configs/trainers/CoOp/vit_b16_ep50_ctxv1.yaml"
MAPLE = ("--trainer MaPLe --dataset-config-file configs/datasets/dtd.yaml "
         "--config-file configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml")


@pytest.fixture
def run(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(os.path.join(REPO, "scripts"), root / "scripts")
    (root / "data").mkdir()
    stub = tmp_path / "python"
    stub.write_text(STUB)
    stub.chmod(0o755)

    def call(script, *args, **env):
        full = {**os.environ, "DATA": "data", "PYTHON": str(stub), "SHOTS_LIST": "2", "DATASETS": "dtd", "SEEDS": "1", **env}
        done = subprocess.run(["bash", f"scripts/lamm/{script}", *args], cwd=root, env=full,
                              capture_output=True, text=True)
        calls = [line[3:].replace(str(root / "data"), "DATA") for line in done.stdout.splitlines() if line.startswith("@@")]
        return done, calls

    return call


@pytest.mark.parametrize("script, expected", [
    ("base_train_lamm_all.sh", f"train.py --root DATA --seed 1 {LAMM} --output-dir "
     "output/base/dtd/shots_2/LAMM/vit_b16_ep50_ctxv1/seed1 --triplet-loss --origin-clip DATASET.NUM_SHOTS 2"),
    ("base_train_coop_lamm_all.sh", f"train.py --root DATA --seed 1 {LAMM} --output-dir "
     "output/base/dtd/shots_2/CoOp/vit_b16_ep50_ctxv1/seed1 --triplet-loss DATASET.NUM_SHOTS 2"),
    ("base_train_maple_lamm_all.sh", f"train.py --root DATA --seed 1 {MAPLE} --output-dir "
     "output/base/dtd/shots_2/MaPLe/vit_b16_c2_ep5_batch4_2ctx/seed1 --triplet-loss DATASET.NUM_SHOTS 2"),
    ("base2new_train_set1_lamm_all.sh", f"train.py --root DATA --seed 1 {LAMM} --output-dir "
     "output/base2new_set1/dtd/shots_16/CoOp/vit_b16_ep50_ctxv1/seed1 --shots 16 --triplet-loss --origin-clip "
     "DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base"),
    ("base2new_train_set2_lamm_all.sh", f"train.py --root DATA --seed 1 {LAMM} --output-dir "
     "output/base2new_set2/dtd/shots_16/CoOp/vit_b16_ep50_ctxv1/seed1 --shots 16 --triplet-loss --origin-clip "
     "DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES new"),
])
def test_loop_scripts(run, script, expected):
    done, calls = run(script)
    assert done.returncode == 0, done.stderr
    assert calls == [expected]


def test_base_to_new_and_cross_dataset(run):
    done, calls = run("base2new_train.sh", "maple_lamm", "dtd", "1")
    train_dir = "output/base2new/train_base/dtd/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx/seed1"
    assert calls == [f"train.py --root DATA --seed 1 {MAPLE} --output-dir {train_dir} --triplet-loss "
                     "DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base"]
    done, calls = run("base2new_test.sh", "maple_lamm", "dtd", "1")
    assert calls == [f"train.py --root DATA --seed 1 {MAPLE} --output-dir {train_dir.replace('train_base', 'test_new')} "
                     f"--model-dir {train_dir} --load-epoch 5 --eval-only --triplet-loss "
                     "DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES new"]
    done, _ = run("base2new_train.sh", "lamm")
    assert done.returncode != 0 and "usage:" in done.stderr
    done, _ = run("base2new_train.sh", "clip", "dtd", "1")
    assert done.returncode != 0 and "unknown variant 'clip'" in done.stderr

    done, calls = run("base_test_cross_imagenet_lamm.sh", DATASETS="")
    datasets = [c.split("configs/datasets/")[1].split(".yaml")[0] for c in calls]
    assert datasets == ["imagenet_sketch", "imagenetv2", "imagenet_a", "imagenet_r"]
    assert all(os.path.isfile(os.path.join(REPO, "configs", "datasets", f"{d}.yaml")) for d in datasets)
    assert calls[0].endswith("--output-dir output/cross/imagenet_sketch/shots_16/CoOp/vit_b16_ep50_ctxv1/seed1 "
                             "--model-dir output/base/imagenet/shots_16/LAMM/vit_b16_ep50_ctxv1/seed1 "
                             "--load-epoch 50 --eval-only --triplet-loss DATASET.NUM_SHOTS 16")


def test_scripts_need_data(run):
    done, calls = run("base_train_lamm_all.sh", DATA="")
    assert done.returncode != 0 and "DATA" in done.stderr and not calls
