"""The paper's numbers as read by kc.paper."""

from __future__ import annotations

import pandas as pd
import pytest

from kc.paper import BIBTEX, CITATION, paper_table, paper_tables_path, paper_value


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
