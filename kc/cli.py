"""The ``kc`` command: run notebooks, list them, manage the cache, build the book.

Examples::

    kc list
    kc run table1_instability --profile smoke -p SEEDS "[0, 1]"
    kc run --all --profile small
    kc run --all --profile paper --executor slurm --partition gpu --gpus 1
    kc cache du
    kc cache verify --delete
    kc book
    kc book --toc
    kc status
    kc compare outputs/reproduce
    kc verify fig2_architecture

``main(argv)`` returns the exit code, so the command is testable without a subprocess.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from kc.run import runner

__all__ = ["build_parser", "main"]

log = logging.getLogger("kc")

# ---------------------------------------------------------------------------------------------
# kc run


def _parameters(pairs: Sequence[Sequence[str]] | None) -> dict[str, Any]:
    return {name: runner.parse_value(value) for name, value in pairs or []}


def _executor_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, key in (
        ("timeout_min", "timeout_min"),
        ("gpus", "gpus_per_node"),
        ("cpus", "cpus_per_task"),
        ("mem_gb", "mem_gb"),
        ("partition", "partition"),
    ):
        value = getattr(args, name)
        if value is not None:
            options[key] = value
    return options


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _cmd_run(args: argparse.Namespace) -> int:
    if args.all == (args.notebook is not None):
        print("kc run: give a NOTEBOOK or --all (not both)", file=sys.stderr)
        return 2
    parameters = _parameters(args.param)
    if args.device is not None:
        parameters["DEVICE"] = args.device
    if args.output_root is None:
        from kc.run.results import default_output_root

        args.output_root = str(default_output_root(args.profile))
    options = _executor_options(args)
    if args.dry_run:
        names = [nb.name for nb in runner.MANIFEST] if args.all else [args.notebook]
        if args.all:
            runner.check_explicit(parameters, runner.known_parameters())
        for name in names:
            try:
                path = runner.resolve_notebook(name)
            except FileNotFoundError as error:
                print(f"# {name}: {error}")
                continue
            values = runner.notebook_parameters(
                path, args.profile, parameters, args.output_root, strict=not args.all
            )
            print(f"# {name} ({path})")
            print(yaml.safe_dump(values, sort_keys=False, default_flow_style=None), end="")
        return 0
    if args.all:
        summary = runner.run_all(
            args.profile,
            parameters=parameters,
            output_root=args.output_root,
            executor=args.executor,
            executor_options=options,
            kernel_name=args.kernel,
            log_output=args.log_output,
            force=args.force,
            jobs=args.jobs,
        )
        print(summary)
        return summary.returncode
    try:
        result = runner.execute(
            args.notebook,
            profile=args.profile,
            parameters=parameters,
            output_root=args.output_root,
            kernel_name=args.kernel,
            log_output=args.log_output,
            executor=args.executor,
            executor_options=options,
            force=args.force,
            jobs=args.jobs,
        )
    except (ValueError, FileNotFoundError):
        raise
    except Exception as error:  # noqa: BLE001 - a failed notebook is an exit code, not a crash
        log.debug("%s", traceback.format_exc())
        first = (str(error).strip() or type(error).__name__).splitlines()[-1]
        name = Path(str(args.notebook)).stem
        record = runner.read_record(Path(args.output_root), name)
        copy = Path(args.output_root) / (record.get("failed_notebook") or "notebooks")
        print(f"kc run: {name} failed: {type(error).__name__}: {first}", file=sys.stderr)
        for line in record.get("warnings") or []:
            print(f"warning: {line}", file=sys.stderr)
        print(f"the executed copy (with the traceback) is {copy}", file=sys.stderr)
        return 1
    if result.status == "skipped":
        print(f"{result.name}: skipped: {result.note} (--force re-runs it)")
    for line in result.warnings:
        print(f"warning: {line}")
    print(result.executed)
    return 0


# ---------------------------------------------------------------------------------------------
# kc list


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for nb in runner.MANIFEST:
        exists = (runner.notebooks_dir() / f"{nb.name}.ipynb").is_file()
        state = "ready" if exists else ("planned" if nb.planned else "missing")
        rows.append([nb.name, nb.paper_item, ", ".join(nb.outputs), state])
    print(_table(rows, ["notebook", "paper item", "output files", "state"]))
    print(
        f"\noutputs go to <output root>/<notebook>/ ; profiles: "
        f"{', '.join(runner.available_profiles())}"
    )
    return 0


# ---------------------------------------------------------------------------------------------
# kc cache


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def _mark(status: str) -> str:
    return "" if status == "ok" else status.upper()


def _cmd_cache(args: argparse.Namespace) -> int:
    from kc.engine import cache

    root = cache.cache_root()
    if args.cache_command == "ls":
        entries = cache.ls(args.kind)
        rows = [
            [e.kind, e.key, _size(e.bytes), e.created or "", e.label or "", _mark(e.status)]
            for e in entries
        ]
        if rows:
            print(_table(rows, ["kind", "key", "size", "created", "label", "state"]))
        bad = sum(e.status != "ok" for e in entries)
        note = f"; {bad} marked bad (`kc cache verify --delete` removes them)" if bad else ""
        print(f"{len(rows)} entries in {root}{note}")
    elif args.cache_command == "verify":
        bad = cache.verify(args.kind, delete=args.delete)
        for entry, reason in bad:
            print(f"{'deleted' if args.delete else 'BAD'}  {entry.kind}/{entry.key}: {reason}")
        total = len(cache.ls(args.kind)) + (len(bad) if args.delete else 0)
        print(f"{total - len(bad)} of {total} entries load in {root}")
        if bad and not args.delete:
            print("run `kc cache verify --delete` to delete the bad ones (recomputed when needed)")
            return 1
    elif args.cache_command == "du":
        if args.kind is None:
            for kind, size in sorted(cache.du_by_kind().items()):
                print(f"{_size(size):>10}  {kind}")
        print(f"{_size(cache.du(args.kind)):>10}  total ({args.kind or 'all kinds'}) in {root}")
    elif args.cache_command == "rekey":
        pairs = [p.split(":") for p in args.versions]
        if any(len(p) != 2 or not all(p) for p in pairs):
            print(f"kc cache rekey: give OLD:NEW pairs of code versions, got {args.versions}",
                  file=sys.stderr)  # fmt: skip
            return 2
        versions = dict(pairs)
        moved = cache.rekey(versions, args.kind, dry_run=not args.yes, keep=args.keep)
        verb = ("linked" if args.keep else "moved") if args.yes else "would move"
        for old, new in moved:
            print(f"{verb} {old.parent.name}/{old.stem} -> {new.stem}")
        print(f"{verb} {len(moved)} entries of code versions {', '.join(versions)} in {root}"
              + ("" if args.yes or not moved else "; pass --yes"))  # fmt: skip
    else:
        what = f"kind {args.kind!r}" if args.kind else "everything"
        if not args.yes:
            if not sys.stdin.isatty():
                print(f"kc cache clean: would delete {what} in {root}; pass --yes", file=sys.stderr)
                return 1
            if input(f"delete {what} in {root}? [y/N] ").strip().lower() not in ("y", "yes"):
                return 1
        print(f"freed {_size(cache.clean(args.kind))} ({what}) in {root}")
    return 0


# ---------------------------------------------------------------------------------------------
# kc book


def _cmd_book(args: argparse.Namespace) -> int:
    from kc.book import pages as book
    from kc.run.results import default_output_root

    return book.book_command(
        args.output_root or default_output_root(args.profile),
        only_toc=args.toc,
        no_build=args.no_build,
        strict=not args.no_strict,
        force=args.force,
    )


# ---------------------------------------------------------------------------------------------
# parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kc",
        description="Knowledge consistency (Liang et al., ICLR 2020): run the notebooks that "
        "reproduce the paper and build the book.",
        epilog="subcommands: run, list, status, compare, verify, cache, book. "
        "`kc SUBCOMMAND --help` for details.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more log messages")
    parser.add_argument("--version", action="version", version=f"kc {_version()}")
    sub = parser.add_subparsers(
        dest="command", metavar="{run,list,status,compare,verify,cache,book}"
    )

    run = sub.add_parser(
        "run",
        help="execute a notebook (or all) with a profile",
        description="Execute notebooks with papermill. The profile's parameters are filtered to "
        "those the notebook declares; PROFILE and OUTPUT_DIR are added; -p values come last. "
        "Every value is checked against the notebook's default before anything runs. A notebook "
        "unchanged since its last successful run (same source, parameters, kc code and paper "
        "data; all outputs present) is skipped; --force re-runs it. Ctrl-C keeps the last good "
        "executed notebook; run the same command again to resume.",
    )
    run.add_argument("notebook", nargs="?", help="manifest name (see `kc list`) or .ipynb path")
    run.add_argument("--all", action="store_true", help="run every notebook of the manifest")
    run.add_argument(
        "--profile", default="small", help="smoke, small, paper, or a YAML file (default: small)"
    )
    run.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="set a parameter; VALUE is read as YAML, e.g. -p SEEDS '[0, 1]'",
    )
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], help="sets DEVICE")
    run.add_argument(
        "--executor",
        choices=list(runner.EXECUTORS),
        default="inprocess",
        help="inprocess (default), or a submitit job per notebook: local or slurm",
    )
    run.add_argument(
        "--output-root",
        default=None,
        help="root of executed notebooks, CSV and figures (default: the profile's results "
        "folder book/published/<profile>, of which the small profile's is committed; "
        "outputs for a profile file)",
    )
    run.add_argument("--kernel", default="python3", help="Jupyter kernel (default: python3)")
    run.add_argument("--log-output", action="store_true", help="stream cell output to the log")
    run.add_argument(
        "--force", action="store_true", help="re-run notebooks unchanged since their last run"
    )
    run.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="workers, one thread each: the cache work the notebooks declare (networks, fits "
        "of g) is computed first on N local submitit jobs (Slurm jobs with --executor slurm), "
        "then with --all the notebooks run N at a time; an entry two workers need is computed "
        f"once. Default: the cores ({os.cpu_count() or 1}); -j 1: one after the other, here",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the parameters that would be injected and stop",
    )
    jobs = run.add_argument_group("submitit jobs (--executor local/slurm)")
    jobs.add_argument("--timeout-min", type=int, help="time limit per notebook in minutes")
    jobs.add_argument("--gpus", type=int, help="GPUs per job")
    jobs.add_argument("--cpus", type=int, help="CPUs per job")
    jobs.add_argument("--mem-gb", type=float, help="memory per job in GB")
    jobs.add_argument("--partition", help="Slurm partition")
    run.set_defaults(func=_cmd_run)

    lst = sub.add_parser(
        "list",
        help="list the notebooks, the paper items and their outputs",
        description="The manifest: notebook, paper item, output files, state.",
    )
    lst.set_defaults(func=_cmd_list)

    cache = sub.add_parser(
        "cache",
        help="inspect or clean the on-disk cache",
        description="The content-addressed cache of trained networks, features and fitted g "
        "(kc.engine.cache): $KC_CACHE, else data/cache. Files are created with your umask; for a cache "
        "shared by a group use `umask 002` and a group-owned folder with `chmod g+s`.",
    )
    cache_sub = cache.add_subparsers(
        dest="cache_command", metavar="{ls,du,verify,clean,rekey}", required=True
    )
    for name, text in (
        (
            "ls",
            "list cached objects (UNREADABLE / NO SIDECAR marks entries that will be recomputed)",
        ),
        ("du", "disk usage"),
        ("verify", "load every entry and report the bad ones (exit 1 if any)"),
        ("clean", "delete cached objects"),
        (
            "rekey",
            "store the entries of code version OLD under NEW (see the sidecars' `version`; the "
            "keys their configs name follow), for a change of code known to compute the same "
            "thing; without --yes only says what it would move",
        ),
    ):
        p = cache_sub.add_parser(name, help=text, description=text)
        p.add_argument("--kind", help="only this kind (e.g. a folder name under the cache)")
        if name in ("clean", "rekey"):
            p.add_argument("-y", "--yes", action="store_true", help="do not ask" if name ==
                           "clean" else "move them")  # fmt: skip
        if name == "rekey":
            p.add_argument("--keep", action="store_true",
                           help="keep the old entries too (hard links): both versions find them")  # fmt: skip
            p.add_argument("versions", nargs="+", metavar="OLD:NEW",
                           help="code versions: the one entries are stored under, the one to "
                           "store them under (the sidecars' `version`)")  # fmt: skip
        if name == "verify":
            p.add_argument("--delete", action="store_true", help="delete the bad entries")
    cache.set_defaults(func=_cmd_cache)

    book = sub.add_parser(
        "book",
        help="build the book from the executed notebooks",
        description="Generate book/results (the executed notebooks, or placeholders for the "
        "missing ones; the claims scorecard; the run summary; the API reference) and run "
        "`jupyter-book build . -W -n --keep-going`. `kc book --toc` regenerates _toc.yml from "
        "the manifest (kc.run.runner.MANIFEST).",
    )
    book.add_argument(
        "--output-root", default=None, help="where `kc run` wrote (default: book/published/<profile>)"
    )
    book.add_argument("--profile", default="small", help="whose results (default: small)")
    book.add_argument("--no-build", action="store_true", help="only prepare book/results")
    book.add_argument("--no-strict", action="store_true", help="build without -W -n")
    book.add_argument(
        "--force",
        action="store_true",
        help="rebuild every page, even when nothing changed since the last successful build",
    )
    book.add_argument(
        "--toc", action="store_true", help="only write _toc.yml from the manifest, then stop"
    )
    book.set_defaults(func=_cmd_book)
    _results_parsers(sub)
    return parser


def _results_parsers(sub: Any) -> None:
    """``kc status``, ``kc compare`` and ``kc verify``."""
    status = sub.add_parser(
        "status",
        help="fresh, stale or missing: every notebook's results against the code of now",
        description="One line per notebook of the manifest: fresh (its results stand for the "
        "notebook, parameters, kc code and paper data of now), stale (naming what changed "
        "since its results were computed) or missing, with the recorded wall time.",
    )
    status.add_argument("--profile", default="small", help="whose results (default: small)")
    status.add_argument("--output-root", default=None, help="default: book/published/<profile>")
    status.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"))
    status.add_argument(
        "--check", action="store_true", help="exit 1 unless every notebook is fresh"
    )
    status.set_defaults(func=_cmd_status)

    compare = sub.add_parser(
        "compare",
        help="what differs between two result trees (default reference: the committed results)",
        description="Per notebook: the largest absolute difference of every numeric CSV column "
        "that differs (rows by position), differing text cells, and every verdict that changed. "
        "Timing columns (seconds, from_cache, ...) are shown but never count. Exit 1 when "
        "anything differs.",
    )
    compare.add_argument("new", help="the output root of the new run (e.g. outputs/reproduce)")
    compare.add_argument(
        "reference", nargs="?", default=None, help="default: book/published/<profile>"
    )
    compare.add_argument("--profile", default="small", help="the default reference's profile")
    compare.add_argument("--notebook", action="append", help="only these notebooks")
    compare.add_argument("--tolerance", type=float, default=0.0, help="ignore smaller gaps")
    compare.add_argument("-a", "--all-columns", action="store_true", help="list equal columns too")
    compare.set_defaults(func=_cmd_compare)

    verify = sub.add_parser(
        "verify",
        help="re-run one notebook into a scratch folder and compare it with the committed results",
        description="Execute NOTEBOOK (always, with the current cache) into "
        "<output-root>/<profile>, then compare its CSVs and verdicts with the committed "
        "results, as `kc compare`. Exit 1 when anything differs.",
    )
    verify.add_argument("notebook", help="manifest name")
    verify.add_argument("--profile", default="small")
    verify.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"))
    verify.add_argument("--output-root", default="outputs/verify", help="default: outputs/verify")
    verify.add_argument("--reference", default=None, help="default: book/published/<profile>")
    verify.add_argument("--tolerance", type=float, default=0.0)
    verify.set_defaults(func=_cmd_verify)


def _cmd_status(args: argparse.Namespace) -> int:
    from kc.run import results

    rows = results.status(args.output_root, args.profile, parameters=_parameters(args.param))
    root = args.output_root or results.default_output_root(args.profile)
    print(f"results of profile {args.profile} in {root}")
    print(results.status_table(rows))
    return 1 if args.check and any(r.state != "fresh" for r in rows) else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from kc.run import compare, results

    reference = args.reference or results.default_output_root(args.profile)
    for root in (args.new, reference):
        if not Path(root).is_dir():
            raise FileNotFoundError(f"no result tree at {root}")
    diffs = compare.compare_trees(args.new, reference, args.notebook)
    print(f"{args.new} against {reference}")
    print(compare.report(diffs, args.tolerance, verbose=args.all_columns))
    return 1 if compare.summary_counts(diffs, args.tolerance)["differ"] else 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from kc.run import compare, results

    name = Path(args.notebook).stem
    reference = Path(args.reference or results.default_output_root(args.profile))
    if not (reference / name).is_dir():
        raise FileNotFoundError(f"no committed results of {name} in {reference}")
    scratch = Path(args.output_root) / str(args.profile)
    runner.execute(
        args.notebook,
        profile=args.profile,
        parameters=_parameters(args.param) or None,
        output_root=scratch,
        force=True,
    )
    diffs = [compare.compare_notebook(name, scratch, reference)]
    print(f"{scratch} against {reference}")
    print(compare.report(diffs, args.tolerance))
    return 1 if compare.summary_counts(diffs, args.tolerance)["differ"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kc`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="[kc] %(message)s"
    )
    if not getattr(args, "log_output", False):
        logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as error:
        print(f"kc {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(_interrupted(args, interrupt), file=sys.stderr)
        return 130


def _interrupted(args: argparse.Namespace, interrupt: KeyboardInterrupt) -> str:
    """The one line printed on Ctrl-C."""
    if isinstance(interrupt, runner.NotebookInterrupted):
        kept = f"; its partial copy is {interrupt.failed_copy}" if interrupt.failed_copy else ""
        return (
            f"kc {args.command}: interrupted during {interrupt.name}{kept}; the last good "
            f"executed notebooks are kept; the same command resumes (finished notebooks are "
            f"skipped)"
        )
    return f"kc {args.command}: interrupted"


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kc")
    except metadata.PackageNotFoundError:  # not installed: the source tree's version
        import kc

        return str(kc.__version__)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
