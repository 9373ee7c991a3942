"""The `pseudo_dataset` operation (sesemi/ops/pseudo_dataset.py): teacher -> pseudo-labels -> student."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
from audio_samples import TINY_AUDIO_TRAINING, audio_tree
from conftest import CLASS_STYLES, TINY_IMAGE_TRAINING

from sesemi.config.compose import compose
from sesemi.datasets import dataset
from sesemi.datasets.pseudo import INFO_FILE, LABELS_FILE
from sesemi.errors import SesemiError
from sesemi.learners.trained import TrainedModel
from sesemi.ops.pseudo_dataset import TRUSTWORTHY, pseudo_dataset, select
from sesemi.predictor import load
from sesemi.runner import run

UNLABELED = 4  # the `trained_run` data set's
TINY = [  # a 16 px data set and a ConvNet of 4 and 8 channels, on the CPU
    "run.gpus=0",
    "run.batch_size_per_gpu=6",
    "data.views.weak.crop_dim=16",
    "learner.hparams.model.backbone.widths=[4,8]",
    "trainer.val_check_interval=5",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]


def _compose(name: str, *overrides: str):
    return compose(name, [*TINY, *overrides])


@pytest.fixture(scope="module")
def data_root(trained_run) -> Path:
    """train/<class>/ (3 each), val/<class>/ (2 each) and unlabeled/ (4), 16x16 px."""
    return trained_run.tree.root


@pytest.fixture(scope="module")
def teacher(trained_run) -> Path:
    """The best checkpoint of the session's tiny run, trained on `data_root`."""
    return trained_run.run_dir / "checkpoints" / "best.ckpt"


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / LABELS_FILE).open(newline="") as file:
        return list(csv.DictReader(file))


def test_writes_labels_plus_pseudo_labels_and_the_student_trains(teacher, data_root, tmp_path):
    """End to end: teacher -> pseudo_dataset -> digits_noisy_student on the written folder."""
    output = tmp_path / "pseudo"
    info = pseudo_dataset(str(teacher), str(data_root), str(output), device="cpu")
    rows = _rows(output)
    assert len(rows) == 9 + UNLABELED
    counts = dict(info["counts"])
    assert sum(counts.pop("per_class").values()) == 9 + UNLABELED
    assert counts == {
        "files": 9 + UNLABELED,
        "labeled": 9,
        "pseudo_labeled": UNLABELED,
        "below_threshold": 0,
        "dropped_by_balancing": 0,
        "unreadable": 0,
    }
    assert list(rows[0]) == ["path", "label", "confidence", "p_blue", "p_green", "p_red"]
    assert [r["confidence"] for r in rows[:9]] == ["1"] * 9  # the labeled images, one-hot
    for row in rows[9:]:
        probabilities = [float(row[f"p_{c}"]) for c in sorted(CLASS_STYLES)]
        assert sum(probabilities) == pytest.approx(1, abs=1e-4)
        assert float(row["confidence"]) == pytest.approx(max(probabilities), abs=1e-5)
        assert (output / row["path"]).resolve().is_file()
    written = json.loads((output / INFO_FILE).read_text())
    assert written["classes"] == sorted(CLASS_STYLES) and written["soft_labels"] is True
    assert (
        written["settings"]["image_transform"]["crop_dim"] == 16
    )  # from the teacher's config.yaml

    student = _compose(
        "digits_noisy_student",
        f"run.data_root={data_root}",
        f"run.dir={tmp_path}/runs",
        "run.num_iterations=5",
        f"data.train.supervised.dataset.root={output}",
    )
    result = run(student)
    assert result.classes == sorted(CLASS_STYLES)
    assert 0.0 <= result.metrics["val/top1"] <= 1.0


def test_an_audio_teacher_labels_recordings_and_an_audio_student_trains_on_them(tmp_path):
    """An audio teacher: the labeled clips and its pseudo-labels of the unlabeled recordings
    (waveforms at its sample rate), and a student of the `audio` config reading them back."""
    tree = audio_tree(tmp_path / "sounds", train=2, val=1, unlabeled=3)
    tiny = [*TINY_AUDIO_TRAINING, f"run.data_root={tree.root}", "trainer.val_check_interval=2"]
    teacher = run(compose("audio", ["method=supervised", "run.num_iterations=4", f"run.dir={tmp_path}/teacher", *tiny]))

    info = pseudo_dataset(teacher.run_dir, tree.root, device="cpu", soft_labels=False)
    assert info["modality"] == "audio" and info["sample_rate"] == 16000
    assert (info["counts"]["labeled"], info["counts"]["pseudo_labeled"]) == (6, 3)
    assert [Path(row["path"]).parent.name for row in _rows(tree.root / "pseudo")[6:]] == ["unlabeled"] * 3

    data = dataset("pseudo", str(tree.root), subset="pseudo", sample_rate=8000)
    waveform, label = data[len(data) - 1]
    assert waveform.shape == (4000,) and isinstance(label, int)  # 0.5 s at the rate asked for

    student = compose(
        "audio",
        ["method=supervised", "run.num_iterations=2", f"run.dir={tmp_path}/student", *tiny,
         "data.train.supervised.dataset.name=pseudo", "data.train.supervised.dataset.subset=pseudo"],
    )
    assert run(student).classes == tree.classes


def test_the_teacher_is_checked_on_the_validation_files_it_is_sure_of(teacher, data_root, tmp_path, caplog):
    """`teacher_on_val`: how often the teacher is right about the val files it is >= 0.8 sure
    of, as its own predictions say; a warning below TRUSTWORTHY; nothing without a val folder."""
    predictions = load(teacher, device="cpu").predict(data_root / "val")
    sure = [p.label == p.input.parent.name for p in predictions if p.score >= 0.8]
    info = pseudo_dataset(teacher, data_root, tmp_path / "a", device="cpu", threshold=0.5)
    expected = sum(sure) / len(sure) if sure else None
    assert info["teacher_on_val"] == {"files": 6, "sure": len(sure), "threshold": 0.8, "sure_right": expected}
    assert json.loads((tmp_path / "a" / INFO_FILE).read_text())["teacher_on_val"] == info["teacher_on_val"]
    warned = "a student would learn many wrong pseudo-labels" in caplog.text
    assert warned == (expected is not None and expected < TRUSTWORTHY)
    assert pseudo_dataset(teacher, data_root, tmp_path / "b", device="cpu", val_subset=None)["teacher_on_val"] is None


def test_a_teacher_sure_of_no_validation_file_is_warned_about(teacher, data_root, tmp_path, caplog):
    """A teacher sure of none of the validation files (here, sure means a probability of 1)
    makes guesses: that is said, where the share it is right about has nothing to count."""
    info = pseudo_dataset(teacher, data_root, tmp_path / "a", device="cpu", threshold=1.0)
    assert info["teacher_on_val"] == {"files": 6, "sure": 0, "threshold": 1.0, "sure_right": None}
    assert "the teacher is 1 sure of none of the 6 validation files" in caplog.text


def test_an_unreadable_validation_file_is_left_out_of_the_teacher_check(teacher, data_root, tmp_path):
    """With on_error=skip a corrupt validation file counts among the files, never as sure."""
    shutil.copytree(data_root / "val", tmp_path / "val")
    (tmp_path / "val" / "blue" / "broken.png").write_bytes(b"not an image")
    shutil.copytree(data_root / "unlabeled", tmp_path / "unlabeled")
    checked = pseudo_dataset(
        teacher, tmp_path, tmp_path / "pseudo", labeled_subset=None, include_labeled=False, device="cpu"
    )["teacher_on_val"]
    expected = pseudo_dataset(teacher, data_root, tmp_path / "clean", device="cpu")["teacher_on_val"]
    assert checked == {**expected, "files": expected["files"] + 1}


@pytest.mark.slow
def test_the_command_writes_the_folder_and_refuses_to_overwrite(teacher, data_root, tmp_path):
    """`sesemi pseudo-label TEACHER DATA_ROOT settings...` writes <data_root>/pseudo; again, it
    stops in one line."""
    data_root = shutil.copytree(data_root, tmp_path / "data")  # the default output is inside it
    command = [
        str(Path(sys.executable).parent / "sesemi"),
        "pseudo-label",
        str(teacher),
        str(data_root),
        "include_labeled=false",
        "soft_labels=false",
        "device=cpu",
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"labeling: {UNLABELED}/{UNLABELED}" in done.stderr  # progress lines, in a pipe
    output = data_root / "pseudo"
    assert len(_rows(output)) == UNLABELED
    assert json.loads((output / INFO_FILE).read_text())["soft_labels"] is False

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    assert again.stderr.strip() == f"error: {output / LABELS_FILE} already exists; set overwrite=true to replace it"


def test_threshold_and_balancing_drop_pseudo_labels(teacher, data_root, tmp_path):
    """threshold=1 keeps no pseudo-label; balancing to 1 per class keeps one per predicted class."""
    none = pseudo_dataset(
        str(teacher), str(data_root), str(tmp_path / "a"), threshold=1.0, device="cpu"
    )
    assert none["counts"]["pseudo_labeled"] == 0 and none["counts"]["below_threshold"] == UNLABELED
    assert len(_rows(tmp_path / "a")) == 9

    one = pseudo_dataset(
        str(teacher),
        str(data_root),
        str(tmp_path / "b"),
        balance=True,
        per_class=1,
        include_labeled=False,
    )
    predicted = {row["label"] for row in _rows(tmp_path / "b")}
    assert one["counts"]["pseudo_labeled"] == len(predicted)
    assert one["counts"]["dropped_by_balancing"] == UNLABELED - len(predicted)


def test_the_whole_data_root_as_the_pool_leaves_out_the_labeled_and_validation_files(teacher, data_root, tmp_path):
    """`unlabeled_subset=null` (all of data_root) labels the pool only: the labeled files went in
    twice (one-hot and pseudo-labeled) and the validation files reached the student."""
    info = pseudo_dataset(str(teacher), str(data_root), str(tmp_path / "all"), unlabeled_subset=None, device="cpu")
    assert info["counts"]["pseudo_labeled"] + info["counts"]["below_threshold"] == UNLABELED
    paths = [row["path"] for row in _rows(tmp_path / "all")]
    assert len(paths) == len(set(paths)) == 9 + UNLABELED
    assert not any("/val/" in path for path in paths)


def test_a_cap_per_class_without_balancing_is_refused(teacher, data_root, tmp_path):
    """per_class caps only with balance=true: alone it was recorded and ignored."""
    with pytest.raises(SesemiError, match="per_class caps each class's pseudo-labels with balance=true"):
        pseudo_dataset(str(teacher), str(data_root), str(tmp_path / "out"), per_class=20)


def test_select_thresholds_then_keeps_the_most_confident_per_class():
    probabilities = torch.tensor(
        [[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55], [0.2, 0.8]]
    )
    assert select(probabilities).tolist() == [0, 1, 2, 3, 4, 5]
    assert select(probabilities, threshold=0.65).tolist() == [0, 2, 3, 5]
    # After the threshold: class 0 has rows 0, 2 and class 1 rows 3, 5 -> cap 2 keeps all.
    assert select(probabilities, threshold=0.65, balance=True).tolist() == [0, 2, 3, 5]
    # Without it: class 0 has 3 rows, class 1 has 3 -> per_class=1 keeps the top of each.
    assert select(probabilities, balance=True, per_class=1).tolist() == [0, 5]
    # The smallest class decides the cap: class 1 has one row above 0.75.
    assert select(probabilities, threshold=0.75, balance=True).tolist() == [0, 5]


def test_soft_and_hard_labels_reach_the_student_as_probabilities_or_indices(
    teacher, data_root, tmp_path
):
    """soft_labels=true: float vectors; false: class indices; CrossEntropyLoss takes both."""
    for soft in (True, False):
        folder = tmp_path / str(soft)
        pseudo_dataset(str(teacher), str(data_root), str(folder), soft_labels=soft, device="cpu")
        data = dataset("pseudo", str(folder), image_transform=lambda image: torch.zeros(3))
        _, label = data[len(data) - 1]
        if soft:
            assert label.dtype == torch.float32 and label.shape == (3,)
        else:
            assert isinstance(label, int)
        loader = torch.utils.data.DataLoader(data, batch_size=len(data))
        _, labels = next(iter(loader))
        loss = torch.nn.CrossEntropyLoss()(torch.zeros(len(data), 3), labels)
        assert loss.item() == pytest.approx(torch.log(torch.tensor(3.0)).item(), abs=1e-4)


@pytest.mark.parametrize("hflip_tta", [False, True])
def test_unreadable_images_are_skipped_and_predictions_stay_with_their_files(
    teacher, data_root, tmp_path, hflip_tta
):
    """A corrupt file is left out (and counted); every other row is its own image's prediction,
    averaged with that of its horizontal flip with `hflip_tta`."""
    root = tmp_path / "data"
    (root / "unlabeled").mkdir(parents=True)
    for path in sorted((data_root / "unlabeled").iterdir()):
        (root / "unlabeled" / path.name).write_bytes(path.read_bytes())
    (root / "unlabeled" / "u0a.png").write_bytes(b"not an image")  # sorts between u0 and u1
    info = pseudo_dataset(
        str(teacher),
        str(root),
        str(root / "pseudo"),
        labeled_subset=None,
        include_labeled=False,
        hflip_tta=hflip_tta,
        batch_size=2,  # the skipped file and its substitute fall in different batches
        device="cpu",
    )
    assert info["counts"]["unreadable"] == 1 and info["classes"] == sorted(CLASS_STYLES)  # the teacher's class names
    rows = _rows(root / "pseudo")
    assert [Path(r["path"]).name for r in rows] == [f"u{i}.png" for i in range(UNLABELED)]

    model = TrainedModel.from_run(teacher)
    data = dataset("pseudo", str(root / "pseudo"), image_transform=model.eval_transform())
    images = torch.stack([data[i][0] for i in range(len(data))])
    with torch.no_grad():
        expected = model(images).softmax(1)
        if hflip_tta:
            expected = (expected + model(images.flip(-1)).softmax(1)) / 2
    written = torch.tensor([[float(r[f"p_{c}"]) for c in sorted(CLASS_STYLES)] for r in rows])
    assert torch.allclose(written, expected, atol=1e-4)


def test_the_pool_streams_through_without_its_predictions_kept(teacher, data_root, tmp_path, monkeypatch):
    """Each prediction of the pool is let go once its probabilities are in the table: a pool of
    a million files costs its paths and probabilities, not a million predictions."""
    from sesemi.predictor import Predictor

    predict_each, calls = Predictor.predict_each, {}

    def watched(self, inputs, **options):
        refs, alive = [], calls.setdefault(tuple(map(str, inputs)), [])
        for prediction in predict_each(self, inputs, **options):
            alive.append(sum(ref() is not None for ref in refs))
            refs.append(weakref.ref(prediction))
            yield prediction

    monkeypatch.setattr(Predictor, "predict_each", watched)
    pseudo_dataset(str(teacher), str(data_root), str(tmp_path / "pseudo"), batch_size=2, device="cpu")
    (alive,) = [alive for inputs, alive in calls.items() if all("/unlabeled/" in path for path in inputs)]
    assert len(alive) == UNLABELED and max(alive) <= 1  # the one before, at most, while the next is made


def test_unreadable_labeled_files_are_left_out_and_counted(teacher, data_root, tmp_path):
    """include_labeled lists only the labeled files that can be read; the others are counted
    as unreadable (or, with on_error=raise, stop the run with their name)."""
    for split in ("train", "unlabeled"):
        shutil.copytree(data_root / split, tmp_path / split)
    (tmp_path / "train" / "blue" / "broken.png").write_bytes(b"not an image")
    info = pseudo_dataset(teacher, tmp_path, tmp_path / "pseudo", val_subset=None, device="cpu")
    assert "broken.png" not in {Path(row["path"]).name for row in _rows(tmp_path / "pseudo")}
    assert (info["counts"]["labeled"], info["counts"]["unreadable"], info["counts"]["files"]) == (9, 1, 9 + UNLABELED)
    with pytest.raises(SesemiError, match=r"^cannot read .*broken\.png \(.*\); remove it or set on_error=skip$"):
        pseudo_dataset(teacher, tmp_path, tmp_path / "again", val_subset=None, device="cpu", on_error="raise")


def test_labels_are_the_teachers_in_its_order_of_classes(data_root, tmp_path):
    """A teacher whose classes are not in the folders' sorted order (as `TrainingRun` trains
    them): each labeled file keeps its folder's class, and each pseudo-label is the class the
    teacher predicts, its probability under that class's column."""
    order = sorted(CLASS_STYLES, reverse=True)
    listed = "[" + ",".join(order) + "]"
    teacher = run(compose("image", [
        "method=supervised", f"run.data_root={data_root}", f"run.dir={tmp_path}/runs", *TINY_IMAGE_TRAINING,
        f"++data.train.supervised.dataset.classes={listed}", f"++data.val.dataset.classes={listed}",
    ]))
    assert teacher.classes == order
    info = pseudo_dataset(teacher.run_dir, data_root, tmp_path / "pseudo", device="cpu")
    assert info["classes"] == order
    rows = _rows(tmp_path / "pseudo")
    assert [row["label"] for row in rows[:9]] == [Path(row["path"]).parent.name for row in rows[:9]]
    predicted = load(teacher.run_dir, device="cpu").predict([tmp_path / "pseudo" / row["path"] for row in rows[9:]])
    for row, prediction in zip(rows[9:], predicted, strict=True):
        assert row["label"] == prediction.label
        assert float(row[f"p_{prediction.label}"]) == pytest.approx(prediction.score, abs=1e-5)


def test_a_data_set_of_other_classes_than_the_teachers_is_refused(teacher, data_root, tmp_path):
    """Folders named otherwise than the teacher's classes (its `blue` is `cyan` here) would get
    its labels under the wrong names: refused in one line, nothing written."""
    shutil.copytree(data_root, tmp_path / "data")
    (tmp_path / "data" / "train" / "blue").rename(tmp_path / "data" / "train" / "cyan")
    with pytest.raises(SesemiError, match=r"^the teacher's classes \(blue, green, red\) are not the class folders "
                       r"of .*train \(cyan, green, red\)"):
        pseudo_dataset(teacher, tmp_path / "data", tmp_path / "pseudo", device="cpu")
    assert not (tmp_path / "pseudo").exists()


def test_a_pool_of_unreadable_files_is_an_error_not_a_threshold_too_high(teacher, data_root, tmp_path):
    (tmp_path / "unlabeled").mkdir()
    for index in range(3):
        (tmp_path / "unlabeled" / f"u{index}.png").write_bytes(b"not an image")
    with pytest.raises(SesemiError, match=r"^none of the 3 images to label could be read, e.g. .*u0\.png \("):
        pseudo_dataset(teacher, tmp_path, tmp_path / "pseudo", labeled_subset=None, include_labeled=False, device="cpu")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: None, "neither a run folder nor a checkpoint"),
        (lambda path: path.write_bytes(b"garbage"), "cannot load"),
        (lambda path: torch.save({"state_dict": {}}, path), "not saved by a sesemi Classifier"),
    ],
)
def test_bad_checkpoints_are_one_line_errors(data_root, tmp_path, make, message):
    path = tmp_path / "teacher.ckpt"
    make(path)
    with pytest.raises(SesemiError, match=message):
        pseudo_dataset(str(path), str(data_root), str(tmp_path / "out"))


def test_missing_folders_and_existing_output_are_errors(teacher, data_root, tmp_path):
    with pytest.raises(SesemiError, match="data_root .* does not exist"):
        pseudo_dataset(str(teacher), str(tmp_path / "nowhere"), str(tmp_path / "out"))
    with pytest.raises(SesemiError, match="data folder .*missing does not exist"):
        pseudo_dataset(
            str(teacher), str(data_root), str(tmp_path / "out"), unlabeled_subset="missing"
        )
    pseudo_dataset(str(teacher), str(data_root), str(tmp_path / "out"), device="cpu")
    with pytest.raises(SesemiError, match="already exists; set overwrite=true"):
        pseudo_dataset(str(teacher), str(data_root), str(tmp_path / "out"))
    with pytest.raises(SesemiError, match="data_root .* does not exist"):  # first: overwrite would not mend it
        pseudo_dataset(str(teacher), str(tmp_path / "nowhere"), str(tmp_path / "out"))
    pseudo_dataset(
        str(teacher), str(data_root), str(tmp_path / "out"), overwrite=True, device="cpu"
    )
    assert json.loads((tmp_path / "out" / INFO_FILE).read_text())["classes"] == sorted(CLASS_STYLES)


def test_overwrite_replaces_only_a_folder_pseudo_label_made(teacher, data_root, tmp_path):
    """A folder of someone else's that holds a dataset.json is refused, overwrite or not, and
    keeps its files."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / INFO_FILE).write_text("my own")
    with pytest.raises(SesemiError, match=r"will not overwrite .*mine/dataset.json: .*(no \.sesemi marker)"):
        pseudo_dataset(str(teacher), str(data_root), str(mine), overwrite=True, device="cpu")
    assert sorted(p.name for p in mine.iterdir()) == [INFO_FILE] and (mine / INFO_FILE).read_text() == "my own"
