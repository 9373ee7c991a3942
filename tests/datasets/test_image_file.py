"""`image_file` (sesemi/datasets/image_file.py): unlabeled images, searched recursively."""

from __future__ import annotations

import pytest

from sesemi.datasets import UNLABELED
from sesemi.datasets.image_file import image_file
from sesemi.errors import SesemiError


def test_reads_recursively_with_label_minus_one(image_tree):
    """All images under the subsets, in nested folders too, with label -1."""
    data = image_file(str(image_tree.root), subset=["train", "unlabeled"])
    assert len(data) == 3 * image_tree.train_per_class + image_tree.unlabeled
    assert set(data.targets) == {UNLABELED} and UNLABELED == -1
    assert data.classes == []
    image, label = data[0]
    assert image.size == (16, 16) and label == -1


def test_subset_none_reads_the_whole_root(image_tree):
    """`subset=None`: every image under the root (train, val and unlabeled)."""
    data = image_file(str(image_tree.root))
    assert len(data) == 3 * (image_tree.train_per_class + image_tree.val_per_class) + image_tree.unlabeled


def test_missing_subset_is_skipped_when_another_exists(image_tree):
    """A labeled-only data set (no unlabeled/) still works with `[train, unlabeled]`."""
    for path in (image_tree.root / "unlabeled").iterdir():
        path.unlink()
    (image_tree.root / "unlabeled").rmdir()
    data = image_file(str(image_tree.root), subset=["train", "unlabeled"])
    assert len(data) == 3 * image_tree.train_per_class


def test_all_subsets_missing_is_an_error(tmp_path):
    """If no named folder exists, the first is reported as missing."""
    with pytest.raises(SesemiError, match="does not exist"):
        image_file(str(tmp_path), subset=["a", "b"])


def test_folder_without_images_is_an_error(tmp_path):
    """An existing folder with no image files is a SesemiError, not an empty data set."""
    (tmp_path / "unlabeled").mkdir()
    (tmp_path / "unlabeled" / "readme.txt").write_text("hi")
    with pytest.raises(SesemiError, match="no image files"):
        image_file(str(tmp_path), subset="unlabeled")
