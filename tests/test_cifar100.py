"""CIFAR-100 (MYCIFAR100) in LAMM's layout, and the class groups of class-incremental learning."""
from __future__ import annotations

import os

import pytest

from datasets.miniature import make_miniature
from datasets.splits import class_groups
from dassl.data.datasets import build_dataset
from fixtures.data_fixtures import make_cfg


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("cifar"))
    make_miniature("MYCIFAR100", root)  # 12 classes in numeric folders 0..11
    return root


def test_layout_labels_and_template(cifar_root):
    from datasets.templates import CUSTOM_TEMPLATES

    dataset = build_dataset(make_cfg("MYCIFAR100", cifar_root))
    # Labels follow the string sort of the folders: 0, 1, 10, 11, 2, ...
    assert dataset.classnames[:5] == ["apple", "aquarium fish", "bowl", "boy", "baby"]
    assert dataset.val is dataset.test and len(dataset.test) == 12 * 2
    assert all(f"/images/test/{'0 1 10 11 2 3 4 5 6 7 8 9'.split()[d.label]}/" in d.impath for d in dataset.test)
    assert os.path.isfile(os.path.join(cifar_root, "cifar100", "preprocessed.json"))
    assert CUSTOM_TEMPLATES["MYCIFAR100"] == "a photo of a {}."


def test_class_groups_and_stage_subsampling(cifar_root):
    assert class_groups(100, 10) == [range(10 * k, 10 * k + 10) for k in range(10)]
    assert class_groups(5, 2) == [range(0, 3), range(3, 5)]  # base = ceil(n/2)
    shots = ("DATASET.NUM_SHOTS", 2, "SEED", 1)

    def subsample(value):
        return build_dataset(make_cfg("MYCIFAR100", cifar_root, *shots, "DATASET.SUBSAMPLE_CLASSES", value))

    everything = build_dataset(make_cfg("MYCIFAR100", cifar_root, *shots))
    assert subsample("group:1/2").classnames == subsample("base").classnames == everything.classnames[:6]
    assert subsample("group:2/2").classnames == subsample("new").classnames == everything.classnames[6:]
    stage = subsample("group:2/3")
    assert stage.classnames == everything.classnames[4:8] and {d.label for d in stage.train_x} == {0, 1, 2, 3}
    seen = subsample("seen:2/3")
    assert seen.classnames == everything.classnames[:8] and len(seen.test) == 8 * 2
    with pytest.raises(ValueError, match="group:K/N or seen:K/N"):
        subsample("group:4/3")
