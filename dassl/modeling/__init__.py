"""Backbones and heads for the engine's default model (SimpleNet)."""
from .backbone import BACKBONE_REGISTRY, Backbone, build_backbone
from .head import HEAD_REGISTRY, build_head

__all__ = ["BACKBONE_REGISTRY", "Backbone", "build_backbone", "HEAD_REGISTRY", "build_head"]
