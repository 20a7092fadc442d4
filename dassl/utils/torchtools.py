"""Checkpoints (atomic, weights_only-loadable), RNG state capture, layer freezing, init."""
from __future__ import annotations

import contextlib
import os
import os.path as osp
import pickle
import random
import re
import shutil
import tempfile
import warnings
from collections import Counter, OrderedDict, defaultdict
from typing import Any, Callable, Iterable, IO

import numpy as np
import torch
import torch.nn as nn

from dassl.cli import UserError

from .tools import mkdir_if_missing, tolist_if_not

__all__ = [
    "save_checkpoint", "load_checkpoint", "resume_from_checkpoint", "load_latest_checkpoint",
    "restore_training_state", "load_pretrained_weights", "count_num_param", "open_all_layers",
    "open_specified_layers", "init_network_weights", "get_rng_states", "set_rng_states",
    "LegacyCheckpointError", "DamagedCheckpointError", "TRUST_LEGACY_ENV",
]

# Opt-in for trusted checkpoints written by upstream Dassl (they pickle Python objects).
TRUST_LEGACY_ENV = "DASSL_TRUST_LEGACY_CHECKPOINTS"
POINTER_FILE = "checkpoint"


class LegacyCheckpointError(UserError, RuntimeError):
    """A checkpoint that torch.load(weights_only=True) refuses (pickled Python objects)."""


class DamagedCheckpointError(UserError, RuntimeError):
    """A checkpoint file that is not a readable torch file (truncated, overwritten, another format)."""


def _atomic_write(fpath: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a temp file in the same directory, then rename over `fpath`.

    A reader (or a run killed mid-write) sees either the old file or the complete new one.
    """
    dirname = osp.dirname(fpath) or "."
    fd, tmp = tempfile.mkstemp(dir=dirname, prefix=f".{osp.basename(fpath)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, fpath)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


_SAFE_SCALARS = (str, int, float, bool, type(None))


def _weights_only_safe(obj: Any, where: str) -> Any:
    """`obj` with numpy scalars made python numbers and defaultdicts made dicts.

    Anything else that torch.load(weights_only=True) would reject raises TypeError now, at save
    time, rather than producing a file that cannot be loaded. Containers that need no change are
    returned as they are (a state_dict keeps its `_metadata`).
    """
    # numpy scalars first: np.float64 subclasses float but is rejected by weights_only
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, torch.Tensor) or type(obj) in _SAFE_SCALARS:
        return obj
    if isinstance(obj, dict):
        items = {k: _weights_only_safe(v, f"{where}[{k!r}]") for k, v in obj.items()}
        if type(obj) in (dict, OrderedDict, Counter):
            if all(items[k] is v for k, v in obj.items()):
                return obj
            return type(obj)(items)
        if isinstance(obj, defaultdict):
            return dict(items)
    if type(obj) in (list, tuple):
        items = [_weights_only_safe(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if all(a is b for a, b in zip(items, obj)):
            return obj
        return type(obj)(items)
    raise TypeError(
        f"Cannot save {type(obj).__name__} at checkpoint{where}: only tensors, dicts, lists, tuples, "
        "str, int, float, bool and None load with torch.load(weights_only=True)"
    )


def save_checkpoint(
    state: dict,
    save_dir: str,
    is_best: bool = False,
    remove_module_from_keys: bool = True,
    model_name: str = "",
) -> None:
    """Save `state` to save_dir/(model_name or model.pth.tar-<epoch>) and point `checkpoint` at it.

    Every file is replaced atomically and the `checkpoint` pointer is written last, so it always
    names a complete file.
    """
    mkdir_if_missing(save_dir)
    state = dict(state)
    if remove_module_from_keys and any(k.startswith("module.") for k in state["state_dict"]):
        state["state_dict"] = OrderedDict(
            (k[len("module."):] if k.startswith("module.") else k, v) for k, v in state["state_dict"].items()
        )
    state = _weights_only_safe(state, "")

    fname = model_name or f"model.pth.tar-{state['epoch']}"
    fpath = osp.join(save_dir, fname)
    _atomic_write(fpath, lambda f: torch.save(state, f))
    print(f"Checkpoint saved to {fpath}")

    if is_best:
        best_fpath = osp.join(save_dir, "model-best.pth.tar")
        with open(fpath, "rb") as src:
            _atomic_write(best_fpath, lambda f: shutil.copyfileobj(src, f))
        print(f'Best checkpoint saved to "{best_fpath}"')

    _atomic_write(osp.join(save_dir, POINTER_FILE), lambda f: f.write(f"{fname}\n".encode()))


def _load_trusted_legacy(fpath: str, map_location: str | None) -> dict:
    """Full-pickle load of a trusted upstream checkpoint, converted to the weights_only layout."""
    warnings.warn(f'Loading "{fpath}" with weights_only=False because {TRUST_LEGACY_ENV}=1')
    checkpoint = torch.load(fpath, map_location=map_location, weights_only=False)
    scheduler = checkpoint.get("scheduler") if isinstance(checkpoint, dict) else None
    # Upstream's warmup scheduler pickles its successor object; keep only its state.
    if isinstance(scheduler, dict) and hasattr(scheduler.get("successor"), "state_dict"):
        scheduler["successor"] = scheduler["successor"].state_dict()
    return checkpoint


def load_checkpoint(fpath: str) -> dict:
    """torch.load(fpath, weights_only=True), on CPU unless CUDA is available."""
    if fpath is None:
        raise ValueError("File path is None")
    if not osp.exists(fpath):
        raise FileNotFoundError(f'File is not found at "{fpath}"')
    map_location = None if torch.cuda.is_available() else "cpu"
    try:
        return torch.load(fpath, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        unsupported = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if unsupported is None:  # not a pickled object: a damaged file
            raise DamagedCheckpointError(f'Unable to load checkpoint from "{fpath}": {e}') from e
        if os.environ.get(TRUST_LEGACY_ENV) == "1":
            return _load_trusted_legacy(fpath, map_location)
        raise LegacyCheckpointError(
            f'Cannot load checkpoint "{fpath}" with weights_only=True (unsupported global '
            f"{unsupported.group(1)}). It holds pickled Python objects, as checkpoints written by upstream "
            "Dassl do (its warmup scheduler pickles the successor scheduler). If you trust the file, "
            f"set {TRUST_LEGACY_ENV}=1 to load it."
        ) from e
    except (RuntimeError, EOFError, OSError) as e:  # torch's reader: truncated or not a torch file
        raise DamagedCheckpointError(f'Unable to load checkpoint from "{fpath}": {e}') from e


def load_latest_checkpoint(fdir: str) -> dict:
    """Load the file named by fdir/checkpoint."""
    with open(osp.join(fdir, POINTER_FILE), "r") as f:
        fpath = osp.join(fdir, f.readline().strip("\n"))
    print(f'Loading checkpoint from "{fpath}"')
    return load_checkpoint(fpath)


def restore_training_state(
    checkpoint: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> None:
    """Load weights, optimizer and scheduler state from a checkpoint dict."""
    model.load_state_dict(checkpoint["state_dict"])
    print("Loaded model weights")
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        print("Loaded optimizer")
    if scheduler is not None and checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
        print("Loaded scheduler")
    print(f"Previous epoch: {checkpoint['epoch']}")


def resume_from_checkpoint(
    fdir: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> int:
    """Restore the latest checkpoint of `fdir`; returns its (1-based) epoch."""
    checkpoint = load_latest_checkpoint(fdir)
    restore_training_state(checkpoint, model, optimizer, scheduler)
    return checkpoint["epoch"]


def get_rng_states() -> dict:
    """Python, numpy, torch CPU and CUDA generator states, as weights_only-safe values."""
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "python": [version, list(internal), gauss_next],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        # Under torchrun a process owns one GPU: touching the others would create contexts there.
        states["cuda"] = [torch.cuda.get_rng_state()] if _one_gpu_per_process() else torch.cuda.get_rng_state_all()
    return states


def _one_gpu_per_process() -> bool:
    from .distributed import is_distributed

    return is_distributed()


def set_rng_states(states: dict) -> None:
    """Inverse of get_rng_states (CUDA states only when the device count matches)."""
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"].cpu())
    cuda = states.get("cuda")
    if cuda and torch.cuda.is_available():
        if _one_gpu_per_process() and len(cuda) == 1:
            torch.cuda.set_rng_state(cuda[0].cpu())
        elif len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def load_pretrained_weights(model: nn.Module, weight_path: str) -> None:
    """Load the tensors of `weight_path` whose names and shapes match `model`; report the rest."""
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint["state_dict"] if "state_dict" in checkpoint else checkpoint
    model_dict = model.state_dict()
    matched, discarded = [], []
    for k, v in state_dict.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k in model_dict and model_dict[k].size() == v.size():
            model_dict[k] = v
            matched.append(k)
        else:
            discarded.append(k)
    model.load_state_dict(model_dict)
    if not matched:
        warnings.warn(f"Cannot load {weight_path} (check the key names manually)")
        return
    print(f"Successfully loaded pretrained weights from {weight_path}")
    if discarded:
        print(f"Layers discarded due to unmatched keys or size: {discarded}")


def count_num_param(model: nn.Module | None = None, params: Iterable[torch.Tensor] | None = None) -> int:
    """Number of scalars in `model`'s parameters (or in `params`)."""
    if model is not None:
        return sum(p.numel() for p in model.parameters())
    if params is not None:
        return sum(p.numel() for p in params)
    raise ValueError("model and params must provide at least one.")


def open_all_layers(model: nn.Module) -> None:
    """Train mode and requires_grad for every parameter."""
    model.train()
    for p in model.parameters():
        p.requires_grad = True


def open_specified_layers(model: nn.Module, open_layers: str | list[str]) -> None:
    """Train only the named children of `model`; the others go to eval mode and are frozen."""
    if isinstance(model, nn.DataParallel):
        model = model.module
    open_layers = tolist_if_not(open_layers)
    for layer in open_layers:
        if not hasattr(model, layer):
            raise AttributeError(f'"{layer}" is not an attribute of the model, please provide the correct name')
    for name, module in model.named_children():
        is_open = name in open_layers
        module.train(is_open)
        for p in module.parameters():
            p.requires_grad = is_open


def init_network_weights(model: nn.Module, init_type: str = "normal", gain: float = 0.02) -> None:
    """Initialise Conv*/Linear weights (normal/xavier/kaiming/orthogonal), zero biases, unit norms."""

    def init(m: nn.Module) -> None:
        classname = type(m).__name__
        if hasattr(m, "weight") and ("Conv" in classname or "Linear" in classname):
            if init_type == "normal":
                nn.init.normal_(m.weight.data, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight.data, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight.data, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(m.weight.data, gain=gain)
            else:
                raise NotImplementedError(f"initialization method {init_type} is not implemented")
            if getattr(m, "bias", None) is not None:
                nn.init.constant_(m.bias.data, 0.0)
        elif "BatchNorm" in classname or "InstanceNorm" in classname:
            if getattr(m, "weight", None) is not None and getattr(m, "bias", None) is not None:
                nn.init.constant_(m.weight.data, 1.0)
                nn.init.constant_(m.bias.data, 0.0)

    model.apply(init)
