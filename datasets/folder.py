"""FolderDataset: add a dataset with one YAML file and no Python.

Layouts, under <DATASET.ROOT>/<DATASET.FOLDER.DIR> (DIR may be absolute; "" = the root itself):
- folders: train/<class>/<image>, test/<class>/<image>, optional val/<class>/<image>.
  Labels follow the sorted (code-point) names of the train class folders; images are sorted.
- csv: train.csv, test.csv, optional val.csv with rows `path,label,classname` (a header row with
  these names is optional); paths are relative to the dataset folder or absolute. Labels of
  train must be 0..n-1, each with one class name.
Few-shot (DATASET.NUM_SHOTS), its cache in split_fewshot/ and base/new (SUBSAMPLE_CLASSES) work
as for the benchmark datasets. Class names keep underscores; prompts replace them by spaces.

Config keys, added by extend_cfg(cfg) (train.py calls it before merging YAML files; a cfg
without them gets the defaults below):
- DATASET.FOLDER.DIR = ""          the dataset folder
- DATASET.FOLDER.FORMAT = "auto"   auto | folders | csv (auto: csv when train.csv exists)
- DATASET.FOLDER.TEMPLATE = ""     zero-shot template; "" = "a photo of a {}."
"""
from __future__ import annotations

import csv
import os
from typing import Optional

from yacs.config import CfgNode

from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum
from dassl.utils import listdir_nohidden, mkdir_if_missing

from .base import dataset_root, fewshot_splits, missing, pointing_to_docs, subsample_of
from .splits import subsample_classes

SECTION = "Custom datasets (FolderDataset)"
FORMATS = ("auto", "folders", "csv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
DEFAULTS = {"DIR": "", "FORMAT": "auto", "TEMPLATE": ""}


def extend_cfg(cfg: CfgNode) -> None:
    """Add the DATASET.FOLDER.* keys with their defaults (keeps values already there)."""
    if "FOLDER" not in cfg.DATASET:
        cfg.DATASET.FOLDER = CfgNode()
    for key, value in DEFAULTS.items():
        if key not in cfg.DATASET.FOLDER:
            cfg.DATASET.FOLDER[key] = value


def folder_option(cfg, key: str) -> str:
    node = cfg.DATASET.get("FOLDER", None)
    return node.get(key, DEFAULTS[key]) if node is not None else DEFAULTS[key]


@DATASET_REGISTRY.register()
class FolderDataset(DatasetBase):
    def __init__(self, cfg):
        root = dataset_root(cfg)
        self.dataset_dir = os.path.join(root, os.path.expanduser(folder_option(cfg, "DIR")))
        if not os.path.isdir(self.dataset_dir):
            raise missing(self.dataset_dir, "FolderDataset folder (DATASET.FOLDER.DIR)", SECTION)
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        mkdir_if_missing(self.split_fewshot_dir)

        fmt = folder_option(cfg, "FORMAT")
        if fmt not in FORMATS:
            raise ValueError(f"DATASET.FOLDER.FORMAT must be one of {FORMATS}, got {fmt!r}")
        if fmt == "auto":
            fmt = "csv" if os.path.isfile(os.path.join(self.dataset_dir, "train.csv")) else "folders"

        with pointing_to_docs("FolderDataset", SECTION):
            train, val, test = self.read_csvs() if fmt == "csv" else self.read_folders()
            splits = fewshot_splits(self, cfg, {"train": train, "val": val})
            train, val, test = subsample_classes(splits["train"], splits["val"], test,
                                                 subsample=subsample_of(cfg))
        super().__init__(train_x=train, val=val, test=test)

    def read_folders(self) -> tuple[list, Optional[list], list]:
        train_dir = os.path.join(self.dataset_dir, "train")
        if not os.path.isdir(train_dir):
            raise missing(train_dir, "FolderDataset train folder", SECTION)
        classnames = sorted(c for c in listdir_nohidden(train_dir)
                            if os.path.isdir(os.path.join(train_dir, c)))
        cname2lab = {c: i for i, c in enumerate(classnames)}
        train = self.read_split_folder(train_dir, cname2lab)
        val_dir = os.path.join(self.dataset_dir, "val")
        val = self.read_split_folder(val_dir, cname2lab) if os.path.isdir(val_dir) else None
        test_dir = os.path.join(self.dataset_dir, "test")
        if not os.path.isdir(test_dir):
            raise missing(test_dir, "FolderDataset test folder", SECTION)
        return train, val, self.read_split_folder(test_dir, cname2lab)

    @staticmethod
    def read_split_folder(split_dir: str, cname2lab: dict) -> list:
        items = []
        for classname in sorted(listdir_nohidden(split_dir)):
            class_dir = os.path.join(split_dir, classname)
            if not os.path.isdir(class_dir):
                continue
            if classname not in cname2lab:
                raise ValueError(f'Class folder "{class_dir}" has no counterpart in the train folder')
            for imname in sorted(listdir_nohidden(class_dir)):
                if imname.lower().endswith(IMAGE_EXTENSIONS):
                    items.append(Datum(impath=os.path.join(class_dir, imname),
                                       label=cname2lab[classname], classname=classname))
        return items

    def read_csvs(self) -> tuple[list, Optional[list], list]:
        paths = {s: os.path.join(self.dataset_dir, f"{s}.csv") for s in ("train", "val", "test")}
        for split in ("train", "test"):
            if not os.path.isfile(paths[split]):
                raise missing(paths[split], f"FolderDataset {split} CSV", SECTION)
        train = self.read_csv(paths["train"])
        val = self.read_csv(paths["val"]) if os.path.isfile(paths["val"]) else None
        test = self.read_csv(paths["test"])
        check_labels(paths, train, val, test)
        return train, val, test

    def read_csv(self, path: str) -> list:
        items = []
        with open(path, "r", encoding="utf-8", newline="") as f:
            rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
        columns = {"path": 0, "label": 1, "classname": 2}
        header = [c.strip().lower() for c in rows[0]] if rows else []
        if set(columns) <= set(header):  # an optional header, columns in any order
            columns = {name: header.index(name) for name in columns}
            rows = rows[1:]
        for lineno, row in enumerate(rows, start=1):
            try:
                impath, label, classname = (row[columns[k]].strip() for k in ("path", "label", "classname"))
                label = int(label)
            except (IndexError, ValueError):
                raise ValueError(f"{path}: row {lineno} is not `path,label,classname`: {row}") from None
            impath = os.path.join(self.dataset_dir, os.path.expanduser(impath))
            items.append(Datum(impath=impath, label=label, classname=classname))
        return items


def check_labels(paths: dict, train: list, val: Optional[list], test: list) -> None:
    """Train labels must be 0..n-1 (prompts are built per label) with one name each everywhere."""
    lab2cname: dict = {}
    for split, items in (("train", train), ("val", val), ("test", test)):
        for item in items or []:
            known = lab2cname.setdefault(item.label, item.classname)
            if known != item.classname:
                raise ValueError(f"{paths[split]}: label {item.label} is named both {known!r} and "
                                 f"{item.classname!r}")
    train_labels = {item.label for item in train}
    if train_labels != set(range(len(train_labels))):
        raise ValueError(f"{paths['train']}: labels must be 0..n-1 with every class present in "
                         f"train, got {sorted(train_labels)}")
    extra = {item.label for item in (val or []) + test} - train_labels
    if extra:
        raise ValueError(f"Labels {sorted(extra)} of val/test do not occur in {paths['train']}")
