"""The one text path: prompt embeddings -> text features (`encode_text`).

Every trainer encodes text here. Three exact shortcuts keep it cheap (same features and gradients
as running all 77 positions):
- Causal mask + EOT pooling: nothing after a sequence's EOT reaches its output, so each sequence
  runs only up to its own EOT. Its tokens are packed into rows (T, width) for the projections and
  the MLP; padding to (B, Lmax) exists only inside attention.
- Shared prefix: tokens that all N sequences of a group begin with (SOS + context) have the same
  hidden states in every block, so they are encoded once per group; each block's prefix keys and
  values are then attended to by every suffix of the group.
- In the last block only the EOT rows are needed (queries, attention output and MLP).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .model import attend
from .prompts import TextPrompt

KV = Tuple[Tensor, Tensor]


def encode_text(model: nn.Module, prompt: TextPrompt, shared_prefix: Optional[bool] = None) -> Tensor:
    """Text features (N, embed_dim), or (G, N, embed_dim) for grouped embeddings.

    shared_prefix: None picks the shared-prefix path when it pays off (N > 1, a prefix of at least
    2 tokens, deep prompts inside it), False forces the plain truncated path, True forces the
    shared-prefix path (ValueError if there is no prefix or deep prompts reach past it).

    The prefix is `prompt.prefix`, or detected: the leading positions where every sequence of a
    group has exactly the same embedding, stopping before the first EOT. A detected prefix is taken
    from the first sequence of each group, so gradients are exact for whatever the sequences share
    (a context expanded over classes), while the gradient w.r.t. `prompt.embeddings` itself lands
    on that first sequence. Sequences that merely hold equal values of distinct trainable tensors
    (e.g. class-specific contexts initialised alike) need shared_prefix=False; when the argument
    is None, `prompt.shared_prefix` decides.
    """
    if prompt.group_sizes is not None:
        return _encode_groups(model, prompt)
    if shared_prefix is None:
        shared_prefix = prompt.shared_prefix
    emb, prefix, eot = _checked(prompt)
    groups, n_seq = emb.shape[:2]
    n_blocks = len(model.transformer.resblocks)
    deep = [_deep_groups(d, groups) for d in list(prompt.deep)[: n_blocks - 1]]
    if deep and prompt.deep_start < 0:
        raise ValueError(f"TextPrompt.deep_start must be >= 0, got {prompt.deep_start}")
    deep_end = prompt.deep_start + max((d.shape[1] for d in deep), default=0)
    first_eot = int(eot.min())  # the EOT row itself must be per-sequence work

    if prefix is not None:
        n_prefix = prefix.shape[1]
    elif shared_prefix is False or (shared_prefix is None and n_seq == 1):
        n_prefix = 0  # not needed: skip detection
    else:
        n_prefix = _shared_length(emb, first_eot)
    fits = 1 <= n_prefix <= first_eot and (not deep or deep_end <= n_prefix)
    if shared_prefix and not fits:
        raise ValueError(
            f"shared_prefix=True but the shared prefix ({n_prefix} tokens, first EOT at {first_eot}) "
            f"is empty, holds an EOT, or does not contain the deep prompts (positions "
            f"{prompt.deep_start}..{deep_end - 1})"
        )
    if shared_prefix is None:
        use_shared = fits and n_seq > 1 and n_prefix >= 2  # a lone SOS is not worth a second pass
    else:
        use_shared = shared_prefix

    if use_shared:
        if prefix is None:
            prefix, suffix = emb[:, 0, :n_prefix], emb[:, :, n_prefix:]
        else:
            suffix = emb
        if any(d.shape[0] == groups for d in deep):  # per-group deep prompts: one prefix per group
            prefix = prefix.expand(groups, -1, -1)
        out = _encode_shared(model, prefix, suffix, eot, deep, prompt.deep_start)
    else:
        if prefix is not None:
            emb = torch.cat([prefix.unsqueeze(1).expand(groups, n_seq, -1, -1), emb], dim=2)
        out = _encode_runs(model, emb, eot, deep, prompt.deep_start)
    out = out.view(groups, n_seq, -1)
    return out if prompt.embeddings.dim() == 4 else out[0]


def _checked(prompt: TextPrompt) -> Tuple[Tensor, Optional[Tensor], Tensor]:
    """embeddings as (G, N, L, width), prefix as (1 or G, Lp, width) or None, eot (N,) long."""
    emb, prefix = prompt.embeddings, prompt.prefix
    if emb.dim() == 3:
        emb = emb.unsqueeze(0)
    if emb.dim() != 4:
        raise ValueError(
            f"TextPrompt.embeddings must be (N, L, width) or (G, N, L, width), got {tuple(emb.shape)}")
    groups, n_seq = emb.shape[:2]
    eot = prompt.eot.to(device=emb.device, dtype=torch.long)
    if eot.shape != (n_seq,):
        raise ValueError(f"TextPrompt.eot must be ({n_seq},), got {tuple(eot.shape)}")
    if prefix is not None:
        prefix = prefix.unsqueeze(0) if prefix.dim() == 2 else prefix
        if prefix.dim() != 3 or prefix.shape[0] not in (1, groups):
            raise ValueError(
                f"TextPrompt.prefix must be (Lp, width) or ({groups}, Lp, width), got {tuple(prompt.prefix.shape)}")
    length = emb.shape[2] + (0 if prefix is None else prefix.shape[1])
    if int(eot.max()) >= length:
        raise ValueError(f"an EOT index ({int(eot.max())}) lies beyond the {length} given positions")
    return emb, prefix, eot


def _encode_groups(model: nn.Module, prompt: TextPrompt) -> Tensor:
    """Groups of different sizes, each with its own explicit prefix, in one shared-prefix pass."""
    emb, prefix, sizes = prompt.embeddings, prompt.prefix, list(prompt.group_sizes)
    if prefix is None or prefix.dim() != 3 or prefix.shape[0] != len(sizes):
        raise ValueError(f"TextPrompt.group_sizes needs a prefix of shape ({len(sizes)}, Lp, width)")
    if emb.dim() != 3 or sum(sizes) != emb.shape[0] or min(sizes) < 1:
        raise ValueError(f"TextPrompt.group_sizes {sizes} must be positive and sum to the "
                         f"{emb.shape[0] if emb.dim() == 3 else '?'} sequences of (N, L, width) embeddings")
    if list(prompt.deep):
        raise ValueError("TextPrompt.group_sizes does not take deep prompts")
    eot = prompt.eot.to(device=emb.device, dtype=torch.long)
    if eot.shape != (emb.shape[0],) or int(eot.min()) < prefix.shape[1] or \
            int(eot.max()) >= prefix.shape[1] + emb.shape[1]:
        raise ValueError("TextPrompt.eot must index, per sequence, a position after the prefix within it")
    group_index = torch.repeat_interleave(torch.arange(len(sizes), device=emb.device),
                                          torch.tensor(sizes, device=emb.device))
    return _encode_shared(model, prefix, emb.unsqueeze(0), eot, [], prompt.deep_start, group_index)


def _deep_groups(deep: Tensor, groups: int) -> Tensor:
    """A deep prompt (n, width) or (G, n, width) as (1 or G, n, width)."""
    deep = deep.unsqueeze(0) if deep.dim() == 2 else deep
    if deep.dim() != 3 or deep.shape[0] not in (1, groups):
        raise ValueError(
            f"deep text prompts must be (n, width) or ({groups}, n, width), got {tuple(deep.shape)}")
    return deep


def _shared_length(emb: Tensor, limit: int) -> int:
    """Number of leading positions (at most `limit`) where all sequences of each group are equal.

    One exact comparison per position, stopping at the first difference: cheap next to a block.
    """
    emb = emb.detach()
    for pos in range(limit):
        column = emb[:, :, pos]
        if not torch.equal(column, column[:, :1].expand_as(column)):
            return pos
    return limit


@dataclass
class _Runs:
    """B token runs of varied lengths packed run after run into rows (T, C).

    Attention pads them to (B, Lmax, C); when all runs have the same length packing is a reshape.
    """

    lengths: Tensor  # (B,)
    starts: Tensor  # (B,) row of each run's first token
    shortest: int
    width: int  # Lmax
    index: Optional[Tensor]  # (T,) slot of each row in the flattened (B * Lmax) padding; None if dense

    @classmethod
    def of(cls, lengths: Tensor) -> "_Runs":
        shortest, longest = (int(v) for v in lengths.aminmax())
        starts = lengths.cumsum(0) - lengths
        index = None
        if shortest != longest:
            slots = torch.arange(longest, device=lengths.device)
            index = (slots < lengths[:, None]).flatten().nonzero().squeeze(1)
        return cls(lengths, starts, shortest, longest, index)

    @property
    def batch(self) -> int:
        return self.lengths.shape[0]

    @property
    def last(self) -> Tensor:
        """(B,) row of each run's last token (the EOT)."""
        return self.starts + self.lengths - 1

    def pack(self, padded: Tensor) -> Tensor:
        """(B, Lmax, C) -> rows (T, C)."""
        flat = padded.reshape(-1, padded.shape[-1])
        return flat if self.index is None else flat.index_select(0, self.index)

    def pad(self, rows: Tensor) -> Tensor:
        """Rows (T, C) -> (B, Lmax, C), zeros after each run's end (always masked out)."""
        if self.index is not None:
            rows = rows.new_zeros(self.batch * self.width, rows.shape[-1]).index_copy(0, self.index, rows)
        return rows.view(self.batch, self.width, -1)


def _project(attn: nn.MultiheadAttention, h: Tensor, part: slice) -> Tensor:
    """Rows of `attn`'s packed in-projection (q: [0, D), k: [D, 2D), v: [2D, 3D)) applied to h."""
    bias = attn.in_proj_bias
    return F.linear(h, attn.in_proj_weight[part], None if bias is None else bias[part])


def _key_values(block: nn.Module, x: Tensor) -> KV:
    """The keys and values block `block` derives from its input rows x."""
    dim = x.shape[-1]
    return _project(block.attn, block.ln_1(x), slice(dim, 3 * dim)).chunk(2, dim=-1)


def _block(block: nn.Module, x: Tensor, runs: _Runs, context: Optional[KV] = None,
           eot_only: bool = False, context_index: Optional[Tensor] = None) -> Tuple[Tensor, KV]:
    """One residual block on packed rows x (T, width), causal within each run.

    context: keys/values (Gc, Lc, width) of the Lc positions preceding every run (a prefix shared
        by the B / Gc consecutive runs of each of Gc groups, or by the runs whose context_index
        (B,) names it), visible to all their queries.
    eot_only: return only the runs' last rows (B, width) (the last block: nothing else is pooled).
    Also returns this block's padded keys/values (B, Lmax, width).
    """
    attn, dim = block.attn, x.shape[-1]
    h = block.ln_1(x)
    if eot_only:
        k, v = runs.pad(_project(attn, h, slice(dim, 3 * dim))).chunk(2, dim=-1)
        q = _project(attn, h[runs.last], slice(0, dim)).unsqueeze(1)
    else:
        q, k, v = runs.pad(_project(attn, h, slice(0, 3 * dim))).chunk(3, dim=-1)
    own = (k, v)
    n_context = 0
    if context is not None:
        n_context = context[0].shape[1]
        k, v = (_behind(c, t, context_index) for c, t in zip(context, (k, v)))
    if eot_only:
        # Query at position n_context + length - 1 sees keys up to there; later slots are padding.
        visible = torch.arange(k.shape[1], device=x.device) < (n_context + runs.lengths)[:, None]
        out = attend(attn, q, k, v, attn_mask=visible[:, None, None, :])[:, 0]
        x = x[runs.last] + out
    else:
        x = x + runs.pack(attend(attn, q, k, v, is_causal=True))
    return x + block.mlp(block.ln_2(x)), own


def _behind(context: Tensor, own: Tensor, index: Optional[Tensor] = None) -> Tensor:
    """[context of the run's group ; the run's own] along positions: (B, Lc + L, C).

    context (Gc, Lc, C) is broadcast to the B / Gc runs of its group through an expanded view, so
    the concatenation is the only copy; with index (B,), run b takes context[index[b]].
    """
    if index is not None:
        return torch.cat([context.index_select(0, index), own], dim=1)
    groups = context.shape[0]
    own = own.unflatten(0, (groups, -1))
    context = context.unsqueeze(1).expand(-1, own.shape[1], -1, -1)
    return torch.cat([context, own], dim=2).flatten(0, 1)


def _replace(x: Tensor, runs: _Runs, deep: Tensor, start: int) -> Tensor:
    """Rows x with positions [start, start + n) of every run replaced by deep (1 or G, n, width)."""
    n = deep.shape[1]
    groups = deep.shape[0]
    values = deep.to(x.dtype).unsqueeze(1).expand(groups, runs.batch // groups, -1, -1).flatten(0, 1)
    offsets = start + torch.arange(n, device=x.device)
    rows = runs.starts[:, None] + offsets
    if start + n > runs.shortest:  # deep positions past a run's EOT do not exist there
        inside = offsets < runs.lengths[:, None]
        rows, values = rows[inside], values[inside]
    return x.index_copy(0, rows.flatten(), values.reshape(-1, x.shape[-1]))


def _head(model: nn.Module, eot_rows: Tensor) -> Tensor:
    """ln_final, cast to the model dtype, project: (B, width) -> (B, embed_dim)."""
    return model.ln_final(eot_rows).to(model.dtype) @ model.text_projection


def _embed(model: nn.Module, emb: Tensor, first: int, runs: _Runs) -> Tensor:
    """Rows of emb (..., >= Lmax, width), runs in its leading dims' order, + positions first..."""
    dtype = model.dtype
    positions = model.positional_embedding[first:first + runs.width].to(dtype)
    # Slice before flattening: an expanded emb would otherwise be copied in full.
    emb = emb[..., : runs.width, :].to(dtype) + positions
    return runs.pack(emb.reshape(runs.batch, runs.width, -1))


def _encode_runs(model: nn.Module, emb: Tensor, eot: Tensor, deep: List[Tensor], start: int) -> Tensor:
    """Truncated path: every sequence of emb (G, N, L, width) up to its EOT -> (G * N, embed_dim)."""
    groups = emb.shape[0]
    runs = _Runs.of((eot + 1).repeat(groups))  # runs are group-major, as per-group deep prompts expect
    x = _embed(model, emb, 0, runs)
    blocks = model.transformer.resblocks
    for i, block in enumerate(blocks):
        if 0 < i <= len(deep):
            x = _replace(x, runs, deep[i - 1], start)
        x, _ = _block(block, x, runs, eot_only=i == len(blocks) - 1)
    return _head(model, x)


def _encode_shared(model: nn.Module, prefix: Tensor, suffix: Tensor, eot: Tensor,
                   deep: Sequence[Tensor], start: int, group_index: Optional[Tensor] = None) -> Tensor:
    """Shared-prefix path -> (G * N, embed_dim).

    prefix (Gp, Lp, width) with Gp 1 or G: encoded once per group, block by block, its keys and
    values handed to the suffixes. suffix (G, N, >= max(eot) + 1 - Lp, width): what follows the
    prefix in each sequence, run up to its EOT. group_index (N,) (with G = 1): sequence n follows
    prefix group_index[n] instead.
    """
    groups, n_prefix = prefix.shape[0], prefix.shape[1]
    runs = _Runs.of((eot + 1 - n_prefix).repeat(suffix.shape[0]))
    prefix_runs = _Runs.of(torch.full((groups,), n_prefix, device=eot.device))
    p = _embed(model, prefix, 0, prefix_runs)
    s = _embed(model, suffix, n_prefix, runs)
    blocks = model.transformer.resblocks
    for i, block in enumerate(blocks):
        if 0 < i <= len(deep):
            p = _replace(p, prefix_runs, deep[i - 1], start)
        if i == len(blocks) - 1:
            context = _key_values(block, p.view(groups, n_prefix, -1))  # the prefix's outputs are unused
            s, _ = _block(block, s, runs, context=context, eot_only=True, context_index=group_index)
        else:
            p, context = _block(block, p, prefix_runs)
            s, _ = _block(block, s, runs, context=context, context_index=group_index)
    return _head(model, s)
