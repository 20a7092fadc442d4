"""MaPLe (Khattak et al., CVPR 2023): deep text prompts coupled into the image tower.

Text input [SOS, ctx (n), suffix]; the deep text prompts P^i replace positions 1..n before text
blocks i = 1..J-1. Image tower: V^0 = proj(ctx) appended after [CLS, patches], and V^i = F_i(P^i)
replacing the last n tokens before image blocks i = 1..J-1. Every vision prompt is a linear
function of the text prompt at the same depth, so image gradients reach the text prompts.

Registered as `MultiModalPromptLearner` with the reference's keys (`prompt_learner.ctx`,
`prompt_learner.proj.weight`, `prompt_learner.compound_prompts_text.{k}`,
`prompt_learner.compound_prompt_projections.{k}.weight`, ...); see trainers/deep_prompts.py for
what the checkpoints hold.

Precision: PREC fp16 (CUDA) has the reference's numerics: ctx and proj fp16 and updated in fp16,
deep prompts and projections fp32, every prompt cast to the activation dtype. The reference crashes
with fp32 and amp; here they run with every parameter in fp32 (amp: autocast).
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Sequence

import torch
from torch import nn
from yacs.config import CfgNode
from yacs.config import CfgNode as CN

from clip.model import CLIP
from clip.prompts import TextPrompt, VisionPrompt
from dassl.cli import ConfigError
from dassl.engine import TRAINER_REGISTRY

from .deep_prompts import (
    DeepPromptTrainer, PromptedCLIP, PromptModule, check_depth, maple_context, normal_tokens,
    vision_width,
)
from .prompting import ClassPrompts, text_width


class MultiModalPromptLearner(ClassPrompts):
    """ctx (n, text width), proj (F_0) and J-1 deep text prompts with their projections F_1..F_{J-1}."""

    def __init__(self, cfg: CfgNode, classnames: Sequence[str], clip_model: CLIP):
        opts = cfg.TRAINER.MAPLE
        n_ctx, depth = opts.N_CTX, opts.PROMPT_DEPTH
        t_width, v_width = text_width(clip_model), vision_width(clip_model, "MaPLe")
        check_depth(depth, clip_model.transformer.layers, "TRAINER.MAPLE.PROMPT_DEPTH")
        check_depth(depth, clip_model.visual.transformer.layers, "TRAINER.MAPLE.PROMPT_DEPTH")

        # Random draws in the reference's order: ctx, proj, deep text prompts, deep projection.
        init = maple_context(clip_model, n_ctx, opts.CTX_INIT)
        print("MaPLe design: Multi-modal Prompt Learning")
        print(f'Initial context: "{init.prefix}"')
        print(f"Number of MaPLe context words (tokens): {n_ctx}")
        proj = nn.Linear(t_width, v_width)
        if clip_model.dtype == torch.float16:
            proj.half()
        deep_text = nn.ParameterList([normal_tokens(n_ctx, t_width) for _ in range(depth - 1)])
        # One layer copied J-1 times: all deep projections start identical, as in the reference.
        layer = nn.Linear(t_width, v_width)
        deep_projections = nn.ModuleList([copy.deepcopy(layer) for _ in range(depth - 1)])

        super().__init__(clip_model, classnames, n_ctx, init.prefix, "end")
        self.ctx = nn.Parameter(init.vectors)
        self.proj = proj
        self.compound_prompts_text = deep_text
        self.compound_prompt_projections = deep_projections

    def with_deep(self, prompt: TextPrompt) -> TextPrompt:
        """`prompt` with the deep text prompts at positions 1..n (right after SOS)."""
        return replace(prompt, deep=list(self.compound_prompts_text), deep_start=1)

    def text_prompt(self) -> TextPrompt:
        return self.with_deep(self.prompt(self.ctx))

    def vision_prompt(self) -> VisionPrompt:
        deep = [f(p) for f, p in zip(self.compound_prompt_projections, self.compound_prompts_text)]
        return VisionPrompt(shallow=self.proj(self.ctx), deep=deep)


class MaPLePrompts(PromptModule):
    """MaPLe's learned part: the prompt learner alone (the vision prompts are its projections)."""

    def __init__(self, cfg: CfgNode, classnames: Sequence[str], clip_model: CLIP):
        super().__init__(clip_model)
        self.prompt_learner = MultiModalPromptLearner(cfg, classnames, clip_model)

    def text_prompt(self) -> TextPrompt:
        return self.prompt_learner.text_prompt()

    def vision_prompt(self) -> VisionPrompt:
        return self.prompt_learner.vision_prompt()


@TRAINER_REGISTRY.register()
class MaPLe(DeepPromptTrainer):
    """MaPLe; saved under MultiModalPromptLearner/ as the reference."""

    config_node = "MAPLE"
    registered_name = "MultiModalPromptLearner"

    @staticmethod
    def extend_cfg(cfg: CfgNode) -> None:
        cfg.TRAINER.MAPLE = CN()
        cfg.TRAINER.MAPLE.N_CTX = 2  # number of context tokens
        cfg.TRAINER.MAPLE.CTX_INIT = "a photo of a"  # initialization words (used when N_CTX <= 4)
        cfg.TRAINER.MAPLE.PREC = "fp16"  # fp16, fp32, amp (bf16 also accepted)
        cfg.TRAINER.MAPLE.PROMPT_DEPTH = 9  # J: prompts in blocks 0..J-1 of both towers (1 = shallow)

    def check_cfg(self, cfg: CfgNode) -> None:
        super().check_cfg(cfg)
        if cfg.TRAINER.MAPLE.PROMPT_DEPTH < 1:
            raise ConfigError("TRAINER.MAPLE.PROMPT_DEPTH must be >= 1 (1 = shallow MaPLe)")
        if cfg.TRAINER.MAPLE.N_CTX < 1:
            raise ConfigError("TRAINER.MAPLE.N_CTX must be >= 1")

    @classmethod
    def build_custom_clip(cls, cfg: CfgNode, classnames: list[str], clip_model: CLIP) -> nn.Module:
        return PromptedCLIP(clip_model, MaPLePrompts(cfg, classnames, clip_model))
