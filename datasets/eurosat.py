"""EuroSAT RGB (10 classes): class folders split 50/20/30, folder names made readable."""
from __future__ import annotations

from dassl.data.datasets import DATASET_REGISTRY

from .base import Benchmark
from .splits import read_and_split_data

NEW_CNAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}


@DATASET_REGISTRY.register()
class EuroSAT(Benchmark):
    dataset_dir = "eurosat"
    image_subdir = "2750"
    split_file = "split_zhou_EuroSAT.json"
    section = "EuroSAT"

    def create_split(self):
        return read_and_split_data(self.image_dir, new_cnames=NEW_CNAMES)
