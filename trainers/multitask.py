"""Training pieces of multi-task prompt trainers (SoftCPT's MTCoOp and MTCoOpHard) and their base
trainer, MultiTaskPromptTrainer.

Logits are (B, C) over the classes of all tasks in task order; task t owns the columns
ranges[t] = (start, end). Labels are Dassl's multi-task vectors (dassl.data DatasetWrapperMT):
-1 on the columns of tasks a sample is not annotated for, 0/1 inside its task(s).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from clip.prompts import TextPrompt
from dassl.data import TaskLayout
from dassl.data.datasets import build_dataset
from dassl.metrics import compute_accuracy_map
from datasets.suites import single_task_suite

from .base import PromptTrainer
from .prompting import ClassPrompts

Ranges = Sequence[tuple[int, int]]


def multitask_loss(logits: Tensor, label: Tensor, ranges: Ranges, selected: Optional[Tensor] = None) -> Tensor:
    """SoftCPT's loss: per task, summed CE of its annotated rows over its columns; total / B.

    The target of a row is its first positive column in the task. selected: (C,) bool mask of the
    columns kept by class sampling (every positive is kept); the CE of a task then runs over its
    selected columns only.
    """
    loss = logits.new_zeros(())
    for start, end in ranges:
        task_label = label[:, start:end]
        rows = (task_label != -1).any(dim=1)
        if not bool(rows.any()):
            continue
        task_logits = logits[rows, start:end]
        task_label = task_label[rows]
        if selected is not None:
            columns = selected[start:end]
            task_logits, task_label = task_logits[:, columns], task_label[:, columns]
        loss = loss + F.cross_entropy(task_logits, task_label.argmax(dim=1), reduction="sum")
    return loss / logits.shape[0]


def per_task_softmax(logits: Tensor, ranges: Ranges) -> Tensor:
    """Softmax over each task's columns (the scores of the logged mAP)."""
    return torch.cat([logits[:, start:end].softmax(dim=1) for start, end in ranges], dim=1)


def loss_summary(loss: Tensor, logits: Tensor, label: Tensor, ranges: Ranges) -> dict[str, float]:
    """The logged values: loss and "map" (micro AP over the annotated entries, in %)."""
    scores = per_task_softmax(logits.detach(), ranges)
    return {"loss": loss.item(), "map": compute_accuracy_map(scores, label)}


def sample_classes(label: Tensor, ranges: Ranges, rate: float) -> list[Tensor]:
    """SoftCPT's class sampling: per task, its positive classes and ceil(rate * #others) others.

    Positives are the task's columns that are 1 for some row of the batch; the others are drawn
    with torch.randperm (CPU generator, as the reference). Returns per task the local indices
    [positives (ascending), drawn negatives], on label's device.
    """
    positive = (label == 1).any(dim=0).cpu()
    chosen = []
    for start, end in ranges:
        mask = positive[start:end]
        pos = torch.where(mask)[0]
        neg = torch.where(~mask)[0]
        keep = math.ceil(len(neg) * rate)  # python floats, as the reference
        neg = neg[torch.randperm(len(neg))[:keep]]
        chosen.append(torch.cat([pos, neg]).to(label.device))
    return chosen


def chosen_columns(chosen: Sequence[Tensor], ranges: Ranges) -> Tensor:
    """The global column indices of sample_classes' per-task local indices."""
    return torch.cat([idx + start for idx, (start, _) in zip(chosen, ranges)])


def task_prompts(prompts: Sequence[ClassPrompts], contexts: Sequence[Tensor],
                 chosen: Optional[Sequence[Tensor]] = None) -> TextPrompt:
    """One encoder input for the class prompts of all tasks, in task order.

    prompts[t] holds task t's class tokens, contexts[t] its context: (n, w) shared by the task's
    classes or (n_t, n, w) per class; chosen[t] keeps only those local classes (all when None).
    Shared contexts in front of the names ("end"): the prompts of each task share SOS + context,
    encoded once per task (TextPrompt.group_sizes). Otherwise every prompt runs in full.
    """
    shared = chosen is None and all(ctx.dim() == 2 for ctx in contexts)
    if shared and all(p.position == "end" for p in prompts):
        n_ctx = prompts[0].n_ctx
        length = max(p.length for p in prompts)
        prefix = torch.cat([torch.cat([p.token_prefix[:1], ctx.unsqueeze(0)], dim=1)
                            for p, ctx in zip(prompts, contexts)])
        suffix = torch.cat([p.token_suffix[:, :length - 1 - n_ctx] for p in prompts])
        return TextPrompt(suffix, torch.cat([p.eot for p in prompts]), prefix=prefix,
                          group_sizes=[p.n_cls for p in prompts])
    length = max(p.length for p in prompts)
    embeddings, eots = [], []
    for t, (p, ctx) in enumerate(zip(prompts, contexts)):
        emb, eot = p.assemble(ctx, length), p.eot
        if chosen is not None:
            emb, eot = emb[chosen[t]], eot[chosen[t]]
        embeddings.append(emb)
        eots.append(eot)
    return TextPrompt(torch.cat(embeddings), torch.cat(eots), shared_prefix=False if not shared else None)


class MultiTaskPromptTrainer(PromptTrainer):
    """A PromptTrainer on a multi-task dataset: per-task loss and the multi-task evaluator."""

    restore_learned_only = True

    def build_dataset(self):
        """A single-task dataset runs as a suite of one task (as in the reference)."""
        dataset = build_dataset(self.cfg)
        if getattr(dataset, "taskid2cname", None) is None:
            dataset = single_task_suite(self.cfg, dataset)
        return dataset

    def classnames(self) -> list[list[str]]:
        """One class-name list per task (the learners build each task's prompts)."""
        return [list(names) for names in self.dm.dataset.taskid2cname]

    def build_task_layout(self) -> TaskLayout:
        self.task_layout = TaskLayout.from_dataset(self.dm.dataset)
        return self.task_layout

    def training_logits(self, image: Tensor, label: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """(logits, (C,) mask of the classes the loss runs over, or None for all)."""
        return self.model(image), None

    def compute_loss(self, image: Tensor, label: Tensor) -> tuple[Tensor, dict[str, float]]:
        output, selected = self.training_logits(image, label)
        loss = multitask_loss(output, label, self.task_layout.ranges, selected)
        return loss, loss_summary(loss, output, label, self.task_layout.ranges)
