"""Which classes a config or checkpoint read from files may build: the trust rules.

Files are data, but their configs name what to build, and Hydra imports and calls whatever a
`_target_` names (`pathlib.Path.write_text` as readily as a backbone). So everything sesemi builds
from a file passes `check_targets` first, on every `_target_` under the node (nested ones,
`_args_`, `_partial_` callables included):

1. The `_target_` is a plain dotted name (no part starting with `_`, no `${...}`: the configs
   sesemi stores are resolved) in a trusted package: sesemi, torch, torchvision, timm, a prefix
   added with `sesemi trust add PREFIX` (`trust.json` in `config_home()`) or given as `allow=`.
   Prefixes match whole parts: `torch` trusts `torch.nn.ReLU`, not `torchx.evil`.
2. What it names, where it is defined (`torch.nn.modules.module.torch.load` is
   `torch.serialization.load`), is in the parts of those packages that build networks and
   training (`BUILDING_BLOCKS`) or under a prefix the user trusts. The rest of them reads and
   writes files, downloads or runs code (`torch.hub.load`, sesemi's commands), so it is refused.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from hydra.utils import get_object
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import OmegaConf

from sesemi.errors import SesemiError, first_line
from sesemi.logs import quiet
from sesemi.ownership import write_atomically

PACKAGES = ("sesemi", "torch", "torchvision", "timm", "pytorch_lightning")  # trusted by sesemi itself
BUILDING_BLOCKS = (
    "sesemi.models",
    "sesemi.transforms",
    "sesemi.schedulers",
    "sesemi.callbacks.ema",
    "sesemi.callbacks.channels_last",  # not InterruptedCheckpoint: the runner adds it, with its path
    "sesemi.collation",
    "sesemi.samplers",
    "sesemi.learners.classifier",
    "torch.nn",
    "torch.optim",
    "torch.utils.data.sampler",
    "torchvision.transforms",
    "timm.layers",
    "timm.models._factory.create_model",
)
# The experiment trackers of the `logger` group, which write files and reach servers: trusted
# as a run's `loggers.<name>` only (where the runner keeps them to the run's folder), not as
# an argument of anything else.
TRACKERS = (
    "pytorch_lightning.loggers.csv_logs",
    "pytorch_lightning.loggers.tensorboard",
    "pytorch_lightning.loggers.mlflow",
    "pytorch_lightning.loggers.wandb",
)
TRACKER = re.compile(r"loggers\.[^.\[]+\._target_")
# timm.create_model's arguments that say where its weights come from: a URL, a file, a folder
WEIGHT_SOURCES = ("pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir")
MODEL_NAMES = ("name", "model_name")  # sesemi's timm backbone's, timm.create_model's
NETWORK = ("model.backbone", "model.head")  # what is built of `learner.hparams`
SCHEMA_KEYS = ("run", "data", "learner", "trainer", "loggers")  # the top-level keys of a config
BUILT = (
    *(f"learner.hparams.{key}" for key in NETWORK),
    "data.val.dataset.image_transform",
    "data.test.dataset.image_transform",
)
CONFIG_HOME_VARIABLE = "SESEMI_CONFIG_HOME"
TRUST_FILE = "trust.json"
PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def config_home() -> Path:
    """The user's sesemi config folder: `$SESEMI_CONFIG_HOME`, else `$XDG_CONFIG_HOME/sesemi`,
    else `~/.config/sesemi`."""
    if os.environ.get(CONFIG_HOME_VARIABLE):
        return Path(os.environ[CONFIG_HOME_VARIABLE]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "sesemi"


def trust_file() -> Path:
    """The file of the prefixes the user trusts (`sesemi trust add`)."""
    return config_home() / TRUST_FILE


def check_prefix(prefix: str) -> str:
    """A module prefix in its normal form (`my_project.`, as the old `allow` took it, is
    `my_project`): dotted Python names."""
    normal = prefix.removesuffix(".") if isinstance(prefix, str) else prefix
    if not isinstance(normal, str) or not PREFIX.fullmatch(normal):
        raise SesemiError(f"a trusted prefix is a dotted module path such as my_project.backbones, not {prefix!r}")
    if any(part.startswith("_") for part in normal.split(".")):
        raise SesemiError(
            f"{normal} has a private part (a name that starts with _), whose classes sesemi never builds; "
            "trust the public module path of your classes, e.g. my_project.backbones"
        )
    if _is_standard_library(normal):
        raise SesemiError(
            f"{normal} is of Python's standard library, whose classes and functions a file could use to run "
            "any command; trust the module path of your own classes, e.g. my_project.backbones"
        )
    return normal


def user_prefixes() -> list[str]:
    """The prefixes the user added with `sesemi trust add` (none without a trust file)."""
    path = trust_file()
    if not path.is_file():
        return []
    try:
        prefixes = json.loads(path.read_text(encoding="utf-8"))["trusted"]
        return [check_prefix(prefix) for prefix in prefixes]
    except (OSError, ValueError, KeyError, TypeError, SesemiError):
        raise SesemiError(
            f"{path} is not a list of trusted prefixes ({{\"trusted\": [...]}}); fix it or delete it "
            "and add them again with `sesemi trust add PREFIX`"
        ) from None


def _write(prefixes: list[str]) -> None:
    write_atomically(trust_file(), json.dumps({"trusted": prefixes}, indent=1) + "\n")


def add(prefix: str) -> list[str]:
    """Trusts the classes under `prefix` from now on (`sesemi trust add`); returns all the user trusts."""
    prefix = check_prefix(prefix)
    prefixes = user_prefixes()
    if prefix not in prefixes:
        prefixes = sorted([*prefixes, prefix])
        _write(prefixes)
    return prefixes


def remove(prefix: str) -> list[str]:
    """No longer trusts `prefix` (what `sesemi trust remove` does); returns what is left."""
    prefix = check_prefix(prefix)
    prefixes = user_prefixes()
    if prefix not in prefixes:
        if _under(prefix, PACKAGES):
            raise SesemiError(f"{prefix} is trusted by sesemi itself, not by {trust_file()}; it cannot be removed")
        raise SesemiError(f"{prefix} is not trusted; `sesemi trust list` shows what is")
    prefixes.remove(prefix)
    _write(prefixes)
    return prefixes


def _under(name: str, prefixes: Sequence[str]) -> bool:
    """Whether `name` is one of `prefixes` or inside one, by whole dotted parts."""
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _home(obj: Any) -> str | None:
    """Where `obj` is defined: `module.qualname` of a class, function or method, the name of a
    module, else (an instance, a partial) that of its type."""
    if hasattr(obj, "__qualname__") and hasattr(obj, "__module__"):
        return f"{obj.__module__}.{obj.__qualname__}" if obj.__module__ else None
    if isinstance(obj, type(os)):
        return obj.__name__
    return _home(type(obj))


def _is_standard_library(prefix: str) -> bool:
    """Whether a module path is of Python's standard library (`os.system`, `subprocess.run`: any
    command), which is never trusted."""
    return prefix.split(".")[0] in sys.stdlib_module_names


def _hint(prefix: str) -> str:
    if _is_standard_library(prefix):
        return "it is of Python's standard library, which a file could use to run any command: do not load it"
    return (
        f"if you trust its publisher, run `sesemi trust add {prefix}` (or, for one call, pass "
        f"--allow {prefix}; allow=[{prefix!r}] in Python)"
    )


def trusted_prefixes(allow: Sequence[str] = ()) -> tuple[str, ...]:
    """The prefixes trusted besides sesemi's own: `allow` and the user's (`sesemi trust add`)."""
    return (*(check_prefix(prefix) for prefix in allow), *user_prefixes())


def check_target(target: Any, allow: Sequence[str] = (), source: str = "the model's config") -> None:
    """Refuses a `_target_` outside the trust rules; `source` names what holds it, for the message."""
    _check_target(target, trusted_prefixes(allow), source)


def _check_target(target: Any, trusted: tuple[str, ...], source: str, blocks: tuple[str, ...] = BUILDING_BLOCKS) -> None:
    if not isinstance(target, str) or not PREFIX.fullmatch(target) or "." not in target:
        raise SesemiError(f"{source} has a _target_ that is not a dotted name ({str(target)[:80]!r}); refusing to build it")
    module = target.rpartition(".")[0]
    if not _under(target, (*PACKAGES, *trusted)) or any(part.startswith("_") for part in target.split(".")):
        raise SesemiError(f"{source} builds {target}, which sesemi does not trust; {_hint(module)}")
    try:
        with quiet("hydra.utils", logging.CRITICAL):  # get_object logs every failure before raising it
            home = _home(get_object(target))
    except Exception as error:
        reason = str(error.__cause__ or error).strip().splitlines()[-1][:120]
        raise SesemiError(f"{source} builds {target}, which cannot be imported ({reason})") from None
    if home is None or not _under(home, (*blocks, *trusted)):
        where = "" if home == target else f" (it is {home})"
        raise SesemiError(
            f"{source} builds {target}{where}, which is none of the network and training classes sesemi "
            f"trusts; {_hint((home or target).rpartition('.')[0])}"
        )


def _plain(config: Any) -> Any:
    """A config as plain containers, interpolations left as their `${...}` text."""
    return OmegaConf.to_container(config, resolve=False) if OmegaConf.is_config(config) else config


def _nodes(node: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """`(path, key, value)` of every entry under `node` (plain containers)."""
    entries = node.items() if isinstance(node, Mapping) else enumerate(node)
    for key, value in entries:
        where = f"{path}.{key}" if isinstance(node, Mapping) else f"{path}[{key}]"
        where = where.removeprefix(".")
        yield where, key, value
        if isinstance(value, Mapping | list | tuple):
            yield from _nodes(value, where)


def _select(node: Any, key: str, source: str) -> Any:
    """The value at the dotted `key` of plain containers (None when missing), refusing an
    interpolation on the way, which could stand for anything."""
    for part in key.split("."):
        if isinstance(node, str) and "${" in node:
            break
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    if isinstance(node, str) and "${" in node:
        raise SesemiError(f"{source} has an interpolation where {key} should be ({node[:80]}); refusing to build from it")
    return node


def check_targets(
    config: Any,
    allow: Sequence[str] = (),
    keys: Sequence[str] | None = None,
    source: str = "the model's config",
) -> None:
    """Refuses (one-line SesemiError) a config that would build anything outside the trust rules.

    Args:
        config: A run's config, a checkpoint's hyper-parameters (a plain mapping), or a node.
        allow: Module prefixes trusted besides sesemi's and the user's, e.g. `["my_project"]`.
        keys: The dotted keys of what will be built (`NETWORK` of a checkpoint's
            hyper-parameters, `BUILT` of a run's config); None checks the whole config.
        source: What the config is, for the message, e.g. `runs/x/config.yaml`.
    """
    plain = _plain(config)
    trusted = trusted_prefixes(allow)
    for path in keys if keys is not None else [""]:
        node = plain if path == "" else _select(plain, path, source)
        if not isinstance(node, Mapping | list | tuple):
            continue
        entries = [(path, None, node), *_nodes(node, path)]
        for where, key, value in entries:
            _refuse_interpolation(where, value, source)
            if key == "_target_":
                _check_target(value, trusted, source, (*BUILDING_BLOCKS, *TRACKERS) if TRACKER.fullmatch(where) else BUILDING_BLOCKS)
        for where, _, value in entries:  # the classes are trusted: now what they are given
            if isinstance(value, Mapping) and not _under(value.get("_target_", ""), trusted):
                _check_arguments(where, value, source)


def _fetching(key: Any, value: Any) -> bool:
    """Whether an argument of a trusted class is one the configs sesemi stores never hold: a
    positional one (`_args_`, where `pretrained` would pass unseen), one of timm's weight sources,
    or a model name that is a place (timm reads `local-dir:PATH/config.json` into the model's
    arguments; `hf-hub:` names are timm's own)."""
    if key == "_args_" or key in WEIGHT_SOURCES:
        return True
    return key in MODEL_NAMES and isinstance(value, str) and ":" in value and not value.startswith("hf-hub:")


def _check_arguments(where: str, node: Mapping[str, Any], source: str) -> None:
    """Refuses the `_fetching` arguments of the class a node builds."""
    if "_target_" not in node:
        return
    for key, value in node.items():
        if not _fetching(key, value):
            continue
        if key in MODEL_NAMES:
            raise SesemiError(f"{source} names the model {value!r} (at {where or 'the top'}), a place to read it from; refusing to build from it")
        raise SesemiError(
            f"{source} gives {node['_target_']} the argument {key} (at {where or 'the top'}), which sesemi never "
            "stores: it could pass pretrained=True unseen or fetch files from elsewhere; refusing to build from it"
        )


def check_resolved(config: Any, source: str) -> None:
    """Refuses a stored config with an interpolation anywhere: sesemi stores configs resolved,
    and resolving one from a file could read the environment (`${oc.env:...}`) into a report."""
    for where, _, value in _nodes(_plain(config), ""):
        _refuse_interpolation(where, value, source)


def _refuse_interpolation(where: str, value: Any, source: str) -> None:
    if isinstance(value, str) and "${" in value:
        raise SesemiError(
            f"{source} has an interpolation at {where} ({value[:80]}); the configs sesemi stores are "
            "resolved, so it was edited: refusing to build from it"
        )


def check_saved_overrides(overrides: Sequence[str], allow: Sequence[str] = (), source: str = "the overrides") -> None:
    """Refuses Hydra overrides read from a file (`key=value`) whose values would build anything
    outside the trust rules, or read other values or the environment (`${...}`), as
    `check_targets` refuses them in a config; sweeps (`a=1,2`) too, since one run reads them.
    Hydra's own settings (`hydra.searchpath=[...]` would add the file's folder of configs) and
    config groups other than sesemi's, with its options, are refused: configs come from sesemi."""
    from sesemi.config import catalog

    try:
        parsed = OverridesParser.create().parse_overrides([str(override) for override in overrides])
    except OverrideParseException as error:
        raise SesemiError(f"{source} holds overrides Hydra cannot read ({first_line(error)})") from None
    groups = catalog.groups()
    for override in parsed:
        if override.is_sweep_override():
            raise SesemiError(f"{source} holds a sweep ({override.input_line}); refusing to build from it")
        key, value = override.key_or_group, override.value()
        whole = key in SCHEMA_KEYS and isinstance(value, dict)  # `trainer={...}`, checked below
        # a config group's option (`backbone=resnet18`, `logger=[a,b]`); deleting one (`~backbone`) adds nothing
        chooses = ("." not in key and not whole or "/" in key) and not override.is_delete()
        options = value if isinstance(value, list) else [value]
        built_in = key in groups and all(str(option) in catalog.configs(key) for option in options)
        # `@` places a config elsewhere (a tracker as a dataset); Hydra's settings add configs
        if key.split(".")[0].split("/")[0] == "hydra" or override.package is not None or chooses and not built_in:
            raise SesemiError(
                f"{source} holds {override.input_line}, which is not a setting or a built-in config of "
                "sesemi's; refusing to build from it"
            )
        if override.value_type is not None:  # `a.b._target_=x` as {"a": {"b": {"_target_": "x"}}}
            nested = value
            for part in reversed(key.split(".")):
                nested = {part: nested}
            check_targets(nested, allow, source=source)
            for where, name, item in _nodes(nested, ""):  # set apart from the `_target_` they go to
                if _saved_argument(where, name, item):
                    raise SesemiError(
                        f"{source} holds {override.input_line}, which sets {where}: it could pass pretrained=True "
                        "unseen or have timm fetch or read files; refusing to build from it"
                    )


def _saved_argument(where: str, name: Any, value: Any) -> bool:
    """Whether a saved override sets a `_fetching` argument, with or without the `_target_` it
    goes to (one a built-in config gives, or another override): outside `data.`, whose data sets
    take a `cache_dir` of their own, and for names, in `learner.`, where the network is built."""
    if name == "cache_dir" and where.startswith("data.") or name in MODEL_NAMES and not where.startswith("learner."):
        return False
    return _fetching(name, value)


def instantiate(config: Any, allow: Sequence[str] = (), source: str = "the model's config", **kwargs: Any) -> Any:
    """`hydra.utils.instantiate(config, **kwargs)` once `check_targets` passed on all of it."""
    plain = _plain(config)
    check_targets(plain, allow, source=source)
    return hydra_instantiate(plain, **kwargs)
