"""Dataset pipeline benchmark (issues 6, 15): files on disk -> decode -> ops -> JPEG files / tensors,
on each dataset class users have.

Classes (``--classes``, see CLASSES; generated from the photos in assets/ with OpenCV in a
process pool, light noise so they compress like photos, shuffled, in a temporary folder;
the page cache is warmed by reading every file once): ``small`` (ImageNet-like), ``hd``
(1080p), ``phone`` (12 MP with EXIF orientation), ``4k``, ``mixed``.

W1: decode -> resize shorter side to 512 (antialiased) -> center crop 512 -> JPEG q90 ->
    write. Ours: ``Pipeline.run`` warm in-process (defaults, workers off, workers on) and
    the whole ``gpuimg process`` command from process start. Peers in the same run:
    torchvision GPU (bench/tv_peer.py: threaded reads, batched decode_jpeg and
    encode_jpeg on CUDA, v2 resize/center_crop), warm and as a whole-process script;
    OpenCV with one process per CPU core; Pillow in one process (mixed, on a subset).
    Ceiling: raw nvImageCodec batch decode (64) of the same bytes, decode only.
W2: decode -> resize shorter 256 -> center crop 224 -> float32 NCHW normalised (no write).
    Ours: ``Pipeline.batches``; peer: torchvision GPU, same steps, batches of 64.
Equal work: torchvision's CUDA decode leaves EXIF orientation undone, so its peer turns
those images on the device. Also per class: stage busy times of our W1 run, gpuimg
allocations after the first 10% of the run, GPU utilisation sampled by nvidia-smi.

Usage: python bench/pipeline.py [--classes small,phone] [--count N] [--quick] [--sweep] [--json PATH]
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # import gpuimg from the checkout

import harness  # noqa: E402

import gpuimg  # noqa: E402
from gpuimg.pipeline import Pipeline, PipelineConfig  # noqa: E402
from gpuimg.codec import HARDWARE_FIRST_BACKENDS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
SOURCES = ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg", "camera_gray.png")
ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
W1_STEPS = [("resize_shorter", {"size": 512}), ("center_crop", {"size": (512, 512)})]
W2_STEPS = [("resize_shorter", {"size": 256}), ("center_crop", {"size": (224, 224)})]
BATCH = 64


# --------------------------------------------------------------------------- dataset

# name -> (default count, what it is)
CLASSES: dict[str, tuple[int, str]] = {
    "small": (3000, "ImageNet-like: sides 200-800 px, q75-95, 15% progressive, 15% 4:4:4, 10% gray"),
    "hd": (600, "1920x1080 q90"),
    "phone": (300, "12 MP phone photos, 4032x3024 q92, half with EXIF orientation 6"),
    "4k": (300, "3840x2160 q90"),
    "mixed": (2000, "half 1920x1080, half 0.3-12 MP of several aspects, q90"),
}


class Spec(NamedTuple):
    width: int
    height: int
    quality: int = 90
    gray: bool = False
    progressive: bool = False
    full_chroma: bool = False  # 4:4:4 instead of 4:2:0
    orientation: int = 1


def _spec(cls: str, i: int, rng: np.random.Generator) -> Spec:
    if cls == "small":
        w, h = (int(v) for v in rng.integers(200, 801, size=2))
        return Spec(w, h, int(rng.integers(75, 96)), gray=i % 10 == 3, progressive=i % 7 == 1, full_chroma=i % 7 == 4)
    if cls == "hd":
        return Spec(1920, 1080)
    if cls == "phone":
        return Spec(4032, 3024, 92, orientation=6 if i % 2 else 1)
    if cls == "4k":
        return Spec(3840, 2160)
    if cls == "mixed":
        if i % 2 == 0:
            return Spec(1920, 1080)
        megapixels = math.exp(rng.uniform(math.log(0.3), math.log(12.0)))
        aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
        width = int(round(math.sqrt(megapixels * 1e6 * aspect)))
        return Spec(width, max(1, int(round(width / aspect))))
    raise ValueError(f"unknown dataset class {cls!r}; known: {', '.join(CLASSES)}")


def with_orientation(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an APP1 Exif segment holding only the Orientation tag, after SOI."""
    import struct

    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def _make_one(job: tuple[str, int, str]) -> int:
    import cv2

    cls, i, folder = job
    rng = np.random.default_rng(i)
    spec = _spec(cls, i, rng)
    src = cv2.imread(str(ASSETS / SOURCES[i % len(SOURCES)]), cv2.IMREAD_COLOR)
    img = cv2.resize(src, (spec.width, spec.height), interpolation=cv2.INTER_CUBIC)
    if i % 3 == 0:
        img = cv2.flip(img, 1)
    noise = np.empty_like(img)
    cv2.randu(noise, 0, 10)  # photo-like detail: smooth upscales compress unrealistically well
    cv2.add(img, noise, dst=img)
    if spec.gray:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    params = [cv2.IMWRITE_JPEG_QUALITY, spec.quality, cv2.IMWRITE_JPEG_PROGRESSIVE, int(spec.progressive)]
    if spec.full_chroma and hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, data = cv2.imencode(".jpg", img, params)
    assert ok
    out = data.tobytes()
    if spec.orientation != 1:
        out = with_orientation(out, spec.orientation)
    (Path(folder) / f"{i:05d}.jpg").write_bytes(out)
    return spec.width * spec.height


def make_dataset(folder: Path, count: int, cls: str = "mixed") -> list[Path]:
    """``count`` JPEGs of dataset class ``cls`` (see CLASSES) in ``folder``, in a shuffled order."""
    folder.mkdir(parents=True, exist_ok=True)
    with mp.get_context("fork").Pool(os.cpu_count(), initializer=harness.one_opencv_thread) as pool:
        pool.map(_make_one, [(cls, i, str(folder)) for i in range(count)], chunksize=8)
    files = sorted(folder.glob("*.jpg"))
    order = np.random.default_rng(1).permutation(len(files))  # sizes interleaved on disk order
    return [files[k] for k in order]


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


def decode_ceiling(datas: list[bytes]) -> float:
    """Raw nvImageCodec batch decode of in-memory files (batches of 64), decode only."""
    import cupy
    from nvidia import nvimgcodec as nv

    decoder = nv.Decoder()
    stream = cupy.cuda.Stream(non_blocking=True)

    def run(items: list[bytes]) -> None:
        for k in range(0, len(items), BATCH):
            decoder.decode([nv.CodeStream(d) for d in items[k : k + BATCH]], cuda_stream=stream.ptr)
        stream.synchronize()

    run(datas[: 2 * BATCH])
    t0 = time.perf_counter()
    run(datas)
    return len(datas) / (time.perf_counter() - t0)


def ours_decode_only_unchecked(datas: list[bytes], device: str) -> float:
    """:func:`ours_decode_only` without the JPEG scan check (diagnostic only: it is what
    keeps corrupt scans from decoding as filled-in pixels)."""
    from gpuimg.codec import _scan_gpu, checks

    real, real_batched = checks.jpeg_scan_problem, _scan_gpu.DeviceScanCheck.problems
    checks.jpeg_scan_problem = lambda data: None
    _scan_gpu.DeviceScanCheck.problems = lambda self, datas, stream: [None] * len(datas)
    try:
        return ours_decode_only(datas, device)
    finally:
        checks.jpeg_scan_problem, _scan_gpu.DeviceScanCheck.problems = real, real_batched


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


def command_w1(src: Path, out: Path, device: str) -> float:
    """``gpuimg process SRC OUT --resize-shorter 512 --center-crop 512x512``: images per
    second of the whole command, from process start."""
    count = len(list(src.glob("*.jpg")))
    wall = harness.process_wall([sys.executable, "-c", "from gpuimg.cli import main; raise SystemExit(main())", "process",
                           str(src), str(out), "--resize-shorter", "512", "--center-crop", "512x512", "--quality", "90",
                           "--device", device, "--no-progress"])
    return count / wall


def torchvision_script_w1(files: list[Path], out: Path, orient: dict, work: Path) -> float:
    """The torchvision W1 as a whole-process script (bench/tv_peer.py), from process start."""
    import json

    listing, table = work / "tv-list.txt", work / "tv-orient.json"
    listing.write_text("\n".join(map(str, files)))
    table.write_text(json.dumps({k: [o, list(hw)] for k, (o, hw) in orient.items()}))
    wall = harness.process_wall([sys.executable, str(ROOT / "bench" / "tv_peer.py"), "w1", str(listing), str(out), str(table)])
    return len(files) / wall


def _cv_one(job: tuple[str, str]) -> None:
    import cv2

    src, dst = job
    img = cv2.imread(src, cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    scale = 512 / min(h, w)
    size = (max(512, round(w * scale)), max(512, round(h * scale)))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (img.shape[0] - 512) // 2, (img.shape[1] - 512) // 2
    ok, data = cv2.imencode(".jpg", img[top : top + 512, left : left + 512], [cv2.IMWRITE_JPEG_QUALITY, 90])
    Path(dst).write_bytes(data.tobytes())


def opencv_w1(files: list[Path], out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(p), str(out / p.name)) for p in files]
    # spawn, not fork: by now this process has CUDA contexts and codec threads.
    with mp.get_context("spawn").Pool(os.cpu_count(), initializer=harness.one_opencv_thread) as pool:
        pool.map(_cv_one, jobs[: os.cpu_count() or 1])
        t0 = time.perf_counter()
        pool.map(_cv_one, jobs, chunksize=4)
        return len(jobs) / (time.perf_counter() - t0)


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


def _has_cuda_torch() -> bool:
    try:
        import tv_peer

        return tv_peer.available()
    except Exception:
        return False


def run_class(cls: str, count: int, tmp: Path, device: str, args: Any, res: harness.Results) -> None:
    """Every W1/W2 figure of one dataset class, peers beside ours in the same run."""
    t0 = time.perf_counter()
    src = tmp / cls / "src"
    files = make_dataset(src, count, cls)
    datas = [p.read_bytes() for p in files]  # also warms the page cache
    mpix = sum(_pixels(d) for d in datas[:200]) / min(200, len(datas)) / 1e6
    print(f"[{cls}] {CLASSES[cls][1]}: {len(files)} JPEGs, {sum(map(len, datas)) / 1e6:.0f} MB, mean {mpix:.1f} MP, "
          f"made in {time.perf_counter() - t0:.1f} s on {os.cpu_count()} cores", flush=True)
    tag = f"[{cls}]"
    gpu_torch = device == "cuda" and _has_cuda_torch()
    orient = _orient_table(files) if gpu_torch else {}

    ceiling = decode_ceiling(datas) if device == "cuda" else None
    decode_only = ours_decode_only(datas, device)
    res.add(f"{tag} gpuimg Decoder.decode_batch only", decode_only, "img/s", "decode ceiling", ceiling,
            note="in-memory bytes, reused batch, default backends")
    if args.sweep:
        res.add(f"{tag} gpuimg Decoder, hardware-first (trusted data) only", ours_decode_only(datas, device, True),
                "img/s", "decode ceiling", ceiling, note="in-memory bytes, reused batch")
        res.add(f"{tag} gpuimg Decoder, JPEG scan check off (diagnostic)", ours_decode_only_unchecked(datas, device),
                "img/s", "decode_batch only", decode_only, note="what the scan check costs")
    del datas

    w1 = ours_w1(files, tmp / cls / "ours", device)
    print(f"{tag} ours W1: {w1['summary']}", flush=True)
    tv1 = torchvision_w1(files, tmp / cls / "tv", orient) if gpu_torch else None
    res.add(f"{tag} W1 in-process (Pipeline.run, defaults)", w1["rate"], "img/s", "torchvision GPU", tv1,
            note="target >= 2x")
    res.add(f"{tag} W1 in-process vs decode ceiling", w1["rate"], "img/s", "decode ceiling", ceiling,
            note="target >= 0.8x")
    for label, workers in (("workers off", False), ("workers on", True)):
        other = ours_w1(files, tmp / cls / f"ours-{label}", device, workers=workers, keep_stats=False)
        res.add(f"{tag} W1 in-process, {label}", other["rate"], "img/s", "W1 defaults", w1["rate"])
    command = command_w1(src, tmp / cls / "cmd", device)
    script = torchvision_script_w1(files, tmp / cls / "tv-script", orient, tmp / cls) if gpu_torch else None
    res.add(f"{tag} W1 whole command (gpuimg process)", command, "img/s", "torchvision whole script", script,
            note="from process start; target >= 1.5x on small")
    cv1 = opencv_w1(files, tmp / cls / "cv")
    res.add(f"{tag} W1 in-process vs OpenCV", w1["rate"], "img/s", f"OpenCV {os.cpu_count()} processes", cv1)
    if cls == "mixed" and args.pillow_count:
        pil1 = pillow_w1(files[: args.pillow_count], tmp / cls / "pil")
        res.add(f"{tag} W1 in-process vs Pillow", w1["rate"], "img/s", "Pillow 1 process", pil1,
                note=f"Pillow on {args.pillow_count} files")
    w2 = ours_w2(files, device)
    tv2 = torchvision_w2(files, orient) if gpu_torch else None
    res.add(f"{tag} W2 decode-resize-crop-normalise NCHW", w2, "img/s", "torchvision GPU", tv2, note="target >= 2x")
    res.add(f"{tag} W2 vs decode ceiling", w2, "img/s", "decode ceiling", ceiling)
    for stage, seconds in sorted(w1["summary"].stage_seconds.items()):
        res.add(f"{tag} W1 stage busy: {stage}", seconds * 1e3 / len(files), "ms", note="per image, threads summed")
    grew = w1["allocs"]["end"] - w1["allocs"].get("after_warmup", 0)
    res.add(f"{tag} W1 gpuimg allocations after first 10%", grew, "allocs", higher_is_better=False,
            note=f"{w1['allocs']['end']} in the whole run")
    if w1["allocs"].get("late"):
        print(f"{tag} buffers allocated after the first 10%: {w1['allocs']['late']}", flush=True)
    if w1["util"] is not None:
        res.add(f"{tag} W1 GPU utilisation (nvidia-smi)", w1["util"], "%", higher_is_better=True)
    if args.sweep:
        sweep(files, tmp / cls / "sweep", device)
    shutil.rmtree(tmp / cls, ignore_errors=True)


def main() -> None:
    args = harness.parse_args(lambda p: (
        p.add_argument("--classes", default=",".join(CLASSES),
                       help=f"dataset classes, comma-separated (default all: {', '.join(CLASSES)})"),
        p.add_argument("--count", type=int, default=None,
                       help="files per class (default: each class's own, 64 with --quick)"),
        p.add_argument("--pillow-count", type=int, default=60, help="files for the (slow) Pillow peer (mixed class)"),
        p.add_argument("--sweep", action="store_true", help="also: decoder diagnostics, W1 under other settings"),
    ))
    device = "cuda" if harness.gpu_available() else "cpu"
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    for cls in classes:
        _spec(cls, 0, np.random.default_rng(0))  # an unknown name fails before any work
    tmp = Path(tempfile.mkdtemp(prefix="gpuimg-bench-pipeline-"))
    json_path = args.json
    try:
        for cls in classes:  # a table per class as soon as it is measured
            count = args.count or (64 if args.quick else CLASSES[cls][0])
            res = harness.Results(f"pipeline, class {cls} (files on disk, page cache warm)")
            run_class(cls, count, tmp, device, args, res)
            args.json = json_path and str(Path(json_path).with_suffix(f".{cls}.json"))
            harness.report(res, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pixels(data: bytes) -> int:
    from gpuimg.codec import info

    meta = info(data)
    return meta.width * meta.height


if __name__ == "__main__":
    main()
