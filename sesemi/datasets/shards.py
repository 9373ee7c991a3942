"""Image pools streamed from WebDataset shards: tar files read through fsspec, for a pool that
does not fit on local disk (object storage: `s3://`, `gs://`, `https://`, or a local folder).

A shard is a tar file of samples, each a few files sharing a key: `<key>.png` (or `.jpg`,
`.jpeg`, `.webp`, ...) and, for labeled data, `<key>.cls` (the class index as text), as
webdataset's `TarWriter` writes them. Nothing is listed or decoded ahead: every loader process
draws shards at random (with replacement, seeded by the run's seed, the process's rank and
worker, and the epoch; webdataset's `ResampledShards`), streams their samples through a shuffle
buffer and decodes each image as it comes. An epoch is `size` items per run, split between the
processes of a multi-GPU run and the loader processes of each. The run's loader tells the data
set its process's rank, the epoch, and (from `run.seed`, unless the data set has a seed of its
own) the seed.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import IterableDataset, get_worker_info
from torchvision.transforms.v2.functional import pil_to_tensor

from sesemi.datasets.images import UNLABELED, ImageReadError, check_bit_depth, read_image
from sesemi.datasets.registry import register_dataset
from sesemi.errors import SesemiError, printable
from sesemi.streams import stream_seed
from sesemi.transforms.views import input_side

IMAGE_KEYS = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff")
SHUFFLE_BUFFER = 1000  # samples shuffled together as they stream in


def _webdataset() -> Any:
    try:
        import webdataset
    except ImportError:
        raise SesemiError(
            "reading shards needs the 'webdataset' package; install it with: pip install 'sesemi[shards]'"
        ) from None
    return webdataset


def is_url(root: str) -> bool:
    """Whether `root` names a place fsspec reaches by protocol (`s3://...`) rather than a path."""
    return "://" in str(root)


def list_shards(root: str, subset: str | None = None) -> list[str]:
    """The `*.tar` files in `root` (or its `subset` folder), sorted, as fsspec URLs or paths.

    Raises:
        SesemiError: The folder holds no shard.
    """
    import fsspec

    folder = f"{str(root).rstrip('/')}/{subset}" if subset else str(root)
    fs, path = fsspec.core.url_to_fs(folder)
    found = sorted(fs.glob(f"{path.rstrip('/')}/*.tar"))
    if not found:
        raise SesemiError(
            f"no shards (*.tar) in {printable(folder)}; write them with webdataset's TarWriter"
        )
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return [name if protocol == "file" else f"{protocol}://{name}" for name in found]


def _open_shards(sources: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """webdataset's shard records (`{"url": ...}`) with an open fsspec stream each."""
    import fsspec

    for source in sources:
        with fsspec.open(source["url"], "rb") as stream:
            yield {**source, "stream": stream}


class ShardDataset(IterableDataset):
    """`(image, label)` items streamed from WebDataset shards: uint8 tensors `[3, H, W]` (the
    views take them as they take PIL images) and the `.cls` label, -1 without one.

    Args:
        shards: The shard URLs or paths (`list_shards`).
        size: The items of one epoch, over all processes.
        transform: A transform applied to each image.
        seed: The seed of the shard draws and the shuffle buffer (None: the run's loader sets
            one from `run.seed`; without that, a fresh one at every pass).
        shuffle_buffer: Samples shuffled together as they stream in.
        bit_depth: The bits of the data in 16- and 32-bit integer images (`read_image`'s).
    """

    def __init__(
        self,
        shards: list[str],
        size: int,
        transform: Callable | None = None,
        seed: int | None = None,
        shuffle_buffer: int = SHUFFLE_BUFFER,
        bit_depth: int | None = None,
    ):
        if size < 1:
            raise SesemiError(
                f"a shard data set needs a size of at least 1 item per epoch, not {size}"
            )
        self.shards = shards
        self.size = size
        self.transform = transform
        self.min_side = input_side(transform)
        self.bit_depth = check_bit_depth(bit_depth)
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        # Set by the run's loader, in the training process: its loader processes (started from
        # a fork server in a multi-process run) know neither the rank nor the epoch.
        self.batch_size = 1  # the loader's; each loader process yields whole batches
        self.rank, self.world_size = 0, 1  # this process's place among the run's
        self.epoch = 0
        self.classes: list[str] = []

    def _batches(self) -> int:
        return math.ceil(math.ceil(self.size / self.world_size) / self.batch_size)

    def __len__(self) -> int:
        """The items this process yields in an epoch: whole batches."""
        return self._batches() * self.batch_size

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        wds = _webdataset()
        worker = get_worker_info()
        worker_id, workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        batches = self._batches()
        quota = (batches // workers + (worker_id < batches % workers)) * self.batch_size
        base = int.from_bytes(os.urandom(4), "little") if self.seed is None else self.seed
        seed = stream_seed(base, self.rank, worker_id, self.epoch) % 2**31
        self.epoch += 1  # the next pass of a process that keeps this copy (persistent workers)
        pipeline = wds.DataPipeline(
            wds.ResampledShards(self.shards, seed=seed, worker_seed=lambda: 0, deterministic=True),
            _open_shards,
            wds.tariterators.tar_file_expander,
            wds.tariterators.group_by_keys,
            wds.shuffle(self.shuffle_buffer, initial=min(100, self.shuffle_buffer), seed=seed),
        )
        produced = 0
        for sample in pipeline:
            if produced == quota:
                return
            item = self._item(sample)
            produced += 1
            yield item

    def _item(self, sample: dict[str, Any]) -> tuple[Any, Any]:
        key = next((k for k in IMAGE_KEYS if k in sample), None)
        if key is None:
            raise SesemiError(
                f"shard sample {printable(sample.get('__key__'))} in {printable(sample.get('__url__'))} holds no image "
                f"({', '.join(k for k in sample if not k.startswith('__'))}); give each sample a .png or .jpg"
            )
        try:
            image = pil_to_tensor(read_image(io.BytesIO(sample[key]), self.min_side, self.bit_depth))
        except ImageReadError as error:
            raise SesemiError(
                f"cannot read image {printable(sample['__key__'])}.{key} in {printable(sample['__url__'])} ({error})"
            ) from None
        label = int(sample["cls"]) if "cls" in sample else UNLABELED
        if self.transform is not None:
            image = self.transform(image)
        return image, label


def count_samples(shards: list[str]) -> int:
    """The samples (distinct keys) in `shards`, read once through fsspec (tar headers and all)."""
    wds = _webdataset()
    pipeline = wds.DataPipeline(
        wds.SimpleShardList(shards),
        _open_shards,
        wds.tariterators.tar_file_expander,
        wds.tariterators.group_by_keys,
    )
    return sum(1 for _ in pipeline)


@register_dataset("shards")
def shards(
    root: str,
    subset: str | None = None,
    image_transform: Callable | None = None,
    size: int | None = None,
    seed: int | None = None,
    shuffle_buffer: int = SHUFFLE_BUFFER,
    bit_depth: int | None = None,
) -> ShardDataset:
    """A pool of images streamed from the WebDataset shards (`*.tar`) in `root`/`subset`.

    Args:
        root: A folder or an fsspec URL (`s3://bucket/pool`, needing fsspec's package for the
            protocol, e.g. s3fs).
        subset: A subfolder of `root` holding the shards, or None for `root` itself.
        image_transform: A transform applied to each image (a uint8 tensor `[3, H, W]`).
        size: The items of one epoch; None counts the samples of all shards once, reading them
            through (set it for a remote pool).
        seed: The seed of the shard draws and shuffles (None: a fresh one per run).
        shuffle_buffer: Samples shuffled together as they stream in.
        bit_depth: The bits of the data in 16- and 32-bit integer images (as `image_folder`'s).
    """
    found = list_shards(root, subset)
    return ShardDataset(
        found, count_samples(found) if size is None else size, image_transform, seed, shuffle_buffer, bit_depth
    )
