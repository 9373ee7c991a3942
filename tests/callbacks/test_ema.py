"""The EMA callback (sesemi/callbacks/ema.py): ema = d_t * ema + (1 - d_t) * w after every step."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sesemi.callbacks import EMA


def _decay(decay: float, num_updates: int) -> float:
    """The paper's warm-up: d_t = min(decay, (1 + n) / (10 + n)) after n updates."""
    return min(decay, (1 + num_updates) / (10 + num_updates))


class Tiny(pl.LightningModule):
    """A linear layer and batch norm (float running statistics, an integer batch counter)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))

    def training_step(self, batch, batch_idx):
        inputs, labels = batch
        return F.cross_entropy(self.net(inputs), labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


class Recorder(pl.Callback):
    """Keeps a copy of the model's weights and buffers after every optimizer step."""

    def __init__(self):
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.states.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def _fit(ema: EMA, folder) -> tuple[Tiny, Recorder]:
    """Four SGD steps of a `Tiny` model with `ema`; the model and the weights after each step."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16, 4), torch.randint(0, 3, (16,)))
    model, recorder = Tiny(), Recorder()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=4,
        callbacks=[recorder, ema],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=folder,
    )
    trainer.fit(model, DataLoader(data, batch_size=4))
    return model, recorder


@pytest.mark.parametrize("warmup", [True, False])
def test_update_follows_the_formula(warmup):
    """One update on tensors: floats move towards the weights by 1 - d_t, integers are copied."""
    ema = EMA(decay=0.9, warmup=warmup)
    average, weights = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 2.0])
    counter, new_counter = torch.tensor(5), torch.tensor(9)
    for updates in (1, 3, 50):
        decay = _decay(0.9, updates) if warmup else 0.9
        assert ema.decay_at(updates) == pytest.approx(decay)
        expected = decay * average + (1 - decay) * weights
        ema._update([average, counter], [weights, new_counter], torch.tensor(updates))
        torch.testing.assert_close(average, expected)
        assert counter.item() == 9


def test_update_of_many_tensors_follows_the_formula_for_each():
    """Tensors of several shapes and dtypes, interleaved, each updated as if alone."""
    torch.manual_seed(0)
    averaged = [torch.randn(3, 2), torch.tensor(4), torch.randn(5, dtype=torch.float64), torch.randn(())]
    current = [torch.randn(3, 2), torch.tensor(7), torch.randn(5, dtype=torch.float64), torch.randn(())]
    decay = _decay(0.99, 20)
    pairs = zip(averaged, current, strict=True)
    expected = [decay * a + (1 - decay) * c if a.is_floating_point() else c for a, c in pairs]
    EMA(decay=0.99)._update(averaged, current, torch.tensor(20))
    for average, value in zip(averaged, expected, strict=True):
        torch.testing.assert_close(average, value)


def test_a_decay_of_one_or_more_is_refused():
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.0)


def test_average_after_real_optimizer_steps_follows_the_formula(tmp_path):
    """Four SGD steps in a Trainer: the first update copies the weights, every later one is
    ema = d_n * ema + (1 - d_n) * w with n the updates so far; batch norm's counter is copied.
    decay 0.2 exercises both sides of the min: d_1 = 2/11, then 0.2."""
    ema = EMA(decay=0.2)
    model, recorder = _fit(ema, tmp_path)

    assert len(recorder.states) == 4
    expected = dict(recorder.states[0])
    for updates, weights in enumerate(recorder.states[1:], start=1):
        decay = _decay(0.2, updates)
        for key, value in weights.items():
            floating = value.is_floating_point()
            expected[key] = decay * expected[key] + (1 - decay) * value if floating else value
    average = ema.average_model.state_dict()
    assert average.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(average[key], value)
    assert average["net.1.num_batches_tracked"].item() == 4
    last = recorder.states[-1]["net.0.weight"]
    assert not torch.allclose(average["net.0.weight"], last)  # an average, not the last weights
    torch.testing.assert_close(model.net[0].weight, average["net.0.weight"])  # fit ends on the average


def test_without_averaged_buffers_the_average_takes_the_models_own(tmp_path):
    """use_buffers=False: the weights are averaged, and batch norm's running statistics are the
    model's at every step (they stayed those of the start, which validation then used)."""
    ema = EMA(decay=0.2, use_buffers=False)
    _, recorder = _fit(ema, tmp_path)
    average, last = ema.average_model.state_dict(), recorder.states[-1]
    for buffer in ("net.1.running_mean", "net.1.running_var", "net.1.num_batches_tracked"):
        torch.testing.assert_close(average[buffer], last[buffer])
    assert not torch.allclose(average["net.0.weight"], last["net.0.weight"])  # weights still averaged


def test_a_checkpoint_saved_after_the_fit_keeps_the_raw_weights_for_training_on(tmp_path):
    """The fit ends with the average in place of the weights; a checkpoint saved then (sesemi
    saves one after its last validation) stores the average as the weights and the last raw
    weights beside them, as one saved during the fit does: both were the average."""
    ema = EMA(decay=0.2)
    model, recorder = _fit(ema, tmp_path)
    model.trainer.save_checkpoint(tmp_path / "after.ckpt")
    saved = torch.load(tmp_path / "after.ckpt", weights_only=True)
    for key, raw in recorder.states[-1].items():
        torch.testing.assert_close(saved["current_model_state"][key], raw)
        torch.testing.assert_close(saved["state_dict"][key], ema.average_model.state_dict()[key])
    assert not torch.allclose(saved["state_dict"]["net.0.weight"], saved["current_model_state"]["net.0.weight"])
