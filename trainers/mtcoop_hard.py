"""SoftCPT's hard-sharing baselines (trainer MTCoOpHard): plain CoOp prompts on a multi-task suite.

TRAINER.MTCOOPH.TSC False: one learner over the classes of all tasks, its context shared by all
of them (CSC False, "CoOp-MT") or one per class (CSC True, "CoOp-CS"); TSC True: one learner per
task (`learners.<t>`), one context per task ("CoOp-CA"). One joint run with mixed batches and
SoftCPT's per-task loss; one optimizer step per iteration.
"""
from __future__ import annotations

from typing import Sequence

from torch import nn
from yacs.config import CfgNode
from yacs.config import CfgNode as CN

from clip.model import CLIP
from clip.prompts import TextPrompt
from dassl.engine import TRAINER_REGISTRY

from .base import PromptCLIP
from .multitask import MultiTaskPromptTrainer, task_prompts
from .prompting import ContextPrompts


class TaskContextPrompts(nn.Module):
    """One CoOp learner per task (`learners`), encoded together in task order."""

    def __init__(self, learners: Sequence[ContextPrompts]):
        super().__init__()
        self.learners = nn.ModuleList(learners)

    def text_prompt(self) -> TextPrompt:
        return task_prompts(self.learners, [learner.ctx for learner in self.learners])


def hard_prompt_learner(cfg: CfgNode, taskid2cname: Sequence[Sequence[str]], clip_model: CLIP) -> nn.Module:
    opts = cfg.TRAINER.MTCOOPH

    def learner(names: Sequence[str]) -> ContextPrompts:
        return ContextPrompts(clip_model, names, opts.N_CTX, opts.CTX_INIT, opts.CSC, opts.TOKEN_POSITION)

    if opts.TSC:
        return TaskContextPrompts([learner(names) for names in taskid2cname])
    return learner([name for names in taskid2cname for name in names])


@TRAINER_REGISTRY.register()
class MTCoOpHard(MultiTaskPromptTrainer):
    config_node = "MTCOOPH"

    @staticmethod
    def extend_cfg(cfg: CfgNode) -> None:
        cfg.TRAINER.MTCOOPH = CN()
        cfg.TRAINER.MTCOOPH.PREC = "fp16"  # fp16, fp32, amp (bf16 also accepted)
        cfg.TRAINER.MTCOOPH.N_CTX = 16
        cfg.TRAINER.MTCOOPH.CSC = False  # one context per class
        cfg.TRAINER.MTCOOPH.CTX_INIT = ""
        cfg.TRAINER.MTCOOPH.TOKEN_POSITION = "end"
        cfg.TRAINER.MTCOOPH.TSC = False  # one context per task

    def build_model(self) -> None:
        self.build_task_layout()
        super().build_model()

    @classmethod
    def build_custom_clip(cls, cfg: CfgNode, classnames: list, clip_model: CLIP) -> nn.Module:
        # classnames of a multi-task dataset: one list per task (taskid2cname)
        return PromptCLIP(clip_model, hard_prompt_learner(cfg, classnames, clip_model))
