"""Colour management: an embedded ICC profile's transform to sRGB, applied as a 3-D LUT.

The transform is built ONCE per profile on the host by LittleCMS (through Pillow's
``ImageCms``: the optional extra ``gpuimg[color]``), sampled on a 52^3 grid (every 5th
level: grid points are exact 8-bit inputs, so the table holds exactly what LittleCMS
makes of them), cached by the profile's hash, and applied to every pixel with
tetrahedral interpolation in ONE kernel launch per Image or ImageBatch (one table per
image of a batch, all in one upload). The NumPy twin below is the CPU path and the
oracle of the kernel.

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

from ...errors import GpuImgError, check_choice
from ..registry import register_op
from .._engine.args import Source, check_src
from .._engine.batch import batch_view, grid_for, launch, pairs, prepare_out
from .._engine.kernels import PRELUDE, compiled, dtype_suffix
from .._engine.params import Blob, pack, upload, upload_blob

__all__ = ["convert_colorspace", "srgb_profile", "rgb_profile", "profile_lut", "ProfileTable", "apply_lut_numpy", "GRID", "INTENTS"]

GRID = 52  # levels per axis of the coarse table: 255 / 51 = 5, so every grid point is an exact uint8 input
STEP = 5  # levels between grid points
INTENTS = ("relative", "perceptual")
_CACHE_SIZE = 32  # profiles whose tables are kept (a folder of phone photos uses a handful)


class ColorEngineMissingError(GpuImgError, ImportError):
    """Pillow's ImageCms (LittleCMS) is needed to build a profile transform and is missing."""


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


_luts: OrderedDict[tuple, ProfileTable] = OrderedDict()
_lut_lock = threading.Lock()


def profile_lut(profile: bytes, intent: str = "relative") -> ProfileTable:
    """The :class:`ProfileTable` of ``profile``'s RGB -> sRGB transform (built by
    LittleCMS once, then cached by the profile's hash). ValueError naming ``profile=``
    for bytes LittleCMS cannot read or a profile that is not RGB.

    Example:
        >>> table = profile_lut(srgb_profile())
        >>> table.coarse.shape, table.coarse[51, 0, 0].tolist()
        ((52, 52, 52, 3), [255, 0, 0])
    """
    check_choice(intent, "intent", INTENTS, "a rendering intent")
    return _lut(hashlib.sha256(profile).digest(), profile, intent)


def _lut(digest: bytes, profile: bytes, intent: str) -> ProfileTable:
    key = (digest, intent)
    with _lut_lock:
        lut = _luts.get(key)
        if lut is not None:
            _luts.move_to_end(key)
            return lut
    lut = _build_lut(profile, intent)
    with _lut_lock:
        _luts[key] = lut
        while len(_luts) > _CACHE_SIZE:
            _luts.popitem(last=False)
    return lut


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
    transform = cms.buildTransform(src, cms.ImageCmsProfile(cms.createProfile("sRGB")), mode, "RGB", renderingIntent=flag)
    # LittleCMS runs without the GIL: strips of rows on a few threads (a transform is
    # read-only once built).
    strips = np.array_split(pixels, max(1, min(8, os.cpu_count() or 1, len(pixels))))
    with ThreadPoolExecutor(len(strips)) as pool:
        done = pool.map(lambda part: np.asarray(cms.applyTransform(PILImage.fromarray(part, mode), transform), np.uint8), strips)
        return np.concatenate(list(done))


def _open_profile(profile: bytes, space: str) -> Any:
    """``profile`` opened by LittleCMS; ValueError naming ``profile=`` for bytes it cannot
    read or a profile of another colour space than ``space`` ("RGB", "CMYK")."""
    import io

    cms = _imagecms()
    try:
        opened = cms.ImageCmsProfile(io.BytesIO(profile))
    except (OSError, cms.PyCMSError) as exc:
        raise ValueError(f"profile= is not an ICC profile LittleCMS can read ({exc})") from None
    found = profile[16:20].decode("latin-1").strip()
    if found != space:
        raise ValueError(f"profile= is a {found} profile for {space} pixels; convert_colorspace takes RGB profiles for "
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
        c0, c1 = flat[base + c], flat[base + o1 + c]
        c2, c3 = flat[base + o2 + c], flat[base + o3 + c]
        out[..., c] = c0 + w0 * (c1 - c0) + w1 * (c2 - c1) + w2 * (c3 - c2)
    return out


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
template <typename T>
__device__ __forceinline__ void lut3d(const u8* src, const i64* stab, u8* dst, const i64* dtab,
                                      const u8* coarse, const int* cells, const u8* blocks, const int* which) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    const int b = blockIdx.z;
    Slot s = slot(src, stab, b), d = slot(dst, dtab, b);
    if (x >= s.width || y >= s.height) return;
    const T* p = (const T*)(s.p + y * s.pitch) + x * s.channels;
    T* q = (T*)(d.p + y * d.pitch) + x * d.channels;
    const int k = which[b];
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
                                    const u8* coarse, const int* cells, const u8* blocks, const int* which) {
    lut3d<u8>(src, stab, dst, dtab, coarse, cells, blocks, which);
}
extern "C" __global__ void lut3d_u16(const u8* src, const i64* stab, u8* dst, const i64* dtab,
                                     const u8* coarse, const int* cells, const u8* blocks, const int* which) {
    lut3d<u16>(src, stab, dst, dtab, coarse, cells, blocks, which);
}
"""


def rgb_profile(meta: Any) -> bytes | None:
    """The ICC profile in ``meta`` (an image's metadata) when it describes RGB pixels, else
    None. A CMYK JPEG's profile does not describe the RGB pixels gpuimg decodes from it
    (nvImageCodec converts CMYK to RGB without it): such images are taken as they are.

    Example:
        >>> rgb_profile(None) is None
        True
    """
    icc = getattr(meta, "icc", None)
    return icc if icc is not None and icc[16:20] == b"RGB " else None


def _profiles_of(src: Source, profile: Any) -> list[bytes | None]:
    """One profile (or None: no conversion) per image: ``profile`` given (one for all, or
    a list), else each image's own (``img.metadata.icc``, what gpuimg.read found)."""
    images = list(src) if not hasattr(src, "array") else [src]
    if profile is None:
        return [rgb_profile(getattr(im, "metadata", None)) for im in images]
    if isinstance(profile, bytes | bytearray | memoryview):
        return [bytes(profile)] * len(images)
    profiles = list(profile)
    if len(profiles) != len(images):
        raise ValueError(f"profile= has {len(profiles)} entries for {len(images)} images")
    return [None if p is None else bytes(p) for p in profiles]


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
    3-D table once per profile (:class:`ProfileTable`), applied with tetrahedral
    interpolation, ONE launch per Image or ImageBatch; within 1 level of LittleCMS
    (``ImageCms.profileToProfile``, same intent) for every 8-bit colour.

    ``profile``: ICC bytes (one for every image, or a list with one per image; None in
    the list: left as it is); default: each image's own (``img.metadata.icc``; an image
    without one, or with a CMYK JPEG's profile (decoded to RGB without it), is taken to be
    sRGB already). ``to``: "srgb" (the one target).
    ``intent``: "relative" (colorimetric, default) or "perceptual". ``embed``: the
    profile the results carry in their ``metadata`` (kept by :func:`gpuimg.write` and the
    pipeline): "srgb" (the sRGB profile) or "none". RGB or RGBA, uint8 or uint16 (alpha
    kept; uint16 is interpolated between LittleCMS's 8-bit values, so it is as exact as
    8-bit, not finer).
    Raises :class:`ColorEngineMissingError` naming the ``gpuimg[color]`` extra when
    Pillow's ImageCms is missing.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.array([[[255, 0, 0]]], np.uint8))
        >>> convert_colorspace(img, profile=srgb_profile()).numpy()[0, 0].tolist()
        [255, 0, 0]
    """
    check_choice(to, "to", ("srgb",), "a target colour space")
    check_choice(embed, "embed", ("srgb", "none"), "a profile to embed")
    check_choice(intent, "intent", INTENTS, "a rendering intent")
    check_src(src, channels=(3, 4), dtypes=("uint8", "uint16"))
    profiles = _profiles_of(src, profile)
    keys: dict[bytes, int] = {}  # profile digest -> its table's place in the upload
    tables: list[ProfileTable] = []
    which = []
    for p in profiles:
        if p is None:
            which.append(-1)
            continue
        digest = hashlib.sha256(p).digest()
        if digest not in keys:
            keys[digest] = len(tables)
            tables.append(_lut(digest, p, intent))
        which.append(keys[digest])
    result = prepare_out(src, out)
    if src.device == "cpu":
        for (s, o, k), t in zip(pairs(src, result), which):
            o.array[...] = apply_lut_numpy(s.array, tables[t]) if t >= 0 else s.array
    else:
        _launch(src, result, tables, (tuple(keys), intent), which, stream)
    _carry_metadata(src, result, embed)
    return result


_blobs: OrderedDict[tuple, Blob] = OrderedDict()


def _tables_blob(tables: list[ProfileTable], key: tuple) -> Blob:
    """The batch's tables in one upload: coarse tables stacked, cell indices shifted to
    the concatenated blocks. Kept per set of profiles, so a folder of one camera's photos
    packs and uploads once (upload_blob skips the copy for the same Blob)."""
    blob = _blobs.get(key)
    if blob is None:
        shift = np.cumsum([0] + [len(t.blocks) for t in tables[:-1]])
        cells = np.stack([np.where(t.cells >= 0, t.cells + s, -1) for t, s in zip(tables, shift)]).astype(np.int32)
        blocks = np.concatenate([t.blocks for t in tables]) if any(len(t.blocks) for t in tables) else np.zeros(1, np.uint8)
        blob = _blobs[key] = pack(np.stack([t.coarse for t in tables]), cells, blocks)
        while len(_blobs) > 4:
            _blobs.popitem(last=False)
    return blob


convert_colorspace.sets_metadata = True  # type: ignore[attr-defined]  # a pipeline step sets its own


def _launch(src: Source, out: Source, tables: list[ProfileTable], key: tuple, which: list[int], stream: Any) -> None:
    if not tables:  # nothing to convert: every image is copied
        tables, key = [profile_lut(srgb_profile())], ("srgb-only",)
    coarse, cells, blocks = upload_blob("lut3d_tables", _tables_blob(tables, key), "cuda", stream)
    dev_which = upload("lut3d_which", np.asarray(which, np.int32), "cuda", stream)
    sview, dview = batch_view(src, stream), batch_view(out, stream)
    # No multiply-add contraction: the kernel rounds as its NumPy twin does.
    kernel = compiled(_SOURCE, f"lut3d_{dtype_suffix(src.dtype)}", ("--std=c++17", "--fmad=false"))
    args = (np.uint64(sview.base), sview.table, np.uint64(dview.base), dview.table, coarse, cells, blocks, dev_which)
    launch(kernel, grid_for(sview), (32, 8, 1), args, stream)


def _carry_metadata(src: Source, out: Source, embed: str) -> None:
    """The results carry their sources' metadata with the profile they now are in."""
    icc = srgb_profile() if embed == "srgb" else None
    srcs = [src] if hasattr(src, "array") else list(src)
    outs = [out] if hasattr(out, "array") else list(out)
    for s, o in zip(srcs, outs):
        meta = getattr(s, "metadata", None)
        if meta is None:
            from ...codec.metadata import Metadata

            meta = Metadata()
        o.metadata = replace(meta, icc=icc)

