"""datasets/: every dataset through build_dataset and DataManager on miniatures in the real layouts,
split creation, few-shot sampling and its caches, base/new, the custom dataset, errors, and the
arranging half of scripts/download_data.py."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import open_clip.zero_shot_metadata
import pytest
import yaml
from PIL import Image

import datasets
from datasets import splits
from datasets.miniature import make_folder_dataset, make_miniature
from datasets.templates import (CUSTOM_TEMPLATES, IMAGENET_TEMPLATES, IMAGENET_TEMPLATES_SELECT,
                                template_for)
from dassl.data import DataManager
from dassl.data.datasets import DATASET_REGISTRY, Datum, build_dataset
from fixtures.data_fixtures import MINIATURE_NAMES, make_cfg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (class names in label order, #train, #val, #test) of the default miniature
EXPECTED = {
    "OxfordPets": (["abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound",
                    "beagle"], 25, 5, 10),
    "OxfordFlowers": (["pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea",
                       "english marigold"], 20, 10, 10),
    "FGVCAircraft": (["707-320", "727-200", "737-200", "A300B4", "Cessna 172", "F/A-18"], 18, 18, 12),
    "DescribableTextures": (["banded", "blotchy", "braided", "bubbly", "bumpy"], 20, 10, 10),
    "EuroSAT": (["Annual Crop Land", "Forest", "Herbaceous Vegetation Land", "Highway or Road",
                 "Industrial Buildings", "Pasture Land", "Permanent Crop Land", "Residential Buildings",
                 "River", "Sea or Lake"], 40, 20, 20),
    "StanfordCars": (["2000 AM General Hummer SUV", "2012 Acura RL Sedan", "2012 Acura TL Sedan",
                      "2008 Acura TL Type-S", "2012 Acura TSX Sedan"], 25, 5, 10),
    "Food101": (["apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare"], 20, 10, 10),
    "SUN397": (["abbey", "airplane_cabin", "airport_terminal", "outdoor apartment_building",
                "indoor apse"], 25, 5, 10),
    "Caltech101": (["face", "leopard", "motorbike", "accordion", "airplane", "anchor", "ant"], 28, 14, 14),
    "UCF101": (["Apply_Eye_Makeup", "Apply_Lipstick", "Archery", "Baby_Crawling", "Balance_Beam"],
               25, 5, 10),
    "ImageNet": (["tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark"], 40, 20, 20),
    "ImageNetV2": (["tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark"], 40, 0, 40),
    "ImageNetSketch": (["tench", "goldfish", "great white shark", "tiger shark", "hammerhead shark"],
                       40, 0, 40),
    "ImageNetA": (["stingray", "goldfinch", "junco", "American robin", "jay"], 40, 0, 40),
    "MYCIFAR100": (["apple", "aquarium fish", "bowl", "boy", "baby", "bear", "beaver", "bed", "bee", "beetle",
                    "bicycle", "bottle"], 72, 24, 24),
    "ImageNetR": (["goldfish", "great white shark", "hammerhead shark", "stingray", "hen"], 40, 0, 40),
    "FolderDataset": (["Zebra", "cat", "dog", "red_panda"], 12, 12, 8),
}
SPLIT_JSON = {
    "OxfordPets": "split_zhou_OxfordPets.json", "OxfordFlowers": "split_zhou_OxfordFlowers.json",
    "DescribableTextures": "split_zhou_DescribableTextures.json", "EuroSAT": "split_zhou_EuroSAT.json",
    "StanfordCars": "split_zhou_StanfordCars.json", "Food101": "split_zhou_Food101.json",
    "SUN397": "split_zhou_SUN397.json", "Caltech101": "split_zhou_Caltech101.json",
    "UCF101": "split_zhou_UCF101.json",
}
FEWSHOT_NAMES = [n for n in EXPECTED if n not in ("ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR")]


def impaths(items) -> list:
    return [item.impath for item in items]


def build(name: str, root: str, *opts, seed: int | None = None):
    """build_dataset after seeding python random as train.py does (when seed is given)."""
    if seed is not None:
        random.seed(seed)
        opts = (*opts, "SEED", seed)
    return build_dataset(make_cfg(name, root, *opts))


def reference_fewshot(items: list, k: int) -> list:
    """The few-shot draw as the spec states it, written independently of the code under test."""
    groups: dict = {}
    for item in items:
        groups.setdefault(item.label, []).append(item)
    out = []
    for group in groups.values():
        out.extend(random.sample(group, k) if len(group) >= k else group)
    return out


def one_line_error(excinfo, *fragments: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


# ---------------------------------------------------------------- registry, configs, templates

def test_every_dataset_registered_and_configured():
    names = set(DATASET_REGISTRY.registered_names())
    assert set(EXPECTED) <= names
    files = {"oxford_pets": "OxfordPets", "oxford_flowers": "OxfordFlowers", "fgvc_aircraft": "FGVCAircraft",
             "dtd": "DescribableTextures", "eurosat": "EuroSAT", "stanford_cars": "StanfordCars",
             "food101": "Food101", "sun397": "SUN397", "caltech101": "Caltech101", "ucf101": "UCF101",
             "imagenet": "ImageNet", "imagenetv2": "ImageNetV2", "imagenet_sketch": "ImageNetSketch",
             "imagenet_a": "ImageNetA", "imagenet_r": "ImageNetR"}
    for stem, name in files.items():
        with open(os.path.join(REPO, "configs", "datasets", f"{stem}.yaml")) as f:
            assert yaml.safe_load(f) == {"DATASET": {"NAME": name}}
    example = make_cfg("FolderDataset", "/tmp",
                       config_files=[os.path.join(REPO, "configs", "datasets", "folder_example.yaml")])
    assert example.DATASET.FOLDER.DIR == "folder_dataset"  # make_cfg's value wins over the file


def test_templates():
    assert set(CUSTOM_TEMPLATES) == set(EXPECTED)
    assert CUSTOM_TEMPLATES["DescribableTextures"] == "{} texture."
    assert CUSTOM_TEMPLATES["EuroSAT"] == "a centered satellite photo of {}."
    assert CUSTOM_TEMPLATES["UCF101"] == "a photo of a person doing {}."
    assert len(IMAGENET_TEMPLATES) == 80 == len(set(IMAGENET_TEMPLATES))
    assert IMAGENET_TEMPLATES[0] == "a bad photo of a {}." and IMAGENET_TEMPLATES[-1] == "a tattoo of the {}."
    assert len(IMAGENET_TEMPLATES_SELECT) == 7 and set(IMAGENET_TEMPLATES_SELECT) <= set(IMAGENET_TEMPLATES)
    assert template_for(make_cfg("FolderDataset", "/tmp")) == "a photo of a {}."
    assert template_for(make_cfg("FolderDataset", "/tmp", "DATASET.FOLDER.TEMPLATE", "{} art.")) == "{} art."
    assert template_for(make_cfg("Food101", "/tmp")) == "a photo of {}, a type of food."


def test_imagenet_templates_match_clip_notebook():
    assert IMAGENET_TEMPLATES == [t("{}") for t in open_clip.zero_shot_metadata.OPENAI_IMAGENET_TEMPLATES]


# ---------------------------------------------------------------- every dataset, full data

@pytest.mark.parametrize("name", MINIATURE_NAMES)
def test_loads_with_reference_names_and_labels(miniature_root, name):
    classnames, n_train, n_val, n_test = EXPECTED[name]
    ds = build(name, miniature_root)
    assert ds.classnames == classnames
    assert ds.num_classes == len(classnames)
    assert (len(ds.train_x), len(ds.val or []), len(ds.test)) == (n_train, n_val, n_test)
    for split in (ds.train_x, ds.val or [], ds.test):
        for item in split:
            assert ds.lab2cname[item.label] == item.classname
            assert os.path.isfile(item.impath) and os.path.isabs(item.impath)
    assert {item.label for item in ds.test} == set(range(len(classnames)))


def test_dataset_specific_rules(miniature_root):
    caltech = build("Caltech101", miniature_root)
    # Case-sensitive folder sort: the capitalised folders come first; two folders are ignored.
    assert caltech.lab2cname[0] == "face" and caltech.lab2cname[3] == "accordion"
    assert not any("BACKGROUND_Google" in p or "Faces_easy" in p for p in impaths(caltech.train_x + caltech.test))

    cars = build("StanfordCars", miniature_root)
    assert all(os.path.basename(os.path.dirname(p)) in ("cars_train", "cars_test") for p in impaths(cars.test))

    imagenet = build("ImageNet", miniature_root)
    assert imagenet.val is imagenet.test  # the official val set is both
    assert all("/images/val/" in p for p in impaths(imagenet.test))

    v2 = build("ImageNetV2", miniature_root)
    assert all(os.path.basename(os.path.dirname(item.impath)) == str(item.label) for item in v2.test)
    for name in ("ImageNetA", "ImageNetR"):
        ds = build(name, miniature_root)  # README.txt beside the wnid folders is skipped
        wnids = sorted({os.path.basename(os.path.dirname(p)) for p in impaths(ds.test)})
        assert [wnids.index(os.path.basename(os.path.dirname(item.impath))) for item in ds.test] == \
            [item.label for item in ds.test]
        assert ds.val is None and ds.train_x is ds.test


@pytest.mark.parametrize("name", MINIATURE_NAMES)
def test_data_manager(miniature_root, name):
    cfg = make_cfg(name, miniature_root, "DATALOADER.TRAIN_X.BATCH_SIZE", 4, "DATALOADER.TEST.BATCH_SIZE", 8,
                   "INPUT.SIZE", (64, 64), "INPUT.INTERPOLATION", "bicubic",
                   "INPUT.TRANSFORMS", ["random_resized_crop", "random_flip", "normalize"])
    dm = DataManager(cfg)
    assert dm.num_classes == len(EXPECTED[name][0])
    assert dm.dataset.classnames == EXPECTED[name][0]
    assert (dm.val_loader is None) == (EXPECTED[name][2] == 0)
    batch = next(iter(dm.train_loader_x))
    assert batch["img"].shape == (4, 3, 64, 64)
    batch = next(iter(dm.test_loader))
    assert batch["img"].shape[1:] == (3, 64, 64)
    assert batch["label"].tolist() == [dm.dataset.test[i].label for i in batch["index"].tolist()]


@pytest.mark.parametrize("name", MINIATURE_NAMES)
def test_smallest_miniatures_load(tmp_path, name):
    """The sizes trainer tests use: 3 classes, 4 images each, split JSON created by the loader."""
    make_miniature(name, str(tmp_path), n_classes=3, n_per_class=4, with_split=False)
    ds = build(name, str(tmp_path), "DATASET.NUM_SHOTS", 2, seed=1)
    assert ds.num_classes == (4 if name == "FolderDataset" else 3)
    assert ds.test and {x.label for x in ds.test} == set(range(ds.num_classes))


def test_miniature_classes_are_learnable(miniature_root):
    """A nearest-mean-colour classifier separates the classes (the demo trains on them)."""
    for name in ("EuroSAT", "Caltech101"):
        ds = build(name, miniature_root)

        def colour(path):
            return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64).mean(axis=(0, 1))

        means = {}
        for item in ds.train_x:
            means.setdefault(item.label, []).append(colour(item.impath))
        centroids = np.stack([np.mean(means[c], axis=0) for c in range(ds.num_classes)])
        preds = [int(np.argmin(((centroids - colour(item.impath)) ** 2).sum(1))) for item in ds.test]
        assert preds == [item.label for item in ds.test]


# ---------------------------------------------------------------- split files

@pytest.mark.parametrize("name", sorted(SPLIT_JSON))
def test_split_json_created_when_missing(tmp_path, name):
    dataset_dir = make_miniature(name, str(tmp_path), with_split=False)
    split_path = os.path.join(dataset_dir, SPLIT_JSON[name])
    first = build(name, str(tmp_path), seed=7)
    assert os.path.isfile(split_path)
    assert [f for f in os.listdir(dataset_dir) if f.endswith(".tmp")] == []
    with open(split_path) as f:
        text = f.read()
    assert text.startswith('{\n    "train": [\n        [\n')  # json indent 4, as CoOp's files
    saved = json.loads(text)
    assert all(not os.path.isabs(row[0]) for rows in saved.values() for row in rows)
    # Read back: the same lists, and reading a split consumes no randomness.
    state = random.getstate()
    again = build(name, str(tmp_path))
    assert random.getstate() == state
    for a, b in ((first.train_x, again.train_x), (first.val, again.val), (first.test, again.test)):
        assert [(x.impath, x.label, x.classname) for x in a] == [(x.impath, x.label, x.classname) for x in b]
    # The JSON-listed and the generated class names agree (the miniature wrote real names).
    assert first.classnames == EXPECTED[name][0]


def test_folder_split_consumes_random_as_reference(tmp_path):
    """DTD-style: sorted class folders, os.listdir order, one shuffle per class, 50/20/rest."""
    dataset_dir = make_miniature("DescribableTextures", str(tmp_path), with_split=False, n_per_class=9)
    ds = build("DescribableTextures", str(tmp_path), seed=3)
    rng = random.Random(3)
    image_dir = os.path.join(dataset_dir, "images")
    train, val, test = [], [], []
    for category in sorted(os.listdir(image_dir)):
        ims = [os.path.join(image_dir, category, f) for f in os.listdir(os.path.join(image_dir, category))]
        rng.shuffle(ims)
        n_train, n_val = round(len(ims) * 0.5), round(len(ims) * 0.2)
        train += ims[:n_train]
        val += ims[n_train:n_train + n_val]
        test += ims[n_train + n_val:]
    assert (impaths(ds.train_x), impaths(ds.val), impaths(ds.test)) == (train, val, test)


def test_trainval_split_consumes_random_as_reference(tmp_path):
    """Pets-style: per class in first-appearance order, shuffle indices, first round(0.2 n) -> val."""
    dataset_dir = make_miniature("OxfordPets", str(tmp_path), with_split=False)
    ds = build("OxfordPets", str(tmp_path), seed=5)
    with open(os.path.join(dataset_dir, "annotations", "trainval.txt")) as f:
        rows = [line.split() for line in f if line.strip()]
    groups: dict = {}
    for idx, row in enumerate(rows):
        groups.setdefault(row[1], []).append(idx)
    rng = random.Random(5)
    train, val = [], []
    for idxs in groups.values():
        n_val = round(len(idxs) * 0.2)
        rng.shuffle(idxs)
        val += [rows[i][0] for i in idxs[:n_val]]
        train += [rows[i][0] for i in idxs[n_val:]]
    stems = lambda items: [os.path.splitext(os.path.basename(p))[0] for p in impaths(items)]  # noqa: E731
    assert (stems(ds.train_x), stems(ds.val)) == (train, val)


def test_flowers_split_follows_first_appearance_order(tmp_path):
    make_miniature("OxfordFlowers", str(tmp_path), with_split=False)
    ds = build("OxfordFlowers", str(tmp_path), seed=2)
    first_seen = list(dict.fromkeys(item.label for item in ds.train_x))
    assert first_seen != sorted(first_seen)  # the .mat interleaves the classes
    assert ds.classnames == EXPECTED["OxfordFlowers"][0]


# ---------------------------------------------------------------- few-shot

@pytest.mark.parametrize("name", FEWSHOT_NAMES)
def test_fewshot_draws_what_the_reference_draws(tmp_path, name):
    dataset_dir = make_miniature(name, str(tmp_path))
    full = build(name, str(tmp_path))
    random.seed(11)
    expected_train = reference_fewshot(full.train_x, 2)
    expected_val = full.test if name in ("ImageNet", "MYCIFAR100") else reference_fewshot(full.val, 2)
    ds = build(name, str(tmp_path), "DATASET.NUM_SHOTS", 2, seed=11)
    assert impaths(ds.train_x) == impaths(expected_train)
    assert impaths(ds.val) == impaths(expected_val)
    assert len(ds.train_x) == 2 * ds.num_classes
    assert impaths(ds.test) == impaths(full.test)  # test is never sampled
    cache = os.path.join(dataset_dir, "split_fewshot", "shot_2-seed_11.json")
    with open(cache) as f:
        saved = json.load(f)
    assert set(saved) == ({"train"} if name in ("ImageNet", "MYCIFAR100") else {"train", "val"})
    assert all(not os.path.isabs(row[0]) and dataset_dir not in row[0] for rows in saved.values() for row in rows)


def test_fewshot_val_uses_min_k_4_and_small_classes_keep_all(miniature_root):
    ds = build("OxfordPets", miniature_root, "DATASET.NUM_SHOTS", 1, seed=1)
    assert (len(ds.train_x), len(ds.val)) == (5, 5)
    ds = build("DescribableTextures", miniature_root, "DATASET.NUM_SHOTS", 16, seed=1)
    # 4 train and 2 val images per class: all kept, none repeated.
    assert (len(ds.train_x), len(ds.val)) == (20, 10)
    assert len(set(impaths(ds.train_x))) == 20


def test_fewshot_val_is_capped_at_4(tmp_path):
    make_miniature("Food101", str(tmp_path), n_classes=2, n_per_class=25)  # 12/5/8 per class
    ds = build("Food101", str(tmp_path), "DATASET.NUM_SHOTS", 8, seed=1)
    assert (len(ds.train_x), len(ds.val), len(ds.test)) == (16, 8, 16)


def test_fewshot_cache_is_reused_and_portable(tmp_path):
    make_miniature("EuroSAT", str(tmp_path / "a"))
    first = build("EuroSAT", str(tmp_path / "a"), "DATASET.NUM_SHOTS", 4, seed=1)
    # Another machine: the dataset folder (with its cache) moved, and python random is elsewhere.
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    again = build("EuroSAT", str(tmp_path / "b"), "DATASET.NUM_SHOTS", 4, seed=1)
    random.seed(999)
    moved = [p.replace(str(tmp_path / "a"), str(tmp_path / "b")) for p in impaths(first.train_x)]
    assert impaths(again.train_x) == moved


FEWSHOT_SCRIPT = """
import json, random, sys
sys.path[:0] = [{repo!r}, {tests!r}]
from fixtures.data_fixtures import make_cfg
import datasets
from dassl.data.datasets import build_dataset
from dassl.utils import set_random_seed
set_random_seed(1)
ds = build_dataset(make_cfg("Caltech101", {root!r}, "DATASET.NUM_SHOTS", 2, "SEED", 1))
print(json.dumps([[p[len({root!r}):] for p in (x.impath for x in s)] for s in (ds.train_x, ds.val)]))
"""


def test_fewshot_identical_across_processes(tmp_path):
    """A fresh interpreter (other hash seed, fresh imports) draws what this process draws."""
    make_miniature("Caltech101", str(tmp_path / "src"))
    root = str(tmp_path / "child")
    shutil.copytree(tmp_path / "src", root)
    script = FEWSHOT_SCRIPT.format(repo=REPO, tests=os.path.join(REPO, "tests"), root=root)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=str(tmp_path), check=True).stdout
    child_train, child_val = json.loads(out.strip().splitlines()[-1])
    assert len(child_train) == 2 * 7 and len(child_val) == 2 * 7

    here = build("Caltech101", str(tmp_path / "src"), "DATASET.NUM_SHOTS", 2, seed=1)
    relative = lambda items: [p[len(str(tmp_path / "src")):] for p in impaths(items)]  # noqa: E731
    assert (relative(here.train_x), relative(here.val)) == (child_train, child_val)


def test_reads_reference_pickle_cache(tmp_path):
    dataset_dir = make_miniature("OxfordPets", str(tmp_path))
    full = build("OxfordPets", str(tmp_path))

    def from_other_machine(item):  # a Datum as upstream pickled it on another machine
        old = Datum(impath=item.impath, label=item.label, classname=item.classname)
        old._impath = item.impath.replace(str(tmp_path), "/home/someone/data")
        return old

    chosen = {"train": [from_other_machine(x) for x in full.train_x[::5]],
              "val": [from_other_machine(x) for x in full.val[:2]]}
    fewshot_dir = os.path.join(dataset_dir, "split_fewshot")
    with open(os.path.join(fewshot_dir, "shot_1-seed_3.pkl"), "wb") as f:
        pickle.dump(chosen, f, protocol=pickle.HIGHEST_PROTOCOL)
    ds = build("OxfordPets", str(tmp_path), "DATASET.NUM_SHOTS", 1, seed=3)
    assert impaths(ds.train_x) == impaths(full.train_x[::5])
    assert impaths(ds.val) == impaths(full.val[:2])
    assert os.listdir(fewshot_dir) == ["shot_1-seed_3.pkl"]  # read, never written

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(os.path.join(fewshot_dir, "shot_2-seed_3.pkl"), "wb") as f:
        pickle.dump({"train": [Evil()]}, f)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        build("OxfordPets", str(tmp_path), "DATASET.NUM_SHOTS", 2, seed=3)


def test_imagenet_preprocessed_caches(tmp_path):
    dataset_dir = make_miniature("ImageNet", str(tmp_path))
    first = build("ImageNet", str(tmp_path))
    json_path = os.path.join(dataset_dir, "preprocessed.json")
    with open(json_path) as f:
        saved = json.load(f)
    assert set(saved) == {"train", "test"} and not os.path.isabs(saved["train"][0][0])
    # Later runs use the cache instead of listing the folders.
    os.rename(os.path.join(dataset_dir, "classnames.txt"), os.path.join(dataset_dir, "classnames.bak"))
    again = build("ImageNet", str(tmp_path))
    assert impaths(again.train_x) == impaths(first.train_x) and again.classnames == first.classnames
    # An upstream preprocessed.pkl wins and is read through the restricted unpickler.
    with open(os.path.join(dataset_dir, "preprocessed.pkl"), "wb") as f:
        pickle.dump({"train": first.train_x[:3], "test": first.test[:2]}, f)
    ds = build("ImageNet", str(tmp_path))
    assert (len(ds.train_x), len(ds.test)) == (3, 2) and ds.val is ds.test


# ---------------------------------------------------------------- base / new

def test_subsample_sizes_and_relabel(tmp_path):
    path = str(tmp_path / "x.jpg")
    Image.new("RGB", (4, 4)).save(path)
    for n, (n_base, n_new) in {10: (5, 5), 37: (19, 18), 47: (24, 23), 101: (51, 50), 102: (51, 51),
                               196: (98, 98), 397: (199, 198), 1000: (500, 500)}.items():
        items = [Datum(impath=path, label=y, classname=f"c{y}") for y in reversed(range(n))]
        base, = splits.subsample_classes(items, subsample="base")
        new, = splits.subsample_classes(items, subsample="new")
        assert (len(base), len(new)) == (n_base, n_new)
        assert sorted(x.label for x in new) == list(range(n_new))
        assert all(x.classname == f"c{x.label + n_base}" for x in new)
    assert splits.subsample_classes(items, None, subsample="all") == [items, None]
    with pytest.raises(ValueError, match="SUBSAMPLE_CLASSES"):
        splits.subsample_classes(items, subsample="novel")


@pytest.mark.parametrize("name", ["OxfordPets", "EuroSAT", "Caltech101", "ImageNet", "FolderDataset"])
def test_base_new(miniature_root, name, capsys):
    names = EXPECTED[name][0]
    m = (len(names) + 1) // 2
    for subsample, expected_names in (("base", names[:m]), ("new", names[m:])):
        ds = build(name, miniature_root, "DATASET.NUM_SHOTS", 2, "DATASET.SUBSAMPLE_CLASSES", subsample, seed=1)
        assert f"SUBSAMPLE {subsample.upper()} CLASSES!" in capsys.readouterr().out
        assert ds.classnames == expected_names
        assert len(ds.train_x) == 2 * len(expected_names)
        for split in (ds.train_x, ds.val, ds.test):
            assert {x.label for x in split} == set(range(len(expected_names)))
            assert all(ds.lab2cname[x.label] == x.classname for x in split)
        if name == "ImageNet":
            assert ds.val is ds.test


# ---------------------------------------------------------------- custom dataset

def test_folder_dataset_csv_and_missing_val(tmp_path):
    make_folder_dataset(str(tmp_path), folder="as_csv", fmt="csv")
    make_folder_dataset(str(tmp_path), folder="as_folders", fmt="folders")
    csv_ds = build("FolderDataset", str(tmp_path), "DATASET.FOLDER.DIR", "as_csv")
    dir_ds = build("FolderDataset", str(tmp_path), "DATASET.FOLDER.DIR", "as_folders")
    assert csv_ds.classnames == dir_ds.classnames == ["Zebra", "cat", "dog", "red_panda"]
    assert [(x.label, x.classname) for x in csv_ds.test] == [(x.label, x.classname) for x in dir_ds.test]

    make_folder_dataset(str(tmp_path), folder="no_val", with_val=False)
    cfg = make_cfg("FolderDataset", str(tmp_path), "DATASET.FOLDER.DIR", "no_val", "DATASET.NUM_SHOTS", 1,
                   "SEED", 1)
    dm = DataManager(cfg)
    assert dm.dataset.val is None and dm.val_loader is None and len(dm.dataset.train_x) == 4

    with open(tmp_path / "as_csv" / "test.csv", "a") as f:
        f.write("images/cat/0.jpg,1,kitten\n")
    with pytest.raises(ValueError, match="kitten"):
        build("FolderDataset", str(tmp_path), "DATASET.FOLDER.DIR", "as_csv")


def test_folder_dataset_config_keys():
    from dassl.config import get_cfg_default

    cfg = get_cfg_default()
    datasets.extend_cfg(cfg)
    datasets.extend_cfg(cfg)  # idempotent
    assert dict(cfg.DATASET.FOLDER) == {"DIR": "", "FORMAT": "auto", "TEMPLATE": ""}


# ---------------------------------------------------------------- errors

def test_missing_root_and_dataset_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as excinfo:
        build("OxfordPets", str(tmp_path / "nowhere"))
    one_line_error(excinfo, str(tmp_path / "nowhere"), "DATASETS.md", '"Data root"')
    for name, folder in (("OxfordPets", "oxford_pets"), ("ImageNet", "imagenet"),
                         ("ImageNetA", "imagenet-adversarial"), ("FGVCAircraft", "fgvc_aircraft")):
        with pytest.raises(FileNotFoundError) as excinfo:
            build(name, str(tmp_path))
        one_line_error(excinfo, str(tmp_path / folder), f'section "{name}"')
    with pytest.raises(FileNotFoundError) as excinfo:
        build("FolderDataset", str(tmp_path))
    one_line_error(excinfo, "folder_dataset", "Custom datasets (FolderDataset)")


def test_missing_split_sources_and_images(tmp_path):
    pets = make_miniature("OxfordPets", str(tmp_path), with_split=False)
    os.remove(os.path.join(pets, "annotations", "trainval.txt"))
    with pytest.raises(FileNotFoundError) as excinfo:
        build("OxfordPets", str(tmp_path))
    one_line_error(excinfo, os.path.join(pets, "annotations", "trainval.txt"),
                   "split_zhou_OxfordPets.json", 'section "OxfordPets"')

    fgvc = make_miniature("FGVCAircraft", str(tmp_path))
    os.remove(os.path.join(fgvc, "images_variant_val.txt"))
    with pytest.raises(FileNotFoundError) as excinfo:
        build("FGVCAircraft", str(tmp_path))
    one_line_error(excinfo, "images_variant_val.txt", 'section "FGVCAircraft"')

    dtd = make_miniature("DescribableTextures", str(tmp_path))
    lost = os.path.join(dtd, "images", "bumpy", "bumpy_3.jpg")
    os.remove(lost)
    with pytest.raises(FileNotFoundError) as excinfo:
        build("DescribableTextures", str(tmp_path))
    one_line_error(excinfo, lost, 'section "DescribableTextures"')

    imagenet = make_miniature("ImageNet", str(tmp_path))
    os.remove(os.path.join(imagenet, "classnames.txt"))
    with pytest.raises(FileNotFoundError) as excinfo:
        build("ImageNet", str(tmp_path))
    one_line_error(excinfo, "classnames.txt", 'section "ImageNet"')


def test_imagenet_val_must_be_in_wnid_folders(tmp_path):
    imagenet = make_miniature("ImageNet", str(tmp_path))
    val = os.path.join(imagenet, "images", "val")
    for wnid in os.listdir(val):
        for f in os.listdir(os.path.join(val, wnid)):
            os.replace(os.path.join(val, wnid, f), os.path.join(val, f))
        os.rmdir(os.path.join(val, wnid))
    with pytest.raises(FileNotFoundError) as excinfo:
        build("ImageNet", str(tmp_path))
    one_line_error(excinfo, "folder per wnid", 'section "ImageNet"')


def test_corrupt_image_names_path_and_dataset(tmp_path):
    dtd = make_miniature("DescribableTextures", str(tmp_path))
    with open(os.path.join(dtd, "split_zhou_DescribableTextures.json")) as f:
        broken = os.path.join(dtd, "images", json.load(f)["test"][0][0])
    with open(broken, "wb") as f:
        f.write(b"not a jpeg")
    dm = DataManager(make_cfg("DescribableTextures", str(tmp_path), "DATALOADER.TEST.BATCH_SIZE", 4))
    with pytest.raises(Exception) as excinfo:
        next(iter(dm.test_loader))
    assert broken in str(excinfo.value) and "DescribableTextures" in str(excinfo.value)


# ---------------------------------------------------------------- scripts/download_data.py

@pytest.fixture(scope="module")
def dl():
    spec = importlib.util.spec_from_file_location("download_data", os.path.join(REPO, "scripts", "download_data.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["download_data"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def _tar(path, src_dir, arcname):
    with tarfile.open(path, "w:gz" if path.endswith("gz") else "w") as tf:
        tf.add(src_dir, arcname=arcname)


def _zip(path, src_dir, arcname):
    with zipfile.ZipFile(path, "w") as zf:
        for dirpath, _, files in os.walk(src_dir):
            for f in files:
                full = os.path.join(dirpath, f)
                zf.write(full, os.path.join(arcname, os.path.relpath(full, src_dir)))


def test_download_script_arranges_local_archives(tmp_path, dl):
    """Archives laid out as the real downloads, built from miniatures, arrange into loadable folders."""
    src, root, archives = str(tmp_path / "src"), str(tmp_path / "data"), str(tmp_path / "archives")
    os.makedirs(archives)
    pets = make_miniature("OxfordPets", src)
    _tar(os.path.join(archives, "images.tar.gz"), os.path.join(pets, "images"), "images")
    _tar(os.path.join(archives, "annotations.tar.gz"), os.path.join(pets, "annotations"), "annotations")
    shutil.copy(os.path.join(pets, "split_zhou_OxfordPets.json"), archives)
    fgvc = make_miniature("FGVCAircraft", src)
    _tar(os.path.join(archives, "fgvc-aircraft-2013b.tar.gz"), fgvc, "fgvc-aircraft-2013b/data")
    eurosat = make_miniature("EuroSAT", src)  # the Zenodo zip: EuroSAT_RGB/ instead of 2750/
    _zip(os.path.join(archives, "EuroSAT.zip"), os.path.join(eurosat, "2750"), "EuroSAT_RGB")
    shutil.copy(os.path.join(eurosat, "split_zhou_EuroSAT.json"), archives)
    caltech = make_miniature("Caltech101", src)  # a zip holding a .tar.gz
    inner = str(tmp_path / "101_ObjectCategories.tar.gz")
    _tar(inner, os.path.join(caltech, "101_ObjectCategories"), "101_ObjectCategories")
    with zipfile.ZipFile(os.path.join(archives, "caltech-101.zip"), "w") as zf:
        zf.write(inner, "caltech-101/101_ObjectCategories.tar.gz")
    shutil.copy(os.path.join(caltech, "split_zhou_Caltech101.json"), archives)
    adversarial = make_miniature("ImageNetA", src)
    _tar(os.path.join(archives, "imagenet-a.tar"), os.path.join(adversarial, "imagenet-a"), "imagenet-a")
    shutil.copy(os.path.join(adversarial, "classnames.txt"), archives)

    for name in ("OxfordPets", "FGVCAircraft", "EuroSAT", "Caltech101", "ImageNetA"):
        assert dl.install(dl.RECIPES[name], root, archives, offline=True) == []
        assert build(name, root).classnames == EXPECTED[name][0]
        assert dl.install(dl.RECIPES[name], root, archives, offline=True) == []  # re-run: nothing to do
    cars = dl.install(dl.RECIPES["StanfordCars"], root, archives, offline=True)
    assert any("Kaggle" in problem for problem in cars)
    assert dl.main(["--root", root, "--archives", archives, "--offline", "dtd"]) == 1


def test_download_resumes_and_checks_md5(tmp_path, dl):
    payload = os.urandom(300_000)
    ranges = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            start = 0
            if self.headers.get("Range"):
                ranges.append(self.headers["Range"])
                start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(payload) - start))
            self.end_headers()
            self.wfile.write(payload[start:])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/file.tar"
        dst = str(tmp_path / "file.tar")
        with open(dst + ".part", "wb") as f:
            f.write(payload[:100_000])  # an interrupted earlier run
        dl.http_download(url, dst, md5=hashlib.md5(payload).hexdigest())
        assert ranges == ["bytes=100000-"]
        with open(dst, "rb") as f:
            assert f.read() == payload
        assert not os.path.exists(dst + ".part")
        with pytest.raises(ValueError, match="MD5 mismatch"):
            dl.http_download(url, str(tmp_path / "other.tar"), md5="0" * 32)
        assert os.path.exists(str(tmp_path / "other.tar.part.bad"))
    finally:
        server.shutdown()


def test_arrange_imagenet_val(tmp_path, dl):
    val = tmp_path / "val"
    val.mkdir()
    for i in (1, 2):
        Image.new("RGB", (4, 4)).save(val / f"ILSVRC2012_val_0000000{i}.JPEG")
    solution = tmp_path / "LOC_val_solution.csv"
    solution.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 1 2 3 4\n"
                        "ILSVRC2012_val_00000002,n09193705 5 6 7 8 n09193705 1 1 2 2\n")
    assert dl.arrange_imagenet_val(str(val), str(solution)) == 2
    assert sorted(os.listdir(val)) == ["n01751748", "n09193705"]
