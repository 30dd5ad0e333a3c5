"""Profiles, parameter filtering and executing notebooks with papermill (kc.run.runner)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from kc.run import manifest, records, runner

ROOT = Path(__file__).resolve().parents[1]

# The shared vocabulary of CONTRIBUTING.md ("Notebook parameters").
VOCABULARY = {
    "PROFILE", "OUTPUT_DIR", "DEVICE", "DATASET", "MIX_DATASETS", "SUBSET_DATASET", "SUBSET",
    "INPUT_SIZE", "WIDTH", "TRAIN_LIMIT", "EVAL_LIMIT", "EPOCHS", "BATCH_SIZE", "OPTIMIZER", "LR",
    "SEEDS", "FIT_LIMIT", "TEST_LIMIT", "ORDER", "LAMBDA", "LAMBDA_ALEXNET", "G_STEPS", "G_LR",
    "G_BATCH_SIZE", "G_PRECISION", "FT_EPOCHS", "FT_LR", "ORDERS_NETWORK", "CROSS_TASK_NETWORK", "N_SHOW",
    "FIG4_LAYER", "FIG4_SEEDS", "PRUNE_AMOUNTS", "PRUNE_FT_EPOCHS", "PRUNE_FT_LR", "GENERATIONS",
    "DISTILL_TAU", "DISTILL_WEIGHT",
}  # fmt: skip
# The beyond-the-paper notebooks (baselines, grounding, planted; issue 12).
VOCABULARY |= {"PLANTED_N", "PLANTED_STEPS", "PLANTED_SEEDS", "PLANTED_DEPTHS", "PLANTED_VARY",
               "GROUNDING_ARCH", "NOISE_LEVELS", "NOISE_REPEATS"}  # fmt: skip
# Tables 3-4's seed pairs and the paper's over-fitting regime (issue 24).
VOCABULARY |= {"PAIRS", "OVERFIT_PER_CLASS", "OVERFIT_EPOCHS"}
# Table 1's convergence check and feature-point experiment (issue 8).
VOCABULARY |= {"CONVERGENCE_BUDGETS", "FEATURE_POINT_CHECK"}
# values for one notebook only: Tables 3 and 4's columns (NETWORKS)
VOCABULARY |= {"NOTEBOOKS"}


def make_notebook(folder: Path, name: str, params: str, body: str) -> Path:
    """A notebook whose cell tagged `parameters` is `params`, followed by `body`."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name}"), cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


TINY_PARAMS = "PROFILE = 'smoke'\nOUTPUT_DIR = 'outputs'\nSEEDS = [9]\nLR = 0.5\nWIDTH = 3.0"
TINY_BODY = """import csv, json, os, pathlib
out = pathlib.Path(OUTPUT_DIR) / NAME
out.mkdir(parents=True, exist_ok=True)
values = dict(PROFILE=PROFILE, SEEDS=SEEDS, LR=LR, WIDTH=WIDTH, CWD=os.getcwd(),
              DEFINED=sorted(k for k in globals() if k.isupper()))
with open(out / 'values.csv', 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['name', 'value'])
    writer.writerows([k, json.dumps(v)] for k, v in values.items())
"""


def tiny(folder: Path, name: str = "tiny") -> Path:
    return make_notebook(folder, name, TINY_PARAMS, f"NAME = {name!r}\n" + TINY_BODY)


def read_values(path: Path) -> dict[str, object]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {k: json.loads(v) for k, v in zip(frame["name"], frame["value"], strict=True)}


# ------------------------------------------------------------------------------------ profiles


def _contributing_vocabulary() -> set[str]:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    section = text.split("## Notebook parameters", 1)[1]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


def test_vocabulary_matches_contributing() -> None:
    if not (ROOT / "CONTRIBUTING.md").is_file():
        pytest.skip("no CONTRIBUTING.md")
    assert _contributing_vocabulary() == VOCABULARY


@pytest.mark.parametrize("name", ["smoke", "small", "paper"])
def test_profiles_hold_the_shared_vocabulary(name: str) -> None:
    profile = runner.load_profile(name)
    assert set(profile) == VOCABULARY
    assert profile["PROFILE"] == name
    for key in ("LR", "G_LR", "FT_LR", "LAMBDA", "LAMBDA_ALEXNET", "WIDTH"):
        assert isinstance(profile[key], float), (key, profile[key])
    for key in ("EPOCHS", "G_STEPS", "FT_EPOCHS", "ORDER", "INPUT_SIZE", "BATCH_SIZE"):
        assert isinstance(profile[key], int), (key, profile[key])
    assert profile["ORDER"] == 2 and profile["LAMBDA"] == 0.1 and profile["LAMBDA_ALEXNET"] == 8.0
    assert len(profile["MIX_DATASETS"]) == 2 and len(profile["SEEDS"]) >= 2
    assert profile["DEVICE"] == "auto" and profile["OPTIMIZER"] in ("adam", "sgd")


def test_profile_scales() -> None:
    smoke, small, paper = (runner.load_profile(n) for n in ("smoke", "small", "paper"))
    assert smoke["EPOCHS"] == 1 and smoke["TRAIN_LIMIT"] <= 1000 and smoke["SEEDS"] == [0, 1]
    for key in ("TRAIN_LIMIT", "FIT_LIMIT", "TEST_LIMIT", "G_STEPS", "EPOCHS"):
        assert smoke[key] <= small[key], key
    assert small["SEEDS"] == [0, 1, 2] and small["DATASET"] == "fashion-mnist"
    assert paper["DATASET"] == "cub200" and paper["MIX_DATASETS"] == ["cub200", "stanford-dogs"]
    assert (paper["SUBSET_DATASET"], paper["SUBSET"]) == ("voc2012", "animals")
    assert (paper["INPUT_SIZE"], paper["WIDTH"], paper["TRAIN_LIMIT"]) == (224, 1.0, None)
    assert (paper["OPTIMIZER"], paper["LR"]) == ("sgd", 0.01)
    assert runner.available_profiles() == ["paper", "small", "smoke"]


def test_profile_from_file_and_errors(tmp_path) -> None:
    custom = tmp_path / "mine.yaml"
    custom.write_text("EPOCHS: 7\nSEEDS: [1]\n")
    assert runner.load_profile(custom) == {"EPOCHS": 7, "SEEDS": [1], "PROFILE": "mine"}
    with pytest.raises(ValueError, match=r"unknown profile 'huge'.*\['paper', 'small', 'smoke'\]"):
        runner.load_profile("huge")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 7\n")
    with pytest.raises(ValueError, match=r"not UPPER_CASE identifiers: \['epochs'\]"):
        runner.load_profile(bad)


@pytest.mark.parametrize(
    ("text", "value"),
    [("[0, 1]", [0, 1]), ("null", None), ("1e-3", 0.001), ("0.1", 0.1), ("3", 3),
     ("adam", "adam"), ("true", True), ("[fashion-mnist, mnist-5k]", ["fashion-mnist", "mnist-5k"])],
)  # fmt: skip
def test_parse_value(text: str, value: object) -> None:
    assert runner.parse_value(text) == value
    assert type(runner.parse_value(text)) is type(value)


# ------------------------------------------------------------------------------------ manifest


def test_manifest() -> None:
    names = [nb.name for nb in runner.MANIFEST]
    assert len(names) == len(set(names))
    assert names[0] == "00_toy_consistency"
    assert {
        "table1_instability",
        "table2_order_variances",
        "table3_refinement",
        "table4_redundant",
        "sec41_diagnosis",
        "fig2_architecture",
    } <= set(names)
    for nb in runner.MANIFEST:
        if not nb.planned:
            assert (runner.notebooks_dir() / f"{nb.name}.ipynb").is_file(), nb.name
    for nb in runner.MANIFEST:
        assert nb.part in ("tutorial", "paper", "beyond") and nb.outputs


def test_resolve_notebook(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"unknown notebook 'nope'; the manifest has: 00_toy"):
        runner.resolve_notebook("nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        runner.resolve_notebook(tmp_path / "missing.ipynb")
    assert runner.resolve_notebook(tiny(tmp_path)) == (tmp_path / "tiny.ipynb").resolve()


# ------------------------------------------------------------------------------------ parameters


def test_parameters_are_filtered_to_those_declared(tmp_path) -> None:
    path = tiny(tmp_path)
    values = runner.notebook_parameters(path, "small", {"LR": 0.25}, tmp_path / "out")
    # The profile has 26 names; the notebook declares 5 of them.
    assert values == {
        "PROFILE": "small",
        "OUTPUT_DIR": str((tmp_path / "out").resolve()),
        "SEEDS": [0, 1, 2],
        "WIDTH": 0.25,
        "LR": 0.25,
    }
    with pytest.raises(ValueError, match=r"does not declare \['EPOCHS'\]"):
        runner.notebook_parameters(path, "small", {"EPOCHS": 3})
    relaxed = runner.notebook_parameters(path, "small", {"EPOCHS": 3}, strict=False)
    assert "EPOCHS" not in relaxed


def test_output_dir_comes_only_from_the_output_root(tmp_path) -> None:
    # -p OUTPUT_DIR would send the CSVs to one folder and the executed notebook to another
    with pytest.raises(ValueError, match="--output-root /elsewhere"):
        runner.notebook_parameters(tiny(tmp_path), "small", {"OUTPUT_DIR": "/elsewhere"})
    # run_all refuses it before running anything, instead of failing every notebook
    with pytest.raises(ValueError, match="--output-root /elsewhere"):
        runner.run_all(
            "smoke", parameters={"OUTPUT_DIR": "/elsewhere"}, notebooks=[tiny(tmp_path)],
            output_root=tmp_path / "out",
        )  # fmt: skip
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------ running


def test_run_notebook_injects_the_profile(tmp_path) -> None:
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    path = tiny(nb_dir)
    out = tmp_path / "out"
    executed = runner.run_notebook(
        path, profile="smoke", parameters={"SEEDS": [4, 5]}, output_root=out
    )
    assert executed == out.resolve() / "notebooks" / "tiny.ipynb"
    values = read_values(out / "tiny" / "values.csv")
    assert values["PROFILE"] == "smoke"
    assert values["SEEDS"] == [4, 5]  # explicit beats the profile
    smoke = runner.load_profile("smoke")  # tiny's own defaults are LR 0.5 and WIDTH 3.0
    assert (values["LR"], values["WIDTH"]) == (smoke["LR"], smoke["WIDTH"])
    assert values["CWD"] == str(nb_dir.resolve())  # outside a repository: the notebook's folder
    assert set(values["DEFINED"]) == {"PROFILE", "OUTPUT_DIR", "SEEDS", "LR", "WIDTH", "NAME"}
    record = json.loads((out / "tiny" / "run.json").read_text())
    assert record["status"] == "ok" and record["profile"] == "smoke" and record["seconds"] > 0
    tags = [c.metadata.get("tags", []) for c in nbformat.read(executed, as_version=4).cells]
    assert ["injected-parameters"] in tags


def test_run_all_goes_on_after_a_failure(tmp_path) -> None:
    bad = make_notebook(tmp_path, "bad", "PROFILE = 'smoke'", "raise RuntimeError('planted')")
    good = tiny(tmp_path, "good")
    out = tmp_path / "out"
    summary = runner.run_all("smoke", notebooks=[bad, good], output_root=out)
    assert [r.name for r in summary.results] == ["bad", "good"]
    assert summary.failures == ["bad"] and summary.returncode == 1
    assert "planted" in summary.results[0].error
    assert "FAILED: bad" in str(summary)
    assert read_values(out / "good" / "values.csv")["PROFILE"] == "smoke"
    record = json.loads((out / "bad" / "run.json").read_text())
    assert record["status"] == "failed" and "planted" in record["error"]
    # the failed copy is kept beside (never over) the last good one, and the record says where
    failed = out / "notebooks" / "bad.failed.ipynb"
    assert failed.is_file() and not (out / "notebooks" / "bad.ipynb").exists()
    assert record["failed_notebook"] == "notebooks/bad.failed.ipynb"  # relative to the root
    assert "bad.failed.ipynb" in str(summary)


PLANNED = runner.Notebook("fig9_future", "Fig. 9", "not written yet", ("x.csv",), planned=True)


def test_run_all_reports_missing_and_planned_notebooks(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(manifest, "notebooks_dir", lambda: tmp_path)
    monkeypatch.setattr(manifest, "MANIFEST", (*runner.MANIFEST, PLANNED))
    summary = runner.run_all("smoke", output_root=tmp_path / "out")
    status = {r.name: r.status for r in summary.results}
    assert status["table1_instability"] == "failed" and status["fig9_future"] == "skipped"
    assert summary.returncode == 1
    assert [r.name for r in summary.results] == [nb.name for nb in manifest.MANIFEST]


def test_run_all_rejects_parameters_no_notebook_declares(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"no notebook declares \['EPOCH'\]"):
        runner.run_all("smoke", notebooks=[tiny(tmp_path)], parameters={"EPOCH": 1})


def test_submitit_local_executor_runs_a_notebook(tmp_path) -> None:
    out = tmp_path / "out"
    executed = runner.run_notebook(
        tiny(tmp_path),
        profile="smoke",
        output_root=out,
        executor="local",
        executor_options={"timeout_min": 5},
    )
    assert executed.is_file()
    assert read_values(out / "tiny" / "values.csv")["LR"] == 0.001
    assert list((out / "submitit").glob("*_log.out"))  # the job's log


def test_slurm_executor_settings(tmp_path, monkeypatch) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{__import__('os').environ['PATH']}")
    executor = runner.make_executor(
        "slurm",
        tmp_path / "jobs",
        partition="gpu",
        gpus_per_node=1,
        cpus_per_task=8,
        mem_gb=64,
        timeout_min=90,
    )
    script = executor._executor._make_submission_file_text("python -m x", "uid")
    for line in (
        "--partition=gpu",
        "--gpus-per-node=1",
        "--cpus-per-task=8",
        "--mem=64GB",
        "--time=90",
    ):
        assert f"#SBATCH {line}" in script
    with pytest.raises(ValueError, match="'local' or 'slurm'"):
        runner.make_executor("pbs", tmp_path)


def test_profiles_are_valid_yaml_mappings() -> None:
    for path in sorted(runner.PROFILES_DIR.glob("*.yaml")):
        assert isinstance(yaml.safe_load(path.read_text()), dict), path


def test_repository_notebooks_run_from_the_root() -> None:
    assert manifest.working_dir(ROOT / "notebooks" / "table1_instability.ipynb") == ROOT


# ------------------------------------------------------------------------------------ checks


def test_a_misspelt_profile_name_is_refused(tmp_path) -> None:
    # before: EPOCH was dropped and the notebook silently ran with its default EPOCHS
    custom = tmp_path / "mine.yaml"
    custom.write_text("EPOCH: 3\nSEEDS: [1]\n")
    with pytest.raises(ValueError, match=r"mine.yaml has EPOCH \(did you mean EPOCHS\?\)"):
        runner.notebook_parameters(tiny(tmp_path), custom)
    with pytest.raises(ValueError, match=r"did you mean EPOCHS"):
        runner.run_all(custom, notebooks=[tiny(tmp_path)], output_root=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SEEDS", "abc", r"SEEDS = 'abc': expected a list of integers"),
        ("DATASET", "cifar10", r"DATASET = 'cifar10': expected one of"),
        ("EPOCHS", "two", r"EPOCHS = 'two': expected an integer"),
        ("TRAIN_LIMIT", -5, r"TRAIN_LIMIT = -5: expected a positive integer or null"),
    ],
)
def test_bad_parameters_stop_before_anything_runs(tmp_path, name, value, expected) -> None:
    # before: accepted, and the notebook failed later (or ran with nonsense)
    table1 = runner.resolve_notebook("table1_instability")
    with pytest.raises(ValueError, match=expected):
        runner.notebook_parameters(table1, "smoke", {name: value})
    with pytest.raises(ValueError, match=expected):
        runner.run_all(
            "smoke", parameters={name: value}, notebooks=[tiny(tmp_path), table1],
            output_root=tmp_path / "out",
        )  # fmt: skip
    assert not (tmp_path / "out").exists()  # the tiny notebook, first in line, did not run


def test_null_is_accepted_where_a_profile_uses_it() -> None:
    table1 = runner.resolve_notebook("table1_instability")
    values = runner.notebook_parameters(table1, "smoke", {"TRAIN_LIMIT": None, "LR": 1})
    assert values["TRAIN_LIMIT"] is None and values["LR"] == 1.0
    with pytest.raises(ValueError, match=r"EPOCHS = None: expected an integer \(like"):
        runner.notebook_parameters(table1, "smoke", {"EPOCHS": None})


def test_a_string_parameter_given_no_stays_a_string(tmp_path) -> None:
    path = make_notebook(tmp_path, "words", "PROFILE = 'smoke'\nWORD = 'yes'", "pass")
    assert runner.parse_value("no") == "no" and runner.parse_value("off") == "off"
    values = runner.notebook_parameters(path, "smoke", {"WORD": runner.parse_value("no")})
    assert values["WORD"] == "no"
    custom = tmp_path / "words.yaml"
    custom.write_text("WORD: no\n")
    assert runner.notebook_parameters(path, custom)["WORD"] == "no"


# ------------------------------------------------------------------------------------ skipping


def test_an_unchanged_notebook_is_skipped_and_force_reruns_it(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="kc.run.runner")
    path, out = tiny(tmp_path), tmp_path / "out"
    first = runner.execute(path, profile="smoke", output_root=out)
    record = json.loads((out / "tiny" / "run.json").read_text())
    assert first.status == "ok" and record["run_key"]["key"] and record["outputs"] == ["values.csv"]
    assert record["load"] >= 0  # the machine's load beside the wall time
    stamp = (out / "notebooks" / "tiny.ipynb").stat().st_mtime_ns
    second = runner.execute(path, profile="smoke", output_root=out)
    assert (
        second.status == "skipped" and second.executed == out.resolve() / "notebooks" / "tiny.ipynb"
    )
    assert second.note == f"unchanged since {record['finished']}"
    assert (out / "notebooks" / "tiny.ipynb").stat().st_mtime_ns == stamp
    assert runner.execute(path, profile="smoke", output_root=out, force=True).status == "ok"
    # a missing output, or an edited notebook, makes it run again
    (out / "tiny" / "values.csv").unlink()
    assert runner.execute(path, profile="smoke", output_root=out).status == "ok"
    make_notebook(tmp_path, "tiny", TINY_PARAMS, "NAME = 'tiny'  # edited\n" + TINY_BODY)
    assert runner.execute(path, profile="smoke", output_root=out).status == "ok"
    assert runner.execute(path, profile="smoke", output_root=out).status == "skipped"


def test_a_changed_parameter_reruns_exactly_the_notebooks_that_use_it(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="kc.run.runner")
    uses = tiny(tmp_path, "uses_seeds")
    other = make_notebook(
        tmp_path, "no_seeds", "PROFILE = 'smoke'\nOUTPUT_DIR = 'outputs'\nLR = 0.5",
        "import pathlib\nout = pathlib.Path(OUTPUT_DIR) / 'no_seeds'\nout.mkdir(exist_ok=True)\n"
        "(out / 'lr.txt').write_text(str(LR))",
    )  # fmt: skip
    out = tmp_path / "out"
    first = runner.run_all("smoke", notebooks=[uses, other], output_root=out)
    assert [r.status for r in first.results] == ["ok", "ok"]
    assert "notebook 1/2 uses_seeds; elapsed 0:00; time left unknown" in caplog.text
    caplog.clear()
    again = runner.run_all("smoke", notebooks=[uses, other], output_root=out)
    assert [r.status for r in again.results] == ["skipped", "skipped"]
    assert "0 notebooks ran, 2 skipped" in str(again)
    assert "uses_seeds: skipped: unchanged since" in caplog.text
    assert "notebook 1/2 uses_seeds; elapsed 0:00; about 0:00 left" in caplog.text
    caplog.clear()
    changed = runner.run_all("smoke", notebooks=[uses, other], output_root=out,
                             parameters={"SEEDS": [7]})  # fmt: skip
    assert [r.status for r in changed.results] == ["ok", "skipped"]
    assert read_values(out / "uses_seeds" / "values.csv")["SEEDS"] == [7]
    assert "changed since the last run: parameters" in caplog.text
    # the estimate of the time left comes from the earlier run records
    seconds = json.loads((out / "uses_seeds" / "run.json").read_text())["seconds"]
    back = runner.run_all("smoke", notebooks=[uses, other], output_root=out)
    assert [r.status for r in back.results] == ["ok", "skipped"]
    assert runner.progress_line(1, 2, "uses_seeds", 0, seconds, 0) in caplog.text


def test_the_estimate_comes_only_from_runs_of_the_same_profile(tmp_path) -> None:
    # before: the time left after a smoke run was estimated from the smoke run's wall time
    path, out = tiny(tmp_path), tmp_path / "out"
    runner.execute(path, profile="smoke", output_root=out)
    seconds = runner.read_record(out, "tiny")["seconds"]
    todo = [("tiny", path)]
    assert records.estimate(out, todo, {}, "smoke") == {"tiny": seconds}
    assert records.estimate(out, todo, {}, "small") == {"tiny": None}
    assert records.estimate(out, todo, {"tiny": True}, "small") == {"tiny": 0.0}


class _InlineExecutor:
    """Stands in for submitit's Slurm executor: runs each submitted job at once."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, fn, *args):
        self.submitted.append(Path(args[0]).stem)
        result = fn(*args)
        return type("Job", (), {"job_id": str(len(self.submitted)), "result": lambda s: result})()


def test_run_all_with_slurm_submits_every_notebook_first(tmp_path, monkeypatch) -> None:
    executor = _InlineExecutor()
    monkeypatch.setattr(runner, "make_executor", lambda kind, folder, **kw: executor)
    paths = [tiny(tmp_path, "one"), tiny(tmp_path, "two")]
    summary = runner.run_all("smoke", notebooks=paths, output_root=tmp_path / "out",
                             executor="slurm", parameters={"SEEDS": [4]})  # fmt: skip
    assert executor.submitted == ["one", "two"]
    assert [r.status for r in summary.results] == ["ok", "ok"]
    assert read_values(tmp_path / "out" / "two" / "values.csv")["SEEDS"] == [4]


def test_progress_line() -> None:
    assert (
        runner.progress_line(3, 6, "t2", 3725, 90, 0)
        == "notebook 3/6 t2; elapsed 1:02:05; about 1:30 left"
    )
    assert (
        runner.progress_line(1, 6, "t", 0, 0, 6)
        == "notebook 1/6 t; elapsed 0:00; time left unknown"
    )


# ------------------------------------------------------------------------------------ cache warnings


WARN_BODY = """from kc.engine import cache
path = cache.path_for('demo', {'n': 1})
path.parent.mkdir(parents=True, exist_ok=True)
path.write_bytes(b'not a torch file')
path.with_suffix('.json').write_text('{}')
assert cache.load('demo', {'n': 1}) is None
import pathlib
out = pathlib.Path(OUTPUT_DIR) / 'warns'
out.mkdir(exist_ok=True)
(out / 'done.txt').write_text('done')
"""


def test_cache_warnings_reach_the_run_record(tmp_path, monkeypatch) -> None:
    # before: "deleting unreadable cache file" went only to the kernel's stderr
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    path = make_notebook(tmp_path, "warns", "PROFILE = 'smoke'\nOUTPUT_DIR = 'outputs'", WARN_BODY)
    result = runner.execute(path, profile="smoke", output_root=tmp_path / "out")
    record = json.loads((tmp_path / "out" / "warns" / "run.json").read_text())
    assert (
        len(record["warnings"]) == 1 and "deleting unreadable cache file" in record["warnings"][0]
    )
    assert result.warnings == record["warnings"]
    assert "warning (warns): kc.engine.cache: deleting unreadable" in str(runner.RunSummary([result]))


def test_a_profile_section_gives_one_notebook_its_own_values(tmp_path) -> None:
    """NOTEBOOKS: {name: {...}} overrides the shared values for that notebook only, and names
    in a section are checked against that notebook's parameters."""
    from kc.run.notebook_params import notebook_parameters

    small = runner.load_profile("small")
    t3 = notebook_parameters(runner.resolve_notebook("table3_refinement"), "small")
    t4 = notebook_parameters(runner.resolve_notebook("table4_redundant"), "small")
    assert t3["NETWORKS"] == small["NOTEBOOKS"]["table3_refinement"]["NETWORKS"]
    assert len(t3["NETWORKS"]) == 5 and len(t4["NETWORKS"]) == 4 and t3["SEEDS"] == t4["SEEDS"]
    assert "NOTEBOOKS" not in t3
    bad = tmp_path / "bad.yaml"
    bad.write_text("SEEDS: [0, 1]\nNOTEBOOKS:\n  table3_refinement:\n    NETWORK: []\n")
    with pytest.raises(ValueError, match=r"NOTEBOOKS.table3_refinement, has NETWORK"):
        notebook_parameters(runner.resolve_notebook("table3_refinement"), bad)
    bad.write_text("NOTEBOOKS:\n  table33_refinement:\n    NETWORKS: []\n")
    with pytest.raises(ValueError, match="not a notebook of the manifest"):
        runner.load_profile(bad)
