"""Fig. 2 is drawn from the model: its boxes and counts follow g.weights, g.sigmas and g.p."""

import matplotlib
import pytest
import torch

from kc import ConsistencyNet
from kc.book.diagram import blocks, branch_table, draw_architecture

matplotlib.use("Agg")


def _gids(fig) -> list[str]:
    return [a.get_gid() for a in fig.findobj() if a.get_gid()]


@pytest.mark.parametrize("order", [0, 1, 2, 3])
@pytest.mark.parametrize("sigma", ["batch", "instance"])
def test_boxes_match_the_model(order, sigma):
    g = ConsistencyNet(6, 4, order=order, sigma=sigma)
    gids = _gids(draw_architecture(g))
    assert sorted(i for i in gids if i.startswith("conv-")) == sorted(
        f"conv-{k}" for k in range(len(g.weights))
    )
    for kind in ("norm", "relu", "p"):
        assert sorted(i for i in gids if i.startswith(kind + "-")) == sorted(
            f"{kind}-{k}" for k in range(1, len(g.sigmas) + 1)
        )
    assert len(g.sigmas) == len(g.p) == order
    assert sum(i.startswith("sum-") for i in gids) == order
    texts = [t.get_text() for t in draw_architecture(g).findobj(matplotlib.text.Text)]
    assert sum(f"({sigma})" in t for t in texts) == order


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_parameter_counts(order):
    g = ConsistencyNet(5, 3, order=order, kernel_size=3)
    table = branch_table(g)
    assert list(table["branch"]) == list(range(order + 1))
    # own parameters partition g's parameters
    assert table["own_params"].sum() == sum(t.numel() for t in g.parameters())
    for k in range(order + 1):
        own = g.weights[k].weight.numel() + (1 if k else 0)
        assert table.loc[k, "own_params"] == own
        path = sum(g.weights[j].weight.numel() for j in range(k + 1)) + k
        assert table.loc[k, "path_params"] == path
    assert table.loc[0, "own_params"] == 3 * 5 * 9
    assert table["operations"].str.count("ReLU").tolist() == list(range(order + 1))


def test_fitted_p_values_are_drawn():
    g = ConsistencyNet(4, 4, order=2)
    with torch.no_grad():
        g.p_logit.copy_(torch.tensor([2.0, -3.0]))
    assert [b.p for b in blocks(g)[1:]] == pytest.approx(torch.sigmoid(g.p_logit).tolist())
    texts = [t.get_text() for t in draw_architecture(g).findobj(matplotlib.text.Text)]
    assert any("0.881" in t for t in texts) and any("0.0474" in t for t in texts)


def test_counts_appear_in_the_drawing():
    g = ConsistencyNet(7, 2, order=1, kernel_size=1)
    texts = " ".join(t.get_text() for t in draw_architecture(g).findobj(matplotlib.text.Text))
    for n in branch_table(g)["own_params"]:
        assert f"{n:,} parameters" in texts


def test_rejects_other_models():
    with pytest.raises(TypeError, match="expected a kc.ConsistencyNet, got Linear"):
        draw_architecture(torch.nn.Linear(2, 2))
