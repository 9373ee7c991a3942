"""Items of `image_folder` and `image_file` carry their file name, as in sesemi 0.3:
`image.info["filename"]` is set on the PIL image before the transform."""

from __future__ import annotations

from pathlib import Path

import pytest

from sesemi.datasets.image_file import image_file
from sesemi.datasets.image_folder import image_folder


@pytest.mark.parametrize("build", [lambda root: image_folder(root, "train"), lambda root: image_file(root, "unlabeled")])
def test_an_item_without_a_transform_carries_its_file_name(image_tree, build):
    data = build(str(image_tree.root))
    for index in range(len(data)):
        image, _ = data[index]
        assert image.info["filename"] == data.samples[index][0]
        assert Path(image.info["filename"]).is_file()


def test_the_transform_sees_the_file_name(image_tree):
    """A transform can read the file name (0.3's pseudo-labelling read it there)."""
    data = image_folder(str(image_tree.root), "val", image_transform=lambda image: image.info["filename"])
    names, labels = zip(*(data[i] for i in range(len(data))), strict=True)
    assert list(names) == [path for path, _ in data.samples]
    assert all(Path(name).parent.name == data.classes[label] for name, label in zip(names, labels, strict=True))
