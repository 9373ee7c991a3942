"""JigsawCollator and its fixed permutation set (sesemi/collation.py)."""

from __future__ import annotations

import pytest
import torch

from sesemi.collation import JigsawCollator, jigsaw_permutations


def _batch(size: int = 5, height: int = 6, width: int = 6):
    torch.manual_seed(0)
    return [(torch.rand(3, height, width), label) for label in range(size)]


def _tiles(image: torch.Tensor, grid: int) -> list[torch.Tensor]:
    side = image.shape[1] // grid
    return [
        image[:, r * side : (r + 1) * side, c * side : (c + 1) * side]
        for r in range(grid)
        for c in range(grid)
    ]


def test_permutations_are_distinct_fixed_and_start_with_the_identity():
    permutations = jigsaw_permutations(9, 24, seed=0)
    assert permutations.shape == (24, 9)
    assert permutations[0].tolist() == list(range(9))
    assert len({tuple(p) for p in permutations.tolist()}) == 24
    assert all(sorted(p) == list(range(9)) for p in permutations.tolist())
    torch.testing.assert_close(permutations, jigsaw_permutations(9, 24, seed=0))


def test_asking_for_more_orders_than_exist_fails():
    with pytest.raises(ValueError, match="distinct"):
        jigsaw_permutations(3, 7)  # 3 tiles have 3! = 6 orders


def test_shapes_and_labels():
    puzzles, labels = JigsawCollator(grid_size=3, num_permutations=4)(_batch(5))
    assert puzzles.shape == (5, 3, 6, 6)
    assert labels.shape == (5,) and labels.dtype == torch.int64
    assert ((labels >= 0) & (labels < 4)).all()


def test_each_puzzle_is_its_image_with_tiles_in_the_labeled_order():
    """Position i of puzzle b holds tile permutations[label_b][i] of image b."""
    collator = JigsawCollator(grid_size=3, num_permutations=6)
    batch = _batch(8)
    puzzles, labels = collator(batch)
    for (image, _), puzzle, label in zip(batch, puzzles, labels, strict=True):
        order = collator.permutations[label]
        source, shuffled = _tiles(image, 3), _tiles(puzzle, 3)
        for position in range(9):
            torch.testing.assert_close(shuffled[position], source[order[position]])
        if label == 0:
            torch.testing.assert_close(puzzle, image)


def test_leftover_pixels_are_zero_when_the_size_is_not_a_multiple_of_the_grid():
    puzzles, _ = JigsawCollator(grid_size=2)(_batch(3, height=7, width=9))
    assert puzzles.shape == (3, 3, 7, 9)
    assert (puzzles[:, :, 6:, :] == 0).all() and (puzzles[:, :, :, 8:] == 0).all()
