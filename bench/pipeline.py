"""Dataset pipeline benchmark (issue 6): files on disk -> decode -> ops -> JPEG files / tensors.

Dataset: ``--count`` JPEG files (default 2,000) generated from the photos in assets/ with
OpenCV in a process pool: half 1920x1080, half of mixed sizes from 0.3 to 12 megapixels
(log-uniform, several aspect ratios, light noise so they compress like photos), q90,
shuffled, in a temporary folder; the page cache is warmed by reading every file once.

W1: decode -> resize shorter side to 512 (antialiased) -> center crop 512 -> JPEG q90 ->
    write. Ours: ``Pipeline.run``. Peers in the same run: torchvision GPU (decode_jpeg and
    encode_jpeg on CUDA in batches of 64, v2 resize/center_crop per image, a thread pool
    reading and writing), OpenCV with one process per CPU core, Pillow in one process
    (on a subset). Ceiling: raw nvImageCodec batch decode (64) of the same bytes, decode only.
W2: decode -> resize shorter 256 -> center crop 224 -> float32 NCHW normalised (no write).
    Ours: ``Pipeline.batches``; peer: torchvision GPU, same steps, batches of 64.
Also: stage busy times of our W1 run, gpuimg allocations after the first 10% of the run,
and the GPU utilisation sampled by nvidia-smi during our W1 run.

Usage: python bench/pipeline.py [--count N] [--quick] [--json PATH]
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # import gpuimg from the checkout

import harness  # noqa: E402

import gpuimg  # noqa: E402
from gpuimg.pipeline import Pipeline, PipelineConfig  # noqa: E402
from gpuimg.codec import HARDWARE_FIRST_BACKENDS  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SOURCES = ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg", "camera_gray.png")
ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
W1_STEPS = [("resize_shorter", {"size": 512}), ("center_crop", {"size": (512, 512)})]
W2_STEPS = [("resize_shorter", {"size": 256}), ("center_crop", {"size": (224, 224)})]
BATCH = 64


# --------------------------------------------------------------------------- dataset


def _target_size(i: int, rng: np.random.Generator) -> tuple[int, int]:
    """(width, height): even i 1080p, odd i 0.3-12 MP log-uniform with a random aspect."""
    if i % 2 == 0:
        return 1920, 1080
    megapixels = math.exp(rng.uniform(math.log(0.3), math.log(12.0)))
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
    width = int(round(math.sqrt(megapixels * 1e6 * aspect)))
    return width, max(1, int(round(width / aspect)))


def _make_one(job: tuple[int, str]) -> int:
    import cv2

    i, folder = job
    rng = np.random.default_rng(i)
    src = cv2.imread(str(ASSETS / SOURCES[i % len(SOURCES)]), cv2.IMREAD_COLOR)
    width, height = _target_size(i, rng)
    img = cv2.resize(src, (width, height), interpolation=cv2.INTER_CUBIC)
    if i % 3 == 0:
        img = cv2.flip(img, 1)
    noise = np.empty_like(img)
    cv2.randu(noise, 0, 10)  # photo-like detail: smooth upscales compress unrealistically well
    cv2.add(img, noise, dst=img)
    ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    (Path(folder) / f"{i:05d}.jpg").write_bytes(data.tobytes())
    return width * height


def make_dataset(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    with mp.get_context("fork").Pool(os.cpu_count(), initializer=_one_cv_thread) as pool:
        pool.map(_make_one, [(i, str(folder)) for i in range(count)], chunksize=8)
    files = sorted(folder.glob("*.jpg"))
    order = np.random.default_rng(1).permutation(len(files))  # sizes interleaved on disk order
    return [files[k] for k in order]


def _one_cv_thread() -> None:
    import cv2

    cv2.setNumThreads(1)


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


def ours_w1(files: list[Path], out: Path, device: str) -> dict:
    pipe = Pipeline(W1_STEPS, device=device)
    # compile kernels, codec init, the encode worker started (a run uses it once ready)
    pipe.run(files[: 2 * BATCH], out / "warm", batch_size=BATCH, workers=True)
    allocs: dict[str, int] = {}
    warm_at = max(1, len(files) // 10)

    def progress(done: int, total: int) -> None:
        if done == warm_at:
            allocs["after_warmup"] = gpuimg.memory_stats(device)["allocations"]

    gpuimg.reset_memory_stats()
    with _Sampler() as util:
        summary = pipe.run(files, out / "w1", batch_size=BATCH, quality=90, progress=progress, workers=True)
    allocs["end"] = gpuimg.memory_stats(device)["allocations"]
    assert summary.failed == 0, summary.failures[:3]
    return {"rate": summary.images_per_second, "summary": summary, "allocs": allocs, "util": util.mean}


def ours_w2(files: list[Path], device: str) -> float:
    pipe = Pipeline(W2_STEPS, device=device)
    for _ in pipe.batches(files[: 2 * BATCH], BATCH, size=(224, 224), mean=MEAN, std=STD, workers=True):
        pass
    t0 = time.perf_counter()
    rows = 0
    for tensor, paths in pipe.batches(files, BATCH, size=(224, 224), mean=MEAN, std=STD, workers=True):
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


def torchvision_w1(files: list[Path], out: Path) -> float:
    import torch
    from torchvision.io import decode_jpeg, encode_jpeg
    from torchvision.transforms.v2 import functional as F

    out.mkdir(parents=True, exist_ok=True)

    def read(p: Path) -> torch.Tensor:
        return torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8)

    def write(p: Path, t: torch.Tensor) -> None:
        (out / p.name).write_bytes(t.numpy().tobytes())

    def run(items: list[Path]) -> None:
        with ThreadPoolExecutor(8) as pool:
            chunks = [items[k : k + BATCH] for k in range(0, len(items), BATCH)]
            pending = [pool.submit(lambda c=c: [read(p) for p in c]) for c in chunks[:1]]
            writes = []
            for k, chunk in enumerate(chunks):
                datas = pending.pop(0).result()
                if k + 1 < len(chunks):  # read ahead while the GPU works
                    pending.append(pool.submit(lambda c=chunks[k + 1]: [read(p) for p in c]))
                images = decode_jpeg(datas, device="cuda")
                crops = [F.center_crop(F.resize(im, [512], antialias=True), [512, 512]) for im in images]
                encoded = encode_jpeg(crops, quality=90)
                host = [e.cpu() for e in encoded]
                writes += [pool.submit(write, p, h) for p, h in zip(chunk, host)]
            for w in writes:
                w.result()

    run(files[: 2 * BATCH])
    t0 = time.perf_counter()
    run(files)
    return len(files) / (time.perf_counter() - t0)


def torchvision_w2(files: list[Path]) -> float:
    import torch
    from torchvision.io import decode_jpeg
    from torchvision.transforms.v2 import functional as F

    mean = torch.tensor(MEAN, device="cuda").view(1, 3, 1, 1)
    std = torch.tensor(STD, device="cuda").view(1, 3, 1, 1)

    def read(p: Path) -> torch.Tensor:
        return torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8)

    def run(items: list[Path]) -> None:
        with ThreadPoolExecutor(8) as pool:
            chunks = [items[k : k + BATCH] for k in range(0, len(items), BATCH)]
            future = pool.submit(lambda: [read(p) for p in chunks[0]])
            for k, chunk in enumerate(chunks):
                datas = future.result()
                if k + 1 < len(chunks):
                    future = pool.submit(lambda c=chunks[k + 1]: [read(p) for p in c])
                images = decode_jpeg(datas, device="cuda")
                batch = torch.stack([F.center_crop(F.resize(im, [256], antialias=True), [224, 224]) for im in images])
                _ = (batch.float().div_(255) - mean) / std
        torch.cuda.synchronize()

    run(files[: 2 * BATCH])
    t0 = time.perf_counter()
    run(files)
    return len(files) / (time.perf_counter() - t0)


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
    with mp.get_context("spawn").Pool(os.cpu_count(), initializer=_one_cv_thread) as pool:
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
        import torch
        import torchvision  # noqa: F401

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def main() -> None:
    args = harness.parse_args(lambda p: (
        p.add_argument("--count", type=int, default=None, help="dataset files (default 2000, 128 with --quick)"),
        p.add_argument("--pillow-count", type=int, default=120, help="files for the (slow) Pillow peer"),
        p.add_argument("--sweep", action="store_true", help="also: stages alone, W1 under other settings"),
    ))
    device = "cuda" if harness.gpu_available() else "cpu"
    count = args.count or (128 if args.quick else 2000)
    tmp = Path(tempfile.mkdtemp(prefix="gpuimg-bench-pipeline-"))
    res = harness.Results("pipeline (files on disk, page cache warm)")
    try:
        t0 = time.perf_counter()
        files = make_dataset(tmp / "src", count)
        datas = [p.read_bytes() for p in files]  # also warms the page cache
        mpix = sum(_pixels(d) for d in datas[:200]) / min(200, len(datas)) / 1e6
        print(f"dataset: {len(files)} JPEGs, {sum(map(len, datas)) / 1e6:.0f} MB, mean {mpix:.1f} MP "
              f"(first 200), made in {time.perf_counter() - t0:.1f} s on {os.cpu_count()} cores", flush=True)

        ceiling = decode_ceiling(datas) if device == "cuda" else None
        decode_only = ours_decode_only(datas, device)
        decode_hw = ours_decode_only(datas, device, hardware_first=True)
        decode_unchecked = ours_decode_only_unchecked(datas, device)
        w1 = ours_w1(files, tmp / "ours", device)
        print(f"ours W1: {w1['summary']}", flush=True)
        if args.sweep:
            for stage, ms in stage_costs(datas, device).items():
                print(f"stage alone: {stage}: {ms:.3f} ms/img", flush=True)
            sweep(files, tmp / "sweep", device)
        tv1 = torchvision_w1(files, tmp / "tv") if _has_cuda_torch() else None
        cv1 = opencv_w1(files, tmp / "cv")
        pil1 = pillow_w1(files[: args.pillow_count], tmp / "pil")
        w2 = ours_w2(files, device)
        tv2 = torchvision_w2(files) if _has_cuda_torch() else None
        del datas

        res.add("W1 decode-resize-crop-encode-write", w1["rate"], "img/s", "torchvision GPU", tv1)
        res.add("W1 vs raw nvImageCodec decode only", w1["rate"], "img/s", "decode ceiling", ceiling,
                note="target >= 0.8x")
        res.add("gpuimg Decoder.decode_batch only", decode_only, "img/s", "decode ceiling", ceiling,
                note="in-memory bytes, reused batch, default backends")
        res.add("gpuimg Decoder, hardware-first (trusted data) only", decode_hw, "img/s", "decode ceiling", ceiling,
                note="in-memory bytes, reused batch")
        res.add("gpuimg Decoder, JPEG scan check off (diagnostic)", decode_unchecked, "img/s", "decode_batch only", decode_only,
                note="what the scan check (on the device, per batch) costs")
        res.add("W1 vs OpenCV", w1["rate"], "img/s", f"OpenCV {os.cpu_count()} processes", cv1)
        res.add("W1 vs Pillow", w1["rate"], "img/s", "Pillow 1 process", pil1, note=f"Pillow on {args.pillow_count} files")
        res.add("W2 decode-resize-crop-normalise NCHW", w2, "img/s", "torchvision GPU", tv2)
        res.add("W2 vs raw nvImageCodec decode only", w2, "img/s", "decode ceiling", ceiling)
        for stage, seconds in sorted(w1["summary"].stage_seconds.items()):
            res.add(f"W1 stage busy: {stage}", seconds * 1e3 / len(files), "ms", note="per image, threads summed")
        res.add("W1 wall", w1["summary"].seconds * 1e3 / len(files), "ms", note="per image")
        grew = w1["allocs"]["end"] - w1["allocs"].get("after_warmup", 0)
        res.add("W1 gpuimg allocations after first 10%", grew, "allocs", higher_is_better=False,
                note=f"{w1['allocs']['end']} in the whole run (growth policy, mixed sizes)")
        if w1["util"] is not None:
            res.add("W1 GPU utilisation (nvidia-smi)", w1["util"], "%", higher_is_better=True)
        harness.report(res, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pixels(data: bytes) -> int:
    from gpuimg.codec import info

    meta = info(data)
    return meta.width * meta.height


if __name__ == "__main__":
    main()
