"""A run's folder: claimed for this process's run before anything heavy is imported (a run
stopped at any moment leaves a folder `sesemi rm-failed` can prove is its own), and deleted or
emptied again when the run ends before it starts.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from sesemi.errors import SesemiError
from sesemi.ownership import mark, marker, remove

CONFIG = "config.yaml"  # the config as run; a run has started once it wrote it
COMPOSED = "composed.yaml"  # the config as asked for (before a time budget set its lengths)
METRICS = "metrics.csv"  # what the run logged, a row per logging step (Lightning's CSV logger)
# The run folder, for the processes a multi-process fit launches (each runs the same command again).
RUN_DIR_VARIABLE = "SESEMI_RUN_DIR"


def _hydra_files(run_dir: Path) -> set[str]:
    """What Hydra wrote into `run_dir` before calling the job (`.hydra/`, the job's log), when
    `run_dir` is the folder of the Hydra job this process runs."""
    if not HydraConfig.initialized():
        return set()
    hydra = HydraConfig.get()
    if Path(hydra.runtime.output_dir).absolute() != run_dir.absolute():
        return set()
    return {name for name in (hydra.output_subdir, f"{hydra.job.name}.log") if name}


# The empty folders callers made and gave to runs of this process: one whose run fails before
# it starts is emptied again, not deleted (sesemi did not make it).
_GIVEN_EMPTY: set[Path] = set()
# The folders above a run's that did not exist when it was claimed (`runs/digits/flexmatch/`):
# made for it, so a run that fails before it starts leaves none of them behind, if empty.
_MADE_ABOVE: dict[Path, list[Path]] = {}
# The folders that did not exist when a folder was named for Hydra to make (`note_unmade`).
_UNMADE: dict[Path, list[Path]] = {}


def claim_folder(run_dir: str | Path) -> None:
    """Marks `run_dir` as the folder of a run of this process: one that does not exist yet, or
    holds nothing but what Hydra wrote for this job. A run's folder is deleted whole when the run
    fails (`sesemi rm-failed`), so a folder holding anything else, another run or files of
    someone else's, is refused rather than claimed. An empty one is the caller's (emptied again,
    not deleted, if the run ends before it starts), unless it was made for the run (`note_unmade`)."""
    run_dir = Path(run_dir)
    found = marker(run_dir)
    if found is not None and found.kind == "run" and found.state == "running" and found.pid == os.getpid():
        return  # claimed by this process already (open_sesemi, TrainingRun.evaluate)
    if _launched_for(run_dir) and found is not None and found.kind == "run":
        return  # a process that a multi-process run launched: the run's first process claimed it
    _refuse_taken(run_dir, _hydra_files(run_dir))
    made = _made_for(run_dir.absolute())
    if run_dir.exists() and run_dir.absolute() not in made and not os.listdir(run_dir):
        _GIVEN_EMPTY.add(run_dir.absolute())
    _MADE_ABOVE[run_dir.absolute()] = [folder for folder in made if folder != run_dir.absolute()]
    mark(run_dir, "run", "running")


def check_named_folder(run_dir: str | Path) -> None:
    """Refuses a folder named for a run by hand (`hydra.run.dir=...`) that `claim_folder` would
    refuse, before Hydra writes its files into it; notes the folders to be made for the run, or
    an empty folder as the caller's."""
    run_dir = Path(run_dir).absolute()
    if _launched_for(run_dir):
        return
    _refuse_taken(run_dir, set())
    if run_dir.is_dir():
        _GIVEN_EMPTY.add(run_dir)
    else:
        note_unmade(str(run_dir))


def _launched_for(run_dir: Path) -> bool:
    """Whether this process is one a multi-process run launched for `run_dir`."""
    launched_for = os.environ.get(RUN_DIR_VARIABLE)
    return bool(launched_for) and Path(launched_for).absolute() == run_dir.absolute()


def _refuse_taken(run_dir: Path, hydras: set[str]) -> None:
    """Refuses a folder that holds a run, or anything but `hydras` (what Hydra wrote there)."""
    found = marker(run_dir)
    if found is not None and found.kind == "run":
        raise SesemiError(
            f"{run_dir} already holds a run ({found.state}); choose another folder, or `sesemi resume {run_dir}`"
        )
    if run_dir.is_symlink() or (run_dir.exists() and not run_dir.is_dir()):
        raise SesemiError(f"{run_dir} is not a folder sesemi can make its own; choose a new folder for the run")
    others = sorted(set(os.listdir(run_dir)) - hydras) if run_dir.exists() else []
    if others:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise SesemiError(f"{run_dir} is not empty (it holds {others[0]}{more}); a run needs a new folder of its own")


def note_unmade(folder: str) -> str:
    """Records which of `folder` and the folders above it do not exist yet, as a run's (or a
    sweep's) folder is named for Hydra to make (`hydra/sesemi.yaml`, or by hand); returns `folder`."""
    path = Path(folder).absolute()
    _UNMADE.setdefault(path, list(itertools.takewhile(lambda above: not above.exists(), (path, *path.parents))))
    return folder


def _made_for(run_dir: Path) -> list[Path]:
    """The folders made for a run: `run_dir` and those above it that did not exist when it (or
    its sweep's folder) was named for Hydra, else those that do not exist now."""
    if run_dir in _UNMADE:
        return _UNMADE[run_dir]
    sweep = _UNMADE.get(run_dir.parent)
    if sweep:  # a new sweep folder: its jobs' folders are new too
        return [run_dir, *sweep]
    return list(itertools.takewhile(lambda folder: not folder.exists(), (run_dir, *run_dir.parents)))


def discard_unstarted(run_dir: str | Path) -> bool:
    """Deletes the folder of a run of this process that ended before it started, which is when
    it writes its config (a mistake in the config, the data, the model or the weights to start
    from): nothing in it is worth keeping, nor can it resume. Returns whether it did."""
    run_dir = Path(run_dir)
    found = marker(run_dir)
    if found is None or found.kind != "run" or found.pid != os.getpid() or (run_dir / CONFIG).exists():
        return False
    if run_dir.absolute() not in _GIVEN_EMPTY:
        remove(run_dir, run_dir.parent, "run")
        for folder in _MADE_ABOVE.pop(run_dir.absolute(), []):  # the deepest first
            with contextlib.suppress(OSError):  # another run's by now, or not empty: kept
                folder.rmdir()
        return True
    for child in run_dir.iterdir():  # all of this run's: the folder was empty when it was given
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return True
