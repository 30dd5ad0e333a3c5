"""Time kc's linear CKA against the peers that install, on the same arrays, in one run.

Peers (each skipped, with the reason printed, when it does not import):

* ``ckatorch`` (``ckatorch.core.cka_base``): torch, n x n Gram matrices;
* ``repsim`` (``repsim.cka(kernel_type="linear", estimator="gretton")``): C++ (Eigen).

Every shape is timed for kc and for each peer on the same features (a float32 torch tensor
for kc and ckatorch, the same values as a float64 numpy array for repsim, converted before
timing), as the best of ``--repeats`` calls after one warm-up call. Shapes cover both of kc's
forms: d < n (feature space) and n < d (Gram). The value of each peer is checked against kc's.
The ratio ``kc / fastest peer`` is the number to quote (target: <= 1); it is measured in one
run on the same load, so it travels better than the seconds.

Example:
    python benchmarks/bench_similarity.py            # default shapes
    python benchmarks/bench_similarity.py --quick    # small shapes, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kc.core.similarity import linear_cka

SHAPES = [(2000, 256, 256), (1000, 1024, 512), (500, 4096, 4096), (256, 8192, 2048)]
SLOW = 2.0
QUICK_SHAPES = [(300, 32, 48), (100, 600, 400)]


def _peers() -> tuple[dict[str, Callable[[Any, Any], float]], dict[str, str]]:
    """Peer name -> function of (torch x, torch y) -> float, and peer name -> why skipped."""
    peers: dict[str, Callable[[Any, Any], float]] = {}
    skipped: dict[str, str] = {}
    try:
        from ckatorch.core import cka_base

        peers["ckatorch"] = lambda x, y: float(cka_base(x, y))
    except ImportError as err:
        skipped["ckatorch"] = f"not importable: {err}"
    try:
        import repsim

        peers["repsim"] = lambda x, y: float(
            repsim.cka([x, y], kernel_type="linear", estimator="gretton")[0, 1]
        )
    except ImportError as err:
        skipped["repsim"] = f"not importable: {err}"
    return peers, skipped


def best_time(fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    """(value, best wall seconds of ``repeats`` calls) after one warm-up call.

    A call slower than ``SLOW`` seconds is not repeated: its warm-up time is the time (a peer
    that is many times slower needs no second decimal).
    """
    t0 = time.perf_counter()
    value = fn()
    best = time.perf_counter() - t0
    if best > SLOW:
        return value, best
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return value, best


def run(shapes: Sequence[tuple[int, int, int]], repeats: int, seed: int = 0) -> list[dict]:
    """Time kc and every peer on each (n, d_x, d_y); one row per shape."""
    peers, skipped = _peers()
    for name, why in skipped.items():
        print(f"peer {name} skipped: {why}", file=sys.stderr)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for n, dx, dy in shapes:
        x = torch.randn(n, dx, generator=gen)
        w = torch.randn(dx, dy, generator=gen) / dx**0.5
        y = x @ w + torch.randn(n, dy, generator=gen)  # related, so CKA is not ~0
        xn, yn = x.double().numpy(), y.double().numpy()
        value, t_kc = best_time(lambda x=x, y=y: linear_cka(x, y), repeats)
        row: dict[str, Any] = dict(n=n, d_x=dx, d_y=dy, kc_value=value, kc_s=t_kc)
        for name, fn in peers.items():
            args = (xn, yn) if name == "repsim" else (x, y)
            v, t = best_time(lambda fn=fn, args=args: fn(*args), repeats)
            if not np.isclose(v, value, rtol=1e-6):
                raise AssertionError(f"{name} gives {v}, kc {value} at shape {(n, dx, dy)}")
            row[f"{name}_s"] = t
        times = {k[:-2]: v for k, v in row.items() if k.endswith("_s") and k != "kc_s"}
        if times:
            fastest = min(times, key=times.get)
            row["fastest_peer"] = fastest
            row["kc_over_fastest"] = t_kc / times[fastest]
        rows.append(row)
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small shapes (a few seconds)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per measure")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", type=Path, default=Path("outputs/benchmarks"), help="output folder")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    repeats = args.repeats or (3 if args.quick else 5)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = run(shapes, repeats)
    header = (
        f"{'n':>6} {'d_x':>6} {'d_y':>6} {'kc s':>9} "
        + " ".join(f"{k[:-2] + ' s':>12}" for k in rows[0] if k.endswith("_s") and k != "kc_s")
        + f" {'kc/fastest':>11}"
    )
    print(header)
    for r in rows:
        peers = " ".join(f"{r[k]:12.4f}" for k in r if k.endswith("_s") and k != "kc_s")
        ratio = r.get("kc_over_fastest", float("nan"))
        print(f"{r['n']:6d} {r['d_x']:6d} {r['d_y']:6d} {r['kc_s']:9.4f} {peers} {ratio:11.3f}")
    env = dict(
        load_1min=load,
        torch_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        python=platform.python_version(),
        repeats=repeats,
    )
    print(f"load average (1 min) {load:.2f}, torch threads {env['torch_threads']}")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "similarity_quick" if args.quick else "similarity"
    import pandas as pd

    pd.DataFrame(rows).to_csv(args.out / f"{name}.csv", index=False)
    (args.out / f"{name}.json").write_text(json.dumps(dict(env=env, rows=rows), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
