"""The tables gpuimg applies a profile's transform with: made once per profile from
LittleCMS (:mod:`.engine`) and kept in the ops' cache by the profile's hash.

Example:
    >>> from gpuimg.ops.color.icc.engine import srgb_profile
    >>> profile_lut(srgb_profile()).coarse.shape, cmyk_lut(None).grid.shape
    ((52, 52, 52, 3), (86, 86, 86, 16, 3))
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, NamedTuple

import numpy as np

from ....errors import check_choice
from ..._engine.cache import cache
from .engine import every_level, littlecms

__all__ = ["GRID", "STEP", "INTENTS", "CMY_STEP", "CMY_GRID", "K_STEP", "K_GRID", "ProfileTable", "CmykTable",
           "profile_lut", "lut", "cmyk_lut", "table_builds"]

GRID = 52  # levels per axis of the coarse table: 255 / 51 = 5, so every grid point is an exact uint8 input
STEP = 5  # levels between grid points
INTENTS = ("relative", "perceptual")
CMY_STEP, CMY_GRID = 3, 86  # CMYK tables: C, M and Y at the levels 0, 3, ..., 255 ...
K_STEP, K_GRID = 17, 16  # ... and K at 0, 17, ..., 255 (K is interpolated linearly: it bends least)


class ProfileTable(NamedTuple):
    """A profile's transform to sRGB as gpuimg applies it (made by :func:`profile_lut`).

    ``coarse``: (GRID, GRID, GRID, 3) uint8, LittleCMS's output at the levels 0, 5, ...,
    255 of r, g, b, interpolated tetrahedrally in between. ``cells``: (GRID-1,)*3 int32,
    -1 for a cell where that interpolation is within 1 level of LittleCMS at every 8-bit
    input inside it, else the index of the cell's exact block. ``blocks``: (n, 6, 6, 6, 3)
    uint8, LittleCMS's output at every level of those cells: where the transform bends
    (the sRGB gamut boundary clips it, the tone curves near black) a coarse table is off
    by up to 10-14 levels, and these cells (5-10% for Display P3 / Adobe RGB) are looked up
    instead. Every 8-bit input is thus within 1 level of LittleCMS.
    """

    coarse: np.ndarray
    cells: np.ndarray
    blocks: np.ndarray


# The 32 latest profiles' tables (a folder of phone photos uses a handful), within 256 MB
# (a CMYK table is 30 MB).
_tables = cache("color:profile-tables", max_items=32, max_bytes=256 << 20)
_builds_lock = threading.Lock()
_builds = [0]  # tables built since import (table_builds())


def table_builds() -> int:
    """How many profile tables (RGB or CMYK) were built since import: a conversion with
    a profile seen before finds its table in the cache (the 32 latest profiles, up to
    256 MB of tables, keyed by the SHA-256 of the profile's bytes and the intent).

    Example:
        >>> from gpuimg.ops.color.icc.engine import srgb_profile
        >>> before = table_builds()
        >>> _ = profile_lut(srgb_profile()); _ = profile_lut(srgb_profile())
        >>> table_builds() - before <= 1
        True
    """
    return _builds[0]


def profile_lut(profile: bytes, intent: str = "relative") -> ProfileTable:
    """The :class:`ProfileTable` of ``profile``'s RGB -> sRGB transform (built by
    LittleCMS once, then cached by the profile's hash). ArgumentError naming ``profile=``
    for bytes LittleCMS cannot read or a profile that is not RGB.

    Example:
        >>> from gpuimg.ops.color.icc.engine import srgb_profile
        >>> table = profile_lut(srgb_profile())
        >>> table.coarse.shape, table.coarse[51, 0, 0].tolist()
        ((52, 52, 52, 3), [255, 0, 0])
    """
    check_choice(intent, "intent", INTENTS, "a rendering intent")
    return lut(hashlib.sha256(profile).digest(), profile, intent)


def lut(digest: bytes, profile: bytes, intent: str) -> ProfileTable:
    return _cached((digest, intent, "rgb"), lambda: _build_lut(profile, intent))


def _cached(key: tuple, build: Any) -> Any:
    """The table under ``key``, built (outside the cache's lock) when missing."""

    def counted() -> Any:
        table = build()
        with _builds_lock:
            _builds[0] += 1
        return table

    return _tables.get_or_make(key, counted)


def _build_lut(profile: bytes, intent: str) -> ProfileTable:
    dense = every_level(profile, intent)
    coarse = np.ascontiguousarray(dense[::STEP, ::STEP, ::STEP])
    bad = _bad_cells(coarse, dense)
    cells = np.full((GRID - 1,) * 3, -1, np.int32)
    cells[bad] = np.arange(int(bad.sum()), dtype=np.int32)
    # Every cell's (6, 6, 6) corner-inclusive block as a view; the bad ones gathered at once.
    windows = np.lib.stride_tricks.sliding_window_view(dense, (STEP + 1,) * 3, axis=(0, 1, 2))[::STEP, ::STEP, ::STEP]
    blocks = np.ascontiguousarray(windows[bad].transpose(0, 2, 3, 4, 1))
    return ProfileTable(coarse, cells, blocks)


def _tetrahedron(fr: Any, fg: Any, fb: Any) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[Any, Any, Any]]:
    """The two inner corners (as offsets) and the ordered fractions of the tetrahedron
    that (fr, fg, fb) falls in (scalars: the same split the kernel makes)."""
    if fr >= fg:
        if fg >= fb:
            return (1, 0, 0), (1, 1, 0), (fr, fg, fb)
        if fr >= fb:
            return (1, 0, 0), (1, 0, 1), (fr, fb, fg)
        return (0, 0, 1), (1, 0, 1), (fb, fr, fg)
    if fb >= fg:
        return (0, 0, 1), (0, 1, 1), (fb, fg, fr)
    if fb >= fr:
        return (0, 1, 0), (0, 1, 1), (fg, fb, fr)
    return (0, 1, 0), (1, 1, 0), (fg, fr, fb)


def _bad_cells(coarse: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """(GRID-1,)*3 bool: the cells where the tetrahedrally interpolated coarse table is
    more than 1 level from LittleCMS at some 8-bit input of the cell (its 6^3 levels,
    corners included).

    Exact integer arithmetic, vectorised per offset: at offset (a, b, c) of a cell the
    fractions are a/5, b/5, c/5 in every cell, so 5 x the interpolated value is the integer
    N = 5 c0 + a' (c1 - c0) + b' (c2 - c1) + c' (c3 - c2) (a' >= b' >= c' the offsets in the
    tetrahedron's order). Its rounding is within 1 of LittleCMS's e exactly when
    |N - 5 e| <= 7 (N / 5 is never halfway, so the kernel's float32 rounding agrees).
    """
    n = GRID - 1
    table = coarse.astype(np.int16)

    def corner(o: tuple[int, int, int]) -> np.ndarray:
        return table[o[0] : o[0] + n, o[1] : o[1] + n, o[2] : o[2] + n]

    c0, c3 = corner((0, 0, 0)), corner((1, 1, 1))
    base = c0 * STEP
    diffs: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    # LittleCMS's levels regrouped by offset in the cell, so that each offset's values are
    # one contiguous (GRID, GRID, GRID, 3) array: offset (a, b, c) of cell (i, j, m) is
    # at [a % 5, b % 5, c % 5, i + a // 5, j + b // 5, m + c // 5] (offset 5 is offset 0
    # of the next cell; the padding past level 255 is never read).
    pad = STEP * GRID - 256
    by_offset = np.pad(dense, ((0, pad), (0, pad), (0, pad), (0, 0)), mode="edge")
    by_offset = by_offset.reshape(GRID, STEP, GRID, STEP, GRID, STEP, 3).transpose(1, 3, 5, 0, 2, 4, 6)
    by_offset = np.ascontiguousarray(by_offset).astype(np.int16) * np.int16(STEP)
    worst = np.zeros((n, n, n, 3), np.int16)
    value = np.empty((n, n, n, 3), np.int16)
    for a, b, c in np.ndindex(STEP + 1, STEP + 1, STEP + 1):
        if {a, b, c} <= {0, STEP}:
            continue  # a grid point: the table holds LittleCMS's value
        o1, o2, w = _tetrahedron(a, b, c)
        d = diffs.get((o1, o2))
        if d is None:
            c1, c2 = corner(o1), corner(o2)
            d = diffs[(o1, o2)] = (c1 - c0, c2 - c1, c3 - c2)
        ia, ib, ic = a // STEP, b // STEP, c // STEP
        np.multiply(d[0], np.int16(w[0]), out=value)
        value += base
        value += d[1] * np.int16(w[1])
        value += d[2] * np.int16(w[2])
        value -= by_offset[a % STEP, b % STEP, c % STEP, ia : ia + n, ib : ib + n, ic : ic + n]
        np.abs(value, out=value)
        np.maximum(worst, value, out=worst)
    bad = (worst > 7).any(axis=-1)
    return bad


# ----------------------------------------------------------------------------- CMYK tables


class CmykTable(NamedTuple):
    """A CMYK -> sRGB transform as gpuimg applies it (made by :func:`cmyk_lut`).

    ``grid``: (CMY_GRID, CMY_GRID, CMY_GRID, K_GRID, 3) uint8, the sRGB colour at C, M, Y
    = 0, 3, ..., 255 and K = 0, 17, ..., 255 (ink amounts, 255 = full ink, as Pillow's
    "CMYK" mode). A pixel is interpolated tetrahedrally in C, M, Y on the two K slices
    around its K, then linearly in K (LittleCMS evaluates a CMYK profile's own table the
    same way). 30 MB; no exact blocks (256^4 inputs cannot all be checked). Against
    LittleCMS on a million random CMYK colours, Ghostscript's "Artifex CMYK SWOP" press
    profile: within 1 level for 99.97%, within 2 for all but 2 (worst 3, where cyan
    leaves the sRGB gamut and the red channel clips), mean 0.15.
    """

    grid: np.ndarray


def cmyk_lut(profile: bytes | None, intent: str = "relative") -> CmykTable:
    """The :class:`CmykTable` of ``profile``'s CMYK -> sRGB transform (LittleCMS, built
    once and cached by the profile's hash, as :func:`profile_lut`). ``profile=None``: a
    CMYK JPEG without a profile, converted as Pillow's ``convert("RGB")`` (and
    nvImageCodec's default decode) do: R = (255 - C) (255 - K) / 255, and so on (no colour
    engine needed). ArgumentError naming ``profile=`` for a profile that is not CMYK.

    Example:
        >>> table = cmyk_lut(None)
        >>> table.grid.shape, table.grid[0, 0, 0, 0].tolist(), table.grid[85, 0, 0, 0].tolist()
        ((86, 86, 86, 16, 3), [255, 255, 255], [0, 255, 255])
    """
    check_choice(intent, "intent", INTENTS, "a rendering intent")
    if profile is None:
        return _cached((b"naive", "relative", "cmyk"), _naive_cmyk)
    return _cached((hashlib.sha256(profile).digest(), intent, "cmyk"), lambda: _build_cmyk(profile, intent))


def _cmyk_grid() -> np.ndarray:
    """(CMY_GRID * CMY_GRID, CMY_GRID * K_GRID, 4) uint8: every grid point as one image."""
    cmy, k = np.arange(0, 256, CMY_STEP, dtype=np.uint8), np.arange(0, 256, K_STEP, dtype=np.uint8)
    grid = np.stack(np.meshgrid(cmy, cmy, cmy, k, indexing="ij"), axis=-1)
    return grid.reshape(CMY_GRID * CMY_GRID, CMY_GRID * K_GRID, 4)


def _build_cmyk(profile: bytes, intent: str) -> CmykTable:
    rgb = littlecms(profile, intent, "CMYK", _cmyk_grid())
    return CmykTable(np.ascontiguousarray(rgb.reshape(CMY_GRID, CMY_GRID, CMY_GRID, K_GRID, 3)))


def _naive_cmyk() -> CmykTable:
    """Pillow's CMYK -> RGB (Convert.c cmyk2rgb: nk = 255 - k, r = nk - c * nk / 255 with
    its rounding MULDIV255), at the grid points."""
    ink = _cmyk_grid().astype(np.int32).reshape(CMY_GRID, CMY_GRID, CMY_GRID, K_GRID, 4)
    nk = 255 - ink[..., 3:]
    t = ink[..., :3] * nk + 128
    rgb = nk - (((t >> 8) + t) >> 8)
    return CmykTable(np.ascontiguousarray(np.clip(rgb, 0, 255).astype(np.uint8)))
