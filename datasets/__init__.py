"""The CoOp benchmark datasets and the custom FolderDataset.

Importing the package registers every dataset class in dassl's DATASET_REGISTRY under its class
name (the DATASET.NAME of the configs). `extend_cfg(cfg)` adds the config keys of FolderDataset.
"""
from . import (caltech101, dtd, elevater, eurosat, fgvc_aircraft, folder, food101, imagenet, imagenet_a,
               imagenet_r, imagenet_sketch, imagenetv2, oxford_flowers, oxford_pets, stanford_cars,
               sun397, ucf101)
from .folder import extend_cfg
from . import plant_members, suites  # noqa: E402  (SoftCPT: Plant-6 members, General10/Plant6/Fashion20)
from . import cifar100  # noqa: E402  (LAMM's MYCIFAR100)

__all__ = [
    "caltech101", "dtd", "elevater", "eurosat", "fgvc_aircraft", "folder", "food101", "imagenet", "imagenet_a",
    "imagenet_r", "imagenet_sketch", "imagenetv2", "oxford_flowers", "oxford_pets", "stanford_cars",
    "sun397", "ucf101", "extend_cfg", "cifar100",
]
