"""ELEVATER targets: the 20 tasks, manifest reading, few-shot sampling + hold-out, downloads."""
from __future__ import annotations

import os

import pytest

from datasets import elevater
from datasets.elevater import (TARGETS_12, TASKS, few_shot_splits, holdout_split, parse_coco, parse_iris,
                               sample_few_shot)
from datasets.miniature import make_elevater_miniature
from fixtures.data_fixtures import make_cfg


def test_twenty_tasks_classes_and_metrics():
    assert len(TASKS) == 20 and set(TARGETS_12) <= set(TASKS)
    sizes = {name: len(task.classnames) for name, task in TASKS.items()}
    assert sum(sizes.values()) == 1151
    assert sizes["country211"] == 211 and sizes["caltech-101"] == 102 and sizes["fer-2013"] == 7
    metrics = {name: task.metric for name, task in TASKS.items()}
    assert metrics["voc-2007-classification"] == "11point_mAP"
    assert {n for n, m in metrics.items() if m == "mean-per-class"} == {
        "caltech-101", "oxford-flower-102", "oxford-iiit-pets", "fgvc-aircraft-2013b-variants102"}
    assert [n for n, t in TASKS.items() if t.multilabel] == ["voc-2007-classification"]
    assert TASKS["fer-2013"].classnames[3] == "happy"


def test_manifest_parsers():
    assert parse_iris(["train.zip@a b/1.jpg 3\n", "\n", "train.zip@2.jpg 0,5"]) == [
        ("train.zip@a b/1.jpg", [3]), ("train.zip@2.jpg", [0, 5])]
    manifest = {"images": [{"id": 7, "file_name": "i.zip@x.jpg"}, {"id": 8, "file_name": "i.zip@y.jpg"}],
                "annotations": [{"id": 1, "image_id": 8, "category_id": 3}, {"id": 2, "image_id": 7, "category_id": 1}],
                "categories": [{"id": 3, "name": "c"}, {"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    assert parse_coco(manifest) == [("i.zip@x.jpg", [0]), ("i.zip@y.jpg", [2])]


def items(n_classes: int, per_class: int):
    return [(f"{c}_{k}.jpg", [c]) for c in range(n_classes) for k in range(per_class)]


@pytest.mark.parametrize("shots, n_train, n_val", [(1, 1, 1), (5, 4, 1), (10, 8, 2), (20, 16, 4)])
def test_few_shot_and_holdout_counts(shots, n_train, n_val):
    train, val = few_shot_splits(items(3, 30), shots, seed=1)
    for c in range(3):
        assert sum(labels == [c] for _, labels in train) == n_train
        assert sum(labels == [c] for _, labels in val) == n_val
    if shots == 1:
        assert train == val  # the reference trains and selects on the same 1-shot set
    else:
        assert not set(p for p, _ in train) & set(p for p, _ in val)


def test_few_shot_is_seeded_and_holdout_takes_first_sampled():
    pool = items(2, 30)
    assert sample_few_shot(pool, 5, 1) == sample_few_shot(pool, 5, 1)
    assert sample_few_shot(pool, 5, 1) != sample_few_shot(pool, 5, 2)
    sampled = sample_few_shot(pool, 5, 3)
    train, val = holdout_split(sampled)
    first_of_class = {c: next(p for p, labels in sampled if labels == [c]) for c in range(2)}
    assert sorted(p for p, _ in val) == sorted(first_of_class.values())


def test_multilabel_sampling_and_holdout_cover():
    pool = [(f"{i}.jpg", [i % 4, (i + 1) % 4]) for i in range(40)]
    sampled = sample_few_shot(pool, 5, 0)
    counts = {c: sum(c in labels for _, labels in sampled) for c in range(4)}
    assert all(5 <= n <= 10 for n in counts.values())  # greedy: every class gets its K (approximately)
    train, val = holdout_split(sampled)
    for c in range(4):
        assert sum(c in labels for _, labels in val) >= -(-counts[c] // 5)  # ceil(0.2 * positives)
    assert len(train) + len(val) == len(sampled)


def test_download_on_first_use_and_offline_error(tmp_path, monkeypatch, capsys):
    """Files are fetched from the storage URL into DATASET.ROOT; a failed fetch is one clear line."""
    published = tmp_path / "storage"
    make_elevater_miniature("cifar-10", str(published), n_classes=2, n_train=3, n_test=1)
    root = tmp_path / "data"
    root.mkdir()
    cfg = make_cfg("cifar-10", str(root), "DATASET.NUM_SAMPLES_PER_CLASS", 2, all_keys=True)
    monkeypatch.setattr(elevater, "BLOB_URL", (tmp_path / "nowhere").as_uri())
    from dassl.data.datasets import build_dataset

    with pytest.raises(FileNotFoundError, match=r"ELEVATER cifar-10: .*train.zip\" is missing and could not be "
                                                r"downloaded from file:.*; download it by hand") as err:
        build_dataset(cfg)
    assert "\n" not in str(err.value)
    monkeypatch.setattr(elevater, "BLOB_URL", published.as_uri())
    dataset = build_dataset(cfg)
    assert os.path.isfile(root / TASKS["cifar-10"].folder / "train.zip")
    assert len(dataset.train_x) == 2 and len(dataset.val) == 2 and len(dataset.test) == 2
    assert dataset.taskid2cname == [TASKS["cifar-10"].classnames] and dataset.taskid2metric == ["accuracy"]
    assert "Downloading" in capsys.readouterr().out


def test_elevater_tasks_concatenate_with_their_metrics_and_multilabel_vectors(tmp_path):
    """One-task ELEVATER datasets (VOC multi-label) as tasks of a multitask union."""
    import torch

    from dassl.data import DataManager
    from dassl.data.multitask import TaskLayout, build_task_datasets, concat_task_datasets

    for name in ("voc-2007-classification", "cifar-10"):
        make_elevater_miniature(name, str(tmp_path), n_classes=3, n_train=3, n_test=2)
    cfg = make_cfg("cifar-10", str(tmp_path), "DATASET.NUM_SAMPLES_PER_CLASS", 2, "DATALOADER.TEST.BATCH_SIZE", 64,
                   all_keys=True)
    names = sorted(["voc-2007-classification", "cifar-10"])  # vision_datasets' task order
    union = concat_task_datasets(build_task_datasets(cfg, names), names)
    assert union.taskid2metric == ["accuracy", "11point_mAP"]
    assert union.taskid2type == ["sl", "ml"]
    layout = TaskLayout.from_dataset(union)
    assert layout.sizes == (10, 20) and layout.offsets == (0, 10)
    labels = torch.cat([batch["label"] for batch in DataManager(cfg, dataset=union).test_loader])
    voc_rows = labels[layout.task_ids(labels) == 1]
    assert (voc_rows[:, :10] == -1).all() and (voc_rows[:, 10:] >= 0).all()
    assert (voc_rows[:, 10:].sum(dim=1) == 2).any()  # multi-hot rows survive the concatenation


def test_elevater_multitask_dataset_sorted_and_jointly_sampled(tmp_path):
    from datasets.elevater import multitask_dataset

    for name in ("voc-2007-classification", "cifar-10"):
        make_elevater_miniature(name, str(tmp_path), n_classes=3, n_train=6, n_test=2)
    cfg = make_cfg("cifar-10", str(tmp_path), "DATASET.NUM_SAMPLES_PER_CLASS", 5, all_keys=True)
    union = multitask_dataset(cfg, ["voc-2007-classification", "cifar-10"])
    assert union.taskid2tname == ["cifar-10", "voc-2007-classification"]
    assert union.taskid2metric == ["accuracy", "11point_mAP"]
    cifar_train = [d for d in union.train_x if d.task == [0]]
    assert sorted(d.label[0] for d in cifar_train) == [0] * 4 + [1] * 4 + [2] * 4  # 5-shot: 4 train, 1 val
    assert sum(d.task == [0] for d in union.val) == 3
    voc = [d for d in union.train_x + union.val if d.task[0] == 1]
    assert any(len(d.label) == 2 and d.task == [1, 1] for d in voc)
    assert len(union.test) == 2 * 3 * 2
