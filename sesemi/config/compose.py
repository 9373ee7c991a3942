"""Composing a config: the one way every entry point turns a name and overrides into a config.

    config = sesemi.compose("digits", ["method=freematch", "run.seed=1"])
    config = sesemi.compose("custom", config_dir="configs")   # a project's own folder

`open_sesemi` (a Hydra app) composes the same way, through `@hydra.main`, and then checks the
result with `validate`, as `compose` does.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import logging
import os
import re
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml
from hydra.errors import OverrideParseException
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from sesemi.config import catalog, migration
from sesemi.config.structs import OPEN_RANGES, RANGE, SESEMIConfig
from sesemi.errors import SesemiError, first_line, printable
from sesemi.logs import quiet

logger = logging.getLogger(__name__)

METHOD_OVERRIDE = re.compile(r"^\+{0,2}method=")
LENGTH_FIELDS = ("run.num_iterations", "run.num_epochs", "run.time_budget")  # how long a run trains


def one_length(overrides: Sequence[str]) -> list[str]:
    """The overrides, with the other fields of a run's length set to null when one is given.

    The configs give one of `LENGTH_FIELDS` (`time_budget` replaces the others; `num_epochs` with
    `num_iterations` is refused); an override of one replaces the configs' length, as an override
    replaces any value: `-cn digits run.num_epochs=3` trains 3 epochs, not digits' 400 iterations.
    """
    overrides = list(overrides)
    pairs = (override.lstrip("+").partition("=") for override in overrides)
    given = {key for key, _, value in pairs if key in LENGTH_FIELDS and value != "null"}
    if len(given) > 1:  # the budget would silently win over a length given beside it
        raise SesemiError(f"give the run one length, not {' and '.join(sorted(given))}")
    return overrides + [f"{key}=null" for key in LENGTH_FIELDS if given and key not in given]


def expand_alias(name: str, overrides: Sequence[str], config_dir: str | Path | None = None) -> tuple[str, list[str]]:
    """The data config and overrides an earlier config name stands for (see `catalog.alias`).

    A config of that name in `config_dir`, or a built-in one, is itself and not an alias; a
    `method=` override given by the user wins over the alias's method.
    """
    overrides = list(overrides)
    stem = name.removesuffix(".yaml")
    group, slash, option = stem.rpartition("/")
    if slash and group in catalog.groups():  # `sesemi train method/fixmatch`
        raise SesemiError(
            f"{stem} is a {group} config, which a data config takes: e.g. `sesemi train digits {group}={option}` "
            "(`sesemi list` shows the data configs)"
        )
    if stem in catalog.data_configs() or (config_dir and (Path(config_dir) / f"{stem}.yaml").is_file()):
        return name, overrides
    found = catalog.alias(stem)
    if found is None:
        return name, overrides
    data, method = found
    if not any(METHOD_OVERRIDE.match(o) for o in overrides):
        overrides.insert(0, f"method={method}")
    return data, overrides


def shadowed_configs(config_dir: str | Path) -> list[str]:
    """The configs of `config_dir` that Hydra never reads, as it finds a built-in of that name first."""
    root = Path(config_dir)
    builtin = {None: catalog.configs()} | {group: catalog.configs(group) for group in catalog.groups()}
    shadowed = []
    for path in sorted(root.rglob("*.yaml")):
        group, _, stem = path.relative_to(root).with_suffix("").as_posix().rpartition("/")
        if stem in builtin.get(group or None, {}):
            shadowed.append(f"{group}/{stem}" if group else stem)
    return shadowed


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuses overrides given as one string, which would be read character by character."""
    if isinstance(overrides, str):
        raise SesemiError(f"overrides are a list of strings, e.g. [{overrides!r}], not one string")
    for override in overrides:
        if not isinstance(override, str):
            raise SesemiError(f"overrides are strings such as 'run.seed=1', not {override!r} ({type(override).__name__})")


def check_group_choices(overrides: Sequence[str]) -> None:
    """Refuses a list for a config group (`method=[fixmatch,supervised]`), which Hydra would
    merge into one config: a run takes one method, backbone, ...; a sweep runs each."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from sesemi.config import catalog

    groups = set(catalog.groups()) - {"logger"}  # trackers: several at once
    try:
        parsed = OverridesParser.create().parse_overrides([str(o) for o in overrides if str(o).partition("=")[0].lstrip("+~") in groups])
    except Exception:  # noqa: BLE001 (composing says what is wrong with an override that cannot be read)
        return
    for override in parsed:
        if not override.is_sweep_override() and isinstance(override.value(), list):
            raise SesemiError(
                f"{override.input_line}: a run takes one {override.key_or_group}; to run each, sweep with "
                f"open_sesemi -m {override.key_or_group}={','.join(map(str, override.value()))}"
            )


def check_config_dir(config_dir: str | Path | None) -> None:
    """Fails if `config_dir` is no folder, or holds a config with a built-in's name: Hydra would
    read one of the two where the other was meant."""
    if config_dir is None:
        return
    if not Path(config_dir).is_dir():
        raise SesemiError(f"config folder {str(config_dir)!r} not found; check the path given with -cd (config_dir in Python)")
    shadowed = shadowed_configs(config_dir)
    if shadowed:
        name = shadowed[0]
        raise SesemiError(
            f"{Path(config_dir) / name}.yaml has the name of a built-in config; rename it "
            f"(e.g. {name.rpartition('/')[0] + '/' if '/' in name else ''}my_{name.rpartition('/')[2]}.yaml)"
        )


def compose(name: str | os.PathLike, overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> DictConfig:
    """Composes a config, as `open_sesemi -cn NAME -cd CONFIG_DIR OVERRIDES...` would.

    Args:
        name: A built-in config (`sesemi list`), an earlier release's name for one (e.g.
            `fixmatch`, `digits_fixmatch`), a config in `config_dir`, or without one a config
            file (`configs/custom.yaml`: its folder is then the config folder).
        overrides: Hydra overrides, e.g. `method=freematch`, `run.seed=1`, `backbone=resnet18`.
        config_dir: A folder of your own configs, searched after the built-in ones.

    Returns:
        The config, checked against the schema; `${sesemi:...}` values are filled when it runs.

    Raises:
        SesemiError: An unknown config, group option or key, a value of the wrong type, a
            YAML error, a `_target_` that does not exist: in one line.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from sesemi.config import register_configs, register_resolvers

    name = os.fspath(name)  # a config file may be given as a Path
    check_overrides(overrides)
    check_group_choices(overrides)
    if config_dir is None and name.endswith(".yaml"):  # `configs/custom.yaml`
        if Path(name).is_file():
            config_dir, name = Path(name).parent, Path(name).stem
        elif "/" in name.replace(os.sep, "/"):
            raise SesemiError(f"config file {name} does not exist; check the path (built-in configs: `sesemi list`)")
    check_config_dir(config_dir)
    name, overrides = expand_alias(name, one_length(overrides), config_dir)
    register_configs()
    register_resolvers()
    GlobalHydra.instance().clear()  # a run in this process may leave Hydra initialized
    # Hydra reads the config named here from the folder it starts in, and the other ones from
    # hydra.searchpath too: start in the folder that holds it.
    if config_dir and (Path(config_dir) / f"{name.removesuffix('.yaml')}.yaml").is_file():
        start = initialize_config_dir(str(Path(config_dir).absolute()), version_base="1.3")
        search = ["hydra.searchpath=[pkg://sesemi.configs]"]
    else:
        start = initialize_config_module("sesemi.configs", version_base="1.3")
        search = [f"hydra.searchpath=[file://{Path(config_dir).absolute()}]"] if config_dir else []
    try:
        with start:
            config = hydra_compose(name, overrides=[*search, *overrides])
    except Exception as error:
        message = hydra_error(error, config_dir)
        if message is None:
            raise
        raise SesemiError(message) from None
    finally:
        GlobalHydra.instance().clear()
    validate(config)
    return config


def misshapen_key(path: Path) -> str | None:
    """The first key of a config file whose value is a list or a single value where the schema
    has a mapping (`data: {train: [x]}`): OmegaConf's merge error names none."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None

    def walk(value: Any, hint: Any, prefix: str) -> str | None:
        for key, item in value.items() if isinstance(value, dict) else ():
            child = _member_hint(hint, str(key))
            if child is None:
                continue
            if item is not None and not isinstance(item, dict):
                return f"{prefix}{key}"
            if found := walk(item, child, f"{prefix}{key}."):
                return found
        return None

    return walk(data, SESEMIConfig, "")


def _member_hint(hint: Any, key: str) -> Any:
    """The type a mapping of type `hint` (a schema dataclass or `dict[str, T]`, maybe optional)
    holds at `key`, when that is a mapping too; else None."""
    options = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    for option in options:
        if is_dataclass(option):
            member = get_type_hints(option).get(key)
        elif get_origin(option) is dict:
            member = get_args(option)[1]
        else:
            continue
        members = get_args(member) if get_origin(member) in (Union, UnionType) else (member,)
        if any(is_dataclass(m) or get_origin(m) is dict or m is dict for m in members):
            return member
    return None


def missing_config(name: str, folders: Sequence[str]) -> str:
    """The message for a config that is neither built in nor in the user's config `folders`,
    with the closest name there is."""
    names = {*catalog.data_configs()}
    for folder in map(Path, folders):
        names |= {path.relative_to(folder).with_suffix("").as_posix() for path in folder.rglob("*.yaml")}
    close = difflib.get_close_matches(name.removesuffix(".yaml"), sorted(names), n=1)
    where = " or ".join([*(f"{folder}/" for folder in folders), "the built-in ones (`sesemi list`)"])
    return f"no config {name!r} in {where}" + (f"; did you mean {close[0]}?" if close else "")


def hydra_error(error: BaseException, config_dir: str | Path | None = None) -> str | None:
    """One line for an error Hydra or OmegaConf raised while composing, or None for a bug; with
    the user's `config_dir`, a value of the wrong shape in one of its configs is named."""
    message = _hydra_message(error)
    if message and (shaped := re.match(r"in the config (\S+): ", message)) and config_dir is not None:
        key = misshapen_key(Path(config_dir) / f"{shaped[1]}.yaml")
        if key and f"{key}:" not in message:
            message = message.replace(shaped[0], f"{shaped[0]}{key} must be a mapping; ", 1)
    return message


def _hydra_message(error: BaseException) -> str | None:
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException
    from yaml import MarkedYAMLError, YAMLError

    if isinstance(error, MissingConfigException):
        earlier = migration.renamed_config(error.missing_cfg_file or "")
        if earlier:
            return earlier
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        options = []
        if "Available options" in str(error):
            start = next(i for i, line in enumerate(lines) if line.startswith("Available options"))
            options = [line for line in lines[start + 1 :] if not line.startswith(("Config search path", "provider="))]
        if str(error).startswith("Cannot find primary config"):
            return missing_config(error.missing_cfg_file or "", re.findall(r"path=file://(\S+)", str(error)))
        group, _, name = (error.missing_cfg_file or "").rpartition("/")
        if group in catalog.groups() and not options:  # a list (`logger=[csv,mlflow]`): Hydra names none
            options = list(catalog.configs(group))
        if group and options:  # `method=fixmach`
            close = difflib.get_close_matches(name, options, n=1)
            guess = f"did you mean {close[0]}? " if close else ""
            return f"no {group} config {name!r}; {guess}choose one of: {', '.join(options)}"
        hint = f"; choose one of: {', '.join(options)}" if options else "; see `sesemi list`"
        return lines[0].replace("Check that it's in your config search path.", "").strip() + hint
    if isinstance(error, MarkedYAMLError):
        mark = error.context_mark or error.problem_mark
        where = f"{mark.name}, line {mark.line + 1}" if mark else "a config file"
        return f"YAML syntax error in {where}: {', '.join(filter(None, (error.context, error.problem)))}"
    if isinstance(error, OverrideParseException):  # `run.seed`, `"a=1 b=2"`, `run.seed=[1`, `x=~/data`
        return (
            f"cannot read the override '{printable(error.override)}' ({_parse_problem(error)}); write each as key=value, "
            "one argument each (quote a value that holds spaces or other special characters: key='...')"
        )
    if str(error).startswith("Ambiguous value for argument"):  # `method=fixmatch,flexmatch`
        return (
            f"{first_line(error)}: write a list as key=[a,b] and a string as key='a,b'; to run each "
            "value, sweep with open_sesemi -m"
        )
    if isinstance(error, ValueError) and str(error).startswith("Config group override must be"):  # `backbone=null`
        return (
            "a config group cannot be set to null by an override; remove its config with ~GROUP "
            "(e.g. '~backbone', then +learner.hparams.model.backbone._target_=...), or in a config's "
            "defaults list with `override GROUP: null`"
        )
    if isinstance(error, AssertionError) and str(error) == "Unexpected type: None":  # OmegaConf, under a null node
        frames = (frame for frame, _ in traceback.walk_tb(error.__traceback__))  # Hydra's, applying `override`
        overrides = (frame.f_locals.get("override") for frame in frames)
        line = next((override.input_line for override in overrides if hasattr(override, "input_line")), "an override")
        return (
            f"{line} sets a key inside a node that is null (e.g. data.test): set the node whole, "
            "e.g. 'data.test=${data.val}', or in a config file"
        )
    if isinstance(error, ValueError) and str(error).startswith("Only one of --run, --multirun"):
        return str(error)  # Hydra's command line, e.g. `-m` with `--cfg job`
    if not isinstance(error, HydraException | OmegaConfBaseException | YAMLError):
        return None
    message = re.sub(r"^In '(.+)': \w+ raised while composing config:$", r"in the config \1", first_line(error))
    cause = error.__cause__ or error.__context__
    schema = getattr(cause, "object_type", None)
    if isinstance(cause, ConfigAttributeError | ConfigKeyError) and is_dataclass(schema) and cause.full_key:
        overridden = re.match(r"Could not override '([^']+)'", message)  # the whole key, not its first part
        key = overridden[1] if overridden and overridden[1].startswith(cause.full_key) else cause.full_key
        return unknown_key(key, [f.name for f in fields(schema)])
    if cause is not None and isinstance(cause, OmegaConfBaseException | YAMLError | ValueError):
        detail = first_line(cause)
        full_key = getattr(cause, "full_key", None)
        if full_key and full_key not in detail and full_key not in message:
            detail = f"{full_key}: {detail}"
        if detail != message:  # OmegaConf raises some errors from a copy of themselves
            message = f"{message.rstrip('.')}: {detail}"
    if getattr(error, "full_key", None) and error.full_key not in message:
        message = f"{error.full_key}: {message}"  # `run.data_root: Interpolation key 'run.nope' not found`
    append = re.search(r"To append to your config use (\S+)", str(error))
    if append:  # a key an open mapping (trainer, a dataset's options) does not have yet
        keys = getattr(getattr(cause, "parent_node", None), "keys", list)()
        close = difflib.get_close_matches(str(getattr(cause, "key", "")), [str(key) for key in keys], n=1)
        where = str(getattr(cause, "full_key", "")).rpartition(".")[0]
        guess = f"did you mean {where + '.' if where else ''}{close[0]}? To add a new key" if close else "to add it"
        message = f"{message.rstrip('.')}; {guess}, write {append[1]}"
    return message


def _parse_problem(error: OverrideParseException) -> str:
    """What Hydra's override grammar found wrong, from its message: its first line, or the
    character its lexer points at with a caret on the next."""
    lines = error.message.splitlines()[:-1]  # the last one links the grammar
    lexer = "LexerNoViableAltException: "
    if len(lines) > 1 and lines[0].startswith(lexer) and "^" in lines[1]:
        column = lines[1].index("^") - len(lexer)
        if 0 <= column < len(error.override):
            return f"'{printable(error.override[column])}' cannot stand there unquoted"
    return next((line for line in lines if not line.startswith(("Error parsing", lexer))), "it is not key=value")


def validate(config: DictConfig) -> None:
    """Checks a composed config beyond what Hydra checks.

    Refuses keys the schema does not have, e.g. `+run.num_iteration=5` (Hydra adds a key given
    with `+` to any node; only the open mappings, such as `trainer` or a dataset's options, take
    keys of their own), and `_target_`s that name nothing importable. Keys, classes and
    arguments of sesemi 0.3 are refused with what to write now (`sesemi.config.migration`).
    """
    for key, known in _unknown_keys(config):
        raise SesemiError(unknown_key(key, known))
    check_ranges(config)
    check_datasets(config)
    for key, node, target in _targets(config):
        earlier = migration.renamed_target(key, target)
        if earlier:
            raise SesemiError(earlier)
        problem = _import_problem(target)
        if problem:
            raise SesemiError(f"{key} names {target}, which {problem}")
        arguments = dict(node.items_ex(resolve=False))
        earlier = migration.renamed_argument(key.removesuffix("._target_"), arguments, get_object(target))
        if earlier:
            raise SesemiError(earlier)


def check_datasets(config: DictConfig) -> None:
    """Refuses a loader without a data set, e.g. the unlabeled loader after `data.unlabeled=null`."""
    data = config.get("data") or {}
    loaders = [(f"data.train.{name}", loader) for name, loader in (data.get("train") or {}).items()]
    loaders += [(f"data.{name}", data.get(name)) for name in ("val", "test")]
    for key, loader in loaders:
        if loader is None or loader.get("dataset") is not None:
            continue
        if "data.unlabeled" in str(OmegaConf.to_container(loader, resolve=False).get("dataset")):
            raise SesemiError(
                f"{key} reads the unlabeled pool, and data.unlabeled is null: give data.unlabeled a data set "
                "(see docs/data.md), or train on the labels alone with method=supervised"
            )
        raise SesemiError(f"{key} has no dataset: give it one (e.g. {key}.dataset.name=image_folder) or set {key}=null")


def check_ranges(config: DictConfig) -> None:
    """Refuses numbers outside their field's range (a negative batch size, a threshold above 1),
    naming the field and the range; values still to be interpolated are checked once resolved."""
    for key, value, (low, high, low_included) in _ranged_values(config):
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        below = value < low if low_included else value <= low
        if (low is not None and below) or (high is not None and value > high):
            if high is None:
                allowed = f"at least {low}" if low_included else f"greater than {low}"
            else:
                allowed = f"between {low} and {high}"
            raise SesemiError(f"{key} must be {allowed}, not {value}")


def _ranged_values(node: DictConfig, prefix: str = "") -> Iterator[tuple[str, object, tuple]]:
    """`(key, value, range)` of every set, non-interpolated value that has a range."""
    schema = OmegaConf.get_type(node)
    ranges = {f.name: f.metadata[RANGE] for f in fields(schema) if RANGE in f.metadata} if is_dataclass(schema) else {}
    for key, value in node.items_ex(resolve=False):
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, DictConfig):
            if not (value._is_none() or value._is_missing()):
                yield from _ranged_values(value, path)
            continue
        if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
            continue
        bounds = ranges.get(key) or next(
            (r for pattern, r in OPEN_RANGES.items() if fnmatch.fnmatchcase(path, pattern)), None
        )
        if bounds is not None and value is not None:
            yield path, value, bounds


def _import_problem(target: str) -> str | None:
    """Why `target` cannot be imported, with the closest name its module has; None if it can."""
    try:
        with quiet("hydra.utils", logging.CRITICAL):  # get_object logs every failure before raising it
            get_object(target)
        return None
    except Exception as error:
        reason = str(error.__cause__ or error).strip().splitlines()[-1]
    module_name, _, name = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception:
        return f"cannot be imported ({reason})"
    names = {*dir(module), *getattr(module, "__all__", ())}
    close = difflib.get_close_matches(name, [n for n in names if not n.startswith("_")], n=1)
    return f"does not exist; did you mean {module_name}.{close[0]}?" if close else f"does not exist ({reason})"


def unknown_key(key: str, known: Sequence[str]) -> str:
    """The message for a key the schema does not have: what to write now for a key of sesemi
    0.3's, else the closest key it has."""
    earlier = migration.renamed_key(key)
    if earlier:
        return earlier
    group, _, field = key.partition(".")
    if group in catalog.groups() and group not in known:  # `backbone.pretrained=true`
        place = catalog.package(group)
        fix = f"its fields are under {place}: write {place}.{field or 'FIELD'}=..." if place else (
            f"`sesemi show {group}/NAME` shows the keys it sets"
        )
        return f"unknown config key {key}; {group} is a config group (`{group}=NAME` chooses a config), {fix}"
    parent, _, name = key.rpartition(".")
    close = difflib.get_close_matches(name, known, n=1)
    keys = ", ".join(known)
    if not close:
        return f"unknown config key {key}; the schema has: {keys}"
    return f"unknown config key {key}; did you mean {parent + '.' if parent else ''}{close[0]}? (the schema has: {keys})"


def _targets(node: DictConfig | ListConfig, prefix: str = "") -> Iterator[tuple[str, DictConfig, str]]:
    """`(key, node, target)` of every `_target_` that is not an interpolation."""
    items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else enumerate(node._iter_ex(resolve=False))
    if isinstance(node, DictConfig) and (node._is_none() or node._is_missing()):
        return
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if key == "_target_" and isinstance(value, str) and not OmegaConf.is_interpolation(node, key):
            yield path, node, value
        elif isinstance(value, DictConfig | ListConfig) and not (value._is_none() or value._is_missing()):
            yield from _targets(value, path)


def _unknown_keys(node: DictConfig | ListConfig, prefix: str = "") -> Iterator[tuple[str, list[str]]]:
    if isinstance(node, ListConfig):
        for index, value in enumerate(node._iter_ex(resolve=False)):
            if isinstance(value, DictConfig | ListConfig):
                yield from _unknown_keys(value, f"{prefix}[{index}]")
        return
    schema = OmegaConf.get_type(node)
    known = [f.name for f in fields(schema)] if is_dataclass(schema) else None
    for key, value in node.items_ex(resolve=False):
        path = f"{prefix}.{key}" if prefix else str(key)
        if known is not None and key not in known:
            yield path, known
        elif isinstance(value, DictConfig | ListConfig) and not (value._is_none() or value._is_missing()):
            yield from _unknown_keys(value, path)
