"""Uncurated unlabeled pools: out-of-class files and long-tailed pools, against clean pools.

For each data set (`digits`, `letters`, `spoken_digits`), builds the pool variants of
build_pools.py and trains, through the real CLI and for several seeds:

- open set: half the classes labeled and validated, the pool holding every class (`open`)
  against the pool of the labeled classes only (`clean`);
- skewed pool: every class labeled and validated, the pool long-tailed with imbalance ratio 10
  and 50 (`skew10`, `skew50`) against the data set's own balanced pool (`balanced`) and balanced
  pools of the long-tailed ones' sizes (`even10`, `even50`: what the smaller pool alone costs);
- long-tailed data: labels, pool and validation all long-tailed with imbalance ratio 10, the
  labels a random sample (`tail10`), scored by val/top1 as a user sees it and by balanced accuracy;

each with the labels alone (`supervised`), the data configs' default method (`flexmatch`),
flexmatch with the safeguards for uncurated pools (`flexmatch_safe`) and the other arms of ARMS;
on audio, arms ending in `_words` start from pre-trained weights (common.words_network). Writes
the tables into README.md beside this file.

Usage: python experiments/uncurated_pools/run.py [--data digits letters spoken_digits]
    [--benchmarks open skew] [--arms supervised flexmatch flexmatch_safe] [--seeds 0 1 2]
    [--pools clean open ...] [--parallel 2] [--runs DIR] [--skip ARM:BENCHMARK ...] [--tables-only]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "letters"))
from build_pools import build  # noqa: E402
from common import (  # noqa: E402
    SPEED_OFF,
    machine,
    mean_std,
    merged_rows,
    newest_run,
    per_seed,
    pretrained,
    run_config,
    run_many,
    runs_at_a_time,
    write_table,
)

from sesemi.datasets.builtin import fetch  # noqa: E402

# The config and budget of each data set: digits as the demo runs it (`open_sesemi -cn digits`),
# letters and spoken digits as experiments/letters and spoken_digits_ssl run them.
DATA = {
    "digits": ("digits", []),
    "letters": (
        "image",
        [
            "run.num_iterations=2000",
            "run.mu=2",
            "backbone=convnet_small",
            "data.views.weak.p_hflip=0.0",
            "data.train.supervised.num_workers=0",
        ],
    ),
    # measured before the strong view's speed change became the audio default
    "spoken_digits": ("spoken_digits", ["run.num_iterations=2400", SPEED_OFF]),
}
HEAD = "learner.hparams.model.regularization_loss_heads.fixmatch.head"
# The safeguards for uncurated pools, as options of the FixMatch head.
SAFE = [f"++{HEAD}.outlier_filter=true", "learner.hparams.model.head={_target_:sesemi.models.heads.OneVsAllHead}"]
ARMS = {
    "supervised": ["method=supervised"],
    "flexmatch": ["method=flexmatch"],
    "flexmatch_safe": ["method=flexmatch", *SAFE],
    # an ablation: without distribution alignment, which spreads the pool's pseudo-labels evenly
    # over the labeled classes, out-of-class files included
    "flexmatch_no_alignment": ["method=flexmatch", f"{HEAD}.distribution_alignment=false"],
    # the pool's own class prior, estimated as training goes, in place of distribution
    # alignment's uniform one (for pools more skewed than the labels)
    "flexmatch_pool_prior": ["method=flexmatch", f"{HEAD}.distribution_alignment=false", f"++{HEAD}.pool_prior=true"],
    # rotation prediction beside the pseudo-labels: a task every file of the pool serves,
    # out-of-class ones included (experiments/letters: +38.1 on letters' 26 classes)
    "flexmatch_rotation": ["method=flexmatch_rotation"],
    # IOMatch's open-set head: detectors judge the outliers, and an open-set classifier learns
    # from every file of the pool, outliers as an "other" class
    "iomatch": ["method=iomatch"],
    # both: IOMatch's open-set terms in place of flexmatch_rotation's plain pseudo-label loss
    "iomatch_rotation": ["method=flexmatch_rotation", f"{HEAD}._target_=sesemi.models.heads.loss.IOMatchLossHead"],
    # audio only, from the weights of a network trained on 25 other spoken words (common.WORDS, as
    # in experiments/simclr_freematch): a better model from the same labels, for the skewed pool
    "supervised_words": ["method=supervised"],
    "flexmatch_words": ["method=flexmatch"],
    "flexmatch_pool_prior_words": ["method=flexmatch", f"{HEAD}.distribution_alignment=false", f"++{HEAD}.pool_prior=true"],
}
AUDIO = {"spoken_digits"}
BENCHMARKS = {
    "open": ("clean", ["open"]),
    "skew": ("balanced", ["skew10", "skew50", "even10", "even50"]),
    "tail": ("tail10", []),
}


def source(name: str, runs: Path) -> Path:
    """The data set's folder under `runs` (built on first use)."""
    if name == "letters":
        from build_letters import build as build_letters

        target = runs / "data" / "letters"
        if not (target / "val").is_dir():
            build_letters(target)
        return target
    return fetch(name, runs / "data")


def pools(name: str, benchmark: str, runs: Path) -> dict[str, Path]:
    """The data folder of each pool of a benchmark (the reference pool first)."""
    origin = source(name, runs)
    reference, others = BENCHMARKS[benchmark]
    folders = {}
    for pool in [reference, *others]:
        folders[pool] = origin if pool == "balanced" else build(origin, runs / "data" / f"{name}_{pool}", pool)
    return folders


def balanced(result: dict) -> float:
    """Balanced accuracy: the mean of the per-class recalls of the final validation."""
    return statistics.mean(result["per_class_top1"])


def worst(result: dict) -> float:
    """The recall of the worst class."""
    return min(result["per_class_top1"])


def paired(values: list[float], reference: list[float]) -> str:
    """Each seed's difference to `reference` (same seeds) and their mean, in points."""
    points = [100 * (v - r) for v, r in zip(values, reference, strict=True)]
    return f"{' / '.join(f'{p:+.1f}' for p in points)} (mean {statistics.mean(points):+.1f})"


def pool_used(results: list[dict]) -> str:
    """The share of the pool pseudo-labeled and judged out of class, as the runs report it."""
    stats = [r.get("unlabeled") for r in results]
    if not all(stats):
        return "-"
    used = statistics.mean(sum(s["pseudo_labeled_per_class"].values()) for s in stats)
    if any(s["out_of_class"] is None for s in stats):
        return f"{100 * used:.0f}% / -"
    outliers = statistics.mean(s["out_of_class"] for s in stats)
    return f"{100 * used:.0f}% / {100 * outliers:.0f}%"


def plan(names: list[str], benchmarks: list[str], arms: list[str], seeds: list[int], runs: Path) -> list[tuple]:
    """Every run as `(name, benchmark, arm, pool, seed, job)`, seed by seed: with a budget cut
    short, every arm has its first seeds. The labels alone do not read the pool: they run once,
    on the reference pool's labels."""
    every = []
    for seed in seeds:
        for name in names:
            config, budget = DATA[name]
            for benchmark in benchmarks:
                folders = pools(name, benchmark, runs)
                for arm in arms:
                    if arm.endswith("_words") and name not in AUDIO:
                        continue
                    for pool in list(folders)[:1] if arm == labels_alone(arm) else folders:
                        overrides = [*ARMS[arm], *budget, *pretrained(arm, runs), f"run.seed={seed}"]
                        job = (config, overrides, runs, f"{name}_{pool}_{arm}_{seed}", folders[pool])
                        every.append((name, benchmark, arm, pool, seed, job))
    return every


def started(job: tuple) -> bool:
    """Whether the job's run folder exists (finished, or running in another process)."""
    return (job[2] / job[3]).exists()


def finished(job: tuple) -> dict | None:
    """The job's results, when it has finished."""
    if not any((job[2] / job[3]).rglob("results.json")):
        return None
    return run_config(*job)


def labels_alone(arm: str) -> str:
    """The arm of the labels alone that `arm` is compared with: the one from the same weights."""
    return "supervised_words" if arm.endswith("_words") else "supervised"


def table(benchmark: str, results: dict[tuple[str, str], dict[int, dict]], reference: str) -> list[str]:
    """The rows of a benchmark's table over the seeds each row has (paired cells: common seeds)."""
    score = balanced if benchmark == "skew" else (lambda r: r["metrics"]["val/top1"])
    rows = []
    for (arm, pool), by_seed in results.items():
        alone = results.get((labels_alone(arm), reference), {})
        seeds = sorted(by_seed)
        values = [score(by_seed[s]) for s in seeds]
        seconds = statistics.mean(by_seed[s]["process_wall_time_s"] for s in seeds)
        to_reference = "-"
        base = results.get((arm, reference), {})
        common = [s for s in seeds if s in base]
        if arm != labels_alone(arm) and pool != reference and common:
            to_reference = paired([score(by_seed[s]) for s in common], [score(base[s]) for s in common])
        if benchmark == "tail":  # one pool; the long tail's other measure in this column
            to_reference = f"{mean_std([balanced(by_seed[s]) for s in seeds])} ({per_seed([balanced(by_seed[s]) for s in seeds])})"
        middle = "-"
        if benchmark == "skew":
            middle = per_seed([worst(by_seed[s]) for s in seeds])
        elif arm != labels_alone(arm) and (shared := [s for s in seeds if s in alone]):
            middle = paired([score(by_seed[s]) for s in shared], [score(alone[s]) for s in shared])
        label = "labels only" if arm == labels_alone(arm) else pool
        cells = f"{mean_std(values)} | {per_seed(values)} | {middle} | {to_reference} | {pool_used(list(by_seed.values()))}"
        rows.append(f"| `{arm}` | {label} | {', '.join(map(str, seeds))} | {cells} | {seconds:.0f} s |")
    return rows


def flags(result: dict, pool: Path) -> list[str]:
    """How a run's model tells the pool's out-of-class files from its in-class ones, by the truth
    in pool.csv: the share of each flagged (`Prediction.looks_out_of_class`), and the AUROC of the
    detectors' `out_of_class` score and of 1 - the top class probability (the score a model
    without detectors has); `-` where the model has no detectors."""
    from sklearn.metrics import roc_auc_score

    from sesemi.predictor import load

    truth = {row["file"]: row["in_class"] == "1" for row in csv_rows(pool)}
    predictions = {Path(p.input).name: p for p in load(result["run_dir"], device="cpu").predict(pool / "unlabeled", batch_size=256)}
    names = sorted(truth)
    outside = [not truth[name] for name in names]
    uncertainty = roc_auc_score(outside, [1 - predictions[name].score for name in names])
    if predictions[names[0]].out_of_class is None:
        return ["-", "-", "-", f"{uncertainty:.3f}"]
    flagged = [bool(predictions[name].looks_out_of_class) for name in names]
    share = lambda wanted: 100 * statistics.mean(f for f, o in zip(flagged, outside, strict=True) if o == wanted)  # noqa: E731
    detectors = roc_auc_score(outside, [predictions[name].out_of_class for name in names])
    return [f"{share(True):.1f}", f"{share(False):.1f}", f"{detectors:.3f}", f"{uncertainty:.3f}"]


def csv_rows(pool: Path) -> list[dict]:
    """The rows of a pool's pool.csv."""
    return list(csv.DictReader((pool / "pool.csv").open()))


HEADERS = {
    "open": "| arm | pool | seeds | val/top1 (%) | per seed | gain over the labels alone, per seed | to the clean pool, per seed | pool pseudo-labeled / judged out of class | wall time per run |",
    "skew": "| arm | pool | seeds | balanced accuracy (%) | per seed | worst class's recall (%), per seed | to the balanced pool, per seed | pool pseudo-labeled / judged out of class | wall time per run |",
    "tail": "| arm | data | seeds | val/top1 (%) | per seed | gain over the labels alone, per seed | balanced accuracy (%) (per seed) | pool pseudo-labeled / judged out of class | wall time per run |",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS), choices=list(BENCHMARKS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1, help="runs side by side (one thread each)")
    parser.add_argument("--runs", type=Path, default=Path("runs/uncurated_pools"), help="finished runs here are reused")
    parser.add_argument("--skip", nargs="*", default=[], help="ARM:BENCHMARK pairs not to run, e.g. flexmatch_safe:skew")
    pool_names = sorted({pool for reference, others in BENCHMARKS.values() for pool in (reference, *others)})
    parser.add_argument("--pools", nargs="+", choices=pool_names, help="only these pools of the benchmarks (default: all), e.g. balanced even50")
    parser.add_argument("--tables-only", action="store_true", help="tabulate the finished runs, run nothing")
    args = parser.parse_args()
    every = plan(args.data, args.benchmarks, args.arms, args.seeds, args.runs)
    every = [entry for entry in every if f"{entry[2]}:{entry[1]}" not in args.skip]
    if args.pools:
        every = [entry for entry in every if entry[3] in args.pools]
    if not args.tables_only:
        run_many([entry[-1] for entry in every if not started(entry[-1])], args.parallel)
    readme = Path(__file__).with_name("README.md")
    for name in args.data:
        for benchmark in args.benchmarks:
            results: dict[tuple[str, str], dict[int, dict]] = {}
            for entry_name, entry_benchmark, arm, pool, seed, job in every:
                if (entry_name, entry_benchmark) == (name, benchmark) and (result := finished(job)) is not None:
                    results.setdefault((arm, pool), {})[seed] = result
            if not results:
                continue
            rows = table(benchmark, results, BENCHMARKS[benchmark][0])
            print("\n".join(rows), flush=True)
            done = [r for by_seed in results.values() for r in by_seed.values()]
            swept = sorted({arm for arm, _ in results}, key=list(ARMS).index)
            note = (
                f"{name}, {runs_at_a_time(done, args.parallel)} run(s) at a time; mean ± std over the seeds listed. {machine(newest_run(done))}"
                f" ({', '.join(f'`{arm}`' for arm in swept)}; other arms keep the rows of their own sweep)."
            )
            header = [HEADERS[benchmark], "|---" * 9 + "|"]
            write_table(readme, f"{name}_{benchmark}", note, [*header, *merged_rows(readme, f"{name}_{benchmark}", rows, list(ARMS), 2)])
            if benchmark == "open":
                folder = pools(name, "open", args.runs)["open"]
                lines = []
                for arm in [arm for arm in swept if arm != labels_alone(arm)]:
                    for seed, result in sorted(results.get((arm, "open"), {}).items()):
                        lines.append(f"| `{arm}` | {seed} | {' | '.join(flags(result, folder))} |")
                header = [
                    "| arm | seed | out-of-class files flagged (%) | in-class files flagged (%) | AUROC of out_of_class | AUROC of 1 - top probability |",
                    "|---|---|---|---|---|---|",
                ]
                note = f"{name}: the models trained on the open pool, on its {len(csv_rows(folder))} unlabeled files."
                write_table(readme, f"{name}_flags", note, [*header, *merged_rows(readme, f"{name}_flags", lines, list(ARMS), 2)])


if __name__ == "__main__":
    main()
