"""ImageNet-R: 200 wnid folders, a 200-way problem with labels 0..199 in sorted-wnid order."""
from dassl.data.datasets import DATASET_REGISTRY

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetVariant):
    dataset_dir = "imagenet-rendition"
    image_subdir = "imagenet-r"
    section = "ImageNetR"
