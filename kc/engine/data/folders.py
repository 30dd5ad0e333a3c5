"""The paper's data sets, read from local folders in their official formats (Sec. 4).

"Both training images and testing images were cropped using bounding boxes of objects"
(Sec. 4): every item is the object's box cut out of the RGB image, resized to a square
``image_size x image_size`` (aspect ratio not kept; default 224) and normalised with the
ImageNet mean and std. Annotations are indexed once per process; images are read lazily with
PIL in ``__getitem__``.

Folders (``root=`` points at one directly; otherwise ``$KC_DATA/<folder>``):

* ``cub200`` -> ``$KC_DATA/CUB_200_2011`` (the official tarball's folder): ``images.txt``,
  ``train_test_split.txt``, ``bounding_boxes.txt`` (x y w h), ``image_class_labels.txt``
  (1-based), ``classes.txt``, ``images/<class>/<file>.jpg``. The official train/test split.
* ``stanford-dogs`` -> ``$KC_DATA/StanfordDogs``: ``Images/``, ``Annotation/`` and
  ``train_list.mat`` / ``test_list.mat`` (from images.tar, annotation.tar, lists.tar).
  One crop per image, from the first ``<object>`` of its annotation.
* ``voc2012`` -> ``$KC_DATA/VOC2012`` or ``$KC_DATA/VOCdevkit/VOC2012``: ``Annotations/``,
  ``JPEGImages/``, ``ImageSets/Main/{train,val}.txt``. One crop per object, objects marked
  ``difficult`` skipped; ``val`` serves as the test split (the test annotations are not public).

Boxes are stored as 0-based pixel edges ``(left, top, right, bottom)``; PASCAL-style XML
coordinates (VOC, Dogs) are 1-based and inclusive, so ``left = xmin - 1``, ``right = xmax``.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from kc.engine.data.base import DatasetNotFoundError, ImageDataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMAGE_SIZE = 224

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip

_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR

# name -> (title, folder names under $KC_DATA or root, required files, where to get it)
_LAYOUTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    "cub200": (
        "CUB-200-2011",
        ("CUB_200_2011",),
        (
            "images.txt",
            "train_test_split.txt",
            "bounding_boxes.txt",
            "image_class_labels.txt",
            "classes.txt",
            "images",
        ),
        "extract CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/",
    ),
    "stanford-dogs": (
        "Stanford Dogs",
        ("StanfordDogs",),
        ("train_list.mat", "test_list.mat", "Images", "Annotation"),
        "extract images.tar, annotation.tar and lists.tar from "
        "http://vision.stanford.edu/aditya86/ImageNetDogs/ into one folder",
    ),
    "voc2012": (
        "Pascal VOC 2012",
        ("VOC2012", "VOCdevkit/VOC2012"),
        ("Annotations", "JPEGImages", "ImageSets/Main/train.txt", "ImageSets/Main/val.txt"),
        "extract VOCtrainval_11-May-2012.tar from http://host.robots.ox.ac.uk/pascal/VOC/voc2012/",
    ),
}


def dataset_root(name: str, root: str | Path | None = None) -> Path:
    """The folder of a paper-scale data set: ``root`` (or a known sub-folder of it), else
    ``$KC_DATA/<folder>``.

    Raises:
        DatasetNotFoundError: no candidate holds all the required files; the message names
            them, the folders searched and where to download the data.
    """
    if name not in _LAYOUTS:
        raise ValueError(f"no folder layout for {name!r}; known: {tuple(_LAYOUTS)}")
    title, folders, required, source = _LAYOUTS[name]
    kc_data = os.environ.get("KC_DATA")
    if root is not None:
        candidates = [Path(root)] + [Path(root) / f for f in folders]
    elif kc_data:
        candidates = [Path(kc_data) / f for f in folders]
    else:
        candidates = []
    for folder in candidates:
        if all((folder / f).exists() for f in required):
            return folder
    missing = ""
    partial = [(sum((c / f).exists() for f in required), c) for c in candidates]
    found, best = max(partial, key=lambda p: p[0], default=(0, None))
    if found and best is not None:  # the folder is there but incomplete: say what is missing
        absent = [f for f in required if not (best / f).exists()]
        missing = f" ({best} lacks {', '.join(absent)})"
    searched = (
        ", ".join(map(str, candidates)) if candidates else "nowhere: root=None and $KC_DATA unset"
    )
    raise DatasetNotFoundError(
        f"{title} not found: expected {', '.join(required)} in one folder; searched {searched}"
        f"{missing}. To fix: {source}, so that $KC_DATA/{folders[0]}/{required[0]} exists, "
        "or pass root= pointing at that folder."
    )


class CroppedImageDataset(ImageDataset):
    """Object crops read lazily from image files.

    Args:
        paths: image file per item, length ``N``.
        boxes: float tensor ``(N, 4)``, 0-based pixel edges ``(left, top, right, bottom)``;
            clipped to the image and widened to whole pixels when read.
        labels: int labels ``(N,)``.
        class_names: one name per class, in label order.
        image_size: side ``S`` of the square crops.
        mean, std: per-channel constants (default ImageNet's).

    Items are float32 ``(3, S, S)`` and the int label.
    """

    def __init__(
        self,
        paths: Sequence[str],
        boxes: Tensor | np.ndarray,
        labels: Tensor | Sequence[int],
        *,
        class_names: Sequence[str],
        image_size: int = DEFAULT_IMAGE_SIZE,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self._set_labels(labels, class_names, mean, std)
        self.paths = list(paths)
        self.boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
        if not len(self.paths) == self.boxes.shape[0] == self.labels.numel():
            raise ValueError(
                f"expected as many paths, boxes and labels, got {len(self.paths)}, "
                f"{self.boxes.shape[0]} and {self.labels.numel()}"
            )
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if len(self.mean) != 3:
            raise ValueError(f"expected 3 channel means (RGB), got {self.mean}")
        self.image_size = image_size

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return 3, self.image_size, self.image_size

    def crop(self, i: int) -> Image.Image:
        """The ``i``-th object crop as an RGB PIL image, before resizing."""
        with Image.open(self.paths[i]) as img:
            img = img.convert("RGB")
        left, top, right, bottom = self.boxes[i].tolist()
        left, top = max(0, math.floor(left)), max(0, math.floor(top))
        right, bottom = min(img.width, math.ceil(right)), min(img.height, math.ceil(bottom))
        if right <= left or bottom <= top:  # degenerate box: keep the whole image
            return img
        return img.crop((left, top, right, bottom))

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        img = self.crop(i).resize((self.image_size, self.image_size), _BILINEAR)
        x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)
        return self._normalise(x.to(torch.float32).div_(255.0)), int(self.labels[i])

    def _take(
        self,
        idx: Tensor,
        labels: Tensor,
        class_names: tuple[str, ...],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> CroppedImageDataset:
        paths = [self.paths[i] for i in idx.tolist()]
        return CroppedImageDataset(
            paths,
            self.boxes[idx],
            labels,
            class_names=class_names,
            image_size=self.image_size,
            mean=mean,
            std=std,
        )

    def _join(
        self,
        other: CroppedImageDataset,
        labels: Tensor,
        class_names: tuple[str, ...],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> CroppedImageDataset:
        return CroppedImageDataset(
            self.paths + other.paths,
            torch.cat([self.boxes, other.boxes]),
            labels,
            class_names=class_names,
            image_size=self.image_size,
            mean=mean,
            std=std,
        )


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _read_table(path: Path) -> list[list[str]]:
    """Whitespace-separated rows of a CUB text file, skipping blank lines."""
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


@lru_cache(maxsize=4)
def _cub_index(root: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    base = Path(root)
    paths = {int(r[0]): str(base / "images" / r[1]) for r in _read_table(base / "images.txt")}
    is_train = {int(r[0]): r[1] == "1" for r in _read_table(base / "train_test_split.txt")}
    labels = {int(r[0]): int(r[1]) - 1 for r in _read_table(base / "image_class_labels.txt")}
    boxes = {
        int(r[0]): [float(v) for v in r[1:5]] for r in _read_table(base / "bounding_boxes.txt")
    }
    classes = sorted((int(r[0]), r[1]) for r in _read_table(base / "classes.txt"))
    # "001.Black_footed_Albatross" -> "Black_footed_Albatross"
    names = tuple(n.split(".", 1)[1] if "." in n else n for _, n in classes)
    ids = sorted(paths)
    tables = {
        "train_test_split.txt": is_train,
        "image_class_labels.txt": labels,
        "bounding_boxes.txt": boxes,
    }
    for what, table in tables.items():
        if set(table) != set(ids):
            raise ValueError(f"{base}: {what} lists other image ids than images.txt")
    xywh = np.array([boxes[i] for i in ids], dtype=np.float64).reshape(-1, 4)
    ltrb = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return (
        [paths[i] for i in ids],
        ltrb,
        np.array([labels[i] for i in ids], dtype=np.int64),
        np.array([is_train[i] for i in ids]),
        names,
    )


def load_cub200(
    split: str = "train", *, root: str | Path | None = None, image_size: int | None = None
) -> CroppedImageDataset:
    """CUB-200-2011 bird crops, 200 classes, the official split (5,994 train / 5,794 test)."""
    _check_split(split)
    paths, boxes, labels, is_train, names = _cub_index(str(dataset_root("cub200", root)))
    keep = np.flatnonzero(is_train == (split == "train"))
    return CroppedImageDataset(
        [paths[i] for i in keep],
        boxes[keep],
        torch.from_numpy(labels[keep]),
        class_names=names,
        image_size=image_size or DEFAULT_IMAGE_SIZE,
    )


def _xml_boxes(path: Path) -> list[tuple[str, bool, list[float]]]:
    """``(name, difficult, [left, top, right, bottom])`` of every object of a PASCAL XML file."""
    objects = []
    for obj in ET.parse(path).getroot().iter("object"):
        box = obj.find("bndbox")
        if box is None:
            continue
        xmin, ymin, xmax, ymax = (
            float(box.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax")
        )
        difficult = (obj.findtext("difficult") or "0").strip() == "1"
        objects.append(
            ((obj.findtext("name") or "").strip(), difficult, [xmin - 1, ymin - 1, xmax, ymax])
        )
    return objects


def _mat_strings(cells: np.ndarray) -> list[str]:
    """The strings of a MATLAB cell array as read by ``scipy.io.loadmat``."""
    return [str(np.asarray(c).ravel()[0]) for c in np.asarray(cells, dtype=object).ravel()]


@lru_cache(maxsize=4)
def _dogs_lists(root: str) -> dict[str, tuple[list[str], list[str], np.ndarray]]:
    from scipy.io import loadmat

    lists = {}
    for split in ("train", "test"):
        mat = loadmat(str(Path(root) / f"{split}_list.mat"))
        files, annos = _mat_strings(mat["file_list"]), _mat_strings(mat["annotation_list"])
        labels = np.asarray(mat["labels"]).ravel().astype(np.int64) - 1
        if not len(files) == len(annos) == len(labels):
            raise ValueError(
                f"{root}/{split}_list.mat: file_list, annotation_list and labels differ in length"
            )
        lists[split] = (files, annos, labels)
    return lists


def stanford_dogs_class_names(root: str | Path | None = None) -> tuple[str, ...]:
    """The 120 breed names in label order, from the folder of each label's images
    (``n02085620-Chihuahua`` -> ``Chihuahua``)."""
    lists = _dogs_lists(str(dataset_root("stanford-dogs", root)))
    folder_of: dict[int, str] = {}
    for files, _, labels in lists.values():
        for f, y in zip(files, labels.tolist(), strict=True):
            folder_of.setdefault(y, f.split("/", 1)[0])
    if sorted(folder_of) != list(range(len(folder_of))):
        raise ValueError(f"Stanford Dogs labels are not 1..K, got {sorted(folder_of)}")
    return tuple(folder_of[y].split("-", 1)[-1] for y in range(len(folder_of)))


@lru_cache(maxsize=4)
def _dogs_boxes(root: str, split: str) -> np.ndarray:
    annos = _dogs_lists(root)[split][1]
    boxes = []
    for a in annos:
        objects = _xml_boxes(Path(root) / "Annotation" / a)
        if not objects:
            raise ValueError(f"{Path(root) / 'Annotation' / a} has no <object><bndbox>")
        boxes.append(objects[0][2])
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def load_stanford_dogs(
    split: str = "train", *, root: str | Path | None = None, image_size: int | None = None
) -> CroppedImageDataset:
    """Stanford Dogs crops, 120 classes, the official split (12,000 train / 8,580 test).

    Images with several dogs give one crop, of the first annotated object.
    """
    _check_split(split)
    base = str(dataset_root("stanford-dogs", root))
    files, _, labels = _dogs_lists(base)[split]
    return CroppedImageDataset(
        [str(Path(base) / "Images" / f) for f in files],
        _dogs_boxes(base, split),
        torch.from_numpy(labels),
        class_names=stanford_dogs_class_names(base),
        image_size=image_size or DEFAULT_IMAGE_SIZE,
    )


@lru_cache(maxsize=4)
def _voc_index(root: str, split: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    base = Path(root)
    list_name = "train.txt" if split == "train" else "val.txt"
    ids = (base / "ImageSets" / "Main" / list_name).read_text().split()
    paths, boxes, labels = [], [], []
    for image_id in ids:
        for name, difficult, box in _xml_boxes(base / "Annotations" / f"{image_id}.xml"):
            if difficult:
                continue
            if name not in VOC_CLASSES:
                raise ValueError(f"{base / 'Annotations' / image_id}.xml: unknown class {name!r}")
            paths.append(str(base / "JPEGImages" / f"{image_id}.jpg"))
            boxes.append(box)
            labels.append(VOC_CLASSES.index(name))
    return paths, np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(labels, dtype=np.int64)


def load_voc2012(
    split: str = "train", *, root: str | Path | None = None, image_size: int | None = None
) -> CroppedImageDataset:
    """Pascal VOC 2012 object crops, 20 classes (:data:`VOC_CLASSES`), one per non-difficult
    object; ``"test"`` is the official ``val`` list."""
    _check_split(split)
    paths, boxes, labels = _voc_index(str(dataset_root("voc2012", root)), split)
    return CroppedImageDataset(
        paths,
        boxes,
        torch.from_numpy(labels),
        class_names=VOC_CLASSES,
        image_size=image_size or DEFAULT_IMAGE_SIZE,
    )


def cub200_class_names(root: str | Path | None = None) -> tuple[str, ...]:
    """The 200 species names of ``classes.txt`` in label order, without the ``001.`` prefix."""
    return _cub_index(str(dataset_root("cub200", root)))[4]
