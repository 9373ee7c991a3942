"""The model card (README.md) published with a model: what it does, its data, method and metrics."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from sesemi.hub.lookup import ModelInfo


def _arguments(node: Any) -> str:
    """`a=1, b=[4, 8]`: a config node's arguments, without `_target_`."""
    if not OmegaConf.is_config(node):
        return ""
    values = OmegaConf.to_container(node, resolve=True)
    return ", ".join(f"{k}={v}" for k, v in values.items() if k != "_target_" and not isinstance(v, dict))


def _component(node: Any) -> str:
    if not OmegaConf.is_config(node) or "_target_" not in node:
        return "none"
    arguments = _arguments(node)
    return f"`{node._target_}`" + (f" ({arguments})" if arguments else "")


def _data(config: DictConfig) -> list[str]:
    """One line per loader: its name, dataset and subset; the data root first."""
    loaders = {**(OmegaConf.select(config, "data.train") or {}), "validation": OmegaConf.select(config, "data.val")}
    root = OmegaConf.select(config, "run.data_root")
    lines = [f"Data root: `{root}`", ""] if root else []
    for stage, loader in loaders.items():
        if loader is not None:
            dataset = OmegaConf.to_container(loader.dataset, resolve=True)
            subset = dataset.get("subset")
            lines.append(f"- {stage}: `{dataset.get('name')}`" + (f", subset {subset}" if subset else ""))
    return lines


def _table(header: tuple[str, str], rows: dict[str, Any]) -> list[str]:
    if not rows:
        return ["none"]
    return [f"| {header[0]} | {header[1]} |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows.items())]


def model_card(info: ModelInfo, config: DictConfig, audio: bool) -> str:
    """The Markdown model card of a model about to be published."""
    model = config.learner.hparams.model
    heads = model.get("regularization_loss_heads") or {}
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
        f"- backbone: {_component(model.backbone)}",
        f"- supervised loss: {_component(OmegaConf.select(model, 'supervised_loss.callable'))}",
        *(f"- loss head `{name}`: {_component(head.head)}" for name, head in heads.items()),
        f"- weights: {'the exponential moving average of the weights' if info.ema else 'the trained weights'}"
        f", from `{info.checkpoint}`",
        f"- training: {budget}, optimizer {_component(OmegaConf.select(config, 'learner.hparams.optimizer'))}",
        "",
        "## Metrics",
        "",
        "The run's final validation metrics:",
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
