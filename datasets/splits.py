"""Split helpers shared by the benchmark datasets (CoOp's split_zhou_*.json format).

Every shuffle draws from python `random` (the module by default) in the reference's order, so a
split generated after `random.seed(s)` is the one the reference would generate from the same list.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import tempfile
from collections import defaultdict
from typing import Optional, Sequence

from dassl.data.datasets import Datum
from dassl.utils import listdir_nohidden

SUBSAMPLE_CHOICES = ("all", "base", "new")


def read_split(filepath: str, path_prefix: str) -> tuple[list, list, list]:
    """(train, val, test) from a split JSON; impaths are joined back onto path_prefix."""
    print(f"Reading split from {filepath}")
    with open(filepath, "r", encoding="utf-8") as f:
        split = json.load(f)

    def convert(items: list) -> list:
        return [Datum(impath=os.path.join(path_prefix, impath), label=int(label), classname=classname)
                for impath, label, classname in items]

    return convert(split["train"]), convert(split["val"]), convert(split["test"])


def save_split(train: list, val: list, test: list, filepath: str, path_prefix: str) -> None:
    """Write the split JSON (indent 4) with impaths relative to path_prefix, atomically."""

    def extract(items: list) -> list:
        out = []
        for item in items:
            impath = item.impath
            if impath.startswith(path_prefix):
                impath = impath[len(path_prefix):].lstrip("/" + os.sep)
            out.append([impath, item.label, item.classname])
        return out

    split = {"train": extract(train), "val": extract(val), "test": extract(test)}
    write_json_atomic(split, filepath)
    print(f"Saved split to {filepath}")


def write_json_atomic(obj, filepath: str) -> None:
    """json.dump with indent 4 via a temp file in the same folder and os.replace, so an interrupted
    run never leaves a truncated split behind (the next run would otherwise trust it)."""
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(filepath) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=4, separators=(",", ": "))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; split files are meant to be shared
        os.replace(tmp, filepath)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def split_trainval(trainval: list, p_val: float = 0.2, rng=random) -> tuple[list, list]:
    """Per class (first-appearance order): shuffle, first round(p_val * n) go to val."""
    p_trn = 1 - p_val
    print(f"Splitting trainval into {p_trn:.0%} train and {p_val:.0%} val")
    tracker = defaultdict(list)
    for idx, item in enumerate(trainval):
        tracker[item.label].append(idx)

    train, val = [], []
    for label, idxs in tracker.items():
        n_val = round(len(idxs) * p_val)
        if n_val <= 0:
            raise ValueError(f"Class {label} has {len(idxs)} trainval images: too few for a "
                             f"{p_val:.0%} val split")
        rng.shuffle(idxs)
        for n, idx in enumerate(idxs):
            (val if n < n_val else train).append(trainval[idx])
    return train, val


def split_per_class(groups: Sequence[tuple[int, str, list]], p_trn: float = 0.5, p_val: float = 0.2,
                    rng=random) -> tuple[list, list, list]:
    """Shuffle each (label, classname, impaths) group and cut it round(p_trn n)/round(p_val n)/rest."""
    train, val, test = [], [], []
    for label, classname, impaths in groups:
        rng.shuffle(impaths)
        n_total = len(impaths)
        n_train = round(n_total * p_trn)
        n_val = round(n_total * p_val)
        n_test = n_total - n_train - n_val
        if min(n_train, n_val, n_test) <= 0:
            raise ValueError(f"Class {classname!r} has {n_total} images: too few for a "
                             f"{p_trn:.0%}/{p_val:.0%}/rest split")

        def collate(ims: list) -> list:
            return [Datum(impath=im, label=label, classname=classname) for im in ims]

        train.extend(collate(impaths[:n_train]))
        val.extend(collate(impaths[n_train:n_train + n_val]))
        test.extend(collate(impaths[n_train + n_val:]))
    return train, val, test


def read_and_split_data(image_dir: str, p_trn: float = 0.5, p_val: float = 0.2,
                        ignored: Sequence[str] = (), new_cnames: Optional[dict] = None,
                        rng=random) -> tuple[list, list, list]:
    """Class folders of image_dir -> (train, val, test).

    Labels follow the case-sensitive sort of the folder names (before renaming); images keep
    os.listdir order before the shuffle, as the reference.
    """
    categories = sorted(c for c in listdir_nohidden(image_dir) if c not in ignored)
    print(f"Splitting into {p_trn:.0%} train, {p_val:.0%} val, and {1 - p_trn - p_val:.0%} test")
    groups = []
    for label, category in enumerate(categories):
        category_dir = os.path.join(image_dir, category)
        impaths = [os.path.join(category_dir, im) for im in listdir_nohidden(category_dir)]
        classname = (new_cnames or {}).get(category, category)
        groups.append((label, classname, impaths))
    return split_per_class(groups, p_trn=p_trn, p_val=p_val, rng=rng)


def class_groups(n: int, n_groups: int) -> list[range]:
    """n class positions cut into n_groups consecutive groups, the first n % n_groups one larger
    (2 groups: base = the first ceil(n/2), new = the rest)."""
    if not 1 <= n_groups <= n:
        raise ValueError(f"cannot cut {n} classes into {n_groups} groups")
    size, extra = divmod(n, n_groups)
    bounds = [k * size + min(k, extra) for k in range(n_groups + 1)]
    return [range(bounds[k], bounds[k + 1]) for k in range(n_groups)]


# Class-incremental stages: "group:K/N" = the K-th of N consecutive class groups, "seen:K/N" = groups 1..K.
_STAGED = re.compile(r"^(group|seen):(\d+)/(\d+)$")


def subsample_classes(*splits: Optional[list], subsample: str = "all") -> list:
    """Keep the base (first ceil(n/2) sorted labels of the FIRST list) or new (the rest) classes in
    every list and relabel them 0..m-1 in order. "all" returns the lists unchanged; None stays None.
    "group:K/N" keeps the K-th of N consecutive groups of the sorted labels (class_groups; 1/2 is
    base, 2/2 is new), "seen:K/N" groups 1..K (class-incremental learning)."""
    staged = _STAGED.match(subsample)
    if subsample not in SUBSAMPLE_CHOICES and not (staged and 1 <= int(staged[2]) <= int(staged[3])):
        raise ValueError(f"DATASET.SUBSAMPLE_CLASSES must be one of {SUBSAMPLE_CHOICES}, group:K/N or seen:K/N "
                         f"(1 <= K <= N), got {subsample!r}")
    if subsample == "all":
        return list(splits)

    labels = sorted({item.label for item in splits[0]})
    print(f"SUBSAMPLE {subsample.upper()} CLASSES!")
    if staged:
        groups = class_groups(len(labels), int(staged[3]))
        k = int(staged[2])
        chosen = groups[k - 1] if staged[1] == "group" else range(groups[k - 1].stop)
        selected = [labels[i] for i in chosen]
    else:
        m = math.ceil(len(labels) / 2)
        selected = labels[:m] if subsample == "base" else labels[m:]
    relabeler = {y: y_new for y_new, y in enumerate(selected)}

    output = []
    for split in splits:
        if split is None:
            output.append(None)
            continue
        output.append([Datum(impath=item.impath, label=relabeler[item.label], domain=item.domain,
                             classname=item.classname)
                       for item in split if item.label in relabeler])
    return output
