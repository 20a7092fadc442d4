#!/usr/bin/env python
"""Download and arrange the CoOp benchmark datasets under a data root (see DATASETS.md).

    python scripts/download_data.py --root $DATA                 # everything that can be fetched
    python scripts/download_data.py --root $DATA dtd eurosat     # some datasets (folder or class name)
    python scripts/download_data.py --root $DATA --offline       # only arrange archives already in
                                                                 # <root>/.downloads (e.g. fetched by hand)
    python scripts/download_data.py --root $DATA --imagenet-val-csv LOC_val_solution.csv

Archives go to <root>/.downloads (--archives): an interrupted download resumes (HTTP Range),
known MD5 sums are checked, and each archive is extracted into a staging folder on the same file
system and moved into place with os.replace, piece by piece, so a re-run skips what is in place.
What cannot be fetched (ImageNet, Stanford Cars images) is printed as manual steps.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dassl.cli import UserError, one_line_errors  # noqa: E402
from datasets.download import extract, http_download  # noqa: E402

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
IMAGENET_CLASSNAMES_GDRIVE = "1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF"


@dataclass
class Resource:
    """A file to put in the archive folder: from a URL, a Google Drive id, or only by hand."""

    filename: str
    url: Optional[str] = None
    gdrive_id: Optional[str] = None
    md5: Optional[str] = None


@dataclass
class Placement:
    """Move `inner` of `resource` (extracted if an archive) to `dest` (relative to the root).

    inner: a path inside the extracted archive; "a.tar.gz!b" extracts the nested archive a.tar.gz
    and takes b from it; alternatives may be given as a tuple; a path not found as given is looked
    up by its trailing components anywhere in the extracted tree. None = the resource file itself.
    """

    resource: str
    inner: Optional[str | tuple[str, ...]]
    dest: str


@dataclass
class Recipe:
    name: str  # registry name
    folder: str  # dataset folder under the root
    resources: list[Resource]
    placements: list[Placement]
    manual: str = ""  # steps to do by hand (printed)
    needs_imagenet_classnames: bool = False
    check: list[str] = field(default_factory=list)  # paths (relative to the folder) of a complete install


def split_json(name: str, gdrive_id: str, folder: str) -> tuple[Resource, Placement]:
    filename = f"split_zhou_{name}.json"
    return Resource(filename, gdrive_id=gdrive_id), Placement(filename, None, f"{folder}/{filename}")


def _recipes() -> dict[str, Recipe]:
    recipes = []

    res, place = split_json("Caltech101", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN", "caltech-101")
    recipes.append(Recipe(
        "Caltech101", "caltech-101",
        [Resource("caltech-101.zip", "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",
                  md5="3138e1922a9193bfa496528edbbc45d0"), res],
        [Placement("caltech-101.zip", "caltech-101/101_ObjectCategories.tar.gz!101_ObjectCategories",
                   "caltech-101/101_ObjectCategories"), place],
        check=["101_ObjectCategories", "split_zhou_Caltech101.json"]))

    res, place = split_json("OxfordPets", "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs", "oxford_pets")
    pets = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/"
    recipes.append(Recipe(
        "OxfordPets", "oxford_pets",
        [Resource("images.tar.gz", pets + "images.tar.gz", md5="5c4f3ee8e5d25df40f4fd59a7f44e54c"),
         Resource("annotations.tar.gz", pets + "annotations.tar.gz", md5="95a8c909bbe2e81eed6a22bccdf3f68f"),
         res],
        [Placement("images.tar.gz", "images", "oxford_pets/images"),
         Placement("annotations.tar.gz", "annotations", "oxford_pets/annotations"), place],
        check=["images", "annotations", "split_zhou_OxfordPets.json"]))

    res, place = split_json("OxfordFlowers", "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT", "oxford_flowers")
    flowers = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
    recipes.append(Recipe(
        "OxfordFlowers", "oxford_flowers",
        [Resource("102flowers.tgz", flowers + "102flowers.tgz", md5="52808999861908f626f3c1f4e79d11fa"),
         Resource("imagelabels.mat", flowers + "imagelabels.mat", md5="e0620be6f572b9609742df49c70aed4d"),
         Resource("cat_to_name.json", gdrive_id="1AkcxCXeK_RCGCEC_GvmWxjcjaNhu-at0"), res],
        [Placement("102flowers.tgz", "jpg", "oxford_flowers/jpg"),
         Placement("imagelabels.mat", None, "oxford_flowers/imagelabels.mat"),
         Placement("cat_to_name.json", None, "oxford_flowers/cat_to_name.json"), place],
        check=["jpg", "imagelabels.mat", "cat_to_name.json", "split_zhou_OxfordFlowers.json"]))

    res, place = split_json("Food101", "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl", "food-101")
    recipes.append(Recipe(
        "Food101", "food-101",
        [Resource("food-101.tar.gz", "http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz",
                  md5="85eeb15f3717b99a5da872d97d918f87"), res],
        [Placement("food-101.tar.gz", "food-101/images", "food-101/images"),
         Placement("food-101.tar.gz", "food-101/meta", "food-101/meta"), place],
        check=["images", "split_zhou_Food101.json"]))

    recipes.append(Recipe(
        "FGVCAircraft", "fgvc_aircraft",
        [Resource("fgvc-aircraft-2013b.tar.gz",
                  "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz")],
        [Placement("fgvc-aircraft-2013b.tar.gz", "fgvc-aircraft-2013b/data", "fgvc_aircraft")],
        check=["images", "variants.txt", "images_variant_test.txt"]))

    res, place = split_json("SUN397", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq", "sun397")
    recipes.append(Recipe(
        "SUN397", "sun397",
        [Resource("SUN397.tar.gz", "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",
                  md5="8ca2778205c41d23104230ba66911c7a"),
         Resource("Partitions.zip", "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip"),
         res],
        [Placement("SUN397.tar.gz", "SUN397", "sun397/SUN397"),
         *(Placement("Partitions.zip", f, f"sun397/{f}")
           for f in ("ClassName.txt", "Training_01.txt", "Testing_01.txt")), place],
        check=["SUN397", "split_zhou_SUN397.json"]))

    res, place = split_json("DescribableTextures", "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x", "dtd")
    recipes.append(Recipe(
        "DescribableTextures", "dtd",
        [Resource("dtd-r1.0.1.tar.gz", "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
                  md5="fff73e5086ae6bdbea199a49dfb8a4c1"), res],
        [Placement("dtd-r1.0.1.tar.gz", "dtd/images", "dtd/images"),
         Placement("dtd-r1.0.1.tar.gz", "dtd/imdb", "dtd/imdb"),
         Placement("dtd-r1.0.1.tar.gz", "dtd/labels", "dtd/labels"), place],
        check=["images", "split_zhou_DescribableTextures.json"]))

    res, place = split_json("EuroSAT", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o", "eurosat")
    recipes.append(Recipe(
        "EuroSAT", "eurosat",
        # The original madm.dfki.de link has an expired certificate; this mirror holds the same file.
        [Resource("EuroSAT.zip", "https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
                  "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
                  md5="c8fa014336c82ac7804f0398fcb19387"), res],
        [Placement("EuroSAT.zip", ("2750", "EuroSAT_RGB", "EuroSAT"), "eurosat/2750"), place],
        check=["2750", "split_zhou_EuroSAT.json"]))

    res, place = split_json("UCF101", "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y", "ucf101")
    recipes.append(Recipe(
        "UCF101", "ucf101",
        [Resource("UCF-101-midframes.zip", gdrive_id="10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O"), res],
        [Placement("UCF-101-midframes.zip", "UCF-101-midframes", "ucf101/UCF-101-midframes"), place],
        check=["UCF-101-midframes", "split_zhou_UCF101.json"]))

    res, place = split_json("StanfordCars", "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT", "stanford_cars")
    recipes.append(Recipe(
        "StanfordCars", "stanford_cars", [res], [place],
        manual=("Stanford Cars: the ai.stanford.edu links are dead. Get cars_train/, cars_test/, devkit/ "
                "and cars_test_annos_withlabels.mat from a mirror (e.g. the Kaggle copies of the dataset) "
                "and put them in <root>/stanford_cars/ (DATASETS.md, section StanfordCars)."),
        check=["cars_train", "cars_test", "devkit", "cars_test_annos_withlabels.mat",
               "split_zhou_StanfordCars.json"]))

    recipes.append(Recipe(
        "ImageNet", "imagenet",
        [Resource("classnames.txt", gdrive_id=IMAGENET_CLASSNAMES_GDRIVE)],
        [Placement("classnames.txt", None, "imagenet/classnames.txt")],
        manual=("ImageNet: download ILSVRC2012 train and val from https://image-net.org (login needed), "
                "extract them to <root>/imagenet/images/{train,val}; val must be in 1000 wnid folders "
                "(this script does it with --imagenet-val-csv LOC_val_solution.csv from Kaggle's "
                "ImageNet object localization challenge; DATASETS.md, section ImageNet)."),
        check=["images/train", "images/val", "classnames.txt"]))

    recipes.append(Recipe(
        "ImageNetV2", "imagenetv2",
        [Resource("imagenetv2-matched-frequency.tar.gz", "https://huggingface.co/datasets/vaishaal/ImageNetV2/"
                  "resolve/main/imagenetv2-matched-frequency.tar.gz")],
        [Placement("imagenetv2-matched-frequency.tar.gz", "imagenetv2-matched-frequency-format-val",
                   "imagenetv2/imagenetv2-matched-frequency-format-val")],
        needs_imagenet_classnames=True,
        check=["imagenetv2-matched-frequency-format-val", "classnames.txt"]))

    recipes.append(Recipe(
        "ImageNetSketch", "imagenet-sketch",
        [Resource("ImageNet-Sketch.zip", gdrive_id="1Mj0i5HBthqH1p_yeXzsg22gZduvgoNeA")],
        [Placement("ImageNet-Sketch.zip", ("sketch", "ImageNet-Sketch"), "imagenet-sketch/images")],
        needs_imagenet_classnames=True, check=["images", "classnames.txt"]))

    for name, folder, sub in (("ImageNetA", "imagenet-adversarial", "imagenet-a"),
                              ("ImageNetR", "imagenet-rendition", "imagenet-r")):
        recipes.append(Recipe(
            name, folder, [Resource(f"{sub}.tar", f"https://people.eecs.berkeley.edu/~hendrycks/{sub}.tar")],
            [Placement(f"{sub}.tar", sub, f"{folder}/{sub}")],
            needs_imagenet_classnames=True, check=[sub, "classnames.txt"]))
    return {r.name: r for r in recipes}


RECIPES = _recipes()


# ---------------------------------------------------------------- network (thin)

def gdrive_download(file_id: str, dst: str) -> str:
    import gdown  # optional dependency, only for Google Drive files

    part = dst + ".part"
    if gdown.download(id=file_id, output=part, quiet=False, resume=True) is None:
        raise RuntimeError(f"Google Drive download of {file_id} failed (quota or removed file)")
    os.replace(part, dst)
    return dst


def fetch(resource: Resource, archives: str) -> str:
    """The resource's path in the archive folder, downloading it first if needed."""
    dst = os.path.join(archives, resource.filename)
    if os.path.isfile(dst):
        return dst
    os.makedirs(archives, exist_ok=True)
    if resource.url:
        return http_download(resource.url, dst, resource.md5)
    if resource.gdrive_id:
        return gdrive_download(resource.gdrive_id, dst)
    raise FileNotFoundError(f"{resource.filename} cannot be downloaded automatically; put it in {archives}")


# ---------------------------------------------------------------- arranging (offline, testable)

def is_archive(path: str) -> bool:
    return path.endswith(ARCHIVE_SUFFIXES)


def locate(tree: str, inner: str) -> Optional[str]:
    """tree/inner if it exists, else the first (sorted walk) path in tree ending with inner."""
    direct = os.path.join(tree, inner)
    if os.path.exists(direct):
        return direct
    tail = os.path.normpath(inner).split(os.sep)
    for dirpath, dirnames, filenames in sorted(os.walk(tree)):
        dirnames.sort()
        for name in dirnames + sorted(filenames):
            path = os.path.join(dirpath, name)
            if os.path.relpath(path, tree).split(os.sep)[-len(tail):] == tail:
                return path
    return None


class Stager:
    """Extracts each archive once into <root>/.staging/<archive> (same file system as the root)."""

    def __init__(self, root: str, archives: str):
        self.dir = os.path.join(root, ".staging")
        self.archives = archives

    def tree(self, archive_path: str) -> str:
        out = os.path.join(self.dir, os.path.basename(archive_path))
        done = out + ".done"
        if not os.path.exists(done):
            shutil.rmtree(out, ignore_errors=True)  # a half-extracted tree from a killed run
            extract(archive_path, out)
            open(done, "w").close()
        return out

    def find(self, archive_path: str, inner: str) -> Optional[str]:
        tree = self.tree(archive_path)
        for step in inner.split("!")[:-1]:  # nested archives
            nested = locate(tree, step)
            if nested is None:
                return None
            tree = self.tree(nested)
        return locate(tree, inner.split("!")[-1])

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def place(p: Placement, root: str, archives: str, stager: Stager) -> str:
    """Put one placement in place; returns its destination. Existing destinations are kept."""
    dest = os.path.join(root, p.dest)
    if os.path.exists(dest):
        return dest
    source = os.path.join(archives, p.resource)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"{source} is missing")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if p.inner is None:
        tmp = dest + ".tmp"
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
        return dest
    alternatives = (p.inner,) if isinstance(p.inner, str) else p.inner
    for inner in alternatives:
        found = stager.find(source, inner)
        if found is not None:
            os.replace(found, dest)
            return dest
    raise FileNotFoundError(f"{' or '.join(alternatives)} not found in {source}")


def copy_imagenet_classnames(root: str, folder: str, archives: str) -> None:
    dest = os.path.join(root, folder, "classnames.txt")
    if os.path.exists(dest):
        return
    for source in (os.path.join(root, "imagenet", "classnames.txt"), os.path.join(archives, "classnames.txt")):
        if os.path.isfile(source):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(source, dest + ".tmp")
            os.replace(dest + ".tmp", dest)
            return
    raise FileNotFoundError("classnames.txt: neither <root>/imagenet/classnames.txt nor "
                            f"{os.path.join(archives, 'classnames.txt')} exists")


def install(recipe: Recipe, root: str, archives: str, offline: bool = False) -> list[str]:
    """Fetch (unless offline) and arrange one dataset; returns the problems left (empty = done)."""
    problems = []
    for resource in recipe.resources:
        if offline:
            continue
        try:
            fetch(resource, archives)
        except Exception as err:  # one dead link must not stop the other files
            problems.append(f"download {resource.filename}: {err}")
    if recipe.needs_imagenet_classnames and not offline:
        try:
            fetch(Resource("classnames.txt", gdrive_id=IMAGENET_CLASSNAMES_GDRIVE), archives)
        except Exception as err:
            problems.append(f"download classnames.txt: {err}")
    stager = Stager(root, archives)
    for p in recipe.placements:
        try:
            place(p, root, archives, stager)
        except FileNotFoundError as err:
            problems.append(f"arrange {p.dest}: {err}")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, ValueError) as err:  # damaged archive
            problems.append(f"arrange {p.dest}: cannot extract {p.resource} ({err}); delete "
                            f"{os.path.join(archives, p.resource)} and run again")
    if recipe.needs_imagenet_classnames:
        try:
            copy_imagenet_classnames(root, recipe.folder, archives)
        except FileNotFoundError as err:
            problems.append(str(err))
    missing = [c for c in recipe.check if not os.path.exists(os.path.join(root, recipe.folder, c))]
    if missing and recipe.manual:
        problems.append(recipe.manual)
    elif missing:
        problems.append(f"still missing in {os.path.join(root, recipe.folder)}: {', '.join(missing)}")
    return problems


def arrange_imagenet_val(val_dir: str, solution_csv: str) -> int:
    """Move flat ILSVRC2012 val images into wnid folders using Kaggle's LOC_val_solution.csv
    (rows "ImageId,PredictionString" whose first token is the wnid). Returns the number moved."""
    moved = 0
    with open(solution_csv, "r", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            wnid = row["PredictionString"].split()[0]
            for ext in (".JPEG", ".jpeg", ".jpg"):
                src = os.path.join(val_dir, row["ImageId"] + ext)
                if os.path.isfile(src):
                    os.makedirs(os.path.join(val_dir, wnid), exist_ok=True)
                    os.replace(src, os.path.join(val_dir, wnid, row["ImageId"] + ext))
                    moved += 1
                    break
    return moved


def select(names: Sequence[str]) -> list[Recipe]:
    """Recipes by registry name or folder name (case-insensitive); all when names is empty."""
    if not names:
        return list(RECIPES.values())
    index = {}
    for recipe in RECIPES.values():
        index[recipe.name.lower()] = recipe
        index[recipe.folder.lower()] = recipe
    unknown = [n for n in names if n.lower() not in index]
    if unknown:
        raise UserError(f"unknown dataset(s) {unknown}; choose from {sorted(RECIPES)}")
    return [index[n.lower()] for n in names]


@one_line_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", help="registry or folder names (default: all)")
    parser.add_argument("--root", required=True, help="the data root (DATASET.ROOT)")
    parser.add_argument("--archives", default=None, help="archive folder (default <root>/.downloads)")
    parser.add_argument("--offline", action="store_true", help="do not download; arrange what is there")
    parser.add_argument("--keep-staging", action="store_true", help="keep <root>/.staging afterwards")
    parser.add_argument("--imagenet-val-csv", default=None, help="arrange imagenet/images/val with this "
                        "LOC_val_solution.csv and exit")
    args = parser.parse_args(argv)
    root = os.path.abspath(os.path.expanduser(args.root))
    archives = args.archives or os.path.join(root, ".downloads")

    if args.imagenet_val_csv:
        n = arrange_imagenet_val(os.path.join(root, "imagenet", "images", "val"), args.imagenet_val_csv)
        print(f"Moved {n} ImageNet val images into wnid folders")
        return 0

    report = {}
    for recipe in select(args.datasets):
        print(f"== {recipe.name} -> {os.path.join(root, recipe.folder)}")
        report[recipe.name] = install(recipe, root, archives, offline=args.offline)
    if not args.keep_staging:
        Stager(root, archives).cleanup()

    print("\nSummary")
    for name, problems in report.items():
        print(f"  {name}: {'ready' if not problems else 'TO DO'}")
        for problem in problems:
            print(f"    - {problem}")
    return 1 if any(report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
