"""Oxford Flowers-102: imagelabels.mat + cat_to_name.json, split 50/20/30 per class."""
from __future__ import annotations

import json
import os
from collections import defaultdict

from scipy.io import loadmat

from dassl.data.datasets import DATASET_REGISTRY

from .base import Benchmark
from .splits import split_per_class


@DATASET_REGISTRY.register()
class OxfordFlowers(Benchmark):
    dataset_dir = "oxford_flowers"
    image_subdir = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"
    section = "OxfordFlowers"

    def create_split(self):
        label_file = self.require(os.path.join(self.dataset_dir, "imagelabels.mat"), "label file")
        names_file = self.require(os.path.join(self.dataset_dir, "cat_to_name.json"), "class-name file")
        with open(names_file, "r", encoding="utf-8") as f:
            lab2cname = json.load(f)  # keys are the 1-based labels as strings

        # Image i (1-based, 5-digit) has labels[i-1]; classes stay in first-appearance order.
        tracker = defaultdict(list)
        for i, label in enumerate(loadmat(label_file)["labels"][0]):
            tracker[int(label)].append(os.path.join(self.image_dir, f"image_{i + 1:05d}.jpg"))
        print("Splitting data into 50% train, 20% val, and 30% test")
        groups = [(label - 1, lab2cname[str(label)], impaths) for label, impaths in tracker.items()]
        return split_per_class(groups, p_trn=0.5, p_val=0.2)
