"""Data sets and the training tasks of the paper's experiments.

``load(name, split)`` gives a data set of ``(image, label)`` pairs; ``make_task`` builds the
training or test set of one experiment (halves, class subsets, unions of two sets, ...).

Example:
    >>> import kc.engine.data
    >>> ds = kc.engine.data.make_task("subset:garments", "fashion-mnist", "test")  # doctest: +SKIP
    >>> ds.num_classes  # doctest: +SKIP
    6
"""

from kc.engine.data.base import (
    DatasetNotFoundError,
    ImageDataset,
    TensorImageDataset,
    fit_size,
    pooled_stats,
)
from kc.engine.data.catalog import DATASETS, class_names, load, num_classes
from kc.engine.data.folders import IMAGENET_MEAN, IMAGENET_STD, VOC_CLASSES, CroppedImageDataset
from kc.engine.data.mnist import (
    FASHION_CLASSES,
    FASHION_MEAN,
    FASHION_STD,
    MNIST5K_MEAN,
    MNIST5K_SPLIT_SEED,
    MNIST5K_STD,
)
from kc.engine.data.tasks import (
    CLASS_SUBSETS,
    HALVES_SEED,
    TASK_FORMS,
    coarse,
    halves,
    limit,
    make_task,
    per_class,
    subset_classes,
    union,
)

__all__ = [
    "CLASS_SUBSETS",
    "DATASETS",
    "FASHION_CLASSES",
    "FASHION_MEAN",
    "FASHION_STD",
    "HALVES_SEED",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MNIST5K_MEAN",
    "MNIST5K_SPLIT_SEED",
    "MNIST5K_STD",
    "TASK_FORMS",
    "VOC_CLASSES",
    "CroppedImageDataset",
    "DatasetNotFoundError",
    "ImageDataset",
    "TensorImageDataset",
    "class_names",
    "coarse",
    "fit_size",
    "halves",
    "limit",
    "load",
    "make_task",
    "num_classes",
    "per_class",
    "pooled_stats",
    "subset_classes",
    "union",
]
