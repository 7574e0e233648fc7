"""Every image format, mode and orientation users throw at dlcli decodes the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlcli.data.images import (
    BMP,
    GIF,
    JPEG,
    PILLOW,
    PNG,
    PNG_ALPHA,
    pillow_read,
    read_image,
    scan_images,
)
from tests.conftest import SHARED

SIGNS = SHARED / "data" / "sign_language_digits" / "Dataset"


def half_white(width: int = 20, height: int = 10) -> Image.Image:
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = 255  # left half white
    return Image.fromarray(array)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".gif", ".webp"])
@pytest.mark.parametrize("channels", [1, 3])
def test_formats(tmp_path: Path, suffix: str, channels: int):
    path = tmp_path / f"x{suffix}"
    half_white().save(path)
    image = read_image(str(path), (10, 20), channels)
    assert image.shape == (10, 20, channels) and image.dtype == np.uint8
    assert image[:, :8].mean() > 200 and image[:, 12:].mean() < 50


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "I;16"])
def test_modes_convert_to_the_configured_channels(tmp_path: Path, mode: str):
    path = tmp_path / "x.png"
    source = half_white()
    if mode == "I;16":
        source = Image.fromarray(np.asarray(source.convert("L"), np.uint16) * 257)
    else:
        source = source.convert(mode)
    source.save(path)
    assert read_image(str(path), (10, 20), 3).shape == (10, 20, 3)
    assert read_image(str(path), (10, 20), 1).shape == (10, 20, 1)


def test_transparent_pixels_become_white(tmp_path: Path):
    path = tmp_path / "x.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
    assert read_image(str(path), (4, 4), 3).min() == 255


def test_exif_orientation_is_applied(tmp_path: Path):
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: display rotated 90 degrees clockwise
    half_white(20, 10).save(path, exif=exif)
    image = read_image(str(path), (20, 10), 1)  # upright it is 10 wide, 20 tall
    assert image[:8].mean() > 200 and image[12:].mean() < 50  # left half is now the top


@pytest.mark.skipif(not SIGNS.is_dir(), reason="needs ../shared/data/sign_language_digits")
def test_huge_phone_photos_from_the_sign_language_set():
    big = sorted((SIGNS / "7").glob("IMG_59*.JPG"))
    big = [p for p in big if Image.open(p).size == (3024, 3024)]
    assert big, "the three 3024x3024 photos are in class 7"
    for path in big:
        image = read_image(str(path), (64, 64), 3)
        assert image.shape == (64, 64, 3) and 20 < image.mean() < 235


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path: Path, orientation: int):
    blocks = np.random.default_rng(orientation).integers(0, 256, (6, 4, 3), dtype=np.uint8)
    pixels = np.kron(blocks, np.ones((5, 5, 1), np.uint8))  # 30x20, in 5 px blocks
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "turned.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=98)
    size = (20, 30) if orientation >= 5 else (30, 20)  # upright, the sideways ones are wider
    ours = read_image(str(path), size, 3).astype(int)
    pillow = pillow_read(str(path), size, 3).astype(int)
    assert ours.shape == pillow.shape == (*size, 3)
    assert np.abs(ours - pillow).mean() < 4  # two JPEG decoders: a few levels apart, same pose


def test_each_file_gets_the_decoder_that_reads_it(tmp_path: Path):
    source = half_white()
    cases = {
        "a.jpg": (source, JPEG),
        "b.png": (source, PNG),
        "c.png": (source.convert("RGBA"), PNG_ALPHA),
        "d.gif": (source, GIF),
        "e.bmp": (source, BMP),
        "f.webp": (source, PILLOW),
        "g.png": (Image.fromarray(np.asarray(source.convert("L"), np.uint16) * 257), PILLOW),
        "h.jpg": (source.convert("CMYK"), PILLOW),
    }
    for name, (image, _) in cases.items():
        image.save(tmp_path / name)
    paths = [str(tmp_path / name) for name in cases]
    scan = scan_images(paths, [0] * len(paths), "fail", (10, 20))
    assert scan.decoders == [decoder for _, decoder in cases.values()]
    for path in paths:  # whichever decoder, the same picture
        image = read_image(path, (10, 20), 3)
        assert image[:, :8].mean() > 200 and image[:, 12:].mean() < 50, path
