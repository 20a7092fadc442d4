"""clip.encode.encode_text: truncated and shared-prefix paths equal the plain 77-token computation."""
import copy
from typing import List, Sequence

import pytest
import torch

import clip
from clip import encode
from clip.encode import encode_text
from clip.model import convert_weights
from clip.prompts import TextPrompt
from clip.testing import tiny_clip

NAMES = ["dog", "golden retriever", "707-320", "cat", "sea horse"]


def assert_rel(actual: torch.Tensor, expected: torch.Tensor, tol: float) -> None:
    """max |actual - expected| <= tol * max |expected|."""
    assert actual.shape == expected.shape
    diff = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert diff <= tol * scale, f"relative difference {diff / scale:.2e}"


def reference(model, emb: torch.Tensor, eot: torch.Tensor, deep: Sequence[torch.Tensor] = (),
              start: int = 1) -> torch.Tensor:
    """All 77 positions, as CoOp's TextEncoder (and MaPLe's for deep prompts) computes them."""
    x = emb + model.positional_embedding.type(model.dtype)
    x = x.permute(1, 0, 2)  # (L, N, D)
    for i, block in enumerate(model.transformer.resblocks):
        if 0 < i <= len(deep):
            d = deep[i - 1].to(x.dtype)
            x = torch.cat([x[:start], d[:, None].expand(-1, x.shape[1], -1), x[start + d.shape[0]:]])
        x = block(x)
    x = model.ln_final(x.permute(1, 0, 2)).type(model.dtype)
    return x[torch.arange(x.shape[0]), eot] @ model.text_projection


def coop_prompts(model, n_ctx: int, names: List[str] = NAMES, init: str = ""):
    """Frozen token embeddings of "X .. X name." (or "<init> name."), their EOT indices."""
    prefix = init or " ".join(["X"] * n_ctx)
    ids = clip.tokenize([f"{prefix} {name}." for name in names])
    with torch.no_grad():
        frozen = model.token_embedding(ids)
    return frozen, ids.argmax(dim=-1)


def assemble(frozen: torch.Tensor, ctx: torch.Tensor, position: str = "end", name_lens=None) -> torch.Tensor:
    """CoOp's class-prompt layouts; ctx (M, D) generic or (N, M, D) class-specific."""
    n, m = frozen.shape[0], ctx.shape[-2]
    ctx = ctx.expand(n, -1, -1)
    sos, rest = frozen[:, :1], frozen[:, 1 + m:]
    if position == "end":
        return torch.cat([sos, ctx, rest], dim=1)
    half = m // 2
    rows = []
    for i, k in enumerate(name_lens):
        name, tail = rest[i:i + 1, :k], rest[i:i + 1, k:]
        parts = [sos[i:i + 1], ctx[i:i + 1, :half], name, ctx[i:i + 1, half:], tail] if position == "middle" \
            else [sos[i:i + 1], name, ctx[i:i + 1], tail]
        rows.append(torch.cat(parts, dim=1))
    return torch.cat(rows)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine threads wait at barriers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def deep_model():
    """A 4-block text tower (deep prompts at blocks 1..3)."""
    return tiny_clip("ViT", seed=1, text_layers=4, vision_layers=1).requires_grad_(False)


@pytest.fixture
def spy(monkeypatch):
    """Records which path encode_text took."""
    taken: List[str] = []
    for name in ("_encode_shared", "_encode_runs"):
        real = getattr(encode, name)
        monkeypatch.setattr(encode, name,
                            lambda *a, _real=real, _name=name, **k: taken.append(_name) or _real(*a, **k))
    return taken


def run_all(model, build, eot: torch.Tensor, spy: List[str], deep: Sequence[torch.Tensor] = (),
            leaves: Sequence[torch.Tensor] = (), expect_shared: bool = True) -> None:
    """Reference vs truncated, automatic and forced shared-prefix paths: features within 1e-5,
    gradients w.r.t. leaves within 1e-4; `expect_shared` is the automatic choice."""
    ref = reference(model, build(), eot, deep)
    weights = torch.randn_like(ref)
    ref_grads = torch.autograd.grad((ref * weights).sum(), leaves)
    automatic = "_encode_shared" if expect_shared else "_encode_runs"
    for forced, path in ((False, "_encode_runs"), (None, automatic), (True, "_encode_shared")):
        spy.clear()
        out = encode_text(model, TextPrompt(build(), eot, deep=deep), shared_prefix=forced)
        assert spy == [path]
        assert_rel(out, ref, 1e-5)
        for grad, ref_grad in zip(torch.autograd.grad((out * weights).sum(), leaves), ref_grads):
            assert_rel(grad, ref_grad, 1e-4)


def test_token_embeddings_equal_model_encode_text(tiny_vit):
    ids = clip.tokenize([f"a photo of a {n}." for n in NAMES])
    with torch.no_grad():
        ours = encode_text(tiny_vit, TextPrompt(tiny_vit.token_embedding(ids), ids.argmax(-1)))
        assert_rel(ours, tiny_vit.encode_text(ids), 1e-5)
        # "a photo of a" is a shared prefix: the detected fast path gives the same features
        assert_rel(encode_text(tiny_vit, TextPrompt(tiny_vit.token_embedding(ids), ids.argmax(-1)), True),
                   tiny_vit.encode_text(ids), 1e-5)


def test_coop_generic_context(tiny_vit, spy):
    frozen, eot = coop_prompts(tiny_vit, 4)
    ctx = (0.02 * torch.randn(4, 128)).requires_grad_()
    run_all(tiny_vit, lambda: assemble(frozen, ctx), eot, spy, leaves=[ctx])


def test_tokens_after_eot_do_not_matter(tiny_vit):
    frozen, eot = coop_prompts(tiny_vit, 4)
    ctx = 0.02 * torch.randn(4, 128)
    emb = assemble(frozen, ctx)
    noisy = emb.clone()
    for i, e in enumerate(eot.tolist()):
        noisy[i, e + 1:] = torch.randn_like(noisy[i, e + 1:])
    short = emb[:, : int(eot.max()) + 1]
    with torch.no_grad():
        base = encode_text(tiny_vit, TextPrompt(emb, eot))
        for variant in (noisy, short):
            for forced in (False, None):
                assert_rel(encode_text(tiny_vit, TextPrompt(variant, eot), forced), base, 1e-5)


def test_maple_deep_prompts(deep_model, spy):
    """MaPLe's layout [SOS, c1, c2, of, a, name, ., EOT]: prefix of 5 holds the deep prompts."""
    frozen, eot = coop_prompts(deep_model, 2, init="a photo of a")
    ctx = (0.02 * torch.randn(2, 128)).requires_grad_()
    deep = [(0.02 * torch.randn(2, 128)).requires_grad_() for _ in range(3)]
    assert encode._shared_length(assemble(frozen, ctx)[None], int(eot.min())) == 5
    run_all(deep_model, lambda: assemble(frozen, ctx), eot, spy, deep=deep, leaves=[ctx, *deep])

    with torch.no_grad():
        emb = assemble(frozen, ctx)
        plain = encode_text(deep_model, TextPrompt(emb, eot))
        with_deep = encode_text(deep_model, TextPrompt(emb, eot, deep=deep))
        assert (with_deep - plain).abs().max() > 1e-3
        # entries beyond the last block are ignored
        extra = encode_text(deep_model, TextPrompt(emb, eot, deep=deep + [torch.randn(2, 128)] * 3))
        assert torch.equal(extra, with_deep)
        # shallower depth (MaPLe J < blocks): only the given blocks are replaced
        assert_rel(encode_text(deep_model, TextPrompt(emb, eot, deep=deep[:1])),
                   reference(deep_model, emb, eot, deep[:1]), 1e-5)


def test_deep_prompt_replaces_the_block_input(tiny_vit):
    """A deep prompt equal to what block 0 emits at its positions leaves the output unchanged."""
    frozen, eot = coop_prompts(tiny_vit, 4)
    emb = assemble(frozen, 0.02 * torch.randn(4, 128))
    with torch.no_grad():
        hidden = tiny_vit.transformer.resblocks[0].forward_bf(emb + tiny_vit.positional_embedding)
        same = hidden[0, 1:5]  # the shared ctx rows: equal in every sequence
        plain = encode_text(tiny_vit, TextPrompt(emb, eot))
        for forced in (False, True):
            assert_rel(encode_text(tiny_vit, TextPrompt(emb, eot, deep=[same]), forced), plain, 1e-5)
            # no positional embedding is added to deep prompts
            shifted = same - tiny_vit.positional_embedding[1:5]
            moved = encode_text(tiny_vit, TextPrompt(emb, eot, deep=[shifted]), forced)
            assert (moved - plain).abs().max() > 1e-3


def test_cocoop_groups_equal_per_group_loop(deep_model, spy):
    frozen, eot = coop_prompts(deep_model, 4)
    ctx = (0.02 * torch.randn(4, 128)).requires_grad_()
    shift = torch.randn(3, 1, 128) * 0.02  # per-image meta-net bias
    deep = [(0.02 * torch.randn(3, 4, 128)).requires_grad_(), (0.02 * torch.randn(4, 128)).requires_grad_()]
    leaves = [ctx, *deep]

    def grouped():
        return torch.stack([assemble(frozen, ctx + shift[b]) for b in range(3)])

    weights = torch.randn(3, len(NAMES), 128)
    ref = torch.stack([reference(deep_model, assemble(frozen, ctx + shift[b]), eot, [deep[0][b], deep[1]])
                       for b in range(3)])
    ref_grads = torch.autograd.grad((ref * weights).sum(), leaves)
    for forced in (False, None, True):
        spy.clear()
        out = encode_text(deep_model, TextPrompt(grouped(), eot, deep=deep), shared_prefix=forced)
        assert out.shape == (3, len(NAMES), 128)
        assert spy == ["_encode_runs" if forced is False else "_encode_shared"]
        assert_rel(out, ref, 1e-5)
        for grad, ref_grad in zip(torch.autograd.grad((out * weights).sum(), leaves), ref_grads):
            assert_rel(grad, ref_grad, 1e-4)
    with torch.no_grad():
        loop = torch.stack([encode_text(deep_model, TextPrompt(grouped()[b], eot, deep=[deep[0][b], deep[1]]))
                            for b in range(3)])
        assert_rel(encode_text(deep_model, TextPrompt(grouped(), eot, deep=deep)), loop, 1e-5)


def test_explicit_prefix_equals_detected(tiny_vit, spy):
    frozen, eot = coop_prompts(tiny_vit, 4)
    ctx = (0.02 * torch.randn(4, 128)).requires_grad_()
    weights = torch.randn(len(NAMES), 128)
    detected = encode_text(tiny_vit, TextPrompt(assemble(frozen, ctx), eot))
    (grad_detected,) = torch.autograd.grad((detected * weights).sum(), ctx)
    head = torch.cat([frozen[0, :1], ctx])  # (Lp, D): SOS + ctx
    for prefix in (head, head[None]):
        for forced in (None, False):
            spy.clear()
            out = encode_text(tiny_vit, TextPrompt(frozen[:, 5:], eot, prefix=prefix), forced)
            assert spy == ["_encode_shared" if forced is None else "_encode_runs"]
            assert_rel(out, detected, 1e-5)
            (grad,) = torch.autograd.grad((out * weights).sum(), ctx)
            assert_rel(grad, grad_detected, 1e-4)
    # grouped embeddings with one prefix for all groups
    with torch.no_grad():
        out = encode_text(tiny_vit, TextPrompt(frozen[None, :, 5:].expand(2, -1, -1, -1), eot, prefix=head))
        assert out.shape == (2, len(NAMES), 128)
        assert_rel(out[1], detected, 1e-5)


def test_class_specific_context_falls_back(tiny_vit, spy):
    frozen, eot = coop_prompts(tiny_vit, 4)
    ctx = (0.02 * torch.randn(len(NAMES), 4, 128)).requires_grad_()
    assert encode._shared_length(assemble(frozen, ctx)[None], int(eot.min())) == 1  # SOS only
    run_all(tiny_vit, lambda: assemble(frozen, ctx), eot, spy, leaves=[ctx], expect_shared=False)


@pytest.mark.parametrize("position, shared", [("middle", True), ("front", False)])
def test_class_token_positions(tiny_vit, spy, position, shared):
    frozen, eot = coop_prompts(tiny_vit, 4)
    name_lens = [len(clip.clip._tokenizer().encode(n)) for n in NAMES]
    ctx = (0.02 * torch.randn(4, 128)).requires_grad_()
    run_all(tiny_vit, lambda: assemble(frozen, ctx, position, name_lens), eot, spy, leaves=[ctx],
            expect_shared=shared)


def test_deep_prompts_outside_prefix_fall_back(deep_model, spy):
    frozen, eot = coop_prompts(deep_model, 2)
    ctx = (0.02 * torch.randn(2, 128)).requires_grad_()
    deep = [(0.02 * torch.randn(2, 128)).requires_grad_() for _ in range(3)]
    emb = assemble(frozen, ctx)
    # positions 3..4 are the class name's: past the shared prefix [SOS, c1, c2]
    with pytest.raises(ValueError, match="shared_prefix=True"):
        encode_text(deep_model, TextPrompt(emb, eot, deep=deep, deep_start=3), shared_prefix=True)
    spy.clear()
    out = encode_text(deep_model, TextPrompt(emb, eot, deep=deep, deep_start=3))
    assert spy == ["_encode_runs"]
    ref = reference(deep_model, emb, eot, deep, start=3)
    assert_rel(out, ref, 1e-5)
    weights = torch.randn_like(ref)
    for grad, ref_grad in zip(torch.autograd.grad((out * weights).sum(), [ctx, *deep]),
                              torch.autograd.grad((ref * weights).sum(), [ctx, *deep])):
        assert_rel(grad, ref_grad, 1e-4)


def test_prefix_detection_stops_at_difference_and_before_eot(tiny_vit):
    ids = clip.tokenize(["a photo of a dog.", "a photo of a cat.", "a photo of the dog."])
    with torch.no_grad():
        emb = tiny_vit.token_embedding(ids)
    eot = ids.argmax(-1)
    assert encode._shared_length(emb[None], int(eot.min())) == 4  # SOS a photo of
    assert encode._shared_length(emb[None, :2], int(eot.min())) == 5  # ... a
    same = emb[None, :1].expand(1, 3, -1, -1)  # identical prompts: everything up to the EOT
    assert encode._shared_length(same, int(eot[0])) == int(eot[0])
    with torch.no_grad():
        out = encode_text(tiny_vit, TextPrompt(same[0], eot[:1].expand(3)), shared_prefix=True)
        assert_rel(out, tiny_vit.encode_text(ids[:1]).expand(3, -1), 1e-5)
    # groups: the shortest agreement over all groups counts
    assert encode._shared_length(torch.stack([emb[:2], emb[[0, 2]]]), int(eot.min())) == 4


def test_autocast_bf16_cpu(tiny_vit):
    frozen, eot = coop_prompts(tiny_vit, 4)
    ctx = (0.02 * torch.randn(4, 128)).requires_grad_()
    full = encode_text(tiny_vit, TextPrompt(assemble(frozen, ctx), eot)).detach()
    for forced in (False, None):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = encode_text(tiny_vit, TextPrompt(assemble(frozen, ctx), eot), forced)
        assert out.dtype == torch.bfloat16
        assert torch.nn.functional.cosine_similarity(out.float(), full).min() > 0.99
        (grad,) = torch.autograd.grad(out.float().sum(), ctx)
        assert torch.isfinite(grad).all()


def test_fp16_model_on_cpu(tiny_vit):
    half = copy.deepcopy(tiny_vit)
    convert_weights(half)
    half.requires_grad_(False)
    assert half.dtype == torch.float16
    frozen, eot = coop_prompts(half, 4)
    ctx = (0.02 * torch.randn(4, 128)).half().requires_grad_()  # CoOp's fp16 leaf
    deep = [(0.02 * torch.randn(4, 128)).requires_grad_()]  # MaPLe keeps deep prompts fp32
    with torch.no_grad():
        full = encode_text(tiny_vit, TextPrompt(assemble(frozen.float(), ctx.float()), eot, deep=deep))
    for forced in (False, None):
        out = encode_text(half, TextPrompt(assemble(frozen.half(), ctx), eot, deep=deep), forced)
        assert out.dtype == torch.float16
        assert torch.nn.functional.cosine_similarity(out.float(), full).min() > 0.99
        grads = torch.autograd.grad(out.float().sum(), [ctx, *deep])
        assert grads[0].dtype == torch.float16 and all(torch.isfinite(g).all() for g in grads)


def test_bad_inputs_raise(tiny_vit):
    frozen, eot = coop_prompts(tiny_vit, 4)
    with pytest.raises(ValueError, match="eot"):
        encode_text(tiny_vit, TextPrompt(frozen, eot[:2]))
    with pytest.raises(ValueError, match="beyond"):
        encode_text(tiny_vit, TextPrompt(frozen[:, :5], eot))
    with pytest.raises(ValueError, match="deep"):
        encode_text(tiny_vit, TextPrompt(frozen, eot, deep=[torch.zeros(2, 3, 2, 128)]))
