"""Start-up benchmark (issue 15): where the wall time of a short ``gpuimg process`` goes.

Each figure is a whole process started from nothing (``python -c ...``), median of
``--repeat`` runs, on one 1920x1080 JPEG made from assets/ (and on ``--many`` copies):

- ``python``: the interpreter alone; ``import gpuimg``: the package import;
- ``process 1 file``: ``gpuimg process one.jpg out --resize-shorter 512 --center-crop 512x512``;
- ``torchvision script``: the same work written with torchvision on the device
  (read_file, decode_jpeg, v2 resize + center_crop, encode_jpeg, write_file), as a whole
  process: the peer a user compares the command with;
- a cProfile of the one-file command (cumulative time, top entries) says where it goes.

Usage: python bench/startup.py [--device cuda|cpu] [--repeat N] [--many N] [--profile]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

TORCHVISION_SCRIPT = r"""
import sys, torch, torchvision
from torchvision.io import decode_jpeg, encode_jpeg, read_file, write_file
from torchvision.transforms import v2
src, dst = sys.argv[1], sys.argv[2]
data = read_file(src)
img = decode_jpeg(data, device="cuda")
img = v2.functional.center_crop(v2.functional.resize(img, 512, antialias=True), [512, 512])
write_file(dst, encode_jpeg(img, quality=90).cpu())
"""


PHASES = r"""
import json, sys, time
t = time.perf_counter()
marks = []
def mark(name):
    global t
    now = time.perf_counter(); marks.append((name, now - t)); t = now
import numpy; mark("import numpy")
import gpuimg; mark("import gpuimg (rest)")
import cupy; mark("import cupy")
cupy.cuda.Device(0).use(); cupy.empty(1); cupy.cuda.Device().synchronize(); mark("CUDA context (first allocation)")
from nvidia import nvimgcodec as nv; mark("import nvimgcodec")
dec = nv.Decoder(); mark("nvimgcodec.Decoder() (default backends)")
del dec
from gpuimg.codec import Decoder, Encoder
gdec = Decoder("cuda"); mark("gpuimg Decoder('cuda') made")
data = open(sys.argv[1], "rb").read()
img = gdec.decode_batch([data]).images; cupy.cuda.Device().synchronize(); mark("first decode_batch (1 file)")
img = gdec.decode_batch([data]).images; cupy.cuda.Device().synchronize(); mark("second decode_batch (1 file)")
from gpuimg.pipeline.steps import Step, check_steps
steps = [Step(("resize_shorter", {"size": 512}), "cuda"), Step(("center_crop", {"size": (512, 512)}), "cuda")]
check_steps(steps, "cuda"); mark("check_steps probe (W1 steps, first kernels)")
check_steps(steps, "cuda"); mark("check_steps probe again")
enc = Encoder("cuda"); mark("gpuimg Encoder('cuda') made")
from gpuimg.ops import geometry
small = geometry.center_crop(geometry.resize_shorter(img[0], 512), (512, 512))
out = enc.encode(small, "jpeg", quality=90); cupy.cuda.Device().synchronize(); mark("first encode 512x512")
print(json.dumps(marks))
"""


# Could start-up overlap? (1) nvImageCodec's import in a thread while this thread imports
# CuPy and makes the CUDA context; (2) does a first decode by one Decoder make another
# Decoder's first decode fast (process-wide initialisation) or not (per decoder)?
OVERLAP = r"""
import json, sys, threading, time
t0 = time.perf_counter()
import numpy, gpuimg
box = {}
def load():
    a = time.perf_counter()
    from nvidia import nvimgcodec
    box["import nvimgcodec in a thread"] = time.perf_counter() - a
th = threading.Thread(target=load); th.start()
a = time.perf_counter()
import cupy
cupy.empty(1); cupy.cuda.Device().synchronize()
box["cupy import + context, meanwhile"] = time.perf_counter() - a
th.join()
box["both, wall"] = time.perf_counter() - a
from gpuimg.codec import Decoder
data = open(sys.argv[1], "rb").read()
tiny = open(sys.argv[2], "rb").read()
for name, payload in (("decoder A, first decode (tiny JPEG)", tiny), ("decoder B, first decode (1080p)", data),
                      ("decoder B, second decode", data)):
    if "decoder A" in name:
        dec = Decoder("cuda")
    elif "first" in name:
        dec = Decoder("cuda")
    a = time.perf_counter(); dec.decode_batch([payload]); cupy.cuda.Device().synchronize()
    box[name] = time.perf_counter() - a
print(json.dumps(box))
"""


# The one-file command as it runs, in one fresh process: when each piece starts and ends
# (seconds since the interpreter reached this script), on which thread.
TIMELINE = r"""
import atexit, json, sys, threading, time
T0 = time.perf_counter()
events = []
def ev(name):
    events.append((round(time.perf_counter() - T0, 3), threading.current_thread().name, name))
def wrap(obj, attr, label):
    real = getattr(obj, attr)
    def timed(*a, **k):
        ev(label + " >")
        try:
            return real(*a, **k)
        finally:
            ev(label + " <")
    setattr(obj, attr, timed)
import gpuimg.cli as cli; ev("gpuimg.cli imported")
from gpuimg import device
from gpuimg.codec import _nvimgcodec, decoder, encoder
from gpuimg.codec.isolation import pool as isolation
from gpuimg.pipeline import api, codecs, sinks, steps
wrap(_nvimgcodec, "load", "nvimgcodec load")
wrap(decoder.Decoder, "__init__", "Decoder()")
wrap(decoder.Decoder, "decode_batch", "decode_batch")
wrap(decoder.Decoder, "warm_up", "warm_up")
wrap(encoder.Encoder, "__init__", "Encoder()")
wrap(sinks, "encode_images", "encode")
wrap(sinks, "atomic_write", "write")
wrap(isolation._Child, "__init__", "isolation child start")
wrap(steps, "check_steps", "steps probe")
wrap(api.Pipeline, "__init__", "Pipeline()")
wrap(api.Pipeline, "run", "Pipeline.run")
wrap(cli, "_job_device", "device choice")
wrap(cli, "_device_line", "device line")
atexit.register(lambda: print("TIMELINE " + json.dumps(events), flush=True))
code = cli.main(sys.argv[1:])
ev("main returned")
"""


def timeline(argv: list[str], env: dict[str, str]) -> tuple[float, list]:
    """(whole-process wall seconds, the events of TIMELINE) for ``gpuimg argv``."""
    import json
    import time

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", TIMELINE, *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("TIMELINE ")]
    if not lines:
        raise RuntimeError(f"timeline failed: {proc.stderr[-800:]}")
    return wall, json.loads(lines[-1][9:])


def phases(src: Path, env: dict[str, str]) -> list[tuple[str, float]]:
    """Seconds of each start-up phase, in order, in a fresh process (see PHASES)."""
    import json

    proc = subprocess.run([sys.executable, "-c", PHASES, str(src)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"phases failed: {proc.stderr[-800:]}")
    return [tuple(m) for m in json.loads(proc.stdout.strip().splitlines()[-1])]


def _median(cmd: list[str], env: dict[str, str], repeat: int, before=None) -> float:
    walls = []
    for _ in range(repeat):
        if before:
            before()
        walls.append(harness.process_wall(cmd, env))
    return statistics.median(walls)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--many", type=int, default=100, help="also time the command on N copies (0: skip)")
    p.add_argument("--profile", action="store_true", help="print a cProfile of the one-file command")
    args = p.parse_args()

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    work = Path(tempfile.mkdtemp(prefix="gpuimg-startup-"))
    try:
        sys.path.insert(0, str(ROOT))
        import numpy as np

        import gpuimg

        photo = gpuimg.read(str(ROOT / "assets" / "astronaut.jpg"), device="cpu")
        from gpuimg.ops import geometry

        big = geometry.resize(photo, (1080, 1920), "bilinear")
        (work / "in").mkdir()
        src = work / "in" / "one.jpg"
        gpuimg.write(big, str(src), quality=90)
        many = work / "in" / "many"
        many.mkdir()
        for i in range(args.many):
            shutil.copy(src, many / f"{i:05d}.jpg")
        del np
        py = sys.executable
        cli = [py, "-c", "from gpuimg.cli import main; raise SystemExit(main())"]
        ops = ["--resize-shorter", "512", "--center-crop", "512x512", "--device", args.device, "--no-progress"]
        out = work / "out"  # beside the inputs, not inside them
        clear = lambda: shutil.rmtree(out, ignore_errors=True)  # noqa: E731
        rows: list[tuple[str, float]] = [
            ("python -c pass", _median([py, "-c", "pass"], env, args.repeat)),
            ("python -c 'import gpuimg'", _median([py, "-c", "import gpuimg"], env, args.repeat)),
            ("gpuimg --version", _median(cli + ["--version"], env, args.repeat)),
            ("gpuimg process, 1 file (1080p)", _median(cli + ["process", str(src), str(out)] + ops, env,
                                                       args.repeat, clear)),
        ]
        if args.device == "cuda":
            no_device = ops[:ops.index("--device")] + ops[ops.index("--device") + 2:]
            rows.append(("gpuimg process, 1 file, --device cpu", _median(
                cli + ["process", str(src), str(out)] + no_device + ["--device", "cpu"], env, args.repeat, clear)))
            rows.append(("gpuimg process, 1 file, no --device (gpuimg chooses)", _median(
                cli + ["process", str(src), str(out)] + no_device, env, args.repeat, clear)))
        if args.many:
            rows.append((f"gpuimg process, {args.many} files (1080p)",
                         _median(cli + ["process", str(many), str(out)] + ops, env, max(1, args.repeat // 2), clear)))
        if args.device == "cuda":
            script = work / "tv.py"
            script.write_text(TORCHVISION_SCRIPT)
            try:
                rows.append(("torchvision script, 1 file (1080p)",
                             _median([py, str(script), str(src), str(work / "tv.jpg")], env, args.repeat)))
            except (RuntimeError, OSError) as exc:
                rows.append((f"torchvision script: {str(exc)[:200]}", float("nan")))
        print(f"# start-up, whole processes, median of {args.repeat} ({args.device})\n")
        print("| what | wall s |\n|---|---|")
        for name, wall in rows:
            print(f"| {name} | {wall:.2f} |")
        if args.device == "cuda":
            for attempt in ("first", "second"):
                print(f"\n## phases, {attempt} fresh process (seconds)\n")
                print("| phase | s |\n|---|---|")
                for name, sec in phases(src, env):
                    print(f"| {name} | {sec:.3f} |")
            import json

            tiny = work / "tiny.jpg"
            gpuimg.write(geometry.resize(photo, (16, 16), "area"), str(tiny), quality=90)
            proc = subprocess.run([sys.executable, "-c", OVERLAP, str(src), str(tiny)], env=env, capture_output=True,
                                  text=True)
            print("\n## could start-up overlap? (seconds, one fresh process)\n")
            if proc.returncode == 0:
                for name, sec in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                    print(f"- {name}: {sec:.3f}")
            else:
                print(f"failed: {proc.stderr[-600:]}")
        for device in (("cuda", "cpu") if args.device == "cuda" else ("cpu",)):
            clear()
            argv = ["process", str(src), str(out)] + ops[:ops.index("--device")] + ["--device", device, "--no-progress"]
            wall, events = timeline(argv, env)
            print(f"\n## timeline of the one-file command, --device {device} (whole process {wall:.2f} s; "
                  "seconds since the script started, thread)\n```")
            print("\n".join(f"{t:7.3f}  {thread:24s} {name}" for t, thread, name in events))
            print("```")
        if args.profile:
            prof = work / "prof.out"
            clear()
            argv = ["gpuimg", "process", str(src), str(out)] + ops
            harness.process_wall([py, "-c", "import cProfile, sys; from gpuimg.cli import main; "
                   f"sys.argv = {argv!r}; cProfile.run('main()', {str(prof)!r})"], env)
            import pstats

            print("\n## cProfile of the one-file command (cumulative, top 40)\n```")
            pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(40)
            print("```")
        imp = subprocess.run(cli[:1] + ["-X", "importtime", "-c", "import gpuimg"], env=env, capture_output=True,
                             text=True).stderr.splitlines()
        worst = sorted((ln for ln in imp if ln.startswith("import time:") and "|" in ln and "cumulative" not in ln),
                       key=lambda ln: -int(ln.split("|")[1]))[:15]
        print("\n## import gpuimg, slowest imports (cumulative microseconds)\n```")
        print("\n".join(worst))
        print("```")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
