"""Where the time of a `digits` training step goes, for the demo's candidate settings.

For each setting (overrides of `digits`), in interleaved rounds on the same process: making the
batches of a step in the main process (decode, augment, collate: the digits config loads with
`num_workers: 0`), the training step on batches held in memory (forward, backward, optimizer),
and one validation pass over the 500 validation images. Medians over rounds, written into
README.md beside this file.

Usage: OMP_NUM_THREADS=1 python experiments/demo/step_time.py [--steps 20] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, timed_steps, write_table  # noqa: E402

from sesemi.config import register_configs, register_resolvers  # noqa: E402
from sesemi.datamodule import SESEMIDataModule  # noqa: E402
from sesemi.datasets.builtin import prepare_builtin  # noqa: E402
from sesemi.runner import attributes_for, resolve  # noqa: E402

SETTINGS = {  # the former demo's 32 labeled + 2 x 64 unlabeled images a step, and what it could cut
    "former demo (mu 2, widths 16-32-64)": ["run.mu=2"],
    "mu 1 (the demo now)": ["run.mu=1"],
    "mu 2, widths 8-16-32": ["run.mu=2", "learner.hparams.model.backbone.widths=[8,16,32]"],
    "mu 2, 16 labeled": ["run.mu=2", "run.batch_size_per_gpu=16"],
    "mu 2, fused target pass": ["run.mu=2", "learner.hparams.model.forward_only_targets=false"],
}


def build(overrides: list[str], data_root: Path):
    """The learner, an optimizer, the training loaders and the validation loader of a setting."""
    config = compose("digits", [*overrides, f"run.data_root={data_root}", "run.seed=0", "run.rampup=0"])
    prepare_builtin(data_root)  # runs build it only inside the working directory
    data = SESEMIDataModule(config.data, config.run.data_root, config.run.batch_size_per_gpu)
    data.prepare_data()
    data.setup()
    resolve(config, attributes_for(config, data))
    learner = instantiate(config.learner, _recursive_=False).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.01, momentum=0.9)
    return learner, optimizer, data.train_dataloader(), data.val_dataloader()


def loading(loaders: dict, steps: int) -> tuple[float, list[dict]]:
    """Seconds to make `steps` training batches in this process, and the batches."""
    iterators = {name: iter(loader) for name, loader in loaders.items()}
    batches = []
    started = time.perf_counter()
    for _ in range(steps):
        step = {}
        for name in list(iterators):
            try:
                step[name] = next(iterators[name])
            except StopIteration:
                iterators[name] = iter(loaders[name])
                step[name] = next(iterators[name])
        batches.append(step)
    return time.perf_counter() - started, batches


@torch.no_grad()
def validation(learner, loader) -> float:
    """Seconds for one pass over the validation loader, in evaluation mode."""
    learner.eval()
    started = time.perf_counter()
    for images, _ in loader:
        learner(images.contiguous(memory_format=torch.channels_last))
    learner.train()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    register_configs()
    register_resolvers()
    root = Path(tempfile.mkdtemp()) / "digits"
    with initialize_config_module("sesemi.configs", version_base="1.3"):
        built = {name: build(overrides, root) for name, overrides in SETTINGS.items()}
    times = {name: {"load": [], "step": [], "val": []} for name in SETTINGS}
    for _ in range(args.rounds):
        for name, (learner, optimizer, loaders, val_loader) in built.items():
            seconds, batches = loading(loaders, args.steps + 1)
            timed_steps(learner, optimizer, batches[:1])  # warm-up
            times[name]["load"].append(seconds / (args.steps + 1))
            times[name]["step"].append(timed_steps(learner, optimizer, batches[1:]) / args.steps)
            times[name]["val"].append(validation(learner, val_loader))
    lines = [
        "| setting | making a step's batches | training step (batches in memory) | sum per step | validation pass (500 images) |",
        "|---|---|---|---|---|",
    ]
    for name, measured in times.items():
        load, step, val = (1000 * statistics.median(measured[k]) for k in ("load", "step", "val"))
        lines.append(
            f"| {name} | {load:.0f} ms | {step:.0f} ms | {load + step:.0f} ms | {val:.0f} ms |"
        )
    note = f"{args.threads} thread(s), {args.steps} steps x {args.rounds} rounds, medians. {machine()}."
    write_table(Path(__file__).with_name("README.md"), "steps", note, lines)
    print(note, *lines, sep="\n")


if __name__ == "__main__":
    main()
