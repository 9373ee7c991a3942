"""Safe checkpoint loading and checksums (sesemi/checkpoints.py)."""

from __future__ import annotations

import hashlib
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from sesemi.checkpoints import load_weights, read_checkpoint
from sesemi.errors import SesemiError
from sesemi.learners.classifier import Classifier
from sesemi.ownership import checksum_path, saved_by_sesemi
from sesemi.trainer import ChecksummedCheckpointIO


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
    with pytest.raises(SesemiError, match=r"evil.ckpt safely \(it names the Python object (builtins|io).open\)"):
        load_weights(model, path)
    assert not marker.exists()
    torch.save({"state_dict": {}, "extra": Payload}, path)  # a class of no module torch knows of
    with pytest.raises(SesemiError, match=r"it names the Python object test_checkpoints.Payload\)"):
        load_weights(model, path)


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


# --- checksums ---------------------------------------------------------------------------------


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _saved(model, path):
    """`path` saved by the checkpoint IO sesemi's trainer uses."""
    ChecksummedCheckpointIO().save_checkpoint({"state_dict": model.state_dict(), "global_step": 7}, path)
    return path


def test_a_saved_checkpoint_has_its_sha256_beside_it(model, tmp_path):
    """In `sha256sum`'s format, with a comment line that ties it to the file saved: a copy
    of both is not one sesemi saved (`sesemi rm-states` leaves it)."""
    path = _saved(model, tmp_path / "best.ckpt")
    digest, name = (tmp_path / "best.ckpt.sha256").read_text().splitlines()[0].split()
    assert name == "best.ckpt" and digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_checkpoint(path)["global_step"] == 7
    assert saved_by_sesemi(path)
    shutil.copy(path, tmp_path / "copy.ckpt")
    shutil.copy(checksum_path(path), checksum_path(tmp_path / "copy.ckpt"))
    assert not saved_by_sesemi(tmp_path / "copy.ckpt")
    read_checkpoint(tmp_path / "copy.ckpt")  # its checksum still checks the copy


def test_a_changed_checkpoint_is_a_one_line_error(model, tmp_path):
    """One flipped bit, which torch.load may well not notice, is refused before unpickling."""
    path = _saved(model, tmp_path / "best.ckpt")
    _flip_one_byte(path)
    with pytest.raises(SesemiError, match="best.ckpt changed since it was saved") as error:
        read_checkpoint(path)
    assert "\n" not in str(error.value)
    with pytest.raises(SesemiError, match="changed since it was saved"):
        ChecksummedCheckpointIO().load_checkpoint(path)  # how Lightning resumes from it


def test_a_checkpoint_without_a_checksum_loads_as_before(model, tmp_path):
    """Checkpoints of earlier releases and other tools have no checksum file."""
    path = _save(model, tmp_path / "old.ckpt")
    assert read_checkpoint(path)["global_step"] == 7
    assert ChecksummedCheckpointIO().load_checkpoint(path)["global_step"] == 7


def test_a_checksum_file_without_a_checksum_is_an_error(model, tmp_path):
    path = _save(model, tmp_path / "x.ckpt")
    (tmp_path / "x.ckpt.sha256").write_text("not a digest\n")
    with pytest.raises(SesemiError, match="holds no SHA-256; delete it"):
        read_checkpoint(path)


def test_saving_again_replaces_the_checksum_and_removing_removes_it(model, tmp_path):
    path = _saved(model, tmp_path / "last.ckpt")
    first = (tmp_path / "last.ckpt.sha256").read_text()
    io = ChecksummedCheckpointIO()
    io.save_checkpoint({"state_dict": model.state_dict(), "global_step": 8}, path)
    assert (tmp_path / "last.ckpt.sha256").read_text() != first
    assert read_checkpoint(path)["global_step"] == 8
    io.remove_checkpoint(path)
    assert list(tmp_path.iterdir()) == []


def test_a_save_cut_short_leaves_a_whole_checkpoint(model, tmp_path, monkeypatch):
    """A checkpoint is written beside its place and renamed there. Staged in $TMPDIR, as
    Lightning's writer does, it was moved by a copy where that is another file system, and a
    kill during the copy truncated the previous checkpoint (and left the staged file behind)."""
    import shutil
    import tempfile

    path = _saved(model, tmp_path / "run" / "last.ckpt")
    staging = tmp_path / "tmp"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))

    def killed_while_copying(source, target, *args, **kwargs):
        Path(target).write_bytes(Path(source).read_bytes()[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "move", killed_while_copying)
    try:
        ChecksummedCheckpointIO().save_checkpoint({"state_dict": model.state_dict(), "global_step": 8}, path)
    except KeyboardInterrupt:
        pass
    assert read_checkpoint(path)["global_step"] in (7, 8)
    assert list(staging.iterdir()) == []

    def killed_while_writing(checkpoint, file):
        file.write(b"PK")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        ChecksummedCheckpointIO().save_checkpoint({"state_dict": model.state_dict(), "global_step": 9}, path)
    monkeypatch.undo()
    assert read_checkpoint(path)["global_step"] in (7, 8)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".partial")]


def test_every_checkpoint_the_trainer_saves_is_recorded(trained_run):
    """The run's best and last checkpoints were saved with their checksums."""
    folder = trained_run.run_dir / "checkpoints"
    for name in ("best.ckpt", "last.ckpt"):
        digest = (folder / f"{name}.sha256").read_text().split()[0]
        assert digest == hashlib.sha256((folder / name).read_bytes()).hexdigest()


def test_a_runs_checkpoints_record_its_classes(trained_run):
    """A run fine-tuned from the checkpoint learns from it what its classification head means."""
    from sesemi.checkpoints import read_checkpoint, saved_classes

    path = trained_run.run_dir / "checkpoints" / "best.ckpt"
    checkpoint = read_checkpoint(path)
    assert checkpoint["SESEMIDataModule"]["classes"] == trained_run.tree.classes
    assert saved_classes(checkpoint, path) == trained_run.tree.classes


def test_a_checkpoint_of_an_earlier_release_without_pool_statistics_loads_strictly(tmp_path):
    """Pool statistics were not saved before: a checkpoint without them loads to evaluate or
    resume (`run.resume_from_checkpoint`), their buffers empty; a weight missing is refused."""
    from torch import nn

    from sesemi.models.heads.loss.pseudo_labels import PoolStatistics

    model = nn.ModuleDict({"fc": nn.Linear(2, 2), "pool": PoolStatistics(2, window=4)})
    earlier = {key: value for key, value in model.state_dict().items() if not key.startswith("pool.")}
    torch.save({"state_dict": earlier}, tmp_path / "earlier.ckpt")
    load_weights(model, tmp_path / "earlier.ckpt")
    assert model["pool"].summary() is None
    torch.save({"state_dict": {"fc.weight": earlier["fc.weight"]}}, tmp_path / "part.ckpt")
    with pytest.raises(SesemiError, match=r"1 weights are missing or differ in shape \(e.g. fc.bias\)"):
        load_weights(model, tmp_path / "part.ckpt")
