"""Evaluators (TEST.EVALUATOR)."""
from .build import EVALUATOR_REGISTRY, build_evaluator
from .evaluator import TASK_METRIC_FUNCTIONS, Classification, ClassificationMT, EvaluatorBase

__all__ = ["EVALUATOR_REGISTRY", "build_evaluator", "EvaluatorBase", "Classification", "ClassificationMT",
           "TASK_METRIC_FUNCTIONS"]
