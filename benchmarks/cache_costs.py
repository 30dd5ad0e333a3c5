"""What a cache cost to fill: the seconds recorded by every trained network and fitted g in it.

Every network in the cache keeps its training report (``report["seconds"]``) and every g its
fit report (``fit_report["seconds"]``, ``["steps"]``, issue 8). Summed per kind and architecture,
they are the training and fitting part of a cold run of the notebooks that filled the cache: a
lower bound of its wall time (evaluation, feature extraction, kernels and the book are not in
it), without running it again. The seconds are those of the moment each entry was computed, so
they carry the load of that moment; the ``created`` range is printed beside them.

Filter to one profile's entries with ``--train-limit`` (a network's training images; 10000 under
``small``) and ``--fit-limit`` (g's fitting images plus its held-out slice; 2000 under
``small``).

Example:
    python benchmarks/cache_costs.py --train-limit 10000 --fit-limit 2000   # KC_CACHE or data/cache
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from kc.engine import cache

TRAINED = ("net", "pruned", "born-again")


def _entries(kind: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(metadata, value) of the readable entries of ``kind`` in :func:`kc.engine.cache.cache_root`
    (listed by :func:`kc.engine.cache.ls`); of entries with the same config (computed by different
    versions of the code), only the newest."""
    newest: dict[str, cache.CacheEntry] = {}
    for entry in cache.ls(kind):
        if entry.status != "ok":
            continue
        config = json.dumps(entry.config, sort_keys=True)
        if config not in newest or entry.created > newest[config].created:
            newest[config] = entry
    out = []
    for entry in newest.values():
        wrapped = cache.safe_load(entry.path)
        if isinstance(wrapped, dict) and "value" in wrapped:
            meta = {"config": entry.config, "created": entry.created, "key": entry.key}
            out.append((meta, wrapped["value"]))
    return out


def _find(config: Any, name: str) -> Any:
    """The first value of key ``name`` anywhere in a nested config."""
    if isinstance(config, dict):
        if name in config:
            return config[name]
        for value in config.values():
            found = _find(value, name)
            if found is not None:
                return found
    return None


def _root_config(config: dict[str, Any], configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The config of the network a derived entry (pruned, born-again) descends from: follow
    ``base`` keys (a teacher, an earlier generation) through ``configs`` (key -> config of the
    trained entries) down to a trained network."""
    for _ in range(16):
        base = config.get("base") or config.get("teacher")
        if not isinstance(base, str) or base not in configs:
            return config
        config = configs[base]
    return config


def costs(train_limit: int | None, fit_limit: int | None) -> list[dict[str, Any]]:
    """For the cache at :func:`kc.engine.cache.cache_root` (``KC_CACHE``), one row per (kind,
    architecture): entries ``n``, recorded ``seconds`` and their
    ``share``, g's optimiser ``steps``, and the ``first`` and ``last`` creation times."""
    rows: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"n": 0, "seconds": 0.0, "steps": 0, "created": []}
    )
    configs: dict[str, dict[str, Any]] = {}
    for kind in TRAINED:  # every sidecar's config, listed once (the first kind wins a clash)
        for entry in cache.ls(kind):
            if entry.config is not None:
                configs.setdefault(entry.key, entry.config)
    for kind in TRAINED:
        for meta, value in _entries(kind):
            root = _root_config(meta["config"], configs)
            if train_limit is not None and _find(root, "train_limit") != train_limit:
                continue
            report = value.get("report") or {}
            row = rows[(kind, str(_find(root, "arch")))]
            row["n"] += 1
            row["seconds"] += float(report.get("seconds", 0.0))
            row["created"].append(meta["created"])
    for meta, value in _entries("g"):
        report = value.get("fit_report")
        if not report:
            continue
        if (
            fit_limit is not None
            and report.get("n_fit", 0) + report.get("n_holdout", 0) != fit_limit
        ):
            continue
        row = rows[("g", meta["config"]["x"].split("-")[0])]
        row["n"] += 1
        row["seconds"] += float(report["seconds"])
        row["steps"] += int(report["steps"])
        row["created"].append(meta["created"])
    total = sum(r["seconds"] for r in rows.values()) or 1.0
    return [
        {"kind": k, "arch": a, "n": r["n"], "seconds": r["seconds"], "steps": r["steps"],
         "share": r["seconds"] / total, "first": min(r["created"]), "last": max(r["created"])}
        for (k, a), r in sorted(rows.items(), key=lambda item: -item[1]["seconds"])
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="default: KC_CACHE or data/cache")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--fit-limit", type=int, default=None)
    args = parser.parse_args()
    if args.cache is not None:
        os.environ[cache.ENV_VAR] = str(args.cache)
    rows = costs(args.train_limit, args.fit_limit)
    print(
        f"{'kind':10s} {'arch':10s} {'n':>4s} {'seconds':>9s} {'share':>6s} {'s/step':>7s}  created"
    )
    for r in rows:
        per_step = f"{r['seconds'] / r['steps']:.3f}" if r["steps"] else ""
        print(
            f"{r['kind']:10s} {r['arch']:10s} {r['n']:4d} {r['seconds']:9.0f} {r['share']:6.1%} "
            f"{per_step:>7s}  {r['first'][:16]} .. {r['last'][:16]}"
        )
    total = sum(r["seconds"] for r in rows)
    print(f"total {total:.0f} s = {total / 60:.1f} min of recorded training and fitting")


if __name__ == "__main__":
    main()
