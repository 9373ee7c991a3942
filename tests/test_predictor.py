"""The predictor (sesemi/predictor.py) on tiny really trained models: files, folders, lists and
waveforms in, one Prediction per input out, and predictions.csv."""

from __future__ import annotations

import copy
import csv
import os
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from audio_samples import TINY_AUDIO_TRAINING, audio_tree, tone, write
from PIL import Image

from sesemi.datasets.images import read_image
from sesemi.errors import SesemiError
from sesemi.predictor import PREDICTIONS_FILE, Prediction, Predictor, load, write_predictions
from sesemi.transforms.audio import frames, load_audio

CLASSES = ["blue", "green", "red"]


@pytest.fixture(scope="module")
def predictor(trained_run) -> Predictor:
    return load(trained_run.run_dir, device="cpu")


@pytest.fixture
def val_images(trained_run) -> list[Path]:
    return sorted((trained_run.tree.root / "val").rglob("*.png"))


def expected(predictor: Predictor, paths, flip: bool = False) -> torch.Tensor:
    """The probabilities `[N, C]` of the run's network on its evaluation transform's tensors,
    computed without the predictor's reading and batching (averaged with the mirror images)."""
    transform = predictor.model.eval_transform()
    images = torch.stack([transform(read_image(path)) for path in paths])
    with torch.inference_mode():
        probabilities = predictor.model(images).softmax(dim=1)
        if flip:
            probabilities = (probabilities + predictor.model(images.flip(-1)).softmax(dim=1)) / 2
    return probabilities


def stacked(predictions: list[Prediction]) -> torch.Tensor:
    return torch.stack([p.probabilities for p in predictions])


def test_load_reads_a_run_folder_or_a_checkpoint(trained_run, predictor):
    run = trained_run.run_dir
    assert predictor.labels == CLASSES and not predictor.audio and predictor.info is None
    assert predictor.model.checkpoint == run / "checkpoints" / "best.ckpt"
    assert load(run, device="cpu", checkpoint="last").model.checkpoint.name == "last.ckpt"
    assert load(run / "checkpoints" / "last.ckpt", device="cpu").model.source == run
    with pytest.raises(SesemiError, match="neither a run folder nor a checkpoint"):
        load(run / "nothing", device="cpu")
    with pytest.raises(SesemiError, match="checkpoint must be one of best, last, not 'first'"):
        load(run, device="cpu", checkpoint="first")


def test_predicting_leaves_lightning_unimported(trained_run, val_images):
    """Lightning takes a second and a half to import, and a trained model never needs it."""
    code = (
        "import sys; from sesemi.predictor import load; "
        f"load({str(trained_run.run_dir)!r}, device='cpu').predict([{str(val_images[0])!r}]); "
        "print(sorted(m for m in ('pytorch_lightning', 'lightning_fabric') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[]"]


def test_a_folder_a_list_of_paths_and_a_text_file_predict_in_input_order(predictor, val_images, tmp_path):
    """The folder is searched recursively and sorted; a list and a .txt file keep their order."""
    folder = predictor.predict(val_images[0].parent.parent, batch_size=4)
    assert [p.input for p in folder] == val_images
    torch.testing.assert_close(stacked(folder), expected(predictor, val_images))
    for p in folder:
        assert p.label == CLASSES[int(p.probabilities.argmax())] and p.error is None and p.windows is None
        assert p.score == pytest.approx(float(p.probabilities.max()))
        assert float(p.probabilities.sum()) == pytest.approx(1, abs=1e-5)

    shuffled = [val_images[i] for i in (4, 0, 5, 2)]
    assert [p.input for p in predictor.predict(shuffled)] == shuffled
    torch.testing.assert_close(stacked(predictor.predict([str(p) for p in shuffled])), expected(predictor, shuffled))
    listing = tmp_path / "inputs.txt"
    listing.write_text("# new images\n" + "\n".join(os.path.relpath(p, tmp_path) for p in shuffled) + "\n\n")
    assert [p.input.resolve() for p in predictor.predict(listing)] == shuffled
    assert [p.input for p in predictor.predict(val_images[3])] == [val_images[3]]


def test_a_folder_is_listed_as_training_lists_one(predictor, val_images, tmp_path):
    """Symlinked subfolders are followed (data is often linked in), as by the data sets."""
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "linked").symlink_to(val_images[0].parent, target_is_directory=True)
    linked = sorted((tmp_path / "new" / "linked").glob("*.png"))
    assert linked and [p.input for p in predictor.predict(tmp_path / "new")] == linked


def test_photos_that_cannot_be_read_are_named(predictor, tmp_path, caplog):
    """A folder of a phone's HEIC photos: `no image files`, and the warning says what they are."""
    (tmp_path / "phone").mkdir()
    (tmp_path / "phone" / "IMG_0001.HEIC").write_bytes(b"")
    with pytest.raises(SesemiError, match=r"no image files under .*phone \(found 1 \.heic files, which are not image"):
        predictor.predict(tmp_path / "phone")
    assert "left out 1 .heic files under" in caplog.text


def test_inputs_that_name_no_files_are_one_line_errors(predictor, tmp_path):
    (tmp_path / "notes.md").write_text("")
    (tmp_path / "gone.txt").write_text("a.png\n")
    for inputs, message in [
        (tmp_path / "nothing", "input .*nothing does not exist"),
        (tmp_path / "notes.md", r"is not an image file, a folder, or a \.txt file listing paths"),
        (tmp_path / "gone.txt", r"1 path listed in .*gone.txt is not a file, e.g. .*a.png \(does not exist\)"),
        (tmp_path, "no image files under"),
        ([torch.zeros(100)], "waveforms are for audio models"),
        (torch.zeros(1, 3, 16, 16), "predict_batch takes a tensor"),
        ([np.zeros((16, 16, 3), np.uint8)], r"predict takes paths or PIL images \(Image.fromarray for an array\), not ndarray"),
    ]:
        with pytest.raises(SesemiError, match=message):
            predictor.predict(inputs)
    with pytest.raises(SesemiError, match="on_error must be 'skip' or 'raise'"):
        predictor.predict(tmp_path, on_error="ignore")
    with pytest.raises(SesemiError, match="num_workers must be 0 .* or more, not -1"):
        predictor.predict(tmp_path, num_workers=-1)


def test_images_in_memory_are_predicted_as_their_files(predictor, val_images):
    """PIL images (a notebook's, a web request's) go through the evaluation transform as the
    files they were read from; each is named by its position. One alone is a list of one."""
    from PIL import Image

    opened = [Image.open(path) for path in val_images]
    in_memory = predictor.predict(opened, batch_size=4)
    assert [p.input for p in in_memory] == list(range(len(val_images)))
    from_files = torch.stack([p.probabilities for p in predictor.predict(val_images)])
    assert torch.allclose(torch.stack([p.probabilities for p in in_memory]), from_files, atol=1e-6)
    (one,) = predictor.predict(Image.open(val_images[0]).convert("L"))  # any mode, as files are read
    assert one.input == 0 and one.label in predictor.labels


def test_a_sideways_photo_in_memory_is_predicted_upright_as_its_file(predictor, val_images, tmp_path):
    """An image opened from a phone's photo (stored sideways, with an EXIF tag that says how to
    turn it) is predicted as its file is: upright."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show"
    Image.open(val_images[0]).convert("RGB").resize((24, 40)).save(tmp_path / "photo.png", exif=exif)
    (from_file,) = predictor.predict([tmp_path / "photo.png"])
    (in_memory,) = predictor.predict([Image.open(tmp_path / "photo.png")])
    assert torch.allclose(in_memory.probabilities, from_file.probabilities, atol=1e-6)


def test_a_save_dir_under_a_file_says_so(tmp_path):
    """`--save-dir notes.txt/out` is refused for what it is, not as a read-only folder."""
    from sesemi.predictor import check_predictions_folder

    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(SesemiError, match=r"notes\.txt is a file, not a folder; choose another --save-dir"):
        check_predictions_folder(tmp_path / "notes.txt" / "out")


def test_a_list_saved_with_a_byte_order_mark_reads_its_first_path(predictor, val_images, tmp_path):
    """Notepad and PowerShell 5 start a UTF-8 file with an invisible mark: the first path named
    a file that exists and was reported missing."""
    listing = tmp_path / "inputs.txt"
    listing.write_text("\n".join(str(path) for path in val_images[:2]), encoding="utf-8-sig")
    assert [p.input for p in predictor.predict(listing)] == val_images[:2]


def test_tta_a_model_refuses_is_refused_before_any_input_is_read(predictor, tmp_path):
    """The refusal of test-time flips (digits-like training without them) comes first, not
    after the first batch was read (where an unreadable file's error would stand in for it)."""
    model = copy.copy(predictor)
    model.augmentation = lambda: (_ for _ in ()).throw(SesemiError("refused flips"))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not an image")
    with pytest.raises(SesemiError, match="refused flips"):
        model.predict([corrupt], tta=True, on_error="raise")


def test_unreadable_files_are_skipped_in_place_or_raise(predictor, val_images, tmp_path, monkeypatch):
    """A corrupt file's prediction carries the error, and its neighbours keep their own
    predictions; with on_error="raise" the first one stops with a line that names it."""
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not an image")
    paths = [val_images[0], corrupt, *val_images[1:3]]
    predictions = predictor.predict(paths, batch_size=2)
    assert [p.input for p in predictions] == paths
    assert predictions[1].error and predictions[1].label is None and predictions[1].probabilities is None
    torch.testing.assert_close(stacked([predictions[i] for i in (0, 2, 3)]), expected(predictor, paths[:1] + paths[2:]))
    with pytest.raises(SesemiError, match=r"^cannot read .*corrupt\.png \(.*\); remove it or set on_error=skip$"):
        predictor.predict(paths, on_error="raise")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # every 16x16 image is now a decompression bomb
    bombs = predictor.predict(paths[:1])
    assert "decompression bomb" in bombs[0].error


def test_a_fifo_among_the_inputs_is_skipped_without_reading_it(predictor, val_images, tmp_path, caplog, time_limit):
    """A named pipe `z.png` in the folder is an unreadable input (reading it would wait for a
    writer forever); given alone, it is a one-line error."""
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(val_images[0], folder / "a.png")
    os.mkfifo(folder / "z.png")
    with time_limit(30):
        predictions = predictor.predict(folder)
    assert [p.input.name for p in predictions] == ["a.png", "z.png"]
    assert predictions[0].label is not None and predictions[1].error == "not a regular file"
    assert "z.png" in caplog.text
    with pytest.raises(SesemiError, match="input .*z.png is not a regular file or a folder"):
        predictor.predict(folder / "z.png")


def test_a_prediction_prints_as_its_label_and_score(predictor, val_images):
    """Printed in a notebook, a prediction is its input, label and score, not its tensors."""
    (prediction,) = predictor.predict(val_images[:1], embeddings=True)
    text = repr(prediction)
    assert text.startswith("Prediction(input=") and f"label={prediction.label!r}" in text and "tensor" not in text


def test_many_unreadable_inputs_are_named_five_at_a_time(predictor, val_images, tmp_path, caplog):
    """A folder with many broken files: five are named, the rest counted; each prediction still
    carries its error."""
    broken = []
    for index in range(8):
        broken.append(tmp_path / f"broken{index}.png")
        broken[-1].write_bytes(b"not an image")
    predictions = predictor.predict([*broken, val_images[0]])
    assert sum(p.error is not None for p in predictions) == 8 and predictions[-1].label is not None
    lines = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(lines) == 6 and all(line.startswith("skipping unreadable input ") for line in lines[:5])
    assert lines[5] == "skipped 3 more unreadable inputs (8 in all)"


def test_predict_batch_agrees_with_predict_with_and_without_tta(predictor, val_images):
    """Prepared tensors give the probabilities the files do; TTA averages each image with its
    mirror image, which differs from the image alone."""
    transform = predictor.model.eval_transform()
    images = torch.stack([transform(read_image(path)) for path in val_images])
    for tta in (False, True):
        batch = predictor.predict_batch(images, tta=tta)
        files = predictor.predict(val_images, tta=tta, embeddings=True)
        torch.testing.assert_close(batch.probabilities, stacked(files))
        torch.testing.assert_close(batch.embeddings, torch.stack([p.embedding for p in files]))
        assert batch.labels == [p.label for p in files] and batch.scores.shape == (len(files),)
        torch.testing.assert_close(batch.probabilities, expected(predictor, val_images, flip=tta))
    assert not torch.allclose(stacked(predictor.predict(val_images, tta=True)), expected(predictor, val_images))
    assert predictor.predict_batch(images).embeddings.shape == (len(val_images), 8)  # ConvNet widths [4, 8]
    with pytest.raises(SesemiError, match=r"predict_batch takes images \[N, C, H, W\], not a tensor of shape \(3, 16, 16\)"):
        predictor.predict_batch(images[0])
    # a grey image as one channel: the network takes the transform's three
    with pytest.raises(SesemiError, match=r"takes images of 3 channels, .* not a tensor of shape \(\d+, 1, 16, 16\)"):
        predictor.predict_batch(images[:, :1])
    # uint8 pixels (0-255) are not what the network was trained on: refused, not predicted
    with pytest.raises(SesemiError, match=r"takes float images \[N, C, H, W\] prepared as in validation, not a torch.uint8 tensor"):
        predictor.predict_batch((images * 255).to(torch.uint8))
    with pytest.raises(SesemiError, match="not a ndarray"):
        predictor.predict_batch(images.numpy())


def test_embeddings_stay_row_for_row_with_the_table(predictor, val_images, tmp_path):
    """Across batches and with an unreadable file in between, each row of embeddings.npy is the
    backbone's features of the file on the same row of predictions.csv."""
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"")
    paths = [*val_images[:3], corrupt, *val_images[3:]]
    done = []
    predictions = predictor.predict(paths, batch_size=4, embeddings=True, progress=lambda *args: done.append(args))
    assert done[-1] == (len(paths), len(paths)) and len(done) == len(paths)
    table, embeddings, *_ = write_predictions(predictions, tmp_path / "out", predictor.labels)
    with open(table) as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["path", "label", "score", *CLASSES]
    assert [row["path"] for row in rows] == [str(p) for p in val_images]
    transform = predictor.model.eval_transform()
    with torch.inference_mode():
        features = predictor.model.backbone(torch.stack([transform(read_image(p)) for p in val_images]))
    np.testing.assert_allclose(np.load(embeddings), features.numpy(), rtol=1e-5, atol=1e-6)
    for row, prediction in zip(rows, [p for p in predictions if p.error is None], strict=True):
        assert row["label"] == prediction.label
        assert float(row["score"]) == pytest.approx(prediction.score, rel=1e-5)

    write_predictions(predictor.predict(val_images[:1]), tmp_path / "out", predictor.labels)
    assert not (tmp_path / "out" / "embeddings.npy").exists()  # it belonged to the table replaced


def test_predictions_stream_from_the_model_through_the_table(predictor, val_images, tmp_path):
    """`predict_each` gives each prediction, in input order, once it and those before it are
    made (not after the last input), and `write_predictions` keeps none of them: a table of more
    files than memory holds streams through. The files hold what `predict`'s list gives."""
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"")
    paths = [val_images[0], corrupt, *val_images[1:]]
    done: list[int] = []
    seen, alive = [], []
    for prediction in predictor.predict_each(paths, batch_size=2, progress=lambda count, _: done.append(count)):
        seen.append((prediction.input, done[-1]))
    assert [name for name, _ in seen] == paths
    assert seen[0][1] < len(paths) and [count for _, count in seen][-1] == len(paths)

    def watched():
        for prediction in predictor.predict_each(paths, batch_size=2, embeddings=True):
            alive.append(sum(ref() is not None for ref in refs))
            refs.append(weakref.ref(prediction))
            yield prediction

    refs: list[weakref.ref] = []
    written = write_predictions(watched(), tmp_path / "streamed", predictor.labels)
    assert max(alive) <= 1  # the one before, at most, while the next is made
    assert (written.read, written.failed, written.out_of_class) == (len(val_images), 1, None)
    listed = write_predictions(predictor.predict(paths, batch_size=2, embeddings=True), tmp_path / "listed", predictor.labels)
    for streamed, whole in zip(written[:3], listed[:3], strict=True):
        assert streamed.read_bytes() == whole.read_bytes()
    np.testing.assert_array_equal(np.load(written.embeddings), np.load(listed.embeddings))


def test_classes_named_like_the_tables_columns_get_columns_of_their_own(predictor, val_images, tmp_path):
    """Classes `label` and `path` beside the columns of those names: `p_label`, `p_path`, so that
    a reader (pandas) finds the predicted label under `label`; a class `p_label` keeps its name."""
    table = write_predictions(predictor.predict(val_images[:2]), tmp_path / "out", ["label", "path", "p_label"]).table
    with open(table) as file:
        header, *rows = list(csv.reader(file))
    assert header == ["path", "label", "score", "p_p_label", "p_path", "p_label"]
    assert [row[0] for row in rows] == [str(p) for p in val_images[:2]]


def test_predictions_csv_keeps_file_names_that_are_not_utf8(predictor, val_images, tmp_path):
    """A Latin-1 file name is written as its bytes: reading the table back as the file system
    does (surrogateescape) gives a path that opens the file."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.png")
    shutil.copy(val_images[0], folder / name)
    table = write_predictions(predictor.predict(folder), tmp_path / "out", predictor.labels).table
    assert b"caf\xe9.png" in table.read_bytes()
    with open(table, encoding="utf-8", errors="surrogateescape", newline="") as file:
        (row,) = csv.DictReader(file)
    assert Path(row["path"]).is_file() and Path(row["path"]).name == name


@pytest.mark.parametrize("stop", ["midway", "at the embeddings"])
def test_a_failed_write_leaves_the_previous_predictions(predictor, val_images, tmp_path, monkeypatch, stop):
    """Stopped while the predictions stream in (Ctrl-C after the first), or while the last file
    is written: the earlier table stands, and nothing of the new files is left."""
    out = tmp_path / "out"
    table = write_predictions(predictor.predict(val_images[:2]), out, predictor.labels).table
    before = table.read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    def interrupted():
        yield from predictor.predict_each(val_images[:1], embeddings=True)
        killed()

    if stop == "at the embeddings":
        monkeypatch.setattr(shutil, "copyfileobj", killed)
    predictions = interrupted() if stop == "midway" else predictor.predict_each(val_images, embeddings=True)
    with pytest.raises(KeyboardInterrupt):
        write_predictions(predictions, out, predictor.labels)
    assert table.read_bytes() == before and sorted(p.name for p in out.iterdir()) == [".sesemi", PREDICTIONS_FILE]


# --- audio -------------------------------------------------------------------------------------

# A tiny audio_supervised run (TINY_AUDIO_TRAINING), 4 steps.
TINY_AUDIO = [*TINY_AUDIO_TRAINING, "run.num_iterations=4", "trainer.val_check_interval=2"]


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Predictor:
    """The predictor of a 4-step audio_supervised run on generated tones and chirps (0.5 s clips)."""
    from sesemi import compose, run

    tree = audio_tree(tmp_path_factory.mktemp("data") / "sounds", train=2, val=1, unlabeled=0)
    config = compose("audio", ["method=supervised", f"run.data_root={tree.root}", *TINY_AUDIO])
    run_dir = tmp_path_factory.mktemp("run")
    run(config, run_dir)
    return load(run_dir, device="cpu")


def test_long_recordings_are_averaged_over_sliding_windows(audio, tmp_path):
    """A 2 s recording in 0.5 s windows 0.25 s apart is 7 windows whose probabilities are
    averaged; a short clip is one window; a waveform predicts as its file does."""
    assert audio.audio and audio.sample_rate == 16000 and audio.clip_seconds == 0.5
    long = write(tmp_path / "long.flac", np.concatenate([tone(300, 1.0), tone(2500, 1.0)]))
    short = write(tmp_path / "short.wav", tone(300, 0.3))
    long_prediction, short_prediction = audio.predict([long, short], batch_size=3, hop_seconds=0.25, embeddings=True)
    assert long_prediction.windows.shape == (7, 3) and short_prediction.windows.shape == (1, 3)
    torch.testing.assert_close(long_prediction.probabilities, long_prediction.windows.mean(dim=0))
    assert long_prediction.window_embeddings.shape == (7, 8)
    torch.testing.assert_close(long_prediction.embedding, long_prediction.window_embeddings.mean(dim=0))

    waveform = torch.from_numpy(load_audio(long, 16000))
    (from_tensor,) = audio.predict([waveform], hop_seconds=0.25)
    assert from_tensor.input == 0
    torch.testing.assert_close(from_tensor.windows, long_prediction.windows)
    batch = audio.predict_batch(frames(waveform, 8000, 4000))
    torch.testing.assert_close(batch.probabilities, long_prediction.windows)


def test_per_window_rows_have_their_start_and_end(audio, tmp_path):
    """A folder's recordings (any audio format, nested) are found; other files are not."""
    path = write(tmp_path / "in" / "a.wav", tone(300, 2.0))
    nested = write(tmp_path / "in" / "nested" / "b.mp3", tone(2500, 0.5))
    (tmp_path / "in" / "notes.txt").write_text("ignored")
    assert [p.input for p in audio.predict(tmp_path / "in")] == [path, nested]
    predictions = audio.predict(path, embeddings=True)
    assert audio.windowing() == (0.5, 0.25)
    table, embeddings, *_ = write_predictions(predictions, tmp_path / "out", audio.labels, per_window=True)
    with open(table) as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0])[:5] == ["path", "start", "end", "label", "score"] and len(rows) == 7
    assert [(r["start"], r["end"]) for r in rows[:2]] == [("0.000", "0.500"), ("0.250", "0.750")]
    assert np.load(embeddings).shape == (7, 8)


def test_per_window_rows_are_timed_as_the_windows_were_cut(audio, tmp_path):
    """Each prediction carries how its recording was cut, so the table's times are those of the
    windows predicted, whatever window and hop `predict` was given."""
    path = write(tmp_path / "a.wav", tone(300, 2.0))
    prediction = audio.predict(path, window_seconds=1.0, hop_seconds=0.5)[0]
    assert prediction.window_spans() == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)]
    table, *_ = write_predictions([prediction], tmp_path / "out", audio.labels, per_window=True)
    with open(table) as file:
        assert [(r["start"], r["end"]) for r in csv.DictReader(file)][1] == ("0.500", "1.500")


def test_sesemi_inference_writes_a_row_per_window_timed_as_cut(audio, tmp_path):
    """The command line's per_window rows come from the same predictions: a 1 s window every
    0.5 s over a 2 s recording is three rows."""
    from typer.testing import CliRunner

    from sesemi.cli.app import app

    path = write(tmp_path / "in" / "a.wav", tone(300, 2.0))
    settings = ["window_seconds=1", "hop_seconds=0.5", "per_window=true"]
    done = CliRunner().invoke(app, ["inference", str(audio.model.source), str(path), *settings, "--save-dir", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    with open(tmp_path / "out" / "predictions.csv") as file:
        assert [(r["start"], r["end"]) for r in csv.DictReader(file)] == [("0.000", "1.000"), ("0.500", "1.500"), ("1.000", "2.000")]


def test_the_last_window_ends_with_the_recording(audio, tmp_path):
    """Per-window rows end where the recording does, not where the last window's padding does;
    a recording shorter than a window is one row over all of it."""
    long, short = write(tmp_path / "long.wav", tone(300, 2.1)), write(tmp_path / "short.wav", tone(300, 0.3))
    predictions = audio.predict([long, short])
    assert [p.seconds for p in predictions] == [pytest.approx(2.1), pytest.approx(0.3)]
    table, *_ = write_predictions(predictions, tmp_path / "out", audio.labels, per_window=True)
    with open(table) as file:
        rows = [(r["path"], r["start"], r["end"]) for r in csv.DictReader(file)]
    assert rows[-3:] == [(str(long), "1.500", "2.000"), (str(long), "1.750", "2.100"), (str(short), "0.000", "0.300")]


def test_window_times_are_those_of_the_samples_cut(audio):
    """Windows are cut in whole samples: a hop of 0.0001 s at 16 kHz is 2 samples, 0.000125 s, and
    per-window times count that (they drifted: the rows of a 10 s recording ended at 8.44 s)."""
    assert audio.sample_rate == 16000
    assert audio.windowing(0.5, 0.0001) == (0.5, 0.000125)
    assert audio.windowing(0.50003, 0.25) == (0.5, 0.25)


@pytest.mark.parametrize(("window", "hop"), [(0.0, None), (0.5, -1.0), (float("inf"), None), (0.5, float("nan"))])
def test_windows_must_be_positive_numbers(audio, tmp_path, window, hop):
    """Zero, negative, infinite and NaN window lengths and hops are one line, not torch's error."""
    path = write(tmp_path / "a.wav", tone(300, 1.0))
    with pytest.raises(SesemiError, match="^window_seconds and hop_seconds must be positive numbers, not "):
        audio.predict(path, window_seconds=window, hop_seconds=hop)


def test_audio_tta_averages_each_window_over_time_shifted_copies(audio, tmp_path):
    """Each window is also predicted delayed and advanced by the run's max_shift (zero-filled,
    as the training's TimeShift does), and the three are averaged before the windows are."""
    assert audio.augmentation().max_shift == 0.1  # audio_base's weak transform
    path = write(tmp_path / "long.wav", np.concatenate([tone(300, 0.6), tone(2500, 0.6)]))
    windows = frames(torch.from_numpy(load_audio(path, 16000)), 8000, 4000)
    n = 800  # 0.1 of a window
    delayed = torch.nn.functional.pad(windows, (n, 0))[:, :-n]
    advanced = torch.nn.functional.pad(windows, (0, n))[:, n:]
    with torch.inference_mode():
        copies = [audio.model(x).softmax(dim=1) for x in (windows, delayed, advanced)]
    (prediction,) = audio.predict([path], batch_size=3, tta=True)
    torch.testing.assert_close(prediction.windows, torch.stack(copies).mean(dim=0))
    assert not torch.allclose(prediction.windows, copies[0])


def test_an_unreadable_recording_carries_its_error(audio, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    good = write(tmp_path / "good.wav", tone(300, 0.5))
    predictions = audio.predict([empty, good])
    assert predictions[0].error and predictions[1].error is None and predictions[1].label in audio.labels
    with pytest.raises(SesemiError, match=r"cannot read .*empty\.wav"):
        audio.predict([empty, good], on_error="raise")


def test_predict_batch_refuses_integer_waveforms_predict_scales(audio):
    """int16 samples given to predict_batch as they are would be heard 32767 times too loud."""
    pcm = torch.from_numpy((tone(300, 0.5, rate=16000) * 2**15).astype(np.int16))
    with pytest.raises(SesemiError, match=r"takes float waveforms \[N, T\] .* not a torch.int16 tensor; predict\(\) .* scales integer"):
        audio.predict_batch(pcm[None])


def test_waveforms_are_read_as_files_are(audio, tmp_path):
    """An int16 waveform predicts as its 16-bit WAV file does (scaled by 2**15, not used as
    thousands); an empty one and a NaN one are refused in the words of such files."""
    import soundfile

    pcm = (tone(300, 0.5, rate=16000) * 2**15).astype(np.int16)
    path = tmp_path / "pcm.wav"
    soundfile.write(path, pcm, 16000, subtype="PCM_16")
    eight_bit = (pcm // 256 + 128).astype(np.uint8)  # as 8-bit WAV holds samples
    soundfile.write(tmp_path / "pcm8.wav", (eight_bit.astype(np.float32) - 128) / 128, 16000, subtype="PCM_U8")
    from_file, from_8_bit_file = audio.predict([path, tmp_path / "pcm8.wav"])
    from_int16, from_uint8 = audio.predict([torch.from_numpy(pcm), torch.from_numpy(eight_bit)])
    torch.testing.assert_close(from_int16.windows, from_file.windows)
    torch.testing.assert_close(from_uint8.windows, from_8_bit_file.windows)

    empty, nan, good = audio.predict([torch.zeros(0), torch.full((8000,), float("nan")), torch.zeros(8000)])
    assert (empty.error, empty.label) == ("it holds no samples", None)
    assert (nan.error, nan.label) == ("it holds NaN or infinite samples", None)
    assert good.error is None and good.label in audio.labels
    with pytest.raises(SesemiError, match=r"^cannot read waveform 1 \(it holds NaN or infinite samples\); remove it or set on_error=skip$"):
        audio.predict([torch.zeros(8000), torch.full((8000,), float("inf"))], on_error="raise")
    with pytest.raises(SesemiError, match=r"^cannot read waveform 0 \(it holds bool values, not samples\)"):
        audio.predict([torch.ones(8000, dtype=torch.bool)], on_error="raise")
    (unscaled,) = audio.predict([torch.from_numpy(pcm).float()])  # int16 values as floats, as a file's
    assert unscaled.error.startswith("its samples reach 16384, far outside [-1, 1]")
