"""Caltech-101 (100 classes): class folders split 50/20/30, two folders ignored, four renamed."""
from __future__ import annotations

from dassl.data.datasets import DATASET_REGISTRY

from .base import Benchmark
from .splits import read_and_split_data

IGNORED = ("BACKGROUND_Google", "Faces_easy")
# Renames touch class names only: labels follow the case-sensitive folder sort, so face,
# leopard and motorbike are labels 0, 1, 2.
NEW_CNAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}


@DATASET_REGISTRY.register()
class Caltech101(Benchmark):
    dataset_dir = "caltech-101"
    image_subdir = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
    section = "Caltech101"

    def create_split(self):
        return read_and_split_data(self.image_dir, ignored=IGNORED, new_cnames=NEW_CNAMES)
