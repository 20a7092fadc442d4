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


def reference_block(block, x, mask=None):
    """OpenAI's residual block on sequence-first x through nn.MultiheadAttention."""
    h = block.ln_1(x)
    x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
    return x + block.mlp(block.ln_2(x))


def reference_logits(clip_model, learner, images):
    """MVLPT's forward as the reference writes it: the image encoder re-run outside CLIP with the
    prompts inserted after CLS (after ln_pre) and replaced before each block; all 77 text positions."""
    ctx, visual = learner.prompts()
    v = clip_model.visual
    x = v.conv1(images).flatten(2).transpose(1, 2)
    x = torch.cat([v.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + v.positional_embedding
    x = v.ln_pre(x)
    n = visual.shape[1]
    x = torch.cat([x[:, :1], visual[0].expand(x.shape[0], -1, -1), x[:, 1:]], dim=1).permute(1, 0, 2)
    for i, block in enumerate(v.transformer.resblocks):
        if i > 0:
            x = torch.cat([x[:1], visual[i].unsqueeze(1).expand(-1, x.shape[1], -1), x[1 + n:]])
        x = reference_block(block, x)
    image = v.ln_post(x[0]) @ v.proj
    t = (learner.assemble(ctx) + clip_model.positional_embedding).permute(1, 0, 2)
    mask = torch.full((77, 77), float("-inf")).triu_(1)
    for block in clip_model.transformer.resblocks:
        t = reference_block(block, t, mask)
    t = clip_model.ln_final(t.permute(1, 0, 2))
    text = t[torch.arange(t.shape[0]), learner.eot] @ clip_model.text_projection
    image, text = image / image.norm(dim=-1, keepdim=True), text / text.norm(dim=-1, keepdim=True)
    return clip_model.logit_scale.exp() * image @ text.t()


def test_mupt_logits_and_gradients_match_the_reference_formula(tiny):
    torch.manual_seed(0)
    learner = MultitaskVLPromptLearner(mvlpt_cfg(4, 2), CLASSNAMES, tiny)
    model = MVLPTCLIP(tiny, learner)
    images = torch.randn(2, 3, 224, 224)
    labels = torch.tensor([2, 0])
    ours = model(images)
    F.cross_entropy(ours, labels).backward()
    grads = {k: p.grad.clone() for k, p in learner.named_parameters()}
    learner.zero_grad()
    reference = reference_logits(tiny, learner, images)
    F.cross_entropy(reference, labels).backward()
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)
    for name, param in learner.named_parameters():
        torch.testing.assert_close(grads[name], param.grad, rtol=1e-3, atol=1e-5, msg=name)


def test_train_py_aliases_of_mvlpt_flags():
    import train

    def cfg_of(*argv):
        return train.setup_cfg(train.build_parser().parse_args(list(argv)))

    cfg = cfg_of("--trainer", "MVLPT", "--dataset", "ImageNet,Caltech101", "--dataset-coop", "--multi-task",
                 "--multi-task-label_pertask", "--multi-task-evalkey", "Caltech101", "--shots", "5", "--seed", "3",
                 "--cut-contextlen", "--act-ckpt", "2", "TRAINER.MVLPT.COOP.N_CTX", "16")
    assert (cfg.DATASET.DATASET, cfg.DATASET.NAME) == ("ImageNet,Caltech101", "")
    assert cfg.DATASET.COOP and cfg.DATASET.MULTITASK and cfg.DATASET.MULTITASK_LABEL_PERTASK
    assert cfg.DATASET.MULTITASK_EVALKEY == "Caltech101"
    assert (cfg.DATASET.NUM_SHOTS, cfg.DATASET.NUM_SAMPLES_PER_CLASS) == (5, 5)
    assert (cfg.SEED, cfg.DATASET.RANDOM_SEED_SAMPLING) == (3, 3)
    assert cfg.TRAINER.CUT_CONTEXTLEN and cfg.TRAINER.ACT_CKPT == 2 and cfg.TRAINER.MVLPT.COOP.N_CTX == 16
    single = cfg_of("--dataset", "cifar-10", "--multi-task-label-pertask")
    assert single.DATASET.NAME == "cifar-10" and single.DATASET.MULTITASK_LABEL_PERTASK
    assert not single.DATASET.MULTITASK and single.DATASET.MULTITASK_EVALKEY == "average"
