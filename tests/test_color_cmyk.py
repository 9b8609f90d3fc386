"""CMYK JPEGs through convert_colorspace: the inks as Pillow decodes them, the 4-D table
against LittleCMS (ImageCms), the naive conversion against Pillow's convert("RGB"), mixed
batches in one launch, the table cache, and the thumbnail / pipeline / CLI paths."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms

import gpuimg
from gpuimg.codec.metadata import Metadata
from gpuimg.errors import DecodeError
from gpuimg.ops import launch_stats, reset_launch_stats
from gpuimg.ops.color import profiles
from gpuimg.ops.color.icc import tables as icc_tables
from gpuimg.ops.color.profiles import apply_cmyk_numpy, apply_lut_numpy, cmyk_lut, convert_colorspace, profile_lut, srgb_profile
from icc_profiles import CMYK_PROFILE, P3_PROFILE, cmyk_profile, matrix_profile

RNG = np.random.default_rng(1919)
SRGB = ImageCms.createProfile("sRGB")
INTENTS = {"relative": ImageCms.Intent.RELATIVE_COLORIMETRIC, "perceptual": ImageCms.Intent.PERCEPTUAL}


def inks(n: int = 40000) -> np.ndarray:
    """Random CMYK colours plus each ink's ramp and the rich-black ramp: (1, N, 4)."""
    ramp, zero = np.arange(256, dtype=np.uint8), np.zeros(256, np.uint8)
    rows = [np.stack([ramp if i == j else zero for j in range(4)], -1) for i in range(4)]
    rows += [np.stack([ramp] * 4, -1), RNG.integers(0, 256, (n, 4), np.uint8)]
    return np.concatenate(rows).reshape(1, -1, 4)


def littlecms(pixels: np.ndarray, profile: bytes, intent: str = "relative") -> np.ndarray:
    src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    im = PILImage.fromarray(pixels, "CMYK") if isinstance(pixels, np.ndarray) else pixels
    return np.asarray(ImageCms.profileToProfile(im, src, SRGB, renderingIntent=INTENTS[intent], outputMode="RGB"))


def strip_adobe(data: bytes) -> bytes:
    """The JPEG without its APP14 "Adobe" segment: CMYK stored as it is, not inverted."""
    at = data.find(b"\xff\xee")
    while at >= 0 and data[at + 4 : at + 9] != b"Adobe":
        at = data.find(b"\xff\xee", at + 2)
    assert at >= 0, "Pillow wrote no Adobe segment"
    length = int.from_bytes(data[at + 2 : at + 4], "big")
    return data[:at] + data[at + 2 + length :]


def cmyk_jpeg(pixels: np.ndarray, profile: bytes | None = None, adobe: bool = True, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    kw = {"icc_profile": profile} if profile is not None else {}
    if exif is not None:
        kw["exif"] = exif
    PILImage.fromarray(pixels, "CMYK").save(buf, "JPEG", quality=95, subsampling=0, **kw)
    return buf.getvalue() if adobe else strip_adobe(buf.getvalue())


def smooth_inks(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    return np.dstack([x * 255 // w, y * 255 // h, (x + y) * 255 // (h + w), (x * y) % 97]).astype(np.uint8)


@pytest.mark.parametrize("adobe", [True, False])
def test_inks_are_pillows_and_the_default_decode_is_unchanged(adobe):
    data = cmyk_jpeg(smooth_inks(), CMYK_PROFILE, adobe)
    with PILImage.open(io.BytesIO(data)) as im:
        assert im.mode == "CMYK" and (im.info.get("adobe") is not None) == adobe
        want = np.asarray(im)
    img = gpuimg.read(data, device="cpu", mode="cmyk")
    np.testing.assert_array_equal(img.numpy(), want)
    assert img.metadata.cmyk and img.metadata.icc == CMYK_PROFILE
    default = gpuimg.read(data, device="cpu")  # no colour conversion asked for: nvImageCodec's RGB, as before
    assert default.shape == (48, 64, 3) and not default.metadata.cmyk
    if adobe:  # nvImageCodec takes every CMYK JPEG as Adobe-inverted; Pillow only those that say so
        assert np.abs(default.numpy().astype(int) - np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))).max() <= 1


def test_orientation_applied_to_the_inks():
    ex = PILImage.new("RGB", (1, 1)).getexif()
    ex[0x0112] = 6
    pixels = smooth_inks(20, 30)
    img = gpuimg.read(cmyk_jpeg(pixels, exif=ex.tobytes()), device="cpu", mode="cmyk")
    assert img.shape == (30, 20, 4) and img.metadata.orientation_applied
    flat = gpuimg.read(cmyk_jpeg(pixels, exif=ex.tobytes()), device="cpu", mode="cmyk", apply_exif=False)
    np.testing.assert_array_equal(img.numpy(), np.rot90(flat.numpy(), -1))


@pytest.mark.parametrize("intent", ["relative", "perceptual"])
def test_matches_littlecms(intent):
    pixels = inks()
    want = littlecms(pixels, CMYK_PROFILE, intent).astype(int)
    got = convert_colorspace(gpuimg.Image.from_array(pixels), profile=CMYK_PROFILE, intent=intent)
    assert got.shape == (1, pixels.shape[1], 3) and got.metadata.icc == srgb_profile() and not got.metadata.cmyk
    diff = np.abs(got.numpy().astype(int) - want)
    assert diff.max() <= 2 and diff.mean() < 0.3, (diff.max(), diff.mean())


@pytest.mark.parametrize("adobe", [True, False])
def test_jpeg_with_profile_matches_pillow_and_littlecms(adobe):
    data = cmyk_jpeg(smooth_inks(), CMYK_PROFILE, adobe)
    want = littlecms(PILImage.open(io.BytesIO(data)), CMYK_PROFILE).astype(int)
    got = convert_colorspace(gpuimg.read(data, device="cpu", mode="cmyk"))
    assert np.abs(got.numpy().astype(int) - want).max() <= 2


@pytest.mark.parametrize("adobe", [True, False])
def test_without_profile_is_pillows_conversion(adobe):
    data = cmyk_jpeg(smooth_inks(), None, adobe)
    img = gpuimg.read(data, device="cpu", mode="cmyk")
    assert img.metadata.icc is None
    want = np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert np.abs(convert_colorspace(img).numpy().astype(int) - want).max() <= 1
    every = inks()
    marked = gpuimg.Image.from_array(every)
    marked.metadata = Metadata(cmyk=True)
    want = np.asarray(PILImage.fromarray(every, "CMYK").convert("RGB")).astype(int)
    assert np.abs(convert_colorspace(marked).numpy().astype(int) - want).max() <= 1


def _mixed_images():
    """RGB (P3), CMYK with a profile, RGBA without one, CMYK without one: one batch."""
    rgb = RNG.integers(0, 256, (9, 11, 3), np.uint8)
    cmyk = RNG.integers(0, 256, (12, 7, 4), np.uint8)
    rgba = RNG.integers(0, 256, (5, 6, 4), np.uint8)
    naive = RNG.integers(0, 256, (8, 8, 4), np.uint8)
    metas = [Metadata(icc=P3_PROFILE), Metadata(icc=CMYK_PROFILE, cmyk=True), Metadata(), Metadata(cmyk=True)]
    return [rgb, cmyk, rgba, naive], metas


def _expected(arrays):
    return [apply_lut_numpy(arrays[0], profile_lut(P3_PROFILE)), apply_cmyk_numpy(arrays[1], cmyk_lut(CMYK_PROFILE)),
            arrays[2], apply_cmyk_numpy(arrays[3], cmyk_lut(None))]


def test_mixed_batch():
    arrays, metas = _mixed_images()
    batch = gpuimg.ImageBatch.from_images(arrays, device="cpu")
    for img, meta in zip(batch, metas):
        img.metadata = meta
    out = convert_colorspace(batch)
    assert out.shapes == [(9, 11, 3), (12, 7, 3), (5, 6, 4), (8, 8, 3)]
    for got, want in zip(out, _expected(arrays)):
        np.testing.assert_array_equal(got.numpy(), want)
    assert all(img.metadata.icc == srgb_profile() and not img.metadata.cmyk for img in out)


def test_gpu_mixed_batch_one_launch_matches_cpu(gpu):
    arrays, metas = _mixed_images()
    batch = gpuimg.ImageBatch.from_images(arrays, device="cuda")
    for img, meta in zip(batch, metas):
        img.metadata = meta
    convert_colorspace(batch)  # tables built and compiled outside the count
    reset_launch_stats()
    out = convert_colorspace(batch)
    assert launch_stats()["count"] == 1
    for got, want in zip(out, _expected(arrays)):
        assert got.device == "cuda"
        assert np.abs(got.numpy().astype(int) - want).max() <= 1


def test_gpu_cmyk_matches_numpy_twin(gpu):
    pixels = inks(30000)
    want = apply_cmyk_numpy(pixels, cmyk_lut(CMYK_PROFILE)).astype(int)
    got = convert_colorspace(gpuimg.Image.from_array(pixels).to("cuda"), profile=CMYK_PROFILE).numpy().astype(int)
    assert np.abs(got - want).max() <= 1
    assert np.abs(got - littlecms(pixels, CMYK_PROFILE)).max() <= 2


def test_table_cache(monkeypatch):
    fresh = matrix_profile("cache test", trc=2.0)  # a profile no other test has built
    img = gpuimg.Image.from_array(RNG.integers(0, 256, (4, 4, 3), np.uint8))
    before = profiles.table_builds()
    first = convert_colorspace(img, profile=fresh).numpy()
    assert profiles.table_builds() == before + 1
    again = convert_colorspace(img, profile=bytes(fresh)).numpy()  # the same bytes: no rebuild
    assert profiles.table_builds() == before + 1
    np.testing.assert_array_equal(first, again)
    press = cmyk_profile("cache test CMYK", points=9)
    ink = gpuimg.Image.from_array(RNG.integers(0, 256, (3, 3, 4), np.uint8))
    convert_colorspace(ink, profile=press)
    convert_colorspace(ink, profile=press)
    assert profiles.table_builds() == before + 2
    # Bounded: past the size the least recently used table goes and is built again.
    monkeypatch.setattr(icc_tables._tables, "max_items", 1)
    convert_colorspace(img, profile=matrix_profile("cache test 2", trc=1.8))  # the one table kept
    convert_colorspace(img, profile=fresh)
    assert profiles.table_builds() == before + 4
    monkeypatch.setattr(icc_tables._tables, "max_items", 32)
    monkeypatch.setattr(icc_tables._tables, "max_bytes", 1)  # past the bytes too; the newest always stays
    convert_colorspace(ink, profile=press)
    assert profiles.table_builds() == before + 5 and len(icc_tables._tables) == 1


def test_errors():
    ink = gpuimg.Image.from_array(np.zeros((2, 2, 4), np.uint8))
    rgb = gpuimg.Image.from_array(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="4 uint8 ink channels"):
        convert_colorspace(rgb, profile=CMYK_PROFILE)
    ink.metadata = Metadata(cmyk=True)
    with pytest.raises(ValueError, match="RGB profile for CMYK pixels"):
        convert_colorspace(ink, profile=P3_PROFILE)
    with pytest.raises(ValueError, match="out=src"):
        convert_colorspace(ink, out=ink)
    png = io.BytesIO()
    PILImage.new("RGB", (2, 2)).save(png, "PNG")
    with pytest.raises(DecodeError, match="not a CMYK JPEG"):
        gpuimg.read(png.getvalue(), device="cpu", mode="cmyk")
    with pytest.raises(ValueError, match="apply_exif only"):
        gpuimg.read(cmyk_jpeg(smooth_inks(4, 4)), device="cpu", mode="cmyk", depth="any")


@pytest.mark.parametrize("adobe", [True, False])
def test_thumbnail(adobe):
    data = cmyk_jpeg(smooth_inks(90, 140), CMYK_PROFILE, adobe)
    thumb = gpuimg.thumbnail(data, 50, device="cpu")
    ref = PILImage.fromarray(littlecms(PILImage.open(io.BytesIO(data)), CMYK_PROFILE))
    ref.thumbnail((50, 50), PILImage.Resampling.BICUBIC, reducing_gap=None)
    assert thumb.shape == (ref.height, ref.width, 3) == (32, 50, 3)
    assert np.abs(thumb.numpy().astype(int) - np.asarray(ref)).max() <= 3
    assert thumb.metadata.icc == srgb_profile() and not thumb.metadata.cmyk
    plain = gpuimg.thumbnail(data, 50, device="cpu", to_srgb=False)  # the decoder's RGB, its profile kept
    assert plain.shape == (32, 50, 3) and plain.metadata.icc == CMYK_PROFILE


def test_gpu_thumbnail_matches_cpu(gpu):
    data = cmyk_jpeg(smooth_inks(90, 140), CMYK_PROFILE)
    cpu = gpuimg.thumbnail(data, 48, device="cpu").numpy().astype(int)
    got = gpuimg.thumbnail(data, 48, device="cuda")
    assert got.device == "cuda" and np.abs(got.numpy().astype(int) - cpu).max() <= 1


def _folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    ink = smooth_inks(30, 40)
    (src / "press.jpg").write_bytes(cmyk_jpeg(ink, CMYK_PROFILE))
    (src / "plain.jpg").write_bytes(cmyk_jpeg(ink))
    rgb = RNG.integers(0, 256, (12, 16, 3), np.uint8)
    PILImage.fromarray(rgb).save(src / "p3.png", icc_profile=P3_PROFILE)
    return src, rgb


def _expected_outputs(src, rgb):
    press = gpuimg.read(src / "press.jpg", device="cpu", mode="cmyk").numpy()
    plain = gpuimg.read(src / "plain.jpg", device="cpu", mode="cmyk").numpy()
    return {"press.png": apply_cmyk_numpy(press, cmyk_lut(CMYK_PROFILE)), "plain.png": apply_cmyk_numpy(plain, cmyk_lut(None)),
            "p3.png": apply_lut_numpy(rgb, profile_lut(P3_PROFILE))}


def test_pipeline_and_cli(tmp_path):
    from gpuimg import cli

    src, rgb = _folder(tmp_path)
    want = _expected_outputs(src, rgb)
    summary = gpuimg.Pipeline([("convert_colorspace", {})], device="cpu").run(src, tmp_path / "out", format="png", workers=False)
    assert summary.failed == 0
    for name, pixels in want.items():
        with PILImage.open(tmp_path / "out" / name) as im:
            assert im.info["icc_profile"] == srgb_profile()
            np.testing.assert_array_equal(np.asarray(im), pixels)
    # No colour step: the CMYK JPEGs decode as before (nvImageCodec's RGB), profile kept.
    gpuimg.Pipeline([], device="cpu").run(src, tmp_path / "as_is", format="png", workers=False)
    with PILImage.open(tmp_path / "as_is" / "press.png") as im:
        np.testing.assert_array_equal(np.asarray(im), gpuimg.read(src / "press.jpg", device="cpu").numpy())
        assert im.info["icc_profile"] == CMYK_PROFILE
    args = ["process", str(src), str(tmp_path / "cli"), "--to-srgb", "--format", "png", "--device", "cpu", "--no-progress"]
    assert cli.main(args) == cli.EXIT_OK
    with PILImage.open(tmp_path / "cli" / "press.png") as im:
        np.testing.assert_array_equal(np.asarray(im), want["press.png"])
    args = ["process", str(src), str(tmp_path / "thumbs"), "--thumbnail", "20", "--format", "png", "--device", "cpu", "--no-progress"]
    assert cli.main(args) == cli.EXIT_OK
    thumb = gpuimg.thumbnail(src / "press.jpg", 20, device="cpu").numpy().astype(int)
    with PILImage.open(tmp_path / "thumbs" / "press.png") as im:
        assert im.size == (20, 15) and im.info["icc_profile"] == srgb_profile()
        assert np.abs(np.asarray(im).astype(int) - thumb).max() <= 1


def test_pipeline_bad_cmyk_profile_fails_that_file_only(tmp_path):
    src, _ = _folder(tmp_path)
    junk = bytearray(P3_PROFILE)
    junk[16:20] = b"CMYK"  # says CMYK, holds RGB tags: LittleCMS builds no transform
    (src / "junk.jpg").write_bytes(cmyk_jpeg(smooth_inks(8, 8), bytes(junk)))
    summary = gpuimg.Pipeline([("convert_colorspace", {})], device="cpu").run(src, tmp_path / "out", format="png", workers=False)
    assert summary.failed == 1 and "profile=" in str(summary.failures[0])
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".") and p.suffix == ".png") == [
        "p3.png", "plain.png", "press.png"]


@pytest.mark.parametrize("workers", [False, True])
def test_gpu_pipeline_matches_cpu(tmp_path, gpu, workers):
    src, rgb = _folder(tmp_path)
    want = _expected_outputs(src, rgb)
    gpuimg.Pipeline([("convert_colorspace", {})], device="cuda").run(src, tmp_path / "gpu", format="png", workers=workers)
    for name, pixels in want.items():
        with PILImage.open(tmp_path / "gpu" / name) as im:
            assert im.info["icc_profile"] == srgb_profile()
            assert np.abs(np.asarray(im).astype(int) - pixels).max() <= 1
