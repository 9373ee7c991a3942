"""Does pre-training on the unlabeled pool (`method=simclr_freematch`) close the gap between
today's best method (FreeMatch) and training on all labels?

For each data set and seed: the labels alone (`method=supervised`), FreeMatch
(`method=freematch`), the recipe as it was until 2026-12-06 (`simclr_freematch`: SimCLR alone
for `run.pretrain` of the budget, then the labels and FreeMatch from those weights) and two
variants of it (`simclr_freematch_half` spends half the budget on SimCLR, `simclr_freematch_kept`
keeps SimCLR on beside FreeMatch to the end), the recipe today (`simclr_freematch_labeled`: the
labels train from the first step, beside SimCLR), its kept variant
(`simclr_freematch_kept_labeled`) and the default since 2026-12-07, a tenth of the budget for
SimCLR, within the others' budget (`simclr_freematch_in_all`), FlexMatch with rotation prediction beside it
(`method=flexmatch_rotation`, the recipe experiments/letters found for hard images), on audio
FreeMatch and the recipe with a speed change in the strong view (`freematch_speed`,
`simclr_freematch_speed`: `data.views.strong.speed=[0.9,1.1]`; every other audio row passes
`[1.0,1.0]`, the default when they were measured), FlexMatch with and without it
(`flexmatch_speed`, `flexmatch`), SoftMatch and SimMatch
(`softmatch`, `simmatch`, each also with the speed change; `simmatch_no_vote`, an ablation),
FlexMatch with wider speed ranges in the strong view (`flexmatch_speed_wide`, `_wider`) or the
speed change in the weak view (`flexmatch_speed_weak`, `_strong_wide`; with the labels alone and
all labels: `supervised_speed_weak`, `all_labels_speed_weak`), and
supervised training on every training item with its label
(`data.train.supervised.dataset.subset=train_all`, the ceiling), and self-training (noisy
student): a student trained from scratch on the labels and the FreeMatch run's pseudo-labels of
score 0.8 or more (`sesemi pseudo-label`, hard labels; the weak view's SpecAugment is its noise)
for the data set's own budget (`noisy_student`), and a second round, taught by that student
(`noisy_student_2`). Audio rows ending in `_words` start from the weights of the spoken-digits
network trained on 25 other spoken words (`spoken_words`, built and trained once in the runs
folder), as a user would start from a downloaded audio model.
The recipe's budget is the others' plus its pre-training, so its fine-tuning phase trains as many
steps as FreeMatch (but in `_in_all` rows). Runs with the same seed train on the same labeled batches.

Data sets: letters (experiments/letters, the image config as there), spoken digits (the built-in
config) and instruments (experiments/instruments, read with the spoken_digits config: its
network, clip length, mu and ramp-up), also with 160 unlabeled clips a family instead of 40
(`instruments_large_pool`: the same labels and validation clips).

Usage: python experiments/simclr_freematch/run.py [--data letters instruments ...] [--seeds 0 1 2]
       [--iterations N] [--parallel 2] [--runs DIR]
Writes one table per data set into README.md beside this file.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "letters"))
sys.path.insert(0, str(HERE.parent / "instruments"))
from build_instruments import build as build_instruments  # noqa: E402
from build_letters import build as build_letters  # noqa: E402
from common import (  # noqa: E402
    ALL_LABELS,
    SPEED_OFF,
    add_runs_option,
    gains,
    kept_earlier,
    last_checkpoint,
    machine,
    mean_std,
    merged_rows,
    newest_run,
    per_seed,
    pretrained,
    run_groups,
    runs_at_a_time,
    runs_folder,
    top1,
    write_table,
)

SIMCLR = "learner.hparams.model.regularization_loss_heads.simclr"
SPEED = "data.views.strong.speed=[0.9,1.1]"
# the recipe until 2026-12-06: no labels while SimCLR pre-trains (the supervised loss weighted 0)
LABELS_OFF = (
    "learner.hparams.model.supervised_loss.scheduler={_target_:sesemi.schedulers.weight.LinearRampupScheduler,"
    "stop:0,delay:'${sesemi:max_iterations,${run.pretrain}}'}"
)
SPEED_KEYS = {"data.views.weak.speed", "data.views.strong.speed"}
WEAK_SPEED = "++data.views.weak.speed=[0.9,1.1]"
# name: (config, overrides shared by every row, builder of the data folder or None, budget)
DATASETS = {
    "letters": (
        "image",
        [
            "run.mu=2",
            "backbone=convnet_small",
            "data.views.weak.p_hflip=0.0",
            "data.train.supervised.num_workers=0",
        ],
        build_letters,
        2000,
    ),
    "spoken_digits": ("spoken_digits", [], None, 2400),
    "instruments": ("spoken_digits", [], build_instruments, 2400),
    # the same task (the same labels and validation clips) with four times the unlabeled pool
    "instruments_large_pool": ("spoken_digits", [], partial(build_instruments, extra_unlabeled=120), 2400),
}
ROWS = {
    "supervised": ["method=supervised"],
    "freematch": ["method=freematch"],
    # the audio configs' default method, without and with the speed change
    "flexmatch": ["method=flexmatch"],
    "flexmatch_speed": ["method=flexmatch", SPEED],
    # speed perturbation in the strong view (audio only): the clip 0.9 to 1.1 times as fast
    "freematch_speed": ["method=freematch", SPEED],
    "simclr_freematch": ["method=simclr_freematch", "run.pretrain=0.25", LABELS_OFF],
    "simclr_freematch_half": ["method=simclr_freematch", "run.pretrain=0.5", LABELS_OFF],
    # SimCLR kept on beside FreeMatch after pre-training, as CoMatch and SimMatch keep theirs
    "simclr_freematch_kept": [
        "method=simclr_freematch",
        "run.pretrain=0.25",
        f"{SIMCLR}.scheduler.stop=${{run.num_iterations}}",
        LABELS_OFF,
    ],
    # the method's default from 2026-12-06 to 07: the labels from the first step, beside SimCLR
    # (a quarter of the budget for SimCLR until 2026-12-07)
    "simclr_freematch_labeled": ["method=simclr_freematch", "run.pretrain=0.25"],
    # the method's default since 2026-12-07 (a tenth of the budget for SimCLR) within the others'
    # budget, as a user with a fixed budget runs it
    "simclr_freematch_in_all": ["method=simclr_freematch", "run.pretrain=0.1"],
    "simclr_freematch_kept_labeled": [
        "method=simclr_freematch",
        "run.pretrain=0.25",
        f"{SIMCLR}.scheduler.stop=${{run.num_iterations}}",
    ],
    # experiments/letters' recipe for hard data: rotation prediction beside FlexMatch's pseudo-labels
    "flexmatch_rotation": ["method=flexmatch_rotation"],
    "simclr_freematch_speed": ["method=simclr_freematch", "run.pretrain=0.25", SPEED, LABELS_OFF],
    # SoftMatch: pseudo-labels below the model's usual confidence count with a lower weight
    "softmatch": ["method=softmatch"],
    "softmatch_speed": ["method=softmatch", SPEED],
    # SimMatch: pseudo-labels and features anchored on the labeled clips' embeddings
    "simmatch": ["method=simmatch"],
    "simmatch_speed": ["method=simmatch", SPEED],
    # an ablation: the similarity loss alone, without the labeled embeddings' vote on the pseudo-labels
    "simmatch_no_vote": ["method=simmatch", "learner.hparams.model.regularization_loss_heads.fixmatch.head.smoothing=1"],
    # wider speed ranges in the strong view: 0.75 to 1.33 (a fourth up or down), 0.6 to 1.67
    "flexmatch_speed_wide": ["method=flexmatch", "data.views.strong.speed=[0.75,1.33]"],
    "flexmatch_speed_wider": ["method=flexmatch", "data.views.strong.speed=[0.6,1.67]"],
    # the speed change in the weak view: the labeled clips, the pseudo-labels' view and (built on
    # it) the strong view; with the labels alone, all labels, and a wider range on top
    "flexmatch_speed_weak": ["method=flexmatch", WEAK_SPEED, SPEED_OFF],  # the strong view none of its own
    "flexmatch_speed_weak_strong_wide": ["method=flexmatch", WEAK_SPEED, "data.views.strong.speed=[0.75,1.33]"],
    "supervised_speed_weak": ["method=supervised", WEAK_SPEED],
    "all_labels_speed_weak": ["method=supervised", ALL_LABELS, WEAK_SPEED],
    "all labels": ["method=supervised", ALL_LABELS],
    # students: the labels alone on the labels and a teacher row's pseudo-labels (see STUDENTS)
    "noisy_student": ["method=supervised"],
    "noisy_student_2": ["method=supervised"],
    # from pre-trained weights (common.WORDS): the labels alone, FreeMatch, FlexMatch, all labels, and
    # FlexMatch and the labels alone with the speed change in the weak view
    "supervised_words": ["method=supervised"],
    "freematch_words": ["method=freematch"],
    "flexmatch_speed_words": ["method=flexmatch", SPEED],  # the audio configs' default, with the weights
    "all_labels_words": ["method=supervised", ALL_LABELS],
    "flexmatch_speed_weak_words": ["method=flexmatch", WEAK_SPEED, SPEED_OFF],
    "supervised_speed_weak_words": ["method=supervised", WEAK_SPEED],
}
# a student row: the row of its teacher (same data set, budget and seed)
STUDENTS = {"noisy_student": "freematch", "noisy_student_2": "noisy_student"}
PSEUDO_LABELS = {"threshold": 0.8, "soft_labels": False}  # the teacher's sure pseudo-labels, as classes
HEADER = [
    "| config | iterations | val/top1 (%) | per seed | gain over FreeMatch, per seed | mean gain ± s.e. | wall time per run |",
    "|---|---|---|---|---|---|---|",
]


def _key(override: str) -> str:
    return override.lstrip("+").split("=", 1)[0]


def rows_of(name: str, rows: list[str]) -> list[str]:
    """The rows that apply to a data set: a speed change and spoken-word weights only to audio."""
    audio_only = {row for row in ROWS if row.endswith("_words") or any(_key(o) in SPEED_KEYS for o in ROWS[row])}
    return [row for row in rows if DATASETS[name][0] != "image" or row not in audio_only]


def views_of(config: str, row: str) -> list[str]:
    """The strong view's speed setting for an audio row that does not set it, as it was before it had one."""
    return [] if config == "image" or _key(SPEED_OFF) in map(_key, ROWS[row]) else [SPEED_OFF]


def budget(row: str, iterations: int) -> int:
    """The recipe pre-trains on top of the others' budget (its `run.pretrain` share), so that it
    fine-tunes as long; an `_in_all` row has the others' budget."""
    if row.endswith("_in_all"):
        return iterations
    pretrain = next((float(o.split("=", 1)[1]) for o in ROWS[row] if o.startswith("run.pretrain=")), 0.0)
    return round(iterations / (1 - pretrain))


def budgets(row: str, iterations: int, own: int) -> str:
    """A row's budget as the table states it: a student's after its teachers' (`own` steps each)."""
    return f"{budgets(STUDENTS[row], iterations, own)} + {own}" if row in STUDENTS else str(budget(row, iterations))


def student_data(teacher: dict, folder: Path, data: Path) -> list[str]:
    """Pseudo-labels the pool with a teacher run (once) and returns the overrides that train on
    them: the labels plus the teacher's sure pseudo-labels, in `folder`."""
    if not (folder / "labels.csv").is_file():
        from sesemi.ops.pseudo_dataset import pseudo_dataset

        # the teacher the table reports
        pseudo_dataset(last_checkpoint(teacher), data, folder, device="cpu", **PSEUDO_LABELS)
    prefix = "data.train.supervised.dataset"
    return [f"{prefix}.name=pseudo", f"++{prefix}.root={folder}", f"{prefix}.subset=null"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--iterations", type=int, help="the budget of every data set (default: each one's own)"
    )
    parser.add_argument(
        "--parallel", type=int, default=1, help="runs side by side (one thread each)"
    )
    add_runs_option(parser)
    args = parser.parse_args()
    with runs_folder(args.runs) as runs:
        groups, plan = {}, {}
        for name in args.data:
            config, shared, builder, default_iterations = DATASETS[name]
            iterations = args.iterations or default_iterations
            data = runs / name
            if builder is not None and not data.exists():
                builder(data)
            plan[name] = (iterations, default_iterations)
            for row in rows_of(name, [row for row in args.rows if row not in STUDENTS]):
                overrides = [
                    *shared,
                    *ROWS[row],
                    *views_of(config, row),
                    *pretrained(row, runs),
                    f"run.num_iterations={budget(row, iterations)}",
                ]
                tag = row.replace(" ", "_")
                groups[(name, row)] = [
                    (
                        config,
                        [*overrides, f"run.seed={s}"],
                        runs,
                        f"{name}_{tag}_{iterations}_{s}",
                        data,
                    )
                    for s in args.seeds
                ]
        finished = run_groups(groups, args.parallel)
        for row in [row for row in STUDENTS if row in args.rows]:  # in order: a student teaches the next
            students = {}
            for name, (iterations, own) in plan.items():
                config, shared, _, _ = DATASETS[name]
                tag = f"{name}_{row}_{iterations}"
                students[(name, row)] = [
                    (
                        config,
                        [*shared, *ROWS[row], *views_of(config, row), f"run.num_iterations={own}", f"run.seed={s}",
                         *student_data(teacher, runs / f"{tag}_{s}_pseudo", runs / name)],
                        runs,
                        f"{tag}_{s}",
                        runs / name,
                    )
                    for s, teacher in zip(args.seeds, finished[(name, STUDENTS[row])], strict=True)
                ]
            finished |= run_groups(students, args.parallel)
    for name, (iterations, own) in plan.items():
        lines, every = [], []
        reference = top1(finished[(name, "freematch")]) if "freematch" in args.rows else None
        for row in rows_of(name, args.rows):
            results = finished[(name, row)]
            every += results
            values = top1(results)
            gain = (
                gains(values, reference)
                if reference is not None and row != "freematch"
                else "- | -"
            )
            seconds = sum(r["process_wall_time_s"] for r in results) / len(results)
            lines.append(
                f"| {row} | {budgets(row, iterations, own)} | {mean_std(values)} | {per_seed(values)} | {gain} | {seconds:.0f} s |"
            )
        readme, table = HERE / "README.md", f"{name}_{iterations}"
        kept = merged_rows(readme, table, lines, list(ROWS))
        note = (
            f"{name}: seeds {', '.join(map(str, args.seeds))}, {runs_at_a_time(every, args.parallel)} run(s) at a time; "
            f"{machine(newest_run(every))}{kept_earlier(kept, lines)}."
        )
        write_table(readme, table, note, [*HEADER, *kept])
        print("\n".join([note, *HEADER, *kept]), flush=True)


if __name__ == "__main__":
    main()
