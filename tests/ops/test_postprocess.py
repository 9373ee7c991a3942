"""Summaries of many runs (sesemi/ops/postprocess.py): tables, mean ± std over seeds, curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib import colormaps
from PIL import Image
from run_folders import run_config, write_run

from sesemi.errors import SesemiError
from sesemi.ops.postprocess import (
    aggregate,
    differences,
    display,
    group,
    markdown,
    plot_curves,
    postprocess,
    summarize,
    write_summary,
)
from sesemi.ops.runs import find_runs, remove_failed
from sesemi.ownership import marker


@pytest.fixture
def make_run(tmp_path):
    """`make_run("digits/t1", config=run_config(seed=2), top1=[0.3, 0.6])` writes
    `tmp_path/runs/digits/t1` (see run_folders.write_run)."""
    return lambda name, **kwargs: write_run(tmp_path / "runs" / name, **kwargs)


def curve_count(png) -> int:
    """How many of matplotlib's default line colours (tab10) a PNG shows: one per curve.

    Gray is left out: anti-aliased black text has pixels of that gray too.
    """
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    present = {tuple(p) for p in np.unique(pixels, axis=0)}
    colours = [tuple(round(255 * c) for c in rgb) for rgb in colormaps["tab10"].colors]
    return sum(colour in present for colour in colours if colour != (127, 127, 127))


@pytest.fixture
def three_seeds_two_lrs(make_run, tmp_path):
    """Runs of two learning rates: three seeds of 0.1, two of 0.01, and a failed one."""
    for seed, top1 in zip((1, 2, 3), (0.5, 0.6, 0.7), strict=True):
        make_run(f"digits/lr0.1-s{seed}", config=run_config(seed=seed, lr=0.1), top1=[0.2, top1])
    for seed, top1 in zip((1, 2), (0.8, 0.9), strict=True):
        make_run(f"digits/lr0.01-s{seed}", config=run_config(seed=seed, lr=0.01), top1=[0.3, top1])
    make_run("digits/failed", top1=None)
    return find_runs(tmp_path / "runs")


def test_differences_are_shared_fields_with_other_values(make_run, tmp_path):
    """Fields that every run of an id has and that differ; not the seed, not the fields of one
    method only, and not what differs between runs of other ids (other configs)."""
    make_run("a", config=run_config(seed=1, lr=0.1, heads=["fixmatch"]))
    make_run("b", config=run_config(seed=2, lr=0.03, heads=["rotation_prediction"]))
    make_run("c", config=run_config(seed=1, lr=0.5, run_id="other"))
    assert differences(find_runs(tmp_path / "runs")) == ["learner.hparams.optimizer.lr"]
    (tmp_path / "runs" / "b" / "results.json").unlink()
    assert differences([run for run in find_runs(tmp_path / "runs") if run.finished]) == []


def test_a_field_only_some_runs_of_a_method_have_tells_them_apart(make_run, tmp_path):
    """`+trainer.gradient_clip_val=...` on one of two runs of a method: they are two
    configurations (the other's value is empty), not one averaged over both."""
    make_run("a", config=run_config(seed=1), top1=[0.3, 0.33])
    clipped = run_config(seed=1)
    clipped["trainer"] = {"gradient_clip_val": 1e-5}
    make_run("b", config=clipped, top1=[0.1, 0.1])
    runs = find_runs(tmp_path / "runs")
    assert differences(runs) == ["trainer.gradient_clip_val"]
    summary = postprocess(tmp_path / "runs", tmp_path / "summary")
    assert len(summary.aggregated) == 2


def test_a_setting_of_one_method_tells_its_runs_apart_beside_another_method(make_run, tmp_path):
    """Two thresholds of FixMatch beside a supervised run of the same id: two FixMatch
    configurations (the threshold, which the supervised run lacks, was left out and all three
    FixMatch runs averaged together)."""
    for name, seed, threshold, top1 in (("a", 1, 0.95, 0.5), ("b", 2, 0.95, 0.6), ("c", 1, 0.85, 0.9)):
        config = run_config(seed=seed, heads=["fixmatch"])
        config["learner"]["hparams"]["model"]["regularization_loss_heads"]["fixmatch"]["head"]["threshold"] = threshold
        make_run(name, config=config, top1=[0.1, top1])
    make_run("d", config=run_config(heads=[]), top1=[0.1, 0.4])
    field = "learner.hparams.model.regularization_loss_heads.fixmatch.head.threshold"
    assert differences(find_runs(tmp_path / "runs")) == [field]
    aggregated = postprocess(tmp_path / "runs", tmp_path / "summary").aggregated
    assert sorted(aggregated["runs"]) == [1, 1, 2]
    assert aggregated.set_index(field).loc[0.95, "val/top1 mean"] == pytest.approx(0.55)


def test_postprocess_by_the_id_column_or_a_field_no_run_has(three_seeds_two_lrs, tmp_path):
    """`--by id` groups by the column the screen names (its cells were emptied, every run in one
    group); a misspelt field is one line, not one group of every run."""
    summary = postprocess(tmp_path / "runs", tmp_path / "by_id", by=["id"])
    assert summary.by == ["id"] and list(summary.aggregated["id"]) == ["digits"]
    assert set(summary.runs["id"]) == {"digits"}
    with pytest.raises(SesemiError, match=r"no run has the config field 'learner.hparams.optimiser.lr'; fields that differ"):
        postprocess(tmp_path / "runs", tmp_path / "typo", by=["learner.hparams.optimiser.lr"])


def test_seeds_of_a_time_budget_are_one_configuration(make_run, tmp_path):
    """Each seed of `run.time_budget=15m` measures its own length (and the schedules worked out
    from it): runs are compared as composed, so the seeds average as one configuration."""
    import yaml

    for seed, steps in ((1, 33), (2, 37)):
        config = run_config(seed=seed)
        config["run"].update(num_iterations=steps, time_budget="15m")
        make_run(f"s{seed}", config=config)
        composed = run_config(seed=seed)
        composed["run"].update(num_iterations=None, time_budget="15m")
        (tmp_path / "runs" / f"s{seed}" / "composed.yaml").write_text(yaml.safe_dump(composed))
    runs = find_runs(tmp_path / "runs")
    assert differences(runs) == []
    assert list(postprocess(tmp_path / "runs", tmp_path / "summary").aggregated["runs"]) == [2]
    (tmp_path / "runs" / "s2" / "composed.yaml").unlink()  # a run of an earlier release: as they ran
    assert differences(find_runs(tmp_path / "runs")) == ["run.num_iterations"]


def test_the_method_is_one_column(make_run, tmp_path):
    """Runs of one id with two methods: the method shows once, not again as `run.method`."""
    for name in ("fixmatch", "supervised"):
        config = run_config()
        config["run"]["method"] = name
        make_run(f"digits/{name}", config=config)
    table, configuration, _ = summarize(find_runs(tmp_path / "runs"))
    assert "run.method" not in table.columns and configuration == ["id", "method"]
    assert list(table["method"]) == ["fixmatch", "supervised"]


def test_seeds_stay_whole_numbers_beside_a_run_without_one(make_run, tmp_path):
    """A run without a seed (a TrainingRun's) leaves the others' seeds as 42, not 42.0."""
    make_run("digits/seeded", config=run_config(seed=42))
    unseeded = run_config()
    unseeded["run"]["seed"] = None
    make_run("digits/unseeded", config=unseeded)
    summary = postprocess(tmp_path / "runs", tmp_path / "summary")
    assert list(display(summary.runs)["seed"]) == ["42", ""]
    assert "42.0" not in (tmp_path / "summary" / "summary.csv").read_text()


def test_summary_has_one_row_per_finished_run(three_seeds_two_lrs):
    """Columns: run, id, method, the differing fields, seed, final metrics, best, steps, time."""
    table, configuration, metrics = summarize(three_seeds_two_lrs)
    assert len(table) == 5
    assert list(table.columns[:5]) == [
        "run",
        "id",
        "method",
        "learner.hparams.optimizer.lr",
        "seed",
    ]
    assert configuration == ["id", "method", "learner.hparams.optimizer.lr"]
    assert set(metrics) == {"val/top1", "val/loss", "best val/top1", "wall time (s)"}
    row = table.set_index("run").loc["digits/lr0.1-s2"]
    assert (
        row["val/top1"] == 0.6
        and row["best val/top1"] == 0.6
        and row["steps"] == 20
        and row["seed"] == 2
    )


def test_aggregation_is_mean_and_std_over_seeds(three_seeds_two_lrs):
    table, configuration, metrics = summarize(three_seeds_two_lrs)
    aggregated = aggregate(table, configuration, metrics).set_index("learner.hparams.optimizer.lr")
    assert aggregated.loc[0.1, "runs"] == 3 and aggregated.loc[0.01, "runs"] == 2
    assert aggregated.loc[0.1, "val/top1 mean"] == pytest.approx(0.6)
    assert aggregated.loc[0.1, "val/top1 std"] == pytest.approx(0.1)
    assert aggregated.loc[0.01, "val/top1 mean"] == pytest.approx(0.85)
    shown = display(aggregated.reset_index())
    assert "0.6000 ± 0.1000" in shown["val/top1"].tolist()


def test_aggregation_by_chosen_fields(three_seeds_two_lrs):
    """`by` replaces the default configuration columns: here all runs per seed."""
    table, configuration, metrics = summarize(three_seeds_two_lrs, by=["run.seed"])
    assert configuration == ["run.seed"]
    aggregated = aggregate(table, configuration, metrics).set_index("run.seed")
    assert aggregated.loc[1, "runs"] == 2 and aggregated.loc[3, "runs"] == 1
    assert aggregated.loc[1, "val/top1 mean"] == pytest.approx(0.65)


def test_plots_are_images_with_one_curve_per_run(three_seeds_two_lrs, tmp_path):
    """One PNG per logged metric; each shows the five finished runs (the failed one has no
    metrics.csv), each in its own colour."""
    plots = plot_curves(three_seeds_two_lrs, tmp_path / "plots")
    assert sorted(p.name for p in plots) == ["train_loss.png", "val_loss.png", "val_top1.png"]
    for plot in plots:
        with Image.open(plot) as image:
            assert image.format == "PNG" and image.size[0] > 500
        assert curve_count(plot) == 5


def test_markdown_table():
    frame = pd.DataFrame({"a": ["x|y", "z"], "b": ["1", "2"]})
    assert markdown(frame).splitlines() == [
        "| a | b |",
        "| --- | --- |",
        "| x\\|y | 1 |",
        "| z | 2 |",
    ]


def test_postprocess_writes_tables_and_plots(three_seeds_two_lrs, tmp_path):
    out = tmp_path / "summary"
    summary = write_summary(three_seeds_two_lrs, out, "runs")
    assert len(pd.read_csv(out / "summary.csv")) == 5
    assert len(pd.read_csv(out / "aggregated.csv")) == 2
    text = (out / "summary.md").read_text()
    assert "| digits/lr0.1-s1 |" in text and "0.8500 ± 0.0707" in text
    assert "![val_top1](plots/val_top1.png)" in text
    assert len(summary.plots) == 3


def test_postprocess_never_replaces_a_summary_of_someone_elses(three_seeds_two_lrs, tmp_path):
    """An output folder that holds files sesemi did not write (no marker) gets no summary over
    them; a new folder is marked as sesemi's and written again at every call."""
    mine = tmp_path / "report"
    mine.mkdir()
    (mine / "summary.md").write_text("my notes\n")
    with pytest.raises(SesemiError, match=r"report holds a summary.md that sesemi did not write"):
        postprocess(tmp_path / "runs", mine)
    assert (mine / "summary.md").read_text() == "my notes\n"
    for _ in range(2):
        postprocess(tmp_path / "runs", tmp_path / "new")
    assert (tmp_path / "new" / ".sesemi").is_file() and (tmp_path / "new" / "summary.md").is_file()


def test_postprocess_never_writes_through_a_linked_plots_folder(three_seeds_two_lrs, tmp_path):
    """A `plots` link put into sesemi's summary folder is replaced by a folder: the folder it
    led to keeps its files."""
    postprocess(tmp_path / "runs")
    summary = tmp_path / "runs" / "summary"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "val_top1.png").write_bytes(b"my figure")
    for path in (summary / "plots").iterdir():
        path.unlink()
    (summary / "plots").rmdir()
    (summary / "plots").symlink_to(mine, target_is_directory=True)
    made = postprocess(tmp_path / "runs")
    assert [p.name for p in mine.iterdir()] == ["val_top1.png"]
    assert (mine / "val_top1.png").read_bytes() == b"my figure"
    assert not (summary / "plots").is_symlink() and (summary / "plots" / "val_top1.png").is_file()
    assert summary / "plots" / "val_top1.png" in made.plots


def test_postprocess_without_finished_runs_is_one_line(make_run, tmp_path):
    make_run("digits/failed", top1=None)
    with pytest.raises(SesemiError, match="no finished training runs .*1 without results.json"):
        postprocess(tmp_path / "runs", tmp_path / "out")


def test_evaluation_runs_are_not_training_runs(make_run, tmp_path):
    """A VALIDATE run has results but no training: it is left out of the summary."""
    make_run("digits/fit")
    make_run("digits/validate", mode="VALIDATE")
    summary = postprocess(tmp_path / "runs", tmp_path / "out")
    assert summary.runs["run"].tolist() == ["digits/fit"] and summary.evaluations == 1  # the screen says so


def test_group_is_marked_and_replaced_only_with_force(three_seeds_two_lrs, tmp_path):
    runs = tmp_path / "runs"
    made = group(runs, ["learner.hparams.optimizer.lr"], "lr")
    assert marker(made.folder).kind == "group" and not made.replaced
    assert made.summary.plots and all(path.is_file() and made.folder in path.parents for path in made.summary.plots)
    assert {label: len(members) for label, members in made.members.items()} == {"lr=0.1": 3, "lr=0.01": 2}
    assert (made.folder / "summary" / "aggregated.csv").is_file()
    with pytest.raises(SesemiError, match="exists; pass --force"):
        group(runs, ["learner.hparams.optimizer.lr"], "lr")
    planned = group(runs, ["run.seed"], "lr", force=True, dry_run=True)
    assert planned.replaced and planned.summary is None and sorted(planned.members) == ["seed=1", "seed=2", "seed=3"]
    assert sorted(p.name for p in made.folder.iterdir()) == [".sesemi", "lr=0.01", "lr=0.1", "summary"]
    again = group(runs, ["run.seed"], "lr", force=True)
    assert again.replaced
    assert sorted(p.name for p in again.folder.iterdir()) == [".sesemi", "seed=1", "seed=2", "seed=3", "summary"]
    assert [p.name for p in (runs / "groups").iterdir()] == ["lr"]


def test_group_never_replaces_a_folder_sesemi_did_not_make(three_seeds_two_lrs, tmp_path):
    mine = tmp_path / "runs" / "groups" / "lr"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    for dry_run in (True, False):
        with pytest.raises(SesemiError, match=r"will not replace .*groups/lr: it is not a group sesemi made"):
            group(tmp_path / "runs", ["learner.hparams.optimizer.lr"], "lr", force=True, dry_run=dry_run)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_group_never_replaces_a_group_through_a_linked_groups_folder(three_seeds_two_lrs, tmp_path):
    """`runs/groups` moved elsewhere and linked back: the group there, with a file of the user's
    added, is not replaced from runs/ (nor is a new one written through the link)."""
    runs = tmp_path / "runs"
    made = group(runs, ["learner.hparams.optimizer.lr"], "lr")
    (made.folder / "notes.txt").write_text("mine")
    (runs / "groups").rename(tmp_path / "groups")
    (runs / "groups").symlink_to(tmp_path / "groups", target_is_directory=True)
    for name in ("lr", "new"):
        with pytest.raises(SesemiError, match=r"groups: it is a symbolic link out of"):
            group(runs, ["run.seed"], name, force=True)
    assert (tmp_path / "groups" / "lr" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "groups").iterdir()) == ["lr"]


def test_the_summary_says_how_each_run_used_its_unlabeled_pool(make_run, tmp_path):
    import json

    folder = make_run("digits/open", top1=[0.9])
    values = json.loads((folder / "results.json").read_text())
    values["unlabeled"] = {
        "seen": 100,
        "pseudo_labeled_per_class": {"0": 0.3, "1": 0.2},
        "out_of_class": 0.45,
        "predicted_per_class": {"0": 0.6, "1": 0.4},
        "estimated_pool_prior": {"0": 0.7, "1": 0.3},
    }
    (folder / "results.json").write_text(json.dumps(values))
    make_run("digits/supervised", top1=[0.8])
    table, _, metrics = summarize(find_runs(tmp_path / "runs"))
    row = table.set_index("run").loc["digits/open"]
    assert row["pool pseudo-labeled"] == 0.5 and row["pool out of class"] == 0.45
    assert row["pseudo-labels per class"] == "0:0.30 1:0.20"
    assert row["predicted per class"] == "0:0.60 1:0.40"
    assert row["estimated pool prior"] == "0:0.70 1:0.30"
    assert "pool out of class" in metrics
    assert pd.isna(table.set_index("run").loc["digits/supervised", "pool out of class"])


def test_a_class_name_that_is_not_utf8_is_written_escaped(make_run, tmp_path):
    """A class folder named in Latin-1 (`d\xf6g`, held as a surrogate) reaches results.json;
    the summary shows it as `\xf6`, as messages do, instead of failing to write it."""
    import json

    folder = make_run("digits/latin1", top1=[0.9])
    values = json.loads((folder / "results.json").read_text())
    values["unlabeled"] = {"seen": 10, "pseudo_labeled_per_class": {"cat": 0.1, "d\udcf6g": 0.2}}
    (folder / "results.json").write_text(json.dumps(values))
    summary = postprocess(tmp_path / "runs", tmp_path / "summary")
    assert summary.runs.loc[0, "pseudo-labels per class"] == "cat:0.10 d\\xf6g:0.20"
    assert "d\\xf6g:0.20" in (tmp_path / "summary" / "summary.csv").read_text(encoding="utf-8")


def test_postprocess_goes_on_past_damaged_results(make_run, tmp_path):
    """Runs whose results.json is not an object, nested too deep, or of the wrong types are
    left out as unfinished; the others are summarized."""
    make_run("digits/good")
    for name, text in (
        ("text", '"x"'),
        ("deep", "[" * 100_000 + "]" * 100_000),
        ("metrics", '{"mode": "FIT", "metrics": "abc"}'),
        ("shares", '{"mode": "FIT", "unlabeled": {"pseudo_labeled_per_class": {"0": "x"}}}'),
    ):
        (make_run(f"digits/{name}") / "results.json").write_text(text)
    summary = postprocess(tmp_path / "runs")
    assert summary.runs["run"].tolist() == ["digits/good"] and summary.unfinished == 4


def test_postprocess_of_configs_and_metrics_of_any_shape(make_run, tmp_path):
    """Values of other types in the config fields and metrics postprocess reads, and a
    metrics.csv without steps or not UTF-8, are summarized as they are, never a crash."""
    config = run_config()
    config["run"]["id"] = {"a": 1}
    config["run"]["seed"] = [1, 2]
    config["learner"]["hparams"]["model"] = 5
    make_run("odd", config=config)
    results = make_run("mean") / "results.json"
    results.write_text(results.read_text().replace('"metrics": {', '"metrics": {"x mean": 1.0, "y std": 2.0, '))
    (make_run("no_steps") / "metrics.csv").write_text("a,b\n1,2\n")
    (make_run("binary") / "metrics.csv").write_bytes(b"epoch,step,\xff\n0,1,2\n")
    summary = postprocess(tmp_path / "runs")
    row = summary.runs.set_index("run").loc["odd"]
    assert row["id"] == "{'a': 1}" and row["seed"] == "[1, 2]" and row["method"] == "none"
    assert {"x mean", "y std"} <= set(display(summary.runs, summary.metrics).columns)
    assert (tmp_path / "runs" / "summary" / "summary.md").is_file()


@pytest.mark.filterwarnings("ignore:Glyph 0")  # the NUL in a title
def test_plot_names_are_bounded_and_distinct(make_run, tmp_path):
    """A metric name longer than a file name, one with a NUL, and names that read alike once
    `/` is `_` each get a plot of their own; the summary is written whole."""
    run = make_run("r")
    columns = ["m" * 300, "n" * 300, "a/b", "a_b", "nul\x00"]
    (run / "metrics.csv").write_text("epoch,step," + ",".join(columns) + "\n0,1" + ",1" * len(columns) + "\n")
    summary = postprocess(tmp_path / "runs")
    names = [path.name for path in summary.plots]
    assert len(set(names)) == len(columns) and all(len(name.encode()) <= 200 for name in names)
    assert {"a_b.png", "a_b~2.png", "nul%00.png"} <= set(names)
    assert all(path.is_file() for path in summary.plots)
    assert (tmp_path / "runs" / "summary" / "summary.md").is_file()


def test_deeply_nested_configs_are_unreadable_not_a_crash(make_run, tmp_path):
    """A config.yaml nested 20,000 deep reads as no config: postprocess and rm-failed go on."""
    deep = make_run("deep", top1=None)
    (deep / "config.yaml").write_text("".join(f"{' ' * i}k:\n" for i in range(20_000)) + " " * 20_000 + "v: 1\n")
    make_run("good")
    assert postprocess(tmp_path / "runs").runs["run"].tolist() == ["good"]
    assert remove_failed(tmp_path / "runs", dry_run=True).removed == [deep]


def test_group_of_a_single_run_folder(make_run, tmp_path):
    """Given a run's own folder, group links that run under its folder's name."""
    run = make_run("digits/t1")
    made = group(run, ["run.seed"], "g")
    assert [p.name for p in (made.folder / "seed=1").iterdir()] == ["t1"]
    assert made.summary.runs["run"].tolist() == ["seed=1/t1"]
