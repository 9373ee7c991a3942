"""The audio backbone: a log-mel frontend on the model's device, SpecAugment, an image encoder.

Waveforms `[B, T]` -> log-mel spectrograms `[B, 1, n_mels, frames]` (torch.stft and a mel
filterbank, batched, in float32 even under mixed precision, normalized per mel band by batch
norm as in PANNs) -> SpecAugment masks while training -> any encoder that takes one-channel
images, e.g. `sesemi.ConvNet(in_chans=1)` on a CPU or a timm CNN with `in_chans=1`.

Kong et al., "PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern
Recognition", 2020, https://arxiv.org/abs/1912.10211
Park et al., "SpecAugment: A Simple Data Augmentation Method for Automatic Speech Recognition",
Interspeech 2019, https://arxiv.org/abs/1904.08779
The mel scale and filterbank are Slaney's (Auditory Toolbox), as in librosa's defaults.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sesemi.errors import SesemiError
from sesemi.models.backbones.base import Backbone

_F_SP = 200.0 / 3  # Hz per mel below 1 kHz (linear part)
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = math.log(6.4) / 27.0  # mels per log-Hz above 1 kHz


def hz_to_mel(hz: Tensor) -> Tensor:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    linear = hz / _F_SP
    logarithmic = _MIN_LOG_MEL + torch.log(hz.clamp(min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return torch.where(hz >= _MIN_LOG_HZ, logarithmic, linear)


def mel_to_hz(mel: Tensor) -> Tensor:
    linear = mel * _F_SP
    logarithmic = _MIN_LOG_HZ * torch.exp(_LOG_STEP * (mel - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, logarithmic, linear)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> Tensor:
    """Triangular mel filters `[n_fft // 2 + 1, n_mels]`, area-normalized (librosa's `norm="slaney"`)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise SesemiError(f"mel frequencies need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}")
    fft_hz = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(
        torch.linspace(
            float(hz_to_mel(torch.tensor(f_min, dtype=torch.float64))),
            float(hz_to_mel(torch.tensor(f_max, dtype=torch.float64))),
            n_mels + 2,
            dtype=torch.float64,
        )
    )
    widths = edges.diff()  # [n_mels + 1]
    offsets = edges[:, None] - fft_hz[None, :]  # [n_mels + 2, n_freqs]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = torch.minimum(rising, falling).clamp(min=0)  # [n_mels, n_freqs]
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.T.float()


class LogMel(nn.Module):
    """Waveforms `[B, T]` -> log-mel spectrograms `[B, 1, n_mels, frames]`, normalized per band.

    Args:
        sample_rate: The waveforms' sample rate in Hz.
        win_ms: The STFT window (Hann) in milliseconds; the FFT size is the next power of two.
        hop_ms: The hop between frames in milliseconds.
        n_mels: The number of mel bands.
        f_min: The lowest band edge in Hz.
        f_max: The highest band edge in Hz (None: half the sample rate).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_mels: int = 64,
        f_min: float = 50.0,
        f_max: float | None = None,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.win_length = round(sample_rate * win_ms / 1000)
        self.hop_length = round(sample_rate * hop_ms / 1000)
        self.n_fft = 2 ** math.ceil(math.log2(self.win_length))
        self.n_mels = n_mels
        # Derived from the arguments, so not stored in checkpoints.
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        self.register_buffer(
            "filterbank", mel_filterbank(sample_rate, self.n_fft, n_mels, f_min, f_max), persistent=False
        )
        self.norm = nn.BatchNorm1d(n_mels)

    def forward(self, waveforms: Tensor) -> Tensor:
        with torch.autocast(waveforms.device.type, enabled=False):
            spectrum = torch.stft(
                waveforms.float(),
                self.n_fft,
                self.hop_length,
                self.win_length,
                self.window,
                center=True,
                pad_mode="reflect",
                return_complex=True,
            )  # [B, n_fft // 2 + 1, frames]
            mel = torch.matmul(self.filterbank.T, spectrum.abs().pow(2))  # [B, n_mels, frames]
            return self.norm(torch.log(mel + 1e-6))[:, None]


class SpecAugment(nn.Module):
    """Zeroes random frequency bands and time spans of each spectrogram while training.

    Each of `freq_masks` masks covers up to `freq_width` mel bands, each of `time_masks` masks
    up to `time_width` of the frames; positions and widths differ per example. Zero is the mean
    of the normalized log-mel input. In eval mode it is the identity.

    Args:
        freq_masks: Frequency masks per example.
        freq_width: The widest frequency mask, in mel bands.
        time_masks: Time masks per example.
        time_width: The widest time mask, as a fraction of the frames.
    """

    def __init__(self, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2, time_width: float = 0.1):
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    @staticmethod
    def _spans(batch: int, size: int, widest: int, count: int, device: torch.device) -> Tensor:
        """`[batch, size]`: True inside any of `count` random spans of up to `widest` positions."""
        positions = torch.arange(size, device=device)
        masked = torch.zeros(batch, size, dtype=torch.bool, device=device)
        for _ in range(count):
            width = torch.randint(0, widest + 1, (batch, 1), device=device)
            start = (torch.rand(batch, 1, device=device) * (size - width + 1)).long()
            masked |= (positions >= start) & (positions < start + width)
        return masked

    def forward(self, spectrograms: Tensor) -> Tensor:
        if not self.training:
            return spectrograms
        batch, _, bands, frames = spectrograms.shape  # [B, 1, n_mels, frames]
        device = spectrograms.device
        freq = self._spans(batch, bands, min(self.freq_width, bands), self.freq_masks, device)
        time = self._spans(batch, frames, int(self.time_width * frames), self.time_masks, device)
        masked = freq[:, :, None] | time[:, None, :]  # [B, n_mels, frames]
        return spectrograms.masked_fill(masked[:, None], 0.0)


def fewest_frames(encoder: nn.Module, n_mels: int, most: int = 4096) -> int | None:
    """The fewest spectrogram frames `encoder` takes (its strides and pooling shrink them, and
    fail when fewer than one is left), found by trying zeros `[1, 1, n_mels, frames]` in eval
    mode; None when not even `most` frames pass."""

    def takes(frames: int) -> bool:
        try:
            encoder(torch.zeros(1, 1, n_mels, frames, device=device, dtype=dtype))
        except Exception:  # too few frames left, or a size it does not take at all (a ViT's)
            return False
        return True

    parameter = next(encoder.parameters(), None)
    device, dtype = (parameter.device, parameter.dtype) if parameter is not None else ("cpu", torch.float32)
    training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            fits = 1
            while not takes(fits):  # doubling, then halving the gap to the last count that failed
                if fits >= most:
                    return None
                fits *= 2
            fails = fits // 2
            while fits - fails > 1:
                middle = (fails + fits) // 2
                fails, fits = (fails, middle) if takes(middle) else (middle, fits)
            return fits
    finally:
        encoder.train(training)


class AudioBackbone(Backbone):
    """Waveforms `(B, T)` -> features `(B, encoder.out_features)` through a log-mel frontend.

    Args:
        encoder: A backbone taking one-channel images `(B, 1, n_mels, frames)`, e.g.
            `sesemi.ConvNet(in_chans=1)` or `sesemi.PyTorchImageModels(name, in_chans=1)`.
        sample_rate: The waveforms' sample rate in Hz (the data set's `sample_rate`).
        win_ms: The STFT window in milliseconds.
        hop_ms: The hop between frames in milliseconds.
        n_mels: The number of mel bands.
        f_min: The lowest mel band edge in Hz.
        f_max: The highest mel band edge in Hz (None: half the sample rate).
        spec_augment: Masks applied in training (None: none).
        freeze: Whether to freeze the weights.

    Attributes:
        min_samples: The shortest clip it takes (`min_seconds` in seconds): shorter ones are refused
            in one line, not with an error of the STFT or of the encoder's pooling.
    """

    def __init__(
        self,
        encoder: nn.Module,
        sample_rate: int = 16000,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_mels: int = 64,
        f_min: float = 50.0,
        f_max: float | None = None,
        spec_augment: SpecAugment | None = None,
        freeze: bool = False,
    ):
        super().__init__()
        if not isinstance(getattr(encoder, "out_features", None), int):
            raise SesemiError(f"the audio encoder {type(encoder).__name__} has no integer out_features")
        self.frontend = LogMel(sample_rate, win_ms, hop_ms, n_mels, f_min, f_max)
        self.spec_augment = spec_augment if spec_augment is not None else nn.Identity()
        self.encoder = encoder
        self.sample_rate = sample_rate
        self.out_features: int = encoder.out_features
        self.min_samples = self._shortest_clip()
        if freeze:
            self.freeze()

    def _shortest_clip(self) -> int:
        """The fewest samples of a clip: more than half an FFT, which the STFT pads by reflection,
        and enough frames for the encoder (1 + samples // hop frames)."""
        stft = self.frontend.n_fft // 2 + 1
        frames = fewest_frames(self.encoder, self.frontend.n_mels)
        return stft if frames is None else max(stft, (frames - 1) * self.frontend.hop_length)

    @property
    def min_seconds(self) -> float:
        """The shortest clip in seconds, rounded up to the millisecond."""
        return -(-self.min_samples * 1000 // self.sample_rate) / 1000

    def forward(self, waveforms: Tensor) -> Tensor:
        if waveforms.dim() != 2:
            raise SesemiError(
                f"the audio backbone takes waveforms (batch, samples), not a tensor of shape "
                f"{tuple(waveforms.shape)}; read the data with the audio_folder/audio_file datasets"
            )
        if waveforms.shape[1] < self.min_samples:
            raise SesemiError(
                f"clips of {waveforms.shape[1]} samples are too short for the audio backbone, which takes at least "
                f"{self.min_samples} ({self.min_seconds:g} s at {self.sample_rate} Hz); set clip_seconds "
                f"(data.views.weak.clip_seconds) to at least {self.min_seconds:g}"
            )
        return self.encoder(self.spec_augment(self.frontend(waveforms)))
