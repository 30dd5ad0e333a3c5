"""The layers of kc (issue 22): the folder structure, the import contracts, and cache keys that
survive moving a module but not changing what it computes."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch

import kc
from kc.engine import cache

ROOT = Path(kc.__file__).resolve().parents[1]
LAYERS = ("core", "engine", "studies", "run", "book")


# ------------------------------------------------------------------ the folders


def test_top_level_holds_only_the_api_the_cli_and_the_layers() -> None:
    top = {p.name for p in (ROOT / "kc").iterdir() if p.name != "__pycache__"}
    assert top == {"__init__.py", "__main__.py", "cli.py", "py.typed", *LAYERS}


def test_public_api_is_unchanged() -> None:
    for name in ("consistency", "ConsistencyNet", "decompose", "fit_consistency", "instability",
                 "variance", "consistency_loss", "evaluate_consistency", "normalize"):  # fmt: skip
        assert callable(getattr(kc, name)), name
    assert kc.decompose.__module__ == "kc.core.decompose"


# ------------------------------------------------------------------ the contracts


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.is_file(), "lint-imports is missing: install the dev extra (`make setup`)"
    return subprocess.run(
        [str(exe), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


@pytest.fixture
def kc_copy(tmp_path: Path) -> Path:
    """A copy of the package and of pyproject.toml (the contracts), to plant violations in."""
    shutil.copytree(ROOT / "kc", tmp_path / "kc", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_contracts_hold_on_the_package(kc_copy: Path) -> None:
    done = _lint_imports(kc_copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "planted", "shown"),
    [
        ("core/metrics.py", "from kc.engine import cache", "kc.core.metrics -> kc.engine.cache"),
        ("engine/zoo.py", "from kc.studies import claims", "kc.engine.zoo -> kc.studies.claims"),
        ("studies/toy.py", "from kc.run import manifest", "kc.studies.toy -> kc.run.manifest"),
        ("studies/common.py", "from kc.book import output", "kc.studies.common -> kc.book.output"),
        ("book/output.py", "import kc.cli", "kc.book.output -> kc.cli"),
    ],
)
def test_contracts_fail_on_a_planted_violation(
    kc_copy: Path, module: str, planted: str, shown: str
) -> None:
    path = kc_copy / "kc" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{planted}  # planted\n")
    done = _lint_imports(kc_copy)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout and shown in done.stdout, done.stdout


# ------------------------------------------------------------------ cache keys


def _package(tmp_path: Path, files: dict[str, str]) -> str:
    """Writes ``files`` (relative path -> source) under a fresh package; returns its name."""
    name = f"kcmove_{uuid.uuid4().hex[:8]}"
    (tmp_path / name).mkdir()
    for rel, source in files.items():
        path = tmp_path / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).replace("PKG", name), encoding="utf-8")
    for folder in [tmp_path / name, *(p for p in (tmp_path / name).rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    importlib.invalidate_caches()
    return name


HELPERS = '''
    """Helpers."""
    def twice(x):
        return 2 * x
'''
CALC = '''
    """Circles."""
    from __future__ import annotations

    import math

    from PKG.helpers import twice

    __all__ = ["area"]
    SCALE = 2.0


    def area(r):
        """The area, scaled."""
        return twice(math.pi * r * r) * SCALE
'''
# the same code moved to other folders and names, split differently, reordered and reformatted
MOVED = '''
    # comments do not compute
    import math
    from PKG.layer.deep.util import twice  # a new path
    SCALE = 2.0  # same value
    def area(r): return twice(math.pi * r * r) * SCALE
'''
MOVED_UTIL = '''
    def twice(x):
        # twice x
        return 2 * x
'''


@pytest.fixture
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_moving_renaming_splitting_or_reformatting_keeps_the_code_version(importable: Path) -> None:
    before = _package(importable, {"calc.py": CALC, "helpers.py": HELPERS})
    after = _package(importable, {"layer/geometry.py": MOVED, "layer/deep/util.py": MOVED_UTIL})
    one = MOVED_UTIL + MOVED.replace("    from PKG.layer.deep.util import twice  # a new path\n", "")
    merged = _package(importable, {"one.py": one})  # two modules made one
    version = cache.code_version([f"{before}.calc", f"{before}.helpers"])
    assert cache.code_version([f"{after}.layer.geometry", f"{after}.layer.deep.util"]) == version
    assert cache.code_version([f"{after}.layer"]) == version  # a package: all its files
    assert cache.code_version([f"{merged}.one"]) == version


@pytest.mark.parametrize(
    ("old", "new"),
    [("SCALE = 2.0", "SCALE = 3.0"), ("return 2 * x", "return 2 * x + 0"),
     ("math.pi * r * r", "math.pi * r ** 2"), ("def area(r):", "def area(r, s=1):")],
)  # fmt: skip
def test_changing_a_computation_changes_the_code_version(
    importable: Path, old: str, new: str
) -> None:
    base = _package(importable, {"calc.py": CALC, "helpers.py": HELPERS})
    edited = _package(importable, {"calc.py": CALC.replace(old, new),
                                   "helpers.py": HELPERS.replace(old, new)})  # fmt: skip
    assert CALC.replace(old, new) != CALC or HELPERS.replace(old, new) != HELPERS
    assert cache.code_version([f"{base}.calc", f"{base}.helpers"]) != cache.code_version(
        [f"{edited}.calc", f"{edited}.helpers"]
    )


def test_a_module_of_kc_moved_elsewhere_keeps_the_version_of_its_cache_entries(
    importable: Path,
) -> None:
    from kc.engine import experiments as ex

    moved = _package(importable, {})
    for module in ex._G_CODE:
        source = Path(sys.modules[module].__file__ or "").read_text(encoding="utf-8")
        target = importable / moved / "elsewhere" / f"renamed_{module.rsplit('.', 1)[1]}.py"
        target.parent.mkdir(exist_ok=True)
        (target.parent / "__init__.py").touch()
        target.write_text(source.replace("kc.core.", f"{moved}.elsewhere.renamed_"), encoding="utf-8")
    importlib.invalidate_caches()
    assert cache.code_version([f"{moved}.elsewhere"]) == cache.code_version(ex._G_CODE)


def test_rekey_moves_entries_to_a_new_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    cache.store("g", {"n": 1}, torch.arange(3), version="old", label="a/b")
    cache.store("g", {"n": 2}, torch.arange(4), version="other", label="c")
    assert cache.rekey({"old": "new"}, dry_run=True)
    assert cache.load("g", {"n": 1}, version="new") is None
    moved = cache.rekey({"old": "new"})
    assert len(moved) == 1 and moved[0][1] == cache.path_for("g", {"n": 1}, version="new", label="a/b")
    torch.testing.assert_close(cache.load("g", {"n": 1}, version="new", label="a/b"), torch.arange(3))
    assert cache.load("g", {"n": 1}, version="old", label="a/b") is None
    assert cache.load("g", {"n": 2}, version="other", label="c") is not None  # untouched
    assert cache.rekey({"old": "new"}) == []  # nothing left to move
    sidecar = moved[0][1].with_suffix(".json").read_text(encoding="utf-8")
    assert '"version": "new"' in sidecar
    # --keep: both versions find the entry
    assert len(cache.rekey({"other": "third"}, keep=True)) == 1
    assert cache.load("g", {"n": 2}, version="other", label="c") is not None
    assert cache.load("g", {"n": 2}, version="third", label="c") is not None


def test_rekey_rewrites_the_keys_a_config_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # features name their network by its cache key, a fit of g its features: new keys follow
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    net = cache.store("net", {"arch": "a"}, torch.zeros(1), version="n1").stem
    feats = cache.store("features", {"net": net, "layer": "l"}, torch.ones(1), version="f1").stem
    cache.store("g", {"x": feats, "target": feats}, torch.arange(2), version="g1")
    cache.rekey({"g1": "g2", "f1": "f2", "n1": "n2"})  # any order of the versions
    new_net = cache.key("net", {"arch": "a"}, version="n2")
    new_feats = cache.key("features", {"net": new_net, "layer": "l"}, version="f2")
    assert cache.load("features", {"net": new_net, "layer": "l"}, version="f2") is not None
    g = cache.load("g", {"x": new_feats, "target": new_feats}, version="g2")
    torch.testing.assert_close(g, torch.arange(2))


def test_cli_rekey_says_what_it_would_move_and_refuses_bad_pairs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kc.cli import main

    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    cache.store("g", {"n": 1}, torch.arange(3), version="old")
    assert main(["cache", "rekey", "old:new"]) == 0
    assert "would move 1 entries of code versions old" in capsys.readouterr().out
    assert cache.load("g", {"n": 1}, version="new") is None
    assert main(["cache", "rekey", "--yes", "old:new"]) == 0
    assert cache.load("g", {"n": 1}, version="new") is not None
    assert main(["cache", "rekey", "old"]) == 2
    assert "give OLD:NEW pairs" in capsys.readouterr().err
