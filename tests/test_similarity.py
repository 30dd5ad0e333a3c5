"""kc.core.similarity: fast measures against slow references, invariances, planted optima, peers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from kc.core import similarity as sim
from kc.core.similarity import INVARIANCES, MEASURES, PROPERTIES, TRANSFORMS

# ------------------------------------------------------------------ slow references


def _center(m: np.ndarray) -> np.ndarray:
    return m - m.mean(0)


def slow_hsic_biased(kx: np.ndarray, ky: np.ndarray) -> float:
    n = kx.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(kx @ h @ ky @ h)) / (n - 1) ** 2


def slow_hsic_unbiased(kx: np.ndarray, ky: np.ndarray) -> float:
    """The U-statistic over all ordered 4-tuples of distinct samples (Song et al., 2012):
    HSIC = E[k_ij l_ij] + E[k_ij] E[l_qr] - 2 E[k_ij l_iq], each term symmetrised over the
    4! orderings of the tuple."""
    n = kx.shape[0]
    total, count = 0.0, 0
    for tup in itertools.permutations(range(n), 4):
        s = 0.0
        for i, j, q, r in itertools.permutations(tup):
            s += kx[i, j] * ky[i, j] + kx[i, j] * ky[q, r] - 2 * kx[i, j] * ky[i, q]
        total += s / 24
        count += 1
    return total / count


def slow_cka(kx: np.ndarray, ky: np.ndarray, hsic) -> float:
    return hsic(kx, ky) / math.sqrt(hsic(kx, kx) * hsic(ky, ky))


def slow_rbf_gram(m: np.ndarray, sigma: float) -> np.ndarray:
    n = m.shape[0]
    return np.array(
        [
            [math.exp(-np.sum((m[i] - m[j]) ** 2) / (2 * sigma**2)) for j in range(n)]
            for i in range(n)
        ]
    )


def slow_cca(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Canonical correlations from covariance matrices: svd(Sxx^-1/2 Sxy Syy^-1/2)."""
    x, y = _center(x), _center(y)

    def inv_sqrt(s):
        w, v = np.linalg.eigh(s)
        return v @ np.diag(w**-0.5) @ v.T

    sxx, syy, sxy = x.T @ x, y.T @ y, x.T @ y
    return np.linalg.svd(inv_sqrt(sxx) @ sxy @ inv_sqrt(syy), compute_uv=False)


def slow_keep(x: np.ndarray, keep: float) -> int:
    s = np.linalg.svd(_center(x), compute_uv=False)
    var = s**2
    for k in range(1, len(s) + 1):
        if var[:k].sum() >= keep * var.sum():
            return k
    raise AssertionError


def slow_pwcca(x: np.ndarray, y: np.ndarray) -> float:
    """Morcos et al.: canonical weights of x from the covariance form, variates h = x w."""
    x, y = _center(x), _center(y)

    def inv_sqrt(s):
        w, v = np.linalg.eigh(s)
        return v @ np.diag(w**-0.5) @ v.T

    a = inv_sqrt(x.T @ x)
    u, rho, _ = np.linalg.svd(a @ (x.T @ y) @ inv_sqrt(y.T @ y), full_matrices=False)
    h = x @ a @ u  # canonical variates of x, unit norm columns
    m = min(x.shape[1], y.shape[1])
    alpha = np.abs(h[:, :m].T @ x).sum(1)
    return float((alpha * rho[:m]).sum() / alpha.sum())


def slow_procrustes(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.linalg import orthogonal_procrustes

    x, y = _center(x), _center(y)
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    d = max(x.shape[1], y.shape[1])
    x = np.pad(x, ((0, 0), (0, d - x.shape[1])))
    y = np.pad(y, ((0, 0), (0, d - y.shape[1])))
    q, _ = orthogonal_procrustes(y, x)
    return float(np.sum((x - y @ q) ** 2))


def slow_ridge_r2(x, y, lam, xt=None, yt=None) -> float:
    """Ridge with an unpenalised intercept via the augmented normal equations."""
    n, d = x.shape
    xa = np.hstack([x, np.ones((n, 1))])
    pen = lam * np.eye(d + 1)
    pen[-1, -1] = 0.0
    w = np.linalg.solve(xa.T @ xa + pen, xa.T @ y)
    if xt is None:
        xt, yt = x, y
    pred = np.hstack([xt, np.ones((xt.shape[0], 1))]) @ w
    return float(1 - np.sum((yt - pred) ** 2) / np.sum((yt - yt.mean(0)) ** 2))


def _data(seed: int, n: int = 40, dx: int = 6, dy: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dx))
    y = np.tanh(x @ rng.normal(size=(dx, dy))) + 0.5 * rng.normal(size=(n, dy))
    return x, y


# ------------------------------------------------------------- fast == slow


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("method", ["features", "gram"])
def test_linear_cka_equals_slow(seed, method):
    x, y = _data(seed)
    kx, ky = x @ x.T, y @ y.T
    expected = slow_cka(kx, ky, slow_hsic_biased)
    assert sim.linear_cka(x, y, method=method) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("method", ["features", "gram"])
def test_debiased_linear_cka_equals_u_statistic(method):
    x, y = _data(3, n=7, dx=3, dy=2)
    kx, ky = x @ x.T, y @ y.T  # the U-statistic needs no centring
    expected = slow_cka(kx, ky, slow_hsic_unbiased)
    assert sim.linear_cka(x, y, debiased=True, method=method) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("shape", [(30, 4, 7), (12, 50, 80)], ids=["d<n", "n<d"])
def test_feature_space_and_gram_forms_agree(debiased, shape):
    n, dx, dy = shape
    x, y = _data(5, n=n, dx=dx, dy=dy)
    a = sim.linear_cka(x, y, debiased, method="features")
    b = sim.linear_cka(x, y, debiased, method="gram")
    assert a == pytest.approx(b, rel=1e-10, abs=1e-12)
    assert sim.linear_cka(x, y, debiased) == pytest.approx(a, rel=1e-10, abs=1e-12)


def test_rbf_cka_equals_slow():
    x, y = _data(2, n=25)
    sx, sy = 2.0, 1.5
    expected = slow_cka(slow_rbf_gram(x, sx), slow_rbf_gram(y, sy), slow_hsic_biased)
    assert sim.rbf_cka(x, y, sigma=(sx, sy)) == pytest.approx(expected, rel=1e-10)
    x7, y7 = x[:7], y[:7]
    expected_u = slow_cka(slow_rbf_gram(x7, sx), slow_rbf_gram(y7, sy), slow_hsic_unbiased)
    assert sim.rbf_cka(x7, y7, sigma=(sx, sy), debiased=True) == pytest.approx(expected_u, rel=1e-9)


def test_rbf_default_bandwidth_is_median_distance():
    x, y = _data(4, n=21)
    dist = [np.linalg.norm(x[i] - x[j]) for i in range(21) for j in range(i + 1, 21)]
    assert sim.median_bandwidth(x) == pytest.approx(float(np.median(dist)), rel=1e-12)
    sy = float(
        np.median([np.linalg.norm(y[i] - y[j]) for i in range(21) for j in range(i + 1, 21)])
    )
    assert sim.rbf_cka(x, y) == pytest.approx(
        sim.rbf_cka(x, y, sigma=(np.median(dist), sy)), rel=1e-12
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_cca_measures_equal_slow(seed):
    x, y = _data(seed, n=60, dx=6, dy=4)
    rho = slow_cca(x, y)
    assert sim.svcca(x, y, keep=1.0) == pytest.approx(rho.mean(), rel=1e-10)
    torch.testing.assert_close(
        sim.canonical_correlations(torch.tensor(_center(x)), torch.tensor(_center(y))),
        torch.tensor(rho),
        rtol=1e-10,
        atol=1e-12,
    )
    assert sim.pwcca(x, y) == pytest.approx(slow_pwcca(x, y), rel=1e-9)
    keep = 0.9
    kx, ky = slow_keep(x, keep), slow_keep(y, keep)
    assert sim.svd_reduce(x, keep).shape[1] == kx
    u, s, _ = np.linalg.svd(_center(x), full_matrices=False)
    v, t, _ = np.linalg.svd(_center(y), full_matrices=False)
    expected = slow_cca(u[:, :kx] * s[:kx], v[:, :ky] * t[:ky]).mean()
    assert sim.svcca(x, y, keep=keep) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("widths", [(6, 6), (6, 3), (3, 60)])
def test_procrustes_equals_slow(widths):
    x, y = _data(7, n=30, dx=widths[0], dy=widths[1])
    assert sim.procrustes(x, y) == pytest.approx(slow_procrustes(x, y), rel=1e-9)


@pytest.mark.parametrize("shape", [(50, 6), (20, 40)], ids=["primal", "dual"])
def test_ridge_r2_equals_slow(shape):
    n, d = shape
    x, y = _data(8, n=n, dx=d, dy=3)
    alpha = 0.1
    lam = alpha * np.sum(_center(x) ** 2) / d
    assert sim.ridge_r2(x, y, alpha) == pytest.approx(slow_ridge_r2(x, y, lam), rel=1e-9)
    xt, yt = _data(9, n=15, dx=d, dy=3)
    got = sim.ridge_r2(x, y, alpha, test=(xt, yt))
    assert got == pytest.approx(slow_ridge_r2(x, y, lam, xt, yt), rel=1e-9)


def test_ridge_r2_alpha_zero_is_least_squares():
    x, y = _data(10, n=50, dx=5, dy=3)
    assert sim.ridge_r2(x, y, alpha=0.0) == pytest.approx(slow_ridge_r2(x, y, 0.0), rel=1e-10)


# ----------------------------------------------------------------- invariances


def _transform(name: str, m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = m.shape[1]
    if name == "orthogonal":
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        return m @ q
    if name == "isotropic_scaling":
        return 3.7 * m
    if name == "invertible_linear":  # well away from orthogonal: condition number 100
        q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        return m @ q @ np.diag(np.geomspace(1, 100, d))
    if name == "permutation":
        return m[:, rng.permutation(d)]
    if name == "translation":
        return m + rng.normal(size=d) * 10
    raise AssertionError(name)


CASES = [(m, t) for m in MEASURES for t in TRANSFORMS]


@pytest.mark.parametrize(("measure", "transform"), CASES, ids=[f"{m}-{t}" for m, t in CASES])
def test_invariances_are_what_the_table_says(measure, transform):
    rng = np.random.default_rng(11)
    x, y = _data(12, n=80, dx=8, dy=8)
    fn = MEASURES[measure]
    base = fn(x, y)
    changed = [fn(_transform(transform, x, rng), y), fn(x, _transform(transform, y, rng))]
    if INVARIANCES[measure][transform]:
        assert changed == pytest.approx([base, base], rel=1e-8, abs=1e-10)
    else:  # not invariant: some side moves the value visibly
        assert max(abs(c - base) for c in changed) > 1e-3
    assert fn.invariances is INVARIANCES[measure]


def test_svcca_with_full_keep_is_invariant_to_invertible_linear():
    rng = np.random.default_rng(0)
    x, y = _data(13, n=80, dx=8, dy=8)
    assert sim.svcca(_transform("invertible_linear", x, rng), y, keep=1.0) == pytest.approx(
        sim.svcca(x, y, keep=1.0), rel=1e-8
    )


def test_tables_cover_every_measure():
    assert set(INVARIANCES) == set(MEASURES) == set(PROPERTIES)
    for table in INVARIANCES.values():
        assert tuple(table) == TRANSFORMS


# ---------------------------------------------------------------- planted optima


@pytest.mark.parametrize("measure", list(MEASURES))
def test_copy_gives_the_optimum(measure):
    x, _ = _data(14, n=50, dx=6)
    # ridge's default penalty shrinks W slightly below the identity
    tol = 1e-4 if measure == "ridge_r2" else 1e-9
    assert MEASURES[measure](x, x) == pytest.approx(PROPERTIES[measure]["identical"], abs=tol)
    if measure == "ridge_r2":
        assert sim.ridge_r2(x, x, alpha=0.0) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("measure", list(MEASURES))
def test_symmetry_is_what_the_table_says(measure):
    x, y = _data(15, n=50, dx=6, dy=4)
    fn = MEASURES[measure]
    if PROPERTIES[measure]["symmetric"]:
        assert fn(x, y) == pytest.approx(fn(y, x), rel=1e-10)
    else:
        assert abs(fn(x, y) - fn(y, x)) > 1e-3


def test_independent_gaussians_debiased_near_zero_biased_at_its_known_bias():
    """Biased linear CKA of independent isotropic Gaussians X (n, p), Y (n, q): with m = n - 1
    degrees of freedom after centring, E||Y^T X||^2 = p q m and E||X^T X||^2 = m p (m + p + 1)
    (Wishart second moment), so CKA ~ sqrt(p q / ((m + p + 1)(m + q + 1))) = p / (n + p) for
    p = q. With p = 200, n = 50 that is 0.8, while the debiased estimator centres on 0."""
    n, p = 50, 200
    gen = torch.Generator().manual_seed(0)
    biased, debiased = [], []
    for _ in range(5):
        x, y = torch.randn(n, p, generator=gen), torch.randn(n, p, generator=gen)
        biased.append(sim.linear_cka(x, y))
        debiased.append(sim.linear_cka(x, y, debiased=True))
    assert np.mean(biased) == pytest.approx(p / (n + p), abs=0.01)
    assert abs(np.mean(debiased)) < 0.01
    assert min(debiased) < 0 or max(debiased) < 0.02  # negative values are reported, not clamped


def test_debiased_can_be_negative():
    gen = torch.Generator().manual_seed(3)
    values = [
        sim.linear_cka(
            torch.randn(10, 3, generator=gen), torch.randn(10, 3, generator=gen), debiased=True
        )
        for _ in range(20)
    ]
    assert min(values) < 0


# ----------------------------------------------------------------- SVCCA's keep


def test_keep_counts_variance_as_a_fraction_of_the_total():
    """Variances 50, 30, 15, 5 (total 100): 90 % needs 3 directions. The peer bug compares
    the normalised cumulative sum with keep times the unnormalised total (90 here) and keeps
    every direction; it must not be what kc does."""
    rng = np.random.default_rng(0)
    n = 400
    q, _ = np.linalg.qr(rng.normal(size=(n, 4)))
    x = q * np.sqrt([50.0, 30.0, 15.0, 5.0])  # centred columns? make them exactly so
    x = x - x.mean(0)
    s = np.linalg.svd(x, compute_uv=False)
    var = s**2
    buggy = int(np.sum(np.cumsum(var) / var.sum() < 0.9 * var.sum())) + 1
    assert buggy != 3
    assert sim.n_directions(torch.tensor(s), 0.9) == slow_keep(x, 0.9) == 3
    assert sim.svd_reduce(x, 0.9).shape[1] == 3
    assert sim.n_directions(torch.tensor(s), 1.0) == 4
    assert sim.n_directions(torch.tensor(s), 0.5) == 1


@pytest.mark.parametrize("keep", [0.0, 1.5])
def test_keep_out_of_range_is_refused(keep):
    with pytest.raises(ValueError, match=r"keep must lie in \(0, 1\]"):
        sim.svcca(*_data(0), keep=keep)


# -------------------------------------------------------------- maps and inputs


def test_maps_rule():
    x = torch.randn(5, 3, 4, 2, dtype=torch.float64)
    assert sim.as_matrix(x).shape == (5, 24)
    pos = sim.as_matrix(x, "positions")
    assert pos.shape == (40, 3)
    torch.testing.assert_close(pos[1], x[0, :, 0, 1])  # image 0, row 0, column 1
    assert sim.as_matrix(x).dtype == torch.float64
    y = torch.randn(5, 2, 4, 2)
    assert sim.linear_cka(x, y, maps="positions") == pytest.approx(
        sim.linear_cka(pos, sim.as_matrix(y, "positions")), rel=1e-12
    )
    assert sim.linear_cka(x, y) == pytest.approx(
        sim.linear_cka(x.flatten(1), y.flatten(1)), rel=1e-12
    )


def test_pool_rule_compares_maps_of_different_sizes_without_degenerate_cca():
    # 40 images; x is 6 channels at 8x8 (384 flattened features), y the 2x2-pooled channel
    # means of a mix of x's channels at 4x4: flattened, every canonical correlation is 1
    # whatever the features, pooled the correlations say something
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, 8, 8, generator=gen, dtype=torch.float64)
    pooled = sim.as_matrix(x, "pool")
    torch.testing.assert_close(pooled, x.mean(dim=(2, 3)))
    assert sim.as_matrix(torch.randn(3, 4), "pool").shape == (3, 4)  # (N, C) unchanged
    mix = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    y = torch.nn.functional.avg_pool2d(torch.einsum("dc,nchw->ndhw", mix, x), 2)
    noise = torch.randn(40, 6, 4, 4, generator=gen, dtype=torch.float64)
    # y's spatial means are an invertible linear map of x's: all canonical correlations 1
    assert sim.pwcca(x, y, maps="pool") == pytest.approx(1.0, abs=1e-9)
    assert sim.svcca(x, noise, maps="pool", keep=1.0) < 0.8
    with pytest.warns(sim.FewSamplesWarning):
        assert sim.pwcca(x, noise) == pytest.approx(1.0, abs=1e-9)


def test_numpy_and_torch_inputs_agree():
    x, y = _data(16)
    for name, fn in MEASURES.items():
        assert fn(x, y) == pytest.approx(fn(torch.tensor(x), torch.tensor(y)), rel=1e-12), name
        x32, y32 = x.astype(np.float32), y.astype(np.float32)  # computed in float64 all the same
        assert fn(x32, y32) == pytest.approx(fn(torch.tensor(x32), torch.tensor(y32)), rel=1e-12)


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("measure", list(MEASURES))
def test_small_batches_give_finite_values(n, measure):
    x, y = _data(17, n=n, dx=4, dy=3)
    assert math.isfinite(MEASURES[measure](x, y))


def test_a_constant_feature_among_varying_ones_is_fine():
    x, y = _data(18, n=30, dx=4, dy=3)
    x[:, 1] = 2.5
    for name, fn in MEASURES.items():
        assert math.isfinite(fn(x, y)), name


@pytest.mark.parametrize("measure", list(MEASURES))
def test_bad_inputs_are_refused(measure):
    fn = MEASURES[measure]
    x, y = _data(19, n=10)
    with pytest.raises(ValueError, match="same number of samples N, got 10 and 9"):
        fn(x, y[:9])
    with pytest.raises(ValueError, match="x is constant across all 10 samples"):
        fn(np.full_like(x, 0.1), y)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        fn(bad, y)
    with pytest.raises(
        ValueError, match=r"y must have shape \(N, C\) or \(N, C, H, W\), got \(10,\)"
    ):
        fn(x, y[:, 0])
    with pytest.raises(ValueError, match="maps must be one of"):
        fn(x, y, maps="mean")


def test_debiased_refuses_three_samples():
    x, y = _data(20, n=3)
    with pytest.raises(ValueError, match="more than 3 samples.*got n = 3"):
        sim.linear_cka(x, y, debiased=True)
    with pytest.raises(ValueError, match="more than 3 samples"):
        sim.rbf_cka(x, y, debiased=True)


def test_positions_need_equal_spatial_sizes():
    with pytest.raises(ValueError, match=r"same spatial size, got \(4, 4\) and \(2, 2\)"):
        sim.linear_cka(torch.randn(3, 2, 4, 4), torch.randn(3, 2, 2, 2), maps="positions")


def test_compare_all_returns_every_measure():
    x, y = _data(21)
    row = sim.compare_all(x, y)
    assert list(row) == list(MEASURES)
    assert row["linear_cka"] == sim.linear_cka(x, y)
    assert row["rbf_cka"] == sim.rbf_cka(x, y)
    sub = sim.compare_all(x, y, kernel_samples=20)  # RBF on 20 of the 40 samples
    assert sub["rbf_cka"] != row["rbf_cka"] and sub["linear_cka"] == row["linear_cka"]


# ----------------------------------------------------------------------- peers


def test_agrees_with_ckatorch():
    core = pytest.importorskip(
        "ckatorch.core", reason="peer ckatorch not installed (pip install -e .[test])"
    )
    x, y = (torch.tensor(a) for a in _data(22, n=64, dx=10, dy=7))
    assert sim.linear_cka(x, y) == pytest.approx(float(core.cka_base(x, y)), rel=1e-10)
    assert sim.linear_cka(x, y, debiased=True) == pytest.approx(
        float(core.cka_base(x, y, unbiased=True)), rel=1e-10
    )

    def peer_sigma(m):  # ckatorch: sqrt of the median squared distance, zero diagonal included
        return math.sqrt(float(torch.cdist(m, m).pow(2).median()))

    got = sim.rbf_cka(x, y, sigma=(peer_sigma(x), peer_sigma(y)))
    assert got == pytest.approx(float(core.cka_base(x, y, kernel="rbf")), rel=1e-6)


def test_agrees_with_repsim():
    repsim = pytest.importorskip(
        "repsim", reason="peer repsim not installed (pip install -e .[test])"
    )
    x, y = _data(23, n=64, dx=10, dy=7)
    assert sim.linear_cka(x, y) == pytest.approx(
        float(repsim.cka([x, y], kernel_type="linear", estimator="gretton")[0, 1]), rel=1e-10
    )


def test_benchmark_script_quick(tmp_path, monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    import pandas as pd

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_similarity.py"
    spec = importlib.util.spec_from_file_location("bench_similarity", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_similarity", module)
    spec.loader.exec_module(module)
    assert module.main(["--quick", "--repeats", "1", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "similarity_quick.csv")
    assert list(table["n"]) == [n for n, _, _ in module.QUICK_SHAPES]
    assert (table["kc_s"] > 0).all()


def test_cca_warns_when_the_samples_force_correlations_to_one() -> None:
    import warnings

    from kc.core.similarity import FewSamplesWarning, pwcca, svcca

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 15, generator=gen), torch.randn(20, 15, generator=gen)
    # independent features, ranks 15 + 15 > 19: 11 correlations are 1 whatever the data
    with pytest.warns(FewSamplesWarning, match="11 of 15 canonical correlations are 1"):
        value = pwcca(x, y)
    assert value > 0.5  # inflated: what the warning is for
    with pytest.warns(FewSamplesWarning, match="ranks 15 \\+ 15 > 19"):
        svcca(x, y, keep=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewSamplesWarning)  # enough samples: silent
        x, y = torch.randn(200, 15, generator=gen), torch.randn(200, 15, generator=gen)
        assert pwcca(x, y) < 0.3


def test_compare_all_cca_maps_positions_on_wide_maps():
    """Independent maps with C*H*W > N: flattened CCA is forced to 1 (with a warning), while
    cca_maps='positions' (N*H*W samples of C channels) sees them as unrelated; the other
    measures keep ``maps``."""
    import warnings

    from kc.core.similarity import FewSamplesWarning

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(20, 4, 3, 3, generator=g), torch.randn(20, 4, 3, 3, generator=g)
    with pytest.warns(FewSamplesWarning):
        flat = sim.compare_all(x, y)
    assert flat["pwcca"] == pytest.approx(1.0, abs=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewSamplesWarning)
        row = sim.compare_all(x, y, cca_maps="positions")
    assert row["pwcca"] < 0.5 and row["svcca"] < 0.5
    assert row["pwcca"] == pytest.approx(sim.pwcca(x, y, maps="positions"))
    assert row["linear_cka"] == pytest.approx(flat["linear_cka"])
    with pytest.raises(ValueError, match="maps must be one of"):
        sim.compare_all(x, y, cca_maps="pooled")
