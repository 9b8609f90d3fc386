"""Wrong arguments are refused with an error that names the argument (issue 14's list):
nothing is converted from a string, truncated, or silently turned into a no-op, and no
argument can make an op allocate or loop beyond the image."""

from __future__ import annotations

import numpy as np
import pytest

import gpuimg
from gpuimg.ops.compose import blend, collage, drop_shadow, fill, gradient, grid, stroke
from gpuimg.ops.filters import gaussian_blur, sharpen, unsharp_mask
from gpuimg.ops.geometry import resize_shorter


def _img(device: str, h: int = 12, w: int = 16, c: int = 3) -> gpuimg.Image:
    a = np.random.default_rng(0).integers(0, 256, (h, w, c), dtype=np.uint8)
    return gpuimg.Image.from_array(a, device="cpu").to(device)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda d: resize_shorter(_img(d), 100, max_size=50), ValueError, "max_size=50 must be greater than size"),
        (lambda d: resize_shorter(_img(d), 10, max_size=1.5), ValueError, "max_size must be an int"),
        (lambda d: gaussian_blur(_img(d), "2"), TypeError, "sigma must be a number"),
        (lambda d: gaussian_blur(_img(d), float("inf")), ValueError, "sigma must be finite"),
        (lambda d: unsharp_mask(_img(d), 1.0, 1.0, threshold=float("nan")), ValueError, "threshold must be finite"),
        (lambda d: unsharp_mask(_img(d), 1.0, "x"), TypeError, "amount must be a number"),
        (lambda d: gradient(_img(d), [(0, 0, 0), (9, 9, 9)], angle=float("nan")), ValueError, "angle must be finite"),
        (lambda d: gradient(_img(d), [(0, 0, 0), (9, 9, 9)], kind="radial", center=(0.5,)), ValueError, "center must be 2 numbers"),
        (lambda d: blend(_img(d, c=4), _img(d, 2, 2, 4), top=1.5), ValueError, "top must be an int"),
        (lambda d: blend(_img(d, c=4), _img(d, 2, 2, 4), top=float("nan")), ValueError, "top must be finite"),
        (lambda d: blend(_img(d, c=4), _img(d, 2, 2, 4), left="3"), TypeError, "left must be a number"),
        (lambda d: sharpen(_img(d), "x"), TypeError, "amount must be a number"),
        (lambda d: sharpen(_img(d), float("nan")), ValueError, "amount must be finite"),
        (lambda d: fill(_img(d), 5, region=(0, 0, 5)), ValueError, "region must be 4 numbers"),
        (lambda d: fill(_img(d), 5, region=(0, 0, 5, 2.5)), ValueError, "region[3] must be an int"),
        (lambda d: drop_shadow(_img(d, c=4), offset=(1,)), ValueError, "offset must be 2 numbers"),
        (lambda d: drop_shadow(_img(d, c=4), offset=3), TypeError, "offset must be a sequence of 2 numbers"),
        (lambda d: grid(_img(d), 2), TypeError, "for one image: grid([image], ...)"),
        (lambda d: grid([_img(d), "x"], 2), TypeError, "images[1] must be a gpuimg.Image"),
        (lambda d: collage([gpuimg.ImageBatch.from_images([_img(d, c=4)])], [(0, 0)], (4, 4)), TypeError,
         "images[0] must be a gpuimg.Image"),
        (lambda d: collage([_img(d, c=4)], [(0,)], (4, 4)), ValueError, "positions[0] must be 2 numbers"),
        (lambda d: collage([_img(d, c=4)], [(0, 0)], (0, 4)), ValueError, "size[0]=0 is out of range"),
        (lambda d: stroke(_img(d, c=4), float("nan")), ValueError, "width must be finite"),
        (lambda d: stroke(_img(d, c=4), -1), ValueError, "width=-1 is out of range"),
    ],
)
def test_wrong_argument_names_itself(device: str, call, error: type, words: str) -> None:
    with pytest.raises(error) as info:
        call(device)
    assert words in str(info.value)


def test_huge_stroke_width_covers_the_image_without_runaway(device: str) -> None:
    """A width beyond the image's extent is the same stroke as the extent: bounded work."""
    a = np.zeros((9, 11, 4), np.uint8)
    a[4, 5] = 255
    img = gpuimg.Image.from_array(a, device="cpu").to(device)
    huge = stroke(img, 1e9, (255, 0, 0)).numpy()
    extent = stroke(img, 20, (255, 0, 0)).numpy()
    assert np.array_equal(huge, extent)
    assert (huge[..., 3] == 255).all()


def test_integral_floats_and_numpy_numbers_are_accepted(device: str) -> None:
    img = _img(device, c=4)
    layer = _img(device, 2, 2, 4)
    assert np.array_equal(blend(img, layer, top=np.int64(1), left=2.0).numpy(), blend(img, layer, top=1, left=2).numpy())
    assert resize_shorter(_img(device, 40, 60), 20, max_size=np.int32(40)).shape == (20, 30, 3)
    assert gaussian_blur(_img(device), np.float32(1.5)).shape == (12, 16, 3)
