"""Eq. 2: the loss against a hand computation, and the gradient of its penalty on p."""

import math

import pytest
import torch

import kc


def hand_forward(g, x):
    """Eq. 1 written out for K = 1 with 1x1 convolutions, element by element in loops."""
    w0 = g.weights[0].weight[:, :, 0, 0].tolist()
    w1 = g.weights[1].weight[:, :, 0, 0].tolist()
    p1 = 1 / (1 + math.exp(-float(g.p_logit.detach()[0])))
    n, c = len(x), len(x[0])
    h1 = [[sum(w1[o][i] * x[s][i] for i in range(c)) for o in range(c)] for s in range(n)]
    # "batch" Sigma in training: the variance of each element over the batch
    mean = [sum(h1[s][o] for s in range(n)) / n for o in range(c)]
    var = [sum((h1[s][o] - mean[o]) ** 2 for s in range(n)) / n for o in range(c)]
    out = []
    for s in range(n):
        inner = [x[s][i] + p1 * max(h1[s][i] / math.sqrt(var[i] + 1e-5), 0.0) for i in range(c)]
        out.append([sum(w0[o][i] * inner[i] for i in range(c)) for o in range(len(w0))])
    return out, p1


@pytest.mark.parametrize("lam", [0.0, 0.1, 8.0])
def test_loss_matches_a_hand_computation(lam):
    torch.manual_seed(0)
    g = kc.ConsistencyNet(3, 2, order=1, kernel_size=1).double().train()
    x = torch.randn(5, 3, dtype=torch.float64)
    t = torch.randn(5, 2, dtype=torch.float64)
    out, p1 = hand_forward(g, x.tolist())
    squared = [(out[s][o] - float(t[s, o])) ** 2 for s in range(5) for o in range(2)]
    expected = sum(squared) / len(squared) + lam * p1**2  # mean over elements + lambda p^2
    loss = kc.consistency_loss(g, x, t, lam)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-12)


def test_penalty_gradient_is_two_lambda_p_times_dp():
    # At g(x) = x* the squared error has zero gradient, so only the penalty acts on p:
    # d/dq [lam * sigmoid(q)^2] = 2 lam p * p (1 - p).
    torch.manual_seed(1)
    lam = 0.7
    g = kc.ConsistencyNet(4, 4, order=3).double().eval()
    with torch.no_grad():
        g.p_logit.copy_(torch.tensor([-1.0, 0.2, 1.5], dtype=torch.float64))
    x = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        t = g(x)
    kc.consistency_loss(g, x, t, lam).backward()
    p = torch.sigmoid(g.p_logit.detach())
    torch.testing.assert_close(g.p_logit.grad, 2 * lam * p * p * (1 - p), rtol=1e-10, atol=1e-12)
    assert all(float(w.weight.grad.abs().max()) < 1e-12 for w in g.weights)


def test_loss_refuses_negative_lambda_and_wrong_shapes():
    g = kc.ConsistencyNet(3, 2, order=1)
    with pytest.raises(ValueError, match="lam must be >= 0, got -1"):
        kc.consistency_loss(g, torch.randn(4, 3), torch.randn(4, 2), -1)
    with pytest.raises(ValueError, match=r"g\(x\) has shape \(4, 2\) but x_star has \(4, 3\)"):
        kc.consistency_loss(g, torch.randn(4, 3), torch.randn(4, 3), 0.1)
