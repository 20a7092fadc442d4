"""CLIP loading, numeric precision and freezing, shared by every CLIP trainer.

Precision (`TRAINER.<NAME>.PREC`), resolved on the device the trainer runs on:
- fp16: CLIP converted with `clip.model.convert_weights` (fp16 Conv/Linear/attention weights, as
  OpenAI ships them); learned prompts are created in fp16 and updated directly (no master copy),
  as in the reference. CUDA only: on CPU it falls back to fp32 with one warning line.
- fp32: the float model.
- amp: the float model under autocast; fp16 autocast with a GradScaler on CUDA, bf16 autocast
  without a scaler on CPU (CPU autocast has no fp16 kernels and bf16 needs no loss scaling).
  Without bf16 instructions (AVX512-BF16/AMX) bf16 is several times slower than fp32 on CPU.
- bf16: the float model under bf16 autocast on any device, no scaler (not in the reference).
Autocast covers the training step only; evaluation runs the float model, as the reference's amp.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ContextManager, Optional, Sequence

import torch
from torch import nn
from yacs.config import CfgNode

from clip import clip
from clip.model import CLIP, convert_weights
from dassl.cli import ConfigError

PRECISIONS = ("fp16", "fp32", "amp", "bf16")


@dataclass(frozen=True)
class Precision:
    """An effective precision: `name` is what runs, `requested` what the config asked for."""

    name: str
    requested: str
    device_type: str

    @property
    def autocast_dtype(self) -> Optional[torch.dtype]:
        if self.name == "bf16" or (self.name == "amp" and self.device_type != "cuda"):
            return torch.bfloat16
        if self.name == "amp":
            return torch.float16
        return None

    def autocast(self) -> ContextManager:
        """Autocast context for a training forward pass (a no-op for fp16/fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=dtype)

    def grad_scaler(self) -> Optional[torch.amp.GradScaler]:
        """A GradScaler for fp16 autocast (amp on CUDA), else None."""
        if self.autocast_dtype == torch.float16:
            return torch.amp.GradScaler(self.device_type)
        return None


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """The precision that runs on `device`; fp16 without CUDA becomes fp32 (one warning line)."""
    if requested not in PRECISIONS:
        raise ConfigError(f"PREC must be one of {PRECISIONS}, got {requested!r}")
    name = requested
    if requested == "fp16" and device.type != "cuda":
        # Printed (not warnings.warn) so that the line lands in log.txt next to the results.
        print(f"WARNING: PREC=fp16 needs CUDA; running CLIP in fp32 on {device.type}")
        name = "fp32"
    return Precision(name=name, requested=requested, device_type=device.type)


def load_clip_to_cpu(cfg: CfgNode) -> CLIP:
    """The fp32 CLIP named by MODEL.BACKBONE.NAME (an OpenAI model name or a checkpoint path)."""
    model, _ = clip.load(cfg.MODEL.BACKBONE.NAME, device="cpu")
    return model.float()


def check_input_size(cfg: CfgNode, clip_model: CLIP) -> None:
    resolution = clip_model.visual.input_resolution
    if cfg.INPUT.SIZE[0] != resolution:
        raise ConfigError(
            f"cfg.INPUT.SIZE ({cfg.INPUT.SIZE[0]}) must equal the input resolution of "
            f"{cfg.MODEL.BACKBONE.NAME} ({resolution}); set INPUT.SIZE ({resolution}, {resolution})"
        )


def build_clip(cfg: CfgNode, prec: str, device: torch.device) -> tuple[CLIP, Precision]:
    """Load CLIP on CPU, check INPUT.SIZE and cast it for the precision that runs on `device`."""
    print(f"Loading CLIP (backbone: {cfg.MODEL.BACKBONE.NAME})")
    clip_model = load_clip_to_cpu(cfg)
    check_input_size(cfg, clip_model)
    precision = resolve_precision(prec, device)
    if precision.name == "fp16":
        convert_weights(clip_model)
    return clip_model, precision


def freeze_except(model: nn.Module, keys: Sequence[str]) -> list[str]:
    """Train only parameters whose name contains one of `keys`; return their names."""
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad_(any(key in name for key in keys))
        if param.requires_grad:
            trainable.append(name)
    return trainable


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """x / ||x|| over the last dim, written as the reference does (no eps clamp)."""
    return x / x.norm(dim=-1, keepdim=True)
