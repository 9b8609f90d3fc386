"""Shared benchmark harness for the scripts in bench/.

Scripts are run from the repository root as ``python bench/<name>.py``; Python puts the
script's folder on ``sys.path``, so ``import harness`` works with no package. Typical use::

    import cupy as cp
    import harness

    args = harness.parse_args()
    res = harness.Results("ops")
    img = cp.zeros((2160, 3840, 3), cp.uint8)
    copy = harness.copy_time(img)
    t = harness.time_gpu(lambda: cp.invert(img), repeat=args.repeat)
    res.add("invert 4K", t.median / copy.median, "x copy")
    harness.report(res, args)

Everything degrades to host timing with NumPy when CuPy has no usable GPU, so scripts
still run (with meaningless numbers) on a laptop or in CI.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import importlib.metadata
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

import numpy as np

__all__ = [
    "Timing", "Row", "Results", "gpu_available", "time_gpu", "time_host", "copy_time",
    "device_name", "versions", "parse_args", "report", "format_value",
]


# --------------------------------------------------------------------------- device


@functools.lru_cache(maxsize=None)  # the answer cannot change within a process
def _cupy() -> Any | None:
    """Return the cupy module when a CUDA device is usable, else None."""
    try:
        import cupy
    except Exception:  # not installed, or its CUDA libraries fail to load
        return None
    try:
        # is_available() is False without a driver/device; the device count call can
        # still raise on broken installs, so treat any failure as "no GPU".
        if cupy.cuda.is_available() and cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception:
        pass
    return None


def gpu_available() -> bool:
    """True when CuPy can use a CUDA device.

    >>> gpu_available() in (True, False)
    True
    """
    return _cupy() is not None


def device_name() -> str:
    """Name of the current CUDA device, or ``"cpu"`` when there is none.

    >>> device_name()  # doctest: +SKIP
    'NVIDIA H100 80GB HBM3'
    """
    cp = _cupy()
    if cp is None:
        return "cpu"
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Per-call times in seconds from one measurement.

    ``samples`` holds one value per repeat (each already divided by ``number``).
    ``method`` is ``"cuda-event"`` or ``"perf_counter"``.
    """

    samples: list[float]
    number: int = 1
    method: str = "perf_counter"

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    def __str__(self) -> str:
        return (f"median {format_value(self.median * 1e6)} us, best "
                f"{format_value(self.best * 1e6)} us ({len(self.samples)} x {self.number}, "
                f"{self.method})")


def _check_counts(warmup: int, repeat: int, number: int) -> None:
    if warmup < 0 or repeat < 1 or number < 1:
        raise ValueError(f"need warmup >= 0, repeat >= 1, number >= 1; "
                         f"got {warmup}, {repeat}, {number}")


def time_host(fn: Callable[[], Any], *, warmup: int = 3, repeat: int = 20, number: int = 1,
              sync: Callable[[], Any] | None = None) -> Timing:
    """Wall-clock timing with ``time.perf_counter``.

    Use it for work that synchronises itself (a whole decode -> ops -> encode pipeline
    returning host bytes) or that runs on streams the caller does not own. ``sync``, if
    given, is called inside the timed region after the ``number`` calls (for example
    ``cupy.cuda.Device().synchronize``) so asynchronous work is counted.

    >>> t = time_host(lambda: sum(range(1000)), repeat=5)
    >>> len(t.samples), t.best <= t.median
    (5, True)
    """
    _check_counts(warmup, repeat, number)
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        if sync is not None:
            sync()
        samples.append((time.perf_counter() - t0) / number)
    return Timing(samples, number, "perf_counter")


def one_opencv_thread() -> None:
    """Pool initializer: one OpenCV thread per process, so N processes use N cores."""
    try:
        import cv2
    except ImportError:  # a peer without OpenCV (Pillow) in the same pool
        return
    cv2.setNumThreads(1)


def per_core_rates(fn: Callable[[Any], Any], items: list[Any], *, repeat: int = 3) -> dict[str, float]:
    """Items/s of ``fn(item)`` over ``items`` in one spawned process per core:
    ``from_start``, one pass timed from before the pool starts (what a script using such a
    pool costs a user, worker start and imports included), and ``warm``, the median of
    ``repeat`` further passes (0: none). ``fn`` must pickle by module name (a module on
    sys.path, not one loaded from a file path).

    >>> per_core_rates(abs, [-1, 2], repeat=1)["warm"] > 0  # doctest: +SKIP
    True
    """
    import multiprocessing as mp

    cores = os.cpu_count() or 1
    t0 = time.perf_counter()
    # spawn, not fork: the benches' processes hold a CUDA context and codec threads.
    with mp.get_context("spawn").Pool(cores, initializer=one_opencv_thread) as pool:
        pool.map(fn, items, chunksize=2)
        rates = {"from_start": len(items) / (time.perf_counter() - t0)}
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            pool.map(fn, items, chunksize=2)
            times.append(time.perf_counter() - t0)
    if times:
        rates["warm"] = len(items) / statistics.median(times)
    return rates


def per_core_rate(fn: Callable[[Any], Any], items: list[Any], *, repeat: int = 3) -> float:
    """The ``warm`` figure of :func:`per_core_rates`: items/s in one process per core,
    after a pass that starts every worker."""
    return per_core_rates(fn, items, repeat=max(1, repeat))["warm"]


def time_gpu(fn: Callable[[], Any], *, warmup: int = 3, repeat: int = 20, number: int = 1,
             stream: Any | None = None) -> Timing:
    """Time ``fn`` with CUDA events; per-call seconds in the returned Timing.

    Events are recorded on ``stream`` (default: CuPy's current stream) before and after
    ``number`` back-to-back calls, so the figure is GPU time of the work queued on that
    stream, including any gaps where the GPU waited for Python to launch. A given
    ``stream`` is made current while ``fn`` runs, so CuPy work inside lands on it. Work
    that ``fn`` puts on other streams without ordering it after this one is not counted:
    use :func:`time_host` with a ``sync`` for that.

    Without a usable GPU this falls back to :func:`time_host`.

    >>> import cupy as cp  # doctest: +SKIP
    >>> a = cp.zeros((2160, 3840, 3), cp.uint8)  # doctest: +SKIP
    >>> time_gpu(lambda: cp.invert(a)).median  # doctest: +SKIP
    2.1e-05
    """
    _check_counts(warmup, repeat, number)
    cp = _cupy()
    if cp is None:
        return time_host(fn, warmup=warmup, repeat=repeat, number=number)
    s = stream if stream is not None else cp.cuda.get_current_stream()
    with s:
        for _ in range(warmup):
            fn()
        s.synchronize()
        samples = []
        start, end = cp.cuda.Event(), cp.cuda.Event()
        for _ in range(repeat):
            start.record(s)
            for _ in range(number):
                fn()
            end.record(s)
            end.synchronize()
            samples.append(cp.cuda.get_elapsed_time(start, end) / 1e3 / number)
    return Timing(samples, number, "cuda-event")


def copy_time(nbytes_or_array: int | Any, *, warmup: int = 3, repeat: int = 20,
              number: int = 10) -> Timing:
    """Time a device-to-device copy of the same size; the "x copy" unit of op benchmarks.

    Pass a byte count or an array (NumPy or CuPy; only its shape and dtype are used).
    The copy is ``cupy.copyto`` between two preallocated arrays, so no allocation is
    timed. An op's "x copy" figure is ``op.median / copy.median`` measured in the same
    run; its bandwidth is ``2 * nbytes / copy.median`` (read + write). Without a GPU the
    same is done with NumPy on the host.

    >>> c = copy_time(3840 * 2160 * 3, repeat=3)
    >>> c.median > 0
    True
    """
    cp = _cupy()
    xp = cp if cp is not None else np
    if isinstance(nbytes_or_array, int):
        shape, dtype = (nbytes_or_array,), "uint8"
    else:
        shape, dtype = nbytes_or_array.shape, nbytes_or_array.dtype
    src = xp.empty(shape, dtype)
    dst = xp.empty_like(src)
    if cp is None:
        return time_host(lambda: xp.copyto(dst, src), warmup=warmup, repeat=repeat,
                         number=number)
    return time_gpu(lambda: xp.copyto(dst, src), warmup=warmup, repeat=repeat,
                    number=number)


# --------------------------------------------------------------------------- results

_TIME_UNITS = {"s", "ms", "us", "ns", "x copy"}


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for ``device``'s queued work (a no-op on the CPU).

    >>> synchronizer("cpu")() is None
    True
    """
    if device != "cuda":
        return lambda: None
    import cupy

    return cupy.cuda.Device().synchronize


def _checkout_env() -> dict[str, str]:
    """The environment with the checkout and bench/ leading PYTHONPATH."""
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), str(root / "bench"), env.get("PYTHONPATH", "")]))
    return env


def run_process(cmd: list[str], env: dict[str, str] | None = None, timeout: float | None = None) -> tuple[float, str]:
    """Wall seconds of ``cmd`` run as a new process, from its start to its exit, and its
    stdout; the checkout and bench/ lead PYTHONPATH unless ``env`` is given. RuntimeError
    with the end of its stderr when it fails or runs past ``timeout`` seconds (then killed).

    >>> run_process([sys.executable, "-c", "print(2)"])[1]
    '2\\n'
    """
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=_checkout_env() if env is None else env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        tail = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        raise RuntimeError(f"{' '.join(cmd[:4])}... ran past {timeout:.0f} s and was killed: {tail[-800:]}") from None
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}: {proc.stderr[-800:]}")
    return wall, proc.stdout


def process_wall(cmd: list[str], env: dict[str, str] | None = None, timeout: float | None = None) -> float:
    """Wall seconds of ``cmd`` run as a new process, from its start to its exit (what a
    user waits for); see :func:`run_process`.

    >>> process_wall([sys.executable, "-c", "pass"]) > 0
    True
    """
    return run_process(cmd, env, timeout)[0]


def _unit_kind(unit: str) -> str:
    """'time' (lower is better), 'rate' (higher is better) or 'other'."""
    u = unit.strip().lower()
    if u in _TIME_UNITS or u.endswith("/call"):
        return "time"
    if u.endswith("/s"):  # img/s, GB/s, MP/s
        return "rate"
    return "other"


@dataclass
class Row:
    """One figure of a benchmark, ours and optionally a peer's, in the same unit."""

    name: str
    value: float
    unit: str
    peer_name: str | None = None
    peer_value: float | None = None
    higher_is_better: bool = False
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """How many times better ours is than the peer (>1: ours better), or None.

        For times and throughputs this reads "x faster than peer".
        """
        if self.peer_value is None or not self.value or not self.peer_value:
            return None
        if self.higher_is_better:
            return self.value / self.peer_value
        return self.peer_value / self.value

    def ratio_text(self) -> str:
        r = self.ratio
        if r is None:
            return ""
        word = "faster" if _unit_kind(self.unit) in ("time", "rate") else "better"
        # Keep one direction for every row, but make a loss hard to misread.
        return f"{r:.2f}x {word}" + (" (ours behind)" if r < 1 else "")


def format_value(v: float | None) -> str:
    """Compact number: thousands separators for large values, 3 significant digits else.

    >>> format_value(6268.4), format_value(18.53), format_value(0.01234)
    ('6,268', '18.5', '0.0123')
    """
    if v is None:
        return ""
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _dist_version(exact: Iterable[str] = (), prefixes: Iterable[str] = ()) -> str | None:
    """'name version' of the first installed distribution with one of the ``exact``
    names or a name starting with one of ``prefixes`` (names normalised as pip does).

    Reads package metadata instead of importing, because importing nvimgcodec on a
    machine without its CUDA libraries prints loader errors.
    """
    exact, prefixes = set(exact), tuple(prefixes)
    for dist in importlib.metadata.distributions():
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
        if name in exact or (prefixes and name.startswith(prefixes)):
            return f"{name} {dist.version}"
    return None


def versions() -> dict[str, str | None]:
    """Versions worth recording beside benchmark numbers.

    >>> sorted(versions())
    ['cupy', 'numpy', 'nvimgcodec', 'platform', 'python']
    """
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": _dist_version(exact=["numpy"]),
        "cupy": _dist_version(exact=["cupy"], prefixes=["cupy-cuda", "cupy-rocm"]),
        "nvimgcodec": _dist_version(prefixes=["nvidia-nvimgcodec-"]),
    }


def _infer_higher_is_better(unit: str) -> bool:
    kind = _unit_kind(unit)
    if kind == "other":
        raise ValueError(f"cannot tell whether higher is better for unit {unit!r}; "
                         f"pass higher_is_better=")
    return kind == "rate"


@dataclass
class Results:
    """Collects benchmark figures, prints them as a table and saves them as JSON.

    >>> res = Results("decode")
    >>> row = res.add("batch 64", 6200.0, "img/s", peer_name="torchvision",
    ...               peer_value=5031.0)
    >>> round(row.ratio, 2)
    1.23
    """

    title: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    # Filled from a saved file by from_json; save_json records the live environment.
    info: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: float, unit: str, peer_name: str | None = None,
            peer_value: float | None = None, higher_is_better: bool | None = None,
            note: str = "") -> Row:
        """Add one figure. ``higher_is_better`` defaults from the unit: times
        (s, ms, us, ns, "x copy") are lower-is-better, rates ("…/s") higher-is-better;
        any other unit must say.

        >>> Results().add("blur", 1.2, "ms", "cv-cuda", 3.6).ratio_text()
        '3.00x faster'
        """
        if higher_is_better is None:
            higher_is_better = _infer_higher_is_better(unit)
        row = Row(name, float(value), unit, peer_name,
                  None if peer_value is None else float(peer_value),
                  bool(higher_is_better), note)
        self.rows.append(row)
        return row

    def table(self) -> str:
        """The aligned plain-text table that :meth:`print_table` prints."""
        header = ["figure", "ours", "peer", "peer value", "ratio"]
        lines = [header]
        for r in self.rows:
            peer_val = f"{format_value(r.peer_value)} {r.unit}" if r.peer_value is not None else ""
            lines.append([r.name, f"{format_value(r.value)} {r.unit}", r.peer_name or "",
                          peer_val, r.ratio_text()])
        has_notes = any(r.note for r in self.rows)
        if has_notes:
            header.append("note")
            for line, r in zip(lines[1:], self.rows):
                line.append(r.note)
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        # Names and text left-aligned, numbers right-aligned.
        right = {1, 3}
        out = []
        title = f"{self.title} on {device_name()}" if self.title else f"on {device_name()}"
        out.append(title)
        for k, line in enumerate(lines):
            cells = [c.rjust(w) if i in right else c.ljust(w)
                     for i, (c, w) in enumerate(zip(line, widths))]
            out.append(" | ".join(cells).rstrip())
            if k == 0:
                out.append("-+-".join("-" * w for w in widths))
        out.append("ratio: how many times better ours is than the peer (>1: ours better); "
                   "for times and throughputs read it as 'x faster than peer'.")
        return "\n".join(out)

    def print_table(self, file: TextIO | None = None) -> None:
        """Print the table (figure | ours | peer | peer value | ratio [| note]).

        >>> r = Results("demo"); _ = r.add("invert", 1.3, "x copy")
        >>> r.print_table()  # doctest: +SKIP
        """
        print(self.table(), file=file if file is not None else sys.stdout)

    def to_dict(self) -> dict[str, Any]:
        """Everything save_json writes: environment, settings and rows with ratios."""
        rows = []
        for r in self.rows:
            d = asdict(r)
            d["ratio"] = r.ratio
            rows.append(d)
        return {
            "title": self.title,
            "device": device_name(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(),
            "meta": self.meta,
            "rows": rows,
        }

    def save_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON (parent folders are created); return the path.

        >>> Results("x").save_json("/tmp/x.json")  # doctest: +SKIP
        """
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return p

    @classmethod
    def from_json(cls, path: str | Path) -> "Results":
        """Load a file written by :meth:`save_json` (e.g. to compare runs).

        The recorded device, date and versions end up in ``info``.

        >>> old = Results.from_json("out/ops.json")  # doctest: +SKIP
        """
        d = json.loads(Path(path).read_text())
        fields = set(Row.__dataclass_fields__)
        rows = [Row(**{k: v for k, v in r.items() if k in fields}) for r in d["rows"]]
        info = {k: d.get(k) for k in ("device", "date", "versions")}
        return cls(d.get("title", ""), d.get("meta", {}), rows, info)


# --------------------------------------------------------------------------- command line


def parse_args(extra: Callable[[argparse.ArgumentParser], Any] | None = None,
               argv: list[str] | None = None, description: str | None = None
               ) -> argparse.Namespace:
    """The common command line of bench scripts: ``--json PATH``, ``--quick``, ``--repeat``.

    ``extra`` may add script-specific options to the parser. ``repeat`` is resolved:
    20 by default, 3 with ``--quick``, or what ``--repeat`` says.

    >>> a = parse_args(lambda p: p.add_argument("--batch", type=int, default=64),
    ...                argv=["--quick"])
    >>> a.quick, a.repeat, a.batch, a.json
    (True, 3, 64, None)
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", metavar="PATH", default=None,
                   help="also save the results as JSON to PATH")
    p.add_argument("--quick", action="store_true",
                   help="short settings for smoke runs (CI, notebooks)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed repeats per figure (default 20, or 3 with --quick)")
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 20
    return args


def report(results: Results, args: argparse.Namespace) -> None:
    """Print the table and, when ``--json`` was given, save the JSON file.

    >>> report(res, parse_args())  # doctest: +SKIP
    """
    results.print_table()
    if getattr(args, "json", None):
        path = results.save_json(args.json)
        print(f"saved {path}")
