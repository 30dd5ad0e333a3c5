"""The paper's regime: networks trained from scratch on a few images per class, which over-fit.

The paper trains its networks on CUB-200-2011 (about 30 images per class) without augmentation,
and its captions put its gains down to over-fitting (Tables 1 and 4). Our current regime trains
on thousands of images and hardly over-fits. :class:`Regime` is the other one (issue 24):

* networks A and B are trained on ``per_class`` images of every class (a seeded draw,
  :func:`kc.engine.data.per_class`) for ``epochs`` epochs, until they fit them nearly perfectly
  (``epochs`` may differ per architecture: AlexNet, without batch norm, needs more steps);
* g is fitted on the features of those same training images (Appendix A: g never sees the
  target task's labels, only the images), and the heads of Tables 3-4 are fine-tuned on them;
* everything is evaluated on the same test images as in the current regime.

:func:`gaps` reports each network's accuracy on its own training images against its test
accuracy: the train/test gap, the evidence that a regime over-fits.

Example:
    >>> r = Regime.from_params({"OVERFIT_PER_CLASS": 40, "OVERFIT_EPOCHS": 60})
    >>> r.net({"epochs": 4, "train_limit": 10000, "width": 0.25})
    {'epochs': 60, 'train_limit': None, 'width': 0.25, 'train_per_class': 40}
    >>> Regime.from_params({"OVERFIT_PER_CLASS": None, "OVERFIT_EPOCHS": 60}) is None
    True
    >>> per_arch = Regime(40, {"alexnet": 180, "vgg16": 60}).net({"epochs": 4})
    >>> arch_fields(per_arch, "alexnet")["epochs"], arch_fields(per_arch, "vgg16")["epochs"]
    (180, 60)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from kc.studies.claims import Claim
from kc.studies.common import GFit, pick

__all__ = ["Regime", "arch_fields", "gaps", "tag_claims"]


@dataclass(frozen=True)
class Regime:
    """How networks are trained in the over-fitting regime (OVERFIT_PER_CLASS, OVERFIT_EPOCHS).

    Attributes:
        per_class: training images per class of the networks' data sets.
        epochs: training epochs (a few images take few steps per epoch: many epochs), one
            number for every architecture or ``{arch: epochs}`` naming each one used.
        name: appended to the ids of the claims checked in this regime.
    """

    per_class: int
    epochs: int | Mapping[str, int]
    name: str = "overfit"

    def __post_init__(self) -> None:
        _check_count("OVERFIT_PER_CLASS", self.per_class)
        if isinstance(self.epochs, Mapping):
            if not self.epochs:
                raise ValueError("OVERFIT_EPOCHS must name at least one architecture, got {}")
            for arch, value in self.epochs.items():
                _check_count(f"OVERFIT_EPOCHS[{arch!r}]", value)
            object.__setattr__(self, "epochs", {str(a): v for a, v in self.epochs.items()})
        else:
            _check_count("OVERFIT_EPOCHS", self.epochs)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Regime | None:
        """From OVERFIT_PER_CLASS (None: no such regime, returns None) and OVERFIT_EPOCHS."""
        p = pick(params, ["OVERFIT_PER_CLASS", "OVERFIT_EPOCHS"])
        if p["OVERFIT_PER_CLASS"] is None:
            return None
        return cls(per_class=p["OVERFIT_PER_CLASS"], epochs=p["OVERFIT_EPOCHS"])

    def net(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The shared :class:`kc.engine.experiments.NetSpec` fields of a study, in this regime
        (``epochs`` may be per architecture: :func:`arch_fields` gives one network's)."""
        return {**fields, "epochs": self.epochs, "train_limit": None,
                "train_per_class": self.per_class}  # fmt: skip

    def g(self, fit: GFit) -> GFit:
        """g fitted on every training image of the networks (their per-class draw)."""
        return replace(fit, fit_limit=None)

    def describe(self) -> str:
        """One sentence for a page."""
        if isinstance(self.epochs, Mapping):
            epochs = ", ".join(f"{n} ({a})" for a, n in self.epochs.items())
        else:
            epochs = str(self.epochs)
        return (f"networks trained from scratch on {self.per_class} images per class for "
                f"{epochs} epochs; g fitted, and the heads fine-tuned, on those images")  # fmt: skip


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def arch_fields(fields: Mapping[str, Any], arch: str) -> dict[str, Any]:
    """The NetSpec fields of one network of ``arch``: ``epochs`` given per architecture
    (``{arch: epochs}``, :meth:`Regime.net`) is resolved; other fields are kept as they are.

    Raises:
        ValueError: ``epochs`` is a mapping without ``arch``.
    """
    out = dict(fields)
    epochs = out.get("epochs")
    if isinstance(epochs, Mapping):
        if arch not in epochs:
            raise ValueError(f"OVERFIT_EPOCHS gives no epochs for {arch!r}; it names "
                             f"{sorted(epochs)}: add {arch!r} or give one number")  # fmt: skip
        out["epochs"] = epochs[arch]
    return out


def gaps(specs: Iterable[Any], *, device: str = "auto", limit: int | None = 2000) -> pd.DataFrame:
    """Every network's accuracy on its training images (eval mode) and on the test images.

    Args:
        specs: :class:`kc.engine.experiments.NetSpec` (duplicates are measured once).
        device: as in :func:`kc.engine.experiments.get_net`.
        limit: training images to measure on (:func:`kc.engine.experiments.get_train_accuracy`).

    Returns:
        Columns ``network, arch, datasets, seed, train_images, train_accuracy, test_accuracy,
        gap`` (train minus test, in points), one row per network.
    """
    from kc.engine import experiments as ex

    rows = []
    for spec in dict.fromkeys(specs):
        net = ex.get_net(spec, device=device, progress=False)
        train = ex.get_train_accuracy(spec, limit=limit, device=device, progress=False)
        per_class = getattr(spec, "train_per_class", None)
        rows.append({
            "network": spec.label,
            "arch": spec.arch,
            "datasets": "+".join(spec.datasets),
            "seed": spec.seed,
            "train_images": f"{per_class} per class" if per_class else str(spec.train_limit or "all"),
            "train_accuracy": train,
            "test_accuracy": float(net.accuracy),
            "gap": train - float(net.accuracy),
        })  # fmt: skip
    if not rows:
        raise ValueError("no networks to measure")
    return pd.DataFrame(rows)


def tag_claims(claims: Iterable[Claim], regime: Regime) -> list[Claim]:
    """``claims`` checked in ``regime``: ids ``<id>.<name>`` and ``[<name> regime]`` after the
    claim, so that they sit beside the current regime's (:mod:`kc.book.regimes` pairs them)."""
    return [replace(c, id=f"{c.id}.{regime.name}", claim=f"{c.claim} [{regime.name} regime]")
            for c in claims]  # fmt: skip
