"""scripts/plot_results.py on generated output folders: the numbers drawn and tabulated are those
parse_test_res.py parses; PNG/PDF files with predictable names; Markdown/CSV/LaTeX tables."""
from __future__ import annotations

import csv
import importlib.util
import io
import os
import statistics
import sys

import numpy as np
import pytest

from fixtures.trainer_fixtures import REPO
from test_parse_test_res import B2N, CFG, eval_log, train_log, write

SHOTS = (1, 2, 4)
SEEDS = (1, 2, 3)
DATASETS = ("eurosat", "caltech101")
METHODS = {"CoOp": 0, "CoCoOp": 1}


@pytest.fixture(scope="module")
def plot_results():
    spec = importlib.util.spec_from_file_location("plot_results", os.path.join(REPO, "scripts", "plot_results.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def acc(method, dataset, shots, seed):
    """Distinct, known numbers per run."""
    return round(40.0 + 10 * method + 3 * DATASETS.index(dataset) + 5 * SHOTS.index(shots) + 1.5 * seed, 2)


def experiment_dir(root, method, dataset, shots):
    if method == 0:  # CoOp's main.sh layout, with a variant folder
        return root / dataset / "CoOp" / f"rn50_ep50_{shots}shots" / "nctx16_cscFalse_ctpend"
    return root / dataset / "CoCoOp" / f"vit_b16_c4_ep10_batch1_ctxv1_{shots}shots"  # xd_train layout


@pytest.fixture(scope="module")
def fewshot_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fewshot") / "output"
    for method in (0, 1):
        for dataset in DATASETS:
            for shots in SHOTS:
                for seed in SEEDS:
                    log = experiment_dir(root, method, dataset, shots) / f"seed{seed}" / "log.txt"
                    write(log, train_log(acc(method, dataset, shots, seed)))
    write(root / "base2new" / "train_base" / "eurosat" / "shots_16" / "CoOp" / "c" / "seed1" / "log.txt",
          train_log(1.0))  # base-to-new runs are not few-shot points
    return root


def expected_curve(method, datasets):
    """(means, stds) over seeds of the mean over `datasets`, per shots."""
    per_seed = [[statistics.fmean(acc(method, d, k, s) for d in datasets) for s in SEEDS] for k in SHOTS]
    return [statistics.fmean(v) for v in per_seed], [statistics.pstdev(v) for v in per_seed]


def assert_valid_files(out, stems):
    for stem in stems:
        with open(out / f"{stem}.png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        with open(out / f"{stem}.pdf", "rb") as f:
            assert f.read(5) == b"%PDF-"


def test_fewshot_figures_draw_the_parsed_numbers(plot_results, fewshot_root, tmp_path, capsys):
    out = tmp_path / "figures"
    assert plot_results.main(["fewshot", str(fewshot_root), "--out", str(out)]) == 0
    stems = ["fewshot_eurosat", "fewshot_caltech101", "fewshot_average"]
    assert_valid_files(out, stems)
    assert sorted(os.listdir(out)) == sorted([f"{s}.{e}" for s in stems for e in ("png", "pdf")] +
                                             [f"fewshot_table.{e}" for e in ("md", "csv", "tex")])

    figures = plot_results.fewshot_figures(plot_results.collect_fewshot([str(fewshot_root)]))
    assert list(figures) == ["fewshot_caltech101", "fewshot_eurosat", "fewshot_average"]  # paper order
    for stem, datasets in (("fewshot_eurosat", ["eurosat"]), ("fewshot_average", list(DATASETS))):
        ax = figures[stem].axes[0]
        assert [line.get_label() for line in ax.lines] == ["CoCoOp", "CoOp"]  # sorted
        for line, band in zip(ax.lines, ax.collections):
            means, stds = expected_curve(METHODS[line.get_label()], datasets)
            np.testing.assert_allclose(line.get_xdata(), SHOTS)
            np.testing.assert_allclose(line.get_ydata(), means, atol=1e-9)
            vertices = band.get_paths()[0].vertices
            for k, m, s in zip(SHOTS, means, stds):
                ys = vertices[np.isclose(vertices[:, 0], k), 1]
                assert np.isclose(ys.min(), m - s) and np.isclose(ys.max(), m + s)
        assert {line.get_marker() for line in ax.lines} == {"o", "s"}  # black-and-white: markers differ
        assert len({line.get_linestyle() for line in ax.lines}) == 2


def test_fewshot_tables(plot_results, fewshot_root, tmp_path):
    out = tmp_path / "tables"
    assert plot_results.main(["fewshot", str(fewshot_root), "--out", str(out), "--shots", "2"]) == 0
    coop = {d: statistics.fmean(acc(0, d, 2, s) for s in SEEDS) for d in DATASETS}
    cocoop = {d: statistics.fmean(acc(1, d, 2, s) for s in SEEDS) for d in DATASETS}
    avg = statistics.fmean(cocoop.values())
    # CoCoOp is 10 points above CoOp everywhere: its row holds the best values, in bold.
    assert (out / "fewshot_table.md").read_text() == (
        "| Method | caltech101 | eurosat | Average |\n|---|---:|---:|---:|\n"
        f"| CoCoOp | **{cocoop['caltech101']:.2f}** | **{cocoop['eurosat']:.2f}** | **{avg:.2f}** |\n"
        f"| CoOp | {coop['caltech101']:.2f} | {coop['eurosat']:.2f} | {statistics.fmean(coop.values()):.2f} |\n")
    rows = list(csv.DictReader(io.StringIO((out / "fewshot_table.csv").read_text())))
    assert rows[0] == {"method": "CoCoOp", "caltech101": f"{cocoop['caltech101']:.2f}",
                       "eurosat": f"{cocoop['eurosat']:.2f}", "Average": f"{avg:.2f}"}
    tex = (out / "fewshot_table.tex").read_text().splitlines()
    assert tex[:4] == [r"\begin{tabular}{lrrr}", r"\toprule", r"Method & caltech101 & eurosat & Average \\",
                       r"\midrule"]
    assert tex[4] == (rf"CoCoOp & \textbf{{{cocoop['caltech101']:.2f}}} & \textbf{{{cocoop['eurosat']:.2f}}} "
                      rf"& \textbf{{{avg:.2f}}} \\")
    assert tex[-2:] == [r"\bottomrule", r"\end{tabular}"]


def test_table_formats_with_ties_gaps_and_escapes(plot_results):
    rows = {"Co_Op": {"a": 70.0, "b": 50.0}, "Mine": {"a": 70.0}}
    markdown = plot_results.format_table_markdown(rows, ["a", "b"])
    assert markdown.splitlines()[2:] == ["| Co_Op | **70.00** | **50.00** |", "| Mine | **70.00** | - |"]
    assert plot_results.format_table_csv(rows, ["a", "b"]).splitlines()[2] == "Mine,70.00,"
    assert r"Co\_Op & \textbf{70.00} & \textbf{50.00} \\" in plot_results.format_table_latex(rows, ["a", "b"])


@pytest.fixture
def b2n_two_methods(tmp_path):
    root = tmp_path / "base2new"
    for trainer, offset in (("CoCoOp", 0.0), ("MaPLe", 2.0)):
        cfg = (CFG[0], trainer, CFG[2])
        for dataset, (base, new) in B2N.items():
            for seed, (b, n) in enumerate(zip(base, new), 1):
                write(root.joinpath("train_base", dataset, *cfg, f"seed{seed}", "log.txt"), train_log(b + offset))
                write(root.joinpath("test_new", dataset, *cfg, f"seed{seed}", "log.txt"), eval_log(n - offset))
    return root


def test_base2new_bars_draw_the_parsed_numbers(plot_results, b2n_two_methods, tmp_path):
    import parse_test_res

    out = tmp_path / "figures"
    assert plot_results.main(["base2new", str(b2n_two_methods), "--out", str(out)]) == 0
    stems = ["base2new_imagenet", "base2new_oxford_pets", "base2new_eurosat", "base2new_average"]
    assert_valid_files(out, stems)

    groups = parse_test_res.collect_base2new(str(b2n_two_methods), "accuracy")
    parsed = {trainer: rows for (_, trainer, _), rows in groups.items()}
    figures = plot_results.b2n_figures(plot_results.collect_b2n(str(b2n_two_methods)))
    assert list(figures) == stems
    for stem, dataset in zip(stems, ["imagenet", "oxford_pets", "eurosat", None]):
        ax = figures[stem].axes[0]
        heights = [patch.get_height() for patch in ax.patches]
        expected = []
        for trainer in ("CoCoOp", "MaPLe"):
            if dataset is None:
                expected += list(parse_test_res.average_row(parsed[trainer]))
            else:
                row = next(r for r in parsed[trainer] if r.dataset == dataset)
                expected += [row.base, row.new, row.hm]
        np.testing.assert_allclose(heights, expected)
        assert len({patch.get_hatch() for patch in ax.patches}) == 2  # methods differ without colour
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["CoCoOp", "MaPLe"]

    hm = (out / "base2new_table.md").read_text().splitlines()
    avg = {t: parse_test_res.average_row(parsed[t])[2] for t in ("CoCoOp", "MaPLe")}
    assert hm[0] == "| Method | imagenet | oxford_pets | eurosat | Average |"
    assert avg["CoCoOp"] > avg["MaPLe"] + 0.01  # MaPLe's +2 on base costs more HM than it gains
    assert hm[2].endswith(f"| **{avg['CoCoOp']:.2f}** |") and hm[3].endswith(f"| {avg['MaPLe']:.2f} |")


def test_training_curves_from_log_and_tensorboard(plot_results, tmp_path):
    run = tmp_path / "output" / "run1"
    lines = [f"epoch [{e}/2] batch [{b}/3] time 0.100 (0.100) data 0.010 (0.010) loss {2.0 - e * 0.3 - b * 0.1:.4f} "
             f"({2.0 - e * 0.3:.4f}) acc 50.0000 ({40.0 + 10 * e + b:.4f}) lr {0.002 / e:.4e} eta 0:00:01"
             for e in (1, 2) for b in (1, 2, 3)]
    write(run / "log.txt", "\n".join(["Loading", *lines, "Finish training"]) + "\n")
    scalars = plot_results.read_training_scalars(str(run))
    assert scalars["train/loss"] == ([0, 1, 2, 3, 4, 5], [1.7, 1.7, 1.7, 1.4, 1.4, 1.4])
    assert scalars["train/acc"][1] == [51.0, 52.0, 53.0, 61.0, 62.0, 63.0]
    assert scalars["train/lr"][1] == [0.002, 0.002, 0.002, 0.001, 0.001, 0.001]
    fig = plot_results.plot_training(scalars, "run1")
    assert [ax.get_ylabel() for ax in fig.axes] == ["acc", "loss", "lr"]
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), scalars["train/loss"][1])

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(run / "tensorboard"))
    for step, value in enumerate((0.9, 0.7, 0.4)):
        writer.add_scalar("train/loss", value, step)
    writer.close()
    assert plot_results.read_training_scalars(str(run)) == {"train/loss": ([0, 1, 2], pytest.approx([0.9, 0.7, 0.4]))}
    out = tmp_path / "figures"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert plot_results.main(["training", "output/run1", "--out", str(out)]) == 0
    finally:
        os.chdir(cwd)
    assert_valid_files(out, ["training_output_run1"])


def test_errors_are_one_line(plot_results, tmp_path, capsys):
    assert plot_results.main(["fewshot", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no few-shot results") and err.count("\n") == 1
    assert plot_results.main(["training", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: no tensorboard/ events and no log.txt in {tmp_path}\n"
    assert plot_results.main(["base2new", str(tmp_path / "nope")]) == 2
    assert "no train_base/" in capsys.readouterr().err
