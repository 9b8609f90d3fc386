"""Parity of every op with its outside reference on the real photos in assets/ (uint8).

For each op and method: gpuimg's result beside the reference library's (OpenCV, Pillow,
scikit-image/SciPy, NumPy), as a Markdown table: the reference (library + function), the
tolerance the op's docstrings and tests state (kept in :data:`STATED` below, by hand:
nothing is parsed), the measured max and mean absolute difference (uint8 levels), and
with ``--device cuda`` the max GPU-vs-CPU difference. A missing reference library gives
a row saying so, never a crash; a row whose max exceeds its stated tolerance is marked.

Run from the repository root: ``python bench/parity.py [--device cpu|cuda] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gpuimg  # noqa: E402
from gpuimg import Image  # noqa: E402
from gpuimg.ops import color, filters, geometry  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "assets"

class ReferenceUnusable(Exception):
    """The installed reference library fails its own definition; the row is skipped."""


# What the docstrings/tests state, as (max abs diff, note); mirrored by hand.
STATED: dict[str, tuple[float | None, str]] = {
    "resize_cv2": (1, "max 1 (cv2 8-bit fixed point, 11-bit weights)"),
    "resize_nearest": (None, "same or neighbouring source pixel (ties)"),
    "resize_pillow": (2, "max 2, mean < 0.3 (Pillow 22-bit weights)"),
    "rgba_alpha": (2, "max 2 (the method's; alpha resamples as a channel)"),
    "rgba_colour": (3, "max 3 where alpha >= 128 (both premultiply; below, 255 / alpha magnifies one level)"),
    "rotate90": (0, "exact"),
    "rotate_expand_nearest": (0, "exact (90 deg, nearest) == np.rot90"),
    "warp_bilinear": (1, "max 1 against OpenCV 5 (OpenCV 4 rounds coordinates to 1/32 pixel)"),
    "warp_nearest": (None, ">= 98 % identical pixels"),
    "gaussian": (1, "max 1 (cv2 fixed point)"),
    "box": (1, "max 1"),
    "median": (0, "exact"),
    "sobel": (1, "max 1 (cv2.Sobel CV_32F + hypot)"),
    "unsharp": (1, "max 1 (skimage's definition, scipy gaussian_filter)"),
    "unsharp_skimage": (1, "max 1 (skimage's own; the tests use SciPy)"),
    "gray_cv2": (1, "max 1 (Pillow bit for bit; cv2 within 1)"),
    "gray_pillow": (0, "exact (Pillow convert('L'))"),
    "cvt_exact": (0, "exact"),
    "numpy": (0, "exact"),
}


def _load(name: str, mode: str | None = "RGB") -> np.ndarray:
    from PIL import Image as PILImage

    with PILImage.open(ASSETS / name) as im:
        arr = np.asarray(im.convert(mode) if mode else im)
    return np.ascontiguousarray(arr)


def _img(arr: np.ndarray, device: str) -> Image:
    return Image.from_array(arr if arr.ndim == 3 else arr[..., None]).to(device)


class Case:
    """One row: ``ours(image_array, device) -> ndarray`` vs ``ref(image_array) -> ndarray``."""

    def __init__(self, op: str, reference: str, stated: str, photo: str, ours: Callable[[np.ndarray, str], np.ndarray],
                 ref: Callable[[np.ndarray], np.ndarray], needs: str = "", mode: str | None = "RGB",
                 where: Callable[[np.ndarray], np.ndarray] | None = None):
        self.op, self.reference, self.stated, self.photo = op, reference, stated, photo
        self.ours, self.ref, self.needs, self.mode = ours, ref, needs, mode
        self.where = where  # reference -> mask of the pixels compared (None: all)


def _cases() -> list[Case]:
    cases: list[Case] = []
    G, F, C = geometry, filters, color

    def np_of(fn: Callable[..., Any]) -> Callable[[np.ndarray, str], np.ndarray]:
        return lambda a, d: fn(_img(a, d)).numpy()

    try:
        import cv2
    except ImportError:
        cv2 = None  # type: ignore[assignment]
    try:
        from PIL import Image as PILImage
    except ImportError:
        PILImage = None  # type: ignore[assignment]

    # ---- resize vs OpenCV (antialias=False) and Pillow (antialias=True); down and up
    sizes = {"down": (200, 300), "up": (517, 811)}  # from coffee 400x600
    cv_flags = {"nearest": "INTER_NEAREST_EXACT", "bilinear": "INTER_LINEAR", "bicubic": "INTER_CUBIC",
                "lanczos": "INTER_LANCZOS4", "area": "INTER_AREA"}
    for method, flag in cv_flags.items():
        if method == "lanczos":
            continue  # lanczos is stated against Pillow (antialias), below
        for tag, size in sizes.items():
            stated = "resize_nearest" if method == "nearest" else "resize_cv2"
            cases.append(Case(
                f"resize {method} {tag} {size[0]}x{size[1]}", f"OpenCV cv2.resize({flag})", stated, "coffee.png",
                (lambda m, s: lambda a, d: G.resize(_img(a, d), s, method=m, antialias=False).numpy())(method, size),
                (lambda f, s: lambda a: cv2.resize(a, s[::-1], interpolation=getattr(cv2, f)))(flag, size), needs="cv2"))
    pil_names = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "lanczos": "LANCZOS"}
    for method, name in pil_names.items():
        for tag, size in sizes.items():
            cases.append(Case(
                f"resize {method} antialias {tag} {size[0]}x{size[1]}", f"Pillow Image.resize({name})", "resize_pillow",
                "coffee.png",
                (lambda m, s: lambda a, d: G.resize(_img(a, d), s, method=m, antialias=True).numpy())(method, size),
                (lambda n, s: lambda a: np.asarray(PILImage.fromarray(a).resize(s[::-1], getattr(PILImage, n))))(name, size),
                needs="PIL"))
    # Pillow and gpuimg both resize RGBA premultiplied (RGBa); where alpha is small the
    # colour is one alpha level magnified by 255 / alpha, so colour is compared where
    # alpha >= 128, and alpha on its own.
    alpha_only = lambda r: np.broadcast_to(np.arange(r.shape[-1]) == 3, r.shape)  # noqa: E731
    visible_colour = lambda r: (r[..., 3:4] >= 128) & (np.arange(r.shape[-1]) < 3)  # noqa: E731
    for tag, size in {"down": (150, 230), "up": (600, 700)}.items():
        for part, where, stated in (("alpha", alpha_only, "rgba_alpha"),
                                    ("colour where alpha >= 128", visible_colour, "rgba_colour")):
            cases.append(Case(
                f"resize RGBA bicubic antialias {tag} {size[0]}x{size[1]}, {part}", "Pillow Image.resize(BICUBIC), RGBA",
                stated, "coffee_rgba.png",
                (lambda s: lambda a, d: G.resize(_img(a, d), s, method="bicubic", antialias=True).numpy())(size),
                (lambda s: lambda a: np.asarray(PILImage.fromarray(a, "RGBA").resize(s[::-1], PILImage.BICUBIC)))(size),
                needs="PIL", mode=None, where=where))

    # ---- rotate / warp
    for k in (1, 2, 3):
        cases.append(Case(f"rotate90 k={k}", "NumPy np.rot90", "rotate90", "chelsea.png",
                          (lambda k: lambda a, d: G.rotate90(_img(a, d), k).numpy())(k), (lambda k: lambda a: np.rot90(a, k))(k)))
    for photo in ("coffee.png", "chelsea.png"):  # even (400x600) and odd (451x300) sides
        cases.append(Case(f"rotate 90 expand nearest, {photo}", "NumPy np.rot90", "rotate_expand_nearest", photo,
                          lambda a, d: G.rotate(_img(a, d), 90, expand=True, method="nearest").numpy(), lambda a: np.rot90(a)))
    m = np.array([[0.9, 0.2, 12.5], [-0.15, 1.1, -20.25]])
    for method, flag in (("bilinear", "INTER_LINEAR"), ("nearest", "INTER_NEAREST")):
        cases.append(Case(
            f"warp_affine {method}", f"OpenCV cv2.warpAffine({flag}, BORDER_CONSTANT)", f"warp_{method}", "coffee.png",
            (lambda mt: lambda a, d: G.warp_affine(_img(a, d), m, (380, 500), method=mt, fill=(10, 20, 30)).numpy())(method),
            (lambda f: lambda a: cv2.warpAffine(a, m, (500, 380), flags=getattr(cv2, f), borderMode=cv2.BORDER_CONSTANT,
                                                borderValue=(10, 20, 30)))(flag), needs="cv2"))
    cases.append(Case(
        "rotate 30 bilinear", "OpenCV cv2.warpAffine(getRotationMatrix2D, INTER_LINEAR)", "warp_bilinear", "coffee.png",
        lambda a, d: G.rotate(_img(a, d), 30.0).numpy(),
        lambda a: cv2.warpAffine(a, cv2.getRotationMatrix2D(((a.shape[1] - 1) / 2, (a.shape[0] - 1) / 2), 30.0, 1.0),
                                 a.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT), needs="cv2"))

    # ---- filters
    for sigma, radius in ((1.0, 3), (3.0, 9)):
        k = 2 * radius + 1
        cases.append(Case(
            f"gaussian_blur sigma={sigma} k={k}", "OpenCV cv2.GaussianBlur(BORDER_REFLECT_101)", "gaussian", "chelsea.png",
            (lambda s, r: lambda a, d: F.gaussian_blur(_img(a, d), s, radius=r).numpy())(sigma, radius),
            (lambda s, k: lambda a: cv2.GaussianBlur(a, (k, k), s, borderType=cv2.BORDER_REFLECT_101))(sigma, k), needs="cv2"))
    for radius in (1, 4):
        k = 2 * radius + 1
        cases.append(Case(
            f"box_blur radius={radius}", "OpenCV cv2.blur(BORDER_REFLECT_101)", "box", "chelsea.png",
            (lambda r: lambda a, d: F.box_blur(_img(a, d), r).numpy())(radius),
            (lambda k: lambda a: cv2.blur(a, (k, k), borderType=cv2.BORDER_REFLECT_101))(k), needs="cv2"))
    for size in (3, 5):
        cases.append(Case(
            f"median_blur {size}x{size}", "OpenCV cv2.medianBlur", "median", "chelsea.png",
            (lambda s: lambda a, d: F.median_blur(_img(a, d), s).numpy())(size),
            (lambda s: lambda a: cv2.medianBlur(a, s))(size), needs="cv2"))

    def sobel_ref(a: np.ndarray) -> np.ndarray:
        gx = cv2.Sobel(a, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(a, cv2.CV_32F, 0, 1, ksize=3)
        return np.clip(np.rint(np.sqrt(gx * gx + gy * gy)), 0, 255)

    cases.append(Case("sobel magnitude", "OpenCV cv2.Sobel(CV_32F) x, y + hypot", "sobel", "chelsea.png",
                      np_of(F.sobel), sobel_ref, needs="cv2"))

    def unsharp_ref(a: np.ndarray) -> np.ndarray:
        from scipy import ndimage
        from skimage.filters import unsharp_mask as sk_unsharp

        # Some scikit-image builds (0.26 with a newer SciPy) return garbage here; such a
        # reference is reported as unusable instead of as gpuimg's error.
        probe = np.arange(48, dtype=np.float64).reshape(4, 4, 3)
        want = probe + 1.5 * (probe - ndimage.gaussian_filter(probe, (2.0, 2.0, 0), mode="reflect", truncate=4.0))
        if not np.allclose(sk_unsharp(probe, radius=2.0, amount=1.5, channel_axis=-1, preserve_range=True), want,
                           atol=1e-6):
            import skimage

            raise ReferenceUnusable(f"skimage {skimage.__version__} unsharp_mask disagrees with its own definition")
        return np.clip(np.rint(sk_unsharp(a.astype(np.float64), radius=2.0, amount=1.5, channel_axis=-1,
                                          preserve_range=True)), 0, 255)

    ours_unsharp = lambda a, d: F.unsharp_mask(_img(a, d), 2.0, 1.5, radius=8, border="symmetric").numpy()  # noqa: E731
    cases.append(Case("unsharp_mask sigma=2 amount=1.5 symmetric", "scikit-image skimage.filters.unsharp_mask",
                      "unsharp_skimage", "chelsea.png", ours_unsharp, unsharp_ref, needs="skimage"))

    def unsharp_scipy(a: np.ndarray) -> np.ndarray:  # skimage's definition, as the tests check it
        from scipy import ndimage

        f = a.astype(np.float64)
        return np.clip(np.rint(f + 1.5 * (f - ndimage.gaussian_filter(f, (2.0, 2.0, 0), mode="reflect", truncate=4.0))), 0, 255)

    cases.append(Case("unsharp_mask sigma=2 amount=1.5 symmetric", "SciPy f + amount*(f - ndimage.gaussian_filter)",
                      "unsharp", "chelsea.png", ours_unsharp, unsharp_scipy, needs="scipy"))

    # ---- colour conversions
    cases.append(Case("to_gray bt601", "OpenCV cv2.cvtColor(COLOR_RGB2GRAY)", "gray_cv2", "astronaut.jpg",
                      np_of(C.to_gray), lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)[..., None], needs="cv2"))
    cases.append(Case("to_gray bt601", "Pillow Image.convert('L')", "gray_pillow", "astronaut.jpg",
                      np_of(C.to_gray), lambda a: np.asarray(PILImage.fromarray(a).convert("L"))[..., None], needs="PIL"))
    for mode, code in (("bgr", "COLOR_RGB2BGR"), ("rgba", "COLOR_RGB2RGBA")):
        cases.append(Case(f"convert rgb->{mode}", f"OpenCV cv2.cvtColor({code})", "cvt_exact", "astronaut.jpg",
                          (lambda md: lambda a, d: C.convert(_img(a, d), md).numpy())(mode),
                          (lambda c: lambda a: cv2.cvtColor(a, getattr(cv2, c)))(code), needs="cv2"))
    cases.append(Case("convert rgba->rgb", "OpenCV cv2.cvtColor(COLOR_RGBA2RGB)", "cvt_exact", "coffee_rgba.png",
                      lambda a, d: C.convert(_img(a, d), "rgb").numpy(), lambda a: cv2.cvtColor(a, cv2.COLOR_RGBA2RGB),
                      needs="cv2", mode=None))
    cases.append(Case("convert gray->rgb", "OpenCV cv2.cvtColor(COLOR_GRAY2RGB)", "cvt_exact", "camera_gray.png",
                      lambda a, d: C.convert(_img(a, d), "rgb").numpy(), lambda a: cv2.cvtColor(a, cv2.COLOR_GRAY2RGB),
                      needs="cv2", mode="L"))

    # ---- flip / crop / pad vs NumPy
    cases += [
        Case("flip horizontal", "NumPy a[:, ::-1]", "numpy", "rocket.jpg",
             lambda a, d: G.flip(_img(a, d), horizontal=True).numpy(), lambda a: a[:, ::-1]),
        Case("flip vertical", "NumPy a[::-1]", "numpy", "rocket.jpg",
             lambda a, d: G.flip(_img(a, d), vertical=True).numpy(), lambda a: a[::-1]),
        Case("crop 10,20 100x203", "NumPy a[10:110, 20:223]", "numpy", "rocket.jpg",
             lambda a, d: G.crop(_img(a, d), 10, 20, 100, 203).numpy(), lambda a: a[10:110, 20:223]),
    ]
    widths = ((3, 7), (40, 0), (0, 0))
    for mode in ("constant", "edge", "reflect", "symmetric", "wrap"):
        cases.append(Case(f"pad {mode}", f"NumPy np.pad(mode={mode!r})", "numpy", "rocket.jpg",
                          (lambda md: lambda a, d: G.pad(_img(a, d), 3, 7, 40, 0, mode=md).numpy())(mode),
                          (lambda md: lambda a: np.pad(a, widths, mode=md))(mode)))
    return cases


def _have(module: str) -> bool:
    import importlib.util

    return not module or importlib.util.find_spec(module) is not None


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    if b.ndim == 2 and a.ndim == 3 and a.shape[2] == 1:
        b = b[..., None]
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: ours {a.shape}, reference {b.shape}")
    return np.abs(a.astype(np.float64) - b.astype(np.float64))


def measure(case: Case, device: str, photos: dict[tuple[str, str | None], np.ndarray]) -> dict[str, Any]:
    tol, note = STATED[case.stated]
    row: dict[str, Any] = {"op": case.op, "reference": case.reference, "stated": note, "tolerance": tol,
                           "max": None, "mean": None, "gpu_vs_cpu": None, "status": ""}
    if not _have(case.needs):
        row["status"] = f"skipped: {case.needs} not installed"
        return row
    try:
        key = (case.photo, case.mode)
        if key not in photos:
            photos[key] = _load(case.photo, case.mode)
        arr = photos[key]
        ours = case.ours(arr, device)
        ref = case.ref(arr)
        d = _diff(ours, ref)
        mask = None if case.where is None else case.where(np.asarray(ref))
        if mask is not None:
            d = d[mask]
        row["max"], row["mean"] = float(d.max()), float(d.mean())
        if device == "cuda":
            dc = _diff(ours, case.ours(arr, "cpu"))
            row["gpu_vs_cpu"] = float((dc if mask is None else dc[mask]).max())
        over = tol is not None and row["max"] > tol
        row["status"] = "OVER TOLERANCE" if over else ("ok" if tol is not None else "ok (no max stated)")
    except ReferenceUnusable as exc:
        row["status"] = f"skipped: {exc}"
    except Exception as exc:  # noqa: BLE001 - one row's failure is reported in its row
        row["status"] = f"error: {type(exc).__name__}: {exc}".replace("|", "/")[:120]
        if "--trace" in sys.argv:
            traceback.print_exc()
    return row


def _fmt(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if digits else f"{v:g}"


def table(rows: list[dict[str, Any]], device: str) -> str:
    head = ["op", "reference", "stated tolerance", "max abs", "mean abs"]
    if device == "cuda":
        head.append("max GPU-vs-CPU")
    head.append("status")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["op"], r["reference"], r["stated"], _fmt(r["max"]), _fmt(r["mean"], 4)]
        if device == "cuda":
            cells.append(_fmt(r["gpu_vs_cpu"]))
        cells.append(r["status"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where gpuimg runs (cuda adds GPU-vs-CPU)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the rows as JSON")
    p.add_argument("--filter", default="", help="only ops whose name contains this")
    p.add_argument("--trace", action="store_true", help="print tracebacks of rows that errored")
    args = p.parse_args(argv)
    if args.device == "cuda" and not gpuimg.cuda_available():
        print(f"--device cuda: no usable GPU ({gpuimg.device_report()})", file=sys.stderr)
        return 2
    photos: dict[tuple[str, str | None], np.ndarray] = {}
    rows = [measure(c, args.device, photos) for c in _cases() if args.filter in c.op]
    print(f"# gpuimg parity with outside references ({args.device}; uint8 photos from assets/)\n")
    print(table(rows, args.device))
    bad = [r for r in rows if not r["status"].startswith(("ok", "skipped"))]
    print(f"\n{len(rows)} rows, {len(bad)} over tolerance or errored")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": args.device, "rows": rows}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
