"""Loading a trained model for inference (sesemi/learners/trained.py): run folders, checkpoints
and published folders, without running code from them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from sesemi import trust
from sesemi.errors import SesemiError
from sesemi.hub.ids import model_uid
from sesemi.hub.lookup import ModelInfo
from sesemi.learners.trained import TrainedModel
from sesemi.models.backbones.timm import PyTorchImageModels
from sesemi.models.heads.linear import LinearHead
from sesemi.ownership import record_checksum
from sesemi.predictor import load


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def tamper(checkpoint: Path, change) -> None:
    """Rewrites a checkpoint with `change(hparams)` applied to its stored hyper-parameters, and
    its checksum with it (as a checkpoint made elsewhere would come)."""
    stored = torch.load(checkpoint, weights_only=True)
    change(stored["hyper_parameters"]["hparams"])
    torch.save(stored, checkpoint)
    record_checksum(checkpoint)


def published_folder(run_dir: Path, folder: Path, labels=("blue", "green", "red")) -> Path:
    """A published model's folder as `sesemi.hub.publish` writes it, from a run."""
    model = TrainedModel.from_run(run_dir)
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "weights.safetensors")
    shutil.copy(run_dir / "config.yaml", folder / "config.yaml")
    info = ModelInfo(model_uid("tiny", None, {}, "1.0.0"), "tiny", None, "1.0.0", labels=list(labels), ema=True)
    (folder / "meta.json").write_text(json.dumps(info.to_dict()))
    return folder


def test_a_run_folder_loads_the_network_its_checkpoint_holds(trained_run):
    """Backbone and head only, in eval mode, with the checkpoint's (EMA) weights, the run's
    config and class names."""
    run = trained_run.run_dir
    model = TrainedModel.from_run(run)
    assert (model.source, model.checkpoint) == (run, run / "checkpoints" / "best.ckpt")
    assert model.labels == ["blue", "green", "red"] and model.ema and not model.training
    assert {name for name, _ in model.named_children()} == {"backbone", "head"}
    assert model.config.run.num_iterations == 4
    stored = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert model.state_dict().keys() == {k for k in stored if k.startswith(("backbone.", "head."))}
    assert all(torch.equal(value, stored[key]) for key, value in model.state_dict().items())
    images = torch.rand(2, 3, 16, 16)
    assert model(images).shape == (2, 3)
    assert TrainedModel.from_run(run, checkpoint="last").checkpoint.name == "last.ckpt"
    assert TrainedModel.from_run(run / "checkpoints" / "last.ckpt").source == run


def test_a_checkpoint_without_its_run_loads_with_class_numbers(trained_run, tmp_path):
    alone = shutil.copy(trained_run.run_dir / "checkpoints" / "best.ckpt", tmp_path / "teacher.ckpt")
    model = TrainedModel.from_run(alone)
    assert model.labels == ["0", "1", "2"] and model.eval_transform_config is None
    with pytest.raises(SesemiError, match="has no config.yaml with a validation transform"):
        model.eval_transform()


def test_a_finished_run_without_checkpoints_says_what_removed_them(trained_run, tmp_path):
    run = copy_run(trained_run.run_dir, tmp_path)
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(SesemiError, match=r"has no checkpoint left \(`sesemi rm-states --all` deletes them\)"):
        TrainedModel.from_run(run)


@pytest.mark.parametrize(
    ("state", "message"),
    [("failed", "stopped before it saved a checkpoint; train it again"), ("running", "is still running and has saved no checkpoint yet")],
)
def test_a_run_without_a_checkpoint_yet_says_why(trained_run, tmp_path, state, message):
    """A run that failed before its first checkpoint, or is still on its way to it."""
    from sesemi.ownership import mark

    run = copy_run(trained_run.run_dir, tmp_path)
    shutil.rmtree(run / "checkpoints")
    (run / "results.json").unlink()
    mark(run, "run", state)  # "running" by this process, which is alive
    with pytest.raises(SesemiError, match=message):
        TrainedModel.from_run(run)


def test_a_run_config_with_an_interpolation_is_refused_before_anything_reads_it(trained_run, tmp_path, monkeypatch):
    """Stored configs are resolved: one edited to read the environment (`${oc.env:...}`) is
    refused, by loading and by publishing, rather than resolved into a model card or a log."""
    from sesemi.hub import publish

    run = copy_run(trained_run.run_dir, tmp_path)
    config = OmegaConf.load(run / "config.yaml")
    config.run.data_root = "${oc.env:SECRET_TOKEN}"
    (run / "config.yaml").write_text(OmegaConf.to_yaml(config))
    monkeypatch.setenv("SECRET_TOKEN", "s3cr3t")
    message = r"config.yaml has an interpolation at run.data_root \(\$\{oc.env:SECRET_TOKEN\}\)"
    with pytest.raises(SesemiError, match=message):
        TrainedModel.from_run(run)
    with pytest.raises(SesemiError, match=message):
        publish(run, "leak", "1.0.0", tmp_path / "repository")
    assert not any("s3cr3t" in path.read_text(errors="ignore") for path in tmp_path.rglob("*") if path.is_file())


def test_a_backbone_that_does_not_say_its_width_is_one_line(trained_run, tmp_path):
    """A trusted class that is no backbone (`torch.nn.Identity`) names no out_features."""
    run = copy_run(trained_run.run_dir, tmp_path)
    tamper(run / "checkpoints" / "best.ckpt", lambda hparams: hparams["model"].update(backbone={"_target_": "torch.nn.Identity"}))
    with pytest.raises(SesemiError, match=r"^the backbone the checkpoint .* \(Identity\) does not say its out_features$"):
        TrainedModel.from_run(run)


def test_an_untrusted_target_in_a_checkpoint_is_refused_without_running_it(trained_run, tmp_path):
    """A checkpoint that loads with weights_only=True still names classes in its
    hyper-parameters; one outside the trust rules is refused in one line, before it runs."""
    run = copy_run(trained_run.run_dir, tmp_path)
    victim = tmp_path / "owned.txt"
    backbone = {"_target_": "pathlib.Path.write_text", "_args_": [str(victim), "owned"]}
    tamper(run / "checkpoints" / "best.ckpt", lambda hparams: hparams["model"].update(backbone=backbone))
    message = r"^the checkpoint .*best\.ckpt builds pathlib\.Path\.write_text, which sesemi does not trust; it is of Python's standard library"
    with pytest.raises(SesemiError, match=message):
        TrainedModel.from_run(run)
    with pytest.raises(SesemiError, match=message):
        load(run, device="cpu")
    assert not victim.exists()


def test_classes_only_training_uses_are_not_needed(trained_run, tmp_path):
    """Loss heads are not built, so a checkpoint whose loss head lives in a package this
    environment lacks still loads and predicts."""
    run = copy_run(trained_run.run_dir, tmp_path)
    heads = {"mine": {"head": {"_target_": "someone_elses_package.heads.MyHead", "input_data": "x"}}}
    tamper(run / "checkpoints" / "best.ckpt", lambda hparams: hparams["model"].update(regularization_loss_heads=heads))
    model = TrainedModel.from_run(run)
    assert model(torch.rand(1, 3, 16, 16)).shape == (1, 3)


def test_a_published_folder_loads_as_the_run_did(trained_run, tmp_path):
    folder = published_folder(trained_run.run_dir, tmp_path / "model")
    model = TrainedModel.from_published(folder)
    run = TrainedModel.from_run(trained_run.run_dir)
    assert (model.source, model.checkpoint, model.labels, model.ema) == (folder, None, run.labels, True)
    images = torch.rand(4, 3, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(model(images), run(images))
    assert load(folder, device="cpu").predict(trained_run.tree.root / "val")[0].label in run.labels


def test_a_published_config_that_builds_other_classes_is_refused(trained_run, tmp_path):
    folder = published_folder(trained_run.run_dir, tmp_path / "model")
    config = OmegaConf.load(folder / "config.yaml")
    config.data.val.dataset.image_transform._target_ = "os.system"
    OmegaConf.save(config, folder / "config.yaml")
    with pytest.raises(SesemiError, match=r"^.*model/config\.yaml builds os.system, which sesemi does not trust"):
        TrainedModel.from_published(folder)


def test_allow_or_the_trust_file_admit_a_users_own_backbone(trained_run, tmp_path, monkeypatch):
    monkeypatch.setenv("SESEMI_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "my_backbones.py").write_text("from sesemi.models.backbones.convnet import ConvNet as Net\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = published_folder(trained_run.run_dir, tmp_path / "model")
    config = OmegaConf.load(folder / "config.yaml")
    config.learner.hparams.model.backbone._target_ = "my_backbones.Net"
    OmegaConf.save(config, folder / "config.yaml")
    with pytest.raises(SesemiError, match=r"`sesemi trust add my_backbones` \(or, for one call, pass --allow my_backbones; allow=\['my_backbones'\] in Python\)"):
        TrainedModel.from_published(folder)
    assert type(TrainedModel.from_published(folder, allow=["my_backbones."]).backbone).__name__ == "ConvNet"
    trust.add("my_backbones")
    assert type(TrainedModel.from_published(folder).backbone).__name__ == "ConvNet"


def test_the_evaluation_transform_is_built_under_the_same_rules(trained_run, tmp_path):
    """The transform is built later than the network (when predicting); it is checked at
    loading and again when it is built."""
    run = copy_run(trained_run.run_dir, tmp_path)
    model = TrainedModel.from_run(run)
    assert callable(model.eval_transform())
    model.config.data.val.dataset.image_transform = {"_target_": "pathlib.Path.touch", "self": str(tmp_path / "x")}
    with pytest.raises(SesemiError, match="config.yaml builds pathlib.Path.touch, which sesemi does not trust"):
        model.eval_transform()
    assert not (tmp_path / "x").exists()
    config = OmegaConf.load(run / "config.yaml")
    config.data.val.dataset.image_transform._target_ = "shutil.rmtree"
    OmegaConf.save(config, run / "config.yaml")
    with pytest.raises(SesemiError, match="config.yaml builds shutil.rmtree"):
        TrainedModel.from_run(run)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h["model"]["backbone"].update(widths="${oc.create:'[4, 8]'}"), "has an interpolation at model.backbone.widths"),
        (lambda h: h.update(num_classes="3"), "has num_classes='3'; it must be a positive whole number"),
        (lambda h: h["model"].update(backbone={"_target_": "sesemi.ConvNet", "_args_": [{"_target_": "os.getcwd"}]}), "builds os.getcwd"),
    ],
)
def test_checkpoints_are_data_interpolations_and_odd_values_are_refused(trained_run, tmp_path, change, message):
    run = copy_run(trained_run.run_dir, tmp_path)
    tamper(run / "checkpoints" / "best.ckpt", change)
    with pytest.raises(SesemiError, match=f"^the checkpoint .*best.ckpt {message}"):
        TrainedModel.from_run(run)


def test_backbones_are_built_without_downloading_pretrained_weights(trained_run, tmp_path, monkeypatch):
    """The trained weights replace pretrained ones, so `pretrained: true` downloads nothing."""

    def no_download(*args):
        raise AssertionError("downloaded pretrained weights")

    monkeypatch.setattr("sesemi.models.backbones.timm.fetch_pretrained", no_download)
    folder = published_folder(trained_run.run_dir, tmp_path / "model")
    config = OmegaConf.load(folder / "config.yaml")
    config.learner.hparams.model.backbone = {"_target_": "sesemi.PyTorchImageModels", "name": "resnet10t", "pretrained": True}
    OmegaConf.save(config, folder / "config.yaml")
    backbone = PyTorchImageModels("resnet10t")
    head = LinearHead(backbone.out_features, 3)
    weights = {f"{name}.{k}": v for name, part in (("backbone", backbone), ("head", head)) for k, v in part.state_dict().items()}
    save_file(weights, folder / "weights.safetensors")
    model = TrainedModel.from_published(folder)
    assert all(torch.equal(value, weights[key]) for key, value in model.state_dict().items())


def pipe_config(folder: Path) -> None:
    (folder / "config.yaml").unlink()
    os.mkfifo(folder / "config.yaml")


def test_a_checksum_file_that_is_a_pipe_is_refused_not_waited_on(trained_run, tmp_path):
    run = copy_run(trained_run.run_dir, tmp_path)
    for checksum in (run / "checkpoints").glob("*.sha256"):
        checksum.unlink()
        os.mkfifo(checksum)
    with pytest.raises(SesemiError, match=r"best.ckpt.sha256 holds no SHA-256"):
        TrainedModel.from_run(run)


def test_a_published_model_cannot_make_timm_fetch_or_pass_pretrained_positionally(trained_run, tmp_path):
    """timm's builder is trusted, but its config can ask it to download a file into a chosen
    folder (`pretrained_cfg_overlay`, `cache_dir`), with `pretrained` passed positionally where
    loading sets the keyword false: refused before anything is built or fetched."""
    folder = published_folder(trained_run.run_dir, tmp_path / "model")
    backbone = {
        "_target_": "timm.create_model",
        "_args_": ["resnet18", True],
        "pretrained_cfg_overlay": {"url": "http://127.0.0.1:9/yaml.py", "hf_hub_id": "", "file": ""},
        "cache_dir": str(tmp_path / "fetched"),
    }
    for argument in ("_args_", "pretrained_cfg_overlay", "cache_dir"):
        config = OmegaConf.load(folder / "config.yaml")
        config.learner.hparams.model.backbone = backbone
        OmegaConf.save(config, folder / "config.yaml")
        message = f"gives timm.create_model the argument {argument} \\(at learner.hparams.model.backbone\\)"
        with pytest.raises(SesemiError, match=message):
            TrainedModel.from_published(folder)
        backbone.pop(argument)
    config.learner.hparams.model.backbone = {"_target_": "timm.create_model", "model_name": f"local-dir:{tmp_path}"}
    OmegaConf.save(config, folder / "config.yaml")
    with pytest.raises(SesemiError, match="names the model 'local-dir:.*' \\(at learner.hparams.model.backbone\\), a place to read it from"):
        TrainedModel.from_published(folder)  # timm would read the folder's config.json into its arguments
    assert not (tmp_path / "fetched").exists()


def resize_backbone(folder: Path) -> None:
    config = OmegaConf.load(folder / "config.yaml")
    config.learner.hparams.model.backbone.widths = [4, 16]
    OmegaConf.save(config, folder / "config.yaml")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / "weights.safetensors").write_bytes(b"\x80\x04pickled"), r"^cannot read the weights of .* \(.*\); they are damaged: delete the folder \(a model in the cache is downloaded again"),
        (lambda folder: (folder / "meta.json").unlink(), "is not a published model's folder .*no meta.json"),
        (lambda folder: (folder / "config.yaml").write_text("learner: [\n"), r"config\.yaml is not valid YAML"),
        (  # a kilobyte of these stands for gigabytes
            lambda folder: (folder / "config.yaml").write_text("a: &a [x, x]\nb: &b [*a, *a]\nlearner: {}\n"),
            r"config\.yaml has YAML aliases \(\*name\), which sesemi never writes",
        ),
        (pipe_config, r"is not a published model's folder \(it has no config.yaml\)$"),  # reading it would wait for ever
        (lambda folder: (folder / "config.yaml").write_bytes(b"run: \xff\xfe\n"), r"config\.yaml is not UTF-8 text"),
        (
            lambda folder: (folder / "meta.json").write_text(json.dumps({"uid": "x", "labels": ["a", "b"]})),
            "2 class names for a model of 3 classes",
        ),
        (resize_backbone, r"^the weights in .*weights.safetensors do not fit the model of its config \(.*size mismatch.*\)$"),
    ],
)
def test_damaged_published_folders_are_one_error_line(trained_run, tmp_path, damage, message):
    folder = published_folder(trained_run.run_dir, tmp_path / "model")
    damage(folder)
    with pytest.raises(SesemiError, match=message):
        TrainedModel.from_published(folder)


def test_bad_checkpoints_are_one_error_line(tmp_path):
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"garbage")
    with pytest.raises(SesemiError, match="cannot load .*model.ckpt safely"):
        TrainedModel.from_run(path)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(SesemiError, match="not saved by a sesemi Classifier"):
        TrainedModel.from_run(path)
    with pytest.raises(SesemiError, match="has no checkpoints/best.ckpt or last.ckpt"):
        TrainedModel.from_run(tmp_path)
