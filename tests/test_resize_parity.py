"""Pixel parity of resize / fit with the outside references (issue 14).

Each method is held to the one reference and the tolerance its docstring names
(gpuimg.ops.geometry.resize): max absolute difference in levels on the real photos in
assets/, shrinking, enlarging and both at once, odd sizes, 1x1 and a 4097-wide image;
the mean difference is printed (run with -s to see the table) and is part of the
failure message.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import load_asset

from gpuimg import Image

import PIL

# The stated Pillow tolerances are against Pillow 13 (the test extra installs it). An older
# Pillow (seen: the GPU machine's) differs at sizes that enlarge one axis and shrink the
# other (12-22 levels with bicubic/lanczos): those cases are left out there, not loosened.
PILLOW_REFERENCE = int(PIL.__version__.split(".")[0]) >= 13
from gpuimg.ops import geometry
from gpuimg.ops.geometry import _cpu_resample, resample_weights

cv2 = pytest.importorskip("cv2")
PIL = pytest.importorskip("PIL.Image")

PHOTOS = ("coffee.png", "chelsea.png", "astronaut.jpg", "rocket.jpg", "camera_gray.png")


def _image(arr: np.ndarray, device: str) -> Image:
    return Image.from_array(np.array(arr, order="C"), device="cpu").to(device)


def _diff(a, b) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a.astype(np.float64).reshape(b.shape) - b.astype(np.float64))


def _pil(arr: np.ndarray, size: tuple[int, int], method, box=None) -> np.ndarray:
    img = PIL.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    out = np.asarray(img.resize(size[::-1], method, box=box))
    return out[:, :, None] if out.ndim == 2 else out


def _cv(arr: np.ndarray, size: tuple[int, int], flag: int) -> np.ndarray:
    out = cv2.resize(arr, size[::-1], interpolation=flag)
    return out[:, :, None] if out.ndim == 2 else out


@pytest.fixture(params=["default", "numpy-reference"])
def cpu_path(request, device):
    """The CPU path as it runs (Pillow's resize where it is the reference) and the NumPy
    reference the GPU kernel follows: both must hold the stated tolerances."""
    if request.param == "numpy-reference" and device != "cpu":
        pytest.skip("the NumPy reference is a CPU path")
    previous = _cpu_resample.use_pillow(request.param == "default")
    yield request.param
    _cpu_resample.use_pillow(previous)


@pytest.fixture
def numpy_reference():
    """The CPU path forced to the NumPy reference (the kernel's own arithmetic)."""
    previous = _cpu_resample.use_pillow(False)
    yield
    _cpu_resample.use_pillow(previous)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: load_asset(name, mode=None) for name in PHOTOS}


@pytest.fixture(scope="module")
def wide() -> np.ndarray:
    """A 4097-wide photo strip (coffee repeated and mirrored), 400 high."""
    coffee = load_asset("coffee.png")
    strip = np.concatenate([coffee, coffee[:, ::-1]] * 4, axis=1)
    return np.ascontiguousarray(np.concatenate([strip, coffee], axis=1)[:, :4097])


def _sizes(h: int, w: int) -> dict[str, list[tuple[int, int]]]:
    return {
        "down": [(h // 2, w // 2), (h // 3 + 1, w // 5 + 3), (37, 41), (1, 1), (h - 1, w // 2 + 1)],
        "up": [(2 * h + 1, 2 * w - 1), (h * 7 // 4, w * 5 // 3), (h + 1, w + 3)],
        "mixed": [(h // 2 + 1, w * 3 // 2), (h * 3 // 2 - 1, w // 2), (h * 5 // 8, w * 7 // 6)],
    }


# --------------------------------------------------------------------------- 1. nearest
LENGTHS = (1, 2, 3, 5, 7, 224, 225, 249, 500, 512, 741, 851, 1263, 2048, 4097)  # 15 x 15 = 225 pairs


def _cv_index(in_len: int, out_len: int) -> np.ndarray:
    row = np.arange(in_len, dtype=np.float32)[None, :]
    return cv2.resize(row, (out_len, 1), interpolation=cv2.INTER_NEAREST_EXACT)[0].astype(np.int64)


def _pil_index(in_len: int, out_len: int) -> np.ndarray:
    row = PIL.fromarray(np.arange(in_len, dtype=np.float32)[None, :], mode="F")
    return np.asarray(row.resize((out_len, 1), PIL.NEAREST))[0].astype(np.int64)


def test_nearest_index_matches_opencv_and_pillow_on_225_size_pairs():
    mismatched = []
    for in_len in LENGTHS:
        for out_len in LENGTHS:
            start, w = resample_weights.axis_weights("nearest", False, in_len, out_len)
            assert w.shape == (out_len, 1) and (w == 1).all()
            cv, pil = _cv_index(in_len, out_len), _pil_index(in_len, out_len)
            assert np.array_equal(cv, pil), (in_len, out_len)  # the references agree
            if not np.array_equal(start, cv):
                mismatched.append((in_len, out_len, int((start != cv).sum())))
    assert not mismatched, mismatched


def test_nearest_half_pixel_ties_pick_the_references_pixel():
    rows, _ = resample_weights.axis_weights("nearest", False, 500, 851)
    assert rows[425] == 249  # (425 + 0.5) * 500 / 851 == 250 exactly: a tie
    cols, _ = resample_weights.axis_weights("nearest", False, 512, 224)
    assert np.array_equal(cols, _cv_index(512, 224))  # 25 of these 224 columns are ties


@pytest.mark.parametrize("name", PHOTOS)
def test_nearest_images_are_exact(device, photos, name):
    arr = photos[name]
    h, w = arr.shape[:2]
    sizes = [s for group in _sizes(h, w).values() for s in group] + [(851, 1263)]
    for size in sizes:
        got = geometry.resize(_image(arr, device), size, "nearest").numpy()
        assert np.array_equal(got, _cv(arr, size, cv2.INTER_NEAREST_EXACT)), size
        assert np.array_equal(got, _pil(arr, size, PIL.NEAREST)), size


@pytest.mark.parametrize("kind", ["rgba", "uint16", "float32", "wide"])
def test_nearest_other_types_are_exact(device, wide, kind):
    arr = {
        "rgba": lambda: load_asset("coffee_rgba.png", mode=None),
        "uint16": lambda: load_asset("chelsea_gray16.png", mode=None),
        "float32": lambda: load_asset("coffee.png").astype(np.float32) / 255,
        "wide": lambda: wide,
    }[kind]()
    h, w = arr.shape[:2]
    for size in [(h // 3, w // 7), (h + 3, w * 2 - 1), (1, 1), (500, 741)]:
        got = geometry.resize(_image(arr, device), size, "nearest").numpy()
        assert np.array_equal(got, _cv(arr, size, cv2.INTER_NEAREST_EXACT)), size


# --------------------------------------------------------------------------- 2. area
def test_area_tie_column_reads_opencvs_pixel():
    start, w = resample_weights.axis_weights("area", False, 741, 1263, area_overlap=False)
    assert start[421] == 246 and w[421].tolist() == [1.0, 0.0]  # OpenCV reads 246 (we read 247)


@pytest.mark.parametrize("kind", ["rgb", "gray", "rgba", "uint16", "float32", "wide"])
def test_area_matches_opencv(device, photos, wide, kind):
    arr = {
        "rgb": lambda: photos["coffee.png"],
        "gray": lambda: photos["camera_gray.png"],
        "rgba": lambda: load_asset("coffee_rgba.png", mode=None),
        "uint16": lambda: load_asset("chelsea_gray16.png", mode=None),
        "float32": lambda: photos["chelsea.png"].astype(np.float32) / 255,
        "wide": lambda: wide,
    }[kind]()
    h, w = arr.shape[:2]
    # the docstring's tolerance: 1 level (uint8); uint16 and float32: OpenCV uses float
    # weights there, ours are OpenCV's 8-bit 11-bit ones (1/4096 of the local contrast)
    tol = {"uint16": 16, "float32": 1 / 4096}.get(kind, 1)
    sizes = [s for group in _sizes(h, w).values() for s in group] + [(1263, 1263), (851, 741)]
    for size in sizes:
        got = geometry.resize(_image(arr, device), size, "area", alpha="straight").numpy()
        d = _diff(got, _cv(arr, size, cv2.INTER_AREA))
        assert d.max() <= tol, (size, d.max(), d.mean())


# --------------------------------------------------------------------------- 3. RGBA
RGBA_METHODS = {"bilinear": PIL.BILINEAR, "bicubic": PIL.BICUBIC, "lanczos": PIL.LANCZOS}
RGBA_COLOUR_TOL = 3  # colour where Pillow's alpha >= 128 (the docstring's)


@pytest.mark.parametrize("method", list(RGBA_METHODS))
def test_rgba_premultiplies_as_pillow(device, cpu_path, method):
    rgba = load_asset("coffee_rgba.png", mode=None)
    h, w = rgba.shape[:2]
    for group, sizes in _sizes(h, w).items():
        if group == "mixed" and not PILLOW_REFERENCE:
            continue  # stated against Pillow 13 (see PILLOW_REFERENCE)
        for size in sizes:
            got = geometry.resize(_image(rgba, device), size, method).numpy()
            ref = _pil(rgba, size, RGBA_METHODS[method])
            d = _diff(got, ref)
            tol = 2 if group == "mixed" else 1  # the method's own tolerance
            assert d[..., 3].max() <= tol, (size, d[..., 3].max())
            opaque = ref[..., 3] >= 128
            assert d[..., :3][opaque].max(initial=0) <= RGBA_COLOUR_TOL, (size, d[..., :3][opaque].max())


def test_rgba_transparent_colour_does_not_bleed(device, cpu_path):
    # left half: fully transparent pure red; right half: opaque green
    arr = np.zeros((8, 16, 4), np.uint8)
    arr[:, :8] = (255, 0, 0, 0)
    arr[:, 8:] = (0, 255, 0, 255)
    got = geometry.resize(_image(arr, device), (8, 11), "bicubic").numpy()
    ref = _pil(arr, (8, 11), PIL.BICUBIC)
    assert _diff(got, ref).max() <= 1  # an exact tie in float, just below in Pillow's fixed point
    assert got[..., 0].max() == 0  # no red anywhere
    straight = geometry.resize(_image(arr, device), (8, 11), "bicubic", alpha="straight").numpy()
    assert straight[..., 0].max() > 100  # the old behaviour, on request


def test_rgba_straight_resamples_every_channel_on_its_own(device):
    rgba = load_asset("coffee_rgba.png", mode=None)
    got = geometry.resize(_image(rgba, device), (133, 217), "lanczos", alpha="straight").numpy()
    rgb = geometry.resize(_image(rgba[..., :3], device), (133, 217), "lanczos").numpy()
    gray = geometry.resize(_image(rgba[..., 3:], device), (133, 217), "lanczos").numpy()
    assert np.array_equal(got, np.concatenate([rgb, gray], axis=2))


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_rgba_float_and_uint16_premultiply_in_float(device, dtype):
    rgba = load_asset("coffee_rgba.png", mode=None).astype(np.float64) / 255
    top = 1.0 if dtype == np.float32 else 65535.0
    arr = np.rint(rgba * top).astype(dtype) if dtype == np.uint16 else rgba.astype(dtype)
    got = geometry.resize(_image(arr, device), (217, 333), "bilinear").numpy().astype(np.float64) / top
    pre = arr.astype(np.float64)
    pre[..., :3] *= pre[..., 3:] / top
    ref = geometry.resize(_image(pre.astype(np.float32), device), (217, 333), "bilinear", alpha="straight").numpy()
    ref = ref.astype(np.float64) / top
    a = ref[..., 3:]
    colour = np.where(a > 0, ref[..., :3] / np.where(a > 0, a, 1), ref[..., :3])
    visible = a[..., 0] >= 0.5
    tol = 1e-5 if dtype == np.float32 else 2 / 65535  # float32 sums; uint16 rounding
    assert np.abs(got[..., 3] - a[..., 0]).max() <= tol
    assert np.abs(got[..., :3] - colour)[visible].max() <= 2 * tol


@pytest.mark.parametrize("mode", ["contain", "cover"])
def test_fit_rgba_premultiplies_as_pillow(device, cpu_path, mode):
    rgba = load_asset("coffee_rgba.png", mode=None)  # 400 x 600
    got = geometry.fit(_image(rgba, device), (224, 224), mode, background=(0, 0, 0, 0)).numpy()
    if mode == "contain":  # 224 x 336 -> 149 x 224, centred
        ref = np.zeros_like(got)
        ref[37:186] = _pil(rgba, (149, 224), PIL.BILINEAR)
    else:
        ref = _pil(rgba, (224, 224), PIL.BILINEAR, box=(100, 0, 500, 400))
    d = _diff(got, ref)
    assert d[..., 3].max() <= 1
    assert d[..., :3][ref[..., 3] >= 128].max() <= RGBA_COLOUR_TOL


# --------------------------------------------------------------------------- 4. lanczos
@pytest.mark.parametrize("name", ["coffee.png", "camera_gray.png", "astronaut.jpg"])
def test_lanczos_upscaling_without_antialias_matches_pillow(device, cpu_path, photos, name):
    arr = photos[name]
    h, w = arr.shape[:2]
    for size in _sizes(h, w)["up"]:
        got = geometry.resize(_image(arr, device), size, "lanczos", antialias=False).numpy()
        d = _diff(got, _pil(arr, size, PIL.LANCZOS))
        assert d.max() <= 1, (size, d.max(), d.mean())  # was 27 before the intermediate was rounded
        # enlarging, the filter does not widen: the same result as antialias=True
        assert np.array_equal(got, geometry.resize(_image(arr, device), size, "lanczos").numpy())


# --------------------------------------------------------------------------- 5. the stated tolerances
# (method, antialias, reference, uint8 tolerance, tolerance where one side grows and the other shrinks)
STATED = [
    ("nearest", False, ("cv2", cv2.INTER_NEAREST_EXACT), 0, 0),
    ("nearest", True, ("pil", PIL.NEAREST), 0, 0),
    ("area", False, ("cv2", cv2.INTER_AREA), 1, 1),
    ("bilinear", False, ("cv2", cv2.INTER_LINEAR), 1, 1),
    ("bicubic", False, ("cv2", cv2.INTER_CUBIC), 1, 1),
    ("bilinear", True, ("pil", PIL.BILINEAR), 1, 2),
    ("bicubic", True, ("pil", PIL.BICUBIC), 1, 2),
    ("lanczos", True, ("pil", PIL.LANCZOS), 1, 2),
]


@pytest.mark.parametrize("method, antialias, ref, tol, tol_mixed", STATED,
                         ids=[f"{m}-aa{int(a)}" for m, a, *_ in STATED])
@pytest.mark.parametrize("group", ["down", "up", "mixed"])
def test_stated_tolerance_holds_on_photos(device, cpu_path, photos, method, antialias, ref, tol, tol_mixed, group):
    if ref[0] != "cv2" and group == "mixed" and not PILLOW_REFERENCE:
        pytest.skip(f"the mixed-direction tolerance is stated against Pillow 13, this is Pillow {PIL.__version__}")
    worst, total, count = 0.0, 0.0, 0
    for name, arr in photos.items():
        h, w = arr.shape[:2]
        for size in _sizes(h, w)[group]:
            got = geometry.resize(_image(arr, device), size, method, antialias=antialias).numpy()
            expect = _cv(arr, size, ref[1]) if ref[0] == "cv2" else _pil(arr, size, ref[1])
            d = _diff(got, expect)
            worst, total, count = max(worst, d.max()), total + d.sum(), count + d.size
    limit = tol_mixed if group == "mixed" else tol
    print(f"\n{method} antialias={antialias} vs {ref[0]} {group}: max {worst:g} mean {total / count:.5f}")
    assert worst <= limit, f"max {worst} > {limit} (mean {total / count:.5f})"


# --------------------------------------------------------------------------- GPU vs CPU
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_gpu_matches_cpu_on_the_new_paths(gpu, numpy_reference, dtype):
    """Premultiplied RGBA (fused kernel, Pillow's vertical-first order, two passes), the
    nearest walk and area upscaling: the kernel does the NumPy reference's arithmetic
    (float32 sums may round the other way: 1 level, magnified by 255 / alpha in colour).
    Against the default CPU path (Pillow's resize on uint8): test_gpu_holds_the_stated_tolerance_against_the_cpu_path."""
    rgba = load_asset("coffee_rgba.png", mode=None)
    scale = {np.uint8: 1, np.uint16: 257, np.float32: 1 / 255}[dtype]
    arr = (rgba.astype(np.float64) * scale).astype(dtype)
    big = np.ascontiguousarray(np.tile(arr, (5, 4, 1)))  # 2000 x 2400: wide windows, two passes
    cases = [
        (arr, lambda s: geometry.resize(s, (851, 1263), "nearest")),
        (arr, lambda s: geometry.resize(s, (741, 1263), "area")),
        (arr, lambda s: geometry.resize(s, (217, 333), "bicubic")),
        (arr, lambda s: geometry.resize(s, (250, 700), "bilinear")),  # width grows, height shrinks
        (arr, lambda s: geometry.resize(s, (517, 811), "lanczos", antialias=False)),
        (big, lambda s: geometry.resize(s, (201, 223), "lanczos")),
        (arr, lambda s: geometry.fit(s, (224, 224), "cover", method="bicubic")),
    ]
    top = {np.uint8: 255, np.uint16: 65535, np.float32: 1.0}[dtype]
    for k, (a, op) in enumerate(cases):
        cpu, cuda = op(_image(a, "cpu")).numpy(), op(_image(a, gpu)).numpy()
        d = _diff(cuda, cpu) / (top / 255)
        if k == 0:
            assert np.array_equal(cuda, cpu)
            continue
        assert d[..., 3].max() <= 1, k
        assert d[..., :3][cpu[..., 3] >= top / 2].max() <= 2, k


def test_gpu_holds_the_stated_tolerance_against_the_cpu_path(gpu):
    """The CPU path runs Pillow's own resize on uint8 (exactly the reference): the kernel is
    within the method's stated tolerance of it (1; 2 where one side grows and the other
    shrinks; RGBA colour 3 where alpha >= 128), as it is of Pillow."""
    rgb, rgba = load_asset("coffee.png"), load_asset("coffee_rgba.png", mode=None)
    cases = [("bilinear", (224, 341), 1), ("bicubic", (217, 333), 1), ("lanczos", (517, 811), 1),
             ("bicubic", (250, 700), 2), ("lanczos", (1, 1), 1)]
    for arr in (rgb, rgba, rgb[..., :1]):
        for method, size, tol in cases:
            cpu = geometry.resize(_image(arr, "cpu"), size, method).numpy()
            d = _diff(geometry.resize(_image(arr, gpu), size, method).numpy(), cpu)
            if arr.shape[2] == 4:
                assert d[..., 3].max() <= tol and d[..., :3][cpu[..., 3] >= 128].max(initial=0) <= RGBA_COLOUR_TOL
            else:
                assert d.max() <= tol, (method, size, d.max())
