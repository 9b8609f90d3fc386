"""Compositing and drawing (gpuimg.ops.compose) against outside references.

References: Pillow's ``Image.alpha_composite`` (blend, collage, shadow and stroke layers),
OpenCV's GaussianBlur (shadow), SciPy's exact Euclidean distance transform (stroke), NumPy
formulas of the definitions written here (fill, gradient, corner coverage by 16x16
supersampling). Tolerances are stated at each check.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

import gpuimg
from gpuimg.ops import compose
from gpuimg.ops import launch_stats, reset_launch_stats

from conftest import load_asset


@pytest.fixture(scope="module")
def rgba() -> np.ndarray:
    return load_asset("coffee_rgba.png", "RGBA")  # 600x400, every alpha level


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    """The cat photo with a horizontal alpha ramp (a semi-transparent background)."""
    rgb = load_asset("chelsea.png")
    ramp = np.linspace(40, 255, rgb.shape[1]).astype(np.uint8)
    return np.dstack([rgb, np.broadcast_to(ramp, rgb.shape[:2])])


def _img(arr: np.ndarray, device: str) -> gpuimg.Image:
    return gpuimg.Image.from_array(np.ascontiguousarray(arr)).to(device)


def _close(got: np.ndarray, want: np.ndarray, max_diff: int, max_mean: float = 1.0) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max() <= max_diff, f"max diff {diff.max()} > {max_diff}"
    assert diff.mean() <= max_mean, f"mean diff {diff.mean():.3f} > {max_mean}"


def _pillow_over(dst: np.ndarray, src: np.ndarray, top: int, left: int) -> np.ndarray:
    """Pillow's alpha_composite of src over dst at (top, left), clipped by hand (Pillow
    refuses negative destinations)."""
    h, w = dst.shape[:2]
    y0, x0 = max(0, -top), max(0, -left)
    y1, x1 = min(src.shape[0], h - top), min(src.shape[1], w - left)
    base = PILImage.fromarray(dst, "RGBA")
    base.alpha_composite(PILImage.fromarray(np.ascontiguousarray(src[y0:y1, x0:x1]), "RGBA"), dest=(x0 + left, y0 + top))
    return np.asarray(base)


# ----------------------------------------------------------------------------- fill, gradient


def test_fill_region_is_clipped(device, cat):
    img = _img(cat, device)
    got = compose.fill(img, (10, 20, 30, 40), region=(-5, 400, 50, 100)).numpy()
    want = cat.copy()
    want[0:45, 400:451] = (10, 20, 30, 40)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(img.numpy(), cat)  # out=None leaves dst alone
    compose.fill(img, 9, out=img)
    assert (img.numpy() == [9, 9, 9, 255]).all()


def _stops_reference(t: np.ndarray, positions: list[float], colors: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(t, positions, colors[:, k]) for k in range(colors.shape[1])], axis=-1)


def test_linear_gradient_matches_definition(device):
    colors = np.array([[255, 0, 0, 255], [0, 255, 0, 128], [0, 0, 255, 0]], np.float64)
    img = _img(np.zeros((60, 90, 4), np.uint8), device)
    got = compose.gradient(img, [tuple(c) for c in colors.astype(int)]).numpy()
    t = (np.arange(90) + 0.5) / 90  # angle 0: left edge 0, right edge 1
    want = np.rint(_stops_reference(t, [0, 0.5, 1], colors))[None].repeat(60, 0)
    _close(got, want.astype(np.uint8), 1, 0.05)
    got = compose.gradient(img, [(0.2, (0, 0, 0)), (0.7, (200, 100, 50))], angle=90).numpy()
    t = (np.arange(60) + 0.5) / 60
    want = np.rint(_stops_reference(t, [0.2, 0.7], np.array([[0, 0, 0, 255], [200, 100, 50, 255]], float)))
    _close(got, want[:, None].repeat(90, 1).astype(np.uint8), 1, 0.05)


def test_diagonal_and_radial_gradient(device):
    img = _img(np.zeros((50, 80, 3), np.uint8), device)
    diag = compose.gradient(img, [(0, 0, 0), (255, 255, 255)], angle=45).numpy()
    assert diag[0, 0, 0] < 10 and diag[-1, -1, 0] > 245  # corners reach the end stops
    rad = compose.gradient(img, [(255, 255, 255), (0, 0, 0)], kind="radial").numpy()[..., 0]
    yy, xx = np.mgrid[:50, :80] + 0.5
    t = np.hypot(yy - 25, xx - 40) / np.hypot(25, 40)
    _close(rad, np.rint(255 * (1 - t)).astype(np.uint8), 1, 0.05)


# ----------------------------------------------------------------------------- blend, paste, grid, collage


@pytest.mark.parametrize("top, left", [(0, 0), (-40, 120), (150, -200), (250, 300)])
def test_blend_matches_pillow_alpha_composite(device, rgba, cat, top, left):
    got = compose.blend(_img(cat, device), _img(rgba, device), top, left).numpy()
    np.testing.assert_array_equal(got, _pillow_over(cat, rgba, top, left))  # exact


def test_blend_opacity_rgb_dst_and_in_place(device, rgba, cat):
    src = rgba.copy()
    want = _pillow_over(cat, _with_alpha(src, np.rint(src[..., 3] * np.float32(0.4))), 10, 20)
    dst = _img(cat, device)
    assert compose.blend(dst, _img(rgba, device), 10, 20, opacity=0.4, out=dst) is dst
    np.testing.assert_array_equal(dst.numpy(), want)
    rgb_dst = np.ascontiguousarray(cat[..., :3])
    got = compose.blend(_img(rgb_dst, device), _img(rgba, device), -30, -30).numpy()
    opaque = np.dstack([rgb_dst, np.full(rgb_dst.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(got, _pillow_over(opaque, rgba, -30, -30)[..., :3])


def _with_alpha(arr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    out = arr.copy()
    out[..., 3] = alpha.astype(np.uint8)
    return out


def test_paste_and_layer_batch(device, rgba, cat):
    got = compose.paste(_img(cat, device), _img(rgba[:100, :100], device), -20, 400).numpy()
    want = cat.copy()
    want[0:80, 400:451] = rgba[20:100, 0:51]
    np.testing.assert_array_equal(got, want)
    layers = gpuimg.ImageBatch.from_images([rgba[:120, :150], rgba[200:300, 300:450]], device=device)
    reset_launch_stats()
    both = compose.blend(_img(cat, device), layers, [0, 150], [0, 250]).numpy()
    if device == "cuda":
        assert launch_stats()["count"] == 1  # two layers, one launch
    want = _pillow_over(_pillow_over(cat, rgba[:120, :150], 0, 0), rgba[200:300, 300:450], 150, 250)
    np.testing.assert_array_equal(both, want)


def test_grid_and_collage(device, rgba):
    tiles = [rgba[:50, :60], rgba[100:140, 200:260], rgba[300:350, 500:560]]
    batch = gpuimg.ImageBatch.from_images(tiles, device=device)
    got = compose.grid(batch, columns=2, spacing=4, background=(1, 2, 3, 4)).numpy()
    want = np.zeros((104, 124, 4), np.uint8)
    want[...] = (1, 2, 3, 4)
    want[0:50, 0:60] = tiles[0]
    want[5:45, 64:124] = tiles[1]  # 40 rows centred in a 50-row cell
    want[54:104, 0:60] = tiles[2]
    np.testing.assert_array_equal(got, want)
    listed = compose.grid([_img(t, device) for t in tiles], columns=2, spacing=4, background=(1, 2, 3, 4)).numpy()
    np.testing.assert_array_equal(listed, want)
    canvas = compose.collage([_img(t, device) for t in tiles], [(0, 0), (30, 40), (-10, 70)], (80, 120), (255, 255, 255, 255)).numpy()
    ref = np.full((80, 120, 4), 255, np.uint8)
    for t, (y, x) in zip(tiles, [(0, 0), (30, 40), (-10, 70)]):
        ref = _pillow_over(ref, t, y, x)
    np.testing.assert_array_equal(canvas, ref)


# ----------------------------------------------------------------------------- corner radius


def _supersampled_coverage(h: int, w: int, r: float, n: int = 16) -> np.ndarray:
    """Area of each pixel inside the rounded rectangle, by n x n point sampling."""
    off = (np.arange(n) + 0.5) / n
    ys = (np.arange(h)[:, None] + off[None]).reshape(-1)
    xs = (np.arange(w)[:, None] + off[None]).reshape(-1)
    cy = np.clip(ys, r, h - r)[:, None]
    cx = np.clip(xs, r, w - r)[None]
    inside = (ys[:, None] - cy) ** 2 + (xs[None] - cx) ** 2 <= r * r
    return inside.reshape(h, n, w, n).mean(axis=(1, 3))


def test_corner_radius_is_antialiased_coverage(device, cat):
    rgb = np.ascontiguousarray(cat[..., :3])
    got = compose.corner_radius(_img(rgb, device), 40).numpy()
    assert got.shape == (300, 451, 4)
    np.testing.assert_array_equal(got[..., :3], rgb)
    want = 255 * _supersampled_coverage(300, 451, 40)
    _close(got[..., 3], np.rint(want), 16, 0.1)  # distance-based coverage vs true area
    edge = got[..., 3][:40, :40]
    assert ((edge > 0) & (edge < 255)).sum() >= 40  # soft edge pixels, no stair-steps


def test_corner_radius_batch_clamp_and_in_place(device, cat):
    batch = gpuimg.ImageBatch.from_images([cat, cat[:100, :100].copy()], device=device)
    out = compose.corner_radius(batch, [10, 500]).numpy()  # 500 is clamped to 50
    single = compose.corner_radius(_img(cat[:100, :100], device), 50).numpy()
    np.testing.assert_array_equal(out[1], single)
    img = _img(cat, device)
    assert compose.corner_radius(img, 10, out=img) is img
    np.testing.assert_array_equal(img.numpy(), out[0])


# ----------------------------------------------------------------------------- shadow and stroke


def test_drop_shadow_matches_blur_and_pillow(device, rgba):
    small = np.ascontiguousarray(rgba[::2, ::2])  # 300x200
    got = compose.drop_shadow(_img(small, device), offset=(6, -4), blur_sigma=3.0, color=(20, 0, 60), opacity=0.6).numpy()
    pad = 9
    top, left, bottom, right = pad - 6, pad + 4, pad + 6, pad - 4
    h, w = 200 + top + bottom, 300 + left + right
    assert got.shape == (h, w, 4)
    mask = np.zeros((h, w), np.uint8)
    mask[top + 6 : top + 6 + 200, left - 4 : left - 4 + 300] = small[..., 3]
    blurred = cv2.GaussianBlur(mask, (19, 19), 3.0, borderType=cv2.BORDER_CONSTANT)
    shadow = np.zeros((h, w, 4), np.uint8)
    shadow[..., :3] = (20, 0, 60)
    shadow[..., 3] = np.rint(blurred * 0.6)
    want = _pillow_over(shadow, small, top, left)
    # A one-level blur difference moves the colour of nearly transparent pixels a lot
    # (straight alpha), so compare premultiplied colour and alpha: 2 levels.
    _close(_premultiplied(got), _premultiplied(want), 2, 0.05)


def _premultiplied(arr: np.ndarray) -> np.ndarray:
    out = arr.astype(np.float64)
    out[..., :3] *= out[..., 3:] / 255
    return np.rint(out)


def test_drop_shadow_without_expand(device, rgba):
    got = compose.drop_shadow(_img(rgba, device), offset=(5, 5), blur_sigma=2.0, expand=False).numpy()
    assert got.shape == rgba.shape


def _stroke_reference(arr: np.ndarray, width: float, color: tuple[int, int, int], inside: bool) -> np.ndarray:
    from scipy.ndimage import distance_transform_edt

    shape = arr[..., 3] >= 128
    if width == 0:
        return arr  # no stroke at all
    if inside:
        dist = distance_transform_edt(np.pad(shape, 1))[1:-1, 1:-1]  # the border is an edge
        k = np.clip(width + 1 - dist, 0, 1)[..., None]
        out = arr.astype(np.float64)
        out[..., :3] = np.where(shape[..., None], arr[..., :3] + (np.array(color) - arr[..., :3]) * k, arr[..., :3])
        return np.rint(out).astype(np.uint8)
    dist = distance_transform_edt(~shape)
    layer = np.zeros_like(arr)
    layer[..., :3] = color
    layer[..., 3] = np.where(shape, 255, np.rint(np.clip(width + 1 - dist, 0, 1) * 255))
    return _pillow_over(layer, arr, 0, 0)


@pytest.mark.parametrize("width, position", [(3, "outside"), (12.5, "outside"), (4, "inside"), (0, "outside")])
def test_stroke_matches_exact_distance_transform(device, rgba, width, position):
    small = np.ascontiguousarray(rgba[::2, ::2])
    got = compose.stroke(_img(small, device), width, (255, 0, 0), position).numpy()
    _close(got, _stroke_reference(small, width, (255, 0, 0), position == "inside"), 1, 0.01)


def test_bounded_distance_equals_scipy_within_reach():
    from scipy.ndimage import distance_transform_edt

    rng = np.random.default_rng(0)
    features = rng.random((64, 80)) < 0.01
    got = compose.bounded_distance(features, 20, False)
    want = distance_transform_edt(~features)
    near = want <= 20
    np.testing.assert_allclose(got[near], want[near], rtol=1e-6)
    assert (got[~near] > 20).all()


# ----------------------------------------------------------------------------- GPU vs CPU, allocations, errors


@pytest.mark.parametrize(
    "fn",
    [
        lambda b: compose.gradient(b, [(0, 0, 0), (90, 200, 30), (255, 255, 255)], angle=30),
        lambda b: compose.gradient(b, [(255, 0, 0), (0, 0, 255)], kind="radial", center=(0.3, 0.6), radius=0.8),
        lambda b: compose.corner_radius(b, [20, 35]),
        lambda b: compose.stroke(b, 5, (0, 0, 255)),
        lambda b: compose.stroke(b, 3, (0, 255, 0), "inside"),
        lambda b: compose.drop_shadow(b, (4, 4), 2.0),
        lambda b: compose.fill(b, (1, 2, 3, 4), region=(10, 10, 30, 30)),
    ],
)
def test_gpu_matches_cpu(gpu, rgba, cat, fn):
    arrays = [np.ascontiguousarray(rgba[::2, ::2]), cat]
    cpu = fn(gpuimg.ImageBatch.from_images(arrays, device="cpu")).numpy()
    got = fn(gpuimg.ImageBatch.from_images(arrays, device="cuda")).numpy()
    for a, b in zip(got, cpu):
        _close(a, b, 1, 0.01)


def test_steady_state_allocates_nothing(device, rgba, cat):
    dst, src = _img(cat, device), _img(rgba, device)
    out = compose.stroke(src, 4, (0, 0, 0))
    compose.blend(dst, src, 5, 5, out=dst)
    gpuimg.reset_memory_stats()
    for _ in range(2):
        compose.blend(dst, src, 5, 5, out=dst)
        compose.stroke(src, 4, (0, 0, 0), out=out)
    assert gpuimg.memory_stats()["allocations"] == 0


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda a, g: compose.blend(a, gpuimg.Image.from_array(np.zeros((8, 8, 2), np.uint8))), "channels"),  # gray works
        (lambda a, g: compose.blend(a, a, opacity=1.5), "opacity"),
        (lambda a, g: compose.corner_radius(a, -1), "radius"),
        (lambda a, g: compose.stroke(a, 2, position="middle"), "position"),
        (lambda a, g: compose.stroke(a, -2), "width"),
        (lambda a, g: compose.gradient(a, [(0, 0, 0)], kind="conic"), "kind"),
        (lambda a, g: compose.gradient(a, [(1.5, (0, 0, 0))]), "position"),
        (lambda a, g: compose.fill(a, (300, 0, 0)), "color"),
        (lambda a, g: compose.drop_shadow(a, blur_sigma=0), "blur_sigma"),
        (lambda a, g: compose.grid([a], columns=0), "columns"),
    ],
)
def test_bad_arguments_name_themselves(call, name):
    a = gpuimg.Image.from_array(np.zeros((8, 8, 4), np.uint8))
    g = gpuimg.Image.from_array(np.zeros((8, 8, 1), np.uint8))
    with pytest.raises(ValueError, match=name):
        call(a, g)
