"""Summaries of many runs, from only what each run writes (`config.yaml`, `results.json`,
`metrics.csv`): a table of runs, its mean ± std over seeds, and training curves.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from sesemi.errors import SesemiError, printable
from sesemi.ops.runs import (
    Run,
    field_value,
    find_runs,
    group_runs,
    method,
    partition,
    unique_name,
)
from sesemi.ownership import MARKER, claim, open_atomically, owned, staged, within, write_atomically
from sesemi.run_folder import METRICS

logger = logging.getLogger(__name__)
LEGEND_LINES = 20  # the most runs a plot names in its legend

WALL_TIME = "wall time (s)"
PLOT_BYTES = 180  # the longest plot name kept whole: `.png` and a partial file's suffix fit in 255 bytes
SUMMARY_FILES = ("summary.csv", "aggregated.csv", "summary.md", "plots")  # what write_summary writes
# Always shown in their own columns (id, method, seed) or different in every run (dir).
NOT_DIFFERENCES = {"run.id", "run.method", "run.seed", "run.dir"}


@dataclass
class Summary:
    """What `postprocess` made.

    Attributes:
        runs: One row per run (see `summarize`).
        aggregated: One row per configuration, `<metric> mean` and `<metric> std` over its runs.
        by: The columns that define a configuration.
        metrics: The metric columns of `runs`.
        plots: The PNG files, one per metric.
        unfinished: Runs left out because they did not finish.
        evaluations: Runs left out because they evaluated a checkpoint (`run.mode=VALIDATE` or `TEST`).
    """

    runs: pd.DataFrame
    aggregated: pd.DataFrame
    by: list[str]
    metrics: list[str]
    plots: list[Path]
    unfinished: int = 0
    evaluations: int = 0


def differences(runs: Sequence[Run]) -> list[str]:
    """The config fields that tell apart runs of the same `run.id` (e.g. the values of a sweep).

    Runs of different ids are told apart by the id and method columns, not by the many fields in
    which two configs differ; fields only runs of some methods have (a loss head of one method)
    are left to the `method` column, and the seed to its own. A field only some runs of one
    method have (`+trainer.gradient_clip_val`), or with another value in some (a threshold of
    that method's), tells them apart. Configs are compared as composed (`composed.yaml`) when
    every run of the id has one: a time budget's length, measured anew by each run, and the
    values worked out from it are not choices.
    """
    by_id: dict[Any, list[Run]] = {}
    for run in runs:
        by_id.setdefault(_cell(field_value(run, "run.id")), []).append(run)
    fields: set[str] = set()
    for same_id in by_id.values():
        as_asked = all(run.composed is not None for run in same_id)
        members = [(method(run.config), _flat(run.composed if as_asked else run.config)) for run in same_id]
        flats = [flat for _, flat in members]
        shared = set.intersection(*(set(flat) for flat in flats))
        fields |= {key for key in shared if len({repr(flat[key]) for flat in flats}) > 1}
        for name in {name for name, _ in members}:
            own = [flat for other, flat in members if other == name]
            common = set.intersection(*(set(flat) for flat in own))
            fields |= set.union(*(set(flat) for flat in own)) - common
            fields |= {key for key in common if len({repr(flat[key]) for flat in own}) > 1}
    return sorted(fields - NOT_DIFFERENCES)


def _flat(config: dict[str, Any] | None) -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; lists stay values."""
    return pd.json_normalize(config or {}, sep=".").to_dict("records")[0]


def _cell(value: Any) -> Any:
    """A config value as a table cell: lists and mappings as text (hashable, one per cell)."""
    return str(value) if isinstance(value, list | dict) else value


def _pool_columns(unlabeled: dict[str, Any] | None) -> dict[str, Any]:
    """The cells of what a pseudo-labeling run did with its unlabeled pool (results.json `unlabeled`)."""
    if not unlabeled:
        return {}
    shares = unlabeled.get("pseudo_labeled_per_class") or {}
    columns = {"pool pseudo-labeled": round(sum(shares.values()), 4), "pseudo-labels per class": _per_class(shares)}
    if unlabeled.get("out_of_class") is not None:
        columns["pool out of class"] = unlabeled["out_of_class"]
    if unlabeled.get("predicted_per_class"):  # before distribution alignment
        columns["predicted per class"] = _per_class(unlabeled["predicted_per_class"])
    if unlabeled.get("estimated_pool_prior"):  # with pool_prior
        columns["estimated pool prior"] = _per_class(unlabeled["estimated_pool_prior"])
    return columns


def _per_class(shares: dict[str, float]) -> str:
    return " ".join(f"{c}:{v:.2f}" for c, v in shares.items())


def summarize(runs: Sequence[Run], by: Sequence[str] = ()) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The table of finished training runs (a row each), the columns that tell configurations
    apart, and the metric columns."""
    trained = [run for run in runs if run.trained]
    fields = list(dict.fromkeys([*by, *differences(trained)]))
    rows = [
        {
            "run": run.name,
            "id": _cell(field_value(run, "run.id")),
            "method": method(run.config),
            **{field: _cell(field_value(run, field)) for field in fields if field != "method"},
            "seed": _cell(field_value(run, "run.seed")),
            **run.result.metrics,
            "best val/top1": run.result.best_score,
            "steps": run.result.global_step,
            WALL_TIME: run.result.wall_time_s,
            **_pool_columns(run.result.unlabeled),
        }
        for run in trained
    ]
    # as text anyone can write and read: a class or folder name that is not UTF-8 (held as
    # surrogates, see os.fsdecode) as `\xNN` escapes
    table = pd.DataFrame(rows).map(lambda value: printable(value) if isinstance(value, str) else value)
    for column in ("seed", "steps"):  # whole numbers, also beside a run without one (not 42.0)
        if pd.api.types.is_float_dtype(table[column]) and (table[column].dropna() % 1 == 0).all():
            table[column] = table[column].astype("Int64")
    configuration = list(by) or ["id", "method", *fields]
    ignored = {"run", "seed", "steps", *configuration, *fields}
    metrics = [c for c in table.columns if c not in ignored and pd.api.types.is_numeric_dtype(table[c])]
    return table, configuration, metrics


def aggregate(table: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean and std of each metric over the runs of each configuration (e.g. over seeds)."""
    grouped = table.groupby(list(by), dropna=False, sort=False)
    stats = grouped[list(metrics)].agg(["mean", "std"])
    stats.columns = [f"{metric} {stat}" for metric, stat in stats.columns]
    stats.insert(0, "runs", grouped.size())
    return stats.reset_index()


def plot_curves(runs: Sequence[Run], folder: Path) -> list[Path]:
    """One PNG per metric logged in the runs' `metrics.csv` files, with one curve per run."""
    curves: dict[str, list[tuple[str, pd.DataFrame]]] = {}
    for run in runs:
        path = run.path / METRICS
        if not run.trained or not path.is_file():
            continue
        try:
            frame = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            logger.warning("skipping the curves of %s: %s", path, error)
            continue
        if "step" not in frame.columns:
            logger.warning("skipping the curves of %s: it has no step column", path)
            continue
        for metric in (c for c in frame.columns if c not in ("epoch", "step")):
            points = frame.loc[frame[metric].notna(), ["step", metric]]
            if len(points):
                curves.setdefault(metric, []).append((run.name, points))
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    names: set[str] = set()  # `a/b` and `a_b` are both `a_b`: the second is `a_b~2`
    for metric, lines in sorted(curves.items()):
        figure = Figure(figsize=(7, 4.5), layout="constrained")
        axes = figure.add_subplot()
        for name, points in lines:
            marker = "o" if len(points) <= 20 else None  # a few validations: show the points
            axes.plot(points["step"], points[metric], label=name, marker=marker, markersize=3)
        axes.set(xlabel="step", ylabel=metric, title=metric)
        axes.grid(alpha=0.3)
        if len(lines) <= LEGEND_LINES:  # more names than that read as no legend, and take long to draw
            axes.legend(fontsize="small")
        path = folder / f"{unique_name(metric.replace('/', '_'), names, PLOT_BYTES)}.png"
        with open_atomically(path, "wb") as file:
            figure.savefig(file, format="png", dpi=120)
        written.append(path)
    return written


def display(table: pd.DataFrame, metrics: Sequence[str] = ()) -> pd.DataFrame:
    """The table as text: `mean ± std` pairs merged, numbers rounded, empty cells blank."""
    shown = pd.DataFrame(index=table.index)
    for column in table.columns:
        if column.endswith(" std") and f"{column.removesuffix(' std')} mean" in table.columns:
            continue
        values = table[column]
        if column.endswith(" mean") and f"{column.removesuffix(' mean')} std" in table.columns:
            name = column.removesuffix(" mean")
            pairs = zip(values, table[f"{name} std"], strict=True)
            shown[name] = [_number(m, name) + ("" if pd.isna(s) else f" ± {_number(s, name)}") for m, s in pairs]
        else:
            shown[column] = [_number(v, column) if column in metrics else ("" if pd.isna(v) else str(v)) for v in values]
    return shown


def _number(value: Any, column: str) -> str:
    if pd.isna(value):
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return f"{value:.1f}" if column == WALL_TIME else f"{value:.4f}"
    return str(value)


def markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of text cells."""
    rows = [table.columns, ["---"] * len(table.columns), *table.itertuples(index=False)]
    return "\n".join("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |" for cells in rows)


def postprocess(runs_dir: str | Path, output_dir: str | Path | None = None, by: Sequence[str] = ()) -> Summary:
    """Summarizes the runs under a folder: `summary.csv` (one row per finished training run),
    `aggregated.csv` (mean and std over each configuration's runs), `summary.md` (both, and the
    plots) and `plots/<metric>.png` (one per metric in metrics.csv, the runs overlaid).

    Args:
        runs_dir: The folder to search for run folders, e.g. `runs` or `runs/digits`.
        output_dir: Where to write; by default `<runs_dir>/summary`.
        by: The config fields that define a configuration (e.g. `learner.hparams.optimizer.lr`);
            by default the run id, the method and every field that differs between runs,
            except the seed, so each configuration is averaged over its seeds.
    """
    folder = Path(output_dir) if output_dir else Path(runs_dir) / "summary"
    runs = find_runs(runs_dir)
    _check_fields([run for run in runs if run.trained], by)
    return write_summary(runs, folder, str(runs_dir), by)


def _check_fields(runs: Sequence[Run], by: Sequence[str]) -> None:
    """Refuses a `by` field no run has (a misspelling would average every run together)."""
    for field in by:
        if runs and all(field_value(run, field) is None for run in runs):
            fields = ", ".join(differences(runs)) or "none"
            raise SesemiError(f"no run has the config field {field!r}; fields that differ between runs: {fields}")


@dataclass(frozen=True)
class Group:
    """What `group` made, or would make on a dry run."""

    folder: Path  # `<runs_dir>/groups/<name>`
    members: dict[str, list[Run]]  # the runs linked into each `<field=value,...>` folder
    replaced: bool  # whether a group of that name was (or would be) replaced
    summary: Summary | None  # None on a dry run


def group(runs_dir: str | Path, by: Sequence[str], name: str, force: bool = False, dry_run: bool = False) -> Group:
    """Gathers the finished runs under `runs_dir` into `<runs_dir>/groups/<name>/<field=value,...>/`
    (as links), a folder per value of the `by` fields (e.g. `learner.hparams.optimizer.lr` or
    `method`), with a summary averaged over each folder's runs. The group is renamed into place
    when complete; `force` replaces one sesemi made, never a folder of someone else's; `dry_run`
    only says what would be made.
    """
    if not by:
        raise SesemiError("name the config fields to group by, e.g. --by learner.hparams.optimizer.lr")
    if not name or Path(name).name != name or name.startswith("."):
        raise SesemiError(f"the group name {name!r} must be a plain folder name")
    runs = [run for run in find_runs(runs_dir) if run.trained]
    if not runs:
        raise SesemiError(f"no finished training runs under {runs_dir}")
    _check_fields(runs, by)
    folder = Path(runs_dir) / "groups" / name
    if not within(folder.parent, runs_dir):  # a group sesemi made there is not one made in runs_dir
        raise SesemiError(f"will not write into {folder.parent}: it is a symbolic link out of {runs_dir}; group the runs where it leads")
    exists = os.path.lexists(folder)
    if exists and not owned(folder, "group"):
        raise SesemiError(f"will not replace {folder}: it is not a group sesemi made (no {MARKER} marker of its own); choose another --name")
    if exists and not force:
        raise SesemiError(f"group {folder} exists; pass --force to replace it")
    if dry_run:
        return Group(folder, partition(runs, by), exists, None)
    with staged(folder, "group") as building:
        members = group_runs(runs, by, building)
        summary = write_summary(find_runs(building), building / "summary", str(folder), by)
    plots = [folder / path.relative_to(building) for path in summary.plots]  # where they are now
    return Group(folder, members, exists, dataclasses.replace(summary, plots=plots))


def write_summary(runs: Sequence[Run], folder: Path, title: str, by: Sequence[str] = ()) -> Summary:
    """Writes `summary.csv`, `aggregated.csv`, `summary.md` and `plots/` of `runs` into `folder`,
    a folder sesemi made (marked `summary`; a `plots` symlink there is replaced by a folder, never
    written through), or one of someone else's that holds none of them."""
    trained = [run for run in runs if run.trained]
    unfinished = sum(not run.finished for run in runs)
    if not trained:
        note = f" ({unfinished} without results.json: `sesemi rm-failed` removes those that stopped)" if unfinished else ""
        raise SesemiError(f"no finished training runs under {title}{note}")
    if not claim(folder, "summary"):  # a folder of someone else's: sesemi may add files, not replace any
        taken = [name for name in SUMMARY_FILES if os.path.lexists(folder / name)]
        if taken:
            raise SesemiError(
                f"{folder} holds a {taken[0]} that sesemi did not write (no {MARKER} marker of its own); "
                "choose another output folder, or move it away"
            )
    table, configuration, metrics = summarize(trained, by)
    aggregated = aggregate(table, configuration, metrics)
    for frame, file_name in ((table, "summary.csv"), (aggregated, "aggregated.csv")):
        with open_atomically(folder / file_name, newline="") as file:
            frame.to_csv(file, index=False)
    if (folder / "plots").is_symlink():  # in a folder sesemi marked: a link of someone else's is refused above
        (folder / "plots").unlink()
    plots = plot_curves(trained, folder / "plots")
    images = "".join(f"![{p.stem}](plots/{p.name})\n\n" for p in plots)
    write_atomically(
        folder / "summary.md",
        f"# Runs under {title}\n\n{markdown(display(table, metrics))}\n\n"
        f"## Mean ± std over the runs of each configuration ({', '.join(configuration)})\n\n"
        f"{markdown(display(aggregated))}\n\n## Curves\n\n{images}".removesuffix("\n"),
    )
    evaluations = sum(run.finished and not run.trained for run in runs)
    return Summary(table, aggregated, configuration, metrics, plots, unfinished, evaluations)
