#!/usr/bin/env python
"""What a learned context means: the vocabulary tokens nearest to each context vector.

    python interpret_prompt.py output/.../prompt_learner/model.pth.tar-50 3
    python interpret_prompt.py CHECKPOINT TOPK --backbone ViT-B/16 [--key prompt_learner.ctx]

As CoOp's interpret_prompt.py: the Euclidean distance between each learned context vector and
every row of CLIP's token embedding (of --backbone, the one the context was trained with;
default RN50 as CoOp), the TOPK nearest tokens printed per vector. The context is the checkpoint's
`ctx` entry (CoOp, CoCoOp) or `*.ctx` (MaPLe, IVLP: prompt_learner.ctx); class-specific contexts
(n_cls, n_ctx, width) are shown per class.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

import torch
from torch import Tensor

from dassl.cli import UserError, one_line_errors, use_project_packages

use_project_packages()

from clip import clip  # noqa: E402
from dassl.utils import load_checkpoint  # noqa: E402


def context_tensors(path: str, key: Optional[str] = None) -> dict[str, Tensor]:
    """{key: context} of the checkpoint's `ctx` entries (or `key`), as float tensors."""
    checkpoint = load_checkpoint(path)
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        raise UserError(f"{path} holds no state dict")
    names = [key] if key else [k for k in state_dict if k.split(".")[-1] == "ctx"]
    missing = [k for k in names if k not in state_dict]
    if not names or missing:
        raise UserError(f"no {'entry ' + repr(key) if key else 'ctx entry'} in {path} "
                        f"(entries: {', '.join(state_dict) or 'none'})")
    contexts = {k: state_dict[k].detach().float() for k in names}
    for name, ctx in contexts.items():
        if ctx.dim() not in (2, 3):
            raise UserError(f"{name} in {path} has shape {tuple(ctx.shape)}, not (n_ctx, width) or "
                            "(n_cls, n_ctx, width)")
    return contexts


def nearest_tokens(ctx: Tensor, token_embedding: Tensor, topk: int) -> tuple[Tensor, Tensor]:
    """(token ids, Euclidean distances), each (n_ctx, topk), nearest first."""
    if ctx.shape[-1] != token_embedding.shape[-1]:
        raise UserError(f"the context has width {ctx.shape[-1]} but the backbone's token embedding has "
                        f"{token_embedding.shape[-1]}: give the --backbone it was trained with")
    distances = torch.cdist(ctx.float(), token_embedding.float(), compute_mode="donot_use_mm_for_euclid_dist")
    values, indices = distances.topk(min(topk, token_embedding.shape[0]), dim=-1, largest=False)
    return indices, values


def interpret(path: str, topk: int, backbone: str, key: Optional[str] = None
              ) -> dict[str, list[list[tuple[str, float]]]]:
    """{context name: per context vector, its topk (token, distance)}; a CSC context gives one
    entry per class (`name[class i]`)."""
    contexts = context_tensors(path, key)
    model, _ = clip.load(backbone, device="cpu")
    embedding = model.token_embedding.weight.detach()
    tokenizer = clip._tokenizer()  # built once per process
    results = {}
    for name, ctx in contexts.items():
        groups = {name: ctx} if ctx.dim() == 2 else {f"{name}[class {i}]": c for i, c in enumerate(ctx)}
        for label, vectors in groups.items():
            indices, distances = nearest_tokens(vectors, embedding, topk)
            results[label] = [[(tokenizer.decode([i]).strip() or tokenizer.decoder[i], d)
                               for i, d in zip(row_ids, row_dist)]
                              for row_ids, row_dist in zip(indices.tolist(), distances.tolist())]
    return results


def format_table(name: str, rows: list[list[tuple[str, float]]]) -> str:
    from tabulate import tabulate

    topk = len(rows[0]) if rows else 0
    headers = ["ctx"] + [f"#{k + 1} token (distance)" for k in range(topk)]
    table = [[i + 1] + [f"{token} ({distance:.4f})" for token, distance in row] for i, row in enumerate(rows)]
    return f"{name}: {len(rows)} context vectors\n{tabulate(table, headers=headers, tablefmt='github')}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fpath", help="checkpoint of the prompt learner (e.g. prompt_learner/model.pth.tar-50)")
    parser.add_argument("topk", type=int, help="nearest tokens per context vector")
    parser.add_argument("--backbone", default="RN50", help="CLIP the context was trained with (name or file)")
    parser.add_argument("--key", default=None, help="state-dict entry of the context (default: every *ctx)")
    return parser


@one_line_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.topk < 1:
        raise UserError(f"TOPK must be >= 1, got {args.topk}")
    for name, rows in interpret(args.fpath, args.topk, args.backbone, args.key).items():
        print(format_table(name, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
