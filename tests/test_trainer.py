"""Trainer construction from the run config (sesemi/trainer.py)."""

from __future__ import annotations

import warnings

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from sesemi.config.structs import RunConfig
from sesemi.errors import SesemiError
from sesemi.learners.classifier import Classifier
from sesemi.trainer import budget, build_trainer, devices, set_budget, strategy


def _run(**overrides):
    run = OmegaConf.structured(RunConfig)
    for key, value in overrides.items():
        run[key] = value
    return run


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.parametrize("gpus", [-1, "-1"])
def test_all_gpus_on_a_cpu_machine_uses_the_cpu(no_gpu, gpus):
    """The default run.gpus=-1 trains on the CPU when there is no GPU."""
    assert devices(gpus) == ("cpu", 1)


@pytest.mark.parametrize("gpus", [0, "0", None, []])
def test_zero_gpus_is_the_cpu(two_gpus, gpus):
    """0/None/[] mean the CPU even where GPUs exist."""
    assert devices(gpus) == ("cpu", 1)


def test_gpu_selections(two_gpus):
    """-1 = all GPUs; a count, a list and a comma-separated string of ids pass through."""
    assert devices(-1) == ("gpu", -1)
    assert devices(2) == ("gpu", 2)
    assert devices("0,1") == ("gpu", [0, 1])
    assert devices([1]) == ("gpu", [1])


def test_asking_for_gpus_without_any_is_a_sesemi_error(no_gpu):
    """run.gpus=2 on a CPU-only machine: a SesemiError suggesting run.gpus=0."""
    with pytest.raises(SesemiError, match="run.gpus=0"):
        devices(2)


def test_strategy_maps_lightning1_values():
    """"dp" (and other Lightning 1 strategies) run as "ddp"; None is "auto"."""
    assert strategy("dp") == "ddp"
    assert strategy("ddp2") == "ddp"
    assert strategy(None) == "auto"
    assert strategy("ddp_find_unused_parameters_true") == "ddp_find_unused_parameters_true"
    with pytest.raises(SesemiError, match=r"not a kind of device like 'gpu': pick the devices with run.gpus"):
        strategy("gpu")


def test_budget_in_iterations():
    """num_iterations -> max_steps, and no epoch limit."""
    assert budget(_run(num_iterations=25)) == {"max_steps": 25, "max_epochs": -1}


def test_budget_in_epochs():
    """num_epochs -> max_epochs."""
    assert budget(_run(num_epochs=4)) == {"max_steps": -1, "max_epochs": 4}


def test_budget_both_is_a_sesemi_error():
    """Setting both lengths is ambiguous: refused."""
    with pytest.raises(SesemiError, match="both set"):
        budget(_run(num_epochs=2, num_iterations=5))


def test_budget_neither_is_a_sesemi_error():
    """A training run needs a length."""
    with pytest.raises(SesemiError, match="num_epochs or run.num_iterations"):
        budget(_run())


def test_build_trainer_defaults(tmp_path, no_gpu):
    """CPU, the budget, the CSV logger in run_dir (others are opt-in), best/last checkpointing on val/top1."""
    trainer = build_trainer(_run(num_iterations=7), None, tmp_path, fit=True)
    set_budget(trainer, _run(num_iterations=7))
    assert trainer.max_steps == 7 and trainer.max_epochs == -1
    assert isinstance(trainer.accelerator, pl.accelerators.CPUAccelerator)
    checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert checkpoints and checkpoints[0].monitor == "val/top1" and checkpoints[0].mode == "max"
    assert [type(lg).__name__ for lg in trainer.loggers] == ["RunMetrics"]  # metrics.csv
    assert trainer.default_root_dir == str(tmp_path)


def test_build_trainer_for_evaluation_needs_no_budget(tmp_path, no_gpu):
    """VALIDATE/TEST runs (fit=False) do not require num_epochs/num_iterations."""
    trainer = build_trainer(_run(), None, tmp_path, fit=False)
    assert trainer.max_steps == -1


def test_trainer_config_overrides_and_own_checkpoint(tmp_path, no_gpu):
    """Keys of `trainer` win over the run's settings; a configured ModelCheckpoint replaces our
    best-checkpoint one (the `last` one always stays)."""
    options = OmegaConf.create(
        {
            "log_every_n_steps": 3,
            "callbacks": [{"_target_": "pytorch_lightning.callbacks.ModelCheckpoint", "monitor": "val/loss"}],
        }
    )
    trainer = build_trainer(_run(num_iterations=5), options, tmp_path, fit=True)
    assert trainer.log_every_n_steps == 3
    checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert [(c.monitor, c.filename) for c in checkpoints] == [("val/loss", None), (None, "last")]


def test_last_checkpoint_holds_the_final_weights(make_hparams, tmp_path, no_gpu):
    """`last.ckpt` is the state at the end of training (what `resume_from_checkpoint` and the
    docs promise), even when the last validation did not improve val/top1."""
    hparams = make_hparams(rotation=False, lr=0.0)  # lr 0: val/top1 never improves after step 5
    model = Classifier(hparams)
    torch.manual_seed(0)
    data = TensorDataset(torch.rand(16, 3, 8, 8), torch.arange(16) % 3)
    options = OmegaConf.create(
        {"val_check_interval": 5, "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0}
    )
    trainer = build_trainer(_run(num_iterations=10, gpus=0), options, tmp_path, fit=True)
    set_budget(trainer, _run(num_iterations=10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, {"supervised": DataLoader(data, batch_size=1)}, DataLoader(data, batch_size=8))
    assert trainer.global_step == 10
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 10


class _StopAt(pl.Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) after `step` optimizer steps."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


def test_interrupted_fit_leaves_a_checkpoint_to_resume_from(make_hparams, tmp_path, no_gpu, caplog):
    """Ctrl-C mid-run writes `interrupted.ckpt` at the step reached, loadable with weights_only,
    without Lightning's line that `weights_only` (of saving) defaulted to False, which reads
    as if a checkpoint had been loaded unsafely."""
    model = Classifier(make_hparams(rotation=False))
    data = TensorDataset(torch.rand(16, 3, 8, 8), torch.arange(16) % 3)
    options = OmegaConf.create({"enable_progress_bar": False, "enable_model_summary": False})
    trainer = build_trainer(_run(num_iterations=10, gpus=0), options, tmp_path, fit=True)
    trainer.callbacks.append(_StopAt(3))
    with warnings.catch_warnings(), pytest.raises(SystemExit):  # Lightning exits after Ctrl-C
        warnings.simplefilter("ignore")
        trainer.fit(model, {"supervised": DataLoader(data, batch_size=2)})
    saved = torch.load(tmp_path / "checkpoints" / "interrupted.ckpt", weights_only=True)
    assert saved["global_step"] == 3 and "optimizer_states" in saved
    assert "weights_only" not in caplog.text


def test_trackers_of_the_logger_group_write_into_the_run_folder(image_tree, tmp_path):
    """metrics.csv always; `logger=tensorboard` adds event files beside it; a tracker whose
    package is missing is one line naming the extra to install."""
    import importlib.util

    from sesemi import compose, run

    overrides = [
        "method=supervised", f"run.data_root={image_tree.root}", "run.num_iterations=2",
        "data.views.weak.crop_dim=16", "learner.hparams.model.backbone.widths=[4,8]",
        "+trainer.enable_progress_bar=false", "run.batch_size_per_gpu=4",
    ]
    run(compose("digits", [*overrides, "logger=tensorboard"]), tmp_path / "tb")
    assert (tmp_path / "tb" / "metrics.csv").is_file() and list((tmp_path / "tb").glob("events.out.tfevents.*"))
    if importlib.util.find_spec("mlflow") is None:
        with pytest.raises(SesemiError, match=r'^logger=mlflow needs a package that is not installed: pip install "sesemi\[mlflow\]"$'):
            run(compose("digits", [*overrides, "logger=mlflow"]), tmp_path / "mlflow")
