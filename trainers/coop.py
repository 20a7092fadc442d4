"""CoOp (Zhou et al., IJCV 2022): a learnable context in front of (or around) each class name."""
from __future__ import annotations

from typing import Sequence

from torch import nn
from yacs.config import CfgNode
from yacs.config import CfgNode as CN

from clip.model import CLIP
from dassl.engine import TRAINER_REGISTRY

from . import label_alignment
from .base import PromptCLIP, PromptTrainer
from .prompting import ContextPrompts


class PromptLearner(ContextPrompts):
    """`ctx` (n, w) shared or (n_cls, n, w) class-specific, plus the frozen class tokens."""

    def __init__(self, cfg: CfgNode, classnames: Sequence[str], clip_model: CLIP):
        opts = cfg.TRAINER.COOP
        super().__init__(clip_model, classnames, opts.N_CTX, opts.CTX_INIT, opts.CSC, opts.CLASS_TOKEN_POSITION)


@TRAINER_REGISTRY.register()
class CoOp(label_alignment.LabelAlignmentMixin, PromptTrainer):
    """CoOp; with TRAINER.LAMM.ENABLED also LAMM (FREEZE_CTX: LAMM alone) or CoOp+LAMM."""

    config_node = "COOP"

    @staticmethod
    def extend_cfg(cfg: CfgNode) -> None:
        cfg.TRAINER.COOP = CN()
        cfg.TRAINER.COOP.N_CTX = 16  # number of context vectors
        cfg.TRAINER.COOP.CSC = False  # class-specific context
        cfg.TRAINER.COOP.CTX_INIT = ""  # initialization words (overrides N_CTX)
        cfg.TRAINER.COOP.PREC = "fp16"  # fp16, fp32, amp (bf16 also accepted)
        cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"  # end, middle or front
        label_alignment.extend_cfg(cfg)  # TRAINER.LAMM.*

    @classmethod
    def build_custom_clip(cls, cfg: CfgNode, classnames: list[str], clip_model: CLIP) -> nn.Module:
        return cls.with_labels(cfg, PromptCLIP(clip_model, PromptLearner(cfg, classnames, clip_model)), clip_model)
