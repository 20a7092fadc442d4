"""Metrics used inside training steps."""
from .accuracy import compute_accuracy, compute_accuracy_map

__all__ = ["compute_accuracy", "compute_accuracy_map"]
