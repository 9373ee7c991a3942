"""Safe checkpoint reading (`weights_only=True`) with errors a user can act on."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sesemi.errors import SesemiError

logger = logging.getLogger(__name__)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Loads a checkpoint without executing code from it (tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise SesemiError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, KeyError) as error:
        text = str(error).strip()
        # torch explains weights_only at length; the cause is on the line after this marker.
        text = text.split("WeightsUnpickler error:", 1)[-1].strip()
        reason = text.splitlines()[0][:120] if text else type(error).__name__
        raise SesemiError(
            f"cannot load {path} safely ({reason}); it is truncated, not a checkpoint, "
            "or holds Python objects other than weights"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise SesemiError(f"{path} is not a sesemi checkpoint (it has no state_dict)")
    return checkpoint


def load_weights(
    model: nn.Module, path: str | Path, strict: bool = True, keep: Collection[str] = ()
) -> None:
    """Copies a checkpoint's weights into `model`.

    With `strict`, every weight of the model must be in the checkpoint with the same shape (to
    evaluate or resume). Without it (to fine-tune), weights whose names and shapes match are
    loaded and the rest (e.g. a new classification head) keep their initial values, as do the
    names in `keep` whatever the checkpoint holds.
    """
    state = read_checkpoint(path)["state_dict"]
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and k not in keep and own[k].shape == v.shape}
    reshaped = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    missing = sorted(k for k in own if k not in matching)
    problem = None
    if not matching:
        problem = "none of its weights belong to this model"
    elif strict and (missing or reshaped):
        example = (reshaped or missing)[0]
        problem = f"{len(missing)} weights are missing or differ in shape (e.g. {example})"
    if problem:
        raise SesemiError(
            f"checkpoint {path} does not fit this model: {problem}; it was trained with another "
            "backbone or number of classes"
        )
    model.load_state_dict(matching, strict=False)
    if missing:
        logger.info("initialized %d of %d weights from %s; kept new values for: %s",
                    len(matching), len(own), path, ", ".join(missing[:5]))
