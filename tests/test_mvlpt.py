"""MVLPT's prompt learner: parameter names and counts (ViT-B/16), UPT coupling, visual prompt
injection, checkpoint key renaming, the soft-target loss with the per-task mask."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clip.model import CLIP
from clip.testing import tiny_clip
from trainers.mvlpt import MultitaskVLPromptLearner, MVLPTCLIP, rename_legacy_keys, soft_targets

CLASSNAMES = ["cat", "red_panda", "golden retriever"]


def mvlpt_cfg(coop: int = 0, vpt: int = 0, cocoop: int = 0, *opts):
    from dassl.config import get_cfg_default

    import train

    cfg = get_cfg_default()
    train.extend_cfg(cfg)
    cfg.TRAINER.MVLPT.COOP.N_CTX = coop
    cfg.TRAINER.MVLPT.VPT.N_CTX = vpt
    cfg.TRAINER.MVLPT.COCOOP.N_CTX = cocoop
    cfg.merge_from_list(list(opts))
    return cfg


@pytest.fixture(scope="module")
def vit_b16_meta():
    """CLIP ViT-B/16's architecture on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        return CLIP(512, 224, 12, 768, 16, 77, 49408, 512, 8, 12)


@pytest.fixture(scope="module")
def tiny():
    return tiny_clip("ViT", vision_layers=3)


def n_params(module: torch.nn.Module, prefix: str = "") -> int:
    return sum(p.numel() for name, p in module.named_parameters() if name.startswith(prefix))


@pytest.mark.parametrize("family, counts, expected", [
    ("MCoOp", (16, 0), 8_192), ("MVPT", (0, 16), 147_456), ("MUPT", (4, 4), 566_400),
])
def test_vit_b16_parameter_counts(vit_b16_meta, family, counts, expected):
    learner = MultitaskVLPromptLearner(mvlpt_cfg(*counts), CLASSNAMES, vit_b16_meta)
    assert n_params(learner) == expected


def test_vit_b16_upt_shapes_and_names(vit_b16_meta):
    learner = MultitaskVLPromptLearner(mvlpt_cfg(4, 4), CLASSNAMES, vit_b16_meta)
    shapes = {name: tuple(p.shape) for name, p in learner.named_parameters()}
    assert shapes["ctx"] == (4, 512)
    assert shapes["vpt_embeddings"] == (1, 4, 768)
    assert shapes["vpt_embeddings_deep"] == (11, 4, 768)
    assert shapes["mvlpt_proj_ctx_coop_pre.weight"] == (128, 512)
    assert shapes["mvlpt_proj_ctx_coop_post.weight"] == (512, 128)
    assert shapes["mvlpt_proj_ctx_vpt_pre.weight"] == (128, 768)
    assert shapes["mvlpt_proj_ctx_vpt_post.weight"] == (768, 128)
    assert n_params(learner, "mvlpt_proj_ctx") == 329_216
    assert n_params(learner, "mvlpt_proj.") == 198_272
    ctx, visual = learner.prompts()
    assert tuple(ctx.shape) == (4, 512) and tuple(visual.shape) == (12, 4, 768)
    assert learner.position == "middle"


def test_vpt_init_bound_and_hard_prompt(vit_b16_meta, tiny):
    from trainers.mvlpt import vpt_init_bound

    assert vpt_init_bound(16, 768) == pytest.approx(0.0625)
    assert vpt_init_bound(32, 768) == pytest.approx(0.03953, abs=1e-5)
    torch.manual_seed(0)
    learner = MultitaskVLPromptLearner(mvlpt_cfg(0, 2), CLASSNAMES, tiny)
    assert learner.vpt_embeddings.abs().max() <= vpt_init_bound(32, 768)
    assert learner.prompt_texts[0] == "a photo of a cat."
    assert not learner.learns_text


@pytest.mark.parametrize("counts", [(0, 0, 0), (4, 0, 4)])
def test_invalid_family_counts(tiny, counts):
    with pytest.raises(ValueError, match="TRAINER.MVLPT"):
        MultitaskVLPromptLearner(mvlpt_cfg(*counts), CLASSNAMES, tiny)


def test_upt_reference_coupling_has_no_token_mixing(tiny):
    """Reference quirk: each token is its own sequence; UPT_MIX_TOKENS makes them attend."""
    torch.manual_seed(0)
    learner = MultitaskVLPromptLearner(mvlpt_cfg(2, 2), CLASSNAMES, tiny)
    ctx_before = learner.prompts()[0].detach().clone()
    with torch.no_grad():
        learner.vpt_embeddings_deep[1].add_(1.0)
    assert torch.equal(learner.prompts()[0], ctx_before)
    # Per token, the block is x + out_proj(v_proj(LN1(x))) + MLP (attention over itself only).
    block = learner.mvlpt_proj.resblocks[0]
    x = learner.mvlpt_proj_ctx_coop_pre(learner.ctx)
    value = F.linear(block.ln_1(x), block.attn.in_proj_weight[256:], block.attn.in_proj_bias[256:])
    h = x + block.attn.out_proj(value)
    expected = learner.mvlpt_proj_ctx_coop_post(h + block.mlp(block.ln_2(h)))
    torch.testing.assert_close(learner.prompts()[0], expected)

    learner.mix_tokens = True
    mixed = learner.prompts()[0].detach().clone()
    with torch.no_grad():
        learner.vpt_embeddings_deep[1].add_(1.0)
    assert not torch.allclose(learner.prompts()[0], mixed)


def test_visual_prompts_go_after_cls_and_get_gradients(tiny):
    torch.manual_seed(0)
    learner = MultitaskVLPromptLearner(mvlpt_cfg(0, 3), CLASSNAMES, tiny)
    model = MVLPTCLIP(tiny, learner)
    images = torch.randn(2, 3, 224, 224)
    prompt = learner.vision_prompt(learner.prompts()[1], 2)
    assert prompt.position == "after_cls" and len(prompt.deep) == 2
    _, tokens = tiny.encode_image(images, prompt, return_tokens=True)
    assert tokens.shape[1] == 1 + 3 + 49
    model(images).sum().backward()
    assert learner.vpt_embeddings.grad.abs().sum() > 0
    assert learner.vpt_embeddings_deep.grad[-1].abs().sum() > 0
    assert not model.frozen_image_encoder
    assert torch.equal(model.text_features(), model.class_features)  # fixed hard prompts


def test_cocoop_branch_per_image_logits(tiny):
    torch.manual_seed(0)
    learner = MultitaskVLPromptLearner(mvlpt_cfg(0, 0, 4), CLASSNAMES, tiny)
    model = MVLPTCLIP(tiny, learner).eval()
    images = torch.randn(2, 3, 224, 224)
    logits = model(images)
    single = model(images[1:])
    torch.testing.assert_close(logits[1:], single)
    assert model.frozen_image_encoder and learner.position == "end"


def test_legacy_upt_proj_keys_are_renamed_on_load(tiny):
    torch.manual_seed(0)
    source = MultitaskVLPromptLearner(mvlpt_cfg(2, 2), CLASSNAMES, tiny)
    legacy = {k.replace("mvlpt_proj", "upt_proj"): v + 1 for k, v in source.state_dict().items()}
    assert any(k.startswith("upt_proj_ctx_coop_pre") for k in legacy)
    assert set(rename_legacy_keys(legacy)) == set(source.state_dict())
    torch.manual_seed(1)
    target = MultitaskVLPromptLearner(mvlpt_cfg(2, 2), CLASSNAMES, tiny)
    missing, unexpected = target.load_state_dict(legacy, strict=False)
    assert not missing and not unexpected
    torch.testing.assert_close(target.mvlpt_proj.resblocks[0].ln_1.weight,
                               source.mvlpt_proj.resblocks[0].ln_1.weight + 1)


def test_soft_targets_and_pertask_mask():
    label = torch.tensor([[-1, -1, 0, 1, 0], [1, 0, -1, -1, -1], [-1, -1, 1, 0, 1]])
    targets = soft_targets(label)
    torch.testing.assert_close(targets[2], torch.tensor([0, 0, 0.5, 0, 0.5]))
    logits = torch.randn(3, 5)
    # One-hot rows: soft-target CE equals CE on the global label.
    torch.testing.assert_close(F.cross_entropy(logits[:2], targets[:2]),
                               F.cross_entropy(logits[:2], torch.tensor([3, 0])))
    from dassl.data.multitask import TaskLayout

    masked = logits * TaskLayout(("a", "b"), (2, 3), ("accuracy",) * 2).own_task_mask(label)
    assert masked[0, 0] == 0 and masked[0, 3] == logits[0, 3]
