"""Image files to MNIST form, on real MNIST digits and real files written by Pillow's encoders."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

from digitkit.runtime.errors import ImageError  # noqa: E402
from digitkit.runtime.images import (  # noqa: E402
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    expand_image_paths,
    load_image,
    load_images,
    to_mnist,
)


@pytest.fixture(scope="module")
def digits(mnist_test):
    return mnist_test[0]


# --- helpers -------------------------------------------------------------------------------------


def photograph(image: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """An MNIST digit as a person would photograph it: dark ink on lit paper, anywhere in the frame.

    The digit is enlarged 2-8x, inked at a random darkness on grey-white paper with an illumination
    gradient and sensor noise, placed off centre in a 60-300 pixel frame, and half the time in colour.
    """
    side = int(round(28 * rng.uniform(2.0, 8.0)))
    coverage = (
        np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR), dtype=np.float64)
        / 255.0
    )
    height = int(rng.integers(max(60, side + 4), 301))
    width = int(rng.integers(max(60, side + 4), 301))
    paper = rng.uniform(200.0, 240.0)
    ink = rng.uniform(10.0, 70.0)
    yy, xx = np.mgrid[0:height, 0:width]
    page = paper + rng.uniform(-12, 12) * xx / width + rng.uniform(-12, 12) * yy / height
    page = page + rng.normal(0.0, 3.0, page.shape)
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    alpha = np.zeros((height, width))
    alpha[top : top + side, left : left + side] = coverage
    pixels = page * (1.0 - alpha) + ink * alpha
    if rng.random() < 0.5:  # colour: warm paper, bluish ink
        tint = np.array([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.82, 0.95)])
        rgb = pixels[..., None] * tint
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def save_photo(photo: Image.Image, stem: Path, rng: np.random.Generator) -> Path:
    """Half the photos JPEG-compressed at quality 60-95, the rest lossless PNG."""
    if rng.random() < 0.5:
        path = stem.with_suffix(".jpg")
        photo.save(path, quality=int(rng.integers(60, 96)))
    else:
        path = stem.with_suffix(".png")
        photo.save(path, compress_level=1)  # noisy paper compresses slowly and badly anyway
    return path


def on_canvas(image: np.ndarray, scale: int = 3, size: int = 110, at=(10, 20)) -> np.ndarray:
    """A white-on-black MNIST digit enlarged and placed off centre on a bigger black canvas."""
    side = 28 * scale
    big = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR))
    canvas = np.zeros((size, size), np.uint8)
    canvas[at[0] : at[0] + side, at[1] : at[1] + side] = big
    return canvas


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def with_png_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose IHDR claims another size, its CRC recomputed so only the size is a lie."""
    assert data[12:16] == b"IHDR"
    body = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
    return data[:8] + data[8:12] + body + struct.pack(">I", zlib.crc32(body)) + data[33:]


def assert_names(error: pytest.ExceptionInfo, path: Path) -> None:
    assert str(path) in str(error.value), str(error.value)


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --- 1. MNIST passes through ---------------------------------------------------------------------


def test_mnist_png_round_trips_bit_identically(digits, tmp_path):
    for i, image in enumerate(digits[:300]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(image).save(path)
        result = load_image(path)
        assert result.dtype == np.uint8 and result.shape == (28, 28)
        assert np.array_equal(result, image), i


def test_to_mnist_passes_mnist_through_and_accepts_floats(digits):
    image = digits[0]
    assert np.array_equal(to_mnist(image), image)
    assert np.array_equal(to_mnist(image / 255.0), image)
    with pytest.raises(ImageError):
        to_mnist(np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(ImageError, match="blank"):
        to_mnist(np.zeros((28, 28), np.uint8))


def test_re_centring_an_mnist_digit_on_a_larger_canvas_recovers_it(digits):
    diffs = []
    for image in digits[:200]:
        canvas = np.zeros((50, 60), np.uint8)
        canvas[5:33, 20:48] = image
        diffs.append(mean_abs(to_mnist(canvas), image))
    assert np.median(diffs) == 0.0
    assert np.mean(diffs) < 1.0


# --- 2. photographed digits keep their accuracy --------------------------------------------------


@pytest.mark.slow
def test_photographed_digits_keep_accuracy(export_dir, mnist_test, tmp_path):
    from digitkit.runtime import load

    x, y = mnist_test[0][:1000], mnist_test[1][:1000]
    rng = np.random.default_rng(0)
    paths = [save_photo(photograph(image, rng), tmp_path / f"{i:04d}", rng) for i, image in enumerate(x)]
    loaded = load_images(paths)
    assert all(isinstance(result, np.ndarray) for _, result in loaded)
    redrawn = np.stack([result for _, result in loaded])
    for name in ("digit_mlp_int8.tflite", "digit_mlp_fp32.tflite"):
        model = load(export_dir / name)
        raw = float((model.predict(x) == y).mean())
        photo = float((model.predict(redrawn) == y).mean())
        print(f"{name}: raw {raw:.2%}, photographed {photo:.2%}")
        assert photo >= raw - 0.02, (name, raw, photo)


@pytest.mark.slow
def test_light_and_dark_backgrounds_predict_the_same(export_dir, digits, tmp_path):
    from digitkit.runtime import load

    model = load(export_dir / "digit_mlp_int8.tflite")
    dark, light = [], []
    for i, image in enumerate(digits[:200]):
        canvas = on_canvas(image, scale=2, size=80, at=(7 + i % 13, 20 - i % 17))
        Image.fromarray(canvas).save(tmp_path / f"d{i}.png")
        Image.fromarray(255 - canvas).save(tmp_path / f"l{i}.png")
        dark.append(load_image(tmp_path / f"d{i}.png"))
        light.append(load_image(tmp_path / f"l{i}.png"))
    assert np.array_equal(model.predict(np.stack(dark)), model.predict(np.stack(light)))


# --- 3. bad files: one ImageError naming the file ------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.png"
    with pytest.raises(ImageError, match="does not exist") as error:
        load_image(path)
    assert_names(error, path)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="directory") as error:
        load_image(tmp_path)
    assert_names(error, tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty") as error:
        load_image(path)
    assert_names(error, path)


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture of a digit\n")
    with pytest.raises(ImageError, match="not an image") as error:
        load_image(path)
    assert_names(error, path)


def test_truncated_png(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, (200, 200), dtype=np.uint8)
    data = png_bytes(Image.fromarray(noise))
    path = tmp_path / "half.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt") as error:
        load_image(path)
    assert_names(error, path)


def test_truncated_jpeg(tmp_path):
    noise = np.random.default_rng(2).integers(0, 256, (200, 200), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG")
    path = tmp_path / "half.jpg"
    path.write_bytes(buffer.getvalue()[:300])
    with pytest.raises(ImageError) as error:
        load_image(path)
    assert_names(error, path)


def test_zero_pixel_image(tmp_path):
    path = tmp_path / "zero.png"
    try:
        Image.new("L", (0, 0)).save(path)
    except Exception:  # Pillow refuses to encode it: claim 0x0 in a real PNG's header instead
        path.write_bytes(with_png_size(png_bytes(Image.new("L", (1, 1))), 0, 0))
    with pytest.raises(ImageError) as error:
        load_image(path)
    assert_names(error, path)


@pytest.mark.parametrize("side", [20_000, 8_000])  # past Pillow's own guard, and past only ours
def test_decompression_bomb_is_refused_without_decoding(tmp_path, side, monkeypatch):
    """Refused from the header alone: Pillow's decoder is never entered (no timing: proven, not raced)."""
    from PIL import ImageFile

    assert side * side > MAX_PIXELS
    path = tmp_path / "bomb.png"
    path.write_bytes(with_png_size(png_bytes(Image.new("L", (28, 28))), side, side))
    decoded = []
    original = ImageFile.ImageFile.load

    def recording_load(self):
        decoded.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    with pytest.raises(ImageError, match="too large") as error:
        load_image(path)
    assert decoded == [], f"pixels were decoded before the refusal: {decoded}"
    assert_names(error, path)
    small = tmp_path / "small.png"
    Image.new("L", (40, 40), 255).save(small)
    with pytest.raises(ImageError, match="blank"):
        load_image(small)
    assert decoded, "the hook sees a real decode (else the check above proves nothing)"


def test_load_images_reports_bad_files_in_place(digits, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(digits[3]).save(good)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.png"
    results = load_images([good, empty, missing])
    assert [path for path, _ in results] == [good, empty, missing]
    assert np.array_equal(results[0][1], digits[3])
    assert isinstance(results[1][1], ImageError) and str(empty) in str(results[1][1])
    assert isinstance(results[2][1], ImageError) and "does not exist" in str(results[2][1])


# --- 4. odd formats ------------------------------------------------------------------------------


def test_16_bit_grayscale(digits, tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(digits[0].astype(np.uint16) * 257).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I")
    assert np.abs(load_image(path).astype(int) - digits[0]).max() <= 1

    canvas = 255 - on_canvas(digits[1])  # dark on light, at 16 bits
    Image.fromarray(canvas.astype(np.uint16) * 257).save(tmp_path / "deep2.png")
    Image.fromarray(canvas).save(tmp_path / "shallow2.png")
    assert mean_abs(load_image(tmp_path / "deep2.png"), load_image(tmp_path / "shallow2.png")) < 1.0


@pytest.mark.parametrize(
    "mode, name, options, index",
    [("CMYK", "cmyk.jpg", {"quality": 95}, 2), ("P", "palette.png", {}, 4)],
    ids=["cmyk-jpeg", "palette-png"],
)
def test_other_colour_modes_match_rgb(digits, tmp_path, mode, name, options, index):
    photo = photograph(digits[index], np.random.default_rng(index)).convert("RGB")
    converted = (
        photo.convert(mode, palette=Image.Palette.ADAPTIVE, colors=64) if mode == "P" else photo.convert(mode)
    )
    converted.save(tmp_path / name, **options)
    photo.save(tmp_path / "rgb.png")
    with Image.open(tmp_path / name) as img:
        assert img.mode == mode
    result = load_image(tmp_path / name)
    assert result.shape == (28, 28) and result.dtype == np.uint8
    assert mean_abs(result, load_image(tmp_path / "rgb.png")) < 3.0


@pytest.mark.parametrize("ink", [0, 255], ids=["dark-digit", "light-digit"])
@pytest.mark.parametrize("hidden", [0, 255], ids=["black-hidden", "white-hidden"])
def test_rgba_with_transparent_background(digits, tmp_path, ink, hidden):
    """Transparent areas are background whatever colour hides under them, for dark and light ink."""
    coverage = on_canvas(digits[5])
    rgba = np.zeros(coverage.shape + (4,), np.uint8)
    rgba[..., :3] = np.where(coverage[..., None] > 0, ink, hidden)
    rgba[..., 3] = coverage
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    expected = to_mnist(coverage)
    assert mean_abs(load_image(tmp_path / "clear.png"), expected) < 1.0


def test_animated_gif_uses_the_first_frame(digits, tmp_path):
    first, second = (Image.fromarray(255 - on_canvas(d)) for d in (digits[6], digits[7]))
    first.save(tmp_path / "anim.gif", save_all=True, append_images=[second], duration=100, loop=0)
    first.save(tmp_path / "first.png")
    with Image.open(tmp_path / "anim.gif") as img:
        assert img.n_frames == 2
    result = load_image(tmp_path / "anim.gif")
    assert mean_abs(result, load_image(tmp_path / "first.png")) < 1.0
    assert mean_abs(result, to_mnist(on_canvas(digits[7]))) > 10.0


@pytest.mark.parametrize("level", [0, 128, 255])
def test_a_one_pixel_image_is_blank(tmp_path, level):
    """One pixel is all background: no digit, said in one line naming the file."""
    path = tmp_path / "dot.png"
    Image.new("L", (1, 1), level).save(path)
    with pytest.raises(ImageError, match=r"contains no digit \(blank image\)") as error:
        load_image(path)
    assert_names(error, path)


def test_a_one_pixel_digit_fills_the_20x20_box(tmp_path):
    """One dark dot on light paper: cropped to its ink (1x1), fitted into 20x20 as MNIST's digits
    were, centred in 28x28: a full-white 20x20 square at rows and columns 4-23."""
    path = tmp_path / "dot.png"
    image = Image.new("L", (100, 100), 255)
    image.putpixel((10, 80), 0)
    image.save(path)
    expected = np.zeros((28, 28), np.uint8)
    expected[4:24, 4:24] = 255
    assert np.array_equal(load_image(path), expected)


def test_exif_rotated_jpeg_comes_out_upright(tmp_path):
    """A '1' with a flag at its top, stored on its side with Orientation=6 (turn clockwise to view)."""
    upright = np.full((120, 70), 230, np.uint8)
    upright[15:105, 35:45] = 20  # the stem
    upright[15:30, 20:35] = 20  # the flag, top left: tells a right turn from a wrong one
    Image.fromarray(upright).save(tmp_path / "upright.jpg", quality=95)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    stored.save(tmp_path / "sideways.jpg", quality=95)
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_180).save(
        tmp_path / "upside-down.jpg", quality=95
    )

    expected = load_image(tmp_path / "upright.jpg")
    result = load_image(tmp_path / "rotated.jpg")
    assert mean_abs(result, expected) < 2.0
    assert mean_abs(load_image(tmp_path / "sideways.jpg"), expected) > 20.0
    assert mean_abs(load_image(tmp_path / "upside-down.jpg"), result) > 10.0  # turned the right way
    # The stem stands upright: far more ink rows than ink columns.
    assert (result > 64).any(axis=1).sum() > 2 * (result > 64).any(axis=0).sum()


# --- 5. light and dark backgrounds ---------------------------------------------------------------


def test_light_and_dark_backgrounds_give_the_same_digit(digits, tmp_path):
    diffs = []
    for i, image in enumerate(digits[:100]):
        # 28x28: an inverted MNIST digit comes back as the digit.
        Image.fromarray(255 - image).save(tmp_path / "inv.png")
        assert np.abs(load_image(tmp_path / "inv.png").astype(int) - image).max() <= 1
        canvas = on_canvas(image, scale=2, size=70, at=(3 + i % 11, 10 - i % 9))
        Image.fromarray(canvas).save(tmp_path / "dark.png")
        Image.fromarray(255 - canvas).save(tmp_path / "light.png")
        diffs.append(mean_abs(load_image(tmp_path / "dark.png"), load_image(tmp_path / "light.png")))
    assert max(diffs) < 1.0


def test_grey_paper_matches_white_paper(digits):
    canvas = on_canvas(digits[8])
    white = 255 - canvas
    grey = np.rint(210 - canvas * (190 / 255)).astype(np.uint8)  # ink at 20 on paper at 210
    assert mean_abs(to_mnist(white), to_mnist(grey)) < 3.0


# --- 6. expanding paths --------------------------------------------------------------------------


def test_expand_image_paths(tmp_path):
    folder = tmp_path / "shots"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.png", "a.JPG", "notes.txt", "sub/c.webp", "sub/d.gif", "manifest.json", ".hidden.png"):
        (folder / name).write_bytes(b"x")
    loose = tmp_path / "loose.dat"
    loose.write_bytes(b"x")
    expanded = expand_image_paths([loose, folder])
    assert expanded == [
        loose,
        folder / "a.JPG",
        folder / "b.png",
        folder / "sub/c.webp",
        folder / "sub/d.gif",
    ]
    assert expand_image_paths(str(loose)) == [loose]
    assert {".png", ".jpg", ".webp", ".tiff", ".pgm"} <= IMAGE_SUFFIXES


def test_expand_image_paths_missing_and_empty(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ImageError, match="does not exist") as error:
        expand_image_paths([missing])
    assert_names(error, missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no image files"):
        expand_image_paths([tmp_path / "empty"])


# --- the runtime's import rules ------------------------------------------------------------------


def test_pillow_is_imported_lazily_and_its_absence_is_explained():
    code = (
        "import sys\n"
        "import digitkit.runtime.images as images\n"
        "assert 'PIL' not in sys.modules, 'Pillow imported at module level'\n"
        "assert not {'tensorflow', 'keras', 'onnx'} & set(sys.modules)\n"
        "sys.modules['PIL'] = None  # as if Pillow were not installed\n"
        "from digitkit.runtime.errors import BackendUnavailableError\n"
        "try:\n"
        "    images.load_image('x.png')\n"
        "except BackendUnavailableError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "needs Pillow" in out.stdout and "digitkit[images]" in out.stdout


def test_large_photo_is_shrunk_before_the_transform(digits, tmp_path):
    photo = photograph(digits[9], np.random.default_rng(9)).convert("L")
    photo.save(tmp_path / "small.png")
    big = photo.resize((photo.width * 12, photo.height * 12), Image.Resampling.BILINEAR)
    big.save(tmp_path / "big.jpg", quality=90)
    assert max(big.size) > 1024
    assert mean_abs(load_image(tmp_path / "big.jpg"), load_image(tmp_path / "small.png")) < 3.0


@pytest.mark.parametrize(
    "suffix, options",
    [
        (".bmp", {}),
        (".pgm", {}),
        (".tiff", {}),
        (".webp", {"lossless": True}),
        (".gif", {}),
        (".jpg", {"quality": 95}),
    ],
)
def test_every_format_the_readme_names_decodes_as_the_png_does(digits, tmp_path, suffix, options):
    """README: load_image turns a PNG/JPEG/BMP/PGM/GIF/TIFF/WebP into MNIST form. Lossless formats
    give the PNG's result exactly; JPEG within its compression noise."""
    page = photograph(digits[11], np.random.default_rng(11)).convert("L")
    page.save(tmp_path / "digit.png")
    page.save(tmp_path / f"digit{suffix}", **options)
    with Image.open(tmp_path / f"digit{suffix}") as decoded:
        assert decoded.format == {".jpg": "JPEG", ".tiff": "TIFF"}.get(suffix, suffix[1:].upper()).replace(
            "PGM", "PPM"
        )
    expected, result = load_image(tmp_path / "digit.png"), load_image(tmp_path / f"digit{suffix}")
    if suffix == ".jpg":
        assert mean_abs(result, expected) < 2.0
    else:
        assert np.array_equal(result, expected)
