"""kc/book/pages.py: the generated toc, the scorecard, the result pages, the built site; the set-up
files the book publishes with (environment.yml, the GitHub Actions workflow)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from kc.book import build as book_build
from kc.book import pages as book
from kc.cli import main
from kc.run import manifest, runner
from tests.book_site import FIXTURE_VERDICTS, ROOT, Site, book_skeleton, built_site

HAS_JUPYTER_BOOK = (
    shutil.which("jupyter-book") is not None
    or (Path(sys.executable).parent / "jupyter-book").is_file()
)



@pytest.fixture(scope="session")
def site(smoke_tree, tmp_path_factory: pytest.TempPathFactory) -> Site:
    # conftest puts the tests that use it in the xdist group of the smoke tree: one build
    if not HAS_JUPYTER_BOOK:
        pytest.skip("jupyter-book (the `book` extra) is not installed")
    return built_site(smoke_tree, tmp_path_factory.mktemp("site"))


# ---------------------------------------------------------------------------------------------
# table of contents


def test_toc_file_is_generated_from_the_manifest() -> None:
    assert (ROOT / "_toc.yml").read_text() == book.toc_text(), "run `kc book --toc`"


def test_toc_lists_every_notebook_once_in_manifest_order() -> None:
    pages = book.toc_result_pages(ROOT)
    notebooks = [p for p in pages if runner.manifest_entry(p) is not None]
    assert notebooks == [
        nb.name
        for part in ("tutorial", "paper", "beyond")
        for nb in runner.MANIFEST
        if nb.part == part
    ]
    assert {"scorecard", "summary", "api"} <= set(pages)
    files = yaml.dump(book.toc())
    assert "book/theory" in files and files.index("book/theory") < files.index("00_toy")


def test_toc_follows_a_changed_manifest() -> None:
    extra = runner.Notebook("fig9_new", "Fig. 9", "a new study")
    assert "book/results/fig9_new" in book.toc_text((*runner.MANIFEST, extra))
    with pytest.raises(ValueError, match=r"manifest parts must be in .* got \['appendix'\]"):
        book.toc((runner.Notebook("x", "y", "z", part="appendix"),))


def test_kc_book_toc_writes_the_file(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(runner, "project_root", lambda: tmp_path)
    assert main(["book", "--toc"]) == 0
    assert (tmp_path / "_toc.yml").read_text() == book.toc_text()
    assert "wrote" in capsys.readouterr().out


def test_kc_book_refuses_a_stale_toc(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    monkeypatch.setattr(runner, "project_root", lambda: tmp_path)
    assert main(["book", "--no-build"]) == 2
    assert "kc book --toc" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# scorecard


def _write_verdicts(outputs: Path, name: str, data: dict) -> None:
    (outputs / name).mkdir(parents=True, exist_ok=True)
    (outputs / name / "verdicts.json").write_text(json.dumps(data))


def test_scorecard_has_a_row_per_claim_and_not_run_rows(tmp_path) -> None:
    _write_verdicts(tmp_path, "table1_instability", FIXTURE_VERDICTS)
    second = dict(FIXTURE_VERDICTS, notebook="sec41_diagnosis", profile="small")
    second["claims"] = [
        dict(FIXTURE_VERDICTS["claims"][0], id="sec41.x", item="Sec. 4.1", status="not reproduced")
    ]
    _write_verdicts(tmp_path, "sec41_diagnosis", second)
    rows = book.scorecard_rows(tmp_path)
    ran = {"table1_instability": 2, "sec41_diagnosis": 1}
    assert len(rows) == sum(ran.values()) + len(runner.MANIFEST) - len(ran)
    assert [r.notebook for r in rows] == [
        nb.name for nb in runner.MANIFEST for _ in range(ran.get(nb.name, 1))
    ]
    not_run = [r.notebook for r in rows if r.status == book.NOT_RUN]
    assert "table2_order_variances" in not_run and "table1_instability" not in not_run
    first = next(r for r in rows if r.notebook == "table1_instability")
    assert first.numbers == {"conv4": 0.09, "conv5": 0.12}
    page = book.scorecard_page(rows)
    table = [line for line in page.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == len(rows) + 1  # header + one row per claim / not-run notebook
    assert "a deeper layer \\| is less stable" in page  # a | in a claim does not split the row
    assert "**3 claims**: 1 reproduced, 1 not reproduced, 1 not testable" in page
    assert "`small`, `smoke`" in page
    assert "| {doc}`Sec. 4.1 <sec41_diagnosis>` |" in page
    assert page.count("| *not run* |") == len(not_run)


def test_scorecard_marks_a_gain_on_one_pair_as_no_spread(tmp_path) -> None:
    from kc.studies.claims import gain_check

    claims = [gain_check("table4.c.gain", "Table 4", "x0 helps", [1.1]),
              gain_check("table4.d.gain", "Table 4", "x0 helps", [1.0, 0.8, 1.2])]  # fmt: skip
    data = dict(FIXTURE_VERDICTS, notebook="table4_redundant", profile="small")
    data["claims"] = [dict(c.__dict__) for c in claims]
    _write_verdicts(tmp_path, "table4_redundant", data)
    page = book.scorecard_page(book.scorecard_rows(tmp_path))
    assert "1 reproduced, 0 not reproduced, 1 not testable (1 of them for want of a spread" in page
    assert page.count("| not testable: no spread |") == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("claims"), r"misses \['claims'\]"),
        (lambda d: d["claims"][0].update(status="passed"), r"status 'passed'; expected one of"),
        (lambda d: d["claims"][1].pop("evidence"), r"claim 1 misses \['evidence'\]"),
    ],
)
def test_read_verdicts_rejects_bad_files(tmp_path, change, message) -> None:
    data = json.loads(json.dumps(FIXTURE_VERDICTS))
    change(data)
    _write_verdicts(tmp_path, "t", data)
    with pytest.raises(ValueError, match=message):
        book.read_verdicts(tmp_path / "t" / "verdicts.json")
    (tmp_path / "t" / "verdicts.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        book.read_verdicts(tmp_path / "t" / "verdicts.json")


# ---------------------------------------------------------------------------------------------
# result pages


def test_rerun_command_lists_only_what_differs_from_the_profile() -> None:
    smoke = runner.load_profile("smoke")
    values = {"PROFILE": "smoke", "OUTPUT_DIR": "/x/outputs", "SEEDS": smoke["SEEDS"]}
    assert book.rerun_command("t", values) == "kc run t --profile smoke"
    values.update(SEEDS=[0, 1, 2], LR=1e-4, DATASET="mnist")
    assert (
        book.rerun_command("t", values)
        == "kc run t --profile smoke -p SEEDS '[0, 1, 2]' -p LR 0.0001 -p DATASET mnist"
    )
    assert (
        book.rerun_command("t", {"PROFILE": "mine", "SEEDS": [0]}) == "kc run t --profile mine.yaml"
    )


def _executed_notebook(path: Path, outputs: Path) -> Path:
    """A notebook shaped like papermill's output: default cell, injected cell, a figure cell."""
    nb = nbformat.v4.new_notebook()
    default = nbformat.v4.new_code_cell(
        'PROFILE = "smoke"\nSEEDS = [0, 1]\nOUTPUT_DIR = "outputs"\nWIDTH = 0.5'
    )
    default.metadata["tags"] = ["parameters"]
    injected = nbformat.v4.new_code_cell(
        f'# Parameters\nPROFILE = "small"\nSEEDS = [0, 1, 2]\nOUTPUT_DIR = "{outputs}"\n'
    )
    injected.metadata["tags"] = ["injected-parameters"]
    figure = nbformat.v4.new_code_cell("save_figure(fig)")
    figure.outputs = [
        nbformat.v4.new_output(
            "execute_result", {"text/plain": f"PosixPath('{outputs}/t/fig.png')"}, execution_count=1
        ),
        nbformat.v4.new_output("display_data", {"image/png": "iVBORw0KGgo=", "text/plain": "<F>"}),
    ]
    printed = nbformat.v4.new_code_cell("print(out)")
    printed.outputs = [nbformat.v4.new_output("stream", text=f"wrote {outputs}/t/x.csv\n")]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Table 1: a title\n\nintro"),
        default,
        injected,
        nbformat.v4.new_markdown_cell("## Table 1, ours next to the paper's"),
        figure,
        printed,
    ]
    nb.metadata["papermill"] = {
        "input_path": "/home/someone/kc/notebooks/t.ipynb",
        "output_path": f"{outputs}/notebooks/t.ipynb",
        "parameters": {"PROFILE": "small", "SEEDS": [0, 1, 2], "OUTPUT_DIR": str(outputs)},
    }
    nbformat.write(nb, path)
    return path


def test_publish_notebook(tmp_path) -> None:
    outputs = tmp_path / "build-machine" / "outputs"
    path = _executed_notebook(tmp_path / "t.ipynb", outputs)
    record = {"started": "2026-11-29T06:00:00+00:00", "seconds": 42.0}
    nb = book.publish_notebook(path, "table1_instability", record, outputs, tmp_path)
    text = json.dumps(nb)
    assert str(tmp_path) not in text and "build-machine" not in text
    cells = nb["cells"]
    header = cells[1]
    assert header["cell_type"] == "markdown" and "How this page was made" in header["source"]
    assert "**`small` profile** in 42 s on 2026-11-29" in header["source"]
    small_seeds = runner.load_profile("small")["SEEDS"]
    expected = "kc run table1_instability --profile small"
    if small_seeds != [0, 1, 2]:
        expected += " -p SEEDS '[0, 1, 2]'"
    assert f"\n{expected}\n" in header["source"]
    assert (
        "`SEEDS = [0, 1, 2]`; the notebook's own defaults for the rest: `WIDTH = 0.5`."
        in (header["source"])
    )
    default, injected = cells[2], cells[3]
    assert "remove-cell" in default["metadata"]["tags"]
    assert "hide-input" in injected["metadata"]["tags"]
    assert 'OUTPUT_DIR = "outputs"' in injected["source"]
    figure = cells[5]
    assert [o["output_type"] for o in figure["outputs"]] == ["display_data"]
    assert figure["metadata"]["mystnb"]["figure"] == {
        "caption": "Table 1, ours next to the paper's (Table 1; `small` profile).",
        "name": "table1_instability-fig-1",
    }
    assert "".join(cells[6]["outputs"][0]["text"]) == "wrote outputs/t/x.csv\n"
    assert "input_path" not in nb["metadata"]["papermill"]
    assert nb["metadata"]["papermill"]["parameters"]["OUTPUT_DIR"] == "outputs"


def test_a_stale_page_has_a_banner_and_its_claims_are_counted_apart(tmp_path) -> None:
    outputs = tmp_path / "outputs"
    path = _executed_notebook(tmp_path / "t.ipynb", outputs)
    nb = book.publish_notebook(
        path, "table1_instability", {}, outputs, tmp_path, stale="kc modules: kc.core.fit"
    )
    banner = nb["cells"][1]
    assert banner["id"] == "kc-stale-banner" and ":::{warning} Stale results" in banner["source"]
    assert "**kc modules: kc.core.fit**" in banner["source"]
    assert "kc run table1_instability" in banner["source"]
    assert not any(c.get("id") == "kc-stale-banner" for c in book.publish_notebook(
        path, "table1_instability", {}, outputs, tmp_path)["cells"])

    _write_verdicts(tmp_path, "table1_instability", FIXTURE_VERDICTS)
    rows = book.scorecard_rows(tmp_path, stale={"table1_instability": "parameters: SEEDS"})
    stale = [r for r in rows if r.notebook == "table1_instability"]
    assert stale and all(r.stale == "parameters: SEEDS" for r in stale)
    page = book.scorecard_page(rows)
    assert "**0 claims** from fresh results" in page
    assert f"**Stale: {len(stale)} more claims** from 1 notebooks" in page
    assert page.count("(*stale*)") == len(stale)
    fresh_page = book.scorecard_page(book.scorecard_rows(tmp_path))
    assert "Stale:" not in fresh_page and "(*stale*)" not in fresh_page


def test_publish_notebook_keeps_a_given_caption(tmp_path) -> None:
    path = _executed_notebook(tmp_path / "t.ipynb", tmp_path / "o")
    nb = nbformat.read(path, as_version=4)
    nb.cells[4].metadata["mystnb"] = {"figure": {"caption": "Mine.", "name": "my-fig"}}
    nbformat.write(nb, path)
    published = book.publish_notebook(path, "t", {}, tmp_path / "o", tmp_path)
    assert published["cells"][5]["metadata"]["mystnb"]["figure"]["name"] == "my-fig"


def test_a_planned_notebook_gets_a_not_written_placeholder(monkeypatch) -> None:
    planned = runner.Notebook("fig9_future", "Fig. 9", "a page to come", ("x.csv",), planned=True)
    monkeypatch.setattr(manifest, "MANIFEST", (*manifest.MANIFEST, planned))  # its home
    assert "not written yet" in book._placeholder("fig9_future")


def test_prepare_book(tmp_path) -> None:
    root = book_skeleton(tmp_path)
    outputs = tmp_path / "outputs"
    (outputs / "notebooks").mkdir(parents=True)
    _executed_notebook(outputs / "notebooks" / "table1_instability.ipynb", outputs)
    (outputs / "table1_instability" / "run.json").parent.mkdir(parents=True, exist_ok=True)
    (outputs / "table1_instability" / "run.json").write_text(
        json.dumps({"status": "ok", "profile": "smoke", "seconds": 12.5})
    )
    stale = root / "book" / "results" / "old.md"
    stale.parent.mkdir(parents=True)
    stale.write_text("stale")
    made = book.prepare_book(root, outputs)
    assert made["table1_instability"] == "notebook" and made["summary"] == "summary"
    assert made["scorecard"] == "scorecard" and made["api"] == "api"
    assert made["table2_order_variances"] == "placeholder"
    assert (
        "kc run fig4_born_again" in (root / "book" / "results" / "fig4_born_again.md").read_text()
    )
    results = root / "book" / "results"
    assert (results / "table1_instability.ipynb").is_file()
    assert "kc run table2_order_variances" in (results / "table2_order_variances.md").read_text()
    assert "| smoke | ok | 12 s |" in (results / "summary.md").read_text()
    assert "*not run*" in (results / "scorecard.md").read_text()
    api = (results / "api.md").read_text()
    assert "{py:obj}`kc.consistency <kc.core.fit.consistency>`" in api or "kc.consistency <" in api
    assert ".. automodule:: kc.book.pages" in api and "kc.__main__" not in api
    assert not stale.exists()


def test_update_results_rewrites_only_what_changed(tmp_path, monkeypatch) -> None:
    root = book_skeleton(tmp_path)
    outputs = tmp_path / "outputs"
    (outputs / "notebooks").mkdir(parents=True)
    executed = _executed_notebook(outputs / "notebooks" / "table1_instability.ipynb", outputs)
    _write_verdicts(outputs, "table1_instability", FIXTURE_VERDICTS)
    results = root / "book" / "results"
    first = book.update_results(root, outputs)
    assert {"table1_instability.ipynb", "scorecard.md", "api.md", book.THEORY_FIGURE} <= set(
        first.written
    )
    for path in results.iterdir():  # an hour ago: any write would show in the times
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns - 3600 * 10**9))
    times = {p.name: p.stat().st_mtime_ns for p in results.iterdir()}

    # nothing changed: nothing written, every file keeps its time; the API page and the figure
    # (which import all of kc, torch and matplotlib) are not even made again
    def fail() -> str:
        raise AssertionError("the API page was made again although kc did not change")

    monkeypatch.setattr(book, "api_page", fail)
    monkeypatch.setattr(book, "_theory_figure", fail)
    again = book.update_results(root, outputs)
    assert again.written == [] and again.removed == [] and again.made == first.made
    assert {p.name: p.stat().st_mtime_ns for p in results.iterdir()} == times

    # one notebook's outputs change: its page and the scorecard, nothing else
    nb = nbformat.read(executed, as_version=4)
    nb.cells[5].outputs[0]["text"] = "CHANGED OUTPUT\n"
    nbformat.write(nb, executed)
    changed = json.loads(json.dumps(FIXTURE_VERDICTS))
    changed["claims"][0]["evidence"] = "CHANGED EVIDENCE"
    _write_verdicts(outputs, "table1_instability", changed)
    stale = results / "old_page.md"
    stale.write_text("a page no toc asks for")
    third = book.update_results(root, outputs)
    assert sorted(third.written) == ["scorecard.md", "table1_instability.ipynb"]
    assert third.removed == ["old_page.md"] and not stale.exists()
    assert "CHANGED OUTPUT" in (results / "table1_instability.ipynb").read_text()
    assert "CHANGED EVIDENCE" in (results / "scorecard.md").read_text()
    kept = {n: t for n, t in times.items() if n not in ("scorecard.md", "table1_instability.ipynb")}
    assert {n: (results / n).stat().st_mtime_ns for n in kept} == kept

    # kc changed (the state file no longer matches): the API page is made again, and written
    # only if its text differs
    monkeypatch.undo()
    state = json.loads((results / book.STATE_FILE).read_text())
    (results / book.STATE_FILE).write_text(json.dumps({k: "old" for k in state}))
    fourth = book.update_results(root, outputs)
    assert fourth.written == []  # made again, same bytes: not written
    assert json.loads((results / book.STATE_FILE).read_text()) == state


def test_write_if_changed(tmp_path) -> None:
    path = tmp_path / "a" / "page.md"
    assert book.write_if_changed(path, "one") and path.read_text() == "one"
    assert not book.write_if_changed(path, "one") and not book.write_if_changed(path, b"one")
    assert book.write_if_changed(path, "two") and path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["page.md"]  # no temporary file left


def test_a_build_is_skipped_when_nothing_changed(tmp_path, monkeypatch) -> None:
    """The stamp logic, with jupyter-book replaced by a stand-in that writes an index page."""
    root = book_skeleton(tmp_path)
    (root / "book" / "results").mkdir()
    (root / "book" / "results" / "page.md").write_text("# A page\n")
    calls: list[bool] = []
    outcome = {"code": 0}

    def fake_build(root: Path, strict: bool = True, fresh: bool = False) -> tuple[int, Path]:
        calls.append(fresh)
        index = root / "_build" / "html" / "index.html"
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_text("<html></html>")
        return outcome["code"], index

    monkeypatch.setattr(book_build, "build_book", fake_build)
    first = book.update_site(root)
    assert first.built and first.fresh and first.code == 0 and first.since
    second = book.update_site(root)
    assert not second.built and second.code == 0 and second.since == first.since
    assert calls == [True]
    (root / "book" / "results" / "page.md").write_text("# A page, changed\n")
    assert book.update_site(root).built and calls == [True, False]  # incremental
    assert not book.update_site(root).built
    lenient = book.update_site(root, strict=False)  # other options: another build
    assert lenient.built and not lenient.fresh
    assert book.update_site(root).fresh  # strict after lenient: every page read again
    assert book.update_site(root, force=True).fresh and calls[-1] is True
    (root / "_config.yml").write_text((root / "_config.yml").read_text() + "\n# changed\n")
    outcome["code"] = 1
    failed = book.update_site(root)
    assert failed.built and failed.code == 1 and book.read_stamp(root) == {}
    outcome["code"] = 0
    after = book.update_site(root)  # after a failure: from scratch, so warnings come back
    assert after.built and after.fresh
    (root / "_build" / "html" / "index.html").unlink()
    assert book.update_site(root).built  # the site was deleted


# ---------------------------------------------------------------------------------------------
# the built site (one build per session, shared with tests/test_browser.py)


def test_book_builds_with_warnings_as_errors(site: Site) -> None:
    assert site.code == 0, "jupyter-book build -W -n failed; see the captured output"
    index = (site.html / "book" / "intro.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in index  # MathJax served from the site, not a CDN
    assert (site.html / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_no_page_shows_a_path_of_the_build_machine(site: Site) -> None:
    private = {str(site.root), str(site.outputs), str(ROOT), str(Path.home())} - {"/"}
    for page in site.html.rglob("*.html"):
        text = page.read_text()
        for path in private:
            assert path not in text, f"{page.relative_to(site.html)} shows {path}"
    for source in (site.html / "_sources").rglob("*.ipynb"):  # the download button's files
        for path in private:
            assert path not in source.read_text(), f"{source.name} holds {path}"


def test_result_page_header_and_figures(site: Site) -> None:
    assert site.made["00_toy_consistency"] == "notebook"
    html = (site.html / "book" / "results" / "00_toy_consistency.html").read_text()
    text = re.sub(r"<[^>]+>", "", html)
    assert "How this page was made" in text and "kc run 00_toy_consistency --profile" in text
    assert "download-source-button" in html
    assert html.count('class="caption"') >= 1 and 'id="toy-consistency-fig-1"' in html
    # the default parameter cell is not on the page; the injected one is, collapsed
    assert 'PROFILE = "smoke"\nOUTPUT_DIR = "outputs"\nTOY_N' not in text
    assert "tag_hide-input" in html


def test_scorecard_page_in_the_site(site: Site) -> None:
    html = (site.html / "book" / "results" / "scorecard.html").read_text()
    rows = book.scorecard_rows(site.outputs)
    assert html.count("<tr") == len(rows) + 1
    assert "TEST FIXTURE: deeper networks are less stable" in html


def test_kc_book_rebuilds_only_a_changed_notebook(site: Site, monkeypatch, capsys) -> None:
    """On the session's site (left consistent for tests/test_browser.py): with nothing changed
    `kc book` does not start Sphinx; after one notebook's outputs change, an incremental build
    shows the new output on its page and the new evidence on the scorecard, and leaves the
    other result pages' HTML untouched."""
    assert site.code == 0, "the site did not build; see test_book_builds_with_warnings_as_errors"
    monkeypatch.setattr(runner, "project_root", lambda: site.root)
    builds: list[bool] = []
    real_build = book_build.build_book

    def counted(root: Path, strict: bool = True, fresh: bool = False) -> tuple[int, Path]:
        builds.append(fresh)
        return real_build(root, strict=strict, fresh=fresh)

    monkeypatch.setattr(book_build, "build_book", counted)
    assert main(["book", "--output-root", str(site.outputs)]) == 0
    out = capsys.readouterr().out
    assert "changed in book/results: nothing" in out and "book: unchanged since" in out
    assert builds == []

    pages = site.html / "book" / "results"
    times = {p.name: p.stat().st_mtime_ns for p in pages.glob("*.html")}
    name = "00_toy_consistency"
    executed = site.outputs / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(executed, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.get("outputs"))
    stream = next(o for o in cell.outputs if o.output_type == "stream")
    stream["text"] += "A CHANGED OUTPUT LINE\n"
    nbformat.write(nb, executed)
    verdicts = json.loads((site.outputs / name / "verdicts.json").read_text())
    verdicts["claims"][0]["evidence"] += " (CHANGED EVIDENCE)"
    (site.outputs / name / "verdicts.json").write_text(json.dumps(verdicts))

    assert main(["book", "--output-root", str(site.outputs)]) == 0
    out = capsys.readouterr().out
    assert f"changed in book/results: {name}.ipynb, scorecard.md\n" in out  # the toc's order
    assert "book built incrementally" in out and builds == [False]
    assert "A CHANGED OUTPUT LINE" in (pages / f"{name}.html").read_text()
    assert "(CHANGED EVIDENCE)" in (pages / "scorecard.html").read_text()
    untouched = {n: t for n, t in times.items() if n not in (f"{name}.html", "scorecard.html")}
    assert {"api.html", "summary.html", "table1_instability.html"} <= set(untouched)
    assert {n: (pages / n).stat().st_mtime_ns for n in untouched} == untouched

    assert main(["book", "--output-root", str(site.outputs)]) == 0
    assert "book: unchanged since" in capsys.readouterr().out and builds == [False]


# ---------------------------------------------------------------------------------------------
# set-up files


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def test_environment_yml_installs_the_pinned_stack() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "kc"
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    torch_pins = [
        line.strip()
        for line in (ROOT / "requirements" / "torch-x86_64.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for pin in torch_pins:
        assert pin in pip, f"environment.yml misses {pin}"
    project = _pyproject()["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in ("book", "dev", "lab"):
        wanted |= {_name(r) for r in project["optional-dependencies"][extra]}
    listed = {_name(r) for r in pip} | {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    assert "-e .[dev,book,lab]" in pip  # the package itself, with the extras
    assert not wanted - listed, f"environment.yml misses {sorted(wanted - listed)}"
    assert any(d.startswith("python") for d in env["dependencies"] if isinstance(d, str))


def test_pyproject_extras_name_the_design_card_packages() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    names = {k: {_name(r) for r in v} for k, v in extras.items()}
    assert {"jupyterlab"} <= names["lab"]
    assert {"nbval", "selenium"} <= names["dev"]
    assert "seaborn" in {_name(r) for r in _pyproject()["project"]["dependencies"]}


def test_pages_workflow_builds_the_small_book() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    text = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    jobs = workflow["jobs"]
    assert {"build", "deploy"} <= set(jobs)
    assert "make book PROFILE=small" in text and "make status PROFILE=small" in text
    assert "data/cache" not in text and "actions/cache" not in text  # built from published results
    assert "actions/upload-pages-artifact" in text and "actions/deploy-pages" in text
    assert workflow["permissions"]["pages"] == "write"


def test_makefile_has_lab_and_chromium() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lab: setup", makefile, re.M)
    assert "chromium-driver" in makefile


def test_reproduce_page_example_names_real_functions() -> None:
    """The worked example compiles and every kc / torchvision name it uses exists (running it
    needs downloaded ImageNet weights and a folder of images)."""
    import torchvision as tv
    from torchvision.models import feature_extraction

    import kc

    text = (ROOT / "book" / "reproduce.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    compile(code, "reproduce.md", "exec")
    for name in re.findall(r"\bkc\.(\w+)", code):
        assert hasattr(kc, name), name
    for name in re.findall(r"\btv\.models\.(\w+)", code):
        assert hasattr(tv.models, name), name
    assert hasattr(tv.io, "read_image") and hasattr(tv.io.ImageReadMode, "RGB")
    assert hasattr(feature_extraction, "create_feature_extractor")
    assert {"instability", "variances", "components", "model"} <= set(
        kc.ConsistencyResult.__dataclass_fields__
    )


def test_a_failed_or_interrupted_notebook_gets_a_placeholder_that_says_so() -> None:
    record = {"status": "interrupted", "finished": "2026-11-29T14:30:00+00:00", "profile": "small",
              "seconds": 2371.0, "error": "PapermillExecutionError: KeyboardInterrupt /work/x"}  # fmt: skip
    page = book._placeholder("grounding", record)
    assert "did not finish its last run: interrupted on 2026-11-29T14:30:00+00:00" in page
    assert "`small` profile after 2371 s (PapermillExecutionError)" in page
    assert "`notebooks/grounding.failed.ipynb`" in page and "/work" not in page
    assert "after 0 s; the partial" in book._placeholder("grounding", {"status": "failed"})
    assert "has not been executed" in book._placeholder("grounding", {"status": "ok"})
    assert "has not been executed" in book._placeholder("grounding")
