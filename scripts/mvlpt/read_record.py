"""Collect MVLPT's single-target results into a CSV: one row per seed, one column per target task,
and the average over the targets (the paper's "average over 12 tasks").

    python scripts/mvlpt/read_record.py ROOT --trainer UPT --nctx 4 [--cfg vit_b16] [--shots 5]
        [--seeds 1 2 3] [--tasks cifar-10 mnist ...] [--out results.csv]

ROOT is the folder of main_single_elevater_cut.sh's runs (e.g. output/CoCoOp_single_task_20):
ROOT/<task>/<TRAINER>/<CFG>_<SHOTS>shots/nctx<NCTX>_csc_ctp/seed<S>/log.txt. The value read is the
task's metric (%) of the last test evaluation in the log. Missing runs leave blank cells, and a
row's average is left blank unless all its tasks are there. A last row "mean" averages the seeds.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from typing import Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from datasets.elevater import TARGETS_12  # noqa: E402
from parse_test_res import read_task_metrics  # noqa: E402

TEST_SIGNAL = "Evaluate on the *test* set"


def run_dir(root: str, task: str, trainer: str, cfg: str, shots: int, nctx: int, seed: int) -> str:
    return os.path.join(root, task, trainer, f"{cfg}_{shots}shots", f"nctx{nctx}_csc_ctp", f"seed{seed}")


def read_result(directory: str) -> Optional[float]:
    """The metric of the last test evaluation in directory/log.txt, or None."""
    log = os.path.join(directory, "log.txt")
    if not os.path.isfile(log):
        return None
    tasks = read_task_metrics(log, (TEST_SIGNAL,))
    return tasks[0][1] if tasks else None


def mean(values: Sequence[Optional[float]]) -> Optional[float]:
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def table(root: str, trainer: str, cfg: str, shots: int, nctx: int, seeds: Sequence[int],
          tasks: Sequence[str]) -> list[list[str]]:
    """CSV rows: header, one row per seed, then the mean over the seeds of each column."""
    def cell(value: Optional[float]) -> str:
        return "" if value is None else f"{value:.2f}"

    rows = [[" ", *tasks, "average"]]
    per_seed = []
    for seed in seeds:
        values = [read_result(run_dir(root, task, trainer, cfg, shots, nctx, seed)) for task in tasks]
        per_seed.append(values + [mean(values)])
        rows.append([f"seed{seed}", *map(cell, per_seed[-1])])
    columns = list(zip(*per_seed)) if per_seed else []
    rows.append(["mean", *(cell(mean([v for v in column if v is not None]) if any(
        v is not None for v in column) else None) for column in columns)])
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="folder of the target runs (e.g. output/CoCoOp_single_task_20)")
    parser.add_argument("--trainer", required=True, help="prompt family: CoOp, VPT, UPT or COCOOP")
    parser.add_argument("--nctx", type=int, required=True)
    parser.add_argument("--cfg", default="vit_b16")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--tasks", nargs="+", default=list(TARGETS_12), help="target tasks (default: the 12)")
    parser.add_argument("--out", default="", help="CSV file to write (default: print)")
    args = parser.parse_args(argv)

    rows = table(args.root, args.trainer, args.cfg, args.shots, args.nctx, args.seeds, args.tasks)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(buffer.getvalue())
        os.replace(tmp, args.out)
        print(f"Wrote {args.out}")
    else:
        print(buffer.getvalue(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
