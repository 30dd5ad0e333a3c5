"""Published results (kc.run.results, kc.run.compare): figures kept once, portable files, fresh / stale /
missing, and a comparison that reports what a re-run changed."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from kc.cli import main
from kc.run import compare, records, results, runkey
from kc.run.manifest import MANIFEST, resolve_notebook

ROOT = Path(__file__).resolve().parents[1]
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _figure_notebook(png: bytes) -> dict:
    out = {
        "output_type": "display_data",
        "data": {"image/png": base64.b64encode(png).decode(), "text/plain": "<Figure f.png>"},
        "metadata": {"kc_figure": "nb/f.png"},
    }
    other = {"output_type": "display_data", "data": {"image/png": "AAAA"}, "metadata": {}}
    cell = {"cell_type": "code", "source": "", "outputs": [out, other], "metadata": {}}
    return {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_pack_keeps_a_figure_once_and_unpack_restores_it(tmp_path) -> None:
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "f.png").write_bytes(PNG)
    nb = _figure_notebook(PNG)
    original = json.loads(json.dumps(nb))
    assert results.pack_figures(nb, tmp_path) == 1
    packed = nb["cells"][0]["outputs"]
    assert "image/png" not in packed[0]["data"]
    assert packed[0]["data"]["text/markdown"] == "![f](../nb/f.png)\n"
    assert packed[1]["data"] == {"image/png": "AAAA"}  # a figure with no file stays embedded
    assert results.unpack_figures(nb, tmp_path) == 1
    assert nb == original


def test_pack_leaves_a_figure_whose_file_differs(tmp_path) -> None:
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "f.png").write_bytes(PNG + b"changed")
    nb = _figure_notebook(PNG)
    assert results.pack_figures(nb, tmp_path) == 0
    assert "image/png" in nb["cells"][0]["outputs"][0]["data"]
    (tmp_path / "nb" / "f.png").unlink()
    assert results.pack_figures(nb, tmp_path) == 0


def test_portable_text_makes_repository_paths_relative() -> None:
    project = Path("/home/u/kc")
    root = project / "book" / "published" / "small"
    text = f'OUTPUT_DIR = "{root}"\nsource {project}/notebooks/t.ipynb\nother /data/x'
    assert results.portable_text(text, root, project) == (
        'OUTPUT_DIR = "book/published/small"\nsource notebooks/t.ipynb\nother /data/x'
    )


def test_results_dir_is_per_profile_and_refuses_a_path() -> None:
    assert results.results_dir("small") == ROOT / "book" / "published" / "small"
    assert results.default_output_root("smoke") == ROOT / "book" / "published" / "smoke"
    assert results.default_output_root("my.yaml") == Path("outputs")
    with pytest.raises(ValueError, match="profile name"):
        results.results_dir("../x")


# -- run keys that a committed result can keep -------------------------------------------


def _params_notebook(path: Path, defaults: str, body: str = "x = A + 1") -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(defaults)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


def test_run_key_ignores_where_outputs_go_and_overridden_defaults(tmp_path) -> None:
    a = _params_notebook(tmp_path / "a.ipynb", "A = 1\nB = 2")
    b = _params_notebook(tmp_path / "b.ipynb", "A = 5  # another smoke default\nB = 2")
    key = runkey.run_key(a, {"A": 3, "OUTPUT_DIR": "/one/clone"})
    assert runkey.run_key(a, {"A": 3, "OUTPUT_DIR": "/another/clone"})["key"] == key["key"]
    assert runkey.run_key(b, {"A": 3, "OUTPUT_DIR": "/x"})["key"] == key["key"]
    # a default that is not injected is what the notebook computes with: it counts
    c = _params_notebook(tmp_path / "c.ipynb", "A = 1\nB = 7")
    assert runkey.run_key(c, {"A": 3})["key"] != key["key"]
    # so do a new parameter name, the other cells and the values
    d = _params_notebook(tmp_path / "d.ipynb", "A = 1\nB = 2\nC = 0")
    assert runkey.run_key(d, {"A": 3})["key"] != key["key"]
    e = _params_notebook(tmp_path / "e.ipynb", "A = 1\nB = 2", body="x = A + 2")
    assert runkey.run_key(e, {"A": 3})["key"] != key["key"]
    assert runkey.run_key(a, {"A": 4})["key"] != key["key"]
    assert "versions" in key and "torch" in key["versions"]
    # a value moved from the notebook's defaults into the profile keeps the key
    assert runkey.run_key(a, {"A": 3, "B": 2})["key"] == key["key"]
    assert key["effective"] == {"A": 3, "B": 2}


def test_staleness_names_modules_parameters_cells_and_data() -> None:
    old = {
        "run_key": {
            "notebook": "n", "parameters": "p", "code": "c", "data": "d",
            "module_digests": {"kc.a": "1", "kc.b": "2"},
        },
        "parameters": {"SEEDS": [0, 1], "OUTPUT_DIR": "/x", "LR": 0.1},
    }
    same = dict(old["run_key"])
    assert records.staleness(old, same, old["parameters"]) == []
    new = {
        "notebook": "n2", "parameters": "p2", "code": "c2", "data": "d2",
        "module_digests": {"kc.a": "1", "kc.b": "3", "kc.c": "4"},
    }
    why = records.staleness(old, new, {"SEEDS": [0, 1, 2], "OUTPUT_DIR": "/y", "LR": 0.1})
    assert why == [
        "kc modules: kc.b, kc.c",
        "parameters: SEEDS",
        "notebook cells",
        "paper data",
    ]


# -- a real notebook: status, determinism, comparison -------------------------------------

CHEAP = "fig2_architecture"  # no training: seconds under any profile


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    """The cheap notebook run twice under smoke, with one cache, into two output roots."""
    import os

    from kc.run.runner import run_notebook

    base = tmp_path_factory.mktemp("published")
    old = os.environ.get("KC_CACHE")
    os.environ["KC_CACHE"] = str(base / "cache")
    try:
        for name in ("first", "second"):
            run_notebook(CHEAP, profile="smoke", output_root=base / name)
    finally:
        if old is None:
            os.environ.pop("KC_CACHE", None)
        else:
            os.environ["KC_CACHE"] = old
    return base / "first", base / "second"


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.suffix in (".csv", ".png")
    }


def test_a_rerun_with_the_same_cache_writes_identical_files(two_runs) -> None:
    first, second = two_runs
    digests = _digests(first / CHEAP)
    assert any(name.endswith(".csv") for name in digests) and any(
        name.endswith(".png") for name in digests
    )
    assert digests == _digests(second / CHEAP)
    diffs = compare.compare_trees(second, first, [CHEAP])
    assert compare.summary_counts(diffs) == {"compared": 1, "differ": 0, "verdicts_changed": 0}


def test_the_executed_copy_holds_each_figure_once_and_no_machine_path(two_runs) -> None:
    first, _ = two_runs
    text = (first / "notebooks" / f"{CHEAP}.ipynb").read_text()
    nb = json.loads(text)
    shown = [
        o for c in nb["cells"] for o in c.get("outputs", []) if "kc_figure" in o.get("metadata", {})
    ]
    assert shown and all("image/png" not in o["data"] for o in shown)
    assert all((first / o["metadata"]["kc_figure"]).is_file() for o in shown)
    assert str(ROOT) not in text
    record = records.read_record(first, CHEAP)
    assert record["executed_notebook"] == f"notebooks/{CHEAP}.ipynb"
    assert record["source"] == f"notebooks/{CHEAP}.ipynb"
    assert record["cores"] >= 1 and record["threads"] >= 1 and "load" in record
    assert "commit" in record and "dirty" in record
    assert not list((first / CHEAP).glob("*.svg"))


def test_status_fresh_stale_and_missing(two_runs, tmp_path) -> None:
    first, _ = two_runs
    tree = tmp_path / "tree"
    shutil.copytree(first, tree)
    rows = {r.name: r for r in results.status(tree, "smoke")}
    assert set(rows) == {nb.name for nb in MANIFEST}
    assert rows[CHEAP].state == "fresh" and rows[CHEAP].seconds > 0
    assert rows["table1_instability"].state == "missing"
    # another profile's values: stale, naming a parameter
    assert results.status(tree, "small", [CHEAP])[0].state in ("fresh", "stale")
    # a module whose code changed since the run: stale, naming it
    record = json.loads((tree / CHEAP / "run.json").read_text())
    record["run_key"]["code"] = "0" * 16
    record["run_key"]["module_digests"]["kc.book.diagram"] = "0" * 16
    (tree / CHEAP / "run.json").write_text(json.dumps(record))
    row = results.status(tree, "smoke", [CHEAP])[0]
    assert (row.state, row.why) == ("stale", "kc modules: kc.book.diagram")
    # an output deleted: missing, naming it
    shutil.copy(first / CHEAP / "run.json", tree / CHEAP / "run.json")
    (tree / CHEAP / "fig2_sizes.csv").unlink()
    row = results.status(tree, "smoke", [CHEAP])[0]
    assert row.state == "missing" and "fig2_sizes.csv" in row.why
    text = results.status_table(results.status(tree, "smoke"))
    assert text.splitlines()[-1] == "0 fresh, 0 stale, 15 missing"


def test_compare_reports_a_perturbed_value_and_a_changed_verdict(two_runs, tmp_path, capsys) -> None:
    first, _ = two_runs
    tree = tmp_path / "perturbed"
    shutil.copytree(first, tree)
    csv = tree / CHEAP / "fig2_architecture.csv"
    frame = pd.read_csv(csv)
    column = next(c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]))
    frame[column] = frame[column].astype(float)
    frame.loc[0, column] = frame.loc[0, column] + 0.25
    frame.to_csv(csv, index=False)
    verdicts = json.loads((tree / CHEAP / "verdicts.json").read_text())
    claim = verdicts["claims"][0]
    was = claim["status"]
    claim["status"] = "not reproduced" if was != "not reproduced" else "reproduced"
    (tree / CHEAP / "verdicts.json").write_text(json.dumps(verdicts))

    (diff,) = compare.compare_trees(tree, first, [CHEAP])
    table = next(t for t in diff.tables if t.file == "fig2_architecture.csv")
    assert table.columns[column] == pytest.approx(0.25)
    assert diff.verdicts == [(claim["id"], was, claim["status"])]
    assert main(["compare", str(tree), str(first), "--notebook", CHEAP]) == 1
    out = capsys.readouterr().out
    assert f"{column} 0.25" in out and f"verdict {claim['id']}: {was} -> " in out
    assert "0 of 1 notebooks compared are the same" in out
    # a tolerance above the gap hides the number but not the verdict
    assert compare.summary_counts([diff], tolerance=1.0)["differ"] == 1
    assert main(["compare", str(first), str(first), "--notebook", CHEAP]) == 0


def test_compare_frames_shapes_text_and_nan() -> None:
    a = pd.DataFrame({"x": [1.0, float("nan")], "s": ["a", "b"], "seconds": [1.0, 2.0]})
    b = pd.DataFrame({"x": [1.0, 2.0], "s": ["a", "c"], "seconds": [5.0, 2.0]})
    d = compare.compare_frames("t.csv", a, b)
    assert d.columns["x"] == float("inf") and d.text == {"s": 1}
    assert "seconds" not in d.counted() and d.differs()
    longer = compare.compare_frames("t.csv", pd.concat([b, b]), b)
    assert longer.shape == ((4, 3), (2, 3)) and longer.differs()
    only_timing = compare.compare_frames("t.csv", b.assign(seconds=[9.0, 9.0]), b)
    assert not only_timing.differs()


def test_cli_status_and_a_missing_tree(two_runs, capsys) -> None:
    first, _ = two_runs
    assert main(["status", "--profile", "smoke", "--output-root", str(first)]) == 0
    out = capsys.readouterr().out
    assert f"{CHEAP}" in out and "fresh" in out and "14 missing" in out
    assert main(["status", "--profile", "smoke", "--output-root", str(first), "--check"]) == 1
    assert main(["compare", str(first / "nowhere")]) == 2
    assert "no result tree" in capsys.readouterr().err


def test_the_published_results_hold_every_manifest_notebook_that_ran() -> None:
    """Whatever is committed is complete: an executed copy, a record that says ok with its
    commit, machine and time, the manifest's outputs, and at most 20 MB in all."""
    folder = results.results_dir("small")
    if not folder.is_dir():
        pytest.skip("no published results in this checkout")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 20 * 2**20, f"{folder} holds {size / 2**20:.1f} MB, more than 20 MB"
    names = {nb.name: nb for nb in MANIFEST}
    published = [p.name for p in folder.iterdir() if p.is_dir() and p.name != "notebooks"]
    assert published, "the published folder is empty"
    for name in published:
        assert name in names, f"{name} is not in the manifest"
        record = records.read_record(folder, name)
        assert record.get("status") == "ok" and record.get("profile") == "small"
        for key in ("commit", "started", "finished", "seconds", "cores", "threads", "load"):
            assert record.get(key) is not None, f"{name}'s run.json has no {key}"
        assert (folder / "notebooks" / f"{name}.ipynb").is_file()
        missing = [f for f in names[name].outputs if not (folder / name / f).is_file()]
        assert not missing, f"{name} misses {missing}"
        assert not list((folder / name).glob("*.svg"))
        resolve_notebook(name)


def test_git_keeps_only_the_small_profiles_results() -> None:
    """Kernel logs, partial copies and other profiles' folders never reach a commit."""
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = [
        "book/published/small/fig2_architecture/kernel.log",
        "book/published/small/notebooks/fig2_architecture.failed.ipynb",
        "book/published/smoke/fig2_architecture/fig2_architecture.csv",
        "book/published/paper/notebooks/t.ipynb",
    ]
    kept = ["book/published/small/fig2_architecture/fig2_architecture.csv"]
    for path in ignored + kept:
        code = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=ROOT, check=False
        ).returncode
        assert code == (0 if path in ignored else 1), path


def test_verify_reproduces_the_published_cheapest_notebook(tmp_path, monkeypatch, capsys) -> None:
    """`kc verify` re-runs the cheapest small-profile notebook from an empty cache and finds
    its published CSVs and verdicts again."""
    if not (results.results_dir("small") / CHEAP).is_dir():
        pytest.skip(f"{CHEAP} has no published results in this checkout")
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    code = main(["verify", CHEAP, "--output-root", str(tmp_path / "verify")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"{CHEAP}: same" in out and "1 of 1 notebooks compared are the same" in out
    assert (tmp_path / "verify" / "small" / CHEAP / "run.json").is_file()


def test_text_outputs_are_made_portable(tmp_path, monkeypatch) -> None:
    # verdicts.json records OUTPUT_DIR: a committed one must not carry this machine's path
    from kc.run import execution, results

    monkeypatch.setattr(results, "project_root", lambda: tmp_path)
    root = tmp_path / "book" / "published" / "small"
    out = root / "nb"
    out.mkdir(parents=True)
    (out / "verdicts.json").write_text(json.dumps({"OUTPUT_DIR": str(root)}))
    (out / "verdicts.md").write_text(f"see {root}/nb/table.csv\n")
    execution._portable_outputs(out, root)
    assert json.loads((out / "verdicts.json").read_text())["OUTPUT_DIR"] == "book/published/small"
    assert (out / "verdicts.md").read_text() == "see book/published/small/nb/table.csv\n"
