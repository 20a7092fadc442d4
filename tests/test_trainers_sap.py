"""SAP and the zero-shot description baseline: formulas by hand, then end to end through train.py
(small ViT CLIP, miniature OxfordPets, descriptions written by the test)."""
from __future__ import annotations

import json
import os
import re
import sys

import pytest
import torch

import train
from dassl.engine import build_trainer
from dassl.utils import load_checkpoint, save_checkpoint
from fixtures.trainer_fixtures import repo_path, run_train
from trainers.sap import description_pooling
from trainers.zsclip import class_mean_weights

LOSS = re.compile(r"^epoch \[\d+/\d+\] batch \[\d+/\d+\] .* loss (\d+\.\d{4}) \(", re.M)
ACCURACY = re.compile(r"^\* accuracy: (\d+\.\d)%$", re.M)
GZS = re.compile(r"^\* base_accuracy: (\d+\.\d)%\n\* new_accuracy: (\d+\.\d)%\n\* hm: (\d+\.\d)%$", re.M)
CONFIG = "configs/trainers/SAP/vit_b16_c2_ep20_batch4_4+4ctx.yaml"
DETERMINISTIC = ("DATALOADER.TRAIN_X.SAMPLER", "SequentialSampler",
                 "INPUT.TRANSFORMS", "['center_crop', 'normalize']")
# The miniature OxfordPets classes (base: the first 3 of its 5; "bengal" is not used) with descriptions in the published style,
# including the template's quirky cases (a comma; a first word other than is/has).
PET_DESCRIPTIONS = {
    "abyssinian": ["is a short-haired cat", "has large, pointed ears", "has a ticked coat"],
    "american bulldog": ["is a muscular dog", "has a broad head"],
    "american pit bull terrier": ["has a short coat", "stands on strong legs", "is a medium-sized dog"],
    "basset hound": ["has long, drooping ears", "is a short-legged dog"],
    "beagle": ["is a small hound", "has a tricolor coat"],
    "bengal": ["has a spotted coat", "is a domestic cat", "hunts at night"],
}


def losses(log: str) -> list[float]:
    return [float(v) for v in LOSS.findall(log)]


@pytest.fixture(scope="module")
def pet_descriptions(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("descriptions") / "oxford_pets.json"
    path.write_text(json.dumps(PET_DESCRIPTIONS))
    return str(path)


def sap_flags(root: str, descriptions: str, trainer: str = "SAP") -> tuple[list[str], list[str]]:
    """(flags, opts) of a SAP run on the miniature OxfordPets with the small ViT (2-block prompts)."""
    flags = ["--seed", "1", "--trainer", trainer, "--dataset-config-file", repo_path("configs/datasets/oxford_pets.yaml"),
             "--config-file", repo_path(CONFIG)]
    opts = ["INPUT.SIZE", "(64, 64)", "TRAIN.PRINT_FREQ", "1", "DATASET.NUM_SHOTS", "2",
            "TRAINER.SAP.PROMPT_DEPTH_TEXT", "2", "TRAINER.SAP.PROMPT_DEPTH_VISION", "2",
            "DESCRIPTIONS.FILE", descriptions]
    return flags, opts


# --- formulas -------------------------------------------------------------------------------

def test_class_logit_is_the_mean_of_its_description_logits():
    owners = [0, 0, 1, 2, 2, 2]
    weights = class_mean_weights(owners, 3, torch.float32)
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=torch.float32)
    assert torch.equal(weights > 0, mask > 0)
    description_logits = torch.tensor([[1.0, 3.0, 5.0, 2.0, 4.0, 9.0], [0.0, -2.0, 1.0, 3.0, 3.0, 3.0]])
    expected = torch.tensor([[2.0, 5.0, 5.0], [-1.0, 1.0, 3.0]])
    assert torch.allclose(description_logits @ weights.t(), expected)
    # fp16 as the reference: the division is done in the model dtype.
    assert class_mean_weights(owners, 3, torch.float16).dtype == torch.float16


def test_description_pooling_matches_a_hand_computation():
    g = torch.tensor([[1.0, 0.5]])  # B = 1, D = 2
    patches = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # N = 3
    attributes = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # P = 2
    fused = description_pooling(g, patches, attributes)

    def softmax(values):
        exps = [pow(2.718281828459045, v) for v in values]
        return [e / sum(exps) for e in exps]

    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    gl, pl, al = g[0].tolist(), patches[0].tolist(), attributes.tolist()
    relevance = softmax([dot(gl, a) for a in al])
    attention = [softmax([dot(a, p) for p in pl]) for a in al]
    local = [[sum(s * p[d] for s, p in zip(row, pl)) for d in range(2)] for row in attention]
    weight = sum(r * max(row) for r, row in zip(relevance, attention))
    pooled = [sum(r * f[d] for r, f in zip(relevance, local)) for d in range(2)]
    expected = [(1 - weight) * gl[d] + weight * pooled[d] for d in range(2)]
    assert torch.allclose(fused, torch.tensor([expected]), atol=1e-6)



def test_gzs_splits_accuracy_into_base_and_new(capsys):
    """5 classes: base = labels 0..2 (ceil(5/2)), new = 3..4; 2 of 3 base and 1 of 2 new images right."""
    from dassl.config import get_cfg_default
    from trainers.gzs import GZSClassification

    evaluator = GZSClassification(get_cfg_default(), lab2cname={i: f"c{i}" for i in range(5)})
    labels = torch.tensor([0, 2, 1, 3, 4])
    predicted = torch.tensor([0, 2, 4, 3, 0])
    evaluator.process(torch.nn.functional.one_hot(predicted, 5).float(), labels)
    results = evaluator.evaluate()
    base, new = 200 / 3, 50.0
    assert results["base_accuracy"] == pytest.approx(base) and results["new_accuracy"] == pytest.approx(new)
    assert results["hm"] == pytest.approx(2 * base * new / (base + new))
    assert GZS.search(capsys.readouterr().out).groups() == ("66.7", "50.0", "57.1")

# --- end to end -------------------------------------------------------------------------------

def test_sap_base_to_new_and_gzs(miniature_root, small_vit_path, pet_descriptions, tmp_path):
    flags, opts = sap_flags(miniature_root, pet_descriptions)
    train_dir = str(tmp_path / "train_base")
    log = run_train(train_dir, *flags, opts=[*opts, "DATASET.SUBSAMPLE_CLASSES", "base", "OPTIM.MAX_EPOCH", "2"],
                    root=miniature_root, backbone=small_vit_path)
    assert "Descriptions: 8 for 3 classes" in log  # the base classes' descriptions only (3 + 2 + 3)
    assert log.count("PREC=fp16 needs CUDA") == 1 and ACCURACY.search(log)
    assert len(losses(log)) == 2

    # The reference's parameter names under its registered name; no frozen CLIP, no class buffers
    # other than the prompt's token prefix and suffix.
    path = os.path.join(train_dir, "VLPromptLearner", "model.pth.tar-2")
    saved = load_checkpoint(path)["state_dict"]
    assert set(saved) == {
        "prompt_learner.ctx", "prompt_learner.token_prefix", "prompt_learner.token_suffix", "mybias",
        "image_encoder.VPT", "image_encoder.transformer.resblocks.1.VPT_shallow",
        "text_encoder.transformer.resblocks.1.VPT_shallow"}
    assert saved["prompt_learner.ctx"].shape == (4, 128) and saved["mybias"].shape == (64,)
    assert saved["prompt_learner.token_suffix"].shape[0] == 8

    test_flags = ["--eval-only", "--model-dir", train_dir, "--load-epoch", "2"]
    log = run_train(str(tmp_path / "test_new"), *flags, *test_flags,
                    opts=[*opts, "DATASET.SUBSAMPLE_CLASSES", "new"], root=miniature_root, backbone=small_vit_path)
    assert "Descriptions: 4 for 2 classes" in log  # the new classes' (2 + 2)
    assert f'Loading weights to VLPromptLearner from "{path}"' in log and "Note:" not in log
    assert ACCURACY.search(log)

    # GZS: the base-trained model over all 5 classes, accuracy split into base / new / HM.
    log = run_train(str(tmp_path / "test_all"), *flags, *test_flags,
                    opts=[*opts, "DATASET.SUBSAMPLE_CLASSES", "all", "TEST.EVALUATOR", "GZSClassification"],
                    root=miniature_root, backbone=small_vit_path)
    assert "Descriptions: 12 for 5 classes" in log
    (base, new, hm), = [tuple(map(float, m)) for m in GZS.findall(log)]
    assert hm == pytest.approx(0 if base + new == 0 else 2 * base * new / (base + new), abs=0.06)

    # A checkpoint of the reference (the whole model, its teacher image tower too) loads.
    cfg = train.setup_cfg(train.build_parser().parse_args(
        [*flags, "--root", miniature_root, "MODEL.BACKBONE.NAME", small_vit_path, "DATALOADER.NUM_WORKERS", "0",
         *opts, "DATASET.SUBSAMPLE_CLASSES", "new"]))
    trainer = build_trainer(cfg)
    reference = dict(saved)
    visual = trainer.model.clip.visual.state_dict()
    reference.update({f"base_image_encoder.{k}": v for k, v in visual.items()})
    reference.update({f"image_encoder.{k}": v for k, v in visual.items()})
    reference_dir = tmp_path / "reference"
    save_checkpoint({"state_dict": reference, "epoch": 20}, str(reference_dir / "VLPromptLearner"),
                    model_name="model.pth.tar-20")
    trainer.load_model(str(reference_dir), epoch=20)
    assert torch.equal(trainer.model.prompts.mybias, saved["mybias"])


def test_sap_learns_and_is_deterministic(miniature_root, small_vit_path, pet_descriptions, tmp_path):
    """Deterministic data and seed: the same per-iteration losses twice, and they decrease."""
    flags, opts = sap_flags(miniature_root, pet_descriptions)
    runs = []
    for i in range(2):
        log = run_train(str(tmp_path / f"run{i}"), *flags,
                        opts=[*opts, *DETERMINISTIC, "DATASET.SUBSAMPLE_CLASSES", "base", "OPTIM.MAX_EPOCH", "4",
                              "OPTIM.LR", "0.002", "DATALOADER.TRAIN_X.BATCH_SIZE", "6", "TEST.NO_TEST", "True"],
                        root=miniature_root, backbone=small_vit_path)
        runs.append(losses(log))
    assert len(runs[0]) == 4 and runs[0] == runs[1]
    assert runs[0][-1] < runs[0][0] - 0.05, runs[0]


def test_sap_amp_on_cpu_and_features_computed_once(miniature_root, small_vit_path, pet_descriptions, tmp_path,
                                                   monkeypatch):
    """PREC amp (bf16 autocast on CPU) trains; at test time the prompted description features are
    encoded once per evaluation (not per batch), through the shared-prefix text path."""
    import clip.encode
    import trainers.base

    calls = {"encode": 0, "shared": 0}
    encode, shared = trainers.base.encode_text, clip.encode._encode_shared

    def counted_encode(*args, **kwargs):
        calls["encode"] += 1
        return encode(*args, **kwargs)

    def counted_shared(*args, **kwargs):
        calls["shared"] += 1
        return shared(*args, **kwargs)

    monkeypatch.setattr(trainers.base, "encode_text", counted_encode)
    monkeypatch.setattr(clip.encode, "_encode_shared", counted_shared)
    flags, opts = sap_flags(miniature_root, pet_descriptions)
    log = run_train(str(tmp_path / "amp"), *flags,
                    opts=[*opts, "DATASET.SUBSAMPLE_CLASSES", "base", "OPTIM.MAX_EPOCH", "1",
                          "DATASET.NUM_SHOTS", "1", "TRAINER.SAP.PREC", "amp", "DATALOADER.TEST.BATCH_SIZE", "2"],
                    root=miniature_root, backbone=small_vit_path)
    assert "needs CUDA" not in log and len(losses(log)) == 1
    # 1 training step (batch 3 > 3 images: one batch) + 1 evaluation of 3 test batches.
    assert ACCURACY.search(log) and calls["encode"] == 2
    assert calls["shared"] >= 2  # the frozen features' and every prompted call


def test_missing_class_is_one_error_line(miniature_root, small_vit_path, tmp_path, capsys):
    path = tmp_path / "pets.json"
    path.write_text(json.dumps({k: v for k, v in PET_DESCRIPTIONS.items() if k != "beagle"}))
    flags, opts = sap_flags(miniature_root, str(path))
    stdout = sys.stdout
    try:
        code = train.cli([*flags, "--root", miniature_root, "--output-dir", str(tmp_path / "out"),
                          "MODEL.BACKBONE.NAME", small_vit_path, "DATALOADER.NUM_WORKERS", "0", *opts])
    finally:
        if sys.stdout is not stdout:  # train.py tees stdout into the run's log.txt
            sys.stdout.close()
            sys.stdout = stdout
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f'error: class "beagle" has no entry in the description file {path}']


def test_zero_shot_with_descriptions(miniature_root, small_vit_path, pet_descriptions, tmp_path):
    flags, opts = sap_flags(miniature_root, pet_descriptions, trainer="ZeroshotCLIPDescriptions")
    log = run_train(str(tmp_path / "zs"), *flags, "--eval-only",
                    opts=[*opts, "DATASET.SUBSAMPLE_CLASSES", "new", "TEST.IMAGE_FEATURE_CACHE", "False"],
                    root=miniature_root, backbone=small_vit_path)
    assert "Descriptions: 4 for 2 classes" in log and ACCURACY.search(log)


def test_shipped_configs():
    expected = {  # file: (epochs, N_CTX text/vision, depth text/vision)
        "vit_b16_c2_ep20_batch4_4+4ctx": (20, 4, 9), "vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets": (20, 4, 3),
        "vit_b16_c2_ep50_batch4_4+4ctx_few_shot": (50, 4, 9), "vit_b16_c2_ep5_batch4_4+4ctx": (5, 2, 9),
        "dg_depth3": (20, 4, 3),
    }
    assert {f[:-5] for f in os.listdir(repo_path("configs/trainers/SAP"))} == set(expected)
    for name, (epochs, n_ctx, depth) in expected.items():
        cfg = train.setup_cfg(train.build_parser().parse_args(
            ["--config-file", repo_path(f"configs/trainers/SAP/{name}.yaml")]))
        sap = cfg.TRAINER.SAP
        assert (cfg.OPTIM.MAX_EPOCH, cfg.OPTIM.LR, cfg.DATALOADER.TRAIN_X.BATCH_SIZE) == (epochs, 0.0025, 4)
        assert (sap.N_CTX_TEXT, sap.N_CTX_VISION, sap.PROMPT_DEPTH_TEXT, sap.PROMPT_DEPTH_VISION) == (
            n_ctx, n_ctx, depth, depth)
        assert (sap.PREC, sap.CTX_INIT, sap.TEXT_LOSS_WEIGHT, sap.IMAGE_LOSS_WEIGHT) == ("fp16", "a photo of a", 25, 10)


# --- scripts -----------------------------------------------------------------------------------

SAP_CFG = "vit_b16_c2_ep20_batch4_4+4ctx"


def test_scripts(tmp_path):
    """GPU DATASET SEED [SUB]: the train.py command lines, output folders, CUDA_VISIBLE_DEVICES;
    GZS as SUB=all; cross-dataset training and testing use the same folder and config."""
    from test_scripts import Repo, cmd

    repo = Repo(tmp_path)
    data = os.path.join(repo.root, "data")
    b2n = f"caltech101/shots_16/SAP/{SAP_CFG}/seed1"
    train_dir = f"output/base2new/train_base/{b2n}"
    gpu_stub = str(tmp_path / "gpu_python")
    with open(gpu_stub, "w") as f:
        f.write("#!/bin/bash\necho \"GPU=$CUDA_VISIBLE_DEVICES\"\nexec " + repo.stub + " \"$@\"\n")
    os.chmod(gpu_stub, 0o755)

    run = repo.run("sap/base2new_train.sh", "3", "caltech101", "1", env={"PYTHON": gpu_stub})
    assert run.rc == 0 and "GPU=3" in run.messages
    assert run.calls == [cmd(data, 1, "SAP", "caltech101", SAP_CFG, train_dir, "DATASET.NUM_SHOTS", "16",
                             "DATASET.SUBSAMPLE_CLASSES", "base")]
    run = repo.run("sap/base2new_test.sh", "0", "caltech101", "1")
    assert run.calls == [cmd(data, 1, "SAP", "caltech101", SAP_CFG, f"output/base2new/test_new/{b2n}",
                             "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "new", model=train_dir, epoch=20)]
    run = repo.run("sap/base2new_test.sh", "0", "caltech101", "1", "all")
    assert run.calls == [cmd(data, 1, "SAP", "caltech101", SAP_CFG, f"output/base2new/test_all/{b2n}",
                             "DATASET.NUM_SHOTS", "16", "DATASET.SUBSAMPLE_CLASSES", "all",
                             "TEST.EVALUATOR", "GZSClassification", model=train_dir, epoch=20)]
    xcfg = f"{SAP_CFG}_cross_datasets"
    model = f"output/imagenet/SAP/{xcfg}_16shots/seed1"
    run = repo.run("sap/xd_train.sh", "0", "imagenet", "1")
    assert run.calls == [cmd(data, 1, "SAP", "imagenet", xcfg, model, "DATASET.NUM_SHOTS", "16")]
    run = repo.run("sap/xd_test.sh", "0", "imagenet_sketch", "1")
    assert run.calls == [cmd(data, 1, "SAP", "imagenet_sketch", xcfg,
                             f"output/evaluation/SAP/{xcfg}_16shots/imagenet_sketch/seed1", model=model, epoch=20)]
    run = repo.run("sap/base2new_train.sh")
    assert run.rc == 1 and run.calls == [] and run.stderr.endswith(
        ": 1: usage: scripts/sap/base2new_train.sh GPU DATASET SEED\n")
    for script in os.listdir(repo_path("scripts/sap")):
        with open(repo_path(f"scripts/sap/{script}")) as f:
            config = re.search(r"^\w+ SAP (\S+)", f.read(), re.M).group(1)
        assert os.path.isfile(repo_path(f"configs/trainers/SAP/{config}.yaml")), script
