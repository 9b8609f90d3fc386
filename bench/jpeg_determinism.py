"""Is a corrupt JPEG's GPU decode unwritten, or just different from call to call?

The fuzz harness calls a success "unwritten" when decoding into a buffer pre-filled with
0x00 and into one pre-filled with 0xFF gives different pixels. On the GPU, gpuimg's canary
overwrites the buffer before every decode, so both runs start from the same contents: a
difference can then only come from the decoder itself. This script separates the two
causes for every JPEG in ``tests/repro/fuzz`` (and any given files):

- ``same fill``: decode 5 times into the same pre-filled buffer with each decoder setup
  ("default": gpuimg's hardware + hybrid split; "hw", "hybrid": one backend alone) and
  count the decodes that differ from the first (nondeterminism of that setup);
- ``fills``: decode into 0x00- and 0xFF-filled buffers with each setup; a difference
  there but not under ``same fill`` points at unwritten pixels.

- ``synced``: the same-fill decodes again, each followed by a device-wide synchronisation
  before reading (a difference only without it points at a read racing the decode);
- ``raw``: nvImageCodec alone (no gpuimg), each setup, fresh output each call;
- ``vs Pillow``: values more than 16 off libjpeg's decode (Pillow) in the first decode;
- ``context``: the file decoded alone right after an unrelated photo, after another one,
  and in one batch behind each of them: values differing from the first decode (a
  difference means the decoder hands back state left by earlier images);
- ``--speed``: batch-64 decode rates of each setup on 1080p and ImageNet-sized JPEGs made
  from ``assets/`` (the cost of choosing one setup).

One line per file and setup: ok/error, and the differing value counts. Exits 0.

Usage: python bench/jpeg_determinism.py [--device cuda|cpu] [FILE ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # import gpuimg from the checkout

import numpy as np  # noqa: E402

import gpuimg  # noqa: E402
from gpuimg.codec import Decoder  # noqa: E402

SETUPS = {"default": None, "hw": ["hw", "cpu"], "hybrid": ["hybrid", "cpu"], "hw-first": [("hw", 1.0), "hybrid", "cpu"]}


def _decode(dec: Decoder, data: bytes, fill: int, shape: tuple[int, ...], synced: bool = False) -> np.ndarray | str:
    out = gpuimg.Image.empty(*shape, np.uint8, device=dec.device)
    out.array[...] = fill
    try:
        img = dec.decode(data, out=out)
    except gpuimg.GpuImgError as exc:
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    if synced and dec.device == "cuda":
        import cupy

        cupy.cuda.runtime.deviceSynchronize()
    return img.numpy()


def _raw(data: bytes, backends: list[str] | None, repeat: int) -> str:
    """Differing value counts between fresh raw nvImageCodec decodes of ``data``."""
    import cupy
    from nvidia import nvimgcodec as nv

    kinds = {"hw": nv.HW_GPU_ONLY, "hybrid": nv.HYBRID_CPU_GPU, "cpu": nv.CPU_ONLY}
    names = [b if isinstance(b, str) else b[0] for b in backends or []]
    dec = nv.Decoder() if backends is None else nv.Decoder(backends=[nv.Backend(kinds[b]) for b in names])
    runs = []
    for _ in range(repeat):
        img = dec.decode(data)
        if img is None:
            return "raw: None"
        runs.append(cupy.asarray(img).get())
        cupy.cuda.runtime.deviceSynchronize()
    return f"raw: {[int(np.count_nonzero(r != runs[0])) for r in runs[1:]]}"


def _photos() -> list[bytes]:
    return [p.read_bytes() for p in sorted((ROOT / "assets").glob("*.jpg"))]


def _resized(data: bytes, size: tuple[int, int]) -> bytes:
    import io

    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.open(io.BytesIO(data)).convert("RGB").resize(size, PILImage.BICUBIC).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _corrupt_large() -> dict[str, bytes]:
    """Scan-corrupted photos at 1080p and 4K (the repro files are all small, and nvJPEG
    takes other paths for large images): bytes deleted from the scan, bytes set to 0xFF."""
    photo = _photos()[0]
    made = {}
    for name, size in (("1080p", (1920, 1080)), ("4k", (3840, 2160))):
        data = _resized(photo, size)
        scan = data.find(b"\xff\xda")
        at = scan + (len(data) - scan) * 2 // 5
        made[f"{name}-delete256"] = data[:at] + data[at + 256:]
        made[f"{name}-delete4096"] = data[:at] + data[at + 4096:]
        made[f"{name}-truncated-half"] = data[: scan + (len(data) - scan) // 2] + b"\xff\xd9"
    return made


def _context(dec: Decoder, data: bytes, first: np.ndarray) -> list[int | str]:
    """Differences of ``data``'s decode from ``first`` after and beside unrelated photos
    of the same size."""
    counts: list[int | str] = []
    for other in [_resized(p, (first.shape[1], first.shape[0])) for p in _photos()[1:3]]:
        try:
            dec.decode(other)
            counts.append(int(np.count_nonzero(dec.decode(data).numpy() != first)))
            res = dec.decode_batch([other, data, other])
            counts.append(int(np.count_nonzero(res.images[1].numpy() != first)) if res.ok else "failed")
        except gpuimg.GpuImgError as exc:
            counts.append(f"error {str(exc)[:60]}")
    return counts


def _speed(setups: dict[str, list[str] | None], device: str) -> None:
    """Batch-64 decode rates per setup (1080p and ~500x375 JPEGs from assets/)."""
    import io
    import time

    from PIL import Image as PILImage

    sets = {}
    for name, size in (("1080p", (1920, 1080)), ("500x375", (500, 375))):
        files = []
        for data in _photos():
            buf = io.BytesIO()
            PILImage.open(io.BytesIO(data)).convert("RGB").resize(size, PILImage.BICUBIC).save(buf, "JPEG", quality=90)
            files.append(buf.getvalue())
        sets[name] = (files * 64)[:64]
    for setup, backends in setups.items():
        dec = Decoder(device, backends=backends)
        for name, files in sets.items():
            res = dec.decode_batch(files)
            batch = res.images
            for _ in range(3):
                dec.decode_batch(files, out=batch)
            _sync(device)
            t0 = time.perf_counter()
            n = 10
            for _ in range(n):
                dec.decode_batch(files, out=batch)
            _sync(device)
            rate = n * len(files) / (time.perf_counter() - t0)
            print(f"speed {setup:8} {name:8} batch 64: {rate:8.0f} img/s")


def _sync(device: str) -> None:
    if device == "cuda":
        import cupy

        cupy.cuda.runtime.deviceSynchronize()


def _pillow(data: bytes) -> np.ndarray | None:
    try:
        import io

        from PIL import Image as PILImage

        return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))
    except Exception:
        return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", type=Path)
    p.add_argument("--device", default=None, help="cuda (default where usable) or cpu")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--speed", action="store_true", help="also time batch decode per setup")
    args = p.parse_args()
    device = args.device or ("cuda" if gpuimg.device.cuda_available() else "cpu")
    paths = args.files or sorted((ROOT / "tests" / "repro" / "fuzz").glob("*.jpg"))
    files = [(p.name, p.read_bytes()) for p in paths] + ([] if args.files else list(_corrupt_large().items()))
    setups = {"default": None} if device == "cpu" else SETUPS
    decoders = {name: Decoder(device, backends=backends) for name, backends in setups.items()}
    print(f"device {device}: {gpuimg.device.device_report()}")
    for label, data in files:
        for name, dec in decoders.items():
            try:
                shape = dec.decode(data).shape
            except gpuimg.GpuImgError as exc:
                print(f"{label:32} {name:8} error: {str(exc)[:100]}")
                continue
            runs = [_decode(dec, data, 0, shape) for _ in range(args.repeat)]
            if any(isinstance(r, str) for r in runs):
                print(f"{label:32} {name:8} some decodes failed: {next(r for r in runs if isinstance(r, str))}")
                continue
            first = runs[0]
            same = [int(np.count_nonzero(r != first)) for r in runs[1:]]
            other = _decode(dec, data, 255, shape)
            fills = "error" if isinstance(other, str) else int(np.count_nonzero(other != first))
            synced = [_decode(dec, data, 0, shape, synced=True) for _ in range(args.repeat)]
            synced_diff = [r if isinstance(r, str) else int(np.count_nonzero(r != first)) for r in synced]
            raw = _raw(data, setups[name], args.repeat) if device == "cuda" else "-"
            ref = _pillow(data)
            off = "n/a" if ref is None or ref.shape != first.shape else int(np.count_nonzero(np.abs(ref.astype(int) - first) > 16))
            print(
                f"{label:32} {name:8} same fill: {same} values differ; 0x00 vs 0xFF fill: {fills}; "
                f"synced: {synced_diff}; {raw}; vs Pillow >16: {off} of {first.size}; "
                f"context: {_context(dec, data, first)}"
            )
    if args.speed:
        _speed(setups, device)


if __name__ == "__main__":
    main()
