"""What a config or checkpoint read from files may build (sesemi/trust.py)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from sesemi.errors import SesemiError
from sesemi.trust import NETWORK, check_targets


def config(backbone: dict, transform: str = "sesemi.transforms.center_crop_transforms"):
    return OmegaConf.create(
        {
            "learner": {
                "_target_": "sesemi.Classifier",  # never built by loading: the hub builds a Classifier
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
            "trainer": {"callbacks": [{"_target_": "pytorch_lightning.callbacks.ModelCheckpoint"}]},
        }
    )


def test_sesemi_torch_and_torchvision_classes_are_allowed():
    check_targets(config({"_target_": "sesemi.ConvNet", "widths": [4, 8]}))
    check_targets(config({"_target_": "sesemi.models.backbones.timm.PyTorchImageModels"}))
    check_targets(config({"_target_": "sesemi.AudioBackbone", "encoder": {"_target_": "sesemi.ConvNet"}}))


@pytest.mark.parametrize(
    "backbone",
    [
        {"_target_": "os.system", "_args_": ["echo owned"]},
        {"_target_": "sesemi.ConvNet", "widths": [{"_target_": "builtins.eval", "_args_": ["1"]}]},
        {"_target_": "sesemi.ops.runs.remove", "_args_": [["/"]]},  # sesemi, but not a model
        {"_target_": "${oc.env:TARGET}"},
    ],
)
def test_anything_else_is_refused_before_it_is_imported(backbone):
    with pytest.raises(SesemiError, match="if you trust its publisher, load it with allow="):
        check_targets(config(backbone))


def test_the_evaluation_transform_is_checked_too():
    with pytest.raises(SesemiError, match="builds subprocess.run"):
        check_targets(config({"_target_": "sesemi.ConvNet"}, transform="subprocess.run"))


def test_allow_admits_the_packages_a_user_trusts():
    mine = config({"_target_": "my_project.backbones.Net"})
    with pytest.raises(SesemiError, match=r"allow=\['my_project.backbones.'\]"):
        check_targets(mine)
    check_targets(mine, allow=["my_project."])


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
