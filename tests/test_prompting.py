"""Unit tests of the shared prompt pieces: class prompts, context init, CoCoOp's per-image prompts,
the zero-shot template ensemble, the linear-probe C search and the precision fallback."""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clip import clip
from clip.encode import encode_text
from clip.prompts import TextPrompt
from trainers.prompting import ClassPrompts, embed_tokens, random_context, word_context

NAMES = ["cat", "golden_retriever", "red panda bear"]  # 1, 2 and 3 BPE tokens
EOT_ID = 49407


def coop_cfg(**coop):
    from yacs.config import CfgNode as CN

    from trainers.coop import CoOp
    from trainers.cocoop import CoCoOp

    cfg = CN()
    cfg.TRAINER = CN()
    CoOp.extend_cfg(cfg)
    CoCoOp.extend_cfg(cfg)
    for key, value in coop.items():
        node, name = key.split("__")
        cfg.TRAINER[node][name] = value
    return cfg


def reference_embedding(model, texts):
    return embed_tokens(model, clip.tokenize(texts))


@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_class_token_positions(tiny_vit, position):
    n = 4
    width = tiny_vit.ln_final.weight.shape[0]
    init = random_context(n, width, torch.float32)
    prompts = ClassPrompts(tiny_vit, NAMES, n, init.prefix, position)
    assert prompts.name_lens == [1, 2, 3]
    assert prompts.token_prefix.shape == (3, 1, width)
    assert prompts.token_suffix.shape == (3, 77 - 1 - n, width)

    full = prompts.assemble(init.vectors)
    assert full.shape == (3, 77, width)
    emb = reference_embedding(tiny_vit, [f"X X X X {name.replace('_', ' ')}." for name in NAMES])
    ctx, h = init.vectors, n // 2
    for i, name_len in enumerate(prompts.name_lens):
        name = emb[i, 1 + n:1 + n + name_len]
        rest = emb[i, 1 + n + name_len:]
        if position == "end":
            expected = torch.cat([emb[i, :1], ctx, name, rest])
        elif position == "middle":
            expected = torch.cat([emb[i, :1], ctx[:h], name, ctx[h:], rest])
        else:
            expected = torch.cat([emb[i, :1], name, ctx, rest])
        assert torch.equal(full[i], expected)
        # [SOS, n ctx, name, "."] then EOT, at the index of the tokenized text
        eot = int(prompts.eot[i])
        assert eot == 1 + n + name_len + 1
        assert torch.equal(full[i, eot], tiny_vit.token_embedding.weight[EOT_ID])


def test_class_specific_context(tiny_vit):
    width = tiny_vit.ln_final.weight.shape[0]
    init = random_context(4, width, torch.float32, n_cls=3)
    assert init.vectors.shape == (3, 4, width)
    prompts = ClassPrompts(tiny_vit, NAMES, 4, init.prefix, "middle")
    full = prompts.assemble(init.vectors)
    for i, name_len in enumerate(prompts.name_lens):
        assert torch.equal(full[i, 1:3], init.vectors[i, :2])
        assert torch.equal(full[i, 3 + name_len:5 + name_len], init.vectors[i, 2:])


def test_class_specific_contexts_with_equal_values_keep_their_own_gradients(tiny_vit):
    """Equal values are not shared parameters: each class's context gets its own gradient."""
    prompts = ClassPrompts(tiny_vit, ["cat", "dog", "sea lion"], n_ctx=4, prefix="X X X X")
    shared_init = random_context(4, prompts.token_prefix.shape[-1], torch.float32).vectors
    ctx = shared_init.expand(3, -1, -1).clone().requires_grad_(True)
    features = encode_text(tiny_vit, prompts.prompt(ctx))
    (grad,) = torch.autograd.grad(features.square().sum(), ctx)
    ref_ctx = ctx.detach().clone().requires_grad_(True)
    ref = encode_text(tiny_vit, TextPrompt(prompts.assemble(ref_ctx), prompts.eot), shared_prefix=False)
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), ref_ctx)
    torch.testing.assert_close(features, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-7)
    assert all(grad[i].abs().sum() > 0 for i in range(3))


def test_unknown_position_raises(tiny_vit):
    with pytest.raises(ValueError, match="class token position"):
        ClassPrompts(tiny_vit, NAMES, 4, "X X X X", "start")


def test_coop_learner_state_and_word_init(tiny_vit):
    from trainers.coop import PromptLearner

    # CTX_INIT overrides N_CTX (number of words) and CSC; "_" stands for a space.
    learner = PromptLearner(coop_cfg(COOP__CTX_INIT="a_photo_of_a", COOP__CSC=True, COOP__N_CTX=16), NAMES, tiny_vit)
    assert set(learner.state_dict()) == {"ctx", "token_prefix", "token_suffix"}
    assert [n for n, _ in learner.named_parameters()] == ["ctx"]
    assert learner.n_ctx == 4 and learner.ctx.shape == (4, tiny_vit.ln_final.weight.shape[0])
    words = reference_embedding(tiny_vit, ["a photo of a"])
    assert torch.equal(learner.ctx.data, words[0, 1:5])
    # At init the prompts are exactly the embedded texts "a photo of a <name>."
    texts = [f"a photo of a {name.replace('_', ' ')}." for name in NAMES]
    assert learner.prompt_texts == texts
    assert torch.equal(learner(), reference_embedding(tiny_vit, texts))


def test_word_init_multi_token_word_stays_in_suffix(tiny_vit):
    # n is the number of words; the extra BPE pieces of "xylophonist" stay in the frozen suffix.
    init = word_context(tiny_vit, "a xylophonist")
    ids = clip.tokenize("a xylophonist")[0]
    assert init.n_ctx == 2 and int(ids.argmax()) > 3
    assert torch.equal(init.vectors, tiny_vit.token_embedding.weight[ids[1:3]])
    prompts = ClassPrompts(tiny_vit, NAMES, init.n_ctx, init.prefix)
    expected = reference_embedding(tiny_vit, [f"a xylophonist {name.replace('_', ' ')}." for name in NAMES])
    assert torch.equal(prompts.assemble(init.vectors), expected)


def test_truncated_prompt_encodes_like_full_length(tiny_vit):
    init = random_context(4, tiny_vit.ln_final.weight.shape[0], torch.float32)
    prompts = ClassPrompts(tiny_vit, NAMES, 4, init.prefix, "middle")
    short = prompts.prompt(init.vectors)
    assert short.embeddings.shape[1] == int(prompts.eot.max()) + 1
    full = TextPrompt(prompts.assemble(init.vectors), prompts.eot)
    with torch.no_grad():
        torch.testing.assert_close(encode_text(tiny_vit, short), encode_text(tiny_vit, full, shared_prefix=False))


def test_cocoop_grouped_equals_per_image_loop(tiny_vit):
    from trainers.cocoop import CustomCLIP, PromptLearner

    torch.manual_seed(0)
    learner = PromptLearner(coop_cfg(COCOOP__N_CTX=4), NAMES, tiny_vit)
    assert set(learner.state_dict()) == {
        "ctx", "token_prefix", "token_suffix", "meta_net.linear1.weight", "meta_net.linear1.bias",
        "meta_net.linear2.weight", "meta_net.linear2.bias"}
    vis_dim = tiny_vit.visual.output_dim
    assert learner.meta_net.linear1.out_features == vis_dim // 16
    assert learner.meta_net.linear2.out_features == tiny_vit.ln_final.weight.shape[0]
    model = CustomCLIP(tiny_vit, learner)
    images = torch.randn(2, 3, 224, 224)
    labels = torch.tensor([2, 1])
    with torch.no_grad():
        feats = tiny_vit.encode_image(images)
        feats = feats / feats.norm(dim=-1, keepdim=True)

    def loop_logits():
        # The reference: one text-encoder call per image on its (n_cls, 77, w) prompts.
        prompts = learner(feats)
        rows = []
        for b in range(len(images)):
            text = encode_text(tiny_vit, TextPrompt(prompts[b], learner.eot), shared_prefix=False)
            text = text / text.norm(dim=-1, keepdim=True)
            rows.append(tiny_vit.logit_scale.exp() * feats[b] @ text.t())
        return torch.stack(rows)

    learner.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), loop_logits(), rtol=1e-5, atol=1e-5)

    learner.train()
    params = [learner.ctx, learner.meta_net.linear1.weight]
    grouped_loss = model(images, labels)
    grouped_grads = torch.autograd.grad(grouped_loss, params)
    loop_loss = F.cross_entropy(loop_logits(), labels)
    loop_grads = torch.autograd.grad(loop_loss, params)
    torch.testing.assert_close(grouped_loss, loop_loss, rtol=1e-5, atol=1e-6)
    for grouped, looped in zip(grouped_grads, loop_grads):
        torch.testing.assert_close(grouped, looped, rtol=1e-4, atol=1e-6)


def test_template_ensemble(tiny_vit):
    from datasets.templates import IMAGENET_TEMPLATES_SELECT
    from trainers.zsclip import ZeroshotCLIP2, class_text_features

    templates = ["a photo of a {}.", "art of the {}.", "{} texture."]
    with torch.no_grad():
        single = [tiny_vit.encode_text(clip.tokenize([t.format(n.replace("_", " ")) for n in NAMES])) for t in templates]
    single = [f / f.norm(dim=-1, keepdim=True) for f in single]
    mean = torch.stack(single).mean(0)
    torch.testing.assert_close(class_text_features(tiny_vit, NAMES, templates), mean / mean.norm(dim=-1, keepdim=True))
    # One template: exactly its normalised features (what ZeroshotCLIP uses).
    assert torch.equal(class_text_features(tiny_vit, NAMES, templates[:1]), single[0])

    select = list(IMAGENET_TEMPLATES_SELECT)
    from fixtures.data_fixtures import make_cfg

    trainer = types.SimpleNamespace(cfg=make_cfg("EuroSAT", "unused"))
    for _ in range(2):  # the reference appended to the module list, growing it on every build
        assert ZeroshotCLIP2.templates(trainer) == select + ["a centered satellite photo of {}."]
    assert list(IMAGENET_TEMPLATES_SELECT) == select
    assert ZeroshotCLIP2.templates(types.SimpleNamespace(cfg=make_cfg("ImageNet", "unused"))) == select


def test_c_search_bisection(monkeypatch):
    """The search's control flow on a known val-accuracy curve peaked at C = 3."""
    from trainers import linear_probe as lp

    monkeypatch.setattr(lp, "fit", lambda train, c: types.SimpleNamespace(C=c))
    monkeypatch.setattr(lp, "accuracy", lambda clf, split, metric=None: -abs(np.log10(clf.C) - np.log10(3.0)))
    result = lp.search_c(None, None, num_step=8)
    # Grid peak 1 -> interval [0.1, 10]; each round keeps the better end and halves towards it.
    assert result.grid_val_acc.index(max(result.grid_val_acc)) == lp.C_GRID.index(1.0)
    assert len(result.steps) == 8
    assert result.steps[0].c == 10.0
    assert abs(np.log10(result.c) - np.log10(3.0)) < 0.02
    # Ties go to the left end.
    monkeypatch.setattr(lp, "accuracy", lambda clf, split, metric=None: 0.0)
    result = lp.search_c(None, None, num_step=2)
    assert result.c == 1e5 and [s.c for s in result.steps] == [1e5, 1e5]


def test_c_search_synthetic_features_deterministic():
    from trainers import linear_probe as lp

    rng = np.random.RandomState(0)
    centers = rng.randn(3, 4) * 2

    def split(n):
        labels = np.repeat(np.arange(3), n)
        return (centers[labels] + rng.randn(len(labels), 4)).astype(np.float32), labels

    train, val, test = split(4), split(4), split(30)
    first = lp.search_c(train, val, num_step=2, test=test)
    second = lp.search_c(train, val, num_step=2, test=test)
    assert first.c == second.c and [s.test_acc for s in first.steps] == [s.test_acc for s in second.steps]
    assert first.steps[-1].test_acc > 80.0

    # Few-shot draws: K per class, VAL_SHOTS per class, the same for the same seed.
    labels = np.repeat(np.arange(3), 10)
    train_idx, val_idx = lp.sample_few_shot(labels, labels, 8, seed=1)
    assert np.bincount(labels[train_idx]).tolist() == [8, 8, 8]
    assert np.bincount(labels[val_idx]).tolist() == [4, 4, 4]
    again = lp.sample_few_shot(labels, labels, 8, seed=1)
    assert np.array_equal(train_idx, again[0]) and np.array_equal(val_idx, again[1])

    # The saved nn.Linear predicts exactly as sklearn, also for two classes.
    for n_cls in (3, 2):
        keep = train[1] < n_cls
        clf = lp.fit((train[0][keep], train[1][keep]), 1.0)
        layer = torch.nn.Linear(4, n_cls)
        lp.to_linear(clf, layer)
        x = test[0][test[1] < n_cls]
        assert np.array_equal(layer(torch.from_numpy(x)).argmax(1).numpy(), clf.predict(x))


def test_fp16_on_cpu_falls_back_with_one_warning(capsys):
    from trainers.common import resolve_precision

    precision = resolve_precision("fp16", torch.device("cpu"))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert precision.name == "fp32" and precision.requested == "fp16"
    assert len(lines) == 1 and "fp16" in lines[0] and "fp32" in lines[0]
    assert resolve_precision("fp32", torch.device("cpu")).autocast_dtype is None
    amp = resolve_precision("amp", torch.device("cpu"))
    assert amp.autocast_dtype == torch.bfloat16 and amp.grad_scaler() is None
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError):
        resolve_precision("fp8", torch.device("cpu"))


def test_text_features_cached_during_evaluation_only(tiny_vit):
    from trainers.base import PromptCLIP
    from trainers.coop import PromptLearner

    torch.manual_seed(0)
    learner = PromptLearner(coop_cfg(COOP__N_CTX=4), NAMES, tiny_vit)
    model = PromptCLIP(tiny_vit, learner)
    learner.eval()
    with torch.no_grad():
        first = model.text_features()
        assert model.text_features() is first  # reused within an evaluation
        expected = F.normalize(encode_text(tiny_vit, learner.text_prompt(), shared_prefix=False), dim=-1)
        torch.testing.assert_close(first, expected)
        learner.ctx.add_(0.1)  # what an optimizer step does: the cache must not be reused
        second = model.text_features()
        assert second is not first and not torch.allclose(first, second)
        learner.load_state_dict({"ctx": torch.zeros_like(learner.ctx)}, strict=False)
        assert model.text_features() is not second
    learner.train()
    with torch.no_grad():
        assert model.text_features() is not model.text_features()  # training: always recomputed
    assert model.text_features().requires_grad
