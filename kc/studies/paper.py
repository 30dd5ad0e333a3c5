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
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import pandas as pd

__all__ = [
    "ARCH_DEPTH",
    "ARCH_NAMES",
    "BASELINES",
    "BIBTEX",
    "CASE1",
    "CASE2",
    "CITATION",
    "PAPER_LAYERS",
    "PAPER_STRONG",
    "PAPER_WEAK",
    "REFINEMENT_COLUMNS",
    "SEC41_ROWS",
    "SETTINGS",
    "paper_column",
    "paper_table",
    "paper_tables_path",
    "paper_value",
    "parse_column",
    "side_by_side",
]

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
    # kc is installed editable, so the repository root is two folders above this file.
    candidates = [Path(__file__).resolve().parents[2] / _RELATIVE, Path.cwd() / _RELATIVE]
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


# ---------------------------------------------------------------------------- vocabulary
# How the paper names its rows and columns, and how ours map onto them.

#: The two settings (rows) of Table 1, Sec. 4.2: Case 1 and Case 2.
CASE1 = "different initializations"
CASE2 = "different training data"
SETTINGS = (CASE1, CASE2)

#: The paper's names of our architectures.
ARCH_NAMES = {
    "alexnet": "AlexNet",
    "vgg16": "VGG-16",
    "resnet18": "ResNet-18",
    "resnet34": "ResNet-34",
    "resnet50": "ResNet-50",
}
#: Number of weight layers, the "depth" the paper's explanation of Table 1 refers to.
ARCH_DEPTH = {"alexnet": 8, "vgg16": 16, "resnet18": 18, "resnet34": 34, "resnet50": 50}

#: The layers of Tables 1 and 2.
PAPER_LAYERS: dict[str, list[str]] = {
    "alexnet": ["conv4", "conv5"],
    "vgg16": ["conv4_3", "conv5_3"],
    "resnet34": ["last14"],
}

#: (arch, layer) -> the column name of Tables 3 and 4.
REFINEMENT_COLUMNS: dict[tuple[str, str], str] = {
    ("vgg16", "conv4_3"): "VGG-16 conv4-3",
    ("vgg16", "conv5_2"): "VGG-16 conv5-2",
    ("vgg16", "conv5_3"): "VGG-16 conv5-3",
    ("resnet18", "last14"): "ResNet-18",
    ("resnet34", "last14"): "ResNet-34",
    ("resnet50", "last14"): "ResNet-50",
}
#: The baseline rows of Tables 3 and 4.
BASELINES = ("Network A", "Network B")

#: Sec. 4.1's weak and strong networks and their features.
PAPER_WEAK = ("alexnet", "conv5")
PAPER_STRONG = ("resnet34", "last14")
#: Our Sec. 4.1 numbers -> (setting, row) of the paper's table ``"4.1"``.
SEC41_ROWS = {
    "weak": ("networks", "weak DNN accuracy"),
    "strong": ("networks", "strong DNN accuracy"),
    "gain_blind": (
        "blind spots (AlexNet weak vs ResNet-34 strong; CUB)",
        "accuracy gain when blind spots added to g(x_A)",
    ),
    "raw": ("unreliable features", "classifier on raw x_A"),
    "unreliable_removed": ("unreliable features", "classifier on g(x_B) (unreliable removed)"),
}

_LAYER_NAMES = {"last14": "last conv"}
_TABLE_GROUPS = {"1": "1", "2": "1", "3": "3", "4": "3"}


def _group(table: str | int | float) -> str:
    key = _table_id(table)
    if key not in _TABLE_GROUPS:
        raise ValueError(f"paper tables with layer columns are 1-4, got {table!r}")
    return _TABLE_GROUPS[key]


def paper_column(table: str | int | float, arch: str, layer: str) -> str:
    """The column of paper table ``table`` (1-4) holding a network's feature.

    Tables 1-2 name a layer and its network (``"conv4-3 @ VGG-16"``); Tables 3-4 name the
    network and, for VGG-16 only, the layer (``"VGG-16 conv4-3"``, ``"ResNet-18"``).

    Example:
        >>> paper_column(1, "vgg16", "conv4_3"), paper_column(3, "resnet18", "last14")
        ('conv4-3 @ VGG-16', 'ResNet-18')
    """
    if _group(table) == "3":
        if (arch, layer) not in REFINEMENT_COLUMNS:
            raise ValueError(
                f"no Table 3/4 column for ({arch!r}, {layer!r}); known: {sorted(REFINEMENT_COLUMNS)}"
            )
        return REFINEMENT_COLUMNS[arch, layer]
    from kc.engine import zoo

    if arch not in ARCH_NAMES or layer not in zoo.layers(arch):
        raise ValueError(f"unknown layer {layer!r} of arch {arch!r}")
    return f"{_LAYER_NAMES.get(layer, layer.replace('_', '-'))} @ {ARCH_NAMES[arch]}"


def parse_column(table: str | int | float, column: str) -> tuple[str, str]:
    """Inverse of :func:`paper_column`, e.g. ``(1, "last conv @ ResNet-34") -> ("resnet34", "last14")``."""
    if _group(table) == "3":
        found = [key for key, name in REFINEMENT_COLUMNS.items() if name == column]
    else:
        from kc.engine import zoo

        found = [
            (arch, layer)
            for arch in ARCH_NAMES
            for layer in zoo.layers(arch)
            if paper_column(1, arch, layer) == column
        ]
    if not found:
        raise ValueError(f"not a layer column of paper table {table!r}: {column!r}")
    return found[0]


def side_by_side(
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    on: Sequence[str],
    ours_value: str = "value",
    paper_value: str = "value",
    how: str = "outer",
) -> pd.DataFrame:
    """Put our numbers next to the paper's.

    Args:
        ours: our results, with the key columns ``on`` and a value column ``ours_value``.
        paper: the paper's rows (e.g. from :func:`paper_table`), with the key columns and a
            value column ``paper_value``.
        on: key columns present in both frames (e.g. ``["setting", "column"]``).
        ours_value, paper_value: names of the value columns in ``ours`` and ``paper``.
        how: the merge; ``"outer"`` keeps rows only one side has (the other is NaN).

    Returns:
        Columns ``*on, ours, paper, difference`` with ``difference = ours - paper``.

    Example:
        >>> a = pd.DataFrame({"k": ["x", "y"], "value": [1.0, 2.0]})
        >>> b = pd.DataFrame({"k": ["x", "y"], "value": [1.5, 2.0]})
        >>> side_by_side(a, b, on=["k"])["difference"].tolist()
        [-0.5, 0.0]
    """
    keys = list(on)
    if not keys:
        raise ValueError("on must name at least one key column")
    for label, frame, value in (("ours", ours, ours_value), ("paper", paper, paper_value)):
        missing = [c for c in [*keys, value] if c not in frame.columns]
        if missing:
            raise ValueError(f"{label} lacks columns {missing}; it has {list(frame.columns)}")
        if frame.duplicated(keys).any():
            dups = frame[frame.duplicated(keys, keep=False)][keys].drop_duplicates()
            raise ValueError(
                f"{label} has several rows per key {keys}:\n{dups.to_string(index=False)}"
            )
    left = ours[[*keys, ours_value]].rename(columns={ours_value: "ours"})
    right = paper[[*keys, paper_value]].rename(columns={paper_value: "paper"})
    merged = left.merge(right, on=keys, how=how, sort=False)
    merged["ours"] = merged["ours"].astype(float)
    merged["paper"] = merged["paper"].astype(float)
    merged["difference"] = merged["ours"] - merged["paper"]
    return merged.reset_index(drop=True)
