"""benchmarks/cache_costs.py: recorded seconds of a cache, summed per kind and architecture."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cache_costs.py"


def _module():
    spec = importlib.util.spec_from_file_location("cache_costs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(cache: Path, kind: str, key: str, config: dict, value: dict, created: str) -> None:
    (cache / kind).mkdir(parents=True, exist_ok=True)
    torch.save({"kc_cache": 1, "value": value}, cache / kind / f"{key}.pt")
    meta = {"config": config, "created": created, "key": key, "kind": kind}
    (cache / kind / f"{key}.json").write_text(json.dumps(meta))


def test_costs_sum_per_kind_and_architecture(tmp_path, monkeypatch):
    monkeypatch.setenv("KC_CACHE", str(tmp_path))
    spec = {"spec": {"arch": "vgg16", "train_limit": 100}}
    _entry(tmp_path, "net", "vgg16-a", spec, {"report": {"seconds": 30.0}}, "2026-01-01T00:00")
    # the same config computed again by newer code: only the newest counts
    _entry(tmp_path, "net", "vgg16-b", spec, {"report": {"seconds": 10.0}}, "2026-01-02T00:00")
    other = {"spec": {"arch": "alexnet", "train_limit": 999}}
    _entry(tmp_path, "net", "alexnet-a", other, {"report": {"seconds": 5.0}}, "2026-01-01T00:00")
    # a pruned network counts under the architecture and images of its base
    pruned = {"base": "vgg16-b", "amount": 0.5}
    _entry(tmp_path, "pruned", "vgg16-p", pruned, {"report": {"seconds": 4.0}}, "2026-01-03T00:00")
    fit = {"seconds": 6.0, "steps": 60, "n_fit": 90, "n_holdout": 10}
    g_config = {"x": "vgg16-fashion-mnist-seed0", "fit": {"max_steps": 100}}
    _entry(tmp_path, "g", "g-1", g_config, {"fit_report": fit}, "2026-01-04T00:00")

    rows = _module().costs(train_limit=100, fit_limit=100)
    by = {(r["kind"], r["arch"]): r for r in rows}
    assert set(by) == {("net", "vgg16"), ("pruned", "vgg16"), ("g", "vgg16")}
    assert by[("net", "vgg16")]["seconds"] == 10.0 and by[("net", "vgg16")]["n"] == 1
    assert by[("g", "vgg16")]["steps"] == 60
    assert [r["kind"] for r in rows] == ["net", "g", "pruned"]  # largest first
    assert abs(sum(r["share"] for r in rows) - 1.0) < 1e-12
    other_fits = _module().costs(train_limit=100, fit_limit=50)
    assert other_fits and all(r["kind"] != "g" for r in other_fits)
