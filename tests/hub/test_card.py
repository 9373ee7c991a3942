"""The model card (sesemi/hub/publishing.py)."""

from __future__ import annotations

from omegaconf import OmegaConf

from sesemi.hub.lookup import ModelInfo
from sesemi.hub.publishing import model_card

CONFIG = {
    "run": {"data_root": "data/digits", "num_iterations": 1000, "num_epochs": None},
    "data": {
        "train": {
            "supervised": {"dataset": {"name": "image_folder", "subset": "train"}},
            "rotation_prediction": {"dataset": {"name": "image_file", "subset": ["train", "unlabeled"]}},
        },
        "val": {"dataset": {"name": "image_folder", "subset": "val"}},
    },
    "learner": {
        "hparams": {
            "model": {
                "backbone": {"_target_": "sesemi.ConvNet", "widths": [32, 64]},
                "supervised_loss": {"callable": {"_target_": "torch.nn.CrossEntropyLoss"}},
                "regularization_loss_heads": {
                    "rotation_prediction": {"head": {"_target_": "sesemi.models.heads.loss.RotationPredictionLossHead"}}
                },
            },
            "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.05},
        }
    },
}


def test_the_card_says_what_the_model_does_how_it_was_made_and_how_well():
    info = ModelInfo(
        "3f1c9a0e-1.0.0", "digits-cnn", "images", "1.0.0", {"labels": 50}, "2026-11-23T16:00:00+00:00",
        "Ada", [str(d) for d in range(10)], {"val/top1": 0.91234}, "best.ckpt", True, {"notes": "demo"}, "0.3.0",
    )
    card = model_card(info, OmegaConf.create(CONFIG), audio=False)
    assert card.startswith("# images.digits-cnn@1.0.0\n\nClassifies images into 10 classes: 0, 1, 2")
    for line in [
        'model = sesemi.hub.load("3f1c9a0e-1.0.0")',
        "Data root: `data/digits`",
        "- rotation_prediction: `image_file`, subset ['train', 'unlabeled']",
        "- backbone: `sesemi.ConvNet` (widths=[32, 64])",
        "- loss head `rotation_prediction`: `sesemi.models.heads.loss.RotationPredictionLossHead`",
        "- weights: the exponential moving average of the weights, from `best.ckpt`",
        "- training: 1000 iterations, optimizer `torch.optim.SGD` (lr=0.05)",
        "| val/top1 | 0.9123 |",
        "| labels | 50 |",
        "| notes | demo |",
        "uid `3f1c9a0e-1.0.0`, published 2026-11-23T16:00:00+00:00 by Ada with sesemi 0.3.0.",
    ]:
        assert line in card.splitlines(), line
