"""Shard sweep (issue 29): the whole ``gpuimg process`` command from process start with
``--shards 1, 2, 4, 8`` and the default choice, beside OpenCV in one process per core, per
dataset class (bench/pipeline.py's generators and peers), W1 = decode -> resize shorter
512 -> center crop 512 -> JPEG q90 -> files. Prints images/s and the ratios, one line per
figure (flushed), and a summary table at the end; what the default (no ``--shards``)
chooses is what users get.

Usage: python bench/shards.py [--classes small,hd,phone] [--shards 1,2,4,8] [--scale 1.0] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402
import harness  # noqa: E402
import pipeline as pipeline_bench  # noqa: E402


def command(src: Path, out: Path, device: str, shards: int | None) -> float:
    """Wall seconds of the whole command (a fresh process) over ``src`` into a fresh ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    extra = ["--shards", str(shards)] if shards is not None else []
    return harness.process_wall([sys.executable, "-m", "gpuimg.cli", "process", str(src), str(out),
                                 "--resize-shorter", "512", "--center-crop", "512x512", "--quality", "90",
                                 "--device", device, "--no-progress", *extra])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--classes", default="small,hd,phone")
    ap.add_argument("--shards", default="1,2,4,8")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of each class's default count")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    print(f"# shards sweep, {harness.device_name()}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for cls in args.classes.split(","):
            count = max(8, int(datasets.CLASSES[cls][0] * args.scale))
            src = tmp / cls
            files = datasets.generate(src, count, cls)
            for f in files:  # warm the page cache, as every figure of the run reads warm
                f.read_bytes()
            peer = pipeline_bench.opencv_peer(files, tmp / "cv-out", timeout=600, repeat=1)
            cv = peer["from_start"]
            print(f"{cls}: {count} files; OpenCV one process per core {cv:,.0f} img/s from pool start "
                  f"({peer})", flush=True)
            for shards in [None] + [int(s) for s in args.shards.split(",")]:
                walls = []
                for _ in range(args.repeat):
                    try:
                        walls.append(command(src, tmp / "out", args.device, shards))
                    except RuntimeError as exc:
                        print(f"{cls} shards={shards}: failed: {str(exc)[-300:]}", flush=True)
                if not walls:
                    continue
                rate = count / min(walls)
                label = "auto" if shards is None else str(shards)
                rows.append((cls, label, rate, rate / cv))
                print(f"{cls} shards={label}: {rate:,.0f} img/s from process start ({min(walls):.2f} s), "
                      f"{rate / cv:.2f}x OpenCV per core", flush=True)
            shutil.rmtree(src, ignore_errors=True)
    print("\n| class | --shards | command img/s | vs OpenCV per core |\n| --- | --- | --- | --- |")
    for cls, label, rate, ratio in rows:
        print(f"| {cls} | {label} | {rate:,.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
