"""Saving tables and figures, comparing with the paper, verdicts."""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from kc.paper import paper_table  # noqa: E402
from kc.report import (  # noqa: E402
    Timer,
    output_dir,
    save_figure,
    save_table,
    show_verdicts,
    side_by_side,
    verdict,
)


def test_output_dir(tmp_path) -> None:
    path = output_dir("table1_instability", root=tmp_path / "out")
    assert path == tmp_path / "out" / "table1_instability"
    assert path.is_dir()
    assert output_dir("table1_instability", root=tmp_path / "out") == path  # idempotent
    with pytest.raises(ValueError, match="plain folder name"):
        output_dir("a/b", root=tmp_path)


def test_save_table_round_trip(tmp_path) -> None:
    df = pd.DataFrame({"layer": ["conv4", "conv5"], "instability": [0.1, 0.2]})
    path = save_table(df, "table1", tmp_path)
    assert path == tmp_path / "table1.csv"
    pd.testing.assert_frame_equal(pd.read_csv(path), df)
    assert save_table(df, "table1.csv", tmp_path) == path  # no doubled suffix


def test_save_figure_png_and_svg(tmp_path) -> None:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    png = save_figure(fig, "curve", tmp_path)
    svg = png.with_suffix(".svg")
    assert png == tmp_path / "curve.png" and svg.is_file()
    with Image.open(png) as image:
        assert image.info["dpi"][0] == pytest.approx(120, abs=1)
    first = (png.read_bytes(), svg.read_bytes())
    save_figure(fig, "curve", tmp_path)
    assert (png.read_bytes(), svg.read_bytes()) == first  # reruns give identical files
    plt.close(fig)


def test_side_by_side_with_the_paper() -> None:
    paper = paper_table(1)
    ours = paper[["setting", "column"]].iloc[:3].assign(value=[0.1, 0.2, 0.3])
    table = side_by_side(ours, paper, on=["setting", "column"])
    assert list(table.columns) == ["setting", "column", "ours", "paper", "difference"]
    assert len(table) == len(paper)  # outer: the paper's rows we lack stay, with NaN
    first = table.iloc[0]
    assert (first["ours"], first["paper"]) == (0.1, 0.086)
    assert first["difference"] == pytest.approx(0.1 - 0.086)
    assert table["ours"].isna().sum() == len(paper) - 3
    inner = side_by_side(ours, paper, on=["setting", "column"], how="inner")
    assert len(inner) == 3


def test_side_by_side_custom_columns() -> None:
    ours = pd.DataFrame({"k": ["a", "b"], "acc": [50.0, 40.0]})
    paper = pd.DataFrame({"k": ["b", "a"], "top1": [41.0, 49.0]})
    table = side_by_side(ours, paper, on=["k"], ours_value="acc", paper_value="top1")
    assert table.set_index("k")["difference"].to_dict() == {"a": 1.0, "b": -1.0}


def test_side_by_side_bad_input() -> None:
    ours = pd.DataFrame({"k": ["a", "a"], "value": [1.0, 2.0]})
    paper = pd.DataFrame({"k": ["a"], "value": [1.0]})
    with pytest.raises(ValueError, match="ours has several rows per key"):
        side_by_side(ours, paper, on=["k"])
    with pytest.raises(ValueError, match=r"paper lacks columns \['j'\]"):
        side_by_side(ours.iloc[:1].assign(j=1), paper, on=["k", "j"])
    with pytest.raises(ValueError, match="at least one key"):
        side_by_side(ours, paper, on=[])


def test_verdict_format() -> None:
    assert verdict("deeper is less stable", 0.2 > 0.1, "0.2 vs 0.1") == (
        "deeper is less stable: reproduced (0.2 vs 0.1)"
    )
    assert verdict("deeper is less stable", np.float64(0.05) > 0.1, "0.05 vs 0.1") == (
        "deeper is less stable: NOT reproduced (0.05 vs 0.1)"
    )
    with pytest.raises(TypeError, match="must be a bool"):
        verdict("claim", "yes", "evidence")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="claim must not be empty"):
        verdict(" ", True, "evidence")


def test_show_verdicts_prints_and_saves(tmp_path, capsys) -> None:
    items = [verdict("a", True, "x"), verdict("b", False, "y")]
    markdown = show_verdicts(items, out_dir=tmp_path)
    assert markdown == "- a: reproduced (x)\n- b: NOT reproduced (y)\n"
    assert capsys.readouterr().out == markdown
    assert (tmp_path / "verdicts.md").read_text() == markdown
    assert show_verdicts("c: reproduced (z)") == "- c: reproduced (z)\n"


def test_timer() -> None:
    with Timer("sleep") as timer:
        time.sleep(0.05)
    assert 0.04 < timer.seconds < 2.0
    assert "sleep" in repr(timer)
