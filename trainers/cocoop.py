"""CoCoOp (Zhou et al., CVPR 2022): CoOp's context shifted per image by a small meta-network."""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, ClassVar, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode
from yacs.config import CfgNode as CN

from clip.encode import encode_text
from clip.model import CLIP
from clip.prompts import TextPrompt
from dassl.engine import TRAINER_REGISTRY

from .base import PromptTrainer
from .common import l2_normalize
from .prompting import ClassPrompts, coop_context, text_width

# Sequences per text-encoder call at most (B images x n_cls classes): a test batch of 100 images
# on ImageNet would otherwise hold 100k sequences at once. Chunking by images is exact.
MAX_SEQUENCES_PER_CALL = 8192


def build_meta_net(vis_dim: int, ctx_dim: int) -> nn.Sequential:
    """CoCoOp's meta-net: Linear(vis_dim -> vis_dim // 16) -> ReLU -> Linear(-> ctx_dim)."""
    return nn.Sequential(OrderedDict([
        ("linear1", nn.Linear(vis_dim, vis_dim // 16)),
        ("relu", nn.ReLU(inplace=True)),
        ("linear2", nn.Linear(vis_dim // 16, ctx_dim)),
    ]))


def per_image_logits(clip_model: CLIP, text_prompt: Callable[[Tensor], TextPrompt], image_features: Tensor,
                     n_cls: int) -> Tensor:
    """Logits (B, n_cls) of per-image prompts: text_prompt(features (b, D)) gives b groups of n_cls.

    One grouped encoder call per chunk of images (image b = group b), not one call per image.
    """
    image_features = l2_normalize(image_features)
    step = max(1, MAX_SEQUENCES_PER_CALL // n_cls)
    text_features = torch.cat([
        l2_normalize(encode_text(clip_model, text_prompt(chunk))) for chunk in image_features.split(step)
    ])
    return clip_model.logit_scale.exp() * (text_features @ image_features.unsqueeze(-1)).squeeze(-1)


class PromptLearner(ClassPrompts):
    """Shared `ctx` (n, w) and `meta_net` (vis_dim -> vis_dim // 16 -> w) giving a per-image shift."""

    def __init__(self, cfg: CfgNode, classnames: Sequence[str], clip_model: CLIP):
        opts = cfg.TRAINER.COCOOP
        # Same order of random draws as the reference: context, then meta-net.
        init = coop_context(clip_model, opts.N_CTX, opts.CTX_INIT, False, len(classnames))
        ctx = nn.Parameter(init.vectors)
        vis_dim, ctx_dim = clip_model.visual.output_dim, text_width(clip_model)
        meta_net = build_meta_net(vis_dim, ctx_dim)
        if clip_model.dtype == torch.float16:
            meta_net.half()
        super().__init__(clip_model, classnames, init.n_ctx, init.prefix, "end")
        self.ctx = ctx
        self.meta_net = meta_net

    def shifted_ctx(self, image_features: Tensor) -> Tensor:
        """(B, n, w): ctx + meta_net(features), the same shift on every context token."""
        return self.ctx + self.meta_net(image_features).unsqueeze(1)

    def forward(self, image_features: Tensor) -> Tensor:
        """Per-image class prompts (B, n_cls, 77, w) for normalised image features (B, vis_dim)."""
        return self.assemble(self.shifted_ctx(image_features).unsqueeze(1))

    def text_prompt(self, image_features: Tensor) -> TextPrompt:
        """B groups of n_cls prompts, cut after the last EOT."""
        return self.prompt(self.shifted_ctx(image_features).unsqueeze(1))


class CustomCLIP(nn.Module):
    # The meta-net sees the image only through the frozen tower's output: test-time image features
    # may be cached (trainers/image_cache.py).
    frozen_image_encoder: ClassVar[bool] = True

    def __init__(self, clip_model: CLIP, prompt_learner: PromptLearner):
        super().__init__()
        self.prompt_learner = prompt_learner
        self.clip = clip_model

    @property
    def dtype(self) -> torch.dtype:
        return self.clip.dtype

    def encode_image(self, image: Tensor) -> Tensor:
        """The frozen image tower's raw output (B, D)."""
        return self.clip.encode_image(image.type(self.dtype))

    def forward(self, image: Tensor, label: Optional[Tensor] = None) -> Tensor:
        """Logits (B, n_cls); in training mode (of the learner) the CE loss instead."""
        return self.forward_features(self.encode_image(image), label)

    def forward_features(self, image_features: Tensor, label: Optional[Tensor] = None) -> Tensor:
        """`forward` from `encode_image`'s output."""
        logits = per_image_logits(self.clip, self.prompt_learner.text_prompt, image_features,
                                  self.prompt_learner.n_cls)
        if self.prompt_learner.training:
            return F.cross_entropy(logits, label)
        return logits


@TRAINER_REGISTRY.register()
class CoCoOp(PromptTrainer):
    config_node = "COCOOP"

    @staticmethod
    def extend_cfg(cfg: CfgNode) -> None:
        cfg.TRAINER.COCOOP = CN()
        cfg.TRAINER.COCOOP.N_CTX = 16  # number of context vectors
        cfg.TRAINER.COCOOP.CTX_INIT = ""  # initialization words (overrides N_CTX)
        cfg.TRAINER.COCOOP.PREC = "fp16"  # fp16, fp32, amp (bf16 also accepted)

    @classmethod
    def build_custom_clip(cls, cfg: CfgNode, classnames: list[str], clip_model: CLIP) -> nn.Module:
        return CustomCLIP(clip_model, PromptLearner(cfg, classnames, clip_model))

    def compute_loss(self, image: Tensor, label: Tensor) -> tuple[Tensor, dict[str, float]]:
        loss = self.model(image, label)
        return loss, {"loss": loss.item()}
