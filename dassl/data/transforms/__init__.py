"""Image transforms: build_transform, INTERPOLATION_MODES and the custom augmentations."""
from .autoaugment import CIFAR10Policy, ImageNetPolicy, SVHNPolicy
from .randaugment import RandAugment, RandAugment2, RandAugmentFixMatch
from .transforms import (
    AVAI_CHOICES, INTERPOLATION_MODES, Cutout, GaussianNoise, InstanceNormalization,
    Random2DTranslation, build_transform,
)

__all__ = [
    "build_transform", "INTERPOLATION_MODES", "AVAI_CHOICES", "Cutout", "GaussianNoise",
    "InstanceNormalization", "Random2DTranslation", "ImageNetPolicy", "CIFAR10Policy", "SVHNPolicy",
    "RandAugment", "RandAugmentFixMatch", "RandAugment2",
]
