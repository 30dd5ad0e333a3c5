"""The run key (kc.run.runkey): which changes make `kc run` execute a notebook again."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from kc.run import runkey

ROOT = Path(__file__).resolve().parents[1]


def test_modules_used_follow_imports_and_packages() -> None:
    used = runkey.modules_used("from kc.studies.instability import run as ins\nimport pandas")
    assert {"kc", "kc.studies", "kc.studies.instability.run", "kc.engine.experiments"} <= used
    assert "kc.cli" not in used and "kc.run.runner" not in used
    # `import kc` then kc.X.Y: the modules named by the attributes count
    assert "kc.studies.toy" in runkey.modules_used("import kc\nkc.studies.toy.planted_pair")
    assert "kc.book.output" in runkey.modules_used("from kc.book import output")
    assert runkey.modules_used("%matplotlib inline\nimport numpy") == set()


def _notebook(folder: Path, source: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell(source)]
    path = folder / "t.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def package_copy(tmp_path, monkeypatch) -> Path:
    """A copy of the kc package that runkey hashes instead of the real one."""
    copy = tmp_path / "kc"
    shutil.copytree(ROOT / "kc", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runkey, "PACKAGE_DIR", copy)
    return copy


def test_key_follows_the_code_the_notebook_uses(tmp_path, package_copy) -> None:
    path = _notebook(tmp_path, "from kc.studies.toy import planted_pair")
    base = runkey.run_key(path, {"SEED": 0})
    assert "kc.studies.toy" in base["modules"].split(",")
    # a docstring or comment edit keeps the key
    toy = package_copy / "studies" / "toy.py"
    toy.write_text('"""Edited docstring."""\n# a comment\n' + toy.read_text().split('"""', 2)[2])
    assert runkey.run_key(path, {"SEED": 0})["key"] == base["key"]
    # a code change in a module it uses changes it
    toy.write_text(toy.read_text() + "\nEXTRA = 1\n")
    changed = runkey.run_key(path, {"SEED": 0})
    assert changed["code"] != base["code"] and changed["key"] != base["key"]
    # a change in a module it does not use does not
    cli = package_copy / "cli.py"
    cli.write_text(cli.read_text() + "\nEXTRA = 1\n")
    assert runkey.run_key(path, {"SEED": 0})["key"] == changed["key"]


def test_key_follows_parameters_source_and_paper_data(tmp_path, monkeypatch) -> None:
    path = _notebook(tmp_path, "from kc.studies.paper import paper_table")
    base = runkey.run_key(path, {"SEED": 0})
    assert runkey.run_key(path, {"SEED": 0}) == base
    assert runkey.run_key(path, {"SEED": 1})["parameters"] != base["parameters"]
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "# a new title"
    nbformat.write(nb, path)
    assert runkey.run_key(path, {"SEED": 0})["notebook"] != base["notebook"]
    # the paper's numbers are data the notebook reads
    tables = tmp_path / "paper.csv"
    tables.write_text("table,setting,row,column,value,unit\n")
    monkeypatch.setenv("KC_PAPER_TABLES", str(tables))
    assert runkey.run_key(path, {"SEED": 0})["data"] != base["data"]
    # outputs and execution counts are not part of the source
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nb.cells[1].execution_count = 7
    nbformat.write(nb, path)
    assert (
        runkey.notebook_digest(nbformat.read(path, as_version=4).cells)
        == runkey.run_key(path, {"SEED": 0})["notebook"]
    )


def test_a_facade_package_counts_only_the_submodules_whose_names_are_used() -> None:
    used = runkey.modules_used("from kc.book import plotting\nplotting.plot_table1(None)")
    assert {"kc.book.plotting", "kc.book.plotting.tables"} <= used
    assert not {"kc.book.plotting.beyond", "kc.studies.grounding.run", "kc.studies.planted.run"} & used
    assert "kc.book.plotting.tables" in runkey.modules_used("from kc.book.plotting import plot_table1")
    assert "kc.book.plotting.fig4" in runkey.modules_used("import kc.book.plotting as P\nP.seed_curves")
    assert "kc.book.plotting.beyond" in runkey.modules_used("import kc\nkc.book.plotting.plot_grounding")
    everything = runkey.modules_used("from kc.book.plotting import *")
    assert {"kc.book.plotting.beyond", "kc.book.plotting.fig4", "kc.studies.grounding.run"} <= everything
    # a package with code of its own is not a facade: all its imports count
    assert "kc.core.similarity.cca" in runkey.modules_used("from kc.core.similarity import compare_all")


def test_key_ignores_studies_a_notebook_reaches_only_through_the_plotting_facade(
    tmp_path, package_copy
) -> None:
    source = (
        "from kc.book import plotting\nfrom kc.studies.instability import run as instability\n"
        "plotting.plot_table1"
    )
    path = _notebook(tmp_path, source)
    base = runkey.run_key(path, {})
    grounding = package_copy / "studies" / "grounding" / "run.py"
    grounding.write_text(grounding.read_text() + "\nEXTRA = 1\n")
    assert runkey.run_key(path, {})["key"] == base["key"]
    tables = package_copy / "book" / "plotting" / "tables.py"
    tables.write_text(tables.read_text() + "\nEXTRA = 1\n")
    assert runkey.run_key(path, {})["key"] != base["key"]


def test_key_ignores_the_docstring_of_an_attribute(tmp_path, package_copy) -> None:
    path = _notebook(tmp_path, "from kc.studies.toy import planted_pair")
    base = runkey.run_key(path, {})
    toy = package_copy / "studies" / "toy.py"
    toy.write_text(toy.read_text() + '\nEXTRA = 1\n"""What EXTRA is."""\n')
    once = runkey.run_key(path, {})["key"]
    toy.write_text(toy.read_text().replace("What EXTRA is.", "What EXTRA is,\nwrapped."))
    assert runkey.run_key(path, {})["key"] == once != base["key"]
