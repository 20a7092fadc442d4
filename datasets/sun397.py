"""SUN397: Training_01.txt -> 80/20 train/val, Testing_01.txt -> test."""
from __future__ import annotations

import os

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .base import Benchmark
from .splits import split_trainval


def scene_name(class_path: str) -> str:
    """"a/apartment_building/outdoor" -> "outdoor apartment_building" (letter dropped, reversed)."""
    return " ".join(reversed(class_path.split("/")[1:]))


@DATASET_REGISTRY.register()
class SUN397(Benchmark):
    dataset_dir = "sun397"
    image_subdir = "SUN397"
    split_file = "split_zhou_SUN397.json"
    section = "SUN397"

    def create_split(self):
        classname_file = self.require(os.path.join(self.dataset_dir, "ClassName.txt"), "class list")
        with open(classname_file, "r", encoding="utf-8") as f:
            # "/a/abbey" -> "a/abbey"; the line index is the label.
            cname2lab = {line.strip()[1:]: i for i, line in enumerate(l for l in f if l.strip())}
        trainval = self.read_data(cname2lab, "Training_01.txt")
        test = self.read_data(cname2lab, "Testing_01.txt")
        train, val = split_trainval(trainval)
        return train, val, test

    def read_data(self, cname2lab: dict, list_file: str) -> list:
        """Lines "/a/abbey/sun_xxx.jpg"."""
        items = []
        with open(self.require(os.path.join(self.dataset_dir, list_file), "split list"),
                  "r", encoding="utf-8") as f:
            for line in f:
                imname = line.strip()[1:]
                if not imname:
                    continue
                class_path = os.path.dirname(imname)
                items.append(Datum(impath=os.path.join(self.image_dir, imname),
                                   label=cname2lab[class_path], classname=scene_name(class_path)))
        return items
