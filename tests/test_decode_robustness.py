"""Hostile and broken files: correct pixels or a clean gpuimg error, never a dead process.

The files in tests/repro/ each broke gpuimg 0.1.0 (see its README). Every one is read on
every device; a crash inside a CPU codec is contained in the isolated child process
(gpuimg.codec.isolation), a partial decode is an error, EXIF orientation follows one
reading for every container, and memory stays bounded. Pillow is the outside reference
for the pixels that do decode.
"""

from __future__ import annotations

import io
import os
import resource
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import ASSETS, checkout_pythonpath, load_asset

import gpuimg
from gpuimg.codec import Decoder, isolation
from gpuimg.codec.isolation import pool

PIL = pytest.importorskip("PIL")
from PIL import Image as PILImage  # noqa: E402
from PIL import ImageOps  # noqa: E402

REPRO = Path(__file__).resolve().parent / "repro"
ROOT = Path(__file__).resolve().parent.parent

# file -> the words the DecodeError must contain (None: the file decodes, as Pillow shows it)
EXPECTED = {
    "jpeg-exif-count-heap.jpg": "reserved marker 0xFF02",
    "png-idat-length-4gb.png": "claims 4294967295 bytes",
    "tiff-two-widths-stale.tif": "ImageWidth (256) appears twice",
    "jp2-truncated-segv.jp2": "truncated",
    "webp-exif-prefix-orientation6.webp": None,
}


def _pillow_oriented(data: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def test_every_repro_file_is_covered():
    assert sorted(p.name for p in REPRO.iterdir() if p.is_file() and p.suffix != ".md") == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_repro_file_gives_pixels_or_a_clean_error(device, name):
    path = REPRO / name
    words = EXPECTED[name]
    if words is None:
        got = gpuimg.read(path, device=device).numpy()
        ref = _pillow_oriented(path.read_bytes())
        assert got.shape == ref.shape
        assert np.abs(got.astype(int) - ref).max() <= 4  # lossy WebP: decoders round apart
        return
    with pytest.raises(gpuimg.DecodeError) as err:
        gpuimg.read(path, device=device)
    assert name in str(err.value) and words in str(err.value)


def test_batch_with_a_crashing_file_keeps_every_good_file(device):
    good = [ASSETS / "chelsea.png", ASSETS / "coffee.jpg", ASSETS / "camera_gray.png"]
    srcs = [good[0], REPRO / "jp2-truncated-segv.jp2", good[1], REPRO / "png-idat-length-4gb.png", good[2]]
    res = gpuimg.read_batch(srcs, device=device)
    assert res.indices == [0, 2, 4]
    assert [e.index for e in res.errors] == [1, 3]
    assert all(isinstance(e.error, gpuimg.DecodeError) for e in res.errors)
    for img, path in zip(res.images, good):
        alone = gpuimg.read(path, device=device).numpy()
        assert np.array_equal(img.numpy(), alone)


def test_a_real_codec_crash_is_contained():
    """The truncated JPEG 2000 crashes OpenJPEG (SIGSEGV, in the CPU wheels' build); the structure check refuses it
    first in normal use, so hand it to the isolated child directly: the crash costs that
    item, the good one beside it decodes."""
    bad = (REPRO / "jp2-truncated-segv.jp2").read_bytes()
    good = (ASSETS / "chelsea.png").read_bytes()
    u8 = np.dtype(np.uint8)
    items = [
        isolation.IsolatedItem(good, 300, 451, 3, u8, "I_RGB", "SRGB", False, "chelsea.png"),
        isolation.IsolatedItem(bad, 3701, 2717, 3, u8, "I_RGB", "SRGB", False, "jp2-truncated-segv.jp2"),
    ]
    got = {}
    reasons = isolation.decode(items, lambda k, px: got.setdefault(k, px.copy()), isolation.Isolation())
    assert reasons[0] is None and reasons[1] is not None
    # OpenJPEG builds differ: where this one crashes, the crash is named (and contained).
    assert "crashed" not in reasons[1] or "SIGSEGV" in reasons[1]
    assert np.array_equal(got[0], load_asset("chelsea.png"))


def _png_with_text(arr: np.ndarray, text: bytes) -> bytes:
    """A PNG of ``arr`` (RGB uint8) carrying a tEXt chunk with ``text``."""
    h, w, _ = arr.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"tEXt", b"Comment\x00" + text)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def selftest_children(monkeypatch):
    """Children started with the self-test hooks on (a marker in the data crashes, hangs
    or over-allocates inside the child, as a hostile file would)."""
    pool._stop_all()
    monkeypatch.setenv("GPUIMG_ISOLATION_SELFTEST", "1")
    yield
    pool._stop_all()


@pytest.mark.parametrize("kind", ["crash", "hang", "memory"])
def test_child_crash_hang_and_memory_cost_one_item(selftest_children, kind):
    arr = load_asset("chelsea.png")[:40, :60]
    bad = _png_with_text(arr, b"gpuimg-selftest-" + kind.encode())
    good = _png_with_text(arr, b"fine")
    dec = Decoder("cpu", isolation=isolation.Isolation(timeout_s=2.0))
    res = dec.decode_batch([good, good, bad, good, good, good])
    assert res.indices == [0, 1, 3, 4, 5]
    assert [e.index for e in res.errors] == [2]
    message = str(res.errors[0].error)
    assert {"crash": "SIGSEGV", "hang": "did not finish within", "memory": "memory bound"}[kind] in message
    for img in res.images:
        assert np.array_equal(img.numpy(), arr)
    assert np.array_equal(dec.decode(good).numpy(), arr)  # the next call finds a working child


def test_isolation_can_be_turned_off():
    dec = Decoder("cpu", isolation=False)
    assert not dec.isolation.active
    assert np.array_equal(dec.decode(ASSETS / "chelsea.png").numpy(), load_asset("chelsea.png"))
    with pytest.raises(TypeError, match="isolation"):
        Decoder("cpu", isolation="yes")
    with pytest.raises(ValueError, match="timeout_s"):
        isolation.Isolation(timeout_s=0)


def test_unwritten_pixels_are_an_error_not_stale_content(device):
    """Decode a photo into a buffer, then the two-width TIFF into the same buffer: the old
    photo must not come back as the TIFF's pixels."""
    dec = Decoder(device)
    img = dec.decode(ASSETS / "coffee.png")
    with pytest.raises(gpuimg.DecodeError):
        dec.decode(REPRO / "tiff-two-widths-stale.tif", out=img)


def test_corrupt_jpeg_scan_is_refused_on_the_cpu_codec_path():
    data = bytearray((ASSETS / "chelsea.jpg").read_bytes())
    sos = data.find(b"\xff\xda")
    data[sos + 400 : sos + 402] = b"\xff\x05"
    with pytest.raises(gpuimg.DecodeError, match="reserved marker 0xFF05"):
        gpuimg.read(bytes(data), device="cpu")


def _webp_with_exif(arr: np.ndarray, orientation: int, prefix: bool) -> bytes:
    """A lossless WebP whose EXIF chunk holds ``orientation`` (with the JPEG-style
    ``Exif\\0\\0`` prefix when ``prefix``; Pillow writes it without)."""
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, "WEBP", lossless=True, exif=exif.tobytes())
    data = buf.getvalue()
    pos, chunks = 12, []
    while pos < len(data):
        kind, n = struct.unpack_from("<4sI", data, pos)
        body = data[pos + 8 : pos + 8 + n]
        if kind == b"EXIF" and prefix:
            body = b"Exif\x00\x00" + body
        chunks.append(kind + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1))
        pos += 8 + n + (n & 1)
    payload = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


@pytest.mark.parametrize("prefix", [False, True])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_webp_exif_orientation_matches_pillow(device, orientation, prefix):
    arr = load_asset("chelsea.png")[:40, :64]
    data = _webp_with_exif(arr, orientation, prefix)
    got = gpuimg.read(data, device=device).numpy()
    assert np.array_equal(got, _pillow_oriented(data))
    stored = gpuimg.read(data, device=device, apply_exif=False).numpy()
    assert np.array_equal(stored, arr)


@pytest.mark.parametrize("orientation", [3, 6, 7, 8])
def test_tiff_orientation_and_region_after_orientation(device, orientation):
    arr = load_asset("coffee.png")[:40, :64]
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, "TIFF", exif=exif)
    data = buf.getvalue()
    ref = _pillow_oriented(data)
    assert np.array_equal(gpuimg.read(data, device=device).numpy(), ref)
    region = (3, 5, 20, 31)
    got = gpuimg.read(data, device=device, region=region).numpy()
    assert np.array_equal(got, ref[3:20, 5:31])


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (MAX_BYTES, MAX_BYTES))
    import gpuimg
    from gpuimg.codec import Decoder
    dec = Decoder("cpu", isolation=ISOLATION)
    try:
        dec.decode(sys.argv[1])
    except gpuimg.DecodeError as exc:
        print("clean:", exc)
    else:
        print("decoded")
    """
)


@pytest.mark.parametrize("isolated", [True, False])
def test_png_with_a_4gb_chunk_fails_cleanly_under_an_address_space_limit(isolated):
    """Under a 1.5 GB address-space limit the 4 GB IDAT claim is refused with a clean error,
    in the child (isolated) and in this process (the structure check runs first)."""
    script = _MEMORY_SCRIPT.replace("MAX_BYTES", str(1536 << 20)).replace("ISOLATION", str(isolated))
    env = dict(os.environ, PYTHONPATH=checkout_pythonpath())
    done = subprocess.run(
        [sys.executable, "-c", script, str(REPRO / "png-idat-length-4gb.png")], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "clean:" in done.stdout and "png-idat-length-4gb.png" in done.stdout


def test_memory_of_a_hostile_png_stays_bounded(device):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(gpuimg.DecodeError):
        gpuimg.read(REPRO / "png-idat-length-4gb.png", device=device)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200


def test_odd_file_names_are_named_in_errors(device, tmp_path):
    path = tmp_path / "bad name é [1] (copy).png"
    path.write_bytes((REPRO / "png-idat-length-4gb.png").read_bytes())
    with pytest.raises(gpuimg.DecodeError, match=r"bad name é \[1\] \(copy\)\.png"):
        gpuimg.read(path, device=device)


def _bmp(width: int, height: int, bits: int, masks: tuple[int, ...], pixels: bytes) -> bytes:
    """A BI_BITFIELDS BMP with a V4 header (108 bytes, masks R, G, B, A), bottom-up."""
    info = struct.pack("<IiiHHIIiiII", 108, width, height, 1, bits, 3, len(pixels), 2835, 2835, 0, 0)
    info += struct.pack("<IIII", *masks) + b"\x00" * (108 - 40 - 16)
    offset = 14 + len(info)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + pixels


def test_bmp_16_bit_channels_scale_as_pillow(device):
    row = struct.pack("<HHHH", 0xFFFF, 0xF800, 0x07E0, 0x0841)  # 5-6-5: white, red, green, (1,2,1)
    data = _bmp(4, 1, 16, (0xF800, 0x07E0, 0x001F, 0), row)
    got = gpuimg.read(data, device=device).numpy()
    assert got[0, 0].tolist() == [255, 255, 255]
    with PILImage.open(io.BytesIO(data)) as im:
        assert np.array_equal(got, np.asarray(im.convert("RGB")))


@pytest.mark.parametrize("mode", ["unchanged", "rgba", "rgb", "bgr", "gray"])
def test_32_bit_bmp_with_alpha_in_every_mode(device, mode):
    rgba = load_asset("coffee_rgba.png", "RGBA")[:33, :47]
    path = gpuimg.write(gpuimg.Image.from_array(np.ascontiguousarray(rgba)), Path(os.environ.get("TMPDIR", "/tmp")) / f"gpuimg-{os.getpid()}-{mode}.bmp")
    try:
        got = gpuimg.read(path, device=device, mode=mode).numpy()
    finally:
        path.unlink()
    want = {"unchanged": rgba, "rgba": rgba, "rgb": rgba[..., :3], "bgr": rgba[..., 2::-1]}.get(mode)
    if mode == "gray":
        with PILImage.open(io.BytesIO(_pil_png(rgba))) as im:
            want = np.asarray(im.convert("RGB").convert("L"))[..., None]
        assert np.abs(got.astype(int) - want).max() <= 1
    else:
        assert np.array_equal(got, want)


def _pil_png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def test_odd_bitfield_bmp_is_not_black(device):
    px = struct.pack("<II", 0xFFFFFFFF, 0x003FFC00)  # masks 10-12-10: white, pure green
    data = _bmp(2, 1, 32, (0xFFC00000, 0x003FFC00, 0x000003FF, 0), px)
    got = gpuimg.read(data, device=device).numpy()
    assert got[0].tolist() == [[255, 255, 255], [0, 255, 0]]


@pytest.mark.parametrize("default_in_animation", [False, True])
def test_apng_decodes_its_default_image(device, default_in_animation):
    frames = [load_asset("chelsea.png")[:40, :60], load_asset("coffee.png")[:40, :60], load_asset("rocket.jpg")[:40, :60]]
    buf = io.BytesIO()
    first, *rest = (PILImage.fromarray(f) for f in frames)
    first.save(buf, "PNG", save_all=True, append_images=rest, default_image=not default_in_animation)
    data = buf.getvalue()
    with PILImage.open(io.BytesIO(data)) as im:
        want = np.asarray(im.convert("RGB"))
    assert np.array_equal(gpuimg.read(data, device=device).numpy(), want)
    assert np.array_equal(want, frames[0])


def test_premultiplied_tiff_is_unpremultiplied(device):
    tifffile = pytest.importorskip("tifffile")
    rgba = load_asset("coffee_rgba.png", "RGBA")[100:160, 200:290].astype(np.uint16)
    premult = rgba.copy()
    premult[..., :3] = (rgba[..., :3] * rgba[..., 3:] + 127) // 255
    buf = io.BytesIO()
    tifffile.imwrite(buf, premult.astype(np.uint8), photometric="rgb", extrasamples=[1])
    data = buf.getvalue()
    with PILImage.open(io.BytesIO(data)) as im:
        want = np.asarray(im.convert("RGBA"))
    got = gpuimg.read(data, device=device, mode="rgba").numpy()
    assert np.array_equal(got, want)
    assert np.array_equal(gpuimg.read(data, device=device, mode="rgb").numpy(), want[..., :3])


# ------------------------------------------------------------------ inputs the fuzzer found

FUZZ = sorted(p for p in (REPRO / "fuzz").iterdir() if p.suffix != ".md")


def _written_fully(data: bytes, device: str, mode: str) -> None:
    """A decode that succeeds writes every pixel: decoding into buffers pre-filled with
    0x00 and with 0xFF gives the same pixels as a fresh decode."""
    try:
        fresh = gpuimg.read(data, device=device, mode=mode).numpy()
    except gpuimg.GpuImgError:
        return
    for fill in (0, 255):
        out = gpuimg.Image.empty(*fresh.shape, fresh.dtype, device=device)
        out.array[...] = fill
        again = gpuimg.read(data, out=out, device=device, mode=mode).numpy()
        assert np.array_equal(again, fresh), f"fill {fill}: pixels not written"


def _scan_corrupted() -> dict[str, bytes]:
    """JPEGs whose scan lost or changed bytes but still parse: the two fuzz findings and a
    1080p photo with 4 KB cut from the middle of its scan (large images take other nvJPEG
    paths)."""
    made = {p.name: p.read_bytes() for p in FUZZ if p.name.endswith("unwritten.jpg")}
    buf = io.BytesIO()
    PILImage.open(ASSETS / "astronaut.jpg").resize((1920, 1080), PILImage.BICUBIC).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    at = (data.find(b"\xff\xda") + len(data)) // 2
    made["1080p-scan-cut"] = data[:at] + data[at + 4096 :]
    return made


def test_corrupt_scan_decodes_to_the_same_pixels_whatever_came_before(device):
    """The nvJPEG hardware decoder fills what it cannot decode of a corrupt scan from its
    buffers (earlier images): the default decoders' pixels depend on the file alone, the
    same alone, after other photos of its size and inside a batch of them."""
    dec = Decoder(device)
    for name, data in _scan_corrupted().items():
        try:
            first = dec.decode(data).numpy()
        except gpuimg.GpuImgError:
            continue  # a clean refusal is fine
        h, w = first.shape[:2]
        others = []
        for photo in ("chelsea.jpg", "coffee.jpg"):
            buf = io.BytesIO()
            PILImage.fromarray(load_asset(photo)).resize((w, h)).save(buf, "JPEG", quality=90)
            others.append(buf.getvalue())
        for other in others:
            dec.decode(other)
            assert np.array_equal(dec.decode(data).numpy(), first), f"{name}: after another photo"
            res = dec.decode_batch([other, data, other]).raise_errors()
            assert np.array_equal(res.images[1].numpy(), first), f"{name}: inside a batch"


@pytest.mark.parametrize("path", FUZZ, ids=[p.name for p in FUZZ])
def test_fuzz_finding_gives_written_pixels_or_a_clean_error(device, path):
    data = path.read_bytes()
    for mode in ("rgb", "unchanged"):
        _written_fully(data, device, mode)


def test_fuzz_findings_in_one_batch_keep_the_good_files(device):
    goods = [ASSETS / "chelsea.jpg", ASSETS / "coffee.png", ASSETS / "rocket.jpg"]
    srcs = [goods[0], *FUZZ[: len(FUZZ) // 2], goods[1], *FUZZ[len(FUZZ) // 2 :], goods[2]]
    res = gpuimg.read_batch(srcs, device=device)
    kept = dict(zip(res.indices, res.images))
    for path in goods:
        k = srcs.index(path)
        assert k in kept, f"{path.name} lost"
        alone = gpuimg.read(path, device=device).numpy()
        assert np.array_equal(kept[k].numpy(), alone), path.name
    listed = {e.index for e in res.errors} | set(res.indices)
    assert listed == set(range(len(srcs)))


def test_fuzz_findings_through_the_pipeline(device, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for path in FUZZ:
        (src / path.name).write_bytes(path.read_bytes())
    for name in ("chelsea.jpg", "coffee.png"):
        (src / name).write_bytes((ASSETS / name).read_bytes())
    from gpuimg.pipeline import Pipeline

    out = tmp_path / "out"
    summary = Pipeline([("resize", {"size": (48, 64)})], device=device).run(src, out, batch_size=4)
    assert summary.processed + summary.failed == len(FUZZ) + 2
    assert (out / "chelsea.jpg").exists() and (out / "coffee.jpg").exists()
    for failure in summary.failures:
        assert failure.stage in ("read", "decode", "process"), failure


def test_without_a_child_process_cpu_codecs_decode_in_process(monkeypatch):
    """Where no isolated child can start, the decoder warns once and decodes in-process:
    no item is lost, this call or later ones."""

    def refuse(*args, **kwargs):
        raise isolation.IsolationUnavailable("the isolated decoder process did not start: test")

    pool._stop_all()
    monkeypatch.setattr(pool, "_Child", refuse)
    dec = Decoder("cpu")
    with pytest.warns(RuntimeWarning, match="no crash containment"):
        res = dec.decode_batch([ASSETS / "chelsea.png", ASSETS / "coffee.jpg"])
    assert res.ok and not dec.isolation.active
    assert np.array_equal(res.images[0].numpy(), load_asset("chelsea.png"))
    assert np.array_equal(dec.decode(ASSETS / "camera_gray.png", mode="gray").numpy(), load_asset("camera_gray.png", "L"))


def test_no_in_process_decode_after_a_crash_when_no_child_restarts(selftest_children, monkeypatch):
    """A child crashed and its replacement cannot start: the batch's items fail with the
    reason; none is decoded in this process, where the poison file would crash it."""
    arr = load_asset("chelsea.png")[:40, :60]
    good, bad = _png_with_text(arr, b"fine"), _png_with_text(arr, b"gpuimg-selftest-crash")
    real = pool._Child
    started: list[int] = []

    def once(*args, **kwargs):
        if started:
            raise isolation.IsolationUnavailable("the isolated decoder process did not start: test")
        started.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pool, "_Child", once)
    res = Decoder("cpu").decode_batch([good, bad, good])
    assert res.indices == [] and len(res.errors) == 3
    assert all("no new decoder process started" in str(e.error) for e in res.errors)
