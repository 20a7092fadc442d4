"""The 20 ELEVATER image-classification tasks (MVLPT's targets), read from their published layout.

Each task is registered under its ELEVATER name (`--dataset cifar-10`, DATASET.NAME "cifar-10")
as a one-task multi-task dataset, so that labels are 0/1 vectors (VOC is multi-label) and the
per-task evaluator scores it with the task's metric (accuracy, mean-per-class, 11-point mAP).

Layout (the `vision_datasets` hub's, downloaded on first use into DATASET.ROOT):
    <ROOT>/classification/<name>_<date>/{train,val,test index file, labelmap, *.zip}
An index file is IRIS text (`<zip>@<member> <label>[,<label>...]` per line, label ids from 0) or
COCO JSON (images, annotations with category ids, categories). Zips are extracted once next to
them (`_extracted/<zip>/`). Downloads resume (HTTP Range) and show progress; offline, a missing
file ends the run with one line naming it and where to put it.

Multitask runs (`multitask_dataset`) merge the tasks' manifests in sorted name order and sample
them jointly, as the toolkit's multitask manifest does.

Sampling (the ELEVATER toolkit's, as MVLPT runs it): DATASET.NUM_SAMPLES_PER_CLASS = K shots from
the official train split (shuffled with Random(DATASET.RANDOM_SEED_SAMPLING), images taken while a
class of theirs has fewer than K), then a class-balanced 80/20 hold-out: per class the first
ceil(0.2 * count) sampled images are the validation set (K = 1: train = val = the 1-shot set).
The test set is the official test split. The hub's own val split is never used (as MVLPT).
"""
from __future__ import annotations

import json
import math
import os
import random
import urllib.error
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional, Sequence

from dassl.data.datasets import DATASET_REGISTRY, DatasetBaseMT, DatumMT

from .base import dataset_root
from .download import extract, http_download
from .elevater_classes import CLASSES_AND_METRICS

BLOB_URL = "https://cvinthewildeus.blob.core.windows.net/datasets"
EXTRACTED = "_extracted"
# The 12 targets of the paper's "average over 12 tasks" (those not among CoOp's 11 datasets).
TARGETS_12 = (
    "hateful-memes", "cifar-10", "mnist", "resisc45_clip", "country211", "voc-2007-classification",
    "cifar-100", "patch-camelyon", "rendered-sst2", "gtsrb", "fer-2013", "kitti-distance",
)


@dataclass(frozen=True)
class Usage:
    """One split's index file and the zips holding its images."""

    index: str
    zips: tuple[str, ...]


@dataclass(frozen=True)
class Task:
    name: str
    folder: str  # root_folder of the hub, under DATASET.ROOT
    train: Usage
    test: Usage
    val: Optional[Usage] = None
    labelmap: Optional[str] = None
    coco: bool = False
    multilabel: bool = False

    @property
    def classnames(self) -> list[str]:
        return list(CLASSES_AND_METRICS[self.name][0])

    @property
    def metric(self) -> str:
        return CLASSES_AND_METRICS[self.name][1]


def _iris(name: str, date: str, train: tuple, test: tuple, val: Optional[tuple] = None,
          labelmap: Optional[str] = "labels.txt", folder: Optional[str] = None, **kw) -> Task:
    return Task(name, f"classification/{folder or name.replace('-', '_')}_{date}", Usage(*train),
                Usage(*test), Usage(*val) if val else None, labelmap, **kw)


# The hub's vision_datasets.json entries (version 1) of the 20 tasks.
TASKS = {task.name: task for task in [
    _iris("voc-2007-classification", "20211007", ("train_ic.txt", ("train.zip",)),
          ("test_ic.txt", ("test.zip",)), ("val_ic.txt", ("train.zip",)), folder="voc2007", multilabel=True),
    _iris("gtsrb", "20210923", ("train.txt", ("train.zip",)), ("test.txt", ("final_test.zip",)),
          ("val.txt", ("val.zip",)), labelmap="labelmap.txt"),
    _iris("country211", "20210924", ("train.txt", ("train.zip",)), ("test.txt", ("test.zip",)),
          ("valid.txt", ("valid.zip",))),
    _iris("rendered-sst2", "20210924", ("train.txt", ("train.zip",)), ("test.txt", ("test.zip",)),
          ("valid.txt", ("valid.zip",))),
    _iris("kitti-distance", "20210923", ("train_meta.json", ("train_images.zip",)),
          ("test_meta.json", ("test_images.zip",)), ("validation_meta.json", ("validation_images.zip",)),
          labelmap=None, coco=True),
    _iris("eurosat_clip", "20210930", ("train.txt", ("2750.zip",)), ("test.txt", ("2750.zip",)),
          ("val.txt", ("2750.zip",))),
    _iris("resisc45_clip", "20210924", ("train.json", ("images.zip",)), ("test.json", ("images.zip",)),
          ("val.json", ("images.zip",)), labelmap=None, coco=True),
    _iris("caltech-101", "20211007", ("train.txt", ("train.zip",)), ("test.txt", ("test.zip",))),
    _iris("cifar-10", "20211007", ("train.txt", ("train.zip",)), ("test.txt", ("val.zip",))),
    _iris("cifar-100", "20200721", ("train_images.txt", ("train_images.zip",)),
          ("test_images.txt", ("test_images.zip",)), folder="cifar100"),
    _iris("dtd", "20211007", ("train.txt", ("train.zip",)), ("test.txt", ("test.zip",)),
          ("val.txt", ("val.zip",))),
    _iris("fgvc-aircraft-2013b-variants102", "20211007", ("train.txt", ("train.zip",)),
          ("test.txt", ("test.zip",)), ("val.txt", ("val.zip",))),
    _iris("food-101", "20211007", ("train.txt", ("train.zip",)), ("test.txt", ("val.zip",))),
    _iris("mnist", "20211008", ("train.txt", ("train.zip",)), ("test.txt", ("val.zip",))),
    _iris("oxford-flower-102", "20211007", ("train.txt", ("train.zip",)), ("test.txt", ("test.zip",)),
          ("val.txt", ("val.zip",))),
    _iris("oxford-iiit-pets", "20211007", ("train.txt", ("train.zip",)), ("test.txt", ("val.zip",))),
    _iris("patch-camelyon", "20211007", ("train.txt", ("train.zip",)), ("test.txt", ("test.zip",)),
          ("val.txt", ("validation.zip",))),
    _iris("stanford-cars", "20211007", ("train.txt", ("train.zip",)), ("test.txt", ("val.zip",))),
    _iris("fer-2013", "20211008", ("train.txt", ("train.zip",)), ("test.txt", ("test.zip",)),
          ("val.txt", ("val.zip",))),
    _iris("hateful-memes", "20211014", ("train_meta.json", ("img.zip",)), ("test_meta.json", ("img.zip",)),
          labelmap=None, coco=True),
]}

Item = tuple[str, list[int]]  # (image path, class ids)

# DATASET keys of the ELEVATER protocol (MVLPT's train.py adds them; --shots and --seed set them).
ELEVATER_KEYS = {
    "NUM_SAMPLES_PER_CLASS": 20,  # K shots per class
    "RANDOM_SEED_SAMPLING": 1,  # few-shot sampling seed
    "CENTER_CROP": False,  # resize + center crop instead of resizing to INPUT.SIZE
}


def fetch(root: str, task: Task, filename: str, download: bool = True) -> str:
    """root/<task folder>/<filename>, downloaded from the ELEVATER storage when missing."""
    path = os.path.join(root, task.folder, filename)
    if os.path.isfile(path):
        return path
    url = f"{BLOB_URL}/{task.folder}/{filename}"
    if not download:
        raise FileNotFoundError(f'ELEVATER {task.name}: "{path}" is missing (download it from {url})')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    print(f"Downloading {url}")
    try:
        return http_download(url, path)
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise FileNotFoundError(
            f'ELEVATER {task.name}: "{path}" is missing and could not be downloaded from {url} ({reason}); '
            "download it by hand into that folder (an interrupted download resumes from its .part file)"
        ) from None


def extracted(zip_path: str) -> str:
    """The folder holding zip_path's members, extracted once (a marker file says it is complete)."""
    folder = os.path.join(os.path.dirname(zip_path), EXTRACTED, os.path.basename(zip_path))
    marker = os.path.join(folder, ".complete")
    if not os.path.isfile(marker):
        print(f"Extracting {zip_path}")
        extract(zip_path, folder)
        open(marker, "w").close()
    return folder


def _image_path(root: str, task: Task, ref: str, zip_folders: dict[str, str], download: bool) -> str:
    """Path of an index entry `<zip>@<member>` (or a path relative to the task folder)."""
    if "@" in ref:
        zip_name, member = ref.split("@", 1)
        if zip_name not in zip_folders:  # once per zip, not once per image
            zip_folders[zip_name] = extracted(fetch(root, task, zip_name, download))
        return os.path.join(zip_folders[zip_name], member)
    return os.path.join(root, task.folder, ref)


def parse_iris(lines: Sequence[str]) -> list[tuple[str, list[int]]]:
    """IRIS classification lines `<image ref> <id>[,<id>...]` -> (ref, ids)."""
    items = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        ref, _, labels = line.rpartition(" ")
        items.append((ref, [int(label) for label in labels.split(",") if label != ""]))
    return items


def parse_coco(manifest: dict) -> list[tuple[str, list[int]]]:
    """COCO classification JSON -> (file_name, ids); ids index the categories sorted by id."""
    category_index = {cat["id"]: i for i, cat in enumerate(sorted(manifest["categories"], key=lambda c: c["id"]))}
    labels = defaultdict(list)
    for ann in manifest["annotations"]:
        labels[ann["image_id"]].append(category_index[ann["category_id"]])
    return [(image["file_name"], sorted(set(labels[image["id"]]))) for image in manifest["images"]]


def read_usage(root: str, task: Task, usage: Usage, download: bool = True) -> list[Item]:
    """All (image path, class ids) of one split, in index order."""
    zip_folders = {zip_name: extracted(fetch(root, task, zip_name, download)) for zip_name in usage.zips}
    index = fetch(root, task, usage.index, download)
    with open(index, encoding="utf-8") as f:
        entries = parse_coco(json.load(f)) if task.coco else parse_iris(f.readlines())
    return [(_image_path(root, task, ref, zip_folders, download), labels) for ref, labels in entries]


def sample_few_shot(items: Sequence[Item], shots: int, seed: int) -> list[Item]:
    """Greedy K-shot subset: items in Random(seed) order, kept while one of their classes has < K."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    counts: dict[int, int] = defaultdict(int)
    chosen = []
    for i in order:
        labels = items[i][1]
        if labels and any(counts[label] < shots for label in labels):
            chosen.append(items[i])
            for label in labels:
                counts[label] += 1
    return chosen


def holdout_split(items: Sequence[Item], val_fraction: float = 0.2) -> tuple[list[Item], list[Item]]:
    """Class-balanced hold-out: per class the first ceil(fraction * count) items go to val.

    Multi-label items go to val while one of their classes still needs val items.
    """
    totals: dict[int, int] = defaultdict(int)
    for _, labels in items:
        for label in labels:
            totals[label] += 1
    wanted = {label: math.ceil(val_fraction * count) for label, count in totals.items()}
    taken: dict[int, int] = defaultdict(int)
    train, val = [], []
    for item in items:
        if any(taken[label] < wanted[label] for label in item[1]):
            val.append(item)
            for label in item[1]:
                taken[label] += 1
        else:
            train.append(item)
    return train, val


def few_shot_splits(train_items: Sequence[Item], shots: int, seed: int) -> tuple[list[Item], list[Item]]:
    """(train, val) of MVLPT's ELEVATER protocol (see the module docstring); shots <= 0: all items."""
    sampled = sample_few_shot(train_items, shots, seed) if shots > 0 else list(train_items)
    if shots == 1:
        return sampled, list(sampled)
    return holdout_split(sampled)


def _datums(items: Sequence[Item]) -> list[DatumMT]:
    return [DatumMT(impath=path, label=list(labels), domain=0, task=[0] * len(labels)) for path, labels in items]


class ElevaterDataset(DatasetBaseMT):
    """One ELEVATER task (class attribute `task`), as a one-task multi-task dataset."""

    task: Task

    @staticmethod
    def extend_cfg(cfg) -> None:
        for key, value in ELEVATER_KEYS.items():
            if key not in cfg.DATASET:
                cfg.DATASET[key] = value

    def __init__(self, cfg):
        task = self.task
        root = dataset_root(cfg)
        train_items = read_usage(root, task, task.train)
        test_items = read_usage(root, task, task.test)
        shots, seed = cfg.DATASET.NUM_SAMPLES_PER_CLASS, cfg.DATASET.RANDOM_SEED_SAMPLING
        train, val = few_shot_splits(train_items, shots, seed)
        print(f"ELEVATER {task.name}: {len(train)} train / {len(val)} val images "
              f"({shots}-shot, sampling seed {seed}), {len(test_items)} test images")
        super().__init__(
            taskid2tname=[task.name], taskid2cname=[task.classnames], taskid2desc=[""],
            taskid2type=["ml" if task.multilabel else "sl"], taskid2metric=[task.metric],
            train_x=_datums(train), val=_datums(val), test=_datums(test_items),
        )


def multitask_dataset(cfg, names: Sequence[str]) -> DatasetBaseMT:
    """Several ELEVATER tasks as one multi-task dataset, as the toolkit's multitask manifest: tasks
    in sorted name order, their train images merged (global class id = task offset + local id)
    and sampled jointly (one few-shot draw and hold-out over the merged list); tests concatenated."""
    tasks = [TASKS[name] for name in sorted(names)]
    root = dataset_root(cfg)
    offsets = [sum(len(t.classnames) for t in tasks[:i]) for i in range(len(tasks))]
    task_of = {offset + c: (i, c) for i, (task, offset) in enumerate(zip(tasks, offsets))
               for c in range(len(task.classnames))}

    def merged(usage_of) -> list[Item]:
        return [(path, [offsets[i] + label for label in labels])
                for i, task in enumerate(tasks) for path, labels in read_usage(root, task, usage_of(task))]

    def datums(items: Sequence[Item]) -> list[DatumMT]:
        out = []
        for path, labels in items:
            pairs = [task_of[label] for label in labels]
            out.append(DatumMT(impath=path, label=[c for _, c in pairs], domain=pairs[0][0],
                               task=[t for t, _ in pairs]))
        return out

    shots, seed = cfg.DATASET.NUM_SAMPLES_PER_CLASS, cfg.DATASET.RANDOM_SEED_SAMPLING
    train, val = few_shot_splits(merged(lambda t: t.train), shots, seed)
    test = merged(lambda t: t.test)
    print(f"ELEVATER multitask ({len(tasks)} tasks): {len(train)} train / {len(val)} val images "
          f"({shots}-shot, sampling seed {seed}), {len(test)} test images")
    return DatasetBaseMT(
        taskid2tname=[t.name for t in tasks], taskid2cname=[t.classnames for t in tasks],
        taskid2desc=[""] * len(tasks), taskid2type=["ml" if t.multilabel else "sl" for t in tasks],
        taskid2metric=[t.metric for t in tasks], train_x=datums(train), val=datums(val), test=datums(test),
    )


for _task in TASKS.values():
    DATASET_REGISTRY.register(type(_task.name, (ElevaterDataset,), {"task": _task}))


def is_elevater(name: str) -> bool:
    return name in TASKS


def elevater_transform(cfg):
    """The toolkit's transform for train and test: Resize to INPUT.SIZE (bicubic; squashes the
    aspect ratio) or, DATASET.CENTER_CROP, short side to INPUT.SIZE + center crop; then ToTensor and
    Normalize(INPUT.PIXEL_MEAN, PIXEL_STD). No augmentation."""
    from torchvision import transforms as T

    size = tuple(cfg.INPUT.SIZE)
    bicubic = T.InterpolationMode.BICUBIC
    if cfg.DATASET.CENTER_CROP:
        resize = [T.Resize(size[0], interpolation=bicubic), T.CenterCrop(size)]
    else:
        resize = [T.Resize(size, interpolation=bicubic)]
    return T.Compose(resize + [T.ToTensor(), T.Normalize(cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD)])
