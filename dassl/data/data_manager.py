"""DataManager (dataset + transforms + loaders), build_data_loader and the dataset wrappers."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
import torchvision.transforms as T
from torch.utils.data import Dataset as TorchDataset

from dassl.cli import UserError
from dassl.utils import read_image

from .datasets import build_dataset
from dassl.utils.distributed import get_rank, get_world_size, is_distributed

from .samplers import DistributedBatchSampler, ShardSampler, build_sampler
from .transforms import INTERPOLATION_MODES, build_transform


class ImageReadError(UserError, RuntimeError):
    """An image of the dataset could not be read or decoded (missing, truncated, not an image)."""


def build_data_loader(cfg, sampler_type: str = "SequentialSampler", data_source: Optional[list] = None,
                      batch_size: int = 64, n_domain: int = 0, n_ins: int = 2, tfm=None,
                      is_train: bool = True, dataset_wrapper=None, distributed: bool = False, **wrapper_kwargs):
    """A torch DataLoader over data_source; extra keyword arguments go to the wrapper.

    distributed=True (the DataManager's loaders) under torchrun: training loaders give this
    process its share of every global batch of `batch_size` items (DistributedBatchSampler),
    others a strided share of the items (ShardSampler). A loader built with False is the whole
    data on every process (for a trainer's own passes over a split).

    No generator and no worker_init_fn: torch's global RNG drives RandomSampler and each
    iterator's base seed, as upstream.
    """
    sampler = build_sampler(sampler_type, cfg=cfg, data_source=data_source, batch_size=batch_size,
                            n_domain=n_domain, n_ins=n_ins)
    wrapper = dataset_wrapper or DatasetWrapper
    dataset = wrapper(cfg, data_source, transform=tfm, is_train=is_train, **wrapper_kwargs)
    # A few-shot set smaller than one batch must still give one (partial) batch.
    drop_last = is_train and len(data_source) >= batch_size
    common = dict(num_workers=cfg.DATALOADER.NUM_WORKERS, pin_memory=torch.cuda.is_available() and cfg.USE_CUDA)
    if distributed and is_distributed() and len(data_source) > 0:
        rank, world = get_rank(), get_world_size()
        if is_train:
            batch_sampler = DistributedBatchSampler(sampler, batch_size, drop_last, rank, world)
            return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, **common)
        shard = ShardSampler(sampler, rank, world, batch_size)
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=shard, **common)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                                         **common)
    if len(loader) == 0:
        raise ValueError(f"Empty data loader: {len(data_source)} items, batch size {batch_size} "
                         f"(dataset {cfg.DATASET.NAME})")
    return loader


class DataManager:
    """Builds the dataset named by cfg.DATASET.NAME (or takes a built one), its transforms and loaders."""

    def __init__(self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset_wrapper=None,
                 dataset=None):
        if dataset is None:
            dataset = build_dataset(cfg)

        if custom_tfm_train is None:
            tfm_train = build_transform(cfg, is_train=True)
        else:
            print("* Using custom transform for training")
            tfm_train = custom_tfm_train
        if custom_tfm_test is None:
            tfm_test = build_transform(cfg, is_train=False)
        else:
            print("* Using custom transform for testing")
            tfm_test = custom_tfm_test

        # Multi-task datasets (SoftCPT) need their own item layout.
        wrapper_kwargs: dict[str, Any] = {}
        if getattr(dataset, "taskid2cname", None) is not None:
            dataset_wrapper = dataset_wrapper or DatasetWrapperMT
            wrapper_kwargs = dict(taskid2cname=dataset.taskid2cname,
                                  old_data_path=cfg.DATALOADER.get("OLD_DATA_PATH", ""),
                                  new_data_path=cfg.DATALOADER.get("NEW_DATA_PATH", ""))

        def loader(sampler_cfg, data_source, tfm, is_train):
            batch_size = sampler_cfg.BATCH_SIZE
            if is_train and cfg.DATALOADER.get("BATCH_PER_PROCESS", False):
                batch_size *= get_world_size()
            return build_data_loader(
                cfg, sampler_type=sampler_cfg.SAMPLER, data_source=data_source,
                batch_size=batch_size, n_domain=sampler_cfg.get("N_DOMAIN", 0),
                n_ins=sampler_cfg.get("N_INS", 2), tfm=tfm, is_train=is_train,
                dataset_wrapper=dataset_wrapper, distributed=True, **wrapper_kwargs)

        dl = cfg.DATALOADER
        train_loader_x = loader(dl.TRAIN_X, dataset.train_x, tfm_train, True)
        train_loader_u = None
        if dataset.train_u:
            train_loader_u = loader(dl.TRAIN_X if dl.TRAIN_U.SAME_AS_X else dl.TRAIN_U,
                                    dataset.train_u, tfm_train, True)
        val_loader = loader(dl.TEST, dataset.val, tfm_test, False) if dataset.val else None
        test_loader = loader(dl.TEST, dataset.test, tfm_test, False)

        self._num_classes = dataset.num_classes
        self._num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self._lab2cname = dataset.lab2cname
        self.dataset = dataset
        self.train_loader_x = train_loader_x
        self.train_loader_u = train_loader_u
        self.val_loader = val_loader
        self.test_loader = test_loader

        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self):
        return self._num_classes

    @property
    def num_source_domains(self):
        return self._num_source_domains

    @property
    def lab2cname(self):
        return self._lab2cname

    def show_dataset_summary(self, cfg) -> None:
        from tabulate import tabulate  # imported here so that importing dassl.data stays light

        dataset = self.dataset
        table = [["Dataset", cfg.DATASET.NAME]]
        if cfg.DATASET.SOURCE_DOMAINS:
            table.append(["Source", cfg.DATASET.SOURCE_DOMAINS])
        if cfg.DATASET.TARGET_DOMAINS:
            table.append(["Target", cfg.DATASET.TARGET_DOMAINS])
        taskid2cname = getattr(dataset, "taskid2cname", None)
        if taskid2cname is not None:
            table.append(["# tasks", f"{len(taskid2cname):,}"])
            for tname, cnames in zip(dataset.taskid2tname, taskid2cname):
                table.append([f"# classes ({tname})", f"{len(cnames):,}"])
        else:
            table.append(["# classes", f"{self.num_classes:,}"])
        table.append(["# train_x", f"{len(dataset.train_x):,}"])
        if dataset.train_u:
            table.append(["# train_u", f"{len(dataset.train_u):,}"])
        if dataset.val:
            table.append(["# val", f"{len(dataset.val):,}"])
        table.append(["# test", f"{len(dataset.test):,}"])
        print(tabulate(table))


class DatasetWrapper(TorchDataset):
    """Reads and transforms one Datum into a dict: label, domain, impath, index, img [, img0].

    transform may be one transform or a list/tuple (keys img, img2, img3, ...); with
    DATALOADER.K_TRANSFORMS > 1 (training only) each key holds a list of k augmented views.
    transform None returns the PIL image itself.
    """

    def __init__(self, cfg, data_source: list, transform=None, is_train: bool = False):
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform
        self.is_train = is_train
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1
        self.return_img0 = cfg.DATALOADER.RETURN_IMG0
        if self.k_tfm > 1 and transform is None:
            raise ValueError(f"Cannot augment the image {self.k_tfm} times because transform is None")

        interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
        to_tensor = [T.Resize(cfg.INPUT.SIZE, interpolation=interp), T.ToTensor()]
        if "normalize" in cfg.INPUT.TRANSFORMS:
            to_tensor.append(T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD))
        self.to_tensor = T.Compose(to_tensor)

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, idx: int) -> dict:
        item = self.data_source[idx]
        output = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx}
        self._add_images(output, self._read(item.impath))
        return output

    def _read(self, impath: str):
        try:
            return read_image(impath)
        except Exception as err:  # PIL raises OSError, UnidentifiedImageError, ValueError, ...
            name = self.cfg.DATASET.NAME
            where = f" of dataset {name}" if name else ""
            # Stop the run: training on a silently skipped or garbage image would be worse.
            raise ImageReadError(f'Cannot read image "{impath}"{where}: '
                                 f"{type(err).__name__}: {err}") from err

    def _add_images(self, output: dict, img0) -> None:
        if self.transform is None:
            output["img"] = img0
        elif isinstance(self.transform, (list, tuple)):
            for i, tfm in enumerate(self.transform):
                output["img" if i == 0 else f"img{i + 1}"] = self._transform_image(tfm, img0)
        else:
            output["img"] = self._transform_image(self.transform, img0)
        if self.return_img0:
            output["img0"] = self.to_tensor(img0)

    def _transform_image(self, tfm, img0):
        views = [tfm(img0) for _ in range(self.k_tfm)]
        return views[0] if len(views) == 1 else views


class DatasetWrapperMT(DatasetWrapper):
    """Multi-task items (SoftCPT): label is an int64 vector over all tasks' classes.

    Entries of tasks the image is annotated for are 0/1 (one-hot inside the task), entries of
    other tasks are -1. An impath starting with old_data_path is read from new_data_path instead.
    Items have no "index" key.
    """

    def __init__(self, cfg, data_source: list, transform=None, is_train: bool = False,
                 taskid2cname: Optional[list] = None, old_data_path: str = "", new_data_path: str = ""):
        super().__init__(cfg, data_source, transform=transform, is_train=is_train)
        if taskid2cname is None:
            raise ValueError("DatasetWrapperMT needs taskid2cname")
        sizes = [len(cnames) for cnames in taskid2cname]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.sizes = sizes
        self.num_labels = int(sum(sizes))
        self.old_data_path = old_data_path
        self.new_data_path = new_data_path

    def __getitem__(self, idx: int) -> dict:
        item = self.data_source[idx]
        impath = item.impath
        if self.old_data_path and impath.startswith(self.old_data_path):
            impath = self.new_data_path + impath[len(self.old_data_path):]
        label = np.full(self.num_labels, -1, dtype=np.int64)
        for task in set(item.task):
            label[self.offsets[task]:self.offsets[task] + self.sizes[task]] = 0
        for task, cls in zip(item.task, item.label):
            label[self.offsets[task] + cls] = 1
        output = {"label": label, "domain": item.domain, "impath": impath}
        self._add_images(output, self._read(impath))
        return output
