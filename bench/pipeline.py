"""Dataset pipeline benchmark (issues 6, 15, 29): files on disk -> decode -> ops -> JPEG
files / tensors, on each dataset class users have, every peer and ratio in one run.

Classes (``--classes``; bench/datasets.py says how each is built: photo crops from assets/
with per-file noise, names shuffled, every file's bytes distinct; made in a process pool
of their own, then read once so the page cache is warm): ``small``, ``hd``, ``phone``,
``4k``, ``mixed``, ``web`` (JPEG, PNG and WebP, some with soft alpha).

W1: decode -> resize shorter side 512 (antialiased) -> center crop 512 -> JPEG q90 ->
write. Figures per class (images/s; each ratio from figures of this run):

1. ``gpuimg process SRC DST --resize-shorter 512 --center-crop 512x512`` as a whole fresh
   process from its start (interpreter start included), default options (no --device
   unless the bench's --device was given), a fresh DST each time; median and best of
   ``--runs``. Peers: OpenCV in one process per core timed from pool start (target >= 2x,
   >= 1.5x on small), torchvision GPU warm (JPEG classes; target >= 1.5x).
2. ``Pipeline.run`` first and second run in ONE fresh process (a child of this script):
   first/second time (target <= 1.25x); the first includes making the Pipeline.
3. Warm ``Pipeline.run`` (after a warm-up run on the same Pipeline) against the decode
   ceiling: the fastest of several nvImageCodec backend sets (its default, gpuimg's
   HARDWARE_FIRST_BACKENDS, hybrid, CUDA, and a split over two decoders in two threads)
   decoding the same bytes from memory, decode only (target >= 0.8x); the winner is named.
4. gpuimg device allocations after the first 10% of the warm run (target 0).
W2: decode -> resize shorter 256 -> center crop 224 -> float32 NCHW normalised (no write):
    ``Pipeline.batches`` against torchvision GPU, batches of 64 (JPEG classes; target >= 2x).
One file (once, a 1080p JPEG): ``gpuimg process one.jpg DST`` from process start, auto
device, ``--device cuda`` and ``--device cpu`` (targets <= 1.0 s with the GPU, <= 0.5 s on
the CPU).

Equal work: OpenCV (bench/cv_peer.py) applies EXIF orientation (phone), keeps gray JPEGs
gray, composites alpha onto white after the crop (gpuimg's default ``keep`` mode does the
same for JPEG output), and uses INTER_AREA to shrink (antialiased). torchvision's CUDA decode
leaves EXIF orientation undone, so its peer turns those images on the device; it decodes
gray JPEGs to RGB (its batched encoder takes 3 channels), a little more work than ours.
torchvision decodes JPEG only: on ``web`` it is not run. Pillow (one process, ``mixed``
only, a subset) converts to RGB and uses bicubic.

Robustness: every step runs on its own; a failing or skipped step gives a row saying so
and the run goes on. Progress lines are printed as it goes, and after every figure the
results are rewritten to ``--out``/pipeline.md and pipeline.json (default $OUT, else out/),
so a run cut off still leaves its figures. ``--time-limit`` skips what is left past it.

--quick: each class's quick count (small 1500, hd 300, phone 100, 4k 100, mixed 500, web
500), --runs 2, one warm OpenCV pass, Pillow on 20 files, and the diagnostics (workers,
decode-only, tv-script) left out; meant to fit a few minutes of one GPU machine.

Usage: python bench/pipeline.py [--quick] [--classes small,web] [--count N] [--runs N]
       [--skip opencv,pillow] [--device auto|cuda|cpu] [--out DIR] [--time-limit S] [--sweep]
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))  # import gpuimg from the checkout
sys.path.insert(0, str(BENCH))  # harness and the peers, also when loaded by the tests

import datasets  # noqa: E402
import harness  # noqa: E402

import gpuimg  # noqa: E402
from gpuimg.codec import HARDWARE_FIRST_BACKENDS  # noqa: E402
from gpuimg.pipeline import Pipeline, PipelineConfig  # noqa: E402

CLASSES = datasets.CLASSES
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
W1_STEPS = [("resize_shorter", {"size": 512}), ("center_crop", {"size": (512, 512)})]
W2_STEPS = [("resize_shorter", {"size": 256}), ("center_crop", {"size": (224, 224)})]
W1_FLAGS = ["--resize-shorter", "512", "--center-crop", "512x512"]
BATCH = 64
# Steps --skip can name; QUICK_SKIP are left out with --quick (diagnostics, not targets).
STEPS = ("one-file", "command", "opencv", "torchvision", "warm", "ceiling", "first-second", "w2", "pillow",
         "workers", "decode-only", "tv-script")
QUICK_SKIP = ("workers", "decode-only", "tv-script")


# --------------------------------------------------------------------------- report


@dataclass
class Target:
    """What a figure should reach: ``of`` the ratio (ours over the peer, "x better") or
    the value itself, compared with ``op`` to ``bound``.

    >>> Target(">=", 2).text(), Target("==", 0, "value", "").text(), Target("<=", 1.0, "value", " s").text()
    ('>= 2x', '== 0', '<= 1 s')
    """

    op: str
    bound: float
    of: str = "ratio"  # "ratio" or "value"
    unit: str = "x"

    def text(self) -> str:
        return f"{self.op} {self.bound:g}{self.unit}"

    def met(self, quantity: float | None) -> bool | None:
        if quantity is None or not math.isfinite(quantity):
            return None
        return {">=": quantity >= self.bound, "<=": quantity <= self.bound, "==": quantity == self.bound}[self.op]


@dataclass
class Figure:
    """One row of the final table. ``status``: empty when measured, else why not (a
    skipped or failed step: "skipped: no GPU", "error: ..."). ``plain_ratio``: the ratio
    is value / peer_value as it stands (first run over second run), not "x better"."""

    cls: str
    name: str
    unit: str
    value: float | None = None
    peer: str = ""
    peer_value: float | None = None
    higher_is_better: bool = True
    target: Target | None = None
    note: str = ""
    status: str = ""
    plain_ratio: bool = False

    @property
    def ratio(self) -> float | None:
        """How many times better ours is than the peer (or value/peer with plain_ratio).

        >>> Figure("hd", "x", "img/s", 300.0, "OpenCV", 100.0).ratio
        3.0
        >>> Figure("hd", "x", "s", 1.2, "second run", 1.0, False, plain_ratio=True).ratio
        1.2
        """
        if self.value is None or self.peer_value is None:
            return None
        if self.plain_ratio:
            return self.value / self.peer_value if self.peer_value else None
        return harness.Row(self.name, self.value, self.unit, self.peer, self.peer_value, self.higher_is_better).ratio

    @property
    def met(self) -> bool | None:
        if self.target is None or self.status:
            return None
        return self.target.met(self.ratio if self.target.of == "ratio" else self.value)

    def cells(self) -> list[str]:
        """class, figure, ours, peer, peer value, ratio, target, met, note (markdown cells)."""
        r = self.ratio
        ratio = "" if r is None else f"{r:.2f}x"
        met = {True: "met", False: "**missed**", None: ""}[self.met]
        if self.status:
            met = self.status if len(self.status) <= 160 else self.status[:157] + "..."
        unit = f" {self.unit}" if self.unit else ""
        ours = "" if self.value is None else (
            str(int(self.value)) if not self.unit and float(self.value).is_integer() else harness.format_value(self.value) + unit)
        cells = [self.cls, self.name, ours, self.peer,
                 "" if self.peer_value is None else harness.format_value(self.peer_value) + unit, ratio,
                 self.target.text() if self.target else "", met, self.note]
        return [c.replace("|", "/").replace("\n", " ") for c in cells]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(ratio=self.ratio, met=self.met, target=self.target.text() if self.target else None)
        return d


class Missing(str):
    """Why a step gave no value ("skipped: ...", "error: ..."): what its rows show."""


@dataclass
class Report:
    """The figures of a run; every :meth:`add` prints the row and rewrites
    ``out/pipeline.md`` and ``out/pipeline.json`` (and ``json_path``), so a run cut off
    leaves what it measured."""

    out: Path | None
    meta: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # per class: ceiling sets, stage times, ...
    json_path: Path | None = None

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        c = fig.cells()
        text = f"{c[1]}: {c[2] or '-'}"
        if fig.peer:
            text += f" | {c[3]}: {c[4] or '-'}" + (f" | {c[5]}" if c[5] else "")
        if fig.target:
            text += f" | target {c[6]}: {c[7] or '-'}"
        elif fig.status:
            text += f" | {fig.status}"
        progress(f"[{fig.cls}] {text}")
        self.save()
        return fig

    def markdown(self) -> str:
        m = self.meta
        lines = [f"# bench/pipeline.py on {m.get('device', '?')}", "",
                 f"{m.get('cpu_cores', '?')} CPU cores; {m.get('date', '')}; git {m.get('git', '?')}; "
                 f"gpuimg device {m.get('bench_device', '?')}; {m.get('settings', '')}", ""]
        head = ["class", "figure", "ours", "peer", "peer value", "ratio", "target", "met", "note"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(f.cells()) + " |" for f in self.figures]
        lines += ["", self.tally(), "",
                  "ratio: ours over the peer, higher is better (for first/second: first run time over second run time)."]
        return "\n".join(lines) + "\n"

    def tally(self) -> str:
        targeted = [f for f in self.figures if f.target]
        met = sum(f.met is True for f in targeted)
        missed = [f"{f.cls} {f.name}" for f in targeted if f.met is False]
        unmeasured = sum(f.met is None for f in targeted)
        return (f"targets: {met} met, {len(missed)} missed, {unmeasured} not measured"
                + (f"; missed: {'; '.join(missed)}" if missed else ""))

    def to_dict(self) -> dict[str, Any]:
        return {"meta": self.meta, "figures": [f.as_dict() for f in self.figures], "extra": self.extra,
                "tally": self.tally()}

    def save(self) -> None:
        for path, text in ((self.out and self.out / "pipeline.md", self.markdown),
                           (self.out and self.out / "pipeline.json", self._json),
                           (self.json_path, self._json)):
            if path is None:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text())
            tmp.replace(path)  # a reader (or a kill) never sees half a file

    def _json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=str) + "\n"


_STARTED = time.perf_counter()


def progress(line: str) -> None:
    """A progress line with the seconds since the bench started, flushed at once."""
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {line}", flush=True)


def machine() -> dict[str, Any]:
    """Device, core count, date and git commit, recorded beside the figures."""
    name = None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20).stdout.strip()
        name = ", ".join(filter(None, (ln.strip() for ln in out.splitlines()))) or None
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=20).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        git = "unknown"
    return {"device": name or harness.device_name(), "cpu_cores": os.cpu_count(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "git": git,
            "versions": harness.versions()}


# --------------------------------------------------------------------------- steps


@dataclass
class Bench:
    """One run's settings and report; :meth:`step` runs a measurement on its own."""

    args: Any
    device: str
    report: Report
    tmp: Path

    def skip_reason(self, step: str, needs_gpu: bool = False) -> str | None:
        if step in self.args.skip:
            return f"skipped: --skip {step}" + (" (--quick)" if step in QUICK_SKIP and self.args.quick else "")
        if needs_gpu and self.device != "cuda":
            return "skipped: no GPU"
        limit = self.args.time_limit
        if limit and time.perf_counter() - _STARTED > limit:
            return f"skipped: past --time-limit {limit:g} s"
        return None

    def step(self, cls: str, step: str, fn: Callable[[], Any], needs_gpu: bool = False) -> Any:
        """``fn()``, or a :class:`Missing` saying why not (skipped, or its error)."""
        reason = self.skip_reason(step, needs_gpu)
        if reason:
            return Missing(reason)
        progress(f"[{cls}] {step} ...")
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as e:  # one step's failure is a row, not the end of the run
            tail = traceback.format_exc().strip().splitlines()[-6:]
            progress(f"[{cls}] {step} FAILED: " + " / ".join(tail))
            return Missing(f"error: {type(e).__name__}: {str(e).strip()[:300]}")
        progress(f"[{cls}] {step} done in {time.perf_counter() - t0:.1f} s")
        return value

    def row(self, cls: str, name: str, unit: str, ours: Any, peer: str = "", theirs: Any = None,
            target: Target | None = None, note: str = "", higher_is_better: bool = True,
            plain_ratio: bool = False) -> Figure:
        """A figure from step results: a :class:`Missing` ours or peer gives its status."""
        status = ""
        if isinstance(ours, Missing):
            status, ours = str(ours), None
        if isinstance(theirs, Missing):
            status, theirs = status or f"peer {theirs}", None
        return self.report.add(Figure(cls, name, unit, ours, peer, theirs, higher_is_better, target, note, status,
                                      plain_ratio))


def _get(value: Any, key: str) -> Any:
    """``value[key]`` of a step's dict result, or the Missing it is."""
    return value if isinstance(value, Missing) else value[key]


def command_runs(src: Path, dst: Path, runs: int, flags: list[str], timeout: float) -> dict[str, float]:
    """Wall seconds of ``gpuimg process SRC DST <flags>`` as a fresh process, ``runs``
    times, each into a fresh DST: best and median."""
    walls = []
    for k in range(runs):
        out = dst / f"run{k}"
        shutil.rmtree(out, ignore_errors=True)
        walls.append(harness.process_wall([sys.executable, "-m", "gpuimg.cli", "process", str(src), str(out), *flags],
                                          timeout=timeout))
        shutil.rmtree(out, ignore_errors=True)  # disk: the full classes write GBs
    return {"best": min(walls), "median": statistics.median(walls), "walls": walls}


def opencv_peer(files: list[Path], dst: Path, timeout: float, repeat: int) -> dict[str, float]:
    """bench/cv_peer.py in its own process: images/s from pool start and warm."""
    listing = dst.parent / "cv-list.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("\n".join(map(str, files)))
    _, out = harness.run_process([sys.executable, str(BENCH / "cv_peer.py"), str(listing), str(dst), str(repeat)],
                                 timeout=timeout)
    shutil.rmtree(dst, ignore_errors=True)
    return json.loads(out.strip().splitlines()[-1])


def first_second_child(argv: list[str]) -> int:
    """In a fresh process (``pipeline.py --first-second-child SRC DST DEVICE``): a Pipeline
    made and run twice over SRC; prints the times as JSON on its last line."""
    src, dst, device = Path(argv[0]), Path(argv[1]), argv[2]
    t0 = time.perf_counter()
    pipe = Pipeline(W1_STEPS, device=device)
    first = pipe.run(src, dst / "first")
    t1 = time.perf_counter()
    second = pipe.run(src, dst / "second")
    t2 = time.perf_counter()
    for s in (first, second):
        if s.failed:
            raise RuntimeError(f"{s.failed} failed: {s.failures[:2]}")
    print(json.dumps({"first_s": t1 - t0, "second_s": t2 - t1, "images": first.processed}))
    return 0


def first_second(src: Path, dst: Path, device: str, timeout: float) -> dict[str, float]:
    wall, out = harness.run_process([sys.executable, str(Path(__file__).resolve()), "--first-second-child", str(src),
                                     str(dst), device], timeout=timeout)
    shutil.rmtree(dst, ignore_errors=True)
    return json.loads(out.strip().splitlines()[-1]) | {"wall_s": wall}


# nvImageCodec decoders are slow to make: one per backend set for the whole run.
_CEILING_DECODERS: dict[str, Any] = {}


def _ceiling_decoder(name: str) -> Any:
    from nvidia import nvimgcodec as nv

    from gpuimg.codec.backends import backend as _backend

    if name not in _CEILING_DECODERS:
        sets: dict[str, Any] = {
            "nvImageCodec default": None,
            "hardware-first": [_backend(nv, b) for b in HARDWARE_FIRST_BACKENDS],
            "hybrid (+cpu)": [nv.Backend(nv.HYBRID_CPU_GPU), nv.Backend(nv.CPU_ONLY)],
            "CUDA (+cpu)": [nv.Backend(nv.GPU_ONLY), nv.Backend(nv.CPU_ONLY)],
        }
        _CEILING_DECODERS[name] = nv.Decoder() if sets[name] is None else nv.Decoder(backends=sets[name])
    return _CEILING_DECODERS[name]


CEILING_SETS = ("nvImageCodec default", "hardware-first", "hybrid (+cpu)", "CUDA (+cpu)")
CEILING_SPLIT = ("hardware-first", "hybrid (+cpu)")  # two decoders in two threads, batches alternated


def _decode_pass(names: tuple[str, ...], datas: list[bytes]) -> tuple[float, int]:
    """Seconds and images decoded of one pass over ``datas`` in batches of 64, the batches
    dealt in turn to one thread per decoder in ``names`` (each with its own stream)."""
    import cupy
    from nvidia import nvimgcodec as nv

    chunks = [datas[k : k + BATCH] for k in range(0, len(datas), BATCH)]
    decoded = [0] * len(names)

    def work(j: int) -> None:
        decoder, stream = _ceiling_decoder(names[j]), cupy.cuda.Stream(non_blocking=True)
        for chunk in chunks[j :: len(names)]:
            out = decoder.decode([nv.CodeStream(d) for d in chunk], cuda_stream=stream.ptr)
            decoded[j] += sum(im is not None for im in out)
        stream.synchronize()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(j,)) for j in range(len(names))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, sum(decoded)


def decode_ceiling(datas: list[bytes]) -> dict[str, Any]:
    """The fastest nvImageCodec decode of ``datas`` from memory over the backend sets (and
    the split): {"rate", "best", "rates"}. Sets that decode the most files win over faster
    ones that decode fewer (those would count less work); the name says when even the
    winner left files undecoded."""
    rates: dict[str, float | str] = {}
    done_by: dict[str, int] = {}
    for names in [(n,) for n in CEILING_SETS] + [CEILING_SPLIT]:
        label = " + ".join(names) + (" (2 threads)" if len(names) > 1 else "")
        try:
            _decode_pass(names, datas[: 2 * BATCH])  # warm: codec init, buffers
            seconds, done = _decode_pass(names, datas)
        except Exception as e:
            rates[label] = f"error: {type(e).__name__}: {e}"
            continue
        rates[label], done_by[label] = done / seconds, done
    if not done_by:
        raise RuntimeError(f"no backend set decoded: {rates}")
    best = max(done_by, key=lambda k: (done_by[k], rates[k]))
    name = best if done_by[best] == len(datas) else f"{best} ({done_by[best]} of {len(datas)} decoded)"
    return {"rate": rates[best], "best": name, "rates": rates}


# --------------------------------------------------------------------------- ours


class _Sampler:
    """GPU utilisation (%) sampled by nvidia-smi every 100 ms while active."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> _Sampler:
        try:
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            threading.Thread(target=self._read, daemon=True).start()
        except OSError:
            self.proc = None
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.values.append(float(line.strip().split()[0]))
            except (ValueError, IndexError):
                pass

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None


def ours_w1(files: list[Path], out: Path, device: str, workers: bool | None = None, keep_stats: bool = True) -> dict:
    """W1 through ``Pipeline.run`` after a warm-up run on a fresh Pipeline (``workers``:
    the run's argument; None is the default a user gets)."""
    pipe = Pipeline(W1_STEPS, device=device)
    # compile kernels, codec init (and the workers, where the run uses them)
    pipe.run(files[: 2 * BATCH], out / "warm", batch_size=BATCH, workers=workers)
    allocs: dict[str, int] = {}
    warm_at = max(1, len(files) // 10)

    def progress(done: int, total: int) -> None:
        if done == warm_at:
            allocs["after_warmup"] = gpuimg.memory_stats(device)["allocations"]
            allocs["warm_index"] = len(gpuimg.recent_allocations(device))

    gpuimg.reset_memory_stats()
    with _Sampler() as util:
        summary = pipe.run(files, out / "w1", batch_size=BATCH, quality=90, progress=progress, workers=workers)
    allocs["end"] = gpuimg.memory_stats(device)["allocations"]
    late = gpuimg.recent_allocations(device)[allocs.get("warm_index", 0):]
    allocs["late"] = sorted({(a.purpose, a.growth) for a in late})  # which buffers still grew
    assert summary.failed == 0, summary.failures[:3]
    return {"rate": summary.images_per_second, "summary": summary, "allocs": allocs, "util": util.mean}


def ours_w2(files: list[Path], device: str) -> float:
    pipe = Pipeline(W2_STEPS, device=device)
    for _ in pipe.batches(files[: 2 * BATCH], BATCH, size=(224, 224), mean=MEAN, std=STD):
        pass
    t0 = time.perf_counter()
    rows = 0
    for tensor, paths in pipe.batches(files, BATCH, size=(224, 224), mean=MEAN, std=STD):
        rows += len(paths)
    _sync(device)
    seconds = time.perf_counter() - t0
    assert rows == len(files), rows
    return rows / seconds


def _sync(device: str) -> None:
    if device == "cuda":
        import cupy

        cupy.cuda.Device().synchronize()


def ours_decode_only_unchecked(datas: list[bytes], device: str) -> float:
    """:func:`ours_decode_only` without the JPEG scan check (diagnostic only: it is what
    keeps corrupt scans from decoding as filled-in pixels)."""
    from gpuimg.codec import _scan_gpu
    from gpuimg.codec.containers import jpeg

    real, real_batched = jpeg.scan_problem, _scan_gpu.DeviceScanCheck.problems
    jpeg.scan_problem = lambda data: None  # the callers look it up on the module at each call
    _scan_gpu.DeviceScanCheck.problems = lambda self, datas, stream: [None] * len(datas)
    try:
        return ours_decode_only(datas, device)
    finally:
        jpeg.scan_problem, _scan_gpu.DeviceScanCheck.problems = real, real_batched


def ours_decode_only(datas: list[bytes], device: str, hardware_first: bool = False) -> float:
    """gpuimg's Decoder.decode_batch into one reused ImageBatch (batches of 64), decode only:
    the Decoder's default backends, or hardware-first (trusted data)."""
    from gpuimg.codec import Decoder

    decoder = Decoder(device, backends=HARDWARE_FIRST_BACKENDS if hardware_first else None)
    batch = None

    def run(items: list[bytes]) -> None:
        nonlocal batch
        for k in range(0, len(items), BATCH):
            batch = decoder.decode_batch(items[k : k + BATCH], batch).images
        _sync(device)

    run(datas[: 2 * BATCH])
    t0 = time.perf_counter()
    run(datas)
    return len(datas) / (time.perf_counter() - t0)


def stage_costs(datas: list[bytes], device: str) -> dict[str, float]:
    """Each stage alone, single thread, in-memory (ms per image): where the time goes."""
    from gpuimg.codec import Decoder, Encoder, info
    from gpuimg.pipeline.process import Processor
    from gpuimg.pipeline.steps import Step

    costs: dict[str, float] = {}
    sample = datas[: 4 * BATCH]
    t0 = time.perf_counter()
    for d in sample:
        info(d)
    costs["header parse (codec.info)"] = (time.perf_counter() - t0) / len(sample) * 1e3
    decoder, encoder = Decoder(device), Encoder(device)
    batches = [decoder.decode_batch(sample[k : k + BATCH]).images for k in range(0, len(sample), BATCH)]
    proc = Processor([Step(s, device) for s in W1_STEPS])
    proc(batches[0], None)
    _sync(device)
    todo = batches[1:] or batches
    for label in ("steps, new shapes each batch", "steps, same shapes again"):
        t0 = time.perf_counter()
        for b in todo:
            result = proc(b, None)
        _sync(device)
        costs[label] = (time.perf_counter() - t0) / (len(todo) * BATCH) * 1e3
    encoder.encode_batch(result, "jpeg", quality=90)
    t0 = time.perf_counter()
    for _ in range(3):
        encoder.encode_batch(result, "jpeg", quality=90)
    costs["encode 512x512 JPEG q90"] = (time.perf_counter() - t0) / (3 * BATCH) * 1e3
    return costs


def sweep(files: list[Path], out: Path, device: str) -> None:
    """W1 under other settings (diagnostic lines, not in the table), each on a fresh
    Pipeline warmed up like the main run: encoding in this process (with and without the
    codec gate) instead of the worker, readers/writers, lanes, batch size, decoder backends
    and preallocation; and decode -> encode without steps."""
    interval = sys.getswitchinterval()
    for label, config, kwargs, switch in (
        ("defaults again", PipelineConfig(), {}, None),
        ("encode worker only (no decode worker)", PipelineConfig(decode_in_worker=False), {}, None),
        ("no worker processes (codec gate on)", PipelineConfig(), dict(workers=False), None),
        ("no worker processes, codec gate off", PipelineConfig(serialize_codecs=False), dict(workers=False), None),
        ("readers 4, writers 2", PipelineConfig(), dict(readers=4, writers=2), None),
        ("2 decode lanes", PipelineConfig(decode_lanes=2), {}, None),
        ("batch 128, max_batch_bytes 1 GiB", PipelineConfig(), dict(batch_size=128, max_batch_bytes=2**30), None),
        # the hardware decoder first (for trusted data only: it fills corrupt scans from earlier images)
        ("decoder: hardware-first (trusted data)", PipelineConfig(decode_backends=HARDWARE_FIRST_BACKENDS), {}, None),
        ("decoder: no preallocation hint", PipelineConfig(preallocate_max_bytes=0), {}, None),
    ):
        sys.setswitchinterval(switch or interval)
        try:
            pipe = Pipeline(W1_STEPS, config=config, device=device)
            pipe.run(files[: 2 * BATCH], out / "warm", **(dict(batch_size=BATCH, workers=True) | kwargs))
            s = pipe.run(files, out / label.replace(" ", "_"), **(dict(batch_size=BATCH, workers=True) | kwargs))
        finally:
            sys.setswitchinterval(interval)
        busy = ", ".join(f"{k} {v * 1e3 / len(files):.2f}" for k, v in sorted(s.stage_seconds.items()))
        print(f"sweep W1 {label}: {s.images_per_second:,.0f} img/s; busy ms/img: {busy}", flush=True)
    pipe = Pipeline([], device=device)
    pipe.run(files[: 2 * BATCH], out / "warm", batch_size=BATCH, workers=True)
    s = pipe.run(files, out / "nosteps", batch_size=BATCH, workers=True)
    print(f"sweep decode -> encode (no steps, full-size JPEG): {s.images_per_second:,.0f} img/s", flush=True)



# --------------------------------------------------------------------------- peers


def _orient_table(files: list[Path]) -> dict[str, tuple[int, tuple[int, int]]]:
    """EXIF orientation and oriented (height, width) per file, for the peer's equal work."""
    from gpuimg.codec import info

    table = {}
    for p in files:
        meta = info(str(p))
        if meta.orientation != 1:
            table[str(p)] = (meta.orientation, (meta.height, meta.width))
    return table


def torchvision_w1(files: list[Path], out: Path, orient: dict) -> float:
    import tv_peer

    tv_peer.w1(files[: 2 * BATCH], out / "warm", orient)
    t0 = time.perf_counter()
    tv_peer.w1(files, out, orient)
    return len(files) / (time.perf_counter() - t0)


def torchvision_w2(files: list[Path], orient: dict) -> float:
    import tv_peer

    tv_peer.w2(files[: 2 * BATCH], orient)
    t0 = time.perf_counter()
    rows = tv_peer.w2(files, orient)
    assert rows == len(files), rows
    return rows / (time.perf_counter() - t0)


def torchvision_script_w1(files: list[Path], out: Path, orient: dict, work: Path) -> float:
    """The torchvision W1 as a whole-process script (bench/tv_peer.py), from process start."""
    import json

    listing, table = work / "tv-list.txt", work / "tv-orient.json"
    listing.write_text("\n".join(map(str, files)))
    table.write_text(json.dumps({k: [o, list(hw)] for k, (o, hw) in orient.items()}))
    wall = harness.process_wall([sys.executable, str(ROOT / "bench" / "tv_peer.py"), "w1", str(listing), str(out), str(table)])
    return len(files) / wall


def pillow_w1(files: list[Path], out: Path) -> float:
    from PIL import Image as PILImage

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for p in files:
        with PILImage.open(p) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = 512 / min(w, h)
            im = im.resize((max(512, round(w * scale)), max(512, round(h * scale))), PILImage.BICUBIC)
            left, top = (im.width - 512) // 2, (im.height - 512) // 2
            im.crop((left, top, left + 512, top + 512)).save(out / p.name, quality=90)
    return len(files) / (time.perf_counter() - t0)




# --------------------------------------------------------------------------- main


def _has_cuda_torch() -> str | None:
    """None when the torchvision GPU peer can run, else why not."""
    try:
        import tv_peer
    except Exception as e:
        return f"skipped: torchvision not importable ({type(e).__name__})"
    return None if tv_peer.available() else "skipped: no CUDA torch"


def command_target(cls: str) -> Target:
    """gpuimg process over OpenCV in one process per core: 1.5x on small, 2x elsewhere."""
    return Target(">=", 1.5 if cls == "small" else 2.0)


def one_file(b: Bench) -> None:
    """``gpuimg process one.jpg DST`` (a 1080p JPEG, no ops) from process start: auto
    device, --device cuda, --device cpu; best and median of --runs."""
    cls = "one-file"
    folder = b.tmp / cls  # DST must be outside SRC's folder (the command refuses it otherwise)
    made = b.step(cls, "one-file", lambda: (folder.mkdir(parents=True, exist_ok=True),
                                          datasets.make_one(("hd", 0, 0, str(folder))))[1])
    one = folder / "00000.jpg"
    for label, flags, needs_gpu in (("auto device", [], False), ("--device cuda", ["--device", "cuda"], True),
                                    ("--device cpu", ["--device", "cpu"], False)):
        gpu_run = needs_gpu or (not flags and b.device == "cuda")
        runs = made if isinstance(made, Missing) else b.step(
            cls, "one-file", lambda f=flags: command_runs(one, b.tmp / "one-file-out", b.args.runs, f, b.args.step_timeout),
            needs_gpu=needs_gpu)
        b.row(cls, f"gpuimg process one.jpg DST, {label}", "s", _get(runs, "median"), higher_is_better=False,
              target=Target("<=", 1.0 if gpu_run else 0.5, "value", " s"),
              note="" if isinstance(runs, Missing) else f"best {runs['best']:.2f} s; median of {len(runs['walls'])}")


def run_class(cls: str, count: int, b: Bench) -> None:
    """Every figure of one dataset class, peers beside ours in the same run."""
    args, device, tmp = b.args, b.device, b.tmp / cls
    src = tmp / "src"
    files = b.step(cls, "dataset", lambda: datasets.generate(src, count, cls, timeout=args.step_timeout))
    if isinstance(files, Missing):
        b.row(cls, "dataset", "", files)
        return
    datas = [p.read_bytes() for p in files]  # also warms the page cache
    kinds: dict[str, int] = {}
    for p in files:
        kinds[p.suffix] = kinds.get(p.suffix, 0) + 1
    progress(f"[{cls}] {CLASSES[cls][2]}: {len(files)} files ({kinds}), {sum(map(len, datas)) / 1e6:.0f} MB")
    b.report.extra.setdefault(cls, {}).update(files=len(files), megabytes=sum(map(len, datas)) / 1e6, kinds=kinds)
    jpeg_only = cls in datasets.JPEG_ONLY
    tv_reason = None if device == "cuda" else "skipped: no GPU"
    tv_reason = tv_reason or (None if jpeg_only else "skipped: torchvision decodes JPEG only") or _has_cuda_torch()
    orient = _orient_table(files) if tv_reason is None else {}

    def tv_step(step: str, fn: Callable[[], Any]) -> Any:
        return Missing(tv_reason) if tv_reason else b.step(cls, step, fn)

    # 1. the whole command, its peers
    flags = W1_FLAGS + (["--device", args.device] if args.device != "auto" else [])
    cmd = b.step(cls, "command", lambda: command_runs(src, tmp / "cmd", args.runs, flags, args.step_timeout))
    cmd_rate = cmd if isinstance(cmd, Missing) else len(files) / cmd["median"]
    cmd_note = "" if isinstance(cmd, Missing) else (
        f"median of {len(cmd['walls'])}; best {len(files) / cmd['best']:,.0f} img/s; from process start")
    cv = b.step(cls, "opencv", lambda: opencv_peer(files, tmp / "cv", args.step_timeout, 1 if args.quick else 3))
    cores = os.cpu_count()
    b.row(cls, "W1 gpuimg process (whole command)", "img/s", cmd_rate, f"OpenCV {cores} processes, from pool start",
          _get(cv, "from_start"), command_target(cls), cmd_note)
    tv1 = tv_step("torchvision", lambda: torchvision_w1(files, tmp / "tv", orient))
    b.row(cls, "W1 gpuimg process (whole command)", "img/s", cmd_rate, "torchvision GPU warm", tv1,
          Target(">=", 1.5) if jpeg_only else None, cmd_note)

    # 3. warm Pipeline.run, the decode ceiling
    w1 = b.step(cls, "warm", lambda: ours_w1(files, tmp / "ours", device))
    if not isinstance(w1, Missing):
        progress(f"[{cls}] ours W1: {w1['summary']}")
        busy = {k: v * 1e3 / len(files) for k, v in sorted(w1["summary"].stage_seconds.items())}
        b.report.extra[cls]["stage_busy_ms_per_image"] = busy
        progress(f"[{cls}] W1 stage busy, ms/image (threads summed): "
                 + ", ".join(f"{k} {v:.2f}" for k, v in busy.items()))
    w1_rate = _get(w1, "rate")
    ceiling = b.step(cls, "ceiling", lambda: decode_ceiling(datas), needs_gpu=True)
    if not isinstance(ceiling, Missing):
        b.report.extra[cls]["decode_ceiling"] = ceiling["rates"]
        progress(f"[{cls}] decode ceiling per backend set: "
                 + "; ".join(f"{k} {v:,.0f}" if isinstance(v, float) else f"{k} {v}" for k, v in ceiling["rates"].items()))
    b.row(cls, "W1 warm Pipeline.run", "img/s", w1_rate, "decode ceiling (best of backends)", _get(ceiling, "rate"),
          Target(">=", 0.8), "" if isinstance(ceiling, Missing) else f"ceiling: {ceiling['best']}; decode only, in memory")
    b.row(cls, "W1 warm Pipeline.run", "img/s", w1_rate, f"OpenCV {cores} processes, warm", _get(cv, "warm"))
    b.row(cls, "W1 warm Pipeline.run", "img/s", w1_rate, "torchvision GPU warm", tv1)
    if not isinstance(w1, Missing):
        allocs = w1["allocs"]
        b.row(cls, "W1 gpuimg allocations after first 10%", "", allocs["end"] - allocs.get("after_warmup", 0),
              higher_is_better=False, target=Target("==", 0, "value", ""),
              note=f"{allocs['end']} in the whole run" + (f"; late: {allocs['late'][:4]}" if allocs.get("late") else ""))
        if w1["util"] is not None:
            b.row(cls, "W1 warm GPU utilisation (nvidia-smi)", "%", w1["util"])

    # 2. first and second run in one fresh process
    fs = b.step(cls, "first-second", lambda: first_second(src, tmp / "fs", device, args.step_timeout))
    b.row(cls, "W1 Pipeline.run first run, fresh process", "s", _get(fs, "first_s"), "second run", _get(fs, "second_s"),
          Target("<=", 1.25), higher_is_better=False, plain_ratio=True,
          note="" if isinstance(fs, Missing) else
          f"first includes making the Pipeline; process {fs['wall_s']:.1f} s in all "
          f"({fs['wall_s'] - fs['first_s'] - fs['second_s']:.1f} s start, imports, exit)")

    # W2
    w2 = b.step(cls, "w2", lambda: ours_w2(files, device))
    tv2 = tv_step("w2", lambda: torchvision_w2(files, orient)) if "w2" not in args.skip else Missing("skipped: --skip w2")
    b.row(cls, "W2 Pipeline.batches (NCHW float)", "img/s", w2, "torchvision GPU W2", tv2,
          Target(">=", 2.0) if jpeg_only else None)

    # diagnostics
    if cls == "mixed" and args.pillow_count:
        subset = files[: args.pillow_count]  # one process: slow, so a subset
        pil = b.step(cls, "pillow", lambda: pillow_w1(subset, tmp / "pil"))
        b.row(cls, "W1 warm Pipeline.run", "img/s", w1_rate, "Pillow 1 process", pil, note=f"Pillow on {len(subset)} files")
    if "tv-script" not in args.skip:
        script = tv_step("tv-script", lambda: torchvision_script_w1(files, tmp / "tv-script", orient, tmp))
        b.row(cls, "W1 gpuimg process (whole command)", "img/s", cmd_rate, "torchvision whole script", script,
              note="both from process start")
    if "workers" not in args.skip:
        for label, workers in (("workers off", False), ("workers on", True)):
            other = b.step(cls, "workers", lambda w=workers, lb=label: ours_w1(files, tmp / f"ours-{lb}", device, workers=w))
            b.row(cls, f"W1 warm Pipeline.run, {label}", "img/s", _get(other, "rate"), "W1 defaults", w1_rate)
    if "decode-only" not in args.skip:
        dec = b.step(cls, "decode-only", lambda: ours_decode_only(datas, device))
        b.row(cls, "gpuimg Decoder.decode_batch only", "img/s", dec, "decode ceiling (best of backends)",
              _get(ceiling, "rate"), note="in-memory bytes, reused batch, default backends")
        if args.sweep:
            hw = b.step(cls, "decode-only", lambda: ours_decode_only(datas, device, True))
            b.row(cls, "gpuimg Decoder, hardware-first (trusted data) only", "img/s", hw, "decode ceiling (best of backends)",
                  _get(ceiling, "rate"))
            unchecked = b.step(cls, "decode-only", lambda: ours_decode_only_unchecked(datas, device))
            b.row(cls, "gpuimg Decoder, JPEG scan check off (diagnostic)", "img/s", unchecked, "decode_batch only", dec,
                  note="what the scan check costs")
    del datas
    if args.sweep:
        b.step(cls, "sweep", lambda: sweep(files, tmp / "sweep", device))
    shutil.rmtree(tmp, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> Any:
    args = harness.parse_args(lambda p: (
        p.add_argument("--classes", default=",".join(CLASSES),
                       help=f"dataset classes, comma-separated (default all: {', '.join(CLASSES)})"),
        p.add_argument("--count", type=int, default=None,
                       help="files per class (default: each class's own; its quick count with --quick)"),
        p.add_argument("--runs", type=int, default=None, help="fresh processes per command figure (3; 2 with --quick)"),
        p.add_argument("--skip", default="", help=f"steps to leave out, comma-separated: {', '.join(STEPS)} "
                                                  f"(--quick also leaves out {', '.join(QUICK_SKIP)})"),
        p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                       help="gpuimg's device (auto: cuda when usable); the command gets --device only when given"),
        p.add_argument("--out", default=None, help="folder for pipeline.md and pipeline.json (default $OUT, else out/)"),
        p.add_argument("--data", default=None, help="folder for the generated datasets (default: a temporary one)"),
        p.add_argument("--time-limit", type=float, default=None,
                       help="seconds after which the steps left are skipped (rows say so)"),
        p.add_argument("--step-timeout", type=float, default=300.0, help="seconds a child process may run"),
        p.add_argument("--pillow-count", type=int, default=None, help="files for the Pillow peer (mixed; 60, 20 quick)"),
        p.add_argument("--sweep", action="store_true", help="also: decoder diagnostics, W1 under other settings"),
    ), argv=argv)
    args.classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    for cls in args.classes:
        try:
            datasets.spec(cls, 0, np.random.default_rng(0))  # an unknown name fails before any work
        except ValueError as e:
            raise SystemExit(f"--classes: {e}") from None
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()} | (set(QUICK_SKIP) if args.quick else set())
    unknown = args.skip - set(STEPS)
    if unknown:
        raise SystemExit(f"--skip: unknown step(s) {', '.join(sorted(unknown))}; known: {', '.join(STEPS)}")
    args.runs = args.runs or (2 if args.quick else 3)
    if args.pillow_count is None:
        args.pillow_count = 20 if args.quick else 60
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--first-second-child"]:
        return first_second_child(argv[1:])
    args = parse_args(argv)
    if args.device == "auto":
        device = "cuda" if harness.gpu_available() else "cpu"
    else:
        device = args.device
    out = Path(args.out or os.environ.get("OUT") or ROOT / "out")
    meta = machine() | {"bench_device": device, "classes": args.classes, "quick": args.quick,
                        "settings": f"--runs {args.runs}, skipped: {', '.join(sorted(args.skip)) or 'nothing'}"}
    report = Report(out, meta, json_path=Path(args.json) if args.json else None)
    progress(f"bench/pipeline.py on {meta['device']} ({os.cpu_count()} CPU cores), gpuimg device {device}, "
             f"git {meta['git']}, {meta['date']}; results -> {out}/pipeline.md")
    tmp = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="gpuimg-bench-pipeline-"))
    b = Bench(args, device, report, tmp)
    try:
        if "one-file" not in args.skip:
            one_file(b)
        for cls in args.classes:
            count = args.count or CLASSES[cls][1 if args.quick else 0]
            report.extra.setdefault(cls, {})["count"] = count
            try:
                run_class(cls, count, b)
            except Exception as e:  # a bug in the bench itself: the other classes still run
                traceback.print_exc()
                b.row(cls, "class aborted", "", Missing(f"error: {type(e).__name__}: {e}"))
    finally:
        if not args.data:
            shutil.rmtree(tmp, ignore_errors=True)
        report.meta["seconds"] = round(time.perf_counter() - _STARTED, 1)
        report.save()
    print(report.markdown(), flush=True)
    progress(f"done; {report.tally()}; wrote {out}/pipeline.md and pipeline.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
