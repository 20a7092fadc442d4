"""Head registry with Dassl's "mlp" head."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from dassl.utils import Registry, check_availability

HEAD_REGISTRY = Registry("HEAD")

_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}


class MLP(nn.Module):
    """[Linear -> BatchNorm1d? -> activation -> Dropout?] per hidden layer."""

    def __init__(self, in_features: int = 2048, hidden_layers: int | Sequence[int] = (),
                 activation: str = "relu", bn: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if isinstance(hidden_layers, int):
            hidden_layers = [hidden_layers]
        if not hidden_layers:
            raise ValueError("The mlp head needs at least one hidden layer (MODEL.HEAD.HIDDEN_LAYERS)")
        if activation not in _ACTIVATIONS:
            raise NotImplementedError(f"Unknown activation: {activation}")
        layers: list[nn.Module] = []
        for hidden_dim in hidden_layers:
            layers.append(nn.Linear(in_features, hidden_dim))
            if bn:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(_ACTIVATIONS[activation](inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_features = hidden_dim
        self.mlp = nn.Sequential(*layers)
        self.out_features = hidden_layers[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


@HEAD_REGISTRY.register()
def mlp(**kwargs: Any) -> MLP:
    return MLP(**kwargs)


def build_head(name: str, verbose: bool = True, **kwargs: Any) -> nn.Module:
    check_availability(name, HEAD_REGISTRY.registered_names())
    if verbose:
        print(f"Head: {name}")
    return HEAD_REGISTRY.get(name)(**kwargs)
