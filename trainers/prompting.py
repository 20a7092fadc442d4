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

Label embeddings (LAMM, trainers/label_alignment.py): `set_labels` adds a learned per-class
`token_classes` (n_cls, m, w) that takes the place of suffix positions offset..offset+m-1 (the
"labels" branch); the plain prompt is the "names" branch. `prompt` encodes the active branches
(`branches`), in this order, as one group of sequences sharing SOS + context.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor, nn

from clip import clip
from clip.model import CLIP
from clip.prompts import TextPrompt
from dassl.cli import ConfigError

POSITIONS = ("end", "middle", "front")
BRANCHES = ("labels", "names")  # prompts with the learned label embeddings / with the class names
DEFAULT_TEMPLATE = "{prefix} {name}."


def clean_classname(name: str) -> str:
    return name.replace("_", " ")


def name_token_counts(classnames: Sequence[str]) -> list[int]:
    """BPE token count of each (cleaned) class name."""
    return [len(clip._tokenizer().encode(clean_classname(name))) for name in classnames]


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
        self.prefix = prefix
        self.position = position
        self.name_lens = name_token_counts(self.classnames)
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
        self.label_offset: Optional[int] = None  # suffix position of the label embeddings (set_labels)
        self.branches: tuple[str, ...] = ("names",)

    def set_labels(self, labels: Tensor, offset: int) -> None:
        """Learn `token_classes` = labels (n_cls, m, w) in place of suffix positions offset..offset+m-1.

        `fix_token`, their initial values, is kept as a saved buffer (the anchor of LAMM's
        parameter-space loss). The "labels" branch becomes the prompt.
        """
        if self.position != "end":
            raise ConfigError(f"label embeddings need the class token at the end, not {self.position!r}")
        if labels.shape[0] != self.n_cls or offset + labels.shape[1] > self.token_suffix.shape[1]:
            raise ValueError(f"label embeddings {tuple(labels.shape)} at suffix position {offset} do not fit "
                             f"{self.n_cls} prompts of suffix length {self.token_suffix.shape[1]}")
        self.token_classes = nn.Parameter(labels.clone())
        self.register_buffer("fix_token", labels.detach().clone())
        self.label_offset = offset
        self.branches = ("labels",)

    def drop_labels(self) -> None:
        """Back to the plain prompts (the class names): no label embeddings."""
        if self.has_labels:
            del self.token_classes, self.fix_token
        self.label_offset = None
        self.branches = ("names",)

    @property
    def has_labels(self) -> bool:
        return self.label_offset is not None

    @contextlib.contextmanager
    def using_branches(self, *branches: str) -> Iterator[None]:
        """Within the block, `prompt` (and so a learner's text_prompt) encodes these branches."""
        if any(b not in BRANCHES for b in branches) or ("labels" in branches and not self.has_labels):
            raise ValueError(f"branches must be from {BRANCHES} ('labels' needs set_labels), got {branches}")
        saved, self.branches = self.branches, tuple(branches)
        try:
            yield
        finally:
            self.branches = saved

    def suffix(self, branch: str) -> Tensor:
        """The frozen suffix (n_cls, 77-1-n, w), with the label embeddings spliced in for "labels"."""
        if branch == "names":
            return self.token_suffix
        start, end = self.label_offset, self.label_offset + self.token_classes.shape[1]
        return torch.cat([self.token_suffix[:, :start], self.token_classes.to(self.token_suffix.dtype),
                          self.token_suffix[:, end:]], dim=1)

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

    def assemble(self, ctx: Tensor, length: Optional[int] = None, branch: Optional[str] = None) -> Tensor:
        """Prompt embeddings (*G, n_cls, length, w) for ctx (n, w), (C, n, w) or (*G, C, n, w).

        C is 1 (shared) or n_cls (class-specific); length defaults to the full 77 positions;
        branch ("labels" or "names") defaults to the first active one.
        """
        suffix = self.suffix(branch or self.branches[0])
        length = self.token_prefix.shape[1] + self.n_ctx + self.token_suffix.shape[1] if length is None else length
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0)
        groups = ctx.shape[:-3]
        width = self.token_prefix.shape[-1]
        prompts = torch.cat([
            self.token_prefix.expand(*groups, self.n_cls, 1, width),
            ctx.expand(*groups, self.n_cls, self.n_ctx, width),
            suffix[:, :length - 1 - self.n_ctx].expand(*groups, self.n_cls, -1, width),
        ], dim=-2)
        if self.layout is not None:
            index = self.layout[:, :length, None].expand(*groups, self.n_cls, length, width)
            prompts = prompts.gather(-2, index)
        return prompts

    def prompt(self, ctx: Tensor) -> TextPrompt:
        """The encoder input for `ctx`, cut after the last EOT (see `assemble` for shapes).

        Class-specific contexts are distinct parameters even where their values coincide (e.g.
        right after a shared initialisation), so they are never encoded as one shared prefix.
        The active branches' prompts follow one another: (*G, len(branches) * n_cls, L, w).
        With label embeddings the shared prefix is given explicitly, ending before the label slot:
        labels that start out equal (names sharing their first tokens) are distinct parameters.
        """
        class_specific = ctx.dim() >= 3 and ctx.shape[-3] > 1
        parts = [self.assemble(ctx, self.length, branch) for branch in self.branches]
        embeddings = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-3)
        eot = self.eot.repeat(len(parts))
        if class_specific:
            return TextPrompt(embeddings=embeddings, eot=eot, shared_prefix=False)
        if "labels" in self.branches and embeddings.dim() == 3:
            cut = 1 + self.n_ctx + self.label_offset
            return TextPrompt(embeddings=embeddings[:, cut:], eot=eot, prefix=embeddings[0, :cut])
        return TextPrompt(embeddings=embeddings, eot=eot)


class ContextPrompts(ClassPrompts):
    """CoOp's learner over a list of names: a context by `coop_context`'s rule plus the name tokens.

    Used for class prompts (CoOp, SoftCPT's hard baselines) and for SoftCPT's task and
    class-context prompts. n_ctx = 0 gives name-only prompts (" <name>."), whose empty context is a
    buffer, not a parameter (as the reference).
    """

    def __init__(self, clip_model: CLIP, names: Sequence[str], n_ctx: int, ctx_init: str, csc: bool,
                 position: str = "end"):
        init = coop_context(clip_model, n_ctx, ctx_init, csc, len(names))
        super().__init__(clip_model, names, init.n_ctx, init.prefix, position)
        if init.n_ctx == 0:
            self.register_buffer("ctx", init.vectors)
        else:
            self.ctx = nn.Parameter(init.vectors)

    def forward(self) -> Tensor:
        """All prompts (n_cls, 77, w)."""
        return self.assemble(self.ctx)

    def text_prompt(self) -> TextPrompt:
        return self.prompt(self.ctx)
