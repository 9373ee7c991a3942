"""Image pools streamed from WebDataset shards (sesemi/datasets/shards.py)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import TINY_IMAGE_TRAINING, make_image_tree
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from sesemi import compose, run
from sesemi.datamodule import SESEMIDataModule
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


def _pool_loader(pool: Path, seed: int | None, trainer=None):
    """The training loader of a run (of `trainer`'s process) that streams `pool` with a loader
    process, started anew each epoch."""
    data = OmegaConf.create(
        {"train": {"pool": {"dataset": {"name": "shards", "root": str(pool), "size": 12}, "batch_size": 3, "num_workers": 1}}}
    )
    module = SESEMIDataModule(data, str(pool), None, seed)
    module.trainer = trainer
    module.setup("fit")
    return module._loader("pool", data.train.pool, module.train_datasets["pool"], train=True)


def _shades(loader) -> list[int]:
    return torch.cat([images[:, 0, 0, 0] for images, _ in loader]).tolist()


def test_each_process_and_epoch_streams_its_own_items_as_the_run_seed_says(tmp_path):
    """The loader gives the data set the run's seed, its process's rank and the epoch, which its
    loader processes (started anew every epoch, from a fork server in a multi-process run)
    cannot find out: the same seed streams the same items, each epoch other ones, a resumed
    epoch its own again, and the two processes of a run each their half of other items."""
    pool = write_shards(tmp_path / "pool", per_shard=8)
    loader = _pool_loader(pool, seed=5)
    epochs = [_shades(loader), _shades(loader)]
    assert epochs[0] == _shades(_pool_loader(pool, seed=5))
    assert epochs[0] != epochs[1] and len(epochs[1]) == 12
    resumed = SimpleNamespace(global_rank=0, world_size=1, current_epoch=1, num_devices=1, accelerator=None)
    assert _shades(_pool_loader(pool, seed=5, trainer=resumed)) == epochs[1]
    streams = []
    for rank in (0, 1):
        process = SimpleNamespace(global_rank=rank, world_size=2, current_epoch=0, num_devices=1, accelerator=None)
        streams.append(_shades(_pool_loader(pool, seed=5, trainer=process)))
    assert len(streams[0]) == len(streams[1]) == 6 and streams[0] != streams[1]
