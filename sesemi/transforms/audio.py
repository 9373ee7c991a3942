"""Audio: decoding to mono at a fixed sample rate, fixed-length crops, waveform augmentations.

Files are decoded with soundfile (libsndfile: wav, flac, ogg/vorbis, opus, mp3, aiff) or PyAV
(FFmpeg: m4a/aac, wma), mixed down to mono and resampled with soxr. A transform maps a waveform
`[T]` (float32 at the data set's sample rate) to a fixed-length one `[num_samples]`; the audio
backbone turns a batch `[B, num_samples]` into log-mel features on the device.

The weak/strong pair follows the waveform augmentations used for semi-supervised audio
classification (Wang et al., "USB: A Unified Semi-supervised Learning Benchmark", NeurIPS 2022,
https://arxiv.org/abs/2208.07204): the weak view is a random crop with a small gain change and
time shift, the strong view adds noise and a quieter second clip.
"""

from __future__ import annotations

import math
import os
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms import v2 as T

from sesemi.errors import SesemiError, first_line

SOUNDFILE_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".caf", ".au", ".snd", ".w64")
AV_EXTENSIONS = (".m4a", ".aac", ".wma", ".webm", ".mka", ".mp4", ".m4b", ".3gp")  # .3gp: phones' memos
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS + AV_EXTENSIONS


class AudioReadError(ValueError):
    """A file that cannot be decoded, or that holds no samples."""


def is_audio_file(path: str | Path) -> bool:
    return os.path.splitext(path)[1].lower() in AUDIO_EXTENSIONS


def _require(module: str) -> Any:
    """Imports an optional audio dependency, or says how to install it."""
    try:
        return __import__(module)
    except ImportError:
        raise SesemiError(
            f"reading audio needs the {module!r} package; install it with: pip install 'sesemi[audio]'"
        ) from None


def _native(path: Path) -> str | bytes:
    """The name libsndfile opens: the bytes of the name on POSIX, so that names that are not
    UTF-8 open too (soundfile encodes a str strictly)."""
    return str(path) if sys.platform == "win32" else os.fsencode(path)


class _Unopened(Exception):
    """libsndfile cannot open a file, or reads nothing of it, which FFmpeg may still read."""


def _reason(error: Exception) -> str:
    """A decoder's error in its own words, without the file name it repeats (as a bytes literal)."""
    words = getattr(error, "error_string", None) or getattr(error, "strerror", None)  # libsndfile's, FFmpeg's
    return str(words).rstrip(".") if words else first_line(error)


def _is_empty(path: Path) -> bool:
    """Whether `path` is a file of no bytes (False when it cannot be read: the decoders say why)."""
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _damaged(error: RuntimeError) -> AudioReadError:
    """libsndfile's error reading the data of a file it opened, in sesemi's words."""
    return AudioReadError(f"it is damaged: {first_line(error).removeprefix('Error : ').rstrip('.')}")


# Frames decoded at a time and mixed down: a long multichannel recording costs its mono samples,
# not all its channels at once (an hour of 8 channels at 48 kHz: 0.7 GB, not 5.5).
BLOCK_FRAMES = 2**18


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int]:
    """libsndfile's frames of a file, mixed down to mono as `(frames, 1)`."""
    soundfile = _require("soundfile")
    try:
        file = soundfile.SoundFile(_native(path))
    except (RuntimeError, OSError) as error:  # libsndfile's errors
        raise _Unopened(_reason(error)) from None
    with file:
        mono, done = np.empty(file.frames, np.float32), 0
        try:
            while done < file.frames:
                # A count, for files it cannot seek in (GSM 6.10 WAV): it reads no further without one.
                block = file.read(min(BLOCK_FRAMES, file.frames - done), dtype="float32", always_2d=True)
                if not len(block):
                    break
                mono[done : done + len(block)] = block.mean(axis=1)
                done += len(block)
        except RuntimeError as error:  # it knows the format, so the data is damaged
            raise _damaged(error) from None
        if not done:  # a WAV its recorder never finished (sizes 0): libsndfile believes them, FFmpeg reads on
            raise _Unopened("it holds no samples")
        if done < len(mono):  # fewer than the header said: not kept beside the memory it claimed
            mono = mono[:done].copy()
        return mono[:, None], file.samplerate


def _decode_av(path: Path, strict: bool = False) -> tuple[np.ndarray, int]:
    """Decodes with FFmpeg; `strict` refuses damaged frames (failed checksums) instead of
    decoding around them, for a file libsndfile could not open."""
    av = _require("av")
    with av.open(str(path)) as container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise AudioReadError("it has no audio stream")
        if strict:
            stream.codec_context.options = {"err_detect": "crccheck+explode"}
        to_float = av.AudioResampler(format="fltp")  # planar float: (channels, samples) per frame
        try:
            chunks = [
                converted.to_ndarray()
                for frame in container.decode(stream)
                for converted in to_float.resample(frame)
            ]
        except av.FFmpegError as error:
            if not strict:
                raise
            raise AudioReadError(f"it is damaged: {first_line(error)}") from None
        rate = stream.codec_context.sample_rate
    if not chunks:
        return np.zeros((0, 1), np.float32), rate
    return np.concatenate(chunks, axis=1).T, rate  # (frames, channels)


# WAV sample formats whose frames are all `block_align` bytes: PCM, IEEE float, A-law, mu-law.
_FIXED_SIZE_WAV_FORMATS = (1, 3, 6, 7)
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def declared_frames(path: str | Path) -> int | None:
    """The number of frames a WAV or FLAC file's header declares, or None (other formats, a
    header that does not say, or one that cannot be read).

    Decoders read what is there: libsndfile counts the frames of a truncated WAV by the file's
    size, and FFmpeg decodes what it can of a damaged FLAC; the header says what should be.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(12)
            if head[:4] == b"fLaC":
                return _flac_frames(head[4:] + file.read(30))
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                return _wav_frames(file)
    except OSError:
        return None
    return None


def _flac_frames(block: bytes) -> int | None:
    """The total samples of a FLAC STREAMINFO block (its 4-byte header, then 34 bytes)."""
    if len(block) < 38 or block[0] & 0x7F != 0:  # STREAMINFO is always the first block
        return None
    total = int.from_bytes(block[4 + 13 : 4 + 18], "big") & (2**36 - 1)  # bits 108-143
    return total or None  # 0: unknown


def _wav_frames(file: Any) -> int | None:
    """The frames of a WAV file's `data` chunk, read from its chunks after the RIFF header."""
    block_align = None
    while len(chunk := file.read(8)) == 8:
        name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
        if name == b"fmt ":
            fmt = file.read(size + size % 2)
            tag = int.from_bytes(fmt[0:2], "little")
            if tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
                tag = int.from_bytes(fmt[24:26], "little")  # the sub-format GUID starts with it
            if tag not in _FIXED_SIZE_WAV_FORMATS:
                return None
            block_align = int.from_bytes(fmt[12:14], "little")
        elif name == b"data":
            unknown = not block_align or size in (0, 2**32 - 1)  # streamed files may not say
            return None if unknown else size // block_align
        else:
            file.seek(size + size % 2, os.SEEK_CUR)
    return None


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """A file's samples mixed down to mono float32 `[T]`, and its sample rate.

    soundfile reads its formats; PyAV reads m4a/aac/wma and whatever libsndfile cannot open or
    reads no frames of (a WAV whose recorder never wrote its sizes), refusing frames whose
    checksums fail. A WAV or FLAC file must decode to as many frames as its header declares.

    Raises:
        AudioReadError: The file cannot be decoded, is truncated or damaged, or holds no samples.
    """
    path = Path(path)
    if not path.exists():  # the decoders would say "System error"
        raise AudioReadError("it does not exist")
    if _is_empty(path):
        raise AudioReadError("it holds no samples")
    try:
        if path.suffix.lower() in AV_EXTENSIONS:
            frames, rate = _decode_av(path)
        else:
            try:
                frames, rate = _decode_soundfile(path)
            except _Unopened as rejected:  # try FFmpeg
                try:
                    frames, rate = _decode_av(path, strict=True)
                except AudioReadError:
                    raise
                except Exception:
                    frames = None
                # Neither can decode it (FFmpeg takes random bytes for an MP3 of no frames): libsndfile's reason.
                if frames is None or not len(frames):
                    reason = str(rejected)
                    if "not a regular file" in reason:  # its words for an MP3 it cannot parse
                        reason = "Format not recognised"
                    raise AudioReadError(reason) from None
    except (AudioReadError, SesemiError):
        raise
    except Exception as error:  # FFmpeg's errors come in many types
        raise AudioReadError(_reason(error)) from None
    declared = declared_frames(path)
    if declared is not None and len(frames) != declared:
        raise AudioReadError(
            f"it is truncated or damaged: its header declares {declared} frames, {len(frames)} could be decoded"
        )
    return _mono(frames), int(rate)


# The highest |sample| a recording may reach, 6 dB over full scale: floats far beyond it were
# written at an integer scale (32767) and would be heard as noise at full volume.
LOUDEST = 2.0


def check_samples(samples: np.ndarray) -> np.ndarray:
    """`samples`, refused (`AudioReadError`) when there are none, or any is NaN or infinite, or far
    outside [-1, 1]."""
    if samples.size == 0:
        raise AudioReadError("it holds no samples")
    if not np.isfinite(samples).all():
        raise AudioReadError("it holds NaN or infinite samples")
    if (peak := max(float(samples.max()), -float(samples.min()))) > LOUDEST:  # no |samples| copy
        raise AudioReadError(
            f"its samples reach {peak:g}, far outside [-1, 1] (floats written at an integer scale?); rescale them to [-1, 1]"
        )
    return samples


def _mono(frames: np.ndarray) -> np.ndarray:
    """Frames `(frames, channels)` mixed down to mono float32 `[T]` (see `check_samples`)."""
    mixed = frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1)  # one channel: no copy
    return np.ascontiguousarray(check_samples(mixed), dtype=np.float32)


# The most a recording is upsampled: a rate under a 64th of the model's (250 Hz for 16 kHz) is a
# damaged header (8 Hz: a 2-second file would become over an hour) or data for another model.
MAX_UPSAMPLING = 64


def resample(samples: np.ndarray, rate: float, sample_rate: float) -> np.ndarray:
    """Resamples mono `samples` from `rate` to `sample_rate` with soxr (a no-op when equal)."""
    if rate == sample_rate:
        return samples
    if sample_rate > rate * MAX_UPSAMPLING:
        raise AudioReadError(
            f"its sample rate, {rate:g} Hz, is under a {MAX_UPSAMPLING}th of the {sample_rate:g} Hz it is read at: "
            "a damaged header, or a recording for a model of another sample_rate"
        )
    soxr = _require("soxr")
    resampled = soxr.resample(samples, rate, sample_rate).astype(np.float32, copy=False)
    if resampled.size == 0:  # too short a file: used as silence otherwise
        raise AudioReadError(f"its {len(samples)} samples at {rate:g} Hz are none at {sample_rate:g} Hz")
    return resampled


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """A file as mono float32 samples `[T]` at `sample_rate`.

    Raises:
        AudioReadError: The file cannot be decoded or holds no samples.
    """
    samples, rate = decode(path)
    return resample(samples, rate, sample_rate)


def load_stretch(path: str | Path, sample_rate: int, length: int) -> np.ndarray:
    """A random stretch of at most `length` samples at `sample_rate` of a longer file, read from
    its place (libsndfile seeks in WAV, FLAC, OGG and MP3) without decoding the rest of it: a
    clip of an hour-long recording costs its own second. A file no longer than that, or one
    libsndfile cannot seek in, is decoded whole (`load_audio`), and no random number is drawn.

    Raises:
        AudioReadError: The file cannot be decoded or holds no samples.
    """
    path = Path(path)
    if path.suffix.lower() not in AV_EXTENSIONS:
        try:
            file = _require("soundfile").SoundFile(_native(path))
        except (RuntimeError, OSError):
            file = None  # `load_audio` says why, or decodes it with FFmpeg
        if file is not None:
            with file:
                declared = declared_frames(path)
                if declared is not None and file.frames != declared:  # as `decode` refuses it
                    raise AudioReadError(
                        f"it is truncated or damaged: its header declares {declared} frames, {file.frames} are there"
                    )
                needed = math.floor(length * file.samplerate / sample_rate)
                room = file.frames - needed
                if room > 0 and file.seekable():
                    file.seek(int(torch.randint(room + 1, ())))
                    try:
                        frames = file.read(needed, dtype="float32", always_2d=True)
                    except RuntimeError as error:
                        raise _damaged(error) from None
                    return resample(_mono(frames), file.samplerate, sample_rate)[:length]
    return load_audio(path, sample_rate)


def num_samples(clip_seconds: float, sample_rate: int) -> int:
    return max(1, round(clip_seconds * sample_rate))


class CropOrPad:
    """Cuts or zero-pads a waveform `[T]` to `length` samples.

    Training takes a random segment of a long clip and puts a short one at a random offset;
    evaluation (`random=False`) takes the centre and pads both sides equally.
    """

    def __init__(self, length: int, random: bool = True):
        self.length = length
        self.random = random

    def _offset(self, room: int) -> int:
        return int(torch.randint(room + 1, ())) if self.random else room // 2

    def __call__(self, waveform: Tensor) -> Tensor:
        size = waveform.shape[-1]
        if size >= self.length:
            start = self._offset(size - self.length)
            return waveform[..., start : start + self.length]
        before = self._offset(self.length - size)
        return torch.nn.functional.pad(waveform, (before, self.length - size - before))


def _uniform(low: float, high: float) -> float:
    """A number drawn uniformly in `[low, high]` from torch's generator (seeded per worker)."""
    return low + (high - low) * float(torch.rand(()))


class RandomGain:
    """Scales the waveform by a gain drawn uniformly in `[min_db, max_db]` decibels."""

    def __init__(self, min_db: float = -6.0, max_db: float = 6.0):
        self.min_db, self.max_db = min_db, max_db

    def __call__(self, waveform: Tensor) -> Tensor:
        db = _uniform(self.min_db, self.max_db)
        return waveform * 10 ** (db / 20)


DEFAULT_MAX_SHIFT = 0.1  # the largest time shift, as a fraction of the clip


class TimeShift:
    """Delays or advances the waveform by up to `max_fraction` of its length, filling with zeros."""

    def __init__(self, max_fraction: float = DEFAULT_MAX_SHIFT):
        self.max_fraction = max_fraction

    def __call__(self, waveform: Tensor) -> Tensor:
        limit = int(self.max_fraction * waveform.shape[-1])
        return shift(waveform, int(torch.randint(-limit, limit + 1, ())) if limit > 0 else 0)


def shift(waveforms: Tensor, samples: int) -> Tensor:
    """Waveforms `[..., T]` delayed by `samples` (advanced when negative), filled with zeros."""
    if samples == 0:
        return waveforms
    shifted = torch.zeros_like(waveforms)
    if samples > 0:
        shifted[..., samples:] = waveforms[..., :-samples]
    else:
        shifted[..., :samples] = waveforms[..., -samples:]
    return shifted


class SpeedChange:
    """Plays the waveform faster or slower by a factor drawn in `[min_factor, max_factor]`, which
    moves its pitch by as much (speed perturbation: Ko et al., "Audio Augmentation for Speech
    Recognition", Interspeech 2015). The length changes by the inverse factor, so a crop to the
    clip length comes after it. Applied with probability `p`.
    """

    def __init__(self, min_factor: float = 0.9, max_factor: float = 1.1, p: float = 1.0):
        if not 0 < min_factor <= max_factor:
            raise SesemiError(f"speed factors need 0 < min_factor <= max_factor, got {min_factor}, {max_factor}")
        self.min_factor, self.max_factor, self.p = min_factor, max_factor, p

    def __call__(self, waveform: Tensor) -> Tensor:
        if float(torch.rand(())) >= self.p:
            return waveform
        factor = _uniform(self.min_factor, self.max_factor)
        return torch.from_numpy(resample(waveform.numpy(), factor, 1))  # as if recorded at factor Hz


def _rms(waveform: Tensor) -> Tensor:
    return waveform.pow(2).mean().sqrt()


def _snr_scale(signal: Tensor, other: Tensor, snr_db: float) -> Tensor:
    """The factor that puts `other` `snr_db` decibels below `signal` (by RMS)."""
    return _rms(signal) / (_rms(other) + 1e-8) * 10 ** (-snr_db / 20)


class AddNoise:
    """Adds white Gaussian noise at a signal-to-noise ratio drawn in `[min_snr_db, max_snr_db]`.

    Applied with probability `p`; a silent clip gets noise at `floor` RMS instead.
    """

    def __init__(self, min_snr_db: float = 10.0, max_snr_db: float = 30.0, p: float = 1.0, floor: float = 1e-3):
        self.min_snr_db, self.max_snr_db, self.p, self.floor = min_snr_db, max_snr_db, p, floor

    def __call__(self, waveform: Tensor) -> Tensor:
        if float(torch.rand(())) >= self.p:
            return waveform
        snr = _uniform(self.min_snr_db, self.max_snr_db)
        noise = torch.randn_like(waveform)
        scale = _snr_scale(waveform, noise, snr) if _rms(waveform) > 0 else self.floor
        return waveform + scale * noise


class MixClips:
    """Mixes in another clip of the data set, `[min_snr_db, max_snr_db]` decibels quieter.

    The other clip is drawn from the last `buffer_size` clips this transform has seen (per loader
    worker), so the label of the louder clip stays right. Applied with probability `p`.
    """

    def __init__(self, min_snr_db: float = 5.0, max_snr_db: float = 20.0, p: float = 0.5, buffer_size: int = 64):
        self.min_snr_db, self.max_snr_db, self.p = min_snr_db, max_snr_db, p
        self.buffer: deque[Tensor] = deque(maxlen=buffer_size)

    def __call__(self, waveform: Tensor) -> Tensor:
        mixed = waveform
        if self.buffer and float(torch.rand(())) < self.p:
            other = self.buffer[int(torch.randint(len(self.buffer), ()))]
            other = CropOrPad(waveform.shape[-1])(other)
            snr = _uniform(self.min_snr_db, self.max_snr_db)
            if _rms(other) > 0:
                mixed = waveform + _snr_scale(waveform, other, snr) * other
        self.buffer.append(waveform.detach().clone())
        return mixed


class Segment:
    """A random stretch of `length` samples of a longer waveform `[T]`; a waveform no longer
    passes unchanged, without a random draw."""

    def __init__(self, length: int):
        self.length = length

    def __call__(self, waveform: Tensor) -> Tensor:
        room = waveform.shape[-1] - self.length
        if room <= 0:
            return waveform
        start = int(torch.randint(room + 1, ()))
        return waveform[..., start : start + self.length]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(length={self.length})"


def input_samples(transform: Callable[[Tensor], Tensor] | None, speed: float = 1.0) -> int | None:
    """The samples of a waveform `transform` reads: the length of its first crop, times the
    largest speed factor before it (a faster clip is cut from a longer stretch). None when it is
    not known (a step of another kind first, or no crop)."""
    for step in transform.transforms if isinstance(transform, T.Compose) else [transform]:
        if isinstance(step, T.Compose):
            return input_samples(step, speed)
        if isinstance(step, SpeedChange):
            speed *= step.max_factor
        elif isinstance(step, CropOrPad):
            return math.ceil(round(step.length * speed, 6))  # 100 x 1.1 is 110, not 110.00000000000001
        else:
            return None
    return None


def _speed_change(speed: tuple[float, float]) -> list[Callable]:
    """A view's speed-change step for a `[min, max]` range of factors: none for (1, 1)."""
    if len(speed) != 2:
        raise SesemiError(f"speed takes two factors, [min, max] such as [0.9, 1.1], not {list(speed)}")
    return [] if speed[0] == speed[1] == 1 else [SpeedChange(*speed)]


def eval_audio_transforms(clip_seconds: float = 1.0, sample_rate: int = 16000) -> CropOrPad:
    """Evaluation: the centre `clip_seconds` of each clip (zero-padded when shorter)."""
    return CropOrPad(num_samples(clip_seconds, sample_rate), random=False)


def weak_audio_transforms(
    clip_seconds: float = 1.0,
    sample_rate: int = 16000,
    gain_db: float = 6.0,
    max_shift: float = DEFAULT_MAX_SHIFT,
    speed: tuple[float, float] = (1.0, 1.0),
) -> T.Compose:
    """Training and FixMatch's weak view: a random `clip_seconds` crop, a gain change, a time shift.

    Args:
        clip_seconds: The length of the output.
        sample_rate: The data set's sample rate.
        gain_db: The largest gain change in decibels, up or down (0: none).
        max_shift: The largest time shift as a fraction of the clip (0: none).
        speed: The range of speed (and pitch) factors, before the crop; (1, 1): none.
    """
    steps: list[Callable] = _speed_change(speed)
    steps.append(CropOrPad(num_samples(clip_seconds, sample_rate)))
    if gain_db > 0:
        steps.append(RandomGain(-gain_db, gain_db))
    if max_shift > 0:
        steps.append(TimeShift(max_shift))
    return T.Compose(steps)


def strong_audio_transforms(
    weak: Callable[[Tensor], Tensor],
    noise_snr_db: tuple[float, float] = (5.0, 30.0),
    p_noise: float = 0.8,
    mix_snr_db: tuple[float, float] = (5.0, 20.0),
    p_mix: float = 0.5,
    speed: tuple[float, float] = (1.0, 1.0),
) -> T.Compose:
    """A weak transform made strong: a speed change before it, Gaussian noise and a quieter
    second clip after it.

    Args:
        weak: A transform from a waveform to a fixed-length one (e.g. `weak_audio_transforms()`).
        noise_snr_db: The range of signal-to-noise ratios of the added noise.
        p_noise: The probability of adding noise.
        mix_snr_db: How much quieter the mixed-in clip is, in decibels.
        p_mix: The probability of mixing in a clip.
        speed: The range of speed (and pitch) factors; (1, 1): none.
    """
    return T.Compose([*_speed_change(speed), weak, AddNoise(*noise_snr_db, p=p_noise), MixClips(*mix_snr_db, p=p_mix)])


def frames(waveform: Tensor, window: int, hop: int) -> Tensor:
    """Sliding windows `[W, window]` over a waveform `[T]`, every one starting inside it; the
    last one is zero-padded.

    A waveform shorter than `window` gives one padded window, centred like the evaluation crop.
    """
    size = waveform.shape[-1]
    if size <= window:
        return CropOrPad(window, random=False)(waveform)[None]
    # to the end of the waveform, but no window of padding alone when windows are apart (hop > window)
    count = min(1 + math.ceil((size - window) / hop), 1 + (size - 1) // hop)
    padded = torch.nn.functional.pad(waveform, (0, (count - 1) * hop + window - size))
    return padded.unfold(0, window, hop)
