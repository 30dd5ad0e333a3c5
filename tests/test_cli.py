"""The `kc` command (kc.cli.main), without subprocesses except one `python -m kc`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import default_sigint

from kc.cli import main
from kc.run import runner

ROOT = Path(__file__).resolve().parents[1]


def write_notebook(
    path: Path, params: str = "PROFILE = 'smoke'\nSEEDS = [0]\nLR = 1.0\nDEVICE = 'auto'"
) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# A notebook"), cell]
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["run"],
        ["list"],
        ["cache"],
        ["cache", "ls"],
        ["cache", "du"],
        ["cache", "verify"],
        ["cache", "clean"],
        ["book"],
    ],
)
def test_help(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kc")
    if not argv:
        for sub in ("run", "list", "cache", "book"):
            assert sub in out
    if argv == ["run"]:
        for option in ("--all", "--profile", "--param", "--executor", "--device", "slurm"):
            assert option in out
    if argv == ["cache"]:
        assert "ls" in out and "du" in out and "clean" in out


def test_no_command_prints_help(capsys) -> None:
    assert main([]) == 2
    assert "usage: kc" in capsys.readouterr().out


def test_list(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["notebook", "paper", "item", "output", "files", "state"]
    for nb in runner.MANIFEST:
        assert nb.name in out
    assert "Table 1" in out and "table1_vs_paper.csv" in out
    states = {line.split()[0]: line.split()[-1] for line in out.splitlines()[2:] if line.strip()}
    assert all(states[nb.name] == "ready" for nb in runner.MANIFEST)  # issue 11: none planned


def test_run_parses_parameters_as_yaml(tmp_path, capsys) -> None:
    path = write_notebook(tmp_path / "nb.ipynb")
    argv = [
        "run",
        str(path),
        "--profile",
        "smoke",
        "-p",
        "SEEDS",
        "[3, 4]",
        "-p",
        "LR",
        "1e-3",
        "--device",
        "cpu",
        "--output-root",
        str(tmp_path / "o"),
        "--dry-run",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    values = yaml.safe_load(out.split("\n", 1)[1])
    assert values == {
        "PROFILE": "smoke",
        "OUTPUT_DIR": str((tmp_path / "o").resolve()),
        "SEEDS": [3, 4],
        "LR": 0.001,
        "DEVICE": "cpu",
    }


def test_run_errors(tmp_path, capsys) -> None:
    assert main(["run"]) == 2
    assert "give a NOTEBOOK or --all" in capsys.readouterr().err
    assert main(["run", "nope"]) == 2
    assert "the manifest has: 00_toy_consistency" in capsys.readouterr().err
    path = write_notebook(tmp_path / "nb.ipynb")
    assert main(["run", str(path), "-p", "EPOCHS", "2", "--dry-run"]) == 2
    assert "does not declare ['EPOCHS']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", str(path), "--executor", "pbs"])


def test_run_reports_a_failed_notebook(tmp_path, capsys) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise ValueError('planted failure')")]
    nbformat.write(nb, tmp_path / "bad.ipynb")
    code = main(["run", str(tmp_path / "bad.ipynb"), "--output-root", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err
    assert "kc run: bad failed" in err and "ValueError: planted failure" in err
    assert f"is {(tmp_path / 'o' / 'notebooks' / 'bad.failed.ipynb').resolve()}" in err
    assert json.loads((tmp_path / "o" / "bad" / "run.json").read_text())["status"] == "failed"


def test_cache_commands(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "nets").mkdir(parents=True)
    (tmp_path / "cache" / "nets" / "a-0123.pt").write_bytes(b"x" * 2048)
    assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    assert "nets" in out and "a-0123" in out and "1 entries" in out
    assert main(["cache", "du"]) == 0
    assert "2.0 KiB" in capsys.readouterr().out
    assert main(["cache", "clean", "--kind", "nets"]) == 1  # not a terminal: needs --yes
    assert "pass --yes" in capsys.readouterr().err
    assert (tmp_path / "cache" / "nets").exists()
    assert main(["cache", "clean", "--kind", "nets", "--yes"]) == 0
    assert "freed 2.0 KiB" in capsys.readouterr().out
    assert not (tmp_path / "cache" / "nets").exists()


# `kc book` is tested with kc/book/pages.py in tests/test_book.py.


def test_python_dash_m(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kc", "list"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "table1_instability" in result.stdout


# ------------------------------------------------------------------------------------ issue 10, 14


def test_version(capsys) -> None:
    # before: `kc --version` was an unknown option
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"kc {__import__('kc').__version__}"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SEEDS", "abc", "SEEDS = 'abc': expected a list of integers"),
        ("DATASET", "cifar10", "DATASET = 'cifar10': expected one of"),
        ("EPOCHS", "two", "EPOCHS = 'two': expected an integer"),
        ("TRAIN_LIMIT", "-5", "TRAIN_LIMIT = -5: expected a positive integer or null"),
    ],
)
def test_run_refuses_bad_values_before_running(tmp_path, capsys, name, value, expected) -> None:
    argv = ["run", "table1_instability", "--profile", "smoke", "-p", name, value]
    assert main([*argv, "--output-root", str(tmp_path / "o")]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main(["run", "--all", "--profile", "smoke", "-p", name, value, "--dry-run"]) == 2
    assert expected in capsys.readouterr().err


def test_dry_run_all_refuses_a_misspelt_parameter(capsys) -> None:
    # before: one -p for every notebook was filtered per notebook, so a typo vanished
    assert main(["run", "--all", "--profile", "smoke", "-p", "EPOCH", "2", "--dry-run"]) == 2
    assert "no notebook declares ['EPOCH'] (did you mean EPOCHS?)" in capsys.readouterr().err


def _sleepy(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("PROFILE = 'smoke'\nOUTPUT_DIR = 'outputs'\nSLEEP = 0")
    cell.metadata["tags"] = ["parameters"]
    body = (
        "import pathlib, time\nout = pathlib.Path(OUTPUT_DIR) / 'sleepy'\n"
        "out.mkdir(exist_ok=True)\n(out / 'started.txt').write_text(str(SLEEP))\ntime.sleep(SLEEP)"
    )
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, folder / "sleepy.ipynb")
    return folder / "sleepy.ipynb"


def test_run_skips_an_unchanged_notebook(tmp_path, capsys) -> None:
    argv = ["run", str(_sleepy(tmp_path)), "--profile", "smoke", "--output-root", str(tmp_path)]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().endswith("sleepy.ipynb")
    assert main(argv) == 0
    assert "sleepy: skipped: unchanged since 20" in capsys.readouterr().out
    assert main([*argv, "--force"]) == 0
    assert "skipped" not in capsys.readouterr().out


def test_ctrl_c_prints_one_line_and_keeps_the_good_notebook(tmp_path) -> None:
    # before: the half-run notebook replaced the good one, and the terminal showed the kernel's
    # ZMQError traceback and kc's KeyboardInterrupt traceback
    path, out = _sleepy(tmp_path), tmp_path / "out"
    argv = ["run", str(path), "--profile", "smoke", "--output-root", str(out)]
    assert main(argv) == 0
    good = out / "notebooks" / "sleepy.ipynb"
    before = good.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    started = out / "sleepy" / "started.txt"
    started.unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "kc", *argv, "-p", "SLEEP", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        # a process group of its own, as a terminal's foreground job, with Ctrl-C not ignored
        start_new_session=True, preexec_fn=default_sigint,
    )  # fmt: skip
    deadline = time.time() + 120
    while not started.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert started.exists(), process.communicate()
    time.sleep(1)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in stderr and "ZMQError" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if not line.startswith("[kc] ")]
    failed = out / "notebooks" / "sleepy.failed.ipynb"
    assert lines == [
        f"kc run: interrupted during sleepy; its partial copy is {failed.resolve()}; the last "
        "good executed notebooks are kept; the same command resumes (finished notebooks are "
        "skipped)"
    ]
    assert good.read_bytes() == before and failed.is_file()
    assert not list((out / "notebooks").glob(".*"))  # no temporary left behind
    record = json.loads((out / "sleepy" / "run.json").read_text())
    assert record["status"] == "interrupted"
    assert record["failed_notebook"] == "notebooks/sleepy.failed.ipynb"  # relative to the root
    assert (out / "sleepy" / "kernel.log").is_file()  # the kernel's own messages went here
    # resuming: the interrupted run is not "unchanged", so it runs and the failed copy goes
    assert main(argv) == 0 and not failed.exists()


def test_cache_verify_and_ls_marks(tmp_path, monkeypatch, capsys) -> None:
    import torch

    from kc.engine import cache

    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    cache.store("g", {"k": 1}, torch.ones(2))
    bad = cache.store("g", {"k": 2}, torch.ones(2))
    bad.write_bytes(b"\x00" * 10)
    assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    assert "UNREADABLE" in out and "1 marked bad" in out
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"BAD  g/{bad.stem}: unreadable" in out and "1 of 2 entries load" in out
    assert main(["cache", "verify", "--delete"]) == 0
    assert f"deleted  g/{bad.stem}" in capsys.readouterr().out and not bad.exists()
    assert main(["cache", "verify"]) == 0
    assert "1 of 1 entries load" in capsys.readouterr().out


def test_run_prints_cache_warnings(tmp_path, monkeypatch, capsys) -> None:
    # before: the cache's warnings reached only the kernel's stderr, which the book strips
    from test_runner import WARN_BODY, make_notebook

    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    path = make_notebook(tmp_path, "warns", "PROFILE = 'smoke'\nOUTPUT_DIR = 'outputs'", WARN_BODY)
    assert main(["run", str(path), "--profile", "smoke", "--output-root", str(tmp_path)]) == 0
    assert "warning: kc.engine.cache: deleting unreadable cache file" in capsys.readouterr().out
