"""Training engine: trainer base classes and the trainer registry."""
from .build import TRAINER_REGISTRY, build_trainer
from .trainer import SimpleNet, SimpleTrainer, TrainerBase, TrainerX, TrainerXU

__all__ = [
    "TRAINER_REGISTRY", "build_trainer", "TrainerBase", "SimpleTrainer", "TrainerX", "TrainerXU",
    "SimpleNet",
]
