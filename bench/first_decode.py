"""Where nvImageCodec's start-up goes (issue 15): its import and its first decode.

A one-file ``gpuimg process`` spends about 1.1 s importing nvImageCodec and another 1.1 s
in the first decode of every new Decoder. Each variant below is a fresh process that
times, in order: the import, ``Decoder(...)``, the first and second decode of a tiny
JPEG, the first decode of a 1080p JPEG, and an Encoder's first encode. The variants change
one thing at a time:

- ``default``: gpuimg's decoder backends (hybrid JPEG, GPU, CPU);
- ``eager``: ``CUDA_MODULE_LOADING=EAGER`` (if the first decode is CUDA's lazy module
  loading, the cost moves to the import);
- ``hybrid only`` / ``hw only`` / ``cpu only``: one backend kind;
- ``ext: jpeg``: ``NVIMGCODEC_EXTENSIONS_PATH`` naming a folder with only the nvJPEG and
  OpenCV extensions (the others are not loaded);
- ``threads 1``: ``max_num_cpu_threads=1``.

``--perf`` records the default variant with ``perf`` (when present) and prints the
shared objects where the time went; ``--strace`` lists the files the first decode opens.
The JIT cache (~/.nv/ComputeCache) is measured before and after: growth means a PTX JIT.

Usage: python bench/first_decode.py [--repeat N] [--perf] [--strace]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
backends, threads, src_small, src_big = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
t = time.perf_counter(); out = {}
def mark(name):
    global t
    now = time.perf_counter(); out[name] = round(now - t, 4); t = now
import cupy; cupy.empty(1); cupy.cuda.Device().synchronize(); mark("cupy + context")
from nvidia import nvimgcodec as nv; mark("import nvimgcodec")
kinds = {"hybrid": nv.HYBRID_CPU_GPU, "gpu": nv.GPU_ONLY, "cpu": nv.CPU_ONLY, "hw": nv.HW_GPU_ONLY}
chosen = [nv.Backend(kinds[k]) for k in backends.split(",")]
dec = nv.Decoder(max_num_cpu_threads=threads, backends=chosen); mark("Decoder()")
small, big = open(src_small, "rb").read(), open(src_big, "rb").read()
ok = dec.decode([nv.CodeStream(small)]); cupy.cuda.Device().synchronize(); mark("first decode (tiny)")
out["decoded"] = ok[0] is not None
dec.decode([nv.CodeStream(small)]); cupy.cuda.Device().synchronize(); mark("second decode (tiny)")
img = dec.decode([nv.CodeStream(big)])[0]; cupy.cuda.Device().synchronize(); mark("first decode (1080p)")
enc = nv.Encoder(); mark("Encoder()")
if img is not None:
    enc.encode([img], "jpeg"); cupy.cuda.Device().synchronize(); mark("first encode (1080p)")
dec2 = nv.Decoder(max_num_cpu_threads=threads, backends=chosen); mark("second Decoder()")
dec2.decode([nv.CodeStream(small)]); cupy.cuda.Device().synchronize(); mark("its first decode (tiny)")
print("RESULT " + json.dumps(out))
"""

VARIANTS = [
    ("default", "hybrid,gpu,cpu", 0, {}),
    ("eager module loading", "hybrid,gpu,cpu", 0, {"CUDA_MODULE_LOADING": "EAGER"}),
    ("hybrid only", "hybrid", 0, {}),
    ("hw only", "hw", 0, {}),
    ("cpu only", "cpu", 0, {}),
    ("ext: jpeg + opencv", "hybrid,gpu,cpu", 0, {"NVIMGCODEC_EXTENSIONS_PATH": "SUBSET"}),
    ("threads 1", "hybrid,gpu,cpu", 1, {}),
]


def _images(folder: Path) -> tuple[Path, Path]:
    import numpy as np
    from PIL import Image

    small, big = folder / "tiny.jpg", folder / "hd.jpg"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(small, quality=90)
    Image.open(ROOT / "assets" / "astronaut.jpg").convert("RGB").resize((1920, 1080)).save(big, quality=90)
    return small, big


def _subset_extensions(folder: Path) -> Path:
    from nvidia import nvimgcodec

    src = Path(nvimgcodec.__file__).parent / "extensions"
    dst = folder / "ext"
    dst.mkdir()
    for lib in src.iterdir():
        if lib.name.startswith(("libnvjpeg_ext", "libopencv_ext")):
            os.symlink(lib, dst / lib.name)
    return dst


def _jit_cache_bytes() -> int:
    cache = Path.home() / ".nv" / "ComputeCache"
    return sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) if cache.exists() else 0


def _run(args: list[str], env: dict[str, str], prefix: list[str] | None = None) -> dict:
    proc = subprocess.run((prefix or []) + [sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (proc.stderr or proc.stdout)[-400:]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--perf", action="store_true")
    p.add_argument("--strace", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    opts = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gpuimg-first-decode-"))
    try:
        small, big = _images(work)
        subset = _subset_extensions(work)
        results = {}
        for name, backends, threads, extra in VARIANTS:
            env = dict(os.environ)
            env.update({k: (str(subset) if v == "SUBSET" else v) for k, v in extra.items()})
            jit_before = _jit_cache_bytes()
            runs = [_run([backends, str(threads), str(small), str(big)], env) for _ in range(opts.repeat)]
            good = [r for r in runs if "error" not in r]
            if not good:
                print(f"{name:24s} failed: {runs[0]['error']}")
                continue
            median = {k: statistics.median(r[k] for r in good) for k in good[0] if k != "decoded"}
            median["decoded"] = good[0]["decoded"]
            median["jit cache growth (bytes)"] = _jit_cache_bytes() - jit_before
            results[name] = median
            print(f"{name:24s} " + "  ".join(f"{k}={v}" for k, v in median.items()), flush=True)
        args = ["hybrid,gpu,cpu", "0", str(small), str(big)]
        if opts.perf and shutil.which("perf"):
            data = work / "perf.data"
            _run(args, dict(os.environ), ["perf", "record", "-q", "-F", "999", "-g", "-o", str(data), "--"])
            report = subprocess.run(
                ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "dso", "-g", "none"],
                capture_output=True, text=True,
            )
            print("perf, time by shared object (whole child process):")
            print("\n".join(line for line in report.stdout.splitlines() if line.strip() and not line.startswith("#"))[:4000])
        if opts.strace and shutil.which("strace"):
            trace = work / "strace.txt"
            _run(args, dict(os.environ), ["strace", "-f", "-r", "-e", "trace=openat", "-o", str(trace)])
            lines = [ln for ln in trace.read_text().splitlines() if ".so" in ln and "ENOENT" not in ln]
            print(f"strace: {len(lines)} shared objects opened; the last 40:")
            print("\n".join(lines[-40:]))
        if opts.out:
            opts.out.write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
