"""`pseudo` (sesemi/datasets/pseudo.py): reads the folders the pseudo_dataset op writes."""

from __future__ import annotations

import json

import pytest
import torch

from sesemi.datasets import DATASETS, dataset
from sesemi.datasets.images import ImageDataset
from sesemi.datasets.pseudo import INFO_FILE, LABELS_FILE, write_pseudo_dataset
from sesemi.errors import SesemiError

PROBABILITIES = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])


@pytest.fixture
def folder(image_tree, tmp_path):
    """A pseudo-labeled set of three images from the tree, written with soft labels."""
    paths = [str(image_tree.root / "train" / "blue" / "train0.png")]
    paths += [str(image_tree.root / "unlabeled" / f"u{i}.png") for i in (1, 2)]
    out = tmp_path / "pseudo"
    write_pseudo_dataset(
        out, paths, PROBABILITIES, image_tree.classes, soft_labels=True, info={"counts": {}}
    )
    return out


def test_registered_and_built_by_the_factory(folder):
    assert "pseudo" in DATASETS
    data = dataset("pseudo", str(folder.parent), subset=folder.name)
    assert isinstance(data, ImageDataset) and len(data) == 3
    with pytest.raises(SesemiError, match="holds images, not recordings; drop its sample_rate"):
        dataset("pseudo", str(folder), sample_rate=16000)


def test_soft_labels_are_probability_vectors_and_targets_stay_indices(folder):
    """Written with soft labels: items carry float tensors; `targets` the top classes; `classes` set."""
    data = dataset("pseudo", str(folder))
    assert data.classes == ["blue", "green", "red"]
    assert data.targets == [0, 1, 2]
    image, label = data[1]
    assert image.size == (16, 16)
    assert label.dtype == torch.float32 and torch.allclose(label, PROBABILITIES[1])


def test_hard_labels_on_request(folder):
    """`soft_labels=False` overrides the folder's setting: labels are class indices."""
    data = dataset("pseudo", str(folder), soft_labels=False)
    assert [data[i][1] for i in range(3)] == [0, 1, 2]


def test_paths_are_stored_relative_to_the_folder(folder, tmp_path):
    """The folder and the images can move together."""
    header, first = (folder / LABELS_FILE).read_text().splitlines()[:2]
    assert header == "path,label,confidence,p_blue,p_green,p_red"
    assert first == "../images/train/blue/train0.png,blue,1,1,0,0"
    moved = tmp_path / "moved"
    moved.mkdir()
    (tmp_path / "images").rename(moved / "images")
    folder.rename(moved / "pseudo")
    assert dataset("pseudo", str(moved / "pseudo"))[0][0].size == (16, 16)


def test_a_folder_moved_without_its_images_is_one_line(folder, tmp_path):
    """Copied elsewhere alone, none of the files it lists is there: said at once, with why,
    rather than 23 warnings and a failed run."""
    import shutil

    shutil.copytree(folder, tmp_path / "backup" / "pseudo")
    with pytest.raises(SesemiError, match=r"^none of the 3 files .*backup/pseudo/labels.csv lists exists, e.g. .*was the folder moved"):
        dataset("pseudo", str(tmp_path / "backup" / "pseudo"))


def test_not_a_pseudo_folder_is_an_error(tmp_path):
    with pytest.raises(SesemiError, match="data folder .* does not exist"):
        dataset("pseudo", str(tmp_path / "missing"))
    with pytest.raises(SesemiError, match="is not a pseudo-labeled data set"):
        dataset("pseudo", str(tmp_path))


def test_classes_that_do_not_match_the_columns_are_an_error(folder):
    info = json.loads((folder / INFO_FILE).read_text())
    (folder / INFO_FILE).write_text(json.dumps({**info, "classes": ["a", "b", "c"]}))
    with pytest.raises(SesemiError, match="does not match the classes"):
        dataset("pseudo", str(folder))


def test_an_empty_set_is_an_error(image_tree, tmp_path):
    write_pseudo_dataset(
        tmp_path, [], torch.empty(0, 3), image_tree.classes, soft_labels=False, info={}
    )
    with pytest.raises(SesemiError, match="lists no files"):
        dataset("pseudo", str(tmp_path))
