"""Uncurated pools, end to end: a run with the outlier filter reports what it did with its pool in
results.json, warns when the pool looks unlike the labels, and its model flags inputs that look
out of class (sesemi/results.py, sesemi/runner.py, sesemi/predictor.py)."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import TINY_IMAGE_TRAINING, make_image_tree

from sesemi import RunResult
from sesemi.predictor import write_predictions
from sesemi.results import pool_warnings

FILTER = [
    "method=fixmatch",
    "run.mu=1",
    "learner.hparams.model.regularization_loss_heads.fixmatch.head.threshold=0.0",
    "learner.hparams.model.regularization_loss_heads.fixmatch.head.min_threshold=0.0",
    "++learner.hparams.model.regularization_loss_heads.fixmatch.head.outlier_filter=true",
    "learner.hparams.model.head={_target_:sesemi.models.heads.OneVsAllHead}",
    "data.train.fixmatch.num_workers=0",
]


@pytest.fixture(scope="module")
def filtered_run(tmp_path_factory):
    from sesemi import compose, run

    base = tmp_path_factory.mktemp("filtered")
    tree = make_image_tree(base / "images")
    config = compose("image", [*FILTER, f"run.data_root={tree.root}", *TINY_IMAGE_TRAINING])
    return run(config, base / "run"), tree


def test_results_json_says_how_the_pool_was_used(filtered_run):
    result, tree = filtered_run
    unlabeled = RunResult.read(result.run_dir).unlabeled
    assert unlabeled["seen"] > 0 and 0.0 <= unlabeled["out_of_class"] <= 1.0
    assert set(unlabeled["pseudo_labeled_per_class"]) == set(unlabeled["predicted_per_class"]) == set(tree.classes)
    assert sum(unlabeled["pseudo_labeled_per_class"].values()) + unlabeled["out_of_class"] == pytest.approx(1.0, abs=1e-3)


def test_a_run_with_the_pool_prior_reports_its_estimate_by_class(tmp_path):
    """`pool_prior` (in place of distribution alignment) trains through the real entry point and
    results.json gives the pool's estimated class prior by class name."""
    from sesemi import compose, run

    tree = make_image_tree(tmp_path / "images")
    head = "learner.hparams.model.regularization_loss_heads.fixmatch.head"
    overrides = [*FILTER[:4], f"{head}.distribution_alignment=false", f"++{head}.pool_prior=true", FILTER[-1]]
    result = run(compose("image", [*overrides, f"run.data_root={tree.root}", *TINY_IMAGE_TRAINING]), tmp_path / "run")
    prior = RunResult.read(result.run_dir).unlabeled["estimated_pool_prior"]
    assert list(prior) == tree.classes and sum(prior.values()) == pytest.approx(1.0, abs=1e-3)
    # The live estimate at the last step (last.ckpt, saved in its validation, keeps the live
    # state beside the EMA's averages), not the EMA's average of it.
    state = torch.load(result.last_checkpoint, weights_only=True)["current_model_state"]
    live = [round(float(p), 4) for p in state["loss_heads.fixmatch.prior.prior"]]
    assert list(prior.values()) == live


def test_an_iomatch_run_reports_the_share_of_its_pool_judged_out_of_class(tmp_path):
    """`method=iomatch` judges outliers with detectors of its own (no OneVsAllHead needed)."""
    from sesemi import compose, run

    tree = make_image_tree(tmp_path / "images")
    overrides = ["method=iomatch", *FILTER[1:4], FILTER[-1], f"run.data_root={tree.root}"]
    result = run(compose("image", [*overrides, *TINY_IMAGE_TRAINING]), tmp_path / "run")
    unlabeled = RunResult.read(result.run_dir).unlabeled
    assert 0.0 <= unlabeled["out_of_class"] <= 1.0
    assert sum(unlabeled["pseudo_labeled_per_class"].values()) + unlabeled["out_of_class"] == pytest.approx(1.0, abs=1e-3)


def test_older_results_json_read_without_pool_statistics(filtered_run, tmp_path):
    result, _ = filtered_run
    values = json.loads((result.run_dir / "results.json").read_text())
    del values["unlabeled"]
    (tmp_path / "results.json").write_text(json.dumps(values))
    assert RunResult.read(tmp_path).unlabeled is None


def test_inference_flags_inputs_the_detectors_reject(filtered_run, tmp_path):
    from sesemi.predictor import load

    result, tree = filtered_run
    predictor = load(result.run_dir, device="cpu")
    images = sorted((tree.root / "val").rglob("*.png"))
    with torch.no_grad():  # the detectors of every class say "not mine", then "mine"
        predictor.model.head.one_vs_all.bias.copy_(torch.tensor([0.0] * 3 + [-10.0] * 3))
    predictions = predictor.predict(images)
    assert all(p.looks_out_of_class and p.out_of_class > 0.99 for p in predictions)
    table = write_predictions(predictions, tmp_path / "out", predictor.labels).table
    rows = list(csv.DictReader(table.open()))
    assert all(float(row["out_of_class"]) > 0.99 for row in rows)
    with torch.no_grad():
        predictor.model.head.one_vs_all.bias.copy_(torch.tensor([0.0] * 3 + [10.0] * 3))
    assert not any(p.looks_out_of_class for p in predictor.predict(images))


def test_models_without_detectors_flag_nothing(trained_run):
    from sesemi.predictor import load

    images = sorted((trained_run.tree.root / "val").rglob("*.png"))[:2]
    assert [p.out_of_class for p in load(trained_run.run_dir, device="cpu").predict(images)] == [None, None]


def test_a_pool_unlike_the_labels_is_warned_about():
    labeled = {"a": 5, "b": 5}
    assert pool_warnings({"pseudo_labeled_per_class": {"a": 0.4, "b": 0.4}, "out_of_class": 0.2, "seen": 9}, labeled) == []
    mostly_out = pool_warnings({"pseudo_labeled_per_class": {"a": 0.1, "b": 0.1}, "out_of_class": 0.8, "seen": 9}, labeled)
    assert len(mostly_out) == 1 and "80% of the unlabeled pool looked out of class" in mostly_out[0]
    skewed = pool_warnings({"pseudo_labeled_per_class": {"a": 0.9, "b": 0.02}, "out_of_class": None, "seen": 9}, labeled)
    assert len(skewed) == 1 and "'a'" in skewed[0]
    # distribution alignment evened out the pseudo-labels; the model's own predictions tell the skew
    aligned = {"pseudo_labeled_per_class": {"a": 0.5, "b": 0.5}, "predicted_per_class": {"a": 0.1, "b": 0.9}}
    assert len(pool_warnings({**aligned, "out_of_class": None, "seen": 9}, labeled)) == 1
    # a model at chance (a run of a few steps) says nothing about the pool: 0.5 on two classes
    assert pool_warnings({**aligned, "out_of_class": None, "seen": 9}, labeled, val_top1=0.5) == []
    assert len(pool_warnings({**aligned, "out_of_class": None, "seen": 9}, labeled, val_top1=0.7)) == 1
