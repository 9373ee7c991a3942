"""Safe checkpoint loading (sesemi/checkpoints.py)."""

from __future__ import annotations

import pickle

import pytest
import torch

from sesemi.checkpoints import load_weights, read_checkpoint
from sesemi.errors import SesemiError
from sesemi.learners.classifier import Classifier


@pytest.fixture
def model(make_hparams) -> Classifier:
    torch.manual_seed(0)
    return Classifier(make_hparams(num_classes=3))


def _save(model, path):
    torch.save({"state_dict": model.state_dict(), "global_step": 7}, path)
    return path


def test_strict_load_copies_every_weight(model, make_hparams, tmp_path):
    """A checkpoint of the same model loads strictly and reproduces its weights."""
    path = _save(model, tmp_path / "same.ckpt")
    torch.manual_seed(1)
    other = Classifier(make_hparams(num_classes=3))
    load_weights(other, path, strict=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(other.state_dict()[key], value)


def test_strict_mismatch_does_not_fit(model, make_hparams, tmp_path):
    """A checkpoint of a model with another number of classes is refused with "does not fit"."""
    path = _save(model, tmp_path / "three.ckpt")
    five = Classifier(make_hparams(num_classes=5))
    before = {k: v.clone() for k, v in five.state_dict().items()}
    with pytest.raises(SesemiError, match="does not fit") as error:
        load_weights(five, path, strict=True)
    assert "head.fc" in str(error.value)
    for key, value in five.state_dict().items():
        torch.testing.assert_close(value, before[key])  # nothing half-loaded


def test_non_strict_loads_the_matching_weights(model, make_hparams, tmp_path):
    """Fine-tuning: backbone weights load, a differently-shaped head keeps its own values."""
    path = _save(model, tmp_path / "three.ckpt")
    torch.manual_seed(2)
    five = Classifier(make_hparams(num_classes=5))
    head_before = five.head.fc.weight.clone()
    load_weights(five, path, strict=False)
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(five.backbone.state_dict()[key], value)
    torch.testing.assert_close(five.head.fc.weight, head_before)


def test_other_backbone_is_refused_even_non_strict(model, make_hparams, tmp_path):
    """A checkpoint sharing no weight with the model is an error, not a silent no-op."""
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(3)}}, path)
    with pytest.raises(SesemiError, match="does not fit"):
        load_weights(model, path, strict=False)


def test_garbage_file_is_a_sesemi_error(model, tmp_path):
    """Random bytes: a SesemiError naming the file."""
    path = tmp_path / "garbage.ckpt"
    path.write_bytes(b"\x00\x01 definitely not a checkpoint" * 50)
    with pytest.raises(SesemiError, match="garbage.ckpt"):
        load_weights(model, path)


def test_truncated_checkpoint_is_a_sesemi_error(model, tmp_path):
    """A checkpoint cut short (e.g. a killed copy) is a SesemiError."""
    full = _save(model, tmp_path / "full.ckpt").read_bytes()
    path = tmp_path / "cut.ckpt"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(SesemiError, match="cut.ckpt"):
        load_weights(model, path)


class Payload:
    """Unpickling this creates a file: proof that code from the checkpoint ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_object_is_refused_and_not_executed(model, tmp_path):
    """weights_only refuses arbitrary objects: a SesemiError, and the payload never runs."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": model.state_dict(), "extra": Payload(marker)}, path)
    with pytest.raises(SesemiError, match="evil.ckpt"):
        load_weights(model, path)
    assert not marker.exists()


def test_plain_pickle_file_is_refused(model, tmp_path):
    """A plain pickle (not torch.save) of an object is refused too."""
    marker = tmp_path / "pwned"
    path = tmp_path / "plain.ckpt"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(SesemiError):
        load_weights(model, path)
    assert not marker.exists()


def test_missing_file_and_missing_state_dict(model, tmp_path):
    """A missing path and a dict without state_dict are both explained."""
    with pytest.raises(SesemiError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.ckpt")
    torch.save({"weights": {}}, tmp_path / "odd.ckpt")
    with pytest.raises(SesemiError, match="state_dict"):
        read_checkpoint(tmp_path / "odd.ckpt")
