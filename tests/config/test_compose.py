"""Composing configs (sesemi/config/compose.py): names, aliases, the schema, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sesemi.cli.open_sesemi import expand_arguments
from sesemi.config.compose import compose
from sesemi.errors import SesemiError


def test_an_earlier_config_name_composes_like_what_it_stands_for():
    """`digits_fixmatch` is the digits data config with method=fixmatch, to the last key."""
    assert compose("digits_fixmatch") == compose("digits", ["method=fixmatch"])


def test_a_method_given_by_the_user_wins_over_the_alias():
    assert compose("digits_fixmatch", ["method=freematch"]) == compose("digits", ["method=freematch"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+run.num_iteration=5", "unknown config key run.num_iteration; did you mean run.num_iterations?"),
        ("run.num_iteration=5", "unknown config key run.num_iteration; did you mean run.num_iterations?"),
        ("+data.train.supervised.shufle=true", "did you mean data.train.supervised.shuffle?"),
        ("run.seed=abc", "run.seed=abc: Value 'abc' of type 'str' could not be converted to Integer"),
        ("run.mode=TRAIN", "expected one of [FIT, VALIDATE, TEST]"),
        ("backbone=nope", "no backbone config 'nope'; choose one of: convnet, convnet_small, resnet18, resnet50d"),
        ("method=fixmach", "no method config 'fixmach'; did you mean fixmatch? choose one of: entropy_minimization,"),
        ("logger=[tensorboard,csv]", "no logger config 'csv'; choose one of: mlflow, tensorboard, wandb"),
        ("trainer.devices=2", "Could not override 'trainer.devices': Key 'devices' is not in struct; to add it, write +trainer.devices=2"),
        ("learner.hparams.optimizer.lrr=0.1", "did you mean learner.hparams.optimizer.lr? To add a new key, write +learner.hparams.optimizer.lrr=0.1"),
        ("backbone.pretrained=true", "write learner.hparams.model.backbone.pretrained=..."),
        ("logger.offline=true", "write loggers.NAME.offline=..."),
        ("method.threshold=0.9", "`sesemi show method/NAME` shows the keys it sets"),
        ("learner.hparams.optimizer._target_=torch.optim.SDG", "did you mean torch.optim.SGD?"),
        ("run.seed=[1", "cannot read the override 'run.seed=[1' (no viable alternative at input '[1')"),
        ("run.seed", "cannot read the override 'run.seed' (missing EQUAL at '<EOF>'); write each as key=value"),
        ("run.seed=1 method=fixmatch", "cannot read the override 'run.seed=1 method=fixmatch'"),
        ("run.data_root=~/data", "cannot read the override 'run.data_root=~/data' ('~' cannot stand there unquoted)"),
        ("run.data_root=/x\udcff", r"cannot read the override 'run.data_root=/x\xff' ('\xff' cannot stand there unquoted)"),
        ("method=fixmatch,flexmatch", "write a list as key=[a,b] and a string as key='a,b'; to run each value, sweep with open_sesemi -m"),
        ("method=[fixmatch,supervised]", "a run takes one method; to run each, sweep with open_sesemi -m method=fixmatch,supervised"),
        ("backbone=[convnet,resnet18]", "a run takes one backbone"),
        ("run.batch_size_per_gpu=-4", "run.batch_size_per_gpu must be at least 1, not -4"),
        ("run.num_iterations=0", "run.num_iterations must be at least 1, not 0"),
        ("learner.hparams.optimizer.lr=-0.1", "learner.hparams.optimizer.lr must be greater than 0, not -0.1"),
        ("learner.hparams.model.regularization_loss_heads.fixmatch.head.threshold=1.5", "threshold must be between 0 and 1, not 1.5"),
        ("data.train.fixmatch.mu=0", "data.train.fixmatch.mu must be greater than 0, not 0.0"),
        ("trainer.val_check_interval=0", "trainer.val_check_interval must be greater than 0, not 0"),
        ("+trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches must be at least 1, not 0"),
        ("data.unlabeled=null", "data.train.fixmatch reads the unlabeled pool, and data.unlabeled is null"),
        ("data.val.dataset=null", "data.val has no dataset: give it one"),
        ("data.test.dataset.root=/tmp", "data.test.dataset.root=/tmp sets a key inside a node that is null"),
    ],
)
def test_mistakes_are_one_line_errors(override, message):
    """Misspelled keys (with `+` too), wrong types and options, numbers out of range and
    `_target_`s that name nothing are refused when the config is composed, in one line that
    says what to write."""
    with pytest.raises(SesemiError) as error:
        compose("digits", [override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_overrides_given_as_one_string_are_refused_with_the_list_to_write():
    with pytest.raises(SesemiError, match=r"^overrides are a list of strings, e.g. \['run.seed=1'\], not one string$"):
        compose("digits", "run.seed=1")


def test_a_config_file_as_a_path_and_overrides_that_are_not_strings(tmp_path):
    """`compose(Path("configs/custom.yaml"))` reads the file as its string does; an override
    that is not a string, and a plain dict given to `run`, are one-line errors."""
    from pathlib import Path

    from sesemi import run

    (tmp_path / "custom.yaml").write_text("defaults:\n  - digits\n  - _self_\nrun:\n  seed: 7\n")
    assert compose(Path(tmp_path / "custom.yaml")).run.seed == 7
    with pytest.raises(SesemiError, match=r"^overrides are strings such as 'run.seed=1', not 3 \(int\)$"):
        compose("digits", ["run.num_iterations=5", 3])
    with pytest.raises(SesemiError, match=r"^run takes a config made by sesemi.compose, not a dict$"):
        run({"run": {}})


def test_open_mappings_take_keys_of_their_own():
    """`trainer` passes keyword arguments to Lightning's Trainer: any key is allowed there."""
    assert compose("digits", ["+trainer.enable_progress_bar=false"]).trainer.enable_progress_bar is False


def test_two_lengths_on_one_command_line_are_refused():
    """The time budget would win in silence over the steps given beside it."""
    with pytest.raises(SesemiError, match=r"^give the run one length, not run.num_iterations and run.time_budget$"):
        compose("digits", ["run.time_budget=25s", "run.num_iterations=5"])


def test_a_method_config_is_not_trained_alone():
    """`sesemi train method/fixmatch` failed with `Key 'mode' is not in struct`."""
    with pytest.raises(SesemiError, match=r"^method/fixmatch is a method config, which a data config takes: e.g. `sesemi train digits method=fixmatch`"):
        compose("method/fixmatch")


def test_an_unknown_config_names_the_way_to_list_them():
    with pytest.raises(SesemiError, match="sesemi list"):
        compose("no_such_config")


def test_a_user_config_folder_is_searched(tmp_path: Path):
    (tmp_path / "custom.yaml").write_text("defaults:\n  - digits\n  - _self_\nrun:\n  seed: 7\n")
    assert compose("custom", config_dir=tmp_path).run.seed == 7


def test_a_config_file_is_composed_from_its_folder(tmp_path: Path):
    """`sesemi train configs/custom.yaml` is `sesemi train -cd configs custom`."""
    (tmp_path / "custom.yaml").write_text("defaults:\n  - digits\n  - _self_\nrun:\n  seed: 7\n")
    composed = compose(str(tmp_path / "custom.yaml"), ["method=fixmatch"])
    assert composed == compose("custom", ["method=fixmatch"], config_dir=tmp_path)
    assert composed.run.seed == 7 and composed.run.method == "fixmatch"


def test_a_backbone_of_ones_own_gets_only_its_own_arguments(tmp_path: Path):
    """As docs/tutorials/timm-backbone.md writes it, in a config and on the command line: without
    the built-in backbone config, whose `widths` the class would be given too."""
    node = {"_target_": "torch.nn.Flatten", "start_dim": 1}
    (tmp_path / "own.yaml").write_text(
        "defaults:\n  - image\n  - override backbone: null\n  - _self_\n"
        "learner:\n  hparams:\n    model:\n      backbone:\n        _target_: torch.nn.Flatten\n        start_dim: 1\n"
    )
    backbone = compose("own", config_dir=tmp_path).learner.hparams.model.backbone
    assert OmegaConf.to_container(backbone) == node
    overrides = ["~backbone", "+learner.hparams.model.backbone._target_=torch.nn.Flatten", "+learner.hparams.model.backbone.start_dim=1"]
    assert OmegaConf.to_container(compose("image", overrides).learner.hparams.model.backbone) == node
    with pytest.raises(SesemiError, match=r"^a config group cannot be set to null by an override; remove its config with ~GROUP"):
        compose("image", ["backbone=null"])


def test_a_misspelled_config_name_suggests_the_closest_in_the_users_folder_or_built_in(tmp_path: Path):
    (tmp_path / "custom.yaml").write_text("defaults:\n  - digits\n  - _self_\n")
    with pytest.raises(SesemiError, match=r"no config 'custo' in .*; did you mean custom\?$"):
        compose("custo", config_dir=tmp_path)
    with pytest.raises(SesemiError, match=r"did you mean digits\?$"):
        compose("digts", config_dir=tmp_path)


def test_a_config_file_that_is_not_there_is_named_as_a_file():
    with pytest.raises(SesemiError, match=r"^config file configs/nope.yaml does not exist; check the path"):
        compose("configs/nope.yaml")


def test_a_yaml_error_names_the_file_and_line(tmp_path: Path):
    (tmp_path / "broken.yaml").write_text("defaults:\n  - digits\nrun:\n  seed: [1\n")
    with pytest.raises(SesemiError) as error:
        compose("broken", config_dir=tmp_path)
    assert "broken.yaml" in str(error.value) and "line" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("trainer: 5\n", "^in the config shaped: trainer: Cannot assign int to Dict"),  # a traceback once it ran
        ("run:\n  - 1\n", "^in the config shaped: run must be a mapping; Merge error: list is not a subclass of RunConfig"),
        ("data:\n  train: [x]\n", "^in the config shaped: data.train must be a mapping; Cannot merge DictConfig with ListConfig"),
    ],
)
def test_a_value_of_the_wrong_shape_in_a_config_file_names_the_file(tmp_path: Path, body, message):
    (tmp_path / "shaped.yaml").write_text(f"defaults:\n  - digits\n  - _self_\n{body}")
    with pytest.raises(SesemiError, match=message):
        compose("shaped", config_dir=tmp_path)


def test_a_user_config_named_like_a_built_in_is_refused(tmp_path: Path):
    (tmp_path / "digits.yaml").write_text("defaults:\n  - image\n")
    with pytest.raises(SesemiError, match="rename it"):
        compose("digits", config_dir=tmp_path)


def test_open_sesemi_expands_earlier_names_on_its_command_line():
    assert expand_arguments(["-cn", "digits_fixmatch", "run.seed=1"]) == ["-cn", "digits", "method=fixmatch", "run.seed=1"]
    assert expand_arguments(["--config-name=fixmatch", "--info"]) == ["--config-name=image", "--info", "method=fixmatch"]
    assert expand_arguments(["-cn", "digits", "method=jigsaw"]) == ["-cn", "digits", "method=jigsaw"]


def test_open_sesemi_takes_overrides_before_and_after_options():
    """Hydra's parser refuses `-cn digits method=fixmatch -m run.seed=0,1`: overrides go last."""
    arguments = ["-cn", "digits", "method=fixmatch", "-m", "run.seed=0,1", "--cfg", "job"]
    assert expand_arguments(arguments) == ["-cn", "digits", "-m", "--cfg", "job", "method=fixmatch", "run.seed=0,1"]



def _length(config) -> tuple:
    return config.run.num_iterations, config.run.num_epochs, config.run.time_budget


def test_a_length_on_the_command_line_replaces_the_configs(tmp_path: Path):
    """digits gives 400 iterations: `run.num_epochs=3` alone trains 3 epochs (it was refused as
    both set); a project config with a time budget trains the 20 steps asked for (the budget
    replaced them, silently)."""
    assert _length(compose("digits", ["run.num_epochs=3"])) == (None, 3, None)
    (tmp_path / "custom.yaml").write_text("defaults:\n  - image\n  - _self_\nrun:\n  time_budget: 15m\n")
    assert _length(compose("custom", ["run.num_iterations=20"], tmp_path)) == (20, None, None)
    assert _length(compose("custom", ["run.time_budget=null"], tmp_path)) == (20000, None, None)  # null gives none
    assert _length(compose("digits", ["run.time_budget=5m"])) == (None, None, "5m")
    arguments = ["-cd", str(tmp_path), "-cn", "custom", "-m", "run.num_iterations=10,20"]
    assert expand_arguments(arguments)[-3:] == ["run.num_iterations=10,20", "run.num_epochs=null", "run.time_budget=null"]

# --- sesemi 0.3's keys, classes and config names: refused with what to write now ---------------

EMA_0_3 = "learner:\n  hparams:\n    model:\n      ema:\n        decay: 0.999\n"
LOADER_0_3 = "data:\n  train:\n    supervised:\n      batch_size_per_gpu: 16\n      worker_init_fn: null\n"
FIXMATCH_0_3 = """learner:
  hparams:
    model:
      regularization_loss_heads:
        fixmatch:
          head:
            _target_: sesemi.models.heads.loss.FixMatchLossHead
            data: fixmatch
            student_head: supervised
"""
MEAN_TEACHER_0_3 = """learner:
  hparams:
    model:
      regularization_loss_heads:
        consistency:
          head:
            _target_: sesemi.models.heads.loss.EMAConsistencyLossHead
            input_data: consistency
"""
TRANSFORM_0_3 = """data:
  views:
    eval:
      _target_: sesemi.transforms.center_crop_transforms
      norms: [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]
"""
DATASET_0_3 = "data:\n  val:\n    dataset:\n      _target_: sesemi.dataset\n"


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        (
            "supervised",
            EMA_0_3,
            "learner.hparams.model.ema is sesemi 0.3's; use the EMA callback: trainer.callbacks: "
            "[{_target_: sesemi.callbacks.EMA, decay: 0.999}]",
        ),
        (
            "supervised",
            LOADER_0_3,
            "data.train.supervised.batch_size_per_gpu is sesemi 0.3's; use data.train.supervised.batch_size (per GPU)",
        ),
        ("supervised", LOADER_0_3.replace("      batch_size_per_gpu: 16\n", ""), "worker_init_fn is sesemi 0.3's; remove it"),
        ("fixmatch", FIXMATCH_0_3, "regularization_loss_heads.fixmatch.head.student_head: supervised is sesemi 0.3's name"),
        ("fixmatch", FIXMATCH_0_3.replace("            student_head: supervised\n", ""), "fixmatch.head.data is sesemi 0.3's; use input_data"),
        ("supervised", MEAN_TEACHER_0_3, "use sesemi.models.heads.loss.MeanTeacherLossHead"),
        ("supervised", TRANSFORM_0_3, "data.views.eval.norms is sesemi 0.3's; use mean and std"),
        ("supervised", DATASET_0_3, "data.val.dataset._target_ names sesemi.dataset, sesemi 0.3's; remove the _target_"),
    ],
)
def test_keys_of_sesemi_0_3_name_what_to_write_now(tmp_path: Path, method, body, message):
    """A 0.3 config's keys that this schema lacks (in the YAML or added with `+`) are one line
    naming the key and what replaces it, not only an unknown key."""
    (tmp_path / "old.yaml").write_text(f"defaults:\n  - image\n  - _self_\n  - override method: {method}\n{body}")
    with pytest.raises(SesemiError) as error:
        compose("old", config_dir=tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_0_3_key_added_on_the_command_line_names_the_new_key_too():
    with pytest.raises(SesemiError, match=r"^learner.hparams.model.ema is sesemi 0.3's; use the EMA callback"):
        compose("digits", ["+learner.hparams.model.ema.decay=0.99"])


def test_the_0_3_accelerator_dp_still_composes():
    assert compose("digits", ["run.accelerator=dp"]).run.accelerator == "dp"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("imagewang_fixmatch", "run: sesemi train base run.data_root=data/imagewang data.unlabeled.subset=[train,unsup] method=fixmatch"),
        ("cifar10", "cifar10 is a config of sesemi 0.3; run: sesemi train image run.data_root="),
        ("base/config", "base/config is sesemi 0.3's config tree; start your config from a data config instead: defaults: [base, _self_]"),
    ],
)
def test_config_names_of_sesemi_0_3_say_what_runs_them_now(name, message):
    with pytest.raises(SesemiError) as error:
        compose(name)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_0_3_config_tree_in_the_defaults_list_is_one_line(tmp_path: Path):
    """A 0.3 project's config starts from `/base/supervised/model/baseline`: its replacement."""
    (tmp_path / "custom.yaml").write_text("defaults:\n  - /base/supervised/model/baseline\n  - _self_\n")
    with pytest.raises(SesemiError, match=r"^base/supervised/model/baseline is sesemi 0.3's config tree; .*defaults: \[base, _self_\]"):
        compose("custom", config_dir=tmp_path)
