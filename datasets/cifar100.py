"""CIFAR-100 in LAMM's layout (DATASET.NAME "MYCIFAR100", as the LAMM repository registers it).

cifar100/classnames_for_cifar100.txt ("<folder> <class name>"), images/train/<folder>/ and
images/test/<folder>/. Labels are the folders' positions in their sorted (string) order, so with
numeric folder names "10" comes before "2"; the test split is also the val split. Few-shot and
base/new work as for ImageNet, whose loader this is (and whose caches it writes).
"""
from __future__ import annotations

from dassl.data.datasets import DATASET_REGISTRY

from .imagenet import ImageNet


@DATASET_REGISTRY.register()
class MYCIFAR100(ImageNet):
    dataset_dir = "cifar100"
    section = "CIFAR-100"
    classnames_file = "classnames_for_cifar100.txt"
    test_subdir = "test"
