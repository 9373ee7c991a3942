"""What a config or checkpoint read from files may build (sesemi/trust.py), and the user's list
of trusted module paths (`sesemi trust`)."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from sesemi import trust
from sesemi.errors import SesemiError
from sesemi.trust import NETWORK, check_saved_overrides, check_target, check_targets, instantiate


@pytest.fixture(autouse=True)
def config_home(tmp_path, monkeypatch):
    """A config folder of the test's own, so that the user's trusted prefixes play no part."""
    monkeypatch.setenv("SESEMI_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


def config(backbone: dict, transform: str = "sesemi.transforms.center_crop_transforms"):
    return OmegaConf.create(
        {
            "learner": {
                "_target_": "sesemi.Classifier",
                "hparams": {
                    "model": {
                        "backbone": backbone,
                        "supervised_loss": {"callable": {"_target_": "torch.nn.CrossEntropyLoss"}},
                    },
                    "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1},
                    "lr_scheduler": {"scheduler": {"_target_": "sesemi.PolynomialLR"}},
                },
            },
            "data": {"val": {"dataset": {"image_transform": {"_target_": transform}}}},
            "trainer": {"callbacks": [{"_target_": "sesemi.callbacks.EMA"}]},
        }
    )


def test_what_sesemi_configs_build_is_trusted():
    check_targets(config({"_target_": "sesemi.ConvNet", "widths": [4, 8]}))
    check_targets(config({"_target_": "sesemi.models.backbones.timm.PyTorchImageModels"}))
    check_targets(config({"_target_": "sesemi.AudioBackbone", "encoder": {"_target_": "sesemi.ConvNet"}}))
    for target in ("torch.nn.ReLU", "torch.optim.lr_scheduler.StepLR", "torchvision.transforms.v2.RandomCrop",
                   "timm.create_model", "timm.layers.DropPath", "torch.utils.data.SequentialSampler"):
        check_target(target)


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("os.system", "which sesemi does not trust; it is of Python's standard library, .* do not load it$"),
        ("pathlib.Path.write_text", "which sesemi does not trust; it is of Python's standard library"),
        ("torchx.evil", "which sesemi does not trust"),  # whole parts: torchx is not torch
        ("sesemi_evil.x", "which sesemi does not trust"),
        ("torch._C._nn", "which sesemi does not trust"),  # private parts
        ("torch.hub.load", "is none of the network and training classes sesemi trusts; .*`sesemi trust add torch.hub`"),
        ("torch.load", r"torch.load \(it is torch.serialization.load\), which is none"),
        ("torchvision.models.Weights", "it is torchvision.models._api.Weights"),  # downloads from any URL
        ("sesemi.ops.runs.remove_failed", "is none of the network"),  # sesemi, but not a model
        ("sesemi.trust.add", "is none of the network"),
        ("sesemi.callbacks.InterruptedCheckpoint", "is none of the network"),  # writes where it is told
        ("sesemi.run", r"\(it is sesemi.runner.run\)"),
        # A trusted module's imports are not trusted with it: what a name is counts, not where.
        ("torch.nn.modules.module.torch.load", r"\(it is torch.serialization.load\)"),
        ("sesemi.models.backbones.timm.timm.models.load_checkpoint", "is none of the network"),
        ("${oc.env:TARGET}", "has an interpolation at learner.hparams.model.backbone._target_"),
        ("eval", "not a dotted name"),
    ],
)
def test_anything_else_is_refused_in_one_line(target, why):
    with pytest.raises(SesemiError, match=f"^the model's config .*{why}") as refused:
        check_targets(config({"_target_": target}))
    assert "\n" not in str(refused.value)


def test_nested_targets_are_checked_whatever_the_outer_one_is():
    """What a `_target_`'s arguments could build is checked too: positional, keyword, in lists."""
    for backbone in (
        {"_target_": "sesemi.ConvNet", "widths": [{"_target_": "builtins.eval", "_args_": ["1"]}]},
        {"_target_": "sesemi.ConvNet", "_args_": [{"_target_": "os.system", "_partial_": True}]},
        {"_target_": "torch.nn.Sequential", "_args_": [[{"_target_": "subprocess.run"}]]},
    ):
        with pytest.raises(SesemiError, match="which sesemi does not trust"):
            check_targets(config(backbone))


def test_interpolations_are_refused_they_could_build_anything():
    """Stored configs are resolved; an interpolation (oc.create can make a `_target_` of a
    string) is refused rather than resolved."""
    made = {"_target_": "sesemi.ConvNet", "widths": "${oc.create:'{_target_: os.system}'}"}
    with pytest.raises(SesemiError, match=r"has an interpolation at learner.hparams.model.backbone.widths \(\$\{oc.create"):
        check_targets(config(made))
    elsewhere = config({"_target_": "sesemi.ConvNet"})
    elsewhere.learner.hparams.model = "${evil}"
    with pytest.raises(SesemiError, match="has an interpolation where learner.hparams.model.backbone should be"):
        check_targets(elsewhere, keys=["learner.hparams.model.backbone"])


def test_the_evaluation_transform_and_the_whole_config_are_checked():
    with pytest.raises(SesemiError, match="builds subprocess.run"):
        check_targets(config({"_target_": "sesemi.ConvNet"}, transform="subprocess.run"))
    whole = config({"_target_": "sesemi.ConvNet"})
    whole.trainer.callbacks.append({"_target_": "shutil.rmtree", "path": "/"})
    check_targets(whole, keys=["learner.hparams.model.backbone"])  # only what is built
    with pytest.raises(SesemiError, match="^runs/x/config.yaml builds shutil.rmtree"):
        check_targets(whole, source="runs/x/config.yaml")  # all of it, as a resumed run builds all


def test_experiment_trackers_are_trusted_as_a_runs_loggers_only():
    """A tracker writes files and reaches servers: as a run's `loggers.<name>` the runner keeps
    it to the run's folder; inside a network or a transform it would write wherever it is told
    (and fetch any URL) as the model loads."""
    whole = config({"_target_": "sesemi.ConvNet"})
    whole.loggers = {"tensorboard": {"_target_": "pytorch_lightning.loggers.TensorBoardLogger"}}
    check_targets(whole, source="runs/x/config.yaml")
    writer = {"_target_": "pytorch_lightning.loggers.csv_logs.ExperimentWriter", "log_dir": "http://example.com/x"}
    for hidden in (config({"_target_": "sesemi.ConvNet", "widths": [writer]}), config({"_target_": "sesemi.ConvNet"}, transform=writer["_target_"])):
        with pytest.raises(SesemiError, match="builds pytorch_lightning.loggers.csv_logs.ExperimentWriter, which is none"):
            check_targets(hidden)
    whole.loggers.tensorboard.comment = writer  # an argument of a tracker is no tracker
    with pytest.raises(SesemiError, match="ExperimentWriter, which is none"):
        check_targets(whole, source="runs/x/config.yaml")


def test_allow_and_the_trust_file_admit_the_packages_a_user_trusts(tmp_path, monkeypatch, config_home):
    (tmp_path / "my_project").mkdir()
    (tmp_path / "my_project" / "__init__.py").write_text("import os\nclass Net:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mine = config({"_target_": "my_project.Net"})
    with pytest.raises(SesemiError, match=r"run `sesemi trust add my_project` \(or, for one call, pass --allow my_project; allow=\['my_project'\] in Python\)$"):
        check_targets(mine)
    check_targets(mine, allow=["my_project"])
    check_targets(mine, allow=["my_project."])  # as allow was written before
    assert trust.add("my_project") == ["my_project"]
    assert json.loads((config_home / "trust.json").read_text()) == {"trusted": ["my_project"]}
    check_targets(mine)
    with pytest.raises(SesemiError, match=r"builds my_project.os.system \(it is posix.system\)"):
        check_targets(config({"_target_": "my_project.os.system"}))  # what it imports is not trusted with it
    assert trust.remove("my_project") == []
    with pytest.raises(SesemiError, match="which sesemi does not trust"):
        check_targets(mine)


def test_the_trust_file_is_checked_and_its_prefixes_too(config_home):
    assert trust.user_prefixes() == [] and trust.add("a.b") == trust.add("a.b") == ["a.b"]
    for bad in ("", "a/b", "a..b", "../x", "a b"):
        with pytest.raises(SesemiError, match="dotted module path"):
            trust.add(bad)
    for private in ("_priv", "my_project._internal"):  # never built, whatever is trusted
        with pytest.raises(SesemiError, match=rf"^{private} has a private part \(a name that starts with _\)"):
            trust.add(private)
    for stdlib in ("os", "subprocess.run", "builtins", "pathlib."):  # any command, any file
        with pytest.raises(SesemiError, match=r"of Python's standard library, whose classes .* run any command"):
            trust.add(stdlib)
    with pytest.raises(SesemiError, match="standard library"):
        check_targets(config({"_target_": "os.system"}), allow=["os"])
    with pytest.raises(SesemiError, match="torch is trusted by sesemi itself"):
        trust.remove("torch")
    with pytest.raises(SesemiError, match="c is not trusted"):
        trust.remove("c")
    (config_home / "trust.json").write_text('{"trusted": ["/etc"]}')
    with pytest.raises(SesemiError, match=r"trust.json is not a list of trusted prefixes"):
        check_target("sesemi.ConvNet")
    assert list(config_home.iterdir()) == [config_home / "trust.json"]  # no temporary file left


def test_the_config_folder_follows_the_environment(tmp_path, monkeypatch):
    assert trust.config_home() == tmp_path / "config"
    monkeypatch.delenv("SESEMI_CONFIG_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert trust.trust_file() == tmp_path / "xdg" / "sesemi" / "trust.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert trust.config_home() == tmp_path / "home" / ".config" / "sesemi"


def test_a_checkpoint_s_hyper_parameters_are_checked_where_they_build_the_network():
    """A checkpoint stores plain hyper-parameters; what loading builds of them is checked, the
    loss heads (which it does not build) are not."""
    hparams = {
        "num_classes": 3,
        "model": {
            "backbone": {"_target_": "sesemi.ConvNet"},
            "regularization_loss_heads": {"mine": {"head": {"_target_": "my_project.Head"}}},
        },
    }
    check_targets(hparams, keys=NETWORK, source="the checkpoint x.ckpt")
    hparams["model"]["head"] = {"_target_": "pathlib.Path.write_text"}
    with pytest.raises(SesemiError, match="^the checkpoint x.ckpt builds pathlib.Path.write_text, which"):
        check_targets(hparams, keys=NETWORK, source="the checkpoint x.ckpt")


@pytest.mark.parametrize(
    "override",
    [
        "+learner.hparams.model.backbone.checkpoint_path=/elsewhere/w.pth",  # the `_target_` is the built-in's
        "+learner.hparams.model.backbone._args_=[resnet18,true]",
        "+learner.hparams.model.backbone.model_name=local-dir:/elsewhere",
        "learner.hparams.model.backbone={pretrained_cfg_overlay:{url:'http://x/y.py'}}",
        "logger@data.train.supervised.dataset=mlflow",  # a tracker built as a data set
        "hydra.searchpath=[file://cfg]",
        "+pwn=x",
    ],
)
def test_saved_overrides_that_could_fetch_or_place_configs_are_refused(override):
    with pytest.raises(SesemiError, match=r"^run.json holds .*; refusing to build from it$"):
        check_saved_overrides([override], source="run.json")


def test_saved_overrides_of_sesemis_settings_and_options_pass():
    check_saved_overrides(
        ["backbone=resnet18", "logger=[tensorboard,mlflow]", "~backbone", "run.seed=2",
         "+learner.hparams.model.backbone._target_=sesemi.ConvNet", "+data.train.supervised.dataset.cache_dir=/tmp/c"]
    )


def test_instantiate_checks_what_it_builds(tmp_path):
    victim = tmp_path / "written.txt"
    with pytest.raises(SesemiError, match="builds pathlib.Path.write_text"):
        instantiate({"_target_": "pathlib.Path.write_text", "self": str(victim), "data": "x"})
    assert not victim.exists()
    assert instantiate({"_target_": "torch.nn.Linear"}, in_features=2, out_features=3).out_features == 3


def test_the_trust_command_adds_lists_and_removes(config_home):
    from typer.testing import CliRunner

    from sesemi.cli.app import app

    def sesemi_cli(*args):
        return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})

    done = sesemi_cli("trust", "add", "my_project.backbones")
    assert done.exit_code == 0 and done.output == f"trusted: my_project.backbones (in {config_home / 'trust.json'})\n"
    assert sesemi_cli("trust", "add", "my_project.backbones.").output.startswith("already trusted: my_project.backbones")
    listed = sesemi_cli("trust", "list").output.splitlines()
    assert listed[0] == "trusted\tby" and "torch.nn\tsesemi" in listed
    assert listed[-1] == f"my_project.backbones\tyou ({config_home / 'trust.json'})"
    done = sesemi_cli("trust", "remove", "torch")
    assert done.exit_code == 1 and done.output.startswith("error: torch is trusted by sesemi itself")
    assert sesemi_cli("trust", "remove", "my_project.backbones").exit_code == 0
    assert trust.user_prefixes() == []
    for command in ("add", "remove", "list"):
        assert "Examples:" in sesemi_cli("trust", command, "--help").output
