"""How fast is sesemi's training step, against USB's and against the same step written by hand?

1. `usb`: the FixMatch step at USB's benchmark setting (USB's WRN-28-2, the same initial weights,
   one fixed batch of 64 labeled + 448 weak + 448 strong 32x32 images, EMA on): USB's own
   `train_step` with its hooks, a hand-written step with one concatenated forward, a hand-written
   step with the weak view forward-only, and sesemi's step (`Classifier.training_step`,
   backward, the optimizer step and the EMA callback's update) with `forward_only_targets` true
   (the default) and false.
2. `methods`: every method's step at the digits scale (`digits method=X`: `convnet_small`, 32
   labeled images, the method's own unlabeled batches), sesemi's against a hand-written PyTorch
   step of the same method on the same network, weights and batches (handwritten.py).
3. `levers`: channels-last, bf16 autocast, `torch.compile` of the backbone, foreach and fused
   optimizers, each against sesemi's default step on the same batches; `accuracy` trains
   a short `digits` run with each lever that changes the arithmetic, one seed.

Batches are held in memory; the variants of a table run in interleaved rounds (timing.py), and
the tables report medians over rounds: seconds per step, and ratios within each round.

Usage: python experiments/step_speed/run.py [usb] [methods] [levers] [accuracy] [--threads 2]
    [--rounds N] [--warmup N] [--seed 0] [--iterations 300]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import composed_with_data, items_in, machine, write_table  # noqa: E402
from handwritten import HandwrittenStep  # noqa: E402
from timing import Rounds, interleaved  # noqa: E402

import sesemi  # noqa: E402
from sesemi.callbacks import EMA  # noqa: E402
from sesemi.config.resolvers import SESEMIConfigAttributes  # noqa: E402
from sesemi.runner import resolve  # noqa: E402

README = Path(__file__).with_name("README.md")
PARTS = ("usb", "methods", "levers", "accuracy")


@dataclass(frozen=True)
class Settings:
    """What the tables are measured with (the defaults are those of the README's tables).

    Attributes:
        threads: Torch's compute threads (USB's table was first measured with 2).
        usb_batch: USB's labeled batch; `usb_uratio` times as many unlabeled images, two views each.
        usb_rounds: Kept rounds of the USB table, after `usb_warmup` rounds that are not kept.
        digits_rounds: Kept rounds of the digits tables, after `digits_warmup`.
        digits_steps: Steps of each variant per round in the digits tables (one batch each).
        max_other_load: A round is run again when other processes used more than this share
            of the machine's CPUs during it (twice at most; then it is kept and counted).
        cpu_time: Time steps by the CPU time of this process (all its threads) instead of the
            wall clock: on a machine other work keeps busy, the work of a step, not its luck.
        seed: The seed of the accuracy runs.
        iterations: The budget of each accuracy run.
    """

    threads: int = 2
    usb_batch: int = 64
    usb_uratio: int = 7
    usb_rounds: int = 8
    usb_warmup: int = 2
    digits_rounds: int = 8
    digits_warmup: int = 2
    digits_steps: int = 10
    max_other_load: float = 0.1
    seed: int = 0
    iterations: int = 300
    cpu_time: bool = False
    skip_levers: tuple[str, ...] = ()

    def clock(self) -> Callable[[], float]:
        return time.process_time if self.cpu_time else time.perf_counter

    def clock_note(self) -> str:
        if not self.cpu_time:
            return ""
        return (
            "; times are CPU seconds of the benchmark process (all its threads) per step, not wall "
            "seconds, as other work kept the machine busy"
        )


# Methods whose loss heads mark inputs that only make targets (`FeatureRequest(target=True)`).
TARGET_METHODS = {"pi_model", "mean_teacher", "fixmatch", "flexmatch", "freematch"}


class SesemiStep:
    """sesemi's training step as the trainer runs it, minus the loop: `training_step`, backward,
    the optimizer and learning-rate steps, and the EMA callback's update of the average.

    The learner is attached to a Trainer without logging (`barebones`), so `self.log` costs
    nothing here; it is what gives loss heads the EMA callback's average (`backbone_ema`).
    """

    def __init__(
        self,
        learner: pl.LightningModule,
        ema: EMA | None,
        autocast: bool = False,
        per_tensor_ema: bool = False,
    ):
        self.learner = learner.train()
        configured = learner.configure_optimizers()
        self.optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
        self.scheduler = (
            configured["lr_scheduler"]["scheduler"] if isinstance(configured, dict) else None
        )
        trainer = pl.Trainer(
            barebones=True,
            accelerator="cpu",
            devices=1,
            callbacks=[ema] if ema else [],
            logger=False,
        )
        learner.trainer = trainer
        self.ema = ema
        if ema is not None:
            ema.setup(trainer, learner, "fit")
        self.autocast = autocast
        self.per_tensor_ema = per_tensor_ema

    def __call__(self, batch: dict, index: int) -> torch.Tensor:
        context = torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast else nullcontext()
        with context:
            loss = self.learner.training_step(batch, index)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None and self.per_tensor_ema:
            per_tensor_ema_update(self.ema, self.learner)
        elif self.ema is not None:
            self.ema._step_update(self.learner)  # what the callback does after an optimizer step
        return loss.detach()


def per_tensor_ema_update(ema: EMA, learner: pl.LightningModule) -> None:
    """The EMA update as sesemi made it before: `AveragedModel.update_parameters`, which walks the
    module tree at every step, with one `lerp_` (or `copy_`) per tensor."""

    def update(averaged: list, current: list, num_updates: torch.Tensor) -> None:
        weight = 1.0 - ema.decay_at(int(num_updates))
        for average, value in zip(averaged, current, strict=True):
            average.lerp_(value, weight) if average.is_floating_point() else average.copy_(value)

    ema._average_model.multi_avg_fn = update
    ema._average_model.update_parameters(learner)


def seeded(step: Callable, *args) -> Callable[[int], torch.Tensor]:
    """`step(*args, index)`, with torch's generator reseeded before the first call, so that every
    variant's first step draws the same dropout masks (its loss is a check of the same maths)."""

    def call(index: int) -> torch.Tensor:
        if index == 0:
            torch.manual_seed(0)
        return step(*args, index)

    return call


def build_learner(config: DictConfig) -> tuple[pl.LightningModule, EMA | None]:
    """The config's learner and its EMA callback (None without one)."""
    learner = instantiate(config.learner, _recursive_=False)
    callbacks = [instantiate(c) for c in (config.trainer or {}).get("callbacks", [])]
    return learner, next((c for c in callbacks if isinstance(c, EMA)), None)


def ships_channels_last(config: DictConfig) -> bool:
    """Whether the config's callbacks store the model channels-last."""
    return any(
        c.get("_target_") == "sesemi.callbacks.ChannelsLast"
        for c in (config.trainer or {}).get("callbacks", [])
    )


# ------------------------------------------------------------------------------------------ USB


def usb_config(settings: Settings, overrides: tuple[str, ...] = ()) -> DictConfig:
    """sesemi's FixMatch as USB runs it (fixed threshold 0.95, no distribution alignment, no
    ramp-up) on USB's WRN-28-2, at USB's batch."""
    head = "learner.hparams.model.regularization_loss_heads.fixmatch"
    config = sesemi.compose(
        "image",
        [
            "method=fixmatch",
            f"run.batch_size_per_gpu={settings.usb_batch}",
            f"run.mu={settings.usb_uratio}",
            f"{head}.head.distribution_alignment=false",
            f"{head}.scheduler=null",
            *overrides,
        ],
    )
    config.learner.hparams.model.backbone = {"_target_": "usb.WideResNetFeatures"}
    resolve(
        config,
        SESEMIConfigAttributes(num_classes=10, max_iterations=1048576, iterations_per_epoch=1024),
    )
    return config


def usb_learner(
    settings: Settings, initial: dict, overrides: tuple[str, ...] = ()
) -> tuple[pl.LightningModule, EMA]:
    """`usb_config`'s learner with USB's initial weights `initial`."""
    learner, ema = build_learner(usb_config(settings, overrides))
    learner.backbone.net.load_state_dict(
        {k: v for k, v in initial.items() if not k.startswith("classifier.")}
    )
    learner.head.fc.load_state_dict(
        {"weight": initial["classifier.weight"], "bias": initial["classifier.bias"]}
    )
    return learner, ema


def usb_batch(batch: dict) -> dict:
    """USB's batch as sesemi's loaders give it."""
    unlabeled = (
        (batch["x_ulb_w"], batch["x_ulb_s"]),
        torch.zeros(len(batch["x_ulb_w"]), dtype=torch.long),
    )
    return {"supervised": (batch["x_lb"], batch["y_lb"]), "fixmatch": unlabeled}


def usb_table(settings: Settings) -> list[str]:
    from usb import usb_variants

    def sesemi_step(
        forward_only_targets: bool, initial: dict, batch: dict
    ) -> Callable[[int], torch.Tensor]:
        flag = f"learner.hparams.model.forward_only_targets={str(forward_only_targets).lower()}"
        return seeded(SesemiStep(*usb_learner(settings, initial, (flag,))), usb_batch(batch))

    def table(rounds: Rounds) -> list[str]:
        names = {
            "usb": "USB (semilearn 0.3.2) FixMatch `train_step` and its hooks",
            "bare_cat": "hand-written PyTorch, one concatenated forward",
            "sesemi_fused": "sesemi, `forward_only_targets=false`",
            "sesemi": "sesemi, `forward_only_targets=true` (default)",
        }
        lines = [
            f"| step | {'CPU s' if settings.cpu_time else 's'}/step | vs USB | vs hand-written | first loss |",
            "|---|---|---|---|---|",
        ]
        for name, label in names.items():
            lines.append(
                f"| {label} | {rounds.median(name):.2f} | {rounds.ratio(name, 'usb'):.2f} | "
                f"{rounds.ratio(name, 'bare_cat'):.2f} | {rounds.first[name]:.5f} |"
            )
        unlabeled = settings.usb_batch * settings.usb_uratio
        note = (
            f"{settings.usb_batch + 2 * unlabeled} images per step ({settings.usb_batch} labeled + 2 x {unlabeled}), "
            f"{settings.threads} threads, {len(rounds.seconds['usb'])} interleaved rounds after {settings.usb_warmup} "
            f"of warm-up (medians; ratios are medians of the ratios within each round){_disturbance(rounds)}{settings.clock_note()}. "
            f"{machine()}."
        )
        return [note, "", *lines]

    variants = usb_variants(settings.usb_batch, settings.usb_uratio, sesemi_step)
    rounds = interleaved(
        variants,
        settings.usb_rounds,
        settings.usb_warmup,
        max_other_load=settings.max_other_load,
        label="usb",
        clock=settings.clock(),
        after_round=lambda rounds: write(README, "usb", table(rounds)),
    )
    return table(rounds)


def write(readme: Path, part: str, table: list[str]) -> None:
    """Writes a table (its note, a blank line, its lines) between the part's markers."""
    note, _, *lines = table
    write_table(readme, part, note, lines)


def _disturbance(rounds: Rounds) -> str:
    parts = (
        [
            f"other work used a median {statistics.median(rounds.others):.0%} of the CPUs during a round"
        ]
        if rounds.others
        else []
    )
    if rounds.rerun:
        parts.append(f"{rounds.rerun} round(s) run again because other work shared the CPUs")
    if rounds.disturbed:
        parts.append(f"{rounds.disturbed} kept although disturbed")
    return f"; {', '.join(parts)}" if parts else ""


# --------------------------------------------------------------------------------------- digits


@dataclass
class DigitsMethod:
    """A method's `digits` config, resolved against its data, and fixed batches of its loaders."""

    name: str
    config: DictConfig
    batches: list[dict]


def digits_method(
    method: str, data_root: Path, steps: int, overrides: tuple[str, ...] = ()
) -> DigitsMethod:
    # no ramp-up: every loss term counts from the first step, whose loss checks that both steps compute the same
    settings = [
        f"method={method}",
        f"run.data_root={data_root}",
        "run.seed=0",
        "run.rampup=0",
        *overrides,
    ]
    config, data = composed_with_data("digits", settings)
    full = config.run.batch_size_per_gpu
    iterators = {}
    for name, loader in data.train_dataloader().items():
        iterator = itertools.cycle(loader)
        # 50 labels in batches of 32 end each pass with 18: keep full batches only
        iterators[name] = (b for b in iterator if name != "supervised" or len(b[1]) == full)
    batches = [{name: next(iterator) for name, iterator in iterators.items()} for _ in range(steps)]
    return DigitsMethod(method, config, batches)


def handwritten_step(
    method: DigitsMethod, learner: pl.LightningModule, ema: EMA | None
) -> HandwrittenStep:
    """The hand-written step of `method`, on copies of the learner's initial weights."""
    optimizer = OmegaConf.to_container(method.config.learner.hparams.optimizer)
    optimizer.pop("_target_")
    extra = {}
    for loss_head in learner.loss_heads.values():
        if hasattr(loss_head, "fc"):
            extra["pretext"] = copy.deepcopy(loss_head.fc)
        if hasattr(loss_head, "projection"):
            extra["projection"] = copy.deepcopy(loss_head.projection)
    return HandwrittenStep(
        method.name,
        copy.deepcopy(learner.backbone),
        copy.deepcopy(learner.head.fc),
        extra,
        optimizer,
        ema.decay if ema else 0.999,
        method.config.run.num_iterations,
        method.config.run.rampup,
        learner.num_classes,
    )


def cycle(step: Callable, batches: list[dict]) -> Callable[[int], torch.Tensor]:
    """A variant that takes the next batch at every call."""
    return seeded(lambda index: step(batches[index % len(batches)], index))


def method_variants(method: DigitsMethod) -> dict[str, Callable]:
    """The hand-written step and sesemi's (with `forward_only_targets` false too, where it matters)."""
    learner, ema = build_learner(method.config)
    variants = {"handwritten": cycle(handwritten_step(method, learner, ema), method.batches)}
    if method.name in TARGET_METHODS:
        fused_learner = copy.deepcopy(learner)
        fused_learner.forward_only_targets = False
        variants["sesemi_fused"] = cycle(
            SesemiStep(fused_learner, copy.deepcopy(ema)), method.batches
        )
    variants["sesemi"] = cycle(SesemiStep(learner, ema), method.batches)
    return variants


def methods_table(settings: Settings, data_root: Path) -> list[str]:
    from common import METHODS

    lines = [
        "| method | images per step | hand-written | sesemi | sesemi vs hand-written | "
        "sesemi, `forward_only_targets=false` | vs hand-written | first loss, hand-written / sesemi |",
        "|---|---|---|---|---|---|---|---|",
    ]
    reruns = disturbed = 0
    others: list[float] = []
    # simclr_freematch's steps are simclr's with the labeled batch, then freematch's (a term
    # weighted 0 is not computed); a method without a hand-written twin has nothing to time against
    names = [*(m for m in METHODS if m != "simclr_freematch"), "simclr"]
    timed = [name for name in names if name == "supervised" or hasattr(HandwrittenStep, name)]
    for name in timed:
        method = digits_method(name, data_root, settings.digits_steps)
        rounds = interleaved(
            method_variants(method),
            settings.digits_rounds,
            settings.digits_warmup,
            settings.digits_steps,
            settings.max_other_load,
            label=name,
            clock=settings.clock(),
        )
        reruns, disturbed = reruns + rounds.rerun, disturbed + rounds.disturbed
        others += rounds.others
        fused = "-", "-"
        if "sesemi_fused" in rounds.seconds:
            fused = (
                f"{1000 * rounds.median('sesemi_fused'):.1f} ms",
                f"{rounds.ratio('sesemi_fused', 'handwritten'):.2f}",
            )
        lines.append(
            f"| {name} | {items_in(method.batches[0])} | {1000 * rounds.median('handwritten'):.1f} ms | "
            f"{1000 * rounds.median('sesemi'):.1f} ms | {rounds.ratio('sesemi', 'handwritten'):.2f} | "
            f"{fused[0]} | {fused[1]} | {rounds.first['handwritten']:.5f} / {rounds.first['sesemi']:.5f} |"
        )
        print(lines[-1], flush=True)
    note = (
        f"`digits method=X`, {settings.digits_steps} steps per variant per round, {settings.digits_rounds} "
        f"interleaved rounds after {settings.digits_warmup} of warm-up (medians), {settings.threads} threads"
        f"{_disturbance(Rounds({}, disturbed, reruns, others=others))}{settings.clock_note()}. {machine()}."
    )
    untimed = [name for name in names if name not in timed]
    if untimed:
        note += f" Without a hand-written twin, not timed here: {', '.join(untimed)}."
    return [note, "", *lines]


# --------------------------------------------------------------------------------------- levers


@dataclass(frozen=True)
class Lever:
    """One way to make the step faster, added alone to the plain step.

    Attributes:
        label: The table's row.
        how: How a run turns it on.
        overrides: Config overrides that turn it on.
        channels_last: Convert the model as `sesemi.callbacks.ChannelsLast` does.
        autocast: Run `training_step` under bf16 autocast, as `trainer.precision=bf16-mixed` does.
        per_tensor_ema: Update the EMA as sesemi did before (see `per_tensor_ema_update`).
    """

    label: str
    how: str
    overrides: tuple[str, ...] = ()
    channels_last: bool = False
    autocast: bool = False
    per_tensor_ema: bool = True


PLAIN = Lever(
    "plain: NCHW, float32, eager, for-loop SGD, EMA with one `lerp_` per tensor (before)", "-"
)
LEVERS = {
    "plain": PLAIN,
    "foreach_ema": replace(
        PLAIN, label="EMA with foreach kernels", how="default now", per_tensor_ema=False
    ),
    "channels_last": replace(
        PLAIN,
        label="channels-last",
        how="`sesemi.callbacks.ChannelsLast` in `trainer.callbacks`",
        channels_last=True,
    ),
    "bf16": replace(
        PLAIN, label="bf16 autocast", how="`+trainer.precision=bf16-mixed`", autocast=True
    ),
    "compile": replace(
        PLAIN,
        label="`torch.compile` of the backbone",
        how="`learner.hparams.model.compile=true`",
        overrides=("learner.hparams.model.compile=true",),
    ),
    "foreach_sgd": replace(
        PLAIN,
        label="foreach SGD",
        how="`+learner.hparams.optimizer.foreach=true`",
        overrides=("+learner.hparams.optimizer.foreach=true",),
    ),
    "fused_sgd": replace(
        PLAIN,
        label="fused SGD",
        how="`+learner.hparams.optimizer.fused=true`",
        overrides=("+learner.hparams.optimizer.fused=true",),
    ),
}


def lever_variants(
    make: Callable[[tuple[str, ...]], DictConfig], batches: list[dict], skip: tuple[str, ...] = ()
) -> dict:
    """Every lever's step but those in `skip`, and the step as the config ships (`defaults`),
    from the same weights; `make(overrides)` composes the config."""
    reference, _ = build_learner(make(()))
    initial = copy.deepcopy(reference.state_dict())

    def step(
        overrides: tuple[str, ...], channels_last: bool, autocast: bool, per_tensor_ema: bool
    ) -> Callable:
        learner, ema = build_learner(make(overrides))
        learner.load_state_dict(initial)
        if channels_last:
            learner = learner.to(memory_format=torch.channels_last)
        return cycle(SesemiStep(learner, ema, autocast, per_tensor_ema), batches)

    variants = {
        name: step(lever.overrides, lever.channels_last, lever.autocast, lever.per_tensor_ema)
        for name, lever in LEVERS.items()
        if name not in skip
    }
    variants["defaults"] = step((), ships_channels_last(make(())), False, False)
    return variants


def levers_column(
    rounds: Rounds | None, unit: float, digits: int
) -> dict[str, tuple[str, str, str]]:
    """Each variant's cells: time per step (in `unit` seconds), speed-up over the plain step, first
    loss; `-` where not measured (yet)."""
    cells = {}
    for name in [*LEVERS, "defaults"]:
        if rounds is None or not rounds.seconds.get(name):
            cells[name] = ("-", "-", "-")
            continue
        speed_up = 1 / rounds.ratio(name, "plain")
        cells[name] = (
            f"{rounds.median(name) / unit:.{digits}f}",
            f"{speed_up:.2f}",
            f"{rounds.first[name]:.4f}",
        )
    return cells


def levers_table(settings: Settings, data_root: Path) -> list[str]:
    from usb import fixed_batch

    method = digits_method("fixmatch", data_root, settings.digits_steps)
    measured: dict[str, Rounds] = {}

    def table() -> list[str]:
        digits, wrn = measured.get("digits"), measured.get("wrn")
        small, large = levers_column(digits, 1e-3, 1), levers_column(wrn, 1.0, 2)
        lines = [
            "| lever | how | digits FixMatch step (ms) | speed-up | WRN-28-2 FixMatch step, USB's batch (s) | "
            "speed-up | first loss, digits / WRN |",
            "|---|---|---|---|---|---|---|",
        ]
        rows = {
            **{name: (lever.label, lever.how) for name, lever in LEVERS.items()},
            "defaults": ("the built-in configs now", "-"),
        }
        for name, (label, how) in rows.items():
            d, w = small[name], large[name]
            lines.append(
                f"| {label} | {how} | {d[0]} | {d[1]} | {w[0]} | {w[1]} | {d[2]} / {w[2]} |"
            )
        kept = {scale: rounds for scale, rounds in measured.items() if rounds.seconds["plain"]}
        compiling = ", ".join(
            f"{rounds.first_seconds['compile'] - rounds.median('compile'):.0f} s ({scale})"
            for scale, rounds in kept.items()
            if "compile" in rounds.seconds
        )
        others = [other for rounds in kept.values() for other in rounds.others]
        counts = {scale: len(rounds.seconds["plain"]) for scale, rounds in kept.items()}
        if compiling:
            compile_note = f"Compiling took {compiling} at the first step, not counted above"
        else:
            compile_note = f"Not timed: {', '.join(settings.skip_levers) or '-'}"
        disturbed = sum(r.disturbed for r in kept.values())
        reruns = sum(r.rerun for r in kept.values())
        note = (
            f"Speed-up: the plain step's time over the lever's, within each round (medians). "
            f"`digits method=fixmatch` ({items_in(method.batches[0])} images a step, {settings.digits_steps} "
            f"steps per variant per round, {counts.get('digits', 0)} rounds after {settings.digits_warmup} of "
            f"warm-up) and the USB table's batch on USB's WRN-28-2 ({counts.get('wrn', 0)} rounds after "
            f"{settings.usb_warmup}), {settings.threads} threads. {compile_note}"
            f"{_disturbance(Rounds({}, disturbed, reruns, others=others))}{settings.clock_note()}. {machine()}."
        )
        return [note, "", *lines]

    def keep(scale: str) -> Callable[[Rounds], None]:
        def after_round(rounds: Rounds) -> None:
            measured[scale] = rounds
            write(README, "levers", table())

        return after_round

    def digits_config(overrides: tuple[str, ...]) -> DictConfig:
        return digits_method("fixmatch", data_root, 0, overrides).config

    measured["digits"] = interleaved(
        lever_variants(digits_config, method.batches, settings.skip_levers),
        settings.digits_rounds,
        settings.digits_warmup,
        settings.digits_steps,
        settings.max_other_load,
        label="levers digits",
        clock=settings.clock(),
        after_round=keep("digits"),
    )
    batch = [usb_batch(fixed_batch(settings.usb_batch, settings.usb_uratio))]
    measured["wrn"] = interleaved(
        lever_variants(partial(usb_config, settings), batch, settings.skip_levers),
        settings.usb_rounds,
        settings.usb_warmup,
        1,
        settings.max_other_load,
        label="levers wrn",
        clock=settings.clock(),
        after_round=keep("wrn"),
    )
    return table()


# ------------------------------------------------------------------------------------- accuracy

# The levers that change the arithmetic, each a `digits` run from the same seed against the
# built-in configs. The others compute the same numbers in another layout (channels-last) or
# with fewer kernel launches (foreach and fused updates): equal up to rounding.
ACCURACY_LEVERS = {
    "the built-in configs (channels-last, EMA with foreach kernels)": (),
    "bf16 autocast": ("+trainer.precision=bf16-mixed",),
    "`torch.compile` of the backbone": ("learner.hparams.model.compile=true",),
}


def accuracy_table(settings: Settings, runs: Path) -> list[str]:
    """Short `digits` runs (the digits default method) through the command line, one per lever."""
    from common import run_config

    lines = ["| lever | val/top1 (%) | wall time |", "|---|---|---|"]
    for index, (label, overrides) in enumerate(ACCURACY_LEVERS.items()):
        if "compile" in settings.skip_levers and "compile" in label:
            continue
        arguments = [
            *overrides,
            f"run.num_iterations={settings.iterations}",
            f"run.seed={settings.seed}",
        ]
        result = run_config(
            "digits", arguments, runs, f"lever_{index}", runs / "digits", settings.threads
        )
        lines.append(
            f"| {label} | {100 * result['metrics']['val/top1']:.1f} | {result['process_wall_time_s']:.0f} s |"
        )
        print(lines[-1], flush=True)
    note = (
        f"`open_sesemi -cn digits run.num_iterations={settings.iterations} run.seed={settings.seed}` (FlexMatch) with "
        f"each lever, one run each, {settings.threads} threads: a check that a lever trains as well, not a "
        f"comparison within seed noise. {machine()}."
    )
    return [note, "", *lines]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("parts", nargs="*", choices=PARTS, default=list(PARTS))
    defaults = Settings()
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument(
        "--rounds", type=int, help="kept rounds of every table (default: the settings')"
    )
    parser.add_argument("--warmup", type=int, help="warm-up rounds of every table")
    parser.add_argument(
        "--cpu-time", action="store_true", help="time steps by CPU time, not wall time"
    )
    parser.add_argument(
        "--skip-levers", nargs="*", default=[], choices=list(LEVERS), help="levers not timed"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="of the accuracy runs")
    parser.add_argument(
        "--iterations", type=int, default=defaults.iterations, help="of each accuracy run"
    )
    parser.add_argument(
        "--max-other-load",
        type=float,
        default=defaults.max_other_load,
        help="1 keeps every round, however busy",
    )
    parser.add_argument(
        "--runs", type=Path, help="keep the accuracy runs here; finished ones are reused"
    )
    args = parser.parse_args()
    settings = replace(
        defaults,
        threads=args.threads,
        seed=args.seed,
        iterations=args.iterations,
        max_other_load=args.max_other_load,
        cpu_time=args.cpu_time,
        skip_levers=tuple(args.skip_levers),
    )
    if args.rounds is not None:
        settings = replace(settings, usb_rounds=args.rounds, digits_rounds=args.rounds)
    if args.warmup is not None:
        settings = replace(settings, usb_warmup=args.warmup, digits_warmup=args.warmup)
    torch.set_num_threads(settings.threads)
    warnings.filterwarnings("ignore")
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        data_root = Path(scratch) / "digits"
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(
            Path(scratch) / "inductor"
        )  # compile time as on a first run
        tables = {
            "usb": lambda: usb_table(settings),
            "methods": lambda: methods_table(settings, data_root),
            "levers": lambda: levers_table(settings, data_root),
            "accuracy": lambda: accuracy_table(settings, args.runs or Path(scratch) / "runs"),
        }
        for part in PARTS:  # the timings first: the accuracy runs would share the CPUs
            if part in args.parts:
                table = tables[part]()
                write(README, part, table)
                print("\n".join(table), flush=True)
    print(f"{time.time() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
