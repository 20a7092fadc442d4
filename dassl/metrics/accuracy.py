"""Top-k accuracy and multi-label mAP."""
from __future__ import annotations

from typing import Sequence

import torch


def compute_accuracy(
    output: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor, topk: Sequence[int] = (1,)
) -> list[torch.Tensor]:
    """Top-k accuracies in percent, each a 1-element float tensor.

    `output` (N, C) logits, or a tuple/list whose first element they are; `target` (N,) labels.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    maxk = max(topk)
    batch_size = target.size(0)
    _, pred = output.topk(maxk, 1, True, True)
    correct = pred.t().eq(target.view(1, -1).expand(maxk, -1))
    # reshape, not view: the transposed slice is not contiguous for k > 1
    return [correct[:k].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / batch_size) for k in topk]


def compute_accuracy_map(output: torch.Tensor, target: torch.Tensor) -> float:
    """100 * micro average precision over the entries whose target is not -1 (SoftCPT)."""
    from sklearn.metrics import average_precision_score  # lazy: sklearn is slow to import

    output = output.detach().float().cpu().reshape(-1)
    target = target.detach().cpu().reshape(-1)
    valid = target != -1
    return 100.0 * float(average_precision_score(target[valid].numpy(), output[valid].numpy()))
