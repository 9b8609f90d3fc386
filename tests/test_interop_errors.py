"""Interop errors that explain themselves (issue 14): channel-first arrays given to
Image.from_array, and DLPack export of an ImageBatch (one (N, H, W, C) view when its
slots allow it, a TypeError that says what to do when they do not)."""

from __future__ import annotations

import numpy as np
import pytest

import gpuimg
from gpuimg import Image, ImageBatch

# ----------------------------------------------------------------- channel-first arrays


@pytest.mark.parametrize("channels", [3, 4])
def test_chw_array_is_named_channel_first_with_the_fix(channels):
    a = np.zeros((channels, 320, 480), np.uint8)
    with pytest.raises(ValueError) as info:
        Image.from_array(a, device="cpu")
    message = str(info.value)
    assert f"shape ({channels}, 320, 480) looks channel-first (CHW" in message
    assert "a.transpose(1, 2, 0)" in message and "np.ascontiguousarray" in message
    assert "t.permute(1, 2, 0).contiguous()" in message
    assert "strided" in message and "refuses" in message
    assert "channels=480 is not supported" not in message


def test_the_fix_the_message_gives_works_and_the_bare_transpose_is_refused():
    a = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    with pytest.raises(ValueError, match="cannot be expressed as rows of packed pixels"):
        Image.from_array(a.transpose(1, 2, 0), device="cpu")
    img = Image.from_array(np.ascontiguousarray(a.transpose(1, 2, 0)), device="cpu")
    assert img.shape == (4, 5, 3)
    assert np.array_equal(img.array[..., 1], a[1])


def test_single_channel_chw_points_at_the_plane():
    a = np.zeros((1, 32, 48), np.float32)
    with pytest.raises(ValueError, match=r"looks channel-first \(CHW: 1 channel of 32x48\)") as info:
        Image.from_array(a, device="cpu")
    assert "a[0]" in str(info.value)
    assert Image.from_array(a[0], device="cpu").shape == (32, 48, 1)


def test_hwc_arrays_and_other_bad_shapes_keep_their_old_behaviour():
    # first dim 3 and last dim a channel count: a real (3, W, C) image, not a CHW guess
    assert Image.from_array(np.zeros((3, 320, 3), np.uint8), device="cpu").shape == (3, 320, 3)
    # first dim not a channel count: the plain channel error, no CHW guess
    with pytest.raises(ValueError, match="channels=480 is not supported") as info:
        Image.from_array(np.zeros((5, 320, 480), np.uint8), device="cpu")
    assert "channel-first" not in str(info.value)


def test_torch_chw_tensor_is_named_channel_first():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    t = torch.zeros((3, 320, 480), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"looks channel-first \(CHW") as info:
        Image.from_array(t)
    assert "t.permute(1, 2, 0).contiguous()" in str(info.value)
    img = Image.from_array(t.permute(1, 2, 0).contiguous())
    assert img.shape == (320, 480, 3)


# ----------------------------------------------------------------- ImageBatch and DLPack


def test_equal_shape_batch_exports_one_zero_copy_nhwc_view():
    batch = ImageBatch.empty([(5, 7, 4)] * 3, dtype="float32", device="cpu")
    for i, img in enumerate(batch):
        img.array[...] = np.arange(5 * 7 * 4, dtype=np.float32).reshape(5, 7, 4) + i
    assert batch.__dlpack_device__() == (1, 0)
    t = np.from_dlpack(batch)
    assert t.shape == (3, 5, 7, 4) and t.dtype == np.float32
    assert t.ctypes.data == batch.data_ptr
    assert t.strides[0] == batch.table()[1, 0] - batch.table()[0, 0]  # the slot spacing
    for i, img in enumerate(batch):
        assert np.array_equal(t[i], img.array)
    t[2, 0, 0, 0] = -1.0
    assert float(batch[2].array[0, 0, 0]) == -1.0


def test_mixed_shape_batch_raises_a_type_error_saying_what_to_do():
    batch = ImageBatch.empty([(2, 3), (4, 5)], device="cpu")
    with pytest.raises(TypeError) as info:
        np.from_dlpack(batch)
    message = str(info.value)
    assert "one (N, H, W, C) tensor" in message
    assert "different shapes [(2, 3, 3), (4, 5, 3)]" in message
    assert "[torch.from_dlpack(img) for img in batch]" in message
    assert "gpuimg.to_tensor(batch)" in message and "gpuimg.resize(batch" in message
    assert "capsule" not in message
    # what the message offers works: each image exports on its own
    assert [np.from_dlpack(img).shape for img in batch] == [(2, 3, 3), (4, 5, 3)]


def test_equal_shapes_unevenly_spaced_are_not_faked_as_a_strided_view():
    batch = ImageBatch.empty([(2, 3), (100, 100), (2, 3)], device="cpu")
    batch[1].set_shape(2, 3)  # equal shapes now, but slot 1 still reserves 100x100 pixels
    assert len(set(batch.shapes)) == 1
    with pytest.raises(TypeError, match="unevenly spaced in the arena") as info:
        np.from_dlpack(batch)
    message = str(info.value)
    assert "byte offsets [0, 768, 31488]" in message
    assert "batch.set_shapes(batch.shapes)" in message and "does not keep their pixels" in message
    batch.set_shapes(batch.shapes)
    assert np.from_dlpack(batch).shape == (3, 2, 3, 3)


def test_empty_batch_says_it_has_no_shape():
    batch = ImageBatch.empty([], device="cpu")
    with pytest.raises(TypeError, match="an empty ImageBatch has no"):
        np.from_dlpack(batch)


def test_torch_from_dlpack_on_batches():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    batch = ImageBatch.empty([(4, 6)] * 2, device="cpu")
    batch[1].array[...] = 9
    t = torch.from_dlpack(batch)
    assert tuple(t.shape) == (2, 4, 6, 3) and t.data_ptr() == batch.data_ptr
    assert int(t[1, 0, 0, 0]) == 9
    with pytest.raises(TypeError, match="different shapes"):
        torch.from_dlpack(ImageBatch.empty([(2, 3), (4, 5)], device="cpu"))


# ----------------------------------------------------------------- arrays given to ops (issue 18)


def test_ops_take_numpy_arrays_zero_copy_and_return_images():
    from gpuimg.ops import color, filters, geometry

    a = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    inverted = color.invert(a)
    assert isinstance(inverted, Image) and np.array_equal(inverted.numpy(), 255 - a)
    assert isinstance(geometry.resize(a, (3, 4)), Image)
    gray = np.full((5, 7), 9, np.uint8)  # HW: one channel
    assert filters.box_blur(gray, 1).shape == (5, 7, 1)
    src = Image.from_array(a)
    assert color.invert(a, out=src) is src and np.array_equal(a, inverted.numpy())  # out=src: in place, in a


def test_ops_take_arrays_for_image_parameters():
    from gpuimg.ops import compose

    dst = np.zeros((8, 8, 3), np.uint8)
    layer = np.full((2, 2, 4), 255, np.uint8)
    out = compose.paste(dst=dst, src=layer, top=1, left=1)
    assert isinstance(out, Image) and out.numpy()[1, 1].tolist() == [255, 255, 255]


def test_op_given_a_chw_array_says_how_to_pass_it():
    from gpuimg.ops import color

    with pytest.raises(ValueError, match=r"^src: array of shape \(3, 20, 30\) looks channel-first") as info:
        color.invert(np.zeros((3, 20, 30), np.uint8))
    assert "t.permute(1, 2, 0).contiguous()" in str(info.value)
    with pytest.raises(TypeError, match="src must be a gpuimg.Image or ImageBatch, or an .* array or torch tensor, got list"):
        color.invert([[1, 2]])


def test_ops_take_torch_cpu_tensors():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from gpuimg.ops import color

    t = torch.zeros((4, 5, 3), dtype=torch.uint8)
    out = color.invert(t)
    assert isinstance(out, Image) and out.numpy().min() == 255
    color.invert(t, out=Image.from_array(t))  # zero-copy: the tensor itself is written
    assert int(t.min()) == 255
    with pytest.raises(ValueError, match=r"t\.permute\(1, 2, 0\)"):
        color.invert(torch.zeros((3, 20, 30), dtype=torch.uint8))


def test_write_with_the_path_first_says_the_order(tmp_path):
    # cv2.imwrite(path, img) users reach for the same order
    img = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(TypeError, match=r"takes the image first .* got the path '.*out.png' as img"):
        gpuimg.write(str(tmp_path / "out.png"), img)
    assert not (tmp_path / "out.png").exists()
