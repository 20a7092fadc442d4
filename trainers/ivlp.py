"""IVLP: independent deep prompts in the text and the image tower (MaPLe paper's baseline).

Also "deep language prompting" (PROMPT_DEPTH_VISION 0: text prompts only). Text: MaPLe's ctx and
layout, plus per-block tokens replacing positions 1..N_CTX_TEXT before text blocks
1..PROMPT_DEPTH_TEXT-1. Image: a shallow `VPT` appended after [CLS, patches] and per-block tokens
replacing the last N_CTX_VISION tokens before image blocks 1..PROMPT_DEPTH_VISION-1. No coupling.

Registered as `VLPromptLearner` with the reference's keys (`prompt_learner.ctx`,
`text_encoder.transformer.resblocks.{i}.VPT_shallow`, `image_encoder.VPT`,
`image_encoder.transformer.resblocks.{i}.VPT_shallow`).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

from torch import nn
from yacs.config import CfgNode
from yacs.config import CfgNode as CN

from clip.model import CLIP
from clip.prompts import TextPrompt, VisionPrompt
from dassl.cli import ConfigError
from dassl.engine import TRAINER_REGISTRY

from .deep_prompts import (
    DeepPromptTrainer, PromptedCLIP, PromptModule, TowerPrompts, check_depth, maple_context,
    vision_width,
)
from .prompting import ClassPrompts, text_width


class VLPromptLearner(ClassPrompts):
    """The shallow text context `ctx` (N_CTX_TEXT, text width) and the frozen class tokens."""

    def __init__(self, cfg: CfgNode, classnames: Sequence[str], clip_model: CLIP):
        opts = cfg.TRAINER.IVLP
        init = maple_context(clip_model, opts.N_CTX_TEXT, opts.CTX_INIT)
        print("Independent V-L design")
        print(f'Initial text context: "{init.prefix}"')
        print(f"Number of context words (tokens) for Language prompting: {opts.N_CTX_TEXT}")
        print(f"Number of context words (tokens) for Vision prompting: {opts.N_CTX_VISION}")
        super().__init__(clip_model, classnames, opts.N_CTX_TEXT, init.prefix, "end")
        self.ctx = nn.Parameter(init.vectors)


class IVLPPrompts(PromptModule):
    """IVLP's learned part: text context, per-block text tokens and (optionally) vision tokens."""

    def __init__(self, cfg: CfgNode, classnames: Sequence[str], clip_model: CLIP):
        super().__init__(clip_model)
        opts = cfg.TRAINER.IVLP
        depth_v, depth_t = opts.PROMPT_DEPTH_VISION, opts.PROMPT_DEPTH_TEXT
        # Drawn in the reference's order: it builds the vision, then the text tokens inside CLIP,
        # and the prompt learner after.
        self.image_encoder: Optional[TowerPrompts] = None
        if depth_v > 0 and opts.N_CTX_VISION > 0:
            width = vision_width(clip_model, "IVLP")
            check_depth(depth_v, clip_model.visual.transformer.layers, "TRAINER.IVLP.PROMPT_DEPTH_VISION")
            self.image_encoder = TowerPrompts(opts.N_CTX_VISION, width, depth_v,
                                              shallow=True, round_to_fp16=opts.ROUND_PROMPTS_TO_FP16)
        check_depth(depth_t, clip_model.transformer.layers, "TRAINER.IVLP.PROMPT_DEPTH_TEXT")
        self.text_encoder = TowerPrompts(opts.N_CTX_TEXT, text_width(clip_model), depth_t,
                                         shallow=False, round_to_fp16=opts.ROUND_PROMPTS_TO_FP16)
        self.prompt_learner = VLPromptLearner(cfg, classnames, clip_model)

    def text_prompt(self) -> TextPrompt:
        learner = self.prompt_learner
        # The deep text prompts replace the context positions 1..N_CTX_TEXT (right after SOS).
        return replace(learner.prompt(learner.ctx), deep=self.text_encoder.deep(), deep_start=1)

    def vision_prompt(self) -> Optional[VisionPrompt]:
        return None if self.image_encoder is None else self.image_encoder.vision_prompt()


@TRAINER_REGISTRY.register()
class IVLP(DeepPromptTrainer):
    """IVLP and deep language prompting; saved under VLPromptLearner/ as the reference."""

    config_node = "IVLP"
    registered_name = "VLPromptLearner"

    @staticmethod
    def extend_cfg(cfg: CfgNode) -> None:
        cfg.TRAINER.IVLP = CN()
        cfg.TRAINER.IVLP.N_CTX_VISION = 2  # number of vision context tokens
        cfg.TRAINER.IVLP.N_CTX_TEXT = 2  # number of text context tokens
        cfg.TRAINER.IVLP.CTX_INIT = "a photo of a"  # initialization words (used when N_CTX_TEXT <= 4)
        cfg.TRAINER.IVLP.PREC = "fp16"  # fp16, fp32, amp (bf16 also accepted)
        cfg.TRAINER.IVLP.PROMPT_DEPTH_VISION = 9  # vision prompts in blocks 0..D-1 (0 = none)
        cfg.TRAINER.IVLP.PROMPT_DEPTH_TEXT = 9  # text prompts in blocks 0..D-1 (1 = shallow)
        # Not in the reference. With CLIP in fp32 (PREC fp32/amp, or fp16 on CPU) the reference
        # still uses the fp16 values of the VPT tokens (it casts them with .half()); False uses
        # their fp32 values.
        cfg.TRAINER.IVLP.ROUND_PROMPTS_TO_FP16 = True

    def check_cfg(self, cfg: CfgNode) -> None:
        super().check_cfg(cfg)
        if cfg.TRAINER.IVLP.PROMPT_DEPTH_TEXT < 1:
            raise ConfigError("TRAINER.IVLP.PROMPT_DEPTH_TEXT must be >= 1 (1 = the shallow text context only)")
        if cfg.TRAINER.IVLP.PROMPT_DEPTH_VISION < 0:
            raise ConfigError("TRAINER.IVLP.PROMPT_DEPTH_VISION must be >= 0 (0 = no vision prompts)")

    @classmethod
    def build_custom_clip(cls, cfg: CfgNode, classnames: list[str], clip_model: CLIP) -> nn.Module:
        return PromptedCLIP(clip_model, IVLPPrompts(cfg, classnames, clip_model))
