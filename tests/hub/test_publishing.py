"""Publishing a run (sesemi/hub/publishing.py): what the archive holds, and what is refused."""

from __future__ import annotations

import json
import os
import shutil
import tarfile

import pandas as pd
import pytest
import torch
import yaml
from conftest import TWO_TINY_STEPS, make_image_tree
from hub_fixtures import cache, memory_repository, trained  # noqa: F401 (fixtures)
from safetensors.torch import load_file

from sesemi import compose, run
from sesemi.errors import SesemiError
from sesemi.hub import models
from sesemi.hub.ids import model_uid
from sesemi.hub.publishing import publish
from sesemi.hub.repository import Repository
from sesemi.ownership import mark, record_checksum


def files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_archive_holds_ema_weights_config_labels_metrics_and_a_card(trained, tmp_path, cache):  # noqa: F811
    uid = publish(trained, "tiny", "1.0.0", tmp_path / "repo", subgroup="images.test", params={"rate": 16},
                  author="Ada", meta={"notes": "test"})
    assert uid == model_uid("tiny", "images.test", {"rate": 16}, "1.0.0")
    info, archive = Repository(tmp_path / "repo").rows()[uid]
    with tarfile.open(tmp_path / "repo" / archive.path) as tar:
        assert sorted(tar.getnames()) == ["README.md", "config.yaml", "meta.json", "weights.safetensors"]
        tar.extractall(tmp_path / "out", filter="data")
    out = tmp_path / "out"
    checkpoint = torch.load(trained / "checkpoints" / "best.ckpt", weights_only=True)
    weights = load_file(out / "weights.safetensors")
    network = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith(("backbone.", "head."))}
    assert weights.keys() == network.keys()  # what inference needs, not the loss heads' weights
    assert all(torch.equal(weights[k], v) for k, v in network.items())  # the EMA ...
    raw = checkpoint["current_model_state"]
    assert not all(torch.equal(weights[k], raw[k]) for k in weights)  # ... not the raw weights
    assert (out / "config.yaml").read_text() == (trained / "config.yaml").read_text()
    results = json.loads((trained / "results.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert meta == info.to_dict()
    # the metrics of the weights published: those of the validation best.ckpt was saved after
    logged = pd.read_csv(trained / "metrics.csv").dropna(subset=["val/top1"])
    saved_after = logged[logged.step < checkpoint["global_step"]].iloc[-1]
    assert checkpoint["global_step"] < results["global_step"]  # not the final weights
    assert info.labels == ["blue", "green", "red"]
    assert info.metrics == {"val/loss": saved_after["val/loss"], "val/top1": saved_after["val/top1"]}
    assert (info.ema, info.checkpoint, info.author, info.meta) == (True, "best.ckpt", "Ada", {"notes": "test"})
    card = (out / "README.md").read_text()
    assert "# images.test.tiny@1.0.0" in card and "The validation metrics of these weights (`best.ckpt`)" in card
    last = publish(trained / "checkpoints" / "last.ckpt", "tiny", "1.1.0", tmp_path / "repo")
    assert Repository(tmp_path / "repo").rows()[last][0].metrics == results["metrics"]  # the final ones


def test_best_weights_saved_by_the_final_validation_have_its_metrics(tmp_path, cache):  # noqa: F811
    # validated only once the training ends: best.ckpt holds the final weights, and their metrics
    tree = make_image_tree(tmp_path / "images")
    overrides = ["method=supervised", f"run.data_root={tree.root}", *TWO_TINY_STEPS, "run.num_iterations=3"]
    result = run(compose("image", [*overrides, "trainer.val_check_interval=5"]), tmp_path / "run")
    assert torch.load(result.best_checkpoint, weights_only=True)["global_step"] == result.global_step == 3
    uid = publish(tmp_path / "run", "tiny", "1.0.0", tmp_path / "repo")
    assert Repository(tmp_path / "repo").rows()[uid][0].metrics == result.metrics != {}


def test_an_existing_uid_or_version_is_refused_and_nothing_is_written(trained, tmp_path, cache):  # noqa: F811
    repository = tmp_path / "repo"
    uid = publish(trained / "checkpoints" / "last.ckpt", "tiny", "1.0.0", repository)
    before = files(repository)
    with pytest.raises(SesemiError, match=f"^{uid} is already published; publish a new version$"):
        publish(trained, "tiny", "1.0.0", repository)
    with pytest.raises(SesemiError, match=f"^tiny@1.0.0 is already published \\(as tiny@1.0.0, {uid}\\)"):
        publish(trained, "tiny", "1.0.0", repository, params={"other": True})
    assert files(repository) == before
    assert publish(trained, "tiny", "1.0.1", repository) == uid[:8] + "-1.0.1"


def test_an_archive_the_table_does_not_list_is_never_replaced(trained, tmp_path, cache):  # noqa: F811
    """A file where the archive goes, of a publish that stopped or of someone else's, stays."""
    repository = tmp_path / "repo"
    uid = model_uid("tiny", None, {}, "1.0.0")
    theirs = repository / "tiny" / "1.0.0" / f"{uid}.tar.gz"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("theirs")
    with pytest.raises(SesemiError, match=r"will not publish over .*tar.gz: models.json does not list it"):
        publish(trained, "tiny", "1.0.0", repository)
    assert theirs.read_text() == "theirs" and not (repository / "models.json").exists()


def test_a_run_config_of_another_shape_still_gets_a_model_card(trained, tmp_path, cache):  # noqa: F811
    """A run's config.yaml edited into other shapes (data.train a string, no learner) publishes
    with what the card can say, not a traceback."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    del config["learner"]
    config["data"] = {"train": "oops", "val": "oops"}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    uid = publish(run, "tiny", "1.0.0", tmp_path / "repo")
    with tarfile.open(next((tmp_path / "repo").rglob(f"{uid}.tar.gz"))) as archive:
        card = archive.extractfile("README.md").read().decode()
    assert "- backbone: none" in card and "## Metrics" in card


def test_a_class_named_by_a_folder_name_that_is_not_utf8_is_published(trained, tmp_path, cache):  # noqa: F811
    """A class folder named in Latin-1 (`caf\\xe9`, held as a surrogate) trains; it publishes too,
    its card showing the byte as `\\xe9` and its labels keeping the name."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    results = json.loads((run / "results.json").read_text())
    results["classes"][0] = os.fsdecode(b"caf\xe9")
    (run / "results.json").write_text(json.dumps(results))
    uid = publish(run, "tiny", "1.0.0", tmp_path / "repo")
    with tarfile.open(next((tmp_path / "repo").rglob(f"{uid}.tar.gz"))) as archive:
        card = archive.extractfile("README.md").read().decode("utf-8")
        meta = json.load(archive.extractfile("meta.json"))
    assert "caf\\xe9" in card and meta["labels"][0] == os.fsdecode(b"caf\xe9")


def test_publishing_to_memory(trained, memory_repository, cache):  # noqa: F811
    uid = publish(trained, "tiny", "1.0.0", memory_repository)
    assert list(Repository(memory_repository).rows()) == [uid]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"name": "bad/name"}, "must be letters"),
        ({"version": "latest"}, "normal form"),
        ({"params": {"f": print}}, "JSON"),
        ({"repository": "nosuch://repo"}, "cannot open repository nosuch://repo"),
    ],
)
def test_bad_arguments_are_one_line_before_anything_is_written(trained, tmp_path, cache, change, error):  # noqa: F811
    arguments = {"name": "tiny", "version": "1.0.0", "repository": tmp_path / "repo", **change}
    with pytest.raises(SesemiError, match=error):
        publish(trained, **arguments)
    assert not (tmp_path / "repo").exists()


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, cache):  # noqa: F811
    with pytest.raises(SesemiError, match="has no checkpoints/best.ckpt or last.ckpt"):
        publish(tmp_path, "tiny", "1.0.0", tmp_path / "repo")


def test_a_run_whose_checkpoint_builds_untrusted_classes_is_refused(trained, tmp_path, cache):  # noqa: F811
    """Publishing builds the network as loading will, under the same trust rules."""
    run = shutil.copytree(trained, tmp_path / "run")
    stored = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    stored["hyper_parameters"]["hparams"]["model"]["backbone"]["_target_"] = "my_project.Net"
    torch.save(stored, run / "checkpoints" / "best.ckpt")
    record_checksum(run / "checkpoints" / "best.ckpt")  # made that way, not damaged
    with pytest.raises(SesemiError, match=r"builds my_project.Net, which sesemi does not trust; .*`sesemi trust add my_project`"):
        publish(run, "tiny", "1.0.0", tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize(
    ("state", "pid", "said"),
    [
        ("interrupted", None, "is interrupted"),
        ("failed", None, "is failed"),
        ("running", 2**22 + 1, "was killed while running"),  # no such process
        ("running", os.getpid, "is still running \\(process {pid}\\); publish it when it has finished, or as it is now"),
    ],
)
def test_an_unfinished_run_is_refused_unless_asked(trained, tmp_path, cache, state, pid, said):  # noqa: F811
    """Refused with what to do (resume it; for a run still running, wait); published as it is
    when asked, with the metrics of the validation before its checkpoint (it has no results)."""
    if callable(pid):  # this test process's own: each process of the suite has its own
        pid, said = pid(), said.format(pid=pid())
    run = shutil.copytree(trained, tmp_path / "run")
    mark(run, "run", state)
    if pid is not None:  # the process that says it runs the run
        values = json.loads((run / ".sesemi").read_text())
        (run / ".sesemi").write_text(json.dumps({**values, "pid": pid}))
    finish = "" if "still running" in said else f"; finish it with `sesemi resume {run}`, or publish it as it is"
    message = f"^will not publish {run}: the run {said}{finish}.* with --allow-unfinished \\(allow_unfinished=True\\)$"
    with pytest.raises(SesemiError, match=message):
        publish(run, "tiny", "1.0.0", tmp_path / "repo")
    with pytest.raises(SesemiError, match=message):
        publish(run / "checkpoints" / "last.ckpt", "tiny", "1.0.0", tmp_path / "repo")
    assert not (tmp_path / "repo").exists()
    (run / "results.json").unlink()  # as a run that stopped has none
    uid = publish(run, "tiny", "1.0.0", tmp_path / "repo", allow_unfinished=True)
    (info,) = models(tmp_path / "repo")
    assert info.uid == uid and info.metrics and set(info.metrics) <= {"val/loss", "val/top1", "val/top5"}


def test_runs_of_earlier_releases_are_finished_when_they_have_results(trained, tmp_path, cache):  # noqa: F811
    run = shutil.copytree(trained, tmp_path / "run")
    (run / ".sesemi").unlink()
    assert publish(run, "tiny", "1.0.0", tmp_path / "repo")
    (run / "results.json").unlink()
    with pytest.raises(SesemiError, match=r"the run has no results.json \(it never finished\); finish it with"):
        publish(run, "tiny", "2.0.0", tmp_path / "repo")
