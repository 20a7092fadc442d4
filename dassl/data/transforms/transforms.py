"""build_transform and the custom tensor/PIL transforms.

Standard ops are torchvision's own classes so that torch-RNG consumption matches upstream Dassl
(RandomResizedCrop and RandomHorizontalFlip draw from torch's global generator).
"""
from __future__ import annotations

import random
from typing import Optional, Sequence

import numpy as np
import torch
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import (
    CenterCrop, ColorJitter, Compose, GaussianBlur, InterpolationMode, Normalize, RandomApply,
    RandomCrop, RandomGrayscale, RandomHorizontalFlip, RandomResizedCrop, Resize, ToTensor,
)

from .autoaugment import CIFAR10Policy, ImageNetPolicy, SVHNPolicy
from .randaugment import RandAugment, RandAugment2, RandAugmentFixMatch

AVAI_CHOICES = [
    "random_flip", "random_resized_crop", "normalize", "instance_norm", "random_crop",
    "random_translation", "center_crop", "cutout", "imagenet_policy", "cifar10_policy",
    "svhn_policy", "randaugment", "randaugment_fixmatch", "randaugment2", "gaussian_noise",
    "colorjitter", "randomgrayscale", "gaussian_blur",
]

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


class Random2DTranslation:
    """With probability p: enlarge by 1/8 then crop a random (height, width) window; else resize."""

    def __init__(self, height: int, width: int, p: float = 0.5,
                 interpolation: InterpolationMode = InterpolationMode.BILINEAR):
        self.height = height
        self.width = width
        self.p = p
        self.interpolation = interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.uniform(0, 1) > self.p:
            return F.resize(img, [self.height, self.width], self.interpolation)
        new_w, new_h = int(round(self.width * 1.125)), int(round(self.height * 1.125))
        enlarged = F.resize(img, [new_h, new_w], self.interpolation)
        left = int(round(random.uniform(0, new_w - self.width)))
        top = int(round(random.uniform(0, new_h - self.height)))
        return F.crop(enlarged, top, left, self.height, self.width)


class Cutout:
    """Zero n_holes squares of side `length` centred at uniform pixels of a (C, H, W) tensor.

    Draws centres from numpy's global RNG; squares are clipped at the borders.
    """

    def __init__(self, n_holes: int = 1, length: int = 16):
        self.n_holes = n_holes
        self.length = length

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[1:]
        mask = torch.ones(h, w, dtype=img.dtype)
        for _ in range(self.n_holes):
            y, x = np.random.randint(h), np.random.randint(w)
            y1, y2 = max(0, y - self.length // 2), min(h, y + self.length // 2)
            x1, x2 = max(0, x - self.length // 2), min(w, x + self.length // 2)
            mask[y1:y2, x1:x2] = 0
        return img * mask

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_holes={self.n_holes}, length={self.length})"


class GaussianNoise:
    """With probability p add N(mean, std) noise to a tensor."""

    def __init__(self, mean: float = 0.0, std: float = 0.15, p: float = 0.5):
        self.mean = mean
        self.std = std
        self.p = p

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if random.uniform(0, 1) > self.p:
            return img
        return img + torch.randn(img.size()) * self.std + self.mean

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std}, p={self.p})"


class InstanceNormalization:
    """Per-channel (x - mean) / (std + eps) of a (C, H, W) tensor."""

    def __init__(self, eps: float = 1e-8):
        self.eps = eps

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        flat = img.reshape(img.shape[0], -1)
        mean = flat.mean(1).view(-1, 1, 1)
        std = flat.std(1).view(-1, 1, 1)
        return (img - mean) / (std + self.eps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps})"


def build_transform(cfg, is_train: bool = True, choices: Optional[Sequence[str]] = None):
    """Train or test transform from cfg.INPUT (None when INPUT.NO_TRANSFORM)."""
    if cfg.INPUT.NO_TRANSFORM:
        print("Note: no transform is applied!")
        return None

    if choices is None:
        choices = cfg.INPUT.TRANSFORMS
    unknown = [choice for choice in choices if choice not in AVAI_CHOICES]
    if unknown:
        raise ValueError(f"Invalid transform choice(s) {unknown}, expected to be in {AVAI_CHOICES}")

    normalize = Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)
    if is_train:
        return _build_transform_train(cfg, choices, normalize)
    return _build_transform_test(cfg, choices, normalize)


def _build_transform_train(cfg, choices: Sequence[str], normalize: Normalize) -> Compose:
    print("Building transform_train")
    inp = cfg.INPUT
    size = inp.SIZE
    interp = INTERPOLATION_MODES[inp.INTERPOLATION]
    tfm: list = []

    # Crops produce the target size themselves.
    if "random_crop" not in choices and "random_resized_crop" not in choices:
        print(f"+ resize to {size[0]}x{size[1]}")
        tfm.append(Resize(size, interpolation=interp))
    if "random_translation" in choices:
        print("+ random translation")
        tfm.append(Random2DTranslation(size[0], size[1], interpolation=interp))
    if "random_crop" in choices:
        print(f"+ random crop (padding = {inp.CROP_PADDING})")
        tfm.append(RandomCrop(size, padding=inp.CROP_PADDING))
    if "random_resized_crop" in choices:
        print(f"+ random resized crop (size={size}, scale={inp.RRCROP_SCALE})")
        tfm.append(RandomResizedCrop(size, scale=inp.RRCROP_SCALE, interpolation=interp))
    if "random_flip" in choices:
        print("+ random flip")
        tfm.append(RandomHorizontalFlip())
    if "imagenet_policy" in choices:
        print("+ imagenet policy")
        tfm.append(ImageNetPolicy())
    if "cifar10_policy" in choices:
        print("+ cifar10 policy")
        tfm.append(CIFAR10Policy())
    if "svhn_policy" in choices:
        print("+ svhn policy")
        tfm.append(SVHNPolicy())
    if "randaugment" in choices:
        print(f"+ randaugment (n={inp.RANDAUGMENT_N}, m={inp.RANDAUGMENT_M})")
        tfm.append(RandAugment(inp.RANDAUGMENT_N, inp.RANDAUGMENT_M))
    if "randaugment_fixmatch" in choices:
        print(f"+ randaugment_fixmatch (n={inp.RANDAUGMENT_N})")
        tfm.append(RandAugmentFixMatch(inp.RANDAUGMENT_N))
    if "randaugment2" in choices:
        print(f"+ randaugment2 (n={inp.RANDAUGMENT_N})")
        tfm.append(RandAugment2(inp.RANDAUGMENT_N))
    if "colorjitter" in choices:
        b, c, s, h = inp.COLORJITTER_B, inp.COLORJITTER_C, inp.COLORJITTER_S, inp.COLORJITTER_H
        print(f"+ color jitter (brightness={b}, contrast={c}, saturation={s}, hue={h})")
        tfm.append(ColorJitter(brightness=b, contrast=c, saturation=s, hue=h))
    if "randomgrayscale" in choices:
        print(f"+ random gray scale (p={inp.RGS_P})")
        tfm.append(RandomGrayscale(p=inp.RGS_P))
    if "gaussian_blur" in choices:
        print(f"+ gaussian blur (kernel={inp.GB_K}, p={inp.GB_P})")
        tfm.append(RandomApply([GaussianBlur(inp.GB_K)], p=inp.GB_P))

    print("+ to torch tensor of range [0, 1]")
    tfm.append(ToTensor())

    if "cutout" in choices:
        print(f"+ cutout (n_holes={inp.CUTOUT_N}, length={inp.CUTOUT_LEN})")
        tfm.append(Cutout(inp.CUTOUT_N, inp.CUTOUT_LEN))
    if "normalize" in choices:
        print(f"+ normalization (mean={inp.PIXEL_MEAN}, std={inp.PIXEL_STD})")
        tfm.append(normalize)
    if "gaussian_noise" in choices:
        print(f"+ gaussian noise (mean={inp.GN_MEAN}, std={inp.GN_STD})")
        tfm.append(GaussianNoise(inp.GN_MEAN, inp.GN_STD))
    if "instance_norm" in choices:
        print("+ instance normalization")
        tfm.append(InstanceNormalization())
    return Compose(tfm)


def _build_transform_test(cfg, choices: Sequence[str], normalize: Normalize) -> Compose:
    print("Building transform_test")
    inp = cfg.INPUT
    size = inp.SIZE
    interp = INTERPOLATION_MODES[inp.INTERPOLATION]

    # Always resize-then-center-crop, whatever the train choices ("center_crop" is implied).
    print(f"+ resize the smaller edge to {max(size)}")
    print(f"+ {size[0]}x{size[1]} center crop")
    print("+ to torch tensor of range [0, 1]")
    tfm: list = [Resize(max(size), interpolation=interp), CenterCrop(size), ToTensor()]
    if "normalize" in choices:
        print(f"+ normalization (mean={inp.PIXEL_MEAN}, std={inp.PIXEL_STD})")
        tfm.append(normalize)
    if "instance_norm" in choices:
        print("+ instance normalization")
        tfm.append(InstanceNormalization())
    return Compose(tfm)
