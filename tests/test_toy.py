"""Planted pairs: the structure they claim is really there."""

import pytest
import torch

from kc.toy import CASES, planted_pair


@pytest.mark.parametrize("case", CASES)
def test_shapes_and_determinism(case):
    x, t = planted_pair(case, n=10, channels=6, size=3, seed=1)
    assert x.shape == t.shape == (10, 6, 3, 3)
    x2, t2 = planted_pair(case, n=10, channels=6, size=3, seed=1)
    assert torch.equal(x, x2) and torch.equal(t, t2)


def test_permuted_is_an_exact_channel_permutation():
    x, t = planted_pair("permuted", n=5, channels=6, size=2)
    matches = [[torch.equal(t[:, i], x[:, j]) for j in range(6)] for i in range(6)]
    assert all(sum(row) == 1 for row in matches)


def test_half_keeps_half_of_the_channels():
    x, t = planted_pair("half", n=5, channels=6, size=2)
    copied = sum(any(torch.equal(t[:, i], x[:, j]) for j in range(6)) for i in range(6))
    assert copied == 3


def test_bad_case():
    with pytest.raises(ValueError, match="case must be one of"):
        planted_pair("rotated")
