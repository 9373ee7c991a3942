"""The audio backbone (sesemi/models/backbones/audio.py): mel filterbank, log-mel, SpecAugment."""

from __future__ import annotations

import pytest
import torch

import sesemi
from sesemi.errors import SesemiError
from sesemi.models.backbones import AudioBackbone, LogMel, SpecAugment
from sesemi.models.backbones.audio import mel_filterbank


def _backbone(**kwargs) -> AudioBackbone:
    return AudioBackbone(sesemi.ConvNet((4, 8), in_chans=1), n_mels=32, **kwargs)


def test_mel_filterbank_matches_librosa():
    """librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=20, fmax=7600), values recorded
    from librosa 0.11 (its default Slaney scale and area normalization)."""
    bank = mel_filterbank(16000, 512, 40, 20.0, 7600.0)
    assert bank.shape == (257, 40)
    columns = [0, 10, 20, 39]
    expected_sums = torch.tensor([0.03290595, 0.03289478, 0.03209159, 0.03200499])
    expected_max = torch.tensor([0.01355004, 0.01353886, 0.00735059, 0.00189104])
    torch.testing.assert_close(bank[:, columns].sum(0), expected_sums, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(bank[:, columns].max(0).values, expected_max, rtol=1e-5, atol=1e-8)
    assert bank[:, columns].argmax(0).tolist() == [3, 26, 55, 226]


def test_mel_filterbank_rejects_impossible_frequencies():
    with pytest.raises(SesemiError, match="f_max"):
        mel_filterbank(16000, 512, 40, 0.0, 9000.0)


def test_log_mel_shape_and_a_tone_lands_in_its_band():
    frontend = LogMel(sample_rate=16000, win_ms=25, hop_ms=10, n_mels=64).eval()
    t = torch.arange(16000) / 16000
    low, high = torch.sin(2 * torch.pi * 300 * t), torch.sin(2 * torch.pi * 4000 * t)
    spectrograms = frontend(torch.stack([low, high]))
    assert spectrograms.shape == (2, 1, 64, 101)  # 1 s at 10 ms hops, centred frames
    assert frontend.n_fft == 512 and frontend.win_length == 400 and frontend.hop_length == 160
    bands = spectrograms[:, 0].mean(dim=2).argmax(dim=1)
    assert bands[0] < 15 < 40 < bands[1]


def test_frontend_buffers_are_not_in_checkpoints():
    assert set(_backbone().state_dict()) & {"frontend.window", "frontend.filterbank"} == set()


def test_the_frontend_runs_in_float32_under_autocast():
    backbone = _backbone().eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spectrograms = backbone.frontend(torch.randn(2, 8000))
    assert spectrograms.dtype == torch.float32


def test_spec_augment_masks_in_training_only():
    torch.manual_seed(0)
    augment = SpecAugment(freq_masks=2, freq_width=8, time_masks=2, time_width=0.2)
    spectrograms = torch.ones(8, 1, 32, 50)
    masked = augment.train()(spectrograms)
    zeroed = (masked == 0).float().mean(dim=(1, 2, 3))
    assert (zeroed > 0).all() and (zeroed < 0.8).all()
    assert not torch.equal(masked[0], masked[1])  # masks differ per example
    assert torch.equal(augment.eval()(spectrograms), spectrograms)


def test_backbone_features_and_eval_determinism():
    backbone = _backbone(spec_augment=SpecAugment())
    waveforms = torch.randn(3, 8000)
    assert backbone.out_features == 8 and backbone(waveforms).shape == (3, 8)
    backbone.eval()
    assert torch.equal(backbone(waveforms), backbone(waveforms))


def test_backbone_with_a_timm_encoder():
    encoder = sesemi.PyTorchImageModels("resnet18", in_chans=1)
    backbone = AudioBackbone(encoder, n_mels=32)
    assert backbone(torch.randn(2, 4000)).shape == (2, 512) and backbone.out_features == 512


def test_backbone_rejects_images():
    with pytest.raises(SesemiError, match="waveforms"):
        _backbone()(torch.randn(2, 3, 32, 32))


@pytest.mark.parametrize(
    ("widths", "shortest"),
    [((4, 8), 257), ((4, 8, 8), 480)],  # more than half an FFT of 512; 4 frames 160 samples apart
)
def test_clips_shorter_than_the_backbone_takes_are_one_line_errors(widths, shortest):
    """The shortest clip follows from the STFT (its reflection padding) and the encoder's pooling:
    one sample less fails with that length, not with the convolution's or the STFT's error."""
    backbone = AudioBackbone(sesemi.ConvNet(widths, in_chans=1), n_mels=32)
    assert backbone.min_samples == shortest
    assert backbone(torch.randn(2, shortest)).shape == (2, 8)
    with pytest.raises(SesemiError, match=rf"^clips of {shortest - 1} samples are too short .* at least {shortest} "):
        backbone(torch.randn(2, shortest - 1))
    assert backbone.encoder.training  # finding the length left the encoder in its mode


def test_the_encoder_needs_out_features():
    with pytest.raises(SesemiError, match="out_features"):
        AudioBackbone(torch.nn.Conv2d(1, 4, 3))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_frontend_runs_on_the_models_device():
    backbone = _backbone().cuda()
    assert backbone.frontend(torch.randn(2, 8000, device="cuda")).device.type == "cuda"
