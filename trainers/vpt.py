"""VPT-deep on CLIP ("deep vision prompting" of the MaPLe paper): prompts in the image tower only.

A shallow `VPT` (N_CTX_VISION, vision width) appended after [CLS, patches] and per-block tokens
replacing the last N_CTX_VISION tokens before image blocks 1..PROMPT_DEPTH_VISION-1. The
classifier is fixed: CLIP's text features of "a photo of a {name}." for the current class names,
computed once at build time and never saved.

As the reference: CLIP always runs in fp32 (TRAINER.VPT.PREC is ignored), CTX_INIT is unused, and
the prompts are used with their fp16 values (ROUND_PROMPTS_TO_FP16, a key of ours, turns that off).
Registered as `prompt_learner` with the reference's keys (`image_encoder.VPT`,
`image_encoder.transformer.resblocks.{i}.VPT_shallow`).
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn
from yacs.config import CfgNode
from yacs.config import CfgNode as CN

from clip.model import CLIP
from clip.prompts import VisionPrompt
from dassl.cli import ConfigError
from dassl.engine import TRAINER_REGISTRY

from .deep_prompts import DeepPromptTrainer, PromptedCLIP, PromptModule, TowerPrompts, check_depth, vision_width
from .zsclip import class_text_features

TEMPLATE = "a photo of a {}."


class VisionPrompts(PromptModule):
    """VPT's learned part: the shallow and per-block vision tokens."""

    def __init__(self, cfg: CfgNode, clip_model: CLIP):
        super().__init__(clip_model)
        opts = cfg.TRAINER.VPT
        width = vision_width(clip_model, "VPT")
        check_depth(opts.PROMPT_DEPTH_VISION, clip_model.visual.transformer.layers, "TRAINER.VPT.PROMPT_DEPTH_VISION")
        self.image_encoder = TowerPrompts(opts.N_CTX_VISION, width, opts.PROMPT_DEPTH_VISION,
                                          shallow=True, round_to_fp16=opts.ROUND_PROMPTS_TO_FP16)

    def vision_prompt(self) -> VisionPrompt:
        return self.image_encoder.vision_prompt()


class FixedClassifierCLIP(PromptedCLIP):
    """PromptedCLIP whose class text features are fixed (a buffer outside the saved module)."""

    def __init__(self, clip_model: CLIP, prompts: PromptModule, classnames: Sequence[str]):
        super().__init__(clip_model, prompts)
        print(f"Fixed classifier: text features of {TEMPLATE!r} for {len(classnames)} classes")
        self.register_buffer("class_features", class_text_features(clip_model, classnames, [TEMPLATE]),
                             persistent=False)

    def text_features(self) -> Tensor:
        return self.class_features


@TRAINER_REGISTRY.register()
class VPT(DeepPromptTrainer):
    """Deep vision prompting with a fixed text classifier; saved under prompt_learner/ as the reference."""

    config_node = "VPT"
    registered_name = "prompt_learner"
    class_dependent_keys = ()

    @staticmethod
    def extend_cfg(cfg: CfgNode) -> None:
        cfg.TRAINER.VPT = CN()
        cfg.TRAINER.VPT.N_CTX_VISION = 2  # number of vision context tokens
        cfg.TRAINER.VPT.CTX_INIT = "a photo of a"  # unused (kept: the reference defines it)
        cfg.TRAINER.VPT.PREC = "fp16"  # ignored: CLIP runs in fp32, as in the reference
        cfg.TRAINER.VPT.PROMPT_DEPTH_VISION = 1  # prompts in image blocks 0..D-1 (1 = shallow)
        # Not in the reference, which casts the prompts with .half() before joining the fp32
        # activations (fp16 values); False uses their fp32 values.
        cfg.TRAINER.VPT.ROUND_PROMPTS_TO_FP16 = True

    def check_cfg(self, cfg: CfgNode) -> None:
        super().check_cfg(cfg)
        if cfg.TRAINER.VPT.PROMPT_DEPTH_VISION < 1:
            raise ConfigError("TRAINER.VPT.PROMPT_DEPTH_VISION must be >= 1 (1 = shallow VPT)")
        if cfg.TRAINER.VPT.N_CTX_VISION < 1:
            raise ConfigError("TRAINER.VPT.N_CTX_VISION must be >= 1")

    @classmethod
    def requested_precision(cls, cfg: CfgNode) -> str:
        if cfg.TRAINER.VPT.PREC != "fp32":
            print(f"TRAINER.VPT.PREC ({cfg.TRAINER.VPT.PREC}) is ignored: VPT runs CLIP in fp32, as the reference")
        return "fp32"

    @classmethod
    def build_custom_clip(cls, cfg: CfgNode, classnames: list[str], clip_model: CLIP) -> nn.Module:
        return FixedClassifierCLIP(clip_model, VisionPrompts(cfg, clip_model), classnames)
