"""Typed descriptions of what a method injects into CLIP.

A method never edits CLIP: it builds one of these objects and hands it to the encoders
(`clip.encode.encode_text(model, TextPrompt)` and `model.encode_image(images, VisionPrompt)`).
Without a prompt object the model is exactly OpenAI's CLIP.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from torch import Tensor

VISION_PROMPT_POSITIONS = ("end", "after_cls")


@dataclass
class TextPrompt:
    """Token embeddings to run through the text Transformer.

    embeddings: (N, L, width) sequences with every learned piece already in place, or
        (G, N, L, width) for G groups of N sequences (CoCoOp: one group per image). Positional
        embeddings are added by the encoder. L may be 77 or any length covering every EOT.
    eot: (N,) index of the EOT token of each sequence (argmax of its token ids); shared by groups.
    prefix: optional (G, Lp, width) tokens shared by all N sequences of a group, given explicitly;
        `embeddings` then holds only what follows the prefix and `eot` still counts from the
        start of the full sequence. When None the encoder detects the shared prefix itself.
    deep: deep[k] replaces positions [deep_start, deep_start + n) of the input of block k + 1
        (k = 0 .. J-2); each entry is (n, width) for all sequences or (G, n, width) per group.
        Deep tokens get no positional embedding (MaPLe, IVLP, SAP).
    shared_prefix: the encoder's choice of path when its caller does not force one. None detects
        the shared prefix from equal values; False says the sequences hold distinct trainable
        tensors (class-specific contexts), whose equal values must not be merged into one copy.
    group_sizes: groups of different sizes in one call (SoftCPT: each task's classes share that
        task's context): `embeddings` (N, L, width) holds what follows the prefix, `prefix`
        (G, Lp, width) is required, and group g is the next group_sizes[g] sequences (sum = N).
        No deep prompts. Output (N, embed_dim).

    Output of the encoder: (N, embed_dim), or (G, N, embed_dim) when there are groups.
    """

    embeddings: Tensor
    eot: Tensor
    prefix: Optional[Tensor] = None
    deep: Sequence[Tensor] = ()
    deep_start: int = 1
    shared_prefix: Optional[bool] = None
    group_sizes: Optional[Sequence[int]] = None


@dataclass
class VisionPrompt:
    """Extra tokens for a ViT image tower.

    shallow: (n, width) or per image (B, n, width).
        position "end": appended after [CLS, patches] (after the positional embedding, before
        ln_pre): VPT-deep as in MaPLe, IVLP, SAP.
        position "after_cls": inserted right after CLS, after ln_pre (MVLPT's VPT).
    deep: deep[k] replaces those n prompt tokens at the input of block k + 1; each entry (n, width)
        or (B, n, width). No positional embedding, no ln_pre.
    """

    shallow: Optional[Tensor] = None
    deep: Sequence[Tensor] = ()
    position: str = "end"

    def __post_init__(self):
        if self.position not in VISION_PROMPT_POSITIONS:
            raise ValueError(
                f"VisionPrompt.position must be one of {VISION_PROMPT_POSITIONS}, got {self.position!r}"
            )
