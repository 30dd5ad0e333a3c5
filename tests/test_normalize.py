"""Footnote 2: zero mean and unit variance with training statistics."""

import pytest
import torch

import kc


@pytest.mark.parametrize("mode", ["global", "channel"])
def test_training_features_become_standard(mode):
    x = torch.randn(50, 4, 3, 3) * torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None, None] + 5
    z, stats = kc.normalize(x, mode=mode)
    dims = (0, 1, 2, 3) if mode == "global" else (0, 2, 3)
    torch.testing.assert_close(z.mean(dims), torch.zeros_like(z.mean(dims)), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.var(dims, unbiased=False), torch.ones_like(z.mean(dims)), atol=1e-4, rtol=0)
    torch.testing.assert_close(stats.inverse(z), x, atol=1e-4, rtol=1e-5)


def test_held_out_features_use_training_statistics():
    x = torch.randn(200, 3)
    _, stats = kc.normalize(x)
    z, same = kc.normalize(x + 10, stats)
    assert same is stats
    assert float(z.mean()) > 5


def test_streaming_equals_in_memory():
    x = torch.randn(90, 3, 2, 2)
    a = kc.fit_normalizer(x, "channel")
    b = kc.fit_normalizer([x[:40], x[40:]], "channel")
    torch.testing.assert_close(a.mean, b.mean)
    torch.testing.assert_close(a.std, b.std)


def test_constant_channel_gives_no_nan():
    x = torch.randn(20, 3, 2, 2)
    x[:, 1] = 7.0
    z, stats = kc.normalize(x, mode="channel")
    assert torch.isfinite(z).all()
    assert float(stats.std.flatten()[1]) == 1.0


def test_bad_mode():
    with pytest.raises(ValueError, match="norm mode must be one of"):
        kc.fit_normalizer(torch.randn(3, 2), "batch")
