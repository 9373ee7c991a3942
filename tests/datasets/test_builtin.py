"""Built-in data sets (sesemi/datasets/builtin.py): the embedded `digits` set and hints."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from PIL import Image

from sesemi.datasets import builtin
from sesemi.datasets.builtin import missing_data_hint, prepare_builtin
from sesemi.ownership import marker


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _names_by_class(folder: Path) -> dict[str, set[str]]:
    return {d.name: {p.name for p in d.iterdir()} for d in folder.iterdir() if d.is_dir()}


def test_digits_layout(digits_root):
    """train: 10 class folders of 5; unlabeled: the rest of the training split; val: 500."""
    train = _names_by_class(digits_root / "train")
    assert sorted(train) == [str(c) for c in range(10)]
    assert all(len(names) == 5 for names in train.values())
    unlabeled = list((digits_root / "unlabeled").iterdir())
    assert all(p.is_file() and p.suffix == ".png" for p in unlabeled)
    assert len(unlabeled) == 1797 - 500 - 50
    val = _names_by_class(digits_root / "val")
    assert sorted(val) == [str(c) for c in range(10)]
    assert sum(len(names) for names in val.values()) == 500


def test_digits_train_all_is_train_plus_unlabeled_with_labels(digits_root):
    """train_all holds exactly the train and unlabeled images, and agrees with train's labels;
    val shares no image with them."""
    train = _names_by_class(digits_root / "train")
    train_all = _names_by_class(digits_root / "train_all")
    unlabeled = {p.name for p in (digits_root / "unlabeled").iterdir()}
    labeled = set().union(*train.values())
    assert not labeled & unlabeled
    assert set().union(*train_all.values()) == labeled | unlabeled
    for label, names in train.items():
        assert names <= train_all[label]
    val = set().union(*_names_by_class(digits_root / "val").values())
    assert not val & (labeled | unlabeled)


def test_digits_images_are_32px_and_not_blank(digits_root):
    """Images are 32x32 PNGs with actual strokes in them."""
    path = next((digits_root / "train" / "0").iterdir())
    with Image.open(path) as image:
        assert image.size == (32, 32)
        low, high = image.convert("L").getextrema()
    assert high - low > 100


def test_prepare_builtin_is_idempotent(digits_root):
    """A second call leaves an existing data set alone (no rebuild, nothing deleted)."""
    marker = digits_root / "train" / "0" / "kept.txt"
    marker.write_text("user file")
    before = {p: p.stat().st_mtime_ns for p in _files(digits_root / "val")}
    try:
        prepare_builtin(digits_root)
        assert marker.exists()
        assert {p: p.stat().st_mtime_ns for p in _files(digits_root / "val")} == before
    finally:
        marker.unlink()


def test_unknown_name_builds_nothing(tmp_path):
    """Only names of built-in data sets are built; other roots are not created."""
    prepare_builtin(tmp_path / "data" / "my_photos")
    assert not (tmp_path / "data").exists()


def _prepare_counting_builds(root: Path, log: Path) -> None:
    """Runs prepare_builtin in a child process, appending a line to `log` per real build."""
    from sesemi.datasets import builtin

    build = builtin.BUILDERS["digits"]

    def counting(target: Path) -> None:
        with open(log, "a") as file:
            file.write("build\n")
        build(target)

    builtin.BUILDERS["digits"] = counting
    builtin.prepare_builtin(root)


def test_concurrent_builds_end_with_one_complete_data_set(tmp_path):
    """Two processes building digits at once both succeed, only one of them builds, and they
    leave one complete data set (no leftover staging folders, no nested copies)."""
    root = tmp_path / "data" / "digits"
    log = tmp_path / "builds.log"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_prepare_counting_builds, args=(root, log)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert log.read_text().splitlines() == ["build"]
    assert sorted(p.name for p in root.iterdir()) == [".sesemi", "train", "train_all", "unlabeled", "val"]
    assert marker(root).kind == "data"
    assert len(_files(root / "train")) == 50
    assert len(_files(root / "unlabeled")) == 1247
    assert len(_files(root / "val")) == 500
    assert len(_files(root / "train_all")) == 1297
    leftovers = [p.name for p in root.parent.iterdir() if p.name not in ("digits", "digits.lock")]
    assert leftovers == []


@pytest.mark.parametrize(
    "path", ["data/imagewoof2/train", "data/imagewoof2", "/x/imagewoof2/val/n02086240"]
)
def test_missing_data_hint_for_imagewoof(path):
    """Any folder inside imagewoof2 gets the download command."""
    hint = missing_data_hint(Path(path))
    assert "curl" in hint and "imagewoof2.tgz" in hint


def test_missing_data_hint_names_the_data_root_above_a_split(tmp_path):
    """`run.data_root=data/pets/train` looks for data/pets/train/train: the hint names data/pets."""
    (tmp_path / "pets" / "train" / "cat").mkdir(parents=True)
    hint = missing_data_hint(tmp_path / "pets" / "train" / "train")
    assert hint.endswith(f"{tmp_path / 'pets'}, not {tmp_path / 'pets' / 'train'}")


def test_missing_data_hint_says_class_folders_go_in_train(tmp_path):
    for name in ("cat", "dog", "fish", "owl"):
        (tmp_path / "pets" / name).mkdir(parents=True)
    hint = missing_data_hint(tmp_path / "pets" / "train")
    assert f"holds cat/, dog/, fish/, ...: put the class folders in {tmp_path / 'pets' / 'train'}/" in hint


@pytest.mark.parametrize(("present", "missing", "expected"), [
    ("Train", "train", "has Train/: rename it train/ (folder names are case-sensitive)"),
    ("training", "train", "has training/: rename it train/"),
    ("unlabelled", "unlabeled", "has unlabelled/: rename it unlabeled/"),
])
def test_missing_data_hint_names_a_split_named_otherwise(tmp_path, present, missing, expected):
    """Folders made on Windows or macOS (`Train/`) or exported by other tools (`training/`) are
    the split, under another name: the hint says to rename it, not to move class folders."""
    (tmp_path / "pets" / present / "cat").mkdir(parents=True)
    assert missing_data_hint(tmp_path / "pets" / missing) == f"; {tmp_path / 'pets'} {expected}"


def test_missing_data_hint_names_the_fetch_that_builds_a_builtin_data_set_there(tmp_path):
    """A built-in data set missing where a run is not building it (outside the working
    directory): the hint is the command that builds it there; a split missing from one that
    exists gets no such hint."""
    expected = f"; if you meant the built-in digits there, run `sesemi fetch digits --data-dir {tmp_path}`"
    assert missing_data_hint(tmp_path / "digits" / "train") == expected
    (tmp_path / "digits").mkdir()
    assert "fetch" not in missing_data_hint(tmp_path / "digits" / "train")


def test_missing_data_hint_generic():
    """Other folders get generic advice pointing at run.data_root."""
    assert "run.data_root" in missing_data_hint(Path("data/photos/train"))


def test_a_failed_build_leaves_no_data_set_and_no_staging_folder(tmp_path, monkeypatch):
    """A build that fails part way leaves neither a half-written data set nor its staging
    folder; the next build starts afresh and marks its folder as sesemi's data."""

    def failing(target: Path) -> None:
        (target / "train").mkdir()
        raise RuntimeError("disk full")

    monkeypatch.setitem(builtin.BUILDERS, "digits", failing)
    root = tmp_path / "data" / "digits"
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_builtin(root)
    assert [p.name for p in root.parent.iterdir()] == ["digits.lock"]

    monkeypatch.setitem(builtin.BUILDERS, "digits", lambda target: (target / "train").mkdir())
    prepare_builtin(root)
    assert sorted(p.name for p in root.iterdir()) == [".sesemi", "train"]
    assert marker(root).kind == "data" and marker(root).state == "complete"
