"""A dataset of image files with labels, robust to unreadable files.

Images of every Pillow mode are read as 8-bit RGB by the range their pixels really have
(`to_rgb`); a file that cannot be read that way (damaged, truncated, empty, a decompression
bomb, a pixel range with no known meaning) is an `ImageReadError` naming why. A small data set
is decoded once and kept in memory as uint8 tensors `[3, H, W]` (`sesemi.datasets.memory_cache`).
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
import os
import threading
import unicodedata
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
from PIL import ExifTags, Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms.v2.functional import pil_to_tensor

from sesemi.datasets.memory_cache import Cache, check_cache, fill_cache
from sesemi.errors import SesemiError, first_line, printable
from sesemi.logs import counted
from sesemi.results import read_regular
from sesemi.transforms.image import ToPILImage
from sesemi.transforms.views import input_side

logger = logging.getLogger(__name__)
SMALL_VIEW = 96  # views below this side keep little of a photo (docs/data.md)

OnError = Literal["skip", "raise"]
UNLABELED = -1

# Modes of 8-bit channels, which Pillow converts to RGB by their colour space (alpha is dropped,
# as torchvision's image loader drops it, but for a shape drawn in alpha alone: see to_rgb).
EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
ALPHA_MODES = frozenset({"LA", "PA", "RGBA", "RGBa"})
SIXTEEN_BIT = 2**16 - 1
THIRTY_ONE_BIT = 2**31 - 1  # the largest value of Pillow's 32-bit integer mode "I"
BIT_DEPTHS = range(8, 32)  # of the data in 16- and 32-bit integer images (`data.bit_depth`)


class ImageReadError(ValueError):
    """An image file that cannot be decoded, or whose pixels have no known range."""


# What Pillow reads: torchvision's image extensions, AVIF, GIF (its first frame), and JPEG's
# other names (`.jfif`, as Windows and browsers save JPEGs; `.jpe`).
IMAGE_EXTENSIONS = (*IMG_EXTENSIONS, ".avif", ".gif", ".jfif", ".jpe")
# Pillow warns of a damaged EXIF block without naming the file, each time the file is read; the
# image reads well (its orientation tag aside), and a folder of such photos would bury the log.
warnings.filterwarnings("ignore", message=r"(Possibly corrupt|Corrupt) EXIF", category=UserWarning)
# Archives a folder of images or recordings may still be packed in.
ARCHIVES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.xz", ".7z", ".rar")
# Photo formats Pillow does not read: their files are left out of a data set with a warning.
UNREAD_PHOTOS = (".heic", ".heif", ".jxl", ".dng", ".cr2", ".nef", ".arw")


def is_image_file(path: str | Path) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def warn_unread_photos(passed: Sequence[str], folders: Sequence[Path], once: bool = False) -> None:
    """Warns about photos of formats sesemi cannot read (HEIC from phones, camera RAW, ...) among
    the files a listing `passed` over: left out silently, a class would lose them. With `once`,
    only about those no data set has reported in this run (a labeled set and its pool both list
    train/)."""
    photos = [path for path in passed if os.path.splitext(path)[1].lower() in UNREAD_PHOTOS]
    if once:
        photos = [path for path in photos if path not in _REPORTED]
        left_out = {path: f"a format sesemi does not read ({os.path.splitext(path)[1]})" for path in photos}
        _REPORTED.update(left_out)
        _append(left_out)
    unread = Counter(os.path.splitext(path)[1].lower() for path in photos)
    if unread:
        counts = ", ".join(f"{count} {extension}" for extension, count in sorted(unread.items()))
        logger.warning(
            "left out %s files under %s: sesemi reads %s; convert them, e.g. to JPEG",
            counts, printable(", ".join(map(str, folders))), " ".join(IMAGE_EXTENSIONS),
        )


def is_wide(mode: str) -> bool:
    """Whether Pillow's `mode` holds integers of more than 8 bits (16 or 32) a channel."""
    return mode.startswith("I;16") or mode == "I"


def _brightest(image: Image.Image) -> tuple[str, int]:
    """How an opened image stores more than 8 bits, and its largest stored value as sesemi reads
    it: "wide" (Pillow's 16- and 32-bit integer modes: the integer), "colour16" (a PNG of 16
    bits a channel, which Pillow reads at 8, the high byte: the brightest 8-bit channel), or
    "other" (8 bits, floats: not looked at, 0)."""
    if is_wide(image.mode):  # numpy's maximum: Pillow's getextrema refuses I;16B, as big-endian TIFFs open
        return "wide", int(np.asarray(image).max())
    if any(str(tile[-1]).endswith(";16B") for tile in image.tile):  # the PNG decoder's raw mode
        return "colour16", int(np.asarray(image.convert("RGB")).max())
    return "other", 0


def check_bit_depth(bit_depth: Any) -> int | None:
    """`bit_depth` (`data.bit_depth`: None, or the bits of the data in 16- and 32-bit integer
    images), refused in one line when it is no such number."""
    if bit_depth is None:
        return None
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, int) or bit_depth not in BIT_DEPTHS:
        raise SesemiError(
            f"data.bit_depth must be a whole number of bits from {BIT_DEPTHS[0]} to {BIT_DEPTHS[-1]} "
            f"(e.g. 12 for a 12-bit camera's images), or null, not {bit_depth!r}"
        )
    return bit_depth


def _gray(levels: np.ndarray) -> Image.Image:
    """Gray levels in [0, 1] as an 8-bit RGB image."""
    return Image.fromarray(np.round(levels * 255).astype(np.uint8)).convert("RGB")


def drawn_in_alpha(image: Image.Image) -> tuple[int, int, int, int] | None:
    """The background to lay an RGBA image on, when its colour channels hold one flat
    colour and alpha alone varies: a glyph, icon or drawing on a transparent background, as an
    HTML canvas or a font renderer saves it, which dropping alpha would leave blank. White under
    a dark colour, black under a light one; None for any other image (alpha is dropped)."""
    extrema = image.getextrema()
    colour, (transparent, opaque) = [low for low, high in extrema[:3] if low == high], extrema[3]
    if len(colour) < 3 or transparent == opaque:
        return None
    red, green, blue = colour
    return (255, 255, 255, 255) if 299 * red + 587 * green + 114 * blue < 128_000 else (0, 0, 0, 255)


def to_rgb(image: Image.Image, bit_depth: int | None = None) -> Image.Image:
    """An image of any Pillow mode as 8-bit RGB, by the range its pixels really have.

    - 8-bit modes (1, L, P, RGB, CMYK, YCbCr, LAB, HSV, and LA, PA, RGBA with alpha): Pillow's
      conversion of their colour space; alpha (and a palette's transparency) is dropped, but
      for a shape drawn in alpha alone (see `drawn_in_alpha`), which is laid on a background.
    - 16-bit integers (I;16, I;16B, I;16L, I;16N): 0..65535 is 0..255.
    - 32-bit integers (I): by the data's bit depth; 16-bit data stored as I (how Pillow opens
      some 16-bit PGM and TIFF files) keeps its 0..65535 scale, wider data is on the scale of
      the type (0..2^31-1). Negative values are refused: they have no place on either scale.
    - Floats (F): values in [0, 1] are 0..255. Other values (or NaN) are refused rather than
      stretched: an image's own extremes would make each one look different.

    With `bit_depth` (the run's `data.bit_depth`), integers of 16 and 32 bits hold data of
    that many bits: 0..2^bit_depth-1 is 0..255 (a 12-bit camera's images saved as 16 bits would
    otherwise read as 0..16), and a larger value is refused.

    Raises:
        ImageReadError: The mode or the values have no known range.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in EIGHT_BIT_MODES:
        if mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")  # Pillow's route for a palette with transparency
        if image.mode in ALPHA_MODES:
            rgba = image if image.mode == "RGBA" else image.convert("RGBA")
            if (background := drawn_in_alpha(rgba)) is not None:
                return Image.alpha_composite(Image.new("RGBA", rgba.size, background), rgba).convert("RGB")
        return image.convert("RGB")
    if is_wide(mode):
        sixteen = mode != "I"
        values = np.asarray(image, dtype=np.float32 if sixteen else np.int64)
        low, high = int(values.min()), int(values.max())
        if low < 0:
            raise ImageReadError(
                f"it holds 32-bit integers down to {low}; negative values have no brightness: save it as 8 or 16 bits"
            )
        if bit_depth is not None:
            top = 2**bit_depth - 1
            if high > top:
                raise ImageReadError(
                    f"it holds values up to {high}, beyond the {bit_depth} bits of data.bit_depth={bit_depth} "
                    f"(at most {top})"
                )
        else:
            top = SIXTEEN_BIT if sixteen or high <= SIXTEEN_BIT else THIRTY_ONE_BIT
        return _gray(values / top)
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        if not np.isfinite(values).all():
            raise ImageReadError("it holds NaN or infinite float values")
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 1:
            raise ImageReadError(
                f"it holds float values in [{low:g}, {high:g}], not in [0, 1]; rescale it to [0, 1] "
                "or save it as 8 or 16 bits"
            )
        return _gray(values)
    raise ImageReadError(f"its pixel mode {mode} has no known conversion to RGB; save it as RGB or grayscale")


def upright(image: Image.Image) -> Image.Image:
    """`image` turned as its EXIF orientation says, as a photo viewer shows it (phones store
    photos sideways with a tag that says so); an image without one as it is."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        return ImageOps.exif_transpose(image)
    return image


_OPENING = threading.Lock()


def read_image(
    path: str | Path | BinaryIO, min_side: int | None = None, bit_depth: int | None = None
) -> Image.Image:
    """An image file as 8-bit RGB (see `to_rgb`, which takes `bit_depth`), turned as its EXIF
    orientation says: upright, as a photo viewer shows it (phones store photos sideways with a
    tag that says so).

    With `min_side`, a larger image is read smaller, its short side still at least `min_side`
    (what the transform needs: `sesemi.transforms.views.input_side`): a JPEG decoded at 1/2, 1/4
    or 1/8 scale (Pillow's draft mode), any image then shrunk by a whole factor. A phone photo
    trained at 96 px is then decoded several times faster, and a data set of them is small
    enough to keep in memory.

    An image larger than Pillow's `Image.MAX_IMAGE_PIXELS` (a possible decompression bomb) is
    refused before it is decoded, as are damaged, truncated and empty files.

    Raises:
        ImageReadError: The file cannot be read, and why.
    """
    try:
        # Pillow warns of a bomb when it reads the header; the filter that makes the warning an
        # error is process-wide, so threads decoding a data set open their files one at a time.
        with _OPENING, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened as image:
            if min_side:
                image.draft(None, (min_side, min_side))
            image.load()
            image = upright(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageReadError(
            f"{first_line(error).rstrip('.')}; raise PIL.Image.MAX_IMAGE_PIXELS to read it if it is trusted"
        ) from None
    except Exception as error:  # Pillow's decoders raise many types on damaged data
        raise ImageReadError(first_line(error)) from None
    image = to_rgb(image, bit_depth)
    factor = min(image.size) // min_side if min_side else 1
    return image.reduce(factor) if factor >= 2 else image


def subset_dirs(root: str | Path, subset: str | Sequence[str] | None) -> list[Path]:
    """The folders a `subset` names under `root` (all of `root` when None)."""
    root = Path(root)
    if subset is None:
        return [root]
    names = [subset] if isinstance(subset, str) else list(subset)
    return [root / name for name in names]


def require_dir(path: Path) -> None:
    """Fails with one line when a data folder is missing."""
    if not path.is_dir():
        from sesemi.datasets.builtin import missing_data_hint

        raise SesemiError(f"data folder {path} does not exist{missing_data_hint(path)}")


def is_hidden(name: str) -> bool:
    """Whether a file or folder is one that no data set means to hold: hidden ones (`.DS_Store`,
    the `._photo.jpg` that macOS writes beside every file it copies to a USB drive,
    `.ipynb_checkpoints`, sesemi's `.sesemi_cache`) and `__MACOSX`, which unzipping an archive
    made on a Mac leaves behind."""
    return name.startswith(".") or name == "__MACOSX"


def same_name(name: str) -> str:
    """A class folder's name as classes are matched: in Unicode's composed form (NFC), since
    macOS writes `ü` decomposed (NFD) where Linux and Windows keep what was typed, so that a
    `Müll/` made on a Mac and one made elsewhere are one class."""
    return unicodedata.normalize("NFC", name)


def class_folders(folder: Path) -> list[Path]:
    """The class folders in `folder`: its subfolders, except hidden ones (`is_hidden`).

    Raises:
        SesemiError: One is a link to a folder that does not exist (a drive not mounted): the
            class would be missing without a word.
    """
    entries = [entry for entry in folder.iterdir() if not is_hidden(entry.name)]
    for entry in entries:
        if entry.is_symlink() and not entry.exists():
            raise SesemiError(printable(
                f"class folder {entry} is a link to {os.readlink(entry)}, which does not exist; "
                "mount or restore it, or remove the link"
            ))
    return [entry for entry in entries if entry.is_dir()]


def list_files(
    folder: str | Path,
    accept: Callable[[str], bool],
    listed: set[tuple[int, int]] | None = None,
    passed: list[str] | None = None,
) -> list[str]:
    """The accepted files under `folder`, at any depth and not hidden (`is_hidden`), as path
    strings in the order of `sorted(Path(folder).rglob("*"))`; listed with `os.scandir`, so
    that a pool of 100k files costs its path strings and no object per file besides. Symlinked
    folders are followed, each folder listed once: a link back to one already listed (a loop)
    is skipped with a warning.

    Args:
        folder: The folder to list.
        accept: Whether a file name is one to read.
        listed: The (device, inode) of the folders listed so far, for the subfolders' calls.
        passed: Collects the paths of the files not accepted, when given.
    """
    listed = set() if listed is None else listed
    status = os.stat(folder)
    if (status.st_dev, status.st_ino) in listed:
        logger.warning("skipping %s: it leads to a folder already listed (a symlink loop?)", printable(str(folder)))
        return []
    listed.add((status.st_dev, status.st_ino))
    found: list[str] = []
    with os.scandir(folder) as entries:
        ordered = sorted(entries, key=lambda entry: entry.name)
    for entry in ordered:
        if is_hidden(entry.name):
            continue
        if entry.is_dir():
            found.extend(list_files(entry.path, accept, listed, passed))
        elif accept(entry.name):
            found.append(entry.path)
        elif passed is not None:
            passed.append(entry.path)
    return found


def class_samples(
    folders: Sequence[Path],
    accept: Callable[[str], bool],
    kind: str = "image",
    classes: Sequence[str] | None = None,
) -> tuple[list[tuple[str, int]], list[str]]:
    """`(path, class index)` for the accepted files under `<folder>/<class>/`, and the classes.

    Args:
        folders: The folders of class folders.
        accept: Whether a file is one to read.
        kind: What the files are called in messages.
        classes: The class list to number the folders by, e.g. the training set's for a
            validation set; its classes may lack a folder here, but every folder must be one of
            them. None: the subfolder names of all `folders`, sorted.

    Raises:
        SesemiError: A folder is missing, holds no class folders, a class folder holds no
            files, or a class folder is not in `classes`.
    """
    for folder in folders:
        require_dir(folder)
    # Each folder's class folders by their names as compared (`same_name`): `Müll/` written
    # composed and decomposed are two folders of one class.
    directories: list[dict[str, list[Path]]] = []
    for folder in folders:
        directories.append({})
        for directory in sorted(class_folders(folder)):
            directories[-1].setdefault(same_name(directory.name), []).append(directory)
    spelled = {}  # each class's name as first written
    for by_name in directories:
        for name, spellings in by_name.items():
            spelled.setdefault(name, spellings[0].name)
    found = sorted(spelled.values())
    where = printable(", ".join(map(str, folders)))
    loose = sorted(
        entry.name for f in folders for entry in os.scandir(f) if entry.is_file() and accept(entry.name) and not is_hidden(entry.name)
    )
    move = f"the labels are the folder names: move each {kind} into a folder of its class"
    if not found and loose:
        example = printable(folders[0] / "<class>" / loose[0])
        raise SesemiError(f"{where} holds {len(loose)} {kind}s but no class folders; {move}, e.g. {example}")
    if not found:
        raise SesemiError(f"no class folders in {where}; expected <class>/<{kind}>")
    if loose:
        logger.warning(
            "left out %s directly in %s, beside its class folders (%s); %s",
            counted(len(loose), kind), where, printable(loose[0]), move,
        )
    if classes is None:
        classes = found
    else:
        classes = list(classes)
        training = {same_name(name) for name in classes}
        for name in found:
            if same_name(name) not in training:
                where = next(f / name for f in folders if (f / name).is_dir())
                # quoted where spaces begin or end a name (`'fox '`), as this folder's is
                known = ", ".join(c if c == c.strip() else repr(c) for c in classes[:10]) + (", ..." if len(classes) > 10 else "")
                raise SesemiError(printable(
                    f"class {name!r} ({where}) is not a class of the training set ({known}); "
                    "rename or remove the folder, or add the class to the training set"
                ))
    passed: list[str] = []
    samples = []
    listed: dict[int, set[tuple[int, int]]] = {}  # the folders each class's files were found in
    for by_name in directories:
        for label, name in enumerate(classes):
            for directory in by_name.get(same_name(name), []):
                found_in = listed.setdefault(label, set())
                samples += [(path, label) for path in list_files(directory, accept, found_in, passed)]
    for first, second in itertools.combinations(sorted(listed), 2):
        if listed[first] & listed[second]:  # `bass -> low`, `cat/more -> ../dog`, `cat/up -> ..`
            raise SesemiError(printable(
                f"class folders {classes[first]} and {classes[second]} under {where} lead to the same folder "
                f"(through a symbolic link): its {kind}s would have both labels; remove the link"
            ))
    if accept is is_image_file:
        warn_unread_photos(passed, folders, once=True)
    counts = Counter(same_name(classes[label]) for _, label in samples)
    empty = [name for name in found if counts[same_name(name)] == 0]
    if empty:
        empty_folders = [folder for name in empty for by_name in directories for folder in by_name.get(same_name(name), [])]
        raise SesemiError(printable(
            f"class folder(s) {', '.join(empty)} under {', '.join(map(str, folders))} hold no {kind}s"
            f"{left_out_note(passed, empty_folders, kind)}; add {kind}s or remove the folder"
        ))
    return samples, classes


def left_out_note(passed: Sequence[str], directories: Sequence[Path], kind: str) -> str:
    """` (found 40 .png files, which are not <kind>s sesemi reads)`: the commonest extensions
    of the files left out under `directories` (images given to an audio config, say), or ""."""
    prefixes = tuple(os.path.join(directory, "") for directory in directories)
    extensions = Counter(os.path.splitext(path)[1].lower() or "extensionless" for path in passed if path.startswith(prefixes))
    if not extensions:
        return ""
    common = ", ".join(f"{count} {extension}" for extension, count in extensions.most_common(3))
    return f" (found {common} files, which are not {kind}s sesemi reads)"


def present_folders(folders: Sequence[Path]) -> list[Path]:
    """The `folders` that exist, refusing (as `require_dir` does) when none of them does."""
    present = [folder for folder in folders if folder.is_dir()]
    if not present:
        require_dir(folders[0])
    return present


def unlabeled_samples(
    folders: Sequence[Path], accept: Callable[[str], bool], kind: str = "image"
) -> list[tuple[str, int]]:
    """`(path, -1)` for the accepted files under the `folders` that exist (at least one must)."""
    present = present_folders(folders)
    for missing in sorted(set(folders) - set(present)):
        logger.info("no folder %s, reading the others", missing)
    passed: list[str] = []
    samples = []
    for folder in present:
        first_passed = len(passed)
        found = list_files(folder, accept, passed=passed)
        if not found and len(present) > 1:  # a pool folder not filled yet: the pool is the others'
            archives = [path for path in passed[first_passed:] if path.lower().endswith(ARCHIVES)]
            extract = f"; extract {printable(archives[0])} there" if archives else ""
            logger.warning("no %s files in %s: the pool is the other folders' alone%s", kind, printable(folder), extract)
        samples += [(path, UNLABELED) for path in found]
    if accept is is_image_file:
        warn_unread_photos(passed, present, once=True)
    if not samples:
        note = left_out_note(passed, present, f"{kind} file")
        raise SesemiError(printable(f"no {kind} files under {', '.join(map(str, present))}{note}"))
    return samples


NAMED_UNREADABLE = 5  # unreadable files named one by one; more are counted
UNREADABLE_LIST = "unreadable.csv"  # path, why: every file a run could not read, in its folder
_REPORTED: dict[str, str] = {}  # the unreadable (or unread) files of data sets reported in this process, and why
_listing: Path | None = None  # the run's UNREADABLE_LIST, once its folder is made


class UnreadableLog:
    """Warns about the unreadable files of one pass over many (decoding a data set, predicting
    a folder, caching recordings): the first `NAMED_UNREADABLE` by name, then, at `close`, a
    count of the others, so a scraped folder with hundreds of broken files takes six lines."""

    def __init__(self, kind: str, hint: str = ""):
        self.kind, self.hint, self.count = kind, hint, 0

    def skip(self, path: object, why: object) -> None:
        self.count += 1
        if self.count <= NAMED_UNREADABLE:
            shown = printable(path)
            if isinstance(path, (str, os.PathLike)) and os.path.islink(path):  # a TrainingRun's links, say
                shown += f" (a link to {printable(os.path.realpath(path))})"
            logger.warning("skipping unreadable %s %s (%s)", self.kind, shown, printable(why))

    def close(self) -> None:
        if self.count > NAMED_UNREADABLE:
            logger.warning(
                "skipped %d more unreadable %ss (%d in all)%s",
                self.count - NAMED_UNREADABLE, self.kind, self.count, self.hint,
            )


def forget_reported() -> None:
    """Forgets which unreadable files were reported, and where they were listed: the next run of
    this process (a sweep's next job, a notebook's next call) names them in its own log again."""
    global _listing
    _REPORTED.clear()
    _listing = None


def list_unreadable(run_dir: Path | None) -> None:
    """Lists the unreadable files reported so far, and those reported from now on (by this
    process and the loader workers it starts), in `run_dir/unreadable.csv` (`path, why`), or
    stops listing them (None). A resumed run adds the files its earlier start had not listed.

    The list is only ever appended to, and not through a link: a run's folder is sesemi's, but
    a file a user put there is theirs."""
    global _listing
    _listing = None if run_dir is None else Path(run_dir).absolute() / UNREADABLE_LIST
    if _listing is None:
        return
    try:
        known = {row[0] for row in csv.reader(read_regular(_listing).splitlines()) if row}
    except (OSError, UnicodeDecodeError, csv.Error):  # none yet, or not one to read (a FIFO): all are new
        known = set()
    new = {path: why for path, why in _REPORTED.items() if path not in known}
    _append(new)
    if len(new) > NAMED_UNREADABLE:
        logger.warning("the %d files left out above are listed, with why, in %s", len(new), printable(_listing))


def _append(unreadable: dict[str, str]) -> None:
    """Adds rows to the run's list of unreadable files, with its header when it is new."""
    global _listing
    if _listing is None or not unreadable:
        return
    try:
        # O_NONBLOCK: a FIFO put there is refused at once (no reader) instead of waited on
        descriptor = os.open(_listing, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        with open(descriptor, "a", newline="", errors="surrogateescape") as listed:
            writer = csv.writer(listed, lineterminator="\n")
            if listed.tell() == 0:
                writer.writerow(["path", "why"])
            writer.writerows(unreadable.items())
    except OSError as error:  # a link, a FIFO, a full disk: the log still names them
        logger.warning("cannot list unreadable files in %s (%s)", printable(_listing), printable(error.strerror or error))
        _listing = None


def report_unreadable(kind: str, reasons: dict[str, str]) -> None:
    """Warns about the unreadable files of a data set (path -> why) that no data set has
    reported in this process yet (a labeled set and its pool both read train/), and lists them
    in the run's folder (`list_unreadable`)."""
    listed = f"; each is listed, with why, in {printable(_listing)}" if _listing is not None else ""
    log = UnreadableLog(
        kind, f"{listed}; to stop at the first, set on_error=raise on the data sets that read them, e.g. "
        "+data.train.supervised.dataset.on_error=raise +data.unlabeled.on_error=raise"
    )
    new = {path: why for path, why in sorted(reasons.items()) if path not in _REPORTED}
    for path, why in new.items():
        _REPORTED[path] = why
        log.skip(path, why)
    log.close()
    _append(new)


class FileDataset(Dataset):
    """`(input, label)` items read from a list of `(path, label)` samples by `read`.

    An unreadable or corrupt file either stops the run with its name (`on_error="raise"`) or is
    skipped (`on_error="skip"`, the default) with a warning that names it, once in a process, so
    nothing is dropped silently. A data set decoded into memory leaves such files out (refusing
    a class left with none); one read as items are loaded gives the item to the next readable
    file (training), or, with `substitute` off (evaluation: a file counted twice would skew the
    metrics), None, which `sesemi.collation.ReadableOnly` leaves out of the batch. Files found
    unreadable while a data set is decoded are named up to `NAMED_UNREADABLE` and the rest
    counted, so a scraped folder with hundreds of broken files does not bury the log.

    With `cache` "memory", every file is decoded when the data set is built and kept in memory
    (unreadable files are then reported at once); with "auto" only when the decoded data set is
    small (see `sesemi.datasets.memory_cache`); with "none" each file is decoded whenever its
    item is loaded. Subclasses set what `read` needs before calling this constructor.
    """

    kind = "file"  # what the error messages call an item
    substitute = True  # whether an unreadable item read on demand is the next readable file's
    _some_readable = False  # whether a file of the set was read (in this process)
    read_errors: tuple[type[BaseException], ...] = (OSError, ValueError)

    def __init__(
        self,
        samples: Sequence[tuple[str, Any]],
        classes: Sequence[str],
        transform: Callable | None = None,
        on_error: OnError = "skip",
        cache: Cache = "auto",
    ):
        if on_error not in ("skip", "raise"):
            raise SesemiError(f"dataset on_error must be 'skip' or 'raise', not {on_error!r}")
        self.samples = list(samples)
        self.classes = list(classes)
        self.targets = [label for _, label in self.samples]
        self.transform = transform
        self.on_error = on_error
        self.skipped: set[str] = set()
        self._unreadable: dict[str, str] | None = {}  # why each file failed, while the cache fills
        self.memory = fill_cache(len(self.samples), self._stored_sample, check_cache(cache), self.kind)
        unreadable, self._unreadable = self._unreadable, None
        report_unreadable(self.kind, unreadable)
        if self.memory is not None:
            self._leave_out_unreadable()

    def _leave_out_unreadable(self) -> None:
        """Drops the items the memory cache could not decode (rather than let a neighbour stand
        in for each, counted twice in a validation), refusing to leave a class with none."""
        assert self.memory is not None
        kept = [i for i, shape in enumerate(self.memory.shapes) if shape is not None]
        if len(kept) == len(self.samples):
            return
        classes_before = {label for label in self.targets if isinstance(label, int) and label >= 0}
        self.samples = [self.samples[i] for i in kept]
        self.targets = [self.targets[i] for i in kept]
        self.memory.keep(kept)
        emptied = sorted(classes_before - set(self.targets))
        if emptied:
            names = ", ".join(self.classes[label] for label in emptied)
            raise SesemiError(printable(
                f"class folder(s) {names} hold no readable {self.kind}s (see the warnings above); "
                f"add {self.kind}s that can be read, or remove the folder"
            ))

    def read(self, path: str) -> Any:
        """The decoded content of one file."""
        raise NotImplementedError

    def to_stored(self, item: Any) -> Tensor:
        """A decoded item as the memory cache keeps it (a tensor)."""
        return item

    def from_stored(self, stored: Tensor, path: str) -> Any:
        """An item from what the memory cache keeps of it (`to_stored`)."""
        return stored

    def _stored_sample(self, index: int) -> Tensor | None:
        item = self._read_sample(index)
        return None if item is None else self.to_stored(item)

    def _read_sample(self, index: int) -> Any | None:
        """The decoded file of sample `index`, or None when it cannot be read and is skipped."""
        path = self.samples[index][0]
        try:
            return self.read(path)
        except self.read_errors as error:
            if self.on_error == "raise":
                raise SesemiError(printable(
                    f"cannot read {self.kind} {path} ({error}); remove it, or leave the data set's "
                    "on_error at skip (the default) to skip unreadable files"
                )) from None
            if path not in self.skipped:
                self.skipped.add(path)
                if self._unreadable is not None:
                    self._unreadable[path] = printable(error)
                else:
                    report_unreadable(self.kind, {path: printable(error)})
            return None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        for offset in range(len(self.samples)):
            position = (index + offset) % len(self.samples)
            if self.memory is None:
                item = self._read_sample(position)
            else:
                stored = self.memory[position]
                item = None if stored is None else self.from_stored(stored, self.samples[position][0])
            if item is None:
                if not self.substitute and self._some_readable:
                    return None
                continue  # to the next file: it stands in, or (evaluation) shows the set is not all unreadable
            self._some_readable = True
            if offset and not self.substitute:
                return None  # the file at `index` is left out, not scored as this one
            if self.transform is not None:
                item = self.transform(item)
            return item, self.samples[position][1]
        folder = os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path, _ in self.samples])
        raise SesemiError(
            f"none of the {counted(len(self.samples), self.kind)} of the data set in {folder} can be read "
            "(the warnings above say why): replace them, or leave that folder out"
        )


_TO_PIL = ToPILImage()


class ImageDataset(FileDataset):
    """`(image, label)` items: files read with Pillow as 8-bit RGB (`read_image`), whose
    `image.info["filename"]` is the file's path (before the transform, as in sesemi 0.3).

    A large image is read at the size the transform needs (`read_image`'s `min_side`, from
    `input_side(transform)`). A data set kept in memory (`cache`) holds uint8 tensors `[3, H, W]`;
    each item is a PIL image made from its tensor without decoding the file again.
    """

    kind = "image"
    read_errors = (ImageReadError, OSError)

    def __init__(
        self,
        samples: Sequence[tuple[str, Any]],
        classes: Sequence[str],
        transform: Callable | None = None,
        on_error: OnError = "skip",
        cache: Cache = "auto",
        bit_depth: int | None = None,
    ):
        self.bit_depth = check_bit_depth(bit_depth)
        super().__init__(samples, classes, transform, on_error, cache)

    @cached_property
    def min_side(self) -> int | None:
        """The short side `read` reads a large image at: what the transform needs."""
        return input_side(self.transform)

    def read(self, path: str) -> Image.Image:
        image = read_image(path, self.min_side, self.bit_depth)
        image.info["filename"] = path  # as in sesemi 0.3, for transforms that need the file
        return image

    def _probe(self, measure: Callable[[Image.Image], Any], probes: int) -> list[Any]:
        """`measure` of up to `probes` files spread over the data set, opened with Pillow; a
        file it fails on is passed over (unreadable files are reported when they are read)."""
        found = []
        for path, _ in self.samples[:: max(1, len(self.samples) // probes)][:probes]:
            try:
                with Image.open(path) as image:
                    found.append(measure(image))
            except Exception:  # noqa: BLE001  (Pillow's decoders raise many types)
                continue
        return found

    def warn_if_views_are_small(self, probes: int = 16) -> None:
        """Warns when the views shrink photos to a few dozen pixels: the `image` config trains
        on 32 px views, right for small images and a loss of most of a photo's detail.

        It compares the side of the first item's view (made with the random state left as it
        was) with the median short side of `probes` files spread over the data set (read from
        their headers), and speaks when the view is under `SMALL_VIEW` and the images are four
        times as large and at least `4 * SMALL_VIEW // 3` (128 px)."""
        from pytorch_lightning.utilities.seed import isolate_rng

        try:
            with isolate_rng(include_cuda=False):
                view = self[0][0]
        except SesemiError:  # with on_error=raise, an unreadable file stops the run where it is read
            return
        view = view[0] if isinstance(view, tuple | list) else view
        if not isinstance(view, Tensor) or view.ndim != 3 or min(view.shape[-2:]) >= SMALL_VIEW:
            return
        sides = self._probe(lambda image: min(image.size), probes)
        side, image_side = min(view.shape[-2:]), int(np.median(sides)) if sides else 0
        if image_side >= max(4 * side, 4 * SMALL_VIEW // 3):
            logger.warning(
                "the labeled images are about %d px on their short side and the views train on %d px: "
                "most of their detail is lost; for photos set data.views.weak.crop_dim=%d or more "
                "(with backbone=resnet18; docs/data.md)",
                image_side, side, SMALL_VIEW,
            )

    def warn_if_dark(self, probes: int = 16) -> None:
        """Warns when the images are files of more than 8 bits whose values all stay under
        2^14: most likely data of 10, 12 or 14 bits (a scientific camera's) in 16-bit files,
        which the 16-bit scale reads as a few dozen gray levels. Gray ones (16- and 32-bit
        integers) `bit_depth` reads on their own scale, and with it set nothing is said; colour
        PNGs of 16 bits a channel Pillow reads at 8 bits, and they must be scaled. It reads
        `probes` files spread over the data set; a data set of other files, or of a mix, is
        not one camera's, and is passed over."""
        if self.bit_depth is not None:
            return
        found = self._probe(_brightest, probes)
        kinds = {kind for kind, _ in found}
        high = max((value for _, value in found), default=0)
        if kinds == {"wide"} and high < 2**14:
            depth = max(8, 2 * math.ceil(math.log2(high + 1) / 2))  # the even bit depth that holds it
            logger.warning(
                "the labeled images are 16-bit files whose values reach %d at most (of %d): read on that scale "
                "they are dark, with %d gray levels; if they hold %d-bit data, set data.bit_depth=%d (docs/data.md)",
                high, SIXTEEN_BIT, round(high / SIXTEEN_BIT * 255) + 1, depth, depth,
            )
        elif kinds == {"colour16"} and high < 2**14 >> 8:
            logger.warning(
                "the labeled images are colour PNGs of 16 bits a channel, which are read at 8 bits, and reach %d "
                "of 255 at most: they are dark, with %d levels a channel; if they hold data of fewer bits (a "
                "12-bit camera's), scale the values to the full 16 bits, or save the files at 8 (docs/data.md)",
                high, high + 1,
            )

    def to_stored(self, item: Image.Image) -> Tensor:
        return pil_to_tensor(item)

    def from_stored(self, stored: Tensor, path: str) -> Image.Image:
        image = _TO_PIL(stored)
        image.info["filename"] = path
        return image
