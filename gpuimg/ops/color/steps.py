"""The colour steps: one :class:`~gpuimg.ops.color.fusion.PointwiseStep` subclass per pointwise op
(CUDA snippet and NumPy twin side by side), and the modes and gray weights they use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ArgumentError
from ._base import BINS, PointwiseStep, gray_tv_numpy


COLOR_MODES = ("gray", "rgb", "bgr", "rgba")  # the pixel layouts ``convert`` and ``to_gray`` take
MODES = COLOR_MODES  # the former name, kept for imports
_MODE_CHANNELS = {"gray": 1, "rgb": 3, "bgr": 3, "rgba": 4}
# 16-bit fixed-point luminance weights (sum 65536): Pillow's BT.601 and the BT.709 ones.
_GRAY_WEIGHTS = {"bt601": (19595, 38470, 7471), "bt709": (13933, 46871, 4732)}


def _colour_channels(channels: int) -> int:
    """Channels a colour op touches: alpha (the 4th) is left as it is."""
    return 1 if channels == 1 else 3


# ----------------------------------------------------------------------------- the steps


@dataclass(frozen=True)
class _Brightness(PointwiseStep):
    def cuda(self, c: int, p: str, sh: str) -> str:
        return f"for (int k = 0; k < {_colour_channels(c)}; ++k) v[k] = q_trunc(v[k] * {p}[0]);"

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        v = v.copy()
        n = _colour_channels(v.shape[2])
        v[..., :n] = np.trunc(np.clip(v[..., :n] * p[0], 0, 255))
        return v


@dataclass(frozen=True)
class _Contrast(PointwiseStep):
    """torchvision: blend with the mean of the floored gray image."""

    def shared_floats(self, c: int) -> int:
        return 1

    def prologue(self, c: int, p: str, hist: str, sh: str) -> str:
        return f"if (threadIdx.x == 0) {sh}[0] = (float)((double)*(const unsigned long long*){hist} / (double)npix);"

    def cuda(self, c: int, p: str, sh: str) -> str:
        return (
            f"const float f = {p}[0], m = {sh}[0] * (1.f - f);\n"
            f"for (int k = 0; k < {_colour_channels(c)}; ++k) v[k] = q_trunc(v[k] * f + m);"
        )

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        mean = np.float32(int(hist[0][0]) / (v.shape[0] * v.shape[1]))
        f = np.float32(p[0])
        v = v.copy()
        n = _colour_channels(v.shape[2])
        v[..., :n] = np.trunc(np.clip(v[..., :n] * f + mean * (np.float32(1) - f), 0, 255))
        return v


@dataclass(frozen=True)
class _Saturation(PointwiseStep):
    def cuda(self, c: int, p: str, sh: str) -> str:
        if c == 1:
            return ""  # torchvision (like Pillow) leaves gray images alone
        return (
            f"const float f = {p}[0], g = tv_gray(v[0], v[1], v[2]) * (1.f - f);\n"
            "for (int k = 0; k < 3; ++k) v[k] = q_trunc(v[k] * f + g);"
        )

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        if v.shape[2] == 1:
            return v
        f = np.float32(p[0])
        g = gray_tv_numpy(v) * (np.float32(1) - f)
        v = v.copy()
        v[..., :3] = np.trunc(np.clip(v[..., :3] * f + g[..., None], 0, 255))
        return v


_HUE_CUDA = r"""
const float r = v[0] / 255.f, g = v[1] / 255.f, b = v[2] / 255.f;
const float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
const bool eqc = maxc == minc;
const float cr = maxc - minc;
const float s = cr / (eqc ? 1.f : maxc);
const float crd = eqc ? 1.f : cr;
const float rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd;
const float hr = (maxc == r) ? (bc - gc) : 0.f;
const float hg = (maxc == g && maxc != r) ? ((rc + 2.f) - bc) : 0.f;
const float hb = (maxc != g && maxc != r) ? ((gc + 4.f) - rc) : 0.f;
float h = fmodf((hr + hg + hb) * (1.f / 6.f) + 1.f, 1.f);
h = h + PARAM;
h = h - flr(h);
const float h6 = h * 6.f, fi = flr(h6), fr = h6 - fi;
const int i = ((int)fi) % 6;
const float sxf = s * fr, oms = 1.f - s;
const float q = fminf(fmaxf((1.f - sxf) * maxc, 0.f), 1.f);
const float t = fminf(fmaxf((sxf + oms) * maxc, 0.f), 1.f);
const float pp = fminf(fmaxf(oms * maxc, 0.f), 1.f);
float ro, go, bo;
switch (i) {
  case 0: ro = maxc; go = t; bo = pp; break;
  case 1: ro = q; go = maxc; bo = pp; break;
  case 2: ro = pp; go = maxc; bo = t; break;
  case 3: ro = pp; go = q; bo = maxc; break;
  case 4: ro = t; go = pp; bo = maxc; break;
  default: ro = maxc; go = pp; bo = q; break;
}
v[0] = q_trunc(ro * 255.999f); v[1] = q_trunc(go * 255.999f); v[2] = q_trunc(bo * 255.999f);
"""


@dataclass(frozen=True)
class _Hue(PointwiseStep):
    """torchvision: RGB -> HSV (Pillow's formulas), rotate H, back, scale by 255.999 and truncate."""

    def cuda(self, c: int, p: str, sh: str) -> str:
        return "" if c == 1 else _HUE_CUDA.replace("PARAM", f"{p}[0]")

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        if v.shape[2] == 1:
            return v
        f = np.float32
        r, g, b = (v[..., k] / f(255) for k in range(3))
        maxc, minc = np.maximum(r, np.maximum(g, b)), np.minimum(r, np.minimum(g, b))
        eqc = maxc == minc
        cr = maxc - minc
        s = cr / np.where(eqc, f(1), maxc)
        crd = np.where(eqc, f(1), cr)
        rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
        hr = np.where(maxc == r, bc - gc, f(0))
        hg = np.where((maxc == g) & (maxc != r), (rc + f(2)) - bc, f(0))
        hb = np.where((maxc != g) & (maxc != r), (gc + f(4)) - rc, f(0))
        h = np.fmod((hr + hg + hb) * f(1 / 6) + f(1), f(1))
        h = h + f(p[0])
        h = h - np.floor(h)
        h6 = h * f(6)
        fi = np.floor(h6)
        fr = h6 - fi
        i = fi.astype(np.int64) % 6
        sxf, oms = s * fr, f(1) - s
        q = np.clip((f(1) - sxf) * maxc, 0, 1)
        t = np.clip((sxf + oms) * maxc, 0, 1)
        pp = np.clip(oms * maxc, 0, 1)
        vpqt = np.stack([maxc, pp, q, t])
        select = np.array([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]])
        out = v.copy()
        for k in range(3):
            chosen = np.take_along_axis(vpqt, select[k][i][None], axis=0)[0]
            out[..., k] = np.trunc(chosen * f(255.999))
        return out


@dataclass(frozen=True)
class _Gamma(PointwiseStep):
    """A 256-entry table per block (powf is too slow per pixel: 9x a copy at 4K)."""

    def shared_floats(self, c: int) -> int:
        return BINS

    def prologue(self, c: int, p: str, hist: str, sh: str) -> str:
        return (
            f"for (int k = threadIdx.x; k < {BINS}; k += blockDim.x) {{\n"
            f"  const float x = fminf(fmaxf(powf(b2f(k) / 255.f, {p}[0]) * {p}[1], 0.f), 1.f);\n"
            f"  {sh}[k] = q_trunc(x * 255.999f);\n}}"
        )

    def cuda(self, c: int, p: str, sh: str) -> str:
        return f"for (int k = 0; k < {_colour_channels(c)}; ++k) v[k] = {sh}[f2b(v[k])];"

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        v = v.copy()
        n = _colour_channels(v.shape[2])
        x = np.clip(np.power(v[..., :n] / np.float32(255), np.float32(p[0])) * np.float32(p[1]), 0, 1)
        v[..., :n] = np.trunc(x * np.float32(255.999))
        return v


@dataclass(frozen=True)
class _Invert(PointwiseStep):
    def cuda(self, c: int, p: str, sh: str) -> str:
        return f"for (int k = 0; k < {_colour_channels(c)}; ++k) v[k] = 255.f - v[k];"

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        v = v.copy()
        n = _colour_channels(v.shape[2])
        v[..., :n] = 255 - v[..., :n]
        return v


@dataclass(frozen=True)
class _Opacity(PointwiseStep):
    def check(self, c: int) -> None:
        if c != 4:
            raise ArgumentError(f"src has {c} channels; opacity needs RGBA (4 channels): convert(src, 'rgba') first")

    def cuda(self, c: int, p: str, sh: str) -> str:
        return f"v[3] = q_round(v[3] * {p}[0]);"

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        v = v.copy()
        v[..., 3] = np.rint(np.clip(v[..., 3] * np.float32(p[0]), 0, 255))
        return v


@dataclass(frozen=True)
class _Threshold(PointwiseStep):
    """cv2.threshold THRESH_BINARY on uint8: ``v > floor(value) ? maxval : 0``."""

    def cuda(self, c: int, p: str, sh: str) -> str:
        return f"for (int k = 0; k < {_colour_channels(c)}; ++k) v[k] = v[k] > {p}[0] ? {p}[1] : 0.f;"

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        v = v.copy()
        n = _colour_channels(v.shape[2])
        v[..., :n] = np.where(v[..., :n] > p[0], p[1], 0)
        return v


# OpenCV's getThreshVal_Otsu_8u, in double, including its skip of near-empty classes.
_OTSU_CUDA = r"""
if (threadIdx.x == 0) {
  double mu = 0.0, scale = 1.0 / (double)npix;
  for (int k = 0; k < 256; ++k) mu += k * (double)HISTP[k];
  mu *= scale;
  double mu1 = 0.0, q1 = 0.0, max_sigma = 0.0; int max_val = 0;
  for (int k = 0; k < 256; ++k) {
    const double p_i = HISTP[k] * scale;
    mu1 *= q1; q1 += p_i;
    const double q2 = 1.0 - q1;
    if (fmin(q1, q2) < 1.1920928955078125e-07 || fmax(q1, q2) > 1.0 - 1.1920928955078125e-07) continue;
    mu1 = (mu1 + k * p_i) / q1;
    const double mu2 = (mu - q1 * mu1) / q2;
    const double sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
    if (sigma > max_sigma) { max_sigma = sigma; max_val = k; }
  }
  SHP[0] = (float)max_val;
}
"""


def otsu_numpy(hist: np.ndarray) -> int:
    """OpenCV's Otsu threshold of a 256-bin histogram (the same loop as the kernel)."""
    n = hist.sum()
    scale = 1.0 / n
    mu = float((np.arange(BINS) * hist).sum()) * scale
    mu1 = q1 = max_sigma = 0.0
    max_val = 0
    eps = float(np.finfo(np.float32).eps)
    for k in range(BINS):
        p_i = hist[k] * scale
        mu1 *= q1
        q1 += p_i
        q2 = 1.0 - q1
        if min(q1, q2) < eps or max(q1, q2) > 1.0 - eps:
            continue
        mu1 = (mu1 + k * p_i) / q1
        mu2 = (mu - q1 * mu1) / q2
        sigma = q1 * q2 * (mu1 - mu2) ** 2
        if sigma > max_sigma:
            max_sigma, max_val = sigma, k
    return max_val


@dataclass(frozen=True)
class _Otsu(PointwiseStep):
    def check(self, c: int) -> None:
        if c != 1:
            raise ArgumentError(f"src has {c} channels; threshold='otsu' needs a gray image (to_gray(src) first)")

    def shared_floats(self, c: int) -> int:
        return 1

    def prologue(self, c: int, p: str, hist: str, sh: str) -> str:
        return _OTSU_CUDA.replace("HISTP", hist).replace("SHP", sh)

    def cuda(self, c: int, p: str, sh: str) -> str:
        return f"v[0] = v[0] > {sh}[0] ? {p}[0] : 0.f;"

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        t = otsu_numpy(hist[0])
        return np.where(v > t, p[0], 0).astype(np.float32)


_EQUALIZE_CUDA = r"""
if (threadIdx.x < NC) {
  const u32* hh = HISTP + threadIdx.x * 256;
  float* lut = SHP + threadIdx.x * 256;
  int i = 0;
  while (i < 255 && hh[i] == 0) ++i;
  if ((i64)hh[i] == npix) {
    for (int k = 0; k < 256; ++k) lut[k] = (float)i;  // one level only: unchanged
  } else {
    const float scale = 255.f / (float)(npix - (i64)hh[i]);
    for (int k = 0; k <= i; ++k) lut[k] = 0.f;
    long long sum = 0;
    for (int k = i + 1; k < 256; ++k) { sum += hh[k]; lut[k] = fminf(fmaxf(rintf((float)sum * scale), 0.f), 255.f); }
  }
}
"""


@dataclass(frozen=True)
class _Equalize(PointwiseStep):
    """cv2.equalizeHist per colour channel."""

    def shared_floats(self, c: int) -> int:
        return BINS * _colour_channels(c)

    def prologue(self, c: int, p: str, hist: str, sh: str) -> str:
        return _EQUALIZE_CUDA.replace("HISTP", hist).replace("SHP", sh).replace("NC", str(_colour_channels(c)))

    def cuda(self, c: int, p: str, sh: str) -> str:
        return f"for (int k = 0; k < {_colour_channels(c)}; ++k) v[k] = {sh}[k * 256 + f2b(v[k])];"

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        v = v.copy()
        for k in range(_colour_channels(v.shape[2])):
            v[..., k] = equalize_lut_numpy(hist[k])[v[..., k].astype(np.int64)]
        return v


def equalize_lut_numpy(hist: np.ndarray) -> np.ndarray:
    """OpenCV's equalizeHist lookup table of a 256-bin histogram."""
    total = int(hist.sum())
    nz = np.flatnonzero(hist)
    i = int(nz[0])
    if hist[i] == total:
        return np.full(BINS, i, np.float32)
    scale = np.float32(255) / np.float32(total - hist[i])
    lut = np.zeros(BINS, np.float32)
    sums = np.cumsum(hist[i + 1 :]).astype(np.float32)
    lut[i + 1 :] = np.clip(np.rint(sums * scale), 0, 255)
    return lut


@dataclass(frozen=True)
class _Convert(PointwiseStep):
    """Mode conversion among gray/rgb/bgr/rgba; gray uses 16-bit fixed-point weights."""

    src_mode: str = "rgb"
    dst_mode: str = "gray"
    weights: str = "bt601"

    def key(self, c: int) -> tuple[Any, ...]:
        return (self.kind, c, self.src_mode, self.dst_mode, self.weights)

    def out_channels(self, c: int) -> int:
        return _MODE_CHANNELS[self.dst_mode]

    def check(self, c: int) -> None:
        if _MODE_CHANNELS[self.src_mode] != c:
            raise ArgumentError(f"src_mode={self.src_mode!r} needs {_MODE_CHANNELS[self.src_mode]} channels, src has {c}")

    def _rgba_exprs(self) -> tuple[str, str, str, str]:
        return {
            "gray": ("v[0]", "v[0]", "v[0]", "255.f"),
            "rgb": ("v[0]", "v[1]", "v[2]", "255.f"),
            "bgr": ("v[2]", "v[1]", "v[0]", "255.f"),
            "rgba": ("v[0]", "v[1]", "v[2]", "v[3]"),
        }[self.src_mode]

    def cuda(self, c: int, p: str, sh: str) -> str:
        r, g, b, a = self._rgba_exprs()
        head = f"const float r = {r}, g = {g}, b = {b}, a = {a};\n"
        if self.dst_mode == "gray":
            w0, w1, w2 = _GRAY_WEIGHTS[self.weights]
            return head + f"v[0] = b2f((f2b(r) * {w0}u + f2b(g) * {w1}u + f2b(b) * {w2}u + 32768u) >> 16);"
        order = {"rgb": "r, g, b", "bgr": "b, g, r", "rgba": "r, g, b, a"}[self.dst_mode]
        names = order.split(", ")
        return head + " ".join(f"v[{k}] = {n};" for k, n in enumerate(names)) + " (void)a;"

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        idx = {"gray": (0, 0, 0, None), "rgb": (0, 1, 2, None), "bgr": (2, 1, 0, None), "rgba": (0, 1, 2, 3)}[self.src_mode]
        r, g, b = (v[..., k] for k in idx[:3])
        a = v[..., 3] if idx[3] is not None else np.full(v.shape[:2], 255, np.float32)
        if self.dst_mode == "gray":
            w0, w1, w2 = _GRAY_WEIGHTS[self.weights]
            ri, gi, bi = (x.astype(np.int64) for x in (r, g, b))
            return ((ri * w0 + gi * w1 + bi * w2 + 32768) >> 16).astype(np.float32)[..., None]
        planes = {"rgb": (r, g, b), "bgr": (b, g, r), "rgba": (r, g, b, a)}[self.dst_mode]
        return np.stack(planes, axis=-1).astype(np.float32)
