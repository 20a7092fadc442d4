"""Trainers. Importing the package registers every trainer name in dassl's TRAINER_REGISTRY."""
from . import coop, cocoop, linear_probe, zsclip

from .image_cache import extend_cfg  # project-level keys: TEST.IMAGE_FEATURE_CACHE(_DIR)

__all__ = ["coop", "cocoop", "linear_probe", "zsclip", "extend_cfg"]
from . import maple  # noqa: E402
from . import ivlp  # noqa: E402
from . import vpt  # noqa: E402
from . import mvlpt  # noqa: E402
