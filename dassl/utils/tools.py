"""Small file-system, seeding and string helpers."""
from __future__ import annotations

import errno
import json
import os
import os.path as osp
import random
import warnings
from difflib import SequenceMatcher
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from dassl.cli import UserError

__all__ = [
    "mkdir_if_missing", "check_isfile", "read_json", "write_json", "read_image", "listdir_nohidden",
    "download_url", "get_most_similar_str_to_a_from_b", "check_availability", "tolist_if_not",
    "set_random_seed", "collect_env_info", "UnavailableError",
]


class UnavailableError(UserError, ValueError):
    """A requested name (trainer, dataset, evaluator, ...) is not registered."""


def mkdir_if_missing(dirname: str) -> None:
    """Create `dirname` (and parents) unless it exists; "" means the current directory."""
    if not dirname:
        return
    try:
        os.makedirs(dirname)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise


def check_isfile(fpath: str) -> bool:
    """True if `fpath` is a file; warns otherwise."""
    isfile = osp.isfile(fpath)
    if not isfile:
        warnings.warn(f'No file found at "{fpath}"')
    return isfile


def read_json(fpath: str) -> Any:
    with open(fpath, "r") as f:
        return json.load(f)


def write_json(obj: Any, fpath: str) -> None:
    mkdir_if_missing(osp.dirname(fpath))
    with open(fpath, "w") as f:
        json.dump(obj, f, indent=4, separators=(",", ": "))


def read_image(path: str):
    """Open an image file as an RGB PIL image."""
    from PIL import Image  # lazy: keeps `import dassl.utils` light

    if not osp.exists(path):
        raise FileNotFoundError(f'No file found at "{path}"')
    with Image.open(path) as img:
        return img.convert("RGB")


def listdir_nohidden(path: str, sort: bool = False) -> list[str]:
    """Entries of `path` not starting with "."."""
    items = [f for f in os.listdir(path) if not f.startswith(".")]
    if sort:
        items.sort()
    return items


def download_url(url: str, dst: str) -> None:
    """Download `url` to the file `dst`, with a progress bar."""
    import urllib.request

    from tqdm import tqdm

    print(f'* url="{url}"')
    print(f'* destination="{dst}"')
    mkdir_if_missing(osp.dirname(dst))
    with tqdm(unit="B", unit_scale=True, miniters=1) as bar:

        def hook(blocks: int, block_size: int, total: int) -> None:
            if total > 0:
                bar.total = total
            bar.update(blocks * block_size - bar.n)

        urllib.request.urlretrieve(url, dst, reporthook=hook)


def get_most_similar_str_to_a_from_b(a: str, b: Iterable[str]) -> str | None:
    """The string of `b` most similar to `a` (difflib ratio; ties go to the later one)."""
    best, best_sim = None, 0.0
    for candidate in b:
        sim = SequenceMatcher(None, a, candidate).ratio()
        if sim >= best_sim:
            best, best_sim = candidate, sim
    return best


def check_availability(requested: str, available: Sequence[str]) -> None:
    """Raise UnavailableError (a ValueError) naming the closest name when `requested` is unknown."""
    if requested not in available:
        closest = get_most_similar_str_to_a_from_b(requested, available)
        raise UnavailableError(
            f"The requested one is expected to belong to {available}, "
            f"but got [{requested}] (do you mean [{closest}]?)"
        )


def tolist_if_not(x: Any) -> list:
    return x if isinstance(x, list) else [x]


def set_random_seed(seed: int) -> None:
    """Seed python `random`, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def collect_env_info() -> str:
    """torch's environment report plus the Pillow version."""
    import PIL
    from torch.utils.collect_env import get_pretty_env_info

    return get_pretty_env_info() + f"\n        Pillow ({PIL.__version__})"
