"""Host pictures of images: device-made thumbnails, captioned grids, a minimal PNG writer.

Sits below :mod:`gpuimg.image` (it imports no gpuimg module), so that an Image and an
ImageBatch can show themselves (``_repr_png_``) without image.py importing
:mod:`gpuimg.display`, which builds ``show()`` on top of these pieces. Needs no imaging
library: the PNG writer and the caption font are built in.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np

__all__ = ["encode_png", "thumbnail", "as_rgb", "batch_grid", "CHECKER", "GRID_CELL", "GRID_GAP", "GRID_MAX_IMAGES"]

GRID_CELL = 160  # longest side of each thumbnail in a batch grid
GRID_GAP = 4
GRID_MAX_IMAGES = 64  # a batch grid shows the first 64 images and says how many more there are
CHECKER = 8  # pixels per square of the checkerboard shown under transparent pixels

# A 3x5 bitmap font for captions ("12: 451x300", "+936"), drawn at 2x: enough to label a
# grid without Pillow or matplotlib, which gpuimg does not depend on.
_GLYPHS = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "001", "001", "001"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
    "x": ("000", "101", "010", "101", "000"),
    "+": ("000", "010", "111", "010", "000"),
    ":": ("000", "010", "000", "010", "000"),
    " ": ("000", "000", "000", "000", "000"),
}
_FONT_SCALE = 2
_CHAR_W = 4 * _FONT_SCALE  # 3 columns + 1 column of spacing
_CAPTION_H = 5 * _FONT_SCALE + 2 * GRID_GAP

_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an (H, W, C) uint8 host array, C in 1..4.

    Example:
        >>> encode_png(np.zeros((2, 2, 3), np.uint8))[:8]
        b'\\x89PNG\\r\\n\\x1a\\n'
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in _COLOR_TYPES:
        raise ValueError(f"encode_png needs (H, W, 1..4) uint8, got {pixels.shape} {pixels.dtype}")
    height, width, channels = pixels.shape
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter 0 per row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def thumbnail(pixels: Any, max_size: int) -> np.ndarray:
    """A uint8 host copy of the (H, W, C) NumPy or CuPy array ``pixels``, its longer side
    at most ``max_size``: averaged down by an integer factor where the array lives, so
    only the small picture crosses to the host. uint16 keeps its high byte; float32 maps
    [0, 1] to [0, 255].

    Example:
        >>> thumbnail(np.full((300, 200, 3), 7, np.uint8), 100).shape
        (100, 66, 3)
    """
    pixels = _as_uint8(pixels)
    height, width, channels = pixels.shape
    factor = max(1, -(-max(height, width) // max_size))
    if factor > 1:
        h, w = height // factor, width // factor
        if h and w:
            block = pixels[: h * factor, : w * factor].reshape(h, factor, w, factor, channels)
            pixels = block.mean(axis=(1, 3)).round().astype(np.uint8)
        else:  # a sliver thinner than the factor: take every factor-th pixel instead
            pixels = pixels[::factor, ::factor]
    return np.asarray(pixels) if isinstance(pixels, np.ndarray) else pixels.get()


def _as_uint8(pixels: Any) -> Any:
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return (pixels >> 8).astype(np.uint8)
    return (pixels.clip(0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)  # the method: NumPy and CuPy alike


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 of a 1, 3 or 4 channel host picture: gray becomes RGB; RGBA is
    composited over a light checkerboard, as image viewers show transparency (over plain
    white, a white stroke or glow would be invisible).

    Example:
        >>> as_rgb(np.zeros((2, 2, 4), np.uint8))[0, 0].tolist()   # transparent: the backdrop
        [255, 255, 255]
    """
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if pixels.shape[2] == 4:
        h, w = pixels.shape[:2]
        squares = (np.arange(h)[:, None] // CHECKER + np.arange(w)[None, :] // CHECKER) % 2
        backdrop = np.where(squares, 204.0, 255.0)[:, :, None]
        alpha = pixels[:, :, 3:4].astype(np.float32) / 255.0
        return (pixels[:, :, :3] * alpha + backdrop * (1.0 - alpha) + 0.5).astype(np.uint8)
    return pixels


def batch_grid(batch: Any, columns: int = 8, cell: int = GRID_CELL) -> np.ndarray:
    """An (H, W, 3) uint8 host picture of an ImageBatch: thumbnails captioned "index: WxH".

    At most ``GRID_MAX_IMAGES`` are drawn; a last cell says how many were left out.
    ``batch`` is anything that holds Images by index (an ImageBatch, a list of Images).

    Example:
        >>> import gpuimg
        >>> b = gpuimg.ImageBatch.from_images([np.zeros((20, 30, 3), np.uint8)])
        >>> batch_grid(b, cell=32).shape
        (54, 72, 3)
    """
    shown = min(len(batch), GRID_MAX_IMAGES)
    cells: list[tuple[np.ndarray | None, str]] = [
        (as_rgb(batch[i].thumbnail(cell)), f"{i}: {batch[i].width}x{batch[i].height}") for i in range(shown)
    ]
    if len(batch) > shown:
        cells.append((None, f"+{len(batch) - shown}"))
    return _compose_grid(cells, columns, cell)


def _compose_grid(cells: list[tuple[np.ndarray | None, str]], columns: int, cell: int) -> np.ndarray:
    """Lay out (thumbnail or None, caption) cells on a white canvas, captions under pictures."""
    columns = max(1, min(columns, len(cells)))
    rows = -(-len(cells) // columns)
    cell_w = max(cell, max(len(text) for _, text in cells) * _CHAR_W)
    step_y, step_x = cell + _CAPTION_H, cell_w + GRID_GAP
    canvas = np.full((rows * step_y + GRID_GAP, columns * step_x + GRID_GAP, 3), 255, np.uint8)
    for i, (thumb, text) in enumerate(cells):
        top = GRID_GAP + (i // columns) * step_y
        left = GRID_GAP + (i % columns) * step_x
        if thumb is not None:
            h, w = thumb.shape[:2]
            canvas[top : top + h, left : left + w] = thumb
        _draw_text(canvas, text, top + cell + GRID_GAP, left)
    return canvas


def _draw_text(canvas: np.ndarray, text: str, top: int, left: int) -> None:
    """Draw ``text`` in dark gray; characters outside the tiny font are skipped."""
    for k, char in enumerate(text):
        glyph = _GLYPHS.get(char)
        if glyph is None:
            continue
        mask = np.array([[bit == "1" for bit in row] for row in glyph])
        mask = mask.repeat(_FONT_SCALE, axis=0).repeat(_FONT_SCALE, axis=1)
        x = left + k * _CHAR_W
        region = canvas[top : top + mask.shape[0], x : x + mask.shape[1]]
        region[mask[: region.shape[0], : region.shape[1]]] = 48
