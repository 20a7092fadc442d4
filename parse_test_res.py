#!/usr/bin/env python
"""Aggregate the test results of Dassl-style runs (one log.txt per seed folder).

    python parse_test_res.py DIR              # DIR/<seed>/log.txt: the test at the end of training
    python parse_test_res.py DIR --test-log   # eval-only logs: the result after "=> result"
    python parse_test_res.py DIR --multi-exp  # DIR/<experiment>/<seed>/log.txt, then the mean of means
    python parse_test_res.py --base2new output/base2new [--csv table.csv]

For each log.txt (timestamped copies are ignored) only lines after the end signal count: "Finish
training" (upstream Dassl) or "Finished training" (older Dassl), or "=> result" with --test-log. The
value is the LAST "* <keyword>: <number>%" line after it. The summary is mean +- population std
over seeds (1.96 * std / sqrt(n) with --ci95). Multi-task runs (ClassificationMT) also get one
summary line per task, from each log's last "* task: <i> (<name>)\ttotal: N\tmetric: X%" block;
their average is `--keyword overall_metric`.

--base2new ROOT reads ROOT/train_base/<dataset>/shots_<K>/<trainer>/<config>/seed*/log.txt (base:
the test at the end of training; ROOT/test_base/... eval-only logs are used when a dataset has no
train_base folder) and ROOT/test_new/.../seed*/log.txt (new: eval-only logs). It prints one
Markdown table per (shots, trainer, config): per dataset the seed means of base and new and their
harmonic mean HM = 2*B*N/(B+N), then the average row (mean base, mean new, HM of those two means).
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import os
import re
import statistics
import sys
from dataclasses import dataclass
from typing import Optional, Sequence

from dassl.cli import UserError, debugging, report

TRAIN_END_SIGNALS = ("Finish training", "Finished training")
TEST_END_SIGNALS = ("=> result",)
# Paper order of the 11 base-to-new datasets; other datasets follow alphabetically.
DATASET_ORDER = ("imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers",
                 "food101", "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101")


class ParseError(UserError):
    """A problem with the result folders, reported as one line."""


def listdir_nohidden(path: str) -> list[str]:
    if not os.path.isdir(path):
        raise ParseError(f"not a directory: {path}")
    return sorted(name for name in os.listdir(path) if not name.startswith("."))


def subdirs(path: str) -> list[str]:
    return [name for name in listdir_nohidden(path) if os.path.isdir(os.path.join(path, name))]


def metric_pattern(keyword: str) -> re.Pattern:
    return re.compile(rf"\* {re.escape(keyword)}: ([\.\deE+-]+)%")


def read_metrics(log_path: str, keywords: Sequence[str], end_signals: Sequence[str]) -> dict[str, float]:
    """{keyword: value} of the last match after the first end-signal line (missing if none)."""
    patterns = {keyword: metric_pattern(keyword) for keyword in keywords}
    found: dict[str, float] = {}
    started = False
    with open(log_path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            started = started or line in end_signals
            if not started:
                continue
            for keyword, pattern in patterns.items():
                match = pattern.search(line)
                if match:
                    try:
                        found[keyword] = float(match.group(1))
                    except ValueError:
                        raise ParseError(f"unreadable number {match.group(1)!r} in {log_path}") from None
    return found


TASK_LINE = re.compile(r"^\* task: (\d+) \((.*)\)\ttotal: [\d,]+\tmetric: ([\.\deE+-]+)%")
TASK_BLOCK_START = "=> per-task result"


def read_task_metrics(log_path: str, end_signals: Sequence[str]) -> dict[int, tuple[str, float]]:
    """{task id: (task name, metric)} of the last per-task block after the end signal."""
    found: dict[int, tuple[str, float]] = {}
    started = False
    with open(log_path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            started = started or line.strip() in end_signals
            if not started:
                continue
            if line.strip() == TASK_BLOCK_START:
                found = {}
            match = TASK_LINE.match(line)
            if match:
                found[int(match.group(1))] = (match.group(2), float(match.group(3)))
    return found


def seed_logs(directory: str) -> list[str]:
    """log.txt of every sub-folder of directory (sorted)."""
    logs = []
    for name in subdirs(directory):
        path = os.path.join(directory, name, "log.txt")
        if not os.path.isfile(path):
            raise ParseError(f"no log.txt in {os.path.join(directory, name)}")
        logs.append(path)
    if not logs:
        raise ParseError(f"no run folders in {directory}")
    return logs


def spread(values: Sequence[float], ci95: bool) -> float:
    std = statistics.pstdev(values)
    return 1.96 * std / math.sqrt(len(values)) if ci95 else std


def parse_directory(directory: str, keywords: Sequence[str], end_signals: Sequence[str],
                    ci95: bool) -> dict[str, float]:
    """Print per-file values and the summary of one experiment; return {keyword: mean}."""
    print(f"Parsing files in {directory}")
    per_metric: dict[str, list[float]] = {}
    per_task: dict[int, tuple[str, list[float]]] = {}
    for log_path in seed_logs(directory):
        found = read_metrics(log_path, keywords, end_signals)
        if not found:
            continue
        print(" ".join([f"file: {log_path}."] + [f"{k}: {v:.2f}%." for k, v in found.items()]))
        for keyword, value in found.items():
            per_metric.setdefault(keyword, []).append(value)
        for task, (name, value) in read_task_metrics(log_path, end_signals).items():
            per_task.setdefault(task, (name, []))[1].append(value)
    if not per_metric:
        raise ParseError(f"no '* {keywords[0]}: ...%' line after {' / '.join(map(repr, end_signals))} "
                         f"in any log under {directory}")

    means = {}
    print("===")
    print(f"Summary of directory: {directory}")
    for keyword, values in per_metric.items():
        means[keyword] = statistics.fmean(values)
        print(f"* {keyword}: {means[keyword]:.2f}% +- {spread(values, ci95):.2f}%")
    if per_task:
        print("Per task:")
        for task in sorted(per_task):
            name, values = per_task[task]
            means[f"task{task}"] = statistics.fmean(values)
            print(f"* task {task} ({name}): {means[f'task{task}']:.2f}% +- {spread(values, ci95):.2f}% "
                  f"({len(values)} runs)")
    print("===")
    return means


def parse_multi_exp(directory: str, keywords: Sequence[str], end_signals: Sequence[str],
                    ci95: bool) -> dict[str, float]:
    per_metric: dict[str, list[float]] = {}
    for name in subdirs(directory):
        means = parse_directory(os.path.join(directory, name), keywords, end_signals, ci95)
        for keyword, value in means.items():
            per_metric.setdefault(keyword, []).append(value)
    if not per_metric:
        raise ParseError(f"no experiment folders in {directory}")
    print("Average performance")
    averages = {keyword: statistics.fmean(values) for keyword, values in per_metric.items()}
    for keyword, value in averages.items():
        print(f"* {keyword}: {value:.2f}%")
    return averages


# ---------------------------------------------------------------- base-to-new

@dataclass
class B2NRow:
    dataset: str
    base: float
    new: float
    seeds_base: int
    seeds_new: int

    @property
    def hm(self) -> float:
        return harmonic_mean(self.base, self.new)


def harmonic_mean(base: float, new: float) -> float:
    return 0.0 if base + new == 0 else 2 * base * new / (base + new)


def _seed_dirs(path: str) -> list[str]:
    names = [name for name in subdirs(path) if name.startswith("seed")]
    if not names:
        raise ParseError(f"no seed* folders in {path}")
    return [os.path.join(path, name) for name in names]


def _seed_mean(path: str, keyword: str, end_signals: Sequence[str]) -> tuple[float, int]:
    values = []
    for seed_dir in _seed_dirs(path):
        log_path = os.path.join(seed_dir, "log.txt")
        if not os.path.isfile(log_path):
            raise ParseError(f"no log.txt in {seed_dir}")
        found = read_metrics(log_path, [keyword], end_signals)
        if keyword not in found:
            raise ParseError(f"no '* {keyword}: ...%' line after "
                             f"{' / '.join(map(repr, end_signals))} in {log_path}")
        values.append(found[keyword])
    return statistics.fmean(values), len(values)


def _experiments(split_root: str) -> set[tuple[str, str, str, str]]:
    """(dataset, shots_K, trainer, config) folders under ROOT/<split>/."""
    found = set()
    if not os.path.isdir(split_root):
        return found
    for dataset in subdirs(split_root):
        for shots in subdirs(os.path.join(split_root, dataset)):
            if not shots.startswith("shots_"):
                continue
            for trainer in subdirs(os.path.join(split_root, dataset, shots)):
                for config in subdirs(os.path.join(split_root, dataset, shots, trainer)):
                    found.add((dataset, shots, trainer, config))
    return found


def _dataset_key(name: str) -> tuple[int, str]:
    return (DATASET_ORDER.index(name) if name in DATASET_ORDER else len(DATASET_ORDER), name)


def collect_base2new(root: str, keyword: str) -> dict[tuple[str, str, str], list[B2NRow]]:
    """{(shots, trainer, config): rows in dataset order}."""
    train_base = _experiments(os.path.join(root, "train_base"))
    test_base = _experiments(os.path.join(root, "test_base"))
    if not train_base and not test_base:
        raise ParseError(f"no train_base/<dataset>/shots_<K>/<trainer>/<config> folders under {root}")

    groups: dict[tuple[str, str, str], list[B2NRow]] = {}
    for dataset, shots, trainer, config in sorted(train_base | test_base,
                                                  key=lambda e: (e[1:], _dataset_key(e[0]))):
        rel = (dataset, shots, trainer, config)
        if rel in train_base:
            base_dir, base_signals = os.path.join(root, "train_base", *rel), TRAIN_END_SIGNALS
        else:
            base_dir, base_signals = os.path.join(root, "test_base", *rel), TEST_END_SIGNALS
        new_dir = os.path.join(root, "test_new", *rel)
        if not os.path.isdir(new_dir):
            raise ParseError(f"no test_new results for {dataset} (expected {new_dir})")
        base, n_base = _seed_mean(base_dir, keyword, base_signals)
        new, n_new = _seed_mean(new_dir, keyword, TEST_END_SIGNALS)
        groups.setdefault((shots, trainer, config), []).append(B2NRow(dataset, base, new, n_base, n_new))
    return groups


def average_row(rows: Sequence[B2NRow]) -> tuple[float, float, float]:
    base = statistics.fmean(row.base for row in rows)
    new = statistics.fmean(row.new for row in rows)
    return base, new, harmonic_mean(base, new)


def _seeds(row: B2NRow) -> str:
    if row.seeds_base == row.seeds_new:
        return str(row.seeds_base)
    return f"{row.seeds_base}/{row.seeds_new}"


def format_markdown(groups: dict[tuple[str, str, str], list[B2NRow]]) -> str:
    blocks = []
    for (shots, trainer, config), rows in groups.items():
        lines = [f"### {trainer} / {config} / {shots}", "",
                 "| Dataset | Seeds | Base | New | HM |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {r.dataset} | {_seeds(r)} | {r.base:.2f} | {r.new:.2f} | {r.hm:.2f} |"
                  for r in rows]
        base, new, hm = average_row(rows)
        lines.append(f"| Average | | {base:.2f} | {new:.2f} | {hm:.2f} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def format_csv(groups: dict[tuple[str, str, str], list[B2NRow]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["shots", "trainer", "config", "dataset", "seeds_base", "seeds_new",
                     "base", "new", "hm"])
    for (shots, trainer, config), rows in groups.items():
        for r in rows:
            writer.writerow([shots, trainer, config, r.dataset, r.seeds_base, r.seeds_new,
                             f"{r.base:.2f}", f"{r.new:.2f}", f"{r.hm:.2f}"])
        base, new, hm = average_row(rows)
        writer.writerow([shots, trainer, config, "average", "", "", f"{base:.2f}", f"{new:.2f}",
                         f"{hm:.2f}"])
    return out.getvalue()


# ---------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", nargs="?", help="folder of seed folders (or of experiments)")
    parser.add_argument("--ci95", action="store_true", help="report the 95%% confidence interval")
    parser.add_argument("--test-log", action="store_true",
                        help='eval-only logs: read results after "=> result"')
    parser.add_argument("--multi-exp", action="store_true",
                        help="directory holds experiments, each a folder of seed folders")
    parser.add_argument("--keyword", action="append", default=None,
                        help="metric name (default: accuracy); repeat to parse several")
    parser.add_argument("--base2new", metavar="ROOT",
                        help="base-to-new table from ROOT/{train_base,test_new}/... (Markdown)")
    parser.add_argument("--csv", metavar="FILE",
                        help="with --base2new: also write the table as CSV to FILE ('-' = stdout)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    keywords = args.keyword or ["accuracy"]
    if args.base2new is not None and (args.directory or args.multi_exp):
        parser.error("--base2new takes its ROOT itself; drop the positional directory and --multi-exp")
    if args.base2new is None and not args.directory:
        parser.error("give a directory, or --base2new ROOT")
    if args.csv and args.base2new is None:
        parser.error("--csv is only used with --base2new")

    try:
        if args.base2new is not None:
            groups = collect_base2new(args.base2new, keywords[0])
            print(format_markdown(groups), end="")
            if args.csv == "-":
                print()
                print(format_csv(groups), end="")
            elif args.csv:
                with open(args.csv, "w", encoding="utf-8", newline="") as f:
                    f.write(format_csv(groups))
            return 0
        end_signals = TEST_END_SIGNALS if args.test_log else TRAIN_END_SIGNALS
        if args.multi_exp:
            parse_multi_exp(args.directory, keywords, end_signals, args.ci95)
        else:
            parse_directory(args.directory, keywords, end_signals, args.ci95)
        return 0
    except (ParseError, OSError) as err:
        if debugging():
            raise
        return report(err, prog="parse_test_res.py")


if __name__ == "__main__":
    sys.exit(main())
