"""Stand-ins for the cached networks and fits, for the figure studies' unit tests.

``FakeLab`` replaces :func:`kc.engine.experiments.get_net` and :func:`kc.engine.experiments.get_consistency`
(monkeypatched on the module) with functions that record their calls and return planted
results: a target x* whose channel ``loud`` has the largest variance, split into components
x0..xK and x_Delta of chosen magnitudes that add up to x* exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch

from kc.core.normalize import Normalizer


@dataclass
class FakeLab:
    """Planted networks and fits. Set the attributes before the study runs."""

    accuracy: dict[str, float] = field(default_factory=dict)  # arch or task -> accuracy
    scales: tuple[float, ...] = (1.0, 0.3, 0.1)  # magnitudes of x0 .. xK
    delta_scale: float = 0.5
    channels: int = 6
    size: int = 4
    loud: int = 2  # the channel with the largest variance
    smooth_delta: bool | tuple[int, ...] = (
        False  # x_Delta smooth blobs (all, or these fits, 1-based)
    )
    nets: list = field(default_factory=list)
    fits: list = field(default_factory=list)

    def get_net(self, spec, *, device: str = "auto", progress: bool = True):
        self.nets.append(spec)
        acc = self.accuracy.get(spec.arch, self.accuracy.get(spec.task, 50.0))
        return SimpleNamespace(
            spec=spec, label=spec.label, accuracy=acc, from_cache=True, key=spec.label
        )

    def get_features(self, net, layer, *, split="train", limit=None, device="auto", **kw):
        n = limit or 8
        return torch.zeros(n, self.channels, self.size, self.size), torch.zeros(n)

    def get_consistency(self, x_net, x_layer, t_net, t_layer, **kwargs: Any):
        self.fits.append((x_net, x_layer, t_net, t_layer, kwargs))
        n = kwargs["test_limit"]
        gen = torch.Generator().manual_seed(len(self.fits))
        shape = (n, self.channels, self.size, self.size)
        loud = torch.ones(self.channels)
        loud[self.loud] = 3.0
        loud = loud[None, :, None, None]
        parts = {f"x{k}": s * loud * _smooth(shape, gen) for k, s in enumerate(self.scales)}
        smooth = self.smooth_delta
        smooth = len(self.fits) in smooth if isinstance(smooth, tuple) else smooth
        noise = _smooth(shape, gen) if smooth else torch.randn(shape, generator=gen)
        parts["delta"] = self.delta_scale * loud * noise
        target = sum(parts.values())
        var_t = float(target.var(unbiased=False))
        instab = float(parts["delta"].var(unbiased=False)) / var_t
        model = SimpleNamespace(
            normalizer=lambda which: Normalizer(torch.tensor(0.5), torch.tensor(2.0), "global")
        )
        return SimpleNamespace(target=target, components=parts, instability=instab, model=model)

    def install(self, monkeypatch) -> FakeLab:
        from kc.engine import experiments as ex

        monkeypatch.setattr(ex, "get_net", self.get_net)
        monkeypatch.setattr(ex, "get_consistency", self.get_consistency)
        monkeypatch.setattr(ex, "get_features", self.get_features)
        return self


def _smooth(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Random maps that vary slowly in space (a 2 x 2 grid upsampled), shape ``shape``."""
    n, c, h, w = shape
    coarse = torch.randn(n, c, 2, 2, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")


def smoke_params(**overrides: Any) -> dict[str, Any]:
    """The smoke profile's parameters (what a notebook's ``parameters`` cell holds)."""
    from kc.run.runner import load_profile

    params = load_profile("smoke")
    params.update(overrides)
    return params
