"""Describable Textures (47 classes): class folders split 50/20/30."""
from __future__ import annotations

from dassl.data.datasets import DATASET_REGISTRY

from .base import Benchmark
from .splits import read_and_split_data


@DATASET_REGISTRY.register()
class DescribableTextures(Benchmark):
    dataset_dir = "dtd"
    image_subdir = "images"
    split_file = "split_zhou_DescribableTextures.json"
    section = "DescribableTextures"

    def create_split(self):
        return read_and_split_data(self.image_dir)
