"""kc.engine.cache: keys, hits and misses, corruption, atomic writes, the cache root, ls/du/clean."""

from __future__ import annotations

import importlib
import logging
import os
import stat
import textwrap

import pytest
import torch

from kc.engine import cache


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


class Counter:
    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


# ---------------------------------------------------------------------------- keys


def test_key_is_canonical_and_readable():
    a = cache.key("net", {"b": 1, "a": (1, 2)}, label="vgg16/fashion-mnist/all/seed0")
    b = cache.key("net", {"a": [1, 2], "b": 1}, label="vgg16/fashion-mnist/all/seed0")
    assert a == b
    assert a.startswith("vgg16-fashion-mnist-all-seed0-")
    assert cache.key("net", {"a": 1}).startswith("net-")


@pytest.mark.parametrize(
    "other",
    [
        dict(kind="features", config={"a": 1}),
        dict(kind="net", config={"a": 2}),
        dict(kind="net", config={"a": 1.5}),
        dict(kind="net", config={"a": 1}, version="v2"),
    ],
)
def test_key_changes_with_kind_config_and_version(other):
    base = cache.key("net", {"a": 1})
    assert cache.key(other.pop("kind"), other.pop("config"), **other) != base


@pytest.mark.parametrize("bad", [{"t": torch.zeros(1)}, {"x": float("nan")}, {"o": object()}])
def test_key_rejects_non_json_config(bad):
    with pytest.raises(ValueError, match="cache config"):
        cache.key("net", bad)


def test_bad_kind_raises():
    with pytest.raises(ValueError, match="cache kind"):
        cache.key("../evil", {})


def _write_module(folder, body):
    (folder / "kc_cv_probe.py").write_text(textwrap.dedent(body))
    importlib.invalidate_caches()


def test_code_version_ignores_docstrings_and_comments(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    _write_module(
        tmp_path,
        '''
        """Module docstring."""
        def f(x):
            """Doc."""
            return x + 1
    ''',
    )
    v1 = cache.code_version(["kc_cv_probe"])
    _write_module(
        tmp_path,
        '''
        """Another module docstring."""

        def f(x):  # a comment
            """Different doc."""
            return x + 1
    ''',
    )
    assert cache.code_version(["kc_cv_probe"]) == v1
    _write_module(
        tmp_path,
        """
        def f(x):
            return x + 2
    """,
    )
    assert cache.code_version(["kc_cv_probe"]) != v1


def test_code_version_of_packages():
    v = cache.code_version(["kc.engine.cache", "kc.engine.train"])
    assert len(v) == 16 and v == cache.code_version(["kc.engine.train", "kc.engine.cache"])
    assert cache.code_version(["kc"]) != v


# ---------------------------------------------------------------------------- hits and misses


def test_hit_and_miss(root):
    compute = Counter({"w": torch.arange(5.0), "acc": 91.2, "name": "x", "h": [1, 2]})
    first = cache.cached("net", {"seed": 0}, compute)
    second = cache.cached("net", {"seed": 0}, compute)
    assert compute.calls == 1
    torch.testing.assert_close(second["w"], first["w"])
    assert second["acc"] == 91.2 and second["h"] == [1, 2]
    cache.cached("net", {"seed": 1}, compute)
    cache.cached("net", {"seed": 0}, compute, version="new code")
    assert compute.calls == 3


def test_sidecar_holds_the_config(root):
    import json

    cache.store("features", {"layer": "conv4", "limit": 10}, torch.ones(2), label="a/b")
    (path,) = (root / "features").glob("*.pt")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["config"] == {"layer": "conv4", "limit": 10}
    assert meta["kind"] == "features" and meta["key"] == path.stem


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "foreign"])
def test_corrupt_entry_is_deleted_and_recomputed(root, caplog, damage):
    compute = Counter(torch.randn(100, 10))
    cache.cached("g", {"k": 1}, compute)
    path = cache.path_for("g", {"k": 1})
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a torch file" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # readable, but not written by cache.store
        torch.save(torch.zeros(3), path)
    with caplog.at_level(logging.WARNING, logger="kc.engine.cache"):
        value = cache.cached("g", {"k": 1}, compute)
    assert compute.calls == 2
    assert "deleting" in caplog.text
    torch.testing.assert_close(value, compute.value)
    torch.testing.assert_close(cache.load("g", {"k": 1}), compute.value)  # rewritten, valid


class Custom:  # weights_only refuses arbitrary classes
    pass


def test_safe_load_missing_and_unsafe(tmp_path, caplog):
    assert cache.safe_load(tmp_path / "nope.pt") is None
    path = tmp_path / "unsafe.pt"
    torch.save({"obj": Custom()}, path)
    with caplog.at_level(logging.WARNING, logger="kc.engine.cache"):
        assert cache.safe_load(path) is None
    assert not path.exists()


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("boom")


def test_atomic_save_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "sub" / "obj.pt"
    with pytest.raises(RuntimeError, match="boom"):
        cache.atomic_save({"a": torch.ones(1000), "b": Unpicklable()}, path)
    assert list((tmp_path / "sub").iterdir()) == []


def test_atomic_save_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "obj.pt"
    cache.atomic_save(torch.arange(3), path)
    with pytest.raises(RuntimeError):
        cache.atomic_save([Unpicklable()], path)
    assert torch.equal(cache.safe_load(path), torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["obj.pt"]


def test_cached_stores_nothing_when_compute_fails(root):
    def fail():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.cached("net", {"a": 1}, fail)
    assert cache.ls() == [] and cache.du() == 0


# ---------------------------------------------------------------------------- root


def test_env_var_overrides_root(tmp_path, monkeypatch):
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "elsewhere"))
    assert cache.cache_root() == tmp_path / "elsewhere"
    assert cache.path_for("net", {}).parent == tmp_path / "elsewhere" / "net"


def test_root_is_found_above_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("KC_CACHE", raising=False)
    (tmp_path / "kc").mkdir()
    (tmp_path / "kc" / "__init__.py").write_text("")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert cache.cache_root() == tmp_path / "data" / "cache"


# ---------------------------------------------------------------------------- ls, du, clean


def test_ls_du_clean(root):
    cache.store("net", {"a": 1}, torch.zeros(1000), label="n1")
    cache.store("net", {"a": 2}, torch.zeros(10))
    cache.store("features", {"a": 1}, torch.zeros(10))
    entries = cache.ls()
    assert sorted(e.kind for e in entries) == ["features", "net", "net"]
    assert {e.label for e in cache.ls("net")} == {"n1", None}
    assert all(e.config is not None and e.bytes > 0 for e in entries)
    sizes = cache.du_by_kind()
    assert set(sizes) == {"features", "net"} and sizes["net"] > sizes["features"]
    assert cache.du() == sum(sizes.values()) and cache.du("net") == sizes["net"]
    freed = cache.clean("net")
    assert freed == sizes["net"]
    assert [e.kind for e in cache.ls()] == ["features"]
    cache.clean()
    assert cache.ls() == [] and cache.du() == 0


def test_ls_on_missing_root(root):
    assert cache.ls() == [] and cache.du() == 0 and cache.clean() == 0


# ---------------------------------------------------------------------------- interruptions


def test_an_entry_without_its_sidecar_is_absent_and_recomputed(root, caplog):
    # before: an interrupt between the object and its sidecar left an object used without one
    compute = Counter(torch.arange(4))
    cache.cached("g", {"k": 2}, compute)
    path = cache.path_for("g", {"k": 2})
    path.with_suffix(".json").unlink()
    with caplog.at_level(logging.WARNING, logger="kc.engine.cache"):
        assert cache.load("g", {"k": 2}) is None
    assert "no sidecar" in caplog.text and not path.exists()
    cache.cached("g", {"k": 2}, compute)
    assert compute.calls == 2 and path.with_suffix(".json").exists()


def test_store_writes_the_sidecar_before_the_object(root, monkeypatch):
    order = []
    real_save, real_text = cache.atomic_save, cache.atomic_write_text
    monkeypatch.setattr(cache, "atomic_save", lambda o, p: (order.append("pt"), real_save(o, p)))
    monkeypatch.setattr(
        cache, "atomic_write_text", lambda t, p: (order.append("json"), real_text(t, p))
    )
    cache.store("g", {"k": 3}, torch.ones(1))
    assert order == ["json", "pt"]  # interrupted in between: a sidecar alone, ignored by all


def test_interrupted_store_leaves_no_entry(root, monkeypatch):
    def interrupted(obj, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "atomic_save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.store("g", {"k": 4}, torch.ones(1))
    assert cache.ls("g") == [] and cache.load("g", {"k": 4}) is None


def _damage_one(root):
    cache.store("net", {"k": 1}, torch.ones(3))
    cache.store("net", {"k": 2}, torch.ones(3))
    cache.store("g", {"k": 3}, torch.ones(3))
    bad = cache.path_for("net", {"k": 2})
    bad.write_bytes(bad.read_bytes()[:40])
    orphan = cache.path_for("g", {"k": 3})
    orphan.with_suffix(".json").unlink()
    return bad, orphan


def test_ls_marks_unreadable_entries_and_verify_finds_and_deletes_them(root):
    # before: a corrupt file was found only when something asked for it
    bad, orphan = _damage_one(root)
    status = {e.path: e.status for e in cache.ls()}
    assert status[bad] == "unreadable" and status[orphan] == "no sidecar"
    assert sorted(status.values()).count("ok") == 1
    found = cache.verify()
    assert {e.path: why for e, why in found}.keys() == {bad, orphan}
    assert "unreadable" in dict((e.path, w) for e, w in found)[bad]
    assert bad.exists()  # only reported
    cache.verify(delete=True)
    assert not bad.exists() and not orphan.exists() and not bad.with_suffix(".json").exists()
    assert cache.verify() == [] and len(cache.ls()) == 1


def test_verify_loads_the_object(root):
    # a complete zip whose pickle is not a kc entry passes ls's cheap check, not verify
    cache.store("g", {"k": 5}, torch.ones(2))
    path = cache.path_for("g", {"k": 5})
    torch.save({"something": "else"}, path)
    assert cache.ls()[0].status == "ok"
    ((entry, why),) = cache.verify()
    assert entry.path == path and why.startswith("not a kc cache entry")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_respect_the_umask(root, umask):
    # before: mkstemp's 0600 whatever the umask, so a group could not share the cache
    old = os.umask(umask)
    try:
        path = cache.store("g", {"umask": umask}, torch.ones(1))
    finally:
        os.umask(old)
    for file in (path, path.with_suffix(".json")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~umask, oct(file.stat().st_mode)


def test_warnings_are_appended_to_the_warnings_file(root, tmp_path, monkeypatch):
    target = tmp_path / "warnings.txt"
    monkeypatch.setenv(cache.WARNINGS_ENV, str(target))
    path = cache.path_for("g", {"k": 6})
    path.parent.mkdir(parents=True)
    path.write_bytes(b"junk")
    path.with_suffix(".json").write_text("{}")
    assert cache.load("g", {"k": 6}) is None
    (line,) = target.read_text().splitlines()
    assert line.startswith("kc.engine.cache: deleting unreadable cache file") and str(path) in line
