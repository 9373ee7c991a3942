"""Builds `letters`: the 26 capital letters printed in the typefaces installed on this machine.

A second real data set for checking defaults, made offline: every image is a capital letter
rendered in a real font (serif, sans, monospace, script, display faces), at a random size,
angle and position, with random ink and paper tones, blur and noise, at 32x32 px. Fonts are
split so that validation uses typefaces never seen in training, which makes it harder than it
looks. Standard layout:

    letters/train/<A..Z>/        4 labeled images per class
    letters/unlabeled/           100 per class, without labels
    letters/val/<A..Z>/          30 per class, from held-out fonts
    letters/train_all/<A..Z>/    train + unlabeled with labels (the all-labels ceiling)

Needs fonts with Latin coverage, e.g. (Debian):
    apt-get install fonts-noto-core fonts-urw-base35 fonts-liberation2 fonts-freefont-ttf \
        fonts-crosextra-carlito fonts-crosextra-caladea fonts-cantarell fonts-linuxlibertine fonts-texgyre

Usage: python experiments/letters/build_letters.py data/letters
"""

from __future__ import annotations

import argparse
import random
import string
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SIZE = 32
CLASSES = string.ascii_uppercase
LABELED, UNLABELED, VAL = 4, 100, 30
SEED = 0


def latin_fonts() -> list[str]:
    """Font files that cover English, one per (family, style), sorted for reproducibility."""
    listing = subprocess.run(
        ["fc-list", ":lang=en", "file", "family", "style"], capture_output=True, text=True, check=True
    ).stdout
    fonts = {}
    for line in listing.splitlines():
        path, _, rest = line.partition(":")
        if path.endswith((".ttf", ".otf", ".t1", ".pfb")) and "Emoji" not in rest and "Symbol" not in rest:
            fonts.setdefault(rest.strip(), path.strip())
    return sorted(fonts.values())


def render(letter: str, font_path: str, rng: random.Random, noise: np.random.Generator) -> Image.Image:
    """One noisy 32x32 grayscale print of `letter`."""
    canvas = 64
    font = ImageFont.truetype(font_path, rng.randint(30, 46))
    paper, ink = rng.randint(150, 255), rng.randint(0, 100)
    if rng.random() < 0.5:
        paper, ink = 255 - paper, 255 - ink
    image = Image.new("L", (canvas, canvas), paper)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), letter, font=font)
    x = (canvas - (right - left)) / 2 - left + rng.uniform(-4, 4)
    y = (canvas - (bottom - top)) / 2 - top + rng.uniform(-4, 4)
    draw.text((x, y), letter, fill=ink, font=font)
    image = image.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR, fillcolor=paper)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))
    image = image.resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) + noise.normal(0, rng.uniform(0, 12), (SIZE, SIZE))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def has_glyphs(font_path: str) -> bool:
    """Whether the font draws distinct capital letters (not one placeholder box for all)."""
    try:
        font = ImageFont.truetype(font_path, 32)
    except OSError:
        return False
    masks = {bytes(font.getmask(c)) for c in "AOX"}
    return len(masks) == 3 and all(masks)


def build(root: Path) -> None:
    rng = random.Random(SEED)
    noise = np.random.default_rng(SEED)
    fonts = [f for f in latin_fonts() if has_glyphs(f)]
    if len(fonts) < 10:
        raise SystemExit(f"found {len(fonts)} usable fonts; install more (see this file's docstring)")
    rng.shuffle(fonts)
    held_out = max(3, len(fonts) // 4)
    val_fonts, train_fonts = fonts[:held_out], fonts[held_out:]
    print(f"{len(train_fonts)} training fonts, {len(val_fonts)} validation fonts")
    counter = 0
    for label in CLASSES:
        for split, count, pool in (("train", LABELED, train_fonts), ("unlabeled", UNLABELED, train_fonts), ("val", VAL, val_fonts)):
            for _ in range(count):
                image = render(label, rng.choice(pool), rng, noise)
                counter += 1
                name = f"{label}_{counter:05d}.png"
                if split == "val":
                    folders = [root / "val" / label]
                else:
                    folders = [root / "train_all" / label, root / "train" / label if split == "train" else root / "unlabeled"]
                for folder in folders:
                    folder.mkdir(parents=True, exist_ok=True)
                    image.save(folder / name)
    print(f"wrote {counter} images under {root}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    build(parser.parse_args().root)
