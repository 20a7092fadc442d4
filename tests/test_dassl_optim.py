"""dassl.optim: optimizer construction and every per-epoch LR sequence of the spec (section 8)."""
import io

import pytest
import torch
import torch.nn as nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler

from dassl.config import get_cfg_default
from dassl.optim import ConstantWarmupScheduler, build_lr_scheduler, build_optimizer


def optim_cfg(**overrides):
    cfg = get_cfg_default().OPTIM
    cfg.NAME = "sgd"
    cfg.LR = 0.002
    cfg.MAX_EPOCH = 6
    for k, v in overrides.items():
        cfg[k] = v
    return cfg


def build(cfg):
    param = nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer([param], cfg)
    return optimizer, build_lr_scheduler(optimizer, cfg)


def epoch_lrs(optimizer, scheduler, n):
    """lr in use during each of n epochs, the scheduler stepped once per epoch after the update."""
    lrs = []
    for _ in range(n):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


SEQUENCES = {
    "cosine": (dict(LR_SCHEDULER="cosine"),
               [0.002, 0.00186603, 0.0015, 0.001, 0.0005, 0.000133975]),
    "cosine+constant W=1": (dict(LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="constant"),
                            [1e-5, 0.002, 0.00186603, 0.0015, 0.001, 0.0005]),
    "cosine+constant W=2 no recount": (
        dict(LR_SCHEDULER="cosine", WARMUP_EPOCH=2, WARMUP_TYPE="constant", WARMUP_RECOUNT=False),
        [1e-5, 1e-5, 0.002, 0.00133333, 0.000666667, 0.000178633]),
    "cosine+linear W=3": (dict(LR_SCHEDULER="cosine", WARMUP_EPOCH=3, WARMUP_TYPE="linear"),
                          [1e-5, 0.000666667, 0.00133333, 0.002, 0.00186603, 0.0015]),
    "cosine+linear W=3 no recount": (
        dict(LR_SCHEDULER="cosine", WARMUP_EPOCH=3, WARMUP_TYPE="linear", WARMUP_RECOUNT=False),
        [1e-5, 0.000666667, 0.00133333, 0.002, 0.001, 0.000267949]),
    "single_step (2,)": (dict(LR_SCHEDULER="single_step", STEPSIZE=(2,)),
                         [0.002, 0.002, 0.0002, 0.0002, 2e-05, 2e-05]),
    "single_step default": (dict(LR_SCHEDULER="single_step"), [0.002] * 6),
    "multi_step (2,4)": (dict(LR_SCHEDULER="multi_step", STEPSIZE=(2, 4)),
                         [0.002, 0.002, 0.0002, 0.0002, 2e-05, 2e-05]),
}


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_per_epoch_lr_sequence(name):
    overrides, expected = SEQUENCES[name]
    assert epoch_lrs(*build(optim_cfg(**overrides)), 6) == pytest.approx(expected, rel=1e-5)


def test_single_step_default_steps_at_max_epoch():
    lrs = epoch_lrs(*build(optim_cfg(LR_SCHEDULER="single_step")), 8)
    assert lrs == pytest.approx([0.002] * 6 + [0.0002] * 2)


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_resume_mid_schedule_drives_the_live_optimizer(name):
    """Checkpoint after 2 epochs, load (weights_only) into fresh objects: same remaining lrs."""
    overrides, expected = SEQUENCES[name]
    cfg = optim_cfg(**overrides)
    optimizer, scheduler = build(cfg)
    epoch_lrs(optimizer, scheduler, 2)
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    optimizer2, scheduler2 = build(cfg)
    optimizer2.load_state_dict(state["optimizer"])
    scheduler2.load_state_dict(state["scheduler"])
    assert epoch_lrs(optimizer2, scheduler2, 4) == pytest.approx(expected[2:], rel=1e-5)


def test_warmup_is_a_modern_lr_scheduler_with_nested_plain_state():
    optimizer, scheduler = build(optim_cfg(LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="constant"))
    assert isinstance(scheduler, ConstantWarmupScheduler) and isinstance(scheduler, LRScheduler)
    assert isinstance(scheduler.successor, CosineAnnealingLR)
    state = scheduler.state_dict()
    assert type(state["successor"]) is dict and "optimizer" not in state["successor"]
    assert "optimizer" not in state


def test_warmup_refuses_a_pickled_successor():
    optimizer, scheduler = build(optim_cfg(LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="constant"))
    state = scheduler.state_dict()
    state["successor"] = scheduler.successor
    with pytest.raises(TypeError, match="pickled successor"):
        scheduler.load_state_dict(state)


@pytest.mark.parametrize("overrides, error", [
    (dict(LR_SCHEDULER="poly"), ValueError),
    (dict(LR_SCHEDULER="single_step", STEPSIZE=(2.5,)), TypeError),
    (dict(LR_SCHEDULER="multi_step", STEPSIZE=2), TypeError),
    (dict(LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="exp"), ValueError),
])
def test_scheduler_errors(overrides, error):
    with pytest.raises(error):
        build(optim_cfg(**overrides))


class TwoPart(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.classifier = nn.Linear(4, 2)


@pytest.mark.parametrize("name, cls, checks", [
    ("adam", torch.optim.Adam, {"betas": (0.9, 0.999), "amsgrad": False, "weight_decay": 5e-4}),
    ("amsgrad", torch.optim.Adam, {"amsgrad": True}),
    ("sgd", torch.optim.SGD, {"momentum": 0.9, "dampening": 0, "nesterov": False, "weight_decay": 5e-4}),
    ("rmsprop", torch.optim.RMSprop, {"alpha": 0.99, "momentum": 0.9}),
    ("radam", torch.optim.RAdam, {"betas": (0.9, 0.999)}),
    ("adamw", torch.optim.AdamW, {"betas": (0.9, 0.999), "weight_decay": 5e-4}),
])
def test_optimizer_names_and_hyperparameters(name, cls, checks):
    model = TwoPart()
    optimizer = build_optimizer(model, optim_cfg(NAME=name))
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.002
    for key, value in checks.items():
        assert group[key] == value
    assert sum(len(g["params"]) for g in optimizer.param_groups) == 4


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="optim must be one of"):
        build_optimizer(TwoPart(), optim_cfg(NAME="lamb"))


def test_frozen_parameters_are_passed_too():
    model = TwoPart()
    model.backbone.requires_grad_(False)
    optimizer = build_optimizer(model, optim_cfg())
    assert len(optimizer.param_groups[0]["params"]) == 4


def test_staged_lr_groups():
    model = TwoPart()
    optimizer = build_optimizer(model, optim_cfg(STAGED_LR=True, NEW_LAYERS="classifier", BASE_LR_MULT=0.1))
    base, new = optimizer.param_groups
    assert base["lr"] == pytest.approx(0.0002) and new["lr"] == 0.002
    assert new["params"] == list(model.classifier.parameters())
    assert base["params"] == list(model.backbone.parameters())
    wrapped = nn.DataParallel(model)
    assert len(build_optimizer(wrapped, optim_cfg(STAGED_LR=True, NEW_LAYERS=("classifier",))).param_groups) == 2
    with pytest.raises(TypeError):
        build_optimizer(list(model.parameters()), optim_cfg(STAGED_LR=True))


def test_param_groups_win_over_staged_lr():
    model = TwoPart()
    groups = [{"params": model.classifier.parameters(), "lr": 0.5}]
    with pytest.warns(UserWarning, match="staged_lr will be ignored"):
        optimizer = build_optimizer(model, optim_cfg(STAGED_LR=True), param_groups=groups)
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["lr"] == 0.5
