"""Getting decoded pixels into their targets: host copies, staged results, compaction.

:func:`put` copies host pixels into an Image on its device (asynchronously from pinned
memory); :func:`finish` turns a staged decode into its result (orientation, region,
alpha); :func:`compact` closes the gaps failed items leave in a batch; :func:`decode_bmp`
decodes the BMP variants gpuimg reads itself into a target, :func:`decode_pillow` a
format Pillow decodes where no isolated child takes it.

Example:
    >>> import numpy as np
    >>> from gpuimg import Image
    >>> img = Image.empty(2, 3, 1, device="cpu")
    >>> put(img, np.full((2, 3, 1), 7, np.uint8), None)
    >>> int(img.array.sum())
    42
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..device import get_stream, use_stream
from ..errors import DecodeError, GpuImgError
from . import pillow
from ..image import Image, ImageBatch
from ..memory import scratch
from ..meta.exif import oriented
from .containers import bmp
from .sources import ParsedSource

__all__ = ["put", "finish", "compact", "own_bmp", "decode_bmp", "by_pillow", "decode_pillow"]


def by_pillow(src: ParsedSource) -> bool:
    """True for a source of a format Pillow decodes (GIF, ICO, TGA, PSD: no CodeStream)."""
    return src.stream is None and src.keep is not None


def decode_pillow(src: ParsedSource, img: Image, mode: str, stream: Any) -> GpuImgError | None:
    """Decode a format Pillow decodes into ``img`` (its decode layout) in this process:
    what runs where isolation is off or no child process can start."""
    h, w, c = img.shape
    try:
        px = pillow.decode(bytes(memoryview(src.keep).cast("B")), src.info.codec, h, w, c, bgr=mode == "bgr")
    except pillow.PillowFailed as exc:
        return DecodeError(src.label, str(exc))
    except MemoryError:
        return DecodeError(src.label, "Pillow ran out of memory decoding it")
    put(img, np.ascontiguousarray(px), stream)
    return None


def own_bmp(src: ParsedSource) -> bool:
    """True for a BMP that gpuimg decodes itself (a variant nvImageCodec gets wrong)."""
    return src.keep is not None and src.info.codec == "bmp" and bmp.needs_own_decoder(src.keep)


def decode_bmp(src: ParsedSource, img: Image, mode: str, stream: Any) -> GpuImgError | None:
    """Decode a BMP nvImageCodec gets wrong (gpuimg.codec.bmp) into ``img`` (its decode
    layout: 1, 3 or 4 channels, RGB or BGR order as ``mode`` says)."""
    try:
        rgb = bmp.decode(src.keep, src.label)
    except GpuImgError as exc:
        return exc
    channels = img.channels
    if channels == 1:  # ITU-R 601 luma, rounded, as Pillow's "L"
        r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
        px = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[..., None]
    elif channels == 3:
        px = rgb[..., 2::-1] if mode == "bgr" else rgb[..., :3]
    else:
        px = rgb
    put(img, np.ascontiguousarray(px), stream)
    return None


def put(img: Image, pixels: np.ndarray, stream: Any, pinned: bool = False) -> None:
    """Copy host ``pixels`` (the target's shape) into ``img`` on its device; from
    page-locked ``pinned`` memory the copy is asynchronous on ``stream`` (the caller
    synchronises before the memory is reused)."""
    if img.device == "cpu":
        np.copyto(img.array, pixels)
        return
    with use_stream(img.device, stream):
        dst = img.array
        if pinned and img.is_contiguous and pixels.flags.c_contiguous:
            import cupy

            cupy.cuda.runtime.memcpyAsync(img.data_ptr, pixels.ctypes.data, pixels.nbytes, 1, get_stream(stream).ptr)  # 1: H2D
        elif img.is_contiguous:
            dst.set(pixels)
        else:
            dst[...] = img.xp.asarray(pixels)


def finish(staged: Image, out: Image, region: Any, orientation: int, mode: str) -> None:
    """Copy a staged decode into ``out``: orient it, crop to ``region``, add opaque alpha
    or drop it as needed (one strided copy; the orientation and the crop are views)."""
    src = oriented(staged.array, orientation)
    if region is not None:
        top, left, bottom, right = region
        src = src[top:bottom, left:right]
    dst = out.array
    xp = out.xp
    if src.shape[2] == dst.shape[2]:
        xp.copyto(dst, src)
        return
    if src.shape[2] == 4:  # RGBA decoded (premultiplied alpha) for an RGB/BGR result
        xp.copyto(dst, src[..., 2::-1] if mode == "bgr" else src[..., :3])
        return
    # RGB decoded for an RGBA result (nvImageCodec cannot add alpha): colour, then opaque alpha.
    xp.copyto(dst[..., :3], src)
    dst[..., 3] = np.iinfo(out.dtype).max


def compact(batch: ImageBatch, keep: list[int], stream: Any) -> None:
    """Drop failed slots from ``batch``: move the kept slots down, re-lay out in place.

    Slots only move to lower offsets; the pixels go through a staging copy so that an
    overlapping move cannot corrupt them. Rare path (a corrupt item), per-slot copies.
    """
    old = batch.table()
    shapes = [batch.shapes[k] for k in keep]
    xp = batch.xp
    with use_stream(batch.device, stream):
        arena = batch.arena  # the used part, which covers every old slot
        spans = [(int(old[k, 0]), int(old[k, 1] * old[k, 3])) for k in keep]
        total = sum(n for _, n in spans)
        tmp = scratch("codec.compact", max(total, 1), batch.device).data
        pos = 0
        for start, n in spans:
            xp.copyto(tmp[pos : pos + n], arena[start : start + n])
            pos += n
        batch.set_shapes(shapes, dtype=batch.dtype)  # shrinks the layout: no growth, same memory
        arena, new = batch.arena, batch.table()
        pos = 0
        for row, (_, n) in zip(new, spans):
            xp.copyto(arena[int(row[0]) : int(row[0]) + n], tmp[pos : pos + n])
            pos += n
