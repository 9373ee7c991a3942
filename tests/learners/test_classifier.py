"""The Classifier LightningModule (sesemi/learners/classifier.py)."""

from __future__ import annotations

import functools
import warnings

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset

from sesemi.collation import RotationTransformer
from sesemi.errors import SesemiError
from sesemi.learners.classifier import Classifier, Reduction


@pytest.fixture(autouse=True)
def _quiet():
    """Lightning warns when a module logs outside a Trainer; that is expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _batch(batch_size: int = 4, rotation_size: int = 2, num_classes: int = 3, side: int = 8):
    torch.manual_seed(0)
    images = torch.rand(batch_size, 3, side, side)
    labels = torch.arange(batch_size) % num_classes
    unlabeled = [(torch.rand(3, side, side), -1) for _ in range(rotation_size)]
    return {"supervised": (images, labels), "rotation_prediction": RotationTransformer()(unlabeled)}


def _step(model: Classifier, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Runs training_step outside a Trainer and returns (loss, logged values)."""
    logged: dict[str, torch.Tensor] = {}
    model.log_dict = lambda values, **kwargs: logged.update(values)
    model.log = lambda name, value, **kwargs: logged.update({name: value})
    return model.training_step(batch, 0), logged


def test_training_step_on_a_dict_batch(make_hparams):
    """Supervised + rotation: a finite loss equal to the sum of the logged terms."""
    model = Classifier(make_hparams())
    loss, logs = _step(model, _batch())
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert {"train/supervised_loss", "train/rotation_prediction_loss", "train/loss"} <= set(logs)
    torch.testing.assert_close(loss, logs["train/supervised_loss"] + logs["train/rotation_prediction_loss"])
    loss.backward()
    assert model.head.fc.weight.grad.abs().sum() > 0
    assert model.loss_heads["rotation_prediction"].fc.weight.grad.abs().sum() > 0
    assert model.backbone.encoder[0][0].weight.grad.abs().sum() > 0


def test_supervised_loss_is_cross_entropy_of_the_logits(make_hparams):
    """The supervised term is the mean cross-entropy of the model's logits on the labels."""
    model = Classifier(make_hparams(rotation=False)).eval()
    batch = _batch()
    loss, logs = _step(model, batch)
    images, labels = batch["supervised"]
    expected = torch.nn.functional.cross_entropy(model(images), labels)
    torch.testing.assert_close(logs["train/supervised_loss"], expected)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("fuse_labeled, expected", [(True, [4 + 4 * 2]), (False, [4, 4 * 2])])
def test_labeled_batch_joins_the_heads_pass_only_when_fused(make_hparams, fuse_labeled, expected):
    """fuse_labeled: one forward pass for all inputs; by default the labeled batch gets its own
    (so its batch-norm statistics are its own, as in supervised training)."""
    hparams = make_hparams()
    hparams["model"]["fuse_labeled"] = fuse_labeled
    model = Classifier(hparams)
    sizes: list[int] = []
    model.backbone.register_forward_hook(lambda module, inputs, output: sizes.append(len(inputs[0])))
    _step(model, _batch(batch_size=4, rotation_size=2))
    assert sizes == expected


def test_reduction_scale_factor_and_scheduler_weight_the_terms(make_hparams):
    """"sum" adds per-sample losses, scale_factor multiplies, and the schedule's weight applies."""
    hparams = make_hparams()
    mean_model = Classifier(hparams)
    state = mean_model.state_dict()
    _, mean_logs = _step(mean_model, _batch())

    hparams["model"]["supervised_loss"].update(reduction="sum", scale_factor=2.0)
    hparams["model"]["regularization_loss_heads"]["rotation_prediction"]["scheduler"] = {
        "_target_": "sesemi.schedulers.LinearRampupScheduler",
        "stop": 10,
    }
    weighted = Classifier(hparams)
    weighted.load_state_dict(state)
    loss, logs = _step(weighted, _batch())
    torch.testing.assert_close(logs["train/supervised_loss"], 2.0 * 4 * mean_logs["train/supervised_loss"])
    assert "train/rotation_prediction_loss" not in logs  # ramp-up weight 0 at step 0: skipped
    torch.testing.assert_close(loss, logs["train/supervised_loss"])


@pytest.mark.parametrize(("step", "sizes"), [(0, [2 * 4]), (3, [4])])
def test_a_term_weighted_zero_is_not_encoded(make_hparams, monkeypatch, step, sizes):
    """A pretext phase then a supervised one: before step 3 only the rotation images are
    encoded, from step 3 only the labeled batch (a term with weight 0 costs nothing)."""
    hparams = make_hparams()
    hparams["model"]["supervised_loss"]["scheduler"] = {"_target_": "sesemi.schedulers.LinearRampupScheduler", "stop": 0, "delay": 3}
    hparams["model"]["regularization_loss_heads"]["rotation_prediction"]["scheduler"] = {
        "_target_": "sesemi.schedulers.UntilScheduler",
        "stop": 3,
    }
    model = Classifier(hparams)
    monkeypatch.setattr(Classifier, "global_step", property(lambda self: step))
    encoded: list[int] = []
    model.backbone.register_forward_hook(lambda module, inputs, output: encoded.append(len(inputs[0])))
    loss, logs = _step(model, _batch(batch_size=4, rotation_size=2))
    assert encoded == sizes and torch.isfinite(loss)
    assert ("train/supervised_loss" in logs) == (step >= 3)


def test_rotation_only_training_without_supervised_loss(make_hparams):
    """supervised_loss: null with a rotation head trains the backbone (self-supervised)."""
    model = Classifier(make_hparams(supervised=False))
    assert model.supervised_loss is None
    batch = _batch()
    del batch["supervised"]
    loss, logs = _step(model, batch)
    assert torch.isfinite(loss) and "train/supervised_loss" not in logs
    torch.testing.assert_close(loss, logs["train/rotation_prediction_loss"])
    loss.backward()
    assert model.backbone.encoder[0][0].weight.grad.abs().sum() > 0


def test_nothing_to_train_is_a_sesemi_error(make_hparams):
    """No supervised loss and no loss heads: refused at construction."""
    with pytest.raises(SesemiError, match="nothing to train"):
        Classifier(make_hparams(supervised=False, rotation=False))


@pytest.mark.parametrize("where", ["supervised_loss", "regularization_loss_heads.rotation_prediction"])
def test_bad_reduction_is_a_sesemi_error(make_hparams, where):
    """A reduction other than mean/sum is reported in one line with the valid choices."""
    hparams = make_hparams()
    if where == "supervised_loss":
        hparams["model"]["supervised_loss"]["reduction"] = "median"
    else:
        hparams["model"]["regularization_loss_heads"]["rotation_prediction"]["reduction"] = "median"
    with pytest.raises(SesemiError) as error:
        Classifier(hparams)
    assert str(error.value) == f"{where}.reduction must be one of mean, sum, not 'median'"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"thresholding": "flex"}, "thresholding must be one of fixed, flexmatch, freematch, softmatch, not 'flex'"),
        ({"threshold": 0.7, "min_threshold": 0.8}, "min_threshold 0.8 is above threshold 0.7"),
    ],
)
def test_a_loss_head_option_mistake_is_a_sesemi_error_naming_the_entry(make_hparams, options, message):
    """A head refusing its options is reported as one line that says which entry it is."""
    hparams = make_hparams(rotation=False)
    head = {"_target_": "sesemi.models.heads.loss.FixMatchLossHead", "input_data": "fixmatch", **options}
    hparams["model"]["regularization_loss_heads"] = {"fixmatch": {"head": head}}
    with pytest.raises(SesemiError) as error:
        Classifier(hparams)
    assert str(error.value).startswith(f"regularization_loss_heads.fixmatch.head: {message}")
    assert "\n" not in str(error.value)


def test_loss_head_must_be_a_loss_head(make_hparams):
    """A head target that is not a LossHead is a SesemiError naming the entry."""
    hparams = make_hparams()
    hparams["model"]["regularization_loss_heads"]["rotation_prediction"]["head"] = {
        "_target_": "torch.nn.Identity"
    }
    with pytest.raises(SesemiError, match="rotation_prediction"):
        Classifier(hparams)


def test_plain_mapping_hparams_use_schema_defaults(make_hparams):
    """hparams may be a plain mapping (documented); omitted fields take the schema defaults
    (reduction "mean", scale_factor 1.0) instead of failing with an OmegaConf error."""
    hparams = make_hparams()
    explicit = Classifier(hparams)  # reduction "mean" and scale_factor 1.0, written out
    for term in (hparams["model"]["supervised_loss"], hparams["model"]["regularization_loss_heads"]["rotation_prediction"]):
        del term["reduction"], term["scale_factor"]
    model = Classifier(hparams)
    model.load_state_dict(explicit.state_dict())
    weightings = [model.supervised_weighting, *model.loss_weightings.values()]
    assert all(w.reduction is Reduction.MEAN and w.scale_factor == 1.0 for w in weightings)
    loss, logs = _step(model, _batch())
    expected, expected_logs = _step(explicit, _batch())
    torch.testing.assert_close(loss, expected)
    assert logs.keys() == expected_logs.keys()


def test_frozen_backbone_is_not_optimized(make_hparams):
    """With a frozen backbone only the heads' parameters reach the optimizer."""
    model = Classifier(make_hparams(freeze=True))
    optimizer = model.configure_optimizers()
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not optimized & {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in model.head.parameters()} <= optimized


def test_lr_scheduler_config_is_passed_to_lightning(make_hparams):
    """lr_scheduler builds the scheduler on the optimizer with Lightning's settings."""
    hparams = make_hparams()
    hparams["lr_scheduler"] = {
        "scheduler": {"_target_": "sesemi.PolynomialLR", "max_iters": 10, "warmup_lr": 0.01, "warmup_epochs": 1, "iters_per_epoch": 2},
        "interval": "step",
        "frequency": 1,
    }
    config = Classifier(hparams).configure_optimizers()
    scheduler = config["lr_scheduler"]["scheduler"]
    assert scheduler.optimizer is config["optimizer"]
    assert config["optimizer"].param_groups[0]["lr"] == pytest.approx(0.01)
    assert config["lr_scheduler"]["interval"] == "step"


@pytest.mark.parametrize("num_classes, has_top5", [(3, False), (6, True)])
def test_metrics_top5_only_with_more_than_five_classes(make_hparams, num_classes, has_top5):
    """Top-5 accuracy is reported only where it is not trivially 1."""
    model = Classifier(make_hparams(num_classes=num_classes))
    assert ("top5" in model.metrics["val"]) is has_top5
    assert model.head.fc.out_features == num_classes


def _loaders(num_classes: int = 3, size: int = 12):
    torch.manual_seed(0)
    images = torch.rand(size, 3, 8, 8)
    labels = torch.arange(size) % num_classes
    data = TensorDataset(images, labels)
    train = {
        "supervised": DataLoader(data, batch_size=4),
        "rotation_prediction": DataLoader(data, batch_size=2, collate_fn=RotationTransformer()),
    }
    return train, DataLoader(data, batch_size=6)


def _trainer(tmp_path, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        num_sanity_val_steps=0,
        **kwargs,
    )


def test_fit_logs_losses_and_validation_metrics(make_hparams, tmp_path):
    """In a real Trainer: training losses and val/top1, val/loss, per-class accuracy are reported."""
    model = Classifier(make_hparams())
    train, val = _loaders()
    trainer = _trainer(tmp_path, max_steps=3, limit_val_batches=2, val_check_interval=3)
    trainer.fit(model, train_dataloaders=train, val_dataloaders=val)
    metrics = trainer.callback_metrics
    assert {"train/supervised_loss", "train/rotation_prediction_loss", "train/loss", "val/top1", "val/loss"} <= set(metrics)
    assert 0.0 <= float(metrics["val/top1"]) <= 1.0
    assert len(model.per_class_accuracy) == 3
    assert model.validated_at_step == trainer.global_step == 3


def test_a_class_without_validation_examples_has_no_accuracy_rather_than_zero(make_hparams, tmp_path):
    """A validation set may lack a class: its accuracy is None (not measured), not a 0 that reads
    as every example wrong."""
    model = Classifier(make_hparams())
    train, _ = _loaders()
    images, labels = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 0, 1, 0, 1])  # no class 2
    _trainer(tmp_path, max_steps=1).validate(model, DataLoader(TensorDataset(images, labels), batch_size=3), verbose=False)
    assert model.per_class_accuracy[2] is None
    assert all(0.0 <= value <= 1.0 for value in model.per_class_accuracy[:2])


def test_checkpoint_loads_with_weights_only(make_hparams, tmp_path):
    """save_hyperparameters stores plain containers: a Lightning checkpoint of a tiny fit loads
    with torch.load(weights_only=True) and rebuilds the same model."""
    model = Classifier(make_hparams())
    train, _ = _loaders()
    trainer = _trainer(tmp_path, max_steps=2, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=train)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["hparams"]["num_classes"] == 3
    assert type(checkpoint["hyper_parameters"]["hparams"]["model"]) is dict
    restored = Classifier.load_from_checkpoint(path, weights_only=True)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(restored.state_dict()[key], value)


def test_hparams_survive_torch_save_weights_only(make_hparams, tmp_path):
    """The saved hyperparameters are plain dicts/lists (no DictConfig objects)."""
    model = Classifier(make_hparams())
    torch.save(dict(model.hparams), tmp_path / "hparams.pt")
    loaded = torch.load(tmp_path / "hparams.pt", weights_only=True)
    assert loaded["hparams"]["model"]["backbone"]["widths"] == [4, 8]


def test_classifier_learns_an_easy_task(make_hparams, image_tree, tmp_path):
    """On three clearly different image classes, a few dozen steps reach perfect accuracy."""
    from sesemi.datasets.image_folder import image_folder
    from sesemi.transforms import to_normalized_tensor

    pl.seed_everything(0, verbose=False)
    transform = to_normalized_tensor((0.5,) * 3, (0.5,) * 3)
    train = image_folder(str(image_tree.root), "train", transform)
    val = image_folder(str(image_tree.root), "val", transform)
    hparams = make_hparams(rotation=False, lr=0.02)
    model = Classifier(hparams)
    trainer = _trainer(tmp_path, max_steps=40, check_val_every_n_epoch=None, val_check_interval=40)
    epoch = ConcatDataset([train] * 40)  # one long epoch: Lightning's per-epoch overhead is large
    trainer.fit(model, {"supervised": DataLoader(epoch, batch_size=9, shuffle=True)}, DataLoader(val, batch_size=6))
    assert float(trainer.callback_metrics["val/top1"]) == 1.0


def test_compiled_backbone_trains_a_step(make_hparams, monkeypatch):
    """`model.compile: true` compiles the backbone in place: its weights keep their names, and a
    training step runs and reaches the backbone's weights."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    hparams = make_hparams()
    hparams["model"]["compile"] = True
    model = Classifier(hparams)
    assert model.backbone._compiled_call_impl is not None
    assert model.state_dict().keys() == Classifier(make_hparams()).state_dict().keys()
    loss, _ = _step(model, _batch())
    loss.backward()
    assert model.backbone.encoder[0][0].weight.grad.abs().sum() > 0
