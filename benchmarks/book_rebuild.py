"""`kc book` cold, warm with nothing changed, and warm after one notebook changed, in one run.

From an output root of executed notebooks (``kc run --all --output-root DIR``; a smoke run is
enough), the book's sources (``_config.yml``, ``_toc.yml``, ``book/``) are copied into a
temporary folder with a copy of the outputs, and ``kc book`` runs there, each step in a fresh
process as a user runs it (start-up and imports included):

1. ``cold``: an empty ``_build`` and ``book/results``: every page made and built;
2. ``warm, unchanged``: nothing changed: no page is written and Sphinx is not started;
3. ``warm, one notebook changed``: one executed notebook gets one more output line and its
   first claim new evidence: its page and the scorecard are written, Sphinx reads and writes
   those two pages (and the root page, whose table of contents lists them);
4. ``warm, unchanged again``;
5. ``forced`` (``kc book --force``): every page read again from a fresh environment, which is
   what every ``kc book`` cost before the build was incremental.

Each row has its wall time, its ratio to the cold build, and the 1-minute load average before
and after it (``os.getloadavg()``): quote the ratios when the machine is busy. The run fails
(exit 1) if a step's outcome is not the expected one (a skipped build that ran, a change that
does not show on the page).

Example:
    python benchmarks/book_rebuild.py --outputs outputs
    python benchmarks/book_rebuild.py --outputs outputs --notebook table1_instability
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A fresh process that runs `kc book` on the copied sources (kc's project root is the
# repository; the benchmark points it at the copy).
_KC_BOOK = """
import sys
from pathlib import Path
from kc.book import pages as book
from kc.run import runner
root = Path(sys.argv[1])
runner.project_root = lambda: root
sys.exit(book.book_command(sys.argv[2], force=sys.argv[3] == "force"))
"""


@dataclass
class Step:
    """One timed ``kc book``: its wall seconds, ratio to the cold build, loads around it."""

    name: str
    seconds: float
    ratio: float
    load_before: float
    load_after: float
    outcome: str


def copy_sources(workdir: Path, outputs: Path) -> tuple[Path, Path]:
    """The book's sources and a copy of ``outputs`` in ``workdir``: (root, outputs copy)."""
    root = workdir / "repo"
    (root / "book").mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, root / name)
    for item in (ROOT / "book").iterdir():
        if item.name == "results":
            continue
        if item.is_dir():
            shutil.copytree(item, root / "book" / item.name)
        else:
            shutil.copy2(item, root / "book" / item.name)
    copied = workdir / "outputs"
    shutil.copytree(outputs, copied, ignore=shutil.ignore_patterns("*.pt", "cache"))
    return root, copied


def change_one_notebook(outputs: Path, name: str) -> str:
    """Append a line to the first stream output of ``name``'s executed notebook and to the
    evidence of its first claim; returns the marker text."""
    marker = f"BENCHMARK CHANGE {time.time():.0f}"
    path = outputs / "notebooks" / f"{name}.ipynb"
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        streams = [o for o in cell.get("outputs", []) if o.get("output_type") == "stream"]
        if streams:
            text = streams[0]["text"]
            streams[0]["text"] = ("".join(text) if isinstance(text, list) else text) + marker
            break
    else:
        raise ValueError(f"{path} has no stream output to change")
    path.write_text(json.dumps(nb, indent=1))
    verdicts = outputs / name / "verdicts.json"
    if verdicts.is_file():
        data = json.loads(verdicts.read_text())
        data["claims"][0]["evidence"] += f" ({marker})"
        verdicts.write_text(json.dumps(data))
    return marker


def kc_book(root: Path, outputs: Path, force: bool = False) -> tuple[float, float, float, str]:
    """One ``kc book`` in a fresh process: (seconds, load before, load after, its last line)."""
    before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _KC_BOOK, str(root), str(outputs), "force" if force else "-"],
        capture_output=True,
        text=True,
        env=dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        ),
    )
    seconds = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise RuntimeError(f"kc book exited with {done.returncode}")
    summary = next((line for line in reversed(lines) if line.startswith(("book", "changed"))), "")
    changed = next((line for line in lines if line.startswith("changed in")), "")
    return seconds, before, os.getloadavg()[0], f"{changed}; {summary}"


def run(outputs: Path, notebook: str, workdir: Path) -> list[Step]:
    """The five steps of the module docstring; raises if an outcome is not the expected one."""
    if not (outputs / "notebooks" / f"{notebook}.ipynb").is_file():
        raise FileNotFoundError(f"{outputs}/notebooks/{notebook}.ipynb: run `kc run` first")
    root, copied = copy_sources(workdir, outputs)
    page = root / "_build" / "html" / "book" / "results" / f"{notebook}.html"
    steps: list[Step] = []

    def step(name: str, expect: str, force: bool = False) -> None:
        seconds, before, after, outcome = kc_book(root, copied, force)
        if expect not in outcome:
            raise RuntimeError(f"{name}: expected {expect!r} in the output, got {outcome!r}")
        cold = steps[0].seconds if steps else seconds
        steps.append(Step(name, seconds, seconds / cold, before, after, outcome))
        print(
            f"{name:32s} {seconds:7.1f} s  x{seconds / cold:5.3f}  load {before:.2f} -> {after:.2f}"
        )

    step("cold", "book built from scratch")
    step("warm, unchanged", "book: unchanged since")
    marker = change_one_notebook(copied, notebook)
    step("warm, one notebook changed", "book built incrementally")
    if marker not in page.read_text():
        raise RuntimeError(f"{page} does not show the changed output")
    step("warm, unchanged again", "book: unchanged since")
    step("forced (as every build before)", "book built from scratch", force=True)
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--outputs", type=Path, default=ROOT / "outputs", help="kc run's output root"
    )
    parser.add_argument("--notebook", default="table2_order_variances", help="the one to change")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "benchmarks")
    args = parser.parse_args(argv)
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="kc-book-bench-") as tmp:
        steps = run(args.outputs.resolve(), args.notebook, Path(tmp))
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "book_rebuild.json").write_text(json.dumps([asdict(s) for s in steps], indent=1))
    print(f"wrote {args.out / 'book_rebuild.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
