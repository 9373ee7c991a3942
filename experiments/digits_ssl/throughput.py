"""Where the time of a FixMatch training step goes, with `digits method=fixmatch`.

1. Fused vs separate forward: the same training steps on the same pre-loaded batches, with all
   inputs of the backbone encoded in one pass (`model.fuse_labeled=true`), the unlabeled views
   in one pass and the labeled batch in another (the default), or one pass per input.
2. Data pipeline: images/s of the real training loop (Lightning, data loading, logging) vs bare
   forward + backward + optimizer steps of the same model on the same batches held in memory,
   loading in the main process (the digits configs' `num_workers: 0`) and in `--workers` loader
   processes per training loader. The same loop fed with the batches held in memory separates
   what the loop itself costs (callbacks, logging) from what loading costs.

Rounds alternate between the variants, so the ratios are measured under the same machine load.

Usage: python experiments/digits_ssl/throughput.py [--steps 30] [--rounds 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from unittest import mock

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, timed_steps, write_table  # noqa: E402

from sesemi.config import register_configs, register_resolvers  # noqa: E402
from sesemi.datamodule import SESEMIDataModule  # noqa: E402
from sesemi.datasets.builtin import prepare_builtin  # noqa: E402
from sesemi.learners import classifier as classifier_module  # noqa: E402
from sesemi.learners.encoding import encode  # noqa: E402
from sesemi.runner import attributes_for, resolve  # noqa: E402
from sesemi.trainer import build_trainer, set_budget  # noqa: E402


def images_in(batch) -> int:
    """Images the backbone sees in one training batch (all views of all loaders)."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.dim() == 4 else 0
    if isinstance(batch, dict):
        return sum(images_in(b) for b in batch.values())
    if isinstance(batch, (list, tuple)):
        return sum(images_in(b) for b in batch)
    return 0


def bare_steps(learner, optimizer, batches, fuse: bool = True, fuse_labeled: bool = False) -> float:
    """Seconds for forward + backward + step over `batches`, with no data loading."""
    learner.fuse_labeled = fuse_labeled
    with mock.patch.object(classifier_module, "encode", partial(encode, fuse=fuse)):
        return timed_steps(learner, optimizer, batches)


class StepTimer(pl.Callback):
    """Wall time per training step, from the end of the first (warm-up) step to the end of the last."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 1:  # counted after the optimizer step
            self.started, self.steps = time.perf_counter(), 0
        else:
            self.ended, self.steps = time.perf_counter(), self.steps + 1

    @property
    def seconds_per_step(self) -> float:
        return (self.ended - self.started) / self.steps


def loop_seconds_per_step(config, run_dir: Path, **data) -> float:
    """Wall time per step of the real training loop, without validation or a progress bar.

    `data` is what `Trainer.fit` reads: a `datamodule`, or `train_dataloaders`.
    """
    timer = StepTimer()
    quiet = {"limit_val_batches": 0, "enable_progress_bar": False, "enable_model_summary": False}
    trainer_config = OmegaConf.merge(OmegaConf.to_container(config.trainer), quiet)
    trainer = build_trainer(config.run, trainer_config, run_dir, fit=True)
    set_budget(trainer, config.run)  # run.num_iterations steps, as a run sets it
    trainer.callbacks.append(timer)
    trainer.fit(instantiate(config.learner, _recursive_=False), **data)
    return timer.seconds_per_step


def data_module(config) -> SESEMIDataModule:
    """The config's data, built (the first call writes the digits data set) and resolved into it."""
    prepare_builtin(config.run.data_root)
    module = SESEMIDataModule(config.data, config.run.data_root, config.run.batch_size_per_gpu)
    module.prepare_data()
    module.setup()
    resolve(config, attributes_for(config, module))
    return module


def held_in_memory(batches: list[dict]) -> dict[str, DataLoader]:
    """Training loaders that hand out ready-made batches, so the loop waits for no loading."""
    return {name: DataLoader([batch[name] for batch in batches], batch_size=None) for name in batches[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="loader processes per training loader")
    args = parser.parse_args()
    register_configs()
    register_resolvers()
    scratch = Path(tempfile.mkdtemp())
    overrides = ["method=fixmatch", f"run.data_root={scratch / 'digits'}", f"run.num_iterations={args.steps + 1}", "run.seed=0", "run.rampup=0"]
    with initialize_config_module("sesemi.configs", version_base="1.3"):
        config = compose("digits", overrides)
        worker_config = compose("digits", [*overrides, f"data.train.supervised.num_workers={args.workers}"])
    datamodule, worker_datamodule = data_module(config), data_module(worker_config)
    learner = instantiate(config.learner, _recursive_=False).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.01, momentum=0.9)
    loaders = datamodule.train_dataloader()
    iterators = {name: itertools.cycle(loader) for name, loader in loaders.items()}  # shorter loaders cycle
    batches = [{name: next(it) for name, it in iterators.items()} for _ in range(args.steps + 1)]
    images_per_step = images_in(batches[0])
    bare_steps(learner, optimizer, batches[:2])  # warm-up

    all_fused, fused, separate, memory_loop, loop, worker_loop = [], [], [], [], [], []
    for _ in range(args.rounds):
        all_fused.append(bare_steps(learner, optimizer, batches[1:], fuse_labeled=True) / args.steps)
        fused.append(bare_steps(learner, optimizer, batches[1:]) / args.steps)
        separate.append(bare_steps(learner, optimizer, batches[1:], fuse=False) / args.steps)
        memory_loop.append(loop_seconds_per_step(config, scratch / "run", train_dataloaders=held_in_memory(batches)))
        loop.append(loop_seconds_per_step(config, scratch / "run", datamodule=datamodule))
        worker_loop.append(loop_seconds_per_step(worker_config, scratch / "run", datamodule=worker_datamodule))

    def ms(values: list[float]) -> str:
        return f"{1000 * statistics.median(values):.0f} ms"

    def slower(values: list[float]) -> str:
        return f"{statistics.median(v / f for v, f in zip(values, fused, strict=True)):.2f} x the default"

    def of_bare(values: list[float]) -> str:
        return f"{statistics.median(f / v for v, f in zip(values, fused, strict=True)):.2f} of bare speed"

    lines = [
        "| measurement | per step | ratio |",
        "|---|---|---|",
        f"| forward+backward, one pass for all inputs (`fuse_labeled=true`) | {ms(all_fused)} | {slower(all_fused)} |",
        f"| forward+backward, labeled batch apart, unlabeled views fused (default) | {ms(fused)} | 1.00 |",
        f"| forward+backward, one pass per input | {ms(separate)} | {slower(separate)} |",
        f"| full training loop, batches held in memory (no loading) | {ms(memory_loop)} | {of_bare(memory_loop)} |",
        f"| full training loop, loading in the main process (`num_workers=0`) | {ms(loop)} | {of_bare(loop)} |",
        f"| full training loop, loading in worker processes (`num_workers={args.workers}` per loader) | "
        f"{ms(worker_loop)} | {of_bare(worker_loop)} |",
        f"| bare forward+backward on batches in memory | {ms(fused)} | 1.00 |",
    ]
    note = (
        f"`digits method=fixmatch`, {images_per_step} images per step, {args.steps} steps x {args.rounds} rounds "
        f"(medians). {machine()}."
    )
    write_table(Path(__file__).with_name("README.md"), "throughput", note, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
