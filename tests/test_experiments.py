"""kc.engine.experiments: cached networks, aligned features, cached g; tiny settings on mnist-5k."""

from __future__ import annotations

import re

import pytest
import torch

import kc
import kc.engine.train
from kc.engine import cache, data, zoo
from kc.engine import experiments as E

TINY = dict(
    datasets=("mnist-5k",), epochs=1, width=0.125, train_limit=200, test_limit=200, batch_size=100
)
FIT = dict(fit_limit=100, test_limit=80, g_steps=20, progress=False)


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory):
    """One cache for the module (the tiny networks are trained once)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KC_CACHE", str(tmp_path_factory.mktemp("kc-cache")))
        yield


def states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------- NetSpec


def test_netspec_label_and_normalisation():
    spec = E.NetSpec("vgg16", datasets="mnist-5k", width=1, seed=2)
    assert spec.datasets == ("mnist-5k",) and spec.width == 1.0
    assert spec.label == "vgg16/mnist-5k/all/seed2"
    assert spec == E.NetSpec("vgg16", datasets=["mnist-5k"], width=1.0, seed=2)
    assert hash(spec) == hash(E.NetSpec("vgg16", datasets=("mnist-5k",), width=1.0, seed=2))
    two = E.NetSpec("resnet18", datasets=("fashion-mnist", "mnist-5k"), task="mix:1")
    assert two.label == "resnet18/fashion-mnist+mnist-5k/mix:1/seed0"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(arch="vgg19"), "unknown arch 'vgg19'"),
        (dict(arch="vgg16", datasets=("cifar10",)), "datasets must be one or two of"),
        (dict(arch="vgg16", task="third"), "invalid task 'third'"),
        (dict(arch="vgg16", task="subset:animals"), "invalid task 'subset:animals'"),
        (dict(arch="vgg16", task="binary"), "needs two datasets"),
        (dict(arch="vgg16", optimizer="rmsprop"), "optimizer must be one of"),
        (dict(arch="vgg16", epochs=-1), "epochs must be an int >= 0, got -1"),
        (dict(arch="vgg16", train_limit=0), "train_limit must be None or an int >= 1"),
        (dict(arch="vgg16", test_limit=True), "test_limit must be None or an int >= 1"),
        (dict(arch="vgg16", input_size=224), "width is only supported"),
    ],
)
def test_netspec_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        E.NetSpec(**kwargs)


def test_netspec_accepts_subset_tasks():
    assert E.NetSpec("alexnet", task="subset:garments").task == "subset:garments"


# ---------------------------------------------------------------------------- networks


def test_get_net_trains_once_then_loads(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KC_CACHE", str(tmp_path))  # a miss whatever ran before
    spec = E.NetSpec("resnet18", seed=5, **TINY)
    first = E.get_net(spec, device="cpu", progress=False)
    second = E.get_net(spec, device="cpu", progress=False)
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(
        r"resnet18/mnist-5k/all/seed5: \d+\.\d% top-1 \(trained in \d+\.\d s\)", out[0]
    )
    assert re.fullmatch(r"resnet18/mnist-5k/all/seed5: \d+\.\d% top-1 \(from cache\)", out[1])
    assert not first.from_cache and second.from_cache
    assert states_equal(first.model, second.model)
    assert first.accuracy == second.accuracy and 0 <= first.accuracy <= 100
    assert (first.accuracy * 2).is_integer()  # measured on test_limit=200 images
    assert first.num_classes == 10 and not second.model.training
    assert first.key == second.key and first.key.startswith("resnet18-mnist-5k-all-seed5-")
    assert not list(cache.cache_root().rglob("*.ckpt"))  # the checkpoint is removed


def test_truncated_net_is_retrained_identically():
    spec = E.NetSpec("alexnet", **TINY)
    first = E.get_net(spec, device="cpu", progress=False)
    path = cache.cache_root() / "net" / f"{first.key}.pt"
    path.write_bytes(path.read_bytes()[:1000])
    again = E.get_net(spec, device="cpu", progress=False)
    assert not again.from_cache
    assert states_equal(first.model, again.model)  # deterministic on CPU


class Interrupting(torch.utils.data.Dataset):
    """A training set that dies at its ``stop_at``-th item (a killed notebook)."""

    def __init__(self, base, stop_at):
        self.base, self.stop_at, self.served = base, stop_at, 0
        self.num_classes = base.num_classes

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.served += 1
        if self.served == self.stop_at:
            raise KeyboardInterrupt("simulated interruption")
        return self.base[i]


def test_interrupted_training_resumes_from_the_cache_folder(tmp_path, monkeypatch):
    spec = E.NetSpec("alexnet", **{**TINY, "epochs": 2, "train_limit": 100})
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "reference"))
    reference = E.get_net(spec, device="cpu", progress=False)

    monkeypatch.setenv("KC_CACHE", str(tmp_path / "interrupted"))
    make_task = data.make_task

    def dying(task, datasets, split="train", **kwargs):
        ds = make_task(task, datasets, split, **kwargs)
        # items served: 1 probe of in_channels, then 100 per epoch; die in epoch 2
        return Interrupting(ds, stop_at=1 + 100 + 30) if split == "train" else ds

    monkeypatch.setattr(E.data, "make_task", dying)
    with pytest.raises(KeyboardInterrupt):
        E.get_net(spec, device="cpu", progress=False)
    assert len(list((tmp_path / "interrupted" / "net").glob("*.ckpt"))) == 1
    monkeypatch.setattr(E.data, "make_task", make_task)
    resumed = E.get_net(spec, device="cpu", progress=False)
    assert states_equal(resumed.model, reference.model)
    losses = [[h["loss"] for h in net.info["history"]] for net in (resumed, reference)]
    assert losses[0] == losses[1] and resumed.accuracy == reference.accuracy
    assert not list((tmp_path / "interrupted" / "net").glob("*.ckpt"))


def test_seeds_give_different_networks():
    a = E.get_net(E.NetSpec("alexnet", **TINY), device="cpu", progress=False)
    b = E.get_net(E.NetSpec("alexnet", seed=1, **TINY), device="cpu", progress=False)
    assert a.key != b.key and not states_equal(a.model, b.model)


def test_get_pruned_is_sparse_and_cached():
    spec = E.NetSpec("alexnet", **TINY)
    pruned = E.get_pruned(spec, 0.75, finetune_epochs=1, device="cpu", progress=False)
    assert kc.engine.train.sparsity(pruned.model) == pytest.approx(0.75, abs=1e-3)
    assert pruned.info["sparsity"] == pytest.approx(0.75, abs=1e-3)
    assert pruned.label == "alexnet/mnist-5k/all/seed0/pruned0.75"
    again = E.get_pruned(spec, 0.75, finetune_epochs=1, device="cpu", progress=False)
    assert again.from_cache and states_equal(pruned.model, again.model)
    assert pruned.key != E.get_net(spec, device="cpu", progress=False).key


def test_get_born_again_generations():
    spec = E.NetSpec("alexnet", **TINY)
    gen0 = E.get_born_again(spec, 0, device="cpu", progress=False)
    gen1 = E.get_born_again(spec, 1, device="cpu", progress=False)
    assert gen0.key == E.get_net(spec, device="cpu", progress=False).key
    assert gen1.label == "alexnet/mnist-5k/all/seed0/gen1" and gen1.info["generation"] == 1
    assert not states_equal(gen0.model, gen1.model)
    assert E.get_born_again(spec, 1, device="cpu", progress=False).from_cache
    with pytest.raises(ValueError, match="generation must be an int >= 0"):
        E.get_born_again(spec, -1)


def test_upper_is_a_detached_copy_with_optional_new_head():
    net = E.get_net(E.NetSpec("alexnet", **TINY), device="cpu", progress=False)
    before = {k: v.clone() for k, v in net.model.state_dict().items()}
    top = upper = E.upper(net, "conv4")
    lower, _ = zoo.split(net.model, "alexnet", "conv4")
    x = torch.randn(3, 1, 32, 32)
    torch.testing.assert_close(top.eval()(lower(x)), net.model(x))
    for p in upper.parameters():
        p.data.add_(1.0)
    assert all(torch.equal(v, net.model.state_dict()[k]) for k, v in before.items())
    six = E.upper(net, "conv4", num_classes=6)
    assert six.eval()(lower(x)).shape == (3, 6)


# ---------------------------------------------------------------------------- features


def test_features_are_cached_and_aligned():
    a, b = E.NetSpec("alexnet", **TINY), E.NetSpec("resnet18", seed=5, **TINY)
    xa, ya = E.get_features(a, "conv4", limit=60, device="cpu", progress=False)
    xb, yb = E.get_features(b, "last14", limit=60, device="cpu", progress=False)
    assert xa.dtype == torch.float32 and xa.device.type == "cpu" and xa.shape[0] == 60
    assert torch.equal(ya, yb) and ya.bincount().min() == 6  # stratified: 6 per class

    # The same images in the same order: recompute both from one explicit image list.
    ds = data.make_task("all", ("mnist-5k",), "train", image_size=32, limit=60, seed=E.DATA_SEED)
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    for spec, layer, x in ((a, "conv4", xa), (b, "last14", xb)):
        model = E.get_net(spec, device="cpu", progress=False).model
        torch.testing.assert_close(
            zoo.features(model, spec.arch, layer, images), x, rtol=1e-5, atol=1e-5
        )

    again, labels = E.get_features(a, "conv4", limit=60, device="cpu", progress=False)
    assert torch.equal(again, xa) and torch.equal(labels, ya)


def test_features_hit_does_not_need_the_network(monkeypatch):
    spec = E.NetSpec("alexnet", **TINY)
    x, _ = E.get_features(spec, "conv5", split="test", limit=40, device="cpu", progress=False)

    def no_training(*args, **kwargs):
        raise AssertionError("get_net called on a cache hit")

    monkeypatch.setattr(E, "get_net", no_training)
    y, _ = E.get_features(spec, "conv5", split="test", limit=40, device="cpu", progress=False)
    assert torch.equal(x, y)


def test_features_on_another_task_and_of_a_trained_net():
    half = E.NetSpec("alexnet", task="half0", **TINY)
    own, _ = E.get_features(half, "conv4", limit=50, device="cpu", progress=False)
    other, labels = E.get_features(
        half, "conv4", task="all", limit=50, device="cpu", progress=False
    )
    ref_labels = data.make_task("all", "mnist-5k", "train", limit=50, seed=E.DATA_SEED).labels
    assert torch.equal(labels, ref_labels) and not torch.equal(own, other)
    pruned = E.get_pruned(
        E.NetSpec("alexnet", **TINY), 0.75, finetune_epochs=1, device="cpu", progress=False
    )
    xp, yp = E.get_features(pruned, "conv4", task="all", limit=50, device="cpu", progress=False)
    assert torch.equal(yp, ref_labels) and xp.shape == other.shape


def test_truncated_features_are_recomputed():
    spec = E.NetSpec("alexnet", **TINY)
    x, _ = E.get_features(spec, "conv4", limit=30, device="cpu", progress=False)
    (path,) = [e.path for e in cache.ls("features") if e.config["limit"] == 30]
    path.write_bytes(path.read_bytes()[:-100])
    y, _ = E.get_features(spec, "conv4", limit=30, device="cpu", progress=False)
    assert torch.equal(x, y)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(layer="conv9"), "unknown layer 'conv9' of alexnet"),
        (dict(split="val"), "split must be 'train' or 'test'"),
        (dict(limit=0), "limit must be None or an int >= 1"),
    ],
)
def test_features_reject_bad_arguments(kwargs, match):
    args = dict(layer="conv4") | kwargs
    with pytest.raises(ValueError, match=match):
        E.get_features(E.NetSpec("alexnet", **TINY), args.pop("layer"), **args)


# ---------------------------------------------------------------------------- consistency


def test_get_consistency_fits_once_and_evaluates_on_test():
    a, b = E.NetSpec("alexnet", **TINY), E.NetSpec("alexnet", seed=1, **TINY)
    res = E.get_consistency(a, "conv4", b, "conv4", order=2, device="cpu", **FIT)
    assert isinstance(res, kc.ConsistencyResult) and not res.info["from_cache"]
    assert set(res.components) == {"x0", "x1", "x2", "delta"}
    assert res.components["x0"].shape[0] == 80 and res.evaluated_on == "test"
    assert 0 <= res.instability and res.info["task"] == "all"
    again = E.get_consistency(a, "conv4", b, "conv4", order=2, device="cpu", **FIT)
    assert again.info["from_cache"]
    assert again.instability == res.instability
    # the fit's report is cached with g and survives the reload
    assert res.info["fit"]["steps"] >= 1 and again.info["fit"] == res.info["fit"]
    assert again.model.fit_report == res.model.fit_report
    for name, t in res.components.items():
        torch.testing.assert_close(again.components[name], t, rtol=0, atol=0)
    other = E.get_consistency(a, "conv4", b, "conv4", order=1, device="cpu", **FIT)
    assert not other.info["from_cache"] and set(other.components) == {"x0", "x1", "delta"}


def test_g_matches_a_direct_fit():
    a, b = E.NetSpec("alexnet", **TINY), E.NetSpec("alexnet", seed=1, **TINY)
    res = E.get_consistency(a, "conv5", b, "conv4", order=1, resize="pool", device="cpu", **FIT)
    xa, _ = E.get_features(a, "conv5", limit=100, device="cpu", progress=False)
    xb, _ = E.get_features(b, "conv4", limit=100, device="cpu", progress=False)
    g = kc.fit_consistency(
        xa,
        xb,
        order=1,
        lam=0.1,
        max_steps=20,
        lr=1e-2,
        batch_size=128,
        seed=0,
        resize="pool",
        progress=False,
    )
    for k, v in g.state_dict().items():
        torch.testing.assert_close(res.model.state_dict()[k], v)


def test_case2_pair_uses_all_images_and_datasets_must_match():
    h0 = E.NetSpec("alexnet", task="half0", **TINY)
    h1 = E.NetSpec("alexnet", task="half1", **TINY)
    res = E.get_consistency(h0, "conv4", h1, "conv4", order=0, device="cpu", **FIT)
    assert res.info["task"] == "all"
    sub = E.NetSpec("alexnet", task="subset:garments")
    with pytest.raises(ValueError, match="pass task="):
        E.get_consistency(E.NetSpec("alexnet"), "conv4", sub, "conv4", **FIT)
    with pytest.raises(ValueError, match="must see the same images"):
        E.get_consistency(h0, "conv4", E.NetSpec("alexnet"), "conv4", **FIT)


def test_misaligned_features_are_refused(monkeypatch):
    a, b = E.NetSpec("alexnet", **TINY), E.NetSpec("alexnet", seed=1, **TINY)
    real = E.get_features

    def shuffled(net, layer, **kw):
        feats, labels = real(net, layer, **kw)
        if net.seed == 1 and kw.get("split") == "test":  # the target's test images reordered
            order = torch.arange(labels.shape[0]).roll(1)
            return feats[order], labels[order]
        return feats, labels

    monkeypatch.setattr(E, "get_features", shuffled)
    with pytest.raises(ValueError, match=r"test features of .* not aligned: their ids differ"):
        E.get_consistency(a, "conv4", b, "conv4", order=0, device="cpu", **FIT)
