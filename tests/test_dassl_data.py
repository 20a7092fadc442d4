"""dassl.data: Datum, few-shot sampling and caches, DataManager, loaders, samplers, transforms."""
from __future__ import annotations

import os
import pickle
import random
import shutil
from collections import Counter

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from dassl.config import get_cfg_default
from dassl.data import DataManager, DatasetWrapper
from dassl.data import datasets as dsets
from dassl.data.data_manager import DatasetWrapperMT, ImageReadError, build_data_loader
from dassl.data.datasets import (
    DATASET_REGISTRY, DatasetBase, DatasetBaseMT, Datum, DatumMT, build_dataset, load_fewshot_cache,
    restricted_pickle_load, save_fewshot_cache,
)
from dassl.data.datasets import base_dataset
from dassl.data.samplers import (
    RandomClassSampler, RandomDomainSampler, RandomSampler, SeqDomainSampler, SequentialSampler,
    build_sampler,
)
from dassl.data.transforms import AVAI_CHOICES, INTERPOLATION_MODES, build_transform

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
CLASSES = ["cat", "dog", "owl"]
SPLIT_SIZES = {"train": 5, "val": 2, "test": 3}


# ---------------------------------------------------------------- helpers

def write_jpeg(path, size=(40, 30), seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, "JPEG")
    return str(path)


def make_items(root, labels, domains=None):
    """One real image per label; Datum list in the given order."""
    items = []
    for i, label in enumerate(labels):
        path = write_jpeg(os.path.join(root, f"c{label}", f"img{i:03d}.jpg"), seed=i)
        domain = 0 if domains is None else domains[i]
        items.append(Datum(impath=path, label=label, domain=domain, classname=f"class{label}"))
    return items


@DATASET_REGISTRY.register()
class TinyTestData(DatasetBase):
    """Three classes of small JPEGs under ROOT/tiny (written by the `tiny_root` fixture)."""

    dataset_dir = "tiny"

    def __init__(self, cfg):
        root = os.path.join(os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT)), self.dataset_dir)
        splits = {}
        for split in SPLIT_SIZES:
            splits[split] = [
                Datum(impath=os.path.join(root, split, cname, name), label=label, classname=cname)
                for label, cname in enumerate(CLASSES)
                for name in sorted(os.listdir(os.path.join(root, split, cname)))
            ]
        train = self.generate_fewshot_dataset(splits["train"], num_shots=cfg.DATASET.NUM_SHOTS)
        super().__init__(train_x=train, val=splits["val"], test=splits["test"])


@pytest.fixture
def tiny_root(tmp_path):
    for split, n in SPLIT_SIZES.items():
        for label, cname in enumerate(CLASSES):
            for i in range(n):
                write_jpeg(tmp_path / "tiny" / split / cname / f"{i}.jpg", size=(48, 36),
                           seed=100 * label + i)
    return tmp_path


@pytest.fixture
def cfg(tiny_root):
    cfg = get_cfg_default()
    cfg.DATASET.ROOT = str(tiny_root)
    cfg.DATASET.NAME = "TinyTestData"
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 4
    cfg.DATALOADER.TEST.BATCH_SIZE = 4
    cfg.INPUT.SIZE = (32, 32)
    cfg.INPUT.INTERPOLATION = "bicubic"
    cfg.INPUT.TRANSFORMS = ("random_resized_crop", "random_flip", "normalize")
    cfg.INPUT.PIXEL_MEAN = CLIP_MEAN
    cfg.INPUT.PIXEL_STD = CLIP_STD
    return cfg


def fields(items):
    return [(it.impath, it.label, it.domain, it.classname) for it in items]


# ---------------------------------------------------------------- Datum / DatasetBase

def test_datum_missing_file_names_path(tmp_path):
    missing = str(tmp_path / "nope.jpg")
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        Datum(impath=missing, label=0)


def test_datum_is_read_only_and_pickle_compatible(tmp_path):
    item = make_items(tmp_path, [3])[0]
    assert (item.label, item.domain, item.classname) == (3, 0, "class3")
    with pytest.raises(AttributeError):
        item.label = 1
    assert not hasattr(Datum, "__slots__")
    assert set(vars(item)) == {"_impath", "_label", "_domain", "_classname"}
    assert "label=3" in repr(item)


def test_datum_mt_setters():
    item = DatumMT(impath="/not/checked.jpg", label=[1], task=[0])
    item.label, item.task, item.box = [2, 0], [0, 1], (1, 2, 3, 4)
    assert (item.label, item.task, item.box) == ([2, 0], [0, 1], (1, 2, 3, 4))


def test_dataset_base_derives_classes_from_train_x(tmp_path):
    train = make_items(tmp_path / "a", [2, 0, 2])
    test = make_items(tmp_path / "b", [0, 1, 2, 3])
    ds = DatasetBase(train_x=train, test=test)
    assert ds.num_classes == 3
    assert ds.lab2cname == {0: "class0", 2: "class2"}
    assert ds.classnames == ["class0", "class2"]
    assert ds.train_x is train and ds.test is test and ds.val is None and ds.train_u is None


@pytest.mark.parametrize("fmt", ["zip", "gztar"])
def test_download_data_extracts_archives(tmp_path, fmt):
    write_jpeg(tmp_path / "src" / "pets" / "a.jpg")
    archive = shutil.make_archive(str(tmp_path / "pets"), fmt, root_dir=tmp_path / "src")
    dst = tmp_path / "data" / os.path.basename(archive)
    DatasetBase(train_x=[]).download_data("file://" + archive, str(dst), from_gdrive=False)
    assert (tmp_path / "data" / "pets" / "a.jpg").is_file()


def test_domain_checks():
    ds = DatasetBase(train_x=[])
    ds.domains = ["photo", "sketch"]
    ds.check_input_domains(["photo"], ["sketch"])
    with pytest.raises(ValueError, match="cartoon"):
        ds.is_input_domain_valid(["cartoon"])
    with pytest.raises(ValueError):
        ds.check_input_domains([], ["sketch"])


# ---------------------------------------------------------------- few-shot sampling

def reference_fewshot(items, k, repeat=False):
    """Straightforward restatement of the contract, for comparison."""
    order, groups = [], {}
    for it in items:
        if it.label not in groups:
            order.append(it.label)
            groups[it.label] = []
        groups[it.label].append(it)
    out = []
    for label in order:
        g = groups[label]
        if len(g) >= k:
            out += random.sample(g, k)
        elif repeat:
            out += random.choices(g, k=k)
        else:
            out += g
    return out


@pytest.fixture
def shuffled_items(tmp_path):
    labels = [2] * 6 + [0] * 5 + [1] * 7 + [3] * 2
    random.Random(0).shuffle(labels)  # first-appearance order != sorted order
    return make_items(tmp_path, labels)


def test_fewshot_matches_reference_rng_semantics(shuffled_items, capsys):
    ds = DatasetBase(train_x=shuffled_items)
    random.seed(7)
    train = ds.generate_fewshot_dataset(shuffled_items, num_shots=4)
    val = ds.generate_fewshot_dataset(shuffled_items, num_shots=3)
    after = random.random()
    assert capsys.readouterr().out == "Creating a 4-shot dataset\nCreating a 3-shot dataset\n"

    random.seed(7)
    ref_train = reference_fewshot(shuffled_items, 4)
    ref_val = reference_fewshot(shuffled_items, 3)
    assert fields(train) == fields(ref_train)
    assert fields(val) == fields(ref_val)
    assert after == random.random()  # same amount of RNG consumed
    # Class with only 2 images keeps both, no duplicates.
    assert Counter(it.label for it in train) == {2: 4, 0: 4, 1: 4, 3: 2}


def test_fewshot_several_sources_print_once(shuffled_items, capsys):
    ds = DatasetBase(train_x=shuffled_items)
    random.seed(1)
    a, b = ds.generate_fewshot_dataset(shuffled_items, shuffled_items[:8], num_shots=2)
    assert capsys.readouterr().out.count("Creating a 2-shot dataset") == 1
    random.seed(1)
    assert fields(a) == fields(reference_fewshot(shuffled_items, 2))
    assert fields(b) == fields(reference_fewshot(shuffled_items[:8], 2))


def test_fewshot_repeat_mode(shuffled_items):
    ds = DatasetBase(train_x=shuffled_items)
    random.seed(3)
    out = ds.generate_fewshot_dataset(shuffled_items, num_shots=6, repeat=True)
    random.seed(3)
    assert fields(out) == fields(reference_fewshot(shuffled_items, 6, repeat=True))
    assert Counter(it.label for it in out) == {0: 6, 1: 6, 2: 6, 3: 6}


def test_fewshot_disabled_returns_input(shuffled_items, capsys):
    ds = DatasetBase(train_x=shuffled_items)
    assert ds.generate_fewshot_dataset(shuffled_items, num_shots=-1) is shuffled_items
    both = ds.generate_fewshot_dataset(shuffled_items, shuffled_items, num_shots=0)
    assert len(both) == 2 and both[0] is shuffled_items
    assert capsys.readouterr().out == ""


def test_dataset_base_mt_samples_per_task_and_class():
    items = [DatumMT(impath=f"/x/{i}.jpg", label=[i % 2, i % 3], task=[0, 1]) for i in range(12)]
    ds = DatasetBaseMT(["t0", "t1"], [["a", "b"], ["c", "d", "e"]], ["", ""], ["cls", "cls"],
                       ["overall_acc", "mean_acc"], train_x=items, test=items)
    assert ds.num_classes == [2, 3]
    assert ds.lab2cname == {0: ["a", "b"], 1: ["c", "d", "e"]}
    groups = ds.split_dataset_by_label(items)
    assert list(groups) == [(0, 0), (1, 0), (0, 1), (1, 1), (1, 2)]
    random.seed(0)
    out = ds.generate_fewshot_dataset(items, num_shots=1)
    assert len(out) == 5


# ---------------------------------------------------------------- few-shot caches

def test_json_cache_round_trip_survives_moving_the_folder(tmp_path, capsys):
    dataset_dir = tmp_path / "machine_a" / "pets"
    train = make_items(dataset_dir / "images", [0, 1, 1])
    val = make_items(dataset_dir / "images", [0])
    path = save_fewshot_cache(str(dataset_dir), 16, 1, {"train": train, "val": val})
    assert path == str(dataset_dir / "split_fewshot" / "shot_16-seed_1.json")
    assert os.listdir(dataset_dir / "split_fewshot") == ["shot_16-seed_1.json"]  # no temp left
    text = open(path).read()
    assert str(tmp_path) not in text and '"images/c0/img000.jpg"' in text

    moved = tmp_path / "machine_b" / "data" / "pets"
    shutil.move(str(dataset_dir), str(moved))
    assert load_fewshot_cache(str(moved), 16, 2) is None
    loaded = load_fewshot_cache(str(moved), 16, 1)
    assert "Loading preprocessed few-shot data from" in capsys.readouterr().out
    assert list(loaded) == ["train", "val"]
    assert all(isinstance(it, Datum) for it in loaded["train"])
    expect = [(str(moved / os.path.relpath(it.impath, dataset_dir)), it.label, it.domain,
               it.classname) for it in train]
    assert fields(loaded["train"]) == expect
    assert all(os.path.isfile(it.impath) for it in loaded["train"] + loaded["val"])


def test_failed_cache_write_leaves_no_file(tmp_path):
    with pytest.raises(TypeError, match="Cannot cache str"):
        save_fewshot_cache(str(tmp_path), 1, 1, {"train": ["not a datum"]})
    assert not os.path.exists(tmp_path / "split_fewshot" / "shot_1-seed_1.json")


def test_json_cache_missing_image_is_a_clear_error(tmp_path):
    train = make_items(tmp_path / "ds" / "images", [0, 1])
    save_fewshot_cache(str(tmp_path / "ds"), 1, 1, {"train": train})
    os.remove(train[1].impath)
    with pytest.raises(FileNotFoundError, match="img001.jpg"):
        load_fewshot_cache(str(tmp_path / "ds"), 1, 1)


def test_json_cache_with_datum_mt(tmp_path):
    item = DatumMT(impath=str(tmp_path / "ds" / "a.jpg"), label=[1, 0], domain=0, task=[0, 2],
                   box=[1, 2, 3, 4])
    save_fewshot_cache(str(tmp_path / "ds"), 2, 5, {"train": [item]})
    (back,) = load_fewshot_cache(str(tmp_path / "ds"), 2, 5)["train"]
    assert isinstance(back, DatumMT)
    assert (back.impath, back.label, back.task, back.box) == (item.impath, [1, 0], [0, 2], [1, 2, 3, 4])


def _upstream_datum_init(self, impath, label, domain, classname):
    self._impath, self._label, self._domain, self._classname = impath, label, domain, classname


# Stand-in for upstream Dassl's Datum: plain instance dict with the four private fields, recorded
# by pickle under upstream's module path and name.
_UpstreamDatum = type("Datum", (), {"__init__": _upstream_datum_init,
                                    "__module__": "dassl.data.datasets.base_dataset"})


def _pickle_as_upstream(monkeypatch, obj, path, protocol=pickle.HIGHEST_PROTOCOL):
    # pickle checks that the module path resolves to the class it writes.
    with monkeypatch.context() as patch:
        patch.setattr(base_dataset, "Datum", _UpstreamDatum)
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=protocol)


def test_reference_pickle_from_upstream_is_preferred_and_loaded(tmp_path, monkeypatch):
    dataset_dir = tmp_path / "pets"
    real = make_items(dataset_dir / "images", [0, 1, 1])
    save_fewshot_cache(str(dataset_dir), 16, 1, {"train": real[:1]})  # JSON must lose to the pickle
    fake = [_UpstreamDatum(it.impath, it.label, it.domain, it.classname) for it in real]
    _pickle_as_upstream(monkeypatch, {"train": fake, "val": fake[:1]},
                        dataset_dir / "split_fewshot" / "shot_16-seed_1.pkl")
    loaded = load_fewshot_cache(str(dataset_dir), 16, 1)
    assert type(loaded["train"][0]) is Datum
    assert fields(loaded["train"]) == fields(real)
    assert fields(loaded["val"]) == fields(real[:1])


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_restricted_unpickler_reads_real_datum_pickles(tmp_path, protocol):
    items = make_items(tmp_path, [0, 1])
    path = tmp_path / "preprocessed.pkl"
    with open(path, "wb") as f:
        pickle.dump({"train": items, "test": items[:1]}, f, protocol=protocol)
    loaded = restricted_pickle_load(str(path))
    assert fields(loaded["train"]) == fields(items)


def test_reference_pickle_paths_are_rebased(tmp_path, monkeypatch, capsys):
    dataset_dir = tmp_path / "here" / "pets"
    real = make_items(dataset_dir / "images", [0, 1])
    foreign = [_UpstreamDatum("/home/someone/data/pets/" + os.path.relpath(it.impath, dataset_dir),
                              it.label, 0, it.classname) for it in real]
    os.makedirs(dataset_dir / "split_fewshot")
    _pickle_as_upstream(monkeypatch, {"train": foreign},
                        dataset_dir / "split_fewshot" / "shot_1-seed_2.pkl")
    loaded = load_fewshot_cache(str(dataset_dir), 1, 2)
    assert [it.impath for it in loaded["train"]] == [it.impath for it in real]
    assert "/home/someone/data/pets" in capsys.readouterr().out


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_rejects_arbitrary_globals(tmp_path):
    marker = tmp_path / "pwned"
    dataset_dir = tmp_path / "ds"
    os.makedirs(dataset_dir / "split_fewshot")
    path = dataset_dir / "split_fewshot" / "shot_1-seed_1.pkl"
    with open(path, "wb") as f:
        pickle.dump({"train": [_Evil(marker)]}, f)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global .*system"):
        load_fewshot_cache(str(dataset_dir), 1, 1)
    assert not marker.exists()


def test_pickle_that_is_not_a_split_dict_is_rejected(tmp_path):
    os.makedirs(tmp_path / "split_fewshot")
    with open(tmp_path / "split_fewshot" / "shot_1-seed_1.pkl", "wb") as f:
        pickle.dump({"train": ["just a string"]}, f)
    with pytest.raises(ValueError, match="not a few-shot cache"):
        load_fewshot_cache(str(tmp_path), 1, 1)


# ---------------------------------------------------------------- build_dataset / DataManager

def test_build_dataset_unknown_name(cfg):
    cfg.DATASET.NAME = "TinyTestDta"
    with pytest.raises(ValueError, match=r"do you mean \[TinyTestData\]"):
        build_dataset(cfg)


def test_importing_dassl_registers_no_datasets():
    # Other test modules register real datasets; none may come from dassl itself.
    registered = [DATASET_REGISTRY.get(name) for name in DATASET_REGISTRY.registered_names()]
    assert TinyTestData in registered
    assert not [cls for cls in registered if cls.__module__.startswith("dassl.")]
    assert set(dir(dsets)) >= {"Datum", "DatumMT", "DatasetBase", "DatasetBaseMT", "build_dataset"}


def test_data_manager_on_tiny_dataset(cfg, capsys):
    random.seed(0)
    torch.manual_seed(0)
    dm = DataManager(cfg)
    out = capsys.readouterr().out
    assert "Loading dataset: TinyTestData" in out
    table = out[out.index("---------"):]
    assert table == (
        "---------  ------------\n"
        "Dataset    TinyTestData\n"
        "# classes  3\n"
        "# train_x  15\n"
        "# val      6\n"
        "# test     9\n"
        "---------  ------------\n"
    )
    assert dm.num_classes == 3 and dm.num_source_domains == 0
    assert dm.lab2cname == {0: "cat", 1: "dog", 2: "owl"}
    assert dm.dataset.classnames == CLASSES
    assert dm.train_loader_u is None
    # 15 train items >= batch 4 -> drop_last: 3 batches; test/val never drop.
    assert len(dm.train_loader_x) == 3
    assert len(dm.val_loader) == 2 and len(dm.test_loader) == 3
    assert isinstance(dm.train_loader_x.sampler, RandomSampler)
    assert isinstance(dm.test_loader.sampler, SequentialSampler)

    batch = next(iter(dm.train_loader_x))
    assert set(batch) == {"img", "label", "domain", "impath", "index"}
    assert batch["img"].shape == (4, 3, 32, 32)
    assert batch["label"].dtype == torch.int64 and len(batch["impath"]) == 4
    test_batch = next(iter(dm.test_loader))
    assert test_batch["index"].tolist() == [0, 1, 2, 3]
    assert test_batch["label"].tolist() == [0, 0, 0, 1]


def test_data_manager_few_shot_and_quiet(cfg, capsys):
    cfg.DATASET.NUM_SHOTS = 2
    cfg.VERBOSE = False
    dm = DataManager(cfg)
    assert len(dm.dataset.train_x) == 6
    assert "# train_x" not in capsys.readouterr().out
    # 6 items >= batch 4 -> 1 full batch; batch 8 > 6 -> no drop, one partial batch.
    assert len(dm.train_loader_x) == 1
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 8
    dm = DataManager(cfg)
    assert len(dm.train_loader_x) == 1
    assert next(iter(dm.train_loader_x))["img"].shape[0] == 6


def test_build_data_loader_drop_last_rule(cfg, tmp_path):
    items = make_items(tmp_path, [0, 1, 0, 1, 0])
    tfm = build_transform(cfg, is_train=False)
    assert build_data_loader(cfg, "RandomSampler", items, batch_size=2, tfm=tfm).drop_last
    small = build_data_loader(cfg, "RandomSampler", items, batch_size=8, tfm=tfm)
    assert not small.drop_last and len(small) == 1
    assert not build_data_loader(cfg, "SequentialSampler", items, batch_size=2, tfm=tfm,
                                 is_train=False).drop_last
    with pytest.raises(ValueError, match="Empty data loader"):
        build_data_loader(cfg, "SequentialSampler", [], batch_size=2, tfm=tfm, is_train=False)


def test_custom_transforms_are_announced(cfg, capsys):
    cfg.VERBOSE = False
    tfm = T.Compose([T.Resize((32, 32)), T.ToTensor()])
    dm = DataManager(cfg, custom_tfm_train=tfm, custom_tfm_test=tfm)
    out = capsys.readouterr().out
    assert "* Using custom transform for training" in out
    assert "* Using custom transform for testing" in out
    assert dm.train_loader_x.dataset.transform is tfm


@DATASET_REGISTRY.register()
class TinyTestDataMT(DatasetBaseMT):
    """Two tasks over the tiny images: task 0 = the three classes, task 1 = "first image or not"."""

    def __init__(self, cfg):
        root = os.path.join(cfg.DATASET.ROOT, "tiny", "train")
        items = [DatumMT(impath=os.path.join(root, cname, f"{i}.jpg"), label=[label, int(i == 0)],
                         task=[0, 1])
                 for label, cname in enumerate(CLASSES) for i in range(SPLIT_SIZES["train"])]
        super().__init__(["animals", "first"], [CLASSES, ["no", "yes"]], ["", ""], ["cls", "cls"],
                         ["overall_acc", "mean_acc"], train_x=items, test=items)


def test_data_manager_multi_task(cfg, capsys):
    cfg.DATASET.NAME = "TinyTestDataMT"
    dm = DataManager(cfg)
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    assert ["#", "tasks", "2"] in rows and ["#", "classes", "(animals)", "3"] in rows
    assert ["#", "classes", "(first)", "2"] in rows
    assert isinstance(dm.test_loader.dataset, DatasetWrapperMT)
    batch = next(iter(dm.test_loader))
    assert "index" not in batch
    assert batch["label"].tolist()[:2] == [[1, 0, 0, 0, 1], [1, 0, 0, 1, 0]]


# ---------------------------------------------------------------- DatasetWrapper

def test_wrapper_variants(cfg, tmp_path):
    items = make_items(tmp_path, [0, 1])
    tfm = build_transform(cfg, is_train=True)
    cfg.DATALOADER.K_TRANSFORMS = 3
    cfg.DATALOADER.RETURN_IMG0 = True
    out = DatasetWrapper(cfg, items, transform=[tfm, tfm], is_train=True)[1]
    assert out["label"] == 1 and out["index"] == 1 and out["impath"] == items[1].impath
    assert len(out["img"]) == 3 and len(out["img2"]) == 3
    assert out["img0"].shape == (3, 32, 32)
    single = DatasetWrapper(cfg, items, transform=tfm, is_train=False)[0]  # k = 1 at test time
    assert single["img"].shape == (3, 32, 32)
    raw = DatasetWrapper(cfg, items, transform=None)[0]["img"]
    assert isinstance(raw, Image.Image) and raw.mode == "RGB"
    with pytest.raises(ValueError, match="transform is None"):
        DatasetWrapper(cfg, items, transform=None, is_train=True)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_wrapper_unreadable_image_names_path_and_dataset(cfg, tmp_path, damage):
    items = make_items(tmp_path, [0, 1])
    bad = items[1].impath
    if damage == "truncate":
        data = open(bad, "rb").read()
        open(bad, "wb").write(data[: len(data) // 2])
    elif damage == "garbage":
        open(bad, "wb").write(b"this is not a jpeg")
    else:
        os.remove(bad)
    loader = build_data_loader(cfg, "SequentialSampler", items, batch_size=2,
                               tfm=build_transform(cfg, is_train=False), is_train=False)
    with pytest.raises(ImageReadError, match=rf'Cannot read image "{bad}" of dataset TinyTestData'):
        next(iter(loader))


def test_wrapper_mt_labels_and_path_rewrite(cfg, tmp_path):
    path = write_jpeg(tmp_path / "new" / "a.jpg")
    items = [DatumMT(impath=str(tmp_path / "old" / "a.jpg"), label=[1, 0], task=[0, 2])]
    wrapper = DatasetWrapperMT(cfg, items, transform=build_transform(cfg, is_train=False),
                               taskid2cname=[["a", "b"], ["c"], ["d", "e", "f"]],
                               old_data_path=str(tmp_path / "old"), new_data_path=str(tmp_path / "new"))
    out = wrapper[0]
    assert out["impath"] == path and "index" not in out
    assert out["label"].tolist() == [0, 1, -1, 1, 0, 0]


# ---------------------------------------------------------------- samplers

def domain_items(tmp_path):
    domains = [0] * 8 + [1] * 6 + [2] * 10
    labels = [i % 3 for i in range(len(domains))]
    return make_items(tmp_path, labels, domains)


def test_build_sampler_types(tmp_path):
    items = domain_items(tmp_path)
    assert isinstance(build_sampler("RandomSampler", data_source=items), RandomSampler)
    assert list(build_sampler("SequentialSampler", data_source=items)) == list(range(len(items)))
    with pytest.raises(ValueError, match="Unknown sampler type: Foo"):
        build_sampler("Foo", data_source=items)


def test_random_domain_sampler(tmp_path):
    items = domain_items(tmp_path)
    random.seed(0)
    sampler = build_sampler("RandomDomainSampler", data_source=items, batch_size=4, n_domain=2)
    # The length is measured on the pass run at construction; later passes may differ.
    assert len(sampler) % 4 == 0
    idxs = list(sampler)
    assert len(idxs) % 4 == 0
    assert len(set(idxs)) == len(idxs)  # no reuse
    for b in range(0, len(idxs), 4):
        doms = [items[i].domain for i in idxs[b:b + 4]]
        assert doms[0] == doms[1] and doms[2] == doms[3] and doms[0] != doms[2]
    with pytest.raises(ValueError):
        RandomDomainSampler(items, batch_size=5, n_domain=2)
    assert RandomDomainSampler(items, batch_size=6, n_domain=0).n_domain == 3


def test_seq_domain_sampler(tmp_path):
    items = domain_items(tmp_path)
    idxs = list(SeqDomainSampler(items, batch_size=6))
    for b in range(0, len(idxs), 6):
        assert [items[i].domain for i in idxs[b:b + 6]] == [0, 0, 1, 1, 2, 2]
    assert len(idxs) == 18  # domain 1 (6 images) runs short after three batches


def test_random_class_sampler(tmp_path):
    items = make_items(tmp_path, [0] * 5 + [1] * 2 + [2] * 4)
    np.random.seed(0)
    random.seed(0)
    sampler = RandomClassSampler(items, batch_size=4, n_ins=2)
    idxs = list(sampler)
    assert len(sampler) % 4 == 0 and len(idxs) % 4 == 0
    for b in range(0, len(idxs), 2):
        assert items[idxs[b]].label == items[idxs[b + 1]].label
    with pytest.raises(ValueError, match="no less than"):
        RandomClassSampler(items, batch_size=1, n_ins=2)


# ---------------------------------------------------------------- transforms

def test_transform_printed_lines(cfg, capsys):
    build_transform(cfg, is_train=True)
    build_transform(cfg, is_train=False)
    assert capsys.readouterr().out.splitlines() == [
        "Building transform_train",
        "+ random resized crop (size=(32, 32), scale=(0.08, 1.0))",
        "+ random flip",
        "+ to torch tensor of range [0, 1]",
        f"+ normalization (mean={CLIP_MEAN}, std={CLIP_STD})",
        "Building transform_test",
        "+ resize the smaller edge to 32",
        "+ 32x32 center crop",
        "+ to torch tensor of range [0, 1]",
        f"+ normalization (mean={CLIP_MEAN}, std={CLIP_STD})",
    ]


def test_transform_without_crop_resizes_and_center_crop_is_a_noop(cfg, capsys):
    tfm = build_transform(cfg, is_train=True, choices=["center_crop", "random_flip"])
    assert capsys.readouterr().out.splitlines()[:3] == [
        "Building transform_train", "+ resize to 32x32", "+ random flip"]
    assert [type(t).__name__ for t in tfm.transforms] == ["Resize", "RandomHorizontalFlip", "ToTensor"]


def test_train_transform_consumes_torch_rng_like_torchvision(cfg):
    img = Image.open(write_jpeg(cfg.DATASET.ROOT + "/x.jpg", size=(50, 40)))
    tfm = build_transform(cfg, is_train=True)
    ref = T.Compose([T.RandomResizedCrop((32, 32), interpolation=T.InterpolationMode.BICUBIC),
                     T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)])
    torch.manual_seed(5)
    a = [tfm(img) for _ in range(3)]
    torch.manual_seed(5)
    b = [ref(img) for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_test_transform_is_deterministic_bicubic(cfg):
    img = Image.open(write_jpeg(cfg.DATASET.ROOT + "/x.jpg", size=(50, 40)))
    tfm = build_transform(cfg, is_train=False)
    assert INTERPOLATION_MODES["bicubic"] == T.InterpolationMode.BICUBIC
    assert tfm.transforms[0].interpolation == T.InterpolationMode.BICUBIC
    out = tfm(img)
    assert out.shape == (3, 32, 32) and torch.equal(out, tfm(img))
    expect = TF.normalize(TF.to_tensor(TF.center_crop(img.resize((40, 32), Image.BICUBIC), [32, 32])),
                          CLIP_MEAN, CLIP_STD)
    assert torch.allclose(out, expect, atol=1e-6)


def test_every_choice_builds_and_runs(cfg):
    img = Image.open(write_jpeg(cfg.DATASET.ROOT + "/x.jpg", size=(50, 40)))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    for choice in AVAI_CHOICES:
        choices = [choice] if choice != "normalize" else ["normalize", "instance_norm"]
        out = build_transform(cfg, is_train=True, choices=choices)(img)
        assert out.shape == (3, 32, 32), choice
    normed = build_transform(cfg, is_train=True, choices=["instance_norm"])(img)
    assert torch.allclose(normed.reshape(3, -1).mean(1), torch.zeros(3), atol=1e-5)


def test_no_transform_and_invalid_choice(cfg, capsys):
    with pytest.raises(ValueError, match="flip_it"):
        build_transform(cfg, choices=["flip_it"])
    cfg.INPUT.NO_TRANSFORM = True
    assert build_transform(cfg) is None
    assert "Note: no transform is applied!" in capsys.readouterr().out
