"""TRAINER_REGISTRY and build_trainer. No trainer is pre-registered: consumers register theirs."""
from __future__ import annotations

from typing import Any

from yacs.config import CfgNode

from dassl.utils import Registry, check_availability

TRAINER_REGISTRY = Registry("TRAINER")


def build_trainer(cfg: CfgNode) -> Any:
    """Instantiate the TRAINER.NAME trainer with cfg."""
    check_availability(cfg.TRAINER.NAME, TRAINER_REGISTRY.registered_names())
    if cfg.VERBOSE:
        print(f"Loading trainer: {cfg.TRAINER.NAME}")
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg)
