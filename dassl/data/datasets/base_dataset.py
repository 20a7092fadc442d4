"""Samples (Datum, DatumMT) and the dataset base classes every dataset subclasses.

Users hold pickles of Datum objects written by upstream Dassl (few-shot splits, ImageNet's
preprocessed.pkl). Unpickling restores the instance dict, so the classes must stay at this module
path, keep the private attribute names and define no __slots__ or __setstate__.
"""
from __future__ import annotations

import os
import random
import tarfile
import zipfile
from collections import defaultdict
from typing import Any, Optional, Sequence

from dassl.utils import mkdir_if_missing


class Datum:
    """One labelled image: impath (str), label (int), domain (int), classname (str)."""

    def __init__(self, impath: str = "", label: int = 0, domain: int = 0, classname: str = ""):
        if not isinstance(impath, str):
            raise TypeError(f"Datum impath must be a str, got {type(impath).__name__}: {impath!r}")
        # Failing here, at dataset build time, beats a crash deep inside a DataLoader worker.
        if not os.path.isfile(impath):
            raise FileNotFoundError(f'Datum: no image file found at "{impath}"')
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname

    @property
    def impath(self) -> str:
        return self._impath

    @property
    def label(self) -> int:
        return self._label

    @property
    def domain(self) -> int:
        return self._domain

    @property
    def classname(self) -> str:
        return self._classname

    def __repr__(self) -> str:
        return (f"Datum(impath={self._impath!r}, label={self._label!r}, "
                f"domain={self._domain!r}, classname={self._classname!r})")


class DatumMT:
    """Multi-task sample (SoftCPT): parallel lists of class ids and task ids, optional box.

    No file check: multi-task lists are rewritten (path prefixes swapped) before images are read.
    """

    def __init__(self, impath: str = "", label: Sequence[int] = (), domain: int = 0,
                 task: Sequence[int] = (), box: Any = None):
        self._impath = impath
        self._label = label
        self._domain = domain
        self._task = task
        self._box = box

    @property
    def impath(self) -> str:
        return self._impath

    @impath.setter
    def impath(self, value: str) -> None:
        self._impath = value

    @property
    def label(self) -> Sequence[int]:
        return self._label

    @label.setter
    def label(self, value: Sequence[int]) -> None:
        self._label = value

    @property
    def domain(self) -> int:
        return self._domain

    @domain.setter
    def domain(self, value: int) -> None:
        self._domain = value

    @property
    def task(self) -> Sequence[int]:
        return self._task

    @task.setter
    def task(self, value: Sequence[int]) -> None:
        self._task = value

    @property
    def box(self) -> Any:
        return self._box

    @box.setter
    def box(self, value: Any) -> None:
        self._box = value

    def __repr__(self) -> str:
        return (f"DatumMT(impath={self._impath!r}, label={self._label!r}, domain={self._domain!r}, "
                f"task={self._task!r}, box={self._box!r})")


class DatasetBase:
    """Holds train_x / train_u / val / test lists; class count and names come from train_x."""

    dataset_dir = ""  # folder of the dataset under DATASET.ROOT
    domains: list = []  # domain names, for domain-aware datasets

    def __init__(self, train_x: Optional[list] = None, train_u: Optional[list] = None,
                 val: Optional[list] = None, test: Optional[list] = None):
        self._train_x = train_x
        self._train_u = train_u
        self._val = val
        self._test = test
        # Called through self: multi-task subclasses override both.
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    @property
    def train_x(self):
        return self._train_x

    @property
    def train_u(self):
        return self._train_u

    @property
    def val(self):
        return self._val

    @property
    def test(self):
        return self._test

    @property
    def lab2cname(self):
        return self._lab2cname

    @property
    def classnames(self):
        return self._classnames

    @property
    def num_classes(self):
        return self._num_classes

    @staticmethod
    def get_num_classes(data_source: Optional[list]) -> int:
        """max(label) + 1 over the list (0 for an empty or missing list)."""
        if not data_source:
            return 0
        return max(item.label for item in data_source) + 1

    @staticmethod
    def get_lab2cname(data_source: Optional[list]) -> tuple[dict, list]:
        """({label: classname}, classnames ordered by label)."""
        mapping = {item.label: item.classname for item in (data_source or [])}
        labels = sorted(mapping)
        return {label: mapping[label] for label in labels}, [mapping[label] for label in labels]

    def check_input_domains(self, source_domains: Sequence[str], target_domains: Sequence[str]) -> None:
        if not source_domains:
            raise ValueError("source_domains (list) is empty")
        if not target_domains:
            raise ValueError("target_domains (list) is empty")
        self.is_input_domain_valid(source_domains)
        self.is_input_domain_valid(target_domains)

    def is_input_domain_valid(self, input_domains: Sequence[str]) -> None:
        for domain in input_domains:
            if domain not in self.domains:
                raise ValueError(f"Input domain must belong to {self.domains}, but got [{domain}]")

    def download_data(self, url: str, dst: str, from_gdrive: bool = True) -> None:
        """Download an archive to dst and unpack it next to dst (.zip, .tar, .tar.gz/.tgz)."""
        mkdir_if_missing(os.path.dirname(dst))
        if from_gdrive:
            import gdown  # optional dependency: only needed when a dataset downloads itself

            gdown.download(url, dst, quiet=False)
        else:
            import urllib.request

            urllib.request.urlretrieve(url, dst)

        print("Extracting file ...")
        out_dir = os.path.dirname(dst)
        if dst.endswith(".zip"):
            with zipfile.ZipFile(dst, "r") as archive:
                archive.extractall(out_dir)
        elif dst.endswith((".tar", ".tar.gz", ".tgz")):
            # The "data" filter (Python >= 3.9.17 / 3.11.4) refuses paths escaping out_dir.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            with tarfile.open(dst, "r:*") as archive:
                archive.extractall(out_dir, **safe)
        else:
            raise NotImplementedError(f"Cannot extract {dst}: unknown archive type")
        print(f"File extracted to {out_dir}")

    def split_dataset_by_label(self, data_source: list) -> defaultdict:
        """{label: [items]} with labels in first-appearance order."""
        output = defaultdict(list)
        for item in data_source:
            output[item.label].append(item)
        return output

    def split_dataset_by_domain(self, data_source: list) -> defaultdict:
        """{domain: [items]} with domains in first-appearance order."""
        output = defaultdict(list)
        for item in data_source:
            output[item.domain].append(item)
        return output

    def generate_fewshot_dataset(self, *data_sources: list, num_shots: int = -1, repeat: bool = False):
        """Keep num_shots items per class of each source (python `random`, global state).

        Per class in first-appearance order: random.sample(items, K) when the class has at least K
        items; otherwise random.choices(items, k=K) if repeat, else all of its items. The draw order
        is part of the contract: the same seed and input order give the same few-shot lists.
        Returns one list for one source, a list of lists for several; num_shots < 1 returns the
        input unchanged.
        """
        if num_shots < 1:
            return data_sources[0] if len(data_sources) == 1 else data_sources

        print(f"Creating a {num_shots}-shot dataset")
        output = []
        for data_source in data_sources:
            dataset = []
            for items in self.split_dataset_by_label(data_source).values():
                if len(items) >= num_shots:
                    dataset.extend(random.sample(items, num_shots))
                elif repeat:
                    dataset.extend(random.choices(items, k=num_shots))
                else:
                    dataset.extend(items)
            output.append(dataset)
        return output[0] if len(output) == 1 else output


class DatasetBaseMT(DatasetBase):
    """Multi-task dataset (SoftCPT): per-task class names; items are DatumMT.

    taskid2cname is a list (indexed by task id) of class-name lists; the other taskid2* lists are
    parallel to it (task name, description, type, metric name).
    """

    def __init__(self, taskid2tname: list, taskid2cname: list, taskid2desc: list, taskid2type: list,
                 taskid2metric: list, train_x: Optional[list] = None, train_u: Optional[list] = None,
                 val: Optional[list] = None, test: Optional[list] = None):
        self.taskid2tname = taskid2tname
        self.taskid2cname = taskid2cname
        self.taskid2desc = taskid2desc
        self.taskid2type = taskid2type
        self.taskid2metric = taskid2metric
        super().__init__(train_x=train_x, train_u=train_u, val=val, test=test)

    def get_num_classes(self, data_source: Optional[list]) -> list[int]:
        return [len(cnames) for cnames in self.taskid2cname]

    def get_lab2cname(self, data_source: Optional[list]) -> tuple[dict, list]:
        return dict(enumerate(self.taskid2cname)), self.taskid2cname

    def split_dataset_by_label(self, data_source: list) -> defaultdict:
        """{(task, label): [items]}; an item annotated for several pairs joins each group."""
        output = defaultdict(list)
        for item in data_source:
            for task, label in zip(item.task, item.label):
                output[(task, label)].append(item)
        return output
