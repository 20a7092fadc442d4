"""Helpers shared by the engine, datasets and trainers (Dassl's dassl.utils)."""
from .logger import *  # noqa: F401,F403
from .meters import *  # noqa: F401,F403
from .registry import *  # noqa: F401,F403
from .tools import *  # noqa: F401,F403
from .torchtools import *  # noqa: F401,F403
