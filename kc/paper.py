"""The numbers the paper reports, read from the project's copy of its tables.

The copy lives in ``data/paper/paper-tables.csv`` (columns ``table, setting, row, column,
value, unit``; table ids ``"1"``, ``"2"``, ``"3"``, ``"4"``, ``"4.1"``). Set
``$KC_PAPER_TABLES`` to read another copy.

Example:
    >>> paper_value(1, setting="different initializations", column="conv4 @ AlexNet")
    0.086
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import pandas as pd

__all__ = ["CITATION", "BIBTEX", "paper_table", "paper_value", "paper_tables_path"]

CITATION = (
    "Ruofan Liang, Tianlin Li, Longfei Li, Jing Wang, and Quanshi Zhang. "
    "Knowledge Consistency between Neural Networks and Beyond. "
    "International Conference on Learning Representations (ICLR), 2020."
)

BIBTEX = """@inproceedings{liang2020knowledge,
  title     = {Knowledge Consistency between Neural Networks and Beyond},
  author    = {Liang, Ruofan and Li, Tianlin and Li, Longfei and Wang, Jing and Zhang, Quanshi},
  booktitle = {International Conference on Learning Representations},
  year      = {2020}
}"""

_COLUMNS = ["table", "setting", "row", "column", "value", "unit"]
_RELATIVE = Path("data") / "paper" / "paper-tables.csv"


def paper_tables_path() -> Path:
    """Where the paper's tables are read from: ``$KC_PAPER_TABLES`` or the repository copy."""
    env = os.environ.get("KC_PAPER_TABLES")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"$KC_PAPER_TABLES points to {path}, which is not a file")
        return path
    # kc is installed editable, so the repository root is the parent of the package folder.
    candidates = [Path(__file__).resolve().parents[1] / _RELATIVE, Path.cwd() / _RELATIVE]
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"cannot find the paper's tables (tried {tried}); set $KC_PAPER_TABLES to the CSV"
    )


@lru_cache(maxsize=4)
def _load(path: str) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"table": str, "setting": str, "row": str, "column": str})
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; expected {_COLUMNS}")
    frame["value"] = frame["value"].astype(float)
    return frame[_COLUMNS]


def _table_id(table: str | int | float) -> str:
    if isinstance(table, bool):
        raise ValueError(f"table must be an id such as 1 or '4.1', got {table!r}")
    if isinstance(table, int):
        return str(table)
    if isinstance(table, float):
        return str(int(table)) if table.is_integer() else repr(table)
    return str(table).strip()


def paper_table(table: str | int | float) -> pd.DataFrame:
    """Rows of one of the paper's tables.

    Args:
        table: the table id, e.g. ``1``, ``"2"``, ``4.1`` (Sec. 4.1's numbers).

    Returns:
        A new DataFrame with columns ``table, setting, row, column, value, unit``, in the order
        of the CSV and with a fresh index.

    Raises:
        ValueError: unknown table id (the message lists the known ones).

    Example:
        >>> paper_table(2)["row"].unique().tolist()
        ['Var(x0)', 'Var(x1)', 'Var(x2)', 'Var(xDelta)']
    """
    frame = _load(str(paper_tables_path()))
    key = _table_id(table)
    rows = frame[frame["table"] == key]
    if rows.empty:
        known = sorted(frame["table"].unique().tolist())
        raise ValueError(f"unknown paper table {table!r}; known tables: {known}")
    return rows.reset_index(drop=True).copy()


def paper_value(
    table: str | int | float,
    setting: str | None = None,
    row: str | None = None,
    column: str | None = None,
) -> float:
    """The single number of a table selected by ``setting``, ``row`` and ``column``.

    Arguments left as ``None`` are not used to select; the selection must leave exactly one row.

    Raises:
        ValueError: no row or more than one row matches (the message shows the candidates).

    Example:
        >>> paper_value(3, row="Network A", column="ResNet-18")
        34.74
    """
    rows = paper_table(table)
    wanted = {"setting": setting, "row": row, "column": column}
    for name, value in wanted.items():
        if value is not None:
            rows = rows[rows[name] == value]
    given = ", ".join(f"{k}={v!r}" for k, v in wanted.items() if v is not None) or "no filter"
    if len(rows) == 1:
        return float(rows["value"].iloc[0])
    if rows.empty:
        options = paper_table(table)[["setting", "row", "column"]].drop_duplicates()
        raise ValueError(
            f"no value in paper table {table!r} matches {given}; rows are:\n"
            + options.to_string(index=False)
        )
    raise ValueError(
        f"{len(rows)} values in paper table {table!r} match {given}; narrow it with "
        "setting/row/column:\n" + rows[["setting", "row", "column", "value"]].to_string(index=False)
    )
