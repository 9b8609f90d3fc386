"""Which nvJPEG the installed nvImageCodec runs, and how far its GPU JPEG decode is from
libjpeg-turbo (Pillow) on the photos in assets/ (issue 18: the cu12 and cu13 wheels ship
different nvJPEG builds). Prints nvImageCodec's version and CUDA flavour, then per photo
and backend (hybrid CUDA decoder, hardware decoder, CPU) the largest and mean level
difference from Pillow, and whether the decode fell back (None).

Usage: python bench/nvjpeg_versions.py
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    from nvidia import nvimgcodec as nv
    from PIL import Image

    print(f"nvImageCodec {nv.__version__}, built for CUDA {getattr(nv, '__cuda_version__', '?')}")
    try:
        import cupy

        cupy.empty(1)
        on_gpu = True
    except Exception as exc:  # noqa: BLE001 - a CPU machine prints the CPU rows only
        print(f"no GPU ({exc})")
        on_gpu = False
    kinds = {"hybrid": "HYBRID_CPU_GPU", "hw": "HW_GPU_ONLY", "cpu": "CPU_ONLY"}
    if not on_gpu:
        kinds = {"cpu": "CPU_ONLY"}
    decoders = {}
    for name, kind in kinds.items():
        backends = [nv.Backend(getattr(nv, kind))]
        decoders[name] = (nv.Decoder(backends=backends) if on_gpu else
                          nv.Decoder(device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY, backends=backends))
    photos = sorted((ROOT / "assets").glob("*.jpg"))
    print("| photo | subsampling | backend | max | mean |\n|---|---|---|---|---|")
    for photo in photos:
        for sub, label in ((2, "4:2:0"), (0, "4:4:4")):
            buf = io.BytesIO()
            Image.open(photo).convert("RGB").save(buf, "JPEG", quality=90, subsampling=sub)
            data = buf.getvalue()
            ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
            for name, dec in decoders.items():
                img = dec.decode(data)
                if img is None:
                    print(f"| {photo.name} | {label} | {name} | not decoded | |")
                    continue
                got = np.asarray(img.cpu()).astype(int)
                diff = np.abs(got - ref)
                print(f"| {photo.name} | {label} | {name} | {diff.max()} | {diff.mean():.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
