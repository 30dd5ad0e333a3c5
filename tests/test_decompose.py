"""Eq. 3-4: the order-k components add up exactly to g(x)."""

import pytest
import torch

import kc


@pytest.mark.parametrize("sigma", ["batch", "instance"])
@pytest.mark.parametrize("order", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_components_sum_to_g_of_x(sigma, order, seed):
    torch.manual_seed(seed)
    g = kc.ConsistencyNet(5, 3, order=order, sigma=sigma).double()
    x = torch.randn(16, 5, 6, 6, dtype=torch.float64)
    g.train()
    g(x)  # populate running statistics
    for mode in (True, False):  # batch statistics in training, running ones in eval
        g.train(mode)
        parts = kc.decompose(g, x)
        assert parts.shape == (order + 1, 16, 3, 6, 6)
        torch.testing.assert_close(parts.sum(0), g(x), rtol=1e-12, atol=1e-12)


def test_vectors_decompose_too():
    g = kc.ConsistencyNet(4, 2, order=2).double().eval()
    x = torch.randn(10, 4, dtype=torch.float64)
    parts = kc.decompose(g, x)
    assert parts.shape == (3, 10, 2)
    torch.testing.assert_close(parts.sum(0), g(x), rtol=1e-12, atol=1e-12)


def test_decompose_leaves_running_statistics_alone():
    g = kc.ConsistencyNet(3, 3, order=2).train()
    g(torch.randn(8, 3, 4, 4))
    before = [s.running_var.clone() for s in g.sigmas]
    kc.decompose(g, torch.randn(8, 3, 4, 4) * 10)
    for b, s in zip(before, g.sigmas, strict=True):
        torch.testing.assert_close(b, s.running_var)


def test_zero_order_component_is_linear_in_x():
    g = kc.ConsistencyNet(3, 2, order=2).double().eval()
    g.train()
    g(torch.randn(8, 3, 4, 4, dtype=torch.float64))
    g.eval()
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(kc.decompose(g, 2 * x)[0], 2 * kc.decompose(g, x)[0])


@pytest.mark.filterwarnings("ignore::kc.ConvergenceWarning")
def test_x_star_is_g_plus_delta():
    x = torch.randn(96, 4, 5, 5, dtype=torch.float64)
    t = torch.tanh(x.roll(1, dims=1)) + 0.3 * torch.randn_like(x)
    res = kc.consistency(x.float(), t.float(), order=2, max_steps=30, progress=False)
    total = sum(res.components[f"x{k}"] for k in range(3)) + res.components["delta"]
    torch.testing.assert_close(total, res.target, rtol=0, atol=1e-5)
