"""Does loading keep up with an audio FixMatch step? `spoken_digits` at mu = 7.

Each step reads 32 labeled clips and 7 x 32 unlabeled ones in a weak and a strong view (480
clips of 1.2 s at 16 kHz). The data sets decode and resample (soxr) each file once into memory
(`cache: auto`); the loaders crop, shift, scale and add noise to the waveforms; the model's
forward turns each batched view into log-mel spectrograms on its device (sesemi/models/backbones/
audio.py), then SpecAugment and the encoder.

1. Loading alone: clips/s of decoding and resampling a file, and of each view on a waveform.
2. The full loop against bare compute: the same training steps fed by the run's loaders
   (`num_workers: auto` and 0) or with batches made beforehand.

Usage: python experiments/loading/audio.py --data DIR [--steps 4] [--rounds 3]
       (DIR: a spoken_digits folder, built with `sesemi fetch spoken_digits`)
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
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
