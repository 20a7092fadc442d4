"""clip/model.py: architectures, weights conversion, parity with open_clip, truncation, vision prompts."""
import open_clip
import pytest
import torch
import torch.nn.functional as F

import clip
from clip.clip import load_state_dict_file
from clip.model import CLIP, LayerNorm, attention, build_model, causal_mask, infer_config
from clip.prompts import VisionPrompt

# OpenAI's released models: CLIP(...) arguments (text heads = width // 64) and parameter counts.
OPENAI_CONFIGS = {
    "RN50": ((1024, 224, (3, 4, 6, 3), 64, None, 77, 49408, 512, 8, 12), 102_007_137),
    "RN101": ((512, 224, (3, 4, 23, 3), 64, None, 77, 49408, 512, 8, 12), 119_688_033),
    "RN50x4": ((640, 288, (4, 6, 10, 6), 80, None, 77, 49408, 640, 10, 12), 178_300_601),
    "RN50x16": ((768, 384, (6, 8, 18, 8), 96, None, 77, 49408, 768, 12, 12), 290_979_217),
    "RN50x64": ((1024, 448, (3, 15, 36, 10), 128, None, 77, 49408, 1024, 16, 12), 623_258_305),
    "ViT-B/32": ((512, 224, 12, 768, 32, 77, 49408, 512, 8, 12), 151_277_313),
    "ViT-B/16": ((512, 224, 12, 768, 16, 77, 49408, 512, 8, 12), 149_620_737),
    "ViT-L/14": ((768, 224, 24, 1024, 14, 77, 49408, 768, 12, 12), 427_616_513),
    "ViT-L/14@336px": ((768, 336, 24, 1024, 14, 77, 49408, 768, 12, 12), 427_944_193),
}
CONFIG_KEYS = ("embed_dim", "image_resolution", "vision_layers", "vision_width", "vision_patch_size",
               "context_length", "vocab_size", "transformer_width", "transformer_heads",
               "transformer_layers")
OPEN_CLIP_NAMES = {"ViT-B/32": "ViT-B-32", "ViT-B/16": "ViT-B-16", "ViT-L/14": "ViT-L-14",
                   "ViT-L/14@336px": "ViT-L-14-336"}


def _texts(n_ctx=77):
    """Token ids with EOTs at varied positions (one at the very end)."""
    ids = clip.tokenize(["a photo of a dog.", "x", "a much longer caption about a golden retriever "
                         "playing in the park on a sunny day"], context_length=n_ctx)
    full = torch.randint(1, 49000, (1, n_ctx), dtype=ids.dtype, generator=torch.Generator().manual_seed(0))
    full[0, 0], full[0, -1] = 49406, 49407
    return torch.cat([ids, full])


def _images(n=2, res=224, seed=0):
    return torch.randn(n, 3, res, res, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(OPENAI_CONFIGS))
def test_openai_architectures_on_meta(name):
    """Real-sized models on the meta device: inferred config, size, shapes, open_clip's key set."""
    args, n_params = OPENAI_CONFIGS[name]
    with torch.device("meta"):
        model = CLIP(*args)
    sd = model.state_dict()
    assert infer_config(sd) == dict(zip(CONFIG_KEYS, args))
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert "transformer.resblocks.0.attn_mask" not in sd  # OpenAI files carry no mask
    embed, res, text_width = args[0], args[1], args[7]
    assert model.visual.output_dim == embed and model.text_projection.shape == (text_width, embed)
    assert model.visual.input_resolution == res
    if name == "ViT-L/14@336px":  # one forward pass (meta ops are slow): patch 14 at 336 px fits
        assert model.encode_image(torch.empty(2, 3, res, res, device="meta")).shape == (2, embed)

    with torch.device("meta"):
        cfg = open_clip.get_model_config(OPEN_CLIP_NAMES.get(name, name))
        theirs = open_clip.model.CLIP(**cfg, quick_gelu=True).state_dict()
    assert set(sd) == set(theirs)
    assert all(sd[k].shape == theirs[k].shape for k in sd)


SMALL_CONFIGS = {
    "vit_p16_res64": (64, 64, 2, 128, 16, 77, 49408, 64, 1, 1),
    "vit_p14_res42": (32, 42, 1, 64, 14, 77, 49408, 128, 2, 2),
    "rn_2111_res64": (64, 64, (2, 1, 1, 1), 16, None, 77, 49408, 64, 1, 1),
    "rn_1211_res96": (48, 96, (1, 2, 1, 1), 8, None, 77, 49408, 64, 1, 2),
}


@pytest.mark.parametrize("name", list(SMALL_CONFIGS))
def test_small_architectures_build_and_run(name):
    args = SMALL_CONFIGS[name]
    torch.manual_seed(0)
    sd = CLIP(*args).state_dict()
    model = build_model(sd)
    assert infer_config(sd) == dict(zip(CONFIG_KEYS, args))
    assert not model.training and model.dtype == torch.float16
    model.float()
    res, embed = args[1], args[0]
    text = _texts()
    with torch.no_grad():
        assert model.encode_image(_images(3, res)).shape == (3, embed)
        assert model.encode_text(text).shape == (len(text), embed)
        per_image, per_text = model(_images(3, res), text)
    assert per_image.shape == (3, len(text)) and torch.equal(per_text, per_image.t())


@pytest.mark.parametrize("arch", ["vit", "rn"])
def test_state_dict_round_trip_and_convert_weights(arch, tiny_vit_path, tiny_rn_path):
    sd = load_state_dict_file(tiny_vit_path if arch == "vit" else tiny_rn_path)
    model = build_model(sd)
    out = model.state_dict()
    assert set(out) == set(sd)
    for k in sd:
        assert out[k].dtype == sd[k].dtype and torch.equal(out[k], sd[k]), k

    fp16 = {k for k, v in out.items() if v.dtype == torch.float16}
    fp32 = {k for k, v in out.items() if v.dtype == torch.float32}
    for k in fp16:
        assert k.endswith(("weight", "bias", "proj", "text_projection")), k
        assert not any(s in k for s in ("ln_", "bn", "downsample.1", "token_embedding")), k
    assert {"text_projection", "transformer.resblocks.0.attn.in_proj_weight",
            "transformer.resblocks.0.attn.in_proj_bias", "transformer.resblocks.0.attn.out_proj.weight",
            "transformer.resblocks.0.mlp.c_fc.weight", "visual.conv1.weight"} <= fp16
    assert {"token_embedding.weight", "positional_embedding", "logit_scale", "ln_final.weight",
            "transformer.resblocks.0.ln_1.weight"} <= fp32
    if arch == "vit":
        assert "visual.proj" in fp16
        assert {"visual.class_embedding", "visual.positional_embedding", "visual.ln_pre.weight"} <= fp32
    else:
        assert {"visual.attnpool.q_proj.weight", "visual.attnpool.c_proj.bias"} <= fp16
        assert {"visual.attnpool.positional_embedding", "visual.bn1.weight",
                "visual.layer1.0.bn3.running_var", "visual.layer1.0.downsample.1.weight"} <= fp32


@pytest.mark.parametrize("arch", ["vit", "rn"])
def test_features_equal_open_clip(arch, tiny_vit_path, tiny_rn_path):
    sd = load_state_dict_file(tiny_vit_path if arch == "vit" else tiny_rn_path)
    ours = build_model(sd).float()
    theirs = open_clip.model.build_model_from_openai_state_dict(dict(sd), cast_dtype=None).float().eval()
    images, text = _images(2), _texts()
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(images), theirs.encode_image(images),
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(ours.encode_text(text), theirs.encode_text(text), atol=1e-5, rtol=0)


def _reference_text(model, text):
    """Full-length text path as CoOp's TextEncoder runs it, with nn.MultiheadAttention's own math."""
    dtype = model.dtype
    x = model.token_embedding(text).type(dtype) + model.positional_embedding.type(dtype)
    x = x.permute(1, 0, 2)
    for block in model.transformer.resblocks:
        h = block.ln_1(x)
        x = x + block.attn(h, h, h, need_weights=False, attn_mask=block.attn_mask)[0]
        x = x + block.mlp(block.ln_2(x))
    x = model.ln_final(x.permute(1, 0, 2)).type(dtype)
    return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ model.text_projection


def test_truncated_encode_text_equals_full_length(tiny_vit):
    text = _texts()[:3]  # last EOT well before 77, so encode_text really truncates
    assert int(text.argmax(-1).max()) < 40
    with torch.no_grad():
        truncated = tiny_vit.encode_text(text)
        torch.testing.assert_close(truncated, _reference_text(tiny_vit, text), atol=1e-5, rtol=0)
        # OpenAI's public pieces (sequence-first transformer) give the same result at full length.
        x = tiny_vit.token_embedding(text) + tiny_vit.positional_embedding
        x = tiny_vit.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = tiny_vit.ln_final(x)[torch.arange(3), text.argmax(-1)] @ tiny_vit.text_projection
        torch.testing.assert_close(truncated, x, atol=1e-5, rtol=0)
        # A batch whose EOT sits at position 76 runs the whole context.
        torch.testing.assert_close(tiny_vit.encode_text(_texts()), _reference_text(tiny_vit, _texts()),
                                   atol=1e-5, rtol=0)


def test_attention_matches_multihead_attention():
    torch.manual_seed(0)
    attn = torch.nn.MultiheadAttention(64, 4).eval()
    torch.nn.init.normal_(attn.in_proj_bias, std=0.1)
    x = torch.randn(3, 10, 64)  # batch-first
    mask = causal_mask(10)
    with torch.no_grad():
        ref = attn(*(x.transpose(0, 1),) * 3, need_weights=False)[0].transpose(0, 1)
        torch.testing.assert_close(attention(attn, x), ref, atol=1e-6, rtol=0)
        ref_causal = attn(*(x.transpose(0, 1),) * 3, need_weights=False, attn_mask=mask)[0].transpose(0, 1)
        torch.testing.assert_close(attention(attn, x, attn_mask=mask), ref_causal, atol=1e-6, rtol=0)
        torch.testing.assert_close(attention(attn, x, is_causal=True), ref_causal, atol=1e-6, rtol=0)
        # Queries from the last 4 tokens, keys/values from all 10 (a cached prefix of 6).
        torch.testing.assert_close(attention(attn, x[:, 6:], x, is_causal=True), ref_causal[:, 6:],
                                   atol=1e-6, rtol=0)
        torch.testing.assert_close(attention(attn, x[:, 6:], x, attn_mask=mask[6:]), ref_causal[:, 6:],
                                   atol=1e-6, rtol=0)


def test_block_with_context_equals_full_run(tiny_vit):
    block = tiny_vit.transformer.resblocks[0]
    x = torch.randn(2, 12, tiny_vit.ln_final.weight.shape[0])
    with torch.no_grad():
        full = block.forward_bf(x)
        torch.testing.assert_close(block.forward_bf(x[:, 5:], context=x[:, :5]), full[:, 5:],
                                   atol=1e-6, rtol=0)
        torch.testing.assert_close(block(x.transpose(0, 1)).transpose(0, 1), full)


# ---- vision prompts -------------------------------------------------------------------------

def _reference_vit(visual, images, shallow=None, deep=(), position="end"):
    """MaPLe/MVLPT injection written out with OpenAI's pieces and nn.MultiheadAttention."""
    x = visual.conv1(images)
    b, w = x.shape[:2]
    x = x.reshape(b, w, -1).permute(0, 2, 1)
    x = torch.cat([visual.class_embedding + torch.zeros(b, 1, w), x], dim=1) + visual.positional_embedding

    def batched(p):
        return p if p.dim() == 3 else p.unsqueeze(0).expand(b, -1, -1)

    n = 0 if shallow is None else shallow.shape[-2]
    if shallow is not None and position == "end":
        x = torch.cat([x, batched(shallow)], dim=1)
    x = visual.ln_pre(x)
    if shallow is not None and position == "after_cls":
        x = torch.cat([x[:, :1], batched(shallow), x[:, 1:]], dim=1)
    x = x.permute(1, 0, 2)
    for i, block in enumerate(visual.transformer.resblocks):
        if 1 <= i <= len(deep):
            d = batched(deep[i - 1]).permute(1, 0, 2)
            x = torch.cat([x[:-n], d]) if position == "end" else torch.cat([x[:1], d, x[1 + n:]])
        h = block.ln_1(x)
        x = x + block.attn(h, h, h, need_weights=False)[0]
        x = x + block.mlp(block.ln_2(x))
    x = x.permute(1, 0, 2)
    return visual.ln_post(x[:, 0]) @ visual.proj, x


def _prompts(width, n=3, depth=4, seed=1, batch=None):
    g = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    shallow = torch.randn(*lead, n, width, generator=g)
    deep = [torch.randn(*lead, n, width, generator=g) for _ in range(depth)]
    return shallow, deep


@pytest.mark.parametrize("position", ["end", "after_cls"])
@pytest.mark.parametrize("deep_depth", [0, 1, 4])
def test_vision_prompt_modes(tiny_vit, position, deep_depth):
    width = tiny_vit.visual.conv1.weight.shape[0]
    images = _images(1)
    shallow, deep = _prompts(width, depth=deep_depth)
    with torch.no_grad():
        plain = tiny_vit.encode_image(images)
        prompt = VisionPrompt(shallow, deep, position)
        out, tokens = tiny_vit.encode_image(images, prompt, return_tokens=True)
        ref_out, ref_tokens = _reference_vit(tiny_vit.visual, images, shallow, deep, position)
    assert not torch.allclose(out, plain, atol=1e-3)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(tokens, ref_tokens, atol=1e-5, rtol=0)
    n_tokens = tiny_vit.visual.positional_embedding.shape[0] + shallow.shape[0]
    assert tokens.shape == (1, n_tokens, width)


def test_deep_prompts_matter_and_extra_entries_are_ignored(tiny_vit):
    width = tiny_vit.visual.conv1.weight.shape[0]
    depth = tiny_vit.visual.transformer.layers
    images = _images(1)
    shallow, deep = _prompts(width, depth=depth + 3)
    with torch.no_grad():
        shallow_only = tiny_vit.encode_image(images, VisionPrompt(shallow))
        used = tiny_vit.encode_image(images, VisionPrompt(shallow, deep[:depth - 1]))
        extra = tiny_vit.encode_image(images, VisionPrompt(shallow, deep))
    assert not torch.allclose(shallow_only, used, atol=1e-3)
    assert torch.equal(used, extra)


@pytest.mark.parametrize("position", ["end", "after_cls"])
def test_per_image_prompts(tiny_vit, position):
    width = tiny_vit.visual.conv1.weight.shape[0]
    images = _images(2)
    shallow, deep = _prompts(width, depth=1, batch=2)
    with torch.no_grad():
        batched = tiny_vit.encode_image(images, VisionPrompt(shallow, deep, position))
        for i in range(2):
            prompt = VisionPrompt(shallow[i], [d[i] for d in deep], position)
            single = tiny_vit.encode_image(images[i:i + 1], prompt)
            torch.testing.assert_close(batched[i:i + 1], single, atol=1e-5, rtol=0)
        shared = tiny_vit.encode_image(images, VisionPrompt(shallow[0], [deep[0][0]], position))
        for lead in (shallow[0].expand(2, -1, -1), shallow[0][None]):  # (B, n, w) and (1, n, w)
            torch.testing.assert_close(
                tiny_vit.encode_image(images, VisionPrompt(lead, [deep[0][0]], position)), shared)


def test_no_prompt_path_is_unchanged(tiny_vit):
    images = _images(2)
    with torch.no_grad():
        plain = tiny_vit.encode_image(images)
        assert torch.equal(tiny_vit.encode_image(images, VisionPrompt()), plain)
        pooled, tokens = tiny_vit.encode_image(images, return_tokens=True)
        ref_out, ref_tokens = _reference_vit(tiny_vit.visual, images)
    assert torch.equal(pooled, plain)
    torch.testing.assert_close(plain, ref_out, atol=1e-5, rtol=0)
    visual = tiny_vit.visual
    assert tokens.shape == (2, visual.positional_embedding.shape[0], visual.conv1.weight.shape[0])
    torch.testing.assert_close(tiny_vit.visual.ln_post(tokens[:, 0]) @ tiny_vit.visual.proj, plain)


def test_prompts_are_cast_and_get_gradients(tiny_vit):
    width = tiny_vit.visual.conv1.weight.shape[0]
    shallow, deep = _prompts(width, depth=1)
    shallow = (shallow * 0.1).requires_grad_()
    deep = [(deep[0] * 0.1).requires_grad_()]
    out = tiny_vit.encode_image(_images(1), VisionPrompt(shallow, deep))
    # autograd.grad, not backward: the session fixture's parameters must not collect gradients.
    grads = torch.autograd.grad(out.square().sum(), [shallow, deep[0]])
    assert all(g.abs().sum() > 0 for g in grads)
    with torch.no_grad():
        half = tiny_vit.encode_image(_images(1), VisionPrompt(shallow.half(), [deep[0].half()]))
        rounded = tiny_vit.encode_image(
            _images(1), VisionPrompt(shallow.half().float(), [deep[0].half().float()]))
    assert half.dtype == torch.float32 and torch.equal(half, rounded)


def test_bad_prompts_raise(tiny_vit):
    width = tiny_vit.visual.conv1.weight.shape[0]
    images = _images(2, res=tiny_vit.visual.input_resolution)
    with pytest.raises(ValueError, match="shallow"):
        tiny_vit.encode_image(images, VisionPrompt(deep=[torch.zeros(2, width)]))
    with pytest.raises(ValueError, match="tokens"):
        tiny_vit.encode_image(images, VisionPrompt(torch.zeros(2, width), [torch.zeros(3, width)]))
    with pytest.raises(ValueError, match="vision prompt must be"):
        tiny_vit.encode_image(images, VisionPrompt(torch.zeros(3, 2, width)))
    with pytest.raises(ValueError, match="position"):
        VisionPrompt(torch.zeros(2, width), position="middle")


def test_resnet_rejects_prompts(tiny_rn_path):
    model, _ = clip.load(tiny_rn_path, device="cpu")
    images = _images(1)
    with pytest.raises(ValueError, match="ViT"):
        model.encode_image(images, VisionPrompt(torch.zeros(2, 16)))
    with pytest.raises(ValueError, match="ViT"):
        model.encode_image(images, return_tokens=True)


def test_fp16_model_runs_on_cpu(tiny_vit_path, tiny_vit):
    half = build_model(load_state_dict_file(tiny_vit_path))
    images, text = _images(1), _texts()[:2]
    with torch.no_grad():
        img, txt = half.encode_image(images), half.encode_text(text)
        assert img.dtype == txt.dtype == torch.float16
        assert F.cosine_similarity(img.float(), tiny_vit.encode_image(images)).min() > 0.999
        assert F.cosine_similarity(txt.float(), tiny_vit.encode_text(text)).min() > 0.999



def test_layer_norm_computes_in_fp32():
    norm = LayerNorm(8)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(3, 8)
    ref = F.layer_norm(x, (8,), norm.weight, norm.bias)
    assert norm(x.half()).dtype == torch.float16
    torch.testing.assert_close(norm(x.half()).float(), ref, atol=2e-3, rtol=0)
    norm.to(torch.bfloat16)  # a model cast wholesale keeps working
    assert norm(x.bfloat16()).dtype == torch.bfloat16 and norm(x).dtype == torch.float32
