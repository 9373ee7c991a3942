"""Image pools streamed from WebDataset shards (sesemi/datasets/shards.py)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_IMAGE_TRAINING, make_image_tree
from PIL import Image
from torch.utils.data import DataLoader

from sesemi import compose, run
from sesemi.datasets import dataset
from sesemi.errors import SesemiError

wds = pytest.importorskip("webdataset")


def write_shards(folder: Path, shards: int = 2, per_shard: int = 5, labeled: bool = False) -> Path:
    """`shards` tar files of `per_shard` 16x16 PNGs each (class `i % 3` with `labeled`)."""
    folder.mkdir(parents=True)
    for shard in range(shards):
        with wds.TarWriter(str(folder / f"pool-{shard:04d}.tar")) as sink:
            for i in range(per_shard):
                pixels = np.full((16, 16, 3), 10 * (shard * per_shard + i), np.uint8)
                encoded = io.BytesIO()
                Image.fromarray(pixels).save(encoded, "PNG")
                sample = {"__key__": f"{shard}-{i}", "png": encoded.getvalue()}
                if labeled:
                    sample["cls"] = i % 3
                sink.write(sample)
    return folder


def test_items_are_the_images_as_uint8_tensors_and_their_labels(tmp_path):
    data = dataset("shards", str(write_shards(tmp_path / "pool", labeled=True)), seed=0)
    assert data.size == 10  # counted from the shards
    items = list(data)
    assert len(items) == 10
    for image, label in items:
        assert image.dtype == torch.uint8 and image.shape == (3, 16, 16) and label in (0, 1, 2)
    unlabeled = dataset("shards", str(write_shards(tmp_path / "unlabeled")), size=4, seed=0)
    assert [label for _, label in unlabeled] == [-1] * 4


def test_loader_processes_share_an_epoch_in_whole_batches(tmp_path):
    """Two loader processes: the loader's length in full batches, as the epoch's size says."""
    data = dataset("shards", str(write_shards(tmp_path / "pool")), size=10, seed=0)
    data.batch_size = 3
    batches = list(DataLoader(data, batch_size=3, num_workers=2))
    assert len(batches) == 4 == len(DataLoader(data, batch_size=3))
    assert all(len(labels) == 3 for _, labels in batches)
    shades = torch.cat([images[:, 0, 0, 0] for images, _ in batches]).tolist()
    assert len(set(shades)) > 3  # the two processes draw different samples


def test_a_folder_without_shards_is_a_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SesemiError, match=r"^no shards \(\*\.tar\) in .*empty; write them"):
        dataset("shards", str(tmp_path / "empty"))


def test_fixmatch_trains_on_a_pool_streamed_from_shards(tmp_path):
    """The unlabeled data set of a method config is a `shards` pool: two steps train."""
    tree = make_image_tree(tmp_path / "images")
    pool = write_shards(tmp_path / "pool", per_shard=8)
    tiny = [o for o in TINY_IMAGE_TRAINING if o != "run.num_iterations=4"]
    config = compose(
        "image",
        [
            "method=fixmatch",
            f"run.data_root={tree.root}",
            *tiny,
            "run.num_iterations=2",
            "run.mu=1",
            "data.unlabeled.name=shards",
            f"+data.unlabeled.root={pool}",
            "data.unlabeled.subset=null",
            "+data.unlabeled.size=12",
            "data.train.fixmatch.num_workers=1",
        ],
    )
    result = run(config, tmp_path / "run")
    assert result.global_step == 2
