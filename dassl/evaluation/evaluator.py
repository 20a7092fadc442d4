"""Evaluators: accumulate (output, label) batches, then print and return metrics."""
from __future__ import annotations

import os.path as osp
from collections import OrderedDict, defaultdict
from typing import Any

import numpy as np
import torch
from yacs.config import CfgNode

from .build import EVALUATOR_REGISTRY


class EvaluatorBase:
    """reset() before an evaluation, process() per batch, evaluate() at the end."""

    def __init__(self, cfg: CfgNode) -> None:
        self.cfg = cfg

    def reset(self) -> None:
        raise NotImplementedError

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        raise NotImplementedError

    def evaluate(self) -> "OrderedDict[str, float]":
        raise NotImplementedError


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Accuracy, error rate and macro F1; per-class accuracy and confusion matrix on request."""

    def __init__(self, cfg: CfgNode, lab2cname: dict[int, str] | None = None, **kwargs: Any) -> None:
        super().__init__(cfg)
        self._lab2cname = lab2cname
        self._per_class_res: defaultdict[int, list[int]] | None = None
        if cfg.TEST.PER_CLASS_RESULT and lab2cname is None:
            raise ValueError("TEST.PER_CLASS_RESULT needs lab2cname")
        self.reset()

    def reset(self) -> None:
        self._correct = 0
        self._total = 0
        self._y_true: list[int] = []
        self._y_pred: list[int] = []
        if self.cfg.TEST.PER_CLASS_RESULT:
            self._per_class_res = defaultdict(list)

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        """mo: (N, C) scores; gt: (N,) labels."""
        pred = mo.max(1)[1]
        matches = pred.eq(gt).int()
        self._correct += int(matches.sum().item())
        self._total += gt.shape[0]
        self._y_true.extend(gt.cpu().tolist())
        self._y_pred.extend(pred.cpu().tolist())
        if self._per_class_res is not None:
            for label, match in zip(gt.cpu().tolist(), matches.cpu().tolist()):
                self._per_class_res[label].append(match)

    def evaluate(self) -> "OrderedDict[str, float]":
        from sklearn.metrics import confusion_matrix, f1_score  # lazy: sklearn is slow to import

        results: OrderedDict[str, float] = OrderedDict()
        acc = 100.0 * self._correct / self._total
        err = 100.0 - acc
        macro_f1 = 100.0 * float(
            f1_score(self._y_true, self._y_pred, average="macro", labels=np.unique(self._y_true))
        )
        # The first value is what test() returns.
        results["accuracy"] = acc
        results["error_rate"] = err
        results["macro_f1"] = macro_f1

        print(
            "=> result\n"
            f"* total: {self._total:,}\n"
            f"* correct: {self._correct:,}\n"
            f"* accuracy: {acc:.1f}%\n"
            f"* error: {err:.1f}%\n"
            f"* macro_f1: {macro_f1:.1f}%"
        )

        if self._per_class_res is not None:
            print("=> per-class result")
            accs = []
            for label in sorted(self._per_class_res):
                res = self._per_class_res[label]
                correct, total = sum(res), len(res)
                class_acc = 100.0 * correct / total
                accs.append(class_acc)
                print(
                    f"* class: {label} ({self._lab2cname[label]})\t"
                    f"total: {total:,}\tcorrect: {correct:,}\tacc: {class_acc:.1f}%"
                )
            mean_acc = float(np.mean(accs))
            print(f"* average: {mean_acc:.1f}%")
            results["perclass_accuracy"] = mean_acc

        if self.cfg.TEST.COMPUTE_CMAT:
            cmat = confusion_matrix(self._y_true, self._y_pred, normalize="true")
            save_path = osp.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            torch.save(cmat, save_path)
            print(f"Confusion matrix is saved to {save_path}")

        return results


def _first_positive(targets: np.ndarray) -> np.ndarray:
    return targets.argmax(axis=1)


def overall_accuracy(scores: np.ndarray, targets: np.ndarray) -> float:
    """% of rows whose top score is the row's (first) positive class."""
    return 100.0 * float(np.mean(scores.argmax(axis=1) == _first_positive(targets)))


def mean_class_accuracy(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over the classes present in targets of their recall (SoftCPT's mean_acc).

    The reference yields NaN when a class has no sample; absent classes are left out instead.
    """
    truth, pred = _first_positive(targets), scores.argmax(axis=1)
    recalls = [float(np.mean(pred[truth == c] == c)) for c in np.unique(truth)]
    return 100.0 * float(np.mean(recalls))


def mean_per_class_elevater(scores: np.ndarray, targets: np.ndarray) -> float:
    """ELEVATER's mean-per-class: classes without a positive leave both targets and scores."""
    present = targets.max(axis=0) > 0
    return mean_class_accuracy(scores[:, present], targets[:, present])


def eleven_point_map(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes with a positive of the 11-point interpolated average precision."""
    from sklearn.metrics import precision_recall_curve  # lazy: sklearn is slow to import

    aps = []
    for c in range(targets.shape[1]):
        if targets[:, c].max() <= 0:
            continue
        precision, recall, _ = precision_recall_curve(targets[:, c] > 0, scores[:, c])
        points = [precision[recall >= t].max() if np.any(recall >= t) else 0.0
                  for t in np.linspace(1.0, 0.0, 11)]
        aps.append(float(np.mean(points)))
    return 100.0 * float(np.mean(aps))


TASK_METRIC_FUNCTIONS = {
    "overall_acc": overall_accuracy,
    "accuracy": overall_accuracy,
    "mean_acc": mean_class_accuracy,
    "mean-per-class": mean_per_class_elevater,
    "11point_mAP": eleven_point_map,
}


@EVALUATOR_REGISTRY.register()
class ClassificationMT(EvaluatorBase):
    """Per-task evaluation of multi-task runs: each row is scored over its own task's classes.

    process() takes logits over the union of all tasks' classes and the -1/0/1 label vectors of
    DatasetWrapperMT. The value test() returns is the unweighted mean over tasks, or the metric of
    the task named by DATASET.MULTITASK_EVALKEY (MVLPT's model selection on one target).
    """

    def __init__(self, cfg: CfgNode, task_layout: Any = None, **kwargs: Any) -> None:
        super().__init__(cfg)
        if task_layout is None:
            raise ValueError("ClassificationMT needs a multi-task dataset (task_layout)")
        self.layout = task_layout
        self.reset()

    def reset(self) -> None:
        self._scores: list[list[np.ndarray]] = [[] for _ in range(self.layout.num_tasks)]
        self._targets: list[list[np.ndarray]] = [[] for _ in range(self.layout.num_tasks)]

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        """mo: (N, C) logits over the union; gt: (N, C) label vectors (-1 outside own task)."""
        mo, gt = mo.detach().float().cpu(), gt.detach().cpu()
        for task in range(self.layout.num_tasks):
            cols = self.layout.task_slice(task)
            rows = gt[:, cols].ne(-1).any(dim=1)
            if rows.any():
                self._scores[task].append(mo[rows, cols].numpy())
                self._targets[task].append(gt[rows, cols].clamp(min=0).numpy())

    def evaluate(self) -> "OrderedDict[str, float]":
        per_task: OrderedDict[str, float] = OrderedDict()
        lines, total = [], 0
        for task, (name, metric) in enumerate(zip(self.layout.names, self.layout.metrics)):
            if not self._scores[task]:
                continue
            scores, targets = np.concatenate(self._scores[task]), np.concatenate(self._targets[task])
            value = TASK_METRIC_FUNCTIONS[metric](scores, targets)
            per_task[name] = value
            total += len(scores)
            lines.append(f"* task: {task} ({name})\ttotal: {len(scores):,}\tmetric: {value:.2f}%")
        if not per_task:
            raise ValueError("ClassificationMT: no labelled rows were processed")
        average = float(np.mean(list(per_task.values())))

        print("=> result")
        print(f"* total: {total:,}")
        print(f"* overall_metric: {average:.2f}%")
        if self.cfg.TEST.PER_TASK_RESULT:
            print("=> per-task result")
            print("\n".join(lines))
            print(f"* average: {average:.2f}%")

        evalkey = self.cfg.DATASET.get("MULTITASK_EVALKEY", "average")
        if evalkey not in ("average", "") and evalkey not in per_task:
            raise ValueError(f'DATASET.MULTITASK_EVALKEY "{evalkey}" is not a task of this run '
                             f"(tasks: {', '.join(per_task)})")
        results: OrderedDict[str, float] = OrderedDict()
        results["metric"] = per_task[evalkey] if evalkey in per_task else average
        results["average"] = average
        for name, value in per_task.items():
            results[f"task/{name}"] = value
        return results
