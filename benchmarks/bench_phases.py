"""Where the time of a profile goes, and `make book` cold and warm, measured in one run.

Default (``make bench``): in a fresh temporary cache and output root, with phase timing on
(:mod:`kc.engine.phases`, inherited by every notebook's kernel):

1. cold: ``kc run --all`` (:func:`kc.run.runner.run_all`), then ``kc book``;
2. warm: the same again with nothing changed (every notebook is skipped), then ``kc book``.

Reported: the wall seconds of each step; the cold run split into phases (training per
architecture, the networks' and g's evaluation, feature extraction, g fits, fine-tuning of heads,
building data sets, the book build, and ``other``: kernels, imports, tables, figures), each in
seconds and as a share of the cold total; each notebook's wall time and share. Beside every
figure the 1-minute load average (``os.getloadavg()``) when it was measured: absolute seconds
depend on the machine's business, shares measured in one run travel better.

``--pipeline`` times a quick sample in this process instead: one network per architecture, its
features at its last layer, one g fit from seed 0 to seed 1, with the settings the Table 1
notebook resolves for the profile (its study object, :class:`kc.studies.instability.run.InstabilityStudy`).

The book is built into the repository's ``_build`` from the temporary outputs (``--no-book``
leaves it alone). Results: stdout and ``<out>/phases_<profile>.{csv,json}``.

Example:
    python benchmarks/bench_phases.py --profile smoke
    python benchmarks/bench_phases.py --pipeline --archs alexnet --g-arch alexnet --profile smoke
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from kc.engine import cache, phases, zoo
from kc.engine import experiments as ex
from kc.run.runner import (
    RunSummary,
    declared_parameters,
    load_profile,
    notebook_parameters,
    parse_value,
    project_root,
    read_record,
    resolve_notebook,
    run_all,
)
from kc.studies.instability.run import InstabilityStudy


@dataclass
class Row:
    """One figure: ``kind`` is ``"wall"``, ``"phase"`` or ``"notebook"``; ``share`` is
    ``seconds`` over the total (the cold run and book, or the pipeline); ``load`` the 1-minute
    load average when it was measured (a phase: the mean over its blocks; a notebook: when it
    finished, from its run record)."""

    name: str
    kind: str
    seconds: float
    share: float = float("nan")
    load: float = float("nan")
    calls: int = 1
    note: str = ""


def load1() -> float:
    """The 1-minute load average."""
    return round(os.getloadavg()[0], 2)


def timed(name: str, fn: Callable[[], Any], note: str = "") -> tuple[Row, Any]:
    """Run ``fn`` (its prints go to stderr: stdout stays a table); its wall-time row and value."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        value = fn()
    return Row(name, "wall", time.perf_counter() - start, load=load1(), note=note), value


def phase_rows(
    lines: Sequence[dict[str, Any]], total: float, load: float, jobs: int = 1
) -> list[Row]:
    """Self seconds per phase (training per architecture), then ``other`` = ``jobs`` x
    ``total`` - sum (measured under ``load``, the load of the total). With ``jobs`` workers the
    phases are worker-seconds, and their shares are of ``jobs`` x ``total``."""
    seconds: dict[str, float] = defaultdict(float)
    loads: dict[str, list[float]] = defaultdict(list)
    for line in lines:
        name = f"train {line['label']}" if line["phase"] == "train" else line["phase"]
        seconds[name] += line["self_seconds"]
        loads[name].append(line["load"])
    order = {p: i for i, p in enumerate(phases.PHASES)}
    names = sorted(
        seconds, key=lambda n: (order[n.split(" ")[0] if n.startswith("train ") else n], n)
    )
    rows = [
        Row(
            n,
            "phase",
            seconds[n],
            load=round(sum(loads[n]) / len(loads[n]), 2),
            calls=len(loads[n]),
        )
        for n in names
    ]
    note = "kernels, imports, tables, figures; everything not in a phase"
    if jobs > 1:
        note = f"{note}; and workers idle (of {jobs} x the wall time)"
    budget = jobs * total
    rows.append(Row("other", "phase", budget - sum(seconds.values()), load=load, note=note))
    for row in rows:
        row.share = row.seconds / budget if budget > 0 else float("nan")
    return rows


def build_book(output_root: Path, force: bool = False) -> int:
    """``kc book --output-root output_root`` in a fresh process, timed as the phase ``book``.

    ``force`` (the cold step) rebuilds every page: ``kc book`` is otherwise incremental against
    the repository's last ``_build``, and skipped when nothing changed (the warm step).
    """
    command = [sys.executable, "-m", "kc", "book", "--output-root", str(output_root)]
    with phases.phase("book"):
        return subprocess.call(command + (["--force"] if force else []))


def whole_profile(
    profile: str,
    parameters: dict[str, Any] | None,
    notebooks: Sequence[str] | None,
    workdir: Path,
    book: bool,
    jobs: int = 1,
) -> tuple[list[Row], dict[str, Any]]:
    """Cold then warm ``run_all`` (+ ``kc book``) in ``workdir`` on ``jobs`` workers; the rows
    and facts."""
    out = workdir / "outputs"
    walls: list[Row] = []
    facts: dict[str, Any] = {"summaries": {}, "book_exit": {}}
    for label in ("cold", "warm"):
        with phases.profiling(workdir / f"phases_{label}.jsonl"):
            row, summary = timed(
                f"{label} kc run --all",
                lambda: run_all(
                    profile, parameters=parameters, output_root=out, notebooks=notebooks, jobs=jobs
                ),
            )
            walls.append(row)
            facts["summaries"][label] = summary
            if book:
                book_step = functools.partial(build_book, out, force=label == "cold")
                row, code = timed(f"{label} kc book", book_step)
                row.note = "" if code == 0 else f"exit {code}"
                walls.append(row)
                facts["book_exit"][label] = code
        steps = [r for r in walls if r.name.startswith(label)]
        walls.append(Row(f"{label} total", "wall", sum(r.seconds for r in steps), load=load1()))
    cold, cold_load = next((r.seconds, r.load) for r in walls if r.name == "cold total")
    for row in walls:
        row.share = row.seconds / cold if cold > 0 else float("nan")
    lines = phases.read(workdir / "phases_cold.jsonl")
    rows = walls + phase_rows(lines, cold, cold_load, jobs)
    for result in facts["summaries"]["cold"].results:
        load = read_record(out, result.name).get("load", float("nan"))  # when it finished
        share = result.seconds / cold if cold > 0 else float("nan")
        rows.append(Row(result.name, "notebook", result.seconds, share, load, note=result.status))
    warm = [line for line in phases.read(workdir / "phases_warm.jsonl") if line["phase"] != "book"]
    facts["warm_phases"] = len(warm)  # 0 when every notebook was skipped
    return rows, facts


def pipeline(params: dict[str, Any], archs: Sequence[str], g_arch: str) -> list[Row]:
    """One network per arch, its last-layer features, one g fit of ``g_arch`` (seed 0 -> 1)."""
    layers = {a: [zoo.layers(a)[-1]] for a in dict.fromkeys([*archs, g_arch])}
    study = InstabilityStudy.from_params({**params, "LAYERS": layers, "SEEDS": [0, 1]})

    def run() -> None:
        for arch in archs:
            ex.get_features(
                study.spec(arch, 0),
                layers[arch][0],
                limit=study.g.fit_limit,
                device=study.device,
                progress=False,
            )
        study.fit(study.spec(g_arch, 0), study.spec(g_arch, 1), layers[g_arch][0])

    with (
        tempfile.TemporaryDirectory(prefix="kc-phases-") as tmp,
        phases.profiling(f"{tmp}/p.jsonl"),
    ):
        wall, _ = timed("pipeline", run, note=f"{', '.join(archs)}; g fit of {g_arch}")
        lines = phases.read(f"{tmp}/p.jsonl")
    wall.share = 1.0
    return [wall, *phase_rows(lines, wall.seconds, wall.load)]


def table(rows: Sequence[Row]) -> str:
    """A fixed-width text table of ``rows``."""
    width = max(len(r.name) for r in rows)
    head = f"{'step':<{width}}  {'kind':<8}  {'seconds':>9}  {'share':>6}  {'load':>5}  calls"
    lines = [head]
    for r in rows:
        share = f"{100 * r.share:5.1f}%" if r.share == r.share else f"{'':>6}"
        load = f"{r.load:5.2f}" if r.load == r.load else f"{'':>5}"
        lines.append(
            f"{r.name:<{width}}  {r.kind:<8}  {r.seconds:9.1f}  {share}  {load}  {r.calls:5d}"
            + (f"  {r.note}" if r.note else "")
        )
    return "\n".join(lines)


def write(rows: Sequence[Row], meta: dict[str, Any], stem: Path) -> list[Path]:
    """``<stem>.csv`` (one row per figure, the profile and machine as columns), ``<stem>.json``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    facts = {k: meta[k] for k in ("profile", "mode", "torch_threads", "cpu_count")}
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
    parser.add_argument("--notebooks", nargs="+", help="names or paths instead of the manifest")
    parser.add_argument("--no-book", action="store_true", help="do not time `kc book`")
    parser.add_argument("--pipeline", action="store_true", help="the quick in-process sample")
    parser.add_argument("--archs", nargs="+", default=list(zoo.ARCHS), choices=zoo.ARCHS)
    parser.add_argument("--g-arch", default="vgg16", choices=zoo.ARCHS, help="arch of the g fit")
    parser.add_argument("--cache", type=Path, help="use this cache instead of a fresh temporary")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="single-threaded workers of `kc run --all -j N` (default 1: serial); the phases of "
        "N workers are summed over them, and their shares are of N x the wall time",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=project_root() / "outputs" / "benchmarks",
        help="folder of phases_<profile>.csv/.json (default <repo>/outputs/benchmarks)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 1 when a notebook failed or the book did not build, else 0."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[kc] %(message)s")  # the progress lines
    logging.getLogger("papermill").setLevel(logging.WARNING)
    profile = load_profile(args.profile)
    overrides: dict[str, Any] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or name not in profile:
            raise SystemExit(f"--set wants NAME=VALUE with NAME in the profile, got {item!r}")
        overrides[name] = parse_value(value)
    meta: dict[str, Any] = {
        "profile": profile["PROFILE"],
        "mode": "pipeline" if args.pipeline else "whole profile",
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "overrides": overrides,
        "cache": f"given: {args.cache}" if args.cache else "fresh temporary",
        "jobs": args.jobs,
        "load_before": os.getloadavg(),
    }
    code = 0
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kc-bench-")))
        stack.enter_context(phases.environ({cache.ENV_VAR: str(args.cache or tmp / "cache")}))
        if args.pipeline:
            table1 = resolve_notebook("table1_instability")
            injected = notebook_parameters(table1, args.profile, overrides, tmp, strict=False)
            params = {**declared_parameters(table1), **injected}  # what the notebook sees
            rows = pipeline(params, args.archs, args.g_arch)
        else:
            rows, facts = whole_profile(
                args.profile, overrides or None, args.notebooks, tmp, not args.no_book, args.jobs
            )
            summaries: dict[str, RunSummary] = facts["summaries"]
            failed = [s.returncode for s in summaries.values()]
            code = max(failed + [int(c != 0) for c in facts["book_exit"].values()])
            meta["warm_skipped"] = sum(r.status == "skipped" for r in summaries["warm"].results)
            meta["warm_phases"] = facts["warm_phases"]
    meta["load_after"] = os.getloadavg()
    suffix = f"_j{args.jobs}" if args.jobs != 1 else ""
    paths = write(rows, meta, args.out / f"phases_{profile['PROFILE']}{suffix}")
    print(
        f"profile {meta['profile']} ({meta['mode']}), torch {meta['torch']}, "
        f"{meta['torch_threads']} threads, {meta['cpu_count']} CPUs, cache {meta['cache']}; "
        "load (1, 5, 15 min) before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
            *meta["load_before"], *meta["load_after"]
        )
    )
    print(table(rows))
    print("share: of the cold run + book (--pipeline: of its wall time); phases: self time")
    if not args.pipeline:
        for label, summary in summaries.items():
            print(f"kc run --all, {label}:\n{summary}")
        print(f"warm: {meta['warm_skipped']} notebooks skipped, {meta['warm_phases']} phases ran")
    print("wrote " + ", ".join(str(path) for path in paths))
    return code


if __name__ == "__main__":
    sys.exit(main())
