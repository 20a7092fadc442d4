"""Name clashes: a `datasets` package that comes first on sys.path (Hugging Face's, faked here)
never replaces the project's own, wherever the code runs from; one already imported is one line."""
from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest

from dassl.cli import ShadowedPackageError, use_project_packages
from fixtures.trainer_fixtures import REPO, repo_path


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory):
    """A site folder holding a foreign `datasets` package (as `pip install datasets` would)."""
    site = tmp_path_factory.mktemp("fake_site")
    (site / "datasets").mkdir()
    (site / "datasets" / "__init__.py").write_text('"""Not the project\'s datasets."""\nFOREIGN = True\n')
    return site


def run_elsewhere(fake_site, cwd, *argv):
    """python argv... from `cwd` with the foreign package first on sys.path, then the project."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake_site), REPO]), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_foreign_package_first_on_sys_path(fake_site, tmp_path):
    probe = run_elsewhere(fake_site, tmp_path, "-c", "import datasets; print(datasets.FOREIGN)")
    assert probe.stdout == "True\n"  # the clash is real: a plain import finds the foreign package

    # `python -m trainers.predict` from another folder: the classes come from our EuroSAT.
    from datasets.miniature import make_miniature

    make_miniature("EuroSAT", str(tmp_path / "data"), n_classes=2, n_per_class=4)
    from clip.testing import write_tiny_checkpoint

    weights = write_tiny_checkpoint(str(tmp_path / "tiny.pt"))
    image = os.path.join(tmp_path, "data", "eurosat", "2750", "Forest", sorted(
        os.listdir(tmp_path / "data" / "eurosat" / "2750" / "Forest"))[0])
    result = run_elsewhere(fake_site, tmp_path, "-m", "trainers.predict", "--backbone", weights,
                           "--dataset-config-file", repo_path("configs/datasets/eurosat.yaml"),
                           "--root", str(tmp_path / "data"), "--topk", "2", image)
    assert result.returncode == 0, result.stderr
    assert {line.split("%")[-1].strip() for line in result.stdout.splitlines()[-2:]} == {
        "Annual Crop Land", "Forest"}


def test_foreign_package_already_imported_is_one_line(fake_site, tmp_path, monkeypatch):
    result = run_elsewhere(fake_site, tmp_path, "-c", "import datasets\nimport trainers")
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1
    assert last == (f"dassl.cli.ShadowedPackageError: `datasets` is already imported from "
                    f"{fake_site / 'datasets' / '__init__.py'}, which shadows the project's "
                    f"{os.path.join(REPO, 'datasets', '__init__.py')}; the two cannot be imported in one "
                    "Python process: use the project in a process that has not imported that package")

    # In process: the project's packages, once imported, are recognised; a foreign one is not.
    use_project_packages()
    foreign = types.ModuleType("datasets")
    foreign.__file__ = str(fake_site / "datasets" / "__init__.py")
    monkeypatch.setitem(sys.modules, "datasets", foreign)
    with pytest.raises(ShadowedPackageError, match="`datasets` is already imported from"):
        use_project_packages()
