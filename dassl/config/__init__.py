"""Configuration: Dassl's defaults as a yacs CfgNode tree."""
from yacs.config import CfgNode

from .defaults import _C as _DEFAULTS
from .node import Config

__all__ = ["get_cfg_default", "clean_cfg", "Config"]


def get_cfg_default() -> Config:
    """A fresh copy of the default config."""
    return _DEFAULTS.clone()


def clean_cfg(cfg: CfgNode, trainer: str) -> None:
    """Drop every TRAINER.* entry except NAME and the node of `trainer` (upper-cased)."""
    keep = {"NAME", trainer.upper()}
    for key in list(cfg.TRAINER.keys()):
        if key not in keep:
            cfg.TRAINER.pop(key)
