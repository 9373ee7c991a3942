"""Builds `instruments`: single notes of the General MIDI instruments, labeled by instrument family.

A third real data set, made offline from what Debian ships: every clip is one note played by one
of the recorded instruments of the FluidR3 General MIDI soundfont (package `fluid-soundfont-gm`,
MIT license, Frank Wen et al.), rendered by fluidsynth (package `fluidsynth`, LGPL-2.1), at a
random pitch, loudness and length, with its attack at a random offset, over background noise at
a random signal-to-noise ratio. The class is the instrument's General MIDI family (12 families of
8 instruments each: piano, chromatic percussion, organ, guitar, bass, strings, ensemble, brass,
reed, pipe, synth lead, synth pad). Every split draws from all eight instruments of a family, so
the 10 labels of a class cover its instruments thinly (some not at all) and the unlabeled pool
covers them all; `--held-out 2` keeps two instruments of each family for validation only, a
harder variant where no amount of data from the training instruments closes the gap.
`--extra-unlabeled N` adds N more unlabeled clips per class, drawn after all the others, so that
every other clip (and so train and val) stays the same: a larger pool for the same task. 16 kHz
mono WAV, 1.2 s. Standard layout:

    instruments/train/<family>/       10 labeled clips per class
    instruments/unlabeled/            40 per class, without labels
    instruments/val/<family>/         25 per class (from the held-out instruments with --held-out)
    instruments/train_all/<family>/   train + unlabeled with labels (the all-labels ceiling)

Needs (Debian): apt-get install fluid-soundfont-gm fluidsynth

Usage: python experiments/instruments/build_instruments.py data/instruments [--seed 0] [--extra-unlabeled N]
"""

from __future__ import annotations

import argparse
import random
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SAMPLE_RATE = 16000
CLIP_SECONDS = 1.2
SLOT_SECONDS = 3.0  # one note per slot, long enough for its release to fade before the next
# General MIDI families: programs 8k..8k+7 (0-based)
FAMILIES = [
    "piano",
    "chromatic_percussion",
    "organ",
    "guitar",
    "bass",
    "strings",
    "ensemble",
    "brass",
    "reed",
    "pipe",
    "synth_lead",
    "synth_pad",
]
LABELED, UNLABELED, VAL = 10, 40, 25
PROBE_KEYS = range(28, 85, 4)
TICKS_PER_BEAT = 480  # at MIDI's default 120 beats per minute: 960 ticks per second


def _varlen(value: int) -> bytes:
    """A MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_file(
    notes: list[tuple[int, int, int, float]], slot_seconds: float = SLOT_SECONDS
) -> bytes:
    """A one-track MIDI file playing `(program, key, velocity, seconds)` notes, one per slot."""
    ticks = TICKS_PER_BEAT * 2  # per second
    events, now = bytearray(), 0
    for index, (program, key, velocity, seconds) in enumerate(notes):
        start = round(index * slot_seconds * ticks)
        events += _varlen(start - now) + bytes([0xC0, program])
        events += _varlen(0) + bytes([0x90, key, velocity])
        length = round(seconds * ticks)
        events += _varlen(length) + bytes([0x80, key, 0])
        now = start + length
    events += _varlen(round(slot_seconds * ticks)) + b"\xff\x2f\x00"  # end of track
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_BEAT)
    return header + b"MTrk" + struct.pack(">I", len(events)) + bytes(events)


def render(
    notes: list[tuple[int, int, int, float]], scratch: Path, slot_seconds: float = SLOT_SECONDS
) -> np.ndarray:
    """Renders the notes with fluidsynth (no reverb or chorus) and returns mono float32 samples."""
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        raise SystemExit(
            "needs fluidsynth and the FluidR3 soundfont: apt-get install fluid-soundfont-gm fluidsynth"
        )
    (scratch / "notes.mid").write_bytes(midi_file(notes, slot_seconds))
    command = ["fluidsynth", "-ni", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(SAMPLE_RATE)]
    command += [
        "-F",
        str(scratch / "notes.wav"),
        "-T",
        "wav",
        str(SOUNDFONT),
        str(scratch / "notes.mid"),
    ]
    subprocess.run(command, capture_output=True, check=True)
    samples, rate = soundfile.read(str(scratch / "notes.wav"), dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE, rate
    return samples.mean(axis=1)


def playable_keys(programs: list[int], scratch: Path) -> dict[int, list[int]]:
    """The keys each program sounds at, of 28-84 (some samples stop short of a range's ends)."""
    probes, slot = [(p, k, 100, 0.2) for p in programs for k in PROBE_KEYS], 0.5
    audio = render(probes, scratch, slot)
    step = round(slot * SAMPLE_RATE)
    keys: dict[int, list[int]] = {p: [] for p in programs}
    for index, (program, key, *_) in enumerate(probes):
        if np.abs(audio[index * step : (index + 1) * step]).max() > 1e-3:
            keys[program].append(key)
    return keys


def build(root: Path, seed: int = 0, held_out: int = 0, extra_unlabeled: int = 0) -> None:
    """Writes the data set under `root`; `held_out` instruments per family only in validation,
    `extra_unlabeled` more unlabeled clips per family."""
    rng = random.Random(seed)
    extra_rng = random.Random(f"{seed}-extra")  # so the extra clips leave the others' draws as they were
    noise = np.random.default_rng(seed)
    clips = []  # (split, family, program, key, velocity, seconds)
    with tempfile.TemporaryDirectory() as scratch:
        playable = playable_keys(list(range(8 * len(FAMILIES))), Path(scratch))

    def draw(draws: random.Random, split: str, family: str, pool: list[int], count: int) -> list[tuple]:
        notes = []
        for _ in range(count):
            program = draws.choice(pool)
            keys = playable[program]
            key = draws.randint(keys[0], keys[-1])  # within the probed range, at any key
            notes.append((split, family, program, key, draws.randint(50, 120), draws.uniform(0.3, 1.0)))
        return notes

    extra = []
    for index, family in enumerate(FAMILIES):
        programs = list(range(8 * index, 8 * index + 8))
        rng.shuffle(programs)
        clips += draw(rng, "train", family, programs[held_out:], LABELED)
        clips += draw(rng, "unlabeled", family, programs[held_out:], UNLABELED)
        clips += draw(rng, "val", family, programs[:held_out] or programs[held_out:], VAL)
        extra += draw(extra_rng, "unlabeled", family, programs[held_out:], extra_unlabeled)
    clips += extra  # last, so that every other clip is rendered and finished as without them
    with tempfile.TemporaryDirectory() as scratch:
        audio = render([clip[2:] for clip in clips], Path(scratch))
    slot, length = round(SLOT_SECONDS * SAMPLE_RATE), round(CLIP_SECONDS * SAMPLE_RATE)
    for number, (split, family, program, *_) in enumerate(clips):
        note = audio[number * slot : number * slot + length]
        note = np.pad(note, (0, length - len(note)))
        peak = np.abs(note).max()
        if peak < 1e-4:
            raise SystemExit(f"program {program} rendered silence: is the soundfont complete?")
        offset = rng.randint(0, round(0.2 * SAMPLE_RATE))  # the attack is not always at the start
        note = np.concatenate([np.zeros(offset, np.float32), note[: length - offset]])
        signal = note / peak * rng.uniform(0.3, 0.9)
        rms = float(np.sqrt(np.mean(signal**2)))
        snr_db = rng.uniform(5, 30)
        clip = signal + noise.normal(0, rms / 10 ** (snr_db / 20), length).astype(np.float32)
        name = f"{family}_{number:05d}.wav"
        if split == "val":
            folders = [root / "val" / family]
        else:
            folders = [
                root / "train_all" / family,
                root / "train" / family if split == "train" else root / "unlabeled",
            ]
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            soundfile.write(str(folder / name), np.clip(clip, -1, 1), SAMPLE_RATE, subtype="PCM_16")
    print(f"wrote {len(clips)} clips of {len(FAMILIES)} families under {root}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--held-out",
        type=int,
        default=0,
        choices=range(8),
        help="instruments per family only in validation",
    )
    parser.add_argument(
        "--extra-unlabeled", type=int, default=0, help="more unlabeled clips per family, the rest unchanged"
    )
    arguments = parser.parse_args()
    build(arguments.root, arguments.seed, arguments.held_out, arguments.extra_unlabeled)
