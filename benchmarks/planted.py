"""The planted-structure benchmark: does the order decomposition recover planted shares?

Targets are made from Gaussian source maps by random CNNs of known depth (0, 1, 2, 4 ReLU
layers) plus noise of a known share (:mod:`kc.studies.planted.pairs`). For each case g is fitted on half of
the samples and decomposed on the other half; the table holds the planted shares (linear,
nonlinear, noise), the measured shares Var(x(k)) / Var(x*), the instability, their errors and
every baseline of :mod:`kc.core.similarity` on the same pair. Cases vary one factor at a time
around a base (lambda, K, N, noise; :data:`kc.studies.planted.pairs.BASE`, :data:`kc.studies.planted.pairs.VARY`).

Default: 4 depths x 10 cases, about 40 fits of 400 steps (minutes on 2 cores). ``--quick``:
4 depths x 3 cases at N = 384, 150 steps (a few minutes on a busy machine).

Example:
    python benchmarks/planted.py --quick
    python benchmarks/planted.py --seeds 0 1 2 --steps 800
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from kc.studies.planted import pairs as planted

SUMMARY = [
    "planted_linear",
    "share_x0",
    "planted_nonlinear",
    "share_higher",
    "planted_noise",
    "instability",
    "linear_cka",
    "rbf_cka",
    "svcca",
    "pwcca",
    "procrustes",
    "ridge_r2",
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 cases per depth, N=384, 150 steps")
    p.add_argument("--depths", type=int, nargs="+", default=list(planted.DEPTHS))
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per fit")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument(
        "--maps",
        default="flatten",
        choices=["flatten", "positions"],
        help="map rule of the baselines; the planted relation is spatial (3 x 3), which "
        "'positions' (samples = single positions) cannot see",
    )
    p.add_argument("--out", type=Path, default=Path("outputs/benchmarks"), help="output folder")
    return p.parse_args(argv)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of the key columns per depth and varied factor (over seeds)."""
    keys = ["depth", "varied", "lam", "order", "n", "noise"]
    cols = [c for c in SUMMARY if c in table]
    return table.groupby(keys, sort=False)[cols].mean().round(3).reset_index()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.quick:
        cases = planted.design(tuple(args.depths), planted.QUICK_BASE, planted.QUICK_VARY)
        steps = args.steps or 150
    else:
        cases = planted.design(tuple(args.depths))
        steps = args.steps or 400
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{len(cases)} cases x {len(args.seeds)} seeds, {steps} steps per fit, "
        f"load average (1 min) {load:.2f}",
        file=sys.stderr,
    )

    def progress(row: dict) -> None:
        print(
            f"  depth {row['depth']} {row['varied']:>5}: instability {row['instability']:.3f} "
            f"(planted noise {row['planted_noise']:.3f}), {row['seconds']:.1f} s",
            file=sys.stderr,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fits that stop at the step budget warn; the table says it
        rows = planted.run(
            cases, steps=steps, seeds=tuple(args.seeds), maps=args.maps, on_row=progress
        )
    table = pd.DataFrame(rows)
    summary = summarize(table)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(summary.to_string(index=False))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "planted_quick" if args.quick else "planted"
    table.to_csv(args.out / f"{name}.csv", index=False)
    summary.to_csv(args.out / f"{name}_summary.csv", index=False)
    print(
        f"wrote {args.out / name}.csv and {name}_summary.csv; total fit time "
        f"{table['seconds'].sum():.0f} s, load average (1 min) now {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
