"""The over-fitting regime's images (issue 24): a seeded per-class draw, the same images for the
network, its features and every task of a union; the train/test gap of a network."""

from __future__ import annotations

import pytest
import torch

from kc.engine import cache, data
from kc.engine import experiments as E

PC = dict(datasets=("mnist-5k",), epochs=30, width=0.125, test_limit=200, batch_size=50,
          train_per_class=5)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KC_CACHE", str(tmp_path_factory.mktemp("kc-cache")))
        yield


def test_per_class_draws_k_of_every_class_and_all_of_a_small_one():
    base = data.make_task("all", "mnist-5k", "train")
    ds = data.per_class(base, 7, seed=3)
    assert ds.labels.bincount(minlength=10).tolist() == [7] * 10
    assert torch.equal(ds.labels, data.per_class(base, 7, seed=3).labels)  # seeded
    other = data.per_class(base, 7, seed=4)
    assert not torch.equal(torch.stack([ds[i][0] for i in range(5)]),
                           torch.stack([other[i][0] for i in range(5)]))  # fmt: skip
    few = data.subset_classes(base, [0, 1])
    few = few.select(torch.cat([torch.nonzero(few.labels == 0)[:3, 0],
                                torch.nonzero(few.labels == 1)[:, 0]]))  # fmt: skip
    assert data.per_class(few, 5, seed=0).labels.bincount().tolist() == [3, 5]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="per_class must be a positive int"):
            data.per_class(base, bad, seed=0)


def test_a_class_draw_does_not_depend_on_the_other_classes():
    # mix:0 with per_class=k is the first set's part of "all" with per_class=k: the same images
    union = data.make_task("all", ("fashion-mnist", "mnist-5k"), "train", image_size=16,
                           per_class=4, seed=0)  # fmt: skip
    first = data.make_task("mix:0", ("fashion-mnist", "mnist-5k"), "train", image_size=16,
                           per_class=4, seed=0)  # fmt: skip
    assert union.num_classes == 20 and len(union) == 80 and len(first) == 40
    images_union = torch.stack([union[i][0] for i in range(len(union)) if union.labels[i] < 10])
    images_first = torch.stack([first[i][0] for i in range(len(first))])
    assert torch.equal(images_union, images_first)


def test_netspec_per_class_keeps_old_keys_and_refuses_both_limits():
    plain = E.NetSpec("alexnet", datasets=("mnist-5k",))
    assert "train_per_class" not in plain.config()  # keys cached before the field existed
    pc = E.NetSpec("alexnet", datasets=("mnist-5k",), train_per_class=30)
    assert pc.label == "alexnet/mnist-5k/all/seed0/pc30" and pc.config()["train_per_class"] == 30
    assert E._net_key(plain) != E._net_key(pc)
    with pytest.raises(ValueError, match="give train_limit or train_per_class, not both"):
        E.NetSpec("alexnet", train_limit=100, train_per_class=10)
    with pytest.raises(ValueError, match="train_per_class must be None or an int >= 1"):
        E.NetSpec("alexnet", train_per_class=0)


def test_a_per_class_network_over_fits_and_its_train_features_are_its_images():
    spec = E.NetSpec("resnet18", **PC)
    net = E.get_net(spec, device="cpu", progress=False)
    x, y = E.get_features(spec, "last14", device="cpu", progress=False)
    assert y.bincount().tolist() == [5] * 10  # the network's 50 training images
    train_acc = E.get_train_accuracy(spec, device="cpu", progress=False)
    assert train_acc >= 90.0  # 30 epochs on 50 images: it learns them by heart
    assert train_acc - net.accuracy > 20.0  # and does not generalise: the gap of over-fitting
    # cached: a second call does not evaluate
    entries = len(list((cache.cache_root() / "train-accuracy").glob("*.pt")))
    assert E.get_train_accuracy(spec, device="cpu", progress=False) == train_acc
    assert len(list((cache.cache_root() / "train-accuracy").glob("*.pt"))) == entries == 1
    with pytest.raises(ValueError, match="limit must be None or an int >= 1"):
        E.get_train_accuracy(spec, limit=0)
