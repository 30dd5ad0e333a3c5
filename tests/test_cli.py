"""The `kc` command (kc.cli.main), without subprocesses except one `python -m kc`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from kc import runner
from kc.cli import main

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
    assert "Table 1" in out and "table1_vs_paper.csv" in out and "planned" in out


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
    assert "bad.ipynb failed" in err and "planted failure" in err
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


# `kc book` is tested with kc/book.py in tests/test_book.py.


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
