"""CLIP's byte-level BPE tokenizer (49,408 tokens, merges in bpe_simple_vocab_16e6.txt.gz)."""
from __future__ import annotations

import gzip
import html
import os
from functools import lru_cache
from typing import Dict, Iterable, List, Set, Tuple

import ftfy
import regex as re

SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
# 48894 merges, so that 256 bytes + 256 bytes+"</w>" + merges + 2 special tokens = 49408.
_NUM_MERGES = 49152 - 256 - 2

# Special tokens first (so literal ones in a text stay whole), then contractions, letter runs,
# single digits, and runs of other non-space characters.
_PATTERN = re.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    re.IGNORECASE,
)


def default_bpe() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpe_simple_vocab_16e6.txt.gz")


@lru_cache()
def bytes_to_unicode() -> Dict[int, str]:
    """A reversible byte -> printable character map (BPE then never sees whitespace/control bytes).

    Printable Latin-1 bytes map to themselves; the 68 others to chr(256), chr(257), ... in order.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def get_pairs(word: Tuple[str, ...]) -> Set[Tuple[str, str]]:
    """Adjacent symbol pairs of a word."""
    return set(zip(word[:-1], word[1:]))


def basic_clean(text: str) -> str:
    text = ftfy.fix_text(text)
    return html.unescape(html.unescape(text)).strip()  # twice: texts are often double-escaped


def whitespace_clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class SimpleTokenizer:
    """Text <-> BPE token ids as in OpenAI CLIP (49406 = <|startoftext|>, 49407 = <|endoftext|>)."""

    def __init__(self, bpe_path: str = default_bpe()):
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        with gzip.open(bpe_path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        # Line 0 is a version header.
        merges = [tuple(line.split()) for line in lines[1:_NUM_MERGES + 1]]
        vocab = list(self.byte_encoder.values())
        vocab += [c + "</w>" for c in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += [SOT, EOT]
        self.encoder: Dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.decoder: Dict[int, str] = {i: tok for tok, i in self.encoder.items()}
        self.bpe_ranks: Dict[Tuple[str, str], int] = {m: i for i, m in enumerate(merges)}
        self.cache: Dict[str, str] = {SOT: SOT, EOT: EOT}
        self.pat = _PATTERN

    def bpe(self, token: str) -> str:
        """Space-separated BPE symbols of one pre-token (its last symbol carries '</w>')."""
        if token in self.cache:
            return self.cache[token]
        word: Tuple[str, ...] = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            ranked = [(self.bpe_ranks[p], p) for p in get_pairs(word) if p in self.bpe_ranks]
            if not ranked:
                break
            first, second = min(ranked)[1]
            merged: List[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        result = " ".join(word)
        self.cache[token] = result
        return result

    def encode(self, text: str) -> List[int]:
        """Token ids of a text, without SOT/EOT (cleaned and lower-cased first)."""
        text = whitespace_clean(basic_clean(text)).lower()
        ids: List[int] = []
        for token in self.pat.findall(text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[sym] for sym in self.bpe(token).split(" "))
        return ids

    def decode(self, tokens: Iterable[int]) -> str:
        """Text of token ids; every end of word becomes a space."""
        text = "".join(self.decoder[int(t)] for t in tokens)
        raw = bytearray(self.byte_decoder[c] for c in text)
        return raw.decode("utf-8", errors="replace").replace("</w>", " ")
