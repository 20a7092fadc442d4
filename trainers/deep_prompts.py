"""Deep prompts in both CLIP towers: the pieces MaPLe, IVLP, VPT-deep (and SAP) share.

A method's learned tensors live in one `PromptModule`, the module its trainer registers, optimises
and saves. Its children carry the attribute names of the reference's CustomCLIP
(`prompt_learner`, `text_encoder.transformer.resblocks.{i}.VPT_shallow`, `image_encoder.VPT`, ...),
so parameter names and checkpoint keys are the reference's. Differences from the reference:
- our checkpoints hold only these learned tensors (and the class buffers), not the frozen CLIP
  (ViT-B/16: 3.6M values for MaPLe, 31K for IVLP 2+2, against CLIP's 150M);
- the reference's checkpoints (the whole CustomCLIP) load: their frozen-CLIP entries are skipped.
The frozen CLIP stays outside the registered module (`PromptedCLIP.clip`).
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clip.model import CLIP, VisionTransformer
from clip.prompts import TextPrompt, VisionPrompt
from dassl.cli import ConfigError

from .base import PromptCLIP, PromptTrainer
from .prompting import ContextInit, random_context, text_width, word_context

MAX_WORD_INIT_TOKENS = 4  # MaPLe's guard: longer contexts never start from CTX_INIT


def vision_width(clip_model: CLIP, method: str) -> int:
    """Width of the ViT image tower; a ResNet tower has no place for prompt tokens."""
    if not isinstance(clip_model.visual, VisionTransformer):
        raise ConfigError(
            f"{method} puts prompt tokens into the image transformer and needs a ViT backbone "
            "(e.g. MODEL.BACKBONE.NAME ViT-B/16); this CLIP has a ResNet image tower"
        )
    return clip_model.visual.conv1.weight.shape[0]


def check_depth(depth: int, layers: int, key: str) -> None:
    """Deep prompts exist for blocks 1..depth-1 only: a depth beyond the tower would train unused tokens."""
    if depth > layers:
        raise ConfigError(f"{key} is {depth} but the transformer has {layers} blocks: use at most {layers}")


def maple_context(clip_model: CLIP, n_ctx: int, ctx_init: str) -> ContextInit:
    """MaPLe's init: the first n tokens of CTX_INIT when it is set and n <= 4, else N(0, 0.02).

    The prompt text keeps the whole CTX_INIT: "a photo of a" with n = 2 learns "a photo" and keeps
    "of a" as fixed tokens after it, as every shipped config of the reference runs.
    """
    if ctx_init and n_ctx <= MAX_WORD_INIT_TOKENS:
        return word_context(clip_model, ctx_init, n_ctx)
    return random_context(n_ctx, text_width(clip_model), clip_model.dtype)


def normal_tokens(n_ctx: int, width: int) -> nn.Parameter:
    """(n, width) fp32 tokens ~ N(0, 0.02) (fp32 whatever the model dtype, as the reference)."""
    tokens = torch.empty(n_ctx, width)
    nn.init.normal_(tokens, std=0.02)
    return nn.Parameter(tokens)


def fp16_rounded(tokens: Tensor) -> Tensor:
    """The values `tokens.half()` has, in tokens' dtype (gradients are rounded the same way)."""
    return tokens.half().to(tokens.dtype)


class PromptTokens(nn.Module):
    """The tokens one transformer block inserts, under the reference's name `VPT_shallow`."""

    def __init__(self, n_ctx: int, width: int):
        super().__init__()
        self.VPT_shallow = normal_tokens(n_ctx, width)


class TowerPrompts(nn.Module):
    """Independent prompts of one tower, laid out as the reference's prompted CLIP holds them.

    `VPT` (n, width): the shallow prompt (vision tower; the text tower's is the learner's ctx).
    `transformer.resblocks[str(i)].VPT_shallow` (n, width), i = 1..depth-1: the deep prompt that
    replaces the prompt tokens at the input of block i.
    round_to_fp16: use the prompts' fp16 values, as the reference's `.half()` casts do when CLIP runs
    in fp32 (VPT always, IVLP with PREC fp32/amp); no effect on an fp16 model.
    """

    def __init__(self, n_ctx: int, width: int, depth: int, shallow: bool, round_to_fp16: bool):
        super().__init__()
        self.round_to_fp16 = round_to_fp16
        # Drawn in the reference's order: the shallow prompt, then block by block.
        if shallow:
            self.VPT = normal_tokens(n_ctx, width)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleDict(
            {str(i): PromptTokens(n_ctx, width) for i in range(1, depth)}
        )

    def _used(self, tokens: Tensor) -> Tensor:
        return fp16_rounded(tokens) if self.round_to_fp16 else tokens

    def deep(self) -> list[Tensor]:
        return [self._used(block.VPT_shallow) for block in self.transformer.resblocks.values()]

    def vision_prompt(self) -> VisionPrompt:
        return VisionPrompt(shallow=self._used(self.VPT), deep=self.deep())


def reference_clip_keys(clip_model: CLIP) -> frozenset[str]:
    """Names the frozen CLIP has in the reference's CustomCLIP state dict.

    There the image tower is `image_encoder`, the text transformer, positional embedding, ln_final
    and text projection sit in `text_encoder`, and the token embedding is not held at all.
    """
    keys = set()
    for key in clip_model.state_dict():
        if key.startswith("visual."):
            keys.add("image_encoder." + key[len("visual."):])
        elif key == "logit_scale":
            keys.add(key)
        elif not key.startswith("token_embedding."):
            keys.add("text_encoder." + key)
    return frozenset(keys)


class PromptModule(nn.Module):
    """Base of a method's learned part (see the module docstring); subclasses add the children."""

    def __init__(self, clip_model: CLIP):
        super().__init__()
        self._reference_clip_keys = reference_clip_keys(clip_model)

    def text_prompt(self) -> Optional[TextPrompt]:
        """The class prompts to encode (None: the method does not learn text prompts)."""
        return None

    def vision_prompt(self) -> Optional[VisionPrompt]:
        """The image-tower prompts (None: plain image tower)."""
        return None

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """As nn.Module's, skipping the frozen-CLIP entries that the reference's checkpoints hold."""
        frozen = [key for key in state_dict if key in self._reference_clip_keys]
        if frozen:
            print(f"Skipping {len(frozen)} frozen CLIP entries of the checkpoint "
                  "(the reference saves the whole model; CLIP comes from MODEL.BACKBONE.NAME)")
            state_dict = {k: v for k, v in state_dict.items() if k not in self._reference_clip_keys}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class PromptedCLIP(PromptCLIP):
    """PromptCLIP whose learned module (`prompts`, a PromptModule) may prompt both towers.

    Only without image prompts (language-only IVLP) may the trainer reuse test-time image
    features (trainers/image_cache.py).
    """

    prompt_attribute = "prompts"

    def vision_prompt(self) -> Optional[VisionPrompt]:
        return self.prompts.vision_prompt()


class DeepPromptTrainer(PromptTrainer):
    """PromptTrainer for a `PromptedCLIP`: registers `model.prompts`, trains on CE (logs the loss).

    Trainable: parameters whose name holds "prompt_learner" or "VPT" (the reference's rule; here it
    selects exactly the registered module's parameters).
    """

    trainable_keys: ClassVar[tuple[str, ...]] = ("prompt_learner", "VPT")
    class_dependent_keys: ClassVar[tuple[str, ...]] = (
        "prompt_learner.token_prefix", "prompt_learner.token_suffix",
    )

    @classmethod
    def registered_module(cls, model: nn.Module) -> nn.Module:
        return model.prompts

    def compute_loss(self, image: Tensor, label: Tensor) -> tuple[Tensor, dict[str, float]]:
        # The reference's model returns only the loss while training: no accuracy is logged.
        loss = F.cross_entropy(self.model(image), label)
        return loss, {"loss": loss.item()}
