"""Oxford-IIIT Pets: 37 breeds; trainval.txt -> 80/20 train/val, test.txt -> test."""
from __future__ import annotations

import os

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .base import Benchmark
from .splits import split_trainval


def breed_of(stem: str) -> str:
    """"american_pit_bull_terrier_12" -> "american_pit_bull_terrier" (lowercased)."""
    return stem.rsplit("_", 1)[0].lower()


@DATASET_REGISTRY.register()
class OxfordPets(Benchmark):
    dataset_dir = "oxford_pets"
    image_subdir = "images"
    split_file = "split_zhou_OxfordPets.json"
    section = "OxfordPets"

    def create_split(self):
        anno_dir = os.path.join(self.dataset_dir, "annotations")
        trainval = self.read_data(os.path.join(anno_dir, "trainval.txt"))
        test = self.read_data(os.path.join(anno_dir, "test.txt"))
        train, val = split_trainval(trainval)
        return train, val, test

    def read_data(self, anno_file: str) -> list:
        """Lines "<stem> <class id 1..37> <species> <breed id>"."""
        items = []
        with open(self.require(anno_file, "annotation file"), "r", encoding="utf-8") as f:
            for line in f:
                if not line.strip() or line.startswith("#"):
                    continue
                stem, class_id = line.split()[:2]
                impath = os.path.join(self.image_dir, stem + ".jpg")
                items.append(Datum(impath=impath, label=int(class_id) - 1, classname=breed_of(stem)))
        return items
