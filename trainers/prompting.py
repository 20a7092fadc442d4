"""Class prompts "SOS + context + class name." with a learnable context, for every prompt method.

A class prompt is the tokenized text `template.format(prefix=..., name=...)` (by default
"<prefix> <name>."), whose positions 1..n (the prefix words) are replaced by n context vectors:

    end:    [SOS | ctx (n) | name | . | EOT | pad]
    middle: [SOS | ctx[:n//2] | name | ctx[n//2:] | . | EOT | pad]
    front:  [SOS | name | ctx (n) | . | EOT | pad]

`ClassPrompts` holds the frozen pieces (buffers `token_prefix` = SOS embedding (n_cls, 1, w) and
`token_suffix` = positions 1+n.. (n_cls, 77-1-n, w)) and assembles them with any context: shared
(n, w), class-specific (n_cls, n, w), or grouped (*G, 1 | n_cls, n, w) as CoCoOp's per-image
contexts. A method's prompt learner subclasses it and owns its parameters. The EOT index of the
tokenized text stays valid in every layout because the length never changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from clip import clip
from clip.model import CLIP
from clip.prompts import TextPrompt
from dassl.cli import ConfigError

POSITIONS = ("end", "middle", "front")
DEFAULT_TEMPLATE = "{prefix} {name}."


def clean_classname(name: str) -> str:
    return name.replace("_", " ")


def text_width(clip_model: CLIP) -> int:
    return clip_model.ln_final.weight.shape[0]


@torch.no_grad()
def embed_tokens(clip_model: CLIP, tokens: Tensor) -> Tensor:
    """Frozen token embeddings of token ids, in the model's dtype (embeddings stay fp32 in CLIP)."""
    weight = clip_model.token_embedding.weight
    return clip_model.token_embedding(tokens.to(weight.device)).to(clip_model.dtype)


@dataclass
class ContextInit:
    """Initial context vectors and the words they stand for in the tokenized prompt text."""

    vectors: Tensor  # (n, w) shared or (n_cls, n, w) class-specific
    prefix: str

    @property
    def n_ctx(self) -> int:
        return self.vectors.shape[-2]


def word_context(clip_model: CLIP, phrase: str, n_ctx: Optional[int] = None) -> ContextInit:
    """Context initialised from the embeddings of positions 1..n of the tokenized `phrase`.

    n defaults to the number of space-separated words (CoOp). A word of several BPE tokens leaves
    its extra tokens in the frozen suffix; an n beyond the phrase takes EOT/padding embeddings
    (both as in the references). "_" in the phrase stands for a space.
    """
    phrase = phrase.replace("_", " ")
    n = len(phrase.split(" ")) if n_ctx is None else n_ctx
    embedding = embed_tokens(clip_model, clip.tokenize(phrase))
    return ContextInit(embedding[0, 1:1 + n].clone(), phrase)


def random_context(n_ctx: int, width: int, dtype: torch.dtype, n_cls: Optional[int] = None) -> ContextInit:
    """N(0, 0.02) context, shared (n, w) or class-specific (n_cls, n, w), standing for "X X ... X"."""
    shape = (n_ctx, width) if n_cls is None else (n_cls, n_ctx, width)
    vectors = torch.empty(shape, dtype=dtype)
    nn.init.normal_(vectors, std=0.02)
    return ContextInit(vectors, " ".join(["X"] * n_ctx))


def coop_context(clip_model: CLIP, n_ctx: int, ctx_init: str, csc: bool, n_cls: int) -> ContextInit:
    """CoOp's rule: CTX_INIT words (n := #words, CSC ignored) or random shared / class-specific."""
    if ctx_init:
        init = word_context(clip_model, ctx_init)
    else:
        print("Initializing class-specific contexts" if csc else "Initializing a generic context")
        init = random_context(n_ctx, text_width(clip_model), clip_model.dtype, n_cls if csc else None)
    print(f'Initial context: "{init.prefix}"')
    print(f"Number of context words (tokens): {init.n_ctx}")
    return init


class ClassPrompts(nn.Module):
    """Frozen token embeddings of one prompt per class, assembled around a given context."""

    def __init__(self, clip_model: CLIP, classnames: Sequence[str], n_ctx: int, prefix: str,
                 position: str = "end", template: str = DEFAULT_TEMPLATE):
        super().__init__()
        if position not in POSITIONS:
            raise ConfigError(f"class token position must be one of {POSITIONS}, got {position!r}")
        self.classnames = [clean_classname(name) for name in classnames]
        self.n_cls = len(self.classnames)
        self.n_ctx = n_ctx
        self.position = position
        self.name_lens = [len(clip._tokenizer().encode(name)) for name in self.classnames]
        self.prompt_texts = [template.format(prefix=prefix, name=name) for name in self.classnames]

        tokens = clip.tokenize(self.prompt_texts)
        embedding = embed_tokens(clip_model, tokens)
        self.register_buffer("token_prefix", embedding[:, :1].clone())
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:].clone())
        # Derived from the class names: never saved, rebuilt for whatever classes are loaded.
        self.register_buffer("tokenized_prompts", tokens, persistent=False)
        self.register_buffer("eot", tokens.argmax(dim=-1), persistent=False)
        self.register_buffer("layout", self._layout(tokens.shape[1]), persistent=False)
        # Positions the encoder needs: nothing after the last EOT reaches a feature.
        self.length = int(self.eot.max()) + 1

    def _layout(self, length: int) -> Optional[Tensor]:
        """(n_cls, L) source position of each output position in [SOS | ctx | suffix], or None (end)."""
        if self.position == "end":
            return None
        n = self.n_ctx
        rows = []
        for name_len in self.name_lens:
            ctx = list(range(1, 1 + n))
            name = list(range(1 + n, 1 + n + name_len))
            rest = list(range(1 + n + name_len, length))
            if self.position == "middle":
                rows.append([0] + ctx[:n // 2] + name + ctx[n // 2:] + rest)
            else:
                rows.append([0] + name + ctx + rest)
        return torch.tensor(rows, dtype=torch.long)

    def assemble(self, ctx: Tensor, length: Optional[int] = None) -> Tensor:
        """Prompt embeddings (*G, n_cls, length, w) for ctx (n, w), (C, n, w) or (*G, C, n, w).

        C is 1 (shared) or n_cls (class-specific); length defaults to the full 77 positions.
        """
        length = self.token_prefix.shape[1] + self.n_ctx + self.token_suffix.shape[1] if length is None else length
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0)
        groups = ctx.shape[:-3]
        width = self.token_prefix.shape[-1]
        prompts = torch.cat([
            self.token_prefix.expand(*groups, self.n_cls, 1, width),
            ctx.expand(*groups, self.n_cls, self.n_ctx, width),
            self.token_suffix[:, :length - 1 - self.n_ctx].expand(*groups, self.n_cls, -1, width),
        ], dim=-2)
        if self.layout is not None:
            index = self.layout[:, :length, None].expand(*groups, self.n_cls, length, width)
            prompts = prompts.gather(-2, index)
        return prompts

    def prompt(self, ctx: Tensor) -> TextPrompt:
        """The encoder input for `ctx`, cut after the last EOT (see `assemble` for shapes).

        Class-specific contexts are distinct parameters even where their values coincide (e.g.
        right after a shared initialisation), so they are never encoded as one shared prefix.
        """
        class_specific = ctx.dim() >= 3 and ctx.shape[-3] > 1
        return TextPrompt(embeddings=self.assemble(ctx, self.length), eot=self.eot,
                          shared_prefix=False if class_specific else None)
