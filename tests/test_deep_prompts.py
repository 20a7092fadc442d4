"""MaPLe, IVLP and VPT models: where each prompt goes, shapes, counts, dtypes, checkpoint keys."""
from __future__ import annotations

import contextlib
from typing import Iterator

import pytest
import torch
from torch import Tensor, nn

import clip
import train
from clip.encode import encode_text
from clip.model import CLIP, convert_weights
from dassl.config import get_cfg_default
from trainers import base
from trainers.base import load_registered_state
from trainers.common import freeze_except
from trainers.deep_prompts import reference_clip_keys
from trainers.ivlp import IVLP
from trainers.maple import MaPLe
from trainers.vpt import VPT, VisionPrompts

DEPTH = 3  # the tiny towers below have 3 blocks: deep prompts at blocks 1 and 2


def make_cfg(*opts):
    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    cfg.merge_from_list(list(opts))
    return cfg


CFGS = {
    "MaPLe": (MaPLe, ("TRAINER.MAPLE.PROMPT_DEPTH", DEPTH)),
    "IVLP": (IVLP, ("TRAINER.IVLP.PROMPT_DEPTH_TEXT", DEPTH, "TRAINER.IVLP.PROMPT_DEPTH_VISION", DEPTH,
                    "TRAINER.IVLP.N_CTX_VISION", 3)),
    "IVLP-language": (IVLP, ("TRAINER.IVLP.PROMPT_DEPTH_TEXT", DEPTH, "TRAINER.IVLP.PROMPT_DEPTH_VISION", 0,
                             "TRAINER.IVLP.N_CTX_VISION", 0, "TRAINER.IVLP.N_CTX_TEXT", 4)),
    "VPT": (VPT, ("TRAINER.VPT.PROMPT_DEPTH_VISION", DEPTH, "TRAINER.VPT.N_CTX_VISION", 3)),
}


TEXT_WIDTH, VISION_WIDTH, RES = 128, 192, 64  # neither the reference's 512 nor its 768


def small_clip(layers: int = DEPTH) -> CLIP:
    """A cheap fp32 ViT CLIP: 64x64 images in 16 patches, `layers` blocks per tower."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = CLIP(64, RES, layers, VISION_WIDTH, 16, 77, 49408, TEXT_WIDTH, 2, layers)
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def clip3() -> CLIP:
    return small_clip()


def images(n: int = 1) -> Tensor:
    return torch.randn(n, 3, RES, RES, generator=torch.Generator().manual_seed(n))


def build(name: str, clip_model: CLIP, classnames=("dog",), *extra) -> nn.Module:
    trainer, opts = CFGS[name]
    model = trainer.build_custom_clip(make_cfg(*opts, *extra), list(classnames), clip_model)
    freeze_except(model, trainer.trainable_keys)
    return model


@contextlib.contextmanager
def block_inputs(blocks: nn.Sequential) -> Iterator[list[Tensor]]:
    """The input of every block (captured at its ln_1, which both encoders call on all tokens)."""
    seen: list[Tensor] = []
    handles = [b.ln_1.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
               for b in blocks]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def run_towers(model: nn.Module, image: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Block inputs: text (one class: rows = positions 0..EOT) and vision ((L, width) of image 0)."""
    text: list[Tensor] = []
    prompt = model.prompts.text_prompt()
    if prompt is not None:
        with block_inputs(model.clip.transformer.resblocks) as text:
            encode_text(model.clip, prompt)
    with block_inputs(model.clip.visual.transformer.resblocks) as vision:
        model.encode_image(image)
    return text, [v[0] for v in vision]


def changed_positions(before: Tensor, after: Tensor) -> list[int]:
    return (before != after).any(dim=-1).nonzero().flatten().tolist()


def learned(model: nn.Module) -> dict[str, nn.Parameter]:
    return dict(model.prompts.named_parameters())


# Which block inputs each learned tensor reaches first: (tower, block, positions). "last" = the last
# n tokens of the image sequence, "ctx" = positions 1..n of the text.
def first_effects(name: str, key: str, n_blocks: int) -> list[tuple[str, int]]:
    if key == "prompt_learner.ctx":
        return [("text", 0)] + ([("vision", 0)] if name == "MaPLe" else [])
    if key.startswith("prompt_learner.proj."):
        return [("vision", 0)]
    if key.startswith("prompt_learner.compound_prompts_text."):
        k = int(key.split(".")[2])
        return [("text", k + 1), ("vision", k + 1)]
    if key.startswith("prompt_learner.compound_prompt_projections."):
        return [("vision", int(key.split(".")[2]) + 1)]
    if key == "image_encoder.VPT":
        return [("vision", 0)]
    block = int(key.split(".")[3])  # <tower>.transformer.resblocks.<i>.VPT_shallow
    return [("text" if key.startswith("text_encoder") else "vision", block)]


@pytest.mark.parametrize("name", list(CFGS))
def test_each_prompt_replaces_exactly_its_tokens(name, clip3):
    """Perturbing one learned tensor changes no block input before its block, and at its block
    exactly positions 1..n of the text or the last n image tokens; there they equal the prompt."""
    model = build(name, clip3)
    image = images()
    base_text, base_vision = run_towers(model, image)
    n_patches = clip3.visual.positional_embedding.shape[0]
    for key, param in learned(model).items():
        effects = first_effects(name, key, DEPTH)
        saved = param.detach().clone()
        with torch.no_grad():
            param.add_(1.0)
        text, vision = run_towers(model, image)
        with torch.no_grad():
            param.copy_(saved)
        for tower, before, after in (("text", base_text, text), ("vision", base_vision, vision)):
            hit = [block for t, block in effects if t == tower]
            first = hit[0] if hit else len(before)
            for block in range(first):
                assert torch.equal(before[block], after[block]), (key, tower, block)
            if not hit:
                continue
            length = before[first].shape[0]
            n = (length - n_patches) if tower == "vision" else model.prompts.prompt_learner.n_ctx
            expected = list(range(length - n, length)) if tower == "vision" else list(range(1, 1 + n))
            assert changed_positions(before[first], after[first]) == expected, (key, tower, first)


def test_deep_prompt_values_are_what_the_blocks_receive(clip3):
    """MaPLe: text block i gets P^i at 1..n; image block i gets F_i(P^i) as its last n tokens."""
    model = build("MaPLe", clip3)
    learner = model.prompts.prompt_learner
    text, vision = run_towers(model, images())
    prompt = learner.vision_prompt()
    for i in range(1, DEPTH):
        assert torch.equal(text[i][1:1 + learner.n_ctx], learner.compound_prompts_text[i - 1].detach())
        assert torch.equal(vision[i][-learner.n_ctx:], prompt.deep[i - 1].detach())
    # Block 0: ctx (+ positional embedding) at 1..n; ln_pre(proj(ctx)) at the end of the image tokens.
    pos = clip3.positional_embedding[1:1 + learner.n_ctx]
    assert torch.allclose(text[0][1:1 + learner.n_ctx], learner.ctx.detach() + pos)
    assert torch.allclose(vision[0][-learner.n_ctx:], clip3.visual.ln_pre(prompt.shallow.detach()), atol=1e-6)


def test_maple_coupling_shapes_and_identical_deep_projections(clip3):
    learner = build("MaPLe", clip3).prompts.prompt_learner
    t_width, v_width = clip3.ln_final.weight.shape[0], clip3.visual.conv1.weight.shape[0]
    assert (t_width, v_width) == (TEXT_WIDTH, VISION_WIDTH)
    assert learner.ctx.shape == (2, t_width)
    assert learner.proj.weight.shape == (v_width, t_width)
    assert [p.shape for p in learner.compound_prompts_text] == [(2, t_width)] * (DEPTH - 1)
    projections = learner.compound_prompt_projections
    assert len(projections) == DEPTH - 1
    for layer in projections:
        assert layer.weight.shape == (v_width, t_width)
        assert torch.equal(layer.weight, projections[0].weight) and torch.equal(layer.bias, projections[0].bias)
    assert len({id(layer.weight) for layer in projections}) == DEPTH - 1  # copies, not one shared layer
    assert not torch.equal(learner.proj.weight, projections[0].weight)
    prompt = learner.vision_prompt()
    assert prompt.shallow.shape == (2, v_width)
    assert [d.shape for d in prompt.deep] == [(2, v_width)] * (DEPTH - 1)


def test_maple_ctx_quirk_token_layout(clip3):
    """CTX_INIT "a photo of a" with N_CTX 2: [SOS, c1, c2, of, a, name, ., EOT]."""
    learner = build("MaPLe", clip3, ("dog",)).prompts.prompt_learner
    ids = clip.tokenize("a photo of a dog.")[0]
    assert torch.equal(learner.tokenized_prompts[0], ids)
    assert int(learner.eot[0]) == 7
    emb = learner.text_prompt().embeddings[0]
    words = clip3.token_embedding(ids)
    assert emb.shape[0] == 8  # cut after the EOT
    assert torch.equal(emb[0], words[0])  # SOS
    assert torch.equal(emb[1:3], learner.ctx.detach())  # learned, initialised from "a photo"
    assert torch.equal(learner.ctx.detach(), words[1:3])
    assert torch.equal(emb[3:8], words[3:8])  # "of a dog . EOT" stay fixed
    # More than 4 tokens: random context, "X" placeholders.
    random_learner = build("MaPLe", clip3, ("dog",), "TRAINER.MAPLE.N_CTX", 5).prompts.prompt_learner
    assert random_learner.prompt_texts == ["X X X X X dog."]
    assert random_learner.ctx.std().item() == pytest.approx(0.02, rel=0.3)


DEEP_KEYS = ("prompt_learner", "VPT")  # the reference trains parameters whose name holds one of them
# ViT-B/16 shapes: CLIP(embed, res, vision layers, vision width, patch, ctx len, vocab, text width,
# text heads, text layers), built on the meta device (no memory, no init cost).
VIT_B16 = (512, 224, 12, 768, 16, 77, 49408, 512, 8, 12)
COUNTS = {
    "MaPLe": ((), 3_555_072),
    "IVLP 2+2": (("TRAINER.IVLP.PROMPT_DEPTH_TEXT", 12, "TRAINER.IVLP.PROMPT_DEPTH_VISION", 12), 30_720),
    "IVLP language only": (("TRAINER.IVLP.N_CTX_VISION", 0, "TRAINER.IVLP.N_CTX_TEXT", 4,
                            "TRAINER.IVLP.PROMPT_DEPTH_VISION", 0, "TRAINER.IVLP.PROMPT_DEPTH_TEXT", 12), 24_576),
    "VPT 8x12": (("TRAINER.VPT.N_CTX_VISION", 8, "TRAINER.VPT.PROMPT_DEPTH_VISION", 12), 73_728),
}


@pytest.mark.parametrize("name", list(COUNTS))
def test_parameter_counts_for_vit_b16(name):
    with torch.device("meta"):
        big = CLIP(*VIT_B16)
    opts, expected = COUNTS[name]
    cfg = make_cfg(*opts)
    if name.startswith("VPT"):  # its fixed classifier needs real text features: count the prompts
        module = VisionPrompts(cfg, big)
    else:
        trainer = MaPLe if name == "MaPLe" else IVLP
        module = trainer.build_custom_clip(cfg, ["dog", "cat"], big).prompts
    params = dict(module.named_parameters())
    assert all(any(k in key for k in DEEP_KEYS) for key in params)  # the reference's trainable rule
    assert sum(p.numel() for p in params.values()) == expected


def test_reference_parameter_names(clip3):
    names = {n: set(dict(build(n, clip3).prompts.named_parameters())) for n in ("MaPLe", "IVLP", "VPT")}
    assert names["MaPLe"] == {
        "prompt_learner.ctx", "prompt_learner.proj.weight", "prompt_learner.proj.bias",
        "prompt_learner.compound_prompts_text.0", "prompt_learner.compound_prompts_text.1",
        "prompt_learner.compound_prompt_projections.0.weight", "prompt_learner.compound_prompt_projections.0.bias",
        "prompt_learner.compound_prompt_projections.1.weight", "prompt_learner.compound_prompt_projections.1.bias",
    }
    deep = {f"{tower}.transformer.resblocks.{i}.VPT_shallow" for tower in ("text_encoder", "image_encoder")
            for i in (1, 2)}
    assert names["IVLP"] == {"prompt_learner.ctx", "image_encoder.VPT"} | deep
    assert names["VPT"] == {"image_encoder.VPT"} | {k for k in deep if k.startswith("image")}
    model = build("MaPLe", clip3)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"prompts." + n for n in names["MaPLe"]}  # all of CLIP is frozen


def test_fp16_model_matches_the_reference_dtypes():
    """PREC fp16: ctx and proj fp16, deep prompts and projections fp32, prompts cast in the blocks."""
    model16 = small_clip(layers=2)
    convert_weights(model16)
    model = build("MaPLe", model16, ("dog", "cat"), "TRAINER.MAPLE.PROMPT_DEPTH", 2)
    learner = model.prompts.prompt_learner
    assert learner.ctx.dtype == learner.proj.weight.dtype == torch.float16
    assert learner.compound_prompts_text[0].dtype == torch.float32
    assert learner.compound_prompt_projections[0].weight.dtype == torch.float32
    logits = model(images())
    assert logits.dtype == torch.float16 and torch.isfinite(logits).all()
    logits.float().sum().backward()
    assert learner.ctx.grad.dtype == learner.proj.weight.grad.dtype == torch.float16
    assert learner.compound_prompt_projections[0].weight.grad.dtype == torch.float32
    ivlp = build("IVLP", model16, ("dog",), "TRAINER.IVLP.PROMPT_DEPTH_TEXT", 2, "TRAINER.IVLP.PROMPT_DEPTH_VISION", 2)
    assert ivlp.prompts.prompt_learner.ctx.dtype == torch.float16
    assert ivlp.prompts.image_encoder.VPT.dtype == torch.float32


@pytest.mark.parametrize("rounding", [True, False])
def test_vpt_rounds_prompts_to_fp16_unless_turned_off(rounding, clip3):
    model = build("VPT", clip3, ("dog",), "TRAINER.VPT.ROUND_PROMPTS_TO_FP16", rounding)
    tokens = model.prompts.image_encoder.VPT
    with torch.no_grad():
        tokens.add_(1e-4 * torch.rand_like(tokens))  # values fp16 cannot hold exactly
    used = model.prompts.vision_prompt().shallow
    assert used.dtype == torch.float32
    assert torch.equal(used, tokens.half().float()) == rounding
    assert torch.equal(used, tokens) != rounding


def test_vpt_classifier_is_fixed_and_not_saved(clip3):
    model = build("VPT", clip3, ("golden_retriever", "cat"))
    expected = clip3.encode_text(clip.tokenize(["a photo of a golden retriever.", "a photo of a cat."]))
    assert torch.allclose(model.text_features(), expected / expected.norm(dim=-1, keepdim=True))
    assert set(model.prompts.state_dict()) == {"image_encoder.VPT", "image_encoder.transformer.resblocks.1.VPT_shallow",
                                                "image_encoder.transformer.resblocks.2.VPT_shallow"}


def test_language_only_ivlp_leaves_the_image_tower_alone(clip3):
    """Its test-time image features are CLIP's: the trainer may take them from the feature cache."""
    model = build("IVLP-language", clip3)
    assert model.prompts.vision_prompt() is None and model.frozen_image_encoder
    image = images(2)
    assert torch.equal(model.encode_image(image), clip3.encode_image(image))
    assert torch.equal(model(image), model.forward_features(clip3.encode_image(image)))
    assert not any(build(name, clip3).frozen_image_encoder for name in ("MaPLe", "IVLP", "VPT"))


def test_text_features_are_computed_once_per_evaluation(clip3, monkeypatch):
    model = build("MaPLe", clip3, ("dog", "cat"))
    calls = []
    real = base.encode_text
    monkeypatch.setattr(base, "encode_text", lambda *a, **k: calls.append(1) or real(*a, **k))
    image = images()
    model.eval()
    with torch.no_grad():
        first, second = model(image), model(image)
    assert len(calls) == 1 and torch.equal(first, second)
    with torch.no_grad():
        model.prompts.prompt_learner.compound_prompts_text[0].add_(1.0)  # an update invalidates it
        model(image)
    assert len(calls) == 2
    model.train()
    model(image)
    model(image)
    assert len(calls) == 4


def test_reference_checkpoints_load(clip3, tmp_path, capsys):
    """A checkpoint of the reference's whole CustomCLIP (frozen CLIP, other classes) loads its prompts."""
    model = build("IVLP", clip3, ("dog", "cat"))
    ours = model.prompts.state_dict()
    reference = {key: torch.zeros(1) for key in reference_clip_keys(clip3)}
    assert {"image_encoder.conv1.weight", "text_encoder.transformer.resblocks.0.attn.in_proj_weight",
            "text_encoder.ln_final.weight", "text_encoder.text_projection", "logit_scale"} <= set(reference)
    learned_values = {k: torch.randn_like(v).half() for k, v in ours.items() if "token_" not in k}
    reference.update(learned_values)
    reference["prompt_learner.token_prefix"] = torch.zeros(5, 1, TEXT_WIDTH)  # 5 classes there, 2 here
    reference["prompt_learner.token_suffix"] = torch.zeros(5, 74, TEXT_WIDTH)
    path = str(tmp_path / "model.pth.tar-5")
    torch.save({"state_dict": reference, "epoch": 5}, path)
    capsys.readouterr()
    load_registered_state(model.prompts, path, IVLP.class_dependent_keys, "VLPromptLearner")
    out = capsys.readouterr().out
    assert f"Skipping {len(reference_clip_keys(clip3))} frozen CLIP entries" in out
    assert "Note:" not in out  # nothing missing, nothing unknown
    for key, value in learned_values.items():
        assert torch.equal(model.prompts.state_dict()[key], value.float()), key
    assert torch.equal(model.prompts.state_dict()["prompt_learner.token_prefix"], ours["prompt_learner.token_prefix"])


def test_resnet_and_too_deep_prompts_are_refused(tiny_rn_path, clip3):
    rn, _ = clip.load(tiny_rn_path, device="cpu")
    for name in ("MaPLe", "IVLP", "VPT"):
        with pytest.raises(ValueError, match="needs a ViT backbone"):
            build(name, rn)
    with pytest.raises(ValueError, match="PROMPT_DEPTH is 4 but the transformer has 3 blocks"):
        build("MaPLe", clip3, ("dog",), "TRAINER.MAPLE.PROMPT_DEPTH", 4)
    with pytest.raises(ValueError, match="PROMPT_DEPTH_VISION is 5"):
        build("VPT", clip3, ("dog",), "TRAINER.VPT.PROMPT_DEPTH_VISION", 5)


def test_depth_one_is_shallow(clip3):
    """PROMPT_DEPTH 1: only the block-0 prompts (MaPLe's ctx and proj(ctx); IVLP's ctx and VPT)."""
    maple = build("MaPLe", clip3, ("dog",), "TRAINER.MAPLE.PROMPT_DEPTH", 1)
    ivlp = build("IVLP", clip3, ("dog",), "TRAINER.IVLP.PROMPT_DEPTH_TEXT", 1, "TRAINER.IVLP.PROMPT_DEPTH_VISION", 1)
    assert set(dict(maple.prompts.named_parameters())) == {
        "prompt_learner.ctx", "prompt_learner.proj.weight", "prompt_learner.proj.bias"}
    assert set(dict(ivlp.prompts.named_parameters())) == {"prompt_learner.ctx", "image_encoder.VPT"}
    for model in (maple, ivlp):
        assert list(model.prompts.text_prompt().deep) == list(model.prompts.vision_prompt().deep) == []
        assert model(images()).shape == (1, 1)
