"""kc.studies.components: the measures and helpers the figure studies share."""

import matplotlib
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from kc.book import plotting
from kc.core.metrics import instability, variance
from kc.core.normalize import Normalizer
from kc.studies import components as cp

matplotlib.use("Agg")


def _parts(seed: int, n: int = 6, c: int = 3) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(n, c, 4, 4, generator=gen, dtype=torch.float64)
    parts = {
        "x0": base,
        "x1": 0.5 * base + 0.3 * torch.randn(n, c, 4, 4, generator=gen, dtype=torch.float64),
        "delta": torch.randn(n, c, 4, 4, generator=gen, dtype=torch.float64),
    }
    return parts, sum(parts.values())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shares_add_up_to_one_and_ratios_are_the_papers_variances(seed):
    parts, target = _parts(seed)
    table = cp.variance_shares(parts, target).set_index("component")
    assert table["share"].sum() == pytest.approx(1.0, abs=1e-12)
    for name, part in parts.items():
        assert table.loc[name, "var_ratio"] == pytest.approx(variance(part) / variance(target))
    # correlated parts: the variance ratios do not add up to 1, the shares do
    assert abs(table["var_ratio"].sum() - 1.0) > 1e-3


def test_shares_reject_parts_that_do_not_add_up():
    parts, target = _parts(0)
    with pytest.raises(ValueError, match="do not add up to x"):
        cp.variance_shares(parts, target + 1.0)
    with pytest.raises(ValueError, match="zero variance"):
        cp.variance_shares({"x0": torch.ones(2, 3)}, torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"component 'x0' has shape \(2, 3\)"):
        cp.variance_shares({"x0": torch.ones(2, 3)}, torch.ones(2, 4))


@pytest.mark.parametrize("loud", [0, 3])
def test_filter_rule_picks_the_channel_of_largest_variance(loud):
    gen = torch.Generator().manual_seed(loud)
    feature = torch.randn(16, 5, 3, 3, generator=gen)
    feature[:, loud] *= 3.0
    feature[:, 4] += 100.0  # a large mean alone does not make a channel win
    assert cp.pick_filter(feature) == loud
    slow = torch.stack([feature[:, c].double().flatten().var(unbiased=False) for c in range(5)])
    torch.testing.assert_close(cp.channel_variances(feature), slow)


def test_strongest_images_one_per_class_then_fill():
    scores = torch.tensor([0.1, 0.9, 0.8, 0.7, 0.2])
    labels = torch.tensor([0, 1, 1, 2, 0])
    assert cp.strongest_images(scores, labels, 3) == [1, 3, 4]
    assert cp.strongest_images(scores, labels, 5) == [1, 3, 4, 2, 0]
    with pytest.raises(ValueError, match=r"n must lie in \[1, 5\], got 6"):
        cp.strongest_images(scores, labels, 6)


def test_spread_classes_covers_both_halves_of_a_mixture():
    labels = torch.arange(20).repeat_interleave(3)
    index = cp.spread_classes(labels, 4)
    classes = labels[index].tolist()
    assert classes == [0, 6, 13, 19] and index == [0, 18, 39, 57]
    assert any(c < 10 for c in classes) and any(c >= 10 for c in classes)
    with pytest.raises(ValueError, match="number of classes"):
        cp.spread_classes(labels, 21)


def test_spatial_coherence_tells_noise_from_blobs():
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(64, 8, 8, 8, generator=gen)
    blobs = F.interpolate(torch.randn(64, 8, 2, 2, generator=gen), size=(8, 8), mode="bilinear")
    assert abs(cp.spatial_coherence(noise)) < 0.05
    assert cp.spatial_coherence(blobs) > 0.8
    assert cp.spatial_coherence(noise + 10.0) == pytest.approx(cp.spatial_coherence(noise))
    with pytest.raises(ValueError, match="H or W >= 2"):
        cp.spatial_coherence(torch.randn(4, 3, 1, 1))


def test_direction_maps_units_and_table():
    parts, target = _parts(3)
    target, delta = target.float(), parts["delta"].float()
    norm = Normalizer(torch.tensor(1.5), torch.tensor(2.0), "global")
    maps = cp.direction_maps(target, delta, norm, [4, 1])
    raw, consistent, residual = (maps[p] for p in cp.DIRECTION_PARTS)
    assert raw.shape == (2, 4, 4)
    torch.testing.assert_close(raw, (target[[4, 1]] * 2.0 + 1.5).abs().mean(1))
    torch.testing.assert_close(consistent, ((target - delta)[[4, 1]] * 2.0 + 1.5).abs().mean(1))
    torch.testing.assert_close(residual, (delta[[4, 1]] * 2.0).abs().mean(1))
    same = cp.direction_maps(target, delta, None, [0])
    torch.testing.assert_close(same["raw feature"], target[[0]].abs().mean(1))

    table = cp.direction_table(target, delta).set_index("part")
    assert table.loc["raw feature", ["var_ratio", "share"]].tolist() == [1.0, 1.0]
    rest = table.loc[["reconstructable g(x)", "residual x^Delta"], "share"].sum()
    assert rest == pytest.approx(1.0, abs=1e-5)
    assert table.loc["residual x^Delta", "var_ratio"] == pytest.approx(instability(delta, target))
    assert np.isfinite(table["coherence"]).all()


def test_direction_figure_overlays_have_the_images_size():
    parts, target = _parts(1, n=3)
    images = torch.rand(3, 1, 32, 32)
    maps = cp.direction_maps(target.float(), parts["delta"].float(), None, [0, 1, 2])
    table = cp.direction_table(target.float(), parts["delta"].float())
    fig = plotting.direction_figure(images, maps, table, labels={}, title="t")
    overlays = [im for ax in fig.axes for im in ax.get_images()[1:]]
    assert len(overlays) == 3 * 3
    assert all(im.get_array().shape == (32, 32) for im in overlays)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert any("% of Var(x*)" in label for label in labels)


def test_shown_images_align_with_the_features():
    ds = cp.evaluation_images(("fashion-mnist",), 32, 20)
    show = cp.shown(ds, [3, 0], n_features=20)
    assert show.images.shape == (2, 1, 32, 32) and show.labels == [
        int(ds.labels[3]),
        int(ds.labels[0]),
    ]
    assert show.class_names[0] == ds.class_names[show.labels[0]]
    with pytest.raises(ValueError, match="19 test features but 20 test images"):
        cp.shown(ds, [0], n_features=19)
