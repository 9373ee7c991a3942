"""`data.bit_depth`: images of fewer bits than their 16-bit files hold (a 12-bit camera's) read on
their own scale, alike in training, inference and export, and a run that would read them on the
16-bit scale says so."""

from __future__ import annotations

import json
import logging
import shutil
import struct
import zlib

import numpy as np
import pytest
from conftest import TINY_IMAGE_TRAINING, make_image_tree, to_twelve_bit
from PIL import Image

from sesemi import compose
from sesemi.datamodule import SESEMIDataModule
from sesemi.datasets.image_folder import image_folder
from sesemi.datasets.images import ImageReadError, read_image, to_rgb
from sesemi.errors import SesemiError
from sesemi.export import export
from sesemi.predictor import load

GRADIENT = np.arange(256, dtype=np.uint8).reshape(16, 16)
TWELVE_BIT = np.round(GRADIENT / 255 * 4095)  # the gradient as a 12-bit camera stores it


def _gray(levels: np.ndarray) -> np.ndarray:
    return np.repeat(levels.astype(np.uint8)[..., None], 3, axis=2)


@pytest.mark.parametrize(
    ("image", "extension"),
    [
        (Image.fromarray(TWELVE_BIT.astype(np.uint16)), "png"),  # opens as I;16
        (Image.fromarray(TWELVE_BIT.astype(np.int32)), "tif"),  # opens as I
    ],
)
def test_twelve_bit_data_reads_on_its_own_scale(tmp_path, image, extension):
    """With bit_depth=12 the file is the 8-bit gradient again; on the 16-bit scale it is a dark
    one of 17 levels."""
    path = tmp_path / f"camera.{extension}"
    image.save(path)
    np.testing.assert_array_equal(np.asarray(read_image(path, bit_depth=12)), _gray(GRADIENT))
    assert len(np.unique(np.asarray(read_image(path)))) == 17


def test_a_value_beyond_the_bit_depth_is_refused():
    image = Image.fromarray(np.full((4, 4), 4096, np.uint16))
    with pytest.raises(ImageReadError, match=r"up to 4096, beyond the 12 bits of data.bit_depth=12 \(at most 4095\)"):
        to_rgb(image, 12)
    assert np.asarray(to_rgb(image, 13)).max() == 128


def test_a_data_set_of_twelve_bit_files_warns_until_bit_depth_is_set(tmp_path, caplog):
    """The warning names the setting and the levels lost; it is silent with the setting, on 8-bit
    files, and on a data set that mixes them (not one camera's)."""
    tree = make_image_tree(tmp_path / "images")
    image_folder(str(tree.root), "train").warn_if_dark()
    assert not caplog.records
    shutil.copytree(tree.root, tmp_path / "mixed")
    to_twelve_bit(tree.root)
    image_folder(str(tree.root), "train", bit_depth=12).warn_if_dark()
    assert not caplog.records
    to_twelve_bit(tmp_path / "mixed" / "train" / "red")
    image_folder(str(tmp_path / "mixed"), "train").warn_if_dark()
    assert not caplog.records
    for path in (tree.root / "train").rglob("*.png"):  # as big-endian TIFFs, which open as I;16B
        values = np.asarray(Image.open(path))
        Image.frombytes("I;16B", values.shape[::-1], values.astype(">u2").tobytes()).save(path.with_suffix(".tif"))
        path.unlink()
    assert {Image.open(path).mode for path in (tree.root / "train").rglob("*.tif")} == {"I;16B"}
    image_folder(str(tree.root), "train").warn_if_dark()
    (record,) = caplog.records
    high = max(np.asarray(Image.open(path)).max() for path in (tree.root / "train").rglob("*.tif"))
    assert 2048 <= high < 4096 and record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"the labeled images are 16-bit files whose values reach {high} at most (of 65535): read on that scale "
        f"they are dark, with {round(high / 257) + 1} gray levels; if they hold 12-bit data, set data.bit_depth=12 "
        "(docs/data.md)"
    )


def _colour_png_of_16_bits(path, values: np.ndarray) -> None:
    """`values` `[H, W, 3]` as a PNG of 16 bits a channel (which Pillow reads, but cannot write)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = values.shape[:2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)  # filter 0 before each row
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # 16 bits, colour
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_colour_pngs_of_twelve_bit_data_warn_to_be_scaled(tmp_path, caplog):
    """Pillow reads a colour PNG of 16 bits a channel at 8: 12-bit data reads as 0..15, which
    data.bit_depth cannot mend; the run says so, and not of the same files at full scale."""
    tree = make_image_tree(tmp_path / "images")
    colours = {path: np.asarray(Image.open(path).convert("RGB")) for path in (tree.root / "train").rglob("*.png")}
    for path, levels in colours.items():
        _colour_png_of_16_bits(path, np.round(levels / 255 * 4095))
    assert Image.open(path).mode == "RGB" and np.asarray(Image.open(path)).max() <= 15
    image_folder(str(tree.root), "train").warn_if_dark()
    (record,) = caplog.records
    assert "colour PNGs of 16 bits a channel" in record.getMessage()
    assert "scale the values to the full 16 bits, or save the files at 8" in record.getMessage()
    caplog.clear()
    for path, levels in colours.items():
        _colour_png_of_16_bits(path, levels * 257.0)  # the full 16 bits
    image_folder(str(tree.root), "train").warn_if_dark()
    assert not caplog.records


def test_every_image_data_set_of_a_run_reads_by_data_bit_depth(tmp_path):
    """The labeled set, the unlabeled pool and validation all take `data.bit_depth`."""
    tree = make_image_tree(tmp_path / "images")
    config = compose("image", [f"run.data_root={tree.root}", "data.bit_depth=12", *TINY_IMAGE_TRAINING])
    module = SESEMIDataModule(config.data, str(tree.root), 4)
    module.setup("fit")
    datasets = [*module.train_datasets.values(), module.val_dataset]
    assert len(datasets) == 3 and all(data.bit_depth == 12 for data in datasets)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.bit_depth=7"], "data.bit_depth must be between 8 and 31, not 7"),
        (["+data.train.supervised.dataset.bit_depth=12"], "set data.bit_depth instead"),
        (["data.bit_depth=12", "data.train.supervised.dataset.name=audio_folder"], "takes no bit depth"),
    ],
)
def test_a_misplaced_bit_depth_is_refused_in_one_line(tmp_path, overrides, message):
    tree = make_image_tree(tmp_path / "images")
    with pytest.raises(SesemiError, match=message) as error:
        config = compose("image", [f"run.data_root={tree.root}", *TINY_IMAGE_TRAINING, *overrides])
        SESEMIDataModule(config.data, str(tree.root), 4).setup("fit")
    assert "\n" not in str(error.value)


def test_inference_reads_as_the_run_trained(twelve_bit_run, tmp_path):
    """A 12-bit file, the same image in memory and its 8-bit twin predict alike; a file beyond
    12 bits is unreadable in those words."""
    predictor = load(twelve_bit_run.run_dir, device="cpu")
    assert predictor.bit_depth == 12
    twelve = sorted((twelve_bit_run.tree.root / "val").rglob("*.png"))[0]
    levels = np.asarray(Image.open(twelve), dtype=np.float64)
    Image.fromarray(np.round(levels / 4095 * 255).astype(np.uint8)).save(tmp_path / "eight.png")
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(tmp_path / "sixteen.png")
    file, memory, eight, sixteen = predictor.predict([twelve, Image.open(twelve), tmp_path / "eight.png", tmp_path / "sixteen.png"])
    np.testing.assert_allclose(file.probabilities, eight.probabilities, rtol=0, atol=1e-6)
    np.testing.assert_allclose(memory.probabilities, eight.probabilities, rtol=0, atol=1e-6)
    assert "beyond the 12 bits of data.bit_depth=12" in sixteen.error


def test_the_export_says_how_to_read_twelve_bit_files(twelve_bit_run, tmp_path, monkeypatch):
    """The description gives the bit depth, and docs/export.md's recipe, run as written, gives
    sesemi's probabilities on 12-bit files with it."""
    pytest.importorskip("onnxruntime")
    from test_export import run_export_recipe

    run_dir = shutil.copytree(twelve_bit_run.run_dir, tmp_path / "run", symlinks=True)
    export(run_dir, "onnx", tmp_path / "model.onnx")
    prepared = json.loads((tmp_path / "model.onnx.json").read_text())["preprocessing"]
    assert prepared["bit_depth"] == 12 and "round(value / 4095 * 255)" in prepared["wide_images"]
    paths = [str(path) for path in sorted((twelve_bit_run.tree.root / "val").rglob("*.png"))]
    probabilities = run_export_recipe(paths, tmp_path, monkeypatch)["probabilities"]
    expected = np.stack([p.probabilities for p in load(run_dir, device="cpu").predict(paths)])
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=3e-7)
