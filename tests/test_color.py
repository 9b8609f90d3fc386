"""Colour ops and fusion (gpuimg.ops.color, its fusion engine) against outside references.

References: Pillow (convert "L", ImageOps.invert), OpenCV (cvtColor, threshold with Otsu,
equalizeHist), torchvision.transforms.v2.functional where installed, else torchvision's
definitions written here in NumPy. Tolerances are stated at each check; "exact" means
bit-identical uint8.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

import gpuimg
from gpuimg.ops import color
from gpuimg.ops import launch_stats, reset_launch_stats

from conftest import load_asset

S = color.step
NAMES = ("chelsea.png", "coffee.jpg")  # 451x300 (pixel count not a multiple of 16) and 600x400


def _tv():
    """torchvision.transforms.v2.functional and torch, or (None, None) where not installed."""
    try:
        import torch
        from torchvision.transforms.v2 import functional as F
    except Exception:
        return None, None
    return F, torch


@pytest.fixture(scope="module")
def rgb() -> dict[str, np.ndarray]:
    return {name: load_asset(name) for name in NAMES}


def _img(arr: np.ndarray, device: str) -> gpuimg.Image:
    return gpuimg.Image.from_array(np.ascontiguousarray(arr)).to(device)


def _close(got: np.ndarray, want: np.ndarray, max_diff: int, max_frac: float = 1.0) -> None:
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert got.shape == want.shape
    assert diff.max() <= max_diff, f"max diff {diff.max()} > {max_diff}"
    assert (diff > 0).mean() <= max_frac, f"{(diff > 0).mean():.4f} of values differ"


# ----------------------------------------------------------------------------- gray and modes


def test_to_gray_matches_pillow_and_opencv(device, rgb):
    for arr in rgb.values():
        got = color.to_gray(_img(arr, device)).numpy()[..., 0]
        np.testing.assert_array_equal(got, np.asarray(PILImage.fromarray(arr).convert("L")))  # exact
        _close(got, cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY), 1)  # OpenCV rounds its own fixed point


def test_to_gray_bt709_and_rgba(device, rgb):
    arr = rgb["coffee.jpg"]
    want = np.rint(arr @ np.array([0.2126, 0.7152, 0.0722])).astype(np.uint8)
    _close(color.to_gray(_img(arr, device), "bt709").numpy()[..., 0], want, 1)
    rgba = load_asset("coffee_rgba.png", "RGBA")
    got = color.to_gray(_img(rgba, device)).numpy()[..., 0]
    np.testing.assert_array_equal(got, np.asarray(PILImage.fromarray(rgba).convert("L")))


def test_convert_modes_match_opencv(device, rgb):
    arr = rgb["chelsea.png"]
    img = _img(arr, device)
    np.testing.assert_array_equal(color.convert(img, "bgr").numpy(), cv2.cvtColor(arr, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(color.convert(img, "rgba").numpy(), cv2.cvtColor(arr, cv2.COLOR_RGB2RGBA))
    bgr = _img(cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), device)
    np.testing.assert_array_equal(color.convert(bgr, "rgb", src_mode="bgr").numpy(), arr)
    gray = load_asset("camera_gray.png", "L")
    np.testing.assert_array_equal(color.convert(_img(gray, device), "rgb").numpy(), cv2.cvtColor(gray[..., 0], cv2.COLOR_GRAY2RGB))
    rgba = load_asset("coffee_rgba.png", "RGBA")
    np.testing.assert_array_equal(color.convert(_img(rgba, device), "rgb").numpy(), rgba[..., :3])


def test_invert_matches_pillow(device, rgb):
    arr = rgb["coffee.jpg"]
    np.testing.assert_array_equal(color.invert(_img(arr, device)).numpy(), np.asarray(ImageOps.invert(PILImage.fromarray(arr))))


# ----------------------------------------------------------------------------- torchvision adjustments


def _tv_reference(op: str, arr: np.ndarray, *args: float) -> tuple[np.ndarray, int, float]:
    """torchvision's result (or its definition in NumPy) and the tolerance (levels, fraction)."""
    F, torch = _tv()
    if F is not None:
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        fn = {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast, "saturation": F.adjust_saturation, "hue": F.adjust_hue, "gamma": F.adjust_gamma}[op]
        # torch's CPU kernels may fuse or reorder float ops: one level at up to 3% of values
        return fn(t, *args).numpy().transpose(1, 2, 0), 1, 0.03
    x = arr.astype(np.float32)
    f = np.float32(args[0])
    gray = np.floor(x[..., 0] * np.float32(0.2989) + x[..., 1] * np.float32(0.587) + x[..., 2] * np.float32(0.114))
    if op == "brightness":
        y = x * f
    elif op == "contrast":
        y = x * f + gray.mean(dtype=np.float64).astype(np.float32) * (1 - f)
    elif op == "saturation":
        y = x * f + gray[..., None] * (1 - f)
    elif op == "gamma":
        y = (x / 255) ** f * 255.999
    else:  # hue, through scikit-image's HSV (same formulas as torchvision's, float64)
        from skimage.color import hsv2rgb, rgb2hsv

        hsv = rgb2hsv(arr)
        hsv[..., 0] = (hsv[..., 0] + args[0]) % 1.0
        return np.trunc(hsv2rgb(hsv) * 255.999).astype(np.uint8), 1, 0.02
    return np.trunc(np.clip(y, 0, 255)).astype(np.uint8), 1, 0.01


@pytest.mark.parametrize(
    "op, fn, args",
    [
        ("brightness", color.adjust_brightness, (1.3,)),
        ("brightness", color.adjust_brightness, (0.6,)),
        ("contrast", color.adjust_contrast, (1.4,)),
        ("contrast", color.adjust_contrast, (0.5,)),
        ("saturation", color.adjust_saturation, (1.7,)),
        ("saturation", color.adjust_saturation, (0.3,)),
        ("hue", color.adjust_hue, (0.2,)),
        ("hue", color.adjust_hue, (-0.45,)),
        ("gamma", color.adjust_gamma, (0.7,)),
        ("gamma", color.adjust_gamma, (1.8,)),
    ],
)
def test_adjustments_match_torchvision(device, rgb, op, fn, args):
    for arr in rgb.values():
        want, levels, frac = _tv_reference(op, arr, *args)
        _close(fn(_img(arr, device), *args).numpy(), want, levels, frac)


def test_brightness_agrees_with_pillow_enhance(device, rgb):
    from PIL import ImageEnhance

    arr = rgb["chelsea.png"]
    want = np.asarray(ImageEnhance.Brightness(PILImage.fromarray(arr)).enhance(0.8))
    _close(color.adjust_brightness(_img(arr, device), 0.8).numpy(), want, 1)  # Pillow rounds, torchvision truncates


def test_alpha_is_kept_and_opacity(device):
    rgba = load_asset("coffee_rgba.png", "RGBA")
    img = _img(rgba, device)
    out = color.adjust_saturation(img, 0.5).numpy()
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    faded = color.opacity(img, 0.3).numpy()
    np.testing.assert_array_equal(faded[..., :3], rgba[..., :3])
    np.testing.assert_array_equal(faded[..., 3], np.rint(rgba[..., 3].astype(np.float32) * np.float32(0.3)).astype(np.uint8))


# ----------------------------------------------------------------------------- threshold and equalize


def test_threshold_value_matches_opencv(device, rgb):
    arr = rgb["coffee.jpg"]
    for value in (0, 99.5, 128, 254):
        _, want = cv2.threshold(arr, value, 200, cv2.THRESH_BINARY)
        np.testing.assert_array_equal(color.threshold(_img(arr, device), value, 200).numpy(), want)


def test_threshold_otsu_matches_opencv(device, rgb):
    grays = [load_asset("camera_gray.png", "L")] + [cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)[..., None] for a in rgb.values()]
    for gray in grays:
        _, want = cv2.threshold(gray[..., 0], 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        np.testing.assert_array_equal(color.threshold(_img(gray, device), "otsu").numpy()[..., 0], want)


def test_equalize_matches_opencv(device, rgb):
    gray = load_asset("camera_gray.png", "L")
    np.testing.assert_array_equal(color.equalize_histogram(_img(gray, device)).numpy()[..., 0], cv2.equalizeHist(gray[..., 0]))
    arr = rgb["chelsea.png"]
    want = np.dstack([cv2.equalizeHist(np.ascontiguousarray(arr[..., k])) for k in range(3)])
    np.testing.assert_array_equal(color.equalize_histogram(_img(arr, device)).numpy(), want)  # per channel
    flat = np.full((5, 7, 1), 42, np.uint8)  # one level: unchanged, as OpenCV
    np.testing.assert_array_equal(color.equalize_histogram(_img(flat, device)).numpy(), flat)


# ----------------------------------------------------------------------------- to_tensor


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_to_tensor_normalises_like_torchvision(device, rgb):
    arr = rgb["chelsea.png"]
    want = ((arr.astype(np.float64) / 255 - MEAN) / STD).transpose(2, 0, 1)
    t = color.to_tensor(_img(arr, device), MEAN, STD)
    got = t.get() if device == "cuda" else t
    assert got.shape == (3, 300, 451) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-6)
    half = color.to_tensor(_img(arr, device), MEAN, STD, dtype="float16", layout="NHWC")
    half = half.get() if device == "cuda" else half
    assert half.dtype == np.float16 and half.shape == (300, 451, 3)
    np.testing.assert_allclose(half.astype(np.float64), want.transpose(1, 2, 0), atol=4e-3)


def test_to_tensor_batch_and_out_reuse(device, rgb):
    arr = rgb["coffee.jpg"]
    batch = gpuimg.ImageBatch.from_images([arr, arr[::-1].copy()], device=device)
    t = color.to_tensor(batch, 0.5, 0.25)
    assert t.shape == (2, 3, 400, 600)
    gpuimg.reset_memory_stats()
    again = color.to_tensor(batch, 0.5, 0.25, out=t)
    assert again is t and gpuimg.memory_stats()["allocations"] == 0
    host = t.get() if device == "cuda" else t
    np.testing.assert_allclose(host[1], ((arr[::-1] / 255 - 0.5) / 0.25).transpose(2, 0, 1), atol=3e-6)
    with pytest.raises(ValueError, match="different sizes"):
        color.to_tensor(gpuimg.ImageBatch.from_images([arr, arr[:10]], device=device))


def test_to_tensor_is_shared_with_torch(device, rgb):
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    t = color.to_tensor(_img(rgb["chelsea.png"], device), MEAN, STD)
    shared = torch.from_dlpack(t)
    ptr = t.data.ptr if device == "cuda" else t.ctypes.data
    assert shared.data_ptr() == ptr  # the same memory: no copy
    t[0, 0, 0] = 7.0
    assert float(shared[0, 0, 0]) == 7.0


# ----------------------------------------------------------------------------- fusion, batches, GPU vs CPU


def _fused_vs_unfused(src):
    fused = color.chain(S.brightness(1.2), S.contrast(0.9), S.saturation(1.3), S.gamma(0.8)).to_tensor(MEAN, STD)(src)
    step1 = color.adjust_brightness(src, 1.2)
    step2 = color.adjust_contrast(step1, 0.9)
    step3 = color.adjust_saturation(step2, 1.3)
    step4 = color.adjust_gamma(step3, 0.8)
    return fused, color.to_tensor(step4, MEAN, STD)


def test_fused_chain_equals_unfused_ops(device, rgb):
    batch = gpuimg.ImageBatch.from_images([rgb["coffee.jpg"], rgb["coffee.jpg"][:, ::-1].copy()], device=device)
    fused, unfused = _fused_vs_unfused(batch)
    # Every step rounds to uint8 as the unfused op does, so the results are identical.
    np.testing.assert_array_equal(fused.get() if device == "cuda" else fused, unfused.get() if device == "cuda" else unfused)


def test_fusion_launch_count(gpu, rgb):
    batch = gpuimg.ImageBatch.from_images([rgb["coffee.jpg"]] * 3, device=gpu)
    _fused_vs_unfused(batch)  # compile first
    reset_launch_stats()
    chain = color.chain(S.brightness(1.2), S.contrast(0.9), S.saturation(1.3), S.gamma(0.8)).to_tensor(MEAN, STD)
    chain(batch)
    assert launch_stats()["count"] == 2  # contrast's histogram + one fused kernel, for 3 images
    reset_launch_stats()
    color.adjust_brightness(batch, [1.0, 1.1, 1.2])
    assert launch_stats()["count"] == 1  # one launch for the whole batch


@pytest.mark.parametrize(
    "fn",
    [
        lambda s: color.invert(s),
        lambda s: color.to_gray(s),
        lambda s: color.convert(s, "rgba"),
        lambda s: color.adjust_brightness(s, [0.5, 1.5]),
        lambda s: color.adjust_contrast(s, 1.5),
        lambda s: color.adjust_saturation(s, [0.0, 2.0]),
        lambda s: color.adjust_hue(s, [0.25, -0.1]),
        lambda s: color.adjust_gamma(s, 2.2, 0.9),
        lambda s: color.threshold(s, 100),
        lambda s: color.equalize_histogram(s),
        lambda s: color.threshold(color.to_gray(s), "otsu"),
    ],
)
def test_gpu_matches_cpu_on_batches(gpu, rgb, fn):
    arrays = list(rgb.values())
    cpu = fn(gpuimg.ImageBatch.from_images(arrays, device="cpu")).numpy()
    got = fn(gpuimg.ImageBatch.from_images(arrays, device="cuda")).numpy()
    for a, b in zip(got, cpu):
        _close(a, b, 1, 0.001)  # float rounding of powf/division: one level at rare pixels


def test_per_sample_parameters(device, rgb):
    arr = rgb["chelsea.png"]
    batch = gpuimg.ImageBatch.from_images([arr, arr], device=device)
    out = color.adjust_brightness(batch, [0.5, 1.5]).numpy()
    np.testing.assert_array_equal(out[0], color.adjust_brightness(_img(arr, device), 0.5).numpy())
    np.testing.assert_array_equal(out[1], color.adjust_brightness(_img(arr, device), 1.5).numpy())
    with pytest.raises(ValueError, match="one per image"):
        color.adjust_brightness(batch, [1.0, 1.0, 1.0])


def test_pitched_and_in_place(device, rgb):
    arr = rgb["coffee.jpg"]
    padded = np.zeros((400, 640, 3), np.uint8)
    padded[:, :600] = arr
    xp = np if device == "cpu" else __import__("cupy")
    view = xp.asarray(padded)[:, :600]  # rows with a pitch of 1920 bytes
    img = gpuimg.Image.from_array(view)
    assert not img.is_contiguous
    want = color.adjust_gamma(_img(arr, device), 0.5).numpy()
    np.testing.assert_array_equal(color.adjust_gamma(img, 0.5).numpy(), want)
    same = color.adjust_gamma(img, 0.5, out=img)
    assert same is img
    np.testing.assert_array_equal(img.numpy(), want)


def test_steady_state_allocates_nothing(device, rgb):
    src = _img(rgb["coffee.jpg"], device)
    out = color.adjust_contrast(src, 1.2)
    gpuimg.reset_memory_stats()
    for factor in (1.1, 0.9, 1.3):
        color.adjust_contrast(src, factor, out=out)
    assert gpuimg.memory_stats()["allocations"] == 0


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda im: color.convert(im, "hsv"), "mode"),
        (lambda im: color.convert(im, "rgb", src_mode="yuv"), "src_mode"),
        (lambda im: color.opacity(color.convert(im, "rgba"), 1.5), "opacity"),
        (lambda im: color.adjust_brightness(im, -1), "factor"),
        (lambda im: color.adjust_hue(im, 0.7), "factor"),
        (lambda im: color.adjust_gamma(im, -0.5), "gamma"),
        (lambda im: color.threshold(im, "triangle"), "value"),
        (lambda im: color.to_gray(im, "bt2020"), "weights"),
        (lambda im: color.to_tensor(im, layout="CHWN"), "layout"),
        (lambda im: color.to_tensor(im, dtype="int8"), "dtype"),
        (lambda im: color.to_tensor(im, std=0), "std"),
        (lambda im: color.to_tensor(im, mean=(0.1, 0.2)), "mean"),
        (lambda im: color.opacity(im, 0.5), "RGBA"),
        (lambda im: color.threshold(im, "otsu"), "gray"),
    ],
)
def test_bad_arguments_name_themselves(call, name):
    img = gpuimg.Image.from_array(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=name):
        call(img)


def test_wrong_types():
    with pytest.raises(TypeError, match="src"):
        color.invert([[0, 0], [0, 0]])  # arrays are wrapped (issue 18); a list is not an image
    with pytest.raises(TypeError, match="chain"):
        color.chain(color.invert)
