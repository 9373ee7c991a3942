"""ImageDataset (sesemi/datasets/images.py): every mode read by its range; unreadable files are
skipped or reported."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sesemi.datasets.image_file import image_file
from sesemi.datasets.image_folder import image_folder
from sesemi.datasets.images import ImageDataset, ImageReadError, read_image, to_rgb
from sesemi.errors import SesemiError, printable


@pytest.fixture
def corrupt_tree(image_tree):
    """The image tree plus two unreadable files in train/green: garbage bytes and a truncated PNG."""
    folder = image_tree.root / "train" / "green"
    (folder / "x.png").write_bytes(b"this is not a png file at all" * 10)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 255, 0)).save(buffer, format="PNG")
    (folder / "y.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return image_tree


def _index(data, name):
    return next(i for i, (path, _) in enumerate(data.samples) if path.endswith(name))


@pytest.mark.parametrize("name", ["x.png", "y.png"])
def test_skip_returns_a_readable_substitute_and_records_it(corrupt_tree, name):
    """on_error="skip", each file read when its item is loaded: the item is another readable
    image, and the file is listed in `.skipped`."""
    data = image_folder(str(corrupt_tree.root), "train", on_error="skip", cache="none")
    index = _index(data, name)
    image, label = data[index]
    assert isinstance(image, Image.Image) and image.size == (16, 16)
    assert label in range(len(data.classes))
    assert any(path.endswith(name) for path in data.skipped)
    assert {path.rsplit("/", 1)[-1] for path in data.skipped} <= {"x.png", "y.png"}


def test_skip_leaves_out_what_the_memory_cache_cannot_decode(corrupt_tree):
    """on_error="skip", decoded into memory: the unreadable files are left out (a neighbour
    standing in for each would count twice in a validation), and listed in `.skipped`."""
    every = image_folder(str(corrupt_tree.root), "train", on_error="skip", cache="none")
    data = image_folder(str(corrupt_tree.root), "train", on_error="skip", cache="memory")
    assert [p for p, _ in data.samples] == [p for p, _ in every.samples if not p.endswith(("x.png", "y.png"))]
    assert data.targets == [label for _, label in data.samples]
    assert [data[i][1] for i in range(len(data))] == data.targets
    assert {path.rsplit("/", 1)[-1] for path in data.skipped} == {"x.png", "y.png"}


def test_a_class_whose_files_are_all_unreadable_is_refused(image_tree):
    """Its folder is not empty, but the model would have a class it never saw an example of:
    refused as an empty class folder is, once decoding has shown it."""
    for path in (image_tree.root / "train" / "red").iterdir():
        path.write_bytes(b"not an image")
    with pytest.raises(SesemiError, match=r"class folder\(s\) red hold no readable images"):
        image_folder(str(image_tree.root), "train", cache="memory")


def test_an_unreadable_link_is_named_with_the_file_it_leads_to(tmp_path, caplog):
    """A data set of links (a TrainingRun's, or your own): the warning names the file to fix."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "scan 7.png").write_bytes(b"not an image")
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "000007_scan 7.png").symlink_to(tmp_path / "mine" / "scan 7.png")
    Image.new("RGB", (16, 16), (1, 2, 3)).save(tmp_path / "pool" / "fine.png")
    image_file(str(tmp_path), "pool", on_error="skip", cache="memory")
    assert f"000007_scan 7.png (a link to {tmp_path / 'mine' / 'scan 7.png'})" in caplog.text


def test_skip_substitute_carries_its_own_label(corrupt_tree):
    """The substitute's label is the label of the image returned, not of the broken file."""
    data = image_folder(str(corrupt_tree.root), "train", on_error="skip", cache="none")
    index = _index(data, "y.png")  # last green file; the next sample is the first red one
    _, label = data[index]
    assert label == data.classes.index("red")


@pytest.mark.parametrize("name", ["x.png", "y.png"])
def test_raise_names_the_file(corrupt_tree, name):
    """on_error="raise": a SesemiError naming the unreadable file, when its item is loaded."""
    data = image_folder(str(corrupt_tree.root), "train", on_error="raise", cache="none")
    with pytest.raises(SesemiError, match=name.replace(".", r"\.")):
        data[_index(data, name)]


def test_raise_names_the_file_when_the_data_set_is_decoded_into_memory(corrupt_tree):
    with pytest.raises(SesemiError, match=r"cannot read image .*x\.png"):
        image_folder(str(corrupt_tree.root), "train", on_error="raise", cache="memory")


def test_readable_items_are_unaffected_by_on_error_raise(corrupt_tree):
    """Good files still load with on_error="raise"."""
    data = image_folder(str(corrupt_tree.root), "train", on_error="raise", cache="none")
    image, label = data[0]
    assert image.size == (16, 16) and label == 0


def test_nothing_readable_is_an_error_naming_the_folder(tmp_path):
    """A data set of only broken files fails instead of looping or returning None, in one line
    that says where they are (read as items are loaded: the first item finds no stand-in)."""
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "a.png").write_bytes(b"junk")
    (tmp_path / "pool" / "b.png").write_bytes(b"more junk")
    data = image_file(str(tmp_path), "pool", on_error="skip", cache="none")
    with pytest.raises(SesemiError, match=rf"^none of the 2 images of the data set in {tmp_path / 'pool'} can be read"):
        data[0]
    assert len(data.skipped) == 2


def test_bad_on_error_value_is_rejected():
    """Only "skip" and "raise" are accepted."""
    with pytest.raises(SesemiError, match="on_error"):
        ImageDataset([], [], on_error="ignore")


# --- every Pillow mode by its real range -------------------------------------------------------

GRADIENT = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every 8-bit level once
RED = (200, 30, 30)


def _rgb(color) -> np.ndarray:
    return np.broadcast_to(np.array(color, np.uint8), (16, 16, 3))


def _gray(levels: np.ndarray) -> np.ndarray:
    return np.repeat(levels[..., None], 3, axis=2)


def _palette() -> Image.Image:
    image = Image.new("P", (16, 16))
    image.putpalette([*RED, 10, 20, 250])
    image.putdata((GRADIENT % 2).ravel().tolist())
    return image


def _checker() -> np.ndarray:
    return _rgb((10, 20, 250)) * (GRADIENT % 2)[..., None] + _rgb(RED) * (1 - GRADIENT % 2)[..., None]


def _raw(mode: str, values: np.ndarray, dtype: str) -> Image.Image:
    return Image.frombytes(mode, (16, 16), values.astype(dtype).tobytes())


SIXTEEN_BIT = GRADIENT.astype(np.uint32) * 257  # 0..65535, the gradient on the 16-bit scale

# mode -> (an image of that mode, the RGB pixels it must become, tolerance per level)
MODES = {
    "1": (lambda: Image.fromarray(GRADIENT % 2 == 1), _gray((GRADIENT % 2) * 255), 0),
    "L": (lambda: Image.fromarray(GRADIENT), _gray(GRADIENT), 0),
    "LA": (lambda: Image.fromarray(np.stack([GRADIENT, 255 - GRADIENT], axis=2), "LA"), _gray(GRADIENT), 0),
    "P": (_palette, _checker(), 0),
    "PA": (lambda: _palette().convert("PA"), _checker(), 0),
    "RGB": (lambda: Image.new("RGB", (16, 16), RED), _rgb(RED), 0),
    "RGBA": (lambda: Image.new("RGBA", (16, 16), (*RED, 0)), _rgb(RED), 0),  # alpha is dropped
    "CMYK": (lambda: Image.new("RGB", (16, 16), RED).convert("CMYK"), _rgb(RED), 0),
    "YCbCr": (lambda: Image.new("RGB", (16, 16), RED).convert("YCbCr"), _rgb(RED), 2),
    "LAB": (lambda: Image.new("RGB", (16, 16), RED).convert("LAB"), _rgb(RED), 3),
    "HSV": (lambda: Image.new("RGB", (16, 16), RED).convert("HSV"), _rgb(RED), 2),
    "I;16": (lambda: _raw("I;16", SIXTEEN_BIT, "<u2"), _gray(GRADIENT), 0),
    "I;16B": (lambda: _raw("I;16B", SIXTEEN_BIT, ">u2"), _gray(GRADIENT), 0),
    "I;16L": (lambda: _raw("I;16L", SIXTEEN_BIT, "<u2"), _gray(GRADIENT), 0),
    "I;16N": (lambda: _raw("I;16N", SIXTEEN_BIT, "=u2"), _gray(GRADIENT), 0),
    "I": (lambda: Image.fromarray(SIXTEEN_BIT.astype(np.int32)), _gray(GRADIENT), 0),  # 16-bit data
    "F": (lambda: Image.fromarray(GRADIENT.astype(np.float32) / 255), _gray(GRADIENT), 0),
}


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_becomes_rgb_by_its_real_range(mode):
    """Each mode's pixels land where they belong on 0..255: a 16-bit gradient is the same 8-bit
    gradient (not white), a float one in [0, 1] too (not black), colour spaces keep their colour."""
    make, expected, tolerance = MODES[mode]
    image = make()
    assert image.mode == mode
    converted = to_rgb(image)
    assert converted.mode == "RGB" and converted.size == (16, 16)
    difference = np.abs(np.asarray(converted).astype(int) - expected.astype(int))
    assert difference.max() <= tolerance


GLYPH = np.where(GRADIENT % 16 > 7, 255, 0).astype(np.uint8)  # alpha: a shape in stripes, 0 around


def _glyph_palette() -> Image.Image:
    """A GIF-style glyph: palette entries 0 (transparent) and 1 of the same black."""
    image = Image.fromarray((GLYPH > 0).astype(np.uint8), "P")
    image.putpalette([0, 0, 0, 0, 0, 0])
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize(
    ("make", "ink", "paper"),
    [
        (lambda: Image.fromarray(np.dstack([np.zeros_like(GLYPH)] * 3 + [GLYPH]), "RGBA"), 0, 255),
        (lambda: Image.fromarray(np.dstack([np.full_like(GLYPH, 250)] * 3 + [GLYPH]), "RGBA"), 250, 0),
        (lambda: Image.fromarray(np.dstack([np.zeros_like(GLYPH), GLYPH]), "LA"), 0, 255),
        (_glyph_palette, 0, 255),
    ],
    ids=["black-ink-RGBA", "white-ink-RGBA", "LA", "P-with-transparency"],
)
def test_a_shape_drawn_in_alpha_alone_is_laid_on_a_background_not_dropped(make, ink, paper):
    """A glyph, icon or drawing saved on a transparent background (one flat colour, the shape in
    alpha) would be blank with alpha dropped: it is laid on white, or on black under a light ink."""
    image = make()
    assert len(set(np.asarray(image.convert("RGB")).ravel().tolist())) == 1  # blank without alpha
    converted = np.asarray(to_rgb(image))
    assert (converted[GLYPH == 255] == ink).all() and (converted[GLYPH == 0] == paper).all()


def test_half_transparent_edges_blend_with_the_background():
    edge = Image.fromarray(np.dstack([np.zeros((2, 2), np.uint8)] * 3 + [np.array([[0, 128], [255, 255]], np.uint8)]), "RGBA")
    assert np.asarray(to_rgb(edge))[..., 0].tolist() == [[255, 127], [0, 0]]


def test_32_bit_data_is_on_the_scale_of_its_type():
    """Integers wider than 16 bits stored as I are read on 0..2^31-1: the gradient again."""
    wide = Image.fromarray((GRADIENT.astype(np.int64) * 2**23).astype(np.int32))
    converted = np.asarray(to_rgb(wide))[..., 0].astype(int)
    assert np.abs(converted - GRADIENT).max() <= 1 and converted.max() >= 254


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (Image.fromarray(np.full((4, 4), -5, np.int32)), "down to -5"),
        (Image.fromarray(np.full((4, 4), 200.0, np.float32)), r"float values in \[200, 200\], not in \[0, 1\]"),
        (Image.fromarray(np.full((4, 4), np.nan, np.float32)), "NaN"),
        (Image.new("La", (4, 4)), "mode La"),
    ],
)
def test_pixels_without_a_known_range_are_refused(image, reason):
    with pytest.raises(ImageReadError, match=reason):
        to_rgb(image)


@pytest.mark.parametrize(
    ("image", "extension"),
    [
        (Image.fromarray(SIXTEEN_BIT.astype(np.uint16)), "png"),  # opens as I;16
        (_raw("I;16B", SIXTEEN_BIT, ">u2"), "tif"),
        (Image.fromarray(SIXTEEN_BIT.astype(np.int32)), "tif"),  # opens as I
        (Image.fromarray(GRADIENT.astype(np.float32) / 255), "tif"),  # opens as F
    ],
)
def test_deep_image_files_read_as_their_8_bit_gradient(tmp_path, image, extension):
    path = tmp_path / f"deep.{extension}"
    image.save(path)
    np.testing.assert_array_equal(np.asarray(read_image(path)), _gray(GRADIENT))


def test_a_cmyk_file_reads_as_its_colour(tmp_path):
    Image.new("RGB", (16, 16), RED).convert("CMYK").save(tmp_path / "print.jpg", quality=100)
    pixels = np.asarray(read_image(tmp_path / "print.jpg")).astype(int)
    assert np.abs(pixels - np.array(RED)).max() <= 4


# --- bombs, empty files, names that are not UTF-8 ----------------------------------------------


def _png_claiming(path, width: int, height: int) -> None:
    """A 1x1 PNG whose header says `width` x `height` (with a valid checksum)."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR's width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path):
    _png_claiming(tmp_path / "bomb.png", 100_000, 100_000)
    with pytest.raises(ImageReadError, match=r"exceeds limit .*MAX_IMAGE_PIXELS"):
        read_image(tmp_path / "bomb.png")


def test_an_image_over_the_pixel_limit_is_refused_not_only_warned_about(tmp_path, monkeypatch):
    """Pillow only warns between MAX_IMAGE_PIXELS and twice that; sesemi refuses there too."""
    Image.new("RGB", (12, 12)).save(tmp_path / "big.png")  # 144 pixels: over 100, under 200
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageReadError, match="exceeds limit of 100 pixels"):
        read_image(tmp_path / "big.png")


def _noise_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "cannot identify"), (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "cannot identify"), (_noise_png()[:3000], "truncated")],
    ids=["empty", "damaged", "truncated"],
)
def test_empty_damaged_and_truncated_files_are_image_read_errors(tmp_path, content, reason):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(ImageReadError, match=reason):
        read_image(tmp_path / "bad.png")


def test_names_that_are_not_utf8_are_read_and_warned_about_escaped(image_tree, caplog):
    """A file name with bytes that are not UTF-8 is listed and read; a broken one is skipped
    with a warning that shows those bytes as escapes."""
    folder = os.fsencode(image_tree.root / "train" / "red")
    Image.new("RGB", (16, 16), RED).save(folder + b"/caf\xe9.png", format="PNG")
    (Path(os.fsdecode(folder + b"/broken\xff.png"))).write_bytes(b"junk")
    data = image_folder(str(image_tree.root), "train", cache="none")
    paths = [path for path, _ in data.samples]
    good, broken = (paths.index(os.fsdecode(folder + name)) for name in (b"/caf\xe9.png", b"/broken\xff.png"))
    image, label = data[good]
    assert np.asarray(image)[0, 0].tolist() == list(RED) and data.classes[label] == "red"
    data[broken]
    (warning,) = [r.getMessage() for r in caplog.records if "broken" in r.getMessage()]
    assert "broken\\xff.png" in warning
    warning.encode("utf-8")  # printable anywhere


def test_printable_escapes_only_what_is_not_utf8():
    assert printable(os.fsdecode(b"/data/caf\xc3\xa9/x\xff.png")) == "/data/café/x\\xff.png"
    assert printable(Path("plain.png")) == "plain.png"


def test_files_are_listed_as_rglob_sorts_them_and_folders_named_like_images_are_not_files(tmp_path):
    from sesemi.datasets.images import is_image_file, list_files

    for name in ["b.png", "b/c.png", "b/a/z.png", "b-x.png", "a.txt", "B.PNG", "c.png/inside.png", "d/e/f/g.jpg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    expected = [str(p) for p in sorted(tmp_path.rglob("*")) if p.is_file() and is_image_file(p)]
    assert list_files(tmp_path, is_image_file) == expected
    assert str(tmp_path / "a.txt") not in expected and len(expected) == 7


def test_hidden_files_and_folders_and_macos_litter_are_not_data(tmp_path):
    """A folder copied from a Mac to a USB drive has a `._x.jpg` beside every `x.jpg` (not an
    image: each was warned about as unreadable), unzipping a Mac's archive leaves `__MACOSX/`
    (a class of its own under train/), and Jupyter leaves `.ipynb_checkpoints/`."""
    from sesemi.datasets.images import class_samples, is_image_file, list_files, unlabeled_samples

    litter = ["train/cat/._x.png", "train/.ipynb_checkpoints/x-checkpoint.png", "train/__MACOSX/cat/._x.png",
              "train/cat/.hidden/y.png", "unlabeled/._u.png", "unlabeled/__MACOSX/._u.png", "unlabeled/.DS_Store"]
    for name in ["train/cat/x.png", "train/dog/y.png", "unlabeled/u.png", *litter]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"\x00\x05\x16\x07")
    samples, classes = class_samples([tmp_path / "train"], is_image_file)
    assert classes == ["cat", "dog"]
    assert samples == [(str(tmp_path / "train/cat/x.png"), 0), (str(tmp_path / "train/dog/y.png"), 1)]
    assert unlabeled_samples([tmp_path / "unlabeled"], is_image_file) == [(str(tmp_path / "unlabeled/u.png"), -1)]
    assert list_files(tmp_path / "train" / ".ipynb_checkpoints", is_image_file) == [
        str(tmp_path / "train/.ipynb_checkpoints/x-checkpoint.png")  # a hidden folder asked for is read
    ]


def test_a_symlink_loop_is_listed_once_and_warned_about(tmp_path, caplog):
    """A link back to a folder being listed (`unlabeled/loop -> ..`) would list forever and end
    in a traceback; its folder is listed once. A link to another folder is followed."""
    from sesemi.datasets.images import is_image_file, list_files

    (tmp_path / "pool" / "a").mkdir(parents=True)
    (tmp_path / "pool" / "a" / "x.png").write_bytes(b"")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "y.png").write_bytes(b"")
    (tmp_path / "pool" / "a" / "loop").symlink_to(tmp_path / "pool", target_is_directory=True)
    (tmp_path / "pool" / "shared").symlink_to(tmp_path / "shared", target_is_directory=True)
    assert list_files(tmp_path / "pool", is_image_file) == [str(tmp_path / "pool" / "a" / "x.png"), str(tmp_path / "pool" / "shared" / "y.png")]
    assert "pool/a/loop: it leads to a folder already listed" in caplog.text


@pytest.mark.parametrize(
    ("link", "target"),
    [("train/bass", "train/low"), ("train/high/more", "train/low"), ("train/high/up", "train")],
)
def test_class_folders_that_lead_to_one_folder_are_refused(tmp_path, link, target):
    """A class folder that is a link to another (`bass -> low`), or holds one to another class
    or back up to all of them, would give the same files two labels: refused in one line."""
    from sesemi.datasets.images import class_samples, is_image_file

    for name in ("high", "low"):
        (tmp_path / "train" / name).mkdir(parents=True)
        (tmp_path / "train" / name / f"{name}.png").write_bytes(b"")
    (tmp_path / link).symlink_to(tmp_path / target, target_is_directory=True)
    with pytest.raises(SesemiError, match=r"^class folders \w+ and \w+ under .* lead to the same folder"):
        class_samples([tmp_path / "train"], is_image_file)


def test_a_class_folder_linked_to_a_missing_folder_is_named(tmp_path):
    """A class folder that is a link to a drive not mounted would leave its class out in silence."""
    from sesemi.datasets.images import class_samples, is_image_file

    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "train" / "cat" / "c.png").write_bytes(b"")
    (tmp_path / "train" / "fox").symlink_to(tmp_path / "unmounted" / "fox", target_is_directory=True)
    with pytest.raises(SesemiError, match=r"^class folder .*train/fox is a link to .*unmounted/fox, which does not exist"):
        class_samples([tmp_path / "train"], is_image_file)


def test_a_photo_is_read_upright_as_its_exif_orientation_says(tmp_path):
    """Phones store photos sideways with an EXIF tag that says how to turn them; training and
    prediction see them as a photo viewer shows them."""
    stored = Image.fromarray(np.arange(20 * 40 * 3, dtype=np.uint8).reshape(20, 40, 3))  # 40 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to show"
    stored.save(tmp_path / "photo.png", exif=exif)
    upright = read_image(tmp_path / "photo.png")
    assert upright.size == (20, 40)
    assert np.array_equal(np.asarray(upright), np.asarray(stored.transpose(Image.Transpose.ROTATE_270)))
    stored.save(tmp_path / "plain.png")
    assert np.array_equal(np.asarray(read_image(tmp_path / "plain.png")), np.asarray(stored))


def test_photos_sesemi_cannot_read_are_named_and_avif_is_read(tmp_path, caplog):
    """A phone's HEIC photos would drop out of a class without a word; AVIF, which Pillow reads,
    is read."""
    for name in ("cat/a.png", "cat/b.avif", "cat/c.heic", "cat/notes.txt", "dog/d.png"):
        (tmp_path / "train" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), "red").save(tmp_path / "train" / name, format="AVIF" if name.endswith(".avif") else "PNG")
    data = image_folder(str(tmp_path), "train", cache="none")
    assert sorted(Path(path).name for path, _ in data.samples) == ["a.png", "b.avif", "d.png"]
    avif, label = data[1]
    assert label == 0 and avif.size == (8, 8) and avif.getpixel((4, 4))[0] > 200  # red
    assert "left out 1 .heic files under" in caplog.text and "convert them" in caplog.text
    assert ".txt" not in caplog.text
    caplog.clear()
    image_file(str(tmp_path), ["train"], cache="none")  # the pool lists train/ too: said once
    assert ".heic" not in caplog.text


def _photo(size: tuple[int, int]) -> Image.Image:
    """Smooth colour ramps with a little noise, as a photo's pixels vary."""
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    ramps = np.stack([x * 248 // size[0], y * 248 // size[1], (x + y) * 124 // sum(size)], -1)  # + noise: at most 255
    noise = np.random.default_rng(0).integers(0, 8, ramps.shape)
    return Image.fromarray((ramps + noise).astype(np.uint8))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_large_image_is_read_at_the_size_the_transform_needs(tmp_path, suffix):
    """A photo trained at 32 px is decoded small (JPEG at a fraction of its scale, any image then
    shrunk), and the view made of it is what the whole image makes, up to resampling."""
    from sesemi.transforms import center_crop_transforms
    from sesemi.transforms.views import input_side

    _photo((1200, 900)).save(tmp_path / f"photo{suffix}", quality=95)
    view = center_crop_transforms(resize=32, crop_dim=32, mean=(0, 0, 0), std=(1, 1, 1))
    whole, small = read_image(tmp_path / f"photo{suffix}"), read_image(tmp_path / f"photo{suffix}", input_side(view))
    assert whole.size == (1200, 900) and 64 <= min(small.size) < 128 and small.mode == "RGB"
    difference = (view(whole) - view(small)).abs()
    assert difference.mean() < 1 / 255 and difference.max() < 4 / 255  # in levels of 255
    assert read_image(tmp_path / f"photo{suffix}", min_side=600).size == (1200, 900)  # not twice the side: whole


def test_a_data_set_of_photos_keeps_them_in_memory_at_the_size_it_trains_at(tmp_path):
    """Decoded whole, 1200x900 photos take 3.2 MB each; read at twice the 32 px the weak view
    resizes to, a data set of them fits the memory cache in a few kilobytes each."""
    from sesemi.transforms import weak_transforms

    for name in ("cat", "dog"):
        (tmp_path / "train" / name).mkdir(parents=True)
        _photo((1200, 900)).save(tmp_path / "train" / name / "a.jpg")
    data = image_folder(str(tmp_path), "train", image_transform=weak_transforms(crop_dim=32), cache="memory")
    stored = data.memory[0]
    assert data.min_side == 64 and 64 <= min(stored.shape[1:]) < 128
    assert tuple(data[0][0].shape) == (3, 32, 32)


def test_many_unreadable_files_are_named_five_at_a_time_and_reported_once(image_tree, caplog):
    """A scraped folder with many broken files: decoding it names five and counts the rest, in
    a line that says how to stop at the first; the pool, which reads train/ again, repeats none."""
    from sesemi.datasets.image_file import image_file
    from sesemi.datasets.image_folder import image_folder

    for index in range(12):
        (image_tree.root / "train" / "red" / f"broken{index:02d}.png").write_bytes(b"not an image")
    labeled = image_folder(str(image_tree.root), "train", cache="auto")
    assert len(labeled.skipped) == 12
    lines = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    for index, line in enumerate(lines[:5]):
        assert line.startswith("skipping unreadable image ") and f"/broken{index:02d}.png (" in line
    assert lines[5:] == [
        "skipped 7 more unreadable images (12 in all); to stop at the first, set on_error=raise on the data sets that "
        "read them, e.g. +data.train.supervised.dataset.on_error=raise +data.unlabeled.on_error=raise"
    ]
    caplog.clear()
    pool = image_file(str(image_tree.root), ["train", "unlabeled"], cache="auto")
    assert len(pool.skipped) == 12 and "unreadable" not in caplog.text


def test_the_list_of_unreadable_files_is_appended_to_once_per_file_and_never_through_a_link(tmp_path, caplog, time_limit):
    """A resumed run reports its broken files again: its list gains only those it lacked. A link
    put where the list goes is not followed (the file it points to is someone else's)."""
    from sesemi.datasets.images import forget_reported, list_unreadable, report_unreadable

    forget_reported()
    try:
        report_unreadable("image", {"a.png": "cannot identify image file"})
        list_unreadable(tmp_path)  # the run's folder is made: what was found before is listed
        report_unreadable("image", {"b.png": "truncated"})  # found by the training's loaders
        forget_reported()  # the run resumes in a new process: it finds both again, and one more
        report_unreadable("image", {"a.png": "cannot identify image file", "b.png": "truncated", "c.png": "empty"})
        list_unreadable(tmp_path)
        rows = (tmp_path / "unreadable.csv").read_text().splitlines()
        assert rows == ["path,why", "a.png,cannot identify image file", "b.png,truncated", "c.png,empty"]

        elsewhere, linked = tmp_path / "theirs.csv", tmp_path / "linked"
        elsewhere.write_text("their own\n")
        linked.mkdir()
        (linked / "unreadable.csv").symlink_to(elsewhere)
        list_unreadable(linked)
        report_unreadable("image", {"d.png": "empty"})
        assert elsewhere.read_text() == "their own\n"
        assert "cannot list unreadable files in" in caplog.text

        piped = tmp_path / "piped"  # a FIFO there is neither read nor written: nothing waits on it
        piped.mkdir()
        os.mkfifo(piped / "unreadable.csv")
        with time_limit(10):
            list_unreadable(piped)
        assert caplog.text.count("cannot list unreadable files in") == 2
    finally:
        forget_reported()


def test_jfif_files_are_jpegs_and_a_damaged_exif_block_says_nothing(tmp_path):
    """`.jfif` is how Windows and browsers save JPEGs: read as one. Pillow's warning about a
    damaged EXIF block (without the file's name, at every read) is not passed on."""
    import subprocess
    import sys

    from sesemi.datasets.images import is_image_file

    Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(tmp_path / "web.jfif", format="JPEG")
    data = (tmp_path / "web.jfif").read_bytes()
    exif = b"Exif\x00\x00II*\x00\xff\xff\xff\x7f"  # its first IFD past the end of the block
    segment = b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif
    (tmp_path / "damaged.jfif").write_bytes(data[:2] + segment + data[2:])
    assert is_image_file("web.jfif") and is_image_file("photo.JPE")
    assert read_image(tmp_path / "web.jfif").size == (8, 8)
    code = f"from sesemi.datasets.images import read_image; print(read_image({str(tmp_path / 'damaged.jfif')!r}).size)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (done.stdout, done.stderr) == ("(8, 8)\n", "")


def test_a_pool_folder_of_no_images_is_warned_about(tmp_path, caplog):
    """`unlabeled/` that holds only the archive it came in leaves the pool to `train/` alone:
    said, with the archive to extract."""
    from sesemi.datasets.images import is_image_file, unlabeled_samples

    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "train" / "cat" / "c.png").write_bytes(b"")
    (tmp_path / "unlabeled").mkdir()
    (tmp_path / "unlabeled" / "pool.zip").write_bytes(b"")
    samples = unlabeled_samples([tmp_path / "train", tmp_path / "unlabeled"], is_image_file)
    assert samples == [(str(tmp_path / "train" / "cat" / "c.png"), -1)]
    assert f"no image files in {tmp_path / 'unlabeled'}: the pool is the other folders' alone; extract " in caplog.text
    assert "pool.zip there" in caplog.text


def test_a_class_name_that_differs_by_a_space_shows_it(tmp_path):
    """`train/fox ` beside `val/fox`: the training classes are shown with the space quoted, so
    the message does not seem to contradict itself."""
    from sesemi.datasets.images import class_samples, is_image_file

    for split, name in (("train", "cat"), ("train", "fox "), ("val", "fox")):
        (tmp_path / split / name).mkdir(parents=True)
        (tmp_path / split / name / "x.png").write_bytes(b"")
    _, classes = class_samples([tmp_path / "train"], is_image_file)
    with pytest.raises(SesemiError, match=r"class 'fox' .* is not a class of the training set \(cat, 'fox '\)"):
        class_samples([tmp_path / "val"], is_image_file, classes=classes)
