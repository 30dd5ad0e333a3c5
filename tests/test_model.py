"""ConsistencyNet (Eq. 1): shapes, positivity of p, state round trip, bad input."""

import pytest
import torch

import kc
from kc.core.model import SigmaNorm


@pytest.mark.parametrize("sigma", ["batch", "instance"])
@pytest.mark.parametrize("order", [0, 1, 3])
def test_output_shapes_maps_and_vectors(sigma, order):
    g = kc.ConsistencyNet(6, 4, order=order, sigma=sigma)
    assert g(torch.randn(5, 6, 7, 7)).shape == (5, 4, 7, 7)
    assert g(torch.randn(5, 6)).shape == (5, 4)


def test_p_positive_and_initialised():
    g = kc.ConsistencyNet(3, 3, order=4, p_init=0.3)
    torch.testing.assert_close(g.p, torch.full((4,), 0.3))
    with torch.no_grad():
        g.p_logit.fill_(-50.0)
    assert (g.p > 0).all()


@pytest.mark.filterwarnings("ignore::kc.ConvergenceWarning")
def test_state_dict_round_trip_restores_fitted_g():
    x = torch.randn(64, 4, 5, 5)
    g = kc.fit_consistency(x, x.flip(1), order=2, max_steps=20, progress=False)
    g2 = kc.ConsistencyNet(**g.config)
    g2.load_state_dict(g.state_dict())
    g2.eval()
    torch.testing.assert_close(g2(x), g(x), rtol=0, atol=0)
    torch.testing.assert_close(g2.x_star_std, g.x_star_std)


def test_eval_uses_running_variance_not_the_batch():
    torch.manual_seed(0)
    g = kc.ConsistencyNet(3, 3, order=1).train()
    g(torch.randn(32, 3, 4, 4))
    g.eval()
    x = torch.randn(8, 3, 4, 4)
    # In eval mode an image's output does not depend on the rest of the batch.
    torch.testing.assert_close(g(x)[:1], g(x[:1]))


def test_instance_sigma_for_vectors_uses_channel_spread():
    s = SigmaNorm("instance")
    h = torch.tensor([[1.0, 3.0], [2.0, 2.0]])[:, :, None, None]
    scale = s(h)
    assert scale.shape == (2, 1, 1, 1)
    torch.testing.assert_close(scale[0].flatten(), torch.rsqrt(torch.tensor([1.0 + 1e-5])))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(order=-1), "order must be an integer >= 0"),
        (dict(kernel_size=2), "kernel_size must be a positive odd integer"),
        (dict(sigma="layer"), "sigma must be one of"),
        (dict(p_init=1.0), r"p_init must lie in \(0, 1\)"),
    ],
)
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kc.ConsistencyNet(3, 3, **kwargs)


def test_bad_rank():
    g = kc.ConsistencyNet(3, 3, order=1)
    with pytest.raises(ValueError, match=r"\(N, C\) or \(N, C, H, W\)"):
        g(torch.randn(2, 3, 4))


@pytest.mark.filterwarnings("ignore::kc.ConvergenceWarning")
def test_normalizer_accessor():
    g = kc.ConsistencyNet(3, 3, order=1)
    assert g.normalizer("x") is None
    x = torch.randn(40, 3, 2, 2) * 4 + 1
    g = kc.fit_consistency(x, x.flip(1), order=1, max_steps=5, progress=False)
    stats = g.normalizer("x_star")
    torch.testing.assert_close(stats.inverse(stats(x)), x, atol=1e-4, rtol=1e-5)
    with pytest.raises(ValueError, match="which must be 'x' or 'x_star'"):
        g.normalizer("target")


def test_default_order_is_the_papers_k():
    assert kc.ConsistencyNet(3, 3).order == 2


def test_set_normalizers_stores_copies_and_none():
    g = kc.ConsistencyNet(3, 2, order=1)
    stats = kc.fit_normalizer(torch.randn(50, 3) * 2 + 1, "channel")
    g.set_normalizers(stats, None)
    torch.testing.assert_close(g.x_mean, stats.mean)
    assert g.x_mean is not stats.mean and g.normalizer("x_star") is None
    assert set(g.state_dict()) >= {"x_mean", "x_std"}
    g.set_normalizers(None, None)
    assert g.normalizer("x") is None
    with pytest.raises(ValueError, match="x_star must be a Normalizer or None, got Tensor"):
        g.set_normalizers(None, torch.ones(3))


def test_frozen_sigma_keeps_running_statistics_and_restores():
    torch.manual_seed(0)
    g = kc.ConsistencyNet(3, 3, order=2).train()
    g(torch.randn(16, 3, 4, 4))
    before = [s.running_var.clone() for s in g.sigmas]
    with g.frozen_sigma():
        g(torch.randn(16, 3, 4, 4) * 5)
    for s, b in zip(g.sigmas, before, strict=True):
        torch.testing.assert_close(s.running_var, b, rtol=0, atol=0)
    with pytest.raises(RuntimeError), g.frozen_sigma():
        raise RuntimeError("inside")
    g(torch.randn(16, 3, 4, 4) * 5)  # updates again after the context
    assert not torch.equal(g.sigmas[0].running_var, before[0])


@pytest.mark.parametrize("order", [1, 2])
def test_calibrate_gives_the_exact_per_element_variance(order):
    torch.manual_seed(order)
    g = kc.ConsistencyNet(3, 2, order=order).double()
    g.train()
    with torch.no_grad():
        g.p_logit.copy_(torch.tensor([0.3, -0.2][:order], dtype=torch.float64))
    x = torch.randn(37, 3, 4, 4, dtype=torch.float64) * 2 + 0.5
    g.calibrate([x[:10], x[10:11], x[11:]])  # uneven batches: the result is over all images
    # reference: h(K) = W(K) x, then h(k) = W(k)(x + p(k+1) ReLU(h(k+1) / sqrt(var + eps))),
    # each var taken over all 37 images per element (population variance)
    eps, p = g.sigmas[0].eps, torch.sigmoid(g.p_logit.detach())
    with torch.no_grad():
        h = g.weights[order](x)
        for level in range(order - 1, -1, -1):
            var = h.var(dim=0, keepdim=True, unbiased=False)
            torch.testing.assert_close(g.sigmas[level].running_var, var, rtol=1e-10, atol=1e-12)
            h = g.weights[level](x + p[level] * torch.relu(h / torch.sqrt(var + eps)))
