"""Audio the tests make themselves: tones, chirps and noise, written in the common formats.

Import from test modules as `from audio_samples import ...` (tests/ is on sys.path, as for
conftest). Every clip is short and quiet enough to encode in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

RATE = 22050  # a rate the 16 kHz configs must resample from

# A tiny audio training run: 0.5 s clips, a 4-8 channel encoder on 16 mel bands, no progress
# output. Tests add the budget (run.num_iterations, trainer.val_check_interval) and loaders.
TINY_AUDIO_TRAINING = [
    "run.batch_size_per_gpu=4",
    "learner.hparams.model.backbone.encoder.widths=[4,8]",
    "learner.hparams.model.backbone.n_mels=16",
    "data.train.supervised.num_workers=0",
    "data.train.supervised.pin_memory=false",
    "data.views.weak.clip_seconds=0.5",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]

# soundfile's formats by extension, and the arguments that write them.
SOUNDFILE_FORMATS = {
    "wav": {},
    "flac": {},
    "ogg": {"format": "OGG", "subtype": "VORBIS"},
    "opus": {"format": "OGG", "subtype": "OPUS"},
    "mp3": {"format": "MP3"},
    "caf": {"format": "CAF"},
    "au": {"format": "AU"},
}
# PyAV's: (container format, codec).
AV_FORMATS = {
    "m4a": ("mp4", "aac"), "mp4": ("mp4", "aac"), "m4b": ("mp4", "aac"), "3gp": ("3gp", "aac"),
    "wma": ("asf", "wmav2"), "webm": ("webm", "libopus"),
}


def tone(frequency: float, seconds: float = 0.5, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def chirp(low: float, high: float, seconds: float = 0.5, rate: int = RATE) -> np.ndarray:
    """A sine sweeping linearly from `low` to `high` Hz."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * (low * t + (high - low) * t**2 / (2 * seconds))
    return (0.5 * np.sin(phase)).astype(np.float32)


def noise(seconds: float = 0.5, rate: int = RATE, seed: int = 0) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def write(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    """Writes mono `[T]` or multichannel `[T, C]` samples in the format of `path`'s extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extension = path.suffix.lstrip(".")
    if extension in AV_FORMATS:
        _write_av(path, samples, rate, *AV_FORMATS[extension])
    else:
        import soundfile

        if extension == "opus" and rate not in (8000, 12000, 16000, 24000, 48000):
            raise ValueError("opus takes 8, 12, 16, 24 or 48 kHz")
        soundfile.write(str(path), samples, rate, **SOUNDFILE_FORMATS[extension])
    return path


def _write_av(path: Path, samples: np.ndarray, rate: int, container_format: str, codec: str) -> None:
    import av

    planar = np.ascontiguousarray(np.atleast_2d(samples.T if samples.ndim == 2 else samples))
    layout = "mono" if planar.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        stream.bit_rate = 64000
        frame = av.AudioFrame.from_ndarray(planar.astype(np.float32), format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


# Each class is a sound that is easy to tell apart from the others.
CLASS_SOUNDS = {
    "chirp": lambda i: chirp(300, 3000 + 100 * i),
    "high": lambda i: tone(2500 + 50 * i),
    "low": lambda i: tone(300 + 10 * i),
}


class AudioTree(NamedTuple):
    """A generated audio data set in the standard layout (see `audio_tree`)."""

    root: Path
    classes: list[str]
    train_per_class: int
    val_per_class: int
    unlabeled: int


def audio_tree(root: Path, train: int = 3, val: int = 2, unlabeled: int = 4) -> AudioTree:
    """`root` with train/<class>/, val/<class>/ and unlabeled/ clips of 0.5 s at 22.05 kHz,
    classes chirp, high and low, in wav, flac and ogg."""
    extensions = ("wav", "flac", "ogg")
    for split, count in (("train", train), ("val", val)):
        for name, sound in CLASS_SOUNDS.items():
            for i in range(count):
                write(root / split / name / f"{split}{i}.{extensions[i % 3]}", sound(i))
    sounds = list(CLASS_SOUNDS.values())
    for i in range(unlabeled):
        write(root / "unlabeled" / f"u{i}.{extensions[i % 3]}", sounds[i % 3](i + 5))
    return AudioTree(root, sorted(CLASS_SOUNDS), train, val, unlabeled)
