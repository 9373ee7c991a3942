"""sesemi 0.3's config keys, classes and config names, and what to write now.

`sesemi.compose` refuses what the schema does not know; for what sesemi 0.3 knew, the one-line
error names the new way instead of only the unknown key (docs/migration.md has the whole table):

    learner.hparams.model.ema is sesemi 0.3's; use the EMA callback: trainer.callbacks: ...
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Mapping
from typing import Any

MIGRATION = "docs/migration.md"

# Keys of 0.3's schema that this one does not have, by full key (`*` stands for any keys);
# `{parent}` in the advice is the key's parent.
KEYS = {
    "learner.hparams.model.ema": "use the EMA callback: trainer.callbacks: [{{_target_: sesemi.callbacks.EMA, "
    "decay: 0.999}}] (image, digits and audio have it)",
    "data.*.batch_size_per_gpu": "use {parent}.batch_size (per GPU), or run.batch_size_per_gpu for every loader",
    "data.*.worker_init_fn": "remove it: sesemi seeds each loader's workers",
    "data.*._target_": "remove it: sesemi builds the data loaders",
}

# Classes and functions of 0.3 that are gone or renamed, by `_target_`.
TARGETS = {
    "sesemi.DataLoader": "remove the _target_: sesemi builds the data loaders",
    "sesemi.dataset": "remove the _target_: a dataset config is built by its name",
    "sesemi.models.heads.loss.EMAConsistencyLossHead": "use sesemi.models.heads.loss.MeanTeacherLossHead",
    "sesemi.models.backbones.resnet.CIFARResNet": "use a backbone of the backbone group (backbone=resnet18) "
    "or sesemi.PyTorchImageModels",
    "sesemi.collation.JigsawTransformer": "use sesemi.collation.JigsawCollator",
    "sesemi.transforms.TwoViewsTransform": "name the views on the loader instead: views: [weak, strong]",
    "sesemi.transforms.MultiViewTransform": "name the views on the loader instead: views: [weak, strong]",
    "sesemi.transforms.cifar_train_transforms": "use sesemi.transforms.train_transforms with crop_dim: 32",
    "sesemi.transforms.cifar_test_transforms": "use sesemi.transforms.center_crop_transforms with resize: 32 "
    "and crop_dim: 32",
    "sesemi.transforms.multi_crop_transforms": "use sesemi.transforms.center_crop_transforms (predict with "
    "--tta for test-time augmentation)",
    "sesemi.transforms.GammaCorrection": "use the strong view (sesemi.transforms.strong_transforms)",
    "sesemi.transforms.GaussianBlur": "use torchvision.transforms.GaussianBlur",
}
TORCHVISION_ALIAS = "sesemi.T."  # 0.3's `sesemi.T` was torchvision.transforms

# Arguments of 0.3's classes that are named otherwise now (or gone), by the module of the class.
ARGUMENTS = {
    "sesemi.models.heads.loss": {
        "data": "use input_data",
        "student_backbone": "use input_backbone",
        "student_head": "use predict_head",
        "teacher_backbone": "remove it: this loss head predicts its targets with input_backbone "
        "(MeanTeacherLossHead learns from an EMA teacher)",
        "teacher_head": "remove it: this loss head predicts its targets with predict_head "
        "(MeanTeacherLossHead learns from an EMA teacher)",
        "loss_fn": "remove it: the consistency loss is the squared error of the class probabilities (0.3's mse)",
        "num_pretext_classes": "remove it (rotation has 4 classes; JigsawPredictionLossHead takes num_permutations)",
        "logger": "remove it: loss heads log through the learner",
    },
    "sesemi.transforms": {
        "norms": "use mean and std",
        "gamma_range": "remove it (the strong view, data.views.strong, adds the colour changes)",
        "sigma_range": "remove it (the strong view, data.views.strong, adds the colour changes)",
        "p_blur": "remove it (the strong view, data.views.strong, adds the colour changes)",
        "p_grayscale": "remove it (the strong view, data.views.strong, adds the colour changes)",
    },
    "sesemi.collation": {
        "p_grayscale": "remove it (grayscale is up to the view's transform)",
        "return_supervised_labels": "remove it",
    },
}

# Values of 0.3 in the loss heads' arguments that name modules: the classification head.
HEAD_NAMES = {"supervised": "head", "supervised_ema": "head_ema"}

# 0.3's built-in config tree (`/base/supervised/model/baseline`, ...), and its top-level configs
# that no alias covers (`imagewoof_rotation` and the like are aliases): what runs them now.
CONFIG_TREE = "base/"
IMAGEWANG = "base run.data_root=data/imagewang data.unlabeled.subset=[train,unsup] method="
STANDARD_LAYOUT = "image run.data_root=<the images in the standard layout: train/<class>/, unlabeled/, val/<class>/>"
CONFIGS = {
    "imagewang": IMAGEWANG + "supervised",
    "imagewang_rotation": IMAGEWANG + "rotation",
    "imagewang_jigsaw": IMAGEWANG + "jigsaw",
    "imagewang_entmin": IMAGEWANG + "entropy_minimization",
    "imagewang_consistency": IMAGEWANG + "mean_teacher",
    "imagewang_fixmatch": IMAGEWANG + "fixmatch",
    "imagewang_fixmatch_randaugment": IMAGEWANG + "fixmatch",
    "cifar10": STANDARD_LAYOUT,
    "cifar100": STANDARD_LAYOUT,
    "stl10": STANDARD_LAYOUT,
}

def renamed_key(key: str) -> str | None:
    """The message for a key of sesemi 0.3's schema that this one has not, or None."""
    for pattern, advice in KEYS.items():
        if fnmatch.fnmatchcase(key, pattern):
            return f"{key} is sesemi 0.3's; {advice.format(parent=key.rpartition('.')[0])}"
    return None


def renamed_target(key: str, target: str) -> str | None:
    """The message for a `_target_` that names a class or function of sesemi 0.3 that is gone."""
    if target.startswith(TORCHVISION_ALIAS):
        return f"{key} names {target}, sesemi 0.3's; use torchvision.transforms.{target[len(TORCHVISION_ALIAS):]}"
    if target in TARGETS:
        return f"{key} names {target}, sesemi 0.3's; {TARGETS[target]}"
    return None


def renamed_argument(key: str, node: Mapping[str, Any], target: Callable[..., Any]) -> str | None:
    """The message for an argument of sesemi 0.3 that the `_target_` of `node` (at `key`) does
    not take, or for 0.3's name of the classification head as a loss head's argument."""
    for argument, value in node.items():
        if argument.endswith("_head") and isinstance(value, str) and value in HEAD_NAMES:
            return (
                f"{key}.{argument}: {value} is sesemi 0.3's name of the classification head; "
                f"use {HEAD_NAMES[value]}"
            )
    module = getattr(target, "__module__", "") or ""
    advice = next((table for prefix, table in ARGUMENTS.items() if module.startswith(prefix)), None)
    if not advice:
        return None
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    for argument in node:
        if argument in advice and argument not in parameters:
            return f"{key}.{argument} is sesemi 0.3's; {advice[argument]}"
    return None


def renamed_config(name: str) -> str | None:
    """The message for a config name of sesemi 0.3's that no built-in config or alias has."""
    name = name.strip("/").removesuffix(".yaml")
    if name.startswith(CONFIG_TREE):
        return (
            f"{name} is sesemi 0.3's config tree; start your config from a data config instead: "
            f"defaults: [base, _self_] (see {MIGRATION})"
        )
    if name in CONFIGS:
        return f"{name} is a config of sesemi 0.3; run: sesemi train {CONFIGS[name]} (see {MIGRATION})"
    if name.startswith("imagewang_"):
        return f"{name} is a config of sesemi 0.3; combine methods in a config of your own (see {MIGRATION})"
    return None
