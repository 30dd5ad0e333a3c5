"""kc.engine.overlay: maps upsampled to the image and drawn over it, one scale per row."""

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from kc.engine.overlay import component_grid, map_of, upsample


def test_upsample_has_the_image_size_and_keeps_a_constant_map():
    maps = torch.full((3, 4, 4), 2.5)
    out = upsample(maps, (32, 28))
    assert out.shape == (3, 32, 28)
    torch.testing.assert_close(out, torch.full((3, 32, 28), 2.5))


def test_upsample_preserves_the_mean_of_a_smooth_map():
    maps = torch.linspace(0, 1, 8)[None, None, :].expand(2, 8, 8).contiguous()
    out = upsample(maps, (32, 32))
    assert abs(float(out.mean()) - float(maps.mean())) < 1e-6


def test_map_of_channel_and_average():
    f = torch.randn(2, 5, 3, 3)
    torch.testing.assert_close(map_of(f, 3), f[:, 3])
    torch.testing.assert_close(map_of(f), f.abs().mean(1))
    with pytest.raises(ValueError, match=r"channel must lie in \[0, 5\), got 7"):
        map_of(f, 7)


def test_grid_has_a_row_per_component_and_one_colour_scale_per_row():
    images = torch.rand(4, 1, 32, 32)
    rows = {"x*": torch.rand(4, 8, 8) * 10, "x(0)": torch.rand(4, 8, 8)}
    fig = component_grid(images, rows, titles=["a", "b", "c", "d"])
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 4 * 3
    # every overlay of a row uses the same limits; rows differ
    for r, maps in enumerate(rows.values(), start=1):
        lims = {image_axes[r * 4 + j].images[1].get_clim() for j in range(4)}
        assert len(lims) == 1
        lo, hi = lims.pop()
        up = upsample(maps, (32, 32))
        assert lo == pytest.approx(float(up.min())) and hi == pytest.approx(float(up.max()))
    assert len(fig.axes) == 12 + 2  # two colour bars


def test_grid_refuses_mismatched_rows():
    with pytest.raises(ValueError, match=r"row 'x\*': expected maps of shape \(2, h, w\)"):
        component_grid(torch.rand(2, 1, 8, 8), {"x*": torch.rand(3, 4, 4)})
