"""The NumPy twins of the colour-table kernel: the CPU path, and the oracles the kernel
is tested against (float32 arithmetic in the kernel's order of operations).
"""

from __future__ import annotations

import numpy as np

from .tables import CMY_GRID, CMY_STEP, GRID, K_GRID, K_STEP, STEP, CmykTable, ProfileTable

__all__ = ["apply_lut_numpy", "apply_cmyk_numpy"]

_FRACTION = np.float32(1.0 / STEP)


def apply_lut_numpy(pixels: np.ndarray, table: ProfileTable) -> np.ndarray:
    """``pixels`` (..., 3 or 4; uint8 or uint16) through ``table``, in float32 as the
    kernel computes it; alpha is copied. Positions are in 8-bit levels (a uint16 value
    over 257). In a cell with an exact block the block's sub-lattice (every level) is
    interpolated (for uint8: a plain lookup), elsewhere the coarse table; both
    tetrahedrally.

    Example:
        >>> from gpuimg.ops.color.icc import profile_lut, srgb_profile
        >>> table = profile_lut(srgb_profile())
        >>> apply_lut_numpy(np.array([[7, 130, 251]], np.uint8), table).tolist()
        [[7, 130, 251]]
    """
    f32 = np.float32
    x = pixels[..., :3].astype(f32)
    if pixels.dtype == np.uint16:
        x = x / f32(257.0)  # a division (correctly rounded, as the kernel's): v * 257 gives v back exactly
    i = np.minimum((x * _FRACTION).astype(np.int32), GRID - 2)
    off = x - (STEP * i).astype(f32)
    cell = table.cells[i[..., 0], i[..., 1], i[..., 2]]
    exact = cell >= 0
    # Coarse: corner index in the (GRID,)*3 table; fine: in the (6,)*3 block of the cell.
    frac = np.where(exact[..., None], 0, off * _FRACTION).astype(f32)
    sub = np.minimum(off.astype(np.int32), STEP - 1)
    frac = np.where(exact[..., None], off - sub.astype(f32), frac)
    coarse_strides = (GRID * GRID * 3, GRID * 3, 3)
    fine_strides = ((STEP + 1) ** 2 * 3, (STEP + 1) * 3, 3)
    coarse_base = (i * np.array(coarse_strides)).sum(-1)
    fine_base = np.maximum(cell, 0).astype(np.int64) * (STEP + 1) ** 3 * 3 + (sub * np.array(fine_strides)).sum(-1)
    flat = np.concatenate([table.coarse.reshape(-1), table.blocks.reshape(-1)]).astype(f32)
    base = np.where(exact, table.coarse.size + fine_base, coarse_base)
    strides = np.where(exact[..., None], np.array(fine_strides), np.array(coarse_strides))
    value = _tetrahedral(flat, base, strides, frac[..., 0], frac[..., 1], frac[..., 2])
    result = pixels.copy()
    if pixels.dtype == np.uint16:
        result[..., :3] = np.clip(np.rint(value * f32(257.0)), 0, 65535).astype(np.uint16)
    else:
        result[..., :3] = np.clip(np.rint(value), 0, 255).astype(np.uint8)
    return result


def _tetrahedral(flat: np.ndarray, base: np.ndarray, strides: np.ndarray, fr: np.ndarray, fg: np.ndarray,
                 fb: np.ndarray) -> np.ndarray:
    """Per pixel: the tetrahedron the fractions select (as _tetrahedron and the kernel
    split the cube), c0 + w0 (c1 - c0) + w1 (c2 - c1) + w2 (c3 - c2) for each channel."""
    sr, sg, sb = strides[..., 0], strides[..., 1], strides[..., 2]
    conds = [(fr >= fg) & (fg >= fb), (fr >= fg) & (fr >= fb), fr >= fg, fb >= fg, fb >= fr]
    o1 = np.select(conds, [sr, sr, sb, sb, sg], sg)
    o2 = np.select(conds, [sr + sg, sr + sb, sr + sb, sg + sb, sg + sb], sr + sg)
    w0 = np.select(conds, [fr, fr, fb, fb, fg], fg)
    w1 = np.select(conds, [fg, fb, fr, fg, fb], fr)
    w2 = np.select(conds, [fb, fg, fg, fr, fr], fb)
    o3 = sr + sg + sb
    out = np.empty(base.shape + (3,), np.float32)
    for c in range(3):
        c0, c1 = flat[base + c].astype(np.float32), flat[base + o1 + c].astype(np.float32)
        c2, c3 = flat[base + o2 + c].astype(np.float32), flat[base + o3 + c].astype(np.float32)
        out[..., c] = c0 + w0 * (c1 - c0) + w1 * (c2 - c1) + w2 * (c3 - c2)
    return out


_THIRD = np.float32(1) / np.float32(CMY_STEP)  # correctly rounded, as the kernel's 1.f / 3.f
_SEVENTEENTH = np.float32(1) / np.float32(K_STEP)
_CMYK_STRIDES = (CMY_GRID * CMY_GRID * K_GRID * 3, CMY_GRID * K_GRID * 3, K_GRID * 3)


def apply_cmyk_numpy(pixels: np.ndarray, table: CmykTable) -> np.ndarray:
    """``pixels`` (..., 4) uint8 ink amounts through ``table``: (..., 3) uint8 sRGB, in
    float32 as the kernel computes it (tetrahedral in C, M, Y on the two K slices around
    each pixel's K, then linear in K).

    Example:
        >>> from gpuimg.ops.color.icc import cmyk_lut
        >>> apply_cmyk_numpy(np.array([[0, 0, 0, 0], [0, 0, 0, 255], [255, 0, 0, 0]], np.uint8), cmyk_lut(None)).tolist()
        [[255, 255, 255], [0, 0, 0], [0, 255, 255]]
    """
    v = pixels.astype(np.int32)
    i = np.minimum(v[..., :3] // CMY_STEP, CMY_GRID - 2)
    frac = (v[..., :3] - CMY_STEP * i).astype(np.float32) * _THIRD
    ik = np.minimum(v[..., 3] // K_STEP, K_GRID - 2)
    fk = (v[..., 3] - K_STEP * ik).astype(np.float32) * _SEVENTEENTH
    base = (i * np.array(_CMYK_STRIDES)).sum(-1) + ik * 3
    strides = np.broadcast_to(np.array(_CMYK_STRIDES), i.shape)
    flat = table.grid.reshape(-1)  # uint8: _tetrahedral converts what it gathers
    low = _tetrahedral(flat, base, strides, frac[..., 0], frac[..., 1], frac[..., 2])
    high = _tetrahedral(flat, base + 3, strides, frac[..., 0], frac[..., 1], frac[..., 2])
    value = low + fk[..., None] * (high - low)
    return np.clip(np.rint(value), 0, 255).astype(np.uint8)
