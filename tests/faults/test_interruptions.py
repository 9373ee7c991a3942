"""A run stopped by SIGTERM, Ctrl-C or kill -9: an honest exit code, a checkpoint and a marker
that say so, and `sesemi resume` that finishes it as if it had never stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from sesemi import compose, resume, run
from sesemi.errors import SesemiError
from sesemi.ownership import marker

SESEMI = Path(sys.executable).parent / "sesemi"
# Random draws of every kind: crop offsets and flips (the loaders' own seeds) and dropout (the
# global generators, which checkpoints record).
STEPS = 12
TINY = [
    "method=supervised",
    "run.batch_size_per_gpu=4",
    "trainer.val_check_interval=4",
    "data.val.batch_size=2",  # validations of several batches, which a stop can interrupt
    "data.views.weak.crop_dim=16",
    "learner.hparams.model.backbone.widths=[4,8]",
    "learner.hparams.model.backbone.drop_rate=0.5",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "+trainer.log_every_n_steps=1",
]


def _sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def _ctrl_c() -> None:
    """What Python's handler of Ctrl-C (SIGINT) raises; the signal itself would be ignored by a
    process a shell starts in the background (as CI may start the tests)."""
    raise KeyboardInterrupt


class Batches(pl.Callback):
    """Records a fingerprint of every labeled batch, and stops the run at `stop_at` as a SIGTERM
    would (the signal to this very process), or with `mid_batch` as a Ctrl-C in the middle of
    the batch (before its backward pass)."""

    def __init__(
        self, stop_at: int | None = None, in_validation: bool = False, mid_batch: bool = False, at_end=_sigterm
    ):
        self.stop_at, self.in_validation, self.mid_batch, self.at_end = stop_at, in_validation, mid_batch, at_end
        self.seen: list[tuple[int, float]] = []

    def on_before_backward(self, trainer, pl_module, loss):
        if trainer.global_step == self.stop_at and self.mid_batch:
            _ctrl_c()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        images, labels = batch["supervised"]
        self.seen.append((trainer.global_step, round(float(images.sum()) + 1000 * float(labels.sum()), 3)))
        if trainer.global_step == self.stop_at and not self.in_validation and not self.mid_batch:
            self.at_end()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if trainer.global_step == self.stop_at and self.in_validation and batch_idx == 0 and not trainer.sanity_checking:
            os.kill(os.getpid(), signal.SIGTERM)  # in the validation's first batch of several


def _config(image_tree, callback: Batches, length: str = f"run.num_iterations={STEPS}", workers: int = 0, method: str = "supervised"):
    config = compose(
        "digits",
        [f"run.data_root={image_tree.root}", *TINY, length, f"data.train.supervised.num_workers={workers}", f"method={method}"],
    )
    config.trainer.callbacks.append({"_target_": f"{__name__}.current"})
    global current
    current = lambda: callback  # noqa: E731 - the config names it, as it names any callback
    return config


@pytest.mark.parametrize(
    ("stop_at", "length", "workers"),
    [
        (5, f"run.num_iterations={STEPS}", 0),
        (3, f"run.num_iterations={STEPS}", 0),
        (3, "run.num_epochs=4", 0),
        (-4, f"run.num_iterations={STEPS}", 0),
        (5.5, f"run.num_iterations={STEPS}", 0),
        (5, f"run.num_iterations={STEPS}", 1),
        (3, f"run.num_iterations={STEPS}", 1),
    ],
    ids=["mid-epoch", "epoch-end", "epoch-end-epochs", "in-validation", "ctrl-c-mid-batch", "mid-epoch-worker", "epoch-end-worker"],
)
def test_sigterm_saves_marks_and_resume_matches_an_unbroken_run(image_tree, tmp_path, stop_at, length, workers):
    """Stopped in an epoch, in its last batch (three batches an epoch here), in a validation
    (-4: the one at step 4) or by Ctrl-C in the middle of a batch (5.5: in step 5's), with the
    length in steps or in epochs, loading in the main process or in a worker, the resumed run
    takes the batches the unbroken one took after the stop, and ends with its weights and
    validations. (Stopped in the last batch, the resumed run took the next epoch for one batch
    long, and one whose steps bound its epochs ended short; stopped in a validation, it saved
    the EMA's weights, which validation had swapped in, as the trained ones, and the other way
    round; stopped in a batch, it counted that batch as begun, so its validations came a batch
    early; with a worker, it took its batches from the first epoch's shuffle again.) Stopped in
    a batch, the batch's random draws are made again, so the weights are close, not equal."""
    unbroken = Batches()
    finished = run(_config(image_tree, unbroken, length, workers), tmp_path / "unbroken")

    mid_batch = stop_at != int(stop_at)
    stopped = Batches(stop_at=abs(int(stop_at)), in_validation=stop_at < 0, mid_batch=mid_batch)
    with pytest.raises(SystemExit) as exit:
        run(_config(image_tree, stopped, length, workers), tmp_path / "stopped")
    assert exit.value.code == 128 + (signal.SIGINT if mid_batch else signal.SIGTERM)
    assert marker(tmp_path / "stopped").state == "interrupted"
    assert (tmp_path / "stopped" / "checkpoints" / "interrupted.ckpt").is_file()
    assert not (tmp_path / "stopped" / "results.json").exists()

    resumed = Batches()
    global current
    current = lambda: resumed  # noqa: E731
    result = resume(tmp_path / "stopped", allow=[__name__])  # the test's callback, named in config.yaml
    assert result.global_step == finished.global_step == STEPS
    assert marker(tmp_path / "stopped").state == "finished"
    assert (tmp_path / "stopped" / "config.yaml").read_text() == (tmp_path / "unbroken" / "config.yaml").read_text().replace(
        str(tmp_path / "unbroken"), str(tmp_path / "stopped")
    )
    assert stopped.seen + resumed.seen == unbroken.seen  # the same batches, step by step
    expected, logged = (pd.read_csv(folder / "metrics.csv") for folder in (tmp_path / "unbroken", tmp_path / "stopped"))
    if mid_batch:  # the stopped batch's dropout is drawn again: the same steps, close values
        validated = [frame.step[frame["val/top1"].notna()].tolist() for frame in (expected, logged)]
        assert validated[0] == validated[1] == [3, 7, 11]
        assert logged.step.tolist() == expected.step.tolist()
        return
    weights = [torch.load(r.last_checkpoint, weights_only=True)["state_dict"] for r in (finished, result)]
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key])
    # metrics.csv holds the whole run, not only what came after the stop (Lightning starts it
    # anew); a validation the stop interrupted is not done again
    if stop_at < 0:
        expected = expected[~((expected.step == abs(stop_at) - 1) & expected["val/top1"].notna())]
    assert sorted(logged.columns) == sorted(expected.columns)
    pd.testing.assert_frame_equal(logged[expected.columns], expected.reset_index(drop=True), check_exact=False, atol=1e-5)


def test_a_resumed_run_describes_its_pool_as_an_unbroken_one(image_tree, tmp_path):
    """What results.json says of the unlabeled pool (the shares pseudo-labeled, which
    `sesemi postprocess` reports) is saved with the checkpoint: a resumed run says what the
    unbroken one does, not what it saw since it resumed."""
    finished = run(_config(image_tree, Batches(), method="fixmatch"), tmp_path / "unbroken")
    with pytest.raises(SystemExit):
        run(_config(image_tree, Batches(stop_at=5), method="fixmatch"), tmp_path / "stopped")
    resumed = Batches()
    global current
    current = lambda: resumed  # noqa: E731
    result = resume(tmp_path / "stopped", allow=[__name__])
    assert finished.unlabeled["seen"] > 0 and result.unlabeled == finished.unlabeled


def test_a_ctrl_c_after_a_step_of_accumulated_batches_does_not_take_the_batch_again(image_tree, tmp_path):
    """Stopped in a batch's end hooks after its optimizer step, with gradients accumulated over
    two batches, the batch is done: the resumed run goes on with the next one."""
    from omegaconf import OmegaConf

    def accumulating(callback: Batches):
        config = _config(image_tree, callback, "run.num_iterations=6")
        OmegaConf.update(config, "trainer.accumulate_grad_batches", 2, force_add=True)
        return config

    unbroken, stopped, resumed = Batches(), Batches(stop_at=3, at_end=_ctrl_c), Batches()
    run(accumulating(unbroken), tmp_path / "unbroken")
    with pytest.raises(SystemExit):
        run(accumulating(stopped), tmp_path / "stopped")
    global current
    current = lambda: resumed  # noqa: E731
    assert resume(tmp_path / "stopped", allow=[__name__]).global_step == 6
    assert stopped.seen + resumed.seen == unbroken.seen


def test_a_folder_that_holds_a_run_is_not_run_again(image_tree, tmp_path):
    run(_config(image_tree, Batches()), tmp_path / "run")
    with pytest.raises(Exception, match="already holds a run"):
        run(_config(image_tree, Batches()), tmp_path / "run")
    with pytest.raises(Exception, match="finished; there is nothing to resume"):
        resume(tmp_path / "run")


def test_resume_passes_over_a_damaged_checkpoint_to_the_newest_whole_one(image_tree, tmp_path, caplog):
    """A newest checkpoint cut short (a full disk) or changed since it was saved is passed over
    with a warning: the run resumes from the one before and still ends with its full budget."""
    with pytest.raises(SystemExit):
        run(_config(image_tree, Batches(stop_at=6)), tmp_path / "run")
    checkpoints = tmp_path / "run" / "checkpoints"
    interrupted = checkpoints / "interrupted.ckpt"
    interrupted.write_bytes(interrupted.read_bytes()[:1000])
    global current
    resumed = Batches()
    current = lambda: resumed  # noqa: E731
    assert resume(tmp_path / "run", allow=[__name__]).global_step == STEPS
    assert "passing over interrupted.ckpt: checkpoint" in caplog.text
    for name in ("last.ckpt", "best.ckpt"):
        (checkpoints / name).write_bytes(b"damaged")
    from sesemi.ownership import mark

    (tmp_path / "run" / "results.json").unlink()
    mark(tmp_path / "run", "run", "interrupted")
    with pytest.raises(SesemiError, match=r"^every checkpoint of .*run is damaged; start it again"):
        resume(tmp_path / "run", allow=[__name__])


class StopInSanityCheck(pl.Callback):
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if trainer.sanity_checking:
            _ctrl_c()


def test_a_run_stopped_before_its_first_checkpoint_is_not_offered_a_resume(image_tree, tmp_path, caplog):
    """Stopped (Ctrl-C) in the check of validation before training, it has no checkpoint to resume from:
    the warning says to start it again, not to resume it."""
    with pytest.raises(SystemExit):
        run(_config(image_tree, StopInSanityCheck()), tmp_path / "run")
    assert "stopped; it saved no checkpoint: start it again" in caplog.text
    assert "sesemi resume" not in caplog.text


def test_a_run_killed_just_after_writing_its_results_is_finished_not_resumed(image_tree, tmp_path):
    """A kill between results.json and the marker that says finished leaves whole results:
    `resume` does not train again over them (it marks the run finished), and `rm-failed`
    keeps the run."""
    from sesemi.ops.runs import remove_failed
    from sesemi.ownership import mark

    done = run(_config(image_tree, Batches()), tmp_path / "runs" / "run")
    results = (done.run_dir / "results.json").read_text()
    mark(done.run_dir, "run", "interrupted")  # as the kill leaves it, whatever the moment
    assert remove_failed(tmp_path / "runs").removed == []
    with pytest.raises(SesemiError, match=r"finished \(it was stopped just after writing results.json\)"):
        resume(done.run_dir)
    assert marker(done.run_dir).state == "finished"
    assert (done.run_dir / "results.json").read_text() == results


# Ctrl-C while the run imports torch and Lightning (seconds), after Hydra made its folder.
CTRL_C_WHILE_IMPORTING = """
import sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "sesemi.runner":
            raise KeyboardInterrupt

sys.meta_path.insert(0, CtrlC())
from sesemi.cli.open_sesemi import main

main()
"""


def test_ctrl_c_as_open_sesemi_starts_leaves_a_folder_rm_failed_deletes(image_tree, tmp_path):
    """A run stopped in the seconds open_sesemi spends importing, after Hydra made the run's
    folder, has marked the folder its own already: `sesemi rm-failed` deletes it."""
    command = [sys.executable, "-c", CTRL_C_WHILE_IMPORTING, "-cn", "digits", f"run.data_root={image_tree.root}",
               f"run.dir={tmp_path}/runs"]
    stopped = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert stopped.returncode != 0 and "KeyboardInterrupt" in stopped.stderr, stopped.stderr[-2000:]
    (run_dir,) = tmp_path.glob("runs/digits/*/*")
    found = marker(run_dir)
    assert found is not None and found.kind == "run" and found.stopped
    done = subprocess.run([str(SESEMI), "rm-failed", str(tmp_path / "runs")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not run_dir.exists()


@pytest.mark.slow
def test_kill_9_then_sesemi_resume_finishes_the_budget(image_tree, tmp_path):
    """A run killed without warning (after its first checkpoint) resumes with one command and
    ends with the full budget, its metrics.csv with a row for every step; its marker said
    `running` for a process that is gone."""
    command = [
        str(Path(sys.executable).parent / "open_sesemi"), "-cn", "digits", f"run.data_root={image_tree.root}",
        f"run.dir={tmp_path}/runs", *TINY[:-3], "run.num_iterations=200", "+trainer.enable_progress_bar=false",
        "+trainer.log_every_n_steps=1",
    ]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(tmp_path.glob("runs/digits/*/*/checkpoints/last.ckpt")) and time.time() < deadline:
        time.sleep(0.2)
    process.kill()
    process.wait()
    (run_dir,) = tmp_path.glob("runs/digits/*/*")
    assert marker(run_dir).state == "running" and marker(run_dir).stopped
    done = subprocess.run([str(SESEMI), "resume", str(run_dir)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((run_dir / "results.json").read_text())["global_step"] == 200
    assert marker(run_dir).state == "finished"
    logged = pd.read_csv(run_dir / "metrics.csv")
    assert logged.step[logged["train/loss"].notna()].tolist() == list(range(200))


def test_ctrl_c_while_a_resume_restores_its_state_keeps_the_checkpoint(image_tree, tmp_path, monkeypatch):
    """Ctrl-C before a resumed run has restored its optimizer and loops (Lightning restores them
    after `on_fit_start`) saves nothing: interrupted.ckpt stays the stop's, at step 5, where the
    half-restored state of step 0 replaced it."""
    from pytorch_lightning.trainer.connectors.checkpoint_connector import _CheckpointConnector

    with pytest.raises(SystemExit):
        run(_config(image_tree, Batches(stop_at=5)), tmp_path / "stopped")
    checkpoint = tmp_path / "stopped" / "checkpoints" / "interrupted.ckpt"

    def ctrl_c(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(_CheckpointConnector, "restore_training_state", ctrl_c)
    with pytest.raises(SystemExit):
        resume(tmp_path / "stopped", allow=[__name__])
    assert torch.load(checkpoint, weights_only=True)["global_step"] == 5


def test_a_run_resumed_by_another_spelling_of_its_folder_keeps_its_best_checkpoint(image_tree, tmp_path, monkeypatch):
    """A run started in a relative folder and resumed by its absolute path (or the other way
    round) keeps its checkpoint callbacks' state: the best checkpoint stays best.ckpt, with its
    score, rather than a best-v1.ckpt beside it."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        run(_config(image_tree, Batches(stop_at=5)), "stopped")
    global current
    current = lambda: Batches()  # noqa: E731
    result = resume(tmp_path / "stopped", allow=[__name__])
    assert result.best_checkpoint.name == "best.ckpt"
    assert not list((tmp_path / "stopped" / "checkpoints").glob("best-v*.ckpt"))


def test_a_second_resume_while_the_first_reads_the_data_is_refused(image_tree, tmp_path, monkeypatch):
    """Two `sesemi resume` of one run started at once: the first takes the run over before it
    reads the data (which can take minutes), so the second is refused instead of training into
    the same folder."""
    from sesemi.datamodule import SESEMIDataModule

    with pytest.raises(SystemExit):
        run(_config(image_tree, Batches(stop_at=5)), tmp_path / "stopped")
    global current
    current = lambda: Batches()  # noqa: E731
    refusals = []
    setup = SESEMIDataModule.setup

    def setup_and_resume_again(self, stage=None):
        if not refusals:
            with pytest.raises(SesemiError, match="still running") as refused:
                resume(tmp_path / "stopped", allow=[__name__])
            refusals.append(refused.value)
        return setup(self, stage)

    monkeypatch.setattr(SESEMIDataModule, "setup", setup_and_resume_again)
    assert resume(tmp_path / "stopped", allow=[__name__]).global_step == STEPS
    assert len(refusals) == 1 and marker(tmp_path / "stopped").state == "finished"


def test_a_resume_that_fails_before_it_starts_leaves_the_run_as_it_was(image_tree, tmp_path):
    """A resume that cannot read the data leaves the run interrupted, not `running` in a process
    that lives on (from Python, which would refuse the next resume as still running)."""
    with pytest.raises(SystemExit):
        run(_config(image_tree, Batches(stop_at=5)), tmp_path / "stopped")
    moved = image_tree.root.rename(tmp_path / "moved")
    with pytest.raises(SesemiError):
        resume(tmp_path / "stopped", allow=[__name__])
    assert marker(tmp_path / "stopped").state == "interrupted"
    config = tmp_path / "stopped" / "config.yaml"
    config.rename(tmp_path / "config.yaml")
    os.mkfifo(config)  # reading it would wait for ever
    with pytest.raises(SesemiError, match=r"^cannot read .*config.yaml \(not a regular file\)$"):
        resume(tmp_path / "stopped", allow=[__name__])
    assert marker(tmp_path / "stopped").state == "interrupted"
    config.unlink()
    (tmp_path / "config.yaml").rename(config)
    moved.rename(image_tree.root)
    global current
    current = lambda: Batches()  # noqa: E731
    assert resume(tmp_path / "stopped", allow=[__name__]).global_step == STEPS


def test_a_run_killed_before_its_first_checkpoint_is_refused_before_the_data_is_read(image_tree, tmp_path):
    """Nothing to resume from is said at once, not after decoding the data set (minutes for a
    pool of photos), and in the words `publish` and `inference` use."""
    with pytest.raises(SystemExit):
        run(_config(image_tree, Batches(stop_at=5)), tmp_path / "stopped")
    for checkpoint in (tmp_path / "stopped" / "checkpoints").glob("*.ckpt"):
        checkpoint.unlink()
    image_tree.root.rename(tmp_path / "moved")  # reading the data would fail
    with pytest.raises(SesemiError, match="stopped before it saved a checkpoint; start it again"):
        resume(tmp_path / "stopped", allow=[__name__])
    assert marker(tmp_path / "stopped").state == "interrupted"
