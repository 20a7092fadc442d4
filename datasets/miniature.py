"""Miniature copies of the datasets in their real on-disk layouts, for tests and the CPU demo.

make_miniature(name, root) writes <root>/<dataset_dir> as the real download looks (same folders,
file names, annotation .txt/.mat/.json files, split JSON), with a few real classes (the true first
classes of each dataset, or a real subset in the true order where a naming rule needs a later
class) and a few small JPEGs per class. Each class has its own colour and stripe pattern, plus
per-image noise and jitter, so a model can learn them.
"""
from __future__ import annotations

import colorsys
import json
import math
import os
import random
import re
import string
import zlib
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image
from scipy.io import savemat

from .splits import write_json_atomic

# Real lines of ImageNet's classnames.txt (the first 18, sorted wnids): the first classes of
# ImageNet/-V2/-Sketch and some of the 200 classes of ImageNet-A and ImageNet-R.
IMAGENET_CLASSNAMES = [
    ("n01440764", "tench"), ("n01443537", "goldfish"), ("n01484850", "great white shark"),
    ("n01491361", "tiger shark"), ("n01494475", "hammerhead shark"), ("n01496331", "electric ray"),
    ("n01498041", "stingray"), ("n01514668", "rooster"), ("n01514859", "hen"),
    ("n01518878", "ostrich"), ("n01530575", "brambling"), ("n01531178", "goldfinch"),
    ("n01532829", "house finch"), ("n01534433", "junco"), ("n01537544", "indigo bunting"),
    ("n01558993", "American robin"), ("n01560419", "bulbul"), ("n01580077", "jay"),
]
IMAGENET_A_WNIDS = ["n01498041", "n01531178", "n01534433", "n01558993", "n01580077"]
IMAGENET_R_WNIDS = ["n01443537", "n01484850", "n01494475", "n01498041", "n01514859"]

# (image stem prefix, species: 1 cat / 2 dog), in class-id order 1, 2, ...
PETS = [("Abyssinian", 1), ("american_bulldog", 2), ("american_pit_bull_terrier", 2),
        ("basset_hound", 2), ("beagle", 2), ("Bengal", 1)]
FLOWERS = ["pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea",
           "english marigold", "tiger lily"]
# Real variants in variants.txt order: spaces and "/" exercise the parsing.
AIRCRAFT = ["707-320", "727-200", "737-200", "A300B4", "Cessna 172", "F/A-18"]
TEXTURES = ["banded", "blotchy", "braided", "bubbly", "bumpy"]
EUROSAT = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
           "PermanentCrop", "Residential", "River", "SeaLake"]
CARS = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012",
        "Acura TL Type-S 2008", "Acura TSX Sedan 2012"]
FOODS = ["apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare"]
# Real classes in ClassName.txt order; the last two exercise the reversed multi-level names.
SCENES = ["/a/abbey", "/a/airplane_cabin", "/a/airport_terminal", "/a/apartment_building/outdoor",
          "/a/apse/indoor"]
# Sorted as the loader sorts: capitalised folders first. The ignored folders are always written.
CALTECH = ["Faces", "Leopards", "Motorbikes", "accordion", "airplanes", "anchor", "ant"]
CALTECH_IGNORED = ["BACKGROUND_Google", "Faces_easy"]
ACTIONS = ["ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam"]
FOLDER_CLASSES = ["Zebra", "cat", "dog", "red_panda"]

# The first CIFAR-100 fine labels (alphabetical, as the dataset numbers them).
CIFAR100 = ["apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
            "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle"]

TRAINVAL_FRACTION = 0.75  # the rest of each class goes to the official test list


class Writer:
    """Writes one miniature: images with a class look, file names, split bookkeeping."""

    def __init__(self, dataset_dir: str, n_per_class: int, seed: int, image_size: int,
                 n_looks: int):
        self.dataset_dir = dataset_dir
        self.n_per_class = n_per_class
        self.seed = seed
        self.image_size = image_size
        self.n_looks = n_looks
        self.rng = random.Random(seed)

    def path(self, *parts: str) -> str:
        return os.path.join(self.dataset_dir, *parts)

    def image(self, relpath: str, look: int, index: int) -> str:
        """Write a JPEG with class look `look` at dataset_dir/relpath; returns the path."""
        path = self.path(relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        key = zlib.crc32(f"{self.seed}/{relpath}/{index}".encode())
        class_image(look, self.n_looks, np.random.default_rng(key), self.image_size).save(path, quality=92)
        return path

    def text(self, relpath: str, lines: Sequence[str], newline: str = "\n") -> None:
        path = self.path(relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write("".join(line + newline for line in lines))

    def token(self, alphabet: str, length: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(length))


def class_image(look: int, n_looks: int, rng: np.random.Generator, size: int) -> Image.Image:
    """A size x size RGB image: the class colour (hues spread by the golden ratio), stripes at a
    class angle and frequency, then a random phase, brightness jitter and pixel noise."""
    hue = (look * 0.618034) % 1.0
    base = np.array(colorsys.hsv_to_rgb(hue, 0.75, 0.85)) * 255.0
    angle = math.pi * ((look * 3) % max(n_looks, 4)) / max(n_looks, 4)
    freq = 2 + look % 3
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = rng.uniform(0, 2 * math.pi)
    stripes = np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)) + phase)
    img = base[None, None, :] * (1.0 + 0.3 * stripes[..., None]) * rng.uniform(0.9, 1.1)
    img = img + rng.normal(0.0, 8.0, size=img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB")


def per_class_cut(n: int, p_trn: float = 0.5, p_val: float = 0.2) -> tuple[int, int]:
    """(n_train, n_val) as the 50/20/30 generators round them."""
    return round(n * p_trn), round(n * p_val)


def folder_split(groups: list[tuple[int, str, list[str]]]) -> dict:
    """A fixed 50/20/30 split (no shuffle) of (label, classname, relpaths) groups, as JSON rows."""
    split = {"train": [], "val": [], "test": []}
    for label, classname, relpaths in groups:
        n_train, n_val = per_class_cut(len(relpaths))
        for i, rel in enumerate(relpaths):
            key = "train" if i < n_train else "val" if i < n_train + n_val else "test"
            split[key].append([rel, label, classname])
    return split


def trainval_split(trainval: list[list], test: list[list]) -> dict:
    """A fixed 80/20 train/val cut (no shuffle) of [relpath, label, classname] rows per class."""
    by_label: dict[int, list] = {}
    for row in trainval:
        by_label.setdefault(row[1], []).append(row)
    train, val = [], []
    for rows in by_label.values():
        n_val = round(len(rows) * 0.2)
        val.extend(rows[:n_val])
        train.extend(rows[n_val:])
    return {"train": train, "val": val, "test": test}


def n_trainval(n: int) -> int:
    return max(3, min(n - 1, round(n * TRAINVAL_FRACTION)))


def _pets(w: Writer, n_classes: int, with_split: bool) -> None:
    trainval_lines, test_lines, trainval, test = [], [], [], []
    breed_ids = {1: 0, 2: 0}
    for label, (prefix, species) in enumerate(PETS[:n_classes]):
        breed_ids[species] += 1
        for k in range(w.n_per_class):
            stem = f"{prefix}_{k + 1}"
            w.image(f"images/{stem}.jpg", label, k)
            line = f"{stem} {label + 1} {species} {breed_ids[species]}"
            row = [f"{stem}.jpg", label, prefix.lower()]
            if k < n_trainval(w.n_per_class):
                trainval_lines.append(line)
                trainval.append(row)
            else:
                test_lines.append(line)
                test.append(row)
    w.text("annotations/trainval.txt", trainval_lines)
    w.text("annotations/test.txt", test_lines)
    if with_split:
        write_json_atomic(trainval_split(trainval, test), w.path("split_zhou_OxfordPets.json"))


def _flowers(w: Writer, n_classes: int, with_split: bool) -> None:
    # Image numbers interleave the classes, as in the real imagelabels.mat.
    labels = [c for c in range(n_classes) for _ in range(w.n_per_class)]
    w.rng.shuffle(labels)
    groups: dict[int, list[str]] = {}
    for i, label in enumerate(labels):
        name = f"image_{i + 1:05d}.jpg"
        w.image(f"jpg/{name}", label, i)
        groups.setdefault(label, []).append(name)
    savemat(w.path("imagelabels.mat"), {"labels": np.array([[c + 1 for c in labels]], dtype=np.uint8)})
    with open(w.path("cat_to_name.json"), "w", encoding="utf-8") as f:
        json.dump({str(c + 1): FLOWERS[c] for c in range(n_classes)}, f, indent=4)
    if with_split:
        split = folder_split([(c, FLOWERS[c], names) for c, names in groups.items()])
        write_json_atomic(split, w.path("split_zhou_OxfordFlowers.json"))


def _aircraft(w: Writer, n_classes: int, with_split: bool) -> None:
    variants = AIRCRAFT[:n_classes]
    w.text("variants.txt", variants)
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    # Roughly a third each, as the official lists; every split gets at least one image per class.
    n_train = math.ceil(w.n_per_class / 3)
    n_val = math.ceil((w.n_per_class - n_train) / 2)
    image_ids = iter(w.rng.sample(range(10 ** 6, 10 ** 7), n_classes * w.n_per_class))
    for label, variant in enumerate(variants):
        for k in range(w.n_per_class):
            image_id = f"{next(image_ids):07d}"
            w.image(f"images/{image_id}.jpg", label, k)
            split = "train" if k < n_train else "val" if k < n_train + n_val else "test"
            lines[split].append(f"{image_id} {variant}")
    for split, split_lines in lines.items():
        w.text(f"images_variant_{split}.txt", split_lines)


def _folders(image_subdir: str, classes: Sequence[str], split_file: str,
             renames: Optional[dict] = None, ignored: Sequence[str] = (),
             file_name: Callable[[str, int, Writer], str] = lambda c, k, w: f"{c}_{k + 1}.jpg"):
    """Writer of a class-folder dataset (DTD, EuroSAT, Food101, Caltech101)."""

    def write(w: Writer, n_classes: int, with_split: bool) -> None:
        chosen = list(classes[:n_classes])
        groups = []
        for look, folder in enumerate(chosen + list(ignored)):
            rels = [file_name(folder, k, w) for k in range(w.n_per_class)]
            for k, rel in enumerate(rels):
                w.image(f"{image_subdir}/{folder}/{rel}", look, k)
            if folder in chosen:
                groups.append((folder, rels))
        if with_split:
            # Labels follow the code-point sort of the folder names, before renaming.
            rows = [(label, (renames or {}).get(folder, folder), [f"{folder}/{r}" for r in rels])
                    for label, (folder, rels) in enumerate(sorted(groups))]
            write_json_atomic(folder_split(rows), w.path(split_file))

    return write


def _cars(w: Writer, n_classes: int, with_split: bool) -> None:
    names = CARS[:n_classes]
    records = {"cars_train": [], "cars_test": []}
    for label in range(n_classes):
        for k in range(w.n_per_class):
            records["cars_train" if k < n_trainval(w.n_per_class) else "cars_test"].append((label, k))
    rows: dict[str, list] = {}
    for folder, recs in records.items():
        w.rng.shuffle(recs)  # file numbers interleave the classes, as the real annotations
        fields = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"),
                  ("class", "O"), ("fname", "O")]
        annos = np.zeros((1, len(recs)), dtype=fields)
        rows[folder] = []
        for i, (label, k) in enumerate(recs):
            fname = f"{i + 1:05d}.jpg"
            w.image(f"{folder}/{fname}", label, k)
            box = [np.array([[v]], dtype=np.uint16) for v in (1, 1, w.image_size - 1, w.image_size - 1)]
            annos[0, i] = (*box, np.array([[label + 1]], dtype=np.uint8), np.array([fname]))
            year_first = " ".join([names[label].split(" ")[-1], *names[label].split(" ")[:-1]])
            rows[folder].append([f"{folder}/{fname}", label, year_first])
        anno_file = "devkit/cars_train_annos.mat" if folder == "cars_train" else "cars_test_annos_withlabels.mat"
        os.makedirs(os.path.dirname(w.path(anno_file)), exist_ok=True)
        savemat(w.path(anno_file), {"annotations": annos})
    class_names = np.empty((1, n_classes), dtype=object)
    for i, name in enumerate(names):
        class_names[0, i] = np.array([name])
    savemat(w.path("devkit/cars_meta.mat"), {"class_names": class_names})
    if with_split:
        split = trainval_split(rows["cars_train"], rows["cars_test"])
        write_json_atomic(split, w.path("split_zhou_StanfordCars.json"))


def _sun(w: Writer, n_classes: int, with_split: bool) -> None:
    scenes = SCENES[:n_classes]
    w.text("ClassName.txt", scenes)
    lists: dict[str, list[str]] = {"Training_01.txt": [], "Testing_01.txt": []}
    trainval, test = [], []
    for label, scene in enumerate(scenes):
        name = " ".join(reversed(scene[1:].split("/")[1:]))
        for k in range(w.n_per_class):
            rel = f"{scene[1:]}/sun_{w.token(string.ascii_lowercase, 16)}.jpg"
            w.image(f"SUN397/{rel}", label, k)
            is_trainval = k < n_trainval(w.n_per_class)
            lists["Training_01.txt" if is_trainval else "Testing_01.txt"].append("/" + rel)
            (trainval if is_trainval else test).append([rel, label, name])
    for list_file, lines in lists.items():
        w.text(list_file, lines)
    if with_split:
        write_json_atomic(trainval_split(trainval, test), w.path("split_zhou_SUN397.json"))


def _ucf(w: Writer, n_classes: int, with_split: bool) -> None:
    actions = ACTIONS[:n_classes]
    # The official lists use CRLF line ends.
    w.text("ucfTrainTestlist/classInd.txt", [f"{i + 1} {a}" for i, a in enumerate(actions)], "\r\n")
    train_lines, test_lines, trainval, test = [], [], [], []
    for label, action in enumerate(actions):
        renamed = "_".join(p for p in re.split(r"(?=[A-Z])", action) if p)
        for k in range(w.n_per_class):
            is_trainval = k < n_trainval(w.n_per_class)
            group = 8 + k if is_trainval else 1 + k  # split 1 tests on groups 1-7
            video = f"v_{action}_g{group:02d}_c{k % 4 + 1:02d}"
            w.image(f"UCF-101-midframes/{renamed}/{video}.jpg", label, k)
            row = [f"{renamed}/{video}.jpg", label, renamed]
            if is_trainval:
                train_lines.append(f"{action}/{video}.avi {label + 1}")
                trainval.append(row)
            else:
                test_lines.append(f"{action}/{video}.avi")
                test.append(row)
    w.text("ucfTrainTestlist/trainlist01.txt", train_lines, "\r\n")
    w.text("ucfTrainTestlist/testlist01.txt", test_lines, "\r\n")
    if with_split:
        write_json_atomic(trainval_split(trainval, test), w.path("split_zhou_UCF101.json"))


def _imagenet_classnames(w: Writer) -> None:
    w.text("classnames.txt", [f"{wnid} {name}" for wnid, name in IMAGENET_CLASSNAMES])


def _imagenet(w: Writer, n_classes: int, with_split: bool) -> None:
    _imagenet_classnames(w)
    n_val = max(1, w.n_per_class // 2)
    val_index = 0
    for look, (wnid, _) in enumerate(IMAGENET_CLASSNAMES[:n_classes]):
        for k in range(w.n_per_class):
            w.image(f"images/train/{wnid}/{wnid}_{k + 1}.JPEG", look, k)
        for k in range(n_val):
            val_index += 1
            w.image(f"images/val/{wnid}/ILSVRC2012_val_{val_index:08d}.JPEG", look, w.n_per_class + k)


def _imagenetv2(w: Writer, n_classes: int, with_split: bool) -> None:
    _imagenet_classnames(w)
    for label in range(n_classes):
        for k in range(w.n_per_class):
            w.image(f"imagenetv2-matched-frequency-format-val/{label}/{w.token('0123456789abcdef', 40)}.jpeg",
                    label, k)


def _wnid_variant(image_subdir: str, wnids: Optional[Sequence[str]], file_name: str, readme: bool):
    """Writer of ImageNet-Sketch/-A/-R: <image_subdir>/<wnid>/ folders and ImageNet's classnames.txt."""

    def write(w: Writer, n_classes: int, with_split: bool) -> None:
        _imagenet_classnames(w)
        chosen = list(wnids or [wnid for wnid, _ in IMAGENET_CLASSNAMES])[:n_classes]
        for look, wnid in enumerate(chosen):
            for k in range(w.n_per_class):
                w.image(f"{image_subdir}/{wnid}/{file_name.format(k=k)}", look, k)
        if readme:
            w.text(f"{image_subdir}/README.txt", ["The folder names are ImageNet wnids."])

    return write


# Plant-6 members (real folder names of the public downloads, in their sorted order).
PLANT_CLASSES = {
    "FruitVegetable": ["apple", "banana", "beetroot", "bell pepper"],
    "KaggleFlower": ["daisy", "dandelion", "rose", "sunflower", "tulip"],
    "KaggleMushroom": ["Agaricus", "Amanita", "Boletus", "Cortinarius"],
    "KaggleVegetable": ["Bean", "Bitter_Gourd", "Bottle_Gourd", "Brinjal"],
    "PlantSeedlingV1": ["Black-grass", "Charlock", "Cleavers", "Common Chickweed"],
    "PlantVillage": ["Apple___Apple_scab", "Apple___Black_rot", "Background_without_leaves",
                     "Pepper,_bell___healthy"],
}
# Fashion-20's first tasks: task_info.csv columns (id, task name, garment, class names).
FASHION_TASKS = [("pants type", "pants", ["jeans", "leggings", "overalls", "harem pants"]),
                 ("pants length", "pants", ["shorts", "cropped pants", "full length pants", "capri pants"]),
                 ("waist type", "pants", ["high waist", "mid waist", "low waist", "elastic waist"])]


def _plant_folders(image_subdir: str, classes: Sequence[str], subsets: Sequence[str] = ("",)):
    """Writer of a Plant-6 member: class folders (under each of `subsets`); no split file."""

    def write(w: Writer, n_classes: int, with_split: bool) -> None:
        for subset in subsets:
            for look, folder in enumerate(classes[:n_classes]):
                for k in range(w.n_per_class):
                    w.image(os.path.join(image_subdir, subset, folder, f"{folder[:3]}_{k}.jpg"), look, k)

    return write


def _fashion(w: Writer, n_classes: int, with_split: bool) -> None:
    """Fashion-20's native layout: images/<task id>/<class id>/*.jpg and task_info.csv (tab
    separated, a header line); the first three tasks with n_classes classes each."""
    rows = ["id\ttask\tcategory\tclasses"]
    for t, (task, garment, classes) in enumerate(FASHION_TASKS):
        rows.append(f"{t}\t{task}\t{garment}\t{','.join(classes[:n_classes])}")
        for c in range(n_classes):
            for k in range(w.n_per_class):
                w.image(f"images/{t}/{c}/{t}_{c}_{k}.jpg", t * n_classes + c, k)
    w.text("task_info.csv", rows)
def _cifar100(w: Writer, n_classes: int, with_split: bool) -> None:
    """LAMM's layout: numeric class folders (sorted as strings by the loader), names in
    classnames_for_cifar100.txt; train/test cut as TRAINVAL_FRACTION."""
    w.text("classnames_for_cifar100.txt", [f"{i} {name.replace('_', ' ')}" for i, name in enumerate(CIFAR100[:n_classes])])
    for i in range(n_classes):
        for k in range(w.n_per_class):
            split = "train" if k < n_trainval(w.n_per_class) else "test"
            w.image(f"images/{split}/{i}/{split}_{i}_{k}.jpg", i, k)


# name -> (dataset_dir, writer, default number of classes)
MINIATURES: dict[str, tuple[str, Callable, int]] = {
    "OxfordPets": ("oxford_pets", _pets, 5),
    "OxfordFlowers": ("oxford_flowers", _flowers, 5),
    "FGVCAircraft": ("fgvc_aircraft", _aircraft, len(AIRCRAFT)),
    "DescribableTextures": ("dtd", _folders("images", TEXTURES, "split_zhou_DescribableTextures.json"), 5),
    "EuroSAT": ("eurosat", _folders("2750", EUROSAT, "split_zhou_EuroSAT.json", renames={
        "AnnualCrop": "Annual Crop Land", "Forest": "Forest",
        "HerbaceousVegetation": "Herbaceous Vegetation Land", "Highway": "Highway or Road",
        "Industrial": "Industrial Buildings", "Pasture": "Pasture Land",
        "PermanentCrop": "Permanent Crop Land", "Residential": "Residential Buildings",
        "River": "River", "SeaLake": "Sea or Lake"}), len(EUROSAT)),
    "StanfordCars": ("stanford_cars", _cars, 5),
    "Food101": ("food-101", _folders("images", FOODS, "split_zhou_Food101.json",
                                     file_name=lambda c, k, w: f"{10 ** 6 + zlib.crc32(c.encode()) % 10 ** 6 + k}.jpg"), 5),
    "SUN397": ("sun397", _sun, len(SCENES)),
    "Caltech101": ("caltech-101", _folders("101_ObjectCategories", CALTECH, "split_zhou_Caltech101.json",
                                           renames={"airplanes": "airplane", "Faces": "face",
                                                    "Leopards": "leopard", "Motorbikes": "motorbike"},
                                           ignored=CALTECH_IGNORED,
                                           file_name=lambda c, k, w: f"image_{k + 1:04d}.jpg"), len(CALTECH)),
    "UCF101": ("ucf101", _ucf, 5),
    "ImageNet": ("imagenet", _imagenet, 5),
    "ImageNetV2": ("imagenetv2", _imagenetv2, 5),
    "ImageNetSketch": ("imagenet-sketch", _wnid_variant("images", None, "sketch_{k}.JPEG", False), 5),
    "ImageNetA": ("imagenet-adversarial", _wnid_variant("imagenet-a", IMAGENET_A_WNIDS, "{k:06d}.jpg", True),
                  len(IMAGENET_A_WNIDS)),
    "ImageNetR": ("imagenet-rendition", _wnid_variant("imagenet-r", IMAGENET_R_WNIDS, "art_{k}.jpg", True),
                  len(IMAGENET_R_WNIDS)),
    "FruitVegetable": ("fruit_vegetable", _plant_folders("images", PLANT_CLASSES["FruitVegetable"],
                                                         ("train", "test", "validation")), 4),
    "KaggleFlower": ("kaggle_flower_recognition", _plant_folders("flowers", PLANT_CLASSES["KaggleFlower"]), 5),
    "KaggleMushroom": ("kaggle_mushroom", _plant_folders("Mushrooms", PLANT_CLASSES["KaggleMushroom"]), 4),
    "KaggleVegetable": ("kaggle_vegetable", _plant_folders("images", PLANT_CLASSES["KaggleVegetable"],
                                                           ("train", "test", "validation")), 4),
    "PlantSeedlingV1": ("PlantSeedlingV1", _plant_folders("Nonsegmented", PLANT_CLASSES["PlantSeedlingV1"]), 4),
    "PlantVillage": ("PlantVillage", _plant_folders("Plant_leave_diseases_dataset_without_augmentation",
                                                    PLANT_CLASSES["PlantVillage"]), 4),
    "Fashion20": ("fashion20", _fashion, 4),
    "MYCIFAR100": ("cifar100", _cifar100, 12),
}


def make_miniature(name: str, root: str, n_classes: Optional[int] = None, n_per_class: int = 8,
                   seed: int = 0, with_split: bool = True, image_size: int = 32) -> str:
    """Write the miniature of dataset `name` (a registry name, or "FolderDataset") under root and
    return its folder. with_split=False leaves out the split JSON so the loader must create it."""
    if name == "FolderDataset":
        return make_folder_dataset(root, n_per_class=n_per_class, seed=seed, image_size=image_size)
    if name not in MINIATURES:
        raise KeyError(f"No miniature for {name!r}; known: {sorted(MINIATURES)} and FolderDataset")
    dataset_dir, write, default_classes = MINIATURES[name]
    n_classes = default_classes if n_classes is None else n_classes
    limit = {"ImageNet": len(IMAGENET_CLASSNAMES), "ImageNetV2": len(IMAGENET_CLASSNAMES),
             "ImageNetSketch": len(IMAGENET_CLASSNAMES), "MYCIFAR100": len(CIFAR100)}.get(name, default_classes)
    if not 2 <= n_classes <= limit:
        raise ValueError(f"{name} miniature: n_classes must be in 2..{limit}, got {n_classes}")
    if n_per_class < 4:
        raise ValueError("n_per_class must be >= 4 (every class needs train, val and test images)")
    path = os.path.join(root, dataset_dir)
    os.makedirs(path, exist_ok=True)
    write(Writer(path, n_per_class, seed, image_size, n_classes + 2), n_classes, with_split)
    return path


def make_folder_dataset(root: str, folder: str = "folder_dataset", fmt: str = "folders",
                        classes: Sequence[str] = FOLDER_CLASSES, n_per_class: int = 6, seed: int = 0,
                        image_size: int = 32, with_val: bool = True) -> str:
    """A FolderDataset: {train,val,test}/<class>/*.jpg, or (fmt="csv") images/<class>/*.jpg with
    {train,val,test}.csv rows `path,label,classname` (labels = sorted class order)."""
    path = os.path.join(root, folder)
    w = Writer(path, n_per_class, seed, image_size, len(classes))
    splits = ["train", "val", "test"] if with_val else ["train", "test"]
    rows: dict[str, list[str]] = {s: ["path,label,classname"] for s in splits}
    for label, classname in enumerate(sorted(classes)):
        for k in range(n_per_class):
            split = splits[k * len(splits) // n_per_class]
            rel = (f"{split}/{classname}/{k}.jpg" if fmt == "folders" else f"images/{classname}/{k}.jpg")
            w.image(rel, label, k)
            rows[split].append(f"{rel},{label},{classname}")
    if fmt == "csv":
        for split, lines in rows.items():
            w.text(f"{split}.csv", lines)
    elif fmt != "folders":
        raise ValueError(f"fmt must be 'folders' or 'csv', got {fmt!r}")
    return path


def make_elevater_miniature(name: str, root: str, n_classes: int = 4, n_train: int = 6, n_test: int = 2,
                            seed: int = 0, image_size: int = 32) -> str:
    """An ELEVATER task (datasets.elevater.TASKS) in the hub's layout under root: index files
    (IRIS text `<zip>@<member> <ids>` or COCO JSON), labelmap and zips of JPEGs, for the first
    n_classes classes (n_train train and n_test test images each; the labelmap lists all classes).
    Multi-label tasks (VOC) give every image its class and, every other image, the next class too.
    Returns the task folder.
    """
    import io
    import zipfile

    from .elevater import TASKS

    task = TASKS[name]
    folder = os.path.join(root, task.folder)
    os.makedirs(folder, exist_ok=True)
    n_looks = n_classes + 2

    def labels_of(cls: int, k: int) -> list[int]:
        if task.multilabel and k % 2 == 1:
            return [cls, (cls + 1) % n_classes]
        return [cls]

    members: dict[str, dict[str, bytes]] = {}
    usages = {"train": (task.train, n_train), "test": (task.test, n_test)}
    if task.val is not None:
        usages["val"] = (task.val, n_test)
    for split, (usage, count) in usages.items():
        zip_name = usage.zips[0]
        entries = []
        for cls in range(n_classes):
            for k in range(count):
                member = f"{split}/{cls:03d}_{k:03d}.jpg"
                key = zlib.crc32(f"{seed}/{name}/{member}".encode())
                buffer = io.BytesIO()
                class_image(cls, n_looks, np.random.default_rng(key), image_size).save(buffer, "JPEG", quality=92)
                members.setdefault(zip_name, {})[member] = buffer.getvalue()
                entries.append((f"{zip_name}@{member}", labels_of(cls, k)))
        index_path = os.path.join(folder, usage.index)
        if task.coco:
            manifest = {
                "images": [{"id": i + 1, "file_name": ref, "width": image_size, "height": image_size}
                           for i, (ref, _) in enumerate(entries)],
                "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": label + 1}
                                for i, (_, labels) in enumerate(entries) for label in labels],
                "categories": [{"id": c + 1, "name": n} for c, n in enumerate(task.classnames)],
            }
            with open(index_path, "w", encoding="utf-8") as f:
                json.dump(manifest, f)
        else:
            with open(index_path, "w", encoding="utf-8") as f:
                f.write("".join(f"{ref} {','.join(map(str, labels))}\n" for ref, labels in entries))
    for zip_name, files in members.items():
        with zipfile.ZipFile(os.path.join(folder, zip_name), "w") as zf:
            for member, data in files.items():
                zf.writestr(member, data)
    if task.labelmap:
        with open(os.path.join(folder, task.labelmap), "w", encoding="utf-8") as f:
            f.write("".join(n + "\n" for n in task.classnames))
    return folder
