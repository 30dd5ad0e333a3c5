"""Steps, seconds and held-out instability of Table 1's fits of g, per layer, from the cache.

Reads (never computes: a missing fit is reported, not fitted) the fits that the Table 1 notebook
of a profile declares, with optional parameter overrides, and prints per layer and case: fits
found, mean optimiser steps, how many stopped on the plateau rule, mean fit seconds (as
recorded when fitted, at that moment's load) and mean held-out instability. Used for issue 23's
before/after table (run it from a checkout of each code version; each finds its own entries).

```bash
KC_CACHE=/work/cache .venv/bin/python benchmarks/table1_fits.py --profile small
KC_CACHE=/work/cache .venv/bin/python benchmarks/table1_fits.py -p G_PRECISION bf16
```
"""

from __future__ import annotations

import argparse
import contextlib
import io
from typing import Any

import pandas as pd
import yaml

from kc.engine import cache
from kc.engine import experiments as ex
from kc.run.manifest import resolve_notebook
from kc.run.notebook_params import declared_parameters, load_profile, profile_values
from kc.studies.instability import run as ins


def report(params: dict[str, Any]) -> pd.DataFrame:
    study = ins.InstabilityStudy.from_params(params)
    rows = []
    for setting, x, t, layer in study.fit_list():
        key = ex.consistency_key(x, layer, t, layer, **study.g.kwargs(x.arch), device="cpu")
        if not (cache.cache_root() / "g" / f"{key}.pt").is_file():
            rows.append({"setting": setting, "arch": x.arch, "layer": layer, "found": False})
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            res = study.fit(x, t, layer)
        fit = res.info["fit"]
        rows.append({"setting": setting, "arch": x.arch, "layer": layer, "found": True,
                     "steps": fit["steps"], "plateau": fit["stopped_by"] == "plateau",
                     "seconds": fit["seconds"], "instability": float(res.instability)})  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="small")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = parser.parse_args()
    # the notebook's declared defaults under the profile's values, as `kc run` resolves them
    params = declared_parameters(resolve_notebook("table1_instability"))
    params.update(profile_values(load_profile(args.profile), "table1_instability"))
    params.update({name: yaml.safe_load(value) for name, value in args.p})
    params["DEVICE"] = "cpu"
    frame = report(params)
    print(f"code version of g: {cache.code_version(ex._G_CODE)}; overrides: {dict(args.p)}")
    missing = int((~frame["found"]).sum())
    if missing:
        print(f"{missing} of {len(frame)} fits are not in the cache")
    found = frame[frame["found"]]
    table = found.groupby(["setting", "arch", "layer"], sort=False).agg(
        fits=("steps", "size"), steps=("steps", "mean"), plateau=("plateau", "sum"),
        seconds=("seconds", "mean"), instability=("instability", "mean"))  # fmt: skip
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
