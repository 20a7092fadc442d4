"""Backbone registry for the engine's default SimpleNet. No backbone is pre-registered here."""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from dassl.utils import Registry, check_availability

BACKBONE_REGISTRY = Registry("BACKBONE")


class Backbone(nn.Module):
    """A feature extractor; subclasses set `self._out_features` (the feature dimension)."""

    @property
    def out_features(self) -> int | None:
        return self.__dict__.get("_out_features")


def build_backbone(name: str, verbose: bool = True, **kwargs: Any) -> nn.Module:
    check_availability(name, BACKBONE_REGISTRY.registered_names())
    if verbose:
        print(f"Backbone: {name}")
    return BACKBONE_REGISTRY.get(name)(**kwargs)
