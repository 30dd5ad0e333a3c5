"""Time each phase of the experiment pipeline of a profile, in one run on this machine.

Phases, all run in a fresh temporary cache (``KC_CACHE``) unless ``--cache DIR`` is given:

1. ``data load``: :func:`kc.data.make_task` of the profile's ``DATASET``, train (``TRAIN_LIMIT``
   images) and test split, as :func:`kc.experiments.get_net` loads them;
2. ``train <arch>``: :func:`kc.experiments.get_net` of seed 0 for every architecture;
3. ``features <arch>``: :func:`kc.experiments.get_features` of ``FIT_LIMIT`` training images at
   the arch's last feature layer (:func:`kc.zoo.layers`);
4. ``g fit <arch>``: :func:`kc.experiments.get_consistency` from seed 0 to seed 1 of one arch.
   The seed-1 network and all four feature sets it needs are computed first (``g setup``,
   reported but not a phase), so the phase is fitting g plus evaluating it on cached features.

Every phase is reported in seconds and as ratios to the data-load time and to the smallest
phase: absolute seconds depend on the machine and its load, ratios measured in one run travel
better. ``--whole-profile`` also times :func:`kc.runner.run_all` of the profile twice, cold
then warm, in a fresh cache and a temporary output root.

Example:
    python benchmarks/bench_phases.py --profile smoke
    python benchmarks/bench_phases.py --archs alexnet resnet18 --set TRAIN_LIMIT=2000
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from kc import cache, data, zoo
from kc.experiments import (
    DATA_SEED,
    NetSpec,
    TrainedNet,
    get_consistency,
    get_features,
    get_net,
)
from kc.runner import RunSummary, load_profile, parse_value, project_root, run_all


@dataclass
class Row:
    """One timed step: ``kind`` is ``"phase"``, ``"setup"`` or ``"whole"``."""

    name: str
    kind: str
    seconds: float
    x_data: float = float("nan")
    x_min: float = float("nan")
    note: str = ""


@contextlib.contextmanager
def env_var(name: str, value: str) -> Iterator[None]:
    """Set ``os.environ[name]`` for the duration of the block, then restore it."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of ``fn()``; kc's progress prints go to stderr to keep stdout a table."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        fn()
    return time.perf_counter() - start


def net_spec(p: dict[str, Any], arch: str, seed: int = 0) -> NetSpec:
    """The NetSpec the notebooks build from profile ``p`` for ``arch``."""
    return NetSpec(
        arch,
        datasets=(p["DATASET"],),
        task="all",
        seed=seed,
        epochs=p["EPOCHS"],
        width=p["WIDTH"],
        input_size=p["INPUT_SIZE"],
        train_limit=p["TRAIN_LIMIT"],
        optimizer=p["OPTIMIZER"],
        lr=p["LR"],
        batch_size=p["BATCH_SIZE"],
    )


def layer_of(arch: str) -> str:
    """The feature layer benchmarked for ``arch``: its last (deepest) paper layer."""
    return zoo.layers(arch)[-1]


def time_phases(p: dict[str, Any], archs: Sequence[str], g_arch: str, device: str) -> list[Row]:
    """Time data load, training, feature extraction and one g fit under profile ``p``.

    Uses whatever cache ``KC_CACHE`` names; call it with a fresh one to time cold phases.
    """
    rows: list[Row] = []

    def load_data() -> None:
        for split, limit in (("train", p["TRAIN_LIMIT"]), ("test", None)):
            data.make_task(
                "all", p["DATASET"], split, image_size=p["INPUT_SIZE"], limit=limit, seed=DATA_SEED
            )

    rows.append(Row("data load", "phase", timed(load_data)))
    kw = device_kw(device)
    nets: dict[str, TrainedNet] = {}
    for arch in archs:
        seconds = timed(lambda a=arch: nets.__setitem__(a, get_net(net_spec(p, a), **kw)))
        fit_s = nets[arch].train_seconds  # kc.train's own clock: optimisation only
        note = f"{fit_s:.1f} s optimising, {seconds - fit_s:.1f} s test eval + rest"
        rows.append(Row(f"train {arch}", "phase", seconds, note=note))
    fit = {"split": "train", "limit": p["FIT_LIMIT"], **kw}
    for arch in archs:
        seconds = timed(lambda a=arch: get_features(nets[a], layer_of(a), **fit))
        rows.append(Row(f"features {arch}", "phase", seconds))

    layer = layer_of(g_arch)
    pair: list[TrainedNet] = []

    def setup() -> None:
        pair.append(nets[g_arch] if g_arch in nets else get_net(net_spec(p, g_arch), **kw))
        pair.append(get_net(net_spec(p, g_arch, seed=1), **kw))
        for net in pair:
            for split, limit in (("train", p["FIT_LIMIT"]), ("test", p["TEST_LIMIT"])):
                get_features(net, layer, split=split, limit=limit, **kw)

    note = "seed-1 net + train/test features of both, for the g fit"
    rows.append(Row(f"g setup {g_arch}", "setup", timed(setup), note=note))
    lam = p.get("LAMBDA_ALEXNET", p["LAMBDA"]) if g_arch == "alexnet" else p["LAMBDA"]

    def fit_g() -> None:
        result = get_consistency(
            pair[0],
            layer,
            pair[1],
            layer,
            order=p["ORDER"],
            lam=lam,
            fit_limit=p["FIT_LIMIT"],
            test_limit=p["TEST_LIMIT"],
            g_epochs=p["G_EPOCHS"],
            g_lr=p["G_LR"],
            g_batch_size=p["G_BATCH_SIZE"],
            **kw,
        )
        notes.append(f"{g_arch}/{layer} seed 0 -> 1, instability {result.instability:.3f}")

    notes: list[str] = []
    rows.append(Row(f"g fit {g_arch}", "phase", timed(fit_g)))
    rows[-1].note = notes[0]
    return rows


def device_kw(device: str) -> dict[str, Any]:
    """Keyword arguments shared by every cached call: the device, no progress bars."""
    return {"device": device, "progress": False}


def time_whole_profile(
    profile: str, parameters: dict[str, Any] | None
) -> tuple[list[Row], list[RunSummary]]:
    """``run_all(profile)`` cold then warm in one fresh cache; their rows and summaries."""
    rows, summaries = [], []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kc-bench-")))
        stack.enter_context(env_var(cache.ENV_VAR, str(tmp / "cache")))
        for label in ("cold", "warm"):
            run = functools.partial(
                run_all, profile, parameters=parameters, output_root=tmp / f"outputs-{label}"
            )
            seconds = timed(lambda run=run: summaries.append(run()))
            rows.append(Row(f"run_all {label}", "whole", seconds))
    return rows, summaries


def add_ratios(rows: list[Row]) -> None:
    """Fill ``x_data`` (seconds / data-load seconds) and ``x_min`` (/ smallest phase)."""
    phases = [r.seconds for r in rows if r.kind == "phase"]
    data_s = next(r.seconds for r in rows if r.name == "data load")
    smallest = min(phases)
    for r in rows:
        r.x_data = r.seconds / data_s if data_s > 0 else float("nan")
        r.x_min = r.seconds / smallest if smallest > 0 else float("nan")


def machine() -> dict[str, Any]:
    """Facts that explain the numbers: threads, CPUs, torch version."""
    return {
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }


def table(rows: Sequence[Row]) -> str:
    """A fixed-width text table of ``rows``."""
    width = max(len(r.name) for r in rows)
    lines = [f"{'phase':<{width}}  {'kind':<5}  {'seconds':>9}  {'x data':>8}  {'x min':>8}"]
    lines += [
        f"{r.name:<{width}}  {r.kind:<5}  {r.seconds:9.2f}  {r.x_data:8.2f}  {r.x_min:8.2f}"
        + (f"  {r.note}" if r.note else "")
        for r in rows
    ]
    return "\n".join(lines)


def write(rows: Sequence[Row], meta: dict[str, Any], stem: Path) -> list[Path]:
    """``<stem>.csv`` (one row per step, machine facts as columns) and ``<stem>.json``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    facts = {k: meta[k] for k in ("profile", *machine())}
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*asdict(rows[0]), *facts])
        writer.writeheader()
        writer.writerows({**asdict(r), **facts} for r in rows)
    json_path.write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    return [csv_path, json_path]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see ``--help``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="small", help="profile name or YAML (default small)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a profile parameter, e.g. --set TRAIN_LIMIT=2000 (repeatable)",
    )
    parser.add_argument("--archs", nargs="+", default=list(zoo.ARCHS), choices=zoo.ARCHS)
    parser.add_argument("--g-arch", default="vgg16", choices=zoo.ARCHS, help="arch of the g fit")
    parser.add_argument("--device", default=None, help="default: the profile's DEVICE")
    parser.add_argument("--cache", type=Path, help="use this cache instead of a fresh temporary")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--whole-profile",
        action="store_true",
        help="also time kc.runner.run_all(profile) cold then warm (a fresh cache)",
    )
    mode.add_argument("--phases-only", action="store_true", help="only the phases (default)")
    parser.add_argument(
        "--out",
        type=Path,
        default=project_root() / "outputs" / "benchmarks",
        help="folder of phases_<profile>.csv/.json (default <repo>/outputs/benchmarks)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns 1 when a notebook of ``--whole-profile`` failed, else 0."""
    args = parse_args(argv)
    p = load_profile(args.profile)
    overrides = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or name not in p:
            raise SystemExit(f"--set wants NAME=VALUE with NAME in the profile, got {item!r}")
        overrides[name] = parse_value(value)
    p.update(overrides)
    device = args.device or p.get("DEVICE", "auto")

    with contextlib.ExitStack() as stack:
        root = args.cache or stack.enter_context(tempfile.TemporaryDirectory(prefix="kc-bench-"))
        stack.enter_context(env_var(cache.ENV_VAR, str(root)))
        rows = time_phases(p, args.archs, args.g_arch, device)
    summaries: list[RunSummary] = []
    if args.whole_profile:
        whole, summaries = time_whole_profile(args.profile, overrides or None)
        rows += whole
    add_ratios(rows)

    meta: dict[str, Any] = {
        "profile": p["PROFILE"],
        **machine(),
        "device": device,
        "cache": "given: " + str(args.cache) if args.cache else "fresh temporary",
        "overrides": overrides,
        "archs": args.archs,
        "layers": {a: layer_of(a) for a in {*args.archs, args.g_arch}},
        "g_arch": args.g_arch,
    }
    if args.whole_profile:
        cold, warm = (r.seconds for r in rows if r.kind == "whole")
        meta["run_all_cold_over_warm"] = cold / warm if warm > 0 else float("nan")
    paths = write(rows, meta, args.out / f"phases_{p['PROFILE']}")

    print(
        f"profile {p['PROFILE']}, device {device}, torch {meta['torch']}, "
        f"{meta['torch_threads']} threads, {meta['cpu_count']} CPUs, cache {meta['cache']}"
    )
    print(table(rows))
    print("x data: seconds / data-load seconds; x min: seconds / smallest phase (same run)")
    if args.whole_profile:
        print(f"run_all cold / warm = {meta['run_all_cold_over_warm']:.2f}")
        for label, summary in zip(("cold", "warm"), summaries, strict=True):
            print(f"run_all {label}:\n{summary}")
    print("wrote " + ", ".join(str(path) for path in paths))
    return max((s.returncode for s in summaries), default=0)


if __name__ == "__main__":
    sys.exit(main())
