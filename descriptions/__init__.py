"""Class descriptions written by LLMs: a resource shared by the methods that use them (SAP, the
zero-shot description baseline).

- library: the DESCRIPTIONS config node, locating and reading `{class: [descriptions]}` files;
- template: SAP's sentence around a description;
- `python -m descriptions.download [DATASET ...]`: the files published with SAP;
- `python -m descriptions.generate --dataset NAME`: new files from any OpenAI-compatible LLM.
"""
from .library import (
    DATASET_KEYS, PUBLISHED, ClassDescriptions, DescriptionsError, descriptions_dir, descriptions_file,
    extend_cfg, load_class_descriptions, read_descriptions, select, validate,
)
from .template import description_sentence

__all__ = [
    "DATASET_KEYS", "PUBLISHED", "ClassDescriptions", "DescriptionsError", "description_sentence",
    "descriptions_dir", "descriptions_file", "extend_cfg", "load_class_descriptions",
    "read_descriptions", "select", "validate",
]
