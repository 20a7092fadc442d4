"""descriptions/: SAP's sentence template, locating and reading description files (on the files
published with SAP, read from ../shared/data/sap_descriptions: never copied into the project)."""
from __future__ import annotations

import json
import os

import pytest

from clip.clip import _file_sha256
from dassl.data.datasets import DATASET_REGISTRY
from descriptions import (
    DATASET_KEYS, PUBLISHED, DescriptionsError, description_sentence, descriptions_file,
    load_class_descriptions, read_descriptions,
)
from fixtures.data_fixtures import MINIATURE_NAMES, make_cfg
from fixtures.trainer_fixtures import REPO

PUBLISHED_DIR = os.path.join(REPO, "..", "shared", "data", "sap_descriptions")
# Spec: keys per file and descriptions per class (min, max).
PUBLISHED_SIZES = {
    "caltech101": (100, 7, 9), "dtd": (47, 5, 6), "eurosat": (10, 8, 9), "fgvc_aircraft": (100, 9, 11),
    "food101": (101, 7, 9), "oxford_flowers": (102, 5, 9), "oxford_pets": (37, 8, 9),
    "stanford_cars": (196, 8, 11), "sun397": (397, 6, 9), "ucf101": (101, 5, 10), "imagenet": (998, 5, 9),
}
needs_published = pytest.mark.skipif(not os.path.isdir(PUBLISHED_DIR), reason=f"no {PUBLISHED_DIR}")


@pytest.mark.parametrize("classname, description, sentence", [
    ("tench", "is a freshwater fish", "a photo of a tench, which is a freshwater fish."),
    ("Sea_Lake", "has calm water.", "a photo of a sea lake, which has calm water."),
    # A comma: only the text after the first comma is kept (the reference's quirk).
    ("pug", "has large, round eyes", "a photo of a pug, round eyes."),
    ("frog", "is colourful (e.g. red, brown, green)", "a photo of a frog, brown, green)."),
    # Neither "is" nor "has" first: "which has" is put before it anyway.
    ("lotus", "grows near water", "a photo of a lotus, which has grows near water."),
    ("A300B4", "may have four engines", "a photo of a a300b4, which has may have four engines."),
    ("hen", "is Mrs. Hen's kind", "a photo of a hen, which is Mrs Hen's kind."),
])
def test_sentence_template_and_its_quirks(classname, description, sentence):
    assert description_sentence(classname, description) == sentence


@needs_published
@pytest.mark.parametrize("key", sorted(PUBLISHED_SIZES))
def test_published_files_read(key):
    path = os.path.join(PUBLISHED_DIR, PUBLISHED[key][0])
    assert _file_sha256(path) == PUBLISHED[key][1]  # the checksum descriptions.download checks
    table = read_descriptions(path)
    n_keys, shortest, longest = PUBLISHED_SIZES[key]
    counts = [len(v) for v in table.values()]
    assert (len(table), min(counts), max(counts)) == (n_keys, shortest, longest)


@needs_published
@pytest.mark.parametrize("name", [n for n in MINIATURE_NAMES if n in DATASET_KEYS])  # SAP published these
def test_loader_finds_every_class_of_each_dataset(name, miniature_root):
    """The dataset's own class names (as its loader builds them) resolve in the published file;
    ImageNet keeps the first 3 descriptions per class, its variants all of them (the reference)."""
    published = PUBLISHED["imagenet" if name.startswith("ImageNet") else DATASET_KEYS[name]][0]
    path = os.path.join(PUBLISHED_DIR, published)
    cfg = make_cfg(name, miniature_root, "DESCRIPTIONS.FILE", path, all_keys=True)
    classnames = DATASET_REGISTRY.get(name)(cfg).classnames
    found = load_class_descriptions(cfg, classnames)
    table = read_descriptions(path)
    assert len(found.per_class) == len(classnames) and found.path == path
    for entries in found.per_class:
        assert entries and all(isinstance(e, str) for e in entries)
        assert len(entries) <= 3 if name == "ImageNet" else len(entries) >= 5
    if name == "ImageNet":
        assert found.per_class[0] == table["tench"][:3]
    if name == "FGVCAircraft":
        assert found.per_class[classnames.index("A300B4")] == table["A300B4"]  # keys keep their case
    assert found.flat == [d for e in found.per_class for d in e] and len(found.sentences()) == len(found.flat)


def test_files_are_located_by_config_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTKIT_DESCRIPTIONS_DIR", str(tmp_path / "env"))
    cfg = make_cfg("OxfordPets", tmp_path, all_keys=True)
    assert descriptions_file(cfg) == str(tmp_path / "env" / "oxford_pets.json")
    cfg = make_cfg("ImageNetA", tmp_path, "DESCRIPTIONS.DIR", str(tmp_path / "mine"), all_keys=True)
    assert descriptions_file(cfg) == str(tmp_path / "mine" / "imagenet_a.json")
    cfg = make_cfg("ImageNetA", tmp_path, "DESCRIPTIONS.DIR", "x", "DESCRIPTIONS.FILE", str(tmp_path / "f.json"),
                   all_keys=True)
    assert descriptions_file(cfg) == str(tmp_path / "f.json")
    monkeypatch.delenv("PROMPTKIT_DESCRIPTIONS_DIR")
    cfg = make_cfg("UCF101", tmp_path, all_keys=True)
    assert descriptions_file(cfg) == os.path.expanduser("~/.cache/promptkit/descriptions/ucf101.json")


def test_errors_are_one_line(tmp_path):
    cfg = make_cfg("OxfordPets", tmp_path, "DESCRIPTIONS.DIR", str(tmp_path), all_keys=True)
    with pytest.raises(FileNotFoundError, match=r"python -m descriptions.download oxford_pets") as err:
        load_class_descriptions(cfg, ["pug"])
    assert "\n" not in str(err.value)
    path = tmp_path / "oxford_pets.json"
    path.write_text(json.dumps({"pug": ["has a flat face"], "Beagle": ["is a hound"]}))
    # As written ("Beagle", FGVC-style keys), else lower-cased ("PUG" -> "pug").
    assert load_class_descriptions(cfg, ["PUG", "Beagle"]).per_class == [["has a flat face"], ["is a hound"]]
    with pytest.raises(DescriptionsError, match=f'^class "boxer" has no entry in the description file {path}$'):
        load_class_descriptions(cfg, ["pug", "boxer"])
    for bad, what in (("{", "not valid JSON"), ('["pug"]', "expected a non-empty JSON object"),
                      ('{"pug": []}', '"pug" must be a non-empty list'), ('{"pug": [""]}', "other than a non-empty")):
        path.write_text(bad)
        with pytest.raises(DescriptionsError, match=what):
            read_descriptions(str(path))


def test_per_class_limit(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"tench": ["a", "b", "c", "d"]}))
    for dataset, per_class, n in (("ImageNet", -1, 3), ("ImageNetSketch", -1, 4), ("ImageNet", 0, 4), ("UCF101", 2, 2)):
        cfg = make_cfg(dataset, tmp_path, "DESCRIPTIONS.FILE", str(path), "DESCRIPTIONS.PER_CLASS", per_class,
                       all_keys=True)
        assert len(load_class_descriptions(cfg, ["tench"]).flat) == n


def test_too_long_sentence_is_one_error_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"tench": ["is a fish " + "very " * 80]}))
    cfg = make_cfg("ImageNet", tmp_path, "DESCRIPTIONS.FILE", str(path), all_keys=True)
    with pytest.raises(DescriptionsError, match=r'^the sentence of "is a fish very .*" \(class "tench"\) has 9\d '
                                                r"tokens, more than CLIP's 77; shorten it in "):
        load_class_descriptions(cfg, ["tench"]).sentences()
