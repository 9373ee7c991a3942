"""Safe checkpoint reading (`weights_only=True`) with errors a user can act on, and checksums.

Every checkpoint sesemi's trainer writes gets its SHA-256 in a file beside it,
`<name>.ckpt.sha256` (in the format of `sha256sum`, so `sha256sum -c best.ckpt.sha256` checks it
too); reading a checkpoint checks it, so that a file damaged on disk or in transfer is refused
instead of loaded. A checkpoint without one (earlier releases, other tools) loads as before.

The checksum file also records the checkpoint's inode, size and time (a comment line
`sha256sum` skips): they prove that sesemi saved that very file, which a copy (`cp`, a new
inode) or a checksum a user wrote does not, so `sesemi rm-states` deletes only the checkpoints
sesemi saved.
"""

from __future__ import annotations

import logging
import pickle
import random
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sesemi.errors import SesemiError
from sesemi.ownership import checksum_path, sha256
from sesemi.results import RunResult, read_regular

logger = logging.getLogger(__name__)
DATAMODULE_STATE = "SESEMIDataModule"  # where Lightning keeps the data module's `state_dict` in a checkpoint

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def verify_checksum(path: str | Path) -> None:
    """Checks checkpoint `path` against the SHA-256 recorded when it was saved, if there is one.

    Raises:
        SesemiError: The file changed since it was saved, or its checksum file is not one.
    """
    recorded_at = checksum_path(path)
    try:
        fields = read_regular(recorded_at).split()  # a FIFO put there would block the read
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError):
        fields = []
    if not fields or not _SHA256.match(fields[0]):
        raise SesemiError(f"{recorded_at} holds no SHA-256; delete it to load {path} without a check")
    if sha256(path) != fields[0].lower():
        raise SesemiError(
            f"checkpoint {path} changed since it was saved (its SHA-256 is not the one in {recorded_at}); "
            f"it is damaged: use another checkpoint, or delete {recorded_at.name} to load it anyway"
        )


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """Loads a checkpoint without executing code from it (tensors and plain containers only);
    with `mmap`, its tensors are mapped from the file rather than read.

    Raises:
        SesemiError: The file is missing, changed since it was saved (its recorded SHA-256),
            truncated, not a checkpoint, or holds Python objects other than weights.
    """
    path = Path(path)
    if not path.is_file():
        raise SesemiError(f"checkpoint {path} does not exist")
    verify_checksum(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, LookupError) as error:  # a text file: IndexError
        # torch explains weights_only at length around the cause: the object it refused to build,
        # else the line after this marker. A text file fails on a lookup whose message is a bare
        # number, which says nothing.
        text = "" if isinstance(error, LookupError) else str(error).split("WeightsUnpickler error:", 1)[-1].strip()
        named = re.search(r"GLOBAL ([\w.]+)", text)
        if isinstance(error, EOFError):
            reason = "it ends too early"
        elif named:
            reason = f"it names the Python object {named[1]}"
        else:
            reason = text.splitlines()[0][:120] if text else ""
        raise SesemiError(
            f"cannot load {path} safely{f' ({reason})' if reason else ''}; it is truncated, not a checkpoint, "
            "or holds Python objects other than weights"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise SesemiError(f"{path} is not a sesemi checkpoint (it has no state_dict)")
    return checkpoint


CLASS_SPECIFIC = ("head.", "loss_heads.")  # weights whose outputs mean the classes of their run


def load_weights(
    model: nn.Module,
    path: str | Path,
    strict: bool = True,
    keep: Collection[str] = (),
    classes: list[str] | None = None,
) -> None:
    """Copies a checkpoint's weights into `model`; the names in `keep` are neither loaded nor
    required (they keep their initial values).

    With `strict`, every other weight of the model must be in the checkpoint with the same
    shape (to evaluate or resume). Without it (to fine-tune), weights whose names and shapes
    match are loaded and the rest (e.g. a new classification head) keep their initial values.

    `classes` are the model's class names: a checkpoint that records other ones (in another
    order too) is refused with `strict`, as its scores would count one class as another; without,
    its classification head and loss heads are not loaded, only the backbone.
    """
    checkpoint = read_checkpoint(path)
    state = checkpoint["state_dict"]
    own = model.state_dict()
    theirs = saved_classes(checkpoint, path) if classes is not None else None  # results.json is not read to resume
    if theirs is not None and list(theirs) != list(classes):
        if strict:
            raise SesemiError(
                f"checkpoint {path} was trained on the classes {_listed(theirs)}, not on this data's "
                f"{_listed(classes)}; evaluate it on data with its classes"
            )
        keep = {*keep, *(name for name in own if name.startswith(CLASS_SPECIFIC))}
        logger.info("the classes of %s are not this run's: its backbone is loaded, not its classification head", path)
    matching = {k: v for k, v in state.items() if k in own and k not in keep and own[k].shape == v.shape}
    reshaped = sorted(k for k in state if k in own and k not in keep and own[k].shape != state[k].shape)
    not_loaded = sorted(k for k in own if k not in matching)
    excused = {*keep, *_added_since(model, state)}
    missing = [k for k in not_loaded if k not in excused]
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
    if not_loaded and not strict:
        logger.info("initialized %d of %d weights from %s; kept new values for: %s",
                    len(matching), len(own), path, ", ".join(not_loaded[:5]))


def _added_since(model: nn.Module, state: dict[str, Any]) -> set[str]:
    """The state of `model`'s modules that checkpoints of earlier releases lack as a whole
    (`STATE_ADDED_LATER`, e.g. `PoolStatistics`): kept at its initial values when absent."""
    return {
        f"{name}.{key}"
        for name, module in model.named_modules()
        if getattr(module, "STATE_ADDED_LATER", False) and not any(k.startswith(f"{name}.") for k in state)
        for key in module.state_dict()
    }


def saved_classes(checkpoint: dict[str, Any], path: str | Path) -> list[str] | None:
    """The class names a checkpoint was trained on: as it records them, else as the
    `results.json` of its run folder does (a checkpoint of an earlier release); None if neither."""
    state = checkpoint.get(DATAMODULE_STATE)
    classes = state.get("classes") if isinstance(state, dict) else None  # a file's: any shape
    if classes is None and Path(path).parent.name == "checkpoints":
        result = RunResult.read_if_whole(Path(path).parent.parent)
        classes = result.classes if result is not None else None
    return list(classes) if isinstance(classes, list) and all(isinstance(c, str) for c in classes) else None


def _listed(classes: list[str]) -> str:
    shown = ", ".join(classes[:6])
    return shown + (f", ... ({len(classes)} in all)" if len(classes) > 6 else "")


RNG_STATES = "sesemi_rng_states"  # the checkpoint key of the random states (`random_states`)


def random_states() -> dict[str, Any]:
    """The state of torch's (CPU and CUDA), NumPy's and Python's global random generators, in
    types a `weights_only` load reads: a resumed run restores them (`set_random_states`) and
    draws what the unbroken run drew after the save (dropout, say)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_random_states(states: dict[str, Any]) -> None:
    """Restores what `random_states` recorded (CUDA's only on as many GPUs as it recorded)."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
