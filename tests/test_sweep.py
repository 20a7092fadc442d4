"""The sweep runner (dassl/sweep.py): expansion, skipping, resuming, failures, the summary, and
submitit's local executor as the stand-in for SLURM with real train.py runs on the tiny CLIP.

Runner-logic tests use tests/sweep_stub_python.py in place of the interpreter (it writes the logs a
finished run writes, or fails on request), so they take a second.
"""
from __future__ import annotations

import os

import yaml

from dassl import sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUB = os.path.join(REPO, "tests", "sweep_stub_python.py")


def write_sweep(path, **spec) -> str:
    with open(path, "w") as f:
        yaml.safe_dump(spec, f)
    return str(path)


def test_expansion_uses_the_reference_folders_and_commands(tmp_path):
    spec = {"trainer": "MaPLe", "config": "vit_b16_c2_ep5_batch4_2ctx", "datasets": ["caltech101", "dtd"],
            "seeds": [1, 2, 3], "opts": {"OPTIM.LR": 0.01}}
    units = sweep.expand(spec, "/data", "/out", "/out/sweep_logs")
    assert len(units) == 6 and units[0].name == "MaPLe-vit_b16_c2_ep5_batch4_2ctx-caltech101-shots16-seed1"
    train, test = units[0].steps
    tail = "caltech101/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx/seed1"
    assert train.output_dir == f"/out/base2new/train_base/{tail}" and test.output_dir == f"/out/base2new/test_new/{tail}"
    assert sweep.step_command(train, "py", 1) == [
        "py", "train.py", "--root", "/data", "--seed", "1", "--trainer", "MaPLe",
        "--dataset-config-file", "configs/datasets/caltech101.yaml",
        "--config-file", "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml",
        "--output-dir", train.output_dir, "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "base",
        "OPTIM.LR", "0.01"]
    # The test loads the config's last epoch (MAX_EPOCH 5), as scripts/maple/base2new_test_maple.sh.
    assert test.args[test.args.index("--model-dir") + 1] == train.output_dir
    assert test.args[test.args.index("--load-epoch") + 1] == "5" and "--eval-only" in test.args
    assert test.args[-3:] == ["new", "OPTIM.LR", "0.01"]
    assert sweep.step_command(train, "py", 4)[:5] == ["py", "-m", "torch.distributed.run", "--standalone",
                                                       "--nproc_per_node=4"]

    fewshot = sweep.expand(dict(spec, protocol="fewshot", trainer="CoOp", config="rn50_ep50", shots=[1, 16],
                                seeds=[1]), "/data", "/out", "/logs")
    assert [u.steps[0].output_dir for u in fewshot] == [
        "/out/caltech101/CoOp/rn50_ep50_1shots/seed1", "/out/caltech101/CoOp/rn50_ep50_16shots/seed1",
        "/out/dtd/CoOp/rn50_ep50_1shots/seed1", "/out/dtd/CoOp/rn50_ep50_16shots/seed1"]
    assert sweep.local_slots("0,1,2,3,4", 1, 2) == ["0,1", "2,3"] and sweep.local_slots("", 3, 1) == [None] * 3


def test_local_sweep_skips_reports_failures_and_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    path = write_sweep(tmp_path / "sweep.yaml", trainer="MaPLe", config="vit_b16_c2_ep5_batch4_2ctx",
                       datasets=["caltech101", "dtd"], seeds=[1, 2, 3], data=str(tmp_path), output=str(out),
                       python=STUB, jobs=2)
    units = sweep.expand(yaml.safe_load(open(path)), str(tmp_path), str(out), str(out / "sweep_logs"))
    finished, interrupted = units[0], units[1]  # caltech101 seeds 1 and 2
    assert sweep.run_unit(sweep.asdict(finished), STUB, 1, False) == 0
    os.makedirs(interrupted.steps[0].output_dir)
    with open(os.path.join(interrupted.steps[0].output_dir, "log.txt"), "w") as f:
        f.write("epoch [1/5] batch [1/4]\n")  # killed during training
    monkeypatch.setenv("SWEEP_STUB_FAIL", "dtd:2")

    assert sweep.main([path]) == 1
    printed = capsys.readouterr().out
    assert "6 runs: 1 finished (skipped), 1 interrupted (left alone; --resume runs them again), 4 to run" in printed
    assert f"interrupted: {interrupted.name}" in printed
    assert "[sweep] 4/4 finished: 3 done, 0 running, 1 failed, 0 pending" in printed
    failing = units[4]
    assert f"  {failing.name}: exit status 1; logs: {failing.console_log}, " in printed
    assert "RuntimeError: stub failure" in open(failing.console_log).read()
    assert os.path.isdir(units[5].steps[1].output_dir)  # the failure did not stop the others
    assert not os.path.exists(interrupted.steps[1].output_dir)

    monkeypatch.delenv("SWEEP_STUB_FAIL")
    assert sweep.main([path, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "6 runs: 4 finished (skipped), 1 interrupted (resumed), 1 to run" in printed
    assert interrupted.steps[0].state() == "finished" and interrupted.steps[1].state() == "finished"
    table = (out / "sweep_summary.md").read_text()
    # Seeds 1-3: base 61-63 -> 62.00, new 41-43 -> 42.00, for both datasets.
    assert "| caltech101 | 3 | 62.00 | 42.00 | 50.08 |" in table and "| dtd | 3 | 62.00 | 42.00 | 50.08 |" in table
    assert sweep.main([path]) == 0 and "6 runs: 6 finished (skipped), 0 interrupted" in capsys.readouterr().out


def test_submitit_local_executor_stands_in_for_slurm(tmp_path, capsys, monkeypatch):
    """The SLURM path (one job array through submitit) with submitit's local executor."""
    out = tmp_path / "out"
    path = write_sweep(tmp_path / "sweep.yaml", trainer="CoOp", config="vit_b16_ep50", datasets=["eurosat"],
                       seeds=[1, 2], output=str(out), data=str(tmp_path), python=STUB,
                       slurm={"partition": "gpu", "time": 10})
    monkeypatch.setenv("SWEEP_STUB_FAIL", "eurosat:2")
    assert sweep.main([path, "--submitit-cluster", "local"]) == 1
    printed = capsys.readouterr().out
    assert "Submitted 2 jobs" in printed and "[sweep] 2/2 finished: 1 done, 0 running, 1 failed, 0 pending" in printed
    tail = "eurosat/shots_16/CoOp/vit_b16_ep50/seed1"
    assert "Finish training" in (out / "base2new/train_base" / tail / "log.txt").read_text()
    assert "=> result" in (out / "base2new/test_new" / tail / "log.txt").read_text()
    assert "CoOp-vit_b16_ep50-eurosat-shots16-seed2: exit status 1; logs: " in printed
    assert "| eurosat | 1 | 61.00 | 41.00 |" in (out / "sweep_summary.md").read_text()
    assert (out / "sweep_summary.csv").exists()
