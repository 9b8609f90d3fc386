"""Integer index-map ops: crop, center_crop, flip, rotate90 and pad (one remap launch each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import ArgumentError, check_choice
from ...image import Borrowed, Image, ImageBatch
from ..registry import register_op
from .._engine.args import Source, per_sample
from ._common import _check, _result, _shapes, _sizes
from .warp import _fill_arg, _remap

__all__ = ["crop", "center_crop", "flip", "rotate90", "pad", "PAD_MODES"]

PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def _ints(value: Any, count: int, name: str) -> np.ndarray:
    """One int per image from an int or a sequence (ArgumentError naming ``name`` otherwise)."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return np.full(count, int(value), np.int64)
    arr = per_sample(value, count, name, np.float64)
    if np.any(arr != np.round(arr)):
        raise ArgumentError(f"{name} must be an int (or one int per image), got {value!r}")
    return arr.astype(np.int64)


@register_op
def crop(src: Source, top: Any, left: Any, height: Any, width: Any, *, out: Source | None = None,
         stream: Any = None) -> Source:
    """The rectangle (top, left, height, width) of each image (ints, or one per image).

    A rectangle outside the image raises ArgumentError naming the image's bounds. On the CPU
    the result is a view of ``src`` (no copy; later writes into ``src`` show in it); an
    ``out`` that is such a view is re-pointed at the new window, any other ``out`` gets
    a copy of it.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((300, 400, 3), np.uint8), device="cpu")
        >>> crop(img, 10, 20, 100, 200).shape
        (100, 200, 3)
    """
    _check(src)
    shapes = _shapes(src)
    n = len(shapes)
    t, l, hh, ww = (_ints(v, n, k) for v, k in ((top, "top"), (left, "left"), (height, "height"), (width, "width")))
    for i, (H, W, _) in enumerate(shapes):
        if hh[i] < 1 or ww[i] < 1 or t[i] < 0 or l[i] < 0 or t[i] + hh[i] > H or l[i] + ww[i] > W:
            raise ArgumentError(
                f"crop (top={t[i]}, left={l[i]}, height={hh[i]}, width={ww[i]}) of image {i} is outside its bounds "
                f"0 <= top, top + height <= {H}, 0 <= left, left + width <= {W} (height, width >= 1)"
            )
    boxes = [(int(t[i]), int(l[i]), int(hh[i]), int(ww[i])) for i in range(n)]
    if src.device == "cpu":
        return _crop_cpu(src, out, boxes)
    coefs = [(1, 0, top, 0, 1, left) for top, left, _, _ in boxes]
    return _remap(src, out, coefs, [(h, w) for _, _, h, w in boxes], stream=stream)


# ============================================================================ CPU crop views
class _ViewStore(Borrowed):
    """The memory of a crop view: another image's buffer, borrowed (it never grows; a view
    batch cannot be re-laid out over the pixels it shows)."""

    def __init__(self, store: Any):
        super().__init__(store.data, store, "cpu")

    def ensure(self, nbytes: int) -> bool:
        if nbytes <= self.capacity:
            return False
        raise ArgumentError("out is a crop's view of another image's pixels and cannot grow; pass out=None")


def _window(pitch: int, channels: int, itemsize: int, top: int, left: int) -> int:
    return top * pitch + left * channels * itemsize


def _crop_view(src: Source, boxes: list[tuple[int, int, int, int]]) -> Source:
    """A view of each box of ``src``: an Image/ImageBatch on ``src``'s own memory (no copy)."""
    isz = src.dtype.itemsize
    if isinstance(src, Image):
        (top, left, h, w), c = boxes[0], src.channels
        view = Image(_ViewStore(src._store), h, w, c, src.dtype, offset=src._offset + _window(src.pitch, c, isz, top, left),
                     pitch=src.pitch)
        view.metadata = src.metadata
        return view
    rows = src.table().copy()
    for row, (top, left, h, w) in zip(rows, boxes):
        row[0] += _window(int(row[3]), int(row[4]), isz, top, left)
        row[1], row[2] = h, w
    batch = ImageBatch(_ViewStore(src._arena), src.dtype)
    batch._install(rows, rows[:, 1] * rows[:, 3])
    return batch


def _repoint(out: Source, view: Source) -> Source:
    """``out`` (an earlier crop view) made the view ``view`` is: nothing copied or allocated."""
    if isinstance(out, Image):
        out._store, out._offset, out._pitch, out._view = view._store, view._offset, view._pitch, None
        out._height, out._width, out._channels = view.shape
        out.metadata = view.metadata
        return out
    out._arena, out._views = view._arena, []
    out._install(view._rows, view._reserved)
    return out


def _crop_cpu(src: Source, out: Source | None, boxes: list[tuple[int, int, int, int]]) -> Source:
    """The CPU crop: a view of ``src`` (out=None, or an out that is an earlier crop view:
    re-pointed), else the windows copied into ``out``."""
    views = out is None or isinstance(getattr(out, "_store", getattr(out, "_arena", None)), _ViewStore)
    if views and (out is None or (isinstance(out, Image) == isinstance(src, Image) and out.dtype == src.dtype)):
        view = _crop_view(src, boxes)
        return view if out is None else _repoint(out, view)
    out = _result(src, out, [(h, w, c) for (_, _, h, w), (_, _, c) in zip(boxes, _shapes(src))])
    for (top, left, h, w), s, o in zip(boxes, _images(src), _images(out)):
        window = s.array[top : top + h, left : left + w]
        if o is not s:
            o.array[...] = window
    return out


def _images(src: Source) -> list[Image]:
    return src.images if isinstance(src, ImageBatch) else [src]


def _center_offset(n: int, size: int) -> int:
    """torchvision's offset of a centred window: round((n - size) / 2) (Python's round,
    halves to even) when it fits; -((size - n) // 2) when the window is larger (torchvision
    pads (size - n) // 2 before and the rest after, then crops at 0)."""
    return int(round((n - size) / 2.0)) if size <= n else -((size - n) // 2)


@register_op
def center_crop(src: Source, size: int | tuple[int, int] | Sequence[tuple[int, int]], fill: Any = 0, *,
                out: Source | None = None, stream: Any = None) -> Source:
    """The centred (height, width) window (an int: a square), as torchvision's ``center_crop``.
    On the CPU a window inside the image is a view, as :func:`crop`'s.

    top = round((H - height) / 2) with Python's round, likewise left. A window larger than
    the image pads it as torchvision does, with ``fill`` (torchvision: 0): (height - H) // 2
    rows above, the rest below; (width - W) // 2 columns left, the rest right.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((256, 341, 3), np.uint8), device="cpu")
        >>> center_crop(img, (224, 224)).shape
        (224, 224, 3)
        >>> center_crop(img, 300).shape  # padded to 300 rows
        (300, 300, 3)
    """
    _check(src)
    shapes = _shapes(src)
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        size = (int(size), int(size))
    sizes = _sizes(size, len(shapes))
    coefs = [(1, 0, _center_offset(H, h), 0, 1, _center_offset(W, w)) for (H, W, _), (h, w) in zip(shapes, sizes)]
    _fill_arg(fill, "fill")  # checked even where no pixel is filled
    if src.device == "cpu" and all(h <= H and w <= W for (H, W, _), (h, w) in zip(shapes, sizes)):
        return _crop_cpu(src, out, [(c[2], c[5], h, w) for c, (h, w) in zip(coefs, sizes)])  # no padding: a view
    return _remap(src, out, coefs, sizes, border="constant", fill=fill, stream=stream, fill_name="fill")


@register_op
def flip(src: Source, horizontal: bool = False, vertical: bool = False, *, out: Source | None = None,
         stream: Any = None) -> Source:
    """Mirror left-right (``horizontal``), top-bottom (``vertical``), or both.

    Example:
        >>> import numpy as np, gpuimg
        >>> a = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
        >>> flip(gpuimg.Image.from_array(a, device="cpu"), horizontal=True).array[0, :, 0].tolist()
        [2, 1, 0]
    """
    _check(src)
    shapes = _shapes(src)
    coefs = [(-1 if vertical else 1, 0, h - 1 if vertical else 0, 0, -1 if horizontal else 1, w - 1 if horizontal else 0)
             for h, w, _ in shapes]
    return _remap(src, out, coefs, [(h, w) for h, w, _ in shapes], stream=stream)


@register_op
def rotate90(src: Source, k: int = 1, *, out: Source | None = None, stream: Any = None) -> Source:
    """Rotate by k * 90 degrees counter-clockwise, as ``numpy.rot90(a, k)``.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((2, 5, 3), np.uint8), device="cpu")
        >>> rotate90(img).shape
        (5, 2, 3)
    """
    if not isinstance(k, int | np.integer):
        raise ArgumentError(f"k must be an int (quarter turns), got {k!r}")
    k = int(k) % 4
    _check(src)
    shapes = _shapes(src)
    table = {
        0: lambda h, w: ((1, 0, 0, 0, 1, 0), (h, w)),
        1: lambda h, w: ((0, 1, 0, -1, 0, w - 1), (w, h)),
        2: lambda h, w: ((-1, 0, h - 1, 0, -1, w - 1), (h, w)),
        3: lambda h, w: ((0, -1, h - 1, 1, 0, 0), (w, h)),
    }
    geo = [table[k](h, w) for h, w, _ in shapes]
    return _remap(src, out, [g[0] for g in geo], [g[1] for g in geo], stream=stream)


@register_op
def pad(src: Source, top: Any = 0, bottom: Any = 0, left: Any = 0, right: Any = 0, mode: str = "constant",
        value: Any = 0, *, out: Source | None = None, stream: Any = None) -> Source:
    """Add borders: ``mode`` "constant" (``value``), "edge", "reflect" (also "symmetric", "wrap").

    Modes are numpy.pad's: "reflect" mirrors without repeating the edge pixel
    (cv2.BORDER_REFLECT_101), "symmetric" repeats it (cv2.BORDER_REFLECT).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.ones((2, 2, 1), np.uint8), device="cpu")
        >>> pad(img, 1, 1, 2, 2).shape
        (4, 6, 1)
    """
    check_choice(mode, "mode", PAD_MODES, "a pad mode")
    _check(src)
    shapes = _shapes(src)
    n = len(shapes)
    t, b, l, r = (_ints(v, n, k) for v, k in ((top, "top"), (bottom, "bottom"), (left, "left"), (right, "right")))
    if min(t.min(), b.min(), l.min(), r.min()) < 0:
        raise ArgumentError(f"top, bottom, left and right must be >= 0, got {top!r}, {bottom!r}, {left!r}, {right!r}")
    coefs = [(1, 0, -int(t[i]), 0, 1, -int(l[i])) for i in range(n)]
    sizes = [(h + int(t[i] + b[i]), w + int(l[i] + r[i])) for i, (h, w, _) in enumerate(shapes)]
    return _remap(src, out, coefs, sizes, border=mode, fill=value, stream=stream)
