"""Task builders: the training sets of the paper's experiments, as pure functions on data sets.

Each builder takes :class:`~kc.engine.data.base.ImageDataset` objects and returns new ones (sharing
storage, never copying files); only labels and index lists are computed. Randomness comes from
an explicit ``seed`` through ``numpy.random.default_rng``, so results are identical everywhere.

=================  =============================================================================
paper              here (``make_task``)
=================  =============================================================================
Case 1, Sec. 4.2   ``"all"``: every network of a pair sees the same training set
Case 2, Sec. 4.2   ``"half0"`` / ``"half1"``: two disjoint random halves of the training set
VOC-animal, 4.3    ``"subset:animals"`` on ``voc2012`` (``"subset:garments"`` on Fashion-MNIST)
Mix-CUB/Dogs, 4.3  ``"all"`` on two sets (their union, 320 or 20 classes), then ``"mix:0"`` /
                   ``"mix:1"`` for the part of the union from the first / second set
Sec. 4.6           ``"binary"``: the union labelled by the set an image came from
=================  =============================================================================

``make_task(..., per_class=k)`` first keeps ``k`` random images of every class of the data sets
(:func:`per_class`), then builds the task from them: the over-fitting regime of issue 24 (about
30 images per class, as on CUB-200-2011), in which every task of a union draws its images from
the same per-class draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from kc.engine.data.base import ImageDataset
from kc.engine.data.catalog import DATASETS, load

D = TypeVar("D", bound=ImageDataset)

#: Named class subsets: (data set, name) -> original labels, in the order of the new labels.
CLASS_SUBSETS: dict[tuple[str, str], list[int]] = {
    # T-shirt/top, Trouser, Pullover, Dress, Coat, Shirt: the garments worn on the body.
    ("fashion-mnist", "garments"): [0, 1, 2, 3, 4, 6],
    # bird, cat, cow, dog, horse, sheep: the six animals of VOC-animal (Sec. 4.3, Exp. 2.1).
    ("voc2012", "animals"): [2, 7, 9, 11, 12, 16],
}

#: Seed of the Case 2 halves. Fixed and independent of any network seed: the two networks of
#: a Case 2 pair, and every repetition, must see the same two halves.
HALVES_SEED = 0

TASK_FORMS = ("all", "half0", "half1", "subset:<name>", "mix:0", "mix:1", "binary")


def _check(ds: object) -> None:
    if not isinstance(ds, ImageDataset):
        raise TypeError(f"expected a kc.engine.data ImageDataset, got {type(ds).__name__}")


def halves(ds: D, seed: int) -> tuple[D, D]:
    """Two disjoint random halves covering ``ds`` (Sec. 4.2, Case 2).

    Stratified: each class is shuffled and cut in two, so both halves keep the class balance.
    The odd images left over by classes of odd size are shuffled and dealt alternately, so the
    halves' sizes differ by at most one. Items keep their original order within each half.

    Args:
        ds: the data set to split, ``N`` items.
        seed: seed of the shuffles.

    Returns:
        ``(a, b)`` with ``len(a) = ceil(N / 2)`` and ``len(b) = floor(N / 2)``.
    """
    _check(ds)
    rng = np.random.default_rng(seed)
    labels = ds.labels.numpy()
    first, second, odd = [], [], []
    for c in range(ds.num_classes):
        rows = rng.permutation(np.flatnonzero(labels == c))
        h = len(rows) // 2
        first.append(rows[:h])
        second.append(rows[h : 2 * h])
        odd.append(rows[2 * h :])
    rest = rng.permutation(np.concatenate(odd))
    a = np.sort(np.concatenate([*first, rest[0::2]]))
    b = np.sort(np.concatenate([*second, rest[1::2]]))
    return ds.select(torch.from_numpy(a)), ds.select(torch.from_numpy(b))


def subset_classes(ds: D, classes: Sequence[int]) -> D:
    """The items of the given classes, relabelled ``0 .. len(classes) - 1`` in that order.

    Example: ``subset_classes(ds, [6, 0])`` keeps classes 6 and 0 of ``ds`` as 0 and 1.
    """
    _check(ds)
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < ds.num_classes]
    if not classes or bad or len(set(classes)) != len(classes):
        raise ValueError(
            f"classes must be distinct labels in [0, {ds.num_classes - 1}], got {classes}"
        )
    new_label = torch.full((ds.num_classes,), -1, dtype=torch.int64)
    new_label[classes] = torch.arange(len(classes))
    relabelled = new_label[ds.labels]
    idx = torch.nonzero(relabelled >= 0).flatten()
    names = [ds.class_names[c] for c in classes]
    return ds.select(idx, labels=relabelled[idx], class_names=names)


def union(ds1: D, ds2: D) -> D:
    """``ds1`` followed by ``ds2``, whose labels are offset by ``ds1.num_classes``.

    The Mix-CUB / Mix-Dogs training set (Sec. 4.3, 4.6): 200 + 120 classes, or here
    Fashion-MNIST + MNIST digits = 20 classes. When the two sets are normalised differently,
    the union uses one pooled normalisation (:func:`~kc.engine.data.base.pooled_stats`) for all images.
    """
    _check(ds1)
    _check(ds2)
    names = ds1.class_names + ds2.class_names
    return ds1.concat(ds2, class_names=names, label_offset=ds1.num_classes)


def coarse(
    ds: D,
    mapping: Sequence[int] | Mapping[int, int],
    class_names: Sequence[str] | None = None,
) -> D:
    """Relabel every item by ``mapping[old_label]`` (e.g. the bird-vs-dog task of Sec. 4.6).

    Args:
        ds: the data set.
        mapping: new label of each old class, for all ``ds.num_classes`` classes.
        class_names: names of the new classes; default: the old names joined with ``+``.
    """
    _check(ds)
    if isinstance(mapping, Mapping):
        missing = [c for c in range(ds.num_classes) if c not in mapping]
        if missing:
            raise ValueError(f"mapping lacks old classes {missing}")
        table = [int(mapping[c]) for c in range(ds.num_classes)]
    else:
        table = [int(m) for m in mapping]
        if len(table) != ds.num_classes:
            raise ValueError(
                f"mapping needs one new label per old class ({ds.num_classes}), got {len(table)}"
            )
    if min(table) < 0:
        raise ValueError(f"new labels must be >= 0, got {table}")
    n_new = max(table) + 1
    if class_names is None:
        class_names = [
            "+".join(ds.class_names[c] for c in range(ds.num_classes) if table[c] == j)
            for j in range(n_new)
        ]
    elif len(class_names) < n_new:
        raise ValueError(f"need {n_new} class names, got {len(class_names)}: {list(class_names)}")
    labels = torch.tensor(table, dtype=torch.int64)[ds.labels]
    return ds.select(torch.arange(len(ds)), labels=labels, class_names=class_names)


def limit(ds: D, n: int, seed: int, stratified: bool = True) -> D:
    """At most ``n`` items of ``ds``, drawn at random without replacement.

    Stratified: class ``c`` with ``N_c`` of the ``N`` items gets ``floor(n N_c / N)`` items,
    and the remaining ones go to the classes with the largest fractional parts (lower class
    first on ties), so class proportions are kept. Items keep their original order.

    Returns:
        ``ds`` itself when ``n >= len(ds)``.
    """
    _check(ds)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"limit must be a positive int, got {n!r}")
    if n >= len(ds):
        return ds
    rng = np.random.default_rng(seed)
    if not stratified:
        return ds.select(torch.from_numpy(np.sort(rng.choice(len(ds), size=n, replace=False))))
    labels = ds.labels.numpy()
    counts = np.bincount(labels, minlength=ds.num_classes)
    quota = n * counts / len(ds)
    take = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: n - int(take.sum())]] += 1
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=int(take[c]), replace=False)
        for c in range(ds.num_classes)
    ]
    return ds.select(torch.from_numpy(np.sort(np.concatenate(chosen))))


def per_class(ds: D, k: int, seed: int) -> D:
    """``k`` items of every class of ``ds`` (all of a class with fewer), drawn at random.

    Class ``c``'s items are drawn with ``numpy.random.default_rng([seed, c])``, so a class's
    draw does not depend on the other classes; items keep their original order.

    Example:
        >>> from kc.engine.data.base import TensorImageDataset
        >>> ds = TensorImageDataset(torch.zeros(10, 1, 2, 2, dtype=torch.uint8), [0] * 7 + [1] * 3,
        ...                         class_names=["a", "b"], mean=[0.0], std=[1.0])
        >>> per_class(ds, 2, seed=0).labels.tolist()
        [0, 0, 1, 1]
    """
    _check(ds)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"per_class must be a positive int, got {k!r}")
    labels = ds.labels.numpy()
    chosen = []
    for c in range(ds.num_classes):
        members = np.flatnonzero(labels == c)
        take = min(int(k), len(members))
        chosen.append(np.random.default_rng([seed, c]).choice(members, size=take, replace=False))
    return ds.select(torch.from_numpy(np.sort(np.concatenate(chosen))))


_limit = limit  # make_task's `limit` argument shadows the function
_per_class = per_class


def _invalid(task: str, why: str) -> ValueError:
    subsets = ", ".join(f"{d}:{s}" for d, s in CLASS_SUBSETS)
    return ValueError(
        f"{why} (task {task!r}); valid tasks: {', '.join(TASK_FORMS)} "
        f"(subsets: {subsets}; mix and binary need two data sets)"
    )


def make_task(
    task: str,
    datasets: str | Sequence[str],
    split: str = "train",
    *,
    image_size: int | None = None,
    root: str | Path | None = None,
    limit: int | None = None,
    per_class: int | None = None,
    seed: int = 0,
) -> ImageDataset:
    """The data set of one experiment; the single entry point of the experiment engine.

    Args:
        task: ``"all"``; ``"half0"`` / ``"half1"`` (train split cut by :func:`halves` with the
            fixed :data:`HALVES_SEED`; for ``split="test"`` the full test set);
            ``"subset:<name>"`` (:data:`CLASS_SUBSETS`); ``"mix:0"`` / ``"mix:1"`` (the first /
            second set's part of the union, relabelled ``0 .. n - 1`` and normalised like the
            union, so networks trained on the union see the same inputs); ``"binary"`` (the
            union labelled 0 / 1 by source set, classes named after the sets).
        datasets: one name of :data:`~kc.engine.data.catalog.DATASETS`, or two for a union (``"all"``
            then gives the union; ``mix`` and ``binary`` require two).
        split: ``"train"`` or ``"test"``.
        image_size: as in :func:`~kc.engine.data.catalog.load`.
        root: as in :func:`~kc.engine.data.catalog.load`; with two data sets, a common parent folder
            (e.g. holding ``CUB_200_2011`` and ``StanfordDogs``).
        limit: keep at most this many items, after building the task (:func:`limit`).
        per_class: keep this many items of every class of the data sets (of their union),
            before building the task (:func:`per_class`), so that ``"mix:0"`` with
            ``per_class=k`` holds the first set's images of ``"all"`` with ``per_class=k``.
        seed: seed of ``limit`` and ``per_class`` only. A data seed, not a network seed: keep it fixed across the
            networks of a pair so that they train on the same images (Case 1).

    Returns:
        The data set; ``.num_classes`` sizes the classifier.
    """
    names = (datasets,) if isinstance(datasets, str) else tuple(datasets)
    if not 1 <= len(names) <= 2 or any(n not in DATASETS for n in names):
        raise ValueError(f"datasets must be one or two of {DATASETS}, got {datasets!r}")
    if not isinstance(task, str):
        raise _invalid(str(task), "task must be a string")
    parts = [load(n, split, root=root, image_size=image_size) for n in names]
    base = parts[0] if len(parts) == 1 else union(parts[0], parts[1])
    if per_class is not None:
        base = _per_class(base, per_class, seed)

    if task in ("all", "half0", "half1"):
        ds = base
        if task != "all" and split == "train":
            ds = halves(base, HALVES_SEED)[int(task[-1])]
    elif task.startswith("subset:"):
        key = (names[0], task.split(":", 1)[1])
        if len(names) != 1 or key not in CLASS_SUBSETS:
            raise _invalid(task, f"no class subset {key[1]!r} for data sets {names}")
        ds = subset_classes(base, CLASS_SUBSETS[key])
    elif task in ("mix:0", "mix:1", "binary"):
        if len(names) != 2:
            raise _invalid(task, f"needs two data sets, got {names}")
        n0 = parts[0].num_classes
        if task == "binary":
            mapping = [0] * n0 + [1] * parts[1].num_classes
            ds = coarse(base, mapping, class_names=names)
        else:
            first = task == "mix:0"
            ds = subset_classes(base, range(n0) if first else range(n0, base.num_classes))
    else:
        raise _invalid(task, "unknown task")
    return ds if limit is None else _limit(ds, limit, seed)
