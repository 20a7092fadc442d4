"""scripts/lamm/incremental.sh end to end on a miniature CIFAR-100 in its real layout (tiny CLIP):
two stages, LAMM's merged label embeddings and the ZS-CLIP and CoOp baselines on the seen classes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from datasets.miniature import make_miniature
from dassl.utils import load_checkpoint
from fixtures.trainer_fixtures import repo_path


def test_incremental_script_on_miniature_cifar100(tmp_path, tiny_vit_path):
    data = tmp_path / "data"
    make_miniature("MYCIFAR100", str(data), n_classes=4, n_per_class=6)
    out = tmp_path / "incremental"
    env = dict(os.environ, DATA=str(data), PYTHON=sys.executable, OUTPUT_DIR=str(out), OMP_NUM_THREADS="1")
    opts = ["MODEL.BACKBONE.NAME", tiny_vit_path, "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1",
            "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "DATALOADER.TEST.BATCH_SIZE", "8", "TEST.NO_TEST", "True"]
    run = subprocess.run(["bash", repo_path("scripts/lamm/incremental.sh"), "cifar100", "1", "2", *opts],
                         env=env, capture_output=True, text=True, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"output in {out}" in run.stdout

    results = json.loads((out / "results.json").read_text())
    assert results["classes_seen"] == [2, 4]
    for method in ("ZeroshotCLIP", "CoOp", "LAMM"):
        accs = results["accuracy"][method]
        assert len(accs) == 2 and all(0.0 <= a <= 100.0 for a in accs)
        assert abs(results["average_incremental_accuracy"][method] - sum(accs) / 2) < 1e-9
    assert (out / "results.txt").read_text().splitlines()[-1].startswith("average incremental accuracy")
    assert "average incremental accuracy" in run.stdout

    # Stage 2's test covers all 4 seen classes (2 test images each) with the merged label embeddings.
    assert "* total: 8" in (out / "LAMM" / "seen2" / "log.txt").read_text()
    stages = [load_checkpoint(str(out / "LAMM" / f"stage{s}" / "prompt_learner" / "model.pth.tar-1"))["state_dict"]
              for s in (1, 2)]
    merged = load_checkpoint(str(out / "LAMM" / "seen2" / "merged" / "prompt_learner" / "model.pth.tar-1"))
    assert torch.equal(merged["state_dict"]["token_classes"],
                       torch.cat([stages[0]["token_classes"], stages[1]["token_classes"]]))
    assert torch.equal(stages[0]["ctx"], stages[1]["ctx"])  # LAMM's context stays frozen
    # CoOp fine-tunes one context sequentially: stage 2 starts from stage 1's.
    assert "Successfully loaded pretrained weights" in (out / "CoOp" / "stage2" / "log.txt").read_text()
