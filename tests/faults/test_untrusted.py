"""Files that try to run code or to write outside sesemi's folders: path-like ids in a
repository, malicious `_target_`s in checkpoints and run configs, foreign checkpoints, tampered
and foreign archives; and what the user does about the ones they trust (`sesemi trust add`,
`--allow-unfinished`).

Each case asserts what the user sees (exit code, one `error: ...` line naming the file and the
fix) and what is kept on disk.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import tarfile
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from typer.testing import CliRunner

import sesemi
from sesemi.cli.app import app
from sesemi.errors import SesemiError
from sesemi.hub.archive import pack
from sesemi.ownership import mark, record_checksum, sha256
from sesemi.trust import check_targets


def sesemi_cli(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


def error_line(result) -> str:
    """The one line a refused command prints: exit code 1, `error: ...`, no traceback."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture(autouse=True)
def homes(tmp_path, monkeypatch) -> Path:
    """An empty model cache and config folder of the test's own, and no SESEMI_REPOSITORIES."""
    monkeypatch.setenv("SESEMI_CACHE_ROOT", str(tmp_path / "cache"))
    monkeypatch.setenv("SESEMI_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("SESEMI_REPOSITORIES", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def repository(trained_run, tmp_path_factory) -> tuple[Path, str]:
    """The session's tiny trained run published as tiny@1.0.0: the repository and the uid."""
    base = tmp_path_factory.mktemp("untrusted")
    uid = sesemi.hub.publish(trained_run.run_dir, "tiny", "1.0.0", base / "repo")
    return base / "repo", uid


def copy_repository(repository: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    folder, uid = repository
    return Path(shutil.copytree(folder, tmp_path / "repo")), uid


def copy_run(trained_run, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained_run.run_dir, tmp_path / "run"))


def rewrite_row(repository: Path, key: str, **changes) -> None:
    """Changes the row `key` of models.json (the key too, when the uid changes), as someone with
    write access to the repository would."""
    table_path = repository / "models.json"
    table = json.loads(table_path.read_text())
    row = {**table["models"].pop(key), **changes}
    table["models"][row["uid"]] = row
    table_path.write_text(json.dumps(table))


def change_model(repository: Path, key: str, tmp_path: Path, **changes) -> None:
    """Changes a model's ids in its row and in its archive's meta.json alike, with a checksum
    to match: a repository made to attack, not a damaged one."""
    folder = tmp_path / "unpacked"
    archive = next(repository.rglob(f"{key}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, **changes}))
    pack(folder, archive)
    path = archive.relative_to(repository).as_posix()
    rewrite_row(repository, key, **changes, archive={"path": path, "sha256": sha256(archive), "size": archive.stat().st_size})


def replace_archive(repository: Path, uid: str, data: bytes, checksum: bool) -> None:
    """Overwrites a model's archive, and its recorded SHA-256 when `checksum`."""
    table = json.loads((repository / "models.json").read_text())
    archive = repository / table["models"][uid]["archive"]["path"]
    archive.write_bytes(data)
    if checksum:
        rewrite_row(repository, uid, archive={"path": table["models"][uid]["archive"]["path"],
                                              "sha256": sha256(archive), "size": len(data)})


def tamper_hparams(checkpoint: Path, change) -> None:
    """Rewrites a checkpoint's hyper-parameters, with a checksum to match: a file made so on
    purpose, not damaged on the way (the checksum is no defence against its maker)."""
    stored = torch.load(checkpoint, weights_only=True)
    change(stored["hyper_parameters"]["hparams"])
    torch.save(stored, checkpoint)
    record_checksum(checkpoint)


# --- path-like ids in a repository -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        # `/../../somewhere`: absolute, so the cache took it as the model's folder, and with as
        # many `..` as its scratch folder (named after the uid) needs to land beside the sentinel.
        ("uid", "/{climb}{outside}"),
        ("uid", "/{outside}"),
        ("uid", "../../../outside/precious"),  # climbs from <cache>/tiny/1.0.0/ to the sentinel
        ("uid", "0000abcd-1.0.0/../../../../outside/precious"),  # uid-like at the start
        ("version", "../../outside/precious"),
        ("subgroup", "a./{outside}"),  # a part that is an absolute path
    ],
)
def test_a_path_like_id_in_models_json_touches_nothing_outside_the_cache(repository, tmp_path, homes, field, value):
    """A row whose uid, version or subgroup is a path made `sesemi load` delete and replace a
    folder outside the cache; now the table is refused in one line, and the folder survives."""
    repo, uid = copy_repository(repository, tmp_path)
    sentinel = tmp_path / "outside" / "precious"
    sentinel.mkdir(parents=True)
    (sentinel / "data.txt").write_text("keep me")
    climb = "../" * (len(sentinel.parent.parts) - 1)
    change_model(repo, uid, tmp_path, **{field: value.format(climb=climb, outside=str(sentinel).lstrip("/"))})
    line = error_line(sesemi_cli("load", "tiny@1.0.0", "-r", repo, "--device", "cpu"))
    assert f"{repo / 'models.json'} is refused: its row " in line
    assert "could not have been published by sesemi" in line and "the repository was changed by hand" in line
    error_line(sesemi_cli("models", "-r", repo))
    assert (sentinel / "data.txt").read_text() == "keep me"
    assert sorted(sentinel.parent.rglob("*")) == [sentinel, sentinel / "data.txt"]
    assert not homes.exists() or not any(path.is_file() and path.suffix != ".lock" for path in homes.rglob("*"))


def test_a_path_like_reference_is_refused_before_any_repository_is_asked(repository, tmp_path):
    repo, _ = copy_repository(repository, tmp_path)
    line = error_line(sesemi_cli("load", "tiny@../../outside", "-r", repo))
    assert line == "error: the version '../../outside' must be a version in normal form, e.g. 1.0.0"


# --- malicious _target_s -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "backbone",
    [
        {"_target_": "pathlib.Path.write_text", "self": "{victim}", "data": "owned"},
        {"_target_": "sesemi.ConvNet", "widths": [{"_target_": "pathlib.Path.write_text", "self": "{victim}", "data": "x"}]},
        {"_target_": "torch.nn.modules.module.torch.save", "obj": 1, "f": "{victim}"},  # torch, by the way of an import
    ],
)
def test_a_malicious_target_in_a_checkpoint_never_runs(trained_run, tmp_path, backbone):
    run = copy_run(trained_run, tmp_path)
    victim = tmp_path / "owned.txt"
    backbone = json.loads(json.dumps(backbone).replace("{victim}", str(victim)))
    tamper_hparams(run / "checkpoints" / "best.ckpt", lambda hparams: hparams["model"].update(backbone=backbone))
    for command in (
        ("inference", run, trained_run.tree.root / "val", "--save-dir", tmp_path / "out", "--device", "cpu"),
        ("publish", run, "--name", "tiny", "--version", "1.0.0", "-r", tmp_path / "repo"),
    ):
        line = error_line(sesemi_cli(*command))
        assert line.startswith(f"error: the checkpoint {run / 'checkpoints' / 'best.ckpt'} builds ")
        # the standard library is never to be trusted; another package is the user's to trust
        stdlib = "pathlib" in json.dumps(backbone)
        assert ("of Python's standard library" if stdlib else "`sesemi trust add ") in line
    assert not victim.exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "repo").exists()


def test_a_malicious_target_in_a_run_s_config_never_runs(trained_run, tmp_path):
    """Loading builds the evaluation transform of config.yaml; resuming builds all of it (the
    check `sesemi.resume` makes is `check_targets` on the whole config)."""
    run = copy_run(trained_run, tmp_path)
    victim = tmp_path / "owned.txt"
    config = OmegaConf.load(run / "config.yaml")
    config.data.val.dataset.image_transform = {"_target_": "pathlib.Path.write_text", "self": str(victim), "data": "x"}
    OmegaConf.save(config, run / "config.yaml")
    line = error_line(sesemi_cli("inference", run, trained_run.tree.root / "val", "--save-dir", tmp_path / "out"))
    assert line == (
        f"error: {run / 'config.yaml'} builds pathlib.Path.write_text, which sesemi does not trust; it is of Python's "
        "standard library, which a file could use to run any command: do not load it"
    )
    config = OmegaConf.load(trained_run.run_dir / "config.yaml")
    config.trainer.callbacks.append({"_target_": "pathlib.Path.write_text", "self": str(victim), "data": "x"})
    with pytest.raises(SesemiError, match=f"^{run / 'config.yaml'} builds pathlib.Path.write_text"):
        check_targets(config, source=str(run / "config.yaml"))
    assert not victim.exists() and not (tmp_path / "out").exists()


class Payload:
    """What an attacker pickles: unpickling it would write a file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "owned"))


@pytest.mark.parametrize("kind", ["no state_dict", "pickled object", "not a checkpoint", "a text file", "an empty file"])
def test_a_foreign_checkpoint_is_one_line_and_runs_nothing(trained_run, tmp_path, kind):
    run = copy_run(trained_run, tmp_path)
    checkpoint = run / "checkpoints" / "best.ckpt"
    Path(f"{checkpoint}.sha256").unlink()  # a file from elsewhere comes without sesemi's checksum
    victim = tmp_path / "owned.txt"
    if kind == "no state_dict":
        torch.save({"weights": torch.zeros(3), "epoch": 1}, checkpoint)
        expected = f"error: {checkpoint} is not a sesemi checkpoint (it has no state_dict)"
    elif kind == "pickled object":
        torch.save({"state_dict": {}, "payload": Payload(victim)}, checkpoint)
        expected = f"error: cannot load {checkpoint} safely ("
    elif kind == "not a checkpoint":
        checkpoint.write_bytes(pickle.dumps(Payload(victim)))
        expected = f"error: cannot load {checkpoint} safely ("
    elif kind == "a text file":  # a config.yaml given for a checkpoint, say: no meaningless reason
        checkpoint.write_text("run:\n  seed: 1\n")
        expected = f"error: cannot load {checkpoint} safely; it is truncated, not a checkpoint, or holds Python"
    else:
        checkpoint.write_bytes(b"")
        expected = f"error: cannot load {checkpoint} safely (it ends too early); it is truncated"
    line = error_line(sesemi_cli("inference", checkpoint, trained_run.tree.root / "val", "--save-dir", tmp_path / "out"))
    assert line.startswith(expected)
    assert not victim.exists() and not (tmp_path / "out").exists()


# --- tampered and foreign archives -------------------------------------------------------------


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for member, content in members:
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content) if member.isfile() else None)
    return data.getvalue()


def _link(name: str, target: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = tarfile.SYMTYPE, target
    return member


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        ("tampered", "does not match the checksum recorded when it was published; it was changed or damaged"),
        ("foreign", "it is not a sesemi model's (project/setup.py is a folder or in one, and a model's archive holds only files)"),
        ("flat foreign", "is not a sesemi model's: it has no meta.json, weights.safetensors, config.yaml"),
        ("traversal", "../../outside/escape.txt points outside the model's folder"),
        ("symlink", "config.yaml is a link or special file"),
    ],
)
def test_tampered_and_foreign_archives_are_refused_and_leave_nothing(repository, tmp_path, homes, attack, expected):
    repo, uid = copy_repository(repository, tmp_path)
    archive = next(repo.rglob(f"{uid}.tar.gz"))
    data = archive.read_bytes()
    if attack == "tampered":
        replace_archive(repo, uid, data[:-10] + bytes(b ^ 1 for b in data[-10:]), checksum=False)
    elif attack == "foreign":
        replace_archive(repo, uid, _tar([(tarfile.TarInfo("project/setup.py"), b"print(1)\n")]), checksum=True)
    elif attack == "flat foreign":
        replace_archive(repo, uid, _tar([(tarfile.TarInfo("setup.py"), b"print(1)\n")]), checksum=True)
    elif attack == "traversal":
        replace_archive(repo, uid, _tar([(tarfile.TarInfo("../../outside/escape.txt"), b"x")]), checksum=True)
    else:
        replace_archive(repo, uid, _tar([(_link("config.yaml", str(tmp_path / "outside.yaml")), b"")]), checksum=True)
    line = error_line(sesemi_cli("load", uid, "-r", repo, "--device", "cpu"))
    assert f"the archive of {uid} from {repo}" in line and expected in line
    assert not any(path.is_file() and path.suffix != ".lock" for path in homes.rglob("*"))
    assert not list(tmp_path.rglob("escape.txt")) and not (tmp_path / "outside.yaml").exists()


# --- what the user trusts ----------------------------------------------------------------------


def test_a_prefix_added_with_sesemi_trust_add_then_loads(trained_run, tmp_path, monkeypatch):
    (tmp_path / "my_nets.py").write_text(
        "from sesemi.models.backbones.convnet import ConvNet\n\n\nclass Net(ConvNet):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    run = copy_run(trained_run, tmp_path)
    tamper_hparams(run / "checkpoints" / "best.ckpt", lambda hparams: hparams["model"]["backbone"].update(_target_="my_nets.Net"))
    images, out = trained_run.tree.root / "val", tmp_path / "out"
    line = error_line(sesemi_cli("inference", run, images, "--save-dir", out, "--device", "cpu"))
    assert line.endswith("builds my_nets.Net, which sesemi does not trust; if you trust its publisher, run "
                         "`sesemi trust add my_nets` (or, for one call, pass --allow my_nets; allow=['my_nets'] in Python)")
    done = sesemi_cli("trust", "add", "my_nets")
    assert done.exit_code == 0 and done.output == f"trusted: my_nets (in {tmp_path / 'config' / 'trust.json'})\n"
    assert "my_nets" in sesemi_cli("trust", "list").output
    done = sesemi_cli("inference", run, images, "--save-dir", out, "--device", "cpu")
    assert done.exit_code == 0, done.output
    assert (out / "predictions.csv").is_file()
    assert sesemi_cli("trust", "remove", "my_nets").exit_code == 0
    error_line(sesemi_cli("inference", run, images, "--save-dir", tmp_path / "out2", "--device", "cpu"))
    done = sesemi_cli("inference", run, images, "--save-dir", tmp_path / "out2", "--device", "cpu", "--allow", "my_nets")
    assert done.exit_code == 0, done.output  # trusted for this call only
    error_line(sesemi_cli("inference", run, images, "--save-dir", tmp_path / "out3", "--device", "cpu"))
    assert error_line(sesemi_cli("trust", "add", "../evil")).startswith("error: a trusted prefix is a dotted module path")


def test_publish_refuses_an_interrupted_run_then_publishes_it_when_asked(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path)
    mark(run, "run", "interrupted")
    publish = ("publish", run, "--name", "tiny", "--version", "1.0.0", "-r", tmp_path / "repo")
    line = error_line(sesemi_cli(*publish))
    assert line == (
        f"error: will not publish {run}: the run is interrupted; finish it with `sesemi resume {run}`, "
        "or publish it as it is with --allow-unfinished (allow_unfinished=True)"
    )
    assert not (tmp_path / "repo").exists()
    done = sesemi_cli(*publish, "--allow-unfinished")
    assert done.exit_code == 0, done.output
    assert done.output.startswith("published tiny@1.0.0 as ")
