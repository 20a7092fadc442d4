"""Trainers. Importing the package registers every trainer name in dassl's TRAINER_REGISTRY."""
from . import coop, cocoop, linear_probe, zsclip

__all__ = ["coop", "cocoop", "linear_probe", "zsclip"]
