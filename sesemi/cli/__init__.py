"""Command-line entry points and their Python twins.

`open_sesemi` (open_sesemi.py) is the Hydra training app; `sesemi` (app.py) is the lifecycle
command line, whose commands are these functions (functions.py):

    import sesemi.cli
    sesemi.cli.fetch("digits")
    sesemi.cli.train("digits", overrides=["run.seed=1"])
"""

from sesemi.cli.functions import (
    create,
    fetch,
    group,
    inference,
    list,
    load,
    models,
    postprocess,
    preprocess,
    publish,
    rm_failed,
    rm_states,
    show,
    train,
)

__all__ = [
    "create",
    "fetch",
    "group",
    "inference",
    "list",
    "load",
    "models",
    "postprocess",
    "preprocess",
    "publish",
    "rm_failed",
    "rm_states",
    "show",
    "train",
]
