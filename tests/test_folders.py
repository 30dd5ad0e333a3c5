"""kc.engine.data.folders: CUB-200-2011, Stanford Dogs and VOC 2012 read from tiny fake trees.

Every fake image is a blue background with each object painted in its own colour at a known
box, so a correct crop is a patch of exactly that colour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy.io import savemat
from torch.utils.data import DataLoader

import kc.engine.data
from kc.engine.data.base import DatasetNotFoundError
from kc.engine.data.folders import IMAGENET_MEAN, IMAGENET_STD, CroppedImageDataset, dataset_root

BACKGROUND = (0, 0, 255)
COLOURS = [(255, 0, 0), (0, 255, 0), (255, 255, 0), (255, 0, 255), (0, 255, 255)]
SIZE = (48, 40)  # width, height of every fake image

Box = tuple[int, int, int, int]  # 0-based pixel edges: left, top, right, bottom


def paint(path: Path, objects: list[tuple[Box, tuple[int, int, int]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", SIZE, BACKGROUND)
    for (left, top, right, bottom), colour in objects:
        ImageDraw.Draw(img).rectangle([left, top, right - 1, bottom - 1], fill=colour)
    img.save(path, quality=95, subsampling=0)


def box_for(k: int) -> Box:
    """A different box for every k, inside the 48 x 40 image."""
    return 2 + k, 3 + k % 4, 20 + 2 * k, 22 + k % 5


def pascal_xml(objects: list[tuple[str, Box, bool]]) -> str:
    """PASCAL-style annotation (1-based inclusive coordinates)."""
    body = "".join(
        f"<object><name>{name}</name><difficult>{int(hard)}</difficult><bndbox>"
        f"<xmin>{b[0] + 1}</xmin><ymin>{b[1] + 1}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax>"
        "</bndbox></object>"
        for name, b, hard in objects
    )
    return f"<annotation><size><width>{SIZE[0]}</width><height>{SIZE[1]}</height></size>{body}</annotation>"


def crop_colour(ds: CroppedImageDataset, i: int) -> np.ndarray:
    """Mean RGB (0..255) of item i after undoing the normalisation."""
    x, _ = ds[i]
    rgb = x * torch.tensor(ds.std).view(3, 1, 1) + torch.tensor(ds.mean).view(3, 1, 1)
    return (rgb.mean(dim=(1, 2)) * 255).numpy()


def assert_crop(ds: CroppedImageDataset, i: int, box: Box, colour: tuple[int, int, int]) -> None:
    assert ds.crop(i).size == (box[2] - box[0], box[3] - box[1])
    np.testing.assert_allclose(crop_colour(ds, i), colour, atol=12)


# --- CUB-200-2011 -----------------------------------------------------------------------------

CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]
CUB_TRAIN = {1, 2, 3, 5}


def make_cub(parent: Path) -> Path:
    root = parent / "CUB_200_2011"
    rows: dict[str, list[str]] = {"images": [], "labels": [], "split": [], "boxes": []}
    for k in range(1, 7):
        label = (k - 1) % 3
        rel = f"{CUB_CLASSES[label]}/img_{k}.jpg"
        box = box_for(k)
        paint(root / "images" / rel, [(box, COLOURS[label])])
        rows["images"].append(f"{k} {rel}")
        rows["labels"].append(f"{k} {label + 1}")
        rows["split"].append(f"{k} {int(k in CUB_TRAIN)}")
        x, y, w, h = box[0], box[1], box[2] - box[0], box[3] - box[1]
        rows["boxes"].append(f"{k} {x:.1f} {y:.1f} {w:.1f} {h:.1f}")
    files = {"images": "images", "image_class_labels": "labels", "train_test_split": "split"}
    files["bounding_boxes"] = "boxes"
    for name, key in files.items():
        (root / f"{name}.txt").write_text("\n".join(rows[key]) + "\n")
    (root / "classes.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(CUB_CLASSES)))
    return root


def test_cub_crops_labels_and_split(tmp_path: Path) -> None:
    root = make_cub(tmp_path)
    train = kc.engine.data.load("cub200", "train", root=root, image_size=16)
    test = kc.engine.data.load("cub200", "test", root=root, image_size=16)
    assert (len(train), len(test)) == (4, 2)
    assert train.class_names == ("Black_footed_Albatross", "Laysan_Albatross", "Sooty_Albatross")
    assert train.labels.tolist() == [0, 1, 2, 1] and test.labels.tolist() == [0, 2]
    for ds, ks in ((train, [1, 2, 3, 5]), (test, [4, 6])):
        for i, k in enumerate(ks):
            assert_crop(ds, i, box_for(k), COLOURS[(k - 1) % 3])
    x, y = train[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 0
    assert train.mean == IMAGENET_MEAN and train.std == IMAGENET_STD
    assert kc.engine.data.class_names("cub200", root=tmp_path)[2] == "Sooty_Albatross"


def test_default_size_is_224_and_dataloader_batches(tmp_path: Path) -> None:
    ds = kc.engine.data.load("cub200", root=make_cub(tmp_path))
    assert ds.image_shape == (3, 224, 224)
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 3, 224, 224) and y.tolist() == [0, 1, 2, 1]


def test_root_resolution_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_cub(tmp_path / "data")
    monkeypatch.setenv("KC_DATA", str(tmp_path / "data"))
    assert dataset_root("cub200") == root
    assert dataset_root("cub200", tmp_path / "data") == root  # a parent folder works too
    monkeypatch.delenv("KC_DATA")
    with pytest.raises(FileNotFoundError, match=r"CUB-200-2011 not found.*\$KC_DATA unset"):
        kc.engine.data.load("cub200")
    (root / "bounding_boxes.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"lacks bounding_boxes.txt.*CUB_200_2011.tgz"):
        kc.engine.data.load("cub200", root=root)
    with pytest.raises(DatasetNotFoundError, match=r"Stanford Dogs not found: expected train_list"):
        kc.engine.data.load("stanford-dogs", root=tmp_path / "none")
    with pytest.raises(DatasetNotFoundError, match=r"Pascal VOC 2012 not found.*VOCdevkit/VOC2012"):
        kc.engine.data.load("voc2012", root=tmp_path / "none")
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test', got 'val'"):
        kc.engine.data.load("cub200", "val", root=root)


# --- Stanford Dogs ----------------------------------------------------------------------------

DOG_DIRS = ["n0001-Alpha", "n0002-Shih-Tzu"]


def make_dogs(parent: Path) -> Path:
    root = parent / "StanfordDogs"
    lists: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for k in range(5):
        label = k % 2
        stem = f"{DOG_DIRS[label]}/{DOG_DIRS[label][:5]}_{k}"
        objects = [(box_for(k), COLOURS[label + 2])]
        if k == 0:  # a second dog: the loader uses the first object only
            objects.append(((30, 25, 46, 38), COLOURS[4]))
        paint(root / "Images" / f"{stem}.jpg", objects)
        xml = pascal_xml([(DOG_DIRS[label], b, False) for b, _ in objects])
        (root / "Annotation" / stem).parent.mkdir(parents=True, exist_ok=True)
        (root / "Annotation" / stem).write_text(xml)
        lists["train" if k < 4 else "test"].append((stem, label + 1))
    for split, items in lists.items():
        cell = np.empty((len(items), 1), dtype=object)
        anno = np.empty((len(items), 1), dtype=object)
        for i, (stem, _) in enumerate(items):
            cell[i, 0], anno[i, 0] = np.array([f"{stem}.jpg"]), np.array([stem])
        labels = np.array([[y] for _, y in items], dtype=np.float64)
        savemat(
            root / f"{split}_list.mat",
            {"file_list": cell, "annotation_list": anno, "labels": labels},
        )
    return root


def test_dogs_crops_labels_and_split(tmp_path: Path) -> None:
    root = make_dogs(tmp_path)
    train = kc.engine.data.load("stanford-dogs", "train", root=root, image_size=12)
    test = kc.engine.data.load("stanford-dogs", "test", root=root, image_size=12)
    assert (len(train), len(test)) == (4, 1)
    assert (
        train.class_names
        == ("Alpha", "Shih-Tzu")
        == kc.engine.data.class_names("stanford-dogs", root=root)
    )
    assert train.labels.tolist() == [0, 1, 0, 1] and test.labels.tolist() == [0]
    for i in range(4):
        assert_crop(train, i, box_for(i), COLOURS[i % 2 + 2])
    assert_crop(test, 0, box_for(4), COLOURS[2])


# --- Pascal VOC 2012 --------------------------------------------------------------------------

VOC_IMAGES = {  # id -> objects (class, box, difficult); colours by position
    "2008_000001": [("cat", (2, 2, 20, 18), False), ("dog", (24, 20, 46, 38), False)],
    "2008_000002": [("car", (4, 4, 40, 30), False), ("person", (1, 1, 10, 10), True)],
    "2008_000003": [("bird", (10, 8, 30, 28), False)],
}


def make_voc(parent: Path) -> Path:
    root = parent / "VOCdevkit" / "VOC2012"
    for image_id, objects in VOC_IMAGES.items():
        paint(
            root / "JPEGImages" / f"{image_id}.jpg",
            [(b, COLOURS[j]) for j, (_, b, _) in enumerate(objects)],
        )
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{image_id}.xml").write_text(pascal_xml(objects))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("2008_000001\n2008_000002\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("2008_000003\n")
    return root


def test_voc_one_crop_per_object_without_difficult(tmp_path: Path) -> None:
    make_voc(tmp_path)
    train = kc.engine.data.load("voc2012", "train", root=tmp_path, image_size=16)
    test = kc.engine.data.load("voc2012", "test", root=tmp_path, image_size=16)
    names = kc.engine.data.VOC_CLASSES
    assert names[0] == "aeroplane" and names[-1] == "tvmonitor" and len(names) == 20
    assert [names[y] for y in train.labels] == ["cat", "dog", "car"]
    assert [names[y] for y in test.labels] == ["bird"]
    assert_crop(train, 0, (2, 2, 20, 18), COLOURS[0])
    assert_crop(train, 1, (24, 20, 46, 38), COLOURS[1])
    assert_crop(train, 2, (4, 4, 40, 30), COLOURS[0])
    assert_crop(test, 0, (10, 8, 30, 28), COLOURS[0])


def test_voc_animals_subset_and_unknown_class(tmp_path: Path) -> None:
    root = make_voc(tmp_path)
    animals = kc.engine.data.make_task("subset:animals", "voc2012", root=root, image_size=8)
    assert animals.class_names == ("bird", "cat", "cow", "dog", "horse", "sheep")
    assert animals.labels.tolist() == [1, 3] and animals.num_classes == 6
    (root / "Annotations" / "2008_000003.xml").write_text(
        pascal_xml([("unicorn", (1, 1, 5, 5), False)])
    )
    with pytest.raises(ValueError, match=r"unknown class 'unicorn'"):
        kc.engine.data.load("voc2012", "test", root=root)


# --- the Mix-CUB / Mix-Dogs union -------------------------------------------------------------


def test_mix_tasks_on_cub_and_dogs(tmp_path: Path) -> None:
    make_cub(tmp_path)
    make_dogs(tmp_path)
    pair = ["cub200", "stanford-dogs"]
    both = kc.engine.data.make_task("all", pair, root=tmp_path, image_size=8)
    assert both.num_classes == 5 and len(both) == 8
    assert both.labels.tolist() == [0, 1, 2, 1, 3, 4, 3, 4]
    assert (both.mean, both.std) == (IMAGENET_MEAN, IMAGENET_STD)
    dogs = kc.engine.data.make_task("mix:1", pair, root=tmp_path, image_size=8)
    assert dogs.class_names == ("Alpha", "Shih-Tzu") and dogs.labels.tolist() == [0, 1, 0, 1]
    assert_crop(dogs, 1, box_for(1), COLOURS[3])
    binary = kc.engine.data.make_task("binary", pair, "test", root=tmp_path, image_size=8)
    assert binary.labels.tolist() == [0, 0, 1] and binary.class_names == tuple(pair)
    with pytest.raises(ValueError, match=r"can only join images of one shape"):
        both.concat(
            kc.engine.data.load("voc2012", root=make_voc(tmp_path)), class_names=[], label_offset=5
        )
