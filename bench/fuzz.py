"""Fuzz harness: mutated files of every format through ``read``, ``read_batch`` and the
pipeline, in long-lived worker processes with time and memory limits.

What is measured, per input (counts per class and per format, inputs/s):

- ``decoded``: every call returned pixels, and they passed the checks below.
- ``clean``: a call raised a :class:`gpuimg.GpuImgError` (and nothing worse happened).
- ``other``: a call raised some other exception (type and message recorded), or a batch
  error that is not a GpuImgError, or a pipeline run that lost track of the bad file.
- ``crash``: the worker died (signal or exit status); it is restarted, the run goes on.
- ``hang``: no answer within ``--timeout`` s; the worker is killed and restarted.
- ``memory``: MemoryError, or the worker's peak RSS during the input grew by more than
  ``4 x decoded bytes + 200 MB`` plus the harness's own copies of the result
  (``HARNESS_COPIES`` x decoded bytes; peak from VmHWM in /proc/self/status, reset before each
  input through /proc/self/clear_refs; ru_maxrss where that is refused).
- ``unwritten``: a decode reported success but not every pixel was written by the
  decoder: the input is decoded again into an ``out=`` Image pre-filled with 0x00 and
  then with 0xFF (modes rgb and unchanged); any difference between the two, or from the
  fresh decode, is a result with unwritten (or nondeterministic) pixels.
- ``batch-lost``: ``read_batch([good, mutated, good2])`` lost a good item or decoded it
  differently from decoding it alone, or raised instead of listing the bad item; or the
  pipeline (every ``--pipeline-every``-th input: a folder with the mutated file and a good
  one) did not write the good output.

An input takes the worst class it earned (crash > hang > memory > unwritten > batch-lost
> other > decoded > clean). Every non-clean input is saved to ``--save`` (the bytes plus
one line of ``findings.jsonl``) so it can become a regression test.

Seeds are made in memory from assets/ (64-200 px, deterministic by ``--seed``): JPEG
(baseline, progressive, EXIF orientation 6, gray, CMYK), PNG (RGB, RGBA, gray, 16-bit,
palette, eXIf, APNG), WebP (lossy, lossless, alpha, EXIF), BMP (24, 32, 8-bit palette,
16-bit 565), TIFF (none, LZW, deflate, multi-strip, tiled, 16-bit), JPEG 2000 (JP2 and raw
codestream, Pillow/OpenJPEG), PNM (PGM, PPM, 16-bit PGM, ASCII), and the formats Pillow
decodes: GIF (palette with transparency, animated), ICO (PNG and BMP entries), TGA (RGB,
RLE RGBA), PSD (gray, RGB, RGBA; written by hand). Plus every file of
``--extra`` (default: the regression files of a folder beside the checkout, when present;
tests/test_fuzz.py passes tests/repro). The first inputs are the seeds
unchanged; the rest are 1-4 stacked mutations (bit flips, byte sets, truncation, inserts,
deletes, splices of two seeds, and format-aware field edits: PNG chunks, JPEG segments
and EXIF, RIFF/VP8X, TIFF tags, BMP headers, JP2 boxes and SIZ, PNM header numbers).

Memory limits: the parent samples each busy worker's RSS (/proc/PID/status, every 20 ms)
and kills it when it passes its idle RSS by ``--memory-mb`` (default 3000): a ``memory``
result. Each worker also
sets RLIMIT_AS to ``--address-space-mb`` (default 16000) on the CPU as a backstop (not
with ``--device cuda``: the CUDA driver reserves far more address space than it uses).
RLIMIT_AS alone would hide the worst inputs: under a 3000 MB RLIMIT_AS the 4 GB
allocation of tests/repro/png-idat-length-4gb.png fails at once and comes back as a
clean DecodeError, so the address-space cap sits well above the RSS limit. An idle CPU
worker (gpuimg + nvImageCodec imported, every seed decoded once) holds about 225 MB of
address space and 56 MB RSS.

Workers are started once and reused; a crashed, hung or oversized one is replaced. With
``--spares N`` (default 4 on cuda, 0 on cpu) N standby workers are started ahead, so a
replacement is at hand at once: a CPU worker starts in about 0.3 s, a GPU worker in 8-27 s
(its first decode loads the GPU codecs: 7.5-10 s; more while 16 others run). The report
gives the start time (``worker_start_s``) and the restarts.

Measured (gpuimg at b4748b8, with its open decode bugs):
- 2-core CPU machine, 2 workers: 300 inputs in 10-11 s with the tests/repro seeds
  (their mutations crash the decoder or grow to the memory limit; ~16 restarts), 1.7 s
  without them (176 inputs/s, 134 per busy worker); 3,000 inputs in 68 s with them.
- one H200 + 16 cores, 16 workers, --device cuda: 65 inputs/s without the repro seeds
  (6,739 inputs in 103 s, 29 restarts, start-up included), 18-33 inputs/s with them. The
  restarts (crashes, memory kills) bound the GPU rate: while those bugs are open a
  100,000-input GPU run takes about 25 minutes (or more), not 8.

A saved input replays with ``gpuimg.read(Path(file).read_bytes(), device=...)``; its line
in findings.jsonl says which call (``op``/stage) failed and how.

Exit status 1 when any crash, hang, memory, unwritten, batch-lost or other occurred.

Usage: python bench/fuzz.py [--count N] [--seed S] [--device cpu|cuda] [--workers N]
       [--formats jpeg,png,...] [--timeout S] [--memory-mb MB] [--address-space-mb MB]
       [--pipeline-every K] [--spares N] [--progress]
       [--extra DIR] [--save DIR] [--json PATH]
Python API: ``run_fuzz(count=..., ...) -> dict`` (what ``--json`` writes).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import pickle
import random
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent

FORMATS = ("jpeg", "png", "webp", "bmp", "tiff", "jpeg2k", "pnm", "gif", "ico", "tga", "psd")
EXT = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif", "jpeg2k": ".jp2", "pnm": ".pnm",
       "gif": ".gif", "ico": ".ico", "tga": ".tga", "psd": ".psd"}
CLASSES = ("decoded", "clean", "other", "batch-lost", "unwritten", "memory", "hang", "crash")
BAD = ("crash", "hang", "memory", "unwritten", "batch-lost", "other")
_RANK = {c: i for i, c in enumerate(("clean", "decoded", "other", "batch-lost", "unwritten", "memory", "hang", "crash"))}
SELFTEST_ENV = "GPUIMG_FUZZ_SELFTEST"
HARNESS_COPIES = 5  # decoded copies a worker holds at once while checking one read
SELFTEST_PREFIX = b"GPUIMG-FUZZ-SELFTEST:"
PHOTOS = ("astronaut.jpg", "chelsea.png", "coffee.jpg", "rocket.jpg", "coffee.png")


# =========================================================================== seeds


def _photos(rng: random.Random) -> dict[str, Any]:
    """Small RGB/RGBA/gray/16-bit PIL images from assets/ (64-200 px a side)."""
    from PIL import Image as PILImage

    def small(name: str, mode: str | None = "RGB") -> Any:
        with PILImage.open(ROOT / "assets" / name) as im:
            im = im.convert(mode) if mode else im.copy()
        w, h = rng.randint(64, 200), rng.randint(64, 200)
        return im.resize((w, h), PILImage.Resampling.BILINEAR if im.mode != "I;16" else PILImage.Resampling.NEAREST)

    rgb = [small(n) for n in PHOTOS]
    out = {"rgb": rgb, "rgba": small("coffee_rgba.png", "RGBA"), "gray": small("camera_gray.png", "L")}
    g16 = small("chelsea_gray16.png", None)
    if g16.mode not in ("I;16", "I"):
        g16 = g16.convert("I")
    out["gray16"] = g16
    return out


def _pil(im: Any, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _psd(pixels: Any) -> bytes:
    """A minimal 8-bit gray or RGB(A) PSD (Pillow cannot write one): header, empty sections, raw planes."""
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
    h, w, c = pixels.shape
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, c, h, w, 8, 3 if c >= 3 else 1)
    return head + struct.pack(">IIIH", 0, 0, 0, 0) + b"".join(pixels[..., k].tobytes() for k in range(c))


def _exif(orientation: int = 6) -> bytes:
    from PIL import Image as PILImage

    ex = PILImage.Exif()
    ex[0x0112] = orientation
    ex[0x010F] = "gpuimg-fuzz"
    return ex.tobytes()


def _bmp16(arr: Any) -> bytes:
    """A 16-bit BI_BITFIELDS (RGB565) BMP, bottom-up (Pillow cannot write one)."""
    import numpy as np

    h, w, _ = arr.shape
    a = arr.astype(np.uint16)
    px = ((a[..., 0] >> 3) << 11) | ((a[..., 1] >> 2) << 5) | (a[..., 2] >> 3)
    row = w * 2
    pad = (-row) % 4
    rows = b"".join(px[y].astype("<u2").tobytes() + b"\0" * pad for y in range(h - 1, -1, -1))
    off = 14 + 40 + 12
    hdr = b"BM" + struct.pack("<IHHI", off + len(rows), 0, 0, off)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 16, 3, len(rows), 2835, 2835, 0, 0)
    return hdr + info + struct.pack("<III", 0xF800, 0x07E0, 0x001F) + rows


def _tifffile(arr: Any, **kw: Any) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def _ascii_pnm(arr: Any) -> bytes:
    h, w, c = arr.shape
    magic = b"P3" if c == 3 else b"P2"
    body = " ".join(str(int(v)) for v in arr.reshape(-1))
    return magic + f"\n{w} {h}\n255\n".encode() + body.encode() + b"\n"


def make_seeds(seed: int = 0, formats: Sequence[str] = FORMATS) -> list[tuple[str, str, bytes]]:
    """``(name, format, bytes)`` for every seed of ``formats``, deterministic by ``seed``."""
    import numpy as np
    from PIL import Image as PILImage

    rng = random.Random(f"seeds:{seed}")
    ph = _photos(rng)
    rgb, rgba, gray, g16 = ph["rgb"], ph["rgba"], ph["gray"], ph["gray16"]
    g16a = np.asarray(g16).astype(np.uint16)
    rgb16 = (np.asarray(rgb[1]).astype(np.uint16) * 257)
    makers: dict[str, list[tuple[str, Callable[[], bytes]]]] = {
        "jpeg": [
            ("baseline", lambda: _pil(rgb[0], "JPEG", quality=85)),
            ("progressive", lambda: _pil(rgb[1], "JPEG", quality=80, progressive=True)),
            ("exif6", lambda: _pil(rgb[2], "JPEG", quality=90, exif=_exif(6))),
            ("gray", lambda: _pil(gray, "JPEG", quality=85)),
            ("cmyk", lambda: _pil(rgb[3].convert("CMYK"), "JPEG", quality=85)),
            ("444", lambda: _pil(rgb[4], "JPEG", quality=95, subsampling=0)),
        ],
        "png": [
            ("rgb", lambda: _pil(rgb[0], "PNG")),
            ("rgba", lambda: _pil(rgba, "PNG")),
            ("gray", lambda: _pil(gray, "PNG")),
            ("gray16", lambda: _pil(g16, "PNG")),
            ("palette", lambda: _pil(rgb[1].quantize(64), "PNG")),
            ("exif", lambda: _pil(rgb[2], "PNG", exif=_exif(6))),
            ("apng", lambda: _pil(rgb[3], "PNG", save_all=True, append_images=[rgb[3].transpose(0)], duration=100)),
        ],
        "webp": [
            ("lossy", lambda: _pil(rgb[0], "WEBP", quality=80)),
            ("lossless", lambda: _pil(rgb[1], "WEBP", lossless=True)),
            ("alpha", lambda: _pil(rgba, "WEBP", quality=80)),
            ("exif", lambda: _pil(rgb[2], "WEBP", quality=80, exif=_exif(6))),
        ],
        "bmp": [
            ("24", lambda: _pil(rgb[0], "BMP")),
            ("32", lambda: _pil(rgba, "BMP")),
            ("8pal", lambda: _pil(rgb[1].quantize(200), "BMP")),
            ("16", lambda: _bmp16(np.asarray(rgb[2]))),
        ],
        "tiff": [
            ("raw", lambda: _pil(rgb[0], "TIFF")),
            ("lzw", lambda: _pil(rgb[1], "TIFF", compression="tiff_lzw")),
            ("deflate", lambda: _pil(rgb[2], "TIFF", compression="tiff_adobe_deflate")),
            ("strips", lambda: _tifffile(np.asarray(rgb[3]), photometric="rgb", rowsperstrip=16)),
            ("tiled", lambda: _tifffile(np.asarray(rgb[4]), photometric="rgb", tile=(32, 32))),
            ("gray16", lambda: _tifffile(g16a, photometric="minisblack")),
            ("rgb16", lambda: _tifffile(rgb16, photometric="rgb")),
        ],
        "jpeg2k": [
            ("jp2", lambda: _pil(rgb[0], "JPEG2000", no_jp2=False)),
            ("j2k", lambda: _pil(rgb[1], "JPEG2000", no_jp2=True)),
            ("jp2-lossy", lambda: _pil(rgb[2], "JPEG2000", quality_mode="rates", quality_layers=[20], irreversible=True)),
            ("jp2-gray", lambda: _pil(gray, "JPEG2000")),
        ],
        "pnm": [
            ("ppm", lambda: _pil(rgb[0], "PPM")),
            ("pgm", lambda: _pil(gray, "PPM")),
            ("pgm16", lambda: _pil(g16, "PPM")),
            ("ascii", lambda: _ascii_pnm(np.asarray(rgb[1].resize((24, 16))))),
        ],
        "gif": [
            ("palette-transparent", lambda: _pil(rgb[0].quantize(20), "GIF", transparency=2)),
            ("animated", lambda: _pil(rgb[1], "GIF", save_all=True, append_images=[rgb[2]], duration=40)),
        ],
        "ico": [
            ("sizes", lambda: _pil(rgba.resize((48, 48)), "ICO", sizes=[(16, 16), (48, 48)])),
            ("bmp", lambda: _pil(rgba.resize((32, 32)), "ICO", sizes=[(32, 32)], bitmap_format="bmp")),
        ],
        "tga": [("rgb", lambda: _pil(rgb[0], "TGA")), ("rle-rgba", lambda: _pil(rgba, "TGA", compression="tga_rle"))],
        "psd": [("rgb", lambda: _psd(np.asarray(rgb[1]))), ("rgba", lambda: _psd(np.asarray(rgba))),
                ("gray", lambda: _psd(np.asarray(gray)))],
    }
    del PILImage
    seeds = []
    for fmt in formats:
        for name, make in makers[fmt]:
            try:
                seeds.append((f"{fmt}-{name}", fmt, make()))
            except Exception as exc:  # a writer missing from this Pillow build: say so, go on
                print(f"fuzz: seed {fmt}-{name} not made: {type(exc).__name__}: {exc}", file=sys.stderr)
    return seeds


def sniff(data: bytes, name: str = "") -> str | None:
    """The format of ``data`` from its magic number (then its file name), or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or data[:4] == b"\xff\x4f\xff\x51":
        return "jpeg2k"
    if data[:2] == b"BM":
        return "bmp"
    if data[:1] == b"P" and data[1:2] in b"123456":
        return "pnm"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"8BPS":
        return "psd"
    if data[:4] == b"\x00\x00\x01\x00" or (data[:4] == b"\x00\x00\x02\x00" and not name.lower().endswith(".tga")):
        return "ico"
    ext = os.path.splitext(name)[1].lower()
    return next((f for f, e in EXT.items() if e == ext), {".jpeg": "jpeg", ".tiff": "tiff", ".j2k": "jpeg2k",
                                                          ".ppm": "pnm", ".pgm": "pnm"}.get(ext))


def extra_seeds(folder: str | os.PathLike | None, formats: Sequence[str] = FORMATS) -> list[tuple[str, str, bytes]]:
    """Every file of ``folder`` (README/JSON files skipped) whose format is in ``formats``."""
    if folder is None or not Path(folder).is_dir():
        return []
    out = []
    for p in sorted(Path(folder).iterdir()):
        if not p.is_file() or p.suffix.lower() in (".md", ".txt", ".json", ".jsonl"):
            continue
        data = p.read_bytes()
        fmt = sniff(data, p.name)
        if fmt in formats:
            out.append((f"extra:{p.name}", fmt, data))
    return out


# =========================================================================== mutators

U32 = (0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x100000, 0x7FFFFFFF,
       0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)


def _interesting(rng: random.Random, old: int, bits: int) -> int:
    mask = (1 << bits) - 1
    r = rng.random()
    if r < 0.45:
        v = rng.choice(U32)
    elif r < 0.75:
        v = old + rng.choice((-2, -1, 1, 2, 8, -8, 64))
    elif r < 0.9:
        v = rng.choice((old * 2, old // 2, old * 16, old * 1000))
    else:
        v = rng.getrandbits(bits)
    return v & mask


def _put(buf: bytearray, off: int, size: int, value: int, big: bool) -> None:
    if 0 <= off and off + size <= len(buf):
        buf[off:off + size] = value.to_bytes(size, "big" if big else "little")


def _get(buf: bytes, off: int, size: int, big: bool) -> int:
    return int.from_bytes(buf[off:off + size], "big" if big else "little")


def _edit_int(rng: random.Random, buf: bytearray, off: int, size: int, big: bool) -> str:
    if off < 0 or off + size > len(buf):
        return "no-op"
    old = _get(buf, off, size, big)
    new = _interesting(rng, old, size * 8)
    _put(buf, off, size, new, big)
    return f"@{off}:{old}->{new}"


# --- generic
def m_bitflip(rng: random.Random, d: bytearray, fmt: str) -> str:
    n = rng.choice((1, 1, 2, 4, 8, 32))
    for _ in range(n):
        i = rng.randrange(len(d))
        d[i] ^= 1 << rng.randrange(8)
    return f"bitflip x{n}"


def m_byteset(rng: random.Random, d: bytearray, fmt: str) -> str:
    v = rng.choice((0, 0xFF, None))
    n = rng.choice((1, 1, 2, 4, 16))
    start = rng.randrange(len(d))
    for i in range(start, min(len(d), start + n)):
        d[i] = rng.randrange(256) if v is None else v
    return f"byteset {n}@{start}={v}"


def m_truncate(rng: random.Random, d: bytearray, fmt: str) -> str:
    cut = rng.choice((rng.randrange(len(d)), len(d) - rng.randrange(1, 64), rng.randrange(min(len(d), 300))))
    cut = max(1, cut)
    del d[cut:]
    return f"truncate at {cut}"


def m_insert(rng: random.Random, d: bytearray, fmt: str) -> str:
    i = rng.randrange(len(d) + 1)
    n = rng.choice((1, 4, 16, 256))
    d[i:i] = bytes(rng.randrange(256) for _ in range(n)) if rng.random() < 0.5 else d[i:i + n]
    return f"insert {n}@{i}"


def m_delete(rng: random.Random, d: bytearray, fmt: str) -> str:
    i = rng.randrange(len(d))
    n = rng.choice((1, 4, 16, 256))
    del d[i:i + n]
    return f"delete {n}@{i}"


# --- PNG
def _png_chunks(d: bytes) -> list[tuple[int, int, bytes]]:
    """(offset of the length field, data length, type) of each chunk."""
    out, pos = [], 8
    while pos + 8 <= len(d):
        n = _get(d, pos, 4, True)
        out.append((pos, n, bytes(d[pos + 4:pos + 8])))
        if n > len(d):
            break
        pos += 12 + n
    return out


def _png_fix_crc(d: bytearray, off: int) -> None:
    n = _get(d, off, 4, True)
    if off + 12 + n <= len(d):
        _put(d, off + 8 + n, 4, zlib.crc32(bytes(d[off + 4:off + 8 + n])), True)


def m_png(rng: random.Random, d: bytearray, fmt: str) -> str:
    ch = _png_chunks(d)
    if not ch:
        return "no-op"
    fix = rng.random() < 0.75
    op = rng.choice(("len", "ihdr", "ihdr", "depth", "ctype", "dup", "del", "swap", "insert", "actl"))
    ihdr = next((c for c in ch if c[2] == b"IHDR"), None)
    if op == "len":
        off = rng.choice(ch)[0]
        return "png chunk length " + _edit_int(rng, d, off, 4, True)
    if op in ("ihdr", "depth", "ctype") and ihdr is not None:
        base = ihdr[0] + 8
        if op == "ihdr":
            desc = "png IHDR " + rng.choice(("width", "height")) + " "
            desc += _edit_int(rng, d, base + (0 if "width" in desc else 4), 4, True)
        elif op == "depth":
            d[base + 8] = rng.choice((0, 1, 2, 4, 8, 16, 3, 32, rng.randrange(256)))
            desc = f"png bit depth {d[base + 8]}"
        else:
            d[base + 9] = rng.choice((0, 2, 3, 4, 6, 1, 5, 7, rng.randrange(256)))
            desc = f"png colour type {d[base + 9]}"
        if fix:
            _png_fix_crc(d, ihdr[0])
        return desc + (" crc-fixed" if fix else "")
    if op == "actl":
        for c in ch:
            if c[2] in (b"acTL", b"fcTL"):
                desc = f"png {c[2].decode()} field " + _edit_int(rng, d, c[0] + 8 + 4 * rng.randrange(min(6, c[1] // 4 or 1)), 4, True)
                if fix:
                    _png_fix_crc(d, c[0])
                return desc
        op = "dup"
    whole = [(o, n, t) for o, n, t in ch if o + 12 + n <= len(d)]
    if not whole:
        return "no-op"
    o, n, t = rng.choice(whole)
    blob = bytes(d[o:o + 12 + n])
    if op == "dup":
        d[o + 12 + n:o + 12 + n] = blob
        return f"png duplicate {t!r}"
    if op == "del":
        del d[o:o + 12 + n]
        return f"png delete {t!r}"
    if op == "swap" and len(whole) > 1:
        o2, n2, t2 = rng.choice(whole)
        if o2 != o:
            a, b = sorted(((o, n), (o2, n2)))
            ba, bb = bytes(d[a[0]:a[0] + 12 + a[1]]), bytes(d[b[0]:b[0] + 12 + b[1]])
            d[b[0]:b[0] + 12 + b[1]] = ba
            d[a[0]:a[0] + 12 + a[1]] = bb
            return f"png swap {t!r} {t2!r}"
    typ = rng.choice((b"IHDR", b"PLTE", b"tRNS", b"eXIf", b"IDAT", b"IEND", b"acTL", b"fcTL", b"gAMA", b"sBIT", b"zzzz"))
    body = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 4, 13, 26, 64))))
    if typ == b"eXIf" and rng.random() < 0.7:
        body = _exif(rng.choice((0, 1, 6, 8, 9, 255)))
    chunk = struct.pack(">I", len(body)) + typ + body + struct.pack(">I", zlib.crc32(typ + body))
    d[o:o] = chunk
    return f"png insert {typ!r} ({len(body)} B)"


# --- JPEG
def _jpeg_segments(d: bytes) -> list[tuple[int, int, int]]:
    """(offset of the marker, marker byte, segment length) up to and with SOS."""
    out, pos = [], 2
    while pos + 4 <= len(d) and d[pos] == 0xFF:
        m = d[pos + 1]
        if m in (0x01, *range(0xD0, 0xD8)):
            pos += 2
            continue
        n = _get(d, pos + 2, 2, True)
        out.append((pos, m, n))
        if m == 0xDA:
            break
        pos += 2 + n
    return out


def _exif_ifd(d: bytes, tiff: int) -> tuple[bool, int] | None:
    """(big endian, offset of IFD0) of the TIFF structure at ``tiff``."""
    bo = d[tiff:tiff + 2]
    if bo not in (b"II", b"MM"):
        return None
    big = bo == b"MM"
    return big, tiff + _get(d, tiff + 4, 4, big)


def _ifd_entries(d: bytearray, tiff: int, limit: int) -> tuple[bool, int, list[int]] | None:
    """(big-endian, IFD0 offset, offsets of its first ``limit`` whole entries) of the TIFF
    structure at ``tiff``, or None where there is none."""
    r = _exif_ifd(d, tiff)
    if r is None:
        return None
    big, ifd = r
    if ifd + 2 > len(d):
        return None
    n = _get(d, ifd, 2, big)
    return big, ifd, [ifd + 2 + 12 * i for i in range(min(n, limit)) if ifd + 14 + 12 * i <= len(d)]


def _tiff_edit(rng: random.Random, d: bytearray, tiff: int, what: str) -> str:
    """Edit an IFD0 entry (count, type, value, orientation) of the TIFF at ``tiff``."""
    r = _ifd_entries(d, tiff, 200)
    if r is None:
        return "no-op"
    big, ifd, entries = r
    op = rng.choice(("count", "entry-count", "entry-type", "entry-value", "orientation", "orientation", "tag"))
    if op == "count" or not entries:
        return f"{what} IFD entry count " + _edit_int(rng, d, ifd, 2, big)
    orient = [e for e in entries if _get(d, e, 2, big) == 0x0112]
    if op == "orientation" and orient:
        e = orient[0]
        v = rng.choice((0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xFFFF))
        _put(d, e + 8, 2, v, big)
        return f"{what} orientation={v}"
    e = rng.choice(entries)
    tag = _get(d, e, 2, big)
    if op == "entry-type":
        return f"{what} tag {tag} type " + _edit_int(rng, d, e + 2, 2, big)
    if op == "entry-count":
        return f"{what} tag {tag} count " + _edit_int(rng, d, e + 4, 4, big)
    if op == "tag":
        new = rng.choice((256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 322, 323, 324, 325, 338, 339, 0x0112, 0x8769))
        _put(d, e, 2, new, big)
        return f"{what} tag {tag}->{new}"
    typ = _get(d, e + 2, 2, big)
    if typ == 3 and _get(d, e + 4, 4, big) == 1:
        return f"{what} tag {tag} short value " + _edit_int(rng, d, e + 8, 2, big)
    return f"{what} tag {tag} value " + _edit_int(rng, d, e + 8, 4, big)


def m_jpeg(rng: random.Random, d: bytearray, fmt: str) -> str:
    segs = _jpeg_segments(d)
    if not segs:
        return "no-op"
    op = rng.choice(("len", "sof", "sof", "exif", "exif", "exif", "table", "sos"))
    sof = [s for s in segs if s[1] in (0xC0, 0xC1, 0xC2, 0xC3)]
    app1 = [s for s in segs if s[1] == 0xE1 and d[s[0] + 4:s[0] + 10] == b"Exif\0\0"]
    if op == "sof" and sof:
        o = sof[0][0] + 4
        field = rng.choice(("precision", "height", "width", "ncomp", "sampling", "qtable"))
        if field == "precision":
            d[o] = rng.choice((0, 1, 8, 12, 16, 255))
            return f"jpeg SOF precision {d[o]}"
        if field in ("height", "width"):
            return f"jpeg SOF {field} " + _edit_int(rng, d, o + (1 if field == "height" else 3), 2, True)
        if field == "ncomp":
            d[o + 5] = rng.choice((0, 1, 2, 3, 4, 5, 255))
            return f"jpeg SOF components {d[o + 5]}"
        k = rng.randrange(max(1, d[o + 5] if o + 5 < len(d) else 1))
        p = o + 6 + 3 * k + (1 if field == "sampling" else 2)
        if p < len(d):
            d[p] = rng.choice((0x11, 0x22, 0x21, 0x12, 0x44, 0x00, 0xFF, 0x03, rng.randrange(256)))
            return f"jpeg SOF comp {k} {field}={d[p]:#x}"
        return "no-op"
    if op == "exif" and app1:
        return _tiff_edit(rng, d, app1[0][0] + 10, "jpeg EXIF")
    if op == "exif" and rng.random() < 0.5:  # add an EXIF segment to a file without one
        ex = b"Exif\0\0" + _exif(rng.choice((3, 6, 8)))
        d[2:2] = b"\xff\xe1" + struct.pack(">H", len(ex) + 2) + ex
        return "jpeg insert EXIF"
    if op == "table":
        tabs = [s for s in segs if s[1] in (0xC4, 0xDB)]
        if tabs:
            o = rng.choice(tabs)[0] + 4
            if o < len(d):
                d[o] = rng.choice((0x00, 0x01, 0x10, 0x11, 0x04, 0x14, 0xFF, rng.randrange(256)))
                return f"jpeg table id byte {d[o]:#x}"
    if op == "sos":
        sos = [s for s in segs if s[1] == 0xDA]
        if sos:
            o = sos[0][0] + 4
            return "jpeg SOS byte " + _edit_int(rng, d, o + rng.randrange(max(1, sos[0][2] - 2)), 1, True)
    s = rng.choice(segs)
    return f"jpeg segment {s[1]:#x} length " + _edit_int(rng, d, s[0] + 2, 2, True)


# --- RIFF / WebP
def _riff_chunks(d: bytes) -> list[tuple[int, bytes, int]]:
    out, pos = [], 12
    while pos + 8 <= len(d):
        n = _get(d, pos + 4, 4, False)
        out.append((pos, bytes(d[pos:pos + 4]), n))
        pos += 8 + n + (n & 1)
    return out


def m_webp(rng: random.Random, d: bytearray, fmt: str) -> str:
    ch = _riff_chunks(d)
    op = rng.choice(("riff", "chunk", "chunk", "vp8x", "vp8x", "dims", "exif", "addvp8x"))
    vp8x = [c for c in ch if c[1] == b"VP8X"]
    if op == "riff" or not ch:
        return "webp RIFF size " + _edit_int(rng, d, 4, 4, False)
    if op == "vp8x" and vp8x:
        o = vp8x[0][0] + 8
        f = rng.choice(("flags", "w", "h"))
        if f == "flags":
            d[o] = rng.choice((0, 0x08, 0x10, 0x20, 0x02, 0x3E, 0xFF, rng.randrange(256)))
            return f"webp VP8X flags {d[o]:#x}"
        return f"webp VP8X canvas {f} " + _edit_int(rng, d, o + (4 if f == "w" else 7), 3, False)
    if op == "dims":
        for c in ch:
            if c[1] == b"VP8 ":
                return "webp VP8 frame dim " + _edit_int(rng, d, c[0] + 8 + 6 + 2 * rng.randrange(2), 2, False)
            if c[1] == b"VP8L":
                return "webp VP8L header " + _edit_int(rng, d, c[0] + 9, 4, False)
    if op == "exif":
        ex = [c for c in ch if c[1] == b"EXIF"]
        if ex:
            o = ex[0][0] + 8
            if d[o:o + 6] == b"Exif\0\0":
                o += 6
            return _tiff_edit(rng, d, o, "webp EXIF")
    if op == "addvp8x" and not vp8x and ch:
        body = bytes([0x08 if rng.random() < 0.5 else 0x00, 0, 0, 0]) + bytes(rng.randrange(256) for _ in range(6))
        d[12:12] = b"VP8X" + struct.pack("<I", 10) + body
        return "webp insert VP8X"
    c = rng.choice(ch)
    return f"webp chunk {c[1]!r} size " + _edit_int(rng, d, c[0] + 4, 4, False)


# --- TIFF
def m_tiff(rng: random.Random, d: bytearray, fmt: str) -> str:
    r = _ifd_entries(d, 0, 500)
    if r is None:
        return "no-op"
    big, ifd, entries = r
    op = rng.choice(("generic", "dims", "dims", "strips", "strips", "dup", "bits"))
    by_tag = {_get(d, e, 2, big): e for e in entries}
    if op == "dims":
        tag = rng.choice([t for t in (256, 257, 322, 323) if t in by_tag] or [0])
        if tag:
            e = by_tag[tag]
            size = 2 if _get(d, e + 2, 2, big) == 3 else 4
            return f"tiff tag {tag} " + _edit_int(rng, d, e + 8, size, big)
    if op == "strips":
        tag = rng.choice([t for t in (273, 279, 278, 324, 325) if t in by_tag] or [0])
        if tag:
            e = by_tag[tag]
            cnt, typ = _get(d, e + 4, 4, big), _get(d, e + 2, 2, big)
            size = 2 if typ == 3 else 4
            if rng.random() < 0.3:
                return f"tiff tag {tag} count " + _edit_int(rng, d, e + 4, 4, big)
            if cnt * size <= 4:
                return f"tiff tag {tag} value " + _edit_int(rng, d, e + 8, size, big)
            arr = _get(d, e + 8, 4, big)
            k = rng.randrange(min(cnt, 10_000))
            return f"tiff tag {tag}[{k}] " + _edit_int(rng, d, arr + k * size, size, big)
    if op == "bits":
        tag = rng.choice([t for t in (258, 259, 262, 277, 284, 338, 339) if t in by_tag] or [0])
        if tag:
            e = by_tag[tag]
            v = rng.choice((0, 1, 2, 3, 4, 5, 7, 8, 16, 32, 64, 0xFFFF, rng.randrange(65536)))
            if _get(d, e + 4, 4, big) * 2 <= 4:
                _put(d, e + 8, 2, v, big)
            return f"tiff tag {tag} = {v}"
    if op == "dup" and entries:
        # a copy of IFD0 at the end of the file with one entry repeated (new value), header pointed at it
        e = rng.choice(entries)
        dup = bytearray(d[e:e + 12])
        old = _get(dup, 8, 4, big)
        if _get(dup, 2, 2, big) == 3 and _get(dup, 4, 4, big) == 1:
            _put(dup, 8, 2, _interesting(rng, _get(dup, 8, 2, big), 16), big)
        else:
            _put(dup, 8, 4, _interesting(rng, old, 32), big)
        items = [bytes(d[x:x + 12]) for x in entries]
        pos = rng.randrange(len(items) + 1)
        items.insert(pos, bytes(dup))
        while len(d) % 2:
            d.append(0)
        new = len(d)
        d += (len(items)).to_bytes(2, "big" if big else "little") + b"".join(items) + bytes(4)
        _put(d, 4, 4, new, big)
        return f"tiff duplicate tag {_get(dup, 0, 2, big)} at {pos}"
    if rng.random() < 0.3:
        return "tiff IFD entry count " + _edit_int(rng, d, ifd, 2, big)
    return _tiff_edit(rng, d, 0, "tiff")


# --- BMP
def m_bmp(rng: random.Random, d: bytearray, fmt: str) -> str:
    if len(d) < 54:
        return "no-op"
    f = rng.choice(("filesize", "offset", "hsize", "width", "height", "sign", "planes", "bpp", "bpp", "compression",
                    "imgsize", "clrused", "mask"))
    where = {"filesize": (2, 4), "offset": (10, 4), "hsize": (14, 4), "width": (18, 4), "height": (22, 4),
             "planes": (26, 2), "compression": (30, 4), "imgsize": (34, 4), "clrused": (46, 4)}
    if f == "sign":
        h = struct.unpack_from("<i", d, 22)[0]
        struct.pack_into("<i", d, 22, -h if h != -(2**31) else 1)
        return f"bmp height sign {h}->{-h}"
    if f == "bpp":
        v = rng.choice((0, 1, 2, 4, 8, 15, 16, 24, 32, 48, 64, 0xFFFF))
        _put(d, 28, 2, v, False)
        return f"bmp bpp {v}"
    if f == "mask":
        o = 54 + 4 * rng.randrange(4)
        return "bmp mask " + _edit_int(rng, d, o, 4, False)
    if f == "compression" and rng.random() < 0.7:
        v = rng.choice((0, 1, 2, 3, 4, 5, 6, 11))
        _put(d, 30, 4, v, False)
        return f"bmp compression {v}"
    o, n = where[f]
    return f"bmp {f} " + _edit_int(rng, d, o, n, False)


# --- JPEG 2000
def _jp2_boxes(d: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, bytes, int]]:
    out, pos, end = [], start, len(d) if end is None else end
    while pos + 8 <= end and len(out) < 64:
        n = _get(d, pos, 4, True)
        out.append((pos, bytes(d[pos + 4:pos + 8]), n))
        if n == 0 or n < 8:
            break
        pos += n
    return out


def m_jp2(rng: random.Random, d: bytearray, fmt: str) -> str:
    siz = d.find(b"\xff\x51")
    boxes = _jp2_boxes(d) if d[:4] == b"\x00\x00\x00\x0c" else []
    op = rng.choice(("box", "siz", "siz", "siz", "ihdr", "cod", "sot"))
    if op == "box" and boxes:
        b = rng.choice(boxes)
        return f"jp2 box {b[1]!r} length " + _edit_int(rng, d, b[0], 4, True)
    if op == "ihdr":
        i = d.find(b"ihdr")
        if i > 0:
            f, o, n = rng.choice((("height", 4, 4), ("width", 8, 4), ("nc", 12, 2), ("bpc", 14, 1)))
            return f"jp2 ihdr {f} " + _edit_int(rng, d, i + o, n, True)
    if op == "cod":
        i = d.find(b"\xff\x52")
        if i > 0:
            o = rng.choice((4, 5, 7, 9, 10, 11, 12, 13))
            return f"jp2 COD byte +{o} " + _edit_int(rng, d, i + o, 1, True)
    if op == "sot":
        i = d.find(b"\xff\x90")
        if i > 0:
            f, o, n = rng.choice((("Isot", 4, 2), ("Psot", 6, 4), ("TPsot", 10, 1), ("TNsot", 11, 1)))
            return f"jp2 SOT {f} " + _edit_int(rng, d, i + o, n, True)
    if siz >= 0:
        fields = (("Lsiz", 2, 2), ("Rsiz", 4, 2), ("Xsiz", 6, 4), ("Ysiz", 10, 4), ("XOsiz", 14, 4), ("YOsiz", 18, 4),
                  ("XTsiz", 22, 4), ("YTsiz", 26, 4), ("XTOsiz", 30, 4), ("YTOsiz", 34, 4), ("Csiz", 38, 2),
                  ("Ssiz0", 40, 1), ("XRsiz0", 41, 1), ("YRsiz0", 42, 1), ("Ssiz1", 43, 1), ("XRsiz1", 44, 1))
        f, o, n = rng.choice(fields)
        return f"jp2 SIZ {f} " + _edit_int(rng, d, siz + o, n, True)
    return "no-op"


# --- PNM
def m_pnm(rng: random.Random, d: bytearray, fmt: str) -> str:
    head = bytes(d[:64])
    import re

    nums = list(re.finditer(rb"\d+", head[2:]))
    if rng.random() < 0.15 or not nums:
        d[1] = ord(rng.choice("1234567"))
        return f"pnm magic P{chr(d[1])}"
    m = rng.choice(nums[:3])
    new = str(rng.choice((0, 1, 2, 255, 256, 65535, 65536, 2**31, 2**32 + 1, 10**12, int(m.group()) + 1,
                          int(m.group()) * 100))).encode()
    if rng.random() < 0.1:
        new = rng.choice((b"-1", b"", b"x", b"1e3"))
    a, b = m.start() + 2, m.end() + 2
    d[a:b] = new
    return f"pnm header number {m.group()!r}->{new!r}"


FORMAT_MUTATORS = {"png": m_png, "jpeg": m_jpeg, "webp": m_webp, "tiff": m_tiff, "bmp": m_bmp,
                   "jpeg2k": m_jp2, "pnm": m_pnm}
GENERIC = (m_bitflip, m_bitflip, m_byteset, m_truncate, m_insert, m_delete)


def mutate(rng: random.Random, data: bytes, fmt: str, others: Sequence[bytes] = ()) -> tuple[bytes, list[str]]:
    """1-4 stacked mutations of ``data`` (about half format-aware), and what each did."""
    d = bytearray(data)
    steps = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        if not d:
            break
        r = rng.random()
        if r < 0.56 and not (r < 0.5) and others:
            o = rng.choice(others)
            a, b = rng.randrange(len(d) + 1), rng.randrange(len(o) + 1)
            d = d[:a] + bytearray(o[b:])
            steps.append(f"splice {a}+other[{b}:]")
            continue
        fn = FORMAT_MUTATORS[fmt] if r < 0.5 and fmt in FORMAT_MUTATORS else rng.choice(GENERIC)
        try:
            steps.append(fn(rng, d, fmt))
        except (IndexError, ValueError, OverflowError, struct.error) as exc:  # a field past a cut end
            steps.append(f"{fn.__name__} stopped ({type(exc).__name__})")
    return bytes(d), steps


def generate(seeds: Sequence[tuple[str, str, bytes]], count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` inputs: the seeds unchanged first, then mutations (deterministic by ``seed``)."""
    by_fmt: dict[str, list[bytes]] = defaultdict(list)
    for _, fmt, data in seeds:
        by_fmt[fmt].append(data)
    for i in range(count):
        if i < len(seeds):
            name, fmt, data = seeds[i]
            yield {"index": i, "seed": name, "format": fmt, "mutations": [], "data": data}
            continue
        rng = random.Random(f"{seed}:{i}")
        name, fmt, data = seeds[rng.randrange(len(seeds))]
        others = by_fmt[fmt] if rng.random() < 0.7 else [s[2] for s in seeds]
        out, steps = mutate(rng, data, fmt, others)
        yield {"index": i, "seed": name, "format": fmt, "mutations": steps, "data": out}


# =========================================================================== worker (child)


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class _Worker:
    """The child's side: decodes each input every way and checks the results."""

    def __init__(self, device: str, seeds: list[tuple[str, str, bytes]]):
        import numpy as np

        import gpuimg

        self.np, self.gpuimg, self.device = np, gpuimg, device
        self.selftest = os.environ.get(SELFTEST_ENV) == "1"
        # the generated seeds are the good files of the batch and pipeline checks; each is
        # decoded alone (the reference pixels) when first picked, not at start-up: a GPU
        # worker's start is what a crash costs, so it is kept short
        self.candidates = [s for s in seeds if not s[0].startswith("extra:")]
        self.refs: dict[str, Any] = {}
        t = time.perf_counter()
        if self.candidates:  # one decode now: the codec is loaded before the first input
            self._ref(self.candidates[0])
        self.first_decode_s = round(time.perf_counter() - t, 3)
        try:
            open("/proc/self/clear_refs", "w").write("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.pipeline: Any = None

    def _peak_kb(self) -> int:
        if self.hwm_reset:
            return _status_kb("VmHWM") or 0
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def run(self, task: dict[str, Any], stage: Callable[[str], None]) -> dict[str, Any]:
        data: bytes = task["data"]
        if self.selftest and data.startswith(SELFTEST_PREFIX):
            what = data[len(SELFTEST_PREFIX):]
            stage("selftest")
            if what == b"segv":
                os.kill(os.getpid(), signal.SIGSEGV)
            if what == b"hang":
                while True:
                    time.sleep(60)
            if what == b"memory":
                raise MemoryError("selftest")
        if self.hwm_reset:
            try:
                open("/proc/self/clear_refs", "w").write("5")
            except OSError:
                self.hwm_reset = False
        rss0 = _status_kb("VmRSS") or 0
        peak0 = self._peak_kb()
        events: list[dict[str, Any]] = []
        decoded_bytes = 0
        for mode in ("rgb", "unchanged"):
            stage(f"read {mode}")
            decoded_bytes = max(decoded_bytes, self._read(data, mode, events, stage))
        # A decode that fails may still take the memory its header claims (a target and,
        # on a GPU, the child's page-locked block, sized before the codec finds the data
        # short): gpuimg's bound is 4x the CLAIMED size (at most max_pixels) + 200 MB.
        decoded_bytes = max(decoded_bytes, self._claimed_bytes(data))
        stage("read_batch")
        self._batch(task, events)
        if task.get("pipeline"):
            stage("pipeline")
            self._pipeline(task, events)
        peak = self._peak_kb()
        grown_mb = (peak - (rss0 if self.hwm_reset else peak0)) / 1024
        # gpuimg's bound (4 x decoded + 200 MB) plus the copies this worker holds itself:
        # the fresh decode, its NumPy copy, the two pre-filled out= images and their copies.
        limit_mb = (4 + HARNESS_COPIES) * decoded_bytes / 2**20 + 200
        if grown_mb > limit_mb:
            events.append({"op": "memory", "class": "memory", "detail": f"peak RSS +{grown_mb:.0f} MB > {limit_mb:.0f} MB"})
        return {"events": events, "peak_rss_mb": round(peak / 1024, 1), "grown_mb": round(grown_mb, 1),
                "decoded_bytes": decoded_bytes}

    def _claimed_bytes(self, data: bytes) -> int:
        """The decoded size ``data``'s header claims (4 channels of its depth), or 0."""
        try:
            info = self.gpuimg.codec.info(data)
        except Exception:
            return 0
        if info.width * info.height > self.gpuimg.codec.MAX_PIXELS:
            return 0  # refused before any allocation
        return info.width * info.height * 4 * (2 if info.dtype == "uint16" else 1)

    def _exc(self, op: str, exc: BaseException) -> dict[str, Any]:
        if isinstance(exc, self.gpuimg.GpuImgError) and not isinstance(exc, MemoryError):
            cls = "clean"
        elif isinstance(exc, MemoryError):
            cls = "memory"
        else:
            cls = "other"
        return {"op": op, "class": cls, "detail": f"{type(exc).__name__}: {str(exc)[:300]}"}

    def _read(self, data: bytes, mode: str, events: list[dict[str, Any]], stage: Callable[[str], None]) -> int:
        gi, np = self.gpuimg, self.np
        op = f"read {mode}"
        try:
            img = gi.read(data, device=self.device, mode=mode)
            ref = img.numpy().copy()
        except Exception as exc:
            events.append(self._exc(op, exc))
            return 0
        nbytes = ref.nbytes
        shape, dtype = ref.shape, ref.dtype
        del img
        outs = []
        stage(f"read {mode} out=")
        for fill in (0, 255):
            try:
                out = gi.Image.empty(shape[0], shape[1], shape[2], dtype, device=self.device)
                out.array[...] = fill if dtype == np.uint8 else (0 if fill == 0 else np.iinfo(dtype).max)
                res = gi.read(data, out=out, device=self.device, mode=mode)
                outs.append(res.numpy().copy())
            except Exception as exc:
                ev = self._exc(f"{op} out= fill {fill}", exc)
                ev["class"] = "other" if ev["class"] == "clean" else ev["class"]
                ev["detail"] = "fresh decode succeeded, decode into out= failed: " + ev["detail"]
                events.append(ev)
                return nbytes
        bad = []
        for fill, arr in zip((0, 255), outs):
            if arr.shape != shape or arr.dtype != dtype:
                bad.append(f"fill {fill}: shape {arr.shape} {arr.dtype} vs {shape} {dtype}")
            elif not np.array_equal(arr, ref):
                bad.append(f"fill {fill}: {int(np.count_nonzero(arr != ref))} of {ref.size} values differ from fresh decode")
        if outs[0].shape == outs[1].shape and not np.array_equal(outs[0], outs[1]):
            bad.append(f"0x00 and 0xFF fills differ in {int(np.count_nonzero(outs[0] != outs[1]))} values (never written)")
        elif bad:
            bad.append("0x00 and 0xFF fills agree (stale or nondeterministic, not the fill)")
        if bad:
            events.append({"op": op, "class": "unwritten", "detail": "; ".join(bad), "shape": list(shape)})
        else:
            events.append({"op": op, "class": "decoded", "shape": list(shape), "dtype": str(dtype)})
        return nbytes

    def _ref(self, seed: tuple[str, str, bytes]) -> Any:
        """The seed's pixels decoded alone (rgb), or None where it does not decode."""
        if seed[0] not in self.refs:
            try:
                self.refs[seed[0]] = self.gpuimg.read(seed[2], device=self.device).numpy().copy()
            except Exception:
                self.refs[seed[0]] = None
        return self.refs[seed[0]]

    def _pick_good(self, task: dict[str, Any]) -> list[tuple[str, str, bytes, Any]]:
        """Two good seeds for ``task``: one of its format where one decodes, one of any."""
        rng = random.Random(task["index"])
        picked = []
        for pool in ([s for s in self.candidates if s[1] == task["format"]], self.candidates):
            pool = list(pool)
            rng.shuffle(pool)
            for s in pool:
                ref = self._ref(s)
                if ref is not None:
                    picked.append((*s, ref))
                    break
        return picked if len(picked) == 2 else []

    def _batch(self, task: dict[str, Any], events: list[dict[str, Any]]) -> None:
        np = self.np
        goods = self._pick_good(task)
        if len(goods) < 2:
            return
        srcs = [goods[0][2], task["data"], goods[1][2]]
        try:
            res = self.gpuimg.read_batch(srcs, device=self.device)
        except Exception as exc:
            ev = self._exc("read_batch", exc)
            if ev["class"] == "clean":
                ev["class"], ev["detail"] = "batch-lost", "read_batch raised instead of listing the bad item: " + ev["detail"]
            events.append(ev)
            return
        problems = []
        for err in res.errors:
            e = getattr(err, "error", None)
            if err.index != 1:
                problems.append(f"good item {err.index} ({goods[err.index // 2][0]}) failed: {e!r}"[:300])
            elif not isinstance(e, self.gpuimg.GpuImgError):
                events.append({"op": "read_batch", "class": "other", "detail": f"item error {type(e).__name__}: {e}"[:300]})
        got = dict(zip(res.indices, list(res)))
        for k, g in ((0, goods[0]), (2, goods[1])):
            if k in got:
                arr = got[k].numpy()
                if arr.shape != g[3].shape:
                    problems.append(f"good item {k} ({g[0]}) decoded as {arr.shape}, alone {g[3].shape}")
                    continue
                diff = int(np.abs(arr.astype(np.int32) - g[3].astype(np.int32)).max()) if arr.size else 0
                # One decoder per format, whose pixels depend on the file alone: any
                # difference from the file decoded alone is a loss.
                if diff:
                    problems.append(f"good item {k} ({g[0]}) decoded differently from alone (max difference {diff})")
            elif not any(e.index == k for e in res.errors):
                problems.append(f"good item {k} ({g[0]}) missing")
        if problems:
            events.append({"op": "read_batch", "class": "batch-lost", "detail": "; ".join(problems)})
        else:
            events.append({"op": "read_batch", "class": "decoded" if 1 in got else "clean"})

    def _pipeline(self, task: dict[str, Any], events: list[dict[str, Any]]) -> None:
        import shutil
        import tempfile

        goods = self._pick_good(task)
        if not goods:
            return
        tmp = tempfile.mkdtemp(prefix="gpuimg-fuzz-")
        try:
            src, dst = Path(tmp, "in"), Path(tmp, "out")
            src.mkdir()
            bad = src / ("bad" + EXT[task["format"]])
            good = src / ("good" + EXT[goods[0][1]])
            bad.write_bytes(task["data"])
            good.write_bytes(goods[0][2])
            if self.pipeline is None:
                self.pipeline = self.gpuimg.Pipeline([("resize_shorter", {"size": 32})], device=self.device)
            summary = self.pipeline.run(src, dst, format="png", workers=False)
            outs = {p.stem: p for p in dst.iterdir() if p.suffix == ".png"}
            failed = [Path(f.path).name for f in summary.failures]
            if "good" not in outs:
                events.append({"op": "pipeline", "class": "batch-lost",
                               "detail": f"good file not written; failures {summary.failures}"[:300]})
            elif "bad" not in outs and bad.name not in failed:
                events.append({"op": "pipeline", "class": "other",
                               "detail": f"bad file neither written nor in the report: {summary.failures}"[:300]})
            else:
                events.append({"op": "pipeline", "class": "decoded" if "bad" in outs else "clean"})
        except Exception as exc:
            ev = self._exc("pipeline", exc)
            ev["class"] = "other" if ev["class"] == "clean" else ev["class"]
            events.append(ev)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _write_frame(f: Any, obj: Any) -> None:
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(struct.pack("<I", len(blob)) + blob)
    f.flush()


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _read_frame(fd: int) -> Any:
    head = _read_exact(fd, 4)
    if head is None:
        return None
    blob = _read_exact(fd, struct.unpack("<I", head)[0])
    return None if blob is None else pickle.loads(blob)


def worker_main(device: str, address_mb: int) -> int:
    """The child's loop: frames in on stdin, frames out on the original stdout (fd 1 is
    pointed at stderr so native code printing cannot corrupt the protocol)."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer.fileno()
    if address_mb > 0 and device != "cuda":
        import resource

        lim = address_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    sys.path.insert(0, str(ROOT))
    t = time.perf_counter()
    import gpuimg  # noqa: F401  (timed: the import is part of what a restart costs)

    import_s = time.perf_counter() - t
    init = _read_frame(inp)
    w = _Worker(device, init["seeds"])
    _write_frame(out, {"type": "ready", "vm_kb": _status_kb("VmSize"), "rss_kb": _status_kb("VmRSS"),
                       "import_s": round(import_s, 3), "first_decode_s": w.first_decode_s})
    while True:
        task = _read_frame(inp)
        if task is None:
            return 0
        try:
            res = w.run(task, lambda s: _write_frame(out, {"type": "stage", "stage": s}))
        except MemoryError as exc:
            res = {"events": [{"op": "worker", "class": "memory", "detail": f"MemoryError: {exc}"}]}
        except Exception as exc:  # a bug in the harness itself or an escape: say so
            res = {"events": [{"op": "worker", "class": "other", "detail": f"{type(exc).__name__}: {exc}"[:300]}]}
        res["type"] = "result"
        _write_frame(out, res)


# =========================================================================== runner (parent)


class _Child:
    def __init__(self, device: str, address_mb: int, seeds: list[tuple[str, str, bytes]]):
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", "--device", device, "--address-space-mb", str(address_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.fd = self.proc.stdout.fileno()
        self.spawned = time.monotonic()
        _write_frame(self.proc.stdin, {"seeds": seeds})
        self.task: dict[str, Any] | None = None
        self.started = 0.0
        self.stage = ""
        self.ready: dict[str, Any] | None = None
        self.peak_kb = 0

    def rss_kb(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def send(self, task: dict[str, Any]) -> None:
        self.task, self.started, self.stage = task, time.monotonic(), "sent"
        _write_frame(self.proc.stdin, task)

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.kill()


def _death(proc: subprocess.Popen) -> str:
    rc = proc.wait()
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with status {rc}"


def classify(events: Sequence[dict[str, Any]]) -> str:
    """The worst class among an input's events (``clean`` when there are none)."""
    return max((e["class"] for e in events), key=_RANK.__getitem__, default="clean")


def run_fuzz(
    count: int = 300,
    *,
    seed: int = 0,
    device: str = "cpu",
    workers: int | None = None,
    formats: Sequence[str] = FORMATS,
    timeout: float = 20.0,
    memory_mb: int = 3000,
    address_space_mb: int = 16000,
    pipeline_every: int = 50,
    extra: str | os.PathLike | None = "default",
    save: str | os.PathLike | None = None,
    inject: Sequence[bytes] = (),
    progress: bool = False,
    spares: int | None = None,
) -> dict[str, Any]:
    """Run ``count`` inputs (after ``inject``, raw inputs tried first) and return the report:
    ``counts`` (class -> n), ``by_format`` (format -> class -> n), ``findings`` (every
    non-clean input: index, format, seed, mutations, class, events, saved file), timings.
    """
    if extra == "default":
        extra = ROOT / "tests" / "repro"
    formats = tuple(formats)
    for f in formats:
        if f not in FORMATS:
            raise ValueError(f"unknown format {f!r}; use some of {FORMATS}")
    t0 = time.perf_counter()
    seeds = make_seeds(seed, formats) + extra_seeds(extra, formats)
    seed_seconds = time.perf_counter() - t0
    workers = max(1, workers or os.cpu_count() or 1)
    spares = (4 if device == "cuda" else 0) if spares is None else max(0, spares)
    tasks: list[dict[str, Any]] = [
        {"index": -1 - k, "seed": "inject", "format": sniff(b) or formats[0], "mutations": ["injected"], "data": b}
        for k, b in enumerate(inject)
    ]
    todo = itertools.chain(tasks, generate(seeds, count, seed))  # lazy: 100,000 inputs are not held
    save_dir = Path(save) if save else None
    if save_dir:
        save_dir.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    by_format: dict[str, Counter[str]] = defaultdict(Counter)
    by_op: dict[str, Counter[str]] = defaultdict(Counter)
    findings: list[dict[str, Any]] = []
    restarts = 0
    peak_rss = 0.0
    busy = 0.0
    sel = selectors.DefaultSelector()
    t_start = time.perf_counter()
    children: list[_Child] = []

    def spawn() -> _Child:
        c = _Child(device, address_space_mb, seeds)
        sel.register(c.fd, selectors.EVENT_READ, c)
        children.append(c)
        return c

    def retire(c: _Child) -> None:
        sel.unregister(c.fd)
        children.remove(c)

    def record(c: _Child, res: dict[str, Any]) -> None:
        nonlocal peak_rss, busy
        task = c.task
        assert task is not None
        busy += time.monotonic() - c.started
        c.task = None
        cls = classify(res["events"])
        counts[cls] += 1
        by_format[task["format"]][cls] += 1
        for e in res["events"]:
            by_op[e["op"].split(" out=")[0]][e["class"]] += 1
        peak_rss = max(peak_rss, res.get("peak_rss_mb", 0.0))
        if cls not in ("decoded", "clean"):
            entry = {k: task[k] for k in ("index", "format", "seed", "mutations")}
            entry.update({"class": cls, "size": len(task["data"]), "events": res["events"],
                          "seconds": round(time.monotonic() - c.started, 3)})
            if save_dir:
                name = f"{task['index']:06d}-{task['format']}-{cls}{EXT.get(task['format'], '.bin')}"
                (save_dir / name).write_bytes(task["data"])
                entry["file"] = str(save_dir / name)
                with open(save_dir / "findings.jsonl", "a") as f:
                    f.write(json.dumps(entry) + "\n")
            findings.append(entry)
            if progress:
                print(f"  {cls:10s} #{task['index']} {task['format']} {task['seed']} {task['mutations']}: "
                      f"{[e.get('detail', '') for e in res['events'] if e['class'] == cls][:1]}", file=sys.stderr)

    def feed(c: _Child) -> bool:
        task = next(todo, None)
        if task is None:
            return False
        task = dict(task)
        task["pipeline"] = pipeline_every > 0 and task["index"] >= 0 and task["index"] % pipeline_every == pipeline_every - 1
        try:
            c.send(task)
        except (BrokenPipeError, OSError):
            c.task = task  # the child died between inputs: treated on its EOF below
        return True

    ready_info: list[dict[str, Any]] = []
    pending = True
    interrupted = False

    def promote() -> None:
        """Give inputs to started, idle workers while fewer than ``workers`` are busy."""
        nonlocal pending
        for c in list(children):
            if pending and c.ready is not None and c.task is None and sum(x.task is not None for x in children) < workers:
                pending = feed(c)

    def lost(c: _Child) -> None:
        """``c`` died or was killed: a new standby worker starts, a started one takes over."""
        nonlocal restarts
        retire(c)
        restarts += 1
        if pending:
            spawn()
        promote()

    try:
        for _ in range(workers + spares):
            spawn()
        while children:
            now = time.monotonic()
            wait = min([c.started + timeout - now for c in children if c.task is not None] + [timeout])
            if memory_mb > 0 and any(c.task is not None for c in children):
                wait = min(wait, 0.02)
            for key, _ in sel.select(timeout=max(0.01, wait)):
                c: _Child = key.data
                if c not in children:
                    continue
                try:
                    msg = _read_frame(c.fd)
                except Exception:
                    msg = None
                if msg is None:  # EOF: the child died
                    why = _death(c.proc)
                    if c.task is not None:
                        record(c, {"events": [{"op": c.stage, "class": "crash", "detail": f"worker {why} in {c.stage}"}]})
                    elif c.ready is None and not ready_info:
                        raise RuntimeError(f"fuzz worker failed to start ({why})")
                    lost(c)
                    continue
                if msg["type"] == "ready":
                    msg["start_s"] = round(time.monotonic() - c.spawned, 3)
                    c.ready = msg
                    ready_info.append(msg)
                    promote()
                elif msg["type"] == "stage":
                    c.stage = msg["stage"]
                else:
                    record(c, msg)
                    if pending:
                        pending = feed(c)
            now = time.monotonic()
            for c in list(children):
                if c.task is None:
                    continue
                rss = c.rss_kb() if memory_mb > 0 else 0
                if rss > memory_mb * 1024 + (c.ready or {}).get("rss_kb", 0):
                    c.kill()
                    record(c, {"events": [{"op": c.stage, "class": "memory",
                                           "detail": f"worker RSS {rss // 1024} MB, over idle + --memory-mb "
                                                     f"{memory_mb}, in {c.stage}"}],
                               "peak_rss_mb": rss / 1024})
                    lost(c)
                elif now - c.started > timeout:
                    c.kill()
                    record(c, {"events": [{"op": c.stage, "class": "hang", "detail": f"no answer in {timeout:g} s in {c.stage}"}]})
                    lost(c)
            if not pending and all(c.task is None for c in children):
                for c in list(children):
                    retire(c)
                    c.close()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (see main): report what was done
        interrupted = True
    finally:
        # A second signal during the clean-up (a scheduler repeating SIGTERM) must not
        # cost the report: the workers are killed with signals ignored.
        previous = _ignore_stop_signals()
        try:
            for c in list(children):
                c.kill()
        finally:
            _restore_signals(previous)
        sel.close()
    wall = time.perf_counter() - t_start
    total = sum(counts.values())
    return {
        "device": device, "count": count, "seed": seed, "workers": workers, "formats": list(formats),
        "spares": spares, "seeds": [s[0] for s in seeds], "timeout": timeout, "memory_mb": memory_mb,
        "address_space_mb": address_space_mb, "pipeline_every": pipeline_every,
        "inputs": total, "interrupted": interrupted, "counts": {c: counts.get(c, 0) for c in CLASSES},
        "by_format": {f: {c: by_format[f].get(c, 0) for c in CLASSES} for f in sorted(by_format)},
        "by_op": {o: dict(by_op[o]) for o in sorted(by_op)},
        "bad": sum(counts.get(c, 0) for c in BAD), "findings": findings, "restarts": restarts,
        "seconds": round(wall, 2), "seed_seconds": round(seed_seconds, 2),
        "inputs_per_second": round(total / wall, 1) if wall else 0.0,
        "inputs_per_second_per_worker": round(total / busy, 1) if busy else 0.0,
        "worker_idle": ready_info[:1], "worker_start_s": round(sum(r["start_s"] for r in ready_info) / len(ready_info), 2)
        if ready_info else None, "peak_rss_mb": round(peak_rss, 1),
    }


def print_report(rep: dict[str, Any], file: Any = sys.stdout) -> None:
    cols = ("inputs",) + CLASSES
    w = max(8, *(len(f) for f in rep["by_format"]))
    stopped = " (interrupted)" if rep["interrupted"] else ""
    print(f"fuzz: {rep['inputs']} inputs{stopped} on {rep['device']}, {rep['workers']} workers, seed {rep['seed']}: "
          f"{rep['seconds']} s ({rep['inputs_per_second']} inputs/s, {rep['inputs_per_second_per_worker']} per worker), "
          f"{rep['restarts']} worker restarts, peak worker RSS {rep['peak_rss_mb']} MB", file=file)
    print(f"{'format':<{w}} " + " ".join(f"{c:>10}" for c in cols), file=file)
    rows = list(rep["by_format"].items()) + [("all", rep["counts"])]
    for fmt, cnt in rows:
        print(f"{fmt:<{w}} " + " ".join(f"{v:>10}" for v in [sum(cnt.values()), *(cnt[c] for c in CLASSES)]), file=file)
    ops = ", ".join(f"{o}: " + "/".join(f"{k} {v}" for k, v in sorted(c.items())) for o, c in rep["by_op"].items())
    print(f"per call: {ops}", file=file)
    for f in rep["findings"]:
        det = next((e.get("detail", "") for e in f["events"] if e["class"] == f["class"]), "")
        print(f"  {f['class']:10s} #{f['index']} {f['format']} from {f['seed']} {f['mutations']}: {det}"[:400], file=file)


def _ignore_stop_signals() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Fuzz gpuimg's decoders (read, read_batch, pipeline) in worker processes.")
    p.add_argument("--count", type=int, default=300, help="inputs to run (default 300; the seeds unchanged come first)")
    p.add_argument("--seed", type=int, default=0, help="random seed: seeds and mutations are deterministic by it")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="worker processes (default: CPU count)")
    p.add_argument("--formats", default=",".join(FORMATS), help=f"comma-separated subset of {','.join(FORMATS)}")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per input before it counts as a hang")
    p.add_argument("--memory-mb", type=int, default=3000, help="kill a worker whose RSS grows this much over idle: 'memory' (0: off)")
    p.add_argument("--address-space-mb", type=int, default=16000, help="RLIMIT_AS of each worker on the CPU (0: none)")
    p.add_argument("--pipeline-every", type=int, default=50, help="run the pipeline on every Kth input (0: never)")
    p.add_argument("--extra", default=None, help="folder of extra seed files (default tests/repro, the files that once broke gpuimg; '' none)")
    p.add_argument("--save", default=None, help="folder to save every non-clean input and findings.jsonl in")
    p.add_argument("--json", default=None, help="write the report as JSON here")
    p.add_argument("--spares", type=int, default=None,
                   help="standby workers started ahead, to replace a crashed one at once (default: 4 on cuda, 0 on cpu)")
    p.add_argument("--progress", action="store_true", help="print each finding as it happens (stderr)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        return worker_main(a.device, a.address_space_mb)
    extra = "default" if a.extra is None else (a.extra or None)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `timeout` ends a run with its report
    rep = run_fuzz(a.count, seed=a.seed, device=a.device, workers=a.workers, formats=[f for f in a.formats.split(",") if f],
                   timeout=a.timeout, memory_mb=a.memory_mb, address_space_mb=a.address_space_mb,
                   pipeline_every=a.pipeline_every, extra=extra, save=a.save,
                   progress=a.progress, spares=a.spares)
    print_report(rep)
    if a.json:
        Path(a.json).write_text(json.dumps(rep, indent=1) + "\n")
    return 1 if rep["bad"] else 0


if __name__ == "__main__":
    sys.exit(main())
