"""Sec. 4.2 variance, instability and its two-way average."""

import pytest
import torch

import kc
import kc.core.metrics


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


# ---------------------------------------------------------------- the centre of Var


def _offset_features(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) noise in float64 plus a different constant offset per channel."""
    gen = torch.Generator().manual_seed(seed)
    offsets = torch.tensor([-3.0, 0.5, 2.0, 7.0, -1.0], dtype=torch.float64)
    noise = torch.randn(40, 5, 3, 4, generator=gen, dtype=torch.float64)
    return noise + offsets.view(1, -1, 1, 1), offsets


def test_channel_offsets_have_zero_channel_variance() -> None:
    _, offsets = _offset_features(0)
    t = offsets.view(1, -1, 1, 1).expand(6, -1, 3, 4)  # every element is its channel's offset
    assert kc.variance(t, center="channel") == 0.0
    assert kc.variance(t) == pytest.approx(float(offsets.var(unbiased=False)))
    assert kc.variance(t, center="global") == kc.variance(t)  # the default is the paper's


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_law_of_total_variance(seed: int) -> None:
    t, _ = _offset_features(seed)
    channel_means = t.mean(dim=(0, 2, 3))  # each channel holds N * H * W elements: equal weights
    between = float(((channel_means - t.mean()) ** 2).mean())
    total = kc.variance(t, "channel") + between
    assert kc.variance(t, "global") == pytest.approx(total, abs=1e-6)


@pytest.mark.parametrize("shape", [(30, 4), (30, 4, 5), (30, 4, 3, 2)])
def test_channel_variance_is_the_mean_of_per_channel_variances(shape) -> None:
    scales = torch.arange(1.0, 5.0).view(1, 4, *([1] * (len(shape) - 2)))
    t = torch.randn(*shape, generator=torch.Generator().manual_seed(3)) * scales
    per_channel = [float(t[:, c].double().var(unbiased=False)) for c in range(shape[1])]
    assert kc.variance(t, "channel") == pytest.approx(sum(per_channel) / len(per_channel))


def test_instability_under_each_centre() -> None:
    x_star, offsets = _offset_features(4)
    # a residual that is only a constant per channel: no residual at all once channels are centred
    delta = (0.5 * offsets).view(1, -1, 1, 1).expand_as(x_star)
    assert kc.instability(delta, x_star, center="channel") == 0.0
    expected = 0.25 * float(offsets.var(unbiased=False)) / kc.variance(x_star)
    assert kc.instability(delta, x_star) == pytest.approx(expected)
    noise = x_star - offsets.view(1, -1, 1, 1)
    for center in kc.core.metrics.CENTERS:
        value = kc.variance(noise, center) / kc.variance(x_star, center)
        assert kc.instability(noise, x_star, center=center) == pytest.approx(value)
    # noise about the channel means is all of x* under "channel", part of it under "global"
    assert kc.instability(noise, x_star, center="channel") == pytest.approx(1.0)
    assert kc.instability(noise, x_star) < 0.2


def test_bad_centre_and_shapes() -> None:
    expected = r"unknown center 'mean'; expected one of \['global', 'channel'\]"
    with pytest.raises(ValueError, match=expected):
        kc.variance(torch.ones(3, 2), center="mean")
    with pytest.raises(ValueError, match=r"center='channel' needs .* got shape \(5,\)"):
        kc.variance(torch.arange(5.0), center="channel")
    assert kc.variance(torch.arange(5.0)) == pytest.approx(2.0)  # a vector is fine about one mean
    constant_channels = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match="zero variance about center='channel'"):
        kc.instability(torch.zeros(2, 2), constant_channels, center="channel")
    with pytest.raises(ValueError, match="unknown center"):
        kc.instability(torch.zeros(2, 2), constant_channels, center="pixel")
