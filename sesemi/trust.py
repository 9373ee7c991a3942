"""Which classes a config read from files may build.

Loading a model instantiates the `_target_`s of its `learner.hparams` (the network) and of its
evaluation transform, and Hydra imports and calls whatever a `_target_` names. So a config from
a repository may only name sesemi's models, transforms and schedulers, torch.nn, torch.optim and
torchvision.transforms; `allow` adds the prefixes of packages the user trusts (their own
backbones, say).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
BUILT = ("learner.hparams", "data.val.dataset.image_transform", "data.test.dataset.image_transform")


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


def check_targets(config: DictConfig, allow: Sequence[str] = ()) -> None:
    """Refuses a config that would build anything outside `ALLOWED` and `allow`."""
    allowed = ALLOWED + tuple(allow)
    for key in BUILT:
        for target in _targets(OmegaConf.select(config, key)):
            if not _home(target).startswith(allowed):
                raise SesemiError(
                    f"the model's config builds {target}, which is not a sesemi, torch.nn or "
                    f"torchvision.transforms class; if you trust its publisher, load it with "
                    f"allow=[{target.rpartition('.')[0] + '.'!r}]"
                )
