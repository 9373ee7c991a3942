"""Inference with a trained run (sesemi/ops/inference.py): the Predictor and predictions.csv."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from audio_samples import audio_tree, noise, tone, write
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from sesemi.config import register_configs, register_resolvers
from sesemi.errors import SesemiError
from sesemi.learners.classifier import Classifier
from sesemi.ops.inference import Predictor, _batches, inference, run_files
from sesemi.runner import execute

# A tiny audio_supervised run: 4 steps of a 4-8 channel ConvNet on 16 mel bands.
TINY_AUDIO = [
    "run.num_iterations=4",
    "run.batch_size_per_gpu=4",
    "learner.hparams.model.backbone.encoder.widths=[4,8]",
    "learner.hparams.model.backbone.n_mels=16",
    "data.train.supervised.num_workers=0",
    "data.train.supervised.pin_memory=false",
    "data.train.supervised.dataset.image_transform.clip_seconds=0.5",
    "trainer.val_check_interval=2",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder of a 4-step audio_supervised run on generated tones and chirps."""
    register_configs()
    register_resolvers()
    tree = audio_tree(tmp_path_factory.mktemp("data") / "sounds", train=2, val=1, unlabeled=0)
    with initialize_config_module("sesemi.configs", version_base="1.3"):
        config = compose("audio_supervised", [f"run.data_root={tree.root}", *TINY_AUDIO])
    run_dir = tmp_path_factory.mktemp("run")
    execute(config, run_dir)
    return run_dir


def test_from_run_reads_labels_config_and_the_best_checkpoint(trained):
    predictor = Predictor.from_run(trained, device="cpu")
    assert predictor.labels == ["chirp", "high", "low"]
    assert predictor.audio and predictor.sample_rate == 16000 and predictor.clip_seconds == 0.5
    assert not predictor.model.training
    assert run_files(trained) == (trained, trained / "checkpoints" / "best.ckpt")
    assert run_files(trained, "last")[1].name == "last.ckpt"
    assert run_files(trained / "checkpoints" / "last.ckpt") == (trained, trained / "checkpoints" / "last.ckpt")


def test_ema_weights_are_what_the_checkpoint_holds(trained):
    """With the EMA callback the checkpoint's state_dict is the average (the raw weights are
    kept apart for resuming), so the predictor predicts with the EMA weights."""
    checkpoint = torch.load(trained / "checkpoints" / "best.ckpt", weights_only=True)
    assert "current_model_state" in checkpoint
    predictor = Predictor.from_run(trained, device="cpu")
    weight = predictor.model.state_dict()["head.fc.weight"]
    assert torch.equal(weight, checkpoint["state_dict"]["head.fc.weight"])


def test_long_recordings_are_averaged_over_sliding_windows(trained, tmp_path):
    """A 2 s recording in 0.5 s windows 0.25 s apart: 7 windows, and the file's probabilities
    are their mean; a short clip is one window."""
    predictor = Predictor.from_run(trained, device="cpu")
    long = write(tmp_path / "long.flac", np.concatenate([tone(300, 1.0), tone(2500, 1.0)]))
    short = write(tmp_path / "short.wav", tone(300, 0.3))
    windows = predictor.predict_windows([long, short], batch_size=3, hop_seconds=0.25)
    assert windows[0].shape == (7, 3) and windows[1].shape == (1, 3)
    probabilities = predictor.predict([long, short], batch_size=3, hop_seconds=0.25)
    torch.testing.assert_close(probabilities[0], windows[0].mean(dim=0))
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(2))


def test_batches_regroup_windows_across_files():
    items = [(0, torch.zeros(5, 2)), (1, torch.ones(1, 2)), (2, torch.full((3, 2), 2.0))]
    batches = list(_batches(iter(items), batch_size=4))
    assert [owners for owners, _ in batches] == [[(0, 4)], [(0, 1), (1, 1), (2, 2)], [(2, 1)]]
    assert [len(x) for _, x in batches] == [4, 4, 1]


def test_unreadable_files_are_named_or_skipped(trained, tmp_path):
    predictor = Predictor.from_run(trained, device="cpu")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"")
    good = write(tmp_path / "good.wav", noise(0.5))
    with pytest.raises(SesemiError, match=r"broken\.wav"):
        predictor.predict([good, broken])
    probabilities = predictor.predict([good, broken], on_error="skip")
    assert not probabilities[0].isnan().any() and probabilities[1].isnan().all()


def test_inference_writes_predictions_csv(trained, tmp_path):
    folder = tmp_path / "inputs"
    write(folder / "a.wav", tone(300, 2.0))
    write(folder / "nested" / "b.mp3", tone(2500, 0.5))
    (folder / "notes.txt").write_text("ignored")
    summary = inference(str(trained), str(folder), str(tmp_path / "out"), device="cpu")
    assert summary["files"] == 2 and summary["unreadable"] == 0
    with open(tmp_path / "out" / "predictions.csv") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["path", "label", "score", "chirp", "high", "low"]
    assert [row["path"].split("/")[-1] for row in rows] == ["a.wav", "b.mp3"]
    for row in rows:
        probabilities = [float(row[c]) for c in ("chirp", "high", "low")]
        assert sum(probabilities) == pytest.approx(1, abs=1e-4)
        assert float(row["score"]) == pytest.approx(max(probabilities), abs=1e-5)
    inference(str(trained), str(folder / "a.wav"), str(tmp_path / "windows"), device="cpu", per_window=True)
    with open(tmp_path / "windows" / "predictions.csv") as file:
        windows = list(csv.DictReader(file))
    assert [(w["start"], w["end"]) for w in windows][:2] == [("0.000", "0.500"), ("0.250", "0.750")]
    assert len(windows) == 7


def test_a_folder_without_a_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(SesemiError, match="no checkpoints"):
        Predictor.from_run(tmp_path)


def test_images_go_through_the_validation_transform(make_hparams, image_tree):
    """The same predictor serves image runs: one window per image."""
    model = Classifier(make_hparams(rotation=False))
    config = OmegaConf.create(
        {"data": {"val": {"dataset": {"image_transform": {
            "_target_": "sesemi.transforms.center_crop_transforms", "resize": 16, "crop_dim": 16}}}}}
    )
    predictor = Predictor(model, config, ["blue", "green", "red"])
    paths = sorted((image_tree.root / "val").rglob("*.png"))
    probabilities = predictor.predict(paths, batch_size=4)
    assert probabilities.shape == (6, 3) and not predictor.audio
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(6))
    assert predictor.accepts(paths[0]) and not predictor.accepts(image_tree.root / "x.wav")


def test_from_weights_builds_the_config_without_downloading_pretrained_weights(monkeypatch):
    """The weights replace pretrained ones, so `pretrained: true` in a config downloads nothing."""

    def no_download(*args):
        raise AssertionError("downloaded pretrained weights")

    monkeypatch.setattr("sesemi.models.backbones.timm.fetch_pretrained", no_download)
    backbone = {"_target_": "sesemi.PyTorchImageModels", "name": "resnet10t", "pretrained": True}
    hparams = {"num_classes": 2, "model": {"backbone": backbone, "supervised_loss": {"callable": {"_target_": "torch.nn.CrossEntropyLoss"}}}}
    weights = Classifier({**hparams, "model": {**hparams["model"], "backbone": {**backbone, "pretrained": False}}}).state_dict()
    predictor = Predictor.from_weights(weights, OmegaConf.create({"learner": {"hparams": hparams}}), ["a", "b"], "cpu")
    assert all(torch.equal(v, weights[k]) for k, v in predictor.model.state_dict().items())
    assert not predictor.model.training and predictor.labels == ["a", "b"]
    del weights["head.fc.weight"]
    with pytest.raises(SesemiError, match=r"the weights do not fit the model of the config \(.*head.fc.weight"):
        Predictor.from_weights(weights, OmegaConf.create({"learner": {"hparams": hparams}}), ["a", "b"], "cpu")
