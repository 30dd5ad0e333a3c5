"""Labelled image data sets shared by every loader: the common base and the in-memory set.

Every data set of :mod:`kc.engine.data` is an :class:`ImageDataset`: a map-style
:class:`torch.utils.data.Dataset` of ``(image, label)`` pairs, ``image`` a float32 tensor of
shape ``(C, H, W)`` normalised as ``(pixel / 255 - mean) / std`` per channel, and ``label`` an
``int`` in ``0 .. num_classes - 1``. All labels are also held at once in ``.labels`` (int64,
shape ``(N,)``), so the task builders of :mod:`kc.engine.data.tasks` subset and relabel without
touching a single image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

D = TypeVar("D", bound="ImageDataset")


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are missing; the message says where they were looked for and how to
    get them."""


def pooled_stats(
    a: tuple[Sequence[float], Sequence[float]], b: tuple[Sequence[float], Sequence[float]]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of an equal-weight mixture of two pixel distributions, per channel.

    Used to normalise the union of two data sets with one shared affine map, so that no
    constant offset tells the sources apart.

    Args:
        a: ``(mean, std)`` of the first distribution, one value per channel.
        b: ``(mean, std)`` of the second distribution, same number of channels.

    Returns:
        ``(mean, std)`` with ``mean = (m_a + m_b) / 2`` and
        ``std**2 = (s_a**2 + s_b**2) / 2 + ((m_a - m_b) / 2)**2``.

    Example:
        >>> pooled_stats(((0.5,), (0.1,)), ((0.5,), (0.1,)))
        ((0.5,), (0.1,))
    """
    if a == b:
        return tuple(a[0]), tuple(a[1])
    mean = tuple((ma + mb) / 2 for ma, mb in zip(a[0], b[0], strict=True))
    std = tuple(
        math.sqrt((sa**2 + sb**2) / 2 + ((ma - mb) / 2) ** 2)
        for ma, mb, sa, sb in zip(a[0], b[0], a[1], b[1], strict=True)
    )
    return mean, std


def _min_max(values: Tensor) -> tuple[int, int]:
    """Min and max of a 1-d int tensor (numpy: no thread start-up on a busy machine)."""
    if values.numel() == 0:
        return 0, 0
    array = values.numpy()
    return int(array.min()), int(array.max())


def _as_index(indices: Tensor | Sequence[int], n: int) -> Tensor:
    """Integer indices as an int64 tensor, checked to lie in ``0 .. n - 1``."""
    idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
    low, high = _min_max(idx)
    if idx.numel() and (low < 0 or high >= n):
        raise ValueError(f"indices must lie in [0, {n - 1}], got min {low} and max {high}")
    return idx


class ImageDataset(Dataset[tuple[Tensor, int]]):
    """Common base: labels in memory, images produced by the subclass.

    Attributes:
        labels: int64 tensor of shape ``(N,)`` with values in ``0 .. num_classes - 1``.
        class_names: one name per class, in label order.
        mean, std: per-channel normalisation constants applied to pixels in ``[0, 1]``.
    """

    labels: Tensor
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def _set_labels(
        self,
        labels: Tensor | Sequence[int],
        class_names: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        class_names = tuple(str(c) for c in class_names)
        low, high = _min_max(labels)
        if labels.numel() and (low < 0 or high >= len(class_names)):
            raise ValueError(
                f"labels must lie in [0, {len(class_names) - 1}] for {len(class_names)} classes, "
                f"got min {low} and max {high}"
            )
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(
                f"expected mean and std of equal length with std > 0, got {mean}, {std}"
            )
        self.labels = labels
        self.class_names = class_names
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(class_names)`` (some may have no images in a subset)."""
        return len(self.class_names)

    @property
    def targets(self) -> list[int]:
        """Labels as a list of ints, like torchvision's ``targets``."""
        return self.labels.tolist()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image this data set returns."""
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self.labels.numel())

    def _normalise(self, x: Tensor) -> Tensor:
        """``(x - mean) / std`` per channel for ``x`` float in ``[0, 1]`` of shape ``(..., C, H, W)``."""
        mean = torch.tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
        return (x - mean) / std

    def select(
        self: D,
        indices: Tensor | Sequence[int],
        *,
        labels: Tensor | Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> D:
        """The items at ``indices`` (in that order), optionally with new labels and classes.

        Args:
            indices: int indices of shape ``(n,)`` into this data set.
            labels: new labels of shape ``(n,)``; default: the selected old labels.
            class_names: new class names; default: the old ones.

        Returns:
            A data set of the same type sharing this one's storage.
        """
        idx = _as_index(indices, len(self))
        new_labels = self.labels[idx] if labels is None else torch.as_tensor(labels)
        if new_labels.numel() != idx.numel():
            raise ValueError(
                f"expected one label per selected index, got {new_labels.numel()} labels "
                f"for {idx.numel()} indices"
            )
        names = self.class_names if class_names is None else tuple(class_names)
        return self._take(idx, new_labels, names, self.mean, self.std)

    def concat(self: D, other: D, *, class_names: Sequence[str], label_offset: int) -> D:
        """This data set followed by ``other`` whose labels are shifted by ``label_offset``.

        When the two normalisations differ, both parts use :func:`pooled_stats`.
        """
        if type(other) is not type(self):
            raise ValueError(
                f"can only join data sets of one kind, got {type(self).__name__} "
                f"and {type(other).__name__}"
            )
        if other.image_shape != self.image_shape:
            raise ValueError(
                f"can only join images of one shape, got {self.image_shape} and {other.image_shape}"
            )
        mean, std = pooled_stats((self.mean, self.std), (other.mean, other.std))
        labels = torch.cat([self.labels, other.labels + label_offset])
        return self._join(other, labels, tuple(class_names), mean, std)

    def _take(
        self: D,
        idx: Tensor,
        labels: Tensor,
        class_names: tuple[str, ...],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> D:
        raise NotImplementedError

    def _join(
        self: D,
        other: D,
        labels: Tensor,
        class_names: tuple[str, ...],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> D:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={len(self)}, num_classes={self.num_classes}, "
            f"image_shape={self.image_shape})"
        )


def fit_size(images: Tensor, size: int | None, *, chunk: int = 4096) -> Tensor:
    """Bring square uint8 images to ``size x size`` once, for the whole tensor.

    Up to 4 pixels larger: symmetric zero padding (28 -> 32 adds 2 pixels on every side,
    the LeNet convention, which keeps MNIST-like strokes unchanged). Otherwise: bilinear
    resizing (antialiased when shrinking), rounded back to uint8.

    Args:
        images: uint8 tensor of shape ``(N, C, H, W)``.
        size: target side; ``None`` or the current side returns ``images`` unchanged.
        chunk: images resized per step, to bound memory.

    Returns:
        uint8 tensor of shape ``(N, C, size, size)``.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"expected uint8 images of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    h, w = images.shape[-2:]
    if size is None or (h == size and w == size):
        return images
    if size < 1:
        raise ValueError(f"image_size must be a positive int or None, got {size}")
    if h == w and 0 < size - h <= 4:
        before = (size - h) // 2
        after = size - h - before
        return F.pad(images, (before, after, before, after), value=0)
    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        part = images[start : start + chunk].float()
        part = F.interpolate(
            part, size=(size, size), mode="bilinear", align_corners=False, antialias=size < h
        )
        out[start : start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


class TensorImageDataset(ImageDataset):
    """Images held in memory as one uint8 tensor.

    Args:
        images: uint8 tensor of shape ``(N, C, H, W)``, pixel values 0..255.
        labels: int labels of shape ``(N,)``.
        class_names: one name per class, in label order.
        mean, std: per-channel constants; items are ``(images[i] / 255 - mean) / std``.

    Attributes:
        images: the uint8 storage ``(N, C, H, W)``; shared between derived data sets, so never
            modify it in place.
        labels: int64 tensor ``(N,)``.

    Example:
        >>> ds = TensorImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), [0, 1],
        ...                         class_names=["a", "b"], mean=[0.0], std=[1.0])
        >>> x, y = ds[1]
        >>> tuple(x.shape), x.dtype, y
        ((1, 4, 4), torch.float32, 1)
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | Sequence[int],
        *,
        class_names: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"expected uint8 images of shape (N, C, H, W), got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        self._set_labels(labels, class_names, mean, std)
        if self.labels.numel() != images.shape[0]:
            raise ValueError(
                f"expected one label per image, got {self.labels.numel()} labels "
                f"for {images.shape[0]} images"
            )
        if len(self.mean) != images.shape[1]:
            raise ValueError(
                f"expected mean/std with one value per channel ({images.shape[1]}), "
                f"got {len(self.mean)}"
            )
        self.images = images

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        x = self.images[i].to(torch.float32).div_(255.0)
        return self._normalise(x), int(self.labels[i])

    def as_tensors(self) -> tuple[Tensor, Tensor]:
        """All items at once, for fast batching without a DataLoader.

        Returns:
            ``(x, y)``: float32 ``(N, C, H, W)`` normalised images and int64 ``(N,)`` labels.
        """
        return self._normalise(self.images.to(torch.float32).div_(255.0)), self.labels.clone()

    def _take(
        self,
        idx: Tensor,
        labels: Tensor,
        class_names: tuple[str, ...],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> TensorImageDataset:
        return TensorImageDataset(
            self.images[idx], labels, class_names=class_names, mean=mean, std=std
        )

    def _join(
        self,
        other: TensorImageDataset,
        labels: Tensor,
        class_names: tuple[str, ...],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> TensorImageDataset:
        images = torch.cat([self.images, other.images])
        return TensorImageDataset(images, labels, class_names=class_names, mean=mean, std=std)
