"""ImageNet-1k (train -> train, official val -> val and test) and what its variants share."""
from __future__ import annotations

import os
from collections import OrderedDict

from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum, restricted_pickle_load
from dassl.data.datasets.fewshot_cache import read_datum_json, rebase_impaths, write_datum_json
from dassl.utils import listdir_nohidden, mkdir_if_missing

from .base import dataset_root, fewshot_splits, missing, pointing_to_docs, subsample_of
from .splits import subsample_classes

# Our cache of the full lists: JSON, paths relative to the dataset folder (portable). A reference
# preprocessed.pkl (absolute paths, upstream's format) is read when present and never written.
PREPROCESSED_JSON = "preprocessed.json"
PREPROCESSED_PKL = "preprocessed.pkl"


def read_classnames(path: str, section: str) -> "OrderedDict[str, str]":
    """classnames.txt lines "<wnid> <class name, may contain spaces>" -> ordered {wnid: name}."""
    if not os.path.isfile(path):
        raise missing(path, "class-name file", section)
    classnames = OrderedDict()
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            wnid, _, name = line.strip().partition(" ")
            if wnid:
                classnames[wnid] = name
    return classnames


def read_wnid_folders(image_dir: str, classnames: dict, section: str) -> list:
    """Images of the wnid folders of image_dir; label = index in the sorted folder list."""
    if not os.path.isdir(image_dir):
        raise missing(image_dir, "image folder", section)
    folders = [f for f in listdir_nohidden(image_dir, sort=True)
               if os.path.isdir(os.path.join(image_dir, f))]
    if not folders:
        raise missing(os.path.join(image_dir, "<wnid>"), "class folders (images must sit in one "
                      "folder per wnid)", section)
    items = []
    for label, folder in enumerate(folders):
        if folder not in classnames:
            raise ValueError(f'Folder "{os.path.join(image_dir, folder)}" is not a wnid of the '
                             f'class-name file (see DATASETS.md, section "{section}")')
        folder_dir = os.path.join(image_dir, folder)
        for imname in listdir_nohidden(folder_dir):
            items.append(Datum(impath=os.path.join(folder_dir, imname), label=label,
                               classname=classnames[folder]))
    return items


def find_dataset_dir(cfg, dataset_dir: str, name: str, section: str) -> str:
    path = os.path.join(dataset_root(cfg), dataset_dir)
    if not os.path.isdir(path):
        raise missing(path, f"{name} dataset folder", section)
    return path


@DATASET_REGISTRY.register()
class ImageNet(DatasetBase):
    dataset_dir = "imagenet"
    section = "ImageNet"
    classnames_file = "classnames.txt"
    test_subdir = "val"  # images/<test_subdir>: the official val set, used as val and test

    def __init__(self, cfg):
        self.dataset_dir = find_dataset_dir(cfg, type(self).dataset_dir, type(self).__name__, self.section)
        self.image_dir = os.path.join(self.dataset_dir, "images")
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        mkdir_if_missing(self.split_fewshot_dir)

        with pointing_to_docs(type(self).__name__, self.section):
            train, test = self.load_full_lists()
            # No few-shot val: the official val set is both val and test.
            train = fewshot_splits(self, cfg, {"train": train})["train"]
            train, test = subsample_classes(train, test, subsample=subsample_of(cfg))
        super().__init__(train_x=train, val=test, test=test)

    def load_full_lists(self) -> tuple[list, list]:
        pkl_path = os.path.join(self.dataset_dir, PREPROCESSED_PKL)
        json_path = os.path.join(self.dataset_dir, PREPROCESSED_JSON)
        if os.path.isfile(pkl_path):
            print(f"Loading preprocessed data from {pkl_path}")
            data = restricted_pickle_load(pkl_path)
            if not isinstance(data, dict) or not {"train", "test"} <= set(data):
                raise ValueError(f'{pkl_path} is not ImageNet\'s preprocessed file ({{"train", "test"}} '
                                 "lists of Datum); delete it to rebuild")
            data = rebase_impaths(data, self.dataset_dir)
        elif os.path.isfile(json_path):
            print(f"Loading preprocessed data from {json_path}")
            # 1.33M files: trust the cache instead of stat'ing every image again.
            data = read_datum_json(json_path, self.dataset_dir, check_files=False)
        else:
            classnames = read_classnames(os.path.join(self.dataset_dir, self.classnames_file), self.section)
            data = {"train": read_wnid_folders(os.path.join(self.image_dir, "train"), classnames, self.section),
                    "test": read_wnid_folders(os.path.join(self.image_dir, self.test_subdir), classnames,
                                              self.section)}
            print(f"Saving preprocessed data to {json_path}")
            write_datum_json(json_path, data, self.dataset_dir)
        return data["train"], data["test"]


class ImageNetVariant(DatasetBase):
    """A test-only ImageNet variant: train_x = test = every image, no val; NUM_SHOTS and
    SUBSAMPLE_CLASSES are not applied (as the reference). classnames.txt is ImageNet's."""

    image_subdir = ""
    section = ""

    def __init__(self, cfg):
        name = type(self).__name__
        self.dataset_dir = find_dataset_dir(cfg, type(self).dataset_dir, name, self.section)
        self.image_dir = os.path.join(self.dataset_dir, self.image_subdir)
        classnames = read_classnames(os.path.join(self.dataset_dir, "classnames.txt"), self.section)
        with pointing_to_docs(name, self.section):
            data = self.read_data(classnames)
        super().__init__(train_x=data, test=data)

    def read_data(self, classnames: "OrderedDict[str, str]") -> list:
        return read_wnid_folders(self.image_dir, classnames, self.section)
