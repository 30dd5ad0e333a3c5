"""kc.book.output: the one writer of tables, figures and claims."""

from __future__ import annotations

import json
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from kc.book.output import (  # noqa: E402
    Stopwatch,
    notebook_parameters,
    output_dir,
    save_claims,
    save_figure,
    save_table,
)
from kc.studies.claims import check, untestable  # noqa: E402


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


def test_save_figure_writes_one_png_and_closes_the_figure(tmp_path) -> None:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    png = save_figure(fig, "curve", tmp_path)
    assert png == tmp_path / "curve.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png"]  # no SVG beside it
    assert not plt.fignum_exists(fig.number)  # closed: the inline backend shows no second copy
    with Image.open(png) as image:
        assert image.info["dpi"][0] == pytest.approx(120, abs=1)
    first = png.read_bytes()
    save_figure(fig, "curve", tmp_path)
    assert png.read_bytes() == first  # reruns give identical files


def test_save_figure_shows_the_file_with_its_name(tmp_path, monkeypatch) -> None:
    import base64

    import IPython
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append((a, k)))
    fig, ax = plt.subplots(figsize=(2, 2))
    png = save_figure(fig, "curve", tmp_path)
    ((data,), kwargs) = shown[0]
    assert base64.b64decode(data["image/png"]) == png.read_bytes()
    assert kwargs["metadata"] == {"kc_figure": f"{tmp_path.name}/curve.png"} and kwargs["raw"]


def _claims():
    return [
        check("t.one", "Table 1", "a holds", True, evidence="x 0.2", paper="0.1",
              numbers={"x": 0.2, "y": float("nan")}),
        check("t.two", "Table 1", "b holds", False, evidence="y"),
        untestable("t.three", "Table 1", "c holds", "needs two layers, got ['conv4']"),
    ]  # fmt: skip


def test_save_claims_writes_the_contracts_json_and_markdown(tmp_path, capsys) -> None:
    params = {"SEEDS": (0, 1), "LAYERS": {"alexnet": ["conv4"]}, "G_LR": 0.003}
    path = save_claims(_claims(), tmp_path, notebook="nb", profile="smoke", parameters=params)
    assert path == tmp_path / "verdicts.json"
    record = json.loads(path.read_text())
    assert list(record) == ["notebook", "profile", "parameters", "claims"]
    assert (record["notebook"], record["profile"]) == ("nb", "smoke")
    assert record["parameters"] == {
        "SEEDS": [0, 1],
        "LAYERS": {"alexnet": ["conv4"]},
        "G_LR": 0.003,
    }
    first = record["claims"][0]
    assert set(first) == {"id", "item", "claim", "paper", "status", "evidence", "numbers"}
    assert first["numbers"] == {"x": 0.2, "y": None}  # NaN is not JSON
    assert [c["status"] for c in record["claims"]] == [
        "reproduced", "not reproduced", "not testable",
    ]  # fmt: skip
    markdown = (tmp_path / "verdicts.md").read_text()
    assert markdown.count("\n- ") + 1 == 3 and "not testable with these parameters" in markdown
    assert "1 reproduced, 1 not reproduced, 1 not testable" in markdown
    assert capsys.readouterr().out == markdown


def test_save_claims_refuses_strings_and_repeated_ids(tmp_path) -> None:
    with pytest.raises(TypeError, match="kc.studies.claims.Claim objects, got \\['str'\\]"):
        save_claims(["a: reproduced"], tmp_path, notebook="nb", profile="p", parameters={})
    twice = [_claims()[0], _claims()[0]]
    with pytest.raises(ValueError, match=r"repeated: \['t.one'\]"):
        save_claims(twice, tmp_path, notebook="nb", profile="p", parameters={})
    assert not (tmp_path / "verdicts.json").exists()


def test_notebook_parameters_keeps_upper_case_data_only() -> None:
    namespace = {"SEEDS": [0], "DEVICE": "cpu", "PAIRS": None, "lower": 1, "PD": pd, "F": print}
    assert notebook_parameters(namespace) == {"SEEDS": [0], "DEVICE": "cpu", "PAIRS": None}


def test_stopwatch_runs_from_creation_and_freezes_a_block() -> None:
    clock = Stopwatch()
    with Stopwatch() as step:
        time.sleep(0.05)
    frozen = step.seconds
    time.sleep(0.02)
    assert 0.04 < frozen < 2.0 and step.seconds == frozen
    assert clock.seconds >= frozen + 0.02
    assert "Stopwatch" in repr(step)
