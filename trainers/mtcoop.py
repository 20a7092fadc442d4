"""SoftCPT (Ding et al., 2023): soft context sharing for multi-task prompt tuning (trainer MTCoOp).

A meta network shared by all tasks turns a task feature (the frozen text encoder on "[task ctx]
<task name>.") into each task's class-prompt context; with CSC it sees [class feature ; task
feature] and gives one context per class. Variants (scripts/softcpt): NATA, NATS (no class branch,
task context shared / per task), CATA, CSTA, CATS, CSTS (class branch with a shared / per-class
class context). Registered names, parameter names and checkpoint folders are the reference's:
prompt_learner (per-task class tokens, no parameters), class_prompt_learner.ctx,
task_prompt_learner.ctx, prompt_gen.proj.

Faithful to the reference, the four (three) registered names share one optimizer and scheduler,
which Dassl's update loop steps once per name: k SGD steps per iteration and k scheduler steps per
epoch. TRAINER.MTCOOP.ONE_STEP_PER_ITER True gives the intended single step.
"""
from __future__ import annotations

import itertools
from typing import Optional

import torch
from torch import Tensor, nn
from yacs.config import CfgNode
from yacs.config import CfgNode as CN

from clip.encode import encode_text
from clip.model import CLIP
from dassl.data import TaskLayout
from dassl.engine import TRAINER_REGISTRY
from dassl.optim import build_lr_scheduler, build_optimizer
from dassl.utils import load_pretrained_weights

from .base import PromptCLIP
from .common import build_clip, freeze_except, l2_normalize
from .multitask import MultiTaskPromptTrainer, chosen_columns, sample_classes, task_prompts
from .prompting import ClassPrompts, ContextPrompts, text_width

PROMPT_GEN_TYPES = ("lin", "linmean", "lincls")


class PromptGen(nn.Module):
    """The meta network: one fp32 matrix `proj`, no bias, mapping features to N_CTX contexts.

    lin: input task features (T, D) without CSC, [class ; task] features (C, 2D) with CSC.
    linmean: the mean of the two halves (CSC only). lincls: the class half only (CSC only).
    Output (rows, n_ctx, width), token j from columns j*width..(j+1)*width-1.
    """

    def __init__(self, pg_type: str, feat_dim: int, n_ctx: int, width: int, csc: bool):
        super().__init__()
        if pg_type not in PROMPT_GEN_TYPES:
            raise ValueError(f"TRAINER.MTCOOP.PG_TYPE must be one of {PROMPT_GEN_TYPES}, got {pg_type!r}")
        if pg_type != "lin" and not csc:
            raise ValueError(f"TRAINER.MTCOOP.PG_TYPE {pg_type} needs the class branch (TRAINER.MTCOOP.CSC True)")
        self.pg_type = pg_type
        self.n_ctx = n_ctx
        self.width = width
        in_dim = 2 * feat_dim if (pg_type == "lin" and csc) else feat_dim
        self.proj = nn.Parameter(torch.empty(in_dim, n_ctx * width))
        nn.init.normal_(self.proj, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        if self.pg_type != "lin":
            half = x.shape[-1] // 2
            x = (x[..., :half] + x[..., half:]) / 2.0 if self.pg_type == "linmean" else x[..., :half]
        return (x @ self.proj.to(x.dtype)).reshape(x.shape[0], self.n_ctx, self.width)


def placeholder_prefix(n_ctx: int, ctx_init: str) -> str:
    """The words standing for the generated context in the final class prompts."""
    if not ctx_init:
        return " ".join(["X"] * n_ctx)
    words = ctx_init.replace("_", " ")
    if len(words.split(" ")) != n_ctx:
        raise ValueError(f"TRAINER.MTCOOP.CTX_INIT {ctx_init!r} must have N_CTX ({n_ctx}) words")
    return words


class SoftCPTCLIP(PromptCLIP):
    """Frozen CLIP + task prompts, optional class-context prompts, the meta network and the
    per-task class prompts their generated contexts go into. Logits (B, C) over all tasks."""

    def __init__(self, cfg: CfgNode, layout: TaskLayout, clip_model: CLIP):
        """layout: the tasks (names, class names) in order (TaskLayout.from_dataset)."""
        opts = cfg.TRAINER.MTCOOP
        width = text_width(clip_model)
        prefix = placeholder_prefix(opts.N_CTX, opts.CTX_INIT)
        print(f'Class prompts: "{prefix} <class name>." with contexts from the meta network ({opts.PG_TYPE})')
        class_prompts = nn.ModuleList(
            ClassPrompts(clip_model, names, opts.N_CTX, prefix, opts.TOKEN_POSITION) for names in layout.taskid2cname)
        super().__init__(clip_model, class_prompts)
        self.sizes = list(layout.sizes)
        self.ranges = list(layout.ranges)
        self.csc = bool(opts.CSC)
        self.cls_sample_rate = float(opts.CLS_SAMPLE_RATE)
        if self.cls_sample_rate > 0 and not self.csc:
            raise ValueError("TRAINER.MTCOOP.CLS_SAMPLE_RATE > 0 needs TRAINER.MTCOOP.CSC True")
        # Built in the reference's order: it decides the draws from torch's generator.
        self.task_prompt_learner = ContextPrompts(clip_model, layout.names, opts.TASK_N_CTX, opts.TASK_CTX_INIT,
                                                  opts.TASK_CSC, opts.TASK_TOKEN_POSITION)
        if self.csc:
            self.class_prompt_learner = ContextPrompts(clip_model, layout.classnames, opts.CLASS_N_CTX,
                                                       opts.CLASS_CTX_INIT, opts.CLASS_CSC, opts.CLASS_TOKEN_POSITION)
        feat_dim = clip_model.text_projection.shape[1]
        self.prompt_gen = PromptGen(opts.PG_TYPE, feat_dim, opts.N_CTX, width, self.csc)
        self._frozen_features: dict[int, tuple[tuple, Tensor]] = {}

    def learned_modules(self) -> list[nn.Module]:
        modules = [self.task_prompt_learner, self.prompt_gen]
        return modules + [self.class_prompt_learner] if self.csc else modules

    def name_features(self, learner: ContextPrompts) -> Tensor:
        """Text features of the task or class-context prompts; computed once while nothing in
        them trains (name-only prompts, FREEZE_CLS_PROMPT), as long as their tensors are unchanged."""
        if any(p.requires_grad for p in learner.parameters()):
            return encode_text(self.clip, learner.text_prompt())
        key = tuple((id(t), t._version, t.device, t.dtype) for t in itertools.chain(learner.parameters(),
                                                                                    learner.buffers()))
        cached = self._frozen_features.get(id(learner))
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = (key, encode_text(self.clip, learner.text_prompt()))
            self._frozen_features[id(learner)] = cached
        return cached[1]

    def generated_contexts(self) -> list[Tensor]:
        """Per task: (N_CTX, w) shared by its classes, or (n_t, N_CTX, w) with CSC."""
        task_feat = self.name_features(self.task_prompt_learner)
        if not self.csc:
            return list(self.prompt_gen(task_feat.to(self.dtype)))
        class_feat = self.name_features(self.class_prompt_learner)
        sizes = torch.tensor(self.sizes, device=task_feat.device)
        rows = torch.cat([class_feat, task_feat.repeat_interleave(sizes, dim=0)], dim=1)
        return list(self.prompt_gen(rows.to(self.dtype)).split(self.sizes))

    def raw_text_features(self, chosen: Optional[list[Tensor]] = None) -> Tensor:
        """(C, D); with class sampling the unchosen rows hold the constant 1e-6 (as the reference)."""
        prompt = task_prompts(self.prompt_learner, self.generated_contexts(), chosen)
        features = encode_text(self.clip, prompt)
        if chosen is None:
            return features
        full = features.new_full((sum(self.sizes), features.shape[1]), 1e-6)
        return full.index_add(0, chosen_columns(chosen, self.ranges), features)

    def text_features(self) -> Tensor:
        compute = lambda: l2_normalize(self.raw_text_features())  # noqa: E731
        return self.text_cache.get(self.learned_modules(), compute)

    def forward(self, image: Tensor, label: Optional[Tensor] = None) -> tuple[Tensor, Optional[Tensor]]:
        """(logits, selected): selected is the (C,) mask of the classes kept by class sampling
        (training with CLS_SAMPLE_RATE > 0 and a label), else None."""
        if label is None or self.cls_sample_rate <= 0:
            return self.forward_features(self.encode_image(image)), None
        chosen = sample_classes(label, self.ranges, self.cls_sample_rate)
        text = l2_normalize(self.raw_text_features(chosen))
        logits = self.clip.logit_scale.exp() * l2_normalize(self.encode_image(image)) @ text.t()
        selected = torch.zeros(sum(self.sizes), dtype=torch.bool, device=logits.device)
        selected[chosen_columns(chosen, self.ranges)] = True
        return logits, selected


@TRAINER_REGISTRY.register()
class MTCoOp(MultiTaskPromptTrainer):
    config_node = "MTCOOP"

    @staticmethod
    def extend_cfg(cfg: CfgNode) -> None:
        cfg.TRAINER.MTCOOP = CN()
        cfg.TRAINER.MTCOOP.PREC = "fp16"  # fp16, fp32, amp (bf16 also accepted)
        cfg.TRAINER.MTCOOP.CLASS_N_CTX = 16  # class-context tokens (class branch)
        cfg.TRAINER.MTCOOP.CLASS_CSC = False  # one class context per class (CS) or shared (CA)
        cfg.TRAINER.MTCOOP.CLASS_CTX_INIT = ""
        cfg.TRAINER.MTCOOP.CLASS_TOKEN_POSITION = "end"
        cfg.TRAINER.MTCOOP.TASK_N_CTX = 16  # task-context tokens (0: the task name alone)
        cfg.TRAINER.MTCOOP.TASK_CTX_INIT = ""
        cfg.TRAINER.MTCOOP.TASK_CSC = False  # one task context per task (TS) or shared (TA)
        cfg.TRAINER.MTCOOP.TASK_TOKEN_POSITION = "end"
        cfg.TRAINER.MTCOOP.N_CTX = 16  # generated context tokens of the class prompts
        cfg.TRAINER.MTCOOP.CTX_INIT = ""  # placeholder words only (N_CTX of them)
        cfg.TRAINER.MTCOOP.CSC = False  # class branch: one generated context per class
        cfg.TRAINER.MTCOOP.TOKEN_POSITION = "end"
        cfg.TRAINER.MTCOOP.PG_TYPE = ""  # meta network: lin, linmean, lincls (scripts: lin)
        cfg.TRAINER.MTCOOP.PG_RATIO = 1  # unused (as the reference)
        cfg.TRAINER.MTCOOP.CLS_SAMPLE_RATE = 0.0  # > 0: encode positives + this share of the others
        cfg.TRAINER.MTCOOP.FREEZE_CLS_PROMPT = 0  # 1: the class context is not trained nor saved
        # False: the reference's k optimizer/scheduler steps per iteration/epoch (k = registered
        # names sharing one optimizer); True: one step (the evident intention).
        cfg.TRAINER.MTCOOP.ONE_STEP_PER_ITER = False

    def build_model(self) -> None:
        cfg = self.cfg
        opts = cfg.TRAINER.MTCOOP
        layout = self.build_task_layout()
        clip_model, self.precision = build_clip(cfg, self.requested_precision(cfg), self.device)

        print("Building custom CLIP")
        self.model = SoftCPTCLIP(cfg, layout, clip_model)

        print("Turning off gradients in both the image and the text encoder")
        keys = ["task_prompt_learner.", "prompt_gen."]
        freeze_class_context = bool(opts.FREEZE_CLS_PROMPT)
        if self.model.csc and not freeze_class_context:
            keys.append("class_prompt_learner.")
        trainable = freeze_except(self.model, keys)
        print(f"Parameters to be updated: {trainable}")
        n_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        print(f"# learnable parameters: {n_params:,}")
        if cfg.MODEL.INIT_WEIGHTS:  # as the reference: into prompt_learner (it has no parameters)
            load_pretrained_weights(self.model.prompt_learner, cfg.MODEL.INIT_WEIGHTS)

        self.model.to(self.device)
        self.optim = build_optimizer([p for p in self.model.parameters() if p.requires_grad], cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        names = ["prompt_learner"]
        if self.model.csc and not freeze_class_context:
            names.append("class_prompt_learner")
        names += ["task_prompt_learner", "prompt_gen"]
        one_step = bool(opts.ONE_STEP_PER_ITER)
        for i, name in enumerate(names):
            shared = i == 0 or not one_step
            self.register_model(name, getattr(self.model, name), self.optim if shared else None,
                                self.sched if shared else None)
        steps = 1 if one_step else len(names)
        print(f"Optimizer steps per iteration: {steps} (TRAINER.MTCOOP.ONE_STEP_PER_ITER {one_step})")
        self.scaler = self.precision.grad_scaler()
        self.model.eval()  # no dropout anywhere; registered modules follow set_model_mode

    def training_logits(self, image: Tensor, label: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        return self.model(image, label)

    def model_inference(self, image: Tensor) -> Tensor:
        return self.model(image)[0]

    def backward_and_update(self, loss: Tensor) -> None:
        if self.precision.name != "amp":
            super().backward_and_update(loss)  # one step per registered name sharing the optimizer
            return
        # amp: the reference steps its one optimizer once (through the GradScaler on CUDA).
        self.optim.zero_grad()
        if self.scaler is None:
            self.model_backward(loss)
            self.model_update(self.get_model_names()[0])  # synchronises gradients under torchrun
            return
        self.scaler.scale(loss).backward()
        self.sync_gradients()
        self.scaler.step(self.optim)
        self.scaler.update()
