"""train.py: CLI, config order, user errors as one line, and an end-to-end run of the tiny task."""
import os
import re
import subprocess
import sys

import pytest
import torch

import tiny_task
import train
from dassl.config import get_cfg_default
from dassl.engine import TRAINER_REGISTRY
from dassl.utils import get_rng_states, set_random_seed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_cli")
    tiny_task.make_tiny_dataset(str(root / "data"))
    dataset_cfg, method_cfg = tiny_task.write_configs(str(root / "configs"))
    return {"root": root, "data": str(root / "data"), "dataset_cfg": dataset_cfg, "method_cfg": method_cfg}


def tiny_args(tiny, out, *flags, opts=()):
    return ["--root", tiny["data"], "--trainer", "TinyTrainer", "--dataset-config-file", tiny["dataset_cfg"],
            "--config-file", tiny["method_cfg"], "--output-dir", str(out), "--seed", "1", *flags, *opts]


@pytest.fixture(scope="module")
def trained(tiny):
    """One default run (CHECKPOINT_FREQ 0, 6 shots) of the tiny task; its output folder."""
    out = tiny["root"] / "trained"
    assert tiny_task.run_in_process(tiny_args(tiny, out, opts=("DATASET.NUM_SHOTS", "6")), env_info=True) == 0
    return out


def test_end_to_end_output_layout(trained):
    assert sorted(os.listdir(trained)) == ["log.txt", "model", "tensorboard"]
    assert sorted(os.listdir(trained / "model")) == ["checkpoint", "model.pth.tar-4"]
    assert (trained / "model" / "checkpoint").read_text() == "model.pth.tar-4\n"
    assert [f for f in os.listdir(trained / "tensorboard") if f.startswith("events.out.tfevents.")]

    checkpoint = torch.load(trained / "model" / "model.pth.tar-4", weights_only=True)
    assert set(checkpoint) == {"state_dict", "epoch", "optimizer", "scheduler", "val_result",
                               "rng_states", "best_result"}
    assert checkpoint["epoch"] == 4 and checkpoint["val_result"] is None
    assert list(checkpoint["state_dict"]) == ["backbone.conv.weight", "backbone.conv.bias",
                                              "classifier.weight", "classifier.bias"]


def test_end_to_end_log(trained, tiny):
    log = (trained / "log.txt").read_text()
    lines = log.splitlines()
    # "Setting fixed seed" is printed before the logger exists, so it is not in log.txt
    assert lines[:3] == ["***************", "** Arguments **", "***************"]
    arg_lines = lines[3:lines.index("************")]
    assert [line.split(":")[0] for line in arg_lines] == sorted(vars(train.build_parser().parse_args([])))
    assert f"config_file: {tiny['method_cfg']}" in arg_lines and "opts: ['DATASET.NUM_SHOTS', '6']" in arg_lines
    assert "seed: 1" in arg_lines and "source_domains: None" in arg_lines and "eval_only: False" in arg_lines
    config_start = lines.index("** Config **")
    assert lines[config_start - 1: config_start + 3] == ["************", "** Config **", "************", "DATALOADER:"]
    assert "  NAME: TinyTrainer" in lines and "  TINY:\n    HANG_AT_EPOCH: 0" in log
    assert "Collecting env info ...\n** System info **\n" in log and "Pillow (" in log
    order = ["Loading trainer: TinyTrainer", "Loading dataset: TinyShapes", "Creating a 6-shot dataset",
             "Building model", "Backbone: tiny_cnn", "Loading evaluator: Classification",
             "No checkpoint found, train from scratch",
             f"Initialize tensorboard (log_dir={trained}/tensorboard)"]
    assert [lines.index(line) for line in order] == sorted(lines.index(line) for line in order)
    assert "# train_x  18" in lines  # 6 shots x 3 classes

    epoch_lines = [line for line in lines if line.startswith("epoch [")]
    assert len(epoch_lines) == 8  # 4 epochs x 2 batches, PRINT_FREQ 1
    assert all(re.fullmatch(
        r"epoch \[\d/4\] batch \[\d/2\] time \d+\.\d{3} \(\d+\.\d{3}\) data \d+\.\d{3} \(\d+\.\d{3}\) "
        r"loss \d\.\d{4} \(\d\.\d{4}\) acc \d+\.\d{4} \(\d+\.\d{4}\) lr \d\.\d{4}e-0\d eta \d:\d\d:\d\d", line)
        for line in epoch_lines), epoch_lines
    assert epoch_lines[0].split(" lr ")[1].startswith("1.0000e-05")  # warmup epoch
    assert epoch_lines[1].split(" lr ")[1].startswith("5.0000e-02")  # already the next epoch's lr

    tail = lines[lines.index(epoch_lines[-1]) + 1:]
    assert tail[:4] == [f"Checkpoint saved to {trained}/model/model.pth.tar-4", "Finish training",
                        "Deploy the last-epoch model", "Evaluate on the *test* set"]
    result = tail[4:10]
    assert result[:2] == ["=> result", "* total: 18"]
    assert [line.split(":")[0] for line in result[2:]] == ["* correct", "* accuracy", "* error", "* macro_f1"]
    assert re.fullmatch(r"\* accuracy: \d+\.\d%", result[3])
    assert re.fullmatch(r"Elapsed: \d:\d\d:\d\d", tail[10]) and len(tail) == 11


def test_eval_only_reproduces_the_final_test(trained, tiny, tmp_path, capsys):
    out = tmp_path / "eval"
    args = tiny_args(tiny, out, "--eval-only", "--model-dir", str(trained), "--load-epoch", "4",
                     opts=("DATASET.NUM_SHOTS", "6"))
    assert tiny_task.run_in_process(args) == 0
    log = (out / "log.txt").read_text()
    assert f"Load {trained}/model/model.pth.tar-4 to model (epoch=4, val_result=None)" in log
    trained_log = (trained / "log.txt").read_text()
    block = trained_log[trained_log.index("=> result"):trained_log.index("Elapsed")]
    assert log.endswith(block)
    assert os.listdir(out) == ["log.txt"]  # no writer, no checkpoints
    assert capsys.readouterr().out.startswith("Setting fixed seed: 1\n")


def test_no_train_builds_and_stops(tiny, tmp_path):
    assert tiny_task.run_in_process(tiny_args(tiny, tmp_path / "nt", "--no-train")) == 0
    assert os.listdir(tmp_path / "nt") == ["log.txt"]
    assert "Loading evaluator: Classification" in (tmp_path / "nt" / "log.txt").read_text()


def write(path, text):
    path.write_text(text)
    return str(path)


def test_setup_cfg_order(tmp_path):
    dataset_cfg = write(tmp_path / "d.yaml", "DATASET:\n  NAME: TinyShapes\nOPTIM:\n  LR: 0.1\n  MAX_EPOCH: 7\n"
                                             "OUTPUT_DIR: from_dataset_yaml\nSEED: 3\n")
    method_cfg = write(tmp_path / "m.yaml", "OPTIM:\n  LR: 0.2\nTRAINER:\n  TINY:\n    HANG_AT_EPOCH: 9\n")
    parser = train.build_parser()

    args = parser.parse_args(["--transforms", "normalize", "--dataset-config-file", dataset_cfg,
                              "--config-file", method_cfg, "--output-dir", "from_flag", "--seed", "0",
                              "--trainer", "TinyTrainer", "OPTIM.MAX_EPOCH", "8"])
    cfg = train.setup_cfg(args)
    assert cfg.is_frozen()
    assert cfg.OPTIM.LR == 0.2  # method YAML after dataset YAML
    assert cfg.OPTIM.MAX_EPOCH == 8  # trailing opts last
    assert cfg.OUTPUT_DIR == "from_flag"  # flags after files
    assert cfg.SEED == 3  # --seed 0 is falsy: ignored, as upstream
    assert cfg.TRAINER.NAME == "TinyTrainer" and cfg.INPUT.TRANSFORMS == ["normalize"]
    assert cfg.TRAINER.TINY.HANG_AT_EPOCH == 9  # key added by the trainer's extend_cfg
    assert "FOLDER" in cfg.DATASET  # key added by the datasets package's extend_cfg

    args = parser.parse_args(["--dataset-config-file", dataset_cfg, "--output-dir", "from_flag",
                              "--seed", "-1", "OUTPUT_DIR", "from_opts"])
    cfg = train.setup_cfg(args)
    assert cfg.OUTPUT_DIR == "from_opts" and cfg.SEED == -1 and cfg.OPTIM.LR == 0.1


def test_extend_cfg_calls_each_hook_once():
    calls = []

    class HookParent:
        @staticmethod
        def extend_cfg(cfg):
            calls.append("parent")

    class HookChild(HookParent):
        pass

    TRAINER_REGISTRY.register(HookParent)
    TRAINER_REGISTRY.register(HookChild)
    try:
        train.extend_cfg(get_cfg_default())
    finally:
        for name in ("HookParent", "HookChild"):
            TRAINER_REGISTRY._obj_map.pop(name)
    assert calls == ["parent"]


@pytest.mark.parametrize("case, expected", [
    ("yaml_key", "error: {method}: Non-existent config key: OPTIM.LRR (did you mean OPTIM.LR?)"),
    ("cli_key", "error: Non-existent config key: OPTIM.LRR (did you mean OPTIM.LR?)"),
    ("type", "error: Type mismatch (<class 'int'> vs. <class 'str'>) with values (4 vs. four) for config key: OPTIM.MAX_EPOCH"),
    ("odd", "error: Config options must be KEY VALUE pairs, got an odd number: ['OPTIM.LR']"),
    ("missing_file", "error: config file not found: {tmp}/nope.yaml"),
    ("trainer", "error: The requested one is expected to belong to {trainers}, but got [TinyTrainr] "
                "(do you mean [TinyTrainer]?)"),
    ("dataset", "error: The requested one is expected to belong to {datasets}, but got [TinyShape] "
                "(do you mean [TinyShapes]?)"),
    ("dataset_folder", "error: TinyShapes dataset folder not found: {tmp}/tiny_shapes"),
])
def test_user_errors_are_one_line(case, expected, tiny, tmp_path, capsys):
    from dassl.data.datasets import DATASET_REGISTRY

    method = write(tmp_path / "typo.yaml", "OPTIM:\n  LRR: 0.1\n")
    args = tiny_args(tiny, tmp_path / "out")
    args = {
        "yaml_key": args[:7] + [method] + args[8:],
        "cli_key": args + ["OPTIM.LRR", "0.1"],
        "type": args + ["OPTIM.MAX_EPOCH", "four"],
        "odd": args + ["OPTIM.LR"],
        "missing_file": args[:7] + [str(tmp_path / "nope.yaml")] + args[8:],
        "trainer": args[:3] + ["TinyTrainr"] + args[4:],
        "dataset": args + ["DATASET.NAME", "TinyShape"],
        "dataset_folder": ["--root", str(tmp_path)] + args[2:],
    }[case]
    assert tiny_task.run_in_process(args) == 2
    err = capsys.readouterr().err
    assert err == expected.format(method=method, tmp=tmp_path, trainers=TRAINER_REGISTRY.registered_names(),
                                  datasets=DATASET_REGISTRY.registered_names()) + "\n"


def test_debug_env_and_bugs_keep_their_traceback(tiny, tmp_path, monkeypatch):
    args = tiny_args(tiny, tmp_path / "out", opts=("OPTIM.LRR", "0.1"))
    monkeypatch.setenv(train.DEBUG_ENV, "1")
    with pytest.raises(train.UserError, match="OPTIM.LRR"):
        tiny_task.run_in_process(args)
    monkeypatch.delenv(train.DEBUG_ENV)

    def broken(cfg):
        raise RuntimeError("a bug")

    monkeypatch.setattr(train, "build_trainer", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        tiny_task.run_in_process(tiny_args(tiny, tmp_path / "out2"))


class RngProbe(Exception):
    """Carries the RNG states seen when the trainer starts building its data."""


@TRAINER_REGISTRY.register()
class RngProbeTrainer(tiny_task.TinyTrainer):
    def build_data_loader(self):
        raise RngProbe(get_rng_states())


def test_nothing_draws_random_numbers_before_the_data_is_built(tiny, tmp_path):
    """Parity: few-shot sampling and model init must see the freshly seeded generators."""
    args = tiny_args(tiny, tmp_path / "probe")
    args[args.index("TinyTrainer")] = "RngProbeTrainer"
    with pytest.raises(RngProbe) as info:
        tiny_task.run_in_process(args, env_info=True)
    set_random_seed(1)
    expected, seen = get_rng_states(), info.value.args[0]
    assert seen["python"] == expected["python"] and seen["numpy"] == expected["numpy"]
    assert torch.equal(seen["torch"], expected["torch"])


def test_real_process_exit_code_and_single_stderr_line(tmp_path):
    """The real train.py (project trainers and datasets): a typo in an option ends cleanly."""
    result = subprocess.run(
        [sys.executable, "train.py", "--output-dir", str(tmp_path), "OPTIM.MAX_EPOCHS", "5"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 2
    assert result.stderr == "error: Non-existent config key: OPTIM.MAX_EPOCHS (did you mean OPTIM.MAX_EPOCH?)\n"
    assert result.stdout == ""
