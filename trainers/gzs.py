"""Generalized zero-shot evaluation: one model over all classes, accuracy split into base and new.

`TEST.EVALUATOR GZSClassification` (the base2new test scripts pass it with SUB=all): Dassl's
Classification results (accuracy over all test images, predictions among all classes), then the
accuracy on the test images of the base classes (the first ceil(C/2) labels, as
DATASET.SUBSAMPLE_CLASSES base selects them), on those of the new classes, and their harmonic mean:

    * base_accuracy: 80.0%
    * new_accuracy: 70.0%
    * hm: 74.7%

(`python parse_test_res.py DIR --test-log --keyword hm` averages any of them over seeds).
"""
from __future__ import annotations

from collections import OrderedDict

from dassl.evaluation import EVALUATOR_REGISTRY, Classification
from datasets.splits import class_groups


@EVALUATOR_REGISTRY.register()
class GZSClassification(Classification):
    """Classification plus base / new / harmonic-mean accuracy over all classes."""

    def evaluate(self) -> "OrderedDict[str, float]":
        results = super().evaluate()
        if not self._lab2cname:
            raise ValueError("GZSClassification needs the class names (lab2cname) to split base and new")
        n_base = class_groups(len(self._lab2cname), 2)[0].stop  # the labels SUBSAMPLE_CLASSES base keeps
        hits = {"base": [0, 0], "new": [0, 0]}
        for true, pred in zip(self._y_true, self._y_pred):
            split = hits["base" if true < n_base else "new"]
            split[0] += int(true == pred)
            split[1] += 1
        base, new = (100.0 * correct / total if total else 0.0 for correct, total in hits.values())
        results["base_accuracy"], results["new_accuracy"] = base, new
        results["hm"] = 0.0 if base + new == 0 else 2 * base * new / (base + new)
        print(f"* base_accuracy: {base:.1f}%\n* new_accuracy: {new:.1f}%\n* hm: {results['hm']:.1f}%")
        return results
