"""kc.engine.train: learning, determinism, resumable checkpoints, pruning, distillation, heads."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from kc.engine import train as T


def toy_images(n: int = 240, seed: int = 0) -> TensorDataset:
    """Four classes of 1x8x8 images: a bright quadrant on noise (learnable in one epoch)."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = 0.3 * torch.randn(n, 1, 8, 8, generator=gen)
    for c in range(4):
        r, q = divmod(c, 2)
        images[labels == c, :, 4 * r : 4 * r + 4, 4 * q : 4 * q + 4] += 1.0
    return TensorDataset(images, labels)


def toy_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(8 * 16, 4),
    )


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


FAST = dict(batch_size=32, lr=1e-2, progress=False)


# ---------------------------------------------------------------------------- training


def test_train_learns_and_reports():
    ds, test = toy_images(240), toy_images(80, seed=1)
    model = toy_net()
    report = T.train(model, ds, epochs=3, test_ds=test, **FAST)
    assert report.accuracy is not None and report.accuracy > 90
    assert report.epochs_run == 3 and len(report.history) == 3
    assert report.train_accuracy == report.history[-1]["train_accuracy"]
    assert report.history[-1]["loss"] < report.history[0]["loss"]
    assert report.history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine to 0
    assert report.seconds > 0 and not model.training
    assert T.TrainReport.from_dict(report.to_dict()) == report


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_train_is_deterministic_under_a_seed(optimizer):
    ds = toy_images(100)
    a, b, c = toy_net(), toy_net(), toy_net()
    T.train(a, ds, epochs=2, optimizer=optimizer, seed=3, **FAST)
    T.train(b, ds, epochs=2, optimizer=optimizer, seed=3, **FAST)
    T.train(c, ds, epochs=2, optimizer=optimizer, seed=4, **FAST)
    assert states_equal(a, b)
    assert not states_equal(a, c)


def test_train_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    T.train(toy_net(), toy_images(64), epochs=1, **FAST)
    assert torch.equal(torch.get_rng_state(), state)


def test_single_sample_last_batch_is_dropped():
    # 65 = 2 * 32 + 1: a batch of one would make BatchNorm fail in training mode.
    report = T.train(toy_net(), toy_images(65), epochs=1, **FAST)
    assert report.epochs_run == 1


class Interrupting(Dataset):
    """Raises KeyboardInterrupt at the ``stop_at``-th item served."""

    def __init__(self, base: Dataset, stop_at: int):
        self.base, self.stop_at, self.served = base, stop_at, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.served += 1
        if self.served == self.stop_at:
            raise KeyboardInterrupt("simulated interruption")
        return self.base[i]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_resume_is_bit_identical(tmp_path, optimizer):
    ds, test = toy_images(96), toy_images(40, seed=1)
    kwargs = dict(epochs=3, optimizer=optimizer, seed=7, test_ds=test, **FAST)
    reference = toy_net()
    expected = T.train(reference, ds, **kwargs)

    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):  # dies in the middle of the third epoch
        T.train(toy_net(), Interrupting(ds, stop_at=2 * 96 + 50), checkpoint=ckpt, **kwargs)
    assert T.safe_load(ckpt)["epoch"] == 2

    resumed = toy_net(seed=123)  # any initialisation: the checkpoint overrides it
    report = T.train(resumed, ds, checkpoint=ckpt, **kwargs)
    assert states_equal(resumed, reference)
    assert report.accuracy == expected.accuracy and report.epochs_run == 3
    assert [h["loss"] for h in report.history] == [h["loss"] for h in expected.history]

    # A finished checkpoint only restores: nothing more is trained.
    again = toy_net(seed=5)
    assert T.train(again, ds, checkpoint=ckpt, **kwargs).epochs_run == 3
    assert states_equal(again, reference)


def test_checkpoint_with_other_settings_is_ignored(tmp_path, caplog):
    ds, ckpt = toy_images(64), tmp_path / "run.ckpt"
    T.train(toy_net(), ds, epochs=1, checkpoint=ckpt, **FAST)
    fresh, reference = toy_net(), toy_net()
    T.train(fresh, ds, epochs=1, checkpoint=ckpt, **{**FAST, "lr": 5e-3})
    T.train(reference, ds, epochs=1, **{**FAST, "lr": 5e-3})
    assert "ignoring checkpoint" in caplog.text
    assert states_equal(fresh, reference)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(optimizer="rmsprop"), "optimizer must be one of"),
        (dict(epochs=-1), "epochs must be >= 0"),
        (dict(lr=0.0), "lr must be > 0"),
    ],
)
def test_train_rejects_bad_arguments(kwargs, match):
    args = dict(epochs=1, lr=1e-3, progress=False) | kwargs
    with pytest.raises(ValueError, match=match):
        T.train(toy_net(), toy_images(8), **args)


# ---------------------------------------------------------------------------- evaluation


def test_evaluate_counts_top1_and_restores_mode():
    net = nn.Linear(3, 3, bias=False)
    net.weight.data.copy_(torch.eye(3))
    x = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0, 0, 1.0]])
    ds = TensorDataset(x, torch.tensor([0, 1, 2, 0]))
    net.train()
    assert T.evaluate(net, ds, batch_size=3) == 75.0
    assert net.training


def test_resolve_device():
    assert T.resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert T.resolve_device("auto").type == expected


# ---------------------------------------------------------------------------- pruning


def prunable_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 36, 7))


@pytest.mark.parametrize("amount", [0.0, 0.1, 0.5, 0.933, 1.0])
def test_sparsity_equals_amount(amount):
    model = T.prune_magnitude(prunable_net(), amount)
    total = 6 * 9 + 6 * 36 * 7
    assert abs(T.sparsity(model) - amount) <= 0.5 / total


def test_pruning_removes_the_smallest_magnitudes():
    model = prunable_net()
    weights = torch.cat([m.weight.detach().abs().flatten() for m in (model[0], model[3])])
    T.prune_magnitude(model, 0.4)
    kept = torch.cat([T._effective_weight(m).abs().flatten() for m in (model[0], model[3])])
    removed_max = weights[kept == 0].max()
    assert (kept[kept != 0] >= removed_max).all()
    assert torch.equal(model[0].bias, prunable_net()[0].bias)  # biases untouched


def test_pruning_breaks_ties_exactly():
    model = nn.Linear(10, 10, bias=False)
    nn.init.constant_(model.weight, 0.5)
    T.prune_magnitude(model, 0.37)
    assert T.sparsity(model) == 0.37


def test_threshold_pruning():
    model = T.prune_magnitude(prunable_net(), threshold=0.05)
    for m in (model[0], model[3]):
        w = T._effective_weight(m)
        assert (w[w != 0].abs() > 0.05).all()
        assert (m.weight_orig[w == 0].abs() <= 0.05).all()


def test_masks_survive_finetuning_and_finalize():
    ds = TensorDataset(torch.randn(64, 1, 8, 8), torch.randint(0, 7, (64,)))
    model = T.prune_magnitude(prunable_net(), 0.8)
    T.train(model, ds, epochs=1, **FAST)
    assert T.sparsity(model) == pytest.approx(0.8, abs=1e-3)
    T.prune_magnitude(model, 0.9)  # cumulative: 90 % of all weights afterwards
    assert T.sparsity(model) == pytest.approx(0.9, abs=1e-3)
    out = model(ds.tensors[0])
    T.finalize_pruning(model)
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    assert T.sparsity(model) == pytest.approx(0.9, abs=1e-3)
    torch.testing.assert_close(model(ds.tensors[0]), out)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(), "exactly one"),
        (dict(amount=0.5, threshold=0.1), "exactly one"),
        (dict(amount=1.5), r"amount must lie in \[0, 1\], got 1.5"),
        (dict(threshold=-1.0), "threshold must be >= 0"),
    ],
)
def test_prune_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        T.prune_magnitude(prunable_net(), **kwargs)


# ---------------------------------------------------------------------------- distillation


def test_distillation_loss_hand_computed():
    # student logits (1, 0), teacher probabilities (1/4, 3/4), label 0, tau = 1, weight = 0.5
    s = torch.tensor([[1.0, 0.0]])
    t = torch.tensor([[0.0, math.log(3.0)]])
    y = torch.tensor([0])
    log_p0, log_p1 = -math.log(1 + math.exp(-1)), -math.log(1 + math.e)
    ce = -log_p0
    kd = -(0.25 * log_p0 + 0.75 * log_p1)
    loss = T.distillation_loss(s, t, y)
    assert float(loss) == pytest.approx(ce + 0.5 * kd, rel=1e-6)
    assert float(loss) == pytest.approx(0.8449, abs=1e-4)


@pytest.mark.parametrize("tau", [1.0, 2.0, 4.0])
def test_distillation_loss_matches_kl_reference(tau):
    gen = torch.Generator().manual_seed(0)
    s, t = (
        torch.randn(16, 5, generator=gen, dtype=torch.float64),
        torch.randn(16, 5, generator=gen, dtype=torch.float64),
    )
    y = torch.randint(0, 5, (16,), generator=gen)
    q = F.softmax(t / tau, 1)
    entropy = -(q * q.log()).sum(1).mean()
    kl = F.kl_div(F.log_softmax(s / tau, 1), q, reduction="batchmean")
    expected = F.cross_entropy(s, y) + 0.3 * tau**2 * (kl + entropy)
    torch.testing.assert_close(T.distillation_loss(s, t, y, tau=tau, weight=0.3), expected)
    torch.testing.assert_close(T.distillation_loss(s, t, y, weight=0.0), F.cross_entropy(s, y))


def test_distillation_loss_rejects_shapes():
    with pytest.raises(ValueError, match=r"same shape \(B, C\), got \(2, 3\) and \(2, 4\)"):
        T.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, dtype=torch.long))


def test_train_distilled_learns_and_keeps_teacher():
    ds, test = toy_images(160), toy_images(80, seed=1)
    teacher = toy_net(0)
    T.train(teacher, ds, epochs=2, **FAST)
    frozen = copy.deepcopy(teacher)
    student = toy_net(1)
    report = T.train_distilled(student, teacher, ds, epochs=2, test_ds=test, **FAST)
    assert report.accuracy > 80
    assert states_equal(teacher, frozen)
    with pytest.raises(ValueError, match="unknown arguments"):
        T.train_distilled(student, teacher, ds, epochs=1, lr=1e-3, bogus=1)


# ---------------------------------------------------------------------------- heads


def test_train_head_on_features():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 4
    x = torch.randn(300, 4, 3, 3, generator=gen)
    x[torch.arange(300), y] += 1.0  # class c lights up channel c
    torch.manual_seed(0)
    head = nn.Sequential(nn.Flatten(), nn.Linear(36, 4))
    report = T.train_head(
        head,
        x[:200],
        y[:200],
        test_x=x[200:],
        test_y=y[200:],
        epochs=20,
        lr=1e-2,
        batch_size=50,
        progress=False,
    )
    assert report.accuracy > 85 and report.epochs_run == 20
    with pytest.raises(ValueError, match="train_x and train_y must have the same length"):
        T.train_head(head, x, y[:10], test_x=x, test_y=y, epochs=1, lr=1e-3)
