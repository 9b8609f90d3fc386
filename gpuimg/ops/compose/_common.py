"""NumPy helpers shared by the compose submodules: the kernels' load/store as array ops,
colour parsing, and the copy-into-out step."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ArgumentError
from .._engine.args import Source
from .._engine.batch import prepare_out, same_memory


def _rgba(arr: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 -> (H, W, 4) int64 as the kernels' ``load`` reads it."""
    a = arr.astype(np.int64)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.shape[2] == 3:
        a = np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.int64)], axis=2)
    return a


def _store(arr: np.ndarray, channels: int) -> np.ndarray:
    return arr[..., :1].astype(np.uint8) if channels == 1 else arr[..., :channels].astype(np.uint8)


# ----------------------------------------------------------------------------- colours


def _color(color: Any, channels: int, name: str = "color") -> tuple[int, int, int, int]:
    """A colour as RGBA ints: a gray level, (r, g, b) or (r, g, b, a) in 0..255."""
    arr = np.atleast_1d(np.asarray(color, np.float64))
    if arr.ndim != 1 or arr.size not in (1, 3, 4) or not np.all((arr >= 0) & (arr <= 255)):
        raise ArgumentError(f"{name}={color!r} must be a gray level, (r, g, b) or (r, g, b, a) with values in [0, 255]")
    vals = np.rint(arr).astype(int).tolist()
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) == 3:
        vals.append(255)
    return tuple(vals)  # type: ignore[return-value]



def _copied(dst: Source, out: Source | None, stream: Any) -> Source:
    """``out`` holding ``dst``'s pixels (nothing to do when ``out`` is ``dst``)."""
    if out is dst:
        return dst
    out = prepare_out(dst, out)  # THE check of a caller's out (Image.copy would retype it)
    if same_memory(out, dst):
        return out
    return dst.copy(out=out, stream=stream)
