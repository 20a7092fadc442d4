"""open_clip checkpoints mapped into this CLIP: `MODEL.BACKBONE.NAME open_clip:ARCH/PRETRAINED`.

ARCH is an open_clip model name (`open_clip.list_models()`, e.g. ViT-B-32) and PRETRAINED one of
its pretrained tags (`open_clip.list_pretrained()`, e.g. laion2b_s34b_b79k) or a checkpoint file
(`open_clip:ViT-B-32//path/to/file.pt`). The weights are fetched by open_clip_torch itself (its
download and cache: the Hugging Face hub cache, or `$OPEN_CLIP_CACHE_DIR`), its model is built
once, and its state dict is loaded into `clip.model.CLIP`: the parameter names of open_clip's
OpenAI-style CLIP are OpenAI's, so the key mapping is the identity on the weights, minus the
buffers open_clip keeps besides them. What differs from OpenAI's architecture is mapped
explicitly (exact GELU instead of QuickGELU in models trained without it) or refused with one
line (timm / Hugging Face towers, layer scale, other pooling, SigLIP's logit bias, ...).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Tuple

import torch
from torch import Tensor, nn

from .clip import ClipWeightsError
from .model import CLIP, QuickGELU, build_model

PREFIX = "open_clip:"
CACHE_ENV = "OPEN_CLIP_CACHE_DIR"
# Options whose value may differ from open_clip's defaults: the sizes OpenAI's CLIP also varies.
SIZE_OPTIONS = {
    "vision_cfg": {"layers", "width", "patch_size", "image_size", "patch_dropout"},  # dropout: training only
    "text_cfg": {"width", "heads", "layers"},
}
MODEL_OPTIONS = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_scale"}


class UnsupportedOpenClipModel(ClipWeightsError):
    """An open_clip architecture that is not OpenAI's CLIP."""


def parse_name(name: str) -> Tuple[str, str]:
    """"open_clip:ARCH/PRETRAINED" -> (ARCH, PRETRAINED); PRETRAINED may be a path with slashes."""
    arch, sep, pretrained = name[len(PREFIX):].partition("/")
    if not arch or not sep or not pretrained:
        raise ClipWeightsError(f"{name}: expected open_clip:ARCH/PRETRAINED, e.g. open_clip:ViT-B-32/laion2b_s34b_b79k")
    return arch, pretrained


def _unsupported_options(model_cfg: Dict[str, Any]) -> list[str]:
    """The options of an open_clip model config that our CLIP does not have."""
    import open_clip.model as oc

    problems = [f"{key}={model_cfg[key]!r}" for key in model_cfg
                if key not in MODEL_OPTIONS and model_cfg[key] not in (None, False, {})]
    for key, cls in (("vision_cfg", oc.CLIPVisionCfg), ("text_cfg", oc.CLIPTextCfg)):
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for option, value in model_cfg.get(key, {}).items():
            if option not in SIZE_OPTIONS[key] and (option not in defaults or value != defaults[option]):
                problems.append(f"{key}.{option}={value!r}")
    vision, text = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
    if isinstance(vision.get("image_size"), (list, tuple)):
        problems.append(f"vision_cfg.image_size={vision['image_size']!r} (not square)")
    width, heads = text.get("width", 512), text.get("heads", 8)
    if width != 64 * heads:
        problems.append(f"text_cfg.heads={heads} (OpenAI's CLIP has width / 64 = {width // 64} heads)")
    return problems


def _gelu_kind(model: nn.Module) -> str:
    """"quick_gelu" or "gelu": the activation of the open_clip model's MLPs."""
    from open_clip.transformer import QuickGELU as OpenClipQuickGELU

    kinds = {type(m) for name, m in model.named_modules() if name.endswith("mlp.gelu")}
    if kinds == {OpenClipQuickGELU}:
        return "quick_gelu"
    if kinds == {nn.GELU}:
        return "gelu"
    raise UnsupportedOpenClipModel(f"MLP activations {sorted(k.__name__ for k in kinds)}")


def _check_pooling(model: nn.Module) -> None:
    visual = model.visual
    if not hasattr(visual, "attnpool"):  # ViT
        if getattr(visual, "pool_type", "tok") != "tok" or getattr(visual, "final_ln_after_pool", False):
            raise UnsupportedOpenClipModel("image pooling other than the class token")
    if getattr(model, "text_pool_type", "argmax") != "argmax":
        raise UnsupportedOpenClipModel(f"text pooling {model.text_pool_type!r} (OpenAI pools at the EOT)")


def open_clip_state_dict(name: str, cache_dir: str | None = None) -> Tuple[Dict[str, Tensor], str, dict]:
    """(OpenAI-format state dict, activation, open_clip's preprocess config) of `name`.

    Raises UnsupportedOpenClipModel before any download when the architecture is not OpenAI's.
    """
    try:
        import open_clip
    except ImportError as e:
        raise ClipWeightsError(f"{name} needs open_clip_torch (pip install open_clip_torch): {e}") from e

    arch, pretrained = parse_name(name)
    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None:
        raise UnsupportedOpenClipModel(f"unknown open_clip architecture {arch!r}; see open_clip.list_models()")
    problems = _unsupported_options(model_cfg)
    if problems:
        raise UnsupportedOpenClipModel(f"{arch} is not OpenAI's CLIP architecture ({', '.join(problems)})")
    tag = open_clip.get_pretrained_cfg(arch, pretrained)
    if not tag and not os.path.isfile(os.path.expanduser(pretrained)):
        raise FileNotFoundError(
            f"{pretrained!r} is neither a pretrained tag of {arch} "
            f"({', '.join(open_clip.list_pretrained_tags_by_model(arch)) or 'none'}) nor a file")
    try:
        model = open_clip.create_model(
            arch, pretrained=pretrained if tag else os.path.expanduser(pretrained), device="cpu",
            # Built as the tag was trained (the -quickgelu configs of OpenAI-trained weights).
            force_quick_gelu=bool(tag.get("quick_gelu", False)) if tag else False,
            cache_dir=cache_dir or os.environ.get(CACHE_ENV) or None)
    except (RuntimeError, OSError, ValueError) as e:  # download failed (offline), unreadable file
        raise ClipWeightsError(f"{name}: open_clip could not load it: {' '.join(str(e).split())[:500]}") from e
    _check_pooling(model)
    activation = _gelu_kind(model)
    buffers = {name for name, _ in model.named_buffers() if name.endswith("attn_mask")}
    state_dict = {k: v for k, v in model.state_dict().items() if k not in buffers}
    preprocess = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    return state_dict, activation, preprocess


def set_activation(model: CLIP, activation: str) -> CLIP:
    """Use QuickGELU ("quick_gelu", OpenAI's) or the exact GELU ("gelu") in every MLP block."""
    make = {"quick_gelu": QuickGELU, "gelu": nn.GELU}[activation]
    for module in model.modules():
        if isinstance(module, nn.Sequential) and "gelu" in module._modules:
            module.gelu = make()
    return model


def build_open_clip_model(name: str, cache_dir: str | None = None) -> Tuple[CLIP, dict]:
    """(fp32 CLIP in eval mode, open_clip's preprocess config) for "open_clip:ARCH/PRETRAINED"."""
    state_dict, activation, preprocess = open_clip_state_dict(name, cache_dir)
    try:
        model = build_model(state_dict, fp16=False)
    except (KeyError, RuntimeError) as e:  # a key or shape our CLIP does not have
        raise UnsupportedOpenClipModel(f"{name}: its weights do not map onto OpenAI's CLIP ({e})") from e
    return set_activation(model, activation), preprocess
