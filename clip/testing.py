"""Tiny randomly initialised CLIP checkpoints in OpenAI's file formats, for tests and demos.

They have the real vocabulary (49408) and context (77) and input resolution 224, but few layers.
The ViT has vision width 768 (MaPLe's text->vision coupling size) while the text width is 128, so
nothing may silently assume 512.
"""
from __future__ import annotations

import warnings
from typing import Dict

import torch
from torch import Tensor, nn

from .model import CLIP, convert_weights

TEXT_WIDTH = 128
EMBED_DIM = 128
VIT_WIDTH = 768
VIT_PATCH = 32
RN_WIDTH = 16


def tiny_clip(arch: str = "ViT", seed: int = 0, text_layers: int = 2, vision_layers: int = 2) -> CLIP:
    """A small fp32 CLIP ("ViT" or "RN") with CLIP's initialisation scales, from `seed` only.

    vision_layers is the ViT depth; the ResNet always has one bottleneck per stage.
    """
    if arch not in ("ViT", "RN"):
        raise ValueError(f"arch must be 'ViT' or 'RN', got {arch!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if arch == "ViT":
            model = CLIP(EMBED_DIM, 224, vision_layers, VIT_WIDTH, VIT_PATCH, 77, 49408,
                         TEXT_WIDTH, TEXT_WIDTH // 64, text_layers)
        else:
            model = CLIP(EMBED_DIM, 224, (1,) * 4, RN_WIDTH, None, 77, 49408,
                         TEXT_WIDTH, TEXT_WIDTH // 64, text_layers)
        # Non-trivial biases and BatchNorm statistics, so comparisons exercise them too.
        for module in model.modules():
            if isinstance(module, nn.MultiheadAttention):
                nn.init.normal_(module.in_proj_bias, std=0.02)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, mean=1.0, std=0.1)
                nn.init.normal_(module.bias, std=0.1)
                module.running_mean.normal_(std=0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


class _Holder(nn.Module):
    """Holds named tensors so that a scripted copy's state_dict() has exactly those keys."""

    def __init__(self, tensors: Dict[str, Tensor]):
        super().__init__()
        for key, tensor in tensors.items():
            *path, leaf = key.split(".")
            module: nn.Module = self
            for part in path:
                if part not in module._modules:
                    module.add_module(part, nn.Module())
                module = module._modules[part]
            module.register_buffer(leaf, tensor)

    def forward(self) -> int:
        return 0


def write_tiny_checkpoint(path: str, arch: str = "ViT", jit: bool = False, seed: int = 0,
                          text_layers: int = 2, vision_layers: int = 2) -> str:
    """Write `tiny_clip(...)` as OpenAI ships weights (fp16 where OpenAI has fp16) and return path.

    jit=True writes a TorchScript archive whose state_dict() yields the OpenAI keys (plus the
    `input_resolution`, `context_length` and `vocab_size` entries OpenAI's archives carry);
    otherwise a plain state dict saved with torch.save.
    """
    model = tiny_clip(arch, seed, text_layers, vision_layers)
    convert_weights(model)
    state_dict = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if not jit:
        torch.save(state_dict, path)
        return path
    state_dict.update(
        input_resolution=torch.tensor(224),
        context_length=torch.tensor(77),
        vocab_size=torch.tensor(49408),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript deprecation notices
        torch.jit.save(torch.jit.script(_Holder(state_dict)), path)
    return path
