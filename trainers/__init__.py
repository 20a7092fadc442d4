"""Trainers. Importing the package registers every trainer name in dassl's TRAINER_REGISTRY."""
from dassl.cli import use_project_packages

use_project_packages()  # our clip/ and datasets/, even where Hugging Face's `datasets` comes first

from . import coop, cocoop, linear_probe, zsclip  # noqa: E402

from .image_cache import extend_cfg  # noqa: E402  project-level keys: TEST.IMAGE_FEATURE_CACHE(_DIR)

__all__ = ["coop", "cocoop", "linear_probe", "zsclip", "extend_cfg"]
from . import maple  # noqa: E402
from . import ivlp  # noqa: E402
from . import vpt  # noqa: E402
from . import mtcoop  # noqa: E402
from . import mtcoop_hard  # noqa: E402
from . import sap  # noqa: E402
from . import gzs  # noqa: E402
from . import mvlpt  # noqa: E402
