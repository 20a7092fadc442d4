"""Linear-probe CLIP: logistic regression on frozen image features, C chosen on few-shot val.

Two entry points share the fitting code below:
- the reference protocol (scripts/lpclip/): features of the full splits saved as .npz, then for
  K in 1..16 shots and seeds 1..R the few-shot train/val sets drawn with numpy's RNG, the C search,
  a report and (our addition) one Dassl-style log.txt per seed for parse_test_res.py;
- the `LinearProbeCLIP` trainer (train.py): the same search on the Dassl few-shot split of the
  run (DATASET.NUM_SHOTS, the val split of the dataset), saved and evaluated like any trainer.
"""
from __future__ import annotations

import json
import math
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm
from yacs.config import CfgNode
from yacs.config import CfgNode as CN

from dassl.engine import TRAINER_REGISTRY, TrainerX

from .common import build_clip
from .image_cache import FrozenClipHeadMixin

C_GRID = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)
SHOTS = (1, 2, 4, 8, 16)
VAL_SHOTS = {1: 1, 2: 2, 4: 4, 8: 4, 16: 4}
MAX_ITER = 1000

Split = tuple[np.ndarray, np.ndarray]  # (features (N, D), labels (N,))


def fit(train: Split, c: float):
    """sklearn's LogisticRegression (lbfgs, L2, max_iter 1000) at inverse regularisation c."""
    from sklearn.linear_model import LogisticRegression  # slow to import; needed only here

    return LogisticRegression(solver="lbfgs", max_iter=MAX_ITER, C=c).fit(*train)


def accuracy(classifier, split: Split, metric: str = "overall_acc") -> float:
    """Accuracy in percent: overall, or mean_acc (the mean of the recalls of the present classes)."""
    features, labels = split
    correct = classifier.predict(features) == labels
    if metric == "mean_acc":
        return float(np.mean([np.mean(correct[labels == c]) for c in np.unique(labels)]) * 100.0)
    if metric != "overall_acc":
        raise ValueError(f"linear-probe metric must be overall_acc or mean_acc, got {metric!r}")
    return float(np.mean(correct) * 100.0)


@dataclass
class SearchStep:
    c: float
    val_acc: float
    test_acc: Optional[float]


@dataclass
class SearchResult:
    c: float
    classifier: object
    val_acc: float
    grid_val_acc: list[float]
    steps: list[SearchStep] = field(default_factory=list)


def search_c(train: Split, val: Split, num_step: int, test: Optional[Split] = None,
             metric: str = "overall_acc") -> SearchResult:
    """The reference's C search: a coarse grid, then `num_step` log-space bisection rounds.

    The grid's best C (first on ties) gives the interval [C/10, 10C]. Each round fits both ends,
    keeps the better one on val (the left one on ties) and halves the interval (in log10) towards
    it. The last round's winner is the result; with `test`, each round's winner is also scored.
    Scores are `metric` (see accuracy).
    """
    def score(classifier, split: Split) -> float:
        return accuracy(classifier, split, metric)

    grid_acc = [score(fit(train, c), val) for c in C_GRID]
    best = int(np.argmax(grid_acc))
    c_peak = C_GRID[best]
    left, right = c_peak / 10, c_peak * 10
    result = SearchResult(c=c_peak, classifier=None, val_acc=grid_acc[best], grid_val_acc=grid_acc)
    for _ in range(num_step):
        clf_left, clf_right = fit(train, left), fit(train, right)
        acc_left, acc_right = score(clf_left, val), score(clf_right, val)
        middle = 10 ** ((math.log10(left) + math.log10(right)) / 2)
        if acc_left < acc_right:
            result.c, result.classifier, result.val_acc = right, clf_right, acc_right
            left = middle
        else:
            result.c, result.classifier, result.val_acc = left, clf_left, acc_left
            right = middle
        test_acc = None if test is None else score(result.classifier, test)
        result.steps.append(SearchStep(result.c, result.val_acc, test_acc))
    if result.classifier is None:  # num_step = 0: the grid's best
        result.classifier = fit(train, c_peak)
    return result


def sample_few_shot(train_labels: np.ndarray, val_labels: np.ndarray, shots: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of `shots` train and VAL_SHOTS[shots] val items per class (numpy RNG, as the reference).

    One seeded stream: all classes' train draws (np.unique order) first, then all val draws.
    """
    np.random.seed(seed)
    train_idx = [np.random.choice(np.where(train_labels == c)[0], shots, replace=False)
                 for c in np.unique(train_labels)]
    val_shots = VAL_SHOTS.get(shots, min(shots, 4))
    val_idx = [np.random.choice(np.where(val_labels == c)[0], val_shots, replace=False)
               for c in np.unique(val_labels)]
    return np.concatenate(train_idx), np.concatenate(val_idx)


def result_lines(labels: np.ndarray, predictions: np.ndarray) -> list[str]:
    """Dassl's evaluator block (two decimals), as parse_test_res.py reads it."""
    from sklearn.metrics import f1_score

    total, correct = len(labels), int(np.sum(labels == predictions))
    acc = 100.0 * correct / total
    macro_f1 = 100.0 * f1_score(labels, predictions, average="macro", labels=np.unique(labels))
    return ["=> result", f"* total: {total:,}", f"* correct: {correct:,}", f"* accuracy: {acc:.2f}%",
            f"* error: {100.0 - acc:.2f}%", f"* macro_f1: {macro_f1:.2f}%"]


def load_split(feature_dir: str, dataset: str, split: str) -> Split:
    data = np.load(osp.join(feature_dir, dataset, f"{split}.npz"))
    return data["feature_list"], data["label_list"]


def run_protocol(dataset: str, feature_dir: str, num_step: int = 8, num_run: int = 10,
                 report_dir: str = "report", log_dir: str = "output/lpclip",
                 shots_list: Sequence[int] = SHOTS, metric: str = "overall_acc") -> dict[int, tuple[float, float]]:
    """The reference protocol on saved features; returns {K: (mean, std)} test `metric` over runs.

    Writes <report_dir>/<feature_dir name>_s<steps>r<runs>.txt (one line per K, appended),
    the matching _details.txt (every search step) and <log_dir>/<dataset>/shots_<K>/seed<S>/log.txt.
    """
    train, val, test = (load_split(feature_dir, dataset, s) for s in ("train", "val", "test"))
    os.makedirs(report_dir, exist_ok=True)
    stem = osp.join(report_dir, f"{osp.basename(osp.normpath(feature_dir))}_s{num_step}r{num_run}")
    stats = {}
    with open(f"{stem}.txt", "a") as report, open(f"{stem}_details.txt", "a") as details:
        for shots in shots_list:
            accs = []
            for seed in range(1, num_run + 1):
                train_idx, val_idx = sample_few_shot(train[1], val[1], shots, seed)
                result = search_c((train[0][train_idx], train[1][train_idx]),
                                  (val[0][val_idx], val[1][val_idx]), num_step, test, metric)
                accs.append(accuracy(result.classifier, test, metric))  # = the last step's test score
                for i, step in enumerate(result.steps):
                    details.write(f"{dataset}, {shots} Shot, seed {seed}, step {i + 1}: C {step.c:.6g}, "
                                  f"val acc {step.val_acc:.2f}, test acc {step.test_acc:.2f}\n")
                log = [f"Linear probe: {dataset}, {shots} shots, seed {seed}, features {feature_dir}",
                       f"C = {result.c:.6g} (val acc {result.val_acc:.2f}%)",
                       "Finish training", *result_lines(test[1], result.classifier.predict(test[0]))]
                if metric != "overall_acc":
                    log.append(f"* {metric}: {accs[-1]:.2f}%")
                seed_dir = osp.join(log_dir, dataset, f"shots_{shots}", f"seed{seed}")
                os.makedirs(seed_dir, exist_ok=True)
                with open(osp.join(seed_dir, "log.txt"), "w") as f:
                    f.write("\n".join(log) + "\n")
            mean, std = float(np.mean(accs)), float(np.std(accs))
            stats[shots] = (mean, std)
            line = f"{dataset}, {shots} Shot, Test acc stat: {mean:.2f} ({std:.2f})"
            print(line)
            report.write(line + "\n")
    return stats


TASKS_FILE = "tasks.json"  # names and metrics of a multi-task suite's feature folders 0, 1, ...


def run_multitask_protocol(dataset: str, feature_dir: str, num_step: int = 8, num_run: int = 10,
                           report_dir: str = "report", log_dir: str = "output/lpclip",
                           shots_list: Sequence[int] = SHOTS) -> dict[int, float]:
    """run_protocol on each task of a suite (features in <feature_dir>/<dataset>/<task id>/, each
    task scored with its own metric), then the unweighted mean over tasks per K, which is printed,
    appended to the report and written to <log_dir>/<dataset>/lp_average.json."""
    with open(osp.join(feature_dir, dataset, TASKS_FILE)) as f:
        tasks = json.load(f)
    per_task = []
    for t, (name, metric) in enumerate(zip(tasks["names"], tasks["metrics"])):
        print(f"Task {t} ({name}, {metric})")
        per_task.append(run_protocol(f"{dataset}/{t}", feature_dir, num_step, num_run, report_dir, log_dir,
                                     shots_list, metric))
    average = {shots: float(np.mean([stats[shots][0] for stats in per_task])) for shots in shots_list}
    stem = osp.join(report_dir, f"{osp.basename(osp.normpath(feature_dir))}_s{num_step}r{num_run}")
    with open(f"{stem}.txt", "a") as report:
        for shots, value in average.items():
            line = f"{dataset}, {shots} Shot, average over {len(per_task)} tasks: {value:.2f}"
            print(line)
            report.write(line + "\n")
    summary = {"tasks": tasks["names"], "metrics": tasks["metrics"],
               "per_task": [{str(k): list(v) for k, v in stats.items()} for stats in per_task],
               "average": {str(k): v for k, v in average.items()}}
    os.makedirs(osp.join(log_dir, dataset), exist_ok=True)
    with open(osp.join(log_dir, dataset, "lp_average.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return average


@torch.no_grad()
def extract_features(clip_model: nn.Module, loader, device: torch.device) -> Split:
    """Raw (not normalised) image features of every batch of `loader`, and the labels."""
    features, labels = [], []
    for batch in tqdm(loader):
        features.append(clip_model.encode_image(batch["img"].to(device)).float().cpu().numpy())
        labels.append(batch["label"].numpy())
    return np.concatenate(features), np.concatenate(labels)


def to_linear(classifier, layer: nn.Linear) -> None:
    """Copy a fitted LogisticRegression into `layer` (same argmax as classifier.predict)."""
    coef = torch.as_tensor(classifier.coef_, dtype=layer.weight.dtype)
    intercept = torch.as_tensor(classifier.intercept_, dtype=layer.bias.dtype)
    classes = torch.as_tensor(classifier.classes_, dtype=torch.long)
    weight = torch.zeros_like(layer.weight)
    bias = torch.full_like(layer.bias, -torch.inf)  # classes absent from training never win
    if len(classes) == 2:  # binary: one decision function, positive -> classes[1]
        weight[classes[1]], bias[classes[1]], bias[classes[0]] = coef[0], intercept[0], 0.0
    else:
        weight[classes], bias[classes] = coef, intercept
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)


@TRAINER_REGISTRY.register()
class LinearProbeCLIP(FrozenClipHeadMixin, TrainerX):
    """Logistic regression on frozen CLIP features of the (few-shot) train split, C searched on val.

    One "epoch": features with the test transform, the C search on the val split (C = 1 without
    one), the fit. The classifier is registered as "classifier" (nn.Linear) and saved as
    classifier/model.pth.tar-1, so --eval-only --load-epoch 1 works as for the other trainers.
    """

    @staticmethod
    def extend_cfg(cfg: CfgNode) -> None:
        cfg.TRAINER.LINEAR_PROBE = CN()
        cfg.TRAINER.LINEAR_PROBE.NUM_STEP = 8  # bisection rounds of the C search

    def build_model(self) -> None:
        # As the reference's feature extractor: OpenAI's fp16 CLIP on CUDA (fp32 on CPU).
        clip_model, _ = build_clip(self.cfg, "fp16", self.device)
        self.clip_model = clip_model.to(self.device)
        self.classifier = nn.Linear(clip_model.visual.output_dim, self.num_classes).to(self.device)
        self.register_model("classifier", self.classifier)
        self.max_epoch = 1

    def run_epoch(self) -> None:
        from dassl.data.data_manager import build_data_loader
        from dassl.data.transforms import build_transform

        cfg = self.cfg

        def whole_split(items: list):
            # Built here rather than taken from the DataManager: under torchrun its loaders hold
            # a share of the items, and every process fits on all of them.
            return build_data_loader(
                cfg, sampler_type="SequentialSampler", data_source=items,
                batch_size=cfg.DATALOADER.TEST.BATCH_SIZE, tfm=build_transform(cfg, is_train=False),
                is_train=False,
            )

        print("Extracting features of the training set (test transform)")
        train = extract_features(self.clip_model, whole_split(self.dm.dataset.train_x), self.device)
        if self.val_loader is None:
            print("No val split: C = 1.0")
            classifier, c = fit(train, 1.0), 1.0
        else:
            print("Extracting features of the val set")
            val = extract_features(self.clip_model, whole_split(self.dm.dataset.val), self.device)
            result = search_c(train, val, cfg.TRAINER.LINEAR_PROBE.NUM_STEP)
            classifier, c = result.classifier, result.c
            grid = ", ".join(f"{g:g}: {a:.1f}%" for g, a in zip(C_GRID, result.grid_val_acc))
            print(f"C grid (val acc): {grid}")
            print(f"Chosen C = {c:.6g} (val acc {result.val_acc:.2f}%)")
        print(f"Train acc: {accuracy(classifier, train):.2f}% ({len(train[1])} images)")
        to_linear(classifier, self.classifier)


    def forward_features(self, image_features: Tensor) -> Tensor:
        return self.classifier(image_features.float())

    def model_inference(self, image: Tensor) -> Tensor:
        return self.forward_features(self.encode_image(image))
