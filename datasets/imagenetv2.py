"""ImageNetV2 matched-frequency: folders "0".."999" named by label; names from classnames.txt order."""
from __future__ import annotations

import os

from dassl.data.datasets import DATASET_REGISTRY, Datum
from dassl.utils import listdir_nohidden

from .base import missing
from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    dataset_dir = "imagenetv2"
    image_subdir = "imagenetv2-matched-frequency-format-val"
    section = "ImageNetV2"

    def read_data(self, classnames):
        if not os.path.isdir(self.image_dir):
            raise missing(self.image_dir, "image folder", self.section)
        names = list(classnames.values())  # file order = sorted wnids = ImageNet label order
        folders = sorted((f for f in listdir_nohidden(self.image_dir) if f.isdigit()), key=int)
        items = []
        for folder in folders:
            label = int(folder)
            folder_dir = os.path.join(self.image_dir, folder)
            for imname in listdir_nohidden(folder_dir):
                items.append(Datum(impath=os.path.join(folder_dir, imname), label=label,
                                   classname=names[label]))
        return items
