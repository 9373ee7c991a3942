"""Test-time augmentation (sesemi/tta.py): the copies and their average."""

from __future__ import annotations

import torch

from sesemi.transforms.audio import TimeShift
from sesemi.tta import Augmentation


def test_audio_copies_are_the_training_time_shift_at_its_extremes(monkeypatch):
    """The delayed and advanced copies are what TimeShift makes when it draws its largest shift."""
    waveforms = torch.randn(2, 100)
    augment = Augmentation(audio=True, max_shift=0.1)
    copies = augment(waveforms).split(2)
    assert augment.copies == len(copies) == 3 and torch.equal(copies[0], waveforms)
    for drawn, copy in ((10, copies[1]), (-10, copies[2])):
        monkeypatch.setattr(torch, "randint", lambda *args, drawn=drawn: torch.tensor(drawn))
        assert torch.equal(copy, TimeShift(0.1)(waveforms))


def test_image_copies_are_mirrored_along_the_width_and_averaged_per_input():
    images = torch.arange(12.0).view(2, 1, 2, 3)
    augment = Augmentation(audio=False)
    copies = augment(images)
    assert augment.copies == 2 and torch.equal(copies[2:], images.flip(-1))
    assert torch.equal(copies[2, 0, 0], torch.tensor([2.0, 1.0, 0.0]))
    outputs = torch.tensor([[1.0], [2.0], [3.0], [6.0]])  # inputs 0, 1, then their flips
    assert torch.equal(augment.mean(outputs), torch.tensor([[2.0], [4.0]]))
