"""Shared helpers of the experiment scripts: run a config through the real CLI, tabulate results."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from functools import cache
from pathlib import Path

import torch
import yaml

from sesemi.config.catalog import methods
from sesemi.datasets.builtin import prepare_builtin

OPEN_SESEMI = str(Path(sys.executable).parent / "open_sesemi")
# The built-in methods (configs/method/), the labels alone first, as the tables list them;
# not `simclr`, a pre-training without labels that leaves the classifier untrained.
METHODS = ["supervised", *(method for method in methods() if method not in ("supervised", "simclr"))]


def run_config(
    config: str,
    overrides: list[str],
    runs_dir: Path,
    run_id: str,
    data_root: Path | None = None,
    threads: int | None = None,
    side_by_side: int = 1,
) -> dict:
    """Runs `open_sesemi -cn config overrides...` and returns its results.json (plus wall time).

    A run whose results.json is already under `runs_dir/run_id` is not run again, so a sweep
    into a kept `runs_dir` resumes where it stopped. `threads` caps the process's compute
    threads, for running several runs side by side; `side_by_side` (how many) is recorded in
    its results.json, so that a table made later says how its runs shared the machine.
    """
    finished = sorted((runs_dir / run_id).rglob("results.json"), key=os.path.getmtime)
    if finished:
        _require_same_overrides(finished[-1].parent, overrides)
        results = json.loads(finished[-1].read_text())
        results.setdefault("process_wall_time_s", results["wall_time_s"])
        results["finished"] = date.fromtimestamp(finished[-1].stat().st_mtime).isoformat()
        return results
    command = [OPEN_SESEMI, "-cn", config, f"run.dir={runs_dir}", f"run.id={run_id}", *overrides]
    if data_root is not None:
        prepare_builtin(data_root)  # runs build it only inside the working directory
        command.append(f"run.data_root={data_root}")
    command.append("+trainer.enable_progress_bar=false")
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    results_file = max((runs_dir / run_id).rglob("results.json"), key=os.path.getmtime)
    results = json.loads(results_file.read_text())
    results["process_wall_time_s"] = round(time.time() - started, 1)
    results["runs_side_by_side"] = side_by_side
    results_file.write_text(json.dumps(results, indent=2))
    results["finished"] = date.today().isoformat()
    accuracy = results["metrics"].get("val/top1", float("nan"))
    print(f"{run_id}: val/top1 {100 * accuracy:.1f}, {results['process_wall_time_s']:.0f} s", file=sys.stderr, flush=True)
    return results


def _require_same_overrides(run_dir: Path, overrides: list[str]) -> None:
    """Refuses to reuse a finished run that was started with other overrides, unless each one it
    lacks sets a value its config already had (a default the script now spells out). The
    overrides are compared as open_sesemi records them (a length given nulls the other two)."""
    from sesemi.config.compose import one_length

    recorded = run_dir / ".hydra" / "overrides.yaml"
    if not recorded.exists():
        return
    own = {"run.dir", "run.id", "run.data_root", "+trainer.enable_progress_bar"}
    kept = [o for o in yaml.safe_load(recorded.read_text()) if o.split("=", 1)[0] not in own]
    wanted, had = set(map(_unforced, one_length(overrides))), set(map(_unforced, kept))
    if had - wanted or not all(_already_set(run_dir, override) for override in wanted - had):
        raise RuntimeError(f"{run_dir} was run with {kept}, not {overrides}: use another run id or --runs folder")


def _unforced(override: str) -> str:
    """`++key=value` or `+key=value` as `key=value`: both runs composed, so the key was set or
    added alike."""
    return override.lstrip("+")


# The audio strong view without its speed change, the default before 2026-12-05: the audio
# tables measured before then pass it, so that they reproduce.
SPEED_OFF = "data.views.strong.speed=[1.0,1.0]"
# Options added after some kept runs were made, with the value that does what those runs did.
BEFORE_THE_OPTION = {key: yaml.safe_load(value) for key, _, value in [SPEED_OFF.partition("=")]}


def _already_set(run_dir: Path, override: str) -> bool:
    """Whether the run's composed config (before interpolation) already held `key=value`, or
    lacked an option that `value` turns off (`BEFORE_THE_OPTION`)."""
    from omegaconf import OmegaConf

    key, _, value = override.partition("=")
    if "." not in key or not key.replace(".", "").replace("_", "").isalnum():  # a config group or a deletion
        return False
    absent = object()
    saved = OmegaConf.select(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), key, default=absent)
    if saved is absent:
        saved = BEFORE_THE_OPTION.get(key, absent)
    saved = OmegaConf.to_container(saved) if OmegaConf.is_config(saved) else saved
    return saved is not absent and saved == yaml.safe_load(value)


def run_many(jobs: list[tuple], parallel: int = 1) -> list[dict]:
    """Runs `run_config(*job)` for each job, `parallel` at a time (one thread each if > 1)."""
    if parallel == 1:
        return [run_config(*job) for job in jobs]
    from concurrent.futures import ThreadPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // parallel)
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda job: run_config(*job, threads=threads, side_by_side=parallel), jobs))


def run_groups(groups: dict[str, list[tuple]], parallel: int = 1) -> dict[str, list[dict]]:
    """Runs the jobs of every group (e.g. a method's seeds) in one pool and returns each group's
    results in the order of its jobs. With 3 seeds and 2 runs side by side, running one group
    after another would leave a core idle for each group's last run."""
    results = iter(run_many([job for jobs in groups.values() for job in jobs], parallel))
    return {name: [next(results) for _ in jobs] for name, jobs in groups.items()}


# Every training item with its label: the ceiling of a table, supervised training on all labels.
ALL_LABELS = "data.train.supervised.dataset.subset=train_all"
# Pre-trained audio weights, where a user would start from a published model: the audio network
# trained on 25 other spoken words (no digit, no instrument), 160 labeled clips each (and 20 to
# validate) in the spoken-digits voices and noises, built and trained once in a runs folder and
# shared by every row and seed that names it. Audio rows whose name ends in `_words` start from
# its last checkpoint.
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bed", "bird", "cat", "dog",
         "happy", "house", "tree", "wow", "backward", "forward", "follow", "learn", "visual", "water", "music")
WORDS_RUN = ["method=supervised", ALL_LABELS, "run.num_iterations=4800", "run.seed=0"]


def last_checkpoint(result: dict) -> Path:
    """A finished run's last checkpoint, as its results.json records it."""
    return Path(result["run_dir"]) / result["last_checkpoint"]


@cache
def words_network(runs: Path) -> Path:
    """The spoken-words network's last checkpoint: its data built and the network trained once."""
    from sesemi.datasets.spoken_digits import write_spoken_digits

    data = runs / "spoken_words"
    if not data.exists():
        write_spoken_digits(data, labeled=20, unlabeled=140, val=20, seed=1, words=WORDS)
    return last_checkpoint(run_config("spoken_digits", WORDS_RUN, runs, "spoken_words_4800", data))


def pretrained(row: str, runs: Path) -> list[str]:
    """The override that starts an `_words` row from the spoken-words network."""
    return [f"run.pretrained_checkpoint_path={words_network(runs)}"] if row.endswith("_words") else []


def runs_at_a_time(results: list[dict], parallel: int) -> str:
    """How many runs shared the machine while these ran ("2", or "1 to 2"), as their
    results.json recorded it; `parallel` (this sweep's) for runs that did not record it."""
    counts = sorted({r.get("runs_side_by_side", parallel) for r in results} or {parallel})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"


def newest_run(results: list[dict]) -> str:
    """The day the newest of these runs (as `run_config` returns them) finished."""
    return max(r["finished"] for r in results)


def mean_std(values: list[float]) -> str:
    """`mean ± std` in percent."""
    values = [100 * v for v in values]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def per_seed(values: list[float]) -> str:
    """Each seed's value in percent, `a / b / c`, to compare runs that share a seed."""
    return " / ".join(f"{100 * v:.1f}" for v in values)


def top1(results: list[dict]) -> list[float]:
    """The final val/top1 of each run (as `run_config` returns them)."""
    return [r["metrics"]["val/top1"] for r in results]


def measured(results: list[dict], baseline: list[float] | None = None) -> str:
    """A table row's measured cells: val/top1 mean ± std, per seed, gain cells, wall time per run.

    `baseline` is the val/top1 of the labels alone on the same seeds; without it (the row of the
    labels alone) the gain cells are `-`.
    """
    values = top1(results)
    seconds = sum(r["process_wall_time_s"] for r in results) / len(results)
    gain = gains(values, baseline) if baseline is not None else "- | -"
    return f"{mean_std(values)} | {per_seed(values)} | {gain} | {seconds:.0f} s"


def write_compared(
    readme: Path,
    finished: dict[str, list[dict]],
    reference: str,
    gains_header: str,
    seeds: list[int],
    parallel: int,
    table: str = "results",
) -> None:
    """Writes the `table` of `readme`: a row a group of runs over `seeds` (as
    `run_groups` returns them), each printed as it is made, with its gains over the `reference`
    group seed by seed (`gains_header` names those two columns)."""
    baseline, rows = top1(finished[reference]), []
    for name, results in finished.items():
        rows.append(f"| {name} | {measured(results, None if name == reference else baseline)} |")
        print(rows[-1], flush=True)
    every = [result for results in finished.values() for result in results]
    header = f"| setting | val/top1 (%) | per seed | {gains_header} | wall time per run |"
    note = f"Seeds {', '.join(map(str, seeds))}, {runs_at_a_time(every, parallel)} run(s) at a time; mean ± std over seeds. {machine(newest_run(every))}."
    write_table(readme, table, note, [header, "|---|---|---|---|---|---|", *rows])


def gains(values: list[float], baseline: list[float]) -> str:
    """Two table cells: each seed's gain over `baseline` (the same seeds), and their mean ± s.e.

    Runs with the same seed start from the same weights, so a method is compared with the
    labels alone seed by seed; the standard error says whether the mean gain stands out from
    the noise between seeds.
    """
    points = [100 * (v - b) for v, b in zip(values, baseline, strict=True)]
    spread = statistics.stdev(points) / math.sqrt(len(points)) if len(points) > 1 else 0.0
    return f"{' / '.join(f'{p:+.1f}' for p in points)} | {statistics.mean(points):+.1f} ± {spread:.1f}"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name} -->", f"<!-- /{name} -->"


def read_table(readme: Path, name: str) -> list[str]:
    """The lines between `<!-- name -->` and `<!-- /name -->` in `readme`."""
    start, end = _markers(name)
    return readme.read_text().split(start, 1)[1].split(end, 1)[0].splitlines()


def merged_rows(readme: Path, name: str, rows: list[str], order: list[str], key_cells: int = 1) -> list[str]:
    """`rows` plus the table's earlier rows they do not replace, sorted by their first cell's
    place in `order` (rows of other names are dropped).

    A row is keyed by its first `key_cells` cells (backticks ignored), so a sweep of some arms
    replaces their rows and keeps the others' instead of erasing them.
    """
    by_key: dict[tuple[str, ...], str] = {}
    for row in [*read_table(readme, name), *rows]:
        cells = tuple(cell.strip().strip("`") for cell in row.split("|")[1 : 1 + key_cells])
        if row.startswith("| ") and cells[0] in order:
            by_key[cells] = row
    return sorted(by_key.values(), key=lambda row: order.index(row.split("|")[1].strip().strip("`")))


def kept_earlier(table: list[str], rows: list[str]) -> str:
    """The table note's suffix when `merged_rows` kept rows that this sweep did not run."""
    return "; rows not run this time keep their earlier numbers" if len(table) > len(rows) else ""


def write_table(readme: Path, name: str, note: str, lines: list[str]) -> None:
    """Replaces the text between `<!-- name -->` and `<!-- /name -->` in `readme`."""
    start, end = _markers(name)
    text = readme.read_text()
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1] if end in rest else ""
    body = "\n".join([note, "", *lines])
    readme.write_text(f"{before}{start}\n{body}\n{end}{after}")


def machine(day: str | None = None) -> str:
    """A one-line description of where the numbers were measured, and when (`day`, else today).

    For a table of runs, pass the day the newest of them finished (`newest_run(results)`): a
    sweep that reuses finished runs does not measure them again.
    """
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, no GPU used; Python {platform.python_version()}, "
        f"torch {torch.__version__}; {day or date.today().isoformat()}"
    )


def timed_steps(learner, optimizer, batches: list) -> float:
    """Seconds for training_step + backward + optimizer step over batches held in memory.

    Outside a trainer the learner stays at step 0, where a ramp-up weighs the unlabeled loss 0
    and the step skips it; such a step is refused, since it would time the labels alone
    (compose with `run.rampup=0`).
    """
    idle = [name for name, weighting in learner.loss_weightings.items() if weighting.factor(learner.global_step) == 0]
    if idle:
        raise RuntimeError(f"{', '.join(idle)} weighted 0 at step {learner.global_step} would not be timed: pass run.rampup=0")
    started = time.perf_counter()
    for index, batch in enumerate(batches):
        loss = learner.training_step(batch, index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def seeds_parser(description: str | None) -> argparse.ArgumentParser:
    """A script's argument parser with the options of a seed-by-seed table: `--seeds`,
    `--parallel` and `--runs`."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1, help="runs side by side (one thread each)")
    add_runs_option(parser)
    return parser


def add_runs_option(parser) -> None:
    """`--runs DIR`: where a script keeps its runs, so a stopped table resumes from them."""
    parser.add_argument(
        "--runs",
        type=Path,
        help="keep the runs here (default: a temporary folder); finished ones are reused",
    )


@contextmanager
def runs_folder(kept: Path | None) -> Iterator[Path]:
    """The `--runs` folder, or a temporary one removed when the script ends."""
    if kept is not None:
        yield kept
        return
    with tempfile.TemporaryDirectory() as scratch:
        yield Path(scratch) / "runs"


def composed_with_data(config_name: str, overrides: list[str]) -> tuple:
    """`sesemi.compose(config_name, overrides)` with its data module set up (seed 0) and the
    config's data-dependent fields resolved, as a run starts: what the step benchmarks time."""
    import sesemi
    from sesemi.datamodule import SESEMIDataModule
    from sesemi.runner import attributes_for, resolve

    config = sesemi.compose(config_name, overrides)
    prepare_builtin(config.run.data_root)  # runs build it only inside the working directory
    data = SESEMIDataModule(config.data, config.run.data_root, config.run.batch_size_per_gpu, seed=0)
    data.prepare_data()
    data.setup()
    resolve(config, attributes_for(config, data))
    return config, data


def items_in(batch) -> int:
    """Inputs a training batch holds, all views of all loaders: images `[B, C, H, W]` and
    waveforms `[B, T]` (floating-point tensors; labels and indices are not counted)."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.is_floating_point() and batch.dim() >= 2 else 0
    if isinstance(batch, dict):
        return sum(items_in(b) for b in batch.values())
    if isinstance(batch, list | tuple):
        return sum(items_in(b) for b in batch)
    return 0
