"""The paper's numbers as read by kc.studies.paper."""

from __future__ import annotations

import pandas as pd
import pytest

from kc.engine import zoo
from kc.studies.paper import (
    ARCH_NAMES,
    BIBTEX,
    CITATION,
    PAPER_LAYERS,
    REFINEMENT_COLUMNS,
    paper_column,
    paper_table,
    paper_tables_path,
    paper_value,
    parse_column,
    side_by_side,
)


def test_known_numbers() -> None:
    assert paper_value(1, "different initializations", "instability", "conv4 @ AlexNet") == 0.086
    assert paper_value(1, "different training data", column="last conv @ ResNet-34") == 0.275
    assert paper_value(2, row="Var(x0)", column="conv5 @ AlexNet") == pytest.approx(424.67)
    assert paper_value(3, row="x0+x1+x2", column="ResNet-50") == pytest.approx(31.84)
    assert paper_value("4", "Mix-Dogs", "x0+x1+x2", "ResNet-18") == pytest.approx(16.17)
    assert paper_value(4.1, row="strong DNN accuracy") == pytest.approx(73.09)


@pytest.mark.parametrize(
    ("table", "rows"), [(1, 10), ("2", 20), (3.0, 23), ("4", 36), (4.1, 5), ("4.1", 5)]
)
def test_tables_have_their_rows(table: object, rows: int) -> None:
    frame = paper_table(table)  # type: ignore[arg-type]
    assert list(frame.columns) == ["table", "setting", "row", "column", "value", "unit"]
    assert len(frame) == rows
    assert list(frame.index) == list(range(rows))
    assert frame["value"].dtype == float


def test_table_is_a_copy() -> None:
    frame = paper_table(1)
    frame.loc[0, "value"] = -1.0
    assert paper_table(1).loc[0, "value"] == 0.086


def test_table2_orders() -> None:
    assert paper_table(2)["row"].unique().tolist() == [
        "Var(x0)",
        "Var(x1)",
        "Var(x2)",
        "Var(xDelta)",
    ]


def test_unknown_table() -> None:
    with pytest.raises(ValueError, match=r"unknown paper table 5.*known tables: \['1', '2'"):
        paper_table(5)


def test_ambiguous_and_missing_values() -> None:
    with pytest.raises(ValueError, match="10 values in paper table 1 match"):
        paper_value(1)
    with pytest.raises(ValueError, match="no value in paper table 1 matches column='conv9'"):
        paper_value(1, column="conv9")


def test_env_override(tmp_path, monkeypatch) -> None:
    csv = tmp_path / "tables.csv"
    pd.DataFrame(
        {
            "table": ["1"],
            "setting": ["s"],
            "row": ["r"],
            "column": ["c"],
            "value": [1.5],
            "unit": ["u"],
        }
    ).to_csv(csv, index=False)
    monkeypatch.setenv("KC_PAPER_TABLES", str(csv))
    assert paper_tables_path() == csv
    assert paper_value(1) == 1.5
    monkeypatch.setenv("KC_PAPER_TABLES", str(tmp_path / "missing.csv"))
    with pytest.raises(FileNotFoundError, match="KC_PAPER_TABLES"):
        paper_table(1)


def test_citation() -> None:
    for text in ("Liang", "Quanshi Zhang", "Knowledge Consistency between Neural Networks", "2020"):
        assert text in CITATION
    assert "ICLR" in CITATION
    assert BIBTEX.startswith("@inproceedings{")


# ---------------------------------------------------------------------------- vocabulary


@pytest.mark.parametrize("arch", list(ARCH_NAMES))
def test_table1_columns_round_trip_for_every_layer(arch: str) -> None:
    for layer in zoo.layers(arch):
        for table in (1, 2):
            assert parse_column(table, paper_column(table, arch, layer)) == (arch, layer)


@pytest.mark.parametrize("table", [1, 2])
def test_every_paper_column_of_tables_1_and_2_parses(table: int) -> None:
    parsed = {parse_column(table, c) for c in paper_table(table)["column"]}
    assert parsed == {(a, layer) for a, ls in PAPER_LAYERS.items() for layer in ls}


@pytest.mark.parametrize("table", [3, 4])
def test_every_paper_column_of_tables_3_and_4_is_ours(table: int) -> None:
    for column in paper_table(table)["column"].unique():
        arch, layer = parse_column(table, column)
        assert paper_column(table, arch, layer) == column
        assert (arch, layer) in REFINEMENT_COLUMNS


def test_the_two_namings_differ_by_table() -> None:
    assert paper_column(1, "vgg16", "conv4_3") == "conv4-3 @ VGG-16"
    assert paper_column(4, "vgg16", "conv4_3") == "VGG-16 conv4-3"
    assert paper_column(2, "resnet34", "last14") == "last conv @ ResNet-34"
    assert paper_column(3, "resnet34", "last14") == "ResNet-34"


def test_unknown_columns_layers_and_tables_raise() -> None:
    with pytest.raises(ValueError, match="not a layer column"):
        parse_column(1, "conv9 @ AlexNet")
    with pytest.raises(ValueError, match="unknown layer 'conv9'"):
        paper_column(1, "alexnet", "conv9")
    with pytest.raises(ValueError, match="no Table 3/4 column for"):
        paper_column(3, "alexnet", "conv5")
    with pytest.raises(ValueError, match="layer columns are 1-4, got '4.1'"):
        paper_column("4.1", "alexnet", "conv5")


# ---------------------------------------------------------------------------- side_by_side


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
