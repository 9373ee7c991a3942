"""Data that is wrong in ways a user meets: damaged, deep, huge or oddly named files, broken and
silent recordings, a val set with a class training never saw, a checkpoint changed on disk.
Each case checks what the user sees (the warning, the one-line error, the result) and what is
kept on disk."""

from __future__ import annotations

import io
import os
import shutil
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from audio_samples import TINY_AUDIO_TRAINING, audio_tree, tone, write
from conftest import TINY_IMAGE_TRAINING, make_image_tree, write_image
from PIL import Image

from sesemi import compose, predictor, resume, run
from sesemi.errors import SesemiError
from sesemi.ownership import marker

GRADIENT = np.arange(256, dtype=np.uint8).reshape(16, 16)


def _noise_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb() -> bytes:
    """A 1x1 PNG whose header claims 100000 x 100000 pixels (a valid header checksum)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", 100_000, 100_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# Files no decoder can read in full, and why sesemi says so.
UNREADABLE = {
    "corrupt.png": (lambda: b"\x89PNG\r\n\x1a\n" + b"\x13" * 200, "cannot identify"),
    "truncated.png": (lambda: _noise_png()[:300], "truncated"),
    "empty.png": (lambda: b"", "cannot identify"),
    "bomb.png": (_bomb, "decompression bomb"),
}


def _write_unreadable(folder: Path) -> None:
    for name, (content, _) in UNREADABLE.items():
        (folder / name).write_bytes(content())


def _write_deep(folder: Path) -> dict[str, Path]:
    """A gray gradient as 16-bit, 32-bit integer and float files, and a red CMYK one, each with
    its 8-bit RGB twin: `{name: twin}`."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(GRADIENT).convert("RGB").save(folder / "gray8.png")
    Image.new("RGB", (16, 16), (200, 30, 30)).save(folder / "red8.png")
    Image.fromarray(GRADIENT.astype(np.uint16) * 257).save(folder / "gray16.png")
    Image.fromarray(GRADIENT.astype(np.int32) * 257).save(folder / "gray32.tif")
    Image.fromarray(GRADIENT.astype(np.float32) / 255).save(folder / "grayfloat.tif")
    Image.new("RGB", (16, 16), (200, 30, 30)).convert("CMYK").save(folder / "red_cmyk.tif")
    gray, red = folder / "gray8.png", folder / "red8.png"
    return {"gray16.png": gray, "gray32.tif": gray, "grayfloat.tif": gray, "red_cmyk.tif": red}


def _not_utf8(folder: Path, stem: bytes = b"caf\xe9") -> Path:
    """A readable image whose name holds a byte that is not UTF-8."""
    path = Path(os.fsdecode(os.fsencode(folder) + b"/" + stem + b".png"))
    write_image(path, (30, 200, 40), "vertical")
    return path


def _warnings(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def _image_config(root: Path, *overrides: str):
    tiny = [o for o in TINY_IMAGE_TRAINING if not o.startswith("run.batch_size_per_gpu")]
    return compose("image", ["method=supervised", f"run.data_root={root}", *tiny, *overrides])


# --- images in a training folder ---------------------------------------------------------------


def test_training_skips_unreadable_images_with_a_warning_and_reads_deep_ones(tmp_path, caplog):
    """Corrupt, truncated, empty and bomb images in train/ are skipped, each named in a warning;
    16-bit, 32-bit, float and CMYK images and a name that is not UTF-8 are read; training ends."""
    tree = make_image_tree(tmp_path / "images")
    _write_unreadable(tree.root / "train" / "green")
    _write_deep(tree.root / "train" / "red")
    _not_utf8(tree.root / "train" / "green")
    files = sum(1 for p in (tree.root / "train").rglob("*") if p.is_file())
    # One batch of every file per epoch, so that each is read.
    result = run(_image_config(tree.root, f"run.batch_size_per_gpu={files}"), tmp_path / "run")
    assert result.global_step == 4 and np.isfinite(result.metrics["val/top1"])
    warned = _warnings(caplog)
    for name, (_, reason) in UNREADABLE.items():
        (line,) = [line for line in warned.splitlines() if f"/{name}" in line]
        assert "skipping unreadable image" in line and reason in line
    for name in ("gray16.png", "gray32.tif", "grayfloat.tif", "red_cmyk.tif", "caf"):
        assert name not in warned
    assert all((tree.root / "train" / "green" / name).is_file() for name in UNREADABLE)  # left as they were


@pytest.mark.parametrize("cache", ["auto", "none"])
def test_on_error_raise_stops_training_with_one_line_naming_the_file(tmp_path, cache):
    """Decoded into memory (cache=auto, a small set): refused before the run starts, no run
    folder left; decoded when loaded (cache=none): the run stops and is marked failed."""
    tree = make_image_tree(tmp_path / "images")
    (tree.root / "train" / "blue" / "empty.png").write_bytes(b"")
    config = _image_config(
        tree.root,
        "run.batch_size_per_gpu=10",
        "+data.train.supervised.dataset.on_error=raise",
        f"+data.train.supervised.dataset.cache={cache}",
    )
    with pytest.raises(SesemiError) as error:
        run(config, tmp_path / "run")
    message = str(error.value)
    assert "empty.png" in message and "on_error at skip" in message and "\n" not in message
    if cache == "auto":
        assert not (tmp_path / "run").exists()
    else:
        assert marker(tmp_path / "run").state == "failed"


# --- images in inference -----------------------------------------------------------------------


def test_inference_reports_unreadable_images_and_predicts_the_rest(trained_run, tmp_path, caplog):
    """Every input gets a prediction in order; the unreadable ones carry why, with a warning,
    and the deep ones predict as their 8-bit twins do (not as white or black images)."""
    folder = tmp_path / "inputs"
    twins = _write_deep(folder)
    _write_unreadable(folder)
    odd = _not_utf8(folder, b"\xff\xfe")
    model = predictor.load(trained_run.run_dir, device="cpu")
    predictions = model.predict(folder)
    by_name = {p.input.name: p for p in predictions}
    assert len(predictions) == len(list(folder.iterdir()))
    for name, (_, reason) in UNREADABLE.items():
        assert by_name[name].label is None and reason in by_name[name].error
        assert name in _warnings(caplog)
    for name, twin in twins.items():
        assert by_name[name].error is None
        torch.testing.assert_close(by_name[name].probabilities, by_name[twin.name].probabilities)
    assert by_name[odd.name].label in model.labels
    written = predictor.write_predictions(predictions, tmp_path / "out", model.labels)
    rows = written.table.read_bytes().splitlines()
    assert len(rows) == 1 + len(predictions) - len(UNREADABLE)
    assert any(os.fsencode(odd) in row for row in rows)  # the name as its bytes
    # every input left out is in unreadable.csv with why, however many the warnings name
    left_out = pd.read_csv(written.unreadable)
    assert sorted(Path(path).name for path in left_out.path) == sorted(UNREADABLE)
    for path, error in zip(left_out.path, left_out.error, strict=True):
        assert UNREADABLE[Path(path).name][1] in error
    readable_only = [p for p in predictions if p.error is None]
    assert predictor.write_predictions(readable_only, tmp_path / "out", model.labels).unreadable is None
    assert not (tmp_path / "out" / "unreadable.csv").exists()  # it was the earlier predictions'


def test_inference_on_error_raise_names_the_file(trained_run, tmp_path):
    (tmp_path / "bomb.png").write_bytes(_bomb())
    with pytest.raises(SesemiError, match=r"cannot read .*bomb\.png \(.*decompression bomb"):
        predictor.load(trained_run.run_dir, device="cpu").predict([tmp_path / "bomb.png"], on_error="raise")


# --- audio -------------------------------------------------------------------------------------


def test_audio_training_skips_broken_recordings_and_learns_from_silent_ones(tmp_path, caplog):
    """A corrupt FLAC and a truncated WAV are skipped, each named with what is wrong; silent
    clips (a whole batch of them included) train without NaN."""
    tree = audio_tree(tmp_path / "sounds", train=2, val=1, unlabeled=0)
    low = tree.root / "train" / "low"
    flac = bytearray(write(low / "corrupt.flac", tone(300)).read_bytes())
    flac[len(flac) // 2] ^= 0xFF
    (low / "corrupt.flac").write_bytes(bytes(flac))
    wav = write(low / "truncated.wav", tone(300)).read_bytes()
    (low / "truncated.wav").write_bytes(wav[: len(wav) // 2])
    for i in range(4):
        write(tree.root / "train" / "high" / f"silent{i}.wav", np.zeros(11025, np.float32))
    write(tree.root / "val" / "high" / "silent.wav", np.zeros(11025, np.float32))
    config = compose(
        "audio",
        ["method=supervised", f"run.data_root={tree.root}", *TINY_AUDIO_TRAINING,
         "run.num_iterations=4", "trainer.val_check_interval=2", "run.batch_size_per_gpu=12"],
    )
    result = run(config, tmp_path / "run")
    warned = _warnings(caplog)
    assert "corrupt.flac (it is damaged" in warned
    assert "truncated.wav (it is truncated or damaged: its header declares 11025 frames" in warned
    assert "silent" not in warned
    assert all(np.isfinite(v) for v in result.metrics.values())
    weights = torch.load(result.last_checkpoint, weights_only=True)["state_dict"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


# --- class lists -------------------------------------------------------------------------------


def test_a_val_class_that_training_lacks_stops_before_anything_is_written(tmp_path):
    tree = make_image_tree(tmp_path / "images")
    write_image(tree.root / "val" / "purple" / "p.png", (120, 0, 120), "diagonal")
    with pytest.raises(SesemiError) as error:
        run(_image_config(tree.root, "run.batch_size_per_gpu=6"), tmp_path / "run")
    message = str(error.value)
    assert "'purple'" in message and str(tree.root / "val" / "purple") in message
    assert "not a class of the training set" in message and "\n" not in message
    assert not (tmp_path / "run").exists()


class ValLabels(pl.Callback):
    """Records the labels of the validation batches."""

    seen: set[int] = set()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        ValLabels.seen |= set(batch[1].tolist())


def val_labels() -> ValLabels:
    return ValLabels()


def test_a_val_set_without_a_training_class_is_scored_by_the_training_labels(tmp_path):
    """Val lacks blue: its green and red images keep their training indices 1 and 2 (before,
    they were 0 and 1: green scored as blue, red as green, without a word)."""
    tree = make_image_tree(tmp_path / "images")
    shutil.rmtree(tree.root / "val" / "blue")
    config = _image_config(tree.root, "run.batch_size_per_gpu=6")
    config.trainer.callbacks.append({"_target_": f"{__name__}.val_labels"})
    ValLabels.seen = set()
    result = run(config, tmp_path / "run")
    assert ValLabels.seen == {1, 2}
    assert result.classes == ["blue", "green", "red"] and np.isfinite(result.metrics["val/top1"])


# --- checkpoints changed on disk ---------------------------------------------------------------


def _flip_one_byte(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return bytes(data)


def test_a_tampered_checkpoint_is_refused_by_predictor_load(trained_run, tmp_path):
    """One flipped bit in best.ckpt: a one-line error; the file is kept as it is, and the run's
    other checkpoint still loads."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run_dir)
    tampered = _flip_one_byte(run_dir / "checkpoints" / "best.ckpt")
    with pytest.raises(SesemiError) as error:
        predictor.load(run_dir, device="cpu")
    assert "best.ckpt changed since it was saved" in str(error.value) and "\n" not in str(error.value)
    assert (run_dir / "checkpoints" / "best.ckpt").read_bytes() == tampered
    assert predictor.load(run_dir, device="cpu", checkpoint="last").labels == trained_run.tree.classes


class StopAt(pl.Callback):
    """Stops the first run of the test at step 3 as SIGTERM would (the run's config names it, so
    the resumed run has it too)."""

    stopped = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 3 and not StopAt.stopped:
            StopAt.stopped = True
            os.kill(os.getpid(), signal.SIGTERM)


def stop_at() -> StopAt:
    return StopAt()


def test_a_tampered_checkpoint_is_passed_over_by_resume_and_kept(tmp_path, caplog):
    """`sesemi resume` checks the checkpoint it resumes from: a changed one is passed over with a
    warning and left as it was (not replaced by a checkpoint of the unrestored model); the run
    resumes from its last checkpoint and finishes."""
    tree = make_image_tree(tmp_path / "images")
    config = _image_config(tree.root, "run.batch_size_per_gpu=6", "run.num_iterations=6")
    config.trainer.callbacks.append({"_target_": f"{__name__}.stop_at"})
    StopAt.stopped = False
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit):
        run(config, run_dir)
    interrupted = run_dir / "checkpoints" / "interrupted.ckpt"
    tampered = _flip_one_byte(interrupted)
    assert resume(run_dir, allow=[__name__]).global_step == 6
    assert "passing over interrupted.ckpt: checkpoint" in caplog.text and "changed since it was saved" in caplog.text
    assert interrupted.read_bytes() == tampered
    assert marker(run_dir).state == "finished"
