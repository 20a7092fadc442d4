"""ImageNet-A: 200 wnid folders, a 200-way problem with labels 0..199 in sorted-wnid order."""
from dassl.data.datasets import DATASET_REGISTRY

from .imagenet import ImageNetVariant


@DATASET_REGISTRY.register()
class ImageNetA(ImageNetVariant):
    dataset_dir = "imagenet-adversarial"
    image_subdir = "imagenet-a"
    section = "ImageNetA"
