"""RandAugment variants on PIL images.

- RandAugment(n, m): torchvision's RandAugment with m on Dassl's 0..30 scale (31 magnitude bins).
  Differences from upstream: torch RNG instead of python `random`, torchvision's op list.
- RandAugmentFixMatch(n): n ops (python `random`), each at a uniform random strength, then a grey
  square cutout of up to half the shorter side (FixMatch's strong augmentation).
- RandAugment2(n, p=0.6): n ops, each applied with probability p at a uniform random strength.
The two custom variants share the op table below (strengths in [0, 1], random sign where signed).
"""
from __future__ import annotations

import math
import random
from typing import Callable

import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image, ImageDraw

_FILL = [128, 128, 128]


def _signed(mag: float) -> float:
    return mag if random.random() < 0.5 else -mag


def _affine(img: Image.Image, angle: float = 0.0, translate=(0, 0), shear=(0.0, 0.0)) -> Image.Image:
    return F.affine(img, angle=angle, translate=list(translate), scale=1.0, shear=list(shear),
                    fill=_FILL)


# name -> op(img, strength in [0, 1])
_OPS: dict[str, Callable[[Image.Image, float], Image.Image]] = {
    "Identity": lambda img, m: img,
    "AutoContrast": lambda img, m: F.autocontrast(img),
    "Equalize": lambda img, m: F.equalize(img),
    "Brightness": lambda img, m: F.adjust_brightness(img, 1.0 + _signed(0.9 * m)),
    "Color": lambda img, m: F.adjust_saturation(img, 1.0 + _signed(0.9 * m)),
    "Contrast": lambda img, m: F.adjust_contrast(img, 1.0 + _signed(0.9 * m)),
    "Sharpness": lambda img, m: F.adjust_sharpness(img, 1.0 + _signed(0.9 * m)),
    "Posterize": lambda img, m: F.posterize(img, 8 - int(round(4 * m))),
    "Solarize": lambda img, m: F.solarize(img, int(round(256 - 256 * m))),
    "Rotate": lambda img, m: _affine(img, angle=_signed(30.0 * m)),
    "ShearX": lambda img, m: _affine(img, shear=(math.degrees(math.atan(_signed(0.3 * m))), 0.0)),
    "ShearY": lambda img, m: _affine(img, shear=(0.0, math.degrees(math.atan(_signed(0.3 * m))))),
    "TranslateX": lambda img, m: _affine(img, translate=(int(_signed(0.3 * m) * img.size[0]), 0)),
    "TranslateY": lambda img, m: _affine(img, translate=(0, int(_signed(0.3 * m) * img.size[1]))),
}


def _grey_cutout(img: Image.Image, fraction: float) -> Image.Image:
    side = int(fraction * min(img.size))
    if side <= 0:
        return img
    w, h = img.size
    x0, y0 = random.uniform(0, w), random.uniform(0, h)
    x0, y0 = int(max(0, x0 - side / 2)), int(max(0, y0 - side / 2))
    img = img.copy()
    ImageDraw.Draw(img).rectangle((x0, y0, min(w, x0 + side), min(h, y0 + side)), fill=tuple(_FILL))
    return img


class RandAugment(T.RandAugment):
    def __init__(self, n: int = 2, m: int = 10):
        if not 0 <= m <= 30:
            raise ValueError(f"RandAugment magnitude must be in [0, 30], got {m}")
        super().__init__(num_ops=n, magnitude=m, num_magnitude_bins=31, fill=_FILL)


class RandAugmentFixMatch:
    def __init__(self, n: int = 2):
        self.n = n

    def __call__(self, img: Image.Image) -> Image.Image:
        for name in random.choices(list(_OPS), k=self.n):
            img = _OPS[name](img, random.random())
        return _grey_cutout(img, 0.5 * random.random())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n})"


class RandAugment2:
    def __init__(self, n: int = 2, p: float = 0.6):
        self.n = n
        self.p = p

    def __call__(self, img: Image.Image) -> Image.Image:
        for name in random.choices(list(_OPS), k=self.n):
            if random.random() > self.p:
                continue
            img = _OPS[name](img, random.random())
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, p={self.p})"
