"""`spoken_digits`: the words "zero" to "nine" spoken by espeak-ng, made on first use.

Each clip is one word in one of the installed English voices or another language's voice
reading the English word (an accent), with a random voice variant, speed and pitch, placed at a
random offset in 0.6-1.2 s of background noise (white, pink, brown, mains hum or the babble of
other words) at 5-25 dB signal-to-noise ratio. The clips are 22.05 kHz FLAC files (espeak-ng's
rate, so training resamples them) in the standard layout:

    <data_root>/spoken_digits/train/<digit>/      5 labeled clips per class
    <data_root>/spoken_digits/unlabeled/          120 per class, without labels
    <data_root>/spoken_digits/val/<digit>/        40 per class
    <data_root>/spoken_digits/train_all/<digit>/  train + unlabeled with their labels (baselines)

https://github.com/espeak-ng/espeak-ng
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sesemi.errors import SesemiError

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LABELED_PER_CLASS = 5
UNLABELED_PER_CLASS = 120
VAL_PER_CLASS = 40
SEED = 0
SAMPLE_RATE = 22050  # espeak-ng's output rate
# Languages whose voices read the English words with their own phonetics, when installed.
ACCENTS = ("af", "cs", "da", "de", "el", "es", "fi", "fr-fr", "hi", "hu", "id", "it", "nb",
           "nl", "pl", "pt", "ro", "sv", "sw", "tr")
NOISES = ("white", "pink", "brown", "hum", "babble")
INSTALL_HINT = (
    "the spoken_digits data set is spoken by espeak-ng, which is not installed; install it with "
    "`apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS)"
)


def _espeak(*args: str) -> str:
    if shutil.which("espeak-ng") is None:
        raise SesemiError(INSTALL_HINT)
    return subprocess.run(["espeak-ng", *args], capture_output=True, text=True, check=True).stdout


def voices() -> tuple[list[str], list[str]]:
    """The installed voices that speak English words (English ones and `ACCENTS`), and variants.

    mbrola voices are left out: they need separately installed voice data.
    """
    languages, variants = [], []
    for line in _espeak("--voices").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5 and not fields[4].startswith("mb/"):
            if fields[1].startswith("en") or fields[1] in ACCENTS:
                languages.append(fields[1])
    for line in _espeak("--voices=variant").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 4:
            variants.append(fields[3])
    return sorted(set(languages)), sorted(set(variants))


@dataclass
class Utterance:
    """How one clip is spoken."""

    word: int
    voice: str
    speed: int  # words per minute (espeak-ng's default is 175)
    pitch: int  # 0-99 (default 50)


def speak(utterance: Utterance, scratch: Path, words: Sequence[str] = WORDS) -> np.ndarray:
    """The utterance (of `words[utterance.word]`) as float32 samples at SAMPLE_RATE, leading and
    trailing silence trimmed."""
    import soundfile

    path = scratch / "word.wav"
    _espeak("-v", utterance.voice, "-s", str(utterance.speed), "-p", str(utterance.pitch),
            "-w", str(path), words[utterance.word])
    samples, _ = soundfile.read(str(path), dtype="float32")
    loud = np.flatnonzero(np.abs(samples) > 0.02 * np.abs(samples).max(initial=1e-9))
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


def _colored_noise(rng: np.random.Generator, size: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum 1/f^exponent (0: white, 1: pink, 2: brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(size))
    frequencies = np.fft.rfftfreq(size)
    spectrum[1:] /= frequencies[1:] ** (exponent / 2)
    spectrum[0] = 0
    return np.fft.irfft(spectrum, size)


def background(kind: str, size: int, rng: np.random.Generator, words: list[np.ndarray]) -> np.ndarray:
    """`size` samples of background noise of one of `NOISES`, unit RMS."""
    if kind == "hum":
        t = np.arange(size) / SAMPLE_RATE
        mains = rng.choice([50.0, 60.0])
        noise = sum(rng.uniform(0.2, 1) * np.sin(2 * np.pi * k * mains * t + rng.uniform(0, 6.3)) for k in (1, 2, 3, 5))
        noise = noise + 0.1 * rng.standard_normal(size)
    elif kind == "babble":
        noise = np.zeros(size)
        for _ in range(3):
            other = words[rng.integers(len(words))][:size]
            start = rng.integers(size - len(other) + 1)
            noise[start : start + len(other)] += other / (np.abs(other).max() + 1e-9)
        noise += 0.01 * rng.standard_normal(size)
    else:
        noise = _colored_noise(rng, size, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def clip(word: np.ndarray, rng: np.random.Generator, words: list[np.ndarray]) -> np.ndarray:
    """The word at a random offset in 0.6-1.2 s (at least the word) of noise at 5-25 dB SNR."""
    size = max(len(word) + int(0.05 * SAMPLE_RATE), int(rng.uniform(0.6, 1.2) * SAMPLE_RATE))
    start = rng.integers(size - len(word) + 1)
    signal = np.zeros(size)
    signal[start : start + len(word)] = word / (np.abs(word).max() + 1e-9)
    word_rms = np.sqrt(np.mean(signal[start : start + len(word)] ** 2))
    snr_db = rng.uniform(5, 25)
    mixed = signal + background(str(rng.choice(NOISES)), size, rng, words) * word_rms * 10 ** (-snr_db / 20)
    return (0.9 * mixed / np.abs(mixed).max()).astype(np.float32)


def write_spoken_digits(
    target: Path,
    labeled: int = LABELED_PER_CLASS,
    unlabeled: int = UNLABELED_PER_CLASS,
    val: int = VAL_PER_CLASS,
    seed: int = SEED,
    words: Sequence[str] = WORDS,
) -> None:
    """Writes the data set into `target` (see the module docstring); counts are per class, and
    class `i` is `words[i]` (other words make another spoken-word data set the same way)."""
    import soundfile

    languages, variants = voices()
    rng = np.random.default_rng(seed)
    splits = [("train", labeled), ("unlabeled", unlabeled), ("val", val)]
    plan = [
        (split, Utterance(
            word,
            f"{rng.choice(languages)}+{rng.choice(variants)}" if variants else str(rng.choice(languages)),
            int(rng.integers(130, 231)),
            int(rng.integers(25, 76)),
        ))
        for split, count in splits
        for word in range(len(words))
        for _ in range(count)
    ]
    with tempfile.TemporaryDirectory() as scratch:
        spoken = [speak(utterance, Path(scratch), words) for _, utterance in plan]
    for index, ((split, utterance), word) in enumerate(zip(plan, spoken, strict=True)):
        label = str(utterance.word)
        folder = target / split / ("" if split == "unlabeled" else label)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{index:05d}.flac"
        soundfile.write(str(path), clip(word, rng, spoken), SAMPLE_RATE, subtype="PCM_16")
        if split != "val":
            linked = target / "train_all" / label / path.name
            linked.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, linked)
