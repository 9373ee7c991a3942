"""Does loading keep up with an audio FixMatch step? `spoken_digits` at mu = 7.

Each step reads 32 labeled clips and 7 x 32 unlabeled ones in a weak and a strong view (480
clips of 1.2 s at 16 kHz). The data sets decode and resample (soxr) each file once into memory
(`cache: auto`); the loaders crop, shift, scale and add noise to the waveforms; the model's
forward turns each batched view into log-mel spectrograms on its device (sesemi/models/backbones/
audio.py), then SpecAugment and the encoder.

1. Loading alone: clips/s of decoding and resampling a file, and of each view on a waveform.
2. The full loop against bare compute: the same training steps fed by the run's loaders
   (`num_workers: auto` and 0) or with batches made beforehand.

3. Long recordings: an unlabeled item of a 10-minute recording, from the file or from the
   preprocess cache, read whole or one stretch of it, its views cropped from the whole
   recording or from that stretch.

Usage: python experiments/loading/audio.py --data DIR [--steps 4] [--rounds 3]
       (DIR: a spoken_digits folder, built with `sesemi fetch spoken_digits`)
       python experiments/loading/audio.py --long-only
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import machine, write_table  # noqa: E402
from run import BATCH, LOOP_HEADER, MU, config, full_loop_rows, rate  # noqa: E402

from sesemi.transforms.audio import is_audio_file, load_audio  # noqa: E402


def loading_rows(cfg, rounds: int) -> list[str]:
    views = instantiate(cfg.data.views)
    rate_hz = int(cfg.data.train.supervised.dataset.sample_rate)
    paths = sorted(str(p) for p in Path(cfg.run.data_root).rglob("*") if is_audio_file(p))[:64]
    waveforms = [torch.from_numpy(load_audio(path, rate_hz)) for path in paths]
    variants = {
        f"decode a file and resample it to {rate_hz} Hz (soundfile, soxr)": (
            lambda p: load_audio(p, rate_hz),
            paths,
        ),
        "weak view (crop or pad, shift, gain)": (views.weak, waveforms),
        "strong view (speed change, weak view, noise, a second clip)": (views.strong, waveforms),
    }
    measured: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (function, items) in variants.items():
            measured[name].append(rate(function, items))
    return [f"| {name} | {statistics.median(values):.0f} |" for name, values in measured.items()]


def long_recording_rows(rounds: int, minutes: int = 10) -> list[str]:
    """CPU per unlabeled item (a weak and a strong view, the `audio` config's) of `minutes`-long
    FLAC recordings at 16 kHz: from the files and from the preprocess cache, read whole with each
    view cropping the whole recording (as before), against one stretch for both views (`MultiView`),
    read from its place in the file (`load_stretch`) or mapped from the cache."""
    import tempfile

    import numpy as np
    import soundfile

    from sesemi import compose
    from sesemi.datasets.audio_cache import AudioCache
    from sesemi.transforms import MultiView
    from sesemi.transforms.audio import load_stretch

    views = instantiate(compose("audio").data.views)
    both = MultiView([views.weak, views.strong])
    folder = Path(tempfile.mkdtemp(prefix="sesemi_long_audio_"))
    cache = AudioCache(folder, 16000)
    generator = np.random.default_rng(0)
    paths = []
    for index in range(4):
        samples = (0.1 * generator.standard_normal(16000 * 60 * minutes)).astype(np.float32)
        paths.append(folder / f"{index}.flac")
        soundfile.write(paths[-1], samples, 16000)
        cache.store(paths[-1], samples)
    entries = [cache.entry(path) for path in paths]

    def each_view(waveform: torch.Tensor) -> tuple:
        return tuple(view(waveform) for view in both.transforms)

    groups = {
        "FLAC files": (paths, {
            "decoded whole, each view crops the recording (before)": lambda p: each_view(torch.from_numpy(load_audio(p, 16000))),
            "decoded whole, one stretch for both views": lambda p: both(torch.from_numpy(load_audio(p, 16000))),
            "one stretch read from its place (sesemi)": lambda p: both(torch.from_numpy(load_stretch(p, 16000, both.segment.length))),
        }),
        "the preprocess cache": (entries, {
            "read whole, each view crops the recording (before)": lambda e: each_view(torch.from_numpy(np.load(e))),
            "read whole, one stretch for both views": lambda e: both(torch.from_numpy(np.load(e))),
            "mapped, one stretch for both views (sesemi)": lambda e: both(torch.from_numpy(np.load(e, mmap_mode="c"))),
        }),
    }
    rows = []
    for group, (items, variants) in groups.items():
        measured: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, function in variants.items():
                measured[name].append(rate(function, items, seconds=2.0))
        before = statistics.median(measured[next(iter(variants))])
        rows.append(f"| **from {group}** | | | |")
        rows += [
            f"| {name} | {statistics.median(values):.0f} | {MU * BATCH / statistics.median(values):.2f} s | "
            f"{statistics.median(values) / before:.0f} x |"
            for name, values in measured.items()
        ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--long-only", action="store_true", help="only the long recordings table (no --data)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    write_table(
        Path(__file__).with_name("README.md"),
        "long-recordings",
        f"Unlabeled items of 10-minute FLAC recordings at 16 kHz, a weak and a strong "
        f"view each (the `audio` config's); medians of {args.rounds} interleaved rounds, one core. {machine()}.",
        [
            f"| item | items per CPU second | {MU} x {BATCH} items (one step) | vs before |",
            "|---|---|---|---|",
            *long_recording_rows(args.rounds),
        ],
    )
    if args.long_only:
        return
    if args.data is None:
        parser.error("--data is required (a spoken_digits folder), unless --long-only")
    cfg = config("spoken_digits", args.data, "auto")
    loading = loading_rows(cfg, args.rounds)
    print("\n".join(loading), flush=True)
    loop = full_loop_rows("spoken_digits", args.data, args.steps, args.rounds, unit="clips")
    print("\n".join(loop), flush=True)
    note = (
        f"spoken_digits, FixMatch, {BATCH} labeled + {MU} x {BATCH} unlabeled clips (1.2 s at 16 kHz) in two "
        f"views a step, {args.steps} steps x {args.rounds} rounds (medians), compute on one thread. {machine()}."
    )
    readme = Path(__file__).with_name("README.md")
    write_table(
        readme,
        "audio-loading",
        note,
        ["| clips per CPU second (one core) | |", "|---|---|", *loading],
    )
    write_table(
        readme,
        "audio-loop",
        note,
        [*LOOP_HEADER, *loop],
    )


if __name__ == "__main__":
    main()
