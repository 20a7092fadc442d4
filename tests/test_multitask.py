"""The shared multi-task layer: TaskLayout, concatenation of datasets, ClassificationMT, per-task parsing."""
import os

import numpy as np
import pytest
import torch

from dassl.data import DataManager, TaskLayout, build_task_datasets, concat_task_datasets
from dassl.evaluation import ClassificationMT
from dassl.evaluation.evaluator import (eleven_point_map, mean_class_accuracy, mean_per_class_elevater,
                                        overall_accuracy)
from fixtures.data_fixtures import make_cfg

import parse_test_res

LAYOUT = TaskLayout(names=("a", "b", "c"), sizes=(2, 3, 1), metrics=("overall_acc",) * 3,
                    taskid2cname=(("a0", "a1"), ("b0", "b1", "b2"), ("c0",)))


def test_layout_offsets_ranges_and_names():
    assert LAYOUT.offsets == (0, 2, 5)
    assert LAYOUT.ranges == ((0, 2), (2, 5), (5, 6))
    assert LAYOUT.num_classes == 6 and LAYOUT.num_tasks == 3
    assert LAYOUT.classnames == ["a0", "a1", "b0", "b1", "b2", "c0"]
    assert LAYOUT.column_tasks().tolist() == [0, 0, 1, 1, 1, 2]
    assert LAYOUT.task_slice(1) == slice(2, 5)


def test_layout_label_vectors_round_trip():
    tasks, local = torch.tensor([1, 0, 2, 1]), torch.tensor([2, 1, 0, 0])
    vec = LAYOUT.label_vectors(tasks, local)
    assert vec.tolist() == [[-1, -1, 0, 0, 1, -1], [0, 1, -1, -1, -1, -1],
                            [-1, -1, -1, -1, -1, 1], [-1, -1, 1, 0, 0, -1]]
    assert LAYOUT.task_ids(vec).tolist() == tasks.tolist()
    assert LAYOUT.global_labels(vec).tolist() == [4, 1, 5, 2]
    assert LAYOUT.own_task_mask(vec)[0].tolist() == [False, False, True, True, True, False]


def test_layout_rejects_unknown_metric():
    with pytest.raises(ValueError, match="unknown task metric"):
        TaskLayout(names=("a",), sizes=(2,), metrics=("top5",))


def test_concat_task_datasets_and_loader(miniature_root):
    cfg = make_cfg("EuroSAT", miniature_root, "DATASET.NUM_SHOTS", 1, "DATALOADER.TEST.BATCH_SIZE", 64)
    names = ["EuroSAT", "DescribableTextures"]
    parts = build_task_datasets(cfg, names)
    mt = concat_task_datasets(parts, ["eurosat", "dtd"], ["overall_acc", "mean_acc"])
    assert mt.taskid2cname == [parts[0].classnames, parts[1].classnames]
    assert len(mt.train_x) == len(parts[0].train_x) + len(parts[1].train_x)
    first_dtd = len(parts[0].test)
    assert mt.test[first_dtd].task == [1] and mt.test[first_dtd].domain == 1
    assert mt.test[first_dtd].label == [parts[1].test[0].label]

    dm = DataManager(cfg, dataset=mt)
    layout = TaskLayout.from_dataset(mt)
    labels = torch.cat([batch["label"] for batch in dm.test_loader])
    assert labels.shape == (len(mt.test), layout.num_classes)
    expected_global = [layout.offsets[item.task[0]] + item.label[0] for item in mt.test]
    assert layout.global_labels(labels).tolist() == expected_global
    assert layout.task_ids(labels).tolist() == [item.task[0] for item in mt.test]


# ---------------------------------------------------------------- metrics by hand

def test_overall_and_mean_class_accuracy_by_hand():
    scores = np.array([[2., 1, 0], [0, 3, 1], [1, 0, 0], [0, 0, 5], [0, 2, 1]])
    targets = np.eye(3)[[0, 1, 1, 2, 2]]
    assert overall_accuracy(scores, targets) == pytest.approx(100 * 3 / 5)
    # recalls: class 0 1/1, class 1 1/2, class 2 1/2
    assert mean_class_accuracy(scores, targets) == pytest.approx(100 * (1 + 0.5 + 0.5) / 3)


def test_mean_per_class_drops_absent_classes():
    # class 2 never occurs: SoftCPT's mean_acc keeps its column in the argmax, ELEVATER drops it.
    scores = np.array([[1., 0, 3], [0, 2, 1], [2, 1, 0]])
    targets = np.eye(3)[[0, 1, 0]]
    assert mean_class_accuracy(scores, targets) == pytest.approx(100 * (0.5 + 1) / 2)
    assert mean_per_class_elevater(scores, targets) == pytest.approx(100 * (1 + 1) / 2)


def test_eleven_point_map_by_hand():
    # class 0: scores rank pos, neg, pos -> precision/recall points (1, .5), (2/3, 1)
    # 11-pt: recall thresholds 0..0.5 -> 1.0 (6 points), 0.6..1.0 -> 2/3 (5 points)
    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.3, 0.2]])
    targets = np.array([[1, 0], [0, 1], [1, 0]])
    ap0 = (6 * 1.0 + 5 * 2 / 3) / 11
    ap1 = 1.0  # the only positive ranks first
    assert eleven_point_map(scores, targets) == pytest.approx(100 * (ap0 + ap1) / 2)


# ---------------------------------------------------------------- ClassificationMT

def mt_cfg(per_task=True, evalkey=None):
    from dassl.config import get_cfg_default

    cfg = get_cfg_default()
    cfg.TEST.PER_TASK_RESULT = per_task
    if evalkey is not None:
        cfg.DATASET.MULTITASK_EVALKEY = evalkey
    return cfg


def test_classification_mt_scores_each_row_over_its_own_task(capsys):
    layout = TaskLayout(names=("a", "b"), sizes=(2, 3), metrics=("overall_acc", "mean_acc"))
    ev = ClassificationMT(mt_cfg(), task_layout=layout)
    labels = layout.label_vectors(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2, 0]))
    # Row 0: the union argmax is in task b's columns, but within task a class 0 wins.
    logits = torch.tensor([[1., 0, 9, 9, 9], [0, 1, 0, 0, 0], [0, 0, 0, 1, 2], [0, 0, 0, 3, 1]])
    ev.process(logits[:2], labels[:2])
    ev.process(logits[2:], labels[2:])
    results = ev.evaluate()
    out = capsys.readouterr().out
    # task a: 2/2 correct; task b: class 2 right, class 0 wrong -> mean of recalls (1 + 0) / 2
    assert results["task/a"] == pytest.approx(100.0)
    assert results["task/b"] == pytest.approx(50.0)
    assert results["metric"] == results["average"] == pytest.approx(75.0)
    assert "* overall_metric: 75.00%" in out
    assert "* task: 0 (a)\ttotal: 2\tmetric: 100.00%" in out
    assert "* task: 1 (b)\ttotal: 2\tmetric: 50.00%" in out
    ev.reset()
    ev.process(logits[:2], labels[:2])
    assert list(ev.evaluate()) == ["metric", "average", "task/a"]


def test_classification_mt_evalkey_and_quiet_mode(capsys):
    layout = TaskLayout(names=("a", "b"), sizes=(2, 2), metrics=("overall_acc", "overall_acc"))
    labels = layout.label_vectors(torch.tensor([0, 1]), torch.tensor([0, 0]))
    logits = torch.tensor([[1., 0, 0, 0], [0, 0, 0, 1]])
    ev = ClassificationMT(mt_cfg(per_task=False, evalkey="b"), task_layout=layout)
    ev.process(logits, labels)
    results = ev.evaluate()
    assert results["metric"] == 0.0 and results["average"] == 50.0
    assert "* task:" not in capsys.readouterr().out
    ev = ClassificationMT(mt_cfg(evalkey="zzz"), task_layout=layout)
    ev.process(logits, labels)
    with pytest.raises(ValueError, match='MULTITASK_EVALKEY "zzz" is not a task'):
        ev.evaluate()


def test_simple_trainer_scores_multitask_datasets_per_task(miniature_root, capsys):
    from dassl.engine.trainer import SimpleTrainer

    cfg = make_cfg("EuroSAT", miniature_root, "DATASET.NUM_SHOTS", 1)

    class Probe(SimpleTrainer):
        def __init__(self, cfg):  # only what build_evaluator needs
            self.cfg = cfg
            parts = build_task_datasets(cfg, ["EuroSAT", "DescribableTextures"])
            self.dm = DataManager(cfg, dataset=concat_task_datasets(parts, ["eurosat", "dtd"]))
            self.lab2cname = self.dm.lab2cname

    evaluator = Probe(cfg).build_evaluator()
    assert isinstance(evaluator, ClassificationMT)
    assert evaluator.layout.names == ("eurosat", "dtd")
    assert "evaluating per task with ClassificationMT" in capsys.readouterr().out


# ---------------------------------------------------------------- parse_test_res per task

def write_mt_log(path, values, per_epoch_noise=True):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines = []
    if per_epoch_noise:  # a val block before the end of training must not count
        lines += ["=> per-task result", "* task: 0 (a)\ttotal: 3\tmetric: 1.00%"]
    lines += ["Finish training", "=> result", "* total: 10",
              f"* overall_metric: {np.mean(values):.2f}%", "=> per-task result"]
    lines += [f"* task: {i} (t{i})\ttotal: 5\tmetric: {v:.2f}%" for i, v in enumerate(values)]
    lines.append(f"* average: {np.mean(values):.2f}%")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def test_parse_test_res_aggregates_per_task(tmp_path, capsys):
    write_mt_log(str(tmp_path / "seed1" / "log.txt"), [50.0, 70.0])
    write_mt_log(str(tmp_path / "seed2" / "log.txt"), [60.0, 90.0])
    means = parse_test_res.parse_directory(str(tmp_path), ["overall_metric"],
                                           parse_test_res.TRAIN_END_SIGNALS, ci95=False)
    out = capsys.readouterr().out
    assert means["overall_metric"] == pytest.approx(67.5)
    assert means["task0"] == pytest.approx(55.0) and means["task1"] == pytest.approx(80.0)
    assert "* task 0 (t0): 55.00% +- 5.00% (2 runs)" in out
    assert "* task 1 (t1): 80.00% +- 10.00% (2 runs)" in out
