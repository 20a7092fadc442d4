"""One-line errors (exit code 2, DASSL_DEBUG=1 keeps the traceback) at every entry point:
weights files, images, every trainer's build path, predict, parse_test_res, download_data."""
from __future__ import annotations

import importlib.util
import os
import sys
import urllib.error

import pytest
import torch

import tiny_task
from dassl.cli import DEBUG_ENV, UserError, one_line, one_line_errors
from fixtures.trainer_fixtures import REPO, repo_path

MISSING = "/no/such.pt"


def assert_one_line(capsys, code, *fragments):
    err = capsys.readouterr().err
    # Progress bars of an interrupted evaluation: what the terminal shows is after the last \r.
    err = "".join(line.split("\r")[-1] for line in err.splitlines(True) if "it/s]" not in line)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def train_args(out, root, backbone, trainer="CoOp", *opts):
    return ["--root", root, "--trainer", trainer, "--backbone", backbone, "--output-dir", str(out),
            "--dataset-config-file", repo_path("configs/datasets/eurosat.yaml"),
            "DATALOADER.NUM_WORKERS", "0", "OPTIM.MAX_EPOCH", "1", *opts]


def project_trainers():
    import trainers  # noqa: F401  registers them
    from dassl.engine import TRAINER_REGISTRY

    return sorted(name for name in TRAINER_REGISTRY.registered_names()
                  if TRAINER_REGISTRY.get(name).__module__.startswith("trainers."))


@pytest.mark.parametrize("trainer", project_trainers())
def test_missing_weights_file_in_every_trainer(trainer, coop_data_root, tmp_path, capsys):
    code = tiny_task.run_in_process(train_args(tmp_path / "out", coop_data_root, MISSING, trainer))
    assert_one_line(capsys, code, f"Model {MISSING} not found")


def test_truncated_and_foreign_weights_files(coop_data_root, tiny_vit_path, tmp_path, capsys):
    truncated = tmp_path / "truncated.pt"
    with open(tiny_vit_path, "rb") as f:
        truncated.write_bytes(f.read()[: os.path.getsize(tiny_vit_path) // 2])
    code = tiny_task.run_in_process(train_args(tmp_path / "a", coop_data_root, str(truncated)))
    assert_one_line(capsys, code, f"{truncated} is neither a TorchScript archive nor a state dict")

    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"ctx": torch.zeros(2)}}, foreign)
    code = tiny_task.run_in_process(train_args(tmp_path / "b", coop_data_root, str(foreign)))
    assert_one_line(capsys, code, f"{foreign} is not a CLIP checkpoint in OpenAI's format")


def test_truncated_trained_checkpoint(coop_data_root, tiny_vit_path, tmp_path, capsys):
    model_file = tmp_path / "model" / "prompt_learner" / "model.pth.tar-1"
    model_file.parent.mkdir(parents=True)
    model_file.write_bytes(b"PK\x03\x04 cut off")
    args = train_args(tmp_path / "out", coop_data_root, tiny_vit_path, "CoOp", "TRAINER.COOP.PREC", "fp32")
    flags = ["--eval-only", "--model-dir", str(tmp_path / "model"), "--load-epoch", "1"]
    code = tiny_task.run_in_process(flags + args)
    assert_one_line(capsys, code, f'Unable to load checkpoint from "{model_file}"')


def test_offline_openai_name(coop_data_root, tmp_path, monkeypatch, capsys):
    from clip import clip as clip_module

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(clip_module.urllib.request, "urlopen", offline)
    monkeypatch.setenv("CLIP_WEIGHTS_DIR", str(tmp_path / "weights"))
    code = tiny_task.run_in_process(train_args(tmp_path / "out", coop_data_root, "ViT-B/16"))
    assert_one_line(capsys, code, "ViT-B-16.pt is missing and could not be downloaded",
                    "network unreachable", str(tmp_path / "weights"))


def test_config_error_in_a_build_path_and_debug_traceback(coop_data_root, tiny_rn_path, tmp_path,
                                                         monkeypatch, capsys):
    args = train_args(tmp_path / "out", coop_data_root, tiny_rn_path, "VPT")
    assert_one_line(capsys, tiny_task.run_in_process(args), "VPT", "needs a ViT backbone")
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ValueError, match="needs a ViT backbone"):
        tiny_task.run_in_process(args)


@pytest.fixture
def corrupt_data_root(tmp_path):
    """A miniature EuroSAT whose every image is garbage (the split JSON still lists them)."""
    from datasets.miniature import make_miniature

    folder = make_miniature("EuroSAT", str(tmp_path / "data"), n_classes=2, n_per_class=4)
    for dirpath, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".jpg"):
                with open(os.path.join(dirpath, name), "wb") as f:
                    f.write(b"\xff\xd8\xff not really a jpeg")
    return str(tmp_path / "data")


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_image_in_a_dataset(workers, corrupt_data_root, tiny_vit_path, tmp_path, capsys):
    args = train_args(tmp_path / "out", corrupt_data_root, tiny_vit_path, "ZeroshotCLIP",
                      "DATALOADER.NUM_WORKERS", str(workers), "TEST.IMAGE_FEATURE_CACHE", "False")
    code = tiny_task.run_in_process(args[:4] + ["--eval-only"] + args[4:])
    err = assert_one_line(capsys, code, 'Cannot read image "', "of dataset EuroSAT", "UnidentifiedImageError")
    assert "Traceback" not in err and "DataLoader worker" not in err


def test_predict_errors(tiny_vit_path, tmp_path, capsys):
    from trainers import predict

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    base = ["--backbone", tiny_vit_path]
    assert_one_line(capsys, predict.cli(base + ["--classnames", "a,b", str(bad)]),
                    f'Cannot read image "{bad}"')
    assert_one_line(capsys, predict.cli(base + ["--classnames", "a,b", str(tmp_path / "nope.jpg")]),
                    "No image or folder at")
    assert_one_line(capsys, predict.cli(base + [str(bad)]), "give --classnames")
    assert_one_line(capsys, predict.cli(["--backbone", MISSING, "--classnames", "a,b", str(bad)]),
                    f"Model {MISSING} not found")
    assert_one_line(capsys, predict.cli(base + ["--classnames", "a,b", "--model-dir", str(tmp_path), str(bad)]),
                    "Model not found at")


def test_parse_test_res_debug_traceback(tmp_path, monkeypatch):
    import parse_test_res

    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(parse_test_res.ParseError, match="not a directory"):
        parse_test_res.main([str(tmp_path / "missing")])


def test_download_data_errors(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("download_data_cli", os.path.join(REPO, "scripts", "download_data.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
        assert_one_line(capsys, module.main(["--root", str(tmp_path), "nosuchset"]), "unknown dataset(s)")
        assert_one_line(capsys, module.main(["--root", str(tmp_path), "--imagenet-val-csv",
                                             str(tmp_path / "LOC_val_solution.csv")]), "LOC_val_solution.csv")
        # A damaged archive is a problem of that dataset (delete it and run again), not a traceback.
        archives = tmp_path / ".downloads"
        archives.mkdir()
        (archives / "EuroSAT.zip").write_bytes(b"PK not a zip")
        (archives / "split_zhou_EuroSAT.json").write_text("{}")
        assert module.main(["--root", str(tmp_path), "--offline", "eurosat"]) == 1
        out = capsys.readouterr().out
        assert "cannot extract EuroSAT.zip" in out and f"delete {archives / 'EuroSAT.zip'}" in out
    finally:
        sys.modules.pop(spec.name, None)


def test_one_line_wrapper(monkeypatch, capsys):
    @one_line_errors
    def main(kind):
        if kind == "user":
            raise UserError("first\n  second")
        if kind == "bug":
            raise KeyError("a bug")
        return None

    assert main("ok") == 0
    assert main("user") == 2 and capsys.readouterr().err == "error: first second\n"
    with pytest.raises(KeyError):
        main("bug")
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(UserError):
        main("user")


def test_worker_traceback_is_reduced_to_its_message():
    class WorkerError(UserError):
        pass

    message = ("Caught WorkerError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\n    raise WorkerError("boom")\n'
               f"{WorkerError.__module__}.WorkerError: Cannot read image \"a.jpg\": boom\n")
    assert one_line(WorkerError(message)) == 'Cannot read image "a.jpg": boom'
