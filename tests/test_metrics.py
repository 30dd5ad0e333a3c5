"""Sec. 4.2 variance, instability and its two-way average."""

import pytest
import torch

import kc


def test_variance_is_about_the_global_mean():
    t = torch.tensor([[0.0, 2.0], [4.0, 6.0]])
    assert kc.variance(t) == pytest.approx(5.0)


def test_variance_matches_population_variance():
    t = torch.randn(7, 3, 4, 4)
    assert kc.variance(t) == pytest.approx(float(t.double().var(unbiased=False)))


def test_instability_known_values():
    x = torch.randn(100, 8)
    assert kc.instability(torch.zeros_like(x), x) == 0.0
    assert kc.instability(x, x) == pytest.approx(1.0)
    assert kc.instability(0.5 * x, x) == pytest.approx(0.25)


def test_two_way_average():
    assert kc.two_way_instability(0.2, 0.4) == pytest.approx(0.3)

    class R:
        instability = 0.1

    assert kc.two_way_instability(R(), 0.3) == pytest.approx(0.2)


def test_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        kc.instability(torch.zeros(3, 2), torch.ones(3, 3))
    with pytest.raises(ValueError, match="zero variance"):
        kc.instability(torch.zeros(3, 2), torch.ones(3, 2))
    with pytest.raises(ValueError, match="empty"):
        kc.variance(torch.zeros(0))
