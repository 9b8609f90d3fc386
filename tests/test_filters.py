"""Neighbourhood filters against OpenCV / scikit-image / Pillow on the real photos.

Tolerances (max absolute difference in uint8 levels), and why:
- gaussian_blur, box_blur vs cv2: 1 (OpenCV's 8-bit path is fixed point, ours float32).
- median_blur vs cv2.medianBlur: 0 (a median picks a pixel value: no rounding).
- convolve vs cv2.filter2D: 1; sobel magnitude vs cv2.Sobel (CV_32F) + hypot: 1.
- unsharp_mask vs skimage's definition (scipy gaussian_filter): 1; sharpen vs Pillow SHARPEN: 1 (interior,
  Pillow leaves the one-pixel frame unfiltered).
- GPU vs CPU: 1 level (float32 sums in another order may round the other way), and
  identical for the median.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpuimg
from gpuimg import Image, ImageBatch
from gpuimg import ops as _common
from gpuimg.ops import filters
from conftest import load_asset

cv2 = pytest.importorskip("cv2")

CV2_BORDER = {"reflect": cv2.BORDER_REFLECT_101, "symmetric": cv2.BORDER_REFLECT,
              "edge": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}


def _max_diff(a, b) -> int:
    return int(np.abs(np.asarray(a, np.int32) - np.asarray(b, np.int32)).max())


def _image(arr: np.ndarray, device: str) -> Image:
    return Image.from_array(np.array(arr), device="cpu").to(device)


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    return load_asset("chelsea.png")


@pytest.fixture(scope="module")
def small_set() -> list[np.ndarray]:
    """Mixed sizes and channel layouts: RGB photo crops, and the gray camera."""
    coffee = load_asset("coffee.png")
    return [coffee[:150, :230], load_asset("chelsea.png")[40:200, 60:157], coffee[200:, 300:437]]


# --------------------------------------------------------------------------- gaussian
@pytest.mark.parametrize("sigma, radius", [(3.0, None), (1.2, None), (2.0, 2), (8.0, 30)])
@pytest.mark.parametrize("border", ["reflect", "symmetric", "edge", "constant"])
def test_gaussian_matches_cv2(device, cat, sigma, radius, border):
    got = filters.gaussian_blur(_image(cat, device), sigma, radius=radius, border=border).numpy()
    k = 2 * (filters.default_radius(sigma) if radius is None else radius) + 1
    ref = cv2.GaussianBlur(cat, (k, k), sigma, borderType=CV2_BORDER[border])
    assert _max_diff(got, ref) <= 1


@pytest.mark.parametrize("asset", ["camera_gray.png", "coffee_rgba.png"])
def test_gaussian_gray_and_rgba(device, asset):
    arr = load_asset(asset, mode=None)
    got = filters.gaussian_blur(_image(arr, device), 2.5).numpy()
    ref = cv2.GaussianBlur(arr, (0, 0), 2.5)
    assert _max_diff(got, ref.reshape(arr.shape)) <= 1


def test_gaussian_radius_larger_than_image(device):
    arr = load_asset("chelsea.png")[:20, :30]
    got = filters.gaussian_blur(_image(arr, device), 20.0, radius=60).numpy()
    ref = cv2.GaussianBlur(arr, (121, 121), 20.0, borderType=cv2.BORDER_REFLECT_101)
    assert _max_diff(got, ref) <= 1


def test_gaussian_float32_and_uint16(device):
    gray16 = load_asset("chelsea_gray16.png", mode=None)
    got = filters.gaussian_blur(_image(gray16, device), 1.5, radius=6).numpy()
    ref = cv2.GaussianBlur(gray16, (13, 13), 1.5)
    assert _max_diff(got, ref[:, :, None]) <= 1
    f = load_asset("chelsea.png").astype(np.float32) / 255
    got = filters.gaussian_blur(_image(f, device), 1.5, radius=6).numpy()
    np.testing.assert_allclose(got, cv2.GaussianBlur(f, (13, 13), 1.5), atol=1e-5)


def test_gaussian_in_place_equals_out_of_place(device, cat):
    img = _image(cat, device)
    expected = filters.gaussian_blur(img, 3.0).numpy()
    same = filters.gaussian_blur(img, 3.0, out=img)
    assert same is img
    assert np.array_equal(img.numpy(), expected)


def test_gaussian_batch_equals_single_with_per_sample_sigma(device, small_set):
    sigmas = [1.0, 2.5, 4.0]
    batch = ImageBatch.from_images(small_set, device=device)
    got = filters.gaussian_blur(batch, sigmas).numpy()
    for arr, sigma, g in zip(small_set, sigmas, got):
        assert np.array_equal(g, filters.gaussian_blur(_image(arr, device), sigma).numpy())


def test_gpu_matches_cpu(gpu, small_set):
    ops = [
        lambda s: filters.gaussian_blur(s, [1.0, 3.0, 5.0]),
        lambda s: filters.box_blur(s, 3),
        lambda s: filters.unsharp_mask(s, 2.0, 1.5),
        lambda s: filters.sharpen(s, 1.0),
        lambda s: filters.convolve(s, np.arange(15).reshape(3, 5) / 50.0 - 0.1),
        lambda s: filters.sobel(s),
        lambda s: filters.median_blur(s, 5),
    ]
    cpu = ImageBatch.from_images(small_set, device="cpu")
    cuda = ImageBatch.from_images(small_set, device=gpu)
    for k, op in enumerate(ops):
        for a, b in zip(op(cpu).numpy(), op(cuda).numpy()):
            assert _max_diff(a, b) <= (0 if k == 6 else 1), k


def test_gpu_two_pass_path_matches_cpu(gpu, small_set):
    """Radii too large for the shared-memory tile take the two-pass kernels."""
    cpu = ImageBatch.from_images(small_set, device="cpu")
    cuda = ImageBatch.from_images(small_set, device=gpu)
    for op in (lambda s: filters.gaussian_blur(s, 15.0, border="symmetric"),
               lambda s: filters.unsharp_mask(s, 12.0, 0.7, threshold=3)):
        for a, b in zip(op(cpu).numpy(), op(cuda).numpy()):
            assert _max_diff(a, b) <= 1


def test_out_reuse_allocates_nothing(device, small_set):
    batch = ImageBatch.from_images(small_set, device=device)
    out = filters.gaussian_blur(batch, 2.0)
    for op in (lambda o: filters.gaussian_blur(batch, 2.0, out=o), lambda o: filters.median_blur(batch, 3, out=o),
               lambda o: filters.sobel(batch, out=o), lambda o: filters.unsharp_mask(batch, 1.0, out=o)):
        op(out)  # warm the workspace (out of place and in place)
        op(batch)
        gpuimg.reset_memory_stats()
        op(out)
        op(batch)  # in place too
        assert gpuimg.memory_stats()["allocations"] == 0


def test_one_launch_per_pass_for_a_batch(gpu, small_set):
    batch = ImageBatch.from_images(small_set, device=gpu)
    out = filters.gaussian_blur(batch, 2.0)
    big = 100.0  # radius 300: too big for the shared-memory tile, so the two-pass kernels run
    for op, passes in ((lambda: filters.gaussian_blur(batch, [1.0, 2.0, 3.0], out=out), 1),
                       (lambda: filters.gaussian_blur(batch, [1.0, 2.0, big], out=out), 2),
                       (lambda: filters.unsharp_mask(batch, 2.0, out=out), 1),
                       (lambda: filters.median_blur(batch, 5, out=out), 1),
                       (lambda: filters.convolve(batch, np.ones((3, 3)) / 9, out=out), 1)):
        _common.reset_launch_stats()
        op()
        assert _common.launch_stats()["count"] == passes


# --------------------------------------------------------------------------- other filters
@pytest.mark.parametrize("radius", [1, 4])
def test_box_blur_matches_cv2(device, cat, radius):
    got = filters.box_blur(_image(cat, device), radius).numpy()
    k = 2 * radius + 1
    assert _max_diff(got, cv2.blur(cat, (k, k), borderType=cv2.BORDER_REFLECT_101)) <= 1


@pytest.mark.parametrize("size", [3, 5, 7, 9])
def test_median_matches_cv2(device, size):
    arr = load_asset("coffee.png")[100:260, 150:330]
    got = filters.median_blur(_image(arr, device), size).numpy()
    assert _max_diff(got, cv2.medianBlur(arr, size)) == 0


@pytest.mark.parametrize("size", [3, 5, 7, 9])
def test_median_network_selects_the_median(size):
    """The generated comparator network (run in NumPy) equals numpy.median, ties included."""
    rng = np.random.default_rng(size)
    values = rng.integers(0, 6, (4000, size * size)).astype(np.uint8)  # few levels: many ties
    assert np.array_equal(filters.median._median_numpy_network(values), np.median(values, axis=1).astype(np.uint8))
    n = size * size
    assert filters.median_network(n)[1] < sum(n - 1 - i for i in range(n // 2 + 1))  # fewer than a selection sort


def test_median_in_place(device):
    arr = load_asset("camera_gray.png", mode=None)[:120, :100]
    img = _image(arr, device)
    filters.median_blur(img, 3, out=img)
    assert _max_diff(img.numpy(), cv2.medianBlur(arr, 3)[:, :, None]) == 0


def test_convolve_matches_cv2_filter2d(device, cat):
    kernel = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0], [0.5, 0, -0.5]], np.float32)  # 4x3: anchor (2, 1)
    for border in ("reflect", "edge"):
        got = filters.convolve(_image(cat, device), kernel, border=border).numpy()
        ref = cv2.filter2D(cat, -1, kernel, borderType=CV2_BORDER[border])
        assert _max_diff(got, ref) <= 1


def test_convolve_in_place(device, cat):
    img = _image(cat, device)
    expected = filters.convolve(img, np.ones((5, 5)) / 25).numpy()
    filters.convolve(img, np.ones((5, 5)) / 25, out=img)
    assert np.array_equal(img.numpy(), expected)


def test_sobel_matches_cv2(device, cat):
    got = filters.sobel(_image(cat, device)).numpy()
    gx = cv2.Sobel(cat, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(cat, cv2.CV_32F, 0, 1, ksize=3)
    ref = np.clip(np.rint(np.sqrt(gx * gx + gy * gy)), 0, 255)
    assert _max_diff(got, ref) <= 1


@pytest.mark.parametrize("border, scipy_mode", [("edge", "nearest"), ("symmetric", "reflect")])
def test_unsharp_matches_scipy_definition(device, cat, border, scipy_mode):
    """image + amount * (image - gaussian_filter(truncate=4)), the borders included.
    skimage.filters.unsharp_mask is this with scipy's mode="reflect" (cba|abcd|dcb), i.e.
    border="symmetric"; scipy is used directly (skimage 0.26 misbehaved under pytest here)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    got = filters.unsharp_mask(_image(cat, device), 2.0, 1.5, radius=8, border=border).numpy()
    f = cat.astype(np.float64)
    blurred = ndimage.gaussian_filter(f, sigma=(2.0, 2.0, 0), mode=scipy_mode, truncate=4.0)
    ref = np.clip(np.rint(f + 1.5 * (f - blurred)), 0, 255)
    assert _max_diff(got, ref) <= 1


def test_unsharp_threshold_keeps_flat_areas(device, cat):
    got = filters.unsharp_mask(_image(cat, device), 2.0, 1.5, threshold=255).numpy()
    assert np.array_equal(got, cat)


def test_sharpen_matches_pillow(device, cat):
    from PIL import Image as PILImage, ImageFilter

    got = filters.sharpen(_image(cat, device), 1.0).numpy()
    ref = np.asarray(PILImage.fromarray(cat).filter(ImageFilter.SHARPEN))
    assert _max_diff(got[1:-1, 1:-1], ref[1:-1, 1:-1]) <= 1


# --------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "call, words",
    [
        (lambda im: filters.gaussian_blur(im, 0), "sigma"),
        (lambda im: filters.gaussian_blur(im, -1.0), "sigma"),
        (lambda im: filters.gaussian_blur(im, 1.0, border="mirror"), "border"),
        (lambda im: filters.gaussian_blur(im, 1.0, radius=-2), "radius"),
        (lambda im: filters.box_blur(im, -1), "radius"),
        (lambda im: filters.median_blur(im, 4), "size"),
        (lambda im: filters.median_blur(im, 11), "size"),
        (lambda im: filters.convolve(im, np.ones(3)), "kernel"),
        (lambda im: filters.unsharp_mask(im, 1.0, threshold=-1), "threshold"),
    ],
)
def test_bad_arguments_name_the_argument(call, words):
    img = Image.empty(8, 8, device="cpu")
    with pytest.raises(ValueError, match=words):
        call(img)


def test_per_sample_count_checked():
    batch = ImageBatch.empty([(8, 8), (9, 9)], device="cpu")
    with pytest.raises(ValueError, match="sigma"):
        filters.gaussian_blur(batch, [1.0, 2.0, 3.0])


# ---------------------------------------------------------------- the op registry and kernel sources


def test_registry_lists_exactly_the_public_ops_of_the_four_families() -> None:
    import inspect

    from gpuimg.ops import color, compose, geometry, registry

    expected = {}
    for family in (color, compose, filters, geometry):
        for name in family.__all__:
            fn = getattr(family, name)
            if inspect.isfunction(fn) and "out" in inspect.signature(fn).parameters and "stream" in inspect.signature(fn).parameters:
                expected[name] = family.__name__.rsplit(".", 1)[1]
    ops = registry.registered()
    assert {n: i.family for n, i in ops.items()} == expected
    for info in ops.values():
        params = inspect.signature(info.fn).parameters
        assert params["out"].kind is inspect.Parameter.KEYWORD_ONLY and params["stream"].kind is inspect.Parameter.KEYWORD_ONLY
    assert not ops["grid"].step and not ops["collage"].step
    assert ops["blend"].image_params == ("src",) and ops["paste"].image_params == ("src",)
    assert {"fill", "gradient", "blend", "paste"} <= set(registry.available_ops())
