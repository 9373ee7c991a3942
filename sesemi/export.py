"""Exporting a trained model to ONNX or TorchScript, to predict without sesemi.

    exported = sesemi.export.export("runs/digits/flexmatch/<time>", "onnx")
    # runs/digits/flexmatch/<time>/model.onnx, and model.onnx.json: what the inputs must be
    session = onnxruntime.InferenceSession(exported.path)
    logits = session.run(None, {"inputs": batch})[0]          # batch: float32 [N, 3, H, W]

The file holds the network (backbone and classification head: inputs -> logits) in eval mode,
with a dynamic batch dimension. Images go in as the run's evaluation transform prepares them
(`<file>.json` lists its steps, mean and std); audio goes in as waveforms `[N, samples]` at the
model's sample rate, and the log-mel front end is part of the network. ONNX uses torch's
`torch.export`-based exporter (it needs the onnx and onnxscript packages), which exports
`torch.stft`; torch's older TorchScript-based ONNX exporter cannot.

The model is loaded as `sesemi.predictor.load` loads it, under the same trust rules. Files are
written under a temporary name and renamed; an existing file is replaced only when asked
(`force`) and only if sesemi exported it: the description embedded in the file says so (ONNX
metadata, a TorchScript extra file).
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import re
import sys
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms import CenterCrop as CenterCropV1
from torchvision.transforms.v2 import CenterCrop

from sesemi.errors import SesemiError
from sesemi.logs import quiet
from sesemi.ownership import names_folder, open_atomically, write_atomically
from sesemi.predictor import Predictor, load
from sesemi.transforms.image import NormalizedFloat
from sesemi.transforms.views import input_side
from sesemi.version import __version__

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
EXTENSIONS = {extension: format for format, extension in FORMATS.items()}
INPUT, OUTPUT = "inputs", "logits"
DESCRIPTION = (
    "sesemi.json"  # the description's key in ONNX metadata, its name in a TorchScript file
)
ONNX_PACKAGES = ("onnx", "onnxscript")
INSTALL = "pip install 'sesemi[export]'"
EXAMPLE_SIZE = 256  # the blank image run through the evaluation transform to find the input size
# How an image becomes the transform's input and what its steps compute, for code without sesemi
# (sesemi.datasets.images.to_rgb; torchvision's center crop; NormalizedFloat).
IMAGE_READING = (
    "8-bit RGB, as sesemi reads images: 8-bit modes by Pillow's convert('RGB') (alpha dropped, but an "
    "image whose R, G and B are each one value while alpha varies is laid on white, or on black when that "
    "colour's 0.299 R + 0.587 G + 0.114 B is 128 or more); 16-bit "
    "integers (I;16) as round(value / 65535 * 255), not clipped; 32-bit integers (I) likewise, or over "
    "0..2**31-1 when a value exceeds 65535; floats (F, in [0, 1]) as round(value * 255); gray levels "
    "copied to R, G and B"
)
CENTER_CROP = (
    "the crop's left and top edges at round((width - crop width) / 2) and round((height - crop height) "
    "/ 2), halves rounded to even (Python's round), as torchvision places them"
)
PIXELS = "NormalizedFloat: uint8 values times float32(1 / 255), minus mean, divided by std, in float32"
CENTER_CROPS = (CenterCrop, CenterCropV1)


@dataclass(frozen=True)
class Exported:
    """What `export` wrote.

    Attributes:
        path: The model file.
        description_path: The JSON beside it (`<path>.json`), the same as `description`.
        description: What the inputs must be (shape, preparation, sample rate) and the labels.
        replaced: Whether an earlier export at `path` was replaced.
    """

    path: Path
    description_path: Path
    description: dict[str, Any]
    replaced: bool


def export(
    source: str | os.PathLike,
    format: str | None = None,
    output: str | os.PathLike | None = None,
    *,
    force: bool = False,
    checkpoint: str = "best",
    allow: Sequence[str] = (),
    repository: str | os.PathLike | None = None,
) -> Exported:
    """Exports a trained model's network for use without sesemi, with a JSON of its inputs.

    Args:
        source: A run folder, a checkpoint in one, a published model's folder, uid or
            `name@version`, as `sesemi.predictor.load` takes them.
        format: "onnx" (needs `pip install 'sesemi[export]'`) or "torchscript"; None: the one
            `output`'s extension names (`.onnx`, `.pt`), else "onnx".
        output: The model file, or a folder (one that exists, or ending in `/`) to write the
            default file name into; by default `model.onnx` (`model.pt`) in the run folder, or
            `<name>-<version>.onnx` in the working folder for a published model.
        force: Replace a file at `output` that sesemi exported (never another file).
        checkpoint: For a run folder: "best" or "last".
        allow: Module prefixes trusted besides sesemi's and the user's, whose classes the
            model's files may build (see `sesemi.trust`).
        repository: Where published models are (see `sesemi.predictor.load`).

    Returns:
        The files written and the description of the inputs.

    Raises:
        SesemiError: An unknown format, missing packages, a file in the way, or a network the
            exporter cannot trace.
    """
    named = None if output is None or names_folder(output) else EXTENSIONS.get(Path(output).suffix.lower())
    format = format or named or "onnx"
    if format not in FORMATS:
        raise SesemiError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if named is not None and named != format:  # a reader would take the file for the other kind
        raise SesemiError(
            f"{output} ends in {Path(output).suffix}, the extension of {named} files, not of {format} ones "
            f"({FORMATS[format]}); change the name or the format"
        )
    if format == "onnx":
        missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
        if missing:
            raise SesemiError(
                f"exporting to ONNX needs {' and '.join(missing)}: {INSTALL} (or --format torchscript)"
            )
    predictor = load(
        source, device="cpu", checkpoint=checkpoint, allow=allow, repository=repository
    )
    path = default_output(predictor, format)
    if output is not None:
        path = Path(output) / path.name if names_folder(output) else Path(output)
    replaced = check_output(path, force)
    example = example_inputs(predictor)
    network = nn.Sequential(
        OrderedDict(backbone=predictor.model.backbone, head=predictor.model.head)
    ).eval()
    description = describe(predictor, example, format, path)
    text = json.dumps(description, indent=2) + "\n"
    try:
        with torch.no_grad():
            if format == "onnx":
                _write_onnx(network, example, path, text)
            else:
                _write_torchscript(network, example, path, text)
        write_atomically(description_path(path), text)
    except OSError as error:  # no such folder, a file where one is on the way, read-only, full
        raise SesemiError(f"cannot write {path} ({error.strerror or error}); choose another --output") from None
    return Exported(path, description_path(path), description, replaced)


def description_path(path: Path) -> Path:
    """Where the JSON description of a model file goes: beside it, `<name>.json`."""
    return path.with_name(path.name + ".json")


def default_output(predictor: Predictor, format: str) -> Path:
    """`model.onnx` (`.pt`) in a run's folder; `<name>-<version>.onnx` here for a published model."""
    if predictor.info is not None:
        return Path(f"{predictor.info.name}-{predictor.info.version}{FORMATS[format]}")
    return predictor.model.source / f"model{FORMATS[format]}"


def check_output(path: Path, force: bool) -> bool:
    """Refuses a model file or description in the way, unless `force` and sesemi exported both;
    tells whether there is one to replace."""
    files = [path, description_path(path)]
    for file in files:
        if file.is_symlink():
            raise SesemiError(f"{file} is a symbolic link; choose another --output")
        if file.is_dir():
            raise SesemiError(f"{file} is a folder; give the model file's name with --output")
        if file.exists() and not file.is_file():  # a FIFO or a device: reading it would block
            raise SesemiError(f"{file} is not a regular file; choose another --output")
    present = [file for file in files if file.exists()]
    if present and not force:
        raise SesemiError(
            f"{present[0]} exists; pass --force to replace it (only a model sesemi exported is replaced)"
        )
    if path.exists() and not _made_by_sesemi(embedded_description(path)):
        raise SesemiError(
            f"will not overwrite {path}: it is not a model sesemi exported; choose another --output"
        )
    if description_path(path).exists() and not _made_by_sesemi(_read_json(description_path(path))):
        raise SesemiError(
            f"will not overwrite {description_path(path)}: sesemi did not write it; choose another --output"
        )
    return bool(present)


def _made_by_sesemi(description: Any) -> bool:
    return isinstance(description, dict) and str(description.get("made_by", "")).startswith(
        "sesemi"
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def embedded_description(path: str | os.PathLike) -> dict[str, Any] | None:
    """The description `export` embeds in a model file (a TorchScript file's extra file, an ONNX
    model's metadata), or None for a file without one."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):  # TorchScript
            with zipfile.ZipFile(path) as archive:
                name = next(
                    (n for n in archive.namelist() if n.endswith(f"/extra/{DESCRIPTION}")), None
                )
                return json.loads(archive.read(name)) if name else None
        if importlib.util.find_spec("onnx") is None:
            return None
        import onnx

        model = onnx.load_model(str(path), load_external_data=False)
        entry = next((p.value for p in model.metadata_props if p.key == DESCRIPTION), None)
        return json.loads(entry) if entry else None
    except Exception:  # any other file: not one of sesemi's
        return None


def example_inputs(predictor: Predictor) -> Tensor:
    """Two inputs of the shape the model takes (two: a batch of one would fix the batch size)."""
    if predictor.audio:
        window, _ = predictor.windowing()
        return torch.zeros(2, round(window * predictor.sample_rate))
    prepared = predictor.transform(Image.new("RGB", (EXAMPLE_SIZE, EXAMPLE_SIZE), (127, 127, 127)))
    if not isinstance(prepared, Tensor) or prepared.dim() != 3:
        raise SesemiError(
            f"the evaluation transform of {predictor.model.source} does not make image tensors [C, H, W]"
        )
    return torch.stack([prepared, prepared]).float()


def describe(predictor: Predictor, example: Tensor, format: str, path: Path) -> dict[str, Any]:
    """What a model file needs: its input and output, how inputs are prepared, the labels."""
    model = predictor.model
    shape = ["batch", *example.shape[1:]]
    description: dict[str, Any] = {
        "made_by": f"sesemi {__version__}",
        "format": format,
        "file": path.name,
        "source": str(model.source),
        "checkpoint": str(model.checkpoint) if model.checkpoint else None,
        "published": predictor.info.reference if predictor.info is not None else None,
        "input": {"name": INPUT, "shape": shape, "dtype": "float32"},
        "output": {
            "name": OUTPUT,
            "shape": ["batch", len(model.labels)],
            "dtype": "float32",
            "meaning": "class scores; their softmax is the probabilities, in the order of labels",
        },
        "labels": list(model.labels),
    }
    if predictor.audio:
        window, hop = predictor.windowing()
        description["input"]["meaning"] = (
            f"mono waveforms of {window:g} s at {predictor.sample_rate} Hz"
        )
        description["preprocessing"] = {
            "sample_rate": predictor.sample_rate,
            "clip_seconds": window,
            "samples": int(example.shape[1]),
            "waveform": "mono (channels averaged), float32 in [-1, 1], resampled to sample_rate",
            "shorter": "zero-padded on both sides equally to `samples`",
            "longer": f"windows of clip_seconds every {hop:g} s (the last zero-padded); sesemi averages "
            "their probabilities",
            "log_mel": "part of the model",
        }
    else:
        description["input"]["meaning"] = (
            "RGB images, channels first, turned upright as their EXIF orientation says, prepared by "
            "the steps of preprocessing"
        )
        description["preprocessing"] = _image_steps(predictor)
    return description


def _image_steps(predictor: Predictor) -> dict[str, Any]:
    """The evaluation transform: its steps in order, mean and std, and its config."""
    transform = predictor.transform
    steps = list(getattr(transform, "transforms", [transform]))
    prepared: dict[str, Any] = {"image": IMAGE_READING, "steps": [" ".join(repr(step).split()) for step in steps]}
    if any(isinstance(step, CENTER_CROPS) for step in steps):
        prepared["center_crop"] = CENTER_CROP
    if any(isinstance(step, NormalizedFloat) for step in steps):
        prepared["pixels"] = PIXELS
    if predictor.bit_depth is not None:
        top = 2**predictor.bit_depth - 1
        prepared["bit_depth"] = predictor.bit_depth
        prepared["wide_images"] = (
            f"16- and 32-bit integer images (I;16, I) hold {predictor.bit_depth}-bit data: round(value / {top} * 255) "
            f"in place of the scale in image; an image with a value above {top} is refused"
        )
    side = input_side(transform)
    if side is not None:  # as `read_image` reads a large image
        prepared["read_side"] = side
        prepared["large_images"] = (
            "an image whose short side is at least twice read_side is read smaller first, its short side "
            "no less than read_side: a JPEG decoded at 1/2, 1/4 or 1/8 scale (Pillow's draft mode), then "
            "any image reduced by the whole factor min(width, height) // read_side (Pillow's Image.reduce)"
        )
    normalize = next((s for s in steps if hasattr(s, "mean") and hasattr(s, "std")), None)
    if normalize is not None:
        prepared["mean"] = [float(v) for v in normalize.mean]
        prepared["std"] = [float(v) for v in normalize.std]
    node = predictor.model.eval_transform_config
    if node is not None:
        try:
            prepared["transform"] = OmegaConf.to_container(node, resolve=True)
        except Exception:  # interpolations that only a run resolves
            prepared["transform"] = OmegaConf.to_container(node, resolve=False)
    return prepared


def _exporter_error(format: str, error: Exception) -> SesemiError:
    """One line: the cause torch.export names in its page of advice, and the line of the
    network it stopped at."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # its colours
    summary = re.search(r"## Exception summary\s+(?:<class '[^']+'>: )?(.+)", text)
    call = re.search(r'The following call raised this error:\s+File "([^"]+)", line (\d+), in \S+\s+(.+)', text)
    reason = summary[1] if summary else text
    if call:
        reason = f"{reason} at {call[1]}, line {call[2]}: {call[3].strip()}"
    reason = " ".join(reason.split())[:300] or type(error).__name__
    other = "torchscript" if format == "onnx" else "onnx"
    return SesemiError(f"cannot export the network to {format} ({reason}); try --format {other}")


def _write_onnx(network: nn.Module, example: Tensor, path: Path, description: str) -> None:
    printed = io.StringIO()  # on a failure torch prints a page of graph: shown only on success
    try:
        with quiet("torch.fx.experimental.symbolic_shapes", logging.ERROR), redirect_stderr(printed):
            program = torch.onnx.export(
                network,
                (example,),
                dynamo=True,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
            )
    except Exception as error:  # a network torch.export cannot trace
        raise _exporter_error("onnx", error) from None
    sys.stderr.write(printed.getvalue())
    model = program.model_proto
    model.metadata_props.add(key=DESCRIPTION, value=description)
    with open_atomically(path, "wb") as file:
        file.write(model.SerializeToString())


def _write_torchscript(network: nn.Module, example: Tensor, path: Path, description: str) -> None:
    # torch deprecates TorchScript at every call; whoever asked for this format has chosen it
    # (docs/export.md recommends ONNX), so the warnings would only repeat that choice.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning)
        # the audio front end checks in Python that a clip is long enough; the trace keeps the
        # example's answer, right for the clips of `samples` the file takes (docs/export.md)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            traced = torch.jit.trace(network, example)
        except Exception as error:
            raise _exporter_error("torchscript", error) from None
        with open_atomically(path, "wb") as file:
            torch.jit.save(traced, file, _extra_files={DESCRIPTION: description})
