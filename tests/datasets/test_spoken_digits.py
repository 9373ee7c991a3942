"""The built-in `spoken_digits` data set (sesemi/datasets/spoken_digits.py)."""

from __future__ import annotations

import shutil

import pytest
import soundfile

from sesemi.datasets import spoken_digits
from sesemi.datasets.builtin import prepare_builtin
from sesemi.errors import SesemiError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def test_without_espeak_ng_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(spoken_digits.shutil, "which", lambda name: None)
    with pytest.raises(SesemiError, match="apt-get install espeak-ng.*brew install espeak-ng"):
        prepare_builtin(tmp_path / "data" / "spoken_digits")
    assert not (tmp_path / "data" / "spoken_digits").exists()
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["spoken_digits.lock"]


@needs_espeak
def test_a_tiny_build_has_the_standard_layout(tmp_path):
    """One clip per class and split: 22.05 kHz FLAC of 0.6-1.2 s, train_all = train + unlabeled."""
    root = tmp_path / "spoken_digits"
    spoken_digits.write_spoken_digits(root, labeled=1, unlabeled=1, val=1)
    digits = [str(d) for d in range(10)]
    assert sorted(p.name for p in (root / "train").iterdir()) == digits
    assert sorted(p.name for p in (root / "val").iterdir()) == digits
    assert len(list((root / "unlabeled").glob("*.flac"))) == 10
    assert len(list((root / "train_all").rglob("*.flac"))) == 20
    info = soundfile.info(str(next((root / "val" / "7").iterdir())))
    assert info.samplerate == 22050 and info.channels == 1
    assert 0.6 <= info.duration <= 1.25


@needs_espeak
def test_voices_include_accents_and_variants():
    languages, variants = spoken_digits.voices()
    assert any(v.startswith("en") for v in languages)
    assert any(not v.startswith("en") for v in languages)
    assert len(variants) > 5


@needs_espeak
def test_other_words_make_another_spoken_word_data_set(tmp_path):
    """Class i is words[i]: the same voices and noises speak a corpus of any words."""
    root = tmp_path / "words"
    spoken_digits.write_spoken_digits(root, labeled=1, unlabeled=0, val=1, words=("yes", "no", "stop"))
    assert sorted(p.name for p in (root / "train").iterdir()) == ["0", "1", "2"]
    assert len(list((root / "val").rglob("*.flac"))) == 3
    assert not (root / "unlabeled").exists()
