"""The CPU path beside a one-process Pillow loop, as whole processes.

Makes N 640x480 JPEGs (quality 90) from the photos in assets/, then times, each as a
whole process (start-up included; the minimum of --runs):

- ``gpuimg process SRC DST --device cpu --resize-shorter 256 --center-crop 224x224``
  (JPEG quality 90 by default), and
- a Pillow loop: ``Image.open`` -> resize so the shorter side is 256 (Pillow's default
  filter) -> centre crop 224 -> save JPEG quality 90,

and prints both, the ratio (Pillow's time / gpuimg's: above 1 is faster than Pillow),
and one in-process line per stage of gpuimg's CPU path (ms per image, one thread).

    python bench/cpu_path.py [--images 200] [--runs 3] [--dir /tmp/gpuimg-cpu-path]
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's gpuimg for the stage line, as the command's PYTHONPATH

PILLOW_LOOP = r"""
import os, sys
from PIL import Image
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for name in sorted(os.listdir(src)):
    with Image.open(os.path.join(src, name)) as im:
        w, h = im.size
        nw, nh = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
        im = im.resize((nw, nh))
        left, top = round((nw - 224) / 2), round((nh - 224) / 2)
        im.crop((left, top, left + 224, top + 224)).save(os.path.join(dst, name), quality=90)
"""


def make_dataset(folder: Path, count: int) -> Path:
    """``count`` 640x480 JPEGs (quality 90) cut from the assets' photos, each a little different."""
    from PIL import Image

    src = folder / "src"
    if src.is_dir() and len(list(src.glob("*.jpg"))) == count:
        return src
    src.mkdir(parents=True, exist_ok=True)
    photos = [Image.open(p).convert("RGB") for p in sorted(glob.glob(str(ROOT / "assets" / "*.jpg")))
              + sorted(glob.glob(str(ROOT / "assets" / "*.png")))]
    for i in range(count):
        im = photos[i % len(photos)].resize((640 + (i % 7) * 10, 480 + (i % 5) * 8), Image.BICUBIC)
        im = im.crop(((i % 7) * 5, (i % 5) * 4, (i % 7) * 5 + 640, (i % 5) * 4 + 480))
        if i % 2:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        im.save(src / f"img{i:04d}.jpg", quality=90)
    return src


def whole_process(cmd: list[str], runs: int, env: dict[str, str]) -> float:
    """Minimum wall seconds of ``runs`` runs of ``cmd`` after one warm-up run."""
    best = float("inf")
    for k in range(runs + 1):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if k:
            best = min(best, time.perf_counter() - t0)
    return best


def stages(src: Path) -> str:
    """ms per image of each stage of gpuimg's CPU path, in this process, one image at a time."""
    import gpuimg
    from gpuimg.codec import api

    blobs = [p.read_bytes() for p in sorted(src.glob("*.jpg"))]

    def timed(fn, items):
        t0 = time.perf_counter()
        out = [fn(x) for x in items]
        return out, (time.perf_counter() - t0) * 1e3 / len(items)

    imgs, t_dec = timed(lambda b: gpuimg.read(b, device="cpu"), blobs)
    small, t_res = timed(lambda im: gpuimg.resize_shorter(im, 256), imgs)
    crops, t_crop = timed(lambda im: gpuimg.center_crop(im, 224), small)
    _, t_enc = timed(lambda im: api.encode(im, "jpeg", quality=90), crops)
    from PIL import Image

    pil, t_pdec = timed(lambda b: Image.open(io.BytesIO(b)).convert("RGB"), blobs)
    _, t_pres = timed(lambda im: im.resize((int(256 * im.width / im.height), 256)), pil)
    return (f"stages, ms/image: gpuimg decode {t_dec:.2f}, resize {t_res:.2f}, crop {t_crop:.3f}, "
            f"encode {t_enc:.2f} | Pillow decode {t_pdec:.2f}, resize (bicubic) {t_pres:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/gpuimg-cpu-path"))
    args = parser.parse_args()
    src = make_dataset(args.dir, args.images)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    gpuimg_cmd = [sys.executable, "-m", "gpuimg.cli", "process", str(src), str(args.dir / "gpuimg"), "--device", "cpu",
                  "--resize-shorter", "256", "--center-crop", "224x224", "--no-progress"]
    pillow_cmd = [sys.executable, "-c", PILLOW_LOOP, str(src), str(args.dir / "pillow")]
    t_gpuimg = whole_process(gpuimg_cmd, args.runs, env)
    t_pillow = whole_process(pillow_cmd, args.runs, env)
    print(f"{args.images} images, {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores, "
          f"min of {args.runs} whole-process runs")
    print(f"gpuimg process --device cpu: {t_gpuimg:.3f} s")
    print(f"Pillow loop (one process):   {t_pillow:.3f} s")
    print(f"ratio (Pillow / gpuimg):     {t_pillow / t_gpuimg:.2f}x")
    print(stages(src))


if __name__ == "__main__":
    main()
