"""Image-feature cache of frozen image towers (trainers/image_cache.py) and text features once per
evaluation: keys, atomic writes, corrupt files, the config switch, and real trainers on the tiny CLIP
whose second evaluation reads no image and runs no image tower."""
from __future__ import annotations

import copy
import os

import pytest
import torch

import clip.clip as clip_module
from clip.testing import write_tiny_checkpoint
from trainers import image_cache
from trainers.common import l2_normalize
from trainers.image_cache import FeatureKey, FeatureStore, feature_key

from fixtures.data_fixtures import make_cfg

COOP_YAML = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "configs/trainers/CoOp/vit_b16_ep50.yaml")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> str:
    """EuroSAT miniature: 2 classes x 4 images (2 test images: few tower runs keep the tests fast)."""
    from datasets.miniature import make_miniature

    root = tmp_path_factory.mktemp("image_cache_data")
    make_miniature("EuroSAT", str(root), n_classes=2, n_per_class=4)
    return str(root)


def cfg_for(data_root, weights, cache_dir, *opts):
    return make_cfg("EuroSAT", data_root, "MODEL.BACKBONE.NAME", weights, "TEST.IMAGE_FEATURE_CACHE_DIR",
                    str(cache_dir), "DATALOADER.TEST.BATCH_SIZE", 4, *opts, config_files=[COOP_YAML],
                    all_keys=True)


def loader_of(cfg):
    from dassl.data import DataManager

    return DataManager(cfg).test_loader


def a_key(**changes) -> FeatureKey:
    parts = dict(weights="w" * 64, images="i" * 64, transform="Compose()", dtype="torch.float32",
                 device="cpu", n_images=3)
    parts.update(changes)
    return FeatureKey(**parts)


# --- the store -------------------------------------------------------------------------------

def test_store_miss_then_hit(tmp_path):
    store, key = FeatureStore(str(tmp_path / "cache")), a_key()
    assert store.load(key) is None  # the directory does not even exist yet
    features, labels = torch.randn(3, 8), torch.tensor([2, 0, 1])
    path = store.save(key, features, labels)
    assert os.path.basename(path) == key.file_name() and len(key.file_name()) == 64 + 3
    assert set(key.file_name()[:-3]) <= set("0123456789abcdef")
    loaded = store.load(key)
    assert torch.equal(loaded[0], features) and torch.equal(loaded[1], labels)
    assert store.load(a_key(n_images=4)) is None  # another key: another file


def test_key_parts_all_change_the_file(tmp_path):
    names = {a_key(**change).file_name() for change in (
        {}, {"weights": "x" * 64}, {"images": "y" * 64}, {"transform": "Compose(Resize)"},
        {"dtype": "torch.float16"}, {"device": "cuda"}, {"software": "format 2"})}
    assert len(names) == 7


def test_atomic_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    store, key = FeatureStore(str(tmp_path)), a_key()
    store.save(key, torch.ones(3, 2), torch.zeros(3, dtype=torch.long))

    def half_write(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(image_cache.torch, "save", half_write)
    with pytest.raises(OSError, match="disk full"):
        store.save(key, torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == [key.file_name()]  # no temporary file left behind
    assert torch.equal(store.load(key)[0], torch.ones(3, 2))  # the old content, complete


@pytest.mark.parametrize("content", [b"", b"not a torch file", "truncated", "other key", "wrong shape"])
def test_corrupt_or_mismatched_file_is_ignored(tmp_path, capsys, content):
    store, key = FeatureStore(str(tmp_path)), a_key()
    path = store.save(key, torch.ones(3, 2), torch.zeros(3, dtype=torch.long))
    if content == "truncated":
        data = open(path, "rb").read()
        content = data[: len(data) // 2]
    elif content == "other key":
        torch.save({"key": {"weights": "x"}, "features": torch.ones(3, 2), "labels": torch.zeros(3)}, path)
    elif content == "wrong shape":
        store.save(key, torch.ones(2, 2), torch.zeros(2, dtype=torch.long))
    if isinstance(content, bytes):
        with open(path, "wb") as f:
            f.write(content)
    capsys.readouterr()
    assert store.load(key) is None
    assert "Image feature cache: ignoring" in capsys.readouterr().out


# --- the key ---------------------------------------------------------------------------------

def test_key_follows_weights_images_transform_and_dtype(data_root, tmp_path, monkeypatch):
    weights = write_tiny_checkpoint(str(tmp_path / "w.pt"))
    cfg = cfg_for(data_root, weights, tmp_path / "cache")
    loader = loader_of(cfg)
    cpu = torch.device("cpu")
    key = feature_key(cfg, loader, torch.float32, cpu)
    assert key.n_images == 2 and key == feature_key(cfg, loader, torch.float32, cpu)

    # Hashed once per (path, size, mtime): the second key above did not read the file again.
    hashed = []
    monkeypatch.setattr(clip_module, "_sha256", lambda path: hashed.append(path) or "h")
    feature_key(cfg, loader, torch.float32, cpu)
    assert hashed == []
    monkeypatch.undo()

    assert feature_key(cfg, loader, torch.float16, cpu) != key
    other = cfg_for(data_root, weights, tmp_path / "cache", "INPUT.INTERPOLATION", "bilinear")
    assert feature_key(other, loader_of(other), torch.float32, cpu).transform != key.transform

    # An image list in another order, or with a changed file, is another list.
    loader.dataset.data_source.reverse()
    assert feature_key(cfg, loader, torch.float32, cpu).images != key.images
    loader.dataset.data_source.reverse()
    first = loader.dataset.data_source[0].impath
    st = os.stat(first)
    os.utime(first, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        assert feature_key(cfg, loader, torch.float32, cpu).images != key.images
    finally:
        os.utime(first, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert feature_key(cfg, loader, torch.float32, cpu) == key

    # Replaced weights (same size, new content and mtime) give another digest.
    write_tiny_checkpoint(weights, seed=1)
    st = os.stat(weights)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert feature_key(cfg, loader, torch.float32, cpu).weights != key.weights


def test_no_key_for_unknown_transform_or_random_order(data_root, tmp_path):
    cfg = cfg_for(data_root, write_tiny_checkpoint(str(tmp_path / "w.pt")), tmp_path / "cache")
    loader = loader_of(cfg)
    loader.dataset.transform = lambda image: image
    assert feature_key(cfg, loader, torch.float32, torch.device("cpu")) is None
    shuffled = torch.utils.data.DataLoader(loader_of(cfg).dataset, batch_size=4, shuffle=True)
    assert feature_key(cfg, shuffled, torch.float32, torch.device("cpu")) is None


# --- through real trainers -------------------------------------------------------------------
# Built once per module (loading CLIP dominates); each test points the trainer at its own cache
# directory through the config.

@pytest.fixture(scope="module", autouse=True)
def clip_read_once():
    """Each trainer gets a copy of one loaded CLIP per weights file (building CLIP is the slow part)."""
    import trainers.common

    loaded = {}
    load = trainers.common.load_clip_to_cpu

    def load_once(cfg):
        name = cfg.MODEL.BACKBONE.NAME
        if name not in loaded:
            loaded[name] = load(cfg)
        return copy.deepcopy(loaded[name])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainers.common, "load_clip_to_cpu", load_once)
        yield


def build(data_root, weights, name, *opts):
    from dassl.engine import build_trainer

    return build_trainer(cfg_for(data_root, weights, "unused", "TRAINER.NAME", name,
                                 "DATALOADER.TEST.BATCH_SIZE", 1, *opts))


@pytest.fixture(scope="module")
def coop(data_root, tiny_vit_path):
    return build(data_root, tiny_vit_path, "CoOp", "TRAINER.COOP.N_CTX", 4)


@pytest.fixture(scope="module")
def cocoop(data_root, tiny_vit_path):
    return build(data_root, tiny_vit_path, "CoCoOp", "TRAINER.COCOOP.N_CTX", 4)


@pytest.fixture(scope="module")
def maple(data_root, tiny_vit_path):
    return build(data_root, tiny_vit_path, "MaPLe", "TRAINER.MAPLE.PROMPT_DEPTH", 2)


def configure(trainer, cache_dir, enabled: bool = True):
    trainer.cfg.defrost()
    trainer.cfg.TEST.IMAGE_FEATURE_CACHE_DIR = str(cache_dir)
    trainer.cfg.TEST.IMAGE_FEATURE_CACHE = enabled
    trainer.cfg.freeze()
    return trainer


def evaluate(trainer) -> tuple[float, torch.Tensor]:
    """(accuracy, every output of the evaluation) of trainer.test()."""
    outputs = []
    process = trainer.evaluator.process
    trainer.evaluator.process = lambda output, label: (outputs.append(output.clone()), process(output, label))
    try:
        accuracy = trainer.test()
    finally:
        trainer.evaluator.process = process
    return accuracy, torch.cat(outputs)


def forbid_images_and_image_tower(monkeypatch, clip_model):
    import dassl.data.data_manager as data_manager

    def no_read(path):
        raise AssertionError(f"image read: {path}")

    def no_tower(*args, **kwargs):
        raise AssertionError("image tower run")

    monkeypatch.setattr(data_manager, "read_image", no_read)
    monkeypatch.setattr(clip_model.visual, "forward", no_tower)


@pytest.mark.parametrize("name", ["coop", "cocoop"])
def test_second_evaluation_reads_no_image_and_runs_no_tower_config_turns_it_off(name, request, tmp_path,
                                                                                monkeypatch, capsys):
    cache = tmp_path / "cache"
    trainer = configure(request.getfixturevalue(name), cache)
    capsys.readouterr()
    first_acc, first = evaluate(trainer)
    out = capsys.readouterr().out
    assert "Image feature cache: wrote" in out and len(os.listdir(cache)) == 1

    with monkeypatch.context() as patch:
        forbid_images_and_image_tower(patch, trainer.model.clip)
        second_acc, second = evaluate(trainer)
    out = capsys.readouterr().out
    assert "Image feature cache: using" in out and "(2 images; no image is read)" in out
    assert second_acc == first_acc and torch.equal(second, first)

    # TEST.IMAGE_FEATURE_CACHE False: Dassl's path, nothing read or written, the same outputs.
    off_acc, off = evaluate(configure(trainer, tmp_path / "off", enabled=False))
    assert "Image feature cache" not in capsys.readouterr().out and not (tmp_path / "off").exists()
    assert off_acc == first_acc and torch.allclose(off, first, rtol=1e-5, atol=1e-6)


def test_other_trainers_reuse_the_features(coop, cocoop, data_root, tiny_vit_path, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    configure(coop, cache).test()
    [cached] = os.listdir(cache)
    zero_shot = build(data_root, tiny_vit_path, "ZeroshotCLIP", "SEED", 2)
    for trainer, clip_model in ((zero_shot, zero_shot.clip_model), (cocoop, cocoop.model.clip)):
        capsys.readouterr()
        with monkeypatch.context() as patch:
            forbid_images_and_image_tower(patch, clip_model)
            configure(trainer, cache).test()
        assert f"Image feature cache: using {cache / cached}" in capsys.readouterr().out
    assert os.listdir(cache) == [cached]


def test_corrupt_cache_file_is_rewritten(coop, tmp_path, capsys):
    cache = tmp_path / "cache"
    configure(coop, cache)
    key = feature_key(coop.cfg, coop.test_loader, coop.model.dtype, coop.device)
    cache.mkdir()
    (cache / key.file_name()).write_bytes(b"garbage")
    capsys.readouterr()
    acc = coop.test()
    out = capsys.readouterr().out
    assert "ignoring unreadable" in out and "Image feature cache: wrote" in out
    assert coop.test() == acc and "Image feature cache: using" in capsys.readouterr().out
    assert os.listdir(cache) == [key.file_name()]


# --- text features once per evaluation -------------------------------------------------------

@pytest.fixture(scope="module")
def ivlp(data_root, tiny_vit_path):
    return build(data_root, tiny_vit_path, "IVLP", "TRAINER.IVLP.PROMPT_DEPTH_TEXT", 2,
                 "TRAINER.IVLP.PROMPT_DEPTH_VISION", 2)


@pytest.mark.parametrize("name", ["coop", "maple", "ivlp"])
def test_text_features_once_per_evaluation(name, request, tmp_path, monkeypatch, capsys):
    """... and the image features of prompted image towers (MaPLe, IVLP) are never cached."""
    import trainers.base

    cache = tmp_path / "cache"
    trainer = configure(request.getfixturevalue(name), cache)
    calls = []
    encode = trainers.base.encode_text
    monkeypatch.setattr(trainers.base, "encode_text", lambda *a, **k: calls.append(1) or encode(*a, **k))
    assert len(trainer.test_loader) == 2
    trainer.model.text_cache.clear()  # an earlier test may have left this evaluation's value
    trainer.test()
    assert len(calls) == 1  # 2 batches, one text encoding

    model = trainer.model
    with torch.no_grad():
        cached = model.text_features()
        fresh = l2_normalize(trainers.base.encode_text(model.clip, model.prompt_module().text_prompt()))
    assert len(calls) == 2  # text_features() returned the cached value without encoding
    assert torch.equal(cached, fresh)

    # Changed prompts (as after an optimizer step): the next evaluation encodes once more.
    with torch.no_grad():
        next(model.prompt_module().parameters()).add_(1e-3)
    trainer.test()
    assert len(calls) == 3
    assert (name == "coop") == cache.exists()
    assert (name == "coop") == ("Image feature cache" in capsys.readouterr().out)
