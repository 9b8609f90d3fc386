"""convert_colorspace: an ICC profile's transform (LittleCMS) as a 3-D LUT, against
ImageCms.profileToProfile; the GPU kernel against the NumPy twin."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms

import gpuimg
from gpuimg.codec import icc
from gpuimg.ops import launch_stats, reset_launch_stats
from gpuimg.ops.color import profiles
from gpuimg.ops.color.icc import engine as icc_engine
from gpuimg.ops.color.profiles import apply_lut_numpy, convert_colorspace, profile_lut, srgb_profile
from icc_profiles import ADOBE_PROFILE, P3_PROFILE

RNG = np.random.default_rng(19)
SRGB = ImageCms.createProfile("sRGB")


def every_level_and_random(n: int = 20000) -> np.ndarray:
    """Random colours plus greys and primaries ramps: the cases tables get wrong."""
    ramp = np.arange(256, dtype=np.uint8)
    zero = np.zeros(256, np.uint8)
    rows = [np.stack([ramp] * 3, -1), np.stack([ramp, zero, zero], -1), np.stack([zero, ramp, zero], -1),
            np.stack([zero, zero, ramp], -1), RNG.integers(0, 256, (n, 3), np.uint8)]
    return np.concatenate(rows).reshape(1, -1, 3)


def reference(pixels: np.ndarray, profile: bytes, intent=ImageCms.Intent.RELATIVE_COLORIMETRIC) -> np.ndarray:
    src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    out = ImageCms.profileToProfile(PILImage.fromarray(pixels, "RGB"), src, SRGB, renderingIntent=intent)
    return np.asarray(out)


def test_profiles_are_valid():
    for p in (P3_PROFILE, ADOBE_PROFILE):
        assert icc.problem(p) is None
    assert icc.description(P3_PROFILE) == "Display P3 (test)"


@pytest.mark.parametrize("name, profile", [("srgb", None), ("p3", P3_PROFILE), ("adobe", ADOBE_PROFILE)])
@pytest.mark.parametrize("intent", ["relative", "perceptual"])
def test_matches_littlecms(name, profile, intent):
    profile = srgb_profile() if profile is None else profile
    pixels = every_level_and_random()
    flag = ImageCms.Intent.RELATIVE_COLORIMETRIC if intent == "relative" else ImageCms.Intent.PERCEPTUAL
    want = reference(pixels, profile, flag).astype(int)
    got = convert_colorspace(gpuimg.Image.from_array(pixels), profile=profile, intent=intent).numpy().astype(int)
    diff = np.abs(got - want)
    assert diff.max() <= 1, (name, diff.max())  # every 8-bit colour is (ProfileTable)
    assert diff.mean() < 0.3
    if name == "srgb":
        assert np.abs(got - pixels).max() <= 1  # identity


def test_p3_changes_colours():
    red = np.array([[[255, 0, 0]]], np.uint8)
    out = convert_colorspace(gpuimg.Image.from_array(red), profile=P3_PROFILE).numpy()[0, 0]
    assert out[0] == 255 and out[1] == 0  # P3 red is out of the sRGB gamut: clipped
    mid = np.array([[[100, 150, 200]]], np.uint8)
    assert not np.array_equal(convert_colorspace(gpuimg.Image.from_array(mid), profile=P3_PROFILE).numpy(), mid)


def test_lut_cached_per_profile():
    a = profile_lut(P3_PROFILE)
    assert profile_lut(bytes(P3_PROFILE)) is a
    assert profile_lut(P3_PROFILE, "perceptual") is not a


def test_alpha_kept_and_batch_per_image_profiles():
    rgba = RNG.integers(0, 256, (6, 7, 4), np.uint8)
    out = convert_colorspace(gpuimg.Image.from_array(rgba), profile=P3_PROFILE).numpy()
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    imgs = [RNG.integers(0, 256, (5 + k, 4 + 2 * k, 3), np.uint8) for k in range(3)]
    batch = gpuimg.ImageBatch.from_images(imgs, device="cpu")
    res = convert_colorspace(batch, profile=[P3_PROFILE, None, ADOBE_PROFILE])
    np.testing.assert_array_equal(res[1].numpy(), imgs[1])
    np.testing.assert_array_equal(res[0].numpy(), apply_lut_numpy(imgs[0], profile_lut(P3_PROFILE)))
    np.testing.assert_array_equal(res[2].numpy(), apply_lut_numpy(imgs[2], profile_lut(ADOBE_PROFILE)))


def test_profile_from_image_metadata_and_output_carries_srgb(tmp_path):
    pixels = RNG.integers(0, 256, (8, 9, 3), np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, "PNG", icc_profile=P3_PROFILE)
    img = gpuimg.read(buf.getvalue(), device="cpu")
    out = convert_colorspace(img)
    np.testing.assert_array_equal(out.numpy(), apply_lut_numpy(pixels, profile_lut(P3_PROFILE)))
    assert out.metadata.icc == srgb_profile()
    path = gpuimg.write(out, tmp_path / "o.png")
    with PILImage.open(path) as im:
        assert im.info["icc_profile"] == srgb_profile()
    assert convert_colorspace(img, embed="none").metadata.icc is None


def test_errors():
    img = gpuimg.Image.from_array(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="to='p3'"):
        convert_colorspace(img, to="p3")
    with pytest.raises(ValueError, match="profile= is not an ICC profile"):
        convert_colorspace(img, profile=b"\0" * 200)
    gray = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    with pytest.raises(ValueError, match="RGB"):
        convert_colorspace(img, profile=gray)
    with pytest.raises(ValueError, match="channels"):
        convert_colorspace(gpuimg.Image.from_array(np.zeros((2, 2, 1), np.uint8)), profile=P3_PROFILE)


def test_missing_engine_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_imagecms(name, *args, **kwargs):
        if name == "PIL" and args and args[2] and "ImageCms" in args[2]:
            raise ImportError("no ImageCms")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_imagecms)
    with pytest.raises(profiles.ColorEngineMissingError, match=r"gpuimg\[color\]"):
        icc_engine.imagecms()


def test_gpu_matches_numpy_twin(gpu):
    imgs = [RNG.integers(0, 256, (33 + k, 47 + 5 * k, 3 + (k == 1)), np.uint8) for k in range(3)]
    imgs[1] = imgs[1][..., :3].copy()
    batch_cpu = gpuimg.ImageBatch.from_images(imgs, device="cpu")
    batch_gpu = gpuimg.ImageBatch.from_images(imgs, device="cuda")
    plist = [P3_PROFILE, None, ADOBE_PROFILE]
    want = convert_colorspace(batch_cpu, profile=plist)
    reset_launch_stats()
    got = convert_colorspace(batch_gpu, profile=plist)
    assert launch_stats()["count"] == 1  # one launch for the batch
    for g, w in zip(got.numpy(), want.numpy()):
        assert np.abs(g.astype(int) - w).max() <= 1
    single = convert_colorspace(gpuimg.Image.from_array(imgs[0]).to("cuda"), profile=P3_PROFILE)
    assert np.abs(single.numpy().astype(int) - want[0].numpy()).max() <= 1


def test_gpu_rgba_and_in_place(gpu):
    rgba = RNG.integers(0, 256, (20, 30, 4), np.uint8)
    img = gpuimg.Image.from_array(rgba).to("cuda")
    convert_colorspace(img, profile=P3_PROFILE, out=img)
    want = apply_lut_numpy(rgba, profile_lut(P3_PROFILE))
    assert np.abs(img.numpy().astype(int) - want).max() <= 1
    np.testing.assert_array_equal(img.numpy()[..., 3], rgba[..., 3])


def _p3_folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    pixels = RNG.integers(0, 256, (12, 16, 3), np.uint8)
    ex = PILImage.new("RGB", (1, 1)).getexif()
    ex[0x010F], ex[0x0112] = "ACME", 6
    PILImage.fromarray(pixels).save(src / "p3.png", icc_profile=P3_PROFILE, exif=ex)
    PILImage.fromarray(pixels).save(src / "plain.png")
    return src, pixels


@pytest.mark.parametrize("steps", [[("convert_colorspace", {})], [("resize", {"size": (8, 6)}), ("convert_colorspace", {})]])
def test_pipeline_to_srgb(tmp_path, steps):
    src, pixels = _p3_folder(tmp_path)
    out = tmp_path / "out"
    summary = gpuimg.Pipeline(steps, device="cpu").run(src, out, format="png", workers=False)
    assert summary.failed == 0
    with PILImage.open(out / "p3.png") as im:
        assert im.info["icc_profile"] == srgb_profile()
        assert im.getexif()[0x010F] == "ACME" and im.getexif()[0x0112] == 1
        if len(steps) == 1:
            upright = np.rot90(pixels, -1)  # orientation 6
            want = apply_lut_numpy(np.ascontiguousarray(upright), profile_lut(P3_PROFILE))
            np.testing.assert_array_equal(np.asarray(im), want)
    with PILImage.open(out / "plain.png") as im:  # no profile: taken as sRGB, said to be sRGB
        assert im.info["icc_profile"] == srgb_profile()
        if len(steps) == 1:
            np.testing.assert_array_equal(np.asarray(im), pixels)


def test_cli_to_srgb(tmp_path):
    from gpuimg import cli

    src, _ = _p3_folder(tmp_path)
    args = ["process", str(src), str(tmp_path / "o"), "--to-srgb", "--format", "png", "--device", "cpu", "--no-progress"]
    assert cli.main(args) == cli.EXIT_OK
    assert gpuimg.info(tmp_path / "o" / "p3.png").metadata.icc == srgb_profile()
    args = ["process", str(src), str(tmp_path / "n"), "--to-srgb", "--keep-metadata", "none", "--device", "cpu", "--no-progress"]
    assert cli.main(args) == cli.EXIT_OK
    assert gpuimg.info(tmp_path / "n" / "p3.jpg").metadata.empty


def test_cmyk_jpeg_profile_is_not_applied_to_its_rgb_pixels(tmp_path):
    cmyk_profile = bytearray(P3_PROFILE)
    cmyk_profile[16:20] = b"CMYK"  # only the colour-space field matters to the check
    cmyk = PILImage.fromarray(RNG.integers(0, 256, (8, 8, 4), np.uint8), "CMYK")
    buf = io.BytesIO()
    cmyk.save(buf, "JPEG", quality=95, icc_profile=bytes(cmyk_profile))
    img = gpuimg.read(buf.getvalue(), device="cpu")
    assert img.metadata.icc == bytes(cmyk_profile)
    out = convert_colorspace(img)  # the decoder converted CMYK -> RGB: taken as it is
    np.testing.assert_array_equal(out.numpy(), img.numpy())
    assert out.metadata.icc == srgb_profile()
    # Asked for colour management, the inks go through the "profile", which LittleCMS refuses.
    with pytest.raises(ValueError, match="profile="):
        gpuimg.thumbnail(buf.getvalue(), 4, device="cpu")
    assert gpuimg.thumbnail(buf.getvalue(), 4, device="cpu", to_srgb=False).metadata.icc == bytes(cmyk_profile)


@pytest.mark.parametrize("workers", [False, True])
def test_gpu_pipeline_to_srgb_matches_cpu(tmp_path, gpu, workers):
    src, _ = _p3_folder(tmp_path)
    steps = [("convert_colorspace", {})]
    gpuimg.Pipeline(steps, device="cpu").run(src, tmp_path / "cpu", format="png", workers=False)
    gpuimg.Pipeline(steps, device="cuda").run(src, tmp_path / "gpu", format="png", workers=workers)
    for name in ("p3.png", "plain.png"):
        with PILImage.open(tmp_path / "cpu" / name) as a, PILImage.open(tmp_path / "gpu" / name) as b:
            assert b.info["icc_profile"] == srgb_profile()
            assert np.abs(np.asarray(a).astype(int) - np.asarray(b)).max() <= 1


def test_uint16_interpolates_between_the_8bit_levels():
    pixels8 = every_level_and_random(3000)
    table = profile_lut(P3_PROFILE)
    want8 = apply_lut_numpy(pixels8, table).astype(np.int64)
    on_levels = convert_colorspace(gpuimg.Image.from_array(pixels8.astype(np.uint16) * 257), profile=P3_PROFILE)
    # on 8-bit levels: the 8-bit result before its rounding to a level, scaled
    assert np.abs(on_levels.numpy().astype(np.int64) - want8 * 257).max() <= 129
    pixels16 = RNG.integers(0, 65536, (1, 5000, 3), np.uint16)
    got = convert_colorspace(gpuimg.Image.from_array(pixels16), profile=P3_PROFILE).numpy().astype(np.int64)
    # Between 8-bit levels: within what LittleCMS makes of the 8 surrounding levels (a
    # tetrahedral value is a mix of corners), give or take 2 levels (the coarse table).
    low, high = np.floor(pixels16 / 257).astype(np.uint8), np.ceil(pixels16 / 257).astype(np.uint8)
    corners = [reference(np.where(np.array(pick, bool), high, low), P3_PROFILE).astype(np.int64) * 257
               for pick in np.ndindex(2, 2, 2)]
    lo, hi = np.min(corners, axis=0), np.max(corners, axis=0)
    assert (got >= lo - 2 * 257).all() and (got <= hi + 2 * 257).all()


def test_gpu_uint16_matches_numpy_twin(gpu):
    pixels16 = RNG.integers(0, 65536, (40, 50, 4), np.uint16)
    want = apply_lut_numpy(pixels16, profile_lut(ADOBE_PROFILE)).astype(np.int64)
    got = convert_colorspace(gpuimg.Image.from_array(pixels16).to("cuda"), profile=ADOBE_PROFILE)
    assert got.dtype == np.uint16
    assert np.abs(got.numpy().astype(np.int64) - want).max() <= 1
