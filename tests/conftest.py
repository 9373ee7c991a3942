"""Shared fixtures: tiny generated image folders, a tiny trained run, the real `digits` data set,
tiny hparams."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# The models here are tiny: several threads only contend (4x slower on a busy 2-core machine).
# Set before torch is imported so that subprocesses (the CLI tests, spawn workers) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import copy
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)

# No test reads or writes the user's model cache or trust file, subprocesses included: a model
# an earlier run of the suite cached under the same uid failed the next run's published example.
_SANDBOX = tempfile.mkdtemp(prefix="sesemi-tests-")
atexit.register(shutil.rmtree, _SANDBOX, True)
os.environ["SESEMI_CACHE_ROOT"] = os.path.join(_SANDBOX, "cache")
os.environ["SESEMI_CONFIG_HOME"] = os.path.join(_SANDBOX, "config")

# Each class has its own colour AND its own stripe direction, so the classes are easy to tell apart.
CLASS_STYLES = {
    "blue": ((30, 40, 220), "horizontal"),
    "green": ((30, 200, 40), "vertical"),
    "red": ((220, 30, 30), "diagonal"),
}


def write_image(path: Path, color: tuple[int, int, int], stripes: str, size: int = 16, shade: int = 0) -> None:
    """Writes a `size`x`size` RGB PNG: `color` with darker stripes in the given direction."""
    rows, cols = np.mgrid[0:size, 0:size]
    mask = {"horizontal": rows % 4 < 2, "vertical": cols % 4 < 2, "diagonal": (rows + cols) % 4 < 2}[stripes]
    pixels = np.empty((size, size, 3), np.uint8)
    pixels[:] = np.clip(np.array(color) - shade, 0, 255)
    pixels[mask] = pixels[mask] // 3
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


class ImageTree(NamedTuple):
    """A generated data set in the standard layout (see the `image_tree` fixture)."""

    root: Path
    classes: list[str]
    train_per_class: int
    val_per_class: int
    unlabeled: int


def make_image_tree(root: Path) -> ImageTree:
    """`root` with train/<class>/*.png (3 per class), val/<class>/*.png (2 per class) and
    unlabeled/*.png (4), 16x16 px; classes blue, green, red. No two files are the same image,
    as in a data set split without leaks."""
    for split, count, offset in (("train", 3, 0), ("val", 2, 3)):
        for name, (color, stripes) in CLASS_STYLES.items():
            for i in range(count):
                write_image(root / split / name / f"{split}{i}.png", color, stripes, shade=10 * i + offset)
    styles = list(CLASS_STYLES.values())
    for i in range(4):
        color, stripes = styles[i % len(styles)]
        write_image(root / "unlabeled" / f"u{i}.png", color, stripes, shade=5 * i)
    return ImageTree(root, sorted(CLASS_STYLES), 3, 2, 4)


@pytest.fixture
def image_tree(tmp_path: Path) -> ImageTree:
    """A generated data set in `tmp_path/images` (see `make_image_tree`)."""
    return make_image_tree(tmp_path / "images")


# `supervised` (with its EMA callback) on 16 px images with a 4-8 channel ConvNet, on the CPU.
TINY_IMAGE_TRAINING = [
    "run.num_iterations=4",
    "run.batch_size_per_gpu=6",
    "run.gpus=0",
    "learner.hparams.model.backbone.widths=[4,8]",
    "data.views.weak.crop_dim=16",
    "data.train.supervised.num_workers=0",
    "data.train.supervised.pin_memory=false",
    "trainer.val_check_interval=2",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "+trainer.log_every_n_steps=1",
]


# Two steps of a 4-8 channel ConvNet on 16 px images in batches of 4, on the CPU, validating at
# the end, without progress output: what a test that only needs a run to train adds.
TWO_TINY_STEPS = [
    "run.num_iterations=2",
    "run.gpus=0",
    "run.batch_size_per_gpu=4",
    "data.views.weak.crop_dim=16",
    "learner.hparams.model.backbone.widths=[4,8]",
    "trainer.val_check_interval=2",
    "+trainer.log_every_n_steps=1",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]


class TrainedRun(NamedTuple):
    """A run folder and the data it was trained on (see the `trained_run` fixture)."""

    run_dir: Path
    tree: ImageTree


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """A tiny model really trained (4 steps of `supervised`, with EMA) on a `make_image_tree`
    data set, once per session: its run folder holds config.yaml, results.json and
    checkpoints/best.ckpt and last.ckpt. Shared: tests copy what they change. Seeded: unseeded,
    one run in ten or so validates better at its last step than at its first, and its best.ckpt
    is then its last (the tests of the best weights need them apart)."""
    from sesemi import compose, run

    base = tmp_path_factory.mktemp("trained")
    tree = make_image_tree(base / "images")
    config = compose("image", ["method=supervised", f"run.data_root={tree.root}", "run.seed=0", *TINY_IMAGE_TRAINING])
    run(config, base / "run")
    return TrainedRun(base / "run", tree)


def to_twelve_bit(folder: Path) -> None:
    """Every PNG under `folder` rewritten as a 12-bit camera stores it: its gray level v of
    0..255 as round(v / 255 * 4095) in a 16-bit file."""
    for path in folder.rglob("*.png"):
        levels = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
        Image.fromarray(np.round(levels / 255 * 4095).astype(np.uint16)).save(path)


@pytest.fixture(scope="session")
def twelve_bit_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """`trained_run`'s tiny model trained on its images as 12-bit data in 16-bit files, with
    `data.bit_depth=12`."""
    from sesemi import compose, run

    base = tmp_path_factory.mktemp("twelve_bit")
    tree = make_image_tree(base / "images")
    to_twelve_bit(tree.root)
    overrides = ["method=supervised", f"run.data_root={tree.root}", "data.bit_depth=12", "run.seed=0", *TINY_IMAGE_TRAINING]
    run(compose("image", overrides), base / "run")
    return TrainedRun(base / "run", tree)


@pytest.fixture(scope="session")
def digits_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real built-in `digits` data set, built once per test session."""
    from sesemi.datasets.builtin import prepare_builtin

    root = tmp_path_factory.mktemp("builtin") / "digits"
    prepare_builtin(root)
    return root


@pytest.fixture
def restore_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Restores the global `${sesemi:...}` values after a test that sets them."""
    from sesemi.config import resolvers

    resolvers.register_resolvers()
    monkeypatch.setattr(resolvers, "_attributes", resolvers._attributes)


@pytest.fixture
def compose_config(restore_attributes: None) -> Iterator[Callable[..., Any]]:
    """`compose_config(name, *overrides)` composes a built-in config (`sesemi.compose`)."""
    from sesemi import compose

    yield lambda name, *overrides: compose(name, list(overrides))


ROTATION_HEAD = {
    "head": {
        "_target_": "sesemi.models.heads.loss.RotationPredictionLossHead",
        "input_data": "rotation_prediction",
        "input_backbone": "backbone",
    },
    "reduction": "mean",
    "scale_factor": 1.0,
}


@pytest.fixture
def make_hparams() -> Callable[..., dict[str, Any]]:
    """Builds `learner.hparams` for a tiny Classifier (ConvNet widths [4, 8]) as a plain dict."""

    def make(
        num_classes: int = 3,
        supervised: bool = True,
        rotation: bool = True,
        widths: tuple[int, ...] = (4, 8),
        lr: float = 0.1,
        **backbone: Any,
    ) -> dict[str, Any]:
        model: dict[str, Any] = {
            "backbone": {"_target_": "sesemi.ConvNet", "widths": list(widths), **backbone},
            "supervised_loss": None,
            "regularization_loss_heads": None,
        }
        if supervised:
            model["supervised_loss"] = {
                "callable": {"_target_": "torch.nn.CrossEntropyLoss"},
                "reduction": "mean",
                "scale_factor": 1.0,
            }
        if rotation:
            model["regularization_loss_heads"] = {"rotation_prediction": copy.deepcopy(ROTATION_HEAD)}
        return {
            "num_classes": num_classes,
            "model": model,
            "optimizer": {"_target_": "torch.optim.SGD", "lr": lr, "momentum": 0.9},
        }

    return make


class TookTooLong(Exception):
    """A block ran past its time limit (not an OSError, which the code under test may catch)."""


@contextmanager
def fail_after(seconds: float) -> Iterator[None]:
    """Fails the test (instead of hanging) if the block takes longer than `seconds`, and every
    second after (blocked reading a FIFO, then another)."""

    def expire(*_: object) -> None:
        raise TookTooLong(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def time_limit() -> Callable[[float], Any]:
    """`with time_limit(10): ...` fails the test if the block runs longer than 10 s."""
    return fail_after
