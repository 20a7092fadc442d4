"""Where description files live, what the published ones are, and reading them for a class list.

A description file is one JSON object `{"<class name>": ["<description>", ...], ...}` (SAP's
format). For a run, the file is DESCRIPTIONS.FILE when set, else `<DESCRIPTIONS.DIR>/<key>.json`
with <key> the dataset's name as in configs/datasets/<key>.yaml (DATASET.NAME lower-cased for a
dataset not listed in DATASET_KEYS). DESCRIPTIONS.DIR "" means $PROMPTKIT_DESCRIPTIONS_DIR, else
~/.cache/promptkit/descriptions (where `python -m descriptions.download` writes).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional, Sequence

from yacs.config import CfgNode
from yacs.config import CfgNode as CN

from dassl.cli import UserError

from .template import CONTEXT_LENGTH, description_sentence, sentence_length

ENV_DIR = "PROMPTKIT_DESCRIPTIONS_DIR"
DEFAULT_DIR = os.path.join("~", ".cache", "promptkit", "descriptions")

# DATASET.NAME -> file key (the name of its configs/datasets/*.yaml).
DATASET_KEYS = {
    "Caltech101": "caltech101", "DescribableTextures": "dtd", "EuroSAT": "eurosat",
    "FGVCAircraft": "fgvc_aircraft", "Food101": "food101", "ImageNet": "imagenet",
    "ImageNetV2": "imagenetv2", "ImageNetSketch": "imagenet_sketch", "ImageNetA": "imagenet_a",
    "ImageNetR": "imagenet_r", "OxfordFlowers": "oxford_flowers", "OxfordPets": "oxford_pets",
    "StanfordCars": "stanford_cars", "SUN397": "sun397", "UCF101": "ucf101",
}
# Key -> file published with SAP (semantic_descriptions/ of its repository) and its SHA256. The
# ImageNet variants' and cars196's files are byte-identical copies of imagenet's / stanford_cars'.
_IMAGENET = "715babff282463bb9e60a927852e25584ebf55ee120ec19ee7fa9fab73782a88"
PUBLISHED = {
    "caltech101": ("caltech101_attributes.json", "b50eed8d8a0a61e23f214c1433336572b1adab1cc923a95ae3e99103b8acbb30"),
    "dtd": ("dtd_attributes.json", "bad33f228c429d063ca4025a61ee28fad665f9a3c3109f762c60b293b506df43"),
    "eurosat": ("eurosat_attributes.json", "3e27ad9378bca8c7f0a5fc94ef67de34a02835ca15e4192cd7597badd0431b60"),
    "fgvc_aircraft": ("fgvc_aircraft_attributes.json",
                      "55d11f5360fd32c1833d56a395a9ff834414ce2157bd4785b8c638558bff2b0e"),
    "food101": ("food101_attributes.json", "94d8eab798e7b510941cd53df2e9683d51c2f2866ebb9387b839b9d7cdea0683"),
    "imagenet": ("imagenet_attributes.json", _IMAGENET),
    "imagenetv2": ("imagenetv2_attributes.json", _IMAGENET),
    "imagenet_sketch": ("imagenet-sketch_attributes.json", _IMAGENET),
    "imagenet_a": ("imagenet-adversarial_attributes.json", _IMAGENET),
    "imagenet_r": ("imagenet-rendition_attributes.json", _IMAGENET),
    "oxford_flowers": ("oxford_flowers_attributes.json",
                       "d1e0c94ef674dbb0ed37e33c792f1eb79ab47024e566fc18db0f97892b9c193d"),
    "oxford_pets": ("oxford_pets_attributes.json", "fd2e39be21e40f4127378b75047732a8d4e4281afc7a18c746c68305aa3a68e1"),
    "stanford_cars": ("stanford_cars_attributes.json",
                      "941d1783a2cb6de46b72d0c8ef707b538125f60ddcfd4f9001a7f88720e37b63"),
    "sun397": ("sun397_attributes.json", "6549ced4246568f8c5d7fecbb718941c2e73a40f6803e12183a22087382e9da0"),
    "ucf101": ("ucf101_attributes.json", "f75f85f5b430eb6ec25446e3f76407a497e21e62e100a9ab716a80424006d61a"),
}
# The reference keeps the first 3 descriptions per class for ImageNet only (not its variants).
REFERENCE_PER_CLASS = {"ImageNet": 3}


class DescriptionsError(UserError, ValueError):
    """A description file that is unreadable, malformed, or lacks a class (one line)."""


def extend_cfg(cfg: CfgNode) -> None:
    """The top-level DESCRIPTIONS node (called by train.py through the `descriptions` package)."""
    cfg.DESCRIPTIONS = CN()
    cfg.DESCRIPTIONS.FILE = ""  # one JSON file {class: [descriptions]}; set, it overrides DIR
    cfg.DESCRIPTIONS.DIR = ""  # <key>.json files; "": $PROMPTKIT_DESCRIPTIONS_DIR or ~/.cache/promptkit/descriptions
    # Descriptions used per class, in file order: -1 the reference's rule (ImageNet 3, else all),
    # 0 all, n > 0 the first n.
    cfg.DESCRIPTIONS.PER_CLASS = -1


def dataset_key(dataset_name: str) -> str:
    return DATASET_KEYS.get(dataset_name, dataset_name.lower())


def descriptions_dir(directory: str = "") -> str:
    return os.path.expanduser(directory or os.environ.get(ENV_DIR) or DEFAULT_DIR)


def descriptions_file(cfg: CfgNode) -> str:
    node = cfg.DESCRIPTIONS
    if node.FILE:
        return os.path.expanduser(node.FILE)
    return os.path.join(descriptions_dir(node.DIR), dataset_key(cfg.DATASET.NAME) + ".json")


def validate(table: object, source: str) -> dict[str, list[str]]:
    """`table` if it is {str: [non-empty str, ...]} with no empty list, else DescriptionsError."""
    if not isinstance(table, dict) or not table:
        raise DescriptionsError(f'{source}: expected a non-empty JSON object {{"class name": ["description", ...]}}')
    for name, entries in table.items():
        if not isinstance(entries, list) or not entries:
            raise DescriptionsError(f'{source}: the entry of "{name}" must be a non-empty list of strings')
        if not all(isinstance(e, str) and e.strip() for e in entries):
            raise DescriptionsError(f'{source}: the entry of "{name}" holds something other than a non-empty string')
    return table  # type: ignore[return-value]


def read_descriptions(path: str) -> dict[str, list[str]]:
    try:
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
    except json.JSONDecodeError as err:
        raise DescriptionsError(f"{path}: not valid JSON ({err})") from None
    return validate(table, path)


def class_entry(table: dict[str, list[str]], classname: str) -> Optional[list[str]]:
    """The entry of a dataset class name: "_" read as a space, as written, else lower-cased.

    The published files have lower-case keys, except FGVC-Aircraft whose keys keep their case
    ("A300B4"); the reference lower-cases every other dataset's names.
    """
    name = classname.replace("_", " ")
    entry = table.get(name)
    return entry if entry is not None else table.get(name.lower())


@dataclass
class ClassDescriptions:
    """Descriptions of an ordered class list: `per_class[c]` belongs to `classnames[c]`."""

    classnames: list[str]
    per_class: list[list[str]]
    path: str

    @property
    def flat(self) -> list[str]:
        """All descriptions, class by class (P of them)."""
        return [d for entries in self.per_class for d in entries]

    def sentences(self) -> list[str]:
        """SAP's sentence of every description, in the order of `flat`; one error line for a
        sentence longer than CLIP's context."""
        for name, entries in zip(self.classnames, self.per_class):
            for description in entries:
                length = sentence_length(name, description)
                if length > CONTEXT_LENGTH:
                    raise DescriptionsError(
                        f'the sentence of "{description}" (class "{name}") has {length} tokens, more than '
                        f"CLIP's {CONTEXT_LENGTH}; shorten it in {self.path}")
        return [description_sentence(name, d)
                for name, entries in zip(self.classnames, self.per_class) for d in entries]

    @property
    def owners(self) -> list[int]:
        """(P,) class index of each description of `flat`."""
        return [c for c, entries in enumerate(self.per_class) for _ in entries]


def select(table: dict[str, list[str]], classnames: Sequence[str], path: str,
           per_class: int = 0) -> ClassDescriptions:
    """The entries of `classnames` (first `per_class` of each when > 0); one error line for a
    class without an entry."""
    chosen = []
    for name in classnames:
        entry = class_entry(table, name)
        if entry is None:
            raise DescriptionsError(f'class "{name}" has no entry in the description file {path}')
        chosen.append(list(entry[:per_class]) if per_class > 0 else list(entry))
    return ClassDescriptions(list(classnames), chosen, path)


def load_class_descriptions(cfg: CfgNode, classnames: Sequence[str]) -> ClassDescriptions:
    """The descriptions of the run's classes, as the config locates and limits them."""
    path = descriptions_file(cfg)
    if not os.path.isfile(path):
        key = dataset_key(cfg.DATASET.NAME)
        hint = (f"run `python -m descriptions.download {key}`, or generate them with "
                f"`python -m descriptions.generate --dataset {key}`, or set DESCRIPTIONS.FILE")
        raise FileNotFoundError(f'descriptions of {cfg.DATASET.NAME} not found: "{path}" ({hint})')
    per_class = cfg.DESCRIPTIONS.PER_CLASS
    if per_class < 0:
        per_class = REFERENCE_PER_CLASS.get(cfg.DATASET.NAME, 0)
    return select(read_descriptions(path), classnames, path, per_class)
