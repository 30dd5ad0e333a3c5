"""Fitting g (Eq. 2) on planted structure: known answers, determinism, errors."""

import pytest
import torch

import kc

N_TRAIN, N_TEST = 384, 128


def features(seed, n=N_TRAIN + N_TEST, c=8, hw=6):
    """Synthetic maps whose spatial positions are independent samples."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, hw, hw, generator=gen)


def split(x, t):
    return (x[:N_TRAIN], t[:N_TRAIN]), (x[N_TRAIN:], t[N_TRAIN:])


def fit(x, t, **kw):
    (xa, ta), test = split(x, t)
    kw.setdefault("progress", False)
    return kc.consistency(xa, ta, test=test, **kw)


@pytest.mark.parametrize("seed", [0, 1])
def test_permuted_copy_is_zero_order_consistent(seed):
    # Footnote 1: a channel permutation carries the same knowledge.
    x = features(seed)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(seed + 10))
    res = fit(x, x[:, perm], order=2, batch_size=32)
    assert res.evaluated_on == "test"
    assert res.instability < 0.02
    assert res.variances["Var(x0)"] > 0.95 * res.variances["Var(x*)"]


def test_independent_target_is_inconsistent():
    x, t = features(0), features(1)
    res = fit(x, t, order=2)
    assert res.instability > 0.9


def test_half_copy_half_noise():
    x, noise = features(0), features(1)
    t = torch.cat([x[:, [5, 2, 7, 0]], noise[:, :4]], dim=1)
    res = fit(x, t, order=2)
    assert 0.4 < res.instability < 0.6


def eq1_target(x, seed=3):
    """x* = M (x + ReLU(V x)) with 1x1 maps M, V: Eq. 1's own form with K = 1."""
    gen = torch.Generator().manual_seed(seed)
    c = x.shape[1]
    m, v = torch.randn(c, c, generator=gen) / c**0.5, torch.randn(c, c, generator=gen) / c**0.5
    mix = lambda w, z: torch.einsum("oc,nchw->nohw", w, z)  # noqa: E731
    return mix(m, x + torch.relu(mix(v, x)))


def test_first_order_branch_recovers_the_nonlinear_part():
    x = features(0)
    t = eq1_target(x)
    linear = fit(x, t, order=0, kernel_size=1)
    nonlinear = fit(x, t, order=1, kernel_size=1, lam=0.01)
    assert linear.instability > 0.05  # a linear map cannot express the ReLU part
    assert nonlinear.instability < 0.5 * linear.instability
    assert nonlinear.variances["Var(x1)"] > 0.01


def test_larger_lambda_moves_variance_to_low_orders():
    x = features(0)
    t = eq1_target(x)
    small = fit(x, t, order=2, kernel_size=1, lam=0.001)
    large = fit(x, t, order=2, kernel_size=1, lam=10.0)
    high = lambda r: r.variances["Var(x1)"] + r.variances["Var(x2)"]  # noqa: E731
    assert high(large) < 0.5 * high(small)
    assert large.variances["Var(x0)"] > small.variances["Var(x0)"] * 0.9


def test_order_zero_matches_closed_form_least_squares():
    x = features(0, n=128).permute(0, 2, 3, 1).reshape(-1, 8)  # positions as samples: (N, C)
    gen = torch.Generator().manual_seed(5)
    t = x @ torch.randn(8, 3, generator=gen) + 0.7 * torch.randn(x.shape[0], 3, generator=gen)
    res = kc.consistency(x, t, order=0, epochs=30, batch_size=256, progress=False)
    xn, tn = kc.prepare(res.model, x, t)
    coef = torch.linalg.lstsq(xn.double(), tn.double()).solution
    resid = tn.double() - xn.double() @ coef
    one_minus_r2 = kc.variance(resid) / kc.variance(tn)
    assert res.evaluated_on == "train"
    assert res.instability == pytest.approx(one_minus_r2, abs=0.01)


def test_fit_is_deterministic_under_a_seed():
    x = features(0)[:128]
    t = torch.tanh(x.roll(1, dims=1))
    a = kc.fit_consistency(x, t, order=2, epochs=3, seed=7, progress=False)
    b = kc.fit_consistency(x, t, order=2, epochs=3, seed=7, progress=False)
    c = kc.fit_consistency(x, t, order=2, epochs=3, seed=8, progress=False)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k], rtol=0, atol=0)
    assert not torch.equal(a.weights[0].weight, c.weights[0].weight)


def test_dataset_of_pairs_gives_the_same_fit_as_tensors():
    x = features(0)[:128]
    t = x.flip(1)
    ds = torch.utils.data.TensorDataset(x, t)
    a = kc.fit_consistency(x, t, order=1, epochs=2, progress=False)
    b = kc.fit_consistency(ds, order=1, epochs=2, progress=False)
    torch.testing.assert_close(a(x), b(x), rtol=1e-5, atol=1e-5)


def test_zero_variance_channel_gives_finite_results():
    x = features(0)
    x[:, 3] = 0.0
    t = x.clone()
    t[:, 0] = 2.5
    res = fit(x, t, order=1, epochs=3)
    assert all(torch.isfinite(v).all() for v in res.components.values())
    assert torch.isfinite(torch.tensor(res.instability))


def test_raw_variances_rescale_by_the_target_std():
    x = features(0)
    res = fit(10 * x, 10 * x.flip(1), order=1, epochs=5)
    ratio = res.variances_raw / res.variances
    assert ratio.min() == pytest.approx(100.0, rel=0.02)
    assert ratio.max() == pytest.approx(100.0, rel=0.02)


def test_resize_maps_x_onto_the_target_size():
    x = features(0)[:64]
    t = torch.nn.functional.avg_pool2d(x, 2)
    with pytest.raises(ValueError, match="different spatial sizes .* resize='pool'"):
        kc.fit_consistency(x, t, epochs=1, progress=False)
    g = kc.fit_consistency(x, t, order=0, kernel_size=1, epochs=40, batch_size=8,
                          resize="pool", progress=False)
    res = kc.evaluate_consistency(g, x, t, resize="pool")
    assert res.instability < 0.05


@pytest.mark.parametrize(
    "x, t, kwargs, match",
    [
        (torch.randn(4, 3, 2, 2), torch.randn(5, 3, 2, 2), {}, "same batch size, got 4 and 5"),
        (torch.randn(4, 3, 2), torch.randn(4, 3, 2), {}, r"shape \(N, C\) or \(N, C, H, W\), got shape \(4, 3, 2\)"),
        (torch.full((4, 3), float("nan")), torch.randn(4, 3), {}, "x contains 12 NaN or Inf"),
        (torch.randn(4, 3), torch.randn(4, 3).fill_(float("inf")), {}, "x_star contains"),
        (torch.randn(4, 3), torch.randn(4, 3), {"order": -1}, "order must be an integer >= 0"),
        (torch.randn(4, 3), torch.randn(4, 3), {"lam": -0.1}, "lam must be >= 0"),
        (torch.randn(4, 3), torch.randn(4, 3, 1, 1), {}, "both be maps or both vectors"),
        (torch.randn(4, 3, 2, 2), torch.randn(4, 3, 1, 1), {"resize": "crop"}, "resize must be None or one of"),
    ],
)
def test_bad_input_is_named(x, t, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kc.fit_consistency(x, t, epochs=1, progress=False, **kwargs)
