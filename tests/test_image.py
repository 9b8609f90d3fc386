import numpy as np
import pytest

import gpuimg
from gpuimg import Image, ImageBatch


def _filled(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)


def test_empty_properties(device):
    img = Image.empty(1080, 1920, device=device)
    assert img.shape == (1080, 1920, 3)
    assert (img.height, img.width, img.channels) == (1080, 1920, 3)
    assert img.dtype == np.uint8 and img.device == device
    assert img.nbytes == 1080 * 1920 * 3 and img.capacity >= img.nbytes
    assert img.pitch == 1920 * 3 and img.is_contiguous
    assert img.array.shape == (1080, 1920, 3)
    assert type(img.array).__module__.startswith("cupy" if device == "cuda" else "numpy")


def test_set_shape_within_capacity_allocates_nothing(device):
    img = Image.empty(1080, 1920, device=device)
    gpuimg.reset_memory_stats()
    for h, w, c in [(480, 640, 3), (1080, 1920, 3), (100, 100, 4), (1000, 2000, 1), (1, 1, 3)]:
        assert img.set_shape(h, w, c) is img
        assert img.array.shape == (h, w, c) and img.pitch == w * c
    assert gpuimg.memory_stats()["allocations"] == 0


def test_growth_happens_once_and_is_counted(device):
    img = Image.empty(100, 100, device=device)
    gpuimg.reset_memory_stats()
    img.set_shape(2000, 3000)
    img.set_shape(1999, 3000)
    img.set_shape(2000, 3000)
    stats = gpuimg.memory_stats()
    assert stats["allocations"] == 1 and stats["growths"] == 1
    assert img.capacity >= 2000 * 3000 * 3


def test_views_are_right_after_shrinking_and_growing(device):
    img = Image.empty(64, 64, device=device)
    for shape in [(10, 7, 3), (64, 64, 3), (300, 200, 4), (3, 5, 1)]:
        img.set_shape(*shape)
        data = _filled(shape, seed=sum(shape))
        img.array[...] = img.xp.asarray(data)
        np.testing.assert_array_equal(img.numpy(), data)
        flat = img.xp.asnumpy(img.array).ravel() if device == "cuda" else img.array.ravel()
        np.testing.assert_array_equal(flat, data.ravel())


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_dtypes_and_channels(device, dtype, channels):
    img = Image.empty(5, 7, channels, dtype, device=device)
    data = _filled((5, 7, channels), dtype)
    img.array[...] = img.xp.asarray(data)
    np.testing.assert_array_equal(img.numpy(), data)
    assert img.nbytes == 5 * 7 * channels * np.dtype(dtype).itemsize


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(height=0, width=5), "height"),
        (dict(height=5, width=-1), "width"),
        (dict(height=5.5, width=5), "height"),
        (dict(height=5, width=5, channels=2), "channels"),
        (dict(height=5, width=5, dtype="int32"), "dtype"),
        (dict(height=5, width=5, dtype="float64"), "dtype"),
        (dict(height=5, width=5, capacity=-3), "capacity"),
    ],
)
def test_bad_shapes_and_dtypes_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Image.empty(device="cpu", **kwargs)


def test_set_shape_rejects_bad_values():
    img = Image.empty(4, 4, device="cpu")
    with pytest.raises(ValueError, match="channels"):
        img.set_shape(4, 4, 5)
    with pytest.raises(ValueError, match="width"):
        img.set_shape(4, 0)


def test_from_array_shares_memory_numpy():
    a = _filled((6, 8, 3))
    img = Image.from_array(a)
    assert img.device == "cpu" and img.data_ptr == a.ctypes.data
    img.array[0, 0] = 1
    assert (a[0, 0] == 1).all()
    gray = Image.from_array(np.zeros((4, 5), np.uint16))
    assert gray.shape == (4, 5, 1) and gray.dtype == np.uint16


def test_from_array_with_pitch_and_bad_layouts(device):
    xp = gpuimg.device.array_module(device)
    big = xp.zeros((10, 20, 3), xp.uint8)
    window = big[2:6, 4:10]
    img = Image.from_array(window)
    assert img.pitch == 60 and not img.is_contiguous and img.shape == (4, 6, 3)
    img.array[...] = 7
    assert int(big[2:6, 4:10].sum()) == 7 * 4 * 6 * 3 and int(big.sum()) == 7 * 4 * 6 * 3
    np.testing.assert_array_equal(img.numpy(), np.full((4, 6, 3), 7, np.uint8))
    with pytest.raises(ValueError, match="strides"):
        Image.from_array(xp.zeros((3, 10, 10), xp.uint8).transpose(1, 2, 0))  # channel-planar
    with pytest.raises(ValueError, match="strides"):
        Image.from_array(big[:, ::-1])
    with pytest.raises(ValueError, match="shape"):
        Image.from_array(xp.zeros((2, 2, 2, 3), xp.uint8))
    with pytest.raises(ValueError, match="dtype"):
        Image.from_array(xp.zeros((2, 2, 3), xp.int32))
    with pytest.raises(ValueError, match="wraps a caller's array"):
        img.set_shape(100, 100)
    assert img.set_shape(2, 3).shape == (2, 3, 3)  # smaller fits the wrapped memory


def test_from_array_rejects_non_arrays():
    with pytest.raises(TypeError, match="cannot wrap"):
        Image.from_array(object())


def test_cupy_interop_shares_memory(gpu):
    import cupy

    img = Image.empty(4, 5, device="cuda")
    img.array[...] = 3
    via_dlpack = cupy.from_dlpack(img)
    via_cai = cupy.asarray(img)
    assert via_dlpack.data.ptr == img.data_ptr == via_cai.data.ptr
    via_dlpack[0, 0, 0] = 9
    assert int(img.array[0, 0, 0]) == 9
    wrapped = Image.from_array(via_cai)
    assert wrapped.data_ptr == img.data_ptr
    assert not hasattr(img, "__array_interface__")


def test_numpy_interop_and_no_implicit_gpu_copy(device):
    img = Image.empty(3, 4, device=device)
    if device == "cpu":
        assert np.asarray(img).__array_interface__["data"][0] == img.data_ptr
        assert np.from_dlpack(img).ctypes.data == img.data_ptr
        assert not hasattr(img, "__cuda_array_interface__")
    else:
        assert "data" in img.__cuda_array_interface__


def test_torch_shares_memory(device):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    img = Image.empty(4, 5, device=device)
    img.array[...] = 2
    t = torch.from_dlpack(img)
    assert t.data_ptr() == img.data_ptr and tuple(t.shape) == (4, 5, 3)
    t[0, 0, 0] = 11
    assert int(img.array[0, 0, 0]) == 11
    back = Image.from_array(t)
    assert back.data_ptr == img.data_ptr and back.device == device


def test_explicit_copies(device):
    data = _filled((9, 11, 4))
    img = Image.empty(9, 11, 4, device=device)
    img.array[...] = img.xp.asarray(data)
    host = img.to("cpu")
    np.testing.assert_array_equal(host.numpy(), data)
    assert (host is img) == (device == "cpu")
    dup = img.copy()
    assert dup.data_ptr != img.data_ptr
    np.testing.assert_array_equal(dup.numpy(), data)
    target = Image.empty(100, 100, device=device)
    gpuimg.reset_memory_stats()
    img.copy(out=target)
    assert target.shape == img.shape and gpuimg.memory_stats()["allocations"] == 0
    np.testing.assert_array_equal(target.numpy(), data)
    if device == "cuda":
        np.testing.assert_array_equal(host.to("cuda").numpy(), data)


def test_repr_and_thumbnail(device):
    img = Image.empty(600, 900, device=device)
    img.array[...] = 200
    text = repr(img)
    assert "600x900x3" in text and "uint8" in text and device in text and "capacity" in text
    thumb = img.thumbnail()
    assert isinstance(thumb, np.ndarray) and max(thumb.shape[:2]) <= 256 and (thumb == 200).all()
    fimg = Image.empty(10, 10, 1, "float32", device=device)
    fimg.array[...] = 0.5
    assert (fimg.thumbnail() == 128).all()


def test_batch_slots_and_table_are_consistent(device):
    shapes = [(300, 451, 3), (480, 640, 4), (5, 5, 1), (1, 1, 3)]
    batch = ImageBatch.empty(shapes, device=device)
    table = batch.table()
    assert batch.shapes == shapes and len(batch) == 4
    assert list(table[:, 0] % gpuimg.image.SLOT_ALIGNMENT) == [0] * 4
    for i, (img, row) in enumerate(zip(batch, table)):
        assert img.shape == shapes[i]
        assert row.tolist()[1:] == [img.height, img.width, img.pitch, img.channels]
        assert img.data_ptr == batch.data_ptr + row[0]
        if i:
            prev = table[i - 1]
            assert row[0] >= prev[0] + prev[1] * prev[3]  # slots never overlap
    dev_table = batch.kernel_table()
    np.testing.assert_array_equal(gpuimg.device.array_module(device).asnumpy(dev_table) if device == "cuda" else dev_table, table)
    assert batch.capacity >= batch.used_bytes >= batch.nbytes


def test_batch_views_write_into_the_arena(device):
    batch = ImageBatch.empty([(4, 4), (2, 3, 1)], device=device)
    batch[0].array[...] = 1
    batch[1].array[...] = 2
    host = batch.numpy()
    assert (host[0] == 1).all() and (host[1] == 2).all() and host[1].shape == (2, 3, 1)


def test_batch_relayout_grows_as_a_whole(device):
    batch = ImageBatch.empty([(100, 100)] * 8, device=device)
    gpuimg.reset_memory_stats()
    batch.set_shapes([(50, 60)] * 8)
    batch.set_shapes([(100, 100)] * 4 + [(10, 10)] * 4)
    assert gpuimg.memory_stats()["allocations"] == 0
    batch.set_shapes([(400, 400)] * 8)
    batch.set_shapes([(300, 300)] * 8)
    stats = gpuimg.memory_stats()
    assert stats["growths"] == 1 and stats["allocations"] == 1
    assert [im.shape for im in batch] == [(300, 300, 3)] * 8


def test_batch_slot_set_shape_updates_table(device):
    batch = ImageBatch.empty([(10, 10), (10, 10)], device=device)
    batch[1].set_shape(5, 8)
    assert batch.shapes[1] == (5, 8, 3) and batch.table()[1].tolist()[1:] == [5, 8, 24, 3]
    with pytest.raises(ValueError, match="set_shapes"):
        batch[0].set_shape(100, 100)


def test_batch_from_images_and_copies(device):
    arrays = [_filled((7, 9, 3), seed=1), _filled((12, 5, 3), seed=2)]
    batch = ImageBatch.from_images(arrays, device=device)
    for got, want in zip(batch.numpy(), arrays):
        np.testing.assert_array_equal(got, want)
    dup = batch.copy()
    assert dup.data_ptr != batch.data_ptr
    for got, want in zip(dup.numpy(), arrays):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(batch.to("cpu").numpy(), arrays):
        np.testing.assert_array_equal(got, want)
    assert "2 images" in repr(batch)


def test_batch_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        ImageBatch.from_images([])
    with pytest.raises(ValueError, match="one dtype"):
        ImageBatch.from_images([np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2, 3), np.uint16)])
    with pytest.raises(ValueError, match=r"shapes\[1\]"):
        ImageBatch.empty([(2, 2), (3,)], device="cpu")
    with pytest.raises(ValueError, match="channels"):
        ImageBatch.empty([(2, 2, 2)], device="cpu")


def test_batch_relayout_moves_slot_views_with_their_offsets(device):
    """Reusing a batch for new sizes (same count) must move each slot view to its new
    offset: a stale offset makes one slot's writes land in another's pixels."""
    batch = ImageBatch.empty([(10, 10), (10, 10), (10, 10)], device=device)
    views = batch.images
    batch.set_shapes([(40, 30), (5, 5), (20, 50)])
    assert batch.images == views  # the same view objects are reused...
    for i, (img, row) in enumerate(zip(batch, batch.table())):
        assert img.data_ptr == batch.data_ptr + int(row[0])  # ...at the new offsets
        img.array[...] = i + 1
    for i, host in enumerate(batch.numpy()):
        assert (host == i + 1).all(), f"slot {i} was overwritten by another slot"
