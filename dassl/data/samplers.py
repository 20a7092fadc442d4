"""Index samplers for the data loaders.

RandomSampler / SequentialSampler are torch's own (re-exported): their torch-RNG consumption is part
of run-to-run parity. The custom samplers draw from python `random` (RandomClassSampler also from
numpy) and measure their length by running one pass at construction, which consumes RNG too.
"""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Iterator, Optional

import numpy as np
from torch.utils.data.sampler import RandomSampler, Sampler, SequentialSampler

__all__ = ["RandomSampler", "SequentialSampler", "RandomDomainSampler", "SeqDomainSampler",
           "RandomClassSampler", "build_sampler", "DistributedBatchSampler", "ShardSampler"]


def _indices_by(data_source: list, key: str) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for index, item in enumerate(data_source):
        groups[getattr(item, key)].append(index)
    return groups


class RandomDomainSampler(Sampler):
    """Each batch: n_domain random domains, batch_size // n_domain random images from each.

    Images are not reused within a pass; the pass ends once a picked domain has too few left.
    n_domain <= 0 (or None) means all domains.
    """

    def __init__(self, data_source: list, batch_size: int, n_domain: Optional[int]):
        self.data_source = data_source
        self.domain_dict = _indices_by(data_source, "domain")
        self.domains = list(self.domain_dict)
        if n_domain is None or n_domain <= 0:
            n_domain = len(self.domains)
        if batch_size % n_domain != 0:
            raise ValueError(f"batch_size ({batch_size}) must be divisible by n_domain ({n_domain})")
        self.n_domain = n_domain
        self.n_img_per_domain = batch_size // n_domain
        self.batch_size = batch_size
        self.length = len(list(self.__iter__()))

    def __iter__(self) -> Iterator[int]:
        remaining = {d: list(idxs) for d, idxs in self.domain_dict.items()}
        indices: list[int] = []
        exhausted = False
        while not exhausted:
            for domain in random.sample(self.domains, self.n_domain):
                picked = random.sample(remaining[domain], self.n_img_per_domain)
                indices.extend(picked)
                for idx in picked:
                    remaining[domain].remove(idx)
                if len(remaining[domain]) < self.n_img_per_domain:
                    exhausted = True
        return iter(indices)

    def __len__(self) -> int:
        return self.length


class SeqDomainSampler(Sampler):
    """Each batch: every domain (sorted order), batch_size // n_domains random images from each."""

    def __init__(self, data_source: list, batch_size: int):
        self.data_source = data_source
        self.domain_dict = _indices_by(data_source, "domain")
        self.domains = sorted(self.domain_dict)
        n_domain = len(self.domains)
        if batch_size % n_domain != 0:
            raise ValueError(f"batch_size ({batch_size}) must be divisible by the number of "
                             f"domains ({n_domain})")
        self.n_img_per_domain = batch_size // n_domain
        self.batch_size = batch_size
        self.n_domain = n_domain
        self.length = len(list(self.__iter__()))

    def __iter__(self) -> Iterator[int]:
        remaining = {d: list(idxs) for d, idxs in self.domain_dict.items()}
        indices: list[int] = []
        exhausted = False
        while not exhausted:
            for domain in self.domains:
                picked = random.sample(remaining[domain], self.n_img_per_domain)
                indices.extend(picked)
                for idx in picked:
                    remaining[domain].remove(idx)
                if len(remaining[domain]) < self.n_img_per_domain:
                    exhausted = True
        return iter(indices)

    def __len__(self) -> int:
        return self.length


class RandomClassSampler(Sampler):
    """Each batch: batch_size // n_ins random classes, n_ins images from each.

    A class with fewer than n_ins images is upsampled with replacement (numpy RNG).
    """

    def __init__(self, data_source: list, batch_size: int, n_ins: int):
        if batch_size < n_ins:
            raise ValueError(f"batch_size={batch_size} must be no less than n_ins={n_ins}")
        self.data_source = data_source
        self.batch_size = batch_size
        self.n_ins = n_ins
        self.ncls_per_batch = batch_size // n_ins
        self.index_dic = _indices_by(data_source, "label")
        self.labels = list(self.index_dic)
        if len(self.labels) < self.ncls_per_batch:
            raise ValueError(f"{len(self.labels)} classes cannot fill batches of "
                             f"{self.ncls_per_batch} classes")
        self.length = len(list(self.__iter__()))

    def __iter__(self) -> Iterator[int]:
        chunks: dict[int, list[list[int]]] = defaultdict(list)
        for label in self.labels:
            idxs = list(self.index_dic[label])
            if len(idxs) < self.n_ins:
                idxs = np.random.choice(idxs, size=self.n_ins, replace=True).tolist()
            random.shuffle(idxs)
            # Full chunks of n_ins; a trailing partial chunk is dropped.
            for start in range(0, len(idxs) - self.n_ins + 1, self.n_ins):
                chunks[label].append(idxs[start:start + self.n_ins])

        available = list(self.labels)
        indices: list[int] = []
        while len(available) >= self.ncls_per_batch:
            for label in random.sample(available, self.ncls_per_batch):
                indices.extend(chunks[label].pop(0))
                if not chunks[label]:
                    available.remove(label)
        return iter(indices)

    def __len__(self) -> int:
        return self.length


def build_sampler(sampler_type: str, cfg=None, data_source: Optional[list] = None,
                  batch_size: int = 32, n_domain: int = 0, n_ins: int = 16) -> Sampler:
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    if sampler_type == "RandomDomainSampler":
        return RandomDomainSampler(data_source, batch_size, n_domain)
    if sampler_type == "SeqDomainSampler":
        return SeqDomainSampler(data_source, batch_size)
    if sampler_type == "RandomClassSampler":
        return RandomClassSampler(data_source, batch_size, n_ins)
    raise ValueError(f"Unknown sampler type: {sampler_type}")


class DistributedBatchSampler(Sampler):
    """Each process's share of the global batches of `sampler` (under torchrun).

    The global batches are those one process would form: `batch_size` consecutive indices of one
    pass of `sampler` (the last, smaller one dropped with drop_last). Rank 0's pass is broadcast,
    so all processes split the same batches whatever their own generators did. Rank r takes the
    r-th of `world_size` contiguous, near-equal slices of every batch.
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool, rank: int, world_size: int):
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        n = len(sampler)
        last = n % batch_size
        smallest = batch_size if drop_last or last == 0 else last
        if smallest < world_size:
            raise ValueError(f"A batch of {smallest} items cannot be split across {world_size} processes "
                             f"({n} training items, batch size {batch_size})")

    def _bounds(self, n_items: int) -> tuple[int, int]:
        share, extra = divmod(n_items, self.world_size)
        start = self.rank * share + min(self.rank, extra)
        return start, start + share + (self.rank < extra)

    def fraction(self, batch_idx: int) -> float:
        """This process's share of global batch `batch_idx` (items / global batch size)."""
        n_items = min(self.batch_size, len(self.sampler) - batch_idx * self.batch_size)
        start, end = self._bounds(n_items)
        return (end - start) / n_items

    def __iter__(self) -> Iterator[list[int]]:
        from dassl.utils.distributed import broadcast_object

        indices = broadcast_object(list(self.sampler))
        for start in range(0, len(indices), self.batch_size):
            batch = indices[start:start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            lo, hi = self._bounds(len(batch))
            yield batch[lo:hi]

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class ShardSampler(Sampler):
    """Items rank, rank + W, rank + 2W, ... of one pass of `sampler` (evaluation under torchrun).

    Every process sees each item at most once (no padding), so gathered results are exact; the
    item order is restored with dassl.utils.distributed.interleave. Each pass is announced to
    dassl.evaluation.distributed, which attributes the evaluator inputs of the pass to this shard.
    """

    def __init__(self, sampler: Sampler, rank: int, world_size: int, batch_size: int):
        self.sampler = sampler
        self.rank = rank
        self.world_size = world_size
        self.batch_size = batch_size  # the single-process batches the evaluator is replayed in

    def __iter__(self) -> Iterator[int]:
        from dassl.evaluation.distributed import announce_shard_pass
        from dassl.utils.distributed import broadcast_object

        announce_shard_pass(self)
        indices = list(self.sampler)
        if not isinstance(self.sampler, SequentialSampler):
            indices = broadcast_object(indices)
        return iter(indices[self.rank::self.world_size])

    def __len__(self) -> int:
        return len(range(self.rank, len(self.sampler), self.world_size))
