"""Inference with a trained run (sesemi/ops/inference.py): the Predictor and predictions.csv."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from audio_samples import TINY_AUDIO_TRAINING, audio_tree, noise, tone, write
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from sesemi.config import register_configs, register_resolvers
from sesemi.datasets.images import read_image
from sesemi.errors import SesemiError
from sesemi.learners.classifier import Classifier
from sesemi.ops.inference import Predictor, _batches, inference, run_files
from sesemi.runner import execute
from sesemi.transforms.audio import frames, load_audio

# A tiny `audio method=supervised` run (TINY_AUDIO_TRAINING), 4 steps.
TINY_AUDIO = [*TINY_AUDIO_TRAINING, "run.num_iterations=4", "trainer.val_check_interval=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run folder of a 4-step `audio method=supervised` run on generated tones and chirps."""
    register_configs()
    register_resolvers()
    tree = audio_tree(tmp_path_factory.mktemp("data") / "sounds", train=2, val=1, unlabeled=0)
    with initialize_config_module("sesemi.configs", version_base="1.3"):
        config = compose("audio", ["method=supervised", f"run.data_root={tree.root}", *TINY_AUDIO])
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


def image_predictor(make_hparams) -> Predictor:
    """An untrained (seeded) tiny image classifier of the `image_tree` classes, 16 px inputs."""
    torch.manual_seed(0)
    model = Classifier(make_hparams(rotation=False))
    config = OmegaConf.create(
        {"data": {"val": {"dataset": {"image_transform": {
            "_target_": "sesemi.transforms.center_crop_transforms", "resize": 16, "crop_dim": 16}}}}}
    )
    return Predictor(model, config, ["blue", "green", "red"])


def test_images_go_through_the_validation_transform(make_hparams, image_tree):
    """The same predictor serves image runs: one window per image."""
    predictor = image_predictor(make_hparams)
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


def test_tta_averages_each_image_with_its_horizontal_flip(make_hparams, image_tree):
    """With tta the probabilities are the mean of the model's on the validation transform's
    tensor and on its mirror image; without, they are exactly the model's on the tensor."""
    predictor = image_predictor(make_hparams)
    paths = sorted((image_tree.root / "val").rglob("*.png"))
    transform = instantiate(predictor.config.data.val.dataset.image_transform)
    images = torch.stack([transform(read_image(str(path))) for path in paths])
    with torch.inference_mode():
        original, mirrored = (predictor.model(x).softmax(dim=1) for x in (images, images.flip(-1)))
    averaged = predictor.predict(paths, batch_size=8, tta=True)
    torch.testing.assert_close(averaged, (original + mirrored) / 2)
    assert not torch.allclose(averaged, original)
    assert torch.equal(predictor.predict(paths, batch_size=8), original)
    assert torch.equal(predictor.predict(paths, batch_size=8, tta=False), original)


def test_tta_leaves_a_left_right_symmetric_image_as_it_is(make_hparams, image_tree):
    """Horizontal stripes look the same mirrored, so their flip adds nothing."""
    paths = sorted((image_tree.root / "val" / "blue").glob("*.png"))
    pixels = np.asarray(Image.open(paths[0]))
    assert np.array_equal(pixels, pixels[:, ::-1])
    predictor = image_predictor(make_hparams)
    torch.testing.assert_close(predictor.predict(paths, tta=True), predictor.predict(paths))


def test_tta_averages_audio_windows_over_time_shifted_copies(trained, tmp_path):
    """Each window is also predicted delayed and advanced by the run's max_shift (zero-filled,
    as the training's TimeShift does), and the three are averaged before the windows are."""
    predictor = Predictor.from_run(trained, device="cpu")
    assert predictor.augmentation().max_shift == 0.1  # audio's weak view
    transform = "data.train.supervised.dataset.image_transform"
    OmegaConf.update(predictor.config, f"{transform}.max_shift", 0.2)
    path = write(tmp_path / "long.wav", np.concatenate([tone(300, 0.6), tone(2500, 0.6)]))
    windows = frames(torch.from_numpy(load_audio(path, 16000)), 8000, 4000)  # 0.5 s, hop 0.25 s
    n = 1600  # 0.2 of a window
    delayed = torch.nn.functional.pad(windows, (n, 0))[:, :-n]
    advanced = torch.nn.functional.pad(windows, (0, n))[:, n:]
    with torch.inference_mode():
        copies = [predictor.model(x).softmax(dim=1) for x in (windows, delayed, advanced)]
    expected = torch.stack(copies).mean(dim=0)
    averaged = predictor.predict_windows([path], batch_size=3, tta=True)[0]
    torch.testing.assert_close(averaged, expected)
    assert not torch.allclose(averaged, copies[0])
    torch.testing.assert_close(predictor.predict([path], tta=True)[0], expected.mean(dim=0))
    torch.testing.assert_close(predictor.predict_windows([path], batch_size=3)[0], copies[0])


def test_the_inference_config_s_tta_reaches_the_predictor(trained, tmp_path, monkeypatch):
    """`open_sesemi -cn ops/inference ... tta=true`: predictions.csv holds the averaged values."""
    write(tmp_path / "in" / "a.wav", np.concatenate([tone(300, 0.6), tone(2500, 0.6)]))
    overrides = [f"run={trained}", f"inputs={tmp_path / 'in'}", "device=cpu"]
    augmented = []  # the runs that made augmented copies
    augmentation = Predictor.augmentation
    monkeypatch.setattr(Predictor, "augmentation", lambda self: augmented.append(1) or augmentation(self))
    with initialize_config_module("sesemi.configs", version_base="1.3"):
        for name, tta in (("plain", False), ("tta", True)):
            config = compose("ops/inference", [*overrides, f"output_dir={tmp_path / name}", f"tta={tta}"])
            assert config.tta is tta
            instantiate(config)
            assert len(augmented) == int(tta)
    predictor = Predictor.from_run(trained, device="cpu")
    rows = {}
    for name in ("plain", "tta"):
        with open(tmp_path / name / "predictions.csv") as file:
            (row,) = csv.DictReader(file)
        rows[name] = torch.tensor([float(row[c]) for c in ("chirp", "high", "low")])
        expected = predictor.predict([tmp_path / "in" / "a.wav"], tta=name == "tta")[0]
        torch.testing.assert_close(rows[name], expected, atol=1e-5, rtol=1e-4)
