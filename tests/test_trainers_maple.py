"""MaPLe, IVLP and VPT end to end through train.py on the tiny CLIP and the miniature OxfordPets.

Base-to-novel as the scripts run it: train on the base classes with the shipped config (a few
test-sized overrides), then `--eval-only --model-dir --load-epoch` on the novel classes.
"""
from __future__ import annotations

import os
import re
import sys

import pytest
import torch

import train
from dassl.engine import build_trainer
from dassl.utils import load_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 3
LOSS = re.compile(r"^epoch \[\d+/\d+\] batch \[\d+/\d+\] .* loss (\d+\.\d{4}) \(", re.M)
ACCURACY = re.compile(r"^\* accuracy: (\d+\.\d)%$", re.M)

# trainer: (config, registered name, test overrides: 2-block towers, an LR that moves a random CLIP)
TRAINERS = {
    "MaPLe": ("MaPLe/vit_b16_c2_ep5_batch4_2ctx", "MultiModalPromptLearner",
              ["TRAINER.MAPLE.PROMPT_DEPTH", "2", "OPTIM.LR", "0.1"]),
    "IVLP": ("IVLP/vit_b16_c2_ep5_batch4_2+2ctx", "VLPromptLearner",
             ["TRAINER.IVLP.PROMPT_DEPTH_TEXT", "2", "TRAINER.IVLP.PROMPT_DEPTH_VISION", "2", "OPTIM.LR", "0.1"]),
    "VPT": ("VPT/vit_b16_c2_ep5_batch4_4", "prompt_learner",
            ["TRAINER.VPT.PROMPT_DEPTH_VISION", "2", "OPTIM.LR", "1.0"]),
}
# Deterministic data: sequential order, no random augmentation.
DETERMINISTIC = ["DATALOADER.TRAIN_X.SAMPLER", "SequentialSampler",
                 "INPUT.TRANSFORMS", "['center_crop', 'normalize']"]


def args(trainer: str, root: str, backbone: str, out: str, *opts: str, flags: tuple[str, ...] = ()) -> list[str]:
    """train.py's command line for `trainer` on the miniature OxfordPets (2 shots); opts go last."""
    config = TRAINERS[trainer][0]
    return [
        "--root", root, "--seed", "1", "--trainer", trainer,
        "--dataset-config-file", os.path.join(REPO, "configs/datasets/oxford_pets.yaml"),
        "--config-file", os.path.join(REPO, f"configs/trainers/{config}.yaml"),
        "--output-dir", out, *flags,
        "MODEL.BACKBONE.NAME", backbone, "DATALOADER.NUM_WORKERS", "0", "TRAIN.PRINT_FREQ", "1",
        "DATASET.NUM_SHOTS", "2", *TRAINERS[trainer][2], *opts,
    ]


def run_train(argv: list[str]) -> str:
    """train.py in this process; returns the log it wrote."""
    stdout = sys.stdout
    try:
        assert train.cli(argv) == 0
    finally:
        if sys.stdout is not stdout:  # train.py tees stdout into the run's log.txt
            sys.stdout.close()
            sys.stdout = stdout
    with open(os.path.join(argv[argv.index("--output-dir") + 1], "log.txt")) as f:
        return f.read()


def losses(log: str) -> list[float]:
    return [float(v) for v in LOSS.findall(log)]


SMALL_BASE = ["INPUT.SIZE", "(64, 64)", "DATASET.SUBSAMPLE_CLASSES", "base"]  # for small_vit_path (conftest)


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_base_to_new(trainer, miniature_root, tiny_vit_path, tmp_path):
    name = TRAINERS[trainer][1]
    train_dir, test_dir = str(tmp_path / "train_base"), str(tmp_path / "test_new")
    # One batch of all 6 training images (2 shots x 3 base classes) per epoch: the logged loss is the
    # training loss before each update.
    log = run_train(args(trainer, miniature_root, tiny_vit_path, train_dir,
                         "DATASET.SUBSAMPLE_CLASSES", "base", "OPTIM.MAX_EPOCH", str(EPOCHS),
                         "DATALOADER.TRAIN_X.BATCH_SIZE", "6", *DETERMINISTIC))
    # Learns: the loss after two updates is clearly below the initial one (epoch 1 is the 1e-5 warmup).
    curve = losses(log)
    assert len(curve) == EPOCHS and curve[-1] < curve[0] - 0.05, curve
    assert "Finish training" in log and ACCURACY.search(log)
    if trainer != "VPT":  # the shipped PREC fp16 falls back once; VPT ignores PREC (fp32, as the reference)
        assert log.count("PREC=fp16 needs CUDA") == 1

    # Only the learned tensors are saved, under the reference's registered name and keys.
    path = os.path.join(train_dir, name, f"model.pth.tar-{EPOCHS}")
    saved = load_checkpoint(path)["state_dict"]
    assert os.path.getsize(path) < 5_000_000  # the frozen CLIP (~100 MB here) is not in it
    assert not any(k.startswith(("clip.", "image_encoder.conv1", "text_encoder.ln_final")) for k in saved)

    log = run_train(args(trainer, miniature_root, tiny_vit_path, test_dir, "DATASET.SUBSAMPLE_CLASSES", "new",
                         flags=("--eval-only", "--model-dir", train_dir, "--load-epoch", str(EPOCHS))))
    assert f'Loading weights to {name} from "{path}" (epoch = {EPOCHS})' in log
    assert "Note:" not in log  # nothing missing, nothing unknown
    assert ACCURACY.search(log)

    # --eval-only restores every learned tensor; the class buffers are those of the new classes.
    cfg = train.setup_cfg(train.build_parser().parse_args(
        args(trainer, miniature_root, tiny_vit_path, str(tmp_path / "check"), "DATASET.SUBSAMPLE_CLASSES", "new")))
    new = build_trainer(cfg)
    restored = new.model.prompts.state_dict()
    before = {k: v.clone() for k, v in restored.items()}
    new.load_model(train_dir, epoch=EPOCHS)
    restored = new.model.prompts.state_dict()
    learned = {k for k, _ in new.model.prompts.named_parameters()}
    assert learned and learned <= set(saved)
    for key in learned:
        assert torch.equal(restored[key], saved[key]), key
        assert not torch.equal(restored[key], before[key]), key  # training moved every prompt
    if trainer != "VPT":
        assert set(saved) == learned | {"prompt_learner.token_prefix", "prompt_learner.token_suffix"}
        suffix = restored["prompt_learner.token_suffix"]
        assert torch.equal(suffix, before["prompt_learner.token_suffix"])  # new classes, not the saved
        assert not torch.equal(suffix, saved["prompt_learner.token_suffix"])
    else:
        assert set(saved) == learned


@pytest.mark.parametrize("prec", ["fp32", "amp"])
def test_maple_fp32_and_amp_run_on_cpu(prec, miniature_root, small_vit_path, tmp_path):
    """The reference crashes with these; here every parameter is fp32 (amp: bf16 autocast on CPU)."""
    log = run_train(args("MaPLe", miniature_root, small_vit_path, str(tmp_path), *SMALL_BASE,
                         "DATASET.NUM_SHOTS", "1", "OPTIM.MAX_EPOCH", "1", "TRAINER.MAPLE.PREC", prec))
    assert len(losses(log)) == 1 and ACCURACY.search(log)
    assert "needs CUDA" not in log


def test_deterministic_when_asked(miniature_root, small_vit_path, tmp_path):
    """Sequential sampler, deterministic transforms, fixed seed: identical losses and prompts."""
    runs = []
    for i in range(2):
        out = str(tmp_path / f"run{i}")
        log = run_train(args("MaPLe", miniature_root, small_vit_path, out, *SMALL_BASE, *DETERMINISTIC,
                             "DATALOADER.TRAIN_X.BATCH_SIZE", "3", "OPTIM.MAX_EPOCH", "2", "TEST.NO_TEST", "True"))
        state = load_checkpoint(os.path.join(out, "MultiModalPromptLearner", "model.pth.tar-2"))["state_dict"]
        runs.append((losses(log), state))
    (losses_a, state_a), (losses_b, state_b) = runs
    assert len(losses_a) == 4 and losses_a == losses_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_language_only_ivlp_reuses_test_image_features(miniature_root, small_vit_path, tmp_path):
    """No image prompts: the test-time image features of the frozen tower come from the cache."""
    cache = ["TEST.IMAGE_FEATURE_CACHE_DIR", str(tmp_path / "cache")]
    language_only = ["TRAINER.IVLP.N_CTX_VISION", "0", "TRAINER.IVLP.PROMPT_DEPTH_VISION", "0"]
    train_dir = str(tmp_path / "train")
    log = run_train(args("IVLP", miniature_root, small_vit_path, train_dir, *SMALL_BASE, *cache, *language_only,
                         "DATASET.NUM_SHOTS", "1", "OPTIM.MAX_EPOCH", "1"))
    assert "Image feature cache: wrote" in log
    again = run_train(args("IVLP", miniature_root, small_vit_path, str(tmp_path / "test"), *SMALL_BASE, *cache,
                           *language_only, flags=("--eval-only", "--model-dir", train_dir, "--load-epoch", "1")))
    assert "Image feature cache: using" in again
    assert ACCURACY.findall(again) == ACCURACY.findall(log)


# Spec table of the shipped configs: (train batch, LR, epochs, trainer keys).
SHIPPED = {
    "MaPLe/vit_b16_c2_ep5_batch4_2ctx": (4, 0.0035, 5, {"MAPLE.N_CTX": 2, "MAPLE.PROMPT_DEPTH": 9}),
    "MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets": (4, 0.0026, 2, {"MAPLE.N_CTX": 2, "MAPLE.PROMPT_DEPTH": 3}),
    "IVLP/vit_b16_c2_ep5_batch4_2+2ctx": (4, 0.0035, 5, {
        "IVLP.N_CTX_VISION": 2, "IVLP.N_CTX_TEXT": 2, "IVLP.PROMPT_DEPTH_VISION": 12, "IVLP.PROMPT_DEPTH_TEXT": 12}),
    "IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only": (4, 0.0025, 5, {
        "IVLP.N_CTX_VISION": 0, "IVLP.N_CTX_TEXT": 4, "IVLP.PROMPT_DEPTH_VISION": 0, "IVLP.PROMPT_DEPTH_TEXT": 12}),
    "VPT/vit_b16_c2_ep5_batch4_4": (4, 0.0025, 5, {"VPT.N_CTX_VISION": 8, "VPT.PROMPT_DEPTH_VISION": 12}),
}


@pytest.mark.parametrize("config", list(SHIPPED))
def test_shipped_configs(config):
    batch, lr, epochs, keys = SHIPPED[config]
    cfg = train.setup_cfg(train.build_parser().parse_args(
        ["--config-file", os.path.join(REPO, f"configs/trainers/{config}.yaml")]))
    assert (cfg.DATALOADER.TRAIN_X.BATCH_SIZE, cfg.OPTIM.LR, cfg.OPTIM.MAX_EPOCH) == (batch, lr, epochs)
    assert (cfg.OPTIM.NAME, cfg.OPTIM.LR_SCHEDULER, cfg.OPTIM.WARMUP_EPOCH, cfg.OPTIM.WARMUP_TYPE,
            cfg.OPTIM.WARMUP_CONS_LR) == ("sgd", "cosine", 1, "constant", 1e-5)
    assert cfg.MODEL.BACKBONE.NAME == "ViT-B/16" and cfg.INPUT.INTERPOLATION == "bicubic"
    assert (cfg.DATALOADER.TEST.BATCH_SIZE, cfg.DATALOADER.NUM_WORKERS) == (100, 8)
    assert list(cfg.INPUT.TRANSFORMS) == ["random_resized_crop", "random_flip", "normalize"]
    node = cfg.TRAINER[config.split("/")[0].upper()]
    assert (node.CTX_INIT, node.PREC) == ("a photo of a", "fp16")
    for key, value in keys.items():
        assert cfg.TRAINER[key.split(".")[0]][key.split(".")[1]] == value, key


# The scripts call scripts/lib/run.sh: `base2new_train TRAINER CFG "$@"`, `xd_test TRAINER CFG LOADEP "$@"`, ...
SCRIPT_CALL = re.compile(r'^(?:base2new_train|base2new_test|xd_train|xd_test|reproduce|reproduce_xd) (.+) "\$@"$', re.M)


@pytest.mark.parametrize("folder", ["maple", "independent-vlp", "language-prompting", "vpt"])
def test_scripts_name_existing_configs_and_saved_epochs(folder):
    """Every script's config exists, and its test loads an epoch its training run saves."""
    scripts = sorted(os.listdir(os.path.join(REPO, "scripts", folder)))
    assert {s.split("_")[0] for s in scripts} == {"base2new", "xd", "reproduce"}
    for script in scripts:
        with open(os.path.join(REPO, "scripts", folder, script)) as f:
            text = f.read()
        (call,) = SCRIPT_CALL.findall(text)
        values = dict(zip(("TRAINER", "CFG", "LOADEP"), call.split()))
        assert 'source "$(dirname "$0")/../lib/run.sh"' in text  # which checks DATA (tests/test_scripts.py)
        path = os.path.join(REPO, "configs", "trainers", values["TRAINER"], values["CFG"] + ".yaml")
        assert os.path.isfile(path), script
        if "LOADEP" in values and not script.startswith("reproduce"):
            assert int(values["LOADEP"]) == SHIPPED[f"{values['TRAINER']}/{values['CFG']}"][2], script
