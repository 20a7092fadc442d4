"""EVALUATOR_REGISTRY and build_evaluator."""
from __future__ import annotations

from typing import Any

from yacs.config import CfgNode

from dassl.utils import Registry, check_availability
from dassl.utils.distributed import is_distributed

EVALUATOR_REGISTRY = Registry("EVALUATOR")


def build_evaluator(cfg: CfgNode, **kwargs: Any) -> Any:
    """The TEST.EVALUATOR evaluator, built with (cfg, **kwargs).

    Under torchrun it is wrapped so that its inputs are gathered on rank 0 (exact results).
    """
    check_availability(cfg.TEST.EVALUATOR, EVALUATOR_REGISTRY.registered_names())
    if cfg.VERBOSE:
        print(f"Loading evaluator: {cfg.TEST.EVALUATOR}")
    evaluator = EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)(cfg, **kwargs)
    if is_distributed():
        from .distributed import GatheredEvaluator

        return GatheredEvaluator(evaluator)
    return evaluator
