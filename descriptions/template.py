"""SAP's sentence around a class description (`process_attributes` of the reference, always on).

    "a photo of a <class>, <end>."   with <class> lower-cased, "_" read as a space, and
    <end> = the text after the description's FIRST comma, stripped, when it has a comma;
            else "which " + description (",", "." removed) when its first word is "is" or "has",
            else "which has " + description (",", "." removed).

The quirks are the reference's and change its numbers, so they are kept: "has large, round eyes"
becomes "round eyes"; "grows near water" becomes "which has grows near water".
"""
from __future__ import annotations

PREFIX = "a photo of a "
CONTEXT_LENGTH = 77  # CLIP's; SAP tokenizes without truncation


def description_sentence(classname: str, description: str) -> str:
    name = classname.replace("_", " ").lower()
    if "," in description:
        end = description.split(",", 1)[1].strip()
    else:
        lead = "which " if description.split(" ")[0] in ("is", "has") else "which has "
        end = lead + description.replace(",", "").replace(".", "")
    return f"{PREFIX}{name}, {end}."


def sentence_length(classname: str, description: str) -> int:
    """Tokens of the sentence, SOS and EOT included (at most CONTEXT_LENGTH fit)."""
    from clip.clip import _tokenizer  # lazy: the clip package imports torch

    return len(_tokenizer().encode(description_sentence(classname, description))) + 2
