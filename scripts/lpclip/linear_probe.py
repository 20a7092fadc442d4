#!/usr/bin/env python
"""Linear-probe CLIP on saved features (the reference's lpclip step 2).

    python scripts/lpclip/linear_probe.py --dataset OxfordPets --feature_dir output/lpclip/clip_feat \
        --num_step 8 --num_run 3

For K in 1, 2, 4, 8, 16 shots and seeds 1..num_run: numpy-seeded few-shot train/val draws from
<feature_dir>/<dataset>/{train,val,test}.npz, logistic regression with the C search (coarse grid,
then num_step bisection rounds on val), test accuracy of the last round. Prints and appends
"<dataset>, <K> Shot, Test acc stat: mean (std)" to <report_dir>/<feature_dir>_s<steps>r<runs>.txt
(details per round in ..._details.txt) and writes <log_dir>/<dataset>/shots_<K>/seed<S>/log.txt
with a Dassl result block, so that `python parse_test_res.py <log_dir>/<dataset>/shots_<K>` averages
the seeds.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from dassl.cli import one_line_errors  # noqa: E402
from trainers.linear_probe import SHOTS, run_protocol  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=str, required=True, help="DATASET.NAME, e.g. OxfordPets")
    parser.add_argument("--feature_dir", type=str, default="clip_feat", help="folder of feat_extractor.py's output")
    parser.add_argument("--num_step", type=int, default=8, help="bisection rounds of the C search")
    parser.add_argument("--num_run", type=int, default=10, help="seeds 1..num_run per shot count")
    parser.add_argument("--shots", type=int, nargs="+", default=list(SHOTS), help="shot counts")
    parser.add_argument("--report_dir", type=str, default="report", help="folder of the report files")
    parser.add_argument("--log_dir", type=str, default="output/lpclip", help="folder of the per-seed log.txt files")
    return parser


if __name__ == "__main__":
    args = build_parser().parse_args()
    sys.exit(one_line_errors(run_protocol)(args.dataset, args.feature_dir, args.num_step, args.num_run,
                                           args.report_dir, args.log_dir, args.shots))
