"""LAMM's pieces (trainers/label_alignment.py, ClassPrompts label embeddings): init from the
tokenizer, the prompt layouts of both code paths, each loss term by hand, the merge of stage
label embeddings, the fixed-branch shortcut and the config/CLI mapping."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from yacs.config import CfgNode as CN

import train
from clip import clip
from trainers import coop, label_alignment as la, maple
from trainers.base import PromptCLIP
from trainers.deep_prompts import PromptedCLIP
from trainers.prompting import embed_tokens, name_token_counts

CARS = ["Acura RL Sedan 2012", "Audi TT Hatchback 2011", "BMW X5 SUV 2007"]
NAMES = ["apple", "aquarium_fish", "sweet pepper"]


def lamm_cfg(method: str, **lamm) -> CN:
    cfg = CN()
    cfg.TRAINER = CN()
    cfg.DATASET = CN()
    cfg.DATASET.NUM_SHOTS = 4
    if method == "coop":
        coop.CoOp.extend_cfg(cfg)
        cfg.TRAINER.COOP.CTX_INIT = "a photo of a"
    else:
        maple.MaPLe.extend_cfg(cfg)
        cfg.TRAINER.MAPLE.PROMPT_DEPTH = 2
    cfg.TRAINER.LAMM.ENABLED = True
    for key, value in lamm.items():
        cfg.TRAINER.LAMM[key] = value
    return cfg


def build(method: str, names, clip_model, **lamm):
    cfg = lamm_cfg(method, **lamm)
    trainer = coop.CoOp if method == "coop" else maple.MaPLe
    return trainer.build_custom_clip(cfg, names, clip_model), cfg


def token_embeddings(clip_model, text: str) -> torch.Tensor:
    return embed_tokens(clip_model, clip.tokenize(text))[0]


def test_label_init_takes_the_first_tokens_of_each_name(tiny_vit):
    counts = name_token_counts(CARS)
    assert min(counts) >= 5  # the year's digits are one token each
    m = min(counts)
    labels = la.label_init(tiny_vit, CARS, m)
    assert labels.shape == (3, m, 128)
    for name, row in zip(CARS, labels):
        assert torch.equal(row, token_embeddings(tiny_vit, name)[1:1 + m])  # not pooled


def test_coop_path_labels_replace_the_first_name_tokens(tiny_vit):
    model, _ = build("coop", CARS, tiny_vit)
    learner = la.class_prompts(model)
    m = min(name_token_counts(CARS))
    assert learner.token_classes.shape == (3, m, 128) and learner.label_offset == 0
    assert torch.equal(learner.fix_token, learner.token_classes) and not learner.fix_token.requires_grad
    # Initialised from the names, the label prompt is the name prompt; the rest of each name stays.
    assert torch.equal(learner.assemble(learner.ctx, branch="labels"), learner.assemble(learner.ctx, branch="names"))
    with torch.no_grad():
        learner.token_classes.add_(1.0)
    prompts = learner.assemble(learner.ctx, branch="labels")
    assert torch.equal(prompts[:, 5:5 + m], learner.token_classes)
    assert torch.equal(prompts[:, 5 + m:], learner.token_suffix[:, m:])
    with learner.using_branches("labels", "names"):
        both = learner.prompt(learner.ctx)
    assert both.embeddings.shape[0] == 6 and torch.equal(both.eot, learner.eot.repeat(2))


@pytest.mark.parametrize("at_name", [False, True])
def test_maple_path_label_slot(tiny_vit, at_name):
    model, _ = build("maple", NAMES, tiny_vit, LABEL_AT_NAME=at_name)
    learner = la.class_prompts(model)
    assert learner.token_classes.shape == (3, 1, 128)  # one token, whatever the names
    prompts = learner.assemble(learner.ctx, branch="labels")
    names = learner.assemble(learner.ctx, branch="names")
    for c, name in enumerate(["apple", "aquarium fish", "sweet pepper"]):
        full = token_embeddings(tiny_vit, f"a photo of a {name}.")
        first_name_token = token_embeddings(tiny_vit, name)[1]
        if at_name:  # [SOS, c1, c2, of, a, M, rest of the name ...]
            assert torch.equal(prompts[c, 5], first_name_token) and torch.equal(prompts[c, 3:5], full[3:5])
            assert torch.equal(prompts[c, 6:], full[6:])
        else:  # the reference: M in the slot of "of", the whole name kept
            assert torch.equal(prompts[c, 3], first_name_token)
            assert torch.equal(prompts[c, 4:], full[4:]) and torch.equal(names[c, 3:], full[3:])


def test_random_init_and_frozen_anchor(tiny_vit):
    torch.manual_seed(0)
    model, _ = build("coop", NAMES, tiny_vit, RANDOM_INIT=True)
    learner = la.class_prompts(model)
    assert abs(learner.token_classes.std().item() - 0.02) < 0.005
    assert torch.equal(learner.fix_token, learner.token_classes)
    assert "fix_token" in learner.state_dict() and "fix_token" not in dict(learner.named_parameters())


def hand_losses(text, text_fixed, logits, logits_fixed, labels, T):
    feat, count = 0.0, 0
    for i, y in enumerate(labels.tolist()):
        if any(other != y for other in labels.tolist()):
            a, b = text[y], text_fixed[y]
            feat += 1 - float(a @ b) / (a.norm().item() * b.norm().item())
            count += 1
    feat = feat / count if count else 0.0
    logit = 0.0
    for z, zf in zip(logits, logits_fixed):
        p = torch.softmax(z / T, 0)
        logq = torch.log_softmax(zf / T, 0)
        logit += -float((p * logq).sum())
    return feat, T * T * logit / len(labels)


@pytest.mark.parametrize("labels", [[0, 2, 2, 1], [1, 1, 1], [3]])
def test_loss_terms_by_hand(labels):
    torch.manual_seed(0)
    labels = torch.tensor(labels)
    text = F.normalize(torch.randn(4, 8), dim=-1).requires_grad_()
    text_fixed = F.normalize(torch.randn(4, 8), dim=-1).requires_grad_()
    logits = torch.randn(len(labels), 4, requires_grad=True)
    logits_fixed = torch.randn(len(labels), 4, requires_grad=True)
    feat, logit = hand_losses(text.detach(), text_fixed.detach(), logits.detach(), logits_fixed.detach(), labels, 2.0)
    got_feat = la.feature_loss(text, text_fixed, labels)
    assert math.isclose(got_feat.item(), feat, abs_tol=1e-6)
    if len(set(labels.tolist())) == 1:
        assert got_feat.item() == 0.0  # single-class batch (and batch of one): no feature term
    else:
        got_feat.backward()
        assert text.grad.abs().sum() > 0 and text_fixed.grad is None  # stop-gradient on the fixed side
    got_logit = la.logit_loss(logits, logits_fixed, 2.0)
    assert math.isclose(got_logit.item(), logit, rel_tol=1e-5)
    got_logit.backward()
    assert logits.grad.abs().sum() > 0 and logits_fixed.grad.abs().sum() > 0  # neither side detached

    m = torch.randn(4, 2, 8, requires_grad=True)
    anchor = torch.randn(4, 2, 8)
    assert math.isclose(la.parameter_loss(m, anchor).item(), ((m - anchor) ** 2).sum().item(), rel_tol=1e-6)


def test_total_loss_weights():
    cfg = lamm_cfg("coop")
    assert la.LossWeights.from_cfg(cfg) == la.LossWeights(1.0, 1.0, 0.05, 2.0)  # --shots defaults to 1
    cfg.TRAINER.LAMM.SHOTS = 16
    assert la.LossWeights.from_cfg(cfg).param == 1 / 16
    cfg.TRAINER.LAMM.PARAM_WEIGHT_FROM_NUM_SHOTS = True
    assert la.LossWeights.from_cfg(cfg).param == 1 / 4  # DATASET.NUM_SHOTS
    cfg.TRAINER.LAMM.PARAM_WEIGHT = 0.5
    assert la.LossWeights.from_cfg(cfg).param == 0.5

    torch.manual_seed(1)
    out = la.BranchOutputs(F.normalize(torch.randn(3, 8), dim=-1), F.normalize(torch.randn(3, 8), dim=-1),
                           torch.randn(2, 3), torch.randn(2, 3))
    label = torch.tensor([0, 2])
    m, anchor = torch.randn(3, 1, 8), torch.randn(3, 1, 8)
    weights = la.LossWeights(0.25, 1.0, 0.05, 2.0)
    total, terms = la.hierarchical_loss(out, label, m, anchor, weights)
    expected = (F.cross_entropy(out.logits, label) + 0.25 * ((m - anchor) ** 2).sum()
                + la.feature_loss(out.text, out.text_fixed, label) + 0.05 * la.logit_loss(out.logits, out.logits_fixed, 2.0))
    assert torch.allclose(total, expected) and set(terms) == {"ce", "param", "feat", "logit"}


def test_merge_stage_label_embeddings():
    a, b, c = torch.randn(2, 1, 4), torch.randn(3, 1, 4), torch.randn(1, 1, 4)
    merged = la.merge_label_embeddings([([0, 1], a), ([2, 3, 4], b), ([5], c)], 6)
    assert torch.equal(merged, torch.cat([a, b, c]))
    scattered = la.merge_label_embeddings([([4, 0], a), ([1, 2, 3], b)], 5)
    assert torch.equal(scattered[4], a[0]) and torch.equal(scattered[0], a[1]) and torch.equal(scattered[1:4], b)
    with pytest.raises(ValueError, match="no label embedding for class ids \\[5\\]"):
        la.merge_label_embeddings([([0, 1], a), ([2, 3, 4], b)], 6)
    with pytest.raises(ValueError, match="given twice"):
        la.merge_label_embeddings([([0, 1], a), ([1, 2, 3], b)], 4)


@pytest.mark.parametrize("freeze_ctx", [True, False])
def test_both_branches_in_one_call_and_the_constant_fixed_branch(tiny_vit, freeze_ctx):
    model, _ = build("coop", NAMES, tiny_vit)
    learner = la.class_prompts(model)
    model.clip.requires_grad_(False)
    learner.ctx.requires_grad_(not freeze_ctx)
    with torch.no_grad():
        learner.token_classes.add_(torch.randn_like(learner.token_classes))
    images = torch.randn(2, 3, 224, 224)
    cache = la.FixedBranchCache()
    out = la.branch_outputs(model, images, cache)
    assert (cache._entry is not None) == freeze_ctx  # cached only while nothing it depends on trains
    # Same values as encoding each branch on its own, through the plain path.
    from clip.encode import encode_text

    for branch, text in (("labels", out.text), ("names", out.text_fixed)):
        with learner.using_branches(branch):
            alone = F.normalize(encode_text(tiny_vit, learner.text_prompt(), shared_prefix=False), dim=-1)
        assert torch.allclose(text, alone, atol=1e-5)
    expected = model(images)  # PromptCLIP's logits use the label prompts
    assert torch.allclose(out.logits, expected, atol=1e-4)
    if freeze_ctx:
        again = la.branch_outputs(model, images, cache)
        assert again.text_fixed is out.text_fixed  # computed once


def test_cli_flags_map_onto_keys():
    def cfg_of(*argv):
        return train.setup_cfg(train.build_parser().parse_args(["--trainer", "CoOp", *argv]))

    plain = cfg_of()
    assert not plain.TRAINER.LAMM.ENABLED and not plain.TRAINER.LAMM.LOSS
    lamm_cfg = cfg_of("--triplet-loss", "--origin-clip", "--shots", "16")
    lamm = lamm_cfg.TRAINER.LAMM
    assert (lamm.ENABLED, lamm.LOSS, lamm.FREEZE_CTX, lamm.RANDOM_INIT, lamm.SHOTS) == (True, True, True, False, 16)
    assert lamm_cfg.DATASET.NUM_SHOTS == plain.DATASET.NUM_SHOTS  # as the reference: the weight only
    coop_lamm = cfg_of("--triplet-loss", "--random-init").TRAINER.LAMM
    assert (coop_lamm.ENABLED, coop_lamm.LOSS, coop_lamm.FREEZE_CTX, coop_lamm.RANDOM_INIT) == (True, True, False, True)
    # Trailing options override the flags; CE-only label tuning is a key.
    ce_only = cfg_of("--triplet-loss", "TRAINER.LAMM.LOSS", "False").TRAINER.LAMM
    assert ce_only.ENABLED and not ce_only.LOSS
    with pytest.raises(train.UserError, match="work with --trainer CoOp or MaPLe, not CoCoOp"):
        train.setup_cfg(train.build_parser().parse_args(["--trainer", "CoCoOp", "--triplet-loss"]))


def test_plain_coop_and_maple_have_no_labels(tiny_vit):
    for method, cls in (("coop", PromptCLIP), ("maple", PromptedCLIP)):
        cfg = lamm_cfg(method)
        cfg.TRAINER.LAMM.ENABLED = False
        trainer = coop.CoOp if method == "coop" else maple.MaPLe
        model = trainer.build_custom_clip(cfg, NAMES, tiny_vit)
        assert isinstance(model, cls) and not la.class_prompts(model).has_labels
        assert not any("token_classes" in k or "fix_token" in k for k in model.state_dict())


def test_labels_with_equal_values_get_their_own_gradients(tiny_vit):
    """Names sharing their first token start with equal labels; the shared-prefix text path must
    still treat them as distinct parameters (same gradients as the plain path)."""
    from clip.encode import encode_text

    model, _ = build("coop", ["sweet pepper", "sweet potato", "sweet corn"], tiny_vit, N_TOKENS=1)
    learner = la.class_prompts(model)
    grads = []
    for shared in (None, False):
        learner.token_classes.grad = None
        weights = torch.arange(3.0)[:, None]
        (encode_text(tiny_vit, learner.text_prompt(), shared_prefix=shared) * weights).sum().backward()
        grads.append(learner.token_classes.grad.clone())
    assert not torch.equal(grads[0][0], grads[0][2])
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-4)
