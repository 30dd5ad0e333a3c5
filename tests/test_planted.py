"""kc.studies.planted.pairs: the planted parts are exact, the shares known, and a linear plant is recovered."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from kc.core.metrics import variance
from kc.studies.planted import pairs as planted
from kc.studies.planted.pairs import PARTS, planted_pair, random_network


@pytest.mark.parametrize("depth", planted.DEPTHS)
@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_parts_sum_to_target_and_shares_are_exact(depth, noise):
    pair = planted_pair(depth, noise=noise, n=64, seed=depth)
    torch.testing.assert_close(sum(pair.parts.values()), pair.x_star, rtol=0, atol=1e-5)
    shares = pair.shares
    assert list(shares) == list(PARTS)
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-5)
    assert shares["noise"] == pytest.approx(noise, abs=1e-5)
    assert variance(pair.x_star) == pytest.approx(1.0, abs=1e-5)
    if depth == 0:
        assert shares["nonlinear"] == 0.0
    else:
        assert shares["nonlinear"] > 0.05  # the ReLUs matter


def test_parts_are_orthogonal():
    pair = planted_pair(2, noise=0.2, n=64)
    p = {k: v.double() for k, v in pair.parts.items()}
    for a, b in (("linear", "nonlinear"), ("linear", "noise"), ("nonlinear", "noise")):
        assert abs(float((p[a] * p[b]).mean())) < 1e-6


def test_nonlinear_part_has_no_linear_patch_component():
    """The nonlinear part is orthogonal to every feature of the 3 x 3 patches of x: no linear
    map of the kind W(0) x can explain any of it (checked with an independent unfold)."""
    pair = planted_pair(1, noise=0.0, n=48, seed=3)
    x = pair.x.double()
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    size = x.shape[2]
    feats = torch.stack(
        [
            padded[:, c, i : i + size, j : j + size]
            for c in range(x.shape[1])
            for i in range(3)
            for j in range(3)
        ],
        dim=-1,
    ).reshape(-1, x.shape[1] * 9)
    r = pair.parts["nonlinear"].double().permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    assert (feats.T @ r).abs().max() < 1e-3 * r.abs().sum()
    assert r.sum(0).abs().max() < 1e-3  # and has no mean (the bias is linear too)


def test_linear_share_is_controlled():
    pair = planted_pair(2, noise=0.2, linear_share=0.25, n=64)
    assert pair.shares["linear"] == pytest.approx(0.25 * 0.8, abs=1e-5)
    assert pair.shares["nonlinear"] == pytest.approx(0.75 * 0.8, abs=1e-5)


@pytest.mark.parametrize("depth", [0, 1, 4])
def test_random_network_depth_and_reach(depth):
    net = random_network(depth, 3, 2, generator=torch.Generator().manual_seed(0))
    assert sum(isinstance(m, torch.nn.ReLU) for m in net) == depth
    x = torch.randn(1, 3, 7, 7)
    x2 = x.clone()
    x2[:, :, 0, :] += 5.0  # change only row 0: outputs from row 2 on see nothing of it
    assert torch.equal(net(x)[:, :, 2:], net(x2)[:, :, 2:])
    assert not torch.equal(net(x)[:, :, :2], net(x2)[:, :, :2])


def test_the_network_depends_on_the_seed_not_on_n():
    small, large = planted_pair(2, n=16, seed=4), planted_pair(2, n=64, seed=4)
    for a, b in zip(small.network.parameters(), large.network.parameters(), strict=True):
        assert torch.equal(a, b)
    other = planted_pair(2, n=16, seed=5)
    assert not torch.equal(next(small.network.parameters()), next(other.network.parameters()))


def test_same_seed_same_pair_and_given_x_is_used():
    a, b = planted_pair(1, n=16, seed=5), planted_pair(1, n=16, seed=5)
    assert torch.equal(a.x_star, b.x_star)
    x = torch.randn(16, 3, 5, 5)
    c = planted_pair(1, x=x, n=999)
    assert torch.equal(c.x, x) and c.x_star.shape == (16, 3, 5, 5)


def test_split_keeps_structure():
    pair = planted_pair(1, noise=0.3, n=400)
    train, test = pair.split(300)
    assert train.x.shape[0] == 300 and test.x.shape[0] == 100
    assert test.shares["noise"] == pytest.approx(0.3, abs=0.05)  # sampling error only
    with pytest.raises(
        ValueError, match="n_train must leave at least 2 samples on each side, got 399 of 400"
    ):
        pair.split(399)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(depth=1, noise=1.0), r"noise must lie in \[0, 1\), got 1.0"),
        (
            dict(depth=0, linear_share=0.5),
            "depth 0 is linear: linear_share must be None or 1, got 0.5",
        ),
        (dict(depth=-1), "depth must be an integer >= 0, got -1"),
        (dict(depth=1, linear_share=2.0), r"linear_share must lie in \[0, 1\], got 2.0"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        planted_pair(n=8, **kwargs)


def test_design_varies_one_factor_at_a_time():
    cases = planted.design((0, 2))
    per_depth = 1 + sum(
        len([v for v in vs if v != planted.BASE[k]]) for k, vs in planted.VARY.items()
    )
    assert len(cases) == 2 * per_depth
    for case in cases:
        differ = [k for k in planted.BASE if case[k] != planted.BASE[k]]
        assert differ == ([] if case["varied"] == "base" else [case["varied"]])
    with pytest.raises(ValueError, match="cannot vary 'width'"):
        planted.design((0,), vary=dict(width=(1,)))


def test_a_linear_plant_is_recovered_by_order_zero():
    """Depth 0 (linear) with 30 % noise: x(0) carries the linear share, the higher orders
    almost nothing, and the held-out instability is the noise share."""
    pair = planted_pair(0, noise=0.3, n=256, seed=1)
    train, test = pair.split(128)
    # the library's default budget: the plateau rule stops the fit long before it
    row = planted.recover(train, test, order=1, lam=0.1, steps=2000, baselines=False)
    assert row["err_linear"] == pytest.approx(0.0, abs=0.05)
    assert row["share_higher"] < 0.05
    assert row["err_noise"] == pytest.approx(0.0, abs=0.05)


def test_benchmark_script_quick(tmp_path, monkeypatch):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "planted.py"
    spec = importlib.util.spec_from_file_location("bench_planted", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_planted", module)
    spec.loader.exec_module(module)
    argv = ["--quick", "--depths", "0", "--steps", "20", "--out", str(tmp_path)]
    assert module.main(argv) == 0
    table = pd.read_csv(tmp_path / "planted_quick.csv")
    assert len(table) == 3 and set(table["varied"]) == {"base", "lam", "noise"}
    for col in ("planted_linear", "share_x0", "instability", "linear_cka", "ridge_r2"):
        assert table[col].notna().all()
