"""A tiny task for the engine tests: generated JPEGs, a small CNN backbone and a TrainerX.

Run as a script it is train.py with these names registered:
    python tests/tiny_task.py --root ROOT --trainer TinyTrainer --output-dir OUT ...
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from yacs.config import CfgNode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum  # noqa: E402
from dassl.engine import TRAINER_REGISTRY, TrainerX  # noqa: E402
from dassl.metrics import compute_accuracy  # noqa: E402
from dassl.modeling import BACKBONE_REGISTRY, Backbone  # noqa: E402
from dassl.utils import listdir_nohidden  # noqa: E402

DATASET_DIR = "tiny_shapes"
CLASSNAMES = ["red", "green", "blue"]
SPLIT_SIZES = {"train": 8, "val": 4, "test": 6}  # images per class
IMAGE_SIZE = 16


def make_tiny_dataset(root: str, seed: int = 0) -> str:
    """Write root/tiny_shapes/<split>/<class>/<i>.jpg: noisy images tinted by their class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in SPLIT_SIZES.items():
        for label, classname in enumerate(CLASSNAMES):
            folder = os.path.join(root, DATASET_DIR, split, classname)
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 140, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
                pixels[..., label] += 100
                Image.fromarray(pixels.astype(np.uint8)).save(os.path.join(folder, f"{i}.jpg"))
    return os.path.join(root, DATASET_DIR)


TINY_CONFIG = """\
DATALOADER:
  NUM_WORKERS: 0
  TRAIN_X:
    BATCH_SIZE: 8
  TEST:
    BATCH_SIZE: 16
INPUT:
  SIZE: (16, 16)
  TRANSFORMS: ["random_resized_crop", "random_flip", "normalize"]
MODEL:
  BACKBONE:
    NAME: "tiny_cnn"
OPTIM:
  NAME: "sgd"
  LR: 0.05
  MAX_EPOCH: 4
  LR_SCHEDULER: "cosine"
  WARMUP_EPOCH: 1
  WARMUP_TYPE: "constant"
TRAIN:
  PRINT_FREQ: 1
"""


def write_configs(folder: str) -> tuple[str, str]:
    """(dataset YAML, method YAML) for the tiny task, written into folder."""
    os.makedirs(folder, exist_ok=True)
    dataset_cfg = os.path.join(folder, "tiny_shapes.yaml")
    method_cfg = os.path.join(folder, "tiny.yaml")
    with open(dataset_cfg, "w") as f:
        f.write('DATASET:\n  NAME: "TinyShapes"\n')
    with open(method_cfg, "w") as f:
        f.write(TINY_CONFIG)
    return dataset_cfg, method_cfg


@DATASET_REGISTRY.register()
class TinyShapes(DatasetBase):
    """Three colour classes in train/val/test folders; DATASET.NUM_SHOTS samples the train split."""

    dataset_dir = DATASET_DIR

    def __init__(self, cfg: CfgNode) -> None:
        self.dataset_dir = os.path.join(cfg.DATASET.ROOT, self.dataset_dir)
        if not os.path.isdir(self.dataset_dir):
            raise FileNotFoundError(f"TinyShapes dataset folder not found: {self.dataset_dir}")
        train, val, test = (self._read(split) for split in ("train", "val", "test"))
        train = self.generate_fewshot_dataset(train, num_shots=cfg.DATASET.NUM_SHOTS)
        super().__init__(train_x=train, val=val, test=test)

    def _read(self, split: str) -> list[Datum]:
        items = []
        for label, classname in enumerate(CLASSNAMES):
            folder = os.path.join(self.dataset_dir, split, classname)
            for fname in listdir_nohidden(folder, sort=True):
                items.append(Datum(impath=os.path.join(folder, fname), label=label, classname=classname))
        return items


@BACKBONE_REGISTRY.register()
class tiny_cnn(Backbone):  # noqa: N801 - backbone names are lower case, as Dassl's
    """conv -> relu -> dropout -> global average pool: 8 features."""

    def __init__(self, pretrained: bool = False, dropout: float = 0.2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dropout = nn.Dropout(dropout)  # consumes the torch RNG while training
        self._out_features = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(F.relu(self.conv(x))).mean(dim=(2, 3))


@TRAINER_REGISTRY.register()
class TinyTrainer(TrainerX):
    """Default SimpleNet model; CE loss; the LR steps at the last batch of an epoch, as CoOp."""

    @staticmethod
    def extend_cfg(cfg: CfgNode) -> None:
        cfg.TRAINER.TINY = CfgNode()
        # Test hook: sleep forever after batch 2 of this (1-based) epoch, so a test can kill the
        # run in the middle of an epoch. 0 = never.
        cfg.TRAINER.TINY.HANG_AT_EPOCH = 0

    def forward_backward(self, batch: dict) -> dict:
        image, label, _ = self.parse_batch_train(batch)
        output = self.model(image)
        loss = F.cross_entropy(output, label)
        self.model_backward_and_update(loss)
        summary = {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        if self.epoch + 1 == self.cfg.TRAINER.TINY.HANG_AT_EPOCH and self.batch_idx == 1:
            print("HANGING", flush=True)
            time.sleep(3600)
        return summary


def run_in_process(argv: list[str], env_info: bool = False) -> int:
    """train.cli(argv) in this process; sys.stdout and torch's thread count are restored after.

    env_info=False skips collect_env_info (its subprocesses take seconds per run).
    """
    import train

    stdout, threads, collect = sys.stdout, torch.get_num_threads(), train.collect_env_info
    torch.set_num_threads(1)  # as the subprocesses of the tests, which run with OMP_NUM_THREADS=1
    if not env_info:
        train.collect_env_info = lambda: "(skipped in tests)"
    try:
        return train.cli(argv)
    finally:
        train.collect_env_info = collect
        if sys.stdout is not stdout:
            sys.stdout.close()  # the Logger train.py installed: closes its file only
            sys.stdout = stdout
        torch.set_num_threads(threads)


if __name__ == "__main__":
    import train

    sys.exit(train.cli())
