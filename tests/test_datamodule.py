"""The data module (sesemi/datamodule.py): data config -> dict of training loaders, val, test."""

from __future__ import annotations

import random
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.seed import pl_worker_init_function
from omegaconf import OmegaConf
from PIL import Image
from torch.utils.data import DataLoader

from sesemi.datamodule import (
    SESEMIDataModule,
    dataset_root,
    init_worker,
    loader_batch_size,
    pins_memory,
    worker_count,
)
from sesemi.datasets.image_folder import image_folder
from sesemi.datasets.registry import DATASETS
from sesemi.errors import SesemiError

TO_TENSOR = {"_target_": "sesemi.transforms.to_normalized_tensor", "mean": [0.5] * 3, "std": [0.5] * 3}


def _data(root: str | None = None, **overrides):
    """A data config like base.yaml's, over the generated image tree."""
    data = {
        "train": {
            "supervised": {
                "dataset": {"name": "image_folder", "root": root, "subset": "train", "image_transform": TO_TENSOR},
                "batch_size": 3,
                "shuffle": True,
                "drop_last": True,
            },
            "rotation_prediction": {
                "dataset": {"name": "image_file", "root": root, "subset": ["train", "unlabeled"], "image_transform": TO_TENSOR},
                "batch_size": 2,
                "collate_fn": {"_target_": "sesemi.collation.RotationTransformer"},
            },
        },
        "val": {"dataset": {"name": "image_folder", "root": root, "subset": "val", "image_transform": TO_TENSOR}},
    }
    data.update(overrides)
    return OmegaConf.create(data)


def _module(data, data_root, batch_size=4) -> SESEMIDataModule:
    module = SESEMIDataModule(data, str(data_root), batch_size)
    module.prepare_data()
    module.setup("fit")
    return module


def test_training_batch_is_a_dict_of_loader_batches(image_tree):
    """Each named loader yields its own batch; the rotation loader is collated into rotations."""
    module = _module(_data(), image_tree.root)
    loaders = module.train_dataloader()
    assert set(loaders) == {"supervised", "rotation_prediction"}
    images, labels = next(iter(loaders["supervised"]))
    assert images.shape == (3, 3, 16, 16) and labels.dtype == torch.int64
    assert set(labels.tolist()) <= {0, 1, 2}
    rotated, rotation_labels = next(iter(loaders["rotation_prediction"]))
    assert rotated.shape == (8, 3, 16, 16)
    assert rotation_labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_val_loader_uses_the_default_batch_size(image_tree):
    """A loader without batch_size takes run.batch_size_per_gpu; val is not shuffled."""
    module = _module(_data(), image_tree.root, batch_size=4)
    loader = module.val_dataloader()
    assert loader.batch_size == 4
    labels = torch.cat([batch[1] for batch in loader]).tolist()
    assert labels == sorted(labels) == [0, 0, 1, 1, 2, 2]


def test_iterations_per_epoch_is_the_longest_loader(image_tree):
    """supervised: 9 images // 3 (drop_last) = 3; rotation: ceil(13 / 2) = 7 -> 7."""
    module = _module(_data(), image_tree.root)
    loaders = module.train_dataloader()
    assert len(loaders["supervised"]) == len(loaders["rotation_prediction"]) == 7  # an epoch each
    assert module.iterations_per_epoch() == 7


def test_classes_come_from_the_supervised_set(image_tree):
    """`classes` (behind ${sesemi:num_classes}) are the supervised data set's class names."""
    module = _module(_data(), image_tree.root)
    assert module.classes == image_tree.classes


def test_the_log_says_how_the_classes_share_the_labeled_set(image_tree, caplog):
    """One line on the labeled set when a run fits: even, or skewed with the fewest named, so a
    class of one example is seen before training, not after."""
    caplog.set_level("INFO")
    _module(_data(), image_tree.root)
    assert "9 labeled images: 3 of each of 3 classes" in caplog.text
    for extra in ("train0.png", "train1.png"):
        (image_tree.root / "train" / "red" / extra).unlink()
    caplog.clear()
    _module(_data(), image_tree.root)
    assert "7 labeled images of 3 classes: 1 to 3 of each (fewest: red 1, blue 3, green 3)" in caplog.text


def test_validation_files_reached_from_a_training_set_through_a_link_are_warned_about(image_tree, caplog):
    """`unlabeled/more -> ../val` puts the validation images in the pool, `train/red/more ->
    ../../val/red` two of them among the labels: the model trains on what it is scored on. Said
    once per set (the pool also reads train/); validating on the labels, as configured, is not."""
    _module(_data(), image_tree.root)
    assert "validation file" not in caplog.text
    (image_tree.root / "unlabeled" / "more").symlink_to("../val", target_is_directory=True)
    _module(_data(), image_tree.root)
    assert "the unlabeled pool holds 6 validation files, linked or copied (" in caplog.text
    assert "unlabeled/more/" in caplog.text and "validation scores flatter it" in caplog.text
    (image_tree.root / "unlabeled" / "more").unlink()
    (image_tree.root / "train" / "red" / "more").symlink_to("../../val/red", target_is_directory=True)
    caplog.clear()
    _module(_data(), image_tree.root)
    assert caplog.text.count("validation file") == 1 and "the labeled set holds 2 validation files" in caplog.text
    (image_tree.root / "train" / "red" / "more").unlink()
    caplog.clear()
    on_labels = _data()
    on_labels.val.dataset.subset = "train"
    _module(on_labels, image_tree.root)
    assert "validation file" not in caplog.text


def test_copies_of_validation_files_in_a_training_set_are_warned_about(image_tree, caplog):
    """A validation image copied into the pool, another renamed into a class folder: the same
    bytes under other names are found too. An image of the same size and other bytes is not."""
    val_image = image_tree.root / "val" / "red" / "val0.png"
    shutil.copy(image_tree.root / "val" / "blue" / "val1.png", image_tree.root / "unlabeled" / "copy.png")
    shutil.copy(val_image, image_tree.root / "train" / "green" / "renamed.png")
    _module(_data(), image_tree.root)
    pool = f"the unlabeled pool holds 2 validation files, linked or copied ({image_tree.root}/"
    assert pool in caplog.text and "the labeled set holds 1 validation file, linked or copied" in caplog.text
    assert f"renamed.png is {val_image})" in caplog.text
    altered = bytearray((image_tree.root / "train" / "green" / "renamed.png").read_bytes())
    altered[-1] ^= 1  # the last byte, outside the sample compared first
    (image_tree.root / "train" / "green" / "renamed.png").write_bytes(altered)
    (image_tree.root / "unlabeled" / "copy.png").unlink()
    caplog.clear()
    _module(_data(), image_tree.root)
    assert "validation file" not in caplog.text


def test_a_labeled_set_of_one_class_is_one_line(image_tree):
    """One class folder (the others not copied yet) cannot train a classifier: said in one
    line, not as the metric library's complaint about `num_classes`."""
    import shutil

    for name in ("green", "red"):
        shutil.rmtree(image_tree.root / "train" / name)
        shutil.rmtree(image_tree.root / "val" / name)
    with pytest.raises(SesemiError, match=r"^the labeled set has one class \(blue\): a classifier needs at least two"):
        _module(_data(), image_tree.root)


def test_validation_read_on_demand_leaves_an_unreadable_file_out(image_tree):
    """A large val set is read as it is loaded (`cache: none`): an unreadable file there is left
    out of its batch, not replaced by its neighbour (counted twice, under its label), and a batch
    of none is None (the step is skipped)."""
    for path in sorted((image_tree.root / "val" / "red").iterdir()):
        path.write_bytes(b"")  # every red validation image unreadable
    data = _data()
    data.val.dataset.cache = "none"
    data.val.batch_size = 1
    batches = list(_module(data, image_tree.root).val_dataloader())
    labels = [int(label) for batch in batches if batch is not None for label in batch[1]]
    red = image_tree.classes.index("red")
    assert len(labels) == 2 * image_tree.val_per_class and red not in labels
    assert sum(batch is None for batch in batches) == image_tree.val_per_class


def test_on_several_processes_validation_reads_every_image_once(image_tree):
    """Each of four processes takes its share of the 6 validation images, and together they read
    each once: none repeats one to even the shares (Lightning's sampler would, scoring it twice)."""
    from types import SimpleNamespace

    module = _module(_data(), image_tree.root)
    seen = []
    for rank in range(4):
        module.trainer = SimpleNamespace(world_size=4, global_rank=rank, num_devices=4, accelerator=None)
        seen += list(module.val_dataloader().sampler)
    assert sorted(seen) == list(range(len(module.val_dataset))) and len(module.val_dataset) == 6


def test_relative_roots_are_under_data_root_and_absolute_ones_are_kept(tmp_path):
    """`root` is taken under run.data_root when relative, as is when absolute, None = data_root."""
    assert dataset_root({"root": None}, "/data/x") == Path("/data/x")
    assert dataset_root({"root": "sub"}, "/data/x") == Path("/data/x/sub")
    assert dataset_root({"root": str(tmp_path)}, "/data/x") == tmp_path


def test_a_tilde_is_the_home_folder(tmp_path, monkeypatch):
    """`run.data_root='~/data'` and `run.dir='~/runs'` are under the home folder, not a folder
    named `~` in the working one."""
    from sesemi.config.resolvers import run_folder

    monkeypatch.setenv("HOME", str(tmp_path))
    assert dataset_root({"root": None}, "~/data") == tmp_path / "data"
    assert dataset_root({"root": "~/pool"}, "/data/x") == tmp_path / "pool"
    assert run_folder({"dir": "~/runs", "id": "digits"}, "t") == str(tmp_path / "runs" / "digits" / "t")


def test_relative_root_reads_the_right_folder(image_tree):
    """A loader with root "images" under data_root = the tree's parent reads the tree."""
    module = _module(_data(root="images"), image_tree.root.parent)
    assert len(module.train_datasets["supervised"]) == 9


def test_missing_batch_size_is_a_sesemi_error(image_tree):
    """No batch_size and no run.batch_size_per_gpu: a SesemiError naming the loader."""
    module = _module(_data(), image_tree.root, batch_size=None)
    with pytest.raises(SesemiError, match="'val'"):
        module.val_dataloader()


def test_loader_without_batches_is_a_sesemi_error(image_tree):
    """drop_last with a batch larger than an unshuffled data set would train on nothing: refused."""
    data = _data()
    data.train.rotation_prediction.batch_size = 50
    data.train.rotation_prediction.drop_last = True
    module = _module(data, image_tree.root)
    with pytest.raises(SesemiError, match="rotation_prediction"):
        module.train_dataloader()


def test_few_labeled_images_still_fill_a_batch(image_tree):
    """A shuffled training loader with fewer images than batch_size repeats them to one full batch."""
    data = _data()
    data.train.supervised.batch_size = 20
    module = _module(data, image_tree.root)
    loader = module.train_dataloader()["supervised"]
    batches = list(loader)[:1]  # the epoch is the rotation loader's; the first pass is one batch
    assert batches[0][0].shape[0] == 20
    counts = torch.bincount(batches[0][1], minlength=3)
    assert counts.min() >= 6  # every image appears at least twice (9 images, 20 draws)


def test_sampler_is_built_on_the_dataset(image_tree):
    """An instantiable sampler receives the data set."""
    data = _data()
    data.val.sampler = {"_target_": "torch.utils.data.SequentialSampler"}
    module = _module(data, image_tree.root)
    loader = module.val_dataloader()
    assert isinstance(loader.sampler, torch.utils.data.SequentialSampler)
    assert loader.sampler.data_source is module.val_dataset


def test_test_loader_is_required_for_testing(image_tree):
    """Asking for test batches without data.test is a SesemiError."""
    module = _module(_data(), image_tree.root)
    with pytest.raises(SesemiError, match="data.test"):
        module.test_dataloader()


def test_no_training_loaders_is_a_sesemi_error(image_tree):
    """data.train empty: training is refused with a clear message."""
    module = _module(_data(train=None), image_tree.root)
    with pytest.raises(SesemiError, match="data.train"):
        module.train_dataloader()
    assert module.iterations_per_epoch() is None
    assert module.classes == image_tree.classes  # falls back to the val set's classes


def test_dataset_without_name_is_a_sesemi_error(image_tree):
    """A dataset config must name its builder."""
    data = _data()
    del data.val.dataset["name"]
    with pytest.raises(SesemiError, match=r"data.val.dataset names no data set \(`name`, e.g. image_folder\)$"):
        _module(data, image_tree.root)


def test_a_key_set_under_the_unlabeled_loader_says_where_it_goes(image_tree):
    """`+data.train.fixmatch.dataset.cache=none` (what Hydra's own hint says to write) replaces
    the loader's `${data.unlabeled}` with a node of that one key: the error names the key to set."""
    from sesemi import compose

    config = compose("digits", [f"run.data_root={image_tree.root}", "+data.train.fixmatch.dataset.cache=none"])
    with pytest.raises(SesemiError, match=r"data.train.fixmatch.dataset names no data set .*set data.unlabeled.cache$"):
        _module(config.data, image_tree.root)


def test_missing_data_is_reported_at_setup(tmp_path):
    """A wrong data_root fails in setup with the missing folder's name."""
    with pytest.raises(SesemiError, match="does not exist"):
        _module(_data(), tmp_path / "nothing")


def test_a_missing_validation_folder_says_how_to_train_without_one(image_tree):
    """A data set of train/ (and unlabeled/) only is a common start: the error says both ways on."""
    shutil.rmtree(image_tree.root / "val")
    with pytest.raises(SesemiError, match=r"no validation data: .*val does not exist; .*data.val.dataset.subset=train"):
        _module(_data(), image_tree.root)


def test_a_validation_folder_named_valid_is_pointed_to(image_tree):
    """Roboflow and Kaggle export train/, valid/ and test/: the error names valid/ and the key."""
    (image_tree.root / "val").rename(image_tree.root / "valid")
    with pytest.raises(SesemiError) as error:
        _module(_data(), image_tree.root)
    assert str(error.value) == (
        f"no validation data: {image_tree.root / 'val'} does not exist, but valid/ does: "
        "set data.val.dataset.subset=valid, or rename it val/"
    )


@pytest.mark.parametrize("inside", [True, False], ids=["in_the_working_directory", "elsewhere"])
def test_prepare_data_builds_builtin_data_sets_in_the_working_directory(tmp_path, monkeypatch, inside):
    """prepare_data builds a missing built-in data set (digits) named by a loader's root where the
    built-in configs put it, under the working directory; a missing one elsewhere (a drive not
    mounted) is left for the data set to report, not replaced by the demo data."""
    from sesemi.datasets import builtin

    built = []
    monkeypatch.setitem(builtin.BUILDERS, "digits", lambda target: (target.mkdir(exist_ok=True), built.append(target)))
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path if inside else tmp_path / "project")
    SESEMIDataModule(_data(root="digits"), str(tmp_path / "data")).prepare_data()
    assert len(built) == inside and (tmp_path / "data" / "digits").is_dir() == inside


def test_a_short_loader_with_workers_batches_pass_after_pass(image_tree):
    """With workers or not, the labeled loader yields as many batches as the longest loader, each
    pass of its 9 images ending with its own smaller batch."""
    data = _data()
    data.train.supervised.update(batch_size=4, drop_last=False, num_workers=1)
    data.train.rotation_prediction.update(batch_size=1, num_workers=1)
    module = _module(data, image_tree.root)
    loaders = module.train_dataloader()
    longest = len(loaders["rotation_prediction"])
    assert len(loaders["supervised"]) == longest > 3
    sizes = [len(labels) for _, labels in loaders["supervised"]]
    assert sizes == ([4, 4, 1] * longest)[:longest]
    data.train.supervised.num_workers = 0
    sizes = [len(labels) for _, labels in _module(data, image_tree.root).train_dataloader()["supervised"]]
    assert sizes == ([4, 4, 1] * longest)[:longest]


class WorkerProbe(torch.utils.data.Dataset):
    """Items that tell how the process that made them was set up."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        return torch.multiprocessing.get_sharing_strategy(), random.random(), float(np.random.rand())


def test_loader_workers_share_by_file_name_and_are_seeded_as_lightning_seeds_them(image_tree):
    """Workers hand batches over by shared-memory file name; a seeded run's workers draw what
    Lightning's own worker seeding gives; the main process keeps torch's default."""

    def probe(worker_init_fn):
        generator = torch.Generator().manual_seed(0)
        loader = DataLoader(WorkerProbe(), batch_size=2, num_workers=1, worker_init_fn=worker_init_fn, generator=generator)
        return list(loader)

    ours = probe(partial(init_worker, rank=1, seed=True))
    lightnings = probe(partial(pl_worker_init_function, rank=1))
    assert [list(strategies) for strategies, _, _ in ours] == [["file_system"] * 2] * 2
    for (_, *mine), (_, *theirs) in zip(ours, lightnings, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(mine, theirs, strict=True))
    assert torch.multiprocessing.get_sharing_strategy() == "file_descriptor"
    data = _data()
    data.train.supervised.num_workers = 1
    loaders = _module(data, image_tree.root).train_dataloader()
    assert loaders["supervised"].worker_init_fn.func is init_worker
    assert loaders["rotation_prediction"].worker_init_fn is None  # loads in the main process


def test_workers_of_a_multi_process_run_start_from_a_fork_server(image_tree):
    """A process of a multi-process run has collective threads that a fork could catch holding a
    lock; its loaders' workers start from a fork server instead, and still load the first process's
    share: every second item."""
    data = _data()
    data.train.supervised.update(num_workers=1, shuffle=False)
    module = SESEMIDataModule(data, str(image_tree.root), 4)
    module.trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)  # not launched
    module.setup("fit")
    loader = module.train_dataloader()["supervised"]
    assert loader.multiprocessing_context.get_start_method() == "forkserver"
    assert _module(data, image_tree.root).train_dataloader()["supervised"].multiprocessing_context is None
    share = list(module.train_datasets["supervised"].targets)[0::2]  # in order: shuffle=False
    batched = len(share) - len(share) % 3  # whole batches of 3 (drop_last)
    assert [label for _, labels in loader for label in labels.tolist()][:batched] == share[:batched]


@pytest.mark.parametrize(
    ("loader", "expected"),
    [({"batch_size": 5}, 5), ({"mu": 2.5}, 10), ({}, 4), ({"batch_size": None, "mu": None}, 4)],
)
def test_batch_size_is_the_loaders_else_mu_times_the_labeled_batch_else_the_labeled_batch(loader, expected):
    """batch_size wins; mu x run.batch_size_per_gpu (rounded) follows the labeled batch."""
    assert loader_batch_size("fixmatch", loader, 4) == expected


@pytest.mark.parametrize(
    ("loader", "labeled", "message"),
    [
        ({"batch_size": 8, "mu": 2}, 4, "'fixmatch' sets both batch_size"),
        ({"mu": 2}, None, "'fixmatch' sets mu .* run.batch_size_per_gpu is unset"),
        ({"mu": 0.1}, 4, "'fixmatch'.* no item per batch"),
    ],
)
def test_contradictory_or_empty_batch_sizes_are_one_line_errors(loader, labeled, message):
    with pytest.raises(SesemiError, match=message) as error:
        loader_batch_size("fixmatch", loader, labeled)
    assert "\n" not in str(error.value)


def test_an_unlabeled_loader_reads_mu_times_the_labeled_batch(image_tree):
    """The loaders' batches follow run.batch_size_per_gpu: 2 labeled, 1.5 x 2 = 3 unlabeled."""
    data = _data()
    data.train.rotation_prediction.update(batch_size=None, mu=1.5)
    loaders = _module(data, image_tree.root, batch_size=2).train_dataloader()
    rotated, _ = next(iter(loaders["rotation_prediction"]))
    assert rotated.shape[0] == 4 * 3
    rotated, _ = next(iter(_module(data, image_tree.root, batch_size=4).train_dataloader()["rotation_prediction"]))
    assert rotated.shape[0] == 4 * 6


CROP = {"_target_": "sesemi.transforms.weak_transforms", "crop_dim": 8, "mean": [0.5] * 3, "std": [0.5] * 3}


def _views_data(views: list[str], **dataset):
    """`_data()` with views of two sizes and an unlabeled loader that reads `views`."""
    data = _data(views={"weak": CROP, "full": TO_TENSOR})
    data.train.unlabeled = {
        "dataset": {"name": "image_file", "subset": ["train", "unlabeled"], **dataset},
        "batch_size": 2,
        "views": views,
    }
    return data


def test_a_loader_with_one_view_gets_that_transform(image_tree):
    module = _module(_views_data(["weak"]), image_tree.root)
    images, _ = next(iter(module.train_dataloader()["unlabeled"]))
    assert images.shape == (2, 3, 8, 8)


def test_a_loader_with_several_views_gets_a_tuple_of_them_per_item(image_tree):
    """views [weak, full, weak]: each item's views, in that order (MultiView)."""
    module = _module(_views_data(["weak", "full", "weak"]), image_tree.root)
    (weak, full, again), _ = next(iter(module.train_dataloader()["unlabeled"]))
    assert weak.shape == again.shape == (2, 3, 8, 8) and full.shape == (2, 3, 16, 16)


def test_an_unknown_view_names_the_loader_and_the_views_there_are(image_tree):
    with pytest.raises(SesemiError, match="loader 'unlabeled' reads view 'strong'.*it has: full, weak") as error:
        _module(_views_data(["weak", "strong"]), image_tree.root)
    assert "\n" not in str(error.value)


def test_views_and_an_image_transform_on_one_loader_are_refused(image_tree):
    with pytest.raises(SesemiError, match="loader 'unlabeled' sets both views and dataset.image_transform.*full, weak"):
        _module(_views_data(["weak"], image_transform=TO_TENSOR), image_tree.root)


def test_a_transform_without_target_is_refused(image_tree):
    """What `+...image_transform.crop_dim=8` leaves of an interpolated view: only that key."""
    data = _data()
    data.train.supervised.dataset.image_transform = {"crop_dim": 8}
    with pytest.raises(SesemiError, match="'supervised': dataset.image_transform has no _target_.*data.views"):
        _module(data, image_tree.root)


def _remove(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def test_val_and_test_are_numbered_by_the_training_classes(image_tree):
    """A val set without one of the training classes keeps the indices the model predicts: its
    green images are labeled 1 (green in training), not 0 (green's place among its own folders)."""
    _remove(image_tree.root / "val" / "blue")
    data = _data(test=_data().val)
    fitted = _module(data, image_tree.root)
    tested = SESEMIDataModule(data, str(image_tree.root), 4)
    tested.setup("test")
    for split in (fitted.val_dataset, tested.test_dataset):
        assert split.classes == ["blue", "green", "red"]
        assert {path.split("/")[-2]: label for path, label in split.samples} == {"green": 1, "red": 2}
    assert fitted.classes == tested.classes == ["blue", "green", "red"]


def test_a_val_class_training_lacks_is_a_one_line_error(image_tree):
    """An extra val class names the class and its folder (it used to end in an IndexError)."""
    (image_tree.root / "val" / "purple").mkdir()
    (image_tree.root / "val" / "blue" / "val0.png").rename(image_tree.root / "val" / "purple" / "p.png")
    with pytest.raises(SesemiError) as error:
        _module(_data(), image_tree.root)
    message = str(error.value)
    assert "'purple'" in message and str(image_tree.root / "val" / "purple") in message and "\n" not in message


def test_without_a_supervised_set_val_numbers_its_own_folders(image_tree):
    """Evaluation configs without a training set read val's classes from its folders, as before."""
    _remove(image_tree.root / "val" / "blue")
    data = _data()
    del data.train["supervised"]
    module = _module(data, image_tree.root)
    assert module.val_dataset.classes == ["green", "red"] and module.classes == ["green", "red"]


def test_a_val_set_with_classes_of_its_own_is_refused(image_tree, monkeypatch):
    """A data set whose builder cannot take the training classes must have the same ones."""
    _remove(image_tree.root / "val" / "blue")

    def own_classes(root, subset=None, image_transform=None):
        return image_folder(root, subset, image_transform)

    monkeypatch.setitem(DATASETS._entries, "own_classes_folder", own_classes)
    data = _data()
    data.val.dataset.name = "own_classes_folder"
    with pytest.raises(SesemiError, match=r"val data set's classes \(green, red\) are not the training set's"):
        _module(data, image_tree.root)


@pytest.mark.parametrize(("cpus", "devices", "expected"), [(1, 1, 0), (2, 1, 1), (8, 1, 7), (64, 1, 8), (8, 4, 1), (8, 8, 0)])
def test_num_workers_auto_follows_the_cores_of_each_device(monkeypatch, cpus, devices, expected):
    """One worker per core but one, per device process; none without a core to spare."""
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cpus)))
    assert worker_count("supervised", "auto", devices) == expected
    assert worker_count("supervised", 3, devices) == 3


@pytest.mark.parametrize("value", [-1, "many", True, 1.5])
def test_a_wrong_num_workers_names_the_loader_and_the_choices(value):
    with pytest.raises(SesemiError, match=r"^loader 'supervised': num_workers must be auto or a number"):
        worker_count("supervised", value)


def test_pin_memory_auto_pins_only_for_gpus():
    assert pins_memory("supervised", "auto", on_gpu=True) and not pins_memory("supervised", "auto", on_gpu=False)
    assert pins_memory("supervised", True, on_gpu=False)
    with pytest.raises(SesemiError, match=r"^loader 'supervised': pin_memory must be auto, true or false"):
        pins_memory("supervised", "yes", on_gpu=False)


def test_a_digits_run_warns_about_neither_workers_nor_pinned_memory(digits_root, tmp_path, monkeypatch, recwarn, caplog):
    """On a CPU-only machine, even one with cores to spare, loaders raise no num_workers or
    pin_memory warning."""
    from sesemi import compose, run

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    config = compose(
        "digits",
        [
            f"run.data_root={digits_root}",
            "method=supervised",
            "run.num_iterations=2",
            "run.gpus=0",
            "learner.hparams.model.backbone.widths=[4,8]",
            "+trainer.limit_val_batches=1",
            "+trainer.enable_progress_bar=false",
            "+trainer.enable_model_summary=false",
        ],
    )
    run(config, tmp_path / "run")
    said = [str(w.message) for w in recwarn] + [r.getMessage() for r in caplog.records]
    assert not [line for line in said if "num_workers" in line or "pin_memory" in line]


def _photos(root: Path, side: int) -> None:
    for split in ("train", "val"):
        for index, name in enumerate(["cat", "dog"]):
            (root / split / name).mkdir(parents=True)
            Image.new("RGB", (side * 4 // 3, side), (index * 200, 50, 50)).save(root / split / name / "a.jpg")


@pytest.mark.parametrize(("side", "warned"), [(300, True), (96, False)])
def test_photos_given_to_the_32_px_image_config_are_warned_about(tmp_path, caplog, side, warned):
    """The `image` config trains on 32 px views: photos given to it unchanged train as
    thumbnails, and the run says to set the views' size; small images are not warned about, and
    the check leaves the random state as it was (a seeded run trains as before)."""
    from sesemi import compose

    _photos(tmp_path, side)
    config = compose("image", [f"run.data_root={tmp_path}", "method=supervised"])
    pl.seed_everything(0)
    expected = (torch.rand(1), random.random(), np.random.rand())
    pl.seed_everything(0)
    _module(config.data, tmp_path)
    assert (torch.rand(1), random.random(), np.random.rand()) == expected
    message = "the labeled images are about 300 px on their short side and the views train on 32 px"
    assert (message in caplog.text) == warned
    assert ("data.views.weak.crop_dim=96" in caplog.text) == warned
    caplog.clear()
    _module(compose("image", [f"run.data_root={tmp_path}", "method=supervised", "data.views.weak.crop_dim=96"]).data, tmp_path)
    assert "views train on" not in caplog.text


def test_contents_are_compared_whole_after_their_samples(tmp_path):
    """Files of one size whose middles match are compared whole: a recording that differs only
    near its end is not a copy; a byte-for-byte copy is."""
    from sesemi.datasets.overlap import ValidationFiles

    original = np.random.default_rng(0).bytes(20_000)
    (tmp_path / "original").write_bytes(original)
    (tmp_path / "copy").write_bytes(original)
    (tmp_path / "other").write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    validation = ValidationFiles([str(tmp_path / "original")])
    copy, other = validation.stat([str(tmp_path / "copy"), str(tmp_path / "other")])
    assert validation.original(copy).path == str(tmp_path / "original")
    assert validation.original(other) is None
