"""FGVC-Aircraft (variant level, 100 classes): the official train/val/test lists, no JSON."""
from __future__ import annotations

import os

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .base import Benchmark


@DATASET_REGISTRY.register()
class FGVCAircraft(Benchmark):
    dataset_dir = "fgvc_aircraft"
    image_subdir = "images"
    section = "FGVCAircraft"

    def create_split(self):
        variants_file = self.require(os.path.join(self.dataset_dir, "variants.txt"), "class list")
        with open(variants_file, "r", encoding="utf-8") as f:
            classnames = [line.strip() for line in f if line.strip()]
        cname2lab = {c: i for i, c in enumerate(classnames)}
        return tuple(self.read_data(cname2lab, f"images_variant_{split}.txt")
                     for split in ("train", "val", "test"))

    def read_data(self, cname2lab: dict, split_file: str) -> list:
        """Lines "<image id> <variant, may contain spaces>"."""
        items = []
        path = self.require(os.path.join(self.dataset_dir, split_file), "split list")
        with open(path, "r", encoding="utf-8") as f:
            for line in f:
                parts = line.strip().split(" ")
                if not parts[0]:
                    continue
                classname = " ".join(parts[1:])
                impath = os.path.join(self.image_dir, parts[0] + ".jpg")
                items.append(Datum(impath=impath, label=cname2lab[classname], classname=classname))
        return items
