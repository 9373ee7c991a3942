"""Which classes a config or checkpoint read from files may build.

Loading a trained model instantiates the `_target_`s of its network (backbone and classification
head, from a checkpoint's hyper-parameters or a run's config) and of its evaluation transform,
and Hydra imports and calls whatever a `_target_` names. So these may only name sesemi's models,
transforms and schedulers, torch.nn, torch.optim and torchvision.transforms; `allow` adds the
prefixes of packages the user trusts (their own backbones, say). What loading does not build
(loss heads, optimizer, callbacks) is not checked: a model loads without the classes only
training needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from sesemi.errors import SesemiError

ALLOWED = (
    "sesemi.models.",
    "sesemi.transforms.",
    "sesemi.schedulers.",
    "torch.nn.",
    "torch.optim.",
    "torchvision.transforms.",
)
NETWORK = ("model.backbone", "model.head")  # what is built of `learner.hparams`
BUILT = (
    *(f"learner.hparams.{key}" for key in NETWORK),
    "data.val.dataset.image_transform",
    "data.test.dataset.image_transform",
)


def _targets(node: Any) -> Iterator[str]:
    if isinstance(node, DictConfig):
        for key, value in node.items_ex(resolve=False):
            if key == "_target_":
                yield str(value)
            else:
                yield from _targets(value)
    elif isinstance(node, ListConfig):
        for value in node:
            yield from _targets(value)


def _home(target: str) -> str:
    """The real path of a name `sesemi` re-exports (`sesemi.ConvNet` is sesemi.models...)."""
    from sesemi import _EXPORTS

    package, _, name = target.partition(".")
    return f"{_EXPORTS[name]}.{name}" if package == "sesemi" and name in _EXPORTS else target


def check_targets(
    config: DictConfig | Mapping[str, Any],
    allow: Sequence[str] = (),
    keys: Sequence[str] = BUILT,
    source: str = "the model's config",
) -> None:
    """Refuses a config that would build anything outside `ALLOWED` and `allow`.

    Args:
        config: A run's config, or a checkpoint's hyper-parameters (a plain mapping).
        allow: Module prefixes the user trusts besides `ALLOWED`, e.g. `["my_project."]`.
        keys: The dotted keys of what will be built; `NETWORK` for a checkpoint's hyper-parameters.
        source: What the config is, for the error message.
    """
    if not isinstance(config, DictConfig):
        config = OmegaConf.create(dict(config))
    allowed = ALLOWED + tuple(allow)
    for key in keys:
        for target in _targets(OmegaConf.select(config, key)):
            if not _home(target).startswith(allowed):
                raise SesemiError(
                    f"{source} builds {target}, which is not a sesemi, torch.nn or "
                    f"torchvision.transforms class; if you trust its publisher, load it with "
                    f"allow=[{target.rpartition('.')[0] + '.'!r}]"
                )
