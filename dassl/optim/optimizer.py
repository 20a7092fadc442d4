"""build_optimizer: Dassl's optimizer names and OPTIM.* options."""
from __future__ import annotations

import warnings
from typing import Any, Iterable

import torch
import torch.nn as nn
from yacs.config import CfgNode

AVAI_OPTIMS = ["adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw"]


def build_optimizer(
    model: nn.Module | Iterable[Any], optim_cfg: CfgNode, param_groups: Iterable[Any] | None = None
) -> torch.optim.Optimizer:
    """Optimizer over `param_groups`, or `model`'s parameters (two LR groups with STAGED_LR).

    With STAGED_LR, children named in NEW_LAYERS train at LR and all other children at
    LR * BASE_LR_MULT. Frozen parameters are passed on as given.
    """
    name = optim_cfg.NAME
    lr = optim_cfg.LR
    weight_decay = optim_cfg.WEIGHT_DECAY
    betas = (optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2)

    if name not in AVAI_OPTIMS:
        raise ValueError(f"optim must be one of {AVAI_OPTIMS}, but got {name}")

    if param_groups is not None and optim_cfg.STAGED_LR:
        warnings.warn(
            "staged_lr will be ignored, if you need to use staged_lr, "
            "please bind it with param_groups yourself."
        )

    if param_groups is None:
        if optim_cfg.STAGED_LR:
            param_groups = _staged_param_groups(model, optim_cfg)
        elif isinstance(model, nn.Module):
            param_groups = model.parameters()
        else:
            param_groups = model

    if name == "adam":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
    if name == "amsgrad":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas, amsgrad=True)
    if name == "sgd":
        return torch.optim.SGD(
            param_groups,
            lr=lr,
            momentum=optim_cfg.MOMENTUM,
            weight_decay=weight_decay,
            dampening=optim_cfg.SGD_DAMPNING,
            nesterov=optim_cfg.SGD_NESTEROV,
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(
            param_groups,
            lr=lr,
            momentum=optim_cfg.MOMENTUM,
            weight_decay=weight_decay,
            alpha=optim_cfg.RMSPROP_ALPHA,
        )
    if name == "radam":
        return torch.optim.RAdam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)


def _staged_param_groups(model: Any, optim_cfg: CfgNode) -> list[dict]:
    if not isinstance(model, nn.Module):
        raise TypeError(
            "When staged_lr is True, model given to build_optimizer() must be an instance of nn.Module"
        )
    if isinstance(model, nn.DataParallel):
        model = model.module
    new_layers = optim_cfg.NEW_LAYERS
    if isinstance(new_layers, str):
        new_layers = [new_layers]
    if not new_layers:
        warnings.warn("new_layers is empty (staged_lr is useless)")

    base_params: list[nn.Parameter] = []
    new_params: list[nn.Parameter] = []
    for child_name, module in model.named_children():
        (new_params if child_name in new_layers else base_params).extend(module.parameters())
    return [
        {"params": base_params, "lr": optim_cfg.LR * optim_cfg.BASE_LR_MULT},
        {"params": new_params},
    ]
