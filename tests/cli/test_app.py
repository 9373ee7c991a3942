"""The `sesemi` command line (sesemi/cli/app.py), each command through typer's runner.

The `project` fixture (conftest.py) is the chain a user follows: `create`, `fetch digits`,
`train` two seeds; the tests here carry it on with `postprocess`, `rm-states`, `group` and
`rm-failed`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from audio_samples import audio_tree
from PIL import Image

from sesemi.config.catalog import methods
from sesemi.version import __version__

pytest_plugins = ["cli_project"]  # the project, runs_copy and sesemi_cli fixtures

SESEMI = Path(sys.executable).parent / "sesemi"
COMMANDS = [
    "create",
    "list",
    "show",
    "fetch",
    "train",
    "inference",
    "pseudo-label",
    "preprocess",
    "postprocess",
    "rm-failed",
    "rm-states",
    "group",
    "publish",
    "models",
    "load",
    "trust",
    "resume",
    "export",
]


def error_line(result) -> str:
    """The one-line `error: ...` a failed command prints, with no traceback."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "Traceback" not in result.output
    assert lines[-1].startswith("error: "), result.output
    return lines[-1]


# --- help and version --------------------------------------------------------------------------


def test_help_lists_every_command():
    """The installed `sesemi --help` lists every command (its speed is measured under experiments/
    and kept by the no-torch import test below, not timed here on a shared machine)."""
    assert SESEMI.exists(), f"{SESEMI} is not installed (pip install -e .)"
    done = subprocess.run([str(SESEMI), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command in COMMANDS:
        assert f" {command} " in done.stdout


def test_a_file_in_the_working_folder_never_stands_in_for_a_library(tmp_path):
    """Project modules in the working folder are importable, searched after the installed
    packages: an `omegaconf.py` or `yaml.py` there (a download, say) is not run in their place."""
    for name in ("omegaconf", "yaml"):
        (tmp_path / f"{name}.py").write_text("import pathlib\npathlib.Path('imported').write_text('ran')\n")
    done = subprocess.run([str(SESEMI), "list"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "imported").exists()


def test_each_command_is_summed_up_in_one_sentence():
    """`sesemi --help` lists a command by its help's first paragraph with its line breaks kept:
    a paragraph over two lines reads as a sentence broken off in the middle."""
    import typer.main

    from sesemi.cli.app import app

    commands = list(typer.main.get_command(app).commands.items())
    while commands:
        name, command = commands.pop()
        commands += [(f"{name} {sub}", c) for sub, c in getattr(command, "commands", {}).items()]
        summary = (command.help or "").strip().split("\n\n")[0]
        assert summary and "\n" not in summary, f"{name}: {summary!r}"


def test_the_command_line_does_not_import_torch():
    code = (
        "import sys, sesemi.cli.app; print(sorted({'torch', 'pandas', 'hydra'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(sesemi_cli, command):
    result = sesemi_cli(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output and f"$ sesemi {command}" in result.output


def test_version(sesemi_cli):
    result = sesemi_cli("--version")
    assert result.exit_code == 0 and result.output.strip() == f"sesemi {__version__}"


# --- create, list, show, fetch -----------------------------------------------------------------


def test_create_refuses_to_overwrite_without_force(sesemi_cli, tmp_path):
    """--force rewrites the config `sesemi create` wrote, never a config of the user's."""
    project = tmp_path / "p"
    assert sesemi_cli("create", project).exit_code == 0
    assert sorted(p.name for p in project.iterdir()) == ["configs", "data", "runs", "src"]
    config = project / "configs" / "custom.yaml"
    assert "pass --force" in error_line(sesemi_cli("create", project))
    assert sesemi_cli("create", project, "--force").exit_code == 0
    written = yaml.safe_load(config.read_text())
    assert written["defaults"][0] == "image" and written["run"]["time_budget"] == "15m"  # no GPU here
    config.write_text(config.read_text() + "# mine\n")  # edited: the user's now
    assert "will not overwrite" in error_line(sesemi_cli("create", project, "--force"))
    assert config.read_text().endswith("# mine\n")
    elsewhere = tmp_path / "elsewhere"  # configs/ moved away and linked back: not written through
    (project / "configs").rename(elsewhere)
    (project / "configs").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "custom.yaml").unlink()
    assert sesemi_cli("create", tmp_path / "q").exit_code == 0
    shutil.copy(tmp_path / "q" / "configs" / "custom.yaml", elsewhere / "custom.yaml")
    assert "will not overwrite" in error_line(sesemi_cli("create", project, "--force"))


def test_create_says_the_next_commands_as_a_shell_takes_them(sesemi_cli, tmp_path):
    """A project folder with a space in its name is quoted in the `next:` line, to paste."""
    result = sesemi_cli("create", tmp_path / "new proj ü")
    assert f"next: cd '{tmp_path}/new proj ü' && sesemi fetch digits" in result.output


def test_an_error_shows_bytes_of_a_name_that_are_not_utf8_as_escapes(sesemi_cli, tmp_path):
    """A path of Latin-1 bytes (held as a surrogate) is shown as data.md says: `\\xff`."""
    line = error_line(sesemi_cli("resume", os.fsdecode(os.fsencode(tmp_path) + b"/run\xff")))
    assert "run\\xff" in line and "\\udc" not in line


def test_a_file_where_a_folder_goes_is_one_line(sesemi_cli, tmp_path):
    """`sesemi create notes.txt`, `--data-dir notes.txt`, and any path the file system refuses
    (here a folder under a file): one line, not a traceback."""
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert error_line(sesemi_cli("create", notes)) == f"error: {notes} is a file; name a folder for the project"
    assert "is a file; name the folder that holds the data sets" in error_line(sesemi_cli("fetch", "digits", "--data-dir", notes))
    assert notes.read_text() == "mine"


def test_the_file_systems_refusal_of_a_path_is_a_user_error(tmp_path):
    """An `OSError` about a path (a file where a folder goes, a full disk) is the user's to fix,
    said as the system says it; one without a path stays a bug, with its traceback."""
    from sesemi.errors import user_error

    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(OSError) as raised:
        (notes / "configs").mkdir(parents=True)
    assert user_error(raised.value) == f"Not a directory: {notes / 'configs'}"
    assert user_error(OSError("no path")) is None


def test_list_shows_configs_with_descriptions(sesemi_cli):
    result = sesemi_cli("list")
    assert result.exit_code == 0
    assert "spoken_digits" in result.output and "The embedded demo" in result.output
    assert "groups (sesemi list GROUP): audio_encoder, backbone, hydra, loader, logger, method" in result.output
    assert f"methods (method=NAME): {', '.join(methods())}" in result.output
    result = sesemi_cli("list", "backbone", "--pattern", "resnet*")
    assert "backbone/resnet18" in result.output and "convnet" not in result.output
    assert "no config group 'nope'" in error_line(sesemi_cli("list", "nope"))


def test_show_prints_and_saves(sesemi_cli, tmp_path):
    result = sesemi_cli("show", "backbone/convnet")
    assert result.exit_code == 0 and "_target_: sesemi.ConvNet" in result.output
    assert sesemi_cli("show", "digits", "--save", tmp_path).exit_code == 0
    first, second = (tmp_path / "my_digits.yaml").read_text().splitlines()[:2]
    assert first.startswith("# Copied from sesemi's built-in config `digits`, by sesemi show --save (sha256 ")
    assert second.startswith("# The embedded demo")
    assert "pass --force" in error_line(sesemi_cli("show", "digits", "--save", tmp_path))
    assert sesemi_cli("show", "digits", "--save", tmp_path, "--force").exit_code == 0  # its own copy
    copy = tmp_path / "my_digits.yaml"
    copy.write_text(copy.read_text().replace("seed: 42", "seed: 7"))  # edited since: the user's now
    assert "it was changed since" in error_line(sesemi_cli("show", "digits", "--save", tmp_path, "--force"))
    assert "seed: 7" in copy.read_text()
    assert "did you mean digits" in error_line(sesemi_cli("show", "digit"))


def test_a_saved_method_keeps_its_package_header_and_composes(sesemi_cli, tmp_path):
    """The copy's marker line goes after Hydra's `# @package _global_`, which must stay first."""
    saved = tmp_path / "configs" / "method" / "mine.yaml"
    assert sesemi_cli("show", "method/fixmatch", "--save", saved).exit_code == 0
    assert saved.read_text().splitlines()[:1] == [
        "# @package _global_",
    ]
    assert saved.read_text().splitlines()[1].startswith("# Copied from sesemi's built-in config `method/fixmatch`, by sesemi show --save (sha256 ")
    result = sesemi_cli("train", "-cd", tmp_path / "configs", "digits", "method=mine", "--show-config")
    assert result.exit_code == 0, result.output
    assert "FixMatchLossHead" in result.output
    assert "  method: mine\n" in result.output  # its runs are filed and summarized as `mine`, not `fixmatch`


def test_a_config_saved_into_a_folder_gets_a_name_of_its_own_in_its_group(sesemi_cli, tmp_path):
    """A copy under the built-in's name would be refused by `-cd`; a group's config goes to the
    group's subfolder (made if need be), and a trailing slash means a folder."""
    configs = tmp_path / "configs"
    assert sesemi_cli("show", "method/fixmatch", "--save", f"{configs}/").exit_code == 0
    assert sesemi_cli("show", "backbone/convnet", "--save", f"{configs}/backbone/").exit_code == 0
    assert sesemi_cli("show", "digits", "--save", configs).exit_code == 0
    saved = sorted(path.relative_to(configs).as_posix() for path in configs.rglob("*.yaml"))
    assert saved == ["backbone/my_convnet.yaml", "method/my_fixmatch.yaml", "my_digits.yaml"]
    result = sesemi_cli("train", "-cd", configs, "my_digits", "method=my_fixmatch", "backbone=my_convnet", "--show-config")
    assert result.exit_code == 0, result.output


def test_a_copy_is_never_saved_under_a_built_in_name(sesemi_cli, tmp_path):
    """`configs/image.yaml` would stop every `-cd configs` run; refused before it is written."""
    line = error_line(sesemi_cli("show", "image", "--save", tmp_path / "configs" / "image.yaml"))
    assert line == (
        f"error: will not save as {tmp_path}/configs/image.yaml: image is a built-in config's name, and -cd refuses a "
        f"folder holding one; choose another, e.g. {tmp_path}/configs/my_image.yaml"
    )
    line = error_line(sesemi_cli("show", "method/fixmatch", "--save", tmp_path / "configs" / "method" / "fixmatch.yaml"))
    assert "method/fixmatch is a built-in config's name" in line
    assert not (tmp_path / "configs").exists()


def test_a_config_is_never_saved_through_a_linked_group_folder(sesemi_cli, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "method").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    line = error_line(sesemi_cli("show", "method/fixmatch", "--save", tmp_path / "configs"))
    assert "it is a symbolic link out of" in line and not any((tmp_path / "elsewhere").iterdir())


def test_fetch_explains_what_it_cannot_download(sesemi_cli, tmp_path):
    """imagewoof: where to get it and its layout, in one line; an unknown name lists the others."""
    line = error_line(sesemi_cli("fetch", "imagewoof", "--data-dir", tmp_path))
    assert "https://" in line and f"{tmp_path}/imagewoof2/train/<class>/" in line
    assert "choose one of: digits" in error_line(
        sesemi_cli("fetch", "nothing", "--data-dir", tmp_path)
    )


# --- train --------------------------------------------------------------------------------------


def test_train_prints_the_composed_config(sesemi_cli, tmp_path, monkeypatch):
    """`--show-config` prints the composed config (valid YAML) and trains nothing."""
    monkeypatch.chdir(tmp_path)
    result = sesemi_cli("train", "digits", "run.seed=7", "--show-config")
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(result.output)
    assert config["run"]["seed"] == 7 and config["run"]["id"] == "digits"
    assert not (tmp_path / "runs").exists()


def test_train_errors_are_one_line(sesemi_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "num_iteration" in error_line(
        sesemi_cli("train", "-cn", "digits", "run.num_iteration=5")
    )
    assert "nosuch" in error_line(sesemi_cli("train", "-cn", "nosuch"))
    missing = tmp_path / "nowhere"
    line = error_line(
        sesemi_cli("train", "-cn", "digits", f"run.data_root={missing}", "run.gpus=0")
    )
    assert f"data folder {missing}/train does not exist" in line
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    unmounted = tmp_path / "mnt" / "digits"  # a drive not mounted: not the demo data in its place
    line = error_line(sesemi_cli("train", "digits", f"run.data_root={unmounted}", "run.gpus=0"))
    assert line.endswith(f"if you meant the built-in digits there, run `sesemi fetch digits --data-dir {unmounted.parent}`"), line
    assert not (tmp_path / "mnt").exists()
    for arguments in (["digits", "-m", "run.seed=1,2"], ["-cd", "configs", "-cn", "custom", "-m", "run.seed=1,2"]):
        line = error_line(sesemi_cli("train", *arguments))
        assert "sesemi train runs one config; sweep with open_sesemi: open_sesemi " in line
        assert line.endswith(("-cn digits run.seed=1,2 -m", "-cd configs -cn custom run.seed=1,2 -m")), line


@pytest.mark.slow
def test_train_says_what_a_time_budget_allows_and_how_long_the_run_will_take(digits_root, tmp_path):
    """The console script shows sesemi's own lines on stderr, as open_sesemi does: what the time
    budget allows, then the time estimate after the first steps; not the lines of the trainer
    that measured the speed; and the run's result once, on stdout."""
    from cli_project import TINY

    own = ("run.num_iterations", "run.time_budget", "trainer.val_check_interval")
    overrides = [override for override in TINY if not override.startswith(own)]
    done = subprocess.run(
        [str(SESEMI), "train", "digits", f"run.data_root={digits_root}", "run.time_budget=15s", *overrides],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "time budget 15s:" in done.stderr and "s a step: about" in done.stderr, done.stderr[-2000:]
    assert "`max_steps=11` reached" not in done.stderr, done.stderr[-2000:]  # the speed probe's
    assert done.stdout.count("val/top1=") == 1 and "val/top1=" not in done.stderr, done.stdout


# --- the project: postprocess, rm-states, group, rm-failed ----------------------------------------


def test_chain_trained_two_runs(project):
    runs = sorted(project.glob("runs/custom/flexmatch/*/results.json"))
    assert len(runs) == 2
    assert (project / "data" / "digits" / "unlabeled").is_dir()


def first_run(project: Path) -> Path:
    return sorted(project.glob("runs/custom/flexmatch/*/results.json"))[0].parent


def test_publish_says_once_what_it_published(project, tmp_path):
    """The library logs what it published for Python users; the command prints it, once."""
    command = [str(SESEMI), "publish", str(first_run(project)), "--name", "digits-cnn", "--version", "1.0.0"]
    done = subprocess.run([*command, "-r", str(tmp_path / "models")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (done.stdout + done.stderr).count("published digits-cnn@1.0.0") == 1, done.stdout + done.stderr


def test_inference_of_a_folder_and_of_a_list(sesemi_cli, project, tmp_path):
    """predictions.csv has path, label, score and a probability per class, embeddings.npy a
    row per prediction; existing predictions are kept without --force; a text file lists inputs."""
    images = tmp_path / "images"
    for digit in ("3", "7"):
        (images / digit).mkdir(parents=True)
        for path in sorted((project / "data" / "digits" / "val" / digit).glob("*.png"))[:3]:
            shutil.copy(path, images / digit)
    out = tmp_path / "out"
    args = ["inference", first_run(project), images, "--save-dir", out, "--device", "cpu"]
    result = sesemi_cli(*args, "--batch-size", "4", "--embeddings")
    assert result.exit_code == 0, result.output
    assert "predicted 6 files" in result.output
    table = pd.read_csv(out / "predictions.csv")
    assert list(table.columns) == ["path", "label", "score", *map(str, range(10))]
    assert len(table) == 6 and table["path"].str.endswith(".png").all()
    probabilities = table[[str(c) for c in range(10)]]
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert np.allclose(table["score"], probabilities.max(axis=1), atol=1e-5)
    assert np.load(out / "embeddings.npy").shape == (6, 8)  # ConvNet widths [4, 8]
    assert "pass --force" in error_line(sesemi_cli(*args))
    missing = error_line(sesemi_cli("inference", first_run(project), tmp_path / "nothing", "--save-dir", out))
    assert missing.endswith("nothing does not exist")  # not the output's, which --force would pass to meet this

    listing = tmp_path / "inputs.txt"
    listing.write_text("images/3/" + sorted(p.name for p in (images / "3").iterdir())[0] + "\n\n")
    result = sesemi_cli(
        "inference", first_run(project), listing, "checkpoint=last", "--save-dir", out, "--force"
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out / "predictions.csv")) == 1
    assert not (out / "embeddings.npy").exists()  # they belonged to the predictions replaced


def test_a_backbone_of_the_projects_src_trains_and_predicts_once_src_is_trusted(
    sesemi_cli, project, tmp_path, monkeypatch
):
    """The template's advice followed: a backbone written in the project's src/ and named in
    configs/custom.yaml trains; predicting with its run is refused, naming `sesemi trust add
    src`, until the user trusts src (or allows it for one call), then works."""
    from cli_project import TINY

    monkeypatch.setenv("SESEMI_CONFIG_HOME", str(tmp_path / "config"))
    root = tmp_path / "own"
    assert sesemi_cli("create", root).exit_code == 0
    (root / "src" / "my_backbones.py").write_text(
        "from sesemi.models.backbones.convnet import ConvNet\n\n\nclass MyBackbone(ConvNet):\n    pass\n"
    )
    config = root / "configs" / "custom.yaml"
    text = config.read_text().replace("  - image\n", "  - image\n  - override backbone: null\n", 1)
    config.write_text(text + "learner:\n  hparams:\n    model:\n      backbone:\n        _target_: src.my_backbones.MyBackbone\n        widths: [4, 8]\n")
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))  # as `sesemi` puts the working folder first
    monkeypatch.delitem(sys.modules, "src", raising=False)
    tiny = [override for override in TINY if ".backbone." not in override]
    trained = sesemi_cli("train", "-cd", "configs", "custom", f"run.data_root={project / 'data' / 'digits'}", *tiny)
    assert trained.exit_code == 0, trained.output
    (run,) = root.glob("runs/custom/flexmatch/*/results.json")
    images = project / "data" / "digits" / "val" / "3"
    predict = ("inference", run.parent, images, "--save-dir", tmp_path / "out", "--device", "cpu")
    assert "`sesemi trust add src.my_backbones`" in error_line(sesemi_cli(*predict))
    # --allow, as the refusal says, for one call of each command that loads the run
    assert sesemi_cli(*predict, "--allow", "src").exit_code == 0
    publish = ("publish", run.parent, "--name", "own", "--version", "1.0.0", "-r", tmp_path / "models")
    assert sesemi_cli(*publish, "--allow", "src").exit_code == 0
    pseudo = ("pseudo-label", run.parent, project / "data" / "digits", "--output-dir", tmp_path / "pseudo")
    assert sesemi_cli(*pseudo, "--allow", "src").exit_code == 0
    assert sesemi_cli("trust", "add", "src").exit_code == 0
    predicted = sesemi_cli(*predict, "--force")
    assert predicted.exit_code == 0 and "predicted" in predicted.output, predicted.output


def test_inference_tta_averages_each_image_with_its_flip(sesemi_cli, project, trained_run, tmp_path):
    """--tta reaches the predictor: the table holds the probabilities averaged with the mirrored
    images, which differ from those of the images alone; the embeddings stay one row per image.
    A model trained without flips (the digits project) refuses it in one line."""
    from sesemi.predictor import load

    run, images = trained_run.run_dir, trained_run.tree.root / "val"
    tables = {}
    for name, flags in (("plain", []), ("tta", ["--tta"])):
        args = ["inference", run, images, "--save-dir", tmp_path / name, "--device", "cpu"]
        result = sesemi_cli(*args, "--embeddings", *flags)
        assert result.exit_code == 0, result.output
        tables[name] = pd.read_csv(tmp_path / name / "predictions.csv")
        assert np.load(tmp_path / name / "embeddings.npy").shape == (len(tables[name]), 8)
    classes = list(trained_run.tree.classes)
    predictions = load(run, device="cpu").predict(list(tables["tta"]["path"]), tta=True)
    expected = np.stack([p.probabilities.numpy() for p in predictions])
    assert np.allclose(tables["tta"][classes], expected, atol=1e-5)
    assert not np.allclose(tables["tta"][classes], tables["plain"][classes], atol=1e-5)
    digits = project / "data" / "digits" / "val" / "2"
    refused = sesemi_cli("inference", first_run(project), digits, "--save-dir", tmp_path / "digits", "--tta")
    assert "trained without horizontal flips (p_hflip: 0" in error_line(refused)


def test_inference_errors_are_one_line(sesemi_cli, project, tmp_path):
    run = first_run(project)
    assert "neither a run folder nor a checkpoint" in error_line(
        sesemi_cli("inference", tmp_path / "no", tmp_path)
    )
    assert "input" in error_line(
        sesemi_cli("inference", run, tmp_path / "none.png", "--save-dir", tmp_path)
    )
    line = error_line(sesemi_cli("inference", run, tmp_path, "threshold=1", "--save-dir", tmp_path))
    assert "inference does not take 'threshold=1'" in line
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "empty.png").write_bytes(b"")
    line = error_line(sesemi_cli("inference", run, tmp_path / "broken", "--save-dir", tmp_path / "out", "--device", "cpu"))
    assert line.startswith("error: no input could be read (1 unreadable file; why: ") and line.endswith("unreadable.csv)")


def test_preprocess_a_folder_then_a_config(sesemi_cli, tmp_path):
    """The folder is decoded once; the config's audio data (the same folder) is then up to date."""
    tree = audio_tree(tmp_path / "sounds")
    files = 3 * (tree.train_per_class + tree.val_per_class) + tree.unlabeled
    result = sesemi_cli("preprocess", tree.root, "--sample-rate", "16000")
    assert result.exit_code == 0, result.output
    assert f"at 16000 Hz: {files} decoded, 0 up to date" in result.output
    result = sesemi_cli("preprocess", "-cn", "audio", f"run.data_root={tree.root}")
    assert result.exit_code == 0, result.output
    assert f"0 decoded, {files} up to date" in result.output
    assert "does not exist" in error_line(sesemi_cli("preprocess", tmp_path / "nowhere"))
    assert "give one folder of recordings" in error_line(sesemi_cli("preprocess"))


def test_postprocess_summarizes_the_project(sesemi_cli, project, tmp_path):
    out = tmp_path / "report"
    result = sesemi_cli("postprocess", project / "runs", "-o", out)
    assert result.exit_code == 0, result.output
    assert "mean ± std by id, method" in result.output and "custom" in result.output
    table = pd.read_csv(out / "summary.csv")
    assert sorted(table["seed"]) == [1, 2] and table["val/top1"].between(0, 1).all()
    aggregated = pd.read_csv(out / "aggregated.csv")
    assert aggregated["runs"].tolist() == [2]  # the two seeds of one configuration
    plot = out / "plots" / "val_top1.png"
    with Image.open(plot) as image:
        assert image.format == "PNG"
    assert "![val_top1](plots/val_top1.png)" in (out / "summary.md").read_text()


def test_postprocess_of_a_missing_folder_is_one_line(sesemi_cli, tmp_path):
    assert "runs folder" in error_line(sesemi_cli("postprocess", tmp_path / "nowhere"))


def test_rm_states_dry_run_then_all(sesemi_cli, runs_copy):
    """The runs have only best and last: nothing to delete but with --all; --dry-run keeps all."""
    checkpoints = sorted(runs_copy.glob("**/checkpoints/*.ckpt"))
    assert {p.name for p in checkpoints} == {"best.ckpt", "last.ckpt"}
    result = sesemi_cli("rm-states", runs_copy)
    assert result.exit_code == 0 and "deleted 0 checkpoints" in result.output
    result = sesemi_cli("rm-states", runs_copy, "--all", "--dry-run")
    assert f"would delete {len(checkpoints)} checkpoints" in result.output
    assert all(p.exists() for p in checkpoints)
    result = sesemi_cli("rm-states", runs_copy, "--all")
    assert f"deleted {len(checkpoints)} checkpoints" in result.output
    assert not any(p.exists() for p in checkpoints)


def test_rm_failed_dry_run_then_delete(sesemi_cli, runs_copy):
    """A run marked failed goes (after a dry run that lists it); a folder of an earlier release
    without a marker stays and is counted; the finished runs stay."""
    from sesemi.ownership import mark

    failed = runs_copy / "custom" / "2026-01-01_00-00-00"
    (failed / "checkpoints").mkdir(parents=True)
    (failed / "config.yaml").write_text("learner: {_target_: sesemi.Classifier}\n")
    mark(failed, "run", "failed")
    earlier = runs_copy / "custom" / "2025-01-01_00-00-00"
    (earlier / ".hydra").mkdir(parents=True)
    (earlier / ".hydra" / "config.yaml").write_text("learner: {_target_: sesemi.Classifier}\n")
    result = sesemi_cli("rm-failed", runs_copy, "--dry-run")
    assert result.exit_code == 0 and str(failed) in result.output and str(earlier) not in result.output
    assert "would delete 1 failed run (" in result.output
    assert "left alone 1 run folder without a .sesemi marker" in result.output
    assert failed.exists()
    assert "deleted 1 failed run (" in sesemi_cli("rm-failed", runs_copy).output
    assert not failed.exists() and earlier.exists()
    assert len(list(runs_copy.glob("custom/flexmatch/*/results.json"))) == 2


def test_group_by_seed(sesemi_cli, runs_copy):
    result = sesemi_cli("group", runs_copy, "--by", "run.seed", "--name", "seeds")
    assert result.exit_code == 0, result.output
    group = runs_copy / "groups" / "seeds"
    assert sorted(p.name for p in group.iterdir()) == [".sesemi", "seed=1", "seed=2", "summary"]
    assert len(pd.read_csv(group / "summary" / "aggregated.csv")) == 2
    assert "pass --force" in error_line(
        sesemi_cli("group", runs_copy, "--by", "run.seed", "--name", "seeds")
    )
    result = sesemi_cli("group", runs_copy, "--by", "run.seed", "--name", "seeds", "--force", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "seed=1/: 1 run\n" in result.output and "would group 2 runs under" in result.output
    assert "(replacing the group there)" in result.output
    (group / "seed=1" / "mine.txt").write_text("replaced with the group")
    assert (
        sesemi_cli("group", runs_copy, "--by", "run.seed", "--name", "seeds", "--force").exit_code
        == 0
    )
    assert not (group / "seed=1" / "mine.txt").exists()
    assert [p.name for p in (runs_copy / "groups").iterdir()] == ["seeds"]  # nothing left beside it
    line = error_line(sesemi_cli("group", runs_copy, "--by", "run.nothing", "--name", "x"))
    assert "no run has the config field 'run.nothing'" in line


def test_a_launched_process_shows_tracebacks_only_if_the_user_asked(monkeypatch):
    """A multi-process run's other processes inherit the HYDRA_FULL_ERROR=1 that sesemi sets
    while a command runs, and the user's own setting beside it: a user error there is one line,
    unless the user asked for tracebacks."""
    from typer.testing import CliRunner

    from sesemi.cli.app import app
    from sesemi.errors import SesemiError

    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # as a launched process inherits it
    monkeypatch.setenv("SESEMI_USER_FULL_ERROR", "0")
    result = CliRunner().invoke(app, ["show", "no_such_config"])
    assert isinstance(result.exception, SystemExit) and result.output.startswith("error: no built-in config")
    monkeypatch.setenv("SESEMI_USER_FULL_ERROR", "1")
    result = CliRunner().invoke(app, ["show", "no_such_config"])
    assert isinstance(result.exception, SesemiError)  # raised as it is, for its traceback
