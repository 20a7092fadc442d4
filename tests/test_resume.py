"""Checkpoints (atomic, weights_only) and exact resume, down to a train.py run killed with SIGKILL."""
import os
import random
import signal
import subprocess
import sys
import time
from collections import OrderedDict, defaultdict

import numpy as np
import pytest
import torch
import torch.nn as nn

from dassl.config import get_cfg_default
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import (
    TRUST_LEGACY_ENV, DamagedCheckpointError, LegacyCheckpointError, get_rng_states, load_checkpoint,
    load_pretrained_weights, resume_from_checkpoint, save_checkpoint, set_rng_states,
)
from dassl.utils import torchtools

import tiny_task

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def coop_like_state(epoch=1):
    """What save_model writes for a CoOp-config run (warmup-wrapped cosine, SGD)."""
    cfg = get_cfg_default().OPTIM
    cfg.NAME, cfg.LR, cfg.MAX_EPOCH = "sgd", 0.002, 4
    cfg.LR_SCHEDULER, cfg.WARMUP_EPOCH, cfg.WARMUP_TYPE = "cosine", 1, "constant"
    model = nn.Linear(3, 2)
    optim = build_optimizer(model, cfg)
    sched = build_lr_scheduler(optim, cfg)
    model(torch.ones(1, 3)).sum().backward()
    optim.step()
    sched.step()
    state = {
        "state_dict": model.state_dict(), "epoch": epoch, "optimizer": optim.state_dict(),
        "scheduler": sched.state_dict(), "val_result": np.float64(71.25),
        "rng_states": get_rng_states(), "best_result": float("-inf"),
    }
    return state, model, optim, sched


def test_round_trip_weights_only(tmp_path, capsys):
    state, model, optim, sched = coop_like_state()
    save_checkpoint(state, str(tmp_path))
    fpath = tmp_path / "model.pth.tar-1"
    assert capsys.readouterr().out == f"Checkpoint saved to {fpath}\n"
    assert (tmp_path / "checkpoint").read_text() == "model.pth.tar-1\n"
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model.pth.tar-1"]  # no temp files left

    loaded = torch.load(fpath, weights_only=True)
    assert load_checkpoint(str(fpath)).keys() == loaded.keys()
    assert type(loaded["val_result"]) is float and loaded["val_result"] == 71.25
    assert loaded["best_result"] == float("-inf") and loaded["epoch"] == 1
    assert type(loaded["scheduler"]["successor"]) is dict
    for k, v in model.state_dict().items():
        assert torch.equal(loaded["state_dict"][k], v)


def test_unsafe_values_fail_at_save_time(tmp_path):
    state, *_ = coop_like_state()
    state["val_result"] = object()
    with pytest.raises(TypeError, match=r"checkpoint\['val_result'\]"):
        save_checkpoint(state, str(tmp_path))
    assert os.listdir(tmp_path) == []
    state["val_result"] = defaultdict(list, a=[np.int64(3)])
    save_checkpoint(state, str(tmp_path))
    assert torch.load(tmp_path / "model.pth.tar-1", weights_only=True)["val_result"] == {"a": [3]}


def test_module_prefix_stripped_and_best_copy(tmp_path, capsys):
    model = nn.DataParallel(nn.Linear(2, 2))
    save_checkpoint({"state_dict": model.state_dict(), "epoch": 3}, str(tmp_path), is_best=True)
    best = tmp_path / "model-best.pth.tar"
    assert f'Best checkpoint saved to "{best}"' in capsys.readouterr().out
    assert best.read_bytes() == (tmp_path / "model.pth.tar-3").read_bytes()
    assert list(torch.load(best, weights_only=True)["state_dict"]) == ["weight", "bias"]
    assert (tmp_path / "checkpoint").read_text() == "model.pth.tar-3\n"
    save_checkpoint({"state_dict": OrderedDict(), "epoch": 4}, str(tmp_path), model_name="model-best.pth.tar")
    assert (tmp_path / "checkpoint").read_text() == "model-best.pth.tar\n"


def test_interrupted_save_leaves_previous_files_intact(tmp_path, monkeypatch):
    state, *_ = coop_like_state()
    save_checkpoint(state, str(tmp_path))
    before = (tmp_path / "model.pth.tar-1").read_bytes()

    def dying_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torchtools.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(state, str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(dict(state, epoch=2), str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "model.pth.tar-1"]
    assert (tmp_path / "model.pth.tar-1").read_bytes() == before
    assert (tmp_path / "checkpoint").read_text() == "model.pth.tar-1\n"


def test_legacy_checkpoint_gives_a_clear_error_and_an_opt_in(tmp_path, monkeypatch):
    state, model, optim, sched = coop_like_state(epoch=2)
    legacy = dict(state, scheduler=dict(sched.state_dict(), successor=sched.successor))  # upstream layout
    path = tmp_path / "model.pth.tar-2"
    torch.save(legacy, path)
    with pytest.raises(LegacyCheckpointError) as info:
        load_checkpoint(str(path))
    assert str(path) in str(info.value) and TRUST_LEGACY_ENV in str(info.value)

    monkeypatch.setenv(TRUST_LEGACY_ENV, "1")
    with pytest.warns(UserWarning, match="weights_only=False"):
        converted = load_checkpoint(str(path))
    assert type(converted["scheduler"]["successor"]) is dict
    *_, fresh_sched = coop_like_state()
    fresh_sched.load_state_dict(converted["scheduler"])
    assert fresh_sched.successor.last_epoch == sched.successor.last_epoch


def test_load_errors(tmp_path):
    with pytest.raises(ValueError):
        load_checkpoint(None)
    with pytest.raises(FileNotFoundError, match="File is not found at"):
        load_checkpoint(str(tmp_path / "nope"))
    (tmp_path / "broken").write_bytes(b"not a checkpoint")
    with pytest.raises(DamagedCheckpointError, match=f'Unable to load checkpoint from "{tmp_path / "broken"}"'):
        load_checkpoint(str(tmp_path / "broken"))


def test_rng_states_round_trip_through_a_checkpoint(tmp_path):
    random.random()
    np.random.normal()  # leaves a cached gaussian in numpy's state
    random.gauss(0, 1)
    save_checkpoint({"state_dict": {}, "epoch": 1, "rng_states": get_rng_states()}, str(tmp_path))
    expected = (random.random(), random.gauss(0, 1), np.random.normal(), np.random.rand(), torch.rand(3))
    set_rng_states(torch.load(tmp_path / "model.pth.tar-1", weights_only=True)["rng_states"])
    got = (random.random(), random.gauss(0, 1), np.random.normal(), np.random.rand(), torch.rand(3))
    assert got[:4] == expected[:4] and torch.equal(got[4], expected[4])


def test_resume_from_checkpoint(tmp_path, capsys):
    state, model, optim, sched = coop_like_state(epoch=3)
    save_checkpoint(state, str(tmp_path))
    capsys.readouterr()
    _, model2, optim2, sched2 = coop_like_state()
    assert resume_from_checkpoint(str(tmp_path), model2, optim2, sched2) == 3
    assert capsys.readouterr().out.splitlines() == [
        f'Loading checkpoint from "{tmp_path / "model.pth.tar-3"}"', "Loaded model weights",
        "Loaded optimizer", "Loaded scheduler", "Previous epoch: 3",
    ]
    assert torch.equal(model2.weight, model.weight)
    assert optim2.param_groups[0]["lr"] == optim.param_groups[0]["lr"]
    assert sched2.state_dict() == sched.state_dict()


def test_load_pretrained_weights(tmp_path, capsys):
    source = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    save_checkpoint({"state_dict": source.state_dict(), "epoch": 1}, str(tmp_path))
    target = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 5))
    load_pretrained_weights(target, str(tmp_path / "model.pth.tar-1"))
    out = capsys.readouterr().out
    assert f"Successfully loaded pretrained weights from {tmp_path / 'model.pth.tar-1'}" in out
    assert "Layers discarded due to unmatched keys or size: ['1.weight', '1.bias']" in out
    assert torch.equal(target[0].weight, source[0].weight)
    torch.save({"other": torch.zeros(1)}, tmp_path / "unrelated.pt")
    with pytest.warns(UserWarning, match="Cannot load"):
        load_pretrained_weights(target, str(tmp_path / "unrelated.pt"))


# ---------------------------------------------------------------- kill -9, then --resume
@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_resume")
    tiny_task.make_tiny_dataset(str(root / "data"))
    return str(root / "data"), tiny_task.write_configs(str(root / "configs"))


def tiny_args(setup, out, *flags, opts=()):
    data, (dataset_cfg, method_cfg) = setup
    return ["--root", data, "--trainer", "TinyTrainer", "--dataset-config-file", dataset_cfg,
            "--config-file", method_cfg, "--output-dir", str(out), "--seed", "1", *flags,
            "TRAIN.CHECKPOINT_FREQ", "1", *opts]


def tiny_command(*args, **kwargs):
    return [sys.executable, os.path.join(REPO, "tests", "tiny_task.py"), *tiny_args(*args, **kwargs)]


def training_lines(log_text):
    """Epoch lines without the timing fields (loss, acc and lr must match exactly)."""
    lines = []
    for line in log_text.splitlines():
        if line.startswith("epoch ["):
            fields = line.split(" ")
            lines.append(" ".join(fields[:4] + fields[12:-2]))
    return lines


def test_killed_run_resumes_to_the_same_result(tiny_setup, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    with open(tmp_path / "hang.err", "w") as hang_err:
        # This run hangs after batch 2 of epoch 3; the uninterrupted one runs here meanwhile.
        hang = subprocess.Popen(tiny_command(tiny_setup, killed_dir, opts=("TRAINER.TINY.HANG_AT_EPOCH", "3")),
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=hang_err)
        try:
            assert tiny_task.run_in_process(tiny_args(tiny_setup, full_dir)) == 0
            deadline = time.time() + 120
            log = killed_dir / "log.txt"
            while not (log.exists() and "HANGING" in log.read_text()):
                assert hang.poll() is None, (tmp_path / "hang.err").read_text()
                assert time.time() < deadline, "the run never reached epoch 3"
                time.sleep(0.2)
            os.kill(hang.pid, signal.SIGKILL)
            hang.wait()
        finally:
            if hang.poll() is None:
                hang.kill()
                hang.wait()

    model_dir = killed_dir / "model"
    assert (model_dir / "checkpoint").read_text() == "model.pth.tar-2\n"
    assert sorted(os.listdir(model_dir)) == ["checkpoint", "model.pth.tar-1", "model.pth.tar-2"]

    resumed = subprocess.run(tiny_command(tiny_setup, killed_dir, "--resume", str(killed_dir)),
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    out = resumed.stdout
    assert f"Found checkpoint at {killed_dir} (will resume training)" in out
    assert "Previous epoch: 2" in out and "Restored random number generator states" in out

    full_log = (full_dir / "log.txt").read_text()
    resumed_logs = [p for p in os.listdir(killed_dir) if p.startswith("log.txt-")]
    assert len(resumed_logs) == 1  # the killed run's log.txt is kept
    resumed_log = (killed_dir / resumed_logs[0]).read_text()
    full_lines, resumed_lines = training_lines(full_log), training_lines(resumed_log)
    assert len(full_lines) == 12
    assert resumed_lines == full_lines[6:]  # epochs 3 and 4, same losses, accuracies and lrs
    assert resumed_log[resumed_log.index("=> result"):].split("Elapsed")[0] == \
        full_log[full_log.index("=> result"):].split("Elapsed")[0]

    final_full = torch.load(full_dir / "model" / "model.pth.tar-4", weights_only=True)
    final_resumed = torch.load(model_dir / "model.pth.tar-4", weights_only=True)
    for key, value in final_full["state_dict"].items():
        assert torch.equal(final_resumed["state_dict"][key], value), key
    assert final_resumed["scheduler"] == final_full["scheduler"]
    momentum = [s["momentum_buffer"] for s in final_full["optimizer"]["state"].values()]
    momentum_resumed = [s["momentum_buffer"] for s in final_resumed["optimizer"]["state"].values()]
    assert len(momentum) == 4 and all(torch.equal(a, b) for a, b in zip(momentum, momentum_resumed))
