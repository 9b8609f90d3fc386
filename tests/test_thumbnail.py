"""gpuimg.thumbnail and the "fit_thumbnail" step against Pillow's Image.thumbnail."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

import gpuimg
from gpuimg.ops.color.profiles import srgb_profile
from icc_profiles import P3_PROFILE

RNG = np.random.default_rng(4)


def photo(h=90, w=140) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    smooth = np.dstack([x * 255 // w, y * 255 // h, (x * y) % 256]).astype(np.uint8)
    return smooth


def encoded(pixels, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("size", [64, (40, 100), 500, 1])
def test_size_and_pixels_as_pillow(size):
    pixels = photo()
    thumb = gpuimg.thumbnail(encoded(pixels), size, device="cpu")
    ref = PILImage.fromarray(pixels)
    box = (size, size) if isinstance(size, int) else (size[1], size[0])
    ref.thumbnail(box, PILImage.Resampling.BICUBIC, reducing_gap=None)
    assert thumb.shape == (ref.height, ref.width, 3)
    assert np.abs(thumb.numpy().astype(int) - np.asarray(ref)).max() <= 2


def test_orientation_colour_and_metadata(tmp_path):
    pixels = photo()
    ex = PILImage.new("RGB", (1, 1)).getexif()
    ex[0x010F], ex[0x0112] = "ACME", 6
    ex.get_ifd(0x8825)[1] = "N"
    data = encoded(pixels, "PNG", icc_profile=P3_PROFILE, exif=ex)
    thumb = gpuimg.thumbnail(data, 50, device="cpu")
    ref = ImageOps.exif_transpose(PILImage.open(io.BytesIO(data)))
    ref.thumbnail((50, 50), PILImage.Resampling.BICUBIC, reducing_gap=None)
    ref = ImageCms.profileToProfile(ref, ImageCms.ImageCmsProfile(io.BytesIO(P3_PROFILE)), ImageCms.createProfile("sRGB"),
                                    renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    assert thumb.shape == (50, 32, 3) == (ref.height, ref.width, 3)
    assert np.abs(thumb.numpy().astype(int) - np.asarray(ref)).max() <= 3
    assert thumb.metadata.icc == srgb_profile() and thumb.metadata.exif_tags["Make"] == "ACME"
    out = gpuimg.write(thumb, tmp_path / "t.jpg")
    with PILImage.open(out) as im:
        assert im.info["icc_profile"] == srgb_profile() and im.getexif()[0x0112] == 1
    assert gpuimg.thumbnail(data, 50, device="cpu", keep="none").metadata.empty
    private = gpuimg.thumbnail(data, 50, device="cpu", keep="icc").metadata
    assert private.exif is None and private.icc == srgb_profile()
    assert not gpuimg.thumbnail(data, 50, device="cpu", keep="no-gps").metadata.gps
    kept = gpuimg.thumbnail(data, 50, device="cpu", to_srgb=False)
    assert kept.metadata.icc == P3_PROFILE


def test_rgba_and_errors():
    rgba = np.dstack([photo(30, 60), np.full((30, 60), 128, np.uint8)])
    thumb = gpuimg.thumbnail(encoded(rgba), 20, device="cpu")
    assert thumb.shape == (10, 20, 4) and int(thumb.numpy()[..., 3].min()) == 128
    with pytest.raises(ValueError, match="keep="):
        gpuimg.thumbnail(encoded(rgba), 20, device="cpu", keep="gps")
    with pytest.raises(ValueError, match="size"):
        gpuimg.thumbnail(encoded(rgba), 0, device="cpu")


def test_pipeline_and_cli_thumbnail(tmp_path):
    from gpuimg import cli

    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes(encoded(photo(90, 140), "PNG", icc_profile=P3_PROFILE))
    (src / "b.png").write_bytes(encoded(photo(60, 30)))
    args = ["process", str(src), str(tmp_path / "o"), "--thumbnail", "32", "--device", "cpu", "--no-progress"]
    assert cli.main(args) == cli.EXIT_OK
    with PILImage.open(tmp_path / "o" / "a.jpg") as im:
        assert im.size == (32, 21) and im.info["icc_profile"] == srgb_profile()
    with PILImage.open(tmp_path / "o" / "b.jpg") as im:
        assert im.size == (16, 32)


def test_gpu_matches_cpu(gpu):
    data = encoded(photo(), "PNG", icc_profile=P3_PROFILE)
    cpu = gpuimg.thumbnail(data, 48, device="cpu").numpy().astype(int)
    got = gpuimg.thumbnail(data, 48, device="cuda")
    assert got.device == "cuda"
    assert np.abs(got.numpy().astype(int) - cpu).max() <= 1
    batch = gpuimg.read_batch([data, encoded(photo(50, 70))], device="cuda").images
    res = gpuimg.ops.geometry.fit_thumbnail(batch, 32)
    assert res.shapes == [(21, 32, 3), (23, 32, 3)]
