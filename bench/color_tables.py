"""Colour tables: how long a profile's table takes to build, and a conversion, beside
LittleCMS itself (Pillow's ``ImageCms.profileToProfile``) on the same pixels.

- build: ``profile_lut`` (RGB: Display P3 and Adobe RGB, the hand-written test profiles)
  and ``cmyk_lut`` (the generated test press profile), each on a profile not built
  before in the process; the cache is then hit (the second call builds nothing: checked
  with ``table_builds``).
- convert: ``convert_colorspace`` of a 1080p photo-like image (RGB with a P3 profile;
  CMYK inks with the press profile) on this machine's device, against
  ``ImageCms.profileToProfile`` of the same pixels (1 thread).

Usage: python bench/color_tables.py [--quick] [--json PATH]
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # import gpuimg from the checkout
sys.path.insert(0, str(ROOT / "tests"))  # the hand-written / generated test profiles
sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness (also when loaded by the tests)

import harness  # noqa: E402
import numpy as np  # noqa: E402

import gpuimg  # noqa: E402
from gpuimg.ops.color import profiles  # noqa: E402


def run(results: harness.Results, args: Any) -> None:
    from PIL import Image as PILImage
    from PIL import ImageCms
    from icc_profiles import ADOBE_GAMMA, ADOBE_RGB, CMYK_PROFILE, P3_PROFILE, cmyk_profile, matrix_profile

    device = "cuda" if harness.gpu_available() else "cpu"
    fresh = [("Display P3", matrix_profile("Display P3 (bench)"), profiles.profile_lut),  # bytes no table was built for
             ("Adobe RGB", matrix_profile("Adobe RGB (bench)", ADOBE_RGB, ADOBE_GAMMA), profiles.profile_lut),
             ("CMYK press model", cmyk_profile("CMYK press model (bench)"), profiles.cmyk_lut)]
    for name, profile, build in fresh:
        start = time.perf_counter()
        build(profile)
        built = time.perf_counter() - start
        before = profiles.table_builds()
        start = time.perf_counter()
        build(profile)
        cached = time.perf_counter() - start
        assert profiles.table_builds() == before, "the second call rebuilt the table"
        results.add(f"table build, {name}", built * 1e3, "ms", note=f"cached: {cached * 1e6:.0f} us")
    h, w = (270, 480) if args.quick else (1080, 1920)
    y, x = np.mgrid[:h, :w]
    rgb = np.dstack([x * 255 // w, y * 255 // h, (x + y) % 256]).astype(np.uint8)
    ink = np.dstack([rgb, (x * y % 256).astype(np.uint8)])
    srgb = ImageCms.createProfile("sRGB")
    sync = harness.synchronizer(device)
    for name, pixels, mode, profile in (("RGB, Display P3", rgb, "RGB", P3_PROFILE), ("CMYK", ink, "CMYK", CMYK_PROFILE)):
        img = gpuimg.Image.from_array(pixels).to(device)
        out = gpuimg.ops.color.convert_colorspace(img, profile=profile)
        ours = harness.time_host(lambda: gpuimg.ops.color.convert_colorspace(img, profile=profile, out=out), sync=sync,
                                 warmup=1, repeat=args.repeat)
        src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        im = PILImage.fromarray(pixels, mode)
        peer = harness.time_host(lambda: ImageCms.profileToProfile(im, src, srgb, outputMode="RGB",
                                                                   renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC),
                                 warmup=1, repeat=min(args.repeat, 10))
        results.add(f"convert_colorspace {w}x{h} {name} ({device})", ours.median * 1e3, "ms",
                    "ImageCms.profileToProfile", peer.median * 1e3)


def main(argv: list[str] | None = None) -> int:
    args = harness.parse_args(argv=argv)
    results = harness.Results("colour tables", meta=dict(device=harness.device_name()))
    run(results, args)
    harness.report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
