"""`image_folder` (sesemi/datasets/image_folder.py): labeled images, one folder per class."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from sesemi.datasets import dataset
from sesemi.datasets.image_folder import image_folder
from sesemi.errors import SesemiError
from sesemi.transforms import to_normalized_tensor


def test_classes_and_labels_follow_the_folders(image_tree):
    """Classes are the sorted folder names; each item's label is its folder's index."""
    data = image_folder(str(image_tree.root), subset="train")
    assert data.classes == image_tree.classes == ["blue", "green", "red"]
    assert len(data) == 3 * image_tree.train_per_class
    for path, label in data.samples:
        assert path.split("/")[-2] == data.classes[label]
    image, label = data[0]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (16, 16)
    assert label == 0


def test_items_are_the_images_on_disk(image_tree):
    """The item is the file's pixels (the red class is red), with the transform applied."""
    data = image_folder(str(image_tree.root), "train", image_transform=to_normalized_tensor((0, 0, 0), (1, 1, 1)))
    index = data.targets.index(data.classes.index("red"))
    image, label = data[index]
    assert isinstance(image, torch.Tensor) and image.shape == (3, 16, 16)
    red, green, blue = image.mean(dim=(1, 2))
    assert red > 2 * green and red > 2 * blue


def test_subset_list_concatenates_with_one_class_list(image_tree):
    """`subset=[train, val]` reads both folders into one data set with shared labels."""
    data = image_folder(str(image_tree.root), subset=["train", "val"])
    per_class = image_tree.train_per_class + image_tree.val_per_class
    assert data.classes == image_tree.classes
    assert len(data) == 3 * per_class
    assert sorted(data.targets) == sorted([0, 1, 2] * per_class)
    assert any("/val/" in path for path, _ in data.samples)


def test_class_missing_from_one_subset_keeps_labels_consistent(image_tree):
    """A class present only in one subset keeps the same label everywhere."""
    (image_tree.root / "extra" / "green").mkdir(parents=True)
    for path in (image_tree.root / "train" / "green").iterdir():
        (image_tree.root / "extra" / "green" / path.name).write_bytes(path.read_bytes())
    data = image_folder(str(image_tree.root), subset=["train", "extra"])
    assert data.classes == ["blue", "green", "red"]
    green = [label for path, label in data.samples if "/extra/" in path]
    assert green and set(green) == {1}


def test_subset_none_reads_class_folders_under_root(image_tree):
    """`subset=None` treats the root itself as the folder of class folders."""
    data = image_folder(str(image_tree.root / "val"))
    assert data.classes == image_tree.classes and len(data) == 3 * image_tree.val_per_class


def test_non_image_files_are_ignored(image_tree):
    """Text files and the like inside class folders are not samples."""
    (image_tree.root / "train" / "red" / "notes.txt").write_text("not an image")
    data = image_folder(str(image_tree.root), "train")
    assert len(data) == 3 * image_tree.train_per_class
    assert not any(path.endswith(".txt") for path, _ in data.samples)


def test_empty_class_folder_is_named_in_the_error(image_tree):
    """An empty class folder is a SesemiError naming that folder."""
    (image_tree.root / "train" / "purple").mkdir()
    with pytest.raises(SesemiError, match="purple"):
        image_folder(str(image_tree.root), "train")


def test_folder_without_class_folders_is_an_error(tmp_path):
    """Images directly in the folder (no class folders, labels in the file names as Kaggle ships
    them) give a SesemiError that says to sort them into class folders; an empty one, the layout."""
    (tmp_path / "train").mkdir()
    for name in ("dog.0.png", "cat.0.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / "train" / name)
    with pytest.raises(SesemiError) as error:
        image_folder(str(tmp_path), "train")
    assert str(error.value) == (
        f"{tmp_path}/train holds 2 images but no class folders; the labels are the folder names: move each "
        f"image into a folder of its class, e.g. {tmp_path}/train/<class>/cat.0.png"
    )
    (tmp_path / "val").mkdir()
    with pytest.raises(SesemiError, match=r"^no class folders in .*val; expected <class>/<image>$"):
        image_folder(str(tmp_path), "val")


def test_images_beside_the_class_folders_are_named_not_dropped_in_silence(image_tree, caplog):
    """A few images copied into train/ itself, next to its class folders, have no label: they
    are left out with a warning that says where they belong."""
    for name in ("stray.png", "other.png", ".hidden.png"):
        Image.new("RGB", (8, 8)).save(image_tree.root / "train" / name)
    data = image_folder(str(image_tree.root), "train")
    assert not any("stray" in path or "other" in path for path, _ in data.samples)
    (warning,) = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert warning == (
        f"left out 2 images directly in {image_tree.root}/train, beside its class folders (other.png); "
        "the labels are the folder names: move each image into a folder of its class"
    )


def test_missing_folder_is_a_sesemi_error(tmp_path):
    """A missing data folder is a one-line SesemiError naming it."""
    with pytest.raises(SesemiError) as error:
        image_folder(str(tmp_path / "nowhere"), "train")
    assert str(tmp_path / "nowhere" / "train") in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_imagewoof_folder_gives_the_download_hint(tmp_path):
    """For the imagewoof2 data set the error says how to download it."""
    with pytest.raises(SesemiError) as error:
        dataset("image_folder", str(tmp_path / "data" / "imagewoof2"), subset="train")
    message = str(error.value)
    assert "imagewoof2" in message and "download" in message and "imagewoof2.tgz" in message


def test_one_missing_subset_of_several_is_an_error(image_tree):
    """Unlike image_file, a labeled data set must have every subset it names."""
    with pytest.raises(SesemiError, match="nope"):
        image_folder(str(image_tree.root), subset=["train", "nope"])


def test_classes_number_the_folders_by_a_given_list(image_tree):
    """With the training set's classes, a val set lacking one keeps the others' indices."""
    for path in (image_tree.root / "val" / "blue").iterdir():
        path.unlink()
    (image_tree.root / "val" / "blue").rmdir()
    data = image_folder(str(image_tree.root), "val", classes=["blue", "green", "red"])
    assert data.classes == ["blue", "green", "red"]
    assert sorted(set(data.targets)) == [1, 2]  # green and red, as in training
    for path, label in data.samples:
        assert path.split("/")[-2] == data.classes[label]


def test_a_class_folder_the_given_list_lacks_is_a_one_line_error(image_tree):
    """A val folder of a class training never saw names the class and the folder and says what to do."""
    with pytest.raises(SesemiError) as error:
        image_folder(str(image_tree.root), "val", classes=["blue", "green"])
    message = str(error.value)
    assert "'red'" in message and str(image_tree.root / "val" / "red") in message
    assert "not a class of the training set" in message and "\n" not in message


def test_hidden_folders_are_not_classes(image_tree):
    (image_tree.root / "train" / ".ipynb_checkpoints").mkdir()
    assert image_folder(str(image_tree.root), "train").classes == image_tree.classes


def test_a_class_named_alike_in_another_unicode_form_is_one_class(tmp_path):
    """macOS writes `Müll` decomposed (NFD), Linux and Windows as typed (NFC): a validation
    folder made on one and a training folder made on the other are the same class."""
    import unicodedata

    for split, form in (("train", "NFD"), ("val", "NFC")):
        for name in (unicodedata.normalize(form, "Müll"), "Papier"):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / split / name / "a.png")
    train = image_folder(str(tmp_path), "train")
    val = image_folder(str(tmp_path), "val", classes=train.classes)
    assert val.classes == train.classes and len(train.classes) == 2
    assert sorted(label for _, label in val.samples) == [0, 1]
    assert {Path(path).parent.name: label for path, label in val.samples}[unicodedata.normalize("NFC", "Müll")] == 0


def test_two_folders_of_one_class_in_two_unicode_forms_both_count(tmp_path):
    """`Müll/` composed and `Müll/` decomposed side by side (copied together from two machines)
    are one class with the images of both: one folder's images were dropped without a word."""
    import unicodedata

    for form, count in (("NFC", 2), ("NFD", 3)):
        folder = tmp_path / "train" / unicodedata.normalize(form, "Müll")
        folder.mkdir(parents=True)
        for index in range(count):
            Image.new("RGB", (8, 8)).save(folder / f"{index}.png")
    (tmp_path / "train" / "Glas").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "Glas" / "a.png")
    train = image_folder(str(tmp_path), "train")
    assert len(train.classes) == 2 and len(train.samples) == 6
    assert sorted(label for _, label in train.samples) == [0, 1, 1, 1, 1, 1]
