"""Exact evaluation under torchrun: every evaluator sees what it would see in one process.

Evaluation loaders give each process a strided shard of the items (dassl.data.samplers.
ShardSampler). `GatheredEvaluator` wraps any evaluator: `process` only records its inputs (on
CPU), tagged with the shard pass they came from; `evaluate` gathers the records on rank 0, puts the
items of each pass back in loader order, replays them into the wrapped evaluator in the loader's
single-process batches, evaluates there (rank 0 alone writes what the evaluator writes) and gives
the result to every process. Inputs that did not come from a sharded loader (a trainer's own,
unsharded loader) are the same on every process: rank 0's are replayed as they are.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from dassl.utils.distributed import broadcast_object, gather_objects, get_world_size, interleave, is_main_process

# (pass number, the ShardSampler) of the latest shard pass started in this process. Every process
# iterates the same loaders in the same order, so pass numbers agree across processes.
_current_pass: Optional[tuple[int, Any]] = None
_pass_count = 0


def announce_shard_pass(sampler: Any) -> None:
    global _current_pass, _pass_count
    _pass_count += 1
    _current_pass = (_pass_count, sampler)


def current_shard_pass() -> Optional[tuple[int, Any]]:
    return _current_pass


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (tuple, list)):
        return type(value)(_to_cpu(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    return value


def _concat(parts: list) -> Any:
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, (tuple, list)):
        return type(first)(_concat([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    raise TypeError(f"Cannot gather evaluator inputs of type {type(first).__name__}")


def _rows(value: Any, start: int, end: int) -> Any:
    if isinstance(value, torch.Tensor):
        return value[start:end]
    if isinstance(value, (tuple, list)):
        return type(value)(_rows(v, start, end) for v in value)
    return {k: _rows(v, start, end) for k, v in value.items()}


def _num_rows(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.shape[0]
    if isinstance(value, (tuple, list)):
        return _num_rows(value[0])
    return _num_rows(next(iter(value.values())))


class GatheredEvaluator:
    """An evaluator (reset/process/evaluate) made exact across processes; see the module doc.

    Other attributes are the wrapped evaluator's (on rank 0 it holds the replayed inputs).
    """

    def __init__(self, evaluator: Any):
        self.evaluator = evaluator
        self._records: list[tuple[Optional[int], Any, Any]] = []
        self._passes: dict[int, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["evaluator"], name)

    def reset(self) -> None:
        self._records = []
        self._passes = {}
        self.evaluator.reset()

    def process(self, mo: Any, gt: Any, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            raise TypeError("Under torchrun, evaluators take process(output, label) only")
        shard = current_shard_pass()
        pass_id = None
        if shard is not None:
            pass_id = shard[0]
            self._passes[pass_id] = shard[1]
        self._records.append((pass_id, _to_cpu(mo), _to_cpu(gt)))

    def evaluate(self) -> Any:
        gathered = gather_objects(self._records)
        results = None
        if is_main_process():
            self._replay(gathered)
            results = self.evaluator.evaluate()
        return broadcast_object(results)

    def _replay(self, gathered: list[list]) -> None:
        world = get_world_size()
        done: set[int] = set()
        for pass_id, mo, gt in gathered[0]:
            if pass_id is None:
                self.evaluator.process(mo, gt)
                continue
            if pass_id in done:
                continue
            done.add(pass_id)
            shards = []
            for records in gathered:
                mine = [(m, g) for p, m, g in records if p == pass_id]
                shards.append((_concat([m for m, _ in mine]), _concat([g for _, g in mine])) if mine else None)
            # A rank with no item of this pass (fewer items than processes) is always a last one.
            shards = [s for s in shards if s is not None]
            if len(shards) < world and _num_rows(shards[-1][0]) > 1:
                raise RuntimeError("Evaluator inputs of a sharded loader are missing on some processes")
            outputs, labels = interleave(shards)
            batch_size = self._passes[pass_id].batch_size
            for start in range(0, _num_rows(outputs), batch_size):
                end = start + batch_size
                self.evaluator.process(_rows(outputs, start, end), _rows(labels, start, end))
