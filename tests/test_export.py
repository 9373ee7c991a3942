"""Exporting trained models (sesemi/export.py): ONNX Runtime and TorchScript compute what torch
computes, the description says how to prepare inputs, and only sesemi's own exports are replaced."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from audio_samples import TINY_AUDIO_TRAINING, audio_tree
from typer.testing import CliRunner

import sesemi
from sesemi.errors import SesemiError
from sesemi.export import embedded_description, export
from sesemi.predictor import load

CLASSES = ["blue", "green", "red"]


@pytest.fixture
def run_dir(trained_run, tmp_path):
    """A copy of the tiny trained run (exports write into the run folder)."""
    return shutil.copytree(trained_run.run_dir, tmp_path / "run", symlinks=True)


def val_batch(trained_run, predictor) -> torch.Tensor:
    """The run's validation images prepared as the predictor prepares them `[N, 3, H, W]`."""
    from sesemi.datasets.images import read_image

    paths = sorted((trained_run.tree.root / "val").rglob("*.png"))
    return torch.stack([predictor.transform(read_image(path)) for path in paths])


def test_onnx_runtime_agrees_with_torch(trained_run, run_dir):
    """The ONNX file in the run folder gives torch's logits for any batch size, with the labels
    and the normalization beside it."""
    onnxruntime = pytest.importorskip("onnxruntime")
    exported = export(run_dir, "onnx")
    predictor = load(run_dir, device="cpu")
    batch = val_batch(trained_run, predictor)
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    for inputs in (batch, batch[:1]):
        (logits,) = session.run(None, {"inputs": inputs.numpy()})
        expected = predictor.predict_batch(inputs).probabilities
        np.testing.assert_allclose(torch.from_numpy(logits).softmax(1), expected, atol=1e-5)
    assert exported.path == run_dir / "model.onnx"
    description = json.loads((run_dir / "model.onnx.json").read_text())
    assert description["labels"] == CLASSES and description["input"]["shape"] == [
        "batch",
        3,
        16,
        16,
    ]
    assert (
        len(description["preprocessing"]["mean"]) == 3
        and len(description["preprocessing"]["std"]) == 3
    )
    steps = description["preprocessing"]
    assert "round((width - crop width) / 2)" in steps["center_crop"] and "halves rounded to even" in steps["center_crop"]
    assert "round(value / 65535 * 255), not clipped" in steps["image"] and "1 / 255" in steps["pixels"]
    assert embedded_description(exported.path) == description
    assert sesemi.export.export is export  # the Python API, without importing sesemi.export


def run_export_recipe(paths: list[str], folder: Path, monkeypatch) -> dict:
    """docs/export.md's ONNX Runtime code, run as written in `folder` (which holds model.onnx and
    its JSON) on `paths`: the names it defines (`batch`, `probabilities`, ...)."""
    recipe = Path(__file__).parents[1].joinpath("docs", "export.md").read_text().split("## Predicting with ONNX Runtime")[1]
    code = recipe.split("```python\n")[1].split("```")[0].replace('["7.png", "3.png"]', repr(paths))
    monkeypatch.chdir(folder)
    namespace: dict = {}
    exec(compile(code, "docs/export.md", "exec"), namespace)
    return namespace


def test_the_documented_onnx_recipe_predicts_as_sesemi_does(trained_run, run_dir, tmp_path, monkeypatch):
    """docs/export.md's code, run as written, prepares sesemi's very inputs and gives its
    probabilities within the 3e-7 it states: on the run's images, a 12-megapixel photo stored
    sideways (read smaller and turned upright), a 3:2 photo whose centre crop starts half a pixel
    off (torchvision rounds the offset, halves to even), a 16-bit PNG (scaled, not clipped) and a
    glyph drawn in alpha alone (laid on white)."""
    pytest.importorskip("onnxruntime")
    from PIL import Image

    from sesemi.datasets.images import read_image
    from sesemi.transforms.views import input_side

    export(run_dir, "onnx", tmp_path / "model.onnx")
    val = sorted((trained_run.tree.root / "val").rglob("*.png"))[:2]
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned by 90 degrees
    Image.open(val[0]).convert("RGB").resize((4032, 3024)).save(tmp_path / "photo.jpg", quality=90, exif=exif)
    pattern = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(pattern).resize((2048, 1365), Image.BICUBIC).save(tmp_path / "wide.jpg", quality=90)
    levels = np.linspace(0, 65535, 24 * 40).reshape(24, 40).astype(np.uint16)
    Image.fromarray(levels).save(tmp_path / "deep.png")  # mode I;16
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    glyph = np.zeros((20, 20, 4), np.uint8)
    glyph[4:16, 8:12, 3] = 255  # black ink on a transparent background: laid on white
    Image.fromarray(glyph, "RGBA").save(tmp_path / "glyph.png")
    paths = [str(path) for path in [*val, tmp_path / "photo.jpg", tmp_path / "wide.jpg", tmp_path / "deep.png", tmp_path / "glyph.png"]]
    namespace = run_export_recipe(paths, tmp_path, monkeypatch)
    predictor = load(run_dir, device="cpu")
    side = input_side(predictor.transform)
    width = int(16 * np.divide(*read_image(tmp_path / "wide.jpg", side).size))  # 52x35 resized to 23x16
    assert (width - 16) // 2 != round((width - 16) / 2)  # the crop starts at round(3.5) = 4, not 3
    inputs = torch.stack([predictor.transform(read_image(path, side)) for path in paths])
    torch.testing.assert_close(torch.from_numpy(namespace["batch"]), inputs, rtol=0, atol=0)
    expected = torch.stack([p.probabilities for p in predictor.predict(paths)])
    np.testing.assert_allclose(namespace["probabilities"], expected, rtol=0, atol=3e-7)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_loads_with_torch_jit_and_agrees(trained_run, run_dir, tmp_path):
    """The TorchScript file loads with torch.jit.load alone and gives torch's logits."""
    exported = export(run_dir, "torchscript", tmp_path / "out" / "digits.pt")
    predictor = load(run_dir, device="cpu")
    batch = val_batch(trained_run, predictor)
    scripted = torch.jit.load(str(exported.path))
    torch.testing.assert_close(
        scripted(batch).softmax(1), predictor.predict_batch(batch).probabilities
    )
    assert exported.description_path == tmp_path / "out" / "digits.pt.json"
    assert embedded_description(exported.path)["labels"] == CLASSES


def test_the_format_follows_the_files_extension_and_never_contradicts_it(run_dir, tmp_path):
    """`-o digits.pt` is TorchScript without `--format`; `--format onnx -o digits.pt` would
    write an ONNX file that torch.jit.load cannot read, and is refused before anything is."""
    assert export(run_dir, output=tmp_path / "digits.pt").description["format"] == "torchscript"
    with pytest.raises(SesemiError, match=r"digits\.pt ends in \.pt, the extension of torchscript files, not of onnx ones \(\.onnx\)"):
        export(run_dir, "onnx", tmp_path / "other" / "digits.pt")
    assert not (tmp_path / "other").exists()


class _Branching(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1) if x.sum() > 0 else -x.flatten(1)  # on the data: torch.export cannot trace it


def test_a_network_onnx_cannot_trace_is_one_line_naming_where(tmp_path, capsys):
    """Not torch's page of advice and partial graph: its cause and the line of the network."""
    from sesemi.export import _write_onnx

    with pytest.raises(SesemiError) as error:
        _write_onnx(_Branching().eval(), torch.ones(2, 3, 4, 4), tmp_path / "x.onnx", "{}")
    message = str(error.value)
    assert message.startswith("cannot export the network to onnx (Could not guard on data-dependent expression")
    assert f"at {__file__}, line " in message and "if x.sum() > 0 else" in message
    assert message.endswith("; try --format torchscript") and "\x1b" not in message and "\n" not in message
    assert capsys.readouterr().err == "" and not (tmp_path / "x.onnx").exists()


def test_audio_exports_the_log_mel_front_end_with_the_network(tmp_path_factory):
    """An audio model takes waveforms: the exported network includes its log-mel front end."""
    onnxruntime = pytest.importorskip("onnxruntime")
    from sesemi import compose, run

    tree = audio_tree(tmp_path_factory.mktemp("data") / "sounds", train=2, val=1, unlabeled=0)
    overrides = [*TINY_AUDIO_TRAINING, "run.num_iterations=2", "trainer.val_check_interval=2"]
    run_dir = tmp_path_factory.mktemp("audio") / "run"
    run(compose("audio", ["method=supervised", f"run.data_root={tree.root}", *overrides]), run_dir)
    exported = export(run_dir, "onnx")
    waveforms = torch.randn(3, exported.description["preprocessing"]["samples"]) * 0.1
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"inputs": waveforms.numpy()})
    expected = load(run_dir, device="cpu").predict_batch(waveforms).probabilities
    np.testing.assert_allclose(torch.from_numpy(logits).softmax(1), expected, atol=1e-4)
    assert exported.description["preprocessing"]["sample_rate"] == 16000


def test_only_an_earlier_export_is_replaced_and_only_with_force(run_dir, tmp_path):
    """A second export needs --force; a file sesemi did not write is never overwritten."""
    export(run_dir, "torchscript")
    with pytest.raises(SesemiError, match="model.pt exists; pass --force"):
        export(run_dir, "torchscript")
    assert export(run_dir, "torchscript", force=True).replaced
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"my own model")
    with pytest.raises(SesemiError, match="not a model sesemi exported"):
        export(run_dir, "torchscript", mine, force=True)
    assert mine.read_bytes() == b"my own model"
    with pytest.raises(SesemiError, match="format must be one of onnx, torchscript"):
        export(run_dir, "tflite")


def test_a_fifo_as_the_output_is_refused_without_reading_it(run_dir, tmp_path, time_limit):
    """Checking whether sesemi exported a named pipe would wait for a writer forever."""
    from sesemi.cli.app import app

    os.mkfifo(tmp_path / "model.pt")
    with time_limit(30), pytest.raises(SesemiError, match="model.pt is not a regular file; choose another --output"):
        export(run_dir, "torchscript", tmp_path / "model.pt", force=True)
    with time_limit(30):
        done = CliRunner().invoke(app, ["export", str(run_dir), "-f", "torchscript", "-o", str(tmp_path / "model.pt"), "--force"])
    assert done.exit_code == 1 and done.output.strip().count("\n") == 0 and "is not a regular file" in done.output
    assert stat.S_ISFIFO(os.stat(tmp_path / "model.pt").st_mode)


def test_an_output_that_cannot_be_written_is_one_line(run_dir, tmp_path):
    """A file where a folder of the path should be: one line that says to choose another
    --output, from Python and from the command line (it was a FileExistsError traceback)."""
    from sesemi.cli.app import app

    (tmp_path / "afile").write_text("")
    with pytest.raises(SesemiError, match=r"^cannot write .*afile/model\.pt \(.*\); choose another --output$"):
        export(run_dir, "torchscript", tmp_path / "afile" / "model.pt")
    done = CliRunner().invoke(app, ["export", str(run_dir), "-f", "torchscript", "-o", str(tmp_path / "afile" / "model.pt")])
    assert done.exit_code == 1 and done.output.strip().count("\n") == 0 and "choose another --output" in done.output


def test_cli_exports_and_prints_the_files(run_dir):
    """`sesemi export RUN --format torchscript` writes the model and says where."""
    from sesemi.cli.app import app

    done = CliRunner().invoke(app, ["export", str(run_dir), "--format", "torchscript"])
    assert done.exit_code == 0, done.output
    assert str(run_dir / "model.pt") in done.output and (run_dir / "model.pt.json").is_file()
    again = CliRunner().invoke(app, ["export", str(run_dir), "--format", "torchscript"])
    assert again.exit_code == 1 and "pass --force" in again.output


def test_an_output_folder_gets_the_default_file_name(run_dir, tmp_path):
    """`-o out/` (made if need be) or an existing folder: the model goes inside, as `model.pt`."""
    from sesemi.cli.app import app

    done = CliRunner().invoke(app, ["export", str(run_dir), "-f", "torchscript", "-o", f"{tmp_path}/out/"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "out" / "model.pt").is_file() and (tmp_path / "out" / "model.pt.json").is_file()
    assert export(run_dir, "torchscript", tmp_path / "out", force=True).path == tmp_path / "out" / "model.pt"


def test_a_published_model_exports_by_name_into_the_working_folder(run_dir, tmp_path, monkeypatch):
    """`sesemi export name@version -r REPO` writes `<name>-<version>.pt` here, naming its source."""
    import sesemi.hub

    monkeypatch.setenv("SESEMI_CACHE_ROOT", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    sesemi.hub.publish(run_dir, "tiny", "1.0.0", tmp_path / "models")
    exported = export("tiny@1.0.0", "torchscript", repository=tmp_path / "models")
    assert exported.path == Path("tiny-1.0.0.pt") and (tmp_path / "tiny-1.0.0.pt.json").is_file()
    assert (
        exported.description["published"] == "tiny@1.0.0"
        and exported.description["labels"] == CLASSES
    )
