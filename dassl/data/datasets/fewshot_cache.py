"""Few-shot split caches shared by every dataset class.

Files live in `<dataset_dir>/split_fewshot/`:
- `shot_<K>-seed_<SEED>.json`: this project's cache, image paths RELATIVE to dataset_dir, so a
  dataset folder (with its cache) can move between machines. Written atomically.
- `shot_<K>-seed_<SEED>.pkl`: a reference cache written by upstream Dassl/CoOp (users publish their
  splits this way). Read only, through a restricted unpickler; this project never writes pickles.

API
- load_fewshot_cache(dataset_dir, num_shots, seed) -> dict[str, list[Datum]] | None
    The .pkl if present (preferred: it is someone's published split), else the .json, else None.
    Returns the saved dict, e.g. {"train": [...], "val": [...]} ({"train": [...]} for ImageNet).
    Absolute paths from another machine are rebased onto dataset_dir (see rebase_impaths).
    Prints "Loading preprocessed few-shot data from <path>".
- save_fewshot_cache(dataset_dir, num_shots, seed, splits) -> str
    Writes the .json (creating split_fewshot/) and returns its path. splits maps a split name to a
    list of Datum (or DatumMT). Prints "Saving preprocessed few-shot data to <path>".
- restricted_pickle_load(path) -> object
    pickle.load accepting only Datum/DatumMT (dassl.data.datasets.base_dataset) and builtin
    containers/scalars; anything else raises pickle.UnpicklingError naming the file and global.
    Usable for ImageNet's preprocessed.pkl.
- write_datum_json(path, splits, root) / read_datum_json(path, root, check_files=True)
    The JSON format on its own, for other caches of Datum lists (e.g. a JSON preprocessed file).
    check_files=False skips the per-image existence check (for very large lists).
- rebase_impaths(splits, dataset_dir) -> dict
    Maps absolute paths recorded under another root onto dataset_dir.

JSON format: {"<split>": [entry, ...], ...}, one entry per line. A Datum entry is
[impath, label, classname, domain]; a DatumMT entry is {"impath", "label", "domain", "task", "box"}.
impath is relative to root with "/" separators, or absolute when the image lies outside root.
"""
from __future__ import annotations

import copy
import json
import os
import pickle
import re
import tempfile
from typing import Any, Optional

from .base_dataset import Datum, DatumMT

FEWSHOT_DIR = "split_fewshot"

_BASE_MODULE = "dassl.data.datasets.base_dataset"
# Both spellings: protocol 0/1 pickles name python-2 modules that pickle maps after find_class.
_ALLOWED_GLOBALS = {
    (_BASE_MODULE, "Datum"), (_BASE_MODULE, "DatumMT"),
    ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"),
} | {
    (module, name)
    for module in ("builtins", "__builtin__")
    for name in ("object", "dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray",
                 "int", "float", "bool", "complex", "unicode", "long")
}


def fewshot_cache_path(dataset_dir: str, num_shots: int, seed: int, ext: str = "json") -> str:
    """<dataset_dir>/split_fewshot/shot_<K>-seed_<SEED>.<ext>"""
    return os.path.join(dataset_dir, FEWSHOT_DIR, f"shot_{num_shots}-seed_{seed}.{ext}")


def load_fewshot_cache(dataset_dir: str, num_shots: int, seed: int) -> Optional[dict]:
    pkl_path = fewshot_cache_path(dataset_dir, num_shots, seed, "pkl")
    json_path = fewshot_cache_path(dataset_dir, num_shots, seed, "json")
    if os.path.isfile(pkl_path):
        print(f"Loading preprocessed few-shot data from {pkl_path}")
        splits = restricted_pickle_load(pkl_path)
        _check_splits(splits, pkl_path)
        return rebase_impaths(splits, dataset_dir)
    if os.path.isfile(json_path):
        print(f"Loading preprocessed few-shot data from {json_path}")
        return read_datum_json(json_path, dataset_dir)
    return None


def save_fewshot_cache(dataset_dir: str, num_shots: int, seed: int, splits: dict) -> str:
    path = fewshot_cache_path(dataset_dir, num_shots, seed, "json")
    print(f"Saving preprocessed few-shot data to {path}")
    write_datum_json(path, splits, dataset_dir)
    return path


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"{self._source}: refusing to load global '{module}.{name}' "
                "(only Datum/DatumMT and builtin containers are allowed)")
        return super().find_class(module, name)


def restricted_pickle_load(path: str) -> Any:
    with open(path, "rb") as f:
        return _RestrictedUnpickler(f, path).load()


def write_datum_json(path: str, splits: dict, root: str) -> None:
    lines = ["{"]
    names = list(splits)
    for i, name in enumerate(names):
        entries = [json.dumps(_encode(item, root)) for item in splits[name]]
        body = ",\n".join("    " + entry for entry in entries)
        lines.append(f"  {json.dumps(str(name))}: [" + (f"\n{body}\n  ]" if entries else "]")
                     + ("," if i < len(names) - 1 else ""))
    lines.append("}")
    _atomic_write_text(path, "\n".join(lines) + "\n")


def read_datum_json(path: str, root: str, check_files: bool = True) -> dict:
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"Corrupt few-shot cache {path}: {err} (delete it to regenerate)") from err
    if not isinstance(raw, dict):
        raise ValueError(f"Corrupt few-shot cache {path}: expected a JSON object of splits")
    return {name: [_decode(entry, root, check_files, path) for entry in entries]
            for name, entries in raw.items()}


def rebase_impaths(splits: dict, dataset_dir: str) -> dict:
    """Point paths recorded under another root at dataset_dir.

    Decided once, from the first item: if its file is missing and the path contains a component
    equal to basename(dataset_dir) after which the file exists under dataset_dir, every path
    sharing that recorded prefix is rewritten (no stat per item: ImageNet lists are huge).
    """
    first = next((items[0] for items in splits.values() if items), None)
    if first is None or os.path.exists(first.impath):
        return splits
    old_prefix = _find_old_prefix(first.impath, dataset_dir)
    if old_prefix is None:
        return splits
    print(f"Note: image paths were recorded under {'/'.join(old_prefix)}; using {dataset_dir}")
    n = len(old_prefix)
    out = {}
    for name, items in splits.items():
        rebased = []
        for item in items:
            parts = _split_path(item.impath)
            if parts[:n] == old_prefix:
                item = copy.copy(item)
                item._impath = os.path.join(dataset_dir, *parts[n:])
            rebased.append(item)
        out[name] = rebased
    return out


def _split_path(path: str) -> list[str]:
    # Pickles may come from Windows machines.
    return re.split(r"[\\/]", path)


def _find_old_prefix(impath: str, dataset_dir: str) -> Optional[list[str]]:
    parts = _split_path(impath)
    anchor = os.path.basename(os.path.normpath(dataset_dir))
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == anchor and os.path.exists(os.path.join(dataset_dir, *parts[i + 1:])):
            return parts[:i + 1]
    return None


def _check_splits(splits: Any, path: str) -> None:
    if not isinstance(splits, dict) or not all(
            isinstance(items, list) and all(isinstance(it, (Datum, DatumMT)) for it in items)
            for items in splits.values()):
        raise ValueError(f"{path} is not a few-shot cache (a dict of lists of Datum)")


def _relative(impath: str, root: str) -> str:
    rel = os.path.relpath(os.path.abspath(impath), os.path.abspath(root))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return os.path.abspath(impath)
    return rel.replace(os.sep, "/")


def _absolute(impath: str, root: str) -> str:
    return impath if os.path.isabs(impath) else os.path.join(root, *impath.split("/"))


def _encode(item: Any, root: str) -> Any:
    if isinstance(item, Datum):
        return [_relative(item.impath, root), item.label, item.classname, item.domain]
    if isinstance(item, DatumMT):
        return {"impath": _relative(item.impath, root), "label": list(item.label),
                "domain": item.domain, "task": list(item.task), "box": item.box}
    raise TypeError(f"Cannot cache {type(item).__name__} objects (only Datum and DatumMT)")


def _decode(entry: Any, root: str, check_files: bool, source: str) -> Any:
    if isinstance(entry, dict):
        return DatumMT(impath=_absolute(entry["impath"], root), label=entry["label"],
                       domain=entry["domain"], task=entry["task"], box=entry["box"])
    if not isinstance(entry, list) or len(entry) != 4:
        raise ValueError(f"Corrupt few-shot cache {source}: bad entry {entry!r}")
    impath, label, classname, domain = entry
    impath = _absolute(impath, root)
    if check_files:
        return Datum(impath=impath, label=int(label), domain=int(domain), classname=classname)
    # Same object the constructor builds, without stat'ing the file.
    item = Datum.__new__(Datum)
    item.__dict__.update(_impath=impath, _label=int(label), _domain=int(domain), _classname=classname)
    return item


def _atomic_write_text(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a cache is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
