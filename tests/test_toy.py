"""Planted pairs: the structure they claim is really there."""

import pytest
import torch

from kc.studies import toy
from kc.studies.toy import CASES, planted_pair


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


# ------------------------------------------------------------------ linear CKA


def _slow_cka(x, y):
    """CKA through centred Gram matrices (HSIC form), an independent reference."""
    a = x.reshape(len(x), -1).double()
    b = y.reshape(len(y), -1).double()
    n = len(a)
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, l_ = h @ a @ a.T @ h, h @ b @ b.T @ h
    return float((k * l_).sum() / (k.norm() * l_.norm()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_cka_matches_gram_form(seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(30, 3, 2, 2, generator=gen)
    y = torch.randn(30, 5, generator=gen) + x.reshape(30, -1)[:, :5]
    assert toy.linear_cka(x, y) == pytest.approx(_slow_cka(x, y), rel=1e-9)


def test_linear_cka_invariances():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=gen)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen))
    assert toy.linear_cka(x, 3.0 * x @ q + 1.0) == pytest.approx(1.0, abs=1e-9)
    m = torch.randn(6, 6, generator=gen)
    assert toy.linear_cka(x, x @ m) < 0.99  # not invariant to a general linear map


def test_linear_cka_bad_input():
    with pytest.raises(ValueError, match="same number of samples N, got 4 and 3"):
        toy.linear_cka(torch.randn(4, 2), torch.randn(3, 2))
    with pytest.raises(ValueError, match="x is constant across all 4 samples"):
        toy.linear_cka(torch.ones(4, 2), torch.randn(4, 2))


# ------------------------------------------------------------------ the lab's checks


@pytest.mark.parametrize(
    ("check", "right", "wrong"),
    [
        (toy.check_half_instability, 0.5, 0.0),
        (toy.check_half_instability, 0.45, 1.0),
        (toy.check_directions, (0.0, 0.5), (0.5, 0.0)),
        (toy.check_directions, [0.05, 0.55], (0.0, 0.0)),
        (toy.check_lambda_effect, "down", "up"),
        (toy.check_lambda_effect, "down", "unchanged"),
        (toy.check_cka_case, "linear", "permuted"),
        (toy.check_cka_case, "linear", "independent"),
    ],
)
def test_checks_accept_the_solution_and_reject_wrong_answers(check, right, wrong, capsys):
    assert check(right) is True
    assert "Correct." in capsys.readouterr().out
    assert check(wrong) is False
    assert "Not yet." in capsys.readouterr().out
    assert check(None) is False
    assert "No answer yet" in capsys.readouterr().out


def test_checks_reject_malformed_answers():
    with pytest.raises(TypeError, match="answer must be a number, got '0.5'"):
        toy.check_half_instability("0.5")
    with pytest.raises(TypeError, match="must be a pair"):
        toy.check_directions(0.5)
    with pytest.raises(ValueError, match="answer must be one of .*got 'lower'"):
        toy.check_lambda_effect("lower")
    with pytest.raises(ValueError, match="answer must be one of .*got 'rotated'"):
        toy.check_cka_case("rotated")
    with pytest.raises(TypeError, match="answer must be a function of x"):
        toy.check_order_one_relation(0.5)
    with pytest.raises(ValueError, match=r"must return shape \(64, C\*, 4, 4\), got \(64, 8\)"):
        toy.order_gain(lambda x: x.mean((2, 3)), n=64, size=4)


def _mixed_relu(x):
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(8, 8, generator=gen) / 8**0.5
    m = torch.randn(8, 8, generator=gen) / 8**0.5
    return toy._mix(m, torch.relu(toy._mix(v, x)))


def test_order_one_check_accepts_the_lab_solution():
    assert toy.check_order_one_relation(_mixed_relu) is True


@pytest.mark.parametrize(
    "target",
    [
        lambda x: toy._mix(torch.randn(8, 8, generator=torch.Generator().manual_seed(3)), x),
        lambda x: torch.randn(x.shape, generator=torch.Generator().manual_seed(4)),
    ],
    ids=["linear", "noise"],
)
def test_order_one_check_rejects_linear_and_unrelated_targets(target):
    assert toy.check_order_one_relation(target) is False
