"""MVLPT (Shen et al., 2022): multitask prompt tuning of CLIP with text, visual or coupled prompts.

One learner (`prompt_learner`, the reference's MultitaskVLPromptLearner) holds the families that
TRAINER.MVLPT's counts switch on:
- MCoOp (COOP.N_CTX > 0): CoOp's context `ctx` around each class name, class token "middle" by
  default;
- MVPT (VPT.N_CTX > 0): `vpt_embeddings` (1, M, d) inserted right after the image CLS token (after
  ln_pre, no positional embedding) and, DEEP, `vpt_embeddings_deep` (L_v - 1, M, d) replacing them
  before each later block; optional `vpt_proj` (d -> vision width) when VPT.PROJECT > -1;
- MUPT (both): the two sets re-mapped jointly every forward by `mvlpt_proj_ctx_{coop,vpt}_{pre,post}`
  around a one-block transformer `mvlpt_proj` (PROJECT_METHOD "transformer");
- CoCoOp (COCOOP.N_CTX > 0): `cocoop_ctx` shifted per image by `meta_net`, class token at the end.

Reference numerics kept: the coupling transformer reads its (1, T, H) input sequence-first, so
every token is a sequence of its own and text and visual tokens never attend to each other
(UPT_MIX_TOKENS True, a key of ours, runs them as one sequence); the per-task logit mask multiplies
other tasks' logits by 0 (they stay in the softmax). The multitask data, label vectors and per-task
evaluation are dassl's (dassl/data/multitask.py, ClassificationMT).

What differs (speed only, same numbers): all class prompts go through the shared-prefix text path
truncated after the last EOT, which is what TRAINER.CUT_CONTEXTLEN did (accepted, always exact);
text features are computed once per evaluation, and once in all for VPT's fixed hard prompts.
TRAINER.ACT_CKPT (activation checkpointing of the text blocks) is accepted and not applied.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode
from yacs.config import CfgNode as CN

from clip.encode import encode_text
from clip.model import CLIP, Transformer
from clip.prompts import TextPrompt, VisionPrompt
from dassl.cli import ConfigError
from dassl.data.datasets import DatasetBaseMT
from dassl.data.multitask import TaskLayout, build_task_datasets, concat_task_datasets
from dassl.engine import TRAINER_REGISTRY
from datasets.elevater import ELEVATER_KEYS, elevater_transform, is_elevater
from datasets.elevater import multitask_dataset as elevater_multitask_dataset

from .base import PromptCLIP, PromptTrainer
from .cocoop import build_meta_net, per_image_logits
from .common import l2_normalize
from .deep_prompts import vision_width
from .prompting import ClassPrompts, ContextInit, coop_context, text_width

HARD_PROMPT = "a photo of a"  # the text side when only visual prompts are learned
# The reference's DATASET keys (train.py's flags --dataset, --shots, --multi-task, ... set them).
DATASET_KEYS = {
    **ELEVATER_KEYS,
    "DATASET": "",  # comma-separated task names
    # Accepted and not read: the reference's ImageFolder fallback for unknown names (an error here).
    "VAL_SET": "",
    "TRAIN_SET": "train",
    "TEST_SET": "val",
    # Accepted and not read (--dataset-coop): the task names alone say ELEVATER or registered dataset.
    "COOP": False,
    "MULTITASK": False,
    "MULTITASK_LABEL_PERTASK": False,  # multiply other tasks' logits by 0 in the training loss
    "MULTITASK_EVALKEY": "average",  # model selection: the task average or one task's metric
}
PROJECT_METHODS = ("identity", "mlp", "transformer")
LEGACY_KEY_NAMES = (("upt_proj", "mvlpt_proj"),)  # released UPT checkpoints


def vpt_init_bound(patch_size: int, dim: int) -> float:
    """Half-width of VPT's uniform init, sqrt(6 / (3 p^2 + d)) (xavier over patch and prompt dims)."""
    return math.sqrt(6.0 / float(3 * patch_size * patch_size + dim))


def uniform_tokens(shape: Sequence[int], bound: float, dtype: torch.dtype) -> nn.Parameter:
    tokens = torch.zeros(*shape, dtype=dtype)
    nn.init.uniform_(tokens, -bound, bound)
    return nn.Parameter(tokens)


def linear_or_identity(d_in: int, d_out: int, dtype: torch.dtype) -> nn.Module:
    """nn.Linear(d_in, d_out) in dtype, or Identity when the widths already agree (the reference)."""
    return nn.Linear(d_in, d_out).to(dtype) if d_in != d_out else nn.Identity()


def check_families(opts: CfgNode) -> None:
    """One-line config errors (checked when the learner is built, after CLIP is loaded)."""
    counts = (opts.COOP.N_CTX, opts.VPT.N_CTX, opts.COCOOP.N_CTX)
    if not any(counts):
        raise ConfigError("MVLPT needs prompts: set TRAINER.MVLPT.COOP.N_CTX, VPT.N_CTX or COCOOP.N_CTX above 0")
    if opts.COOP.N_CTX and opts.COCOOP.N_CTX:
        raise ConfigError("TRAINER.MVLPT.COOP.N_CTX and COCOOP.N_CTX are exclusive (CoOp or CoCoOp text context)")
    if opts.PROJECT_METHOD not in PROJECT_METHODS:
        raise ConfigError(f"TRAINER.MVLPT.PROJECT_METHOD must be one of {PROJECT_METHODS}, got {opts.PROJECT_METHOD!r}")
    if opts.VPT.CTX_INIT:
        raise ConfigError("TRAINER.MVLPT.VPT.CTX_INIT is not supported: visual prompts start random")
    if opts.COOP.N_CTX and opts.VPT.N_CTX and opts.PROJECT_METHOD != "identity":
        if opts.PROJECT_METHOD == "mlp":
            raise ConfigError("TRAINER.MVLPT.PROJECT_METHOD 'mlp' is not implemented (it crashes in the "
                             "reference); use 'transformer' or 'identity'")
        if opts.VPT.PROJECT > -1:
            raise ConfigError("UPT couples the raw visual prompts: TRAINER.MVLPT.VPT.PROJECT must be -1 "
                             "with PROJECT_METHOD 'transformer'")


def rename_legacy_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Checkpoint keys with the released checkpoints' old names ("upt_proj") renamed."""
    renamed = {}
    for key, value in state_dict.items():
        for old, new in LEGACY_KEY_NAMES:
            key = key.replace(old, new)
        renamed[key] = value
    return renamed


class MultitaskVLPromptLearner(ClassPrompts):
    """The learned prompts of every MVLPT family and the frozen class tokens (see module docstring)."""

    def __init__(self, cfg: CfgNode, classnames: Sequence[str], clip_model: CLIP):
        opts = cfg.TRAINER.MVLPT
        check_families(opts)
        dtype = clip_model.dtype
        n_cls = len(classnames)
        # Random draws in the reference's order: text context, visual prompts, coupling, meta-net.
        if opts.COCOOP.N_CTX:
            init = coop_context(clip_model, opts.COCOOP.N_CTX, opts.COCOOP.CTX_INIT, False, n_cls)
            position = "end"
        elif opts.COOP.N_CTX:
            init = coop_context(clip_model, opts.COOP.N_CTX, opts.COOP.CTX_INIT, opts.COOP.CSC, n_cls)
            position = opts.COOP.CLASS_TOKEN_POSITION
        else:
            init = ContextInit(torch.empty(0, text_width(clip_model), dtype=dtype), HARD_PROMPT)
            position = "end"
        super().__init__(clip_model, classnames, init.n_ctx, init.prefix, position)
        self.cocoop = bool(opts.COCOOP.N_CTX)
        if opts.COOP.N_CTX:
            self.ctx = nn.Parameter(init.vectors)
        elif self.cocoop:
            self.cocoop_ctx = nn.Parameter(init.vectors)

        self.n_vpt = opts.VPT.N_CTX
        if self.n_vpt:
            self._build_visual(opts.VPT, clip_model, dtype)

        self.coupled = bool(opts.COOP.N_CTX and self.n_vpt and opts.PROJECT_METHOD == "transformer")
        self.mix_tokens = bool(opts.UPT_MIX_TOKENS)
        if self.coupled:
            self._build_coupling(opts.PROJECT_DIM, text_width(clip_model), self.visual_width, dtype)

        if self.cocoop:
            meta_net = build_meta_net(clip_model.visual.output_dim, text_width(clip_model))
            if opts.COCOOP.PREC == "fp16" and dtype == torch.float16:
                meta_net.half()
            self.meta_net = meta_net

    def _build_visual(self, opts: CfgNode, clip_model: CLIP, dtype: torch.dtype) -> None:
        self.visual_width = vision_width(clip_model, "MVLPT's visual prompts (VPT.N_CTX > 0)")
        dim = opts.PROJECT if opts.PROJECT > -1 else self.visual_width
        if opts.PROJECT > -1:
            self.vpt_proj = nn.Linear(dim, self.visual_width).to(dtype)
            nn.init.kaiming_normal_(self.vpt_proj.weight, a=0, mode="fan_out")
        else:
            self.vpt_proj = nn.Identity()
        bound = vpt_init_bound(clip_model.visual.conv1.kernel_size[0], dim)
        self.vpt_embeddings = uniform_tokens((1, self.n_vpt, dim), bound, dtype)
        if opts.DEEP:
            layers = clip_model.visual.transformer.layers
            self.vpt_embeddings_deep = uniform_tokens((layers - 1, self.n_vpt, dim), bound, dtype)
        self.vpt_dropout = nn.Dropout(opts.DROPOUT)

    def _build_coupling(self, dim: int, text_dim: int, visual_dim: int, dtype: torch.dtype) -> None:
        self.mvlpt_proj_ctx_coop_pre = nn.Linear(text_dim, dim).to(dtype)
        self.mvlpt_proj_ctx_coop_post = linear_or_identity(dim, text_dim, dtype)
        self.mvlpt_proj_ctx_vpt_pre = nn.Linear(visual_dim, dim).to(dtype)
        self.mvlpt_proj_ctx_vpt_post = linear_or_identity(dim, visual_dim, dtype)
        self.mvlpt_proj = Transformer(width=dim, layers=1, heads=1)  # fp32, as the reference

    @property
    def learns_text(self) -> bool:
        return hasattr(self, "ctx") or self.cocoop

    def raw_visual(self) -> Tensor:
        """All visual prompt sets (S, M, d): the shallow one, then the deep ones."""
        if hasattr(self, "vpt_embeddings_deep"):
            return torch.cat([self.vpt_embeddings, self.vpt_embeddings_deep])
        return self.vpt_embeddings

    def prompts(self) -> tuple[Optional[Tensor], Optional[Tensor]]:
        """(text context, visual sets (S, M, d)) as the encoders use them (UPT: after coupling)."""
        ctx = getattr(self, "ctx", None)
        visual = self.raw_visual() if self.n_vpt else None
        if not self.coupled:
            return ctx, visual
        text_tokens = self.mvlpt_proj_ctx_coop_pre(ctx.reshape(1, -1, ctx.shape[-1]))
        visual_tokens = self.mvlpt_proj_ctx_vpt_pre(visual.reshape(1, -1, visual.shape[-1]))
        tokens = torch.cat([text_tokens, visual_tokens], dim=1).float()
        if self.mix_tokens:
            tokens = self.mvlpt_proj.forward_bf(tokens)  # one sequence: text and visual tokens attend
        else:
            tokens = self.mvlpt_proj(tokens)  # the reference: (1, T, H) read as T sequences of length 1
        tokens = tokens.to(ctx.dtype)
        n_text = text_tokens.shape[1]
        ctx = self.mvlpt_proj_ctx_coop_post(tokens[:, :n_text]).reshape(ctx.shape)
        visual = self.mvlpt_proj_ctx_vpt_post(tokens[:, n_text:]).reshape(visual.shape[0], self.n_vpt, -1)
        return ctx, visual

    def text_prompt(self, ctx: Optional[Tensor] = None) -> TextPrompt:
        """Class prompts for the (coupled) context; the hard prompt when no text context is learned."""
        if ctx is None:
            ctx = getattr(self, "ctx", None)
            if self.coupled:
                ctx = self.prompts()[0]
        if ctx is None:
            ctx = self.token_prefix.new_empty(0, self.token_prefix.shape[-1])
        return self.prompt(ctx)

    def vision_prompt(self, visual: Optional[Tensor], batch: int) -> Optional[VisionPrompt]:
        """The visual sets through vpt_proj and dropout (per image while training), after CLS."""
        if visual is None:
            return None
        per_image = self.training and self.vpt_dropout.p > 0
        sets = [self.vpt_proj(s) for s in visual]
        sets = [self.vpt_dropout(s.expand(batch, -1, -1) if per_image else s) for s in sets]
        return VisionPrompt(shallow=sets[0], deep=sets[1:], position="after_cls")

    def cocoop_prompt(self, image_features: Tensor) -> TextPrompt:
        """b groups of class prompts for normalised image features (b, D): ctx + meta_net(f)."""
        shifted = self.cocoop_ctx + self.meta_net(image_features).unsqueeze(1)
        return self.prompt(shifted.unsqueeze(1))

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """As nn.Module's, with the released checkpoints' "upt_proj" keys read as "mvlpt_proj"."""
        return super().load_state_dict(rename_legacy_keys(state_dict), strict=strict, assign=assign)


class MVLPTCLIP(PromptCLIP):
    """Frozen CLIP classifying with an MVLPT learner (visual prompts and/or per-image text)."""

    def __init__(self, clip_model: CLIP, learner: MultitaskVLPromptLearner):
        super().__init__(clip_model, learner)
        self.fixed_text = not learner.learns_text
        if self.fixed_text:  # VPT only: the hard prompts' features never change
            with torch.no_grad():
                features = l2_normalize(encode_text(clip_model, learner.text_prompt()))
            self.register_buffer("class_features", features, persistent=False)

    @property
    def frozen_image_encoder(self) -> bool:
        return not self.prompt_learner.n_vpt

    def encode_image(self, image: Tensor) -> Tensor:
        learner = self.prompt_learner
        visual = learner.prompts()[1] if learner.n_vpt else None
        return self.clip.encode_image(image, learner.vision_prompt(visual, image.shape[0]))

    def text_features(self) -> Tensor:
        if self.fixed_text:
            return self.class_features
        return super().text_features()

    def forward_features(self, image_features: Tensor) -> Tensor:
        learner = self.prompt_learner
        if learner.cocoop:
            return per_image_logits(self.clip, learner.cocoop_prompt, image_features, learner.n_cls)
        return super().forward_features(image_features)


def task_names(cfg: CfgNode) -> list[str]:
    """DATASET.DATASET's comma-separated task names, or [DATASET.NAME]."""
    names = [name.strip() for name in cfg.DATASET.DATASET.split(",") if name.strip()]
    return names or [cfg.DATASET.NAME]


def soft_targets(label: Tensor) -> Tensor:
    """A 0/1 (or -1 outside the task) label vector as a distribution over its positives."""
    positive = (label > 0).float()
    return positive / positive.sum(dim=-1, keepdim=True)


@TRAINER_REGISTRY.register()
class MVLPT(PromptTrainer):
    config_node = "MVLPT"
    # bench/cuda_check.py: no family is on by default; check MUPT (text and visual prompts, coupled).
    cuda_check = {"opts": ["TRAINER.MVLPT.COOP.N_CTX", "4", "TRAINER.MVLPT.VPT.N_CTX", "4"]}

    @staticmethod
    def extend_cfg(cfg: CfgNode) -> None:
        mvlpt = cfg.TRAINER.MVLPT = CN()
        mvlpt.PREC = "fp16"  # fp16, fp32, amp (bf16 also accepted)
        mvlpt.PROJECT_METHOD = "transformer"  # UPT coupling: transformer, identity (mlp: not implemented)
        mvlpt.PROJECT_DIM = 128
        # Ours: the coupling transformer reads text and visual tokens as one sequence (they attend to
        # each other). False = the reference, where each token is a sequence of its own.
        mvlpt.UPT_MIX_TOKENS = False
        mvlpt.VPT = CN()
        mvlpt.VPT.N_CTX = 0
        mvlpt.VPT.CSC = False  # unused (as the reference)
        mvlpt.VPT.CTX_INIT = ""  # must stay empty
        mvlpt.VPT.DROPOUT = 0.0
        mvlpt.VPT.PROJECT = -1  # > -1: prompts of that width through vpt_proj
        mvlpt.VPT.DEEP = True
        mvlpt.COOP = CN()
        mvlpt.COOP.N_CTX = 0
        mvlpt.COOP.CSC = False
        mvlpt.COOP.CTX_INIT = ""
        mvlpt.COOP.CLASS_TOKEN_POSITION = "middle"
        mvlpt.COCOOP = CN()
        mvlpt.COCOOP.N_CTX = 0
        mvlpt.COCOOP.CTX_INIT = ""
        mvlpt.COCOOP.PREC = "fp16"  # meta-net in fp16 when CLIP runs in fp16
        cfg.TRAINER.CUT_CONTEXTLEN = False  # accepted; the text path always stops after the last EOT
        cfg.TRAINER.ACT_CKPT = 1  # accepted; activation checkpointing is not applied
        for key, value in DATASET_KEYS.items():  # shared with other multitask methods: added once
            if key not in cfg.DATASET:
                cfg.DATASET[key] = value

    def check_cfg(self, cfg: CfgNode) -> None:
        super().check_cfg(cfg)
        if cfg.TRAINER.ACT_CKPT > 1:
            print(f"Note: TRAINER.ACT_CKPT {cfg.TRAINER.ACT_CKPT} is not applied (no activation checkpointing; "
                  "the text path already encodes only up to the last EOT)")

    def build_dataset(self) -> Optional[DatasetBaseMT]:
        """The union of DATASET.DATASET's tasks (multitask runs); None: DATASET.NAME alone.

        Registered datasets concatenated in the given order (--dataset-coop); ELEVATER tasks merged
        in sorted name order and sampled jointly (datasets.elevater.multitask_dataset).
        """
        names = task_names(self.cfg)
        if not (self.cfg.DATASET.MULTITASK or len(names) > 1):
            return None
        if all(is_elevater(name) for name in names):
            print(f"Multitask dataset: {len(names)} ELEVATER tasks ({', '.join(sorted(names))})")
            return elevater_multitask_dataset(self.cfg, names)
        print(f"Multitask dataset: {len(names)} tasks ({', '.join(names)})")
        return concat_task_datasets(build_task_datasets(self.cfg, names), names)

    def build_transforms(self) -> tuple[Any, Any]:
        """ELEVATER tasks: the toolkit's resize-only transform for train and test."""
        if all(is_elevater(name) for name in task_names(self.cfg)):
            transform = elevater_transform(self.cfg)
            return transform, transform
        return None, None

    def build_model(self) -> None:
        super().build_model()
        dataset = self.dm.dataset
        self.task_layout = TaskLayout.from_dataset(dataset) if isinstance(dataset, DatasetBaseMT) else None

    @classmethod
    def build_custom_clip(cls, cfg: CfgNode, classnames: list[str], clip_model: CLIP) -> nn.Module:
        return MVLPTCLIP(clip_model, MultitaskVLPromptLearner(cfg, classnames, clip_model))

    def compute_loss(self, image: Tensor, label: Tensor) -> tuple[Tensor, dict[str, float]]:
        """CE on the union's logits; a label vector (multitask) is a soft target over its positives."""
        logits = self.model(image)
        if label.dim() == 1:
            loss = F.cross_entropy(logits, label)
            target = label
        else:
            if self.cfg.DATASET.MULTITASK_LABEL_PERTASK:
                # The reference's mask: other tasks' logits multiplied by 0 (not -inf).
                logits = logits * self.task_layout.own_task_mask(label)
            loss = F.cross_entropy(logits, soft_targets(label))
            target = label.argmax(dim=-1)
        acc = (logits.argmax(dim=-1) == target).float().mean().item() * 100
        return loss, {"loss": loss.item(), "acc": acc}
