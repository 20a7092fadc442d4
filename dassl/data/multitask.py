"""Multi-task data shared by MVLPT and SoftCPT: several tasks' classes side by side in one union.

Task t owns the columns [offsets[t], offsets[t] + sizes[t]) of the union. Items are DatumMT with
local labels and task ids; DatasetWrapperMT turns them into int64 label vectors over the union:
-1 on other tasks' columns, 0/1 inside the item's task(s). Everything here derives from that vector,
so the same batches serve a union-level loss (MVLPT), a per-task loss (SoftCPT) and the per-task
evaluator (ClassificationMT).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from dassl.evaluation.evaluator import TASK_METRIC_FUNCTIONS

from .datasets import DatasetBase, DatasetBaseMT, DatumMT, build_dataset


@dataclass(frozen=True)
class TaskLayout:
    """Where each task's classes sit in the union of all tasks' classes."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    metrics: tuple[str, ...]
    taskid2cname: tuple[tuple[str, ...], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.sizes) == len(self.metrics)):
            raise ValueError(f"TaskLayout: {len(self.names)} names, {len(self.sizes)} sizes, "
                             f"{len(self.metrics)} metrics")
        unknown = sorted(set(self.metrics) - set(TASK_METRIC_FUNCTIONS))
        if unknown:
            raise ValueError(f"unknown task metric(s) {unknown}; choose from {list(TASK_METRIC_FUNCTIONS)}")

    @classmethod
    def from_dataset(cls, dataset: DatasetBaseMT) -> "TaskLayout":
        cnames = tuple(tuple(names) for names in dataset.taskid2cname)
        metrics = getattr(dataset, "taskid2metric", None) or ["overall_acc"] * len(cnames)
        return cls(names=tuple(dataset.taskid2tname), sizes=tuple(len(c) for c in cnames),
                   metrics=tuple(metrics), taskid2cname=cnames)

    @property
    def num_tasks(self) -> int:
        return len(self.sizes)

    @property
    def num_classes(self) -> int:
        return sum(self.sizes)

    @property
    def offsets(self) -> tuple[int, ...]:
        starts, total = [], 0
        for size in self.sizes:
            starts.append(total)
            total += size
        return tuple(starts)

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        return tuple((start, start + size) for start, size in zip(self.offsets, self.sizes))

    @property
    def classnames(self) -> list[str]:
        """All tasks' class names in union order."""
        return [name for names in self.taskid2cname for name in names]

    def task_slice(self, task: int) -> slice:
        start, end = self.ranges[task]
        return slice(start, end)

    def column_tasks(self, device=None) -> torch.Tensor:
        """(C,) task id of every union column."""
        return torch.repeat_interleave(torch.arange(self.num_tasks, device=device),
                                       torch.tensor(self.sizes, device=device))

    def own_task_mask(self, label_vec: torch.Tensor) -> torch.Tensor:
        """(B, C) True on the columns of each row's annotated task(s)."""
        return label_vec.ne(-1)

    def task_ids(self, label_vec: torch.Tensor) -> torch.Tensor:
        """(B,) the first annotated task of each row."""
        first_column = self.own_task_mask(label_vec).to(torch.uint8).argmax(dim=1)
        return self.column_tasks(label_vec.device)[first_column]

    def global_labels(self, label_vec: torch.Tensor) -> torch.Tensor:
        """(B,) union-level class id of each row's first positive."""
        return label_vec.eq(1).to(torch.uint8).argmax(dim=1)

    def label_vectors(self, task_ids: torch.Tensor, local_labels: torch.Tensor) -> torch.Tensor:
        """(B, C) the -1/0/1 vectors of single-label items (inverse of task_ids/global_labels)."""
        columns = self.column_tasks(task_ids.device)
        vec = torch.where(columns.unsqueeze(0).eq(task_ids.unsqueeze(1)), 0, -1)
        offsets = torch.tensor(self.offsets, device=task_ids.device)[task_ids]
        vec[torch.arange(len(task_ids), device=task_ids.device), offsets + local_labels] = 1
        return vec.long()


def concat_task_datasets(datasets: Sequence[DatasetBase], task_names: Sequence[str],
                         task_metrics: Optional[Sequence[str]] = None) -> DatasetBaseMT:
    """One multi-task dataset whose task t is datasets[t] (items keep their local labels)."""
    if len(datasets) != len(task_names):
        raise ValueError(f"{len(datasets)} datasets but {len(task_names)} task names")

    def convert(split: str) -> list:
        items = []
        for task, dataset in enumerate(datasets):
            for item in getattr(dataset, split) or []:
                # A one-task DatasetBaseMT's items (multi-label tasks) keep their label lists.
                labels = list(item.label) if isinstance(item, DatumMT) else [item.label]
                items.append(DatumMT(impath=item.impath, label=labels, domain=task, task=[task] * len(labels)))
        return items

    for name, dataset in zip(task_names, datasets):
        if isinstance(dataset, DatasetBaseMT) and len(dataset.taskid2cname) != 1:
            raise ValueError(f"task {name!r}: a multi-task dataset of {len(dataset.taskid2cname)} tasks "
                             "cannot be one task of a concatenation")

    def task_field(dataset: DatasetBase, field_name: str, default):
        return getattr(dataset, field_name)[0] if isinstance(dataset, DatasetBaseMT) else default

    if task_metrics is None:
        task_metrics = [task_field(dataset, "taskid2metric", "overall_acc") for dataset in datasets]
    metrics = list(task_metrics)
    return DatasetBaseMT(
        taskid2tname=list(task_names),
        taskid2cname=[list(task_field(dataset, "taskid2cname", dataset.classnames)) for dataset in datasets],
        taskid2desc=[task_field(dataset, "taskid2desc", "") for dataset in datasets],
        taskid2type=[task_field(dataset, "taskid2type", "sl") for dataset in datasets],
        taskid2metric=metrics,
        train_x=convert("train_x"), val=convert("val") or None, test=convert("test"),
    )


def build_task_datasets(cfg, names: Sequence[str]) -> list[DatasetBase]:
    """Each registered dataset of `names`, in order, built with cfg's DATASET.NAME set to it.

    Each one samples and caches its own few-shot split, in this order, as the reference does.
    """
    datasets = []
    for name in names:
        task_cfg = cfg.clone()
        task_cfg.defrost()
        task_cfg.DATASET.NAME = name
        task_cfg.freeze()
        datasets.append(build_dataset(task_cfg))
    return datasets
