"""Batch-level transforms (sesemi/collation.py): RotationTransformer."""

from __future__ import annotations

import pytest
import torch

from sesemi.collation import JigsawCollator, RotationTransformer
from sesemi.errors import SesemiError


def _batch(size: int = 3, channels: int = 3, height: int = 5, width: int = 5):
    torch.manual_seed(0)
    return [(torch.rand(channels, height, width), label) for label in range(10, 10 + size)]


def test_shapes_and_rotation_labels():
    """B images -> [4B, C, H, W] images and labels 0..3, each repeated B times in blocks."""
    images, labels = RotationTransformer()(_batch(3))
    assert images.shape == (12, 3, 5, 5)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert labels.dtype == torch.int64


def test_rotation_k_of_image_i_is_rot90():
    """Item k*B + i is image i rotated by k*90 degrees (torch.rot90 over H, W)."""
    batch = _batch(3)
    images, labels = RotationTransformer()(batch)
    for k in range(4):
        for i, (image, _) in enumerate(batch):
            assert labels[k * 3 + i] == k
            torch.testing.assert_close(images[k * 3 + i], torch.rot90(image, k, (1, 2)))


def test_supervised_labels_follow_their_images():
    """With return_supervised_labels, item k*B + i carries image i's own label."""
    batch = _batch(3)
    images, rotation_labels, labels = RotationTransformer(return_supervised_labels=True)(batch)
    assert labels.tolist() == [10, 11, 12] * 4
    assert len(images) == len(rotation_labels) == len(labels) == 12


def test_works_as_a_dataloader_collate_fn():
    """Used as `collate_fn`, a loader yields the rotated batch."""
    data = [(torch.rand(1, 4, 4), 0) for _ in range(4)]
    loader = torch.utils.data.DataLoader(data, batch_size=2, collate_fn=RotationTransformer())
    images, labels = next(iter(loader))
    assert images.shape == (8, 1, 4, 4) and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_a_waveform_rotates_by_quarter_shifts():
    """Waveforms `[T]`: the k-th rotation is the clip shifted circularly by k quarters."""
    waves = torch.arange(16.0).reshape(2, 8)
    inputs, labels = RotationTransformer()([(w, -1) for w in waves])
    assert inputs.shape == (8, 8) and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(inputs[2], torch.roll(waves[0], 2)) and torch.equal(inputs[7], torch.roll(waves[1], 6))


def test_a_waveform_puzzle_reorders_its_time_segments():
    """Waveforms `[T]`: 9 segments in the order of the drawn permutation (label 0: unchanged)."""
    collate = JigsawCollator()
    wave = torch.arange(20.0)  # 9 segments of 2 samples, 2 samples left over (silence)
    puzzles, labels = collate([(wave, -1)] * 16)
    for puzzle, label in zip(puzzles, labels, strict=True):
        order = collate.permutations[label]
        assert torch.equal(puzzle[:18].reshape(9, 2), wave[:18].reshape(9, 2)[order])
        assert torch.equal(puzzle[18:], torch.zeros(2))


@pytest.mark.parametrize("collate", [RotationTransformer(), JigsawCollator()])
def test_other_inputs_are_a_one_line_error(collate):
    """Inputs that are neither images nor waveforms are a user error, not a shape error deep in torch."""
    with pytest.raises(SesemiError, match="needs images"):
        collate([(torch.zeros(2, 3), -1), (torch.zeros(2, 3), -1)])
