"""The `audio_folder` and `audio_file` datasets (sesemi/datasets/audio_folder.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from audio_samples import audio_tree, tone, write

from sesemi.datasets import dataset, memory_cache
from sesemi.datasets.audio_cache import AudioCache
from sesemi.errors import SesemiError
from sesemi.transforms import eval_audio_transforms


@pytest.fixture
def tree(tmp_path):
    return audio_tree(tmp_path / "sounds")


def test_audio_folder_reads_class_folders_resampled(tree):
    """Labels follow the sorted class folders; items are mono waveforms at the sample rate."""
    data = dataset("audio_folder", str(tree.root), "train", sample_rate=16000)
    assert data.classes == ["chirp", "high", "low"]
    assert len(data) == 3 * tree.train_per_class
    assert sorted(set(data.targets)) == [0, 1, 2]
    waveform, label = data[0]
    assert label == 0 and waveform.dtype == torch.float32 and waveform.shape == (8000,)  # 0.5 s


def test_audio_folder_applies_the_transform(tree):
    data = dataset(
        "audio_folder", str(tree.root), "val", eval_audio_transforms(1.0, 16000), sample_rate=16000
    )
    waveform, _ = data[0]
    assert waveform.shape == (16000,) and waveform[:4000].abs().sum() == 0  # centred, padded


def test_audio_file_reads_unlabeled_folders_and_skips_missing_ones(tree):
    data = dataset("audio_file", str(tree.root), ["train", "unlabeled", "extra"], sample_rate=8000)
    assert len(data) == 3 * tree.train_per_class + tree.unlabeled
    assert set(data.targets) == {-1}
    assert data[0][0].shape == (4000,)


def test_a_class_folder_without_audio_is_an_error_naming_what_it_holds(tree):
    (tree.root / "train" / "empty").mkdir()
    (tree.root / "train" / "empty" / "notes.txt").write_text("not audio")
    for index in range(2):  # images given to an audio config
        (tree.root / "train" / "empty" / f"{index}.PNG").write_bytes(b"")
    (tree.root / "train" / "low" / "readme.md").write_text("beside the recordings: not named")
    with pytest.raises(
        SesemiError, match=r"empty .* hold no audio files \(found 2 \.png, 1 \.txt files, which are not audio files"
    ):
        dataset("audio_folder", str(tree.root), "train")


def test_a_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "unlabeled").mkdir()
    with pytest.raises(SesemiError, match=r"no audio files under \S*unlabeled$"):
        dataset("audio_file", str(tmp_path), "unlabeled")
    (tmp_path / "unlabeled" / "scan.jpg").write_bytes(b"")
    with pytest.raises(SesemiError, match=r"no audio files under .* \(found 1 \.jpg files, which are not audio files"):
        dataset("audio_file", str(tmp_path), "unlabeled")


@pytest.mark.parametrize("content", [b"", b"garbage" * 100])
def test_on_error_raise_names_the_unreadable_file(tree, content):
    """Decoded when loaded: the item names the file; decoded into memory: building the data set."""
    broken = tree.root / "train" / "low" / "broken.wav"
    broken.write_bytes(content)
    data = dataset("audio_folder", str(tree.root), "train", on_error="raise", cache="none")
    index = [path for path, _ in data.samples].index(str(broken))
    with pytest.raises(SesemiError, match=r"cannot read audio file .*broken\.wav.*on_error at skip"):
        data[index]
    with pytest.raises(SesemiError, match=r"cannot read audio file .*broken\.wav.*on_error at skip"):
        dataset("audio_folder", str(tree.root), "train", on_error="raise", cache="memory")


def test_on_error_skip_leaves_out_or_replaces_an_unreadable_file_and_warns_once(tree, caplog):
    """Decoded into memory, an unreadable file is left out; read whenever its item is loaded
    (cache none), the next file takes its place. Either way it is named once."""
    broken = write(tree.root / "train" / "low" / "a_silent.wav", np.zeros(0, np.float32))
    cached = dataset("audio_folder", str(tree.root), "train")
    lazy = dataset("audio_folder", str(tree.root), "train", cache="none")
    assert [path for path, _ in cached.samples] == [path for path, _ in lazy.samples if path != str(broken)]
    assert len(cached) == len(cached.targets) == len(lazy) - 1
    index = [path for path, _ in lazy.samples].index(str(broken))
    waveform, label = lazy[index]
    assert waveform.numel() > 0 and label == lazy.classes.index("low")
    lazy[index]
    assert lazy.skipped == {str(broken)}
    assert sum("a_silent.wav" in r.getMessage() for r in caplog.records) == 1


def test_the_cache_is_read_when_present_and_up_to_date(tree):
    """A cache entry replaces decoding; an edited source misses it and is decoded again."""
    path = tree.root / "train" / "high" / "train0.wav"
    cache = AudioCache(tree.root, 16000)
    marker = np.full(123, 0.25, np.float32)
    cache.store(path, marker)
    data = dataset("audio_folder", str(tree.root), "train", sample_rate=16000, cache="none")
    index = [p for p, _ in data.samples].index(str(path))
    assert torch.equal(data[index][0], torch.from_numpy(marker))
    assert torch.equal(dataset("audio_folder", str(tree.root), "train", cache="memory")[index][0], data[index][0])
    write(path, tone(3000, seconds=0.25))  # another size: the entry is stale
    assert data[index][0].shape == (4000,)
    other_rate = dataset("audio_folder", str(tree.root), "train", sample_rate=8000)
    assert other_rate.disk_cache is None  # no cache at 8 kHz: decode


def test_decoding_at_every_clip_suggests_the_preprocess_cache(tree, caplog, monkeypatch):
    """A pool too large to keep in memory reads its files for every clip; the log says what
    decodes and resamples them once, and is quiet when that cache is there, or when the files
    are not to be kept in memory (`cache: none`, or a labeled set only listed for its classes)."""
    monkeypatch.setattr(memory_cache, "CACHE_MAX_FILES", 1)  # the pool is "too large"
    caplog.set_level("INFO", logger="sesemi")
    dataset("audio_file", str(tree.root), "unlabeled", sample_rate=16000)
    assert "`sesemi preprocess` decodes and resamples them once" in caplog.text
    caplog.clear()
    dataset("audio_file", str(tree.root), "unlabeled", sample_rate=16000, cache="none")
    AudioCache(tree.root, 16000).folder.mkdir(parents=True)  # what `sesemi preprocess` makes
    dataset("audio_file", str(tree.root), "unlabeled", sample_rate=16000)
    dataset("audio_file", str(tree.root), "unlabeled", sample_rate=8000, cache="memory")
    assert "sesemi preprocess" not in caplog.text


def test_a_pool_read_at_every_clip_reads_one_stretch_per_item(tree):
    """The weak and strong views of an unlabeled recording not kept in memory are cut from one
    stretch read from the file (twice the longest view); a pool in memory is decoded whole."""
    from sesemi.transforms import MultiView, strong_audio_transforms, weak_audio_transforms

    weak = weak_audio_transforms(clip_seconds=0.1, sample_rate=16000)
    views = MultiView([weak, strong_audio_transforms(weak, speed=(0.9, 1.1))])
    read = dataset("audio_file", str(tree.root), "unlabeled", views, sample_rate=16000, cache="none")
    assert read.stretch == views.segment.length == 2 * 1760
    assert read._read_sample(0).shape == (3520,)  # of a 0.5 s clip
    (weak_view, strong_view), label = read[0]
    assert weak_view.shape == strong_view.shape == (1600,) and label == -1
    kept = dataset("audio_file", str(tree.root), "unlabeled", views, sample_rate=16000, cache="memory")
    assert kept.stretch is None and kept.memory[0].shape == (8000,)


def test_audio_classes_follow_a_given_list(tree):
    """The training set's classes number the val folders; a folder of another class is refused."""
    data = dataset("audio_folder", str(tree.root), "val", classes=["aaa", "chirp", "high", "low"])
    assert data.classes == ["aaa", "chirp", "high", "low"] and sorted(set(data.targets)) == [1, 2, 3]
    with pytest.raises(SesemiError, match="'low' .* is not a class of the training set"):
        dataset("audio_folder", str(tree.root), "val", classes=["chirp", "high"])


def test_a_recording_named_in_bytes_that_are_not_utf8_is_read(tree):
    name = os.fsencode(tree.root / "train" / "low") + b"/t\xf6ne.wav"
    os.rename(write(tree.root / "tone.wav", tone(300)), name)
    data = dataset("audio_folder", str(tree.root), "train", on_error="raise", sample_rate=16000)
    index = [path for path, _ in data.samples].index(os.fsdecode(name))
    waveform, label = data[index]
    assert waveform.shape == (8000,) and data.classes[label] == "low"
