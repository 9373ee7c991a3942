"""The `preprocess` operation (sesemi/ops/preprocess.py): the cache of decoded audio."""

from __future__ import annotations

import os

import numpy as np
import pytest
from audio_samples import audio_tree, tone, write

from sesemi.datasets import dataset
from sesemi.datasets.audio_cache import AudioCache
from sesemi.errors import SesemiError
from sesemi.ops.preprocess import preprocess
from sesemi.ownership import marker


@pytest.fixture
def tree(tmp_path):
    return audio_tree(tmp_path / "sounds", train=1, val=1, unlabeled=2)


def test_preprocess_caches_every_file_once(tree):
    (counts,) = preprocess(str(tree.root), sample_rate=16000)
    assert (counts.files, counts.written, counts.up_to_date, counts.unreadable, counts.removed) == (8, 8, 0, 0, 0)
    cache = AudioCache(tree.root, 16000)
    source = tree.root / "unlabeled" / "u0.wav"
    assert cache.load(source).shape == (8000,)  # 0.5 s at 16 kHz
    assert preprocess(str(tree.root), sample_rate=16000)[0].up_to_date == 8


def test_changed_files_and_sample_rates_are_decoded_again(tree):
    preprocess(str(tree.root), sample_rate=16000)
    changed = tree.root / "train" / "low" / "train0.wav"
    write(changed, tone(500, seconds=0.25))
    (counts,) = preprocess(str(tree.root), sample_rate=16000)
    assert (counts.written, counts.up_to_date, counts.removed) == (1, 7, 1)
    assert AudioCache(tree.root, 16000).load(changed).shape == (4000,)
    assert preprocess(str(tree.root), sample_rate=8000)[0].written == 8  # its own entries
    (tree.root / "unlabeled" / "u1.flac").unlink()
    assert preprocess(str(tree.root), sample_rate=16000)[0].removed == 1


def test_datasets_read_the_cache(tree):
    """What the dataset yields comes from the cache once preprocess has run."""
    preprocess(str(tree.root), sample_rate=16000, subset="train")
    source = tree.root / "train" / "high" / "train0.wav"
    cache = AudioCache(tree.root, 16000)
    entry = cache.entry(source)
    np.save(entry, np.full(10, 0.5, np.float32))  # recognizable content under the same key
    data = dataset("audio_folder", str(tree.root), "train", sample_rate=16000)
    index = [p for p, _ in data.samples].index(str(source))
    assert data[index][0].tolist() == [0.5] * 10


def test_unreadable_files_are_skipped_or_named(tree):
    broken = tree.root / "unlabeled" / "broken.mp3"
    broken.write_bytes(b"no audio" * 50)
    assert preprocess(str(tree.root), sample_rate=16000)[0].unreadable == 1
    with pytest.raises(SesemiError, match=r"broken\.mp3"):
        preprocess(str(tree.root), sample_rate=16000, on_error="raise")


def test_many_unreadable_recordings_are_named_five_at_a_time(tree, caplog):
    for index in range(7):
        (tree.root / "unlabeled" / f"broken{index}.wav").write_bytes(b"no audio" * 50)
    assert preprocess(str(tree.root), sample_rate=16000)[0].unreadable == 7
    lines = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(lines) == 6 and all(line.startswith("skipping unreadable audio file ") for line in lines[:5])
    assert lines[5] == "skipped 2 more unreadable audio files (7 in all)"


def test_worker_processes_write_the_same_cache(tree):
    assert preprocess(str(tree.root), sample_rate=16000, num_workers=2)[0].written == 8
    assert all(AudioCache(tree.root, 16000).entry(p).is_file() for p in (tree.root / "val").rglob("*.*"))


def test_missing_root_or_no_audio_is_a_user_error(tmp_path):
    with pytest.raises(SesemiError, match=r"^folder of recordings .*nothing does not exist$"):
        preprocess(str(tmp_path / "nothing"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(SesemiError, match="no audio files"):
        preprocess(str(tmp_path / "empty"))


def test_stale_entries_are_deleted_only_from_a_cache_sesemi_marked(tree, tmp_path):
    """The cache folder preprocess makes is marked; in a cache folder of someone else's (or of a
    release before markers) out-of-date entries are counted and kept."""
    preprocess(str(tree.root), sample_rate=16000)
    cache = AudioCache(tree.root, 16000)
    assert marker(cache.base).kind == "cache"

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    preprocess(str(tree.root), sample_rate=16000, cache_dir=theirs)
    assert not (theirs / ".sesemi").exists()
    (tree.root / "unlabeled" / "u1.flac").unlink()
    (counts,) = preprocess(str(tree.root), sample_rate=16000, cache_dir=theirs)
    assert (counts.removed, counts.stale_kept) == (0, 1)
    assert "kept 1 entries that are not of the files here now" in counts.kept_note() and str(theirs) in counts.kept_note()
    assert len(list(theirs.rglob("u1.flac.*.npy"))) == 1
    assert preprocess(str(tree.root), sample_rate=16000)[0].removed == 1  # the marked cache


def test_a_cache_linked_from_another_data_set_keeps_its_entries(tmp_path):
    """`b/.sesemi_cache` linked to `a`'s: preprocessing b reads and writes there, but deletes
    none of a's entries (of other files, to b) through the link."""
    a = audio_tree(tmp_path / "a", train=1, val=0, unlabeled=2).root
    b = audio_tree(tmp_path / "b", train=1, val=0, unlabeled=1).root
    preprocess(str(a))
    (b / ".sesemi_cache").symlink_to(a / ".sesemi_cache", target_is_directory=True)
    entries = sorted(path.name for path in (a / ".sesemi_cache").rglob("*.npy"))
    (counts,) = preprocess(str(b))
    assert counts.removed == 0 and counts.stale_kept > 0 and "reached through a link" in counts.kept_note()
    assert set(entries) <= {path.name for path in (a / ".sesemi_cache").rglob("*.npy")}


def test_data_sets_sharing_a_cache_folder_leave_each_others_entries(tmp_path):
    """Preprocessing one data set into a shared cache folder neither removes nor decodes again
    the other's entries (both have train/<class>/train0.wav)."""
    shared = tmp_path / "shared"
    a = audio_tree(tmp_path / "a", train=1, val=0, unlabeled=1).root
    b = audio_tree(tmp_path / "b", train=1, val=0, unlabeled=1).root
    assert preprocess(str(a), cache_dir=shared)[0].written == 4
    assert preprocess(str(b), cache_dir=shared)[0].removed == 0
    (counts,) = preprocess(str(a), cache_dir=shared)
    assert (counts.written, counts.up_to_date, counts.removed) == (0, 4, 0)
    (a / "unlabeled" / "u0.wav").unlink()
    assert preprocess(str(a), cache_dir=shared)[0].removed == 1
    assert preprocess(str(b), cache_dir=shared)[0].up_to_date == 4


def test_a_config_caches_the_folders_its_data_sets_read(tree, tmp_path):
    """Not the rest of the data root: audio's data sets read train/, unlabeled/ and val/."""
    from sesemi import compose

    write(tree.root / "archive" / "old.wav", tone(300))
    (counts,) = preprocess(compose("audio", [f"run.data_root={tree.root}"]))
    assert (counts.files, counts.written) == (8, 8)
    assert not (AudioCache(tree.root, 16000).folder / "archive").exists()


def test_files_of_a_subfolder_outside_the_root_are_named_not_cached(tree, tmp_path, caplog):
    """A config may read a folder beside its data root (`subset=[train,../more]`); those files
    cannot be cached under the root: a warning says so, and they are not counted as cached."""
    from sesemi import compose

    write(tmp_path / "more" / "m.wav", tone(300))
    subset = "data.unlabeled.subset=[train,unlabeled,../more]"
    (counts,) = preprocess(compose("audio", [f"run.data_root={tree.root}", subset]))
    assert (counts.files, counts.written, counts.up_to_date) == (9, 8, 0)
    assert "1 file outside" in caplog.text and "m.wav" in caplog.text


def test_a_file_given_for_the_folder_is_named_as_a_file(tree):
    with pytest.raises(SesemiError, match=r"u0.wav is a file; give the folder of recordings it is in$"):
        preprocess(str(tree.root / "unlabeled" / "u0.wav"))


def test_a_config_whose_data_folders_are_missing_is_refused(tmp_path):
    """As training refuses it, before anything is decoded (not the whole default ./data)."""
    from sesemi import compose

    config = compose("audio", [f"run.data_root={tmp_path / 'data'}"])
    write(tmp_path / "data" / "unlabeled" / "u.wav", tone(300))
    with pytest.raises(SesemiError, match=r"^data folder .*data/train does not exist"):
        preprocess(config)
    assert not (tmp_path / "data" / ".sesemi_cache").exists()


@pytest.mark.parametrize("rate", [0, -16000])
def test_sample_rates_must_be_positive(tree, rate):
    with pytest.raises(SesemiError, match=rf"^sample_rate must be a positive number of Hz, not {rate}$"):
        preprocess(str(tree.root), sample_rate=rate)
