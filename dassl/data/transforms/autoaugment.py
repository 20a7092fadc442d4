"""AutoAugment policies (ImageNet, CIFAR-10, SVHN) as torchvision's AutoAugment.

Difference from upstream Dassl: torchvision draws from torch's RNG (upstream: python `random`) and
uses its own magnitude tables; the policies (sub-policy lists) are the published ones.
"""
from __future__ import annotations

from torchvision.transforms import AutoAugment, AutoAugmentPolicy

_GREY = (128, 128, 128)


class ImageNetPolicy(AutoAugment):
    def __init__(self, fillcolor: tuple = _GREY):
        super().__init__(AutoAugmentPolicy.IMAGENET, fill=list(fillcolor))


class CIFAR10Policy(AutoAugment):
    def __init__(self, fillcolor: tuple = _GREY):
        super().__init__(AutoAugmentPolicy.CIFAR10, fill=list(fillcolor))


class SVHNPolicy(AutoAugment):
    def __init__(self, fillcolor: tuple = _GREY):
        super().__init__(AutoAugmentPolicy.SVHN, fill=list(fillcolor))
