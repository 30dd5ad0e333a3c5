"""Table 2 (Sec. 4.2): the variances of the orders x(0), ..., x(K) and of x_Delta.

``table2_order_variances`` reads the Case 1 fits of :mod:`kc.studies.instability.run` (the same
cache keys as Table 1) and summarises them here: :func:`order_variances` per layer in three
units, :func:`table2_claims` for the paper's claims, and :func:`paper_units_check`, which
infers from the paper's own Tables 1 and 2 that its Table 2 is in raw feature units.

The centre of Var: Table 2 uses the paper's variance about one global mean
(:func:`kc.variance`'s default), the authors' released ``Variance.py`` subtracts a mean per
channel. :func:`centred_fits` recomputes the variances of the same cached fits about both
centres, :func:`centre_table` puts the two Table 2s side by side and :func:`centre_verdicts`
tells whether any claim's verdict depends on the choice.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from kc.core.metrics import CENTERS, variance
from kc.studies.claims import Claim, from_checks
from kc.studies.instability.run import InstabilityStudy
from kc.studies.paper import CASE1, paper_column, side_by_side


def order_rows(order: int) -> list[str]:
    """``["Var(x0)", ..., "Var(xK)", "Var(xDelta)"]``, the rows of Table 2."""
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    return [f"Var(x{k})" for k in range(order + 1)] + ["Var(xDelta)"]


def order_variances(fit_rows: pd.DataFrame, order: int) -> pd.DataFrame:
    """Table 2 from the Case 1 rows of :func:`fits`: mean variances per layer and order.

    Three units: ``normalised`` (x and x* at zero mean and unit variance on the fitting images,
    footnote 2), ``raw`` (the raw units of x*), and ``fraction`` (divided by Var(x*) of the same
    fit; the same in both units because the normalisation is one global scale).

    Returns:
        Long format: ``arch, layer, column, units, row, value, std, n_fits`` with ``row`` in
        :func:`order_rows` plus ``Var(x*)``.
    """
    case1 = fit_rows[fit_rows["setting"] == CASE1]
    if case1.empty:
        raise ValueError("order_variances needs Case 1 fits; got none")
    names = [*order_rows(order), "Var(x*)"]
    missing = [n for n in names if n not in case1.columns]
    if missing:
        raise ValueError(f"fits lack columns {missing} (was ORDER={order} used for them?)")
    rows = []
    for column, group in case1.groupby("column", sort=False):
        for units in ("normalised", "raw", "fraction"):
            for name in names:
                if units == "fraction":
                    series = group[name] / group["Var(x*)"]
                else:
                    series = group[name if units == "normalised" else f"{name} raw"]
                rows.append(
                    {
                        "arch": group["arch"].iloc[0],
                        "layer": group["layer"].iloc[0],
                        "column": column,
                        "units": units,
                        "row": name,
                        "value": float(series.mean()),
                        "std": float(series.std(ddof=0)),
                        "n_fits": len(series),
                    }
                )
    return pd.DataFrame(rows)


def order_checks(table: pd.DataFrame, order: int, value: str = "value") -> dict[str, dict]:
    """Check Table 2's claims on a long table with ``column, row`` and ``value`` (one unit).

    (a) Var(x0) > Var(x1) > ... > Var(xK) in every layer; (b) the 0-order component holds most
    of the variance, Var(x0) > Var(x1) + ... + Var(xK) + Var(xDelta), in every layer. (a) needs
    ``order >= 1``; with ``order == 0`` it cannot be tested (``holds`` None).

    Returns:
        ``{claim id: {"claim", "holds", "evidence", "numbers"}}`` (see
        :func:`kc.studies.claims.from_checks`); the evidence names the layers where a claim fails.
    """
    orders = order_rows(order)[:-1]
    wide = table.pivot_table(index="column", columns="row", values=value, sort=False)
    decreasing = {
        c: bool(all(x > y for x, y in itertools.pairwise(wide.loc[c, orders]))) for c in wide.index
    }
    rest = wide[orders[1:] + ["Var(xDelta)"]].sum(axis=1)
    share = wide["Var(x0)"] / (wide["Var(x0)"] + rest)
    majority = {c: bool(share[c] > 0.5) for c in wide.index}

    def evidence(ok: Mapping[str, bool], detail: str) -> str:
        failed = [c for c, v in ok.items() if not v]
        return (f"fails for {', '.join(failed)}; " if failed else "every layer; ") + detail

    seqs = "; ".join(
        f"{c}: " + " > ".join(f"{v:.3g}" for v in wide.loc[c, orders]) for c in wide.index
    )
    shares = ", ".join(f"{c} {share[c]:.2f}" for c in wide.index)
    return {
        "table2.orders_decrease": {
            "claim": "Var(x0) > Var(x1) > ... > Var(xK) in every layer",
            "holds": all(decreasing.values()) if order >= 1 else None,
            "evidence": evidence(decreasing, seqs)
            if order >= 1
            else f"needs ORDER >= 1, got {order}",
            "numbers": {f"{c} {o}": float(wide.loc[c, o]) for c in wide.index for o in orders},
        },
        "table2.x0_majority": {
            "claim": "the 0-order component holds most of the variance",
            "holds": all(majority.values()),
            "evidence": evidence(majority, f"Var(x0) / (sum of all rows): {shares}"),
            "numbers": {f"{c} share of x0": float(share[c]) for c in wide.index},
        },
    }


def paper_units_check(table1: pd.DataFrame, table2: pd.DataFrame) -> pd.DataFrame:
    """What units are the paper's Table 2 in? Computed from its own numbers.

    If the components are nearly uncorrelated, Var(x*) ~ Var(x0) + ... + Var(xDelta); and by
    Table 1, Var(x*) = Var(xDelta) / instability (Case 1). With unit-variance features (footnote
    2) both would be ~1.

    Args:
        table1, table2: :func:`kc.studies.paper.paper_table` of tables 1 and 2.

    Returns:
        Columns ``column, sum_of_rows, instability, implied_var_x_star, ratio`` where
        ``implied_var_x_star = Var(xDelta) / instability`` and ``ratio`` = sum / implied.
    """
    t1 = table1[table1["setting"] == CASE1].set_index("column")["value"]
    wide = table2.pivot_table(index="column", columns="row", values="value", sort=False)
    out = pd.DataFrame(
        {
            "column": wide.index,
            "sum_of_rows": wide.sum(axis=1).to_numpy(),
            "instability": t1.reindex(wide.index).to_numpy(),
        }
    )
    out["implied_var_x_star"] = wide["Var(xDelta)"].to_numpy() / out["instability"]
    out["ratio"] = out["sum_of_rows"] / out["implied_var_x_star"]
    return out


def paper_fractions(table2: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 2 divided by the implied Var(x*) of :func:`paper_units_check`.

    Returns:
        ``table2``'s rows with ``value`` replaced by the fraction (comparable with our
        ``fraction`` units).
    """
    implied = units.set_index("column")["implied_var_x_star"]
    out = table2.copy()
    out["value"] = out["value"] / out["column"].map(implied)
    return out


def magnitude_check(variances: pd.DataFrame, value: str = "value", factor: float = 10.0) -> dict:
    """Table 2's caption: features of different layers have very different variance magnitudes.

    Args:
        variances: rows ``column, value`` holding Var(x*) of each layer in raw units (ours:
            :func:`order_variances` with ``units == "raw"`` and ``row == "Var(x*)"``; the
            paper: ``implied_var_x_star`` of :func:`paper_units_check`).
        value: the value column.
        factor: the largest Var(x*) must exceed the smallest by this factor.

    Returns:
        ``{"table2.magnitudes": check}`` (see :func:`kc.studies.claims.from_checks`); with a single
        layer the claim cannot be tested (``holds`` None).
    """
    v = variances.set_index("column")[value].astype(float)
    if v.empty or (v <= 0).any():
        raise ValueError(f"need positive variances, got {v.to_dict()}")
    claim = f"Var(x*) differs across layers by more than x{factor:g}"
    if len(v) < 2:
        reason = f"needs two or more layers, got {list(v.index)}"
        return {"table2.magnitudes": {"claim": claim, "holds": None, "evidence": reason,
                                      "numbers": {}}}  # fmt: skip
    ratio = float(v.max() / v.min())
    evidence = (
        f"Var(x*) from {v.min():.3g} ({v.idxmin()}) to {v.max():.3g} ({v.idxmax()}), x{ratio:.3g}"
    )
    numbers = {"ratio": ratio, "min": float(v.min()), "max": float(v.max())}
    return {"table2.magnitudes": {"claim": claim, "holds": bool(ratio > factor),
                                  "evidence": evidence, "numbers": numbers}}  # fmt: skip


def our_checks(table: pd.DataFrame, order: int) -> dict[str, dict]:
    """Table 2's checks on our :func:`order_variances`: the order claims in normalised units,
    the magnitude claim on Var(x*) in raw units (see :func:`table2_claims`)."""
    normalised = table[table["units"] == "normalised"]
    raw_star = table[(table["units"] == "raw") & (table["row"] == "Var(x*)")]
    return {**order_checks(normalised, order), **magnitude_check(raw_star)}


def table2_claims(
    table: pd.DataFrame, paper: pd.DataFrame, units: pd.DataFrame, order: int
) -> list[Claim]:
    """Table 2's claims on our :func:`order_variances` beside the paper's.

    The order claims are checked in normalised units (ours) and on the paper's table as
    printed; the magnitude claim on Var(x*) in raw units (ours) and on the paper's implied
    Var(x*) (:func:`paper_units_check`).
    """
    theirs = {
        **order_checks(paper, order),
        **magnitude_check(units, "implied_var_x_star"),
    }
    return from_checks(our_checks(table, order), theirs, "Table 2")


def table2_vs_paper(ours: pd.DataFrame, paper: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """Our Table 2 beside the paper's, in raw units and as fractions of Var(x*).

    Args:
        ours: :func:`order_variances`.
        paper: :func:`kc.studies.paper.paper_table` (2).
        units: :func:`paper_units_check`.

    Returns:
        Columns ``units, row, column, ours, paper, difference``. Raw values are not comparable
        across implementations (different networks, images and scales); fractions are.
    """
    parts = []
    for name, theirs in (("raw", paper), ("fraction", paper_fractions(paper, units))):
        mine = ours[(ours["units"] == name) & (ours["row"] != "Var(x*)")]
        both = side_by_side(mine, theirs, on=["row", "column"], how="left")
        both.insert(0, "units", name)
        parts.append(both)
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------- the centre of Var


def component_variances(
    components: Mapping[str, Tensor],
    target: Tensor,
    center: str,
    scale: Tensor | float = 1.0,
) -> dict[str, float]:
    """Var of each order, of x_Delta and of x* about ``center`` (:func:`kc.variance`).

    Args:
        components: ``"x0"`` .. ``"xK"`` and ``"delta"`` of Eq. 3-4 in normalised units, each
            (N, C, H, W) or (N, C) (:attr:`kc.ConsistencyResult.components`).
        target: the normalised x* they decompose, same shape.
        center: ``"global"`` (the paper's) or ``"channel"`` (the released code's).
        scale: x*'s footnote-2 standard deviation (a scalar, or (1, C, 1, 1) / (1, C) for
            per-channel statistics) that brings a component back to raw units, as in
            :func:`kc.evaluate_consistency`.

    Returns:
        ``{"Var(x0)", ..., "Var(xK)", "Var(xDelta)", "Var(x*)"}`` in normalised units and the
        same names with a `` raw`` suffix: the columns of
        :func:`kc.studies.instability.run.fits`.
    """
    orders = [f"x{k}" for k in range(len(components) - 1)]
    if not orders or set(components) != {*orders, "delta"}:
        raise ValueError(f"components must be x0..xK and delta, got {sorted(components)}")
    bad = {k: tuple(v.shape) for k, v in components.items() if v.shape != target.shape}
    if bad:
        raise ValueError(f"components must have x*'s shape {tuple(target.shape)}, got {bad}")
    parts = {f"Var({k})": components[k] for k in orders}
    parts.update({"Var(xDelta)": components["delta"], "Var(x*)": target})
    scale_t = torch.as_tensor(scale)
    out = {name: variance(t, center) for name, t in parts.items()}
    out.update({f"{name} raw": variance(t * scale_t, center) for name, t in parts.items()})
    return out


def centred_fits(study: InstabilityStudy, centers: Sequence[str] = CENTERS) -> pd.DataFrame:
    """The Case 1 fits of Table 2 with their variances about each centre.

    Calls :meth:`InstabilityStudy.fit` for the same pairs as
    :func:`kc.studies.instability.run.fits` (so g is read from Table 1's cache) and recomputes the
    variances of the decomposition with :func:`component_variances`. With
    ``center="global"`` the values are those of ``fits``.

    Returns:
        One row per fit and centre: ``setting, arch, layer, column, x, target, center,
        instability`` (Var(xDelta) / Var(x*) about that centre), the variance columns of
        :func:`component_variances` and ``from_cache``. :func:`order_variances` reads the
        rows of one centre.
    """
    centers = list(centers)
    unknown = [c for c in centers if c not in CENTERS]
    if unknown or not centers:
        raise ValueError(f"centers must be some of {list(CENTERS)}, got {centers}")
    rows: list[dict[str, Any]] = []
    for arch, layer in study.layer_list():
        for a, b in study.case1_pairs():
            x, t = study.spec(arch, a), study.spec(arch, b)
            res = study.fit(x, t, layer)
            norm = res.model.normalizer("x_star")
            scale = norm.std if norm is not None else 1.0
            for center in centers:
                var = component_variances(res.components, res.target, center, scale)
                rows.append(
                    {
                        "setting": CASE1,
                        "arch": arch,
                        "layer": layer,
                        "column": paper_column(1, arch, layer),
                        "x": x.label,
                        "target": t.label,
                        "center": center,
                        "instability": var["Var(xDelta)"] / var["Var(x*)"],
                        **var,
                        "from_cache": bool(res.info["from_cache"]),
                    }
                )
    return pd.DataFrame(rows)


def order_variances_by_centre(centred: pd.DataFrame, order: int) -> pd.DataFrame:
    """:func:`order_variances` of each centre of :func:`centred_fits`, with a ``center``
    column first."""
    if "center" not in centred.columns:
        raise ValueError("expected the rows of centred_fits (with a 'center' column)")
    parts = []
    for center, rows in centred.groupby("center", sort=False):
        table = order_variances(rows, order)
        table.insert(0, "center", center)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def centre_table(by_centre: pd.DataFrame) -> pd.DataFrame:
    """Table 2 about the global and the per-channel centre, side by side.

    Args:
        by_centre: :func:`order_variances_by_centre` with both centres.

    Returns:
        Columns ``arch, layer, column, units, row, global, channel, difference`` with
        ``difference = channel - global``, one row per cell of Table 2 and unit.
    """
    missing = [c for c in CENTERS if c not in set(by_centre["center"])]
    if missing:
        raise ValueError(f"centre_table needs both centres {list(CENTERS)}; missing {missing}")
    keys = ["arch", "layer", "column", "units", "row"]
    wide = by_centre.pivot_table(index=keys, columns="center", values="value", sort=False)
    out = wide[list(CENTERS)].reset_index()
    out.columns.name = None
    out["difference"] = out["channel"] - out["global"]
    return out


def centre_verdicts(claims: Mapping[str, Sequence[Claim]]) -> pd.DataFrame:
    """The verdict of each Table 2 claim under each centre, and whether it flips.

    Args:
        claims: ``{center: table2_claims(...)}`` for ``"global"`` and ``"channel"``.

    Returns:
        Columns ``id, claim, global, channel, flips`` (statuses of :mod:`kc.studies.claims`).
    """
    missing = [c for c in CENTERS if c not in claims]
    if missing:
        raise ValueError(f"centre_verdicts needs claims for {list(CENTERS)}; missing {missing}")
    status = {c: {cl.id: cl for cl in claims[c]} for c in CENTERS}
    if set(status["global"]) != set(status["channel"]):
        raise ValueError(
            f"the two centres checked different claims: {sorted(status['global'])} and "
            f"{sorted(status['channel'])}"
        )
    rows = [
        {
            "id": cid,
            "claim": cl.claim,
            "global": cl.status,
            "channel": status["channel"][cid].status,
            "flips": cl.status != status["channel"][cid].status,
        }
        for cid, cl in status["global"].items()
    ]
    return pd.DataFrame(rows, columns=["id", "claim", "global", "channel", "flips"])


def centre_sentence(verdicts: pd.DataFrame, table: pd.DataFrame) -> str:
    """One sentence on what the released code's centre changes in Table 2.

    Args:
        verdicts: :func:`centre_verdicts`. table: :func:`centre_table`.
    """
    frac = table[(table["units"] == "fraction") & (table["row"] != "Var(x*)")]
    if frac.empty:
        raise ValueError("centre_table has no fraction rows")
    worst = frac.loc[frac["difference"].abs().idxmax()]
    moved = (
        f"as fractions of Var(x*) the cells move by at most {abs(worst['difference']):.3g} "
        f"({worst['row']} of {worst['column']}: {worst['global']:.3g} about the global mean, "
        f"{worst['channel']:.3g} about the channel means)"
    )
    flips = verdicts[verdicts["flips"]]
    if flips.empty:
        return (
            f"Under the released code's per-channel centre none of Table 2's "
            f"{len(verdicts)} verdicts changes; {moved}."
        )
    changed = "; ".join(
        f"{r['id']} ({r['claim']}): {r['global']} -> {r['channel']}" for _, r in flips.iterrows()
    )
    return (
        f"Under the released code's per-channel centre {len(flips)} of Table 2's "
        f"{len(verdicts)} verdicts change: {changed}; {moved}."
    )
