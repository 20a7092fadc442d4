#!/usr/bin/env python
"""Figures and tables from output folders: few-shot curves, base/new/HM bars, training curves.

    python scripts/plot_results.py fewshot output [more roots] --out figures
    python scripts/plot_results.py base2new output/base2new --out figures
    python scripts/plot_results.py training output/base2new/train_base/eurosat/shots_16/CoOp/cfg/seed1 --out figures

Results are read with parse_test_res.py's parser (the same log lines, end signals and seed means).
- fewshot: every folder of seed*/log.txt whose path names the shots (`<dataset>/<trainer>/<cfg>_<K>shots
  [/<variant>]`, as CoOp's scripts write, or `<dataset>/shots_<K>[/<trainer>/<cfg>]`): accuracy vs
  shots per dataset and averaged over datasets, one line per method (mean over seeds, band = the
  seeds' population std). Writes fewshot_<dataset>.{png,pdf}, fewshot_average.{png,pdf} and the table
  fewshot_table.{md,csv,tex} at --shots (default: the largest).
- base2new: parse_test_res.py --base2new's results as grouped Base/New/HM bars per dataset and on
  average (mean base, mean new, HM of those), one bar per method: base2new_<dataset>.{png,pdf},
  base2new_average.{png,pdf} and base2new_table.{md,csv,tex} of --metric (hm, base or new).
- training: the training scalars of a run (tensorboard/ if it holds event files, else the "epoch
  [e/E] batch [b/B] ... loss x (avg)" lines of log.txt): training_<run path with / as _>.{png,pdf}.

Methods are labelled by trainer name, or trainer/config/variant where a trainer has several.
Tables: a row per method, a column per dataset plus the average, best value per column in bold
(Markdown, LaTeX booktabs; the CSV holds the plain numbers). Figures use markers, line styles and
hatches besides colours, so they read in black and white.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import os
import re
import statistics
import sys
from dataclasses import dataclass, field
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dassl.cli import UserError, one_line_errors  # noqa: E402
from parse_test_res import (  # noqa: E402
    DATASET_ORDER, TEST_END_SIGNALS, TRAIN_END_SIGNALS, ParseError, average_row, collect_base2new, read_metrics,
)

FORMATS = ("png", "pdf")
SPLIT_FOLDERS = {"base2new", "train_base", "test_base", "test_new", "evaluation"}  # not few-shot runs
COLORS = ("#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#999999")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")
HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "--", "++")
SHOTS_PART = re.compile(r"^(?:shots_(\d+)|(.*)_(\d+)shots)$")
TRAIN_LINE = re.compile(r"^epoch \[(\d+)/(\d+)\] batch \[(\d+)/(\d+)\] (.*)$")
METER = re.compile(r"(\w+) (-?[\d.]+(?:e[-+]?\d+)?) \((-?[\d.]+(?:e[-+]?\d+)?)\)")
AVERAGE = "Average"


# ---------------------------------------------------------------- collecting (parse_test_res)

@dataclass
class Curve:
    """Per-seed values of one method on one dataset: {shots: {seed folder: value}}."""

    values: dict[int, dict[str, float]] = field(default_factory=dict)

    def stats(self) -> tuple[list[int], list[float], list[float]]:
        """(shots, mean over seeds, population std over seeds), shots ascending."""
        shots = sorted(self.values)
        seeds = [list(self.values[k].values()) for k in shots]
        return shots, [statistics.fmean(v) for v in seeds], [statistics.pstdev(v) for v in seeds]


def dataset_sort_key(name: str) -> tuple[int, str]:
    return (DATASET_ORDER.index(name) if name in DATASET_ORDER else len(DATASET_ORDER), name)


def _experiment(rel_parts: list[str]) -> Optional[tuple[str, str, int]]:
    """(dataset, method, shots) named by the path of a folder of seed folders, or None."""
    if SPLIT_FOLDERS & set(rel_parts):
        return None
    for i, part in enumerate(rel_parts):
        match = SHOTS_PART.match(part)
        if not match:
            continue
        if match.group(1):  # <dataset>/shots_K/<trainer>/<cfg>
            if i < 1:
                return None
            return rel_parts[i - 1], "/".join(rel_parts[i + 1:]), int(match.group(1))
        if i < 2:  # <dataset>/<trainer>/<cfg>_Kshots/<variant>
            return None
        method = "/".join([rel_parts[i - 1], match.group(2), *rel_parts[i + 1:]])
        return rel_parts[i - 2], method, int(match.group(3))
    return None


def collect_fewshot(roots: Sequence[str], keyword: str = "accuracy", test_log: bool = False
                    ) -> dict[str, dict[str, Curve]]:
    """{method: {dataset: Curve}} of every few-shot experiment under the roots."""
    end_signals = TEST_END_SIGNALS if test_log else TRAIN_END_SIGNALS
    found: dict[str, dict[str, Curve]] = {}
    for root in roots:
        if not os.path.isdir(root):
            raise ParseError(f"not a directory: {root}")
        for folder, subfolders, _ in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            seeds = [d for d in subfolders if d.startswith("seed") and
                     os.path.isfile(os.path.join(folder, d, "log.txt"))]
            if not seeds:
                continue
            parts = os.path.relpath(folder, root).split(os.sep)
            experiment = _experiment([] if parts == ["."] else parts)
            if experiment is None:
                continue
            dataset, method, shots = experiment
            method = method or os.path.basename(os.path.abspath(root))
            for seed in seeds:
                metrics = read_metrics(os.path.join(folder, seed, "log.txt"), [keyword], end_signals)
                if keyword in metrics:
                    curve = found.setdefault(method, {}).setdefault(dataset, Curve())
                    curve.values.setdefault(shots, {})[seed] = metrics[keyword]
    if not found:
        raise ParseError(f"no few-shot results (folders <dataset>/<trainer>/<cfg>_<K>shots/seed*/log.txt "
                         f"or <dataset>/shots_<K>/.../seed*/log.txt with a '* {keyword}: ...%' line) "
                         f"under {', '.join(roots)}")
    return {method: found[method] for method in sorted(found)}


def average_curve(curves: dict[str, Curve]) -> Curve:
    """Mean over datasets, per shots and seed (seeds present in every dataset at that shots)."""
    average = Curve()
    all_shots = set.intersection(*(set(c.values) for c in curves.values()))
    for shots in all_shots:
        seeds = set.intersection(*(set(c.values[shots]) for c in curves.values()))
        if seeds:
            average.values[shots] = {s: statistics.fmean(c.values[shots][s] for c in curves.values())
                                     for s in sorted(seeds)}
    return average


def short_labels(methods: Sequence[str]) -> dict[str, str]:
    """Trainer name where it identifies the method, else the whole trainer/config/variant key."""
    trainers = [m.split("/")[0] for m in methods]
    return {m: t if trainers.count(t) == 1 else m for m, t in zip(methods, trainers)}


def collect_b2n(root: str, keyword: str = "accuracy") -> dict[str, dict[str, tuple[float, float, float]]]:
    """{method: {dataset or AVERAGE: (base, new, hm)}} from parse_test_res's base-to-new parser."""
    groups = collect_base2new(root, keyword)
    table: dict[str, dict[str, tuple[float, float, float]]] = {}
    for (shots, trainer, config), rows in groups.items():
        method = "/".join([trainer, config, shots])
        table[method] = {row.dataset: (row.base, row.new, row.hm) for row in rows}
        table[method][AVERAGE] = average_row(rows)
    return table


# ---------------------------------------------------------------- tables

def _best(rows: dict[str, dict[str, float]], columns: Sequence[str]) -> dict[str, float]:
    best = {}
    for column in columns:
        values = [r[column] for r in rows.values() if column in r]
        if values:
            best[column] = max(values)
    return best


def _cells(rows, columns, bold) -> list[list[str]]:
    best = _best(rows, columns)
    out = []
    for method, values in rows.items():
        cells = [method]
        for column in columns:
            if column not in values:
                cells.append("-")
                continue
            text = f"{values[column]:.2f}"
            cells.append(bold(text) if f"{best[column]:.2f}" == text else text)
        out.append(cells)
    return out


def format_table_markdown(rows: dict[str, dict[str, float]], columns: Sequence[str]) -> str:
    lines = ["| Method | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _cells(rows, columns, lambda t: f"**{t}**")]
    return "\n".join(lines) + "\n"


def format_table_csv(rows: dict[str, dict[str, float]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["method", *columns])
    for method, values in rows.items():
        writer.writerow([method] + [f"{values[c]:.2f}" if c in values else "" for c in columns])
    return out.getvalue()


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(char, char) for char in text)


def format_table_latex(rows: dict[str, dict[str, float]], columns: Sequence[str]) -> str:
    lines = [r"\begin{tabular}{l" + "r" * len(columns) + "}", r"\toprule",
             " & ".join(["Method", *map(latex_escape, columns)]) + r" \\", r"\midrule"]
    for cells in _cells(rows, columns, lambda t: rf"\textbf{{{t}}}"):
        lines.append(" & ".join([latex_escape(cells[0]), *cells[1:]]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


TABLE_FORMATS = {"md": format_table_markdown, "csv": format_table_csv, "tex": format_table_latex}


def write_tables(rows: dict[str, dict[str, float]], columns: Sequence[str], out_dir: str, stem: str) -> list[str]:
    paths = []
    for ext, formatter in TABLE_FORMATS.items():
        path = os.path.join(out_dir, f"{stem}.{ext}")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(formatter(rows, columns))
        paths.append(path)
    return paths


def fewshot_table(results: dict[str, dict[str, Curve]], shots: int) -> tuple[dict[str, dict[str, float]], list[str]]:
    """({method label: {dataset: mean, Average: mean over datasets}}, columns) at `shots`."""
    labels = short_labels(list(results))
    datasets = sorted({d for curves in results.values() for d in curves}, key=dataset_sort_key)
    rows: dict[str, dict[str, float]] = {}
    for method, curves in results.items():
        row = {d: statistics.fmean(c.values[shots].values()) for d, c in curves.items() if shots in c.values}
        if row and all(d in row for d in datasets):
            row[AVERAGE] = statistics.fmean(row[d] for d in datasets)
        if row:
            rows[labels[method]] = row
    return rows, datasets + [AVERAGE]


def b2n_table(results: dict[str, dict[str, tuple[float, float, float]]], metric: str
              ) -> tuple[dict[str, dict[str, float]], list[str]]:
    index = ("base", "new", "hm").index(metric)
    labels = short_labels(list(results))
    datasets = sorted({d for r in results.values() for d in r if d != AVERAGE}, key=dataset_sort_key)
    rows = {labels[m]: {d: v[index] for d, v in r.items()} for m, r in results.items()}
    return rows, datasets + [AVERAGE]


# ---------------------------------------------------------------- figures

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style(i: int) -> dict:
    return dict(color=COLORS[i % len(COLORS)], marker=MARKERS[i % len(MARKERS)],
                linestyle=LINESTYLES[i % len(LINESTYLES)])


def plot_fewshot(curves: dict[str, Curve], title: str, keyword: str = "accuracy"):
    """Figure: mean vs shots per method (label -> Curve), the seeds' std as a band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.0, 3.0))
    all_shots: set[int] = set()
    for i, (label, curve) in enumerate(curves.items()):
        shots, mean, std = curve.stats()
        if not shots:
            continue
        all_shots.update(shots)
        style = _style(i)
        ax.plot(shots, mean, label=label, linewidth=1.5, markersize=5, **style)
        ax.fill_between(shots, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=style["color"], alpha=0.15, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(all_shots), [str(k) for k in sorted(all_shots)])
    ax.minorticks_off()
    ax.set_xlabel("shots per class")
    ax.set_ylabel(f"{keyword} (%)")
    ax.set_title(title)
    ax.grid(True, color="#dddddd", linewidth=0.5)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_b2n(values: dict[str, tuple[float, float, float]], title: str):
    """Figure: groups Base / New / HM, one hatched bar per method (label -> (base, new, hm))."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.0, 3.0))
    n = max(len(values), 1)
    width = 0.8 / n
    for i, (label, triple) in enumerate(values.items()):
        xs = [g + (i - (n - 1) / 2) * width for g in range(3)]
        ax.bar(xs, triple, width, label=label, color=COLORS[i % len(COLORS)] if i else "#bbbbbb",
               edgecolor="black", hatch=HATCHES[i % len(HATCHES)], linewidth=0.6)
    ax.set_xticks(range(3), ["Base", "New", "HM"])
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.set_ylim(0, 100)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def read_training_scalars(run_dir: str) -> dict[str, tuple[list[float], list[float]]]:
    """{name: (steps, values)} of the training scalars of a run: tensorboard, else log.txt."""
    events = glob.glob(os.path.join(run_dir, "tensorboard", "events.out.tfevents.*"))
    if events:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        scalars: dict[str, tuple[list[float], list[float]]] = {}
        for path in sorted(events):
            accumulator = EventAccumulator(path)
            accumulator.Reload()
            for tag in accumulator.Tags().get("scalars", []):
                steps, values = scalars.setdefault(tag, ([], []))
                for event in accumulator.Scalars(tag):
                    steps.append(event.step)
                    values.append(event.value)
        if scalars:
            return scalars
    log_path = os.path.join(run_dir, "log.txt")
    if not os.path.isfile(log_path):
        raise UserError(f"no tensorboard/ events and no log.txt in {run_dir}")
    scalars = {}
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = TRAIN_LINE.match(line.strip())
            if not match:
                continue
            epoch, _, batch, n_batches = (int(match.group(k)) for k in range(1, 5))
            step = (epoch - 1) * n_batches + batch - 1  # as the trainer's n_iter
            rest = match.group(5)
            for name, _, avg in METER.findall(rest.split(" lr ")[0]):
                if name not in ("time", "data"):
                    steps, values = scalars.setdefault(f"train/{name}", ([], []))
                    steps.append(step)
                    values.append(float(avg))
            lr = re.search(r" lr ([\d.]+e[-+]\d+)", " " + rest)
            if lr:
                steps, values = scalars.setdefault("train/lr", ([], []))
                steps.append(step)
                values.append(float(lr.group(1)))
    if not scalars:
        raise UserError(f"no training lines ('epoch [e/E] batch [b/B] ...') in {log_path}")
    return scalars


def plot_training(scalars: dict[str, tuple[list[float], list[float]]], title: str):
    """Figure: one panel per training scalar (loss, acc, ..., lr) against the iteration."""
    plt = _pyplot()
    names = sorted(scalars, key=lambda n: (n.endswith("/lr"), n))
    fig, axes = plt.subplots(len(names), 1, figsize=(4.0, 1.8 * len(names)), sharex=True, squeeze=False)
    for i, (ax, name) in enumerate(zip(axes[:, 0], names)):
        steps, values = scalars[name]
        ax.plot(steps, values, color=COLORS[i % len(COLORS)], linestyle=LINESTYLES[i % len(LINESTYLES)],
                linewidth=1.2)
        ax.set_ylabel(name.split("/")[-1])
        ax.grid(True, color="#dddddd", linewidth=0.5)
    axes[-1, 0].set_xlabel("iteration")
    axes[0, 0].set_title(title)
    fig.tight_layout()
    return fig


def save(fig, out_dir: str, stem: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"{stem}.{ext}") for ext in FORMATS]
    for path in paths:
        fig.savefig(path, dpi=150)
    _pyplot().close(fig)
    return paths


def file_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "run"


# ---------------------------------------------------------------- commands

def fewshot_figures(results: dict[str, dict[str, Curve]], keyword: str = "accuracy") -> dict[str, object]:
    """{file stem: figure}: one per dataset and the average."""
    labels = short_labels(list(results))
    datasets = sorted({d for curves in results.values() for d in curves}, key=dataset_sort_key)
    figures = {}
    for dataset in datasets:
        curves = {labels[m]: c[dataset] for m, c in results.items() if dataset in c}
        figures[f"fewshot_{file_stem(dataset)}"] = plot_fewshot(curves, dataset, keyword)
    averages = {labels[m]: average_curve(c) for m, c in results.items() if set(c) == set(datasets)}
    title = f"Average over {len(datasets)} dataset{'' if len(datasets) == 1 else 's'}"
    figures["fewshot_average"] = plot_fewshot(averages, title, keyword)
    return figures


def b2n_figures(results: dict[str, dict[str, tuple[float, float, float]]]) -> dict[str, object]:
    labels = short_labels(list(results))
    datasets = sorted({d for r in results.values() for d in r if d != AVERAGE}, key=dataset_sort_key)
    figures = {}
    for dataset in datasets + [AVERAGE]:
        values = {labels[m]: r[dataset] for m, r in results.items() if dataset in r}
        figures[f"base2new_{file_stem(dataset.lower())}"] = plot_b2n(values, dataset)
    return figures


def run_fewshot(args) -> list[str]:
    results = collect_fewshot(args.roots, args.keyword, args.test_log)
    paths = []
    for stem, fig in fewshot_figures(results, args.keyword).items():
        paths += save(fig, args.out, stem)
    all_shots = {k for curves in results.values() for c in curves.values() for k in c.values}
    shots = args.shots or max(all_shots)
    if shots not in all_shots:
        raise UserError(f"--shots {shots}: the results have {sorted(all_shots)} shots")
    rows, columns = fewshot_table(results, shots)
    return paths + write_tables(rows, columns, args.out, "fewshot_table")


def run_base2new(args) -> list[str]:
    if len(args.roots) != 1:
        raise UserError("base2new takes one ROOT (the folder holding train_base/ and test_new/)")
    results = collect_b2n(args.roots[0], args.keyword)
    paths = []
    for stem, fig in b2n_figures(results).items():
        paths += save(fig, args.out, stem)
    rows, columns = b2n_table(results, args.metric)
    return paths + write_tables(rows, columns, args.out, "base2new_table")


def run_training(args) -> list[str]:
    paths = []
    for run_dir in args.roots:
        name = os.path.normpath(os.path.relpath(run_dir)).replace(os.sep, "/").lstrip("./")
        paths += save(plot_training(read_training_scalars(run_dir), name), args.out,
                      f"training_{file_stem(name)}")
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("fewshot", "base2new", "training"))
    parser.add_argument("roots", nargs="+", help="output folders (training: run folders)")
    parser.add_argument("--out", default="figures", help="folder for the figures and tables")
    parser.add_argument("--keyword", default="accuracy", help="metric of the result lines")
    parser.add_argument("--test-log", action="store_true", help='fewshot: eval-only logs ("=> result")')
    parser.add_argument("--shots", type=int, help="fewshot: shots of the table (default: the largest)")
    parser.add_argument("--metric", choices=("hm", "base", "new"), default="hm", help="base2new: table metric")
    return parser


@one_line_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    run = {"fewshot": run_fewshot, "base2new": run_base2new, "training": run_training}[args.kind]
    for path in run(args):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
