"""TIFF variants nvImageCodec decodes wrong: bilevel (Pillow decodes them), L*a*b*
(refused), 16-bit planar associated alpha (the batch equals the single decode)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps, TiffImagePlugin

import gpuimg
from gpuimg.codec.containers import tiff
from gpuimg.errors import UnsupportedFormatError


def _bits(width: int = 37, height: int = 23) -> Image.Image:
    """A bilevel image with no symmetry, so every orientation shows."""
    rng = np.random.default_rng(7)
    px = (rng.random((height, width)) > 0.5).astype(np.uint8) * 255
    px[:3, :5] = 255  # a corner block: a flip that went wrong cannot pass by chance
    return Image.fromarray(px).convert("1")


def _bilevel_tiff(compression: str | None, orientation: int = 1, min_is_white: bool = False) -> bytes:
    buf = io.BytesIO()
    info = TiffImagePlugin.ImageFileDirectory_v2()
    info[274] = orientation
    im = _bits()
    if min_is_white:
        # Pillow writes MinIsWhite for a "1" image whose photometric it is told (libtiff
        # inverts on write, the reader inverts back): the gray values stay the same.
        info[262] = 0
    im.save(buf, "TIFF", compression=compression, tiffinfo=info)
    return buf.getvalue()


def _expected(data: bytes) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("L"))


@pytest.mark.parametrize("compression", ["group4", "group3", "packbits", "raw", None])
@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_bilevel_tiff_is_oriented_as_pillow(device: str, compression: str | None, orientation: int) -> None:
    data = _bilevel_tiff(compression, orientation)
    assert tiff.bilevel(data)
    want = _expected(data)
    got = gpuimg.read(data, device=device, mode="gray").numpy()
    assert got.shape == (*want.shape, 1)
    assert set(np.unique(got)) <= {0, 255}
    np.testing.assert_array_equal(got[..., 0], want)


@pytest.mark.parametrize("min_is_white", [False, True])
def test_bilevel_photometric_either_way(device: str, min_is_white: bool) -> None:
    data = _bilevel_tiff("group4", 5, min_is_white)
    photometric = Image.open(io.BytesIO(data)).tag_v2[262]
    want = _expected(data)
    got = gpuimg.read(data, device=device, mode="gray").numpy()[..., 0]
    np.testing.assert_array_equal(got, want, err_msg=f"PhotometricInterpretation {photometric}")


def test_bilevel_batch_equals_single_rgb(device: str) -> None:
    files = [_bilevel_tiff("group4", k) for k in (2, 3, 4, 5)]
    batch = gpuimg.Decoder(device).decode_batch(files)
    for data, img in zip(files, batch.images):
        want = np.repeat(_expected(data)[..., None], 3, axis=2)
        np.testing.assert_array_equal(img.numpy(), want)
        np.testing.assert_array_equal(gpuimg.read(data, device=device).numpy(), want)


def test_lab_tiff_is_refused(device: str) -> None:
    buf = io.BytesIO()
    Image.new("LAB", (6, 4), (50, 10, 200)).save(buf, "TIFF")
    with pytest.raises(UnsupportedFormatError, match=r"CIE L\*a\*b\* TIFF is not converted to RGB yet"):
        gpuimg.read(buf.getvalue(), device=device)
