"""When does a fit of g stop, and where: the planted scan and AlexNet's fits (issue 23).

``planted``: x* = 3 x[:, perm] + 1 (16 channels, 8 x 8 maps) at N = 16 ... 2048, with
``kc.consistency``'s default arguments and each ``--p-lr-scale``: held-out instability, steps,
and whether the plateau rule fired.

``alexnet``: Table 1's first AlexNet pair (seed 0 -> 1, the small profile's settings, lambda 8)
at ``--layers``, with each ``--p-lr-scale`` and ``--tol``; the networks and features come from
the cache (trained first if missing). Prints steps, how the fit stopped, seconds, the held-out
instability, p(k) and Var(x(1)).

Example:
    python benchmarks/fit_rules.py planted --p-lr-scale 1 10
    python benchmarks/fit_rules.py alexnet --layers conv4 conv5 --p-lr-scale 1 10 --tol 1e-3 3e-4
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import torch

import kc
from kc.core.fit import fit_consistency
from kc.core.measure import evaluate_consistency


def planted(scales: list[float]) -> None:
    for scale in scales:
        for n in (16, 32, 64, 128, 256, 512, 1024, 2048):
            torch.manual_seed(n)
            x = torch.randn(n, 16, 8, 8)
            x_star = 3.0 * x[:, torch.randperm(16)] + 1.0
            start = time.perf_counter()
            res = kc.consistency(x, x_star, progress=False, p_lr_scale=scale)
            fit = res.info["fit"]
            print(f"p_lr_scale={scale:g} N={n} instability={float(res.instability):.4f} "
                  f"steps={fit['steps']} stopped={fit['stopped_by']} "
                  f"{time.perf_counter() - start:.1f}s load={os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip


def alexnet(layers: list[str], scales: list[float], tols: list[float]) -> None:
    from kc.engine import experiments as ex
    from kc.run import manifest, runkey
    from kc.run.notebook_params import notebook_parameters, read_cells
    from kc.studies.instability.run import InstabilityStudy

    path = manifest.resolve_notebook("table1_instability")
    values = notebook_parameters(path, "small", None, "outputs", strict=False)
    study = InstabilityStudy.from_params(runkey.effective_parameters(read_cells(path), values))
    g = study.g.kwargs("alexnet")
    x_spec, t_spec = study.spec("alexnet", study.seeds[0]), study.spec("alexnet", study.seeds[1])
    for layer in layers:
        feats = {
            (name, split): ex.get_features(spec, layer, split=split, limit=limit, progress=False)[0]
            for name, spec in (("x", x_spec), ("t", t_spec))
            for split, limit in (("train", g["fit_limit"]), ("test", g["test_limit"]))
        }
        for tol in tols:
            for scale in scales:
                start = time.perf_counter()
                fitted = fit_consistency(
                    feats["x", "train"], feats["t", "train"], order=g["order"], lam=g["lam"],
                    max_steps=g["g_steps"], lr=g["g_lr"], batch_size=g["g_batch_size"], seed=0,
                    p_lr_scale=scale, tol=tol, progress=False,
                )  # fmt: skip
                res = evaluate_consistency(fitted, feats["x", "test"], feats["t", "test"])
                rep = fitted.fit_report
                print(f"{layer} p_lr_scale={scale:g} tol={tol:g} steps={rep.steps} "
                      f"stopped={rep.stopped_by} seconds={time.perf_counter() - start:.0f} "
                      f"instability={float(res.instability):.4f} "
                      f"p={[round(v, 4) for v in fitted.p.tolist()]} "
                      f"Var(x1)={float(res.variances['Var(x1)']):.4f} "
                      f"load={os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["planted", "alexnet"])
    parser.add_argument("--p-lr-scale", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--tol", type=float, nargs="+", default=[1e-3])
    parser.add_argument("--layers", nargs="+", default=["conv4", "conv5"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", kc.ConvergenceWarning)
    if args.what == "planted":
        planted(args.p_lr_scale)
    else:
        alexnet(args.layers, args.p_lr_scale, args.tol)


if __name__ == "__main__":
    main()
