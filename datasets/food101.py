"""Food-101: class folders split 50/20/30 (the official meta/ split is not used, as CoOp)."""
from __future__ import annotations

from dassl.data.datasets import DATASET_REGISTRY

from .base import Benchmark
from .splits import read_and_split_data


@DATASET_REGISTRY.register()
class Food101(Benchmark):
    dataset_dir = "food-101"
    image_subdir = "images"
    split_file = "split_zhou_Food101.json"
    section = "Food101"

    def create_split(self):
        return read_and_split_data(self.image_dir)
