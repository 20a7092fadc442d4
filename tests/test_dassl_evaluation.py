"""dassl.evaluation and dassl.metrics: printed blocks, macro F1, per-class results, cmat, accuracy."""
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score

from dassl.config import get_cfg_default
from dassl.evaluation import EVALUATOR_REGISTRY, Classification, EvaluatorBase, build_evaluator
from dassl.metrics import compute_accuracy, compute_accuracy_map
from dassl.utils import UnavailableError

LAB2CNAME = {0: "cat", 1: "dog", 2: "bird"}
# Label 3 is predicted but never true: macro F1 must average over the true labels only.
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2, 0]
Y_PRED = [0, 1, 0, 1, 1, 2, 3, 0, 2, 0]


def one_hot_scores(preds, n=4):
    scores = torch.zeros(len(preds), n)
    scores[torch.arange(len(preds)), torch.tensor(preds)] = 1.0
    return scores


def run(cfg, batches=((0, 6), (6, 10))):
    evaluator = build_evaluator(cfg, lab2cname=LAB2CNAME)
    evaluator.reset()
    for start, end in batches:
        evaluator.process(one_hot_scores(Y_PRED[start:end]), torch.tensor(Y_TRUE[start:end]))
    return evaluator.evaluate()


def test_result_block_exact_lines(capsys):
    cfg = get_cfg_default()
    results = run(cfg)
    out = capsys.readouterr().out
    expected_f1 = 100 * f1_score(Y_TRUE, Y_PRED, average="macro", labels=np.unique(Y_TRUE))
    assert out.splitlines() == [
        "Loading evaluator: Classification",
        "=> result",
        "* total: 10",
        "* correct: 7",
        "* accuracy: 70.0%",
        "* error: 30.0%",
        f"* macro_f1: {expected_f1:.1f}%",
    ]
    assert list(results) == ["accuracy", "error_rate", "macro_f1"]
    assert results["accuracy"] == 70.0 and results["error_rate"] == pytest.approx(30.0)
    assert results["macro_f1"] == pytest.approx(expected_f1)
    assert all(type(v) is float for v in results.values())


def test_macro_f1_by_hand():
    # per true label: 2tp / (2tp + fp + fn)
    f1 = {0: 2 * 3 / (2 * 3 + 1 + 1), 1: 2 * 2 / (2 * 2 + 1 + 0), 2: 2 * 2 / (2 * 2 + 0 + 2)}
    results = run(get_cfg_default())
    assert results["macro_f1"] == pytest.approx(100 * sum(f1.values()) / 3)


def test_per_class_block(capsys):
    cfg = get_cfg_default()
    cfg.TEST.PER_CLASS_RESULT = True
    results = run(cfg)
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("=> per-class result")
    assert lines[start + 1:] == [
        "* class: 0 (cat)\ttotal: 4\tcorrect: 3\tacc: 75.0%",
        "* class: 1 (dog)\ttotal: 2\tcorrect: 2\tacc: 100.0%",
        "* class: 2 (bird)\ttotal: 4\tcorrect: 2\tacc: 50.0%",
        "* average: 75.0%",
    ]
    assert results["perclass_accuracy"] == pytest.approx(75.0)
    assert list(results)[0] == "accuracy"


def test_per_class_needs_lab2cname():
    cfg = get_cfg_default()
    cfg.TEST.PER_CLASS_RESULT = True
    with pytest.raises(ValueError, match="lab2cname"):
        Classification(cfg)


def test_confusion_matrix_saved(tmp_path, capsys):
    cfg = get_cfg_default()
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.TEST.COMPUTE_CMAT = True
    run(cfg)
    path = tmp_path / "cmat.pt"
    assert f"Confusion matrix is saved to {path}" in capsys.readouterr().out
    cmat = torch.load(path, weights_only=False)
    assert isinstance(cmat, np.ndarray) and cmat.shape == (4, 4)  # labels: union of true and predicted
    np.testing.assert_allclose(cmat, confusion_matrix(Y_TRUE, Y_PRED, normalize="true"))


def test_reset_starts_over(capsys):
    evaluator = build_evaluator(get_cfg_default())
    evaluator.process(one_hot_scores([0, 0]), torch.tensor([1, 1]))
    evaluator.reset()
    evaluator.process(one_hot_scores([1]), torch.tensor([1]))
    assert evaluator.evaluate()["accuracy"] == 100.0


def test_registry_and_unknown_evaluator():
    assert EVALUATOR_REGISTRY.registered_names() == ["Classification", "ClassificationMT"]
    assert issubclass(Classification, EvaluatorBase)
    cfg = get_cfg_default()
    cfg.TEST.EVALUATOR = "Clasification"
    with pytest.raises(UnavailableError, match=r"do you mean \[Classification\]"):
        build_evaluator(cfg)


def test_extra_kwargs_are_accepted():
    cfg = get_cfg_default()
    cfg.VERBOSE = False
    assert isinstance(build_evaluator(cfg, lab2cname=LAB2CNAME, task2tname=None), Classification)


def test_compute_accuracy_topk_and_tuple_output():
    output = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    target = torch.tensor([1, 1, 0, 0])
    top1, top2 = compute_accuracy(output, target, topk=(1, 2))
    assert top1.shape == (1,) and top1.item() == 50.0
    assert top2.item() == 75.0  # needs reshape: the transposed top-k slice is not contiguous
    assert compute_accuracy((output, None), target)[0].item() == 50.0


def test_compute_accuracy_map_ignores_unlabelled_entries():
    scores = torch.tensor([[0.9, 0.2, 0.4], [0.1, 0.8, 0.3]])
    target = torch.tensor([[1, 0, -1], [0, 1, 1]])
    valid = target.reshape(-1) != -1
    expected = 100 * average_precision_score(target.reshape(-1)[valid].numpy(), scores.reshape(-1)[valid].numpy())
    assert compute_accuracy_map(scores, target) == pytest.approx(expected)
