"""open_clip backbones (MODEL.BACKBONE.NAME open_clip:ARCH/PRETRAINED): randomly initialised
open_clip models saved to local files load through open_clip's own loader into our CLIP and give
open_clip's features; unsupported architectures and failed downloads are one line."""
from __future__ import annotations

import json

import open_clip
import pytest
import torch

import clip
import tiny_task
from clip.clip import ClipWeightsError
from clip.openclip_weights import UnsupportedOpenClipModel
from fixtures.trainer_fixtures import repo_path

TINY_CONFIGS = {  # registered with open_clip under these names; GELU and QuickGELU, ViT and ResNet
    "promptkit-test-ViT": {"embed_dim": 64, "vision_cfg": {"image_size": 32, "layers": 2, "width": 128, "patch_size": 16},
                           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2}},
    "promptkit-test-RN-quickgelu": {"embed_dim": 64, "quick_gelu": True,
                                    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16},
                                    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1,
                                                 "layers": 1}},
}


@pytest.fixture(scope="module")
def open_clip_files(tmp_path_factory):
    """{arch: (checkpoint path, the open_clip model saved there)}: random weights, all perturbed."""
    folder = tmp_path_factory.mktemp("open_clip")
    files = {}
    for arch, cfg in TINY_CONFIGS.items():
        (folder / f"{arch}.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(folder / f"{arch}.json")
        torch.manual_seed(0)
        model = open_clip.create_model(arch, device="cpu").eval()
        with torch.no_grad():
            for param in model.parameters():  # no zero biases or unit norms left
                param.add_(0.02 * torch.randn_like(param))
        path = folder / f"{arch}.pt"
        torch.save(model.state_dict(), path)
        files[arch] = (str(path), model)
    return files


@pytest.mark.parametrize("arch", list(TINY_CONFIGS))
def test_features_equal_open_clip(arch, open_clip_files):
    path, theirs = open_clip_files[arch]
    ours, preprocess = clip.load(f"open_clip:{arch}/{path}", device="cpu")
    assert ours.dtype == torch.float32 and not ours.training
    gelu = {type(m).__name__ for m in ours.modules() if type(m).__name__ in ("GELU", "QuickGELU")}
    assert gelu == ({"QuickGELU"} if "quickgelu" in arch else {"GELU"})
    size = TINY_CONFIGS[arch]["vision_cfg"]["image_size"]
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    text = clip.tokenize(["a photo of a dog.", "x", "a satellite photo of a river next to a forest"])
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(images), theirs.encode_image(images), atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.encode_text(text), theirs.encode_text(text), atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.logit_scale, theirs.logit_scale)
    assert ours.visual.input_resolution == size


def test_a_method_trains_on_an_open_clip_backbone(open_clip_files, coop_data_root, tmp_path):
    path, _ = open_clip_files["promptkit-test-ViT"]
    args = ["--root", coop_data_root, "--trainer", "CoOp", "--output-dir", str(tmp_path / "out"),
            "--backbone", f"open_clip:promptkit-test-ViT/{path}", "--seed", "1",
            "--dataset-config-file", repo_path("configs/datasets/eurosat.yaml"),
            "INPUT.SIZE", "(32, 32)", "DATASET.NUM_SHOTS", "1", "OPTIM.MAX_EPOCH", "1",
            "DATALOADER.NUM_WORKERS", "0", "TRAINER.COOP.N_CTX", "2"]
    assert tiny_task.run_in_process(args) == 0
    log = open(tmp_path / "out" / "log.txt").read()
    assert "Finish training" in log and "* accuracy:" in log


@pytest.mark.parametrize("name, message", [
    ("open_clip:convnext_base/laion400m_s13b_b51k", "convnext_base is not OpenAI's CLIP architecture "
                                                     "(vision_cfg.timm_model_name='convnext_base'"),
    ("open_clip:ViT-B-16-SigLIP/webli", "init_logit_bias=-10, custom_text=True"),
    ("open_clip:ViT-H-14/laion2b_s32b_b79k", "ViT-H-14 is not OpenAI's CLIP architecture (vision_cfg.head_width=80)"),
    ("open_clip:no-such-arch/x", "unknown open_clip architecture 'no-such-arch'"),
])
def test_unsupported_architectures_before_any_download(name, message, monkeypatch):
    monkeypatch.setattr(open_clip, "create_model", None)  # nothing may be built or fetched
    with pytest.raises(UnsupportedOpenClipModel) as info:
        clip.load(name, device="cpu")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_download_failure_and_bad_names_are_weights_errors(monkeypatch, tmp_path, coop_data_root, capsys):
    import open_clip.factory

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", offline)
    with pytest.raises(ClipWeightsError, match="open_clip:ViT-B-32/laion2b_s34b_b79k: open_clip could not load "
                                               "it: Failed to download weights for tag 'laion2b_s34b_b79k'"):
        clip.load("open_clip:ViT-B-32/laion2b_s34b_b79k", device="cpu")
    with pytest.raises(ClipWeightsError, match="expected open_clip:ARCH/PRETRAINED"):
        clip.load("open_clip:ViT-B-32", device="cpu")
    with pytest.raises(FileNotFoundError, match="'nope' is neither a pretrained tag of ViT-B-32 .*laion2b_s34b_b79k"):
        clip.load("open_clip:ViT-B-32/nope", device="cpu")
    args = ["--root", coop_data_root, "--trainer", "CoOp", "--output-dir", str(tmp_path / "out"),
            "--backbone", "open_clip:ViT-H-14/laion2b_s32b_b79k",
            "--dataset-config-file", repo_path("configs/datasets/eurosat.yaml"), "DATALOADER.NUM_WORKERS", "0"]
    assert tiny_task.run_in_process(args) == 2
    assert capsys.readouterr().err == ("error: ViT-H-14 is not OpenAI's CLIP architecture "
                                       "(vision_cfg.head_width=80)\n")
