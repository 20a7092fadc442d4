"""SoftCPT's multi-task suites: General10 and Plant6 (member datasets side by side) and Fashion20.

A suite is a DatasetBaseMT: task t is member t (its classes, local labels), with a task name (the
meta network's input), a metric for the evaluator (overall_acc | mean_acc) and a zero-shot
template (`taskid2template`).

Member splits. Each member folder may hold the reference's split_dk_<Name>.json ({"train", "val",
"test": [[relpath, [label], [task]], ...], "meta": {taskid2cname, taskid2tname, ...}}); it is read
when present. Otherwise the member is built by its own loader (its CoOp split file, or the split
generated from the raw data) and split_dk_<Name>.json is written atomically, so later runs and the
reference read the same split. FGVCAircraft uses its official lists (no file, as the reference).
Task names: <member folder>/task_name.txt when present, else the split file's, else the defaults
below (the reference ships no task_name.txt; see DATASETS.md).

Few-shot: K per (task, class) for train and min(K, 4) for val, drawn once over the whole suite
with python `random` (seeded by --seed) and cached in <suite folder>/split_fewshot_mt/ as
shot_K-seed_S.json (paths relative to DATASET.ROOT); a reference shot_K-seed_S.pkl there is read
instead when present. Then DATASET.SUBSAMPLE_TASKS (all | task<i> | base | new: first ceil(T/2)
tasks | the rest; kept tasks renumbered from 0) and DATASET.SUBSAMPLE_CLASSES per task (all | base
| new: first ceil(n_t/2) classes | the rest, relabelled from 0; works for odd n_t).
"""
from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from typing import Optional, Sequence

from dassl.data import build_task_datasets, concat_task_datasets
from dassl.data.datasets import DATASET_REGISTRY, DatasetBaseMT, Datum, DatumMT
from dassl.data.datasets.fewshot_cache import read_datum_json, restricted_pickle_load, write_datum_json
from dassl.utils import listdir_nohidden, mkdir_if_missing

from . import caltech101, eurosat
from .base import dataset_root, missing, pointing_to_docs
from .splits import SUBSAMPLE_CHOICES, write_json_atomic
from .templates import CUSTOM_TEMPLATES

FEWSHOT_DIR = "split_fewshot_mt"
TASK_NAME_FILE = "task_name.txt"
# Folder name -> class name, applied to the names of a split file after loading (reference files
# keep the folder names of these two members).
CLASS_RENAMES = {"Caltech101": caltech101.NEW_CNAMES, "EuroSAT": eurosat.NEW_CNAMES}


def extend_cfg(cfg) -> None:
    """DATASET.SUBSAMPLE_TASKS and the path rewrite of the multi-task loader (SoftCPT's keys)."""
    if "SUBSAMPLE_TASKS" not in cfg.DATASET:
        cfg.DATASET.SUBSAMPLE_TASKS = "all"  # all, task<i>, base, new
    if "OLD_DATA_PATH" not in cfg.DATALOADER:
        cfg.DATALOADER.OLD_DATA_PATH = ""  # image paths starting with this ...
    if "NEW_DATA_PATH" not in cfg.DATALOADER:
        cfg.DATALOADER.NEW_DATA_PATH = ""  # ... are read from here instead


@dataclass(frozen=True)
class Member:
    """A member dataset of a suite: registered name, default task name, metric, zero-shot template."""

    dataset: str
    task_name: str
    metric: str
    template: str
    split_file: bool = True  # False: official split lists, no split_dk file (FGVCAircraft)


@dataclass
class TaskData:
    """One task's full splits (Datum lists with local labels) and its description."""

    name: str
    classnames: list
    metric: str
    template: str
    train_x: list
    val: list
    test: list


def _read_task_name(directory: str) -> Optional[str]:
    path = os.path.join(directory, TASK_NAME_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        return f.read().strip() or None


def read_dk_split(path: str, prefix: str) -> tuple[dict, dict]:
    """({"train", "val", "test": Datum lists of task 0}, meta) from a split_dk file."""
    print(f"Reading split from {path}")
    with open(path, "r", encoding="utf-8") as f:
        raw = json.load(f)
    meta = raw["meta"]
    classnames = meta["taskid2cname"][0]

    def convert(entries: list) -> list:
        return [Datum(impath=os.path.join(prefix, relpath), label=int(labels[0]), classname=classnames[labels[0]])
                for relpath, labels, _tasks in entries]

    return {split: convert(raw[split]) for split in ("train", "val", "test")}, meta


def write_dk_split(path: str, prefix: str, splits: dict, meta: dict) -> None:
    """The reference's split_dk format, paths relative to prefix, written atomically."""

    def extract(items: list) -> list:
        return [[os.path.relpath(item.impath, prefix).replace(os.sep, "/"), [item.label], [0]] for item in items]

    write_json_atomic({**{split: extract(items) for split, items in splits.items()}, "meta": meta}, path)
    print(f"Saved split to {path}")


def load_member(cfg, root: str, member: Member) -> TaskData:
    """Member `member`'s full splits (see the module doc for split_dk files and task names)."""
    loader = DATASET_REGISTRY.get(member.dataset)
    member_dir = os.path.join(root, loader.dataset_dir)
    if not os.path.isdir(member_dir):
        raise missing(member_dir, f"{member.dataset} dataset folder", loader.section or member.dataset)
    relative_to_dataset_dir = getattr(loader, "split_relative_to_dataset_dir", False)
    prefix = member_dir if relative_to_dataset_dir else os.path.join(member_dir, loader.image_subdir)
    split_path = os.path.join(member_dir, f"split_dk_{member.dataset}.json")
    task_name = _read_task_name(member_dir)

    if member.split_file and os.path.isfile(split_path):
        splits, meta = read_dk_split(split_path, prefix)
        renames = CLASS_RENAMES.get(member.dataset, {})
        classnames = [renames.get(name, name) for name in meta["taskid2cname"][0]]
        task_name = task_name or (meta.get("taskid2tname") or [None])[0] or member.task_name
        return TaskData(task_name, classnames, member.metric, member.template,
                        splits["train"], splits["val"], splits["test"])

    member_cfg = cfg.clone()
    member_cfg.defrost()
    member_cfg.DATASET.NUM_SHOTS = 0
    member_cfg.DATASET.SUBSAMPLE_CLASSES = "all"
    member_cfg.freeze()
    dataset = build_task_datasets(member_cfg, [member.dataset])[0]
    task_name = task_name or member.task_name
    classnames = list(dataset.classnames)
    splits = {"train": dataset.train_x, "val": dataset.val or [], "test": dataset.test}
    if member.split_file:
        meta = {"taskid2cname": [classnames], "taskid2desc": [""], "taskid2type": ["sl"],
                "taskid2tname": [task_name], "taskid2metric": [member.metric]}
        write_dk_split(split_path, prefix, splits, meta)
    return TaskData(task_name, classnames, member.metric, member.template,
                    splits["train"], splits["val"], splits["test"])


def select_tasks(subsample: str, num_tasks: int) -> list[int]:
    """Task ids kept by DATASET.SUBSAMPLE_TASKS."""
    if subsample == "all":
        return list(range(num_tasks))
    if subsample in ("base", "new"):
        half = math.ceil(num_tasks / 2)
        return list(range(half)) if subsample == "base" else list(range(half, num_tasks))
    if subsample.startswith("task") and subsample[4:].isdigit() and int(subsample[4:]) < num_tasks:
        return [int(subsample[4:])]
    raise ValueError(f"DATASET.SUBSAMPLE_TASKS must be all, base, new or task<i> with i < {num_tasks}, "
                     f"got {subsample!r}")


def subsample_items(items: Optional[list], task_map: dict, label_maps: Sequence[dict]) -> Optional[list]:
    """Items renumbered by task_map {old task: new task} and label_maps[new task] {old: new label};
    (task, label) pairs not kept are dropped, and items left with none."""
    if items is None:
        return None
    output = []
    for item in items:
        pairs = [(task_map[t], label_maps[task_map[t]][y]) for t, y in zip(item.task, item.label)
                 if t in task_map and y in label_maps[task_map[t]]]
        if pairs:
            output.append(DatumMT(impath=item.impath, label=[y for _, y in pairs], domain=pairs[0][0],
                                  task=[t for t, _ in pairs], box=item.box))
    return output


def class_selection(n_classes: int, subsample: str) -> list[int]:
    if subsample not in SUBSAMPLE_CHOICES:
        raise ValueError(f"DATASET.SUBSAMPLE_CLASSES must be one of {SUBSAMPLE_CHOICES}, got {subsample!r}")
    half = math.ceil(n_classes / 2)
    return {"all": list(range(n_classes)), "base": list(range(half)),
            "new": list(range(half, n_classes))}[subsample]


class TaskSuite(DatasetBaseMT):
    """A SoftCPT suite; subclasses set dataset_dir (the suite folder) and implement load_tasks."""

    dataset_dir = ""
    section = ""
    extend_cfg = staticmethod(extend_cfg)

    def __init__(self, cfg):
        root = dataset_root(cfg)
        self.dataset_dir = os.path.join(root, type(self).dataset_dir)
        with pointing_to_docs(type(self).__name__, self.section):
            tasks = self.load_tasks(cfg, root)
        merged = concat_task_datasets(tasks, [t.name for t in tasks], [t.metric for t in tasks])
        train, val = self.fewshot(cfg, root, merged)
        taskid2cname = [list(t.classnames) for t in tasks]

        kept = select_tasks(cfg.DATASET.get("SUBSAMPLE_TASKS", "all"), len(tasks))
        subsample = cfg.DATASET.SUBSAMPLE_CLASSES
        if subsample != "all":
            print(f"SUBSAMPLE {subsample.upper()} CLASSES!")
        selections = [class_selection(len(taskid2cname[t]), subsample) for t in kept]
        task_map = {old: new for new, old in enumerate(kept)}
        label_maps = [{old: new for new, old in enumerate(sel)} for sel in selections]
        train, val, test = (subsample_items(items, task_map, label_maps) for items in (train, val, merged.test))

        self.taskid2template = [tasks[t].template for t in kept]
        super().__init__(
            taskid2tname=[tasks[t].name for t in kept],
            taskid2cname=[[taskid2cname[t][y] for y in sel] for t, sel in zip(kept, selections)],
            taskid2desc=["" for _ in kept], taskid2type=["sl" for _ in kept],
            taskid2metric=[tasks[t].metric for t in kept],
            train_x=train, val=val or None, test=test)

    def load_tasks(self, cfg, root: str) -> list[TaskData]:
        raise NotImplementedError

    def fewshot(self, cfg, root: str, merged: DatasetBaseMT) -> tuple[list, Optional[list]]:
        """(train, val) with K shots per (task, class), cached (see the module doc)."""
        num_shots = cfg.DATASET.NUM_SHOTS
        if num_shots < 1:
            return merged.train_x, merged.val
        cache_dir = os.path.join(self.dataset_dir, FEWSHOT_DIR)
        stem = os.path.join(cache_dir, f"shot_{num_shots}-seed_{cfg.SEED}")
        if os.path.isfile(stem + ".pkl"):
            print(f"Loading preprocessed few-shot data from {stem}.pkl")
            cached = restricted_pickle_load(stem + ".pkl")
            return cached["train"], cached.get("val")
        if os.path.isfile(stem + ".json"):
            print(f"Loading preprocessed few-shot data from {stem}.json")
            cached = read_datum_json(stem + ".json", root)
            return cached["train"], cached.get("val")
        train = merged.generate_fewshot_dataset(merged.train_x, num_shots=num_shots)
        val = merged.generate_fewshot_dataset(merged.val, num_shots=min(num_shots, 4)) if merged.val else None
        mkdir_if_missing(cache_dir)
        print(f"Saving preprocessed few-shot data to {stem}.json")
        write_datum_json(stem + ".json", {"train": train, "val": val or []}, root)
        return train, val


class MemberSuite(TaskSuite):
    """A suite whose tasks are registered member datasets (General10, Plant6)."""

    members: tuple[Member, ...] = ()

    def load_tasks(self, cfg, root: str) -> list[TaskData]:
        return [load_member(cfg, root, member) for member in self.members]


GENERAL10_MEMBERS = (
    Member("Caltech101", "generic object", "mean_acc", "a photo of a {}."),
    Member("DescribableTextures", "texture", "overall_acc", "{} texture."),
    Member("EuroSAT", "satellite image of land use", "overall_acc", "a centered satellite photo of {}."),
    Member("FGVCAircraft", "aircraft model", "mean_acc", "a photo of a {}, a type of aircraft.", split_file=False),
    Member("Food101", "food", "overall_acc", "a photo of {}, a type of food."),
    Member("OxfordFlowers", "flower", "mean_acc", "a photo of a {}, a type of flower."),
    Member("OxfordPets", "pet", "mean_acc", "a photo of a {}, a type of pet."),
    Member("StanfordCars", "car model", "overall_acc", "a photo of a {}."),
    Member("SUN397", "scene", "overall_acc", "a photo of a {}."),
    Member("UCF101", "human action", "overall_acc", "a photo of a person doing {}."),
)

PLANT6_MEMBERS = (
    Member("FruitVegetable", "fruit or vegetable", "overall_acc", "a photo of a {}, a type of fruit or vegetable."),
    Member("KaggleFlower", "flower", "overall_acc", "a photo of a {}, a type of flower."),
    Member("KaggleMushroom", "mushroom", "overall_acc", "a photo of a {}, a type of mushroom."),
    Member("KaggleVegetable", "vegetable", "overall_acc", "a photo of a {}, a type of vegetable."),
    Member("PlantSeedlingV1", "plant seedling", "overall_acc", "a photo of a {}, a type of seedling."),
    Member("PlantVillage", "plant leaf disease", "overall_acc", "a photo of a plant leaf with {} disease."),
)


@DATASET_REGISTRY.register()
class General10(MemberSuite):
    dataset_dir = "general10"
    section = "General-10"
    members = GENERAL10_MEMBERS


@DATASET_REGISTRY.register()
class Plant6(MemberSuite):
    dataset_dir = "plant6"
    section = "Plant-6"
    members = PLANT6_MEMBERS


# Fashion-20 task id -> the garment its template names.
FASHION20_KINDS = ["pants"] * 3 + ["tops"] * 4 + ["shoes"] * 7 + ["hat"] + ["socks"] * 2 + ["skirt", "tops",
                                                                                           "underwear"]


@DATASET_REGISTRY.register()
class Fashion20(TaskSuite):
    """Natively multi-task: images/<task id>/<class id>/*.jpg, task_info.csv, split_dk_Fashion20.json.

    task_info.csv: a header line, then per task 4 tab-separated columns (-, task name, -, class
    names comma-separated by class id). Missing split: each task's images shuffled and cut
    50/20/30 (python random). All tasks use mean per-class accuracy.
    """

    dataset_dir = "fashion20"
    section = "Fashion-20"
    image_subdir = "images"

    def load_tasks(self, cfg, root: str) -> list[TaskData]:
        if not os.path.isdir(self.dataset_dir):
            raise missing(self.dataset_dir, "Fashion20 dataset folder", self.section)
        image_dir = os.path.join(self.dataset_dir, self.image_subdir)
        split_path = os.path.join(self.dataset_dir, "split_dk_Fashion20.json")
        if os.path.isfile(split_path):
            print(f"Reading split from {split_path}")
            with open(split_path, "r", encoding="utf-8") as f:
                raw = json.load(f)
            meta = raw["meta"]
            splits = {split: [(os.path.join(image_dir, rel), labels, tasks) for rel, labels, tasks in raw[split]]
                      for split in ("train", "val", "test")}
        else:
            meta, splits = self._create_split(image_dir)
            out = {split: [[os.path.relpath(p, image_dir).replace(os.sep, "/"), labels, tasks]
                           for p, labels, tasks in entries] for split, entries in splits.items()}
            write_json_atomic({**out, "meta": meta}, split_path)
            print(f"Saved split to {split_path}")

        tasks = []
        for t, (name, cnames) in enumerate(zip(meta["taskid2tname"], meta["taskid2cname"])):
            per_split = {split: [Datum(impath=p, label=labels[0], classname=cnames[labels[0]])
                                 for p, labels, task_ids in entries if task_ids[0] == t]
                         for split, entries in splits.items()}
            kind = FASHION20_KINDS[t] if t < len(FASHION20_KINDS) else "clothing"
            tasks.append(TaskData(name, list(cnames), "mean_acc", f"a photo of {{}}, a type of {kind}.",
                                  per_split["train"], per_split["val"], per_split["test"]))
        return tasks

    def _create_split(self, image_dir: str) -> tuple[dict, dict]:
        info_path = os.path.join(self.dataset_dir, "task_info.csv")
        if not os.path.isfile(info_path):
            raise missing(info_path, "Fashion20 task_info.csv", self.section)
        with open(info_path, "r", encoding="utf-8") as f:
            rows = [line.rstrip("\n").split("\t") for line in f.readlines()[1:] if line.strip()]
        tnames = [row[1].strip().replace(" ", "_") for row in rows]
        cnames = [[name.strip() for name in row[3].split(",")] for row in rows]
        splits: dict = {"train": [], "val": [], "test": []}
        print("Splitting each task into 50% train, 20% val, and 30% test")
        for t in range(len(rows)):
            task_dir = os.path.join(image_dir, str(t))
            entries = [(os.path.join(task_dir, c, im), [int(c)], [t])
                       for c in sorted(listdir_nohidden(task_dir), key=int)
                       for im in sorted(listdir_nohidden(os.path.join(task_dir, c)))]
            random.shuffle(entries)
            n_train, n_val = round(len(entries) * 0.5), round(len(entries) * 0.2)
            splits["train"] += entries[:n_train]
            splits["val"] += entries[n_train:n_train + n_val]
            splits["test"] += entries[n_train + n_val:]
        meta = {"taskid2cname": cnames, "taskid2desc": [""] * len(rows), "taskid2type": ["sl"] * len(rows),
                "taskid2tname": tnames, "taskid2metric": ["mean_acc"] * len(rows)}
        return meta, splits


def single_task_suite(cfg, dataset) -> DatasetBaseMT:
    """A single-task dataset as a suite of one task (the reference's member datasets are such
    suites): its task name (task_name.txt in its folder, else the defaults above, else its
    DATASET.NAME), metric and zero-shot template."""
    name = cfg.DATASET.NAME
    member = next((m for m in (*GENERAL10_MEMBERS, *PLANT6_MEMBERS) if m.dataset == name), None)
    task_name = _read_task_name(getattr(dataset, "dataset_dir", "")) or (member.task_name if member else name)
    metric = member.metric if member else "overall_acc"
    template = member.template if member else CUSTOM_TEMPLATES.get(name, "a photo of a {}.")
    suite = concat_task_datasets([dataset], [task_name], [metric])
    suite.taskid2template = [template]
    return suite
