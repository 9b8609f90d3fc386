"""Colour management: an embedded ICC profile's transform to sRGB, applied as a lookup table.

The transform is built ONCE per profile on the host by LittleCMS (through Pillow's
``ImageCms``: the optional extra ``gpuimg[color]``), sampled into a table, cached by the
profile's hash (the 32 latest, within 256 MB; :func:`table_builds` counts the builds), and
applied to every pixel in ONE kernel launch per Image or ImageBatch (one table per image
of a batch, all in one upload; RGB, RGBA and CMYK images mixed). The NumPy twins below
are the CPU path and the oracles of the kernel.

- RGB (:class:`ProfileTable`): a 52^3 grid (every 5th level: grid points are exact 8-bit
  inputs, so the table holds exactly what LittleCMS makes of them) interpolated
  tetrahedrally, plus exact blocks for the cells where that is off by more than a level:
  every 8-bit colour within 1 level of LittleCMS. Building one takes about 0.55 s on 2
  cores (LittleCMS on all 16.7 M colours as one image on a few threads, 0.3 s; the exact
  integer check of every cell, 0.3 s); it took 3.6 s before issue 19's rework.
- CMYK (:class:`CmykTable`, CMYK JPEGs decoded to their inks by
  ``gpuimg.read(..., mode="cmyk")``): an 86^3 x 16 grid (C, M, Y every 3rd level, K every
  17th) interpolated tetrahedrally in C, M, Y on the two K slices around the pixel's K and
  linearly in K; about 0.35 s to build. Without a profile: Pillow's ``convert("RGB")``.

Rendering intent: relative colorimetric by default (what browsers use for photos; the
same as perceptual for matrix/TRC profiles such as Display P3 and Adobe RGB), without
black-point compensation: ``intent="perceptual"`` selects the other. The result matches
``ImageCms.profileToProfile`` with the same intent within 1-2 levels.

Example:
    >>> import numpy as np, gpuimg
    >>> img = gpuimg.Image.from_array(np.full((2, 2, 3), 120, np.uint8))
    >>> out = convert_colorspace(img, profile=srgb_profile())  # sRGB -> sRGB: identity
    >>> int(abs(out.numpy().astype(int) - 120).max()) <= 1
    True
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from ...errors import ArgumentError, ColorEngineMissingError, check_choice  # ColorEngineMissingError: re-exported, its old home
from ..registry import register_op
from .._engine.args import Source, check_src
from .._engine.batch import batch_view, grid_for, launch, pairs, prepare_out, same_memory
from .._engine.kernels import PRELUDE, compiled, dtype_suffix
from .._engine.params import Blob, pack, upload, upload_blob

__all__ = ["convert_colorspace", "srgb_profile", "rgb_profile", "profile_lut", "ProfileTable", "apply_lut_numpy", "GRID", "INTENTS",
           "cmyk_lut", "CmykTable", "apply_cmyk_numpy", "table_builds"]

GRID = 52  # levels per axis of the coarse table: 255 / 51 = 5, so every grid point is an exact uint8 input
STEP = 5  # levels between grid points
INTENTS = ("relative", "perceptual")
CMY_STEP, CMY_GRID = 3, 86  # CMYK tables: C, M and Y at the levels 0, 3, ..., 255 ...
K_STEP, K_GRID = 17, 16  # ... and K at 0, 17, ..., 255 (K is interpolated linearly: it bends least)
_CACHE_SIZE = 32  # profiles whose tables are kept (a folder of phone photos uses a handful) ...
_CACHE_BYTES = 256 << 20  # ... within this many bytes of tables (a CMYK table is 30 MB)


def _imagecms() -> Any:
    try:
        from PIL import ImageCms
    except ImportError:
        raise ColorEngineMissingError(
            "colour conversion builds its transforms with LittleCMS through Pillow's ImageCms, which is not "
            "installed; install the extra: pip install 'gpuimg[color]'"
        ) from None
    return ImageCms


_srgb: list[bytes] = []


def srgb_profile() -> bytes:
    """The ICC profile of sRGB (LittleCMS's built-in, as Pillow writes it), for outputs.

    Example:
        >>> srgb_profile()[36:40]
        b'acsp'
    """
    if not _srgb:
        cms = _imagecms()
        _srgb.append(cms.ImageCmsProfile(cms.createProfile("sRGB")).tobytes())
    return _srgb[0]


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


_luts: OrderedDict[tuple, Any] = OrderedDict()
_lut_lock = threading.Lock()
_builds = [0]  # tables built since import (table_builds())


def table_builds() -> int:
    """How many profile tables (RGB or CMYK) were built since import: a conversion with
    a profile seen before finds its table in the cache (the 32 latest profiles, up to
    256 MB of tables, keyed by the SHA-256 of the profile's bytes and the intent).

    Example:
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
        >>> table = profile_lut(srgb_profile())
        >>> table.coarse.shape, table.coarse[51, 0, 0].tolist()
        ((52, 52, 52, 3), [255, 0, 0])
    """
    check_choice(intent, "intent", INTENTS, "a rendering intent")
    return _lut(hashlib.sha256(profile).digest(), profile, intent)


def _lut(digest: bytes, profile: bytes, intent: str) -> ProfileTable:
    return _cached((digest, intent, "rgb"), lambda: _build_lut(profile, intent))


def _cached(key: tuple, build: Any) -> Any:
    """The table under ``key``, built (outside the lock) when missing; the least recently
    used go first past _CACHE_SIZE tables or _CACHE_BYTES (the newest always stays)."""
    with _lut_lock:
        lut = _luts.get(key)
        if lut is not None:
            _luts.move_to_end(key)
            return lut
    lut = build()
    with _lut_lock:
        _builds[0] += 1
        _luts[key] = lut
        while len(_luts) > 1 and (len(_luts) > _CACHE_SIZE or sum(_nbytes(t) for t in _luts.values()) > _CACHE_BYTES):
            _luts.popitem(last=False)
    return lut


def _nbytes(table: Any) -> int:
    return sum(a.nbytes for a in table)


def _build_lut(profile: bytes, intent: str) -> ProfileTable:
    dense = _littlecms_every_level(profile, intent)
    coarse = np.ascontiguousarray(dense[::STEP, ::STEP, ::STEP])
    bad = _bad_cells(coarse, dense)
    cells = np.full((GRID - 1,) * 3, -1, np.int32)
    cells[bad] = np.arange(int(bad.sum()), dtype=np.int32)
    # Every cell's (6, 6, 6) corner-inclusive block as a view; the bad ones gathered at once.
    windows = np.lib.stride_tricks.sliding_window_view(dense, (STEP + 1,) * 3, axis=(0, 1, 2))[::STEP, ::STEP, ::STEP]
    blocks = np.ascontiguousarray(windows[bad].transpose(0, 2, 3, 4, 1))
    return ProfileTable(coarse, cells, blocks)


def _littlecms(profile: bytes, intent: str, mode: str, pixels: np.ndarray) -> np.ndarray:
    """LittleCMS's transform (``profile`` -> sRGB, ``intent``) of ``pixels`` ((h, w, 3 or
    4) uint8 in ``mode`` "RGB" or "CMYK"), as one image: (h, w, 3) uint8."""
    from PIL import Image as PILImage

    cms = _imagecms()
    src = _open_profile(profile, "RGB" if mode == "RGB" else "CMYK")
    flag = cms.Intent.RELATIVE_COLORIMETRIC if intent == "relative" else cms.Intent.PERCEPTUAL
    try:
        transform = cms.buildTransform(src, cms.ImageCmsProfile(cms.createProfile("sRGB")), mode, "RGB", renderingIntent=flag)
    except cms.PyCMSError as exc:
        raise ArgumentError(f"profile= is a {mode} profile LittleCMS cannot build a transform to sRGB from ({exc})") from None
    # LittleCMS runs without the GIL: strips of rows on a few threads (a transform is
    # read-only once built).
    strips = np.array_split(pixels, max(1, min(8, os.cpu_count() or 1, len(pixels))))
    with ThreadPoolExecutor(len(strips)) as pool:
        done = pool.map(lambda part: np.asarray(cms.applyTransform(PILImage.fromarray(part, mode), transform), np.uint8), strips)
        return np.concatenate(list(done))


def _open_profile(profile: bytes, space: str) -> Any:
    """``profile`` opened by LittleCMS; ArgumentError naming ``profile=`` for bytes it cannot
    read or a profile of another colour space than ``space`` ("RGB", "CMYK")."""
    import io

    cms = _imagecms()
    try:
        opened = cms.ImageCmsProfile(io.BytesIO(profile))
    except (OSError, cms.PyCMSError) as exc:
        raise ArgumentError(f"profile= is not an ICC profile LittleCMS can read ({exc})") from None
    found = profile[16:20].decode("latin-1").strip()
    if found != space:
        raise ArgumentError(f"profile= is a {found} profile for {space} pixels; convert_colorspace takes RGB profiles for "
                            "RGB images and CMYK profiles for CMYK images")
    return opened


def _littlecms_every_level(profile: bytes, intent: str) -> np.ndarray:
    """(256, 256, 256, 3) uint8: LittleCMS's transform of every 8-bit colour, as ONE
    4096 x 4096 image (about half a second; the tables keep only what interpolation
    cannot give)."""
    levels = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    grid = np.stack([r, g, b], axis=-1).reshape(4096, 4096, 3)
    return _littlecms(profile, intent, "RGB", grid).reshape(256, 256, 256, 3)


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


_FRACTION = np.float32(1.0 / STEP)


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
    rgb = _littlecms(profile, intent, "CMYK", _cmyk_grid())
    return CmykTable(np.ascontiguousarray(rgb.reshape(CMY_GRID, CMY_GRID, CMY_GRID, K_GRID, 3)))


def _naive_cmyk() -> CmykTable:
    """Pillow's CMYK -> RGB (Convert.c cmyk2rgb: nk = 255 - k, r = nk - c * nk / 255 with
    its rounding MULDIV255), at the grid points."""
    ink = _cmyk_grid().astype(np.int32).reshape(CMY_GRID, CMY_GRID, CMY_GRID, K_GRID, 4)
    nk = 255 - ink[..., 3:]
    t = ink[..., :3] * nk + 128
    rgb = nk - (((t >> 8) + t) >> 8)
    return CmykTable(np.ascontiguousarray(np.clip(rgb, 0, 255).astype(np.uint8)))


# ----------------------------------------------------------------------------- the NumPy twin


def apply_lut_numpy(pixels: np.ndarray, table: ProfileTable) -> np.ndarray:
    """``pixels`` (..., 3 or 4; uint8 or uint16) through ``table``, in float32 as the
    kernel computes it; alpha is copied. Positions are in 8-bit levels (a uint16 value
    over 257). In a cell with an exact block the block's sub-lattice (every level) is
    interpolated (for uint8: a plain lookup), elsewhere the coarse table; both
    tetrahedrally.

    Example:
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


# ----------------------------------------------------------------------------- the kernel

_SOURCE = PRELUDE + r"""
#define GRID 52
#define STEP 5
// One tetrahedral interpolation: the corner at t + base, neighbours ``sr, sg, sb`` apart.
__device__ __forceinline__ void tetra(const u8* t, long long base, int sr, int sg, int sb,
                                      float fr, float fg, float fb, float* out) {
    int o1, o2;  // the two inner corners of the tetrahedron the fractions select
    float w0, w1, w2;  // the fractions in decreasing order
    if (fr >= fg) {
        if (fg >= fb)      { o1 = sr; o2 = sr + sg; w0 = fr; w1 = fg; w2 = fb; }
        else if (fr >= fb) { o1 = sr; o2 = sr + sb; w0 = fr; w1 = fb; w2 = fg; }
        else               { o1 = sb; o2 = sr + sb; w0 = fb; w1 = fr; w2 = fg; }
    } else {
        if (fb >= fg)      { o1 = sb; o2 = sg + sb; w0 = fb; w1 = fg; w2 = fr; }
        else if (fb >= fr) { o1 = sg; o2 = sg + sb; w0 = fg; w1 = fb; w2 = fr; }
        else               { o1 = sg; o2 = sr + sg; w0 = fg; w1 = fr; w2 = fb; }
    }
    const int o3 = sr + sg + sb;
    #pragma unroll
    for (int c = 0; c < 3; ++c) {
        const float c0 = to_f(t[base + c]), c1 = to_f(t[base + o1 + c]);
        const float c2 = to_f(t[base + o2 + c]), c3 = to_f(t[base + o3 + c]);
        out[c] = c0 + w0 * (c1 - c0) + w1 * (c2 - c1) + w2 * (c3 - c2);
    }
}
#define CMY_GRID 86
#define CMY_STEP 3
#define K_GRID 16
#define K_STEP 17
// A CMYK pixel (ink amounts) through CMYK table t: tetrahedral in C, M, Y on the K slices
// below and above its K, then linear in K (the NumPy twin's order of operations).
__device__ __forceinline__ void cmyk_to_rgb(const u8* grid, int t, const u8* p, float* rgb) {
    const int c = p[0], m = p[1], y = p[2], k = p[3];
    const int ic = min(c / CMY_STEP, CMY_GRID - 2), im = min(m / CMY_STEP, CMY_GRID - 2), iy = min(y / CMY_STEP, CMY_GRID - 2);
    const int ik = min(k / K_STEP, K_GRID - 2);
    const float third = 1.f / 3.f, seventeenth = 1.f / 17.f;
    const float fc = (float)(c - CMY_STEP * ic) * third, fm = (float)(m - CMY_STEP * im) * third;
    const float fy = (float)(y - CMY_STEP * iy) * third, fk = (float)(k - K_STEP * ik) * seventeenth;
    const int sy = K_GRID * 3, sm = CMY_GRID * sy, sc = CMY_GRID * sm;
    const long long base = (long long)t * CMY_GRID * sc + (long long)ic * sc + im * sm + iy * sy + ik * 3;
    float low[3], high[3];
    tetra(grid, base, sc, sm, sy, fc, fm, fy, low);
    tetra(grid, base + 3, sc, sm, sy, fc, fm, fy, high);
    #pragma unroll
    for (int ch = 0; ch < 3; ++ch) rgb[ch] = low[ch] + fk * (high[ch] - low[ch]);
}
template <typename T>
__device__ __forceinline__ void lut3d(const u8* src, const i64* stab, u8* dst, const i64* dtab,
                                      const u8* coarse, const int* cells, const u8* blocks, const int* which,
                                      const u8* cmyk) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    const int b = blockIdx.z;
    Slot s = slot(src, stab, b), d = slot(dst, dtab, b);
    if (x >= s.width || y >= s.height) return;
    const T* p = (const T*)(s.p + y * s.pitch) + x * s.channels;
    T* q = (T*)(d.p + y * d.pitch) + x * d.channels;
    const int k = which[b];
    if (k <= -2) {  // a CMYK image (uint8 only: 4 ink channels in, RGB out): CMYK table -2 - k
        float rgb[3];
        cmyk_to_rgb(cmyk, -2 - k, (const u8*)p, rgb);
        store(q, rgb[0]); store(q + 1, rgb[1]); store(q + 2, rgb[2]);
        return;
    }
    const T v0 = p[0], v1 = p[1], v2 = p[2];
    const T alpha = s.channels == 4 ? p[3] : (T)0;
    if (k < 0) {  // no conversion for this image: copied as it is
        q[0] = v0; q[1] = v1; q[2] = v2;
        if (s.channels == 4) q[3] = alpha;
        return;
    }
    // Positions in 8-bit levels (the table's): a uint16 value divided by 257 (IEEE
    // division, as the twin: an 8-bit level times 257 comes back exactly).
    const float unit = sizeof(T) == 2 ? 257.f : 1.f;
    const float xr = to_f(v0) / unit, xg = to_f(v1) / unit, xb = to_f(v2) / unit;
    const int ir = min((int)(xr * 0.2f), GRID - 2), ig = min((int)(xg * 0.2f), GRID - 2), ib = min((int)(xb * 0.2f), GRID - 2);
    const float ar = xr - (float)(STEP * ir), ag = xg - (float)(STEP * ig), ab = xb - (float)(STEP * ib);
    const int cell = cells[(long long)k * (GRID - 1) * (GRID - 1) * (GRID - 1) + (ir * (GRID - 1) + ig) * (GRID - 1) + ib];
    float rgb[3];
    if (cell >= 0) {  // a cell where the transform bends: LittleCMS's value at every level
        const int jr = min((int)ar, STEP - 1), jg = min((int)ag, STEP - 1), jb = min((int)ab, STEP - 1);
        const long long base = (long long)cell * 648 + (jr * 36 + jg * 6 + jb) * 3;
        tetra(blocks, base, 108, 18, 3, ar - (float)jr, ag - (float)jg, ab - (float)jb, rgb);
    } else {
        const long long base = (long long)k * GRID * GRID * GRID * 3 + (ir * GRID * GRID + ig * GRID + ib) * 3;
        tetra(coarse, base, GRID * GRID * 3, GRID * 3, 3, ar * 0.2f, ag * 0.2f, ab * 0.2f, rgb);
    }
    const float scale = sizeof(T) == 2 ? 257.f : 1.f;
    store(q, rgb[0] * scale); store(q + 1, rgb[1] * scale); store(q + 2, rgb[2] * scale);
    if (s.channels == 4) q[3] = alpha;
}
extern "C" __global__ void lut3d_u8(const u8* src, const i64* stab, u8* dst, const i64* dtab,
                                    const u8* coarse, const int* cells, const u8* blocks, const int* which, const u8* cmyk) {
    lut3d<u8>(src, stab, dst, dtab, coarse, cells, blocks, which, cmyk);
}
extern "C" __global__ void lut3d_u16(const u8* src, const i64* stab, u8* dst, const i64* dtab,
                                     const u8* coarse, const int* cells, const u8* blocks, const int* which, const u8* cmyk) {
    lut3d<u16>(src, stab, dst, dtab, coarse, cells, blocks, which, cmyk);
}
"""


def rgb_profile(meta: Any) -> bytes | None:
    """The ICC profile in ``meta`` (an image's metadata) when it describes RGB pixels, else
    None. A CMYK JPEG's profile does not describe the RGB pixels of its default decode
    (nvImageCodec converts CMYK to RGB without it): such images are taken as they are;
    ``gpuimg.read(..., mode="cmyk")`` keeps the ink channels for the profile.

    Example:
        >>> rgb_profile(None) is None
        True
    """
    icc = getattr(meta, "icc", None)
    return icc if icc is not None and icc[16:20] == b"RGB " else None


class _Job(NamedTuple):
    kind: str  # "copy", "rgb" or "cmyk"
    profile: bytes | None  # the profile the pixels are in (None for "cmyk": Pillow's naive conversion)


def _jobs_of(src: Source, profile: Any) -> list[_Job]:
    """What each image of ``src`` needs: ``profile`` given (one for all, or a list; None
    in it: left as it is), else each image's own (``img.metadata.icc``, what gpuimg.read
    found). An image is CMYK when its metadata says so (``mode="cmyk"`` decodes) or the
    profile given for it is a CMYK profile; it then takes its CMYK profile, or none."""
    images = list(src) if not hasattr(src, "array") else [src]
    if profile is None:
        given: list[bytes | None] = [None] * len(images)
    elif isinstance(profile, bytes | bytearray | memoryview):
        given = [bytes(profile)] * len(images)
    else:
        given = [None if p is None else bytes(p) for p in profile]
        if len(given) != len(images):
            raise ArgumentError(f"profile= has {len(given)} entries for {len(images)} images")
    jobs = []
    for im, p in zip(images, given):
        meta = getattr(im, "metadata", None)
        if getattr(meta, "cmyk", False) or (p is not None and p[16:20] == b"CMYK"):
            if im.channels != 4 or im.dtype != np.uint8:
                raise ArgumentError(f"a CMYK image must be 4 uint8 ink channels, got {im.channels} channels of {im.dtype.name}")
            own = getattr(meta, "icc", None)
            jobs.append(_Job("cmyk", p if p is not None else (own if own is not None and own[16:20] == b"CMYK" else None)))
        elif profile is None:
            own = rgb_profile(meta)
            jobs.append(_Job("copy", None) if own is None else _Job("rgb", own))
        else:
            jobs.append(_Job("copy", None) if p is None else _Job("rgb", p))
    return jobs


@register_op
def convert_colorspace(
    src: Source,
    to: str = "srgb",
    profile: Any = None,
    *,
    intent: str = "relative",
    embed: str = "srgb",
    out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Pixels from their ICC profile's colours to sRGB: a LittleCMS transform made into a
    table once per profile (:class:`ProfileTable` for RGB, :class:`CmykTable` for CMYK),
    applied with tetrahedral interpolation, ONE launch per Image or ImageBatch (RGB, RGBA
    and CMYK images and different profiles mixed); RGB within 1 level of LittleCMS
    (``ImageCms.profileToProfile``, same intent) for every 8-bit colour, CMYK within 2
    (but for a few colours in a million, see :class:`CmykTable`).

    ``profile``: ICC bytes (one for every image, or a list with one per image; None in
    the list: left as it is); default: each image's own (``img.metadata.icc``; an RGB
    image without one, or with a CMYK JPEG's profile (its default decode is RGB made
    without it), is taken to be sRGB already). CMYK images (4 uint8 ink channels, 255 =
    full ink: ``gpuimg.read(path, mode="cmyk")``, whose metadata says ``cmyk``; or any
    4-channel image given a CMYK profile) always come out as 3-channel sRGB (None for one
    in the list: its own profile); one without a profile as Pillow's ``convert("RGB")``
    makes it (see :func:`cmyk_lut`). ``to``:
    "srgb" (the one target). ``intent``: "relative" (colorimetric, default) or
    "perceptual". ``embed``: the profile the results carry in their ``metadata`` (kept by
    :func:`gpuimg.write` and the pipeline): "srgb" (the sRGB profile) or "none". RGB or
    RGBA, uint8 or uint16 (alpha kept; uint16 is interpolated between LittleCMS's 8-bit
    values, so it is as exact as 8-bit, not finer). A CMYK image cannot convert in place
    (``out=src``: 4 channels in, 3 out).
    Raises :class:`ColorEngineMissingError` naming the ``gpuimg[color]`` extra when
    Pillow's ImageCms is missing.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.array([[[255, 0, 0]]], np.uint8))
        >>> convert_colorspace(img, profile=srgb_profile()).numpy()[0, 0].tolist()
        [255, 0, 0]
        >>> from gpuimg.codec.metadata import Metadata
        >>> ink = gpuimg.Image.from_array(np.array([[[0, 255, 255, 0]]], np.uint8))  # magenta + yellow
        >>> ink.metadata = Metadata(cmyk=True)  # no profile: Pillow's conversion
        >>> convert_colorspace(ink).numpy()[0, 0].tolist()
        [255, 0, 0]
    """
    check_choice(to, "to", ("srgb",), "a target colour space")
    check_choice(embed, "embed", ("srgb", "none"), "a profile to embed")
    check_choice(intent, "intent", INTENTS, "a rendering intent")
    check_src(src, channels=(3, 4), dtypes=("uint8", "uint16"))
    jobs = _jobs_of(src, profile)
    keys: dict[tuple, int] = {}  # (kind, profile digest) -> its table's place in its upload
    tables: list[ProfileTable] = []
    cmyk_tables: list[CmykTable] = []
    which = []  # per image: an RGB table, -1 (copied) or -2 - a CMYK table
    for job in jobs:
        if job.kind == "copy":
            which.append(-1)
            continue
        digest = b"naive" if job.profile is None else hashlib.sha256(job.profile).digest()
        key = (job.kind, digest)
        if key not in keys:
            if job.kind == "rgb":
                keys[key] = len(tables)
                tables.append(_lut(digest, job.profile, intent))  # type: ignore[arg-type]
            else:
                keys[key] = len(cmyk_tables)
                cmyk_tables.append(cmyk_lut(job.profile, intent))
        which.append(keys[key] if job.kind == "rgb" else -2 - keys[key])
    shapes = None
    if cmyk_tables:
        if out is not None and same_memory(src, out):
            raise ArgumentError("out=src cannot take CMYK images (4 ink channels in, 3 sRGB channels out); pass out=None")
        images = list(src) if not hasattr(src, "array") else [src]
        hwc = [(im.height, im.width, 3 if job.kind == "cmyk" else im.channels) for im, job in zip(images, jobs)]
        shapes = hwc if not hasattr(src, "array") else hwc[0]
    result = prepare_out(src, out, shapes)
    if src.device == "cpu":
        for (s, o, _), t in zip(pairs(src, result), which):
            if t >= 0:
                o.array[...] = apply_lut_numpy(s.array, tables[t])
            elif t == -1:
                o.array[...] = s.array
            else:
                o.array[...] = apply_cmyk_numpy(s.array, cmyk_tables[-2 - t])
    else:
        _launch(src, result, tables, cmyk_tables, (tuple(keys), intent), which, stream)
    _carry_metadata(src, result, embed)
    return result


_blobs: OrderedDict[tuple, Blob] = OrderedDict()


def _tables_blob(tables: list[ProfileTable], cmyk_tables: list[CmykTable], key: tuple) -> Blob:
    """The batch's tables in one upload: coarse tables stacked, cell indices shifted to
    the concatenated blocks, CMYK grids stacked. Kept per set of profiles, so a folder of
    one camera's photos packs and uploads once (upload_blob skips the copy for the same
    Blob)."""
    blob = _blobs.get(key)
    if blob is None:
        shift = np.cumsum([0] + [len(t.blocks) for t in tables[:-1]])
        cells = np.stack([np.where(t.cells >= 0, t.cells + s, -1) for t, s in zip(tables, shift)]).astype(np.int32)
        blocks = np.concatenate([t.blocks for t in tables]) if any(len(t.blocks) for t in tables) else np.zeros(1, np.uint8)
        grids = np.stack([t.grid for t in cmyk_tables]) if cmyk_tables else np.zeros(1, np.uint8)
        blob = _blobs[key] = pack(np.stack([t.coarse for t in tables]), cells, blocks, grids)
        while len(_blobs) > 4:
            _blobs.popitem(last=False)
    return blob


convert_colorspace.sets_metadata = True  # type: ignore[attr-defined]  # a pipeline step sets its own
# A pipeline running this step decodes CMYK JPEGs to their inks and converts them with this intent.
convert_colorspace.colour_intent = lambda kwargs: kwargs.get("intent", "relative")  # type: ignore[attr-defined]


def _launch(src: Source, out: Source, tables: list[ProfileTable], cmyk_tables: list[CmykTable], key: tuple,
            which: list[int], stream: Any) -> None:
    if not tables:  # no RGB image to convert: a table the kernel is given but never reads
        tables, key = [profile_lut(srgb_profile())], (key, "srgb-only")
    coarse, cells, blocks, grids = upload_blob("lut3d_tables", _tables_blob(tables, cmyk_tables, key), "cuda", stream)
    dev_which = upload("lut3d_which", np.asarray(which, np.int32), "cuda", stream)
    sview, dview = batch_view(src, stream), batch_view(out, stream)
    # No multiply-add contraction: the kernel rounds as its NumPy twin does.
    kernel = compiled(_SOURCE, f"lut3d_{dtype_suffix(src.dtype)}", ("--std=c++17", "--fmad=false"))
    args = (np.uint64(sview.base), sview.table, np.uint64(dview.base), dview.table, coarse, cells, blocks, dev_which, grids)
    launch(kernel, grid_for(sview), (32, 8, 1), args, stream)


def _carry_metadata(src: Source, out: Source, embed: str) -> None:
    """The results carry their sources' metadata with the profile they now are in (and
    CMYK images are RGB now)."""
    icc = srgb_profile() if embed == "srgb" else None
    srcs = [src] if hasattr(src, "array") else list(src)
    outs = [out] if hasattr(out, "array") else list(out)
    for s, o in zip(srcs, outs):
        meta = getattr(s, "metadata", None)
        if meta is None:
            from ...meta import Metadata

            meta = Metadata()
        o.metadata = replace(meta, icc=icc, cmyk=False)
