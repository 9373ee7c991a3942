"""`TrainingRun` (sesemi/api.py): training on DataFrames, loading in another process, evaluating."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audio_samples import TINY_AUDIO_TRAINING, audio_tree, chirp, tone, write

import sesemi
from sesemi.errors import SesemiError
from sesemi.ownership import MARKER, mark, marker

# FixMatch (the default method) with a tiny network, 4 steps and batches of 4: seconds on a CPU.
TINY = [
    "run.num_iterations=4",
    "run.batch_size_per_gpu=4",
    "run.mu=1",
    "data.train.supervised.num_workers=0",
    "learner.hparams.model.backbone.widths=[4,8]",
    "trainer.val_check_interval=2",
    "run.gpus=0",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]

# `audio method=fixmatch`, tiny (TINY_AUDIO_TRAINING), 4 steps.
TINY_AUDIO = [
    *TINY_AUDIO_TRAINING,
    "run.num_iterations=4",
    "run.mu=1",
    "trainer.val_check_interval=2",
    "run.gpus=0",
]

LOAD_PREDICT_EVALUATE = """
import json, sys
import pandas as pd
import sesemi
run = sesemi.training_run(load=sys.argv[1])
frame = pd.read_csv(sys.argv[2])
predictions = [
    {"label": p.label, "total": float(p.probabilities.sum())}
    for p in run.predict(frame["path"].tolist(), batch_size=4)
]
print(json.dumps({"repr": repr(run), "predictions": predictions, "metrics": run.evaluate(frame)}))
"""


def frame(root, split: str, pattern: str = "*/*.png") -> pd.DataFrame:
    """The labeled files of a split of the standard layout as a path/label DataFrame."""
    paths = sorted((root / split).glob(pattern))
    return pd.DataFrame({"path": [str(p) for p in paths], "label": [p.parent.name for p in paths]})


@pytest.fixture
def trained(image_tree, tmp_path, monkeypatch):
    """A TrainingRun trained on DataFrames, with a folder of unlabeled images and an eval set,
    by the default method (FlexMatch, as the `image` config's)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    run = sesemi.training_run(
        task="image", name="colors", label_names=image_tree.classes, dir=tmp_path / "runs"
    )
    results = run.train(
        frame(image_tree.root, "train"),
        unlabeled=image_tree.root / "unlabeled",
        eval=frame(image_tree.root, "val"),
        overrides=TINY,
    )
    return run, results


def test_a_run_nested_in_the_folder_by_the_command_line_is_not_the_training_runs(trained):
    """`sesemi.run` of a config whose `run.id` is the TrainingRun's name writes its runs into
    `<dir>/<name>/<method>/<time>`: those trained other data, so predict never uses them."""
    run, results = trained
    shutil.copytree(results.run_dir, run.folder / "freematch" / "9999-12-31_23-59-59-999999")
    assert run.run_dir == results.run_dir


def test_train_writes_the_standard_layout_and_a_run(trained, image_tree):
    run, results = trained
    data = run.folder / "data"
    assert sorted(p.name for p in (data / "train").iterdir()) == image_tree.classes
    linked = sorted((data / "train" / "red").iterdir())
    assert len(linked) == image_tree.train_per_class and all(p.is_symlink() for p in linked)
    assert len(list((data / "unlabeled").iterdir())) == image_tree.unlabeled
    assert len(list((data / "val").glob("*/*"))) == 3 * image_tree.val_per_class
    assert results.mode == "FIT" and results.global_step == 4
    assert run.run_dir is not None and run.run_dir.parent == run.folder
    assert run.checkpoint == run.run_dir / "checkpoints" / "best.ckpt"
    config = (run.run_dir / "config.yaml").read_text()
    assert "FixMatchLossHead" in config and "thresholding: flexmatch" in config and f"data_root: {data}" in config
    assert marker(run.folder).kind == "training_run" and marker(data).kind == "data"
    assert marker(run.run_dir).kind == "run" and marker(run.run_dir).state == "finished"


def test_round_trip_in_a_new_process(trained, image_tree, tmp_path):
    """Loaded in a fresh process, the run predicts the validation images, in order, as the
    training's validation of its best checkpoint did (same accuracy), and evaluates them to the
    same val/top1."""
    run, results = trained
    validation = frame(image_tree.root, "val")
    eval_csv = tmp_path / "eval.csv"
    validation.to_csv(eval_csv, index=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    done = subprocess.run(
        [sys.executable, "-c", LOAD_PREDICT_EVALUATE, str(run.folder), str(eval_csv)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert "name='colors'" in answer["repr"] and "trained=True" in answer["repr"]
    best = results.best_score
    predictions = answer["predictions"]
    assert len(predictions) == len(validation)
    assert all(p["label"] in image_tree.classes and p["total"] == pytest.approx(1) for p in predictions)
    predicted = [p["label"] for p in predictions]
    assert (pd.Series(predicted) == validation["label"]).mean() == pytest.approx(best, abs=1e-6)
    assert answer["metrics"]["val/top1"] == pytest.approx(best, abs=1e-6)
    assert list((run.folder / "evaluate").glob("*/results.json"))


def test_a_run_made_anew_on_a_trained_folder_evaluates_as_trained(trained, image_tree, tmp_path):
    """`training_run(name=..., label_names=...)` on a folder already trained (not `load=`)
    evaluates with the method and overrides its training used, and refuses other labels."""
    run, results = trained
    again = sesemi.training_run(task="image", name="colors", label_names=image_tree.classes, dir=tmp_path / "runs")
    metrics = again.evaluate(frame(image_tree.root, "val"))
    assert metrics["val/top1"] == pytest.approx(results.best_score, abs=1e-6)
    other = sesemi.training_run(task="image", name="colors", label_names=image_tree.classes[:2], dir=tmp_path / "runs")
    with pytest.raises(SesemiError, match="was trained on the labels"):
        other.evaluate(frame(image_tree.root, "val"))


def test_an_eval_set_without_every_class_is_scored_by_the_models_classes(trained, image_tree):
    """An eval set of one class is scored against the model's class of that name: its top-1 is
    the share of its files predicted as that class."""
    run, _ = trained
    reds = frame(image_tree.root, "val", "red/*.png")
    predicted = [p.label for p in run.predict(list(reds["path"]))]
    metrics = run.evaluate(reds)
    assert metrics["val/top1"] == pytest.approx(predicted.count("red") / len(reds), abs=1e-6)
    outside = run.folder.parent / "outside"
    outside.mkdir()
    shutil.rmtree(run.folder / "evaluate")
    (run.folder / "evaluate").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SesemiError, match=r"will not write into .*evaluate: it is a symbolic link; remove it"):
        run.evaluate(reds)
    assert not any(outside.iterdir())


def test_a_finished_run_is_kept_unless_overwrite(trained, image_tree):
    """Training again needs overwrite=True; (path, label) pairs work as well as DataFrames, and
    without eval data the run validates on its training data."""
    run, first = trained
    pairs = list(frame(image_tree.root, "train").itertuples(index=False, name=None))
    with pytest.raises(SesemiError, match="holds a finished run; pass overwrite=True"):
        run.train(pairs, overrides=TINY)
    results = run.train(pairs, method="supervised", overrides=TINY, overwrite=True)
    assert results.run_dir != first.run_dir and not (run.folder / "data" / "val").exists()
    assert (first.run_dir / "results.json").is_file()  # the earlier run is kept
    assert [p.name for p in run.folder.iterdir() if p.name.startswith(".")] == [MARKER]  # no staging left
    assert "subset: train" in (run.run_dir / "config.yaml").read_text().split("val:", 1)[1]


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([("a.png", "cat")], {}, "has labels that are not in label_names: cat"),
        ([("a.png", "red")], {}, "train has no examples of blue, green"),
        ([], {"method": "nomethod"}, "no method 'nomethod'; choose one of: "),
        ([], {"overrides": "run.seed=1"}, r"overrides are a list of strings, e.g. \['run.seed=1'\]"),
        ([("x", "y", "z")], {}, "DataFrame with path and label columns, or"),
        ([("a.png", "red"), ("b.png", None), ("c.png", float("nan"))], {}, r"^train has 2 files without a label, e.g. b.png; pass them as unlabeled=, or drop them$"),
        ([("a.png", "red"), ("./a.png", "blue")], {}, r"^train labels one file twice, red \(a.png\) and blue \(./a.png\); give it one label$"),
        ([(".", "red"), ("b.png", "blue"), ("c.png", "green")], {}, r"^1 train paths are folders, e.g. \.; give the files in them$"),
    ],
)
def test_bad_training_data_is_refused(image_tree, tmp_path, rows, kwargs, message):
    run = sesemi.training_run(name="x", label_names=image_tree.classes, dir=tmp_path)
    with pytest.raises(SesemiError, match=message):
        run.train(rows, **kwargs)


def test_missing_files_and_columns_are_refused(image_tree, tmp_path):
    run = sesemi.training_run(name="x", label_names=["blue", "green", "red"], dir=tmp_path)
    rows = [(str(tmp_path / f"{label}.png"), label) for label in ("blue", "green", "red")]
    with pytest.raises(SesemiError, match="3 train files do not exist, e.g. .*blue.png"):
        run.train(rows)
    with pytest.raises(SesemiError, match="needs the columns path and label; it has: file, label"):
        run.train(pd.DataFrame({"file": ["a"], "label": ["red"]}))
    with pytest.raises(SesemiError, match="has not been trained yet"):
        run.evaluate(rows)


def test_a_folder_sesemi_did_not_make_is_never_written_into(image_tree, tmp_path):
    """An existing `<dir>/<name>` without the marker is refused in one line, and so is a `data/`
    without one inside a training run's folder; nothing in them changes. An empty folder is
    taken."""
    pairs = list(frame(image_tree.root, "train").itertuples(index=False, name=None))
    mine = tmp_path / "runs" / "pets"
    (mine / "data").mkdir(parents=True)
    (mine / "data" / "photo.txt").write_text("mine")
    run = sesemi.training_run(name="pets", label_names=image_tree.classes, dir=tmp_path / "runs")
    with pytest.raises(SesemiError, match=r"runs/pets exists without sesemi's \.sesemi marker .*choose another name or dir"):
        run.train(pairs, overrides=TINY)
    assert [p.name for p in mine.rglob("*")] == ["data", "photo.txt"]

    mark(mine, "training_run")
    with pytest.raises(SesemiError, match=r"will not replace .*pets/data: it is not a sesemi data folder"):
        run.train(pairs, overrides=TINY)
    assert (mine / "data" / "photo.txt").read_text() == "mine" and not (mine / "data" / MARKER).exists()

    (tmp_path / "runs" / "empty").mkdir()
    run = sesemi.training_run(name="empty", label_names=image_tree.classes, dir=tmp_path / "runs")
    with pytest.raises(SesemiError, match="no method"):
        run.train(pairs, method="nomethod")
    assert marker(run.folder).kind == "training_run"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"overrides": ["trainer.callbacks=[{_target_:torch.load,f:payload.pt,weights_only:false}]"]}, "builds torch.load"),
        ({"overrides": ["run.data_root=${oc.env:HOME}"]}, "has an interpolation"),
        ({"overrides": ["learner.hparams.model.backbone._target_=builtins.open"]}, "builds builtins.open"),  # a dotted key
        ({"overrides": ["hydra.searchpath=[file://cfg]", "+pwn=x"]}, "holds hydra.searchpath=.*, which is not a setting"),
        ({"overrides": ["+pwn=x"]}, r"holds \+pwn=x, which is not a setting or a built-in config of sesemi's"),
        ({"overrides": ["backbone=nope"]}, "holds backbone=nope, which is not a setting"),
        ({"method": "fixmatch trainer.callbacks=[]"}, "names no method of sesemi's"),
    ],
)
def test_a_training_run_folder_from_elsewhere_builds_nothing_untrusted(trained, tmp_path, change, message):
    """A `training_run.json` is a file like a run's config.yaml: the overrides it saved are
    checked by the trust rules when it is loaded (and again before `evaluate` reads them), so
    a folder someone hands over cannot make `evaluate` build what it names."""
    run, _ = trained
    folder = tmp_path / "handed_over"
    folder.mkdir()
    info = json.loads((run.folder / "training_run.json").read_text())
    (folder / "training_run.json").write_text(json.dumps({**info, **change}))
    with pytest.raises(SesemiError, match=message):
        sesemi.training_run(load=folder)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SesemiError, match="task must be one of image, audio"):
        sesemi.training_run(task="text", name="x", label_names=["a"])
    with pytest.raises(SesemiError, match="cannot be a folder name"):
        sesemi.training_run(name="../x", label_names=["a"])
    with pytest.raises(SesemiError, match="each class once"):
        sesemi.training_run(name="x", label_names=["a", "a"])
    with pytest.raises(SesemiError, match="needs a name and label_names"):
        sesemi.training_run(name="x")
    with pytest.raises(SesemiError, match=r"^label_names is a list of class names, e.g. \['cats'\], not one string$"):
        sesemi.training_run(name="x", label_names="cats")
    with pytest.raises(SesemiError, match="not a training run folder"):
        sesemi.training_run(load=tmp_path)


def test_an_audio_run_trains_predicts_and_evaluates(tmp_path, monkeypatch):
    """task="audio" trains `audio` (FlexMatch) on generated tones and chirps; predict gives one
    Prediction per file (long recordings in windows), and evaluate scores the
    validation clips as training's validation of the best checkpoint did."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    tree = audio_tree(tmp_path / "sounds", train=2, val=1, unlabeled=3)
    run = sesemi.training_run(
        task="audio", name="sounds", label_names=tree.classes, dir=tmp_path / "runs"
    )
    validation = frame(tree.root, "val", "*/*.*")
    results = run.train(
        frame(tree.root, "train", "*/*.*"),
        unlabeled=sorted(str(p) for p in (tree.root / "unlabeled").iterdir()),
        eval=validation,
        overrides=TINY_AUDIO,
    )
    assert results.mode == "FIT" and results.global_step == 4
    config = (run.run_dir / "config.yaml").read_text()
    assert "AudioBackbone" in config and "FixMatchLossHead" in config

    long = write(tmp_path / "long.flac", np.concatenate([tone(300, 1.0), chirp(300, 3000, 1.0)]))
    paths = [*validation["path"], long]
    for tta in (False, True):
        predictions = run.predict(paths, batch_size=4, tta=tta)
        assert [str(p.input) for p in predictions] == [str(path) for path in paths]
        assert all(
            p.label in tree.classes and float(p.probabilities.sum()) == pytest.approx(1)
            for p in predictions
        )
        assert predictions[-1].windows.shape == (7, 3)  # 2 s in 0.5 s windows, 0.25 s apart
    predicted = [p.label for p in run.predict(validation["path"])]
    best = results.best_score
    assert (pd.Series(predicted) == validation["label"]).mean() == pytest.approx(best, abs=1e-6)
    metrics = run.evaluate(validation)
    assert metrics["val/top1"] == pytest.approx(best, abs=1e-6)


def renamed(examples: pd.DataFrame, names: dict[str, object]) -> pd.DataFrame:
    """`examples` with each colour label renamed by `names`."""
    return examples.assign(label=examples["label"].map(names))


@pytest.mark.parametrize(
    ("label_names", "labels", "classes"),
    [
        # not sorted; NFD names matched by NFC labels (and returned NFC)
        (["red cat", "gru\u0308n", "blue"], ["blue", "gr\u00fcn", "red cat"], ["red cat", "gr\u00fcn", "blue"]),
        ([1, 2, 10], [1, 2, 10], ["1", "2", "10"]),  # not sorted as strings
    ],
)
def test_the_models_classes_are_label_names_in_their_order(image_tree, tmp_path, monkeypatch, label_names, labels, classes):
    """`probabilities` are in the order of `label_names` (after NFC normalisation), in training,
    predict, evaluate and a run loaded again; a file name too long to link with its number
    prefixed is linked under a shorter one; a run name beyond ASCII, with a quote, a comma and
    `=`, reaches the config as written."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    names = dict(zip(image_tree.classes, labels, strict=True))
    train, validation = (renamed(frame(image_tree.root, split), names) for split in ("train", "val"))
    long = tmp_path / ("x" * 246 + ".png")  # 250 bytes: too long for `000000_` before it
    long.write_bytes(open(train["path"][0], "rb").read())
    train.loc[0, "path"] = str(long)
    run = sesemi.training_run(name="grün's order, a=1", label_names=label_names, dir=tmp_path / "runs")
    assert run.label_names == classes
    results = run.train(train, eval=validation, overrides=TINY)
    assert results.classes == classes and results.run_dir.parent == tmp_path / "runs" / "grün's order, a=1"
    predictions = run.predict(list(validation["path"]))
    assert all(p.label == classes[int(p.probabilities.argmax())] for p in predictions)
    right = (pd.Series([p.label for p in predictions]) == validation["label"].map(str)).mean()
    assert results.best_score == pytest.approx(right, abs=1e-6)
    assert run.evaluate(validation)["val/top1"] == pytest.approx(right, abs=1e-6)
    loaded = sesemi.training_run(load=run.folder)
    assert loaded.label_names == classes
    assert loaded.evaluate(validation)["val/top1"] == pytest.approx(right, abs=1e-6)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("__MACOSX", r"^the label '__MACOSX' is a folder name the data sets skip as hidden; choose another$"),
        (".git", r"^the label '.git' cannot be a folder name"),
        ("a\0b", r"^the label 'a\\x00b' cannot be a folder name"),
        ("x" * 300, r"^the label 'x{60}\.\.\.' is 300 bytes long; a folder name holds at most 255$"),
        ("cost ${usd}", r"^the label 'cost \$\{usd\}' holds \$\{, which configs read as a reference to another value"),
    ],
)
def test_labels_the_data_sets_cannot_hold_are_refused(tmp_path, label, message):
    with pytest.raises(SesemiError, match=message):
        sesemi.training_run(name="x", label_names=["a", label], dir=tmp_path)
    with pytest.raises(SesemiError, match=r"^dir '.*/\$\{HOME\}' holds \$\{, which configs read as a reference"):
        sesemi.training_run(name="x", label_names=["a", "b"], dir=tmp_path / "${HOME}")


@pytest.mark.parametrize("argument", ["train", "eval", "unlabeled"])
def test_files_the_data_sets_do_not_read_are_refused(image_tree, tmp_path, argument):
    """A file of an extension the data sets do not list would be linked and then left out of
    training silently: it is refused before anything is linked."""
    pairs = list(frame(image_tree.root, "train").itertuples(index=False, name=None))
    odd = []
    for name in ("photo.jxl", "noextension", "phone.heic"):
        (tmp_path / name).write_bytes(b"")
        odd.append(str(tmp_path / name))
    arguments = {
        "train": {"train": [*pairs, *((path, "red") for path in odd)]},
        "eval": {"train": pairs, "eval": [(path, "red") for path in odd]},
        "unlabeled": {"train": pairs, "unlabeled": odd},
    }[argument]
    run = sesemi.training_run(name="x", label_names=image_tree.classes, dir=tmp_path / "runs")
    message = rf"^3 {argument} files are not image files sesemi reads, e.g. .*photo.jxl; it reads .*\.png"
    with pytest.raises(SesemiError, match=message):
        run.train(**arguments, overrides=TINY)
    assert not run.folder.exists()
    audio = sesemi.training_run(task="audio", name="y", label_names=["blue"], dir=tmp_path / "runs")
    with pytest.raises(SesemiError, match=r"^1 train files are not audio files sesemi reads, e.g. .*\.png; it reads .*\.wav"):
        audio.train(pairs[:1], overrides=TINY)


def test_override_values_are_read_back_as_written(tmp_path):
    """Names and paths reach the config unchanged, whatever quotes or backslashes they hold."""
    from omegaconf import OmegaConf

    from sesemi.api import _listed, _quote
    from sesemi.config.compose import compose

    names = ["1", "null", "it's", "a\\b", "a,b]", "c=d", "e\\", "\\'q", "[x]", " s ", "grün"]
    root = tmp_path / "a\\b 'c'"
    config = compose("image", [f"++data.train.supervised.dataset.classes={_listed(names)}", f"run.data_root={_quote(root)}"])
    assert OmegaConf.to_container(config.data.train.supervised.dataset.classes, resolve=True) == names
    assert config.run.data_root == str(root)


def test_the_export_help_names_the_pip_extra(monkeypatch):
    """`sesemi export --help` shows the extra `sesemi[export]`; rich took `[export]` for markup."""
    from typer.testing import CliRunner

    from sesemi.cli.app import app

    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["export", "--help"])
    assert result.exit_code == 0 and "pip install 'sesemi[export]'" in result.output


def test_the_method_and_the_unlabeled_folder_are_checked_before_training(image_tree, tmp_path):
    """`method=` among the overrides would train another method than the one recorded; an
    unlabeled path that is not a folder would be read character by character."""
    run = sesemi.training_run(name="x", label_names=image_tree.classes, dir=tmp_path / "runs")
    train = frame(image_tree.root, "train")
    with pytest.raises(SesemiError, match=r"^give the method as method=..., the argument of train\(\), not in overrides$"):
        run.train(train, overrides=["method=supervised"])
    with pytest.raises(SesemiError, match=r"^unlabeled .*missing is not a folder; give a folder, or a list of paths$"):
        run.train(train, unlabeled=str(tmp_path / "missing"))
    assert not (tmp_path / "runs" / "x" / "data").exists()


def test_eval_files_also_given_to_train_on_are_warned_about(image_tree, tmp_path, caplog):
    """The same file in `eval` and in `train` or `unlabeled` (by another path too, or a copy)
    is scored after being learned from: the run says so as it starts."""
    run = sesemi.training_run(name="x", label_names=image_tree.classes, dir=tmp_path / "runs")
    train, evaluation = frame(image_tree.root, "train"), frame(image_tree.root, "val")
    (tmp_path / "elsewhere").symlink_to(image_tree.root, target_is_directory=True)
    unlabeled = [str(tmp_path / "elsewhere" / Path(path).relative_to(image_tree.root)) for path in evaluation.path[:2]]
    shutil.copy(evaluation.path[2], tmp_path / "copy.png")
    unlabeled.append(str(tmp_path / "copy.png"))
    run.train(train, unlabeled=unlabeled, eval=pd.concat([evaluation, train[:2]]), overrides=[*TINY, "run.num_iterations=1"])
    assert "the labeled set holds 2 validation files, linked or copied" in caplog.text
    assert "the unlabeled pool holds 5 validation files" in caplog.text and "validation scores flatter it" in caplog.text


def test_the_training_runs_folder_named_for_one_of_its_runs_says_which(trained, tmp_path):
    """`sesemi resume` and `sesemi inference` of `runs/<name>` (the TrainingRun's folder, not a
    run): one line that says so, and names its latest run to predict with."""
    from sesemi.predictor import load

    run, results = trained
    with pytest.raises(SesemiError, match=r"is a folder sesemi made for a training run, not a run; name a run in it$"):
        sesemi.resume(run.folder)
    with pytest.raises(SesemiError, match=rf"is a folder of runs, not a run; name one, e.g. the latest: {results.run_dir}$"):
        load(run.folder)
    with pytest.raises(SesemiError, match=r"^run folder .*nothing does not exist$"):
        sesemi.resume(tmp_path / "nothing")
