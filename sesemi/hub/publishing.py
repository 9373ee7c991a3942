"""Publishing a training run's model to a repository: one archive of the network's weights (with
EMA, the averaged weights validation saw), the run's config, `meta.json` and a model card.

Only a finished run is published unless asked (`allow_unfinished=True`): the weights of one
that is running, failed or was interrupted are not the end of its training.
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file

from sesemi.checkpoints import read_checkpoint
from sesemi.errors import SesemiError, printable
from sesemi.hub.archive import pack
from sesemi.hub.ids import check_name, check_params, check_subgroup, check_version, model_uid
from sesemi.hub.lookup import ModelInfo, check_unpublished
from sesemi.hub.repository import Repository
from sesemi.learners.published import CARD, CONFIG, META, WEIGHTS
from sesemi.learners.trained import RESULTS, TrainedModel, run_files
from sesemi.logs import RESULT
from sesemi.ownership import marker
from sesemi.results import RunResult
from sesemi.run_folder import METRICS
from sesemi.version import __version__

logger = logging.getLogger(__name__)


def publish(
    run: str | Path,
    name: str,
    version: str,
    repository: str | Path,
    subgroup: str | None = None,
    params: Mapping[str, Any] | None = None,
    author: str | None = None,
    meta: Mapping[str, Any] | None = None,
    allow: Sequence[str] = (),
    allow_unfinished: bool = False,
) -> str:
    """Publishes the model of a training run; returns its uid (see `sesemi.hub.ids`).

    Args:
        run: A run folder (its `checkpoints/best.ckpt`, else `last.ckpt`) or a checkpoint in one.
        name: The model's name, e.g. `digits-cnn`.
        version: Its version, e.g. `1.0.0`; a name and version are published once.
        repository: A folder or an fsspec URL (`s3://bucket/models`, `memory://models`, ...).
        subgroup: Dot-separated groups to file it under, e.g. `images.digits`.
        params: What tells it apart from other models of the same name, e.g.
            `{"backbone": "convnet", "labels": 50}`; part of the uid.
        author: Who publishes it.
        meta: Anything else to record (JSON values).
        allow: Module prefixes trusted besides sesemi's and the user's, e.g. `["my_project"]`.
        allow_unfinished: Publish a run that did not finish (running, failed or interrupted)
            as it is: the checkpoint `run` names (a run folder's best so far), with the metrics
            of the validation before it.
    """
    check_name(name)
    check_subgroup(subgroup)
    check_version(version)
    params, meta = check_params(params), check_params(meta, "meta")
    uid = model_uid(name, subgroup, params, version)
    target = Repository(repository)
    # Refused before the run is read when the uid or the name and version are taken (and again
    # under the lock, at upload).
    check_unpublished(target.rows(missing_ok=True), ModelInfo(uid, name, subgroup, version))
    if not allow_unfinished:
        _refuse_unfinished(run_files(run)[0])

    model = TrainedModel.from_run(run, allow=allow)  # builds the network now rather than at load
    config_path = model.source / CONFIG
    if not config_path.is_file():
        raise SesemiError(f"{config_path} does not exist: publishing needs the run's config beside checkpoints/")
    metrics = _metrics(model)
    # Contiguous copies: safetensors stores no views and no tensors that share memory.
    weights = {key: value.contiguous().clone() for key, value in model.state_dict().items()}

    info = ModelInfo(
        uid=uid,
        name=name,
        subgroup=subgroup,
        version=version,
        params=params,
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        author=author,
        labels=model.labels,
        metrics={k: float(v) for k, v in metrics.items()},
        checkpoint=model.checkpoint.name,
        ema=model.ema,
        meta=meta,
        sesemi=__version__,
    )
    with tempfile.TemporaryDirectory(prefix="sesemi-publish-") as scratch:
        folder = Path(scratch) / "model"
        folder.mkdir()
        save_file(weights, folder / WEIGHTS, metadata={"uid": uid})
        (folder / CONFIG).write_text(config_path.read_text())
        (folder / META).write_text(json.dumps(info.to_dict(), indent=1) + "\n")
        # class names from folder names that are not UTF-8 are shown as \xNN escapes, as in messages
        (folder / CARD).write_text(printable(model_card(info, model.config, model.audio)), encoding="utf-8")
        archive = Path(scratch) / f"{uid}.tar.gz"
        pack(folder, archive)
        target.add(info, archive)
    logger.info("published %s as %s to %s", info.reference, uid, target.url, extra=RESULT)
    return uid


def _metrics(model: TrainedModel) -> dict[str, float]:
    """The validation metrics of the weights published: the run's final ones for weights of its
    last step (`last.ckpt`, or a `best.ckpt` saved by the final validation); for earlier ones,
    those of the validation they were saved after, the last logged in `metrics.csv` before their
    step (validation during training logs at the step before), as for a run that did not
    finish; none when that cannot be read."""
    step = read_checkpoint(model.checkpoint, mmap=True).get("global_step")
    if (model.source / RESULTS).is_file():
        result = RunResult.read(model.source)
        if step == result.global_step:
            return result.metrics
    if not isinstance(step, int):
        return {}
    logged: dict[str, float] = {}
    try:
        with open(model.source / METRICS, newline="", encoding="utf-8") as file:
            for row in csv.DictReader(file):
                values = {k: v for k, v in row.items() if k and k.startswith("val/") and v}
                if values and float(row.get("step") or "inf") < step:
                    logged = {k: float(v) for k, v in values.items()}
    except (OSError, ValueError, csv.Error):
        return {}
    return logged


def _refuse_unfinished(run_dir: Path) -> None:
    """Refuses a run folder that did not finish; one of an earlier release (no marker) finished
    if it wrote its results."""
    found = marker(run_dir)
    state = found.state if found else None
    if state == "running" and found.alive:
        raise SesemiError(
            f"will not publish {run_dir}: the run is still running (process {found.pid}); publish it when it "
            "has finished, or as it is now with --allow-unfinished (allow_unfinished=True)"
        )
    if state == "running":
        said = "was killed while running"
    elif state in ("failed", "interrupted"):
        said = f"is {state}"
    elif state != "finished" and not (run_dir / RESULTS).is_file():
        said = f"has no {RESULTS} (it never finished)"
    else:
        return
    raise SesemiError(
        f"will not publish {run_dir}: the run {said}; finish it with `sesemi resume {run_dir}`, "
        "or publish it as it is with --allow-unfinished (allow_unfinished=True)"
    )


def _component(node: Any) -> str:
    """`` `target` (a=1, b=[4, 8]) ``: what a config node builds, with its plain arguments."""
    if not OmegaConf.is_config(node) or "_target_" not in node:
        return "none"
    values = OmegaConf.to_container(node, resolve=True)
    arguments = ", ".join(f"{k}={v}" for k, v in values.items() if k != "_target_" and not isinstance(v, dict))
    return f"`{node._target_}`" + (f" ({arguments})" if arguments else "")


def _mapping(config: Any, key: str) -> DictConfig:
    """The mapping at dotted `key` of a config, or an empty one (missing, or of another shape: a
    run's config.yaml may have been edited into anything)."""
    found = OmegaConf.select(config, key) if OmegaConf.is_dict(config) else None
    return found if OmegaConf.is_dict(found) else OmegaConf.create()


def _data(config: DictConfig) -> list[str]:
    """One line per loader: its name, dataset and subset; the data root first."""
    loaders = {**_mapping(config, "data.train"), "validation": _mapping(config, "data").get("val")}
    root = OmegaConf.select(config, "run.data_root")
    lines = [f"Data root: `{root}`", ""] if root else []
    for stage, loader in loaders.items():
        dataset = _mapping(loader, "dataset")
        if dataset:
            subset = dataset.get("subset")
            lines.append(f"- {stage}: `{dataset.get('name')}`" + (f", subset {subset}" if subset else ""))
    return lines


def _table(header: tuple[str, str], rows: dict[str, Any]) -> list[str]:
    if not rows:
        return ["none"]
    return [f"| {header[0]} | {header[1]} |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows.items())]


def model_card(info: ModelInfo, config: DictConfig, audio: bool) -> str:
    """The Markdown model card (`README.md`) of a model about to be published: what it does, its
    data, method and metrics."""
    model = _mapping(config, "learner.hparams.model")
    heads = _mapping(model, "regularization_loss_heads")
    kind = "recordings" if audio else "images"
    by = f" by {info.author}" if info.author else ""
    example = "clip.wav" if audio else "image.png"
    iterations = OmegaConf.select(config, "run.num_iterations")
    budget = f"{iterations} iterations" if iterations else f"{OmegaConf.select(config, 'run.num_epochs')} epochs"
    lines = [
        f"# {info.reference}",
        "",
        f"Classifies {kind} into {len(info.labels)} classes: {', '.join(info.labels)}.",
        "",
        f"uid `{info.uid}`, published {info.date}{by} with sesemi {info.sesemi}.",
        "",
        "## Use",
        "",
        "```python",
        "import sesemi.hub",
        "",
        f'model = sesemi.hub.load("{info.uid}")',
        f'(prediction,) = model.predict(["{example}"])  # .label, .score, .probabilities in model.labels order',
        "```",
        "",
        f"or `sesemi inference {info.uid} FILES --save-dir predictions`.",
        "",
        "## Data",
        "",
        *_data(config),
        "",
        "## Method",
        "",
        f"- backbone: {_component(model.get('backbone'))}",
        f"- supervised loss: {_component(OmegaConf.select(model, 'supervised_loss.callable'))}",
        *(f"- loss head `{name}`: {_component(_mapping(head, 'head'))}" for name, head in heads.items()),
        f"- weights: {'the exponential moving average of the weights' if info.ema else 'the trained weights'}"
        f", from `{info.checkpoint}`",
        f"- training: {budget}, optimizer {_component(OmegaConf.select(config, 'learner.hparams.optimizer'))}",
        "",
        "## Metrics",
        "",
        f"The validation metrics of these weights (`{info.checkpoint}`):",
        "",
        *_table(("metric", "value"), {k: f"{v:.4f}" for k, v in info.metrics.items()}),
        "",
        "## Parameters",
        "",
        *_table(("parameter", "value"), info.params),
    ]
    if info.meta:
        lines += ["", "## More", "", *_table(("key", "value"), info.meta)]
    return "\n".join(lines) + "\n"
