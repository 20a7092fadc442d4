"""Data parallelism under `torchrun --nproc_per_node=2` (gloo on CPU) against single-process runs.

Real torchrun subprocesses on the tiny CLIP and the 4-class miniature EuroSAT: the same per-epoch
losses (tensorboard's full-precision values), the same evaluation and the same learned prompts as
one process with the same global batch; only rank 0 writes files (Python audit hooks record what
rank 1 creates or changes, tests/ddp_audit); a killed 2-process run resumes to the uninterrupted
result. Unit tests cover the samplers and the evaluator replay without processes.
"""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time

import pytest
import torch

from dassl.data.samplers import DistributedBatchSampler, SequentialSampler, ShardSampler
from dassl.utils.distributed import interleave

import tiny_task
from fixtures.trainer_fixtures import latest_log, repo_path, run_train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")

# 16 training images, global batch 4 (2 per process), odd test batch (shards of unequal sizes).
COMMON_OPTS = (
    "DATASET.NAME", "EuroSAT", "DATASET.NUM_SHOTS", "4", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
    "DATALOADER.TEST.BATCH_SIZE", "5", "OPTIM.MAX_EPOCH", "2", "TRAIN.PRINT_FREQ", "1",
    "INPUT.TRANSFORMS", "['center_crop', 'normalize']", "DATALOADER.NUM_WORKERS", "0",
)
TRAINERS = {
    # best_val: val evaluation every epoch (a gathered evaluation, an image-feature cache miss then
    # a hit) and a reload of the best checkpoint written by rank 0.
    "CoOp": ("CoOp/vit_b16_ep50", "prompt_learner", ("OPTIM.LR", "0.02", "TEST.FINAL_MODEL", "best_val")),
    "MaPLe": ("MaPLe/vit_b16_c2_ep5_batch4_2ctx", "MultiModalPromptLearner",
              ("TRAINER.MAPLE.PROMPT_DEPTH", "2", "OPTIM.LR", "0.1")),
}


def trainer_args(trainer: str, root: str, backbone: str, out: str) -> list[str]:
    config, _, opts = TRAINERS[trainer]
    return ["--root", root, "--seed", "1", "--trainer", trainer, "--backbone", backbone,
            "--config-file", repo_path(f"configs/trainers/{config}.yaml"), "--output-dir", out,
            *COMMON_OPTS, *opts]


def torchrun(script: str, args: list[str], env: dict, **popen) -> subprocess.Popen:
    command = [TORCHRUN, "--standalone", "--nproc_per_node=2", script, *args]
    return subprocess.Popen(command, cwd=REPO, env=env, **popen)


def run_torchrun(script: str, args: list[str], env: dict) -> None:
    proc = torchrun(script, args, env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-4000:]


def worker_env(tmp_path, cache_dir: str) -> dict:
    """One thread per worker; rank 1 audited (writes under tmp_path reported in tmp_path/../audit)."""
    audit = tmp_path.parent / f"{tmp_path.name}_audit"
    audit.mkdir(exist_ok=True)
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PROMPTKIT_IMAGE_FEATURE_CACHE=cache_dir,
                PYTHONPATH=os.pathsep.join([os.path.join(REPO, "tests", "ddp_audit"), REPO]),
                DDP_AUDIT_ROOT=str(tmp_path), DDP_AUDIT_OUT=str(audit))


def rank1_writes(env: dict) -> list[str]:
    with open(os.path.join(env["DDP_AUDIT_OUT"], "rank1.txt")) as f:
        return f.read().splitlines()


def tensorboard_scalars(out_dir: str, tag: str) -> dict[int, float]:
    """step -> value of `tag` from the run's event file (TFRecord framing, protobuf events)."""
    from tensorboard.compat.proto.event_pb2 import Event

    folder = os.path.join(out_dir, "tensorboard")
    (name,) = os.listdir(folder)
    values = {}
    with open(os.path.join(folder, name), "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        event = Event.FromString(data[pos + 12:pos + 12 + length])
        pos += 12 + length + 4
        for value in event.summary.value:
            if value.tag == tag:
                values[event.step] = value.simple_value
    return values


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry))
    return children


def evaluation_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith(("* total", "* correct", "* accuracy",
                                                                   "* macro_f1", "Evaluate on"))]


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_two_processes_train_as_one(trainer, coop_data_root, tiny_vit_path, tmp_path):
    single, ddp = str(tmp_path / "single"), str(tmp_path / "ddp")
    single_cache, ddp_cache = str(tmp_path / "cache_single"), str(tmp_path / "cache_ddp")
    env = worker_env(tmp_path, ddp_cache)
    run_torchrun("train.py", trainer_args(trainer, coop_data_root, tiny_vit_path, ddp), env)
    os.environ["PROMPTKIT_IMAGE_FEATURE_CACHE"], saved = single_cache, os.environ["PROMPTKIT_IMAGE_FEATURE_CACHE"]
    try:
        single_log = run_train(single, *trainer_args(trainer, coop_data_root, tiny_vit_path, single))
    finally:
        os.environ["PROMPTKIT_IMAGE_FEATURE_CACHE"] = saved
    ddp_log = latest_log(ddp)

    # Per-iteration running means of the epoch: the last one of each epoch is the epoch's loss.
    expected, got = tensorboard_scalars(single, "train/loss"), tensorboard_scalars(ddp, "train/loss")
    assert sorted(got) == sorted(expected) == list(range(8))
    for step in (3, 7):
        assert got[step] == pytest.approx(expected[step], abs=1e-5), step
    assert evaluation_lines(ddp_log) == evaluation_lines(single_log)
    assert "* accuracy:" in ddp_log

    name = TRAINERS[trainer][1]
    final = "model-best.pth.tar" if "best_val" in TRAINERS[trainer][2] else "model.pth.tar-2"
    a = torch.load(os.path.join(single, name, final), weights_only=True)
    b = torch.load(os.path.join(ddp, name, final), weights_only=True)
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, atol=1e-5, rtol=1e-4)
    assert len(b["rng_states_per_rank"]) == 2

    assert rank1_writes(env) == []
    assert sorted(os.listdir(ddp)) == sorted(["log.txt", "tensorboard", name])
    if trainer == "CoOp":  # the cache rank 0 wrote from the gathered shards is the single-process one
        assert "Image feature cache: using" in ddp_log
        files = sorted(os.listdir(single_cache))
        assert len(files) == 2 and sorted(os.listdir(ddp_cache)) == files  # val and test splits
        for file in files:
            x = torch.load(os.path.join(ddp_cache, file), weights_only=True)
            y = torch.load(os.path.join(single_cache, file), weights_only=True)
            assert torch.equal(x["labels"], y["labels"])
            torch.testing.assert_close(x["features"], y["features"])


def test_killed_two_process_run_resumes_as_uninterrupted(tmp_path):
    data = str(tmp_path / "data")
    tiny_task.make_tiny_dataset(data)
    setup = (data, tiny_task.write_configs(str(tmp_path / "configs")))
    from test_resume import tiny_args, training_lines

    env = worker_env(tmp_path, str(tmp_path / "cache"))
    script = os.path.join("tests", "tiny_task.py")
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    run_torchrun(script, tiny_args(setup, full_dir), env)
    with open(tmp_path / "hang.out", "w") as hang_out:
        hang = torchrun(script, tiny_args(setup, killed_dir, opts=("TRAINER.TINY.HANG_AT_EPOCH", "3")), env,
                        stdout=hang_out, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 180
            log = killed_dir / "log.txt"
            while not (log.exists() and "HANGING" in log.read_text()):
                assert hang.poll() is None, (tmp_path / "hang.out").read_text()[-3000:]
                assert time.time() < deadline, "the run never reached epoch 3"
                time.sleep(0.2)
            workers = child_pids(hang.pid)
            assert len(workers) == 2, workers
        finally:
            # torchrun starts each worker in a session of its own: kill them, then torchrun.
            for pid in child_pids(hang.pid) + [hang.pid]:
                os.kill(pid, signal.SIGKILL)
            hang.wait()
    assert (killed_dir / "model" / "checkpoint").read_text() == "model.pth.tar-2\n"

    run_torchrun(script, tiny_args(setup, killed_dir, "--resume", str(killed_dir)), env)
    resumed_log = latest_log(str(killed_dir))
    assert "Previous epoch: 2" in resumed_log and "Restored random number generator states" in resumed_log
    full_log = (full_dir / "log.txt").read_text()
    full_lines = training_lines(full_log)
    assert len(full_lines) == 12 and training_lines(resumed_log) == full_lines[6:]
    assert evaluation_lines(resumed_log) == evaluation_lines(full_log)
    final_full = torch.load(full_dir / "model" / "model.pth.tar-4", weights_only=True)
    final_resumed = torch.load(killed_dir / "model" / "model.pth.tar-4", weights_only=True)
    for key, value in final_full["state_dict"].items():
        assert torch.equal(final_resumed["state_dict"][key], value), key
    assert rank1_writes(env) == []


# ---------------------------------------------------------------- without processes
def test_batch_sampler_splits_the_single_process_batches():
    base = SequentialSampler(range(10))
    shares = [DistributedBatchSampler(base, 4, drop_last=False, rank=r, world_size=2) for r in range(2)]
    assert [list(s) for s in shares] == [[[0, 1], [4, 5], [8]], [[2, 3], [6, 7], [9]]]
    assert len(shares[0]) == 3 and shares[0].fraction(0) == 0.5 and shares[0].fraction(2) == 0.5
    odd = [DistributedBatchSampler(base, 5, drop_last=True, rank=r, world_size=2) for r in range(2)]
    assert [list(s) for s in odd] == [[[0, 1, 2], [5, 6, 7]], [[3, 4], [8, 9]]]
    assert odd[0].fraction(1) == 0.6 and odd[1].fraction(1) == 0.4
    with pytest.raises(ValueError, match="cannot be split across 2 processes"):
        DistributedBatchSampler(SequentialSampler(range(5)), 4, drop_last=False, rank=0, world_size=2)


def test_shards_interleave_back_and_the_evaluator_is_replayed_in_loader_batches():
    from dassl.evaluation.distributed import GatheredEvaluator

    shards = [ShardSampler(SequentialSampler(range(7)), r, 3, batch_size=3) for r in range(3)]
    indices = [list(s) for s in shards]
    assert indices == [[0, 3, 6], [1, 4], [2, 5]] and [len(s) for s in shards] == [3, 2, 2]
    parts = [(torch.tensor(i), {"x": torch.tensor(i) * 10}) for i in indices]
    ordered = interleave(parts)
    assert ordered[0].tolist() == list(range(7)) and ordered[1]["x"].tolist() == [10 * i for i in range(7)]

    class Recorder:
        def reset(self):
            self.calls = []

        def process(self, mo, gt):
            self.calls.append((mo.tolist(), gt.tolist()))

    from dassl.evaluation import distributed as gathered

    wrappers = []
    for shard, idx in zip(shards, indices):  # what each process records: its shard, in batches of 2
        gathered._pass_count = 0  # each process counts its own passes
        wrapper = GatheredEvaluator(Recorder())
        wrapper.reset()
        list(shard)  # the loader starting its pass
        for batch in (idx[:2], idx[2:]):
            if batch:
                wrapper.process(torch.tensor(batch) * 2, torch.tensor(batch))
        wrappers.append(wrapper)
    wrappers[0]._replay([w._records for w in wrappers])
    assert wrappers[0].calls == [([0, 2, 4], [0, 1, 2]), ([6, 8, 10], [3, 4, 5]), ([12], [6])]


def test_batch_per_process_multiplies_the_global_batch(coop_data_root, monkeypatch):
    from dassl.data import DataManager
    from dassl.data import data_manager
    from fixtures.data_fixtures import make_cfg

    monkeypatch.setattr(data_manager, "get_world_size", lambda: 2)  # as under torchrun with 2 processes
    sizes = {}
    for per_process in (False, True):
        cfg = make_cfg("EuroSAT", coop_data_root, "DATASET.NUM_SHOTS", 4, "DATALOADER.TRAIN_X.BATCH_SIZE", 4,
                       "DATALOADER.BATCH_PER_PROCESS", per_process)
        dm = DataManager(cfg)
        sizes[per_process] = (dm.train_loader_x.batch_size, dm.test_loader.batch_size)
    assert sizes == {False: (4, 32), True: (8, 32)}  # evaluation batches stay per process
