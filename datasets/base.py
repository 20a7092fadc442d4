"""What the benchmark datasets share: locating folders, clear errors, few-shot and base/new."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

from dassl.data.datasets import DatasetBase, load_fewshot_cache, save_fewshot_cache
from dassl.utils import mkdir_if_missing

from .splits import read_split, save_split, subsample_classes

DOCS = "DATASETS.md"
ROOT_SECTION = "Data root"


def missing(path: str, what: str, section: str) -> FileNotFoundError:
    """The one-line error for a missing file or folder, pointing at the DATASETS.md section."""
    return FileNotFoundError(f'{what} not found: "{path}" (see {DOCS}, section "{section}")')


def dataset_root(cfg) -> str:
    """abspath(expanduser(DATASET.ROOT)), which must exist."""
    root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))
    if not os.path.isdir(root):
        raise missing(root, "DATASET.ROOT folder", ROOT_SECTION)
    return root


@contextlib.contextmanager
def pointing_to_docs(name: str, section: str) -> Iterator[None]:
    """Turn a FileNotFoundError raised inside (a listed image, an annotation file) into one that
    names the dataset and the DATASETS.md section that creates the file."""
    try:
        yield
    except FileNotFoundError as err:
        if DOCS in str(err):
            raise
        raise FileNotFoundError(f'{name}: {err} (see {DOCS}, section "{section}")') from None


def fewshot_splits(dataset: DatasetBase, cfg, splits: dict) -> dict:
    """Replace splits by their DATASET.NUM_SHOTS-shot version, cached per (K, SEED).

    splits maps "train" (and "val", possibly None) to lists. Train gets K shots per class, val
    min(K, 4). A reference pickle or our JSON cache under <dataset_dir>/split_fewshot/ is used when
    present; otherwise the draw uses python `random` (seeded by train.py) and is saved as JSON
    with relative paths.
    """
    num_shots = cfg.DATASET.NUM_SHOTS
    if num_shots < 1:
        return splits
    seed = cfg.SEED
    cached = load_fewshot_cache(dataset.dataset_dir, num_shots, seed)
    if cached is not None:
        _check_cached(cached, dataset.dataset_dir, num_shots, seed)
        return {**splits, **cached}

    out = dict(splits)
    out["train"] = dataset.generate_fewshot_dataset(splits["train"], num_shots=num_shots)
    if splits.get("val") is not None:
        out["val"] = dataset.generate_fewshot_dataset(splits["val"], num_shots=min(num_shots, 4))
    save_fewshot_cache(dataset.dataset_dir, num_shots, seed, {k: v for k, v in out.items() if v is not None})
    return out


def _check_cached(cached: dict, dataset_dir: str, num_shots: int, seed: int) -> None:
    # Pickled caches hold absolute paths of the machine that wrote them; a few-shot list is small,
    # so checking every file here beats a crash inside a DataLoader worker.
    for items in cached.values():
        for item in items:
            if not os.path.isfile(item.impath):
                cache = os.path.join(dataset_dir, "split_fewshot", f"shot_{num_shots}-seed_{seed}.*")
                raise FileNotFoundError(
                    f'image "{item.impath}" listed in the few-shot cache {cache} does not exist '
                    f"(delete the cache to draw it again from this dataset folder)")


def subsample_of(cfg) -> str:
    return cfg.DATASET.get("SUBSAMPLE_CLASSES", "all")


class Benchmark(DatasetBase):
    """A CoOp benchmark dataset: split JSON (or official lists), few-shot, base/new.

    Subclasses set dataset_dir, image_subdir, section (its DATASETS.md heading) and either
    split_file plus create_split() (the reference builds the JSON when it is missing) or only
    create_split() (official split lists, no JSON).
    """

    image_subdir: str = "images"
    split_file: Optional[str] = None
    section: str = ""
    # The split JSON stores impaths relative to image_dir, except StanfordCars (dataset_dir).
    split_relative_to_dataset_dir: bool = False

    def __init__(self, cfg):
        name = type(self).__name__
        root = dataset_root(cfg)
        self.dataset_dir = os.path.join(root, type(self).dataset_dir)
        if not os.path.isdir(self.dataset_dir):
            raise missing(self.dataset_dir, f"{name} dataset folder", self.section)
        self.image_dir = (os.path.join(self.dataset_dir, self.image_subdir) if self.image_subdir
                          else self.dataset_dir)
        self.split_path = os.path.join(self.dataset_dir, self.split_file) if self.split_file else None
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")
        mkdir_if_missing(self.split_fewshot_dir)

        with pointing_to_docs(name, self.section):
            train, val, test = self.load_split()
            splits = fewshot_splits(self, cfg, {"train": train, "val": val})
            train, val, test = subsample_classes(splits["train"], splits["val"], test,
                                                 subsample=subsample_of(cfg))
        super().__init__(train_x=train, val=val, test=test)

    def load_split(self) -> tuple[list, list, list]:
        prefix = self.dataset_dir if self.split_relative_to_dataset_dir else self.image_dir
        if self.split_path is not None and os.path.isfile(self.split_path):
            return read_split(self.split_path, prefix)
        if not os.path.isdir(self.image_dir):
            raise missing(self.image_dir, f"{type(self).__name__} image folder", self.section)
        if self.split_path is not None:
            print(f"No split file at {self.split_path}: creating it (python random, seeded by --seed)")
        train, val, test = self.create_split()
        if self.split_path is not None:
            save_split(train, val, test, self.split_path, prefix)
        return train, val, test

    def create_split(self) -> tuple[list, list, list]:
        """(train, val, test) from the raw annotations, consuming python `random` as the reference."""
        raise NotImplementedError

    def require(self, path: str, what: str) -> str:
        """path, or the one-line error naming it (and the split file that would make it unneeded)."""
        if os.path.exists(path):
            return path
        if self.split_path is not None:
            what = f"{what} (needed because {os.path.basename(self.split_path)} is missing)"
        raise missing(path, f"{type(self).__name__} {what}", self.section)
