"""Test-time image features of frozen image towers, cached on disk across runs.

When a trainer's image tower has no prompts (zero-shot, linear probe, CoOp, CoCoOp), its output for
a test image depends only on the weights file, the image file, the test transform, the dtype and
the device type. The first evaluation stores the features of the whole split; every later one
(another epoch, seed, trainer or run on the same data) iterates over them in the loader's batch
order, with the labels stored beside them, and neither reads an image nor runs the image tower.
Training is unaffected (random augmentations).

Keys: the SHA256 of the weights file (memoised per path, size and mtime), of the ordered image list
(path, label, file size and mtime of every image), the transform's description, the dtype, the
device type and the software versions. A cache file is named after the key's SHA256, written
atomically (temporary file + os.replace), loaded with torch.load(weights_only=True), and ignored
(then rewritten) when it cannot be read or does not hold what its key says.

Config (added by `extend_cfg`, called by train.py through the `trainers` package):
TEST.IMAGE_FEATURE_CACHE (True) turns the cache on or off; TEST.IMAGE_FEATURE_CACHE_DIR ("") is
the directory, empty meaning $PROMPTKIT_IMAGE_FEATURE_CACHE or ~/.cache/promptkit/image_features.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from typing import Any, Iterator, Optional, Protocol, Sequence

import torch
from torch import Tensor
from tqdm import tqdm
from yacs.config import CfgNode

from clip import clip
from dassl.utils.distributed import all_ranks_true, gather_objects, interleave, is_main_process

ENV_DIR = "PROMPTKIT_IMAGE_FEATURE_CACHE"
DEFAULT_DIR = os.path.join("~", ".cache", "promptkit", "image_features")
# Bump when what the image towers compute changes (clip/model.py), so that old files are not used.
CACHE_FORMAT = 1
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def extend_cfg(cfg: CfgNode) -> None:
    cfg.TEST.IMAGE_FEATURE_CACHE = True  # reuse test-time features of frozen image towers
    cfg.TEST.IMAGE_FEATURE_CACHE_DIR = ""  # "": $PROMPTKIT_IMAGE_FEATURE_CACHE or ~/.cache/promptkit/image_features


def cache_enabled(cfg: CfgNode) -> bool:
    # .get: configs built without the project keys (Dassl defaults only) keep the default.
    return bool(cfg.TEST.get("IMAGE_FEATURE_CACHE", True))


def cache_dir(cfg: CfgNode) -> str:
    directory = cfg.TEST.get("IMAGE_FEATURE_CACHE_DIR", "") or os.environ.get(ENV_DIR) or DEFAULT_DIR
    return os.path.expanduser(directory)


def weights_file(name_or_path: str) -> str:
    """The file `clip.load(name_or_path)` reads (an OpenAI model name or a path)."""
    if name_or_path in clip._MODELS:
        return os.path.join(clip.weights_dir(), os.path.basename(clip._MODELS[name_or_path]))
    return os.path.expanduser(name_or_path)


def weights_sha256(name_or_path: str) -> str:
    # Memoised by path, inode, size and mtime; for OpenAI files clip.load has already filled it.
    return clip._file_sha256(weights_file(name_or_path))


def image_list_sha256(items: Sequence[Any]) -> str:
    """SHA256 of the ordered (impath, label, size, mtime) of every item (Dassl Datum)."""
    digest = hashlib.sha256()
    for item in items:
        st = os.stat(item.impath)
        digest.update(json.dumps([item.impath, item.label, st.st_size, st.st_mtime_ns]).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def describe_transform(transform: Any) -> Optional[str]:
    """A description that changes with the transform's settings, or None if repr() cannot tell.

    torchvision transforms print their parameters; a named function is identified by its name
    (its address is dropped). A lambda or an object with the default repr says nothing about
    what it does, so such a transform is not cached.
    """
    text = repr(transform)
    if "<lambda>" in text or "object at 0x" in text:
        return None
    return _ADDRESS.sub("", text)


def software_versions() -> str:
    """Decoding, resizing and the towers' kernels may change with these."""
    # Package metadata, not imports: importing torchvision here would slow down `import trainers`.
    return f"format {CACHE_FORMAT}; torch {torch.__version__}; torchvision {version('torchvision')}; " \
           f"Pillow {version('pillow')}"


@dataclass(frozen=True)
class FeatureKey:
    """Everything a frozen tower's features of a list of images depend on."""

    weights: str  # SHA256 of the weights file
    images: str  # image_list_sha256 of the items, in loader order
    transform: str  # describe_transform of the test transform
    dtype: str  # the tower's dtype, e.g. "torch.float32"
    device: str  # device type, e.g. "cpu"
    n_images: int
    software: str = field(default_factory=software_versions)

    def file_name(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest() + ".pt"


class FeatureStore:
    """Cache files (features (N, D), labels (N,), key) in one directory."""

    def __init__(self, directory: str):
        self.directory = directory

    def path(self, key: FeatureKey) -> str:
        return os.path.join(self.directory, key.file_name())

    def load(self, key: FeatureKey) -> Optional[tuple[Tensor, Tensor]]:
        """(features, labels) for key, or None when absent or unusable (a line says which)."""
        path = self.path(key)
        if not os.path.isfile(path):
            return None
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            features, labels = data["features"], data["labels"]
            valid = (
                data["key"] == asdict(key)
                and isinstance(features, Tensor) and isinstance(labels, Tensor)
                and features.dim() == 2 and features.shape[0] == key.n_images
                and labels.shape[:1] == (key.n_images,)
            )
        except Exception as err:  # truncated, not a torch file, unexpected content, ...
            print(f"Image feature cache: ignoring unreadable {path} ({type(err).__name__}: {err}); rewriting it")
            return None
        if not valid:
            print(f"Image feature cache: ignoring {path} (its content does not match its key); rewriting it")
            return None
        return features, labels

    def save(self, key: FeatureKey, features: Tensor, labels: Tensor) -> str:
        """Write atomically: readers see the old file or the complete new one, never a partial one."""
        os.makedirs(self.directory, exist_ok=True)
        path = self.path(key)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save({"key": asdict(key), "features": features, "labels": labels}, f)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path


class FrozenImageModel(Protocol):
    """A model whose logits depend on the image only through a frozen image tower.

    model(image) == model.forward_features(model.encode_image(image)); `encode_image` is the raw
    tower output (what is cached, shared by all such models of the same weights).
    """

    dtype: torch.dtype

    def encode_image(self, image: Tensor) -> Tensor: ...

    def forward_features(self, image_features: Tensor) -> Tensor: ...


def feature_key(cfg: CfgNode, loader: Any, dtype: torch.dtype, device: torch.device) -> Optional[FeatureKey]:
    """The key of `loader`'s images, or None when its features cannot be cached.

    Only Dassl's plain DatasetWrapper in sequential order (or a torchrun shard of it) qualifies:
    another wrapper may read or label items differently, and another sampler gives another order.
    The key is that of the whole split, on every process.
    """
    from dassl.data.data_manager import DatasetWrapper
    from dassl.data.samplers import ShardSampler

    dataset = loader.dataset
    sampler = loader.sampler.sampler if isinstance(loader.sampler, ShardSampler) else loader.sampler
    if type(dataset) is not DatasetWrapper or not isinstance(sampler, torch.utils.data.SequentialSampler):
        return None
    transform = dataset.transform
    if isinstance(transform, (list, tuple)):
        transform = transform[0]  # the "img" view, the one the test uses
    description = describe_transform(transform)
    weights = weights_file(cfg.MODEL.BACKBONE.NAME)
    if description is None or not os.path.isfile(weights):
        return None
    try:
        images = image_list_sha256(dataset.data_source)
    except OSError:
        return None  # a missing image: the normal path reports it
    return FeatureKey(weights=weights_sha256(weights), images=images, transform=description,
                      dtype=str(dtype), device=device.type, n_images=len(dataset.data_source))


class ImageFeatureCacheMixin:
    """test() through the feature cache; put it before TrainerX in the bases of a trainer.

    The cache is used when `frozen_image_model()` returns a model (default: `self.model`, if it
    sets `frozen_image_encoder = True`) and TEST.IMAGE_FEATURE_CACHE is on; otherwise test() is
    Dassl's.
    """

    def frozen_image_model(self) -> Optional[FrozenImageModel]:
        model = getattr(self, "model", None)
        return model if getattr(model, "frozen_image_encoder", False) else None

    @torch.no_grad()
    def test(self, split: Optional[str] = None) -> float:
        model = self.frozen_image_model()
        if model is None or not cache_enabled(self.cfg):
            return super().test(split)
        if split is None:
            split = self.cfg.TEST.SPLIT
        if split == "val" and self.val_loader is not None:
            loader = self.val_loader
        else:
            split, loader = "test", self.test_loader
        key = feature_key(self.cfg, loader, model.dtype, self.device)
        if key is None:
            return super().test(split)

        self.set_model_mode("eval")
        self.evaluator.reset()
        print(f"Evaluate on the *{split}* set")
        store = FeatureStore(cache_dir(self.cfg))
        cached = store.load(key)
        if not all_ranks_true(cached is not None):  # under torchrun all processes take the same path
            cached = None
        encoded: list[tuple[Tensor, Tensor]] = []  # filled on a miss, then written
        if cached is not None:
            print(f"Image feature cache: using {store.path(key)} ({key.n_images:,} images; no image is read)")
            mine = torch.as_tensor(list(loader.sampler), dtype=torch.long)  # a shard under torchrun
            batches = _batches(cached[0][mine], cached[1][mine], loader.batch_size, self.device)
        else:
            batches = self._encoded_batches(model, loader, encoded)
        for features, label in tqdm(batches, total=len(loader), disable=not is_main_process()):
            self.evaluator.process(model.forward_features(features), label)
        if cached is None:
            _write_cache(store, key, encoded)

        results = self.evaluator.evaluate()
        for k, v in results.items():
            self.write_scalar(f"{split}/{k}", v, self.epoch)
        return list(results.values())[0]

    def _encoded_batches(self, model: FrozenImageModel, loader: Any,
                         into: list[tuple[Tensor, Tensor]]) -> Iterator[tuple[Tensor, Tensor]]:
        """(features, labels) of each batch through the tower; a CPU copy of each goes to `into`."""
        for batch in loader:
            image, label = self.parse_batch_test(batch)
            features = model.encode_image(image)
            into.append((features.cpu(), label.cpu()))
            yield features, label


def _write_cache(store: FeatureStore, key: FeatureKey, encoded: list[tuple[Tensor, Tensor]]) -> None:
    """Write the features of the split; under torchrun rank 0 gathers the shards and writes."""
    local = tuple(torch.cat(parts) for parts in zip(*encoded)) if encoded else None
    shards = [shard for shard in gather_objects(local) or [] if shard is not None]
    if not is_main_process():
        return
    features, labels = interleave(shards) if len(shards) > 1 else shards[0]
    try:
        path = store.save(key, features, labels)
    except OSError as err:  # a read-only or full disk must not fail the evaluation
        print(f"Image feature cache: could not write to {store.directory} ({err})")
        return
    print(f"Image feature cache: wrote {path} ({key.n_images:,} images)")


def _batches(features: Tensor, labels: Tensor, batch_size: int,
             device: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    for start in range(0, features.shape[0], batch_size):
        end = start + batch_size
        yield features[start:end].to(device), labels[start:end].to(device)


class FrozenClipHeadMixin(ImageFeatureCacheMixin):
    """A trainer that is itself the frozen-image model: a head over `self.clip_model`'s image tower
    (zero-shot classifiers, the linear probe). It defines `forward_features`."""

    clip_model: Any

    def frozen_image_model(self) -> FrozenImageModel:
        return self  # type: ignore[return-value]

    @property
    def dtype(self) -> torch.dtype:
        return self.clip_model.dtype

    def encode_image(self, image: Tensor) -> Tensor:
        return self.clip_model.encode_image(image)
