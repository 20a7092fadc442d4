#!/usr/bin/env python
"""Write the reference of every config key the project adds to Dassl's defaults (docs/CONFIG_KEYS.md).

    python scripts/config_keys.py > docs/CONFIG_KEYS.md

Each key is listed with its default, the module whose `extend_cfg` (or dassl/config/defaults.py)
adds it, and the comment on the line that sets it, where there is one. tests/test_config_keys.py
fails when the file is out of date, so a new key cannot go undocumented.
"""
from __future__ import annotations

import inspect
import os
import re
import sys
from typing import Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dassl.cli import one_line_errors  # noqa: E402

# The keys of upstream Dassl's defaults.py; anything else in dassl/config/defaults.py is the project's.
UPSTREAM_EXTRA = {"TEST.PER_TASK_RESULT", "DATALOADER.BATCH_PER_PROCESS"}
# Notes for keys whose defining line has no comment (the references' meaning, from the specs).
NOTES = {
    "DATALOADER.BATCH_PER_PROCESS": "under torchrun: TRAIN_X/TRAIN_U.BATCH_SIZE per process instead of global",
    "TEST.PER_TASK_RESULT": "multi-task datasets: one `* task: i (name) ... metric: X%` line per task",
    "DATASET.FOLDER.FORMAT": "FolderDataset: auto, folders or csv",
    "DATASET.CENTER_CROP": "ELEVATER: resize the short side and center-crop instead of squashing to INPUT.SIZE",
    "DATASET.COOP": "MVLPT --dataset-coop: the tasks of DATASET.DATASET are registered Dassl datasets",
    "DATASET.DATASET": "MVLPT --dataset: task name(s), comma-separated",
    "DATASET.MULTITASK": "MVLPT --multi-task: train on the union of the tasks' classes",
    "DATASET.MULTITASK_EVALKEY": "MVLPT --multi-task-evalkey: model selection on `average` or one task's metric",
    "DATASET.MULTITASK_LABEL_PERTASK": "MVLPT: multiply other tasks' logits by 0 in the loss (the reference's mask)",
    "DATASET.NUM_SAMPLES_PER_CLASS": "ELEVATER: shots per class (--shots sets it and DATASET.NUM_SHOTS)",
    "DATASET.RANDOM_SEED_SAMPLING": "ELEVATER: seed of the few-shot sampling (--seed sets it)",
    "DATASET.TEST_SET": "ELEVATER single-task manifests: the test split's name",
    "DATASET.TRAIN_SET": "ELEVATER single-task manifests: the train split's name",
    "DATASET.VAL_SET": "ELEVATER single-task manifests: the val split's name (unused by the reference)",
    "DESCRIPTIONS.PER_CLASS": "descriptions per class: -1 the reference's rule (ImageNet 3, others all), 0 all, n the first n",
    "TRAINER.LAMM.LOGIT_WEIGHT": "LAMM: weight of the logit-space (KL) term (reference 0.05)",
    "TRAINER.LAMM.TEMPERATURE": "LAMM: temperature of the logit-space term (reference 2.0)",
    "TRAINER.MTCOOP.CLASS_CTX_INIT": "SoftCPT: words initialising the class context (n = #words)",
    "TRAINER.MTCOOP.CLASS_TOKEN_POSITION": "SoftCPT class-context prompts: end, middle or front",
    "TRAINER.MTCOOP.TASK_CTX_INIT": "SoftCPT: words initialising the task context (n = #words)",
    "TRAINER.MTCOOP.TASK_TOKEN_POSITION": "SoftCPT task prompts: end, middle or front",
    "TRAINER.MTCOOP.TOKEN_POSITION": "SoftCPT final class prompts: end, middle or front",
    "TRAINER.MTCOOPH.CTX_INIT": "hard-sharing baselines: words initialising the context",
    "TRAINER.MTCOOPH.N_CTX": "hard-sharing baselines: context length",
    "TRAINER.MTCOOPH.TOKEN_POSITION": "hard-sharing baselines: class token end, middle or front",
    "TRAINER.MVLPT.COCOOP.N_CTX": "MVLPT's CoCoOp branch: context length (0 = off)",
    "TRAINER.MVLPT.COOP.CLASS_TOKEN_POSITION": "MCoOp/MUPT: class token position (reference default middle)",
    "TRAINER.MVLPT.COOP.N_CTX": "MCoOp/MUPT: text context length (0 = no text context)",
    "TRAINER.MVLPT.PROJECT_DIM": "MUPT: width of the coupling transformer",
    "TRAINER.MVLPT.VPT.DEEP": "MVPT/MUPT: a prompt set per vision block (False: the first block only)",
    "TRAINER.MVLPT.VPT.DROPOUT": "MVPT/MUPT: dropout on the visual prompts",
    "TRAINER.MVLPT.VPT.N_CTX": "MVPT/MUPT: visual prompt tokens per block (0 = no visual prompts)",
}


def flatten(node, prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in node.items():
        if hasattr(value, "items"):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def line_comment(source: str, key: str) -> str:
    """The trailing comment of the line in `source` that assigns the key's last part."""
    leaf = key.rsplit(".", 1)[-1]
    for line in source.splitlines():
        match = re.search(rf"\.{re.escape(leaf)}\s*=\s*[^=].*?#\s*(.+)$", line)
        if match:
            return match.group(1).strip()
    return ""


DOCS = ("README.md", "DATASETS.md", "docs/NOTES_trainers.md")


def documented_in(key: str) -> str:
    """"see FILE" for the first of DOCS that names the key (or its last part in a `{A,B}` group)."""
    leaf = key.rsplit(".", 1)[-1]
    for doc in DOCS:
        text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
        if key in text or re.search(rf"{re.escape(key.rsplit('.', 1)[0])}\.\{{[^}}]*\b{leaf}\b", text):
            return f"see {doc}"
    return ""


def collect() -> list[tuple[str, object, str, str]]:
    """(key, default, owner file, comment) of every key the project adds, in key order."""
    import train
    from dassl.config import get_cfg_default

    base = dict(flatten(get_cfg_default()))
    rows = [(key, base[key], "dassl/config/defaults.py", NOTES[key]) for key in sorted(UPSTREAM_EXTRA)]
    seen = set(UPSTREAM_EXTRA)
    owners = list(train.import_project_packages())
    from dassl.data.datasets import DATASET_REGISTRY
    from dassl.engine import TRAINER_REGISTRY

    for registry in (TRAINER_REGISTRY, DATASET_REGISTRY):
        owners += [registry.get(name) for name in registry.registered_names()]
    done = []
    for owner in owners:
        hook = getattr(owner, "extend_cfg", None)
        if not callable(hook) or any(hook is d for d in done):
            continue
        done.append(hook)
        cfg = get_cfg_default()
        hook(cfg)
        path = inspect.getsourcefile(hook)
        source = open(path, encoding="utf-8").read()
        for key, value in flatten(cfg):
            if key in base or key in seen:
                continue
            seen.add(key)
            note = line_comment(source, key) or NOTES.get(key, "") or documented_in(key)
            rows.append((key, value, os.path.relpath(path, ROOT), note))
    return sorted(rows)


def render(rows: list[tuple[str, object, str, str]]) -> str:
    lines = [
        "# Config keys the project adds to Dassl's",
        "",
        "Generated by `python scripts/config_keys.py > docs/CONFIG_KEYS.md` (a test checks it is current).",
        "Set them in YAML files or as trailing `KEY VALUE` options of `train.py`. The meaning of the",
        "reference keys of each method is in its paper's repository and in README.md / docs/NOTES_trainers.md;",
        "the note here is the comment where the key is defined.",
        "",
        "| key | default | defined in | note |",
        "|---|---|---|---|",
    ]
    for key, value, path, comment in rows:
        note = comment.replace("|", "\\|")
        lines.append(f"| `{key}` | `{value!r}` | `{path}` | {note} |")
    return "\n".join(lines) + "\n"


@one_line_errors
def main() -> int:
    sys.stdout.write(render(collect()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
