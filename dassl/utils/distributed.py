"""Data-parallel training across processes started by `torchrun` (torch.distributed).

`torchrun --nproc_per_node=N train.py ...` sets WORLD_SIZE, RANK and LOCAL_RANK; `init_distributed`
reads them (no flag) and joins the process group: NCCL with one GPU per process on CUDA, gloo on
CPU. Without them, or with WORLD_SIZE=1, every function here is the single-process identity and
nothing collective happens.

The engine uses these pieces (dassl/engine/trainer.py, dassl/data, dassl/evaluation):
- the training loader splits every global batch across the processes (DistributedBatchSampler),
  evaluation loaders give each process a strided share of the items (ShardSampler);
- gradients of the learnable parameters are summed across processes, each weighted by its share
  of the global batch (`all_reduce_gradients`), so one step equals the single-process step;
- evaluator inputs are gathered on rank 0 and replayed in the single-process order and batching
  (`interleave`, dassl/evaluation/distributed.py);
- only rank 0 writes files (`is_main_process`), and it creates shared files first
  (`main_process_first`).
"""
from __future__ import annotations

import contextlib
import os
import random
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "init_distributed", "shutdown_distributed", "is_distributed", "get_rank", "get_world_size", "is_main_process", "barrier",
    "main_process_first", "broadcast_object", "gather_objects", "all_reduce_sum", "all_ranks_true",
    "all_reduce_gradients", "reduce_weighted", "interleave", "sync_rng_states", "broadcast_modules",
    "local_device",
]


def init_distributed(use_cuda: bool = True) -> bool:
    """Join the process group torchrun describes in the environment; True when distributed.

    Idempotent. On CUDA each process takes GPU LOCAL_RANK (backend NCCL); otherwise gloo.
    """
    if dist.is_available() and dist.is_initialized():
        return is_distributed()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible: "
                               "use --nproc_per_node <= the number of GPUs")
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True


def shutdown_distributed() -> None:
    """Leave the process group (after a run; all processes call it)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def local_device(use_cuda: bool) -> torch.device:
    """This process's device: its own GPU under torchrun with CUDA, else "cuda" or "cpu"."""
    if use_cuda and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device()) if is_distributed() else torch.device("cuda")
    return torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (it may write shared files), then the others (they read them)."""
    if not is_distributed():
        yield
        return
    if not is_main_process():
        dist.barrier()
    try:
        yield
    finally:
        if is_main_process():
            dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """`obj` of rank `src` on every process (picklable objects)."""
    if not is_distributed():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def gather_objects(obj: Any) -> Optional[list]:
    """On rank 0 the list of every rank's `obj` (rank order); None on the other ranks."""
    if not is_distributed():
        return [obj]
    out = [None] * get_world_size() if is_main_process() else None
    dist.gather_object(obj, out, dst=0)
    return out


def _device_for_collectives() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of `tensor` over the processes (a new tensor on tensor's device)."""
    if not is_distributed():
        return tensor.clone()
    work = tensor.detach().to(_device_for_collectives()).clone()
    dist.all_reduce(work)
    return work.to(tensor.device)


def all_ranks_true(flag: bool) -> bool:
    """True when `flag` holds on every process."""
    if not is_distributed():
        return flag
    return bool(all_reduce_sum(torch.tensor([0.0 if flag else 1.0])).item() == 0)


def reduce_weighted(values: dict, weight: float) -> dict:
    """sum over processes of weight * value for each number of `values` (keys in sorted order).

    With weight = this process's share of the global batch, per-batch means (loss, accuracy)
    become the means over the global batch. Non-numbers are kept as they are.
    """
    if not is_distributed():
        return values
    keys = sorted(k for k, v in values.items() if isinstance(v, (int, float, torch.Tensor)))
    local = torch.tensor([float(values[k]) * weight for k in keys], dtype=torch.float64)
    total = all_reduce_sum(local).tolist()
    return {k: (total[keys.index(k)] if k in keys else v) for k, v in values.items()}


def all_reduce_gradients(params: Sequence[torch.nn.Parameter], weight: float) -> None:
    """grad <- sum over processes of weight * grad, for every parameter in `params`.

    A parameter without a gradient on every process keeps none (the optimizer skips it, as in one
    process); one that has a gradient on some processes gets zeros on the others first.
    """
    if not is_distributed() or not params:
        return
    device = _device_for_collectives()
    present = all_reduce_sum(torch.tensor([p.grad is not None for p in params], dtype=torch.float32))
    synced = []
    for p, count in zip(params, present.tolist()):
        if count == 0:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        synced.append(p)
    for dtype in sorted({p.grad.dtype for p in synced}, key=str):
        group = [p for p in synced if p.grad.dtype == dtype]
        flat = torch.cat([p.grad.reshape(-1).to(device) for p in group]) * weight
        dist.all_reduce(flat)
        offset = 0
        for p in group:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n


def interleave(parts: Sequence[Any]) -> Any:
    """Rows of the strided shards `parts` (part r = items r, r+W, r+2W, ...) in item order.

    A part is a tensor or a (nested) tuple, list or dict of tensors with the items on dim 0.
    """
    world = len(parts)
    first = parts[0]
    if isinstance(first, torch.Tensor):
        positions = torch.cat([r + world * torch.arange(p.shape[0]) for r, p in enumerate(parts)])
        return torch.cat(list(parts))[torch.argsort(positions)]
    if isinstance(first, (tuple, list)):
        return type(first)(interleave([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: interleave([p[k] for p in parts]) for k in first}
    raise TypeError(f"Cannot gather {type(first).__name__} across processes (tensors, tuples, lists, dicts only)")


def sync_rng_states() -> None:
    """Give every process rank 0's python, numpy and torch CPU generator states."""
    if not is_distributed():
        return
    states = broadcast_object((random.getstate(), np.random.get_state(), torch.get_rng_state()))
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(states[2])


def broadcast_modules(modules: Sequence[torch.nn.Module]) -> None:
    """Parameters and buffers of rank 0 on every process (as DistributedDataParallel does)."""
    if not is_distributed():
        return
    device = _device_for_collectives()
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            work = tensor.detach().to(device).clone()
            dist.broadcast(work, src=0)
            with torch.no_grad():
                tensor.copy_(work.to(tensor.device))
