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


# ----------------------------------------------------------------------------- out= (issue 14)
# "out= of another dtype is re-typed": an op never retypes a caller's out. The one check
# lives in gpuimg.ops._engine.batch.check_out (through prepare_out); these cover each family.

from gpuimg.ops.color import adjust_brightness, convert, invert, to_gray  # noqa: E402
from gpuimg.ops.compose import corner_radius  # noqa: E402
from gpuimg.ops.filters import box_blur, median_blur, sobel  # noqa: E402
from gpuimg.ops.geometry import crop, flip, pad, resize, rotate, rotate90, warp_affine  # noqa: E402

_OUT_OPS = {
    "invert": lambda s, **o: invert(s, **o),
    "adjust_brightness": lambda s, **o: adjust_brightness(s, 1.2, **o),
    "to_gray": lambda s, **o: to_gray(s, **o),
    "convert": lambda s, **o: convert(s, "bgr", **o),
    "gaussian_blur": lambda s, **o: gaussian_blur(s, 1.0, **o),
    "box_blur": lambda s, **o: box_blur(s, 3, **o),
    "median_blur": lambda s, **o: median_blur(s, 3, **o),
    "sobel": lambda s, **o: sobel(s, **o),
    "unsharp_mask": lambda s, **o: unsharp_mask(s, 1.0, 1.0, **o),
    "resize": lambda s, **o: resize(s, (7, 9), "bilinear", **o),
    "crop": lambda s, **o: crop(s, 1, 2, 5, 6, **o),
    "flip": lambda s, **o: flip(s, horizontal=True, **o),
    "rotate90": lambda s, **o: rotate90(s, 1, **o),
    "pad": lambda s, **o: pad(s, 1, 2, 3, 4, **o),
    "rotate": lambda s, **o: rotate(s, 30.0, expand=True, **o),
    "warp_affine": lambda s, **o: warp_affine(s, [[1, 0, 0.5], [0, 1, 0.25]], **o),
    "fill": lambda s, **o: fill(s, (10, 20, 30), **o),
    "blend": lambda s, **o: blend(s, _layers(s), top=1, left=1, **o),
    "corner_radius": lambda s, **o: corner_radius(_rgba(s), 3, **o),
}


def _layers(src: gpuimg.Image | gpuimg.ImageBatch):
    layer = _img(src.device, 2, 2, 4)
    return gpuimg.ImageBatch.from_images([layer] * len(src)) if isinstance(src, gpuimg.ImageBatch) else layer


def _rgba(src: gpuimg.Image | gpuimg.ImageBatch):
    return convert(src, "rgba")


def _wrong_out(src, dtype: str):
    if isinstance(src, gpuimg.ImageBatch):
        return gpuimg.ImageBatch.empty(src.shapes, dtype=dtype, device=src.device)
    return gpuimg.Image.empty(*src.shape, dtype=dtype, device=src.device)


@pytest.mark.parametrize("name", sorted(_OUT_OPS))
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_out_of_another_dtype_is_refused_naming_out(device: str, name: str, dtype: str) -> None:
    op = _OUT_OPS[name]
    src = _img(device)
    out = _wrong_out(src, dtype)
    shape_before = out.shape
    with pytest.raises((ValueError, TypeError)) as info:
        op(src, out=out)
    message = str(info.value)
    assert message.startswith("out ") and dtype in message and "uint8" in message, message
    assert out.dtype == np.dtype(dtype) and out.shape == shape_before  # not retyped, not reshaped


@pytest.mark.parametrize("name", ["invert", "gaussian_blur", "median_blur", "resize", "crop", "fill", "to_gray"])
def test_batch_out_of_another_dtype_is_refused_naming_out(device: str, name: str) -> None:
    src = gpuimg.ImageBatch.from_images([_img(device), _img(device, 10, 14)])
    out = _wrong_out(src, "uint16")
    with pytest.raises(ValueError, match=r"^out has dtype uint16 but this op makes uint8"):
        _OUT_OPS[name](src, out=out)
    assert out.dtype == np.uint16 and out.shapes == src.shapes


@pytest.mark.parametrize("name", sorted(_OUT_OPS))
@pytest.mark.parametrize("batched", [False, True])
def test_right_out_is_used_in_place_and_returned(device: str, name: str, batched: bool) -> None:
    op = _OUT_OPS[name]
    src = _img(device) if not batched else gpuimg.ImageBatch.from_images([_img(device), _img(device, 10, 14)])
    expected = op(src)
    out = _wrong_out(expected, "uint8")  # right dtype and shape: written where it is
    out_ptr = out.data_ptr
    result = op(src, out=out)
    assert result is out and out.data_ptr == out_ptr
    for got, want in zip(out.images if batched else [out], expected.images if batched else [expected]):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_out_larger_than_needed_is_reshaped_not_reallocated(device: str) -> None:
    """The calling convention: a shape-changing op sets out's logical shape (no allocation)."""
    src = _img(device)
    out = gpuimg.Image.empty(40, 40, 4, device=device)
    ptr = out.data_ptr
    assert resize(src, (7, 9), out=out) is out and out.shape == (7, 9, 3) and out.data_ptr == ptr
    assert to_gray(src, out=out) is out and out.shape == (12, 16, 1) and out.data_ptr == ptr


def test_out_on_another_kind_is_refused_naming_out(device: str) -> None:
    src = _img(device)
    batch = gpuimg.ImageBatch.from_images([src])
    with pytest.raises(TypeError, match="^out must be an Image when src is one"):
        invert(src, out=batch)
    with pytest.raises(TypeError, match="^out must be an ImageBatch when src is one"):
        gaussian_blur(batch, 1.0, out=src)
    with pytest.raises(TypeError, match="^out must be an Image when src is one"):
        fill(src, 3, out=np.zeros((12, 16, 3), np.uint8))


def test_out_on_another_device_is_refused_naming_out(gpu: str) -> None:
    src = _img(gpu)
    with pytest.raises(ValueError, match="^out is on 'cpu' but src is on 'cuda'"):
        invert(src, out=gpuimg.Image.empty(*src.shape, device="cpu"))


def test_in_place_that_would_change_the_shape_is_refused(device: str) -> None:
    """out=src where the result has other channels: the source would be re-laid out under
    the kernel reading it."""
    src = _img(device)
    before = src.numpy().copy()
    with pytest.raises(ValueError, match="^out is src"):
        to_gray(src, out=src)
    with pytest.raises(ValueError, match="^out is src"):
        convert(src, "rgba", out=src)
    assert src.shape == (12, 16, 3)
    np.testing.assert_array_equal(src.numpy(), before)
    assert invert(src, out=src) is src  # same shape: in place is fine


def test_pipeline_reuses_its_own_buffers_across_dtypes(device: str) -> None:
    """The pipeline's step outputs are its own buffers: retyped by the pipeline (explicitly)
    when a batch of another dtype comes, never by the op; results match fresh calls."""
    from gpuimg.pipeline.process import Processor
    from gpuimg.pipeline.steps import Step

    def to_float(src, out=None, stream=None):  # a user step that changes the dtype
        from gpuimg.ops._engine.batch import prepare_out

        out = prepare_out(src, out, dtype="float32")
        for s, o in zip(src, out):
            o.array[...] = s.array.astype(np.float32) / np.float32(255)
        return out

    steps = [Step(("gaussian_blur", {"sigma": 1.0}), device), Step(to_float, device), Step(("flip", {"horizontal": True}), device)]
    proc = Processor(steps)
    rng = np.random.default_rng(1)

    def batch(dtype: str, sizes) -> gpuimg.ImageBatch:
        top = 255 if dtype == "uint8" else 65535
        return gpuimg.ImageBatch.from_images(
            [gpuimg.Image.from_array(rng.integers(0, top + 1, (h, w, 3)).astype(dtype)).to(device) for h, w in sizes])

    buffers: list = []
    runs = [("uint8", [(12, 16), (9, 7)]), ("uint16", [(10, 10)]), ("uint8", [(12, 16), (9, 7), (5, 5)]), ("uint16", [(8, 8)])]
    for k, (dtype, sizes) in enumerate(runs):
        b = batch(dtype, sizes)
        got = proc(b, None)
        want = flip(to_float(gaussian_blur(b, 1.0)), horizontal=True)
        assert got.dtype == np.float32 and got.shapes == want.shapes
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.numpy(), w.numpy())
        assert proc.outputs[0].dtype == np.dtype(dtype)  # the blur's buffer follows its input
        if k == 1:  # each input dtype seen once: from here on, every buffer is reused
            buffers = list(proc.outputs)
        elif k > 1:
            assert all(now is then for now, then in zip(proc.outputs, buffers))  # the blur's: retyped


def test_pipeline_step_does_not_retype_a_buffer_it_cannot(device: str) -> None:
    """A buffer that cannot change dtype (borrowed memory) is left alone: a new result is made."""
    from gpuimg.pipeline.steps import Step

    step = Step(("gaussian_blur", {"sigma": 1.0}), device)
    a16 = _img(device).numpy().astype(np.uint16)
    step(gpuimg.Image.from_array(a16).to(device), None, None)  # learns: uint16 -> uint16
    borrowed = gpuimg.Image.from_array(np.zeros((12, 16, 3), np.uint8))
    if device == "cpu":
        result = step(gpuimg.Image.from_array(a16), borrowed, None)
        assert result is not borrowed and result.dtype == np.uint16 and borrowed.dtype == np.uint8
