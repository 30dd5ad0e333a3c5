"""Cached building blocks of the notebooks: trained networks, their features, fitted g.

Every function here is a thin, cached composition of :mod:`kc.engine.data`, :mod:`kc.engine.zoo`,
:mod:`kc.engine.train` and the core (:func:`kc.fit_consistency`): calling it twice with the same
arguments trains or computes once. Cache kinds (see :mod:`kc.engine.cache`):

============== ============================================================================
kind           value
============== ============================================================================
``net``        state_dict + training report of :func:`get_net`
``pruned``     the same for :func:`get_pruned` (masks folded into the weights)
``born-again`` the same for :func:`get_born_again`, generation >= 1
``features``   ``{"features": (N, C, H, W) float32, "labels": (N,)}`` of :func:`get_features`
``g``          ``{"config": g.config, "state_dict": g.state_dict()}`` of a fitted g
============== ============================================================================

Keys chain: a feature key contains the key of its network, a g key those of both features,
and each kind adds the code version of the modules it depends on, so changing e.g. the
architectures retrains the networks and recomputes everything downstream.

Images: networks are trained on ``make_task(task, datasets, "train", limit=train_limit,
seed=DATA_SEED)`` and evaluated on the test split of the same task (all of it, or
``test_limit`` images). Features use
``make_task(task, datasets, split, limit=limit, seed=DATA_SEED)``: a stratified subset that
depends only on the data, never on the network, so two networks' features are computed on
the same images in the same order, as Eq. 2 requires (g maps x_A to x_B image by image).
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import prune
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from kc.core.fit import FitReport, check_aligned, fit_consistency
from kc.core.measure import ConsistencyResult, evaluate_consistency
from kc.core.model import ConsistencyNet
from kc.engine import cache, data, phases, zoo
from kc.engine import train as tr
from kc.engine.seeding import seeded_build

__all__ = [
    "DATA_SEED",
    "NetSpec",
    "TrainedNet",
    "consistency_key",
    "get_born_again",
    "get_consistency",
    "get_features",
    "get_net",
    "get_pruned",
    "get_train_accuracy",
    "upper",
]

#: Seed of every image subset (training limit, feature subsets). A data seed, fixed so that
#: all networks and all fits see the same images; the networks' own seeds are NetSpec.seed.
DATA_SEED = 0

_NET_CODE = ("kc.engine.data", "kc.engine.train", "kc.engine.zoo")
_FEATURE_CODE = ("kc.engine.data", "kc.engine.zoo")
_G_CODE = ("kc.core.decompose", "kc.core.fit", "kc.core.losses", "kc.core.model", "kc.core.normalize",
           "kc.core.precision")
_TASKS = ("all", "half0", "half1", "mix:0", "mix:1", "binary")


@functools.cache
def _version(modules: tuple[str, ...]) -> str:
    return cache.code_version(modules)


# Phase timings for benchmarks/bench_phases.py (kc.engine.phases; no-ops unless $KC_PROFILE_PHASES is
# set): fitting g and measuring it, as get_consistency calls them.
fit_consistency = phases.timed("g fit")(fit_consistency)
evaluate_consistency = phases.timed("evaluation")(evaluate_consistency)


# ---------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class NetSpec:
    """Everything that determines a trained network (architecture, data, optimisation).

    ``datasets`` may be given as a single name or a list; it is stored as a tuple. The network's
    initialisation and the shuffling are seeded by ``seed``; the training images are fixed.
    ``train_limit`` / ``test_limit`` keep a stratified subset (seeded by :data:`DATA_SEED`) of
    the training images / of the test images on which the accuracy is measured (``None``: all;
    a limit on the test split saves minutes per network on a CPU). ``train_per_class`` instead
    keeps that many training images of every class of the data sets (seeded by
    :data:`DATA_SEED`; :func:`kc.engine.data.per_class`): the over-fitting regime, in which the
    training split of the network's features (:func:`get_features`) is the same images.

    Example:
        >>> NetSpec("vgg16").label
        'vgg16/fashion-mnist/all/seed0'
    """

    arch: str
    datasets: tuple[str, ...] = ("fashion-mnist",)
    task: str = "all"
    seed: int = 0
    epochs: int = 3
    width: float = 0.25
    input_size: int = 32
    train_limit: int | None = None
    test_limit: int | None = None
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 5e-4
    train_per_class: int | None = None

    def __post_init__(self) -> None:
        names = (self.datasets,) if isinstance(self.datasets, str) else tuple(self.datasets)
        object.__setattr__(self, "datasets", names)
        for name in ("width", "lr", "weight_decay"):  # 1 and 1.0 must give one cache key
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.arch not in zoo.ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; expected one of {list(zoo.ARCHS)}")
        if not 1 <= len(names) <= 2 or any(n not in data.DATASETS for n in names):
            raise ValueError(f"datasets must be one or two of {data.DATASETS}, got {names!r}")
        subset = self.task.split(":", 1)[1] if self.task.startswith("subset:") else None
        if self.task not in _TASKS and (
            subset is None or (names[0], subset) not in data.CLASS_SUBSETS or len(names) != 1
        ):
            raise ValueError(
                f"invalid task {self.task!r} for datasets {names}; expected one of "
                f"{data.TASK_FORMS} with subsets {sorted(data.CLASS_SUBSETS)}"
            )
        if self.task in ("mix:0", "mix:1", "binary") and len(names) != 2:
            raise ValueError(f"task {self.task!r} needs two datasets, got {names}")
        if self.optimizer not in tr.OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {tr.OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("seed", "epochs", "input_size", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if self.train_per_class is not None and self.train_limit is not None:
            raise ValueError(
                f"give train_limit or train_per_class, not both (got {self.train_limit} and "
                f"{self.train_per_class})"
            )
        for name in ("train_limit", "test_limit", "train_per_class"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{name} must be None or an int >= 1, got {value!r}")
        with torch.device("meta"):  # the architecture's own checks (width, input size), free
            zoo.build(self.arch, num_classes=2, input_size=self.input_size, width=self.width)

    @property
    def label(self) -> str:
        """``arch/datasets/task/seedN``, e.g. ``"vgg16/fashion-mnist/all/seed0"`` (with
        ``/pcK`` appended for ``train_per_class=K``)."""
        label = f"{self.arch}/{'+'.join(self.datasets)}/{self.task}/seed{self.seed}"
        return label if self.train_per_class is None else f"{label}/pc{self.train_per_class}"

    def config(self) -> dict[str, Any]:
        """The fields as a JSON-like dict (the cache config); ``train_per_class`` only when set,
        so that the networks cached before it existed keep their keys."""
        config = asdict(self)
        if config["train_per_class"] is None:
            del config["train_per_class"]
        return config


@dataclass
class TrainedNet:
    """A trained network as returned by :func:`get_net`, :func:`get_pruned`, ...

    Attributes:
        model: the network in eval mode, on the requested device.
        spec: the spec it was trained from (for pruned / born-again nets: the base spec).
        accuracy: top-1 accuracy (%) on the test split of ``spec.task`` (``spec.test_limit``).
        train_seconds: training time (of this step only: fine-tuning, distillation...).
        from_cache: whether it was loaded instead of trained.
        label: readable name, e.g. ``"vgg16/fashion-mnist/all/seed0/pruned0.9"``.
        key: cache key of the weights; identifies the network in feature and g caches.
        num_classes: outputs of the classifier.
        info: extra facts (``sparsity`` of a pruned net, ``generation``, the training history).
    """

    model: nn.Module
    spec: NetSpec
    accuracy: float
    train_seconds: float
    from_cache: bool
    label: str
    key: str
    num_classes: int
    info: dict[str, Any] = field(default_factory=dict)


NetLike = NetSpec | TrainedNet


def _spec(net: NetLike) -> NetSpec:
    if isinstance(net, NetSpec):
        return net
    if isinstance(net, TrainedNet):
        return net.spec
    raise ValueError(f"expected a NetSpec or TrainedNet, got {type(net).__name__}")


# ---------------------------------------------------------------------------- networks


def _task(spec: NetSpec, split: str, task: str | None = None, limit: int | None = None) -> Dataset:
    return data.make_task(
        task or spec.task,
        spec.datasets,
        split,
        image_size=spec.input_size,
        limit=limit,
        per_class=spec.train_per_class if split == "train" else None,
        seed=DATA_SEED,
    )


def _fresh_model(spec: NetSpec, num_classes: int, in_channels: int, seed: int) -> nn.Module:
    return seeded_build(
        seed,
        lambda: zoo.build(
            spec.arch,
            num_classes=num_classes,
            input_size=spec.input_size,
            in_channels=in_channels,
            width=spec.width,
        ),
    )


def _train_kwargs(spec: NetSpec, device: torch.device, progress: bool) -> dict[str, Any]:
    return dict(
        batch_size=spec.batch_size,
        optimizer=spec.optimizer,
        weight_decay=spec.weight_decay,
        seed=spec.seed,
        device=device,
        progress=progress,
    )


def _train_entry(
    spec: NetSpec,
    make: Callable[[Dataset, Dataset, Any], tuple[nn.Module, tr.TrainReport, dict[str, Any]]],
    path: Path,
) -> dict[str, Any]:
    """Train with ``make`` (resuming from the checkpoint beside ``path``); the entry to store."""
    with phases.phase("data", ",".join(spec.datasets)):
        train_ds = _task(spec, "train", limit=spec.train_limit)
        test_ds = _task(spec, "test", limit=spec.test_limit)
    checkpoint = path.with_suffix(".ckpt")
    with phases.phase("train", spec.arch) as block:
        model, report, info = make(train_ds, test_ds, checkpoint)
        # kc.engine.train's clock counts the epochs only; the rest of this block's own time (a
        # teacher or base network trained inside is a nested phase) is the test evaluation
        # and the per-epoch checkpoint writes
        phases.record("evaluation", block.self_seconds() - report.seconds, spec.arch)
    return {
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        "report": report.to_dict(),
        "num_classes": train_ds.num_classes,
        "in_channels": int(train_ds[0][0].shape[0]),
        "info": info,
    }


def _cached_net(
    kind: str,
    config: dict[str, Any],
    label: str,
    spec: NetSpec,
    make: Callable[[Dataset, Dataset, Any], tuple[nn.Module, tr.TrainReport, dict[str, Any]]],
    device: str,
) -> TrainedNet:
    """Load the network of ``(kind, config)`` or build it with ``make`` and cache it.

    ``make(train_ds, test_ds, checkpoint_path)`` returns the trained model, its report and
    extra info; the resumable checkpoint lives next to the cache entry and is removed after.
    """
    version = _version(_NET_CODE)
    path = cache.path_for(kind, config, version=version, label=label)
    dev = tr.resolve_device(device)
    entry = cache.load(kind, config, version=version, label=label)
    from_cache = entry is not None
    if entry is None:
        with cache.computing(kind, config, version=version, label=label):
            entry = cache.load(kind, config, version=version, label=label)  # another worker's?
            from_cache = entry is not None
            if entry is None:
                entry = _train_entry(spec, make, path)
                cache.store(kind, config, entry, version=version, label=label)
                path.with_suffix(".ckpt").unlink(missing_ok=True)
    report = tr.TrainReport.from_dict(entry["report"])
    model = _fresh_model(spec, entry["num_classes"], entry["in_channels"], seed=0)
    model.load_state_dict(entry["state_dict"])
    model.to(dev).eval()
    how = "from cache" if from_cache else f"trained in {report.seconds:.1f} s"
    print(f"{label}: {report.accuracy:.1f}% top-1 ({how})")
    return TrainedNet(
        model=model,
        spec=spec,
        accuracy=report.accuracy,
        train_seconds=report.seconds,
        from_cache=from_cache,
        label=label,
        key=path.stem,
        num_classes=entry["num_classes"],
        info={**entry["info"], "history": report.history},
    )


def _net_config(spec: NetSpec) -> dict[str, Any]:
    return {"spec": spec.config(), "data_seed": DATA_SEED}


def _net_key(spec: NetSpec) -> str:
    return cache.key("net", _net_config(spec), version=_version(_NET_CODE), label=spec.label)


def get_net(spec: NetSpec, *, device: str = "auto", progress: bool = True) -> TrainedNet:
    """The network of ``spec``, trained with :func:`kc.engine.train.train` on first use, then cached.

    Prints one line, e.g. ``vgg16/fashion-mnist/all/seed0: 91.2% top-1 (trained in 41.3 s)``.
    An interrupted training resumes from its last finished epoch.

    Args:
        spec: what to train.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``.
        progress: tqdm bars while training.
    """

    def make(train_ds: Dataset, test_ds: Dataset, checkpoint: Any):
        in_channels = int(train_ds[0][0].shape[0])
        model = _fresh_model(spec, train_ds.num_classes, in_channels, seed=spec.seed)
        report = tr.train(
            model,
            train_ds,
            epochs=spec.epochs,
            lr=spec.lr,
            test_ds=test_ds,
            checkpoint=checkpoint,
            **_train_kwargs(spec, dev, progress),
        )
        return model, report, {}

    dev = tr.resolve_device(device)
    return _cached_net("net", _net_config(spec), spec.label, spec, make, device)


def get_train_accuracy(
    net: NetLike, *, limit: int | None = 2000, device: str = "auto", progress: bool = True
) -> float:
    """Top-1 accuracy (%) of a network on its own training images, in eval mode, cached.

    With its test accuracy (``TrainedNet.accuracy``) this gives the train/test gap, the
    evidence that a network over-fits (issue 24). Unlike ``TrainReport.train_accuracy`` (the
    last epoch's batches, in training mode, while the weights moved) it measures the final
    network as it is used.

    Args:
        net: a :class:`NetSpec` (trained via :func:`get_net` if needed) or a :class:`TrainedNet`.
        limit: at most this many of the training images (a stratified subset seeded by
            :data:`DATA_SEED`; None: all of them).
        device, progress: as in :func:`get_net`.
    """
    spec = _spec(net)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or an int >= 1, got {limit!r}")
    key = net.key if isinstance(net, TrainedNet) else _net_key(spec)
    config = {"net": key, "limit": limit, "data_seed": DATA_SEED}

    def compute() -> dict[str, float]:
        trained = (
            net if isinstance(net, TrainedNet) else get_net(spec, device=device, progress=progress)
        )
        ds = _task(spec, "train", limit=spec.train_limit)
        if limit is not None and limit < len(ds):
            ds = data.limit(ds, limit, DATA_SEED)
        with phases.phase("evaluation", spec.arch):
            return {"accuracy": tr.evaluate(trained.model, ds, device=tr.resolve_device(device)),
                    "images": float(len(ds))}  # fmt: skip

    entry = cache.cached("train-accuracy", config, compute, version=_version(_NET_CODE),
                         label=f"{spec.label}/train-accuracy")  # fmt: skip
    return float(entry["accuracy"])


def get_pruned(
    spec: NetSpec,
    amount: float,
    *,
    finetune_epochs: int,
    lr: float | None = None,
    relative: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> TrainedNet:
    """``get_net(spec)`` magnitude-pruned (Han et al., 2016; Sec. 4.4) and fine-tuned, cached.

    A fraction ``amount`` of all conv and linear weights is removed by magnitude
    (:func:`kc.engine.train.prune_magnitude`), then the remaining weights are fine-tuned for
    ``finetune_epochs`` with the masks fixed, at ``lr`` (default ``spec.lr / 10``) with the
    spec's optimiser and a cosine schedule. ``info["sparsity"]`` is the resulting sparsity.

    With ``relative=False`` one magnitude threshold holds for all layers. With ``relative=True``
    each weight's magnitude is measured in units of its layer's standard deviation, i.e. each
    layer's threshold is one quality parameter times that std, the rule of Han et al. (2015)
    that Deep Compression uses (:func:`_prune_relative`); a global threshold can remove whole
    layers whose weights are small (the classifier of a narrow VGG-16 at 93.3%).
    """
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must lie in [0, 1], got {amount}")
    lr = spec.lr / 10 if lr is None else float(lr)
    config = {
        "base": _net_key(spec),
        "amount": float(amount),
        "finetune_epochs": finetune_epochs,
        "lr": lr,
    }
    if relative:  # only then, so that the keys of globally pruned networks stay the same
        config["relative"] = True

    def make(train_ds: Dataset, test_ds: Dataset, checkpoint: Any):
        model = copy.deepcopy(get_net(spec, device=device, progress=progress).model)
        if relative:
            _prune_relative(model, amount)
        else:
            tr.prune_magnitude(model, amount)
        report = tr.train(
            model,
            train_ds,
            epochs=finetune_epochs,
            lr=lr,
            test_ds=test_ds,
            checkpoint=checkpoint,
            **_train_kwargs(spec, dev, progress),
        )
        tr.finalize_pruning(model)
        return model, report, {"amount": float(amount), "sparsity": tr.sparsity(model)}

    dev = tr.resolve_device(device)
    label = f"{spec.label}/pruned{amount:g}{'rel' if relative else ''}"
    return _cached_net("pruned", config, label, spec, make, device)


def _prune_relative(model: nn.Module, amount: float) -> nn.Module:
    """Prune ``model`` in place by ``|w| / std(layer)``: Han et al.'s per-layer threshold rule.

    The masks are those :func:`kc.engine.train.prune_magnitude` finds on a copy whose conv and linear
    weights are divided by their layer's standard deviation, so one global cut on the scaled
    magnitudes is a threshold of ``q * std`` in every layer, and ``amount`` is still the
    fraction of all conv and linear weights removed.

    Example:
        >>> net = nn.Sequential(nn.Linear(20, 20), nn.Linear(20, 20))
        >>> with torch.no_grad():
        ...     _ = net[1].weight.mul_(0.01)  # a layer of small weights survives in part
        >>> _ = _prune_relative(net, 0.5)
        >>> 0.3 < float((net[1].weight == 0).float().mean()) < 0.7
        True
    """
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        for module in scaled.modules():
            if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
                module.weight.div_(module.weight.std().clamp_min(1e-12))
    tr.prune_magnitude(scaled, amount)
    for module, twin in zip(model.modules(), scaled.modules(), strict=True):
        if hasattr(twin, "weight_mask"):
            prune.custom_from_mask(module, "weight", twin.weight_mask)
    return model


def _born_again_config(spec: NetSpec, generation: int, tau: float, weight: float) -> dict:
    teacher = (
        _net_key(spec)
        if generation == 1
        else cache.key(
            "born-again",
            _born_again_config(spec, generation - 1, tau, weight),
            version=_version(_NET_CODE),
            label=f"{spec.label}/gen{generation - 1}",
        )
    )
    return {
        "teacher": teacher,
        "generation": generation,
        "tau": float(tau),
        "weight": float(weight),
    }


def get_born_again(
    spec: NetSpec,
    generation: int,
    *,
    tau: float = 1.0,
    weight: float = 0.5,
    device: str = "auto",
    progress: bool = True,
) -> TrainedNet:
    """Generation ``generation`` of born-again networks (Furlanello et al., 2018; Sec. 4.5).

    Generation 0 is ``get_net(spec)``. Generation g + 1 has the same architecture and training
    settings, a fresh initialisation (seed ``spec.seed + 1000 * (g + 1)``), and is trained with
    footnote 3's loss ``CE + weight * KD`` (:func:`kc.engine.train.distillation_loss`, ``tau = 1``)
    against generation g as the teacher. Every generation is cached.
    """
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise ValueError(f"generation must be an int >= 0, got {generation!r}")
    if generation == 0:
        return get_net(spec, device=device, progress=progress)
    seed = spec.seed + 1000 * generation

    def make(train_ds: Dataset, test_ds: Dataset, checkpoint: Any):
        teacher = get_born_again(
            spec, generation - 1, tau=tau, weight=weight, device=device, progress=progress
        )
        in_channels = int(train_ds[0][0].shape[0])
        student = _fresh_model(spec, train_ds.num_classes, in_channels, seed=seed)
        kwargs = {**_train_kwargs(spec, dev, progress), "seed": seed}
        report = tr.train_distilled(
            student,
            teacher.model,
            train_ds,
            tau=tau,
            weight=weight,
            epochs=spec.epochs,
            lr=spec.lr,
            test_ds=test_ds,
            checkpoint=checkpoint,
            **kwargs,
        )
        return student, report, {"generation": generation}

    dev = tr.resolve_device(device)
    config = _born_again_config(spec, generation, tau, weight)
    return _cached_net("born-again", config, f"{spec.label}/gen{generation}", spec, make, device)


def upper(net: TrainedNet, layer: str, *, num_classes: int | None = None) -> nn.Module:
    """A deep copy of the layers of ``net`` above ``layer`` (:func:`kc.engine.zoo.split`).

    With ``num_classes`` different from the network's, the last linear layer is replaced by a
    new one (:func:`kc.engine.zoo.replace_head`), e.g. a 6-class head on a 10-class network (Table 4).
    The copy shares nothing with ``net``; train it with :func:`kc.engine.train.train_head`.
    """
    _, top = zoo.split(copy.deepcopy(net.model), net.spec.arch, layer)
    if num_classes is not None and num_classes != net.num_classes:
        top = zoo.replace_head(top, num_classes)
    return top


# ---------------------------------------------------------------------------- features


def _features_config(
    net: NetLike, layer: str, split: str, task: str | None, limit: int | None, seed: int
) -> tuple[dict[str, Any], str]:
    spec = _spec(net)
    if layer not in zoo.layers(spec.arch):
        raise ValueError(
            f"unknown layer {layer!r} of {spec.arch}; expected one of {zoo.layers(spec.arch)}"
        )
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or an int >= 1, got {limit!r}")
    task = task or spec.task
    key = net.key if isinstance(net, TrainedNet) else _net_key(spec)
    config = {
        "net": key,
        "layer": layer,
        "split": split,
        "task": task,
        "limit": limit,
        "seed": seed,
    }
    name = net.label if isinstance(net, TrainedNet) else spec.label
    return config, f"{name}/{layer}/{task}/{split}"


def _features_key(net: NetLike, layer: str, split: str, task: str, limit: int | None) -> str:
    config, label = _features_config(net, layer, split, task, limit, DATA_SEED)
    return cache.key("features", config, version=_version(_FEATURE_CODE), label=label)


@torch.no_grad()
def _extract(
    model: nn.Module, arch: str, layer: str, ds: Dataset, progress: bool, desc: str
) -> Tensor:
    loader = DataLoader(ds, batch_size=256, shuffle=False)
    parts = [
        zoo.features(model, arch, layer, images)
        for images, _ in tqdm(loader, desc=desc, disable=not progress, leave=False)
    ]
    return torch.cat(parts)


def get_features(
    net: NetLike,
    layer: str,
    *,
    split: str = "train",
    task: str | None = None,
    limit: int | None = None,
    seed: int = DATA_SEED,
    device: str = "auto",
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """The feature ``layer`` of a network for the images of a task, cached.

    Args:
        net: a :class:`NetSpec` (trained via :func:`get_net` if needed) or a
            :class:`TrainedNet` (e.g. from :func:`get_pruned`).
        layer: one of :func:`kc.engine.zoo.layers` ``(arch)``.
        split: ``"train"`` or ``"test"``.
        task: task whose images to use; default the network's own (e.g. the
            ``"subset:garments"`` images of a network trained on ``"all"``).
        limit: a stratified random subset of this many images (seeded by ``seed``, a data seed):
            the same images in the same order for every network on the same data sets. The
            training split of a network with ``train_per_class`` is its own training images
            (the per-class draw, seeded by ``seed``; its network's key is in the features' key).
        seed: seed of the subset.
        device, progress: as in :func:`get_net`.

    Returns:
        ``(features, labels)``: float32 (N, C, H, W) and int64 (N,), on the CPU.
    """
    spec = _spec(net)
    config, label = _features_config(net, layer, split, task, limit, seed)

    def compute() -> dict[str, Tensor]:
        trained = (
            net if isinstance(net, TrainedNet) else get_net(spec, device=device, progress=progress)
        )
        with phases.phase("data", ",".join(spec.datasets)):
            ds = data.make_task(
                config["task"],
                spec.datasets,
                split,
                image_size=spec.input_size,
                limit=limit,
                per_class=spec.train_per_class if split == "train" else None,
                seed=seed,
            )
        with phases.phase("features", spec.arch):
            feats = _extract(trained.model, spec.arch, layer, ds, progress, f"features {label}")
        return {"features": feats, "labels": ds.labels.clone()}

    entry = cache.cached("features", config, compute, version=_version(_FEATURE_CODE), label=label)
    return entry["features"], entry["labels"]


# ---------------------------------------------------------------------------- consistency


def _common_task(x: NetSpec, target: NetSpec, task: str | None) -> str:
    if x.datasets != target.datasets:
        raise ValueError(
            f"the two networks must see the same images: datasets {x.datasets} "
            f"and {target.datasets} differ"
        )
    if task is not None:
        return task
    if x.task == target.task:
        return x.task
    if {x.task, target.task} == {"half0", "half1"}:  # Case 2: fit g on all training images
        return "all"
    raise ValueError(
        f"networks trained on tasks {x.task!r} and {target.task!r}: pass task= "
        "to choose the images of the features"
    )


def _fit_settings(
    order: int, lam: float, g_steps: int, g_batch_size: int, g_lr: float, seed: int,
    sigma: str, resize: str | None, fit_kwargs: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The arguments of :func:`kc.fit_consistency` that a fit of g is cached under."""
    return dict(order=order, lam=float(lam), max_steps=g_steps, batch_size=g_batch_size,
                lr=float(g_lr), seed=seed, sigma=sigma, resize=resize, **fit_kwargs)  # fmt: skip


def _g_config(
    x_net: NetLike, x_layer: str, target_net: NetLike, target_layer: str, task: str,
    fit_limit: int, settings: Mapping[str, Any],
) -> tuple[dict[str, Any], str]:  # fmt: skip
    """The cache config and label of a fit of g (what :func:`get_consistency` stores)."""
    x_key = _features_key(x_net, x_layer, "train", task, fit_limit)
    t_key = _features_key(target_net, target_layer, "train", task, fit_limit)
    label = f"{x_net.label}/{x_layer} -> {target_net.label}/{target_layer}"
    return {"x": x_key, "target": t_key, "fit": dict(settings)}, label


def consistency_key(
    x_net: NetLike, x_layer: str, target_net: NetLike, target_layer: str, **kwargs: Any
) -> str:
    """The cache key of the fit of g that :func:`get_consistency` with these arguments stores,
    computed without training, extracting or fitting anything.

    Example:
        >>> a, b = NetSpec("alexnet", seed=0), NetSpec("alexnet", seed=1)
        >>> consistency_key(a, "conv4", b, "conv4").startswith("alexnet-fashion-mnist-all-seed0")
        True
        >>> consistency_key(a, "conv4", b, "conv4") != consistency_key(a, "conv4", b, "conv4", lam=8)
        True
    """
    bound = inspect.signature(get_consistency).bind(x_net, x_layer, target_net, target_layer,
                                                    **kwargs)  # fmt: skip
    bound.apply_defaults()
    a = bound.arguments
    x_spec, t_spec = _spec(x_net), _spec(target_net)
    task = _common_task(x_spec, t_spec, a["task"])
    settings = _fit_settings(a["order"], a["lam"], a["g_steps"], a["g_batch_size"], a["g_lr"],
                             a["seed"], a["sigma"], a["resize"], a["fit_kwargs"])  # fmt: skip
    config, label = _g_config(x_net, x_layer, target_net, target_layer, task, a["fit_limit"], settings)
    return cache.key("g", config, version=_version(_G_CODE), label=label)


def get_consistency(
    x_net: NetLike,
    x_layer: str,
    target_net: NetLike,
    target_layer: str,
    *,
    order: int = 2,
    lam: float = 0.1,
    task: str | None = None,
    fit_limit: int = 2000,
    test_limit: int = 1000,
    g_steps: int = 2000,
    g_lr: float = 1e-2,
    g_batch_size: int = 128,
    seed: int = 0,
    sigma: str = "batch",
    resize: str | None = None,
    device: str = "auto",
    progress: bool = True,
    **fit_kwargs: Any,
) -> ConsistencyResult:
    """Fit g from x (``x_net`` at ``x_layer``) to x* (``target_net`` at ``target_layer``).

    g (Eq. 1-2) is fitted with :func:`kc.fit_consistency` on the training-split features of
    ``fit_limit`` images and cached; the result is measured with :func:`kc.evaluate_consistency`
    on the test-split features of ``test_limit`` held-out images (never seen by g).

    Args:
        x_net, target_net: :class:`NetSpec` or :class:`TrainedNet` on the same data sets.
        x_layer, target_layer: their feature layers.
        order, lam: K of Eq. 1 and lambda of Eq. 2.
        task: images to use; default the networks' common task (``"all"`` for a
            ``half0``/``half1`` pair of Case 2).
        fit_limit, test_limit: images (stratified subsets) to fit and to evaluate g.
        g_steps, g_lr, g_batch_size: ``max_steps``, ``lr`` and ``batch_size`` of
            :func:`kc.fit_consistency`.
        seed, sigma, resize, **fit_kwargs: passed to :func:`kc.fit_consistency` (all of
            them part of the cache key).
        device, progress: as in :func:`get_net`.

    Returns:
        The core's :class:`kc.ConsistencyResult`; ``info`` holds the labels of both networks,
        both layers, ``from_cache`` and the fit's report ``info["fit"]`` (kept in the cache
        with g). The two networks' features must list the same images in the same order
        (their labels are compared); misaligned features raise ``ValueError``.
    """
    x_spec, t_spec = _spec(x_net), _spec(target_net)
    task = _common_task(x_spec, t_spec, task)
    dev = tr.resolve_device(device)
    feats = {}
    for split, lim in (("train", fit_limit), ("test", test_limit)):
        for name, net, layer in (("x", x_net, x_layer), ("target", target_net, target_layer)):
            feats[name, split] = get_features(
                net, layer, split=split, task=task, limit=lim, device=device, progress=progress
            )
    for split in ("train", "test"):
        try:
            check_aligned((feats["x", split][1], feats["target", split][1]),
                          feats["x", split][1].shape[0])
        except ValueError as err:
            raise ValueError(f"{split} features of {x_net.label}/{x_layer} and "
                             f"{target_net.label}/{target_layer}: {err}") from None
    settings = _fit_settings(order, lam, g_steps, g_batch_size, g_lr, seed, sigma, resize, fit_kwargs)
    config, label = _g_config(x_net, x_layer, target_net, target_layer, task, fit_limit, settings)
    calls = []

    def compute() -> dict[str, Any]:
        calls.append(1)
        g = fit_consistency(
            feats["x", "train"][0],
            feats["target", "train"][0],
            device=dev,
            progress=progress,
            **settings,
        )
        return {"config": dict(g.config), "state_dict": g.state_dict(),
                "fit_report": g.fit_report.to_dict()}

    entry = cache.cached("g", config, compute, version=_version(_G_CODE), label=label)
    g = ConsistencyNet(**entry["config"])
    g.load_state_dict(entry["state_dict"])
    g.fit_report = FitReport(**entry["fit_report"])
    g.eval()
    result = evaluate_consistency(
        g, feats["x", "test"][0], feats["target", "test"][0], resize=resize
    )
    result.info.update(
        x=x_net.label,
        x_layer=x_layer,
        target=target_net.label,
        target_layer=target_layer,
        task=task,
        from_cache=not calls,
    )
    return result
