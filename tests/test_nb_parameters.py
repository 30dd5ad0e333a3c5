"""One copy of the defaults: every notebook's parameters cell equals the smoke profile on every
shared name, and each profile names only parameters some notebook declares (no execution)."""

from __future__ import annotations

import pytest
import yaml
from conftest import notebook_params

from kc.run.notebook_params import SECTIONS, profile_values
from kc.run.runner import MANIFEST, PROFILES_DIR, notebooks_dir

# planned notebooks are checked once their file exists
NOTEBOOKS = [
    entry.name
    for entry in MANIFEST
    if not entry.planned or (notebooks_dir() / f"{entry.name}.ipynb").exists()
]
PROFILES = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def _profile(name: str) -> dict:
    return yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text())


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_defaults_are_the_smoke_profile(notebook: str) -> None:
    params, smoke = notebook_params(notebook), profile_values(_profile("smoke"), notebook)
    shared = sorted(set(params) & set(smoke))
    assert "PROFILE" in shared and "OUTPUT_DIR" in shared
    differ = {n: (params[n], smoke[n]) for n in shared if params[n] != smoke[n]}
    assert not differ, f"{notebook}: parameters cell vs smoke.yaml differ: {differ}"


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_name_only_parameters_some_notebook_declares(profile: str) -> None:
    declared = set().union(*(notebook_params(nb) for nb in NOTEBOOKS))
    values = _profile(profile)
    unknown = sorted(set(values) - declared - {SECTIONS})
    assert not unknown, f"{profile}.yaml names parameters no notebook declares: {unknown}"
    for notebook, own in (values.get(SECTIONS) or {}).items():
        assert notebook in NOTEBOOKS, f"{profile}.yaml: {SECTIONS} names {notebook}"
        unknown = sorted(set(own) - set(notebook_params(notebook)))
        assert not unknown, f"{profile}.yaml: {notebook} does not declare {unknown}"


def test_the_g_budget_is_counted_in_steps() -> None:
    declared = set().union(*(notebook_params(nb) for nb in NOTEBOOKS))
    assert "G_STEPS" in declared and "G_EPOCHS" not in declared
