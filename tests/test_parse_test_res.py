"""parse_test_res.py on generated log folders."""
from __future__ import annotations

import csv
import io
import math
import os
import shutil
import statistics
import subprocess
import sys

import pytest

import parse_test_res

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def result_block(acc, f1=50.0):
    return ["=> result", "* total: 100", "* correct: 70", f"* accuracy: {acc}%",
            f"* error: {100 - acc:.1f}%", f"* macro_f1: {f1}%"]


def train_log(acc, signal="Finish training", f1=50.0):
    """A training log: a val result before the end signal (ignored), then the final test."""
    return "\n".join(["epoch [1/1] batch [1/1] loss 1.0", *result_block(11.0), signal,
                      "Deploy the last-epoch model", "Evaluate on the *test* set",
                      *result_block(acc, f1), "Elapsed: 0:00:05"]) + "\n"


def eval_log(acc):
    return "\n".join(["Loading weights", "Evaluate on the *test* set", *result_block(acc)]) + "\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def run(capsys, *argv):
    code = parse_test_res.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def seeds(tmp_path):
    d = tmp_path / "exp"
    for seed, acc in zip((1, 2, 3), (70.0, 72.5, 74.0)):
        write(d / f"seed{seed}" / "log.txt", train_log(acc, f1=40.0 + seed))
        write(d / f"seed{seed}" / "log.txt-2024-01-01-00-00-00", train_log(0.0))  # ignored
    write(d / ".hidden" / "log.txt", train_log(0.0))
    return d


def test_default_mode(seeds, capsys):
    code, out, _ = run(capsys, seeds)
    assert code == 0
    mean, std = statistics.fmean([70, 72.5, 74]), statistics.pstdev([70, 72.5, 74])
    lines = out.splitlines()
    assert f"file: {seeds}/seed1/log.txt. accuracy: 70.00%." in lines
    assert f"file: {seeds}/seed3/log.txt. accuracy: 74.00%." in lines
    assert f"* accuracy: {mean:.2f}% +- {std:.2f}%" in lines
    assert "* accuracy: 72.17% +- 1.65%" in lines


def test_older_end_signal_and_last_match_wins(tmp_path, capsys):
    d = tmp_path / "exp"
    write(d / "seed1" / "log.txt", train_log(60.0, signal="Finished training") + "* accuracy: 61.5%\n")
    code, out, _ = run(capsys, d)
    assert code == 0 and "* accuracy: 61.50% +- 0.00%" in out


def test_ci95(seeds, capsys):
    _, out, _ = run(capsys, seeds, "--ci95")
    ci = 1.96 * statistics.pstdev([70, 72.5, 74]) / math.sqrt(3)
    assert f"* accuracy: 72.17% +- {ci:.2f}%" in out


def test_other_and_several_keywords(seeds, capsys):
    _, out, _ = run(capsys, seeds, "--keyword", "macro_f1")
    assert "* macro_f1: 42.00% +- 0.82%" in out
    _, out, _ = run(capsys, seeds, "--keyword", "accuracy", "--keyword", "error")
    assert f"file: {seeds}/seed2/log.txt. accuracy: 72.50%. error: 27.50%." in out
    assert "* accuracy: 72.17%" in out and "* error: 27.83%" in out


def test_test_log_mode(tmp_path, capsys):
    d = tmp_path / "eval"
    for seed, acc in zip((1, 2), (50.0, 60.0)):
        write(d / f"seed{seed}" / "log.txt", eval_log(acc))
    code, out, _ = run(capsys, d)  # no "Finish training" in eval-only logs
    assert code == 2
    code, out, _ = run(capsys, d, "--test-log")
    assert code == 0 and "* accuracy: 55.00% +- 5.00%" in out


def test_multi_exp(tmp_path, capsys):
    root = tmp_path / "all"
    for exp, accs in {"a": (60.0, 62.0), "b": (80.0, 90.0)}.items():
        for seed, acc in enumerate(accs, 1):
            write(root / exp / f"seed{seed}" / "log.txt", train_log(acc))
    code, out, _ = run(capsys, root, "--multi-exp")
    assert code == 0
    assert "* accuracy: 61.00% +- 1.00%" in out and "* accuracy: 85.00% +- 5.00%" in out
    assert out.splitlines()[-2:] == ["Average performance", "* accuracy: 73.00%"]


def test_errors_are_one_line_and_nonzero(tmp_path, capsys):
    (tmp_path / "exp" / "seed1").mkdir(parents=True)
    code, out, err = run(capsys, tmp_path / "exp")
    assert code == 2 and err.count("\n") == 1 and "no log.txt in" in err
    code, _, err = run(capsys, tmp_path / "missing")
    assert code == 2 and "not a directory" in err
    write(tmp_path / "exp" / "seed1" / "log.txt", "nothing here\n")
    code, _, err = run(capsys, tmp_path / "exp")
    assert code == 2 and "no '* accuracy: ...%' line" in err


# ---------------------------------------------------------------- base-to-new

B2N = {  # dataset -> (base accs per seed, new accs per seed)
    "oxford_pets": ((95.0, 96.0, 94.0), (97.0, 98.0, 96.0)),
    "imagenet": ((76.0, 77.0, 75.0), (70.0, 71.0, 69.0)),
    "eurosat": ((90.0, 80.0, 85.0), (60.0, 40.0, 50.0)),
}
CFG = ("shots_16", "CoCoOp", "vit_b16_c4_ep10_batch1_ctxv1")


@pytest.fixture
def b2n_root(tmp_path):
    root = tmp_path / "base2new"
    for dataset, (base, new) in B2N.items():
        for seed, (b, n) in enumerate(zip(base, new), 1):
            write(root.joinpath("train_base", dataset, *CFG, f"seed{seed}", "log.txt"), train_log(b))
            write(root.joinpath("test_new", dataset, *CFG, f"seed{seed}", "log.txt"), eval_log(n))
    return root


def hm(b, n):
    return 2 * b * n / (b + n)


def test_base2new_markdown_and_csv(b2n_root, tmp_path, capsys):
    csv_path = tmp_path / "b2n.csv"
    code, out, _ = run(capsys, "--base2new", b2n_root, "--csv", csv_path)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "### CoCoOp / vit_b16_c4_ep10_batch1_ctxv1 / shots_16"
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| Dataset")]
    # Paper order: imagenet, oxford_pets, eurosat; then the average row.
    assert [r.split("|")[1].strip() for r in rows] == ["imagenet", "oxford_pets", "eurosat", "Average"]
    assert rows[0] == f"| imagenet | 3 | 76.00 | 70.00 | {hm(76, 70):.2f} |"
    assert rows[2] == f"| eurosat | 3 | 85.00 | 50.00 | {hm(85, 50):.2f} |"
    avg_b, avg_n = (76 + 95 + 85) / 3, (70 + 97 + 50) / 3
    assert rows[3] == f"| Average | | {avg_b:.2f} | {avg_n:.2f} | {hm(avg_b, avg_n):.2f} |"
    # HM of the averages, not the average of the per-dataset HMs.
    assert abs(hm(avg_b, avg_n) - statistics.fmean(hm(*[statistics.fmean(x) for x in v])
                                                   for v in B2N.values())) > 0.1

    table = list(csv.DictReader(open(csv_path)))
    assert [r["dataset"] for r in table] == ["imagenet", "oxford_pets", "eurosat", "average"]
    assert table[1] == {"shots": "shots_16", "trainer": "CoCoOp", "config": CFG[2],
                        "dataset": "oxford_pets", "seeds_base": "3", "seeds_new": "3",
                        "base": "95.00", "new": "97.00", "hm": f"{hm(95, 97):.2f}"}
    assert float(table[3]["hm"]) == pytest.approx(hm(avg_b, avg_n), abs=0.005)


def test_base2new_csv_to_stdout_and_missing_new(b2n_root, capsys):
    code, out, _ = run(capsys, "--base2new", b2n_root, "--csv", "-")
    assert code == 0
    csv_text = out[out.index("shots,trainer"):]
    assert len(list(csv.reader(io.StringIO(csv_text)))) == 5
    shutil.rmtree(b2n_root.joinpath("test_new", "eurosat"))
    code, _, err = run(capsys, "--base2new", b2n_root)
    assert code == 2 and "no test_new results for eurosat" in err


def test_base2new_unfinished_seed_is_an_error(b2n_root, capsys):
    write(b2n_root.joinpath("train_base", "imagenet", *CFG, "seed4", "log.txt"), "epoch [1/10]\n")
    code, _, err = run(capsys, "--base2new", b2n_root)
    assert code == 2 and "seed4/log.txt" in err and err.count("\n") == 1


def test_script_entry_point(b2n_root):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "parse_test_res.py"), "--base2new",
                           str(b2n_root / "nope")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("parse_test_res.py: error: no train_base/")
