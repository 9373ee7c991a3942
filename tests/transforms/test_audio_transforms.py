"""Audio decoding, resampling, crops and waveform augmentations (sesemi/transforms/audio.py)."""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import pytest
import torch
from audio_samples import RATE, chirp, noise, tone, write
from torch.utils.data import default_collate

from sesemi.errors import SesemiError
from sesemi.transforms import (
    MultiView,
    eval_audio_transforms,
    strong_audio_transforms,
    weak_audio_transforms,
)
from sesemi.transforms.audio import (
    AddNoise,
    AudioReadError,
    CropOrPad,
    MixClips,
    RandomGain,
    SpeedChange,
    TimeShift,
    declared_frames,
    decode,
    frames,
    is_audio_file,
    load_audio,
    load_stretch,
    resample,
)


def _peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize(
    ("extension", "rate"),
    [
        ("wav", 22050), ("flac", 22050), ("ogg", 22050), ("opus", 48000), ("mp3", 22050), ("m4a", 22050), ("wma", 22050),
        ("caf", 22050), ("au", 22050), ("webm", 48000), ("mp4", 22050), ("m4b", 22050), ("3gp", 22050),
    ],
)
def test_every_format_decodes_to_mono_float32_at_its_rate(tmp_path, extension, rate):
    """Each format is listed as audio (a folder's files of it are read, not left out in silence)
    and decodes to mono float32 of about the written length, with the tone intact."""
    samples = tone(440, seconds=0.5, rate=rate)
    path = write(tmp_path / f"a.{extension}", samples, rate)
    assert is_audio_file(path)
    decoded, decoded_rate = decode(path)
    assert decoded_rate == rate and decoded.dtype == np.float32 and decoded.ndim == 1
    assert abs(len(decoded) - len(samples)) <= 0.1 * rate  # codecs pad or trim a few frames
    assert abs(_peak_hz(decoded, rate) - 440) < 10


def test_stereo_is_mixed_down_to_the_channel_mean(tmp_path):
    left, right = tone(440), tone(1000)
    decoded, _ = decode(write(tmp_path / "stereo.wav", np.stack([left, right], axis=1)))
    np.testing.assert_allclose(decoded, (left + right) / 2, atol=1e-4)


def test_resampling_keeps_the_duration_and_frequency():
    """22.05 kHz -> 16 kHz with soxr: 16000 samples per second, the tone where it was."""
    resampled = resample(tone(1000, seconds=1.0), 22050, 16000)
    assert len(resampled) == 16000 and resampled.dtype == np.float32
    assert abs(_peak_hz(resampled, 16000) - 1000) < 2
    same = tone(1000)
    assert resample(same, 22050, 22050) is same


def test_load_audio_resamples_a_file(tmp_path):
    samples = load_audio(write(tmp_path / "c.flac", chirp(200, 4000, seconds=0.5)), 16000)
    assert len(samples) == 8000


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "it holds no samples"), (b"not audio at all" * 64, None), (np.random.default_rng(0).bytes(5000), None)],
)
@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".flac"])
def test_unreadable_files_raise_audio_read_errors(tmp_path, content, reason, suffix):
    """A text file or random bytes named as a recording is not one, nor an empty one (FFmpeg
    takes random bytes for an MP3 of no frames); an MP3 one is not called a pipe (as
    libsndfile's words for it say) either."""
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(content)
    with pytest.raises(AudioReadError, match=reason) as raised:
        decode(path)
    assert "regular file" not in str(raised.value)
    assert content == b"" or str(raised.value) != "it holds no samples"


def test_a_missing_file_and_one_too_short_to_resample_are_unreadable(tmp_path):
    """A broken link says the file is not there (libsndfile says "System error"); a file of
    one sample at 44.1 kHz is none at 16 kHz, refused rather than used as silence."""
    import soundfile

    (tmp_path / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    with pytest.raises(AudioReadError, match=r"^it does not exist$"):
        decode(tmp_path / "gone.wav")
    soundfile.write(tmp_path / "blip.wav", np.full(1, 0.5), 44100)
    with pytest.raises(AudioReadError, match=r"^its 1 samples at 44100 Hz are none at 16000 Hz$"):
        load_audio(tmp_path / "blip.wav", 16000)


def test_a_rate_far_below_the_models_is_refused_not_stretched(tmp_path):
    """A header that says 8 Hz (damaged) would make two seconds over an hour of samples; 100 Hz
    data is not for a 16 kHz model. 250 Hz, a 64th, is read."""
    import soundfile

    for rate in (8, 100):
        soundfile.write(tmp_path / f"{rate}.wav", tone(2, seconds=2.0, rate=rate), rate)
        with pytest.raises(AudioReadError, match=rf"its sample rate, {rate} Hz, is under a 64th of the 16000 Hz"):
            load_audio(tmp_path / f"{rate}.wav", 16000)
    soundfile.write(tmp_path / "250.wav", tone(2, seconds=2.0, rate=250), 250)
    assert len(load_audio(tmp_path / "250.wav", 16000)) == 32000


def test_a_float_file_written_at_integer_scale_is_refused(tmp_path):
    """Float samples of 32767 are a 16-bit recording saved as floats unscaled: heard as noise at
    full volume, so refused in one line that says to rescale; a little over full scale is kept."""
    import soundfile

    samples = tone(300, 0.5, rate=16000)
    soundfile.write(tmp_path / "loud.wav", samples * 32767, 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "hot.wav", samples * 2.4, 16000, subtype="FLOAT")  # peak 1.2
    with pytest.raises(AudioReadError, match=r"^its samples reach 1638\d\S*, far outside \[-1, 1\].*rescale them"):
        decode(tmp_path / "loud.wav")
    assert np.abs(decode(tmp_path / "hot.wav")[0]).max() == pytest.approx(1.2, rel=1e-3)


@pytest.mark.parametrize("name", ["über ✓.wav", "über ✓.m4a"])
@pytest.mark.parametrize("content", [b"", b"no audio" * 50])
def test_why_a_file_is_unreadable_is_said_without_its_name(tmp_path, name, content):
    """The warnings name the file; the reason does not repeat it (as an escaped bytes literal)."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioReadError) as raised:
        decode(path)
    reason = str(raised.value)
    assert "ber" not in reason and "b'" not in reason and "\\x" not in reason
    if not content:
        assert reason == "it holds no samples"  # as docs/audio.md says


def test_gsm_wav_files_are_read(tmp_path):
    """libsndfile cannot seek in GSM 6.10 WAV files: they are read by their frame count."""
    import soundfile

    path = tmp_path / "gsm.wav"
    soundfile.write(path, tone(440, rate=8000), 8000, subtype="GSM610")
    samples = load_audio(path, 8000)
    assert len(samples) >= 4000 and abs(_peak_hz(samples, 8000) - 440) < 20


def test_a_file_without_samples_is_an_error(tmp_path):
    path = write(tmp_path / "empty.wav", np.zeros(0, np.float32))
    with pytest.raises(AudioReadError, match="no samples"):
        decode(path)


def test_a_multichannel_recording_is_mixed_down_block_by_block(tmp_path, monkeypatch):
    """An hour of a microphone array costs its mono samples in memory, not every channel at
    once; the mix is the channels' mean across the blocks' edges."""
    import tracemalloc

    import soundfile

    from sesemi.transforms import audio

    monkeypatch.setattr(audio, "BLOCK_FRAMES", 1000)
    path = write(tmp_path / "array.wav", np.stack([tone(110 * (c + 1), seconds=2.0) for c in range(8)], axis=1))
    tracemalloc.start()
    samples, rate = decode(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(samples, soundfile.read(path, dtype="float32")[0].mean(axis=1), atol=1e-6)
    assert rate == RATE and peak < 3 * samples.nbytes  # the eight channels read at once take 8x


def test_a_wav_whose_recorder_stopped_before_writing_its_sizes_is_read(tmp_path):
    """A recorder that loses power before closing its file leaves the RIFF and data sizes 0:
    libsndfile reads no frames of it, FFmpeg reads them all."""
    data = bytearray(write(tmp_path / "a.wav", tone(440, seconds=1.0)).read_bytes())
    sizes = data.find(b"data") + 4
    data[4:8] = data[sizes : sizes + 4] = bytes(4)
    (tmp_path / "unfinished.wav").write_bytes(bytes(data))
    samples, rate = decode(tmp_path / "unfinished.wav")
    assert rate == RATE and len(samples) == RATE and abs(_peak_hz(samples, RATE) - 440) < 20
    assert len(load_stretch(tmp_path / "unfinished.wav", RATE, RATE // 4)) == RATE  # a pool: read whole, then cut


def test_a_missing_audio_package_names_the_extra(monkeypatch, tmp_path):
    """Without soxr the error says how to install the audio extra."""
    import builtins

    real_import = builtins.__import__

    def no_soxr(name, *args, **kwargs):
        if name == "soxr":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_soxr)
    with pytest.raises(SesemiError, match=r"sesemi\[audio\]"):
        resample(tone(440), 22050, 16000)


def test_crop_or_pad_random_in_training_centred_in_evaluation():
    long, short = torch.arange(10.0), torch.ones(4)
    assert torch.equal(CropOrPad(4, random=False)(long), torch.tensor([3.0, 4, 5, 6]))
    assert torch.equal(CropOrPad(8, random=False)(short), torch.tensor([0.0, 0, 1, 1, 1, 1, 0, 0]))
    torch.manual_seed(0)
    starts = {int(CropOrPad(4)(long)[0]) for _ in range(50)}
    assert starts == set(range(7))  # every offset of a 4-sample crop of 10 samples
    padded = [CropOrPad(8)(short) for _ in range(50)]
    assert all(len(p) == 8 and p.sum() == 4 for p in padded)
    assert len({int(p.argmax()) for p in padded}) > 1  # the clip lands at different offsets


def test_gain_stays_in_its_decibel_range():
    torch.manual_seed(0)
    ones = torch.ones(100)
    gains = torch.stack([RandomGain(-6, 6)(ones)[0] for _ in range(200)])
    assert gains.min() >= 10 ** (-6 / 20) - 1e-6 and gains.max() <= 10 ** (6 / 20) + 1e-6
    assert gains.max() / gains.min() > 2  # the range is used


def test_time_shift_moves_the_signal_and_fills_zeros():
    torch.manual_seed(0)
    impulse = torch.zeros(100)
    impulse[50] = 1.0
    positions = {int(TimeShift(0.1)(impulse).argmax()) for _ in range(100)}
    assert min(positions) >= 40 and max(positions) <= 60 and len(positions) > 5
    assert TimeShift(0.1)(impulse).sum() == 1.0


def test_noise_is_added_at_the_drawn_snr():
    torch.manual_seed(0)
    signal = torch.from_numpy(tone(440, seconds=1.0))
    noisy = AddNoise(min_snr_db=10, max_snr_db=10)(signal)
    snr = 10 * torch.log10(signal.pow(2).mean() / (noisy - signal).pow(2).mean())
    assert abs(float(snr) - 10) < 0.5
    assert torch.equal(AddNoise(p=0.0)(signal), signal)
    assert AddNoise()(torch.zeros(100)).abs().sum() > 0  # silence still gets noise


def test_mix_clips_adds_an_earlier_clip_quieter():
    """The first clip has nothing to mix with; the second gets the first at the drawn SNR."""
    mix = MixClips(min_snr_db=6, max_snr_db=6, p=1.0)
    first, second = torch.from_numpy(tone(440)), torch.from_numpy(tone(1000))
    assert torch.equal(mix(first), first)
    added = mix(second) - second
    assert torch.allclose(added / added.abs().max(), first / first.abs().max(), atol=1e-5)
    ratio = 20 * torch.log10(second.pow(2).mean().sqrt() / added.pow(2).mean().sqrt())
    assert abs(float(ratio) - 6) < 0.1


def test_speed_change_moves_pitch_and_length_by_the_factor():
    """Played 1.25 times faster, a 440 Hz tone of 0.5 s is a 550 Hz tone of 0.4 s."""
    faster = SpeedChange(min_factor=1.25, max_factor=1.25)(torch.from_numpy(tone(440, seconds=0.5, rate=16000)))
    assert faster.dtype == torch.float32 and abs(len(faster) - 6400) <= 2
    assert abs(_peak_hz(faster.numpy(), 16000) - 550) < 5
    signal = torch.from_numpy(tone(440))
    assert torch.equal(SpeedChange(p=0.0)(signal), signal)
    with pytest.raises(SesemiError, match="0 < min_factor <= max_factor"):
        SpeedChange(min_factor=1.1, max_factor=0.9)


def test_the_views_change_speed_before_their_crop():
    """With a speed range the weak and strong views keep the clip length; without one they add no step."""
    weak = weak_audio_transforms(clip_seconds=0.5, sample_rate=16000)
    assert not any(isinstance(step, SpeedChange) for step in [*weak.transforms, *strong_audio_transforms(weak).transforms])
    clip = torch.from_numpy(noise(seconds=0.7, rate=16000))
    for view in (strong_audio_transforms(weak, speed=(0.8, 1.2)), weak_audio_transforms(0.5, 16000, speed=(0.8, 1.2))):
        assert isinstance(view.transforms[0], SpeedChange)
        assert view(clip).shape == (8000,)
    for build in (partial(strong_audio_transforms, weak), partial(weak_audio_transforms, 0.5, 16000)):
        with pytest.raises(SesemiError, match=r"two factors, \[min, max\]"):
            build(speed=(1.1,))


def test_weak_and_strong_views_plug_into_multiview():
    """Items ((weak, strong), label) collate to ([B, T], [B, T]) as FixMatch expects."""
    weak = weak_audio_transforms(clip_seconds=0.5, sample_rate=16000)
    view = MultiView([weak, strong_audio_transforms(weak)])
    clips = [torch.from_numpy(noise(seconds=s, rate=16000, seed=i)) for i, s in enumerate((0.3, 0.7, 0.5, 1.0))]
    (weak_batch, strong_batch), labels = default_collate([(view(c), -1) for c in clips])
    assert weak_batch.shape == strong_batch.shape == (4, 8000)
    assert not torch.equal(weak_batch, strong_batch)
    assert eval_audio_transforms(clip_seconds=0.5, sample_rate=16000)(clips[3]).shape == (8000,)


def test_frames_cover_the_recording_with_sliding_windows():
    waveform = torch.arange(1.0, 11.0)  # 10 samples
    windows = frames(waveform, window=4, hop=3)
    assert windows.tolist() == [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]]
    last_padded = frames(torch.arange(1.0, 12.0), window=4, hop=3)
    assert last_padded[-1].tolist() == [10, 11, 0, 0]
    assert frames(torch.ones(2), window=4, hop=2).tolist() == [[0, 1, 1, 0]]  # centred, as in eval
    # windows apart (hop > window): each starts inside the waveform, none is padding alone
    assert frames(torch.arange(1.0, 11.0), window=2, hop=4).tolist() == [[1, 2], [5, 6], [9, 10]]
    assert frames(torch.arange(1.0, 10.0), window=2, hop=4).tolist() == [[1, 2], [5, 6], [9, 0]]


# --- decode errors, reported per file ----------------------------------------------------------


def _damaged(path, cut: float | None = None, flip_at: float | None = None):
    """`path` cut to a fraction of its bytes, or with the byte at a fraction of its length flipped."""
    data = bytearray(path.read_bytes())
    if flip_at is not None:
        data[int(len(data) * flip_at)] ^= 0xFF
    if cut is not None:
        data = data[: int(len(data) * cut)]
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("extension", "damage", "reason"),
    [
        ("wav", {"cut": 0.5}, r"header declares 11025 frames, 5\d\d\d could be decoded"),
        ("flac", {"cut": 0.6}, "damaged"),
        ("flac", {"flip_at": 0.5}, "damaged"),
    ],
    ids=["truncated-wav", "truncated-flac", "corrupt-flac"],
)
def test_a_file_decoded_only_in_part_is_an_error(tmp_path, extension, damage, reason):
    """libsndfile reads a truncated WAV to its end and stops at a damaged FLAC frame: either
    way the file is refused, not returned short."""
    path = _damaged(write(tmp_path / f"a.{extension}", tone(440)), **damage)
    with pytest.raises(AudioReadError, match=reason):
        decode(path)


def test_a_truncated_file_is_refused_when_a_stretch_of_it_is_read(tmp_path):
    """A stretch read from its place (a pool not kept in memory) refuses a truncated WAV as
    decoding the whole file does, so a file is not read in one mode and skipped in the other."""
    truncated = _damaged(write(tmp_path / "a.wav", tone(440, seconds=2.0)), cut=0.5)
    with pytest.raises(AudioReadError, match=r"header declares 44100 frames, 2\d\d\d\d are there"):
        load_stretch(truncated, 22050, 4000)


def test_what_ffmpeg_decodes_for_libsndfile_is_checked(tmp_path, monkeypatch):
    """A file libsndfile cannot open goes to FFmpeg, which would decode around damaged frames
    and what is there of a truncated file: frame checksums and the header's count refuse them."""
    from sesemi.transforms import audio

    def cannot_open(path):
        raise audio._Unopened("Format not recognised")

    monkeypatch.setattr(audio, "_decode_soundfile", cannot_open)
    intact = write(tmp_path / "intact.flac", tone(440))
    assert len(decode(intact)[0]) == 11025
    damaged = _damaged(write(tmp_path / "damaged.flac", tone(440)), flip_at=0.5)
    with pytest.raises(AudioReadError, match="Invalid data"):  # a frame's checksum fails
        decode(damaged)
    truncated = _damaged(write(tmp_path / "truncated.wav", tone(440)), cut=0.5)
    with pytest.raises(AudioReadError, match="header declares 11025 frames"):
        decode(truncated)


def test_headers_declare_their_frames(tmp_path):
    assert declared_frames(write(tmp_path / "a.wav", tone(440))) == 11025
    assert declared_frames(write(tmp_path / "a.flac", tone(440))) == 11025
    assert declared_frames(write(tmp_path / "a.ogg", tone(440))) is None  # not an exact count
    assert declared_frames(tmp_path / "missing.wav") is None


def test_a_name_that_is_not_utf8_decodes(tmp_path):
    name = os.fsencode(tmp_path) + b"/t\xf6ne.flac"
    os.rename(write(tmp_path / "tone.flac", tone(440)), name)
    samples, rate = decode(os.fsdecode(name))
    assert len(samples) == 11025 and rate == 22050


def test_a_silent_recording_is_read_and_augmented_without_nan(tmp_path):
    """Silence is a recording like any other (its training is checked in tests/faults)."""
    samples, _ = decode(write(tmp_path / "silence.wav", np.zeros(11025, np.float32)))
    assert len(samples) == 11025 and not samples.any()
    strong = strong_audio_transforms(weak_audio_transforms(0.5, 22050))
    for _ in range(3):  # the second time, it is mixed with the first
        assert torch.isfinite(strong(torch.from_numpy(samples))).all()


def _plain_views(speed: tuple[float, float] = (1.0, 1.0)) -> MultiView:
    """A weak and a strong view whose outputs are stretches of their input (no gain, shift,
    noise or mixing), so where they were cut from can be read off a ramp."""
    weak = weak_audio_transforms(clip_seconds=1.0, sample_rate=100, gain_db=0, max_shift=0)
    return MultiView([weak, strong_audio_transforms(weak, p_noise=0, p_mix=0, speed=speed)])


def test_the_views_of_a_long_recording_are_of_one_moment():
    """Each view cropped the whole recording at its own place: the weak and the strong view of a
    10-minute recording were of any two moments, the pseudo-label of one taught to the other.
    They are now cut from one stretch of twice the longest view (here 100 samples)."""
    from sesemi.transforms.audio import input_samples

    views = _plain_views()
    assert [input_samples(view) for view in views.transforms] == [100, 100] and views.segment.length == 200
    assert input_samples(strong_audio_transforms(views.transforms[0], speed=(0.9, 1.1))) == 110
    ramp = torch.arange(100 * 600, dtype=torch.float32)  # 10 minutes at 100 Hz: sample i holds i
    torch.manual_seed(0)
    for _ in range(50):
        weak, strong = views(ramp)
        assert abs(float(weak[0]) - float(strong[0])) <= 100


def test_the_views_of_a_short_clip_are_as_before():
    """A clip no longer than the stretch is not cut and draws no random number: data sets of
    short clips train on exactly the views they did."""
    views = _plain_views(speed=(0.9, 1.1))
    clip = torch.randn(150)
    torch.manual_seed(1)
    got = views(clip)
    torch.manual_seed(1)
    expected = tuple(view(clip) for view in views.transforms)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize("extension", ["wav", "flac"])
def test_a_stretch_of_a_long_file_is_read_from_its_place(tmp_path, extension):
    """A clip of a long recording is read where it lies, not decoded with the rest of the file:
    a random stretch, drawn from torch's generator (the same under the same seed); a file no
    longer than the stretch is decoded whole without a draw."""
    from sesemi.transforms.audio import load_audio, load_stretch

    stereo = np.stack([np.linspace(-0.9, 0.9, 16000 * 30), np.zeros(16000 * 30)], axis=1).astype(np.float32)
    path = write(tmp_path / f"long.{extension}", stereo, rate=16000)  # 30 s, a ramp on the left channel
    whole = load_audio(path, 16000)
    torch.manual_seed(0)
    stretch = load_stretch(path, 16000, 2000)
    start = int(np.argmin(np.abs(whole - stretch[0])))
    assert stretch.shape == (2000,) and np.allclose(stretch, whole[start : start + 2000], atol=1e-4)
    torch.manual_seed(0)
    assert np.array_equal(load_stretch(path, 16000, 2000), stretch)
    assert load_stretch(path, 8000, 1000).shape == (1000,)  # resampled from 2000 frames of 16 kHz
    short = write(tmp_path / f"short.{extension}", tone(440, seconds=0.1, rate=16000), rate=16000)
    state = torch.get_rng_state()
    assert np.array_equal(load_stretch(short, 16000, 2000), load_audio(short, 16000))
    assert torch.equal(torch.get_rng_state(), state)
