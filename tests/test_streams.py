"""Random streams of training loaders (sesemi/streams.py): paired batches across methods."""

from __future__ import annotations

import itertools

import pytest
import torch
from lightning_fabric.utilities.data import _set_sampler_epoch
from lightning_fabric.utilities.distributed import DistributedSamplerWrapper
from omegaconf import OmegaConf
from pytorch_lightning.utilities.combined_loader import _shutdown_workers_and_reset_iterator

from sesemi.datamodule import SESEMIDataModule, UnbrokenLoader
from sesemi.samplers import PassByPassBatchSampler, RepeatingRandomSampler
from sesemi.streams import RandomStream, stream_seed

WEAK = {
    "_target_": "sesemi.transforms.weak_transforms",
    "crop_dim": 16,
    "mean": [0.5] * 3,
    "std": [0.5] * 3,
}
STRONG = {"_target_": "sesemi.transforms.strong_transforms", "weak": WEAK}
TO_TENSOR = {"_target_": "sesemi.transforms.to_normalized_tensor", "mean": [0.5] * 3, "std": [0.5] * 3}


def _module(
    root,
    seed: int | None,
    unlabeled: bool,
    num_workers: int = 0,
    labeled_transform: dict = WEAK,
    unlabeled_transform: dict = STRONG,
    unlabeled_batch_size: int = 1,
) -> SESEMIDataModule:
    """A labeled loader of 9 images in batches of 4 (random crops and flips by default), and
    optionally an unlabeled one of 4 images (RandAugment; in batches of 1, the longer loader)."""
    train = {
        "supervised": {
            "dataset": {
                "name": "image_folder",
                "root": str(root),
                "subset": "train",
                "image_transform": labeled_transform,
            },
            "batch_size": 4,
            "shuffle": True,
            "num_workers": num_workers,
        }
    }
    if unlabeled:
        train["unlabeled"] = {
            "dataset": {
                "name": "image_file",
                "root": str(root),
                "subset": ["unlabeled"],
                "image_transform": unlabeled_transform,
            },
            "batch_size": unlabeled_batch_size,
            "shuffle": True,
        }
    module = SESEMIDataModule(OmegaConf.create({"train": train}), seed=seed)
    module.setup("fit")
    return module


def _labeled_batches(
    module: SESEMIDataModule, global_seed: int, epochs: int = 2
) -> list[torch.Tensor]:
    """The labeled images of every step, drawn as training draws them: every loader once a step,
    and the model's own random numbers (here a different global seed and some draws) in between."""
    torch.manual_seed(global_seed)
    loaders = module.train_dataloader()
    batches = []
    for epoch in range(epochs):
        _set_sampler_epoch(loaders["supervised"], epoch)  # what Lightning calls
        others = [iter(loader) for name, loader in loaders.items() if name != "supervised"]
        for images, _ in loaders["supervised"]:
            batches.append(images)
            for other in others:
                next(other, None)
            torch.rand(global_seed + 1)  # a head's dropout, say
    return batches


def test_a_second_loader_leaves_the_labeled_batches_as_they_were(image_tree):
    """Same run.seed: the labeled images, their order and augmentations do not depend on what
    else the method draws. Another seed gives other batches."""
    alone = _labeled_batches(_module(image_tree.root, seed=3, unlabeled=False), global_seed=0, epochs=1)
    with_method = _labeled_batches(_module(image_tree.root, seed=3, unlabeled=True), global_seed=1, epochs=1)
    # The labeled pass is 3 batches; with the method the epoch is 4, the 4th from the next pass.
    assert len(alone) == 3 and len(with_method) == 4
    assert all(torch.equal(a, b) for a, b in zip(alone, with_method[:3], strict=True))
    other_seed = _labeled_batches(_module(image_tree.root, seed=4, unlabeled=False), global_seed=0)
    assert not all(torch.equal(a, b) for a, b in zip(alone, other_seed, strict=True))


def test_without_a_seed_loaders_draw_from_the_global_generator(image_tree):
    alone = _labeled_batches(_module(image_tree.root, seed=None, unlabeled=False), global_seed=0)
    with_method = _labeled_batches(
        _module(image_tree.root, seed=None, unlabeled=True), global_seed=0
    )
    assert not all(torch.equal(a, b) for a, b in zip(alone, with_method, strict=True))


def test_loader_workers_are_seeded_from_the_loader_stream(image_tree):
    first = _labeled_batches(
        _module(image_tree.root, seed=3, unlabeled=False, num_workers=1), global_seed=0, epochs=1
    )
    second = _labeled_batches(
        _module(image_tree.root, seed=3, unlabeled=True, num_workers=1), global_seed=1, epochs=1
    )
    assert len(first) == 3 and len(second) == 4  # beside the longer loader, pass after pass
    assert all(torch.equal(a, b) for a, b in zip(first, second[:3], strict=True))


def test_loading_leaves_the_global_generator_alone(image_tree):
    """Model initialization and dropout draw from the global generator, whatever loaders load."""
    loaders = _module(image_tree.root, seed=3, unlabeled=True).train_dataloader()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    for loader in loaders.values():
        next(iter(loader))
    assert torch.equal(torch.rand(3), expected)


def test_a_resumed_epoch_shuffles_as_in_an_unbroken_run():
    unbroken = RepeatingRandomSampler(range(10), seed=5)
    orders = []
    for epoch in range(3):
        unbroken.set_epoch(epoch)
        orders.append([list(unbroken), list(unbroken)])  # two passes in the epoch
    resumed = RepeatingRandomSampler(range(10), seed=5)
    resumed.set_epoch(2)
    assert [list(resumed), list(resumed)] == orders[2]
    assert orders[2][0] != orders[2][1] and orders[0] != orders[1]


def test_stream_seeds_differ_by_every_part_and_are_stable():
    assert stream_seed(0, "supervised") == stream_seed(0, "supervised") < 2**63
    assert (
        len(
            {
                stream_seed(0, "supervised"),
                stream_seed(1, "supervised"),
                stream_seed(0, "unlabeled"),
            }
        )
        == 3
    )


@pytest.mark.parametrize("draws", [1, 100])
def test_a_stream_continues_where_it_left_off(draws):
    stream, reference = RandomStream(9), torch.Generator().manual_seed(9)
    with stream:
        first = torch.rand(draws)
    torch.rand(5)  # the global generator moves on meanwhile
    with stream:
        second = torch.rand(draws)
    assert torch.equal(torch.cat([first, second]), torch.rand(2 * draws, generator=reference))


def test_ddp_processes_split_one_shuffle_between_them():
    """Lightning wraps the sampler to give each process every other index of the sampler's order;
    the processes' global generators differ (their augmentations drew differently), yet their
    shares must not overlap."""
    shares = []
    for rank in (0, 1):
        torch.manual_seed(rank)
        sampler = DistributedSamplerWrapper(
            RepeatingRandomSampler(range(10), seed=5), num_replicas=2, rank=rank
        )
        sampler.set_epoch(1)
        shares.append(list(sampler))
    assert sorted(shares[0] + shares[1]) == list(range(10))


def test_lightning_sets_the_epoch_of_a_loader_batched_pass_after_pass(image_tree):
    """A short loader with workers is re-batched pass after pass (datamodule.kept_busy); the epoch
    Lightning sets must still reach its shuffling sampler."""
    module = _module(image_tree.root, seed=3, unlabeled=True, num_workers=1)
    labeled = module.train_dataloader()["supervised"]
    assert isinstance(labeled.batch_sampler, PassByPassBatchSampler)
    _set_sampler_epoch(labeled, 4)
    expected = RepeatingRandomSampler(range(9), seed=labeled.batch_sampler.sampler.seed)
    expected.set_epoch(4)
    assert next(iter(labeled.batch_sampler)) == list(expected)[:4]


def _labeled_loader(root, num_workers: int, unlabeled_batch_size: int):
    """The seeded labeled loader (3 batches a pass) with a deterministic transform, beside an
    unlabeled loader that may be longer."""
    module = _module(root, 3, True, num_workers, TO_TENSOR, TO_TENSOR, unlabeled_batch_size)
    return module.train_dataloader()["supervised"]


def _restarted(loader, count: int) -> list:
    """`count` batches of a loader that Lightning restarts whenever it runs out."""
    batches = []
    while len(batches) < count:
        batches += itertools.islice(loader, count - len(batches))
    return batches


@pytest.mark.parametrize("unlabeled_batch_size", [2, 1], ids=["the_longest_loader", "a_shorter_loader"])
def test_a_loader_with_workers_runs_on_across_epochs_with_the_batches_of_a_restarted_one(
    image_tree, unlabeled_batch_size
):
    """Iterated once for the whole run (its workers never start over), a worker-backed loader
    still yields, epoch by epoch, what a main-process loader restarted at each epoch and after
    each pass yields."""
    unbroken = _labeled_loader(image_tree.root, num_workers=1, unlabeled_batch_size=unlabeled_batch_size)
    restarted = _labeled_loader(image_tree.root, num_workers=0, unlabeled_batch_size=unlabeled_batch_size)
    epoch_length = max(3, 4 // unlabeled_batch_size)
    assert isinstance(unbroken, UnbrokenLoader) and len(unbroken) == epoch_length
    iterations = set()
    for epoch in range(3):
        _set_sampler_epoch(unbroken, epoch)  # as Lightning does, after the epoch was drawn ahead
        _set_sampler_epoch(restarted, epoch)
        got = [images for images, _ in unbroken]
        expected = [images for images, _ in _restarted(restarted, epoch_length)]
        assert len(got) == epoch_length
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
        iterations.add(id(unbroken._batches))
    assert len(iterations) == 1  # one iteration, one set of workers, for all epochs


def test_a_loader_iterated_again_after_lightning_shut_its_workers_down(image_tree, time_limit):
    """At the end of a fit Lightning shuts persistent workers down; the loader then starts anew
    instead of waiting for batches from workers that are gone."""
    loader = _labeled_loader(image_tree.root, num_workers=1, unlabeled_batch_size=2)
    loader = UnbrokenLoader(
        loader.dataset, batch_sampler=loader.batch_sampler, num_workers=1, persistent_workers=True
    )
    with time_limit(60):
        assert len(list(loader)) == 3
        _shutdown_workers_and_reset_iterator(loader)
        assert len(list(loader)) == 3


def test_an_epoch_ended_early_leaves_the_next_epochs_their_own_batches(image_tree):
    """A run resumed mid-epoch takes only the rest of that epoch; the epochs after it still get
    the batches of their own shuffles, as with a loader restarted at every epoch."""
    unbroken = _labeled_loader(image_tree.root, num_workers=1, unlabeled_batch_size=2)
    restarted = _labeled_loader(image_tree.root, num_workers=0, unlabeled_batch_size=2)
    _set_sampler_epoch(unbroken, 4)
    next(iter(unbroken))  # the resumed epoch 4 ends after one batch
    for epoch in (5, 6):
        _set_sampler_epoch(unbroken, epoch)
        _set_sampler_epoch(restarted, epoch)
        got = [images for images, _ in unbroken]
        expected = [images for images, _ in restarted]
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_a_batch_is_augmented_alike_in_the_main_process_and_in_a_worker(image_tree):
    """Each batch carries its own augmentation seed: `num_workers` (auto: the machine's cores)
    does not change what a seeded run trains on."""
    in_main = _labeled_batches(_module(image_tree.root, seed=3, unlabeled=False, num_workers=0), global_seed=0)
    in_worker = _labeled_batches(_module(image_tree.root, seed=3, unlabeled=False, num_workers=1), global_seed=1)
    assert len(in_main) == 6
    assert all(torch.equal(a, b) for a, b in zip(in_main, in_worker, strict=True))
