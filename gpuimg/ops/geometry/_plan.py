"""Resample plans: per image a source box, an output size and a destination rectangle;
per axis the layout of its weight tables (see resample_weights for the formulas)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable, NamedTuple

import numpy as np

from ...errors import check_choice
from .._engine.args import Source
from .._engine.cache import cache
from .resample_weights import axis_weights

__all__ = ["METHODS", "ALPHA_MODES", "Spec", "Plan", "check_method", "check_alpha", "premultiplies", "make_plan",
           "cached_plan"]

METHODS = ("nearest", "bilinear", "bicubic", "area", "lanczos")
# How 4-channel images resample: "premultiply" (Pillow's rule: colour times alpha before,
# divided by the resampled alpha after, so transparent pixels' colour does not bleed) or
# "straight" (every channel on its own, as cv2.resize).
ALPHA_MODES = ("premultiply", "straight")


class Spec(NamedTuple):
    """One image of a plan: source box (y, x, h, w; may be fractional), output size, and
    the rectangle of the output the box lands in (the rest is background)."""

    box: tuple[float, float, float, float]
    out_hw: tuple[int, int]
    rect: tuple[int, int, int, int]


def check_method(method: Any) -> str:
    check_choice(method, "method", METHODS, "a resize method")
    return method


def check_alpha(alpha: Any) -> str:
    check_choice(alpha, "alpha", ALPHA_MODES, "an alpha mode")
    return alpha


def premultiplies(alpha: str, method: str, channels: int) -> bool:
    """Whether a resample premultiplies: 4 channels, alpha="premultiply", and a filter
    (Pillow's rule: NEAREST copies pixels, so there is nothing to premultiply)."""
    return alpha == "premultiply" and channels == 4 and method != "nearest"

# ============================================================================ plan
# Kinds of axis, one code each (the GPU weights kernel switches on it):
# Pillow taps 0 bilinear, 1 bicubic, 2 lanczos (+ _WIDEN when antialiased);
# OpenCV taps 8 nearest, 9 area (overlap), 10 area (linear, a side grows), 11 bilinear, 12 bicubic.
_PILLOW_KIND = {"bilinear": 0, "bicubic": 1, "lanczos": 2}
_PILLOW_SUPPORT = (1.0, 2.0, 3.0)
_WIDEN = 4
_CV_KIND = {"nearest": 8, "bilinear": 11, "bicubic": 12}
_CV_TAPS = {8: 1, 10: 2, 11: 2, 12: 4}
# starts, weights, in_len, out_len, start, length, kind, taps after folding (n)
AXIS_COLUMNS = 8


def axis_kind(method: str, antialias: bool, area_overlap: bool) -> int:
    """The axis code of a method (which formula family, see the table above)."""
    if method in ("bilinear", "bicubic") and antialias or method == "lanczos":
        return _PILLOW_KIND[method] + (_WIDEN if antialias else 0)
    if method == "area":
        return 9 if area_overlap else 10
    return _CV_KIND[method]


def axis_taps(kind: int, in_len: int, out_len: int, length: float) -> int:
    """Weights per output coordinate after folding (what :func:`axis_weights` returns as
    ``w.shape[1]``), from the window size alone: the host lays out the weight tables
    without computing a weight."""
    scale = length / out_len
    if kind < 8:
        filterscale = max(scale, 1.0) if kind & _WIDEN else 1.0
        taps = int(math.ceil(_PILLOW_SUPPORT[kind & 3] * filterscale)) * 2 + 1
    elif kind == 9:
        taps = int(math.ceil(scale)) + 1
    else:
        taps = _CV_TAPS[kind]
    return min(taps, in_len)


class Plan:
    """Parameters of one resample call: per image a row of ``meta`` (int32, see
    META_COLUMNS), per axis a row of ``axes`` (float64, see AXIS_COLUMNS).

    The weights themselves are computed where they are used: on the GPU by one small
    kernel into the workspace (a batch of never-seen sizes costs one launch, not
    milliseconds of host NumPy per image), on the CPU by :func:`axis_weights` on first
    use of ``starts``/``weights`` (the reference the GPU kernel is tested against).
    """

    __slots__ = ("meta", "axes", "n_starts", "n_weights", "method", "antialias", "_host")

    def __init__(self, meta: np.ndarray, axes: np.ndarray, method: str, antialias: bool):
        self.meta, self.axes, self.method, self.antialias = meta, axes, method, antialias
        self.n_starts = int(axes[:, 3].sum())
        self.n_weights = int((axes[:, 3] * axes[:, 7]).sum())
        self._host: tuple[np.ndarray, np.ndarray] | None = None

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        if self._host is None:
            starts, weights = [], []
            for row in self.axes:
                s, w = axis_weights(self.method, self.antialias, int(row[2]), int(row[3]), float(row[4]),
                                    float(row[5]), int(row[6]) != 10)
                starts.append(s)
                weights.append(w.reshape(-1).astype(np.float32))
            self._host = (np.concatenate(starts), np.concatenate(weights))
        return self._host

    @property
    def starts(self) -> np.ndarray:
        """First source index of every output coordinate of every axis (int32, host)."""
        return self._tables()[0]

    @property
    def weights(self) -> np.ndarray:
        """The weights, ``n`` per output coordinate of every axis (float32, host)."""
        return self._tables()[1]


# xs_off, xw_off, nx, ys_off, yw_off, ny, rounding (0 none, 1 rows first, 2 columns first),
# premultiplied alpha (0 straight, 1 premultiply 4 channels before and divide after), y0, x0, rh, rw
META_COLUMNS = 12


def make_plan(method: str, antialias: bool, round_rows: bool, shapes: Sequence[tuple[int, int]],
              specs: Sequence[Spec], premultiply: bool = False) -> Plan:
    """Lay out the weight tables of every image of a call (a few scalar steps per image)."""
    meta = np.zeros((len(specs), META_COLUMNS), np.int32)
    axes = np.zeros((2 * len(specs), AXIS_COLUMNS), np.float64)
    n_starts = n_weights = 0
    for i, ((in_h, in_w), spec) in enumerate(zip(shapes, specs)):
        by, bx, bh, bw = spec.box
        y0, x0, rh, rw = spec.rect
        overlap = rh <= bh and rw <= bw  # OpenCV: area averaging only when no side grows
        kind = axis_kind(method, antialias, overlap)
        row = []
        for a, (in_len, out_len, start, length) in enumerate(((in_w, rw, bx, bw), (in_h, rh, by, bh))):
            n = axis_taps(kind, in_len, out_len, float(length))
            axes[2 * i + a] = (n_starts, n_weights, in_len, out_len, start, length, kind, n)
            row += [n_starts, n_weights, n]
            n_starts += out_len
            n_weights += out_len * n
        # Pillow runs the vertical pass first when width grows and height shrinks
        order = 0 if not round_rows else (2 if rw > bw and rh < bh else 1)
        meta[i] = (*row, order, int(premultiply), y0, x0, rh, rw)
    return Plan(meta, axes, method, bool(antialias))


MAX_PLANS = 64  # distinct (shapes, sizes, method) combinations kept; a pipeline repeats a few
_plans = cache("resample:plans", max_items=MAX_PLANS)


def cached_plan(key: Any, src: Source, method: str, antialias: bool, specs_fn: Callable[[], Sequence[Spec]],
                premultiply: bool = False) -> Plan:
    """The plan for ``key`` (which must determine the specs), built on first use only.

    Steady-state calls (same shapes and sizes as before) do no per-image Python work: the
    key is a few tuples, and the device copies of a cached plan are re-used by ``upload``.
    """
    full_key = (key, method, bool(antialias), src.dtype.kind, bool(premultiply))

    def make() -> Plan:
        shapes = [(s[0], s[1]) for s in (src.shapes if hasattr(src, "images") else [src.shape])]
        # Pillow's formulas (antialiased, and lanczos either way) round the first pass to
        # the pixel type, as Pillow's 8-bit intermediate image does
        pillow = axis_kind(method, antialias, True) < 8
        round_rows = pillow and src.dtype.kind != "f"
        return make_plan(method, bool(antialias), bool(round_rows), shapes, specs_fn(), bool(premultiply))

    return _plans.get_or_make(full_key, make)
