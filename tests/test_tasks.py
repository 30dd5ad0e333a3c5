"""kc.engine.data.tasks: halves, class subsets, unions, relabelling, limits and make_task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kc.engine.data
from kc.engine.data import mnist
from kc.engine.data.base import TensorImageDataset, pooled_stats
from kc.engine.data.tasks import (
    CLASS_SUBSETS,
    HALVES_SEED,
    coarse,
    halves,
    limit,
    make_task,
    subset_classes,
    union,
)

needs_fashion = pytest.mark.skipif(
    not mnist._has_fashion(mnist.DEBIAN_FASHION_DIR),
    reason="Fashion-MNIST not installed: apt-get install -y dataset-fashion-mnist",
)


def tagged(counts: list[int], *, mean: float = 0.5, std: float = 0.25) -> TensorImageDataset:
    """A data set whose item i stores i in its pixels and whose classes have the given sizes,
    interleaved (labels 0, 1, 2, 0, 1, 2, ... until a class runs out)."""
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    order = np.argsort(np.concatenate([np.arange(n) for n in counts]), kind="stable")
    labels = torch.from_numpy(labels[order])
    i = torch.arange(len(labels))
    images = torch.stack([i // 256, i % 256], dim=1).to(torch.uint8).view(-1, 1, 1, 2)
    names = [f"c{c}" for c in range(len(counts))]
    return TensorImageDataset(images, labels, class_names=names, mean=[mean], std=[std])


def ids(ds: TensorImageDataset) -> list[int]:
    """The original item numbers stored in the pixels by :func:`tagged`."""
    px = ds.images.view(-1, 2).long()
    return (px[:, 0] * 256 + px[:, 1]).tolist()


# --- halves -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("counts", [[10, 10, 10], [7, 4, 9, 1], [1]])
def test_halves_are_disjoint_balanced_and_cover(seed: int, counts: list[int]) -> None:
    ds = tagged(counts)
    a, b = halves(ds, seed)
    ia, ib = ids(a), ids(b)
    assert set(ia).isdisjoint(ib) and sorted(ia + ib) == list(range(len(ds)))
    assert len(a) - len(b) in (0, 1)
    assert ia == sorted(ia) and ib == sorted(ib)
    per_a, per_b = (
        a.labels.bincount(minlength=len(counts)),
        b.labels.bincount(minlength=len(counts)),
    )
    assert (per_a - per_b).abs().max() <= 1
    assert torch.equal(a.labels, ds.labels[ia]) and a.class_names == ds.class_names


def test_halves_depend_on_seed_only() -> None:
    ds = tagged([50, 50])
    assert ids(halves(ds, 3)[0]) == ids(halves(ds, 3)[0])
    assert ids(halves(ds, 3)[0]) != ids(halves(ds, 4)[0])


# --- subset_classes, union, coarse -----------------------------------------------------------


def test_subset_classes_relabels_in_given_order() -> None:
    ds = tagged([3, 4, 5])
    sub = subset_classes(ds, [2, 0])
    assert sub.class_names == ("c2", "c0") and sub.num_classes == 2
    assert sorted(ids(sub)) == ids(sub) and len(sub) == 8
    old = ds.labels[ids(sub)]
    assert torch.equal(sub.labels, torch.where(old == 2, 0, 1))
    for bad in ([0, 0], [3], []):
        with pytest.raises(ValueError, match=r"classes must be distinct labels in \[0, 2\]"):
            subset_classes(ds, bad)


def test_union_offsets_labels_and_pools_normalisation() -> None:
    a, b = tagged([2, 3], mean=0.3, std=0.2), tagged([1, 1, 1], mean=0.1, std=0.4)
    u = union(a, b)
    assert len(u) == 8 and u.num_classes == 5
    assert u.class_names == ("c0", "c1", "c0", "c1", "c2")
    assert torch.equal(u.labels, torch.cat([a.labels, b.labels + 2]))
    assert torch.equal(u.images, torch.cat([a.images, b.images]))
    assert (u.mean, u.std) == pooled_stats(((0.3,), (0.2,)), ((0.1,), (0.4,)))
    same = union(a, a)
    assert (same.mean, same.std) == (a.mean, a.std)


def test_union_rejects_different_shapes() -> None:
    a = tagged([2])
    b = TensorImageDataset(
        torch.zeros(1, 1, 2, 2, dtype=torch.uint8), [0], class_names=["x"], mean=[0], std=[1]
    )
    with pytest.raises(ValueError, match=r"images of one shape, got \(1, 1, 2\) and \(1, 2, 2\)"):
        union(a, b)
    with pytest.raises(TypeError, match="expected a kc.engine.data ImageDataset, got list"):
        union(a, [1, 2])  # type: ignore[arg-type]


def test_coarse_relabels_with_list_or_dict() -> None:
    ds = tagged([2, 3, 4])
    c = coarse(ds, [1, 0, 1])
    assert c.class_names == ("c1", "c0+c2") and len(c) == len(ds)
    assert torch.equal(c.labels, torch.tensor([1, 0, 1])[ds.labels])
    d = coarse(ds, {0: 0, 1: 0, 2: 1}, class_names=["low", "high"])
    assert d.class_names == ("low", "high") and torch.equal(d.labels, (ds.labels == 2).long())
    with pytest.raises(ValueError, match=r"one new label per old class \(3\), got 2"):
        coarse(ds, [0, 1])
    with pytest.raises(ValueError, match=r"mapping lacks old classes \[2\]"):
        coarse(ds, {0: 0, 1: 1})
    with pytest.raises(ValueError, match="need 2 class names, got 1"):
        coarse(ds, [0, 1, 1], class_names=["one"])


# --- limit ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "n", "expected"),
    [([100, 50, 30], 18, [10, 5, 3]), ([10, 10, 10], 10, [4, 3, 3]), ([6, 3, 1], 5, [3, 2, 0])],
)
def test_limit_is_stratified(counts: list[int], n: int, expected: list[int]) -> None:
    small = limit(tagged(counts), n, seed=0)
    assert small.labels.bincount(minlength=len(counts)).tolist() == expected
    assert ids(small) == sorted(ids(small)) and len(set(ids(small))) == n


@pytest.mark.parametrize("seed", [0, 1])
def test_limit_is_seeded_and_can_be_unstratified(seed: int) -> None:
    ds = tagged([40, 40])
    assert ids(limit(ds, 10, seed)) == ids(limit(ds, 10, seed))
    assert ids(limit(ds, 10, seed)) != ids(limit(ds, 10, seed + 10))
    flat = limit(ds, 25, seed, stratified=False)
    assert len(flat) == 25 and len(set(ids(flat))) == 25
    assert limit(ds, 80, seed) is ds and limit(ds, 1000, seed) is ds
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="limit must be a positive int, got"):
            limit(ds, bad, seed)  # type: ignore[arg-type]


# --- make_task --------------------------------------------------------------------------------


def test_make_task_halves_cover_train_and_ignore_seed() -> None:
    full = kc.engine.data.load("mnist-5k", "train")
    h0 = make_task("half0", "mnist-5k", seed=0)
    h1 = make_task("half1", "mnist-5k", seed=5)
    assert len(h0) == len(h1) == 2000 and h0.num_classes == 10
    rows = {bytes(r) for r in full.images.flatten(1).numpy()}
    r0 = {bytes(r) for r in h0.images.flatten(1).numpy()}
    r1 = {bytes(r) for r in h1.images.flatten(1).numpy()}
    assert r0.isdisjoint(r1) and r0 | r1 == rows
    ref0, _ = halves(full, HALVES_SEED)
    assert torch.equal(h0.images, ref0.images)
    assert torch.equal(make_task("half0", "mnist-5k", seed=9).images, h0.images)
    assert torch.equal(h0.labels.bincount(), torch.full((10,), 200))


def test_make_task_halves_of_test_split_are_the_full_test_set() -> None:
    test = kc.engine.data.load("mnist-5k", "test")
    for task in ("half0", "half1"):
        assert torch.equal(make_task(task, "mnist-5k", "test").images, test.images)


def test_make_task_limit_is_stratified_and_seeded() -> None:
    a = make_task("all", "mnist-5k", image_size=32, limit=300, seed=1)
    assert a.image_shape == (1, 32, 32) and torch.equal(a.labels.bincount(), torch.full((10,), 30))
    assert torch.equal(
        make_task("all", "mnist-5k", image_size=32, limit=300, seed=1).images, a.images
    )


@needs_fashion
def test_make_task_garments() -> None:
    ds = make_task("subset:garments", "fashion-mnist", "test", image_size=32)
    assert ds.num_classes == 6 and len(ds) == 6000
    assert ds.class_names == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Shirt")
    assert CLASS_SUBSETS[("fashion-mnist", "garments")] == [0, 1, 2, 3, 4, 6]


@needs_fashion
def test_make_task_mixture_tasks() -> None:
    pair = ["fashion-mnist", "mnist-5k"]
    fashion, digits = kc.engine.data.load(pair[0], "test"), kc.engine.data.load(pair[1], "test")
    both = make_task("all", pair, "test")
    assert both.num_classes == 20 and len(both) == 11_000
    assert torch.equal(both.labels[10_000:], digits.labels + 10)
    mix0, mix1 = make_task("mix:0", pair, "test"), make_task("mix:1", pair, "test")
    assert mix0.num_classes == mix1.num_classes == 10
    assert torch.equal(mix0.images, fashion.images) and torch.equal(mix0.labels, fashion.labels)
    assert torch.equal(mix1.images, digits.images) and torch.equal(mix1.labels, digits.labels)
    assert mix1.class_names == digits.class_names
    # the parts keep the union's normalisation, so union-trained networks see the same inputs
    assert (mix0.mean, mix0.std) == (both.mean, both.std) == (mix1.mean, mix1.std)
    torch.testing.assert_close(mix1[5][0], both[10_005][0], rtol=0, atol=0)
    binary = make_task("binary", pair, "test")
    assert binary.class_names == ("fashion-mnist", "mnist-5k")
    assert binary.labels.bincount().tolist() == [10_000, 1000]
    small = make_task("binary", pair, "train", limit=640, seed=0)
    assert small.labels.bincount().tolist() == [600, 40]


def test_make_task_rejects_bad_requests() -> None:
    with pytest.raises(
        ValueError, match=r"unknown task \(task 'halves'\); valid tasks: all, half0"
    ):
        make_task("halves", "mnist-5k")
    with pytest.raises(
        ValueError, match=r"no class subset 'animals' for data sets \('mnist-5k',\)"
    ):
        make_task("subset:animals", "mnist-5k")
    with pytest.raises(ValueError, match=r"needs two data sets, got \('mnist-5k',\)"):
        make_task("mix:0", "mnist-5k")
    with pytest.raises(ValueError, match=r"needs two data sets.*subsets: fashion-mnist:garments"):
        make_task("binary", ["mnist-5k"])
    with pytest.raises(ValueError, match=r"datasets must be one or two of"):
        make_task("all", ["mnist-5k"] * 3)
    with pytest.raises(ValueError, match=r"datasets must be one or two of .*got 'mnist'"):
        make_task("all", "mnist")
