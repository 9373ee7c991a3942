"""Running a composed config (sesemi/runner.py): early checks, the `${sesemi:...}` values, and
what a run leaves behind."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import sesemi
from sesemi.config.structs import RunMode
from sesemi.datamodule import SESEMIDataModule
from sesemi.errors import SesemiError
from sesemi.learners.classifier import Classifier
from sesemi.ownership import marker
from sesemi.run_folder import RUN_DIR_VARIABLE
from sesemi.runner import (
    RunResult,
    attributes_for,
    check_loaders,
    load_initial_weights,
    run,
    run_mode,
)

TO_TENSOR = {"_target_": "sesemi.transforms.to_normalized_tensor", "mean": [0.5] * 3, "std": [0.5] * 3}


def _config(loaders=("supervised", "rotation_prediction"), mode="FIT", **run):
    train = {
        "supervised": {
            "dataset": {"name": "image_folder", "subset": "train", "image_transform": TO_TENSOR},
            "batch_size": 3,
            "drop_last": True,
        },
        "rotation_prediction": {
            "dataset": {"name": "image_file", "subset": ["train", "unlabeled"], "image_transform": TO_TENSOR},
            "batch_size": 2,
            "collate_fn": {"_target_": "sesemi.collation.RotationTransformer"},
        },
    }
    return OmegaConf.create(
        {
            "run": {
                "gpus": 0, "num_nodes": 1, "accelerator": None, "num_epochs": None, "num_iterations": None,
                "mode": mode, **run,
            },
            "data": {"train": {name: train[name] for name in loaders}},
            "learner": {
                "hparams": {
                    "model": {
                        "supervised_loss": {"callable": {"_target_": "torch.nn.CrossEntropyLoss"}},
                        "regularization_loss_heads": {
                            "rotation_prediction": {"head": {"input_data": "rotation_prediction"}}
                        },
                    }
                }
            },
        }
    )


def test_run_mode_accepts_names_in_any_case():
    """"validate", "VALIDATE" and the enum itself are all VALIDATE; others are refused."""
    assert run_mode("validate") is RunMode.VALIDATE
    assert run_mode("FIT") is RunMode.FIT
    assert run_mode(RunMode.TEST) is RunMode.TEST
    with pytest.raises(SesemiError, match="FIT, VALIDATE, TEST"):
        run_mode("train")


@pytest.mark.parametrize(
    ("loaders", "mode"), [(("supervised", "rotation_prediction"), "FIT"), ((), "VALIDATE"), ((), "TEST")]
)
def test_loaders_for_every_loss_term_or_none_to_evaluate(loaders, mode):
    """Fitting needs a loader for each loss term; evaluating reads no training data at all."""
    config = _config(loaders=loaders, mode=mode)
    if not loaders:
        config.learner.hparams.model.regularization_loss_heads = None
    assert check_loaders(config) is None


def test_supervised_loss_without_supervised_loader_is_refused():
    """A supervised loss needs data.train.supervised when fitting."""
    with pytest.raises(SesemiError, match="data.train.supervised"):
        check_loaders(_config(loaders=("rotation_prediction",)))


def test_loss_head_reading_an_undefined_loader_is_refused():
    """A head's input_data must name a training loader; the error lists the loaders."""
    with pytest.raises(SesemiError) as error:
        check_loaders(_config(loaders=("supervised",)))
    assert "rotation_prediction" in str(error.value) and "supervised" in str(error.value)


def test_attributes_come_from_the_data(image_tree):
    """num_classes, iterations_per_epoch and max_iterations are read off the built loaders."""
    config = _config(num_epochs=3)
    module = SESEMIDataModule(config.data, str(image_tree.root), None)
    module.setup()
    attributes = attributes_for(config, module)
    assert attributes.num_classes == 3
    assert attributes.iterations_per_epoch == 7  # ceil(13 rotation images / 2)
    assert attributes.iterations_per_epoch == max(len(loader) for loader in module.train_dataloader().values())
    assert attributes.max_iterations == 21
    assert attributes.num_gpus == 0 and attributes.num_nodes == 1


def test_each_stage_reads_only_the_data_sets_it_uses(image_tree):
    """To validate or test, the training set's classes number the classes, and none of its files
    is decoded into memory; the unlabeled loaders (a pool of maybe 100k files) are not built, nor
    is a test set to fit or validate, nor the validation set to test."""
    config = _config()
    config.data.val = {"dataset": {"name": "image_folder", "subset": "val", "image_transform": TO_TENSOR}}
    config.data.test = config.data.val
    stages = {
        "fit": ({"supervised", "rotation_prediction"}, True, False),
        "validate": ({"supervised"}, True, False),
        "test": ({"supervised"}, False, True),
    }
    for stage, (built, val, test) in stages.items():
        module = SESEMIDataModule(config.data, str(image_tree.root), None)
        module.setup(stage)
        assert set(module.train_datasets) == built and module.classes == image_tree.classes
        assert (module.train_datasets["supervised"].memory is not None) == (stage == "fit"), stage
        assert (module.val_dataset is not None, module.test_dataset is not None) == (val, test), stage


def test_iteration_budget_is_max_iterations(image_tree):
    """With run.num_iterations, max_iterations is exactly that."""
    config = _config(num_iterations=11)
    module = SESEMIDataModule(config.data, str(image_tree.root), None)
    module.setup()
    assert attributes_for(config, module).max_iterations == 11


def _flexmatch_classifier(make_hparams, num_classes: int) -> Classifier:
    hparams = make_hparams(num_classes=num_classes, rotation=False)
    hparams["model"]["regularization_loss_heads"] = {
        "fixmatch": {
            "head": {
                "_target_": "sesemi.models.heads.loss.FixMatchLossHead",
                "input_data": "fixmatch",
                "thresholding": "flexmatch",
                "distribution_alignment": True,
            }
        }
    }
    return Classifier(hparams)


@pytest.mark.parametrize("num_classes", [3, 5])
def test_fine_tuning_gathers_the_loss_head_statistics_afresh(make_hparams, tmp_path, num_classes):
    """The backbone comes from the checkpoint; FlexMatch's recent pseudo-labels and the tracked
    class distribution describe the run that wrote it, so they start over (same classes or not)."""
    trained = _flexmatch_classifier(make_hparams, 3)
    head = trained.loss_heads["fixmatch"]
    head.thresholds.recent.fill_(1)
    head.alignment.model_probs.copy_(torch.tensor([0.8, 0.1, 0.1]))
    path = tmp_path / "trained.ckpt"
    torch.save({"state_dict": trained.state_dict()}, path)

    model = _flexmatch_classifier(make_hparams, num_classes)
    fresh = {k: v.clone() for k, v in model.loss_heads.state_dict().items()}
    run = OmegaConf.create({"pretrained_checkpoint_path": str(path), "resume_from_checkpoint": None})
    load_initial_weights(model, run, RunMode.FIT, None)
    for key, value in trained.backbone.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[key], value)
    for key, value in model.loss_heads.state_dict().items():
        torch.testing.assert_close(value, fresh[key])
    assert (model.loss_heads["fixmatch"].thresholds.recent == -1).all()


def test_fine_tuning_on_other_classes_loads_the_backbone_and_not_the_head(make_hparams, tmp_path):
    """Ten digits named anew (`eight, five, ...` sorted) keep the shape of the old head, whose
    rows would mean other classes: only the backbone is loaded; of the same classes, all is."""
    trained = _flexmatch_classifier(make_hparams, 3)
    path = tmp_path / "trained.ckpt"
    torch.save({"state_dict": trained.state_dict(), "SESEMIDataModule": {"classes": ["0", "1", "2"]}}, path)
    run = OmegaConf.create({"pretrained_checkpoint_path": str(path), "resume_from_checkpoint": None})
    for classes, head_loaded in ((["two", "one", "zero"], False), (["0", "1", "2"], True), (None, True)):
        model = _flexmatch_classifier(make_hparams, 3)
        fresh = model.head.state_dict()["fc.weight"].clone()
        load_initial_weights(model, run, RunMode.FIT, classes)
        torch.testing.assert_close(model.backbone.state_dict(), trained.backbone.state_dict())
        expected = trained.head.state_dict()["fc.weight"] if head_loaded else fresh
        torch.testing.assert_close(model.head.state_dict()["fc.weight"], expected)


def test_evaluating_needs_the_checkpoints_classes_and_not_its_loss_heads(make_hparams, tmp_path):
    """A FlexMatch checkpoint evaluates with the supervised config (its loss heads are not
    needed to score it); on data of other classes, it is refused in one line."""
    trained = _flexmatch_classifier(make_hparams, 3)
    path = tmp_path / "trained.ckpt"
    torch.save({"state_dict": trained.state_dict(), "SESEMIDataModule": {"classes": ["a", "b", "c"]}}, path)
    run = OmegaConf.create({"pretrained_checkpoint_path": str(path), "resume_from_checkpoint": None})
    supervised = Classifier(make_hparams(num_classes=3, rotation=False))
    load_initial_weights(supervised, run, RunMode.VALIDATE, ["a", "b", "c"])
    torch.testing.assert_close(supervised.head.state_dict(), trained.head.state_dict())
    with pytest.raises(SesemiError, match=r"was trained on the classes a, b, c, not on this data's b, a, c; evaluate it"):
        load_initial_weights(supervised, run, RunMode.TEST, ["b", "a", "c"])


@pytest.mark.parametrize(
    "loader",
    [
        {"batch_size": 4, "shuffle": True, "drop_last": True},
        {"batch_size": 4, "shuffle": True, "drop_last": False},
        {"batch_size": 5, "shuffle": False, "drop_last": False},
        {"batch_size": 32, "shuffle": True, "drop_last": True},  # fewer items than a batch
    ],
)
@pytest.mark.parametrize("world_size", [1, 2])
def test_iterations_per_epoch_are_worked_out_from_the_data_set_sizes(image_tree, loader, world_size):
    """Without building loaders, the epoch length is what Lightning's loaders would give: the
    labeled set repeats to fill a batch per process, and each process gets 1/world_size of it."""
    config = _config(loaders=("rotation_prediction",))
    config.data.train.rotation_prediction.update(loader)
    module = SESEMIDataModule(config.data, str(image_tree.root), None)
    module.setup()
    loaders = module.train_dataloader()
    items = len(module.train_datasets["rotation_prediction"])
    sampled = max(items, loader["batch_size"] * world_size) if loader["shuffle"] else items
    per_process = -(-sampled // world_size)
    expected = per_process // loader["batch_size"] if loader["drop_last"] else -(-per_process // loader["batch_size"])
    assert module.iterations_per_epoch(world_size) == expected
    if world_size == 1:
        assert expected == len(loaders["rotation_prediction"])


def _tiny_run(image_tree, tmp_path, *overrides: str) -> RunResult:
    from sesemi.config.compose import compose

    config = compose(
        "digits_supervised",
        [
            f"run.data_root={image_tree.root}",
            "learner.hparams.model.backbone.widths=[4,8]",
            "data.val.batch_size=4",
            "+trainer.enable_progress_bar=false",
            "+trainer.enable_model_summary=false",
            *overrides,
        ],
    )
    return run(config, tmp_path / "run")


def test_each_run_of_a_process_names_the_unreadable_files_in_its_own_log(image_tree, tmp_path, caplog):
    """A sweep's jobs, or a notebook's runs, share a process: the second run's log names the
    broken file too, not only the first's."""
    (image_tree.root / "train" / "red" / "broken.png").write_bytes(b"not an image")
    for folder in ("first", "second"):
        caplog.clear()
        _tiny_run(image_tree, tmp_path / folder, "run.num_iterations=1")
        assert sum("broken.png" in record.getMessage() for record in caplog.records) == 1


@pytest.mark.parametrize(
    "overrides",
    [[], ["+data.train.supervised.dataset.cache=none", "data.train.supervised.num_workers=1"]],
    ids=["decoded-before-the-run", "read-by-a-loader-worker"],
)
def test_a_run_lists_every_file_it_could_not_read_in_its_folder(image_tree, tmp_path, overrides):
    """The log names five unreadable files; unreadable.csv in the run's folder names all, with
    why, whether they were found before the folder was made or by a loader worker in training."""
    broken = {f"broken{index}.png" for index in range(7)}
    for name in broken:
        (image_tree.root / "train" / "red" / name).write_bytes(b"not an image")
    result = _tiny_run(image_tree, tmp_path, "run.num_iterations=4", "run.batch_size_per_gpu=16", *overrides)
    with open(result.run_dir / "unreadable.csv", newline="") as listed:
        rows = list(csv.reader(listed))
    assert rows[0] == ["path", "why"]
    assert sorted(Path(path).name for path, _ in rows[1:]) == sorted(broken)
    assert all("cannot identify image file" in why for _, why in rows[1:])


def test_a_budget_shorter_than_the_validation_interval_still_ends_validated_and_checkpointed(
    image_tree, tmp_path
):
    """3 steps, validation every 250: the final weights are validated and saved as both the last
    and the best checkpoint; results.json says so, with paths that survive moving the folder."""
    result = _tiny_run(image_tree, tmp_path, "run.num_iterations=3")
    assert result.global_step == 3 and "val/top1" in result.metrics
    assert result.best_checkpoint == tmp_path / "run" / "checkpoints" / "best.ckpt"
    assert result.last_checkpoint.is_file() and result.best_checkpoint.is_file()
    assert result.best_score == pytest.approx(result.metrics["val/top1"])
    moved = tmp_path / "moved"
    (tmp_path / "run").rename(moved)
    again = RunResult.read(moved)
    assert again.best_checkpoint == moved / "checkpoints" / "best.ckpt" and again.best_checkpoint.is_file()
    assert again.metrics == result.metrics and again.classes == ["blue", "green", "red"]


def test_a_run_in_a_relative_folder_returns_the_result_its_folder_reads_back(image_tree, tmp_path, monkeypatch):
    """`runs/...` (open_sesemi's folders are relative): the checkpoints returned are in the run
    folder as given, as `RunResult.read` gives them, not absolute beside a relative folder."""
    monkeypatch.chdir(tmp_path)
    result = _tiny_run(image_tree, Path("runs"), "run.num_iterations=1")
    assert result.best_checkpoint == Path("runs/run/checkpoints/best.ckpt")
    assert result == RunResult.read(result.run_dir)


def test_gradient_accumulation_trains_every_step_of_the_budget(digits_root, tmp_path):
    """run.num_iterations counts optimizer steps: with two batches a step (digits: two batches
    an epoch) the run takes all of them, not the steps that the batches of its epochs make."""
    from sesemi.config.compose import compose

    overrides = [
        "method=supervised",
        f"run.data_root={digits_root}",
        "run.num_iterations=8",
        "+trainer.accumulate_grad_batches=2",
        "learner.hparams.model.backbone.widths=[4,8]",
        "+trainer.limit_val_batches=1",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
    ]
    assert run(compose("digits", overrides), tmp_path / "run").global_step == 8


def test_an_epoch_budget_with_gradient_accumulation_sizes_the_schedules_in_optimizer_steps(digits_root, tmp_path):
    """run.num_epochs with two batches a step: digits' two batches an epoch make one optimizer
    step, so three epochs are three steps, and the learning rate reaches 0 at the third (it was
    sized for six, one per batch, and ended at half its start)."""
    from omegaconf import OmegaConf

    from sesemi.config.compose import compose

    overrides = [
        "method=supervised",
        f"run.data_root={digits_root}",
        "run.num_epochs=3",
        "+trainer.accumulate_grad_batches=2",
        "learner.hparams.model.backbone.widths=[4,8]",
        "+trainer.limit_val_batches=1",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
    ]
    result = run(compose("digits", overrides), tmp_path / "run")
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert result.global_step == saved.learner.hparams.lr_scheduler.scheduler.max_iters == 3


def test_test_mode_without_a_test_set_is_refused_before_the_run_starts(image_tree, tmp_path):
    """A config mistake like any other: one line, and no folder left marked failed."""
    trained = _tiny_run(image_tree, tmp_path / "trained", "run.num_iterations=1")
    with pytest.raises(SesemiError, match=r"^run.mode=TEST needs a data.test loader$"):
        _tiny_run(image_tree, tmp_path, "run.mode=TEST", f"run.pretrained_checkpoint_path={trained.best_checkpoint}")
    assert not (tmp_path / "run").exists()


def test_test_mode_evaluates_a_checkpoint_on_the_test_set(image_tree, tmp_path):
    """run.mode=TEST loads the weights it is given and reports test/ metrics, equal to what the
    same weights score as validation on the same images."""
    trained = _tiny_run(image_tree, tmp_path, "run.num_iterations=4")
    weights = f"run.pretrained_checkpoint_path={trained.best_checkpoint}"
    test_loader = "+data.test=${data.val}"
    tested = _tiny_run(image_tree, tmp_path / "test", "run.mode=TEST", weights, test_loader)
    # a run folder names its best checkpoint, as to `sesemi inference`
    validated = _tiny_run(image_tree, tmp_path / "val", "run.mode=VALIDATE", f"run.pretrained_checkpoint_path={trained.run_dir}")
    assert tested.mode == "TEST" and set(tested.metrics) >= {"test/top1", "test/loss"}
    assert tested.metrics["test/top1"] == pytest.approx(validated.metrics["val/top1"])
    assert tested.metrics["test/loss"] == pytest.approx(validated.metrics["val/loss"])
    assert tested.best_checkpoint is None and tested.global_step == 0
    # the evaluation's own folder has no checkpoint: what it evaluated is named, not "train again"
    with pytest.raises(SesemiError, match=r"evaluated a checkpoint \(run.mode=VALIDATE\) and saved none; name the checkpoint"):
        _tiny_run(image_tree, tmp_path / "again", "run.mode=VALIDATE", f"run.pretrained_checkpoint_path={validated.run_dir}")


def test_results_of_earlier_releases_are_read(tmp_path):
    """results.json of 0.3 named the checkpoints under `best` and with the path the run saw."""
    (tmp_path / "results.json").write_text(
        '{"mode": "FIT", "run_dir": "runs/digits/t", "metrics": {"val/top1": 0.9}, "classes": ["a"],'
        ' "best": {"val/top1": 0.91, "checkpoint": "runs/digits/t/checkpoints/best.ckpt"},'
        ' "last_checkpoint": "runs/digits/t/checkpoints/last.ckpt", "global_step": 5}'
    )
    result = RunResult.read(tmp_path)
    assert result.best_checkpoint == tmp_path / "checkpoints" / "best.ckpt"
    assert result.last_checkpoint == tmp_path / "checkpoints" / "last.ckpt"
    assert result.best_score == 0.91 and result.global_step == 5 and result.run_dir == tmp_path


def test_a_folder_without_results_is_a_sesemi_error(tmp_path):
    with pytest.raises(SesemiError, match="has not finished"):
        RunResult.read(tmp_path)


def test_the_world_size_comes_from_the_trainer(image_tree, tmp_path):
    """`trainer.devices=2` (not run.gpus) decides how many processes share the data: each takes
    half of every epoch's batches, and `${sesemi:iterations_per_epoch}` says so."""
    from sesemi.trainer import build_trainer

    config = _config(num_epochs=3, gpus=0)
    module = SESEMIDataModule(config.data, str(image_tree.root), None)
    module.setup()
    trainer = build_trainer(config.run, OmegaConf.create({"devices": 2, "strategy": "ddp"}), tmp_path, fit=True)
    attributes = attributes_for(config, module, trainer)
    assert trainer.world_size == 2
    assert attributes.iterations_per_epoch == 4  # 13 rotation images: 7 per process, batches of 2
    assert attributes.max_iterations == 12 and attributes.num_gpus == 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("run.time_budget=30", "run.time_budget must be a duration"),
        ("run.pretrained_checkpoint_path=nope.ckpt", r"checkpoint nope.ckpt does not exist \(run.pretrained_checkpoint_path\)"),
        ("run.seed=${run.nope}", r"^run.seed: Interpolation key 'run.nope' not found$"),  # said twice, without the key
        pytest.param(
            "run.gpus=1", "run.gpus=1 but this machine has no GPU",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
    ],
)
def test_a_bad_start_stops_the_run_before_its_folder_is_made(tmp_path, override, message):
    """A typo in the budget or the checkpoint to start from, or GPUs the machine lacks, stop the
    run before it reads its data (here there is none) or makes its folder."""
    config = sesemi.compose("digits", [f"run.dir={tmp_path / 'runs'}", f"run.data_root={tmp_path / 'digits'}", override])
    with pytest.raises(SesemiError, match=message):
        sesemi.run(config)
    assert not (tmp_path / "runs").exists()


def test_an_empty_folder_of_the_callers_is_emptied_not_deleted_when_the_run_fails_to_start(image_tree, tmp_path):
    """A run given an empty folder the caller made (`sesemi.run(config, folder)`) that fails
    before it starts leaves the folder, empty, where one it made itself is deleted."""
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(SesemiError, match="needs run.pretrained_checkpoint_path"):
        _tiny_run(image_tree, tmp_path, "run.mode=VALIDATE")
    assert folder.is_dir() and not any(folder.iterdir())


def test_a_folder_holding_files_of_someone_else_is_refused(image_tree, tmp_path):
    """A failed run's folder is deleted whole (`rm-failed`), so a run never claims a folder that
    holds anything: the files stay, and the folder gets no marker."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(SesemiError, match=r"run is not empty \(it holds notes.txt\); a run needs a new folder"):
        _tiny_run(image_tree, tmp_path, "run.num_iterations=2")
    assert sorted(path.name for path in folder.iterdir()) == ["notes.txt"]


def test_the_variable_that_hands_a_run_folder_to_its_other_processes_claims_nothing(image_tree, tmp_path, monkeypatch):
    """SESEMI_RUN_DIR tells the processes a run launches the folder the first one claimed; set
    by hand on a folder of someone else's, it does not make the folder a run's (which
    `rm-failed` would later delete whole)."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "thesis.tex").write_text("mine")
    monkeypatch.setenv(RUN_DIR_VARIABLE, str(folder))
    with pytest.raises(SesemiError, match=r"is not empty \(it holds thesis.tex\)"):
        _tiny_run(image_tree, tmp_path, "run.num_iterations=1")
    assert marker(folder) is None and sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]


def test_a_folder_claimed_by_the_caller_is_discarded_when_the_run_fails_before_it_starts(tmp_path):
    """open_sesemi and TrainingRun.evaluate claim the folder first; a mistake found before the
    run gets to it (here a data folder that is not there) deletes it, links and all."""
    from sesemi.run_folder import claim_folder

    folder = tmp_path / "evaluation"
    claim_folder(folder)
    (folder / "data").mkdir()
    config = sesemi.compose("digits", [f"run.data_root={tmp_path / 'nowhere'}"])
    with pytest.raises(SesemiError, match="does not exist"):
        sesemi.run(config, folder)
    assert not folder.exists()


def test_a_run_that_fails_before_writing_its_config_leaves_no_folder(image_tree, tmp_path):
    """A mistake found once the data is read (here a `${sesemi:...}` value that does not exist)
    deletes the folder the run had made, rather than leaving it marked failed."""
    config = sesemi.compose(
        "digits", [f"run.dir={tmp_path / 'runs'}", f"run.data_root={image_tree.root}", "learner.hparams.optimizer.lr=${sesemi:nothing}"]
    )
    with pytest.raises(SesemiError, match="unknown attribute"):
        sesemi.run(config)
    assert not (tmp_path / "runs").exists()  # no run folder, nor the empty ones made above it
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("mine")
    with pytest.raises(SesemiError, match="unknown attribute"):
        sesemi.run(config)
    assert os.listdir(tmp_path / "runs") == ["notes.txt"]  # a folder that was there stays


def test_a_backbone_whose_features_do_not_fit_its_out_features_is_one_line(make_hparams):
    """Features of another size, or not flattened, are found before training, not by the head
    as matrix shapes in a page of traceback; so is a backbone that fails on an input."""
    classifier = Classifier(make_hparams(rotation=False))
    example = torch.randn(1, 3, 16, 16)
    classifier.check_features(example)
    classifier.backbone.out_features = 16
    with pytest.raises(SesemiError, match=r"^the backbone ConvNet returns \[1, 8\] for an input of shape \[1, 3, 16, 16\], where the head takes \[1, 16\]"):
        classifier.check_features(example)
    with pytest.raises(SesemiError, match=r"^the backbone ConvNet fails on an input of shape \[1, 5, 16, 16\]: "):
        classifier.check_features(torch.randn(1, 5, 16, 16))
    assert classifier.backbone.training  # as it was


def test_the_model_summary_counts_flops_on_the_first_validation_input(image_tree, tmp_path, caplog):
    """Lightning counts FLOPs only on an example input: the run gives it the first validation
    image, so the summary shows each part's cost and sizes, not a column of zeros, and the
    batches trained on are the same as without a summary."""
    with caplog.at_level(logging.INFO):
        summarized = _tiny_run(image_tree, tmp_path, "run.num_iterations=2", "trainer.enable_model_summary=true")
    summary = next(record.getMessage() for record in caplog.records if "Total Flops" in record.getMessage())
    assert "In sizes" in summary and "[1, 3, 32, 32]" in summary
    total_flops = next(line for line in summary.splitlines() if line.endswith("Total Flops"))
    assert total_flops.split()[0] != "0"
    plain = _tiny_run(image_tree, tmp_path / "plain", "run.num_iterations=2")
    assert summarized.metrics == plain.metrics


def test_a_logger_or_checkpoint_that_would_write_outside_the_run_folder_is_refused(image_tree, tmp_path):
    """A tracker's folder, and a checkpoint callback's, is the run's: one named out of it (as a
    config.yaml of someone else's run, resumed, could name it) stops the run before anything is
    written, its folder included."""
    outside = "+loggers.csv2={_target_:pytorch_lightning.loggers.CSVLogger,name:../../victim}"
    with pytest.raises(SesemiError, match=r"loggers.csv2 would write to .*victim.*, outside the run's folder"):
        _tiny_run(image_tree, tmp_path, "run.num_iterations=1", outside)
    assert not (tmp_path / "run").exists() and not (tmp_path.parent / "victim").exists()
    elsewhere = "+trainer.callbacks=[{_target_:pytorch_lightning.callbacks.ModelCheckpoint,dirpath:../victim}]"
    with pytest.raises(SesemiError, match=r"ModelCheckpoint would write to .*victim, outside the run's folder"):
        _tiny_run(image_tree, tmp_path, "run.num_iterations=1", elsewhere)
    # the trainer's own root folder, where Lightning would put checkpoints without a dirpath
    mine = tmp_path / "mine"
    with pytest.raises(SesemiError, match=r"^trainer.default_root_dir is the run's folder; choose that with run.dir"):
        _tiny_run(image_tree, tmp_path, "run.num_iterations=1", f"+trainer.default_root_dir={mine}")
    assert not mine.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+trainer.max_epoch=3", r"^trainer.max_epoch is not an argument of Lightning's Trainer; check its spelling$"),
        ("+trainer.precision=17", r"^the trainer options are refused by Lightning: Precision 17 is invalid"),
        # Lightning takes these; the EMA and the methods' statistics would fail (or stall) in them
        ("+trainer.precision=bf16-true", r"^trainer.precision=bf16-true casts the weights.*use bf16-mixed"),
        ("+trainer.precision=64", r"^trainer.precision=64 casts the weights"),
    ],
)
def test_trainer_options_lightning_refuses_are_one_line(image_tree, tmp_path, override, message):
    """What the config passes to Lightning's Trainer as it is: a misspelled argument or a value it
    does not take is one line, before the run's folder is made."""
    with pytest.raises(SesemiError, match=message):
        _tiny_run(image_tree, tmp_path, "run.num_iterations=1", override)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("length", [2, 4])
def test_training_on_from_a_checkpoint_needs_a_budget_beyond_its_steps(image_tree, tmp_path, length):
    """`run.num_iterations` counts from the start: a budget the checkpoint has used up would end
    the run without a step (or, shorter, fail inside Lightning on its epochs), so it is refused."""
    trained = _tiny_run(image_tree, tmp_path / "first", "run.num_iterations=4")
    with pytest.raises(SesemiError, match=rf"^run.resume_from_checkpoint has trained 4 steps, and the budget is {length} steps"):
        _tiny_run(image_tree, tmp_path, f"run.num_iterations={length}", f"run.resume_from_checkpoint={trained.last_checkpoint}")
    assert not (tmp_path / "run").exists()


def test_training_on_from_a_finished_run_trains_to_the_new_budget(digits_root, tmp_path):
    """A finished run's last.ckpt counts its last, partial epoch as done: training on from it
    within that epoch (3 steps, then to 4, at two batches an epoch) stopped at once, reporting
    success, when an epoch limit was derived from the budget."""
    from sesemi.config.compose import compose

    def supervised(*overrides: str) -> RunResult:
        common = [
            "method=supervised", f"run.data_root={digits_root}", "learner.hparams.model.backbone.widths=[4,8]",
            "+trainer.limit_val_batches=1", "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",
        ]
        return run(compose("digits", [*common, *overrides]), tmp_path / overrides[0].split("=")[1])

    first = supervised("run.num_iterations=3")
    assert supervised("run.num_iterations=4", f"run.resume_from_checkpoint={first.last_checkpoint}").global_step == 4


def test_an_error_of_a_loader_worker_is_one_line_from_python(image_tree, tmp_path):
    """A SesemiError raised in a loader's worker process comes back wrapped in the worker's
    traceback; `run` raises it as one line, as the command lines print it."""
    for path in (image_tree.root / "val").rglob("*.png"):
        path.write_bytes(b"not an image")
    overrides = ["run.num_iterations=1", "data.val.num_workers=1", "+data.val.dataset.cache=none", "data.val.dataset.subset=val"]
    with pytest.raises(SesemiError) as raised:
        _tiny_run(image_tree, tmp_path, *overrides)
    assert str(raised.value).startswith("none of the") and "\n" not in str(raised.value)


def test_how_often_a_run_validates_leaves_its_training_alone(image_tree, tmp_path):
    """Same seed, same steps, validated every 2 steps or only at the end: the same final
    weights. A validation pass drew its loader's base seed from the global generator, which
    dropout draws from, so validating more often trained another model."""
    from conftest import TINY_IMAGE_TRAINING

    def final_weights(every: int) -> dict[str, torch.Tensor]:
        config = sesemi.compose("image", [
            "method=supervised", "run.seed=0", f"run.data_root={image_tree.root}", f"run.dir={tmp_path}/every_{every}",
            *TINY_IMAGE_TRAINING, "learner.hparams.model.backbone.drop_rate=0.5", f"trainer.val_check_interval={every}",
        ])
        result = sesemi.run(config)
        return torch.load(result.last_checkpoint, weights_only=True)["state_dict"]

    often, once = final_weights(2), final_weights(4)
    assert often.keys() == once.keys()
    assert [key for key in often if not torch.equal(often[key], once[key])] == []


def test_a_relative_data_root_is_recorded_absolute(image_tree, tmp_path, monkeypatch):
    """config.yaml names the data a run read, wherever it is resumed or evaluated from: a
    relative `run.data_root` is made absolute (from elsewhere, `./data/digits` was another
    folder, the built-in digits built anew there)."""
    from conftest import TINY_IMAGE_TRAINING

    monkeypatch.chdir(image_tree.root.parent)
    config = sesemi.compose("image", [
        "method=supervised", f"run.data_root={image_tree.root.name}", f"run.dir={tmp_path}/runs", *TINY_IMAGE_TRAINING,
    ])
    result = sesemi.run(config)
    written = OmegaConf.load(result.run_dir / "config.yaml")
    assert written.run.data_root == str(image_tree.root)
