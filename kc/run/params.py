"""Checking notebook parameters before anything runs.

A notebook's ``parameters`` cell is its schema: each value given by a profile or by ``-p`` must
have the type of the notebook's default (:func:`check_type`), and the values the studies can
check cheaply are checked here too (:func:`check_values`): known data sets, architectures and
layers, positive sizes, limits and learning rates. Profiles are read with :func:`read_yaml`,
which keeps ``yes``, ``no``, ``on`` and ``off`` as strings (only ``true`` / ``false`` are
booleans, as in YAML 1.2) and reads ``1e-3`` as a number.

Example:
    >>> check_type("EPOCHS", 3, default=1)
    3
    >>> check_type("LR", 1, default=0.001)
    1.0
    >>> check_type("EPOCHS", "two", default=1)
    Traceback (most recent call last):
    ...
    ValueError: EPOCHS = 'two': expected an integer (like the notebook's default 1)
    >>> read_yaml("SUBSET: no")
    {'SUBSET': 'no'}
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from typing import Any

import yaml

__all__ = [
    "check_names",
    "check_type",
    "check_values",
    "closest",
    "read_yaml",
]


# --------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2's booleans and floats (``no`` stays a string)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(text: str) -> Any:
    """Parse YAML text; ``yes``/``no``/``on``/``off`` stay strings, ``1e-3`` is a float.

    Example:
        >>> read_yaml("[1e-3, off, true]")
        [0.001, 'off', True]
    """
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


# --------------------------------------------------------------------------------- names


def closest(name: str, known: Collection[str]) -> str:
    """`` (did you mean X?)`` for the known name closest to ``name``, or ``""``."""
    match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def check_names(names: Collection[str], known: Collection[str], where: str) -> None:
    """Refuse names that no notebook declares, suggesting the closest known one.

    Raises:
        ValueError: ``where has EPOCH, which no notebook declares (did you mean EPOCHS?)``.
    """
    unknown = sorted(set(names) - set(known))
    if unknown:
        parts = [f"{n}{closest(n, known)}" for n in unknown]
        raise ValueError(
            f"{where} has {', '.join(parts)}, which no notebook declares; "
            f"known names: {', '.join(sorted(known))}"
        )


# --------------------------------------------------------------------------------- types


def _describe(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, list):
        inner = f" of {_plural(default[0])}" if default else ""
        return f"a list{inner}"
    if isinstance(default, dict):
        if default:
            key, value = next(iter(default.items()))
            return f"a mapping of {_plural(key)} to {_plural(value)}"
        return "a mapping"
    return type(default).__name__


def _plural(default: Any) -> str:
    text = _describe(default)
    for article in ("an ", "a "):
        if text.startswith(article):
            text = text[len(article) :]
            break
    if text.startswith("list"):
        return "lists" + text[4:]
    if text.startswith("mapping"):
        return "mappings" + text[7:]
    return {"true or false": "booleans", "number": "numbers"}.get(text, text + "s")


def _conform(value: Any, default: Any) -> tuple[bool, Any]:
    """``(ok, value)`` with ints widened to float where the default is a float."""
    if isinstance(default, bool):
        return isinstance(value, bool), value
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool), value
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if isinstance(default, str):
        return isinstance(value, str), value
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return False, value
        if not default:
            return True, list(value)
        out = []
        for item in value:
            ok, item = _conform(item, default[0])
            if not ok:
                return False, value
            out.append(item)
        return True, out
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            return False, value
        if not default:
            return True, dict(value)
        key0, value0 = next(iter(default.items()))
        out_map = {}
        for k, v in value.items():
            ok_k, k = _conform(k, key0)
            ok_v, v = _conform(v, value0)
            if not (ok_k and ok_v):
                return False, value
            out_map[k] = v
        return True, out_map
    return True, value  # a default of another type: anything goes


def check_type(name: str, value: Any, default: Any, *, nullable: bool = False) -> Any:
    """``value`` if it has the type of the notebook's ``default`` (ints widened to float).

    Args:
        name: the parameter.
        value: the value given by a profile or ``-p``.
        default: the notebook's default; ``None`` accepts anything.
        nullable: ``None`` is accepted (a profile gives ``null`` for this name).

    Raises:
        ValueError: naming the parameter, the value and the expected type.
    """
    if default is None or (value is None and nullable):
        return value
    ok, conformed = _conform(value, default)
    if not ok:
        null = " or null" if nullable else ""
        raise ValueError(
            f"{name} = {value!r}: expected {_describe(default)}{null} "
            f"(like the notebook's default {default!r})"
        )
    return conformed


# --------------------------------------------------------------------------------- values


def _fail(name: str, value: Any, expected: str) -> None:
    raise ValueError(f"{name} = {value!r}: expected {expected}")


def _positive_int(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        _fail(name, value, "a positive integer" + (" or null" if name.endswith("_LIMIT") else ""))


def _positive_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        _fail(name, value, "a positive number")


def _choice(name: str, value: Any, allowed: Collection[str]) -> None:
    if value not in allowed:
        _fail(name, value, f"one of {sorted(allowed)}{closest(str(value), allowed)}")


def _datasets() -> tuple[str, ...]:
    from kc.engine.data.catalog import DATASETS

    return DATASETS


def _archs() -> tuple[str, ...]:
    from kc.engine import zoo

    return tuple(zoo.ARCHS)


def _arch_layer(name: str, arch: Any, layer: Any) -> None:
    from kc.engine import zoo

    _choice(name, arch, _archs())
    allowed = zoo.layers(arch)
    if layer not in allowed:
        _fail(name, layer, f"a layer of {arch}: one of {allowed}")


_POSITIVE_INT = re.compile(r"^(.*_)?(LIMIT|EPOCHS|STEPS|BATCH_SIZE|INPUT_SIZE|N|CHANNELS|SIZE)$")
_POSITIVE_NUMBER = re.compile(r"^(.*_)?(LR|WIDTH)$")


def check_values(values: Mapping[str, Any]) -> None:
    """Cheap checks of the values the studies would otherwise refuse late (or never).

    Names are matched by their role: ``*_LIMIT``, ``*EPOCHS``, ``*_STEPS``, ``*BATCH_SIZE``,
    ``INPUT_SIZE`` are positive integers (limits may be null; a mapping gives one per known
    architecture, as ``OVERFIT_EPOCHS`` may); ``*LR`` and ``WIDTH`` positive
    numbers; ``LAMBDA*`` and ``ORDER`` non-negative; ``SEEDS`` a non-empty list of distinct
    non-negative integers; ``DATASET``, ``SUBSET_DATASET``, ``MIX_DATASETS`` known data sets
    (:data:`kc.engine.data.DATASETS`); ``SUBSET`` a class subset of ``SUBSET_DATASET``; ``LAYERS`` and
    ``NETWORKS`` known architectures and layers (:mod:`kc.engine.zoo`); ``OPTIMIZER`` and ``DEVICE``
    known choices.

    Raises:
        ValueError: naming the parameter, the value and what is expected.
    """
    for name, value in values.items():
        if _POSITIVE_INT.match(name) and isinstance(value, Mapping):  # per architecture
            for arch, count in value.items():
                _choice(name, arch, _archs())
                _positive_int(f"{name}[{arch!r}]", count)
        elif _POSITIVE_INT.match(name):
            _positive_int(name, value)
        elif _POSITIVE_NUMBER.match(name):
            _positive_number(name, value)
        elif name.startswith("LAMBDA") or name == "ORDER":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                _fail(name, value, "a non-negative number")
        elif name == "PAIRS" and value is not None:
            _positive_int(name, value)
    if "SEEDS" in values:
        seeds = values["SEEDS"]
        if (
            not isinstance(seeds, list)
            or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)
            or len(set(seeds)) != len(seeds)
        ):
            _fail("SEEDS", seeds, "a non-empty list of distinct non-negative integers")
    for name in ("DATASET", "SUBSET_DATASET"):
        if name in values:
            _choice(name, values[name], _datasets())
    if "MIX_DATASETS" in values:
        mix = values["MIX_DATASETS"]
        if not isinstance(mix, list) or len(mix) != 2 or mix[0] == mix[1]:
            _fail("MIX_DATASETS", mix, "a list of two different data sets")
        for item in mix:
            _choice("MIX_DATASETS", item, _datasets())
    if "SUBSET" in values:
        from kc.engine.data.tasks import CLASS_SUBSETS

        dataset = values.get("SUBSET_DATASET")
        allowed = [s for d, s in CLASS_SUBSETS if dataset is None or d == dataset]
        where = f" of {dataset}" if dataset else ""
        if values["SUBSET"] not in allowed:
            _fail("SUBSET", values["SUBSET"], f"a class subset{where}: one of {allowed}")
    if "LAYERS" in values:
        for arch, names in dict(values["LAYERS"]).items():
            for layer in names:
                _arch_layer("LAYERS", arch, layer)
    if "NETWORKS" in values:
        for item in values["NETWORKS"]:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                _fail("NETWORKS", item, "[architecture, layer] pairs")
            _arch_layer("NETWORKS", item[0], item[1])
    if "OPTIMIZER" in values:
        from kc.engine.train import OPTIMIZERS

        _choice("OPTIMIZER", values["OPTIMIZER"], OPTIMIZERS)
    if "DEVICE" in values:
        device = values["DEVICE"]
        if not (isinstance(device, str) and re.match(r"^(auto|cpu|cuda(:\d+)?|mps)$", device)):
            _fail("DEVICE", device, "auto, cpu, cuda, cuda:<index> or mps")
    if "HEAD_INIT" in values:
        _choice("HEAD_INIT", values["HEAD_INIT"], ("fresh", "finetune"))
