"""ImageDataset (sesemi/datasets/images.py): unreadable files are skipped or reported."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from sesemi.datasets.image_folder import image_folder
from sesemi.datasets.images import ImageDataset
from sesemi.errors import SesemiError


@pytest.fixture
def corrupt_tree(image_tree):
    """The image tree plus two unreadable files in train/green: garbage bytes and a truncated PNG."""
    folder = image_tree.root / "train" / "green"
    (folder / "x.png").write_bytes(b"this is not a png file at all" * 10)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 255, 0)).save(buffer, format="PNG")
    (folder / "y.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return image_tree


def _index(data, name):
    return next(i for i, (path, _) in enumerate(data.samples) if path.endswith(name))


@pytest.mark.parametrize("name", ["x.png", "y.png"])
def test_skip_returns_a_readable_substitute_and_records_it(corrupt_tree, name):
    """on_error="skip": the item is another readable image, and the file is listed in `.skipped`."""
    data = image_folder(str(corrupt_tree.root), "train", on_error="skip")
    index = _index(data, name)
    image, label = data[index]
    assert isinstance(image, Image.Image) and image.size == (16, 16)
    assert label in range(len(data.classes))
    assert any(path.endswith(name) for path in data.skipped)
    assert {path.rsplit("/", 1)[-1] for path in data.skipped} <= {"x.png", "y.png"}


def test_skip_substitute_carries_its_own_label(corrupt_tree):
    """The substitute's label is the label of the image returned, not of the broken file."""
    data = image_folder(str(corrupt_tree.root), "train", on_error="skip")
    index = _index(data, "y.png")  # last green file; the next sample is the first red one
    _, label = data[index]
    assert label == data.classes.index("red")


@pytest.mark.parametrize("name", ["x.png", "y.png"])
def test_raise_names_the_file(corrupt_tree, name):
    """on_error="raise": a SesemiError naming the unreadable file."""
    data = image_folder(str(corrupt_tree.root), "train", on_error="raise")
    with pytest.raises(SesemiError, match=name.replace(".", r"\.")):
        data[_index(data, name)]


def test_readable_items_are_unaffected_by_on_error_raise(corrupt_tree):
    """Good files still load with on_error="raise"."""
    data = image_folder(str(corrupt_tree.root), "train", on_error="raise")
    image, label = data[0]
    assert image.size == (16, 16) and label == 0


def test_nothing_readable_is_an_error(tmp_path):
    """A data set of only broken files fails instead of looping or returning None."""
    (tmp_path / "a.png").write_bytes(b"junk")
    (tmp_path / "b.png").write_bytes(b"more junk")
    data = ImageDataset([(str(tmp_path / "a.png"), 0), (str(tmp_path / "b.png"), 1)], ["a", "b"])
    with pytest.raises(SesemiError, match="none of the 2 images"):
        data[0]
    assert len(data.skipped) == 2


def test_bad_on_error_value_is_rejected():
    """Only "skip" and "raise" are accepted."""
    with pytest.raises(SesemiError, match="on_error"):
        ImageDataset([], [], on_error="ignore")
