"""The six member datasets of SoftCPT's Plant-6 suite (class folders split 50/20/30 per class).

Their folders are the public downloads' (DATASETS.md, section "Plant-6"). Used alone they split
on every build (the reference keeps no CoOp-style split file for them); inside the suite the split
is written once as split_dk_<Name>.json (datasets/suites.py).
"""
from __future__ import annotations

import os

from dassl.data.datasets import DATASET_REGISTRY

from .base import Benchmark
from .splits import read_and_split_data

SECTION = "Plant-6"
SUBSETS = ("train", "test", "validation")  # each split 50/20/30 on its own, then concatenated

# PlantVillage folder -> class name (the reference's table, applied before the split is saved).
PLANT_VILLAGE_CNAMES = {
    "Apple___Apple_scab": "apple leaf with scab disease",
    "Apple___Black_rot": "apple leaf with black rot",
    "Apple___Cedar_apple_rust": "apple leaf with cedar apple rust",
    "Apple___healthy": "healthy apple leaf",
    "Background_without_leaves": "background without leaves",
    "Blueberry___healthy": "healthy blueberry leaf",
    "Cherry___Powdery_mildew": "cherry leaf with powdery mildew",
    "Cherry___healthy": "healthy cherry leaf",
    "Corn___Cercospora_leaf_spot Gray_leaf_spot": "corn leaf with cercospora leaf spot or gray leaf spot",
    "Corn___Common_rust": "corn leaf with common rust",
    "Corn___Northern_Leaf_Blight": "corn leaf with northern leaf blight",
    "Corn___healthy": "healthy corn leaf",
    "Grape___Black_rot": "grape leaf with black rot",
    "Grape___Esca_(Black_Measles)": "grape leaf with black measles",
    "Grape___Leaf_blight_(Isariopsis_Leaf_Spot)": "grape leaf with leaf blight",
    "Grape___healthy": "healthy grape leaf",
    "Orange___Haunglongbing_(Citrus_greening)": "orange leaf with citrus greening disease",
    "Peach___Bacterial_spot": "peach leaf with bacterial spot",
    "Peach___healthy": "healthy peach leaf",
    "Pepper,_bell___Bacterial_spot": "pepper with bacterial spot",
    "Pepper,_bell___healthy": "healthy pepper leaf",
    "Potato___Early_blight": "potato leaf with early blight",
    "Potato___Late_blight": "potato leaf with late blight",
    "Potato___healthy": "healthy potato leaf",
    "Raspberry___healthy": "healthy raspberry leaf",
    "Soybean___healthy": "healthy soybean leaf",
    "Squash___Powdery_mildew": "squash with powdery mildew",
    "Strawberry___Leaf_scorch": "strawberry leaf with scorch disease",
    "Strawberry___healthy": "healthy strawberry leaf",
    "Tomato___Bacterial_spot": "tomato leaf with bacterial spot",
    "Tomato___Early_blight": "tomato leaf with early blight",
    "Tomato___Late_blight": "tomato leaf with late blight",
    "Tomato___Leaf_Mold": "tomato leaf with mold",
    "Tomato___Septoria_leaf_spot": "tomato leaf with septoria leaf spot",
    "Tomato___Spider_mites Two-spotted_spider_mite": "tomato leaf with spider mites or two-spotted spider mite",
    "Tomato___Target_Spot": "tomato leaf with target spot",
    "Tomato___Tomato_Yellow_Leaf_Curl_Virus": "tomato leaf with tomato yellow leaf curl virus",
    "Tomato___Tomato_mosaic_virus": "tomato leaf with tomato mosaic virus",
    "Tomato___healthy": "healthy tomato leaf",
}


class PlantFolders(Benchmark):
    """Class folders under image_subdir (or under each of its train/test/validation folders)."""

    section = SECTION
    subsets: tuple[str, ...] = ()
    new_cnames: dict = {}

    def create_split(self):
        if not self.subsets:
            return read_and_split_data(self.image_dir, new_cnames=self.new_cnames)
        train, val, test = [], [], []
        for subset in self.subsets:
            parts = read_and_split_data(self.require(os.path.join(self.image_dir, subset), f"{subset} folder"))
            for whole, part in zip((train, val, test), parts):
                whole.extend(part)
        return train, val, test


@DATASET_REGISTRY.register()
class FruitVegetable(PlantFolders):
    dataset_dir = "fruit_vegetable"
    image_subdir = "images"
    subsets = SUBSETS


@DATASET_REGISTRY.register()
class KaggleFlower(PlantFolders):
    dataset_dir = "kaggle_flower_recognition"
    image_subdir = "flowers"


@DATASET_REGISTRY.register()
class KaggleMushroom(PlantFolders):
    dataset_dir = "kaggle_mushroom"
    image_subdir = "Mushrooms"


@DATASET_REGISTRY.register()
class KaggleVegetable(PlantFolders):
    dataset_dir = "kaggle_vegetable"
    image_subdir = "images"
    subsets = SUBSETS


@DATASET_REGISTRY.register()
class PlantSeedlingV1(PlantFolders):
    dataset_dir = "PlantSeedlingV1"
    image_subdir = "Nonsegmented"


@DATASET_REGISTRY.register()
class PlantVillage(PlantFolders):
    dataset_dir = "PlantVillage"
    image_subdir = "Plant_leave_diseases_dataset_without_augmentation"
    new_cnames = PLANT_VILLAGE_CNAMES
