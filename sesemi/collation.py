"""Batch-level transforms: collate functions that build self-supervised targets.

Both work on images `[C, H, W]` and on waveforms `[T]`: a waveform's "rotation" is a circular
shift by a quarter of the clip (the seam shows how far it was turned), its jigsaw puzzle is its
time segments in another order (predicting temporal order, a standard audio pretext task).

Rotation prediction: Gidaris et al., "Unsupervised Representation Learning by Predicting Image
Rotations", ICLR 2018, https://arxiv.org/abs/1803.07728
Jigsaw puzzles: Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving
Jigsaw Puzzles", ECCV 2016, https://arxiv.org/abs/1603.09246
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from sesemi.errors import SesemiError

NUM_ROTATIONS = 4
JIGSAW_GRID_SIZE = 3
JIGSAW_PERMUTATIONS = 24


def _stack_inputs(batch: Sequence[tuple[Tensor, int]], method: str) -> Tensor:
    """The batch's images `[B, C, H, W]` or waveforms `[B, T]`; other inputs are a user error."""
    inputs = torch.stack([item for item, _ in batch])
    if inputs.dim() not in (2, 4):
        raise SesemiError(
            f"{method} needs images (C, H, W) or waveforms (T), not inputs of shape {tuple(inputs.shape[1:])}"
        )
    return inputs


def _rotate(inputs: Tensor, k: int) -> Tensor:
    """Images turned by k x 90 degrees; waveforms shifted circularly by k quarters of the clip."""
    if inputs.dim() == 4:
        return torch.rot90(inputs, k, dims=(2, 3))
    return torch.roll(inputs, k * inputs.shape[-1] // NUM_ROTATIONS, dims=-1)


class RotationTransformer:
    """Collates `(image, label)` items into every rotation of every image.

    Each image (C, H, W) appears rotated by 0, 90, 180 and 270 degrees (a waveform shifted by
    0, 1, 2 and 3 quarters); the target is the rotation index 0-3. The batch is
    `(inputs [4B, ...], rotation_labels [4B])`, plus the original labels `[4B]` when
    `return_supervised_labels` is set.
    """

    def __init__(self, return_supervised_labels: bool = False):
        self.return_supervised_labels = return_supervised_labels

    def __call__(self, batch: Sequence[tuple[Tensor, int]]) -> tuple[Tensor, ...]:
        inputs = _stack_inputs(batch, "rotation prediction")
        rotated = torch.cat([_rotate(inputs, k) for k in range(NUM_ROTATIONS)])
        rotation_labels = torch.arange(NUM_ROTATIONS).repeat_interleave(len(batch))
        if not self.return_supervised_labels:
            return rotated, rotation_labels
        labels = torch.as_tensor([label for _, label in batch]).repeat(NUM_ROTATIONS)
        return rotated, rotation_labels, labels


def jigsaw_permutations(
    num_tiles: int, count: int, seed: int = 0, candidates: int = 2000
) -> Tensor:
    """A fixed set of `count` tile orders `[count, num_tiles]` that differ as much as possible.

    The identity comes first; each next one is the random candidate (drawn with `seed`) with the
    largest Hamming distance to its nearest chosen order, as in Noroozi & Favaro.
    """
    generator = torch.Generator().manual_seed(seed)
    pool = torch.stack([torch.randperm(num_tiles, generator=generator) for _ in range(candidates)])
    chosen = [torch.arange(num_tiles)]
    nearest = (pool != chosen[0]).sum(dim=1)  # each candidate's distance to its closest chosen
    for _ in range(count - 1):
        best = int(nearest.argmax())
        if nearest[best] == 0:
            raise ValueError(f"{num_tiles} tiles have fewer than {count} distinct orders")
        chosen.append(pool[best])
        nearest = torch.minimum(nearest, (pool != pool[best]).sum(dim=1))
    return torch.stack(chosen)


class JigsawCollator:
    """Collates `(image, label)` items into jigsaw puzzles whose tile order is to be predicted.

    Each image (C, H, W) is cut into `grid_size` x `grid_size` tiles (a waveform into as many
    time segments), which are reassembled in one of `num_permutations` fixed orders drawn at
    random per input; the target is the order's index (0 is the identity). The batch is
    `(puzzles [B, ...], permutation_labels [B])`. Leftover pixels (samples) that do not fill a
    tile are 0 (the mean of normalized images, silence).

    Args:
        grid_size: Tiles per side.
        num_permutations: The number of tile orders (the classes of the pretext task).
        seed: The seed that picks the fixed set of orders (keep it for a trained head).
    """

    def __init__(
        self,
        grid_size: int = JIGSAW_GRID_SIZE,
        num_permutations: int = JIGSAW_PERMUTATIONS,
        seed: int = 0,
    ):
        self.grid_size = grid_size
        self.permutations = jigsaw_permutations(grid_size**2, num_permutations, seed)

    def __call__(self, batch: Sequence[tuple[Tensor, int]]) -> tuple[Tensor, Tensor]:
        images = _stack_inputs(batch, "jigsaw prediction")
        labels = torch.randint(len(self.permutations), (len(batch),))
        order = self.permutations[labels]  # tile order[i] goes to position i
        if images.dim() == 2:  # waveforms: time segments
            b, t = images.shape
            n = self.grid_size**2
            length = t // n
            segments = images[:, : n * length].reshape(b, n, length)
            puzzles = torch.zeros_like(images)
            puzzles[:, : n * length] = segments[torch.arange(b)[:, None], order].reshape(b, n * length)
            return puzzles, labels
        b, c, h, w = images.shape
        g, th, tw = self.grid_size, h // self.grid_size, w // self.grid_size
        tiles = images[:, :, : g * th, : g * tw].reshape(b, c, g, th, g, tw)
        tiles = tiles.permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, c, th, tw)  # row-major tiles
        shuffled = tiles[torch.arange(b)[:, None], order].reshape(b, g, g, c, th, tw)
        puzzles = torch.zeros_like(images)
        shuffled = shuffled.permute(0, 3, 1, 4, 2, 5).reshape(b, c, g * th, g * tw)
        puzzles[:, :, : g * th, : g * tw] = shuffled
        return puzzles, labels


class ReadableOnly:
    """Collates the items of an evaluation batch that could be read, leaving out the others
    (None, see `sesemi.datasets.images.FileDataset.substitute`); None when none could be."""

    def __init__(self, collate: Callable[[list[Any]], Any]):
        self.collate = collate

    def __call__(self, batch: list[Any]) -> Any:
        readable = [item for item in batch if item is not None]
        return self.collate(readable) if readable else None
