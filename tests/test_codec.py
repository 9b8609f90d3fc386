"""gpuimg.codec against Pillow (the outside reference) on the real photos in assets/.

Tolerances: lossless formats (PNG, BMP, PNM, TIFF, lossless WebP/JPEG 2000) must match
Pillow bit for bit. JPEG: decoders use different IDCTs and chroma upsampling; nvImageCodec's
CPU backend is libjpeg-turbo like Pillow, the GPU one (nvJPEG) differs by at most a level
or two (seen on H100 and H200), so we allow max |diff| <= 4 and mean |diff| <= 0.1. Gray conversion
may round differently from Pillow's "L" by one level.
"""

from __future__ import annotations

import io
import struct
import threading
import zlib


import numpy as np
import pytest
from conftest import ASSETS, GPU_JPEG_TOLERANCE, load_asset

import gpuimg
from gpuimg.codec import HARDWARE_FIRST_BACKENDS, BatchResult, Decoder, Encoder, ImageInfo

PIL = pytest.importorskip("PIL")
from PIL import Image as PILImage  # noqa: E402
from PIL import ImageOps  # noqa: E402

JPEG_MAX, JPEG_MEAN = GPU_JPEG_TOLERANCE  # the CPU decode is exact; the GPU's depends on nvJPEG


def _pil_bytes(arr: np.ndarray, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr).save(buf, fmt, **kwargs)
    return buf.getvalue()


def _pil_decode(data: bytes, mode: str | None = "RGB") -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert(mode) if mode else im)
    return arr[:, :, None] if arr.ndim == 2 else arr


def _assert_jpeg_close(got: np.ndarray, ref: np.ndarray) -> None:
    diff = np.abs(got.astype(np.int32) - ref.astype(np.int32))
    assert got.shape == ref.shape
    assert diff.max() <= JPEG_MAX and diff.mean() <= JPEG_MEAN, (diff.max(), diff.mean())


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    return load_asset("coffee.png")[:160, :240]  # small crop: fast slow codecs (JPEG 2000)


@pytest.fixture
def dec(device: str) -> Decoder:
    return Decoder(device)


@pytest.fixture
def enc(device: str) -> Encoder:
    return Encoder(device)


# ---------------------------------------------------------------------------- decode parity


@pytest.mark.parametrize("name", ["chelsea.png", "coffee.png"])
def test_png_rgb_bit_exact(dec, name):
    assert np.array_equal(dec.decode(ASSETS / name).numpy(), load_asset(name))


@pytest.mark.parametrize("fmt", ["BMP", "PPM", "TIFF", "WEBP", "JPEG2000"])
def test_lossless_formats_bit_exact(dec, coffee, fmt):
    options = {"WEBP": {"lossless": True}, "JPEG2000": {"irreversible": False}}.get(fmt, {})
    data = _pil_bytes(coffee, fmt, **options)
    assert np.array_equal(dec.decode(data).numpy(), _pil_decode(data))


@pytest.mark.parametrize("name", ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"])
def test_jpeg_within_tolerance(dec, name):
    _assert_jpeg_close(dec.decode(str(ASSETS / name)).numpy(), load_asset(name))


def test_gray_png_and_gray_mode(dec):
    assert np.array_equal(dec.decode(ASSETS / "camera_gray.png", mode="gray").numpy(), load_asset("camera_gray.png", "L"))
    assert np.array_equal(dec.decode(ASSETS / "camera_gray.png", mode="unchanged").numpy(), load_asset("camera_gray.png", "L"))
    gray = dec.decode(ASSETS / "chelsea.png", mode="gray").numpy()
    ref = load_asset("chelsea.png", "L")
    assert gray.shape == ref.shape and np.abs(gray.astype(int) - ref).max() <= 1


def test_rgba_and_bgr(dec):
    rgba = load_asset("coffee_rgba.png", "RGBA")
    assert np.array_equal(dec.decode(ASSETS / "coffee_rgba.png", mode="rgba").numpy(), rgba)
    assert np.array_equal(dec.decode(ASSETS / "coffee_rgba.png", mode="unchanged").numpy(), rgba)
    assert np.array_equal(dec.decode(ASSETS / "coffee_rgba.png", mode="rgb").numpy(), rgba[..., :3])
    # RGB source asked as RGBA: the colour plus an opaque alpha (added on the device).
    rgb = load_asset("chelsea.png")
    got = dec.decode(ASSETS / "chelsea.png", mode="rgba").numpy()
    assert np.array_equal(got[..., :3], rgb) and (got[..., 3] == 255).all()
    assert np.array_equal(dec.decode(ASSETS / "chelsea.png", mode="bgr").numpy(), rgb[..., ::-1])
    # Gray + alpha ("LA") keeps its alpha: 4 channels, gray replicated.
    la = np.asarray(PILImage.open(ASSETS / "coffee_rgba.png").convert("LA"))
    data = _pil_bytes(la, "PNG")
    assert np.array_equal(dec.decode(data, mode="unchanged").numpy(), _pil_decode(data, "RGBA"))


def test_16bit_kept_with_depth_any(dec):
    with PILImage.open(ASSETS / "chelsea_gray16.png") as im:
        ref = np.asarray(im).astype(np.uint16)[:, :, None]
    img = dec.decode(ASSETS / "chelsea_gray16.png", mode="unchanged", depth="any")
    assert img.dtype == np.uint16 and np.array_equal(img.numpy(), ref)
    eight = dec.decode(ASSETS / "chelsea_gray16.png", mode="gray")
    assert eight.dtype == np.uint8 and np.abs(eight.numpy().astype(int) - (ref >> 8)).max() <= 1


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(dec, tmp_path, fmt, orientation):
    src = load_asset("chelsea.png")[:40, :64]  # not square: a transpose shows
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.{fmt.lower()}"
    PILImage.fromarray(src).save(path, fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    with PILImage.open(path) as im:
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = dec.decode(path).numpy()
    if fmt == "PNG":
        assert np.array_equal(got, ref)
    else:
        _assert_jpeg_close(got, ref)
    assert gpuimg.info(path).orientation == orientation
    assert (gpuimg.info(path).height, gpuimg.info(path).width) == ref.shape[:2]
    stored = dec.decode(path, apply_exif=False).numpy()
    assert stored.shape == src.shape


def test_sources_bytes_array_memoryview_codestream(dec):
    data = (ASSETS / "chelsea.png").read_bytes()
    ref = load_asset("chelsea.png")
    nv = pytest.importorskip("nvidia.nvimgcodec")
    for src in (data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8), nv.CodeStream(data)):
        assert np.array_equal(dec.decode(src).numpy(), ref)


def test_region_is_a_crop(dec):
    ref = load_asset("coffee.png")
    img = dec.decode(ASSETS / "coffee.png", region=(10, 20, 110, 220))
    assert np.array_equal(img.numpy(), ref[10:110, 20:220])
    with pytest.raises(gpuimg.DecodeError, match="outside"):
        dec.decode(ASSETS / "coffee.png", region=(0, 0, 401, 10))
    with pytest.raises(ValueError, match="region"):
        dec.decode(ASSETS / "coffee.png", region=(5, 5, 5, 10))


def test_info():
    info = gpuimg.info(ASSETS / "rocket.jpg")
    assert isinstance(info, ImageInfo)
    assert (info.width, info.height, info.channels, info.codec, info.dtype) == (640, 427, 3, "jpeg", "uint8")
    assert gpuimg.info(ASSETS / "chelsea_gray16.png").dtype == "uint16"
    assert gpuimg.info(ASSETS / "coffee_rgba.png").channels == 4


# ---------------------------------------------------------------------------- encode


@pytest.mark.parametrize("codec", ["png", "bmp", "tiff", "pnm", "webp", "jpeg2k"])
def test_lossless_round_trip(dec, enc, coffee, codec):
    img = gpuimg.Image.from_array(coffee).to(enc.device)
    options = {"webp": {"lossless": True}, "jpeg2k": {"lossless": True}}.get(codec, {})
    data = enc.encode(img, codec, **options)
    assert np.array_equal(_pil_decode(data), coffee)  # Pillow reads what we wrote
    assert np.array_equal(dec.decode(data).numpy(), coffee)


def test_round_trip_gray_rgba_16bit(dec, enc):
    gray = load_asset("camera_gray.png", "L")[:100, :120]
    rgba = load_asset("coffee_rgba.png", "RGBA")[100:200, 200:330]
    for arr, mode in ((gray, "L"), (rgba, "RGBA")):
        data = enc.encode(gpuimg.Image.from_array(np.ascontiguousarray(arr)).to(enc.device), "png")
        assert np.array_equal(_pil_decode(data, mode), arr)
    with PILImage.open(ASSETS / "chelsea_gray16.png") as im:
        g16 = np.ascontiguousarray(np.asarray(im).astype(np.uint16)[:64, :80, None])
    data = enc.encode(gpuimg.Image.from_array(g16).to(enc.device), "png")
    assert np.array_equal(dec.decode(data, mode="unchanged", depth="any").numpy(), g16)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def test_jpeg_quality_and_options(enc, coffee):
    img = gpuimg.Image.from_array(np.ascontiguousarray(coffee)).to(enc.device)
    q95 = enc.encode(img, "jpeg", quality=95)
    assert _psnr(_pil_decode(q95), coffee) > 36  # stated bound for quality 95
    q30 = enc.encode(img, "jpeg", quality=30)
    assert len(q30) < len(q95)
    full = enc.encode(img, "jpeg", quality=90, chroma_subsampling="444")
    assert _psnr(_pil_decode(full), coffee) > _psnr(_pil_decode(enc.encode(img, "jpeg", quality=90)), coffee)
    progressive = enc.encode(img, "jpeg", quality=90, progressive=True)
    assert b"\xff\xc2" in progressive  # SOF2: a progressive frame
    assert _psnr(_pil_decode(progressive), coffee) > 30
    small = enc.encode(img, "png", compression_level=9)
    fast = enc.encode(img, "png", compression_level=0)
    assert len(small) < len(fast)
    lossy = enc.encode(img, "webp", quality=80)
    assert _psnr(_pil_decode(lossy), coffee) > 28


def test_encode_bad_arguments(enc, coffee):
    img = gpuimg.Image.from_array(np.ascontiguousarray(coffee)).to(enc.device)
    with pytest.raises(gpuimg.UnsupportedFormatError, match="gif"):
        enc.encode(img, "gif")
    with pytest.raises(TypeError, match="progressive"):
        enc.encode(img, "png", progressive=True)
    with pytest.raises(ValueError, match="quality"):
        enc.encode(img, "jpeg", quality=0)
    with pytest.raises(ValueError, match="chroma_subsampling"):
        enc.encode(img, "jpeg", chroma_subsampling="999")


def test_codestream_capacity_grows_only_when_needed(enc, coffee):
    big = gpuimg.Image.from_array(np.ascontiguousarray(coffee)).to(enc.device)
    small = gpuimg.Image.from_array(np.ascontiguousarray(coffee[:32, :32])).to(enc.device)
    enc.encode(big, "bmp")
    stream = enc.code_streams[0]
    capacity = stream.capacity
    for img in (small, big, small):
        enc.encode(img, "bmp")
        assert enc.code_streams[0] is stream and stream.capacity == capacity


def test_encode_batch_and_write(dec, enc, tmp_path):
    batch = dec.decode_batch([ASSETS / "chelsea.png", ASSETS / "coffee.png"]).images
    files = enc.encode_batch(batch, "png")
    assert [np.array_equal(_pil_decode(f), load_asset(n)) for f, n in zip(files, ["chelsea.png", "coffee.png"])] == [True, True]
    for ext in ("png", "jpg", "bmp", "tif", "ppm", "webp", "jp2"):
        path = tmp_path / f"out.{ext}"
        gpuimg.write(batch[0], path)
        with PILImage.open(path) as im:
            assert im.size == (451, 300)
    with pytest.raises(gpuimg.UnsupportedFormatError, match="extension"):
        gpuimg.write(batch[0], tmp_path / "noext")


# ---------------------------------------------------------------------------- reuse, no allocation


def test_decode_into_one_image_allocates_only_on_growth(dec):
    names = ["chelsea.png", "coffee.png", "camera_gray.png", "chelsea.jpg", "astronaut.jpg", "chelsea.png"]
    img = None
    growths = []
    for name in names:  # 451x300, 600x400, 512x512, 451x300, 512x512, 451x300 (RGB)
        before = gpuimg.memory_stats()["allocations"]
        img = dec.decode(ASSETS / name, out=img)
        growths.append(gpuimg.memory_stats()["allocations"] - before)
        assert np.abs(img.numpy().astype(int) - load_asset(name)).max() <= JPEG_MAX
    assert growths == [1, 1, 1, 0, 0, 0]


def test_decode_batch_into_one_batch_allocates_only_on_growth(dec):
    small = [ASSETS / "chelsea.png"] * 2
    large = [ASSETS / "coffee.png", ASSETS / "astronaut.jpg", ASSETS / "rocket.jpg"]
    dec.decode_batch(large)  # the Decoder's own tables (the GPU JPEG scan check's, made on first use) exist now
    batch = None
    allocations = []
    for srcs in (small, large, small, large, small):
        before = gpuimg.memory_stats()["allocations"]
        res = dec.decode_batch(srcs, out=batch)
        batch = res.images
        allocations.append(gpuimg.memory_stats()["allocations"] - before)
        assert res.ok and len(res) == len(srcs)
        for img, src in zip(batch, srcs):
            assert np.abs(img.numpy().astype(int) - load_asset(src.name)).max() <= JPEG_MAX
    assert allocations == [1, 1, 0, 0, 0]


# ---------------------------------------------------------------------------- bad input


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def _png_header(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def test_bad_inputs(dec, tmp_path):
    good = (ASSETS / "coffee.jpg").read_bytes()
    with pytest.raises(gpuimg.DecodeError, match="empty"):
        dec.decode(b"")
    for bad in (good[: len(good) // 3], np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes()):
        with pytest.raises(gpuimg.DecodeError):
            dec.decode(bad)
    text = tmp_path / "notes.txt"
    text.write_text("this is not an image\n" * 20)
    with pytest.raises(gpuimg.DecodeError, match="notes.txt"):
        dec.decode(text)
    gif = tmp_path / "a.gif"  # decoded with Pillow (tests/test_formats_pillow.py); HEIC is not
    PILImage.fromarray(load_asset("chelsea.png")).save(gif)
    assert dec.decode(gif).shape == (300, 451, 3)
    heic = tmp_path / "a.heic"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    with pytest.raises(gpuimg.UnsupportedFormatError, match="HEIC"):
        dec.decode(heic)
    with pytest.raises(gpuimg.ImageTooLargeError, match="100000x100000"):
        dec.decode(_png_header(100_000, 100_000))
    assert Decoder(dec.device, max_pixels=10**10).info(_png_header(100_000, 100_000)).pixels == 10**10
    with pytest.raises(FileNotFoundError):
        dec.decode(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match="mode"):
        dec.decode(good, mode="cmyk")
    with pytest.raises(ValueError, match="depth"):
        dec.decode(good, depth="float")
    with pytest.raises(TypeError):
        dec.decode(12345)


def test_too_large_allocates_nothing(dec):
    gpuimg.reset_memory_stats()
    with pytest.raises(gpuimg.ImageTooLargeError):
        dec.decode(_png_header(100_000, 100_000))
    assert gpuimg.memory_stats()["allocations"] == 0


def test_batch_keeps_every_good_item(dec, tmp_path):
    good = {0: ASSETS / "chelsea.png", 2: ASSETS / "coffee.jpg", 5: ASSETS / "camera_gray.png", 7: ASSETS / "rocket.jpg"}
    truncated = (ASSETS / "astronaut.jpg").read_bytes()[:4000]
    srcs = [good[0], b"", good[2], tmp_path / "missing.png", _png_header(100_000, 100_000), good[5], truncated, good[7]]
    res = dec.decode_batch(srcs)
    assert isinstance(res, BatchResult) and not res.ok
    assert res.indices == [0, 2, 5, 7] and res.sources == [good[i] for i in res.indices]
    assert [e.index for e in res.errors] == [1, 3, 4, 6]
    assert isinstance(res.errors[1].error.__cause__, FileNotFoundError)
    assert isinstance(res.errors[2].error, gpuimg.ImageTooLargeError)
    assert res.errors[3].source is truncated
    for img, i in zip(res, res.indices):
        assert np.abs(img.numpy().astype(int) - load_asset(good[i].name)).max() <= JPEG_MAX
    with pytest.raises(gpuimg.DecodeError):
        res.raise_errors()


def test_batch_of_only_bad_items(dec):
    res = dec.decode_batch([b"", b"junk"])
    assert len(res) == 0 and len(res.errors) == 2


def test_threads_decode_at_once(device):
    names = ["chelsea.png", "coffee.png", "camera_gray.png", "coffee_rgba.png"]
    refs = {n: load_asset(n) for n in names}
    failures: list[str] = []

    def work(offset: int) -> None:
        img = None
        for k in range(8):
            name = names[(k + offset) % len(names)]
            img = gpuimg.read(ASSETS / name, out=img, device=device)
            if not np.array_equal(img.numpy(), refs[name]):
                failures.append(name)
            batch = gpuimg.read_batch([ASSETS / n for n in names], device=device).images
            if not all(np.array_equal(b.numpy(), refs[n]) for b, n in zip(batch, names)):
                failures.append("batch")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# ---------------------------------------------------------------------------- GPU only


def test_gpu_matches_cpu(gpu):
    srcs = [ASSETS / n for n in ("chelsea.png", "coffee_rgba.png", "camera_gray.png", "chelsea_gray16.png")]
    for mode in ("rgb", "rgba", "gray", "unchanged"):
        cpu = Decoder("cpu").decode_batch(srcs, mode=mode, depth="uint8").images.numpy()
        cuda = Decoder(gpu).decode_batch(srcs, mode=mode, depth="uint8").images.numpy()
        assert all(np.array_equal(a, b) for a, b in zip(cpu, cuda)), mode


def test_decode_on_a_given_stream(gpu):
    import cupy

    stream = cupy.cuda.Stream(non_blocking=True)
    dec = Decoder(gpu)
    res = dec.decode_batch([ASSETS / "coffee.jpg", ASSETS / "rocket.jpg"], stream=stream)
    with stream:
        got = res.images.numpy()
    for img, name in zip(got, ("coffee.jpg", "rocket.jpg")):
        _assert_jpeg_close(img, load_asset(name))


def _slow_reader(src, dst, spins: int):
    """A kernel that copies ``src`` to ``dst`` slowly (busy-waits first): a late reader."""
    import cupy

    kernel = cupy.RawKernel(
        r"""
        extern "C" __global__ void slow_copy(const unsigned char* src, unsigned char* dst, long long n, long long spins) {
            long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
            long long t0 = clock64();
            while (clock64() - t0 < spins) { }
            for (; i < n; i += (long long)gridDim.x * blockDim.x) dst[i] = src[i];
        }""",
        "slow_copy",
    )
    kernel((64,), (256,), (src, dst, np.int64(src.size), np.int64(spins)))


@pytest.mark.parametrize("trial", range(3))
def test_reused_buffer_hazard(gpu, trial):
    """A slow kernel still reads the old pixels when a decode into the same buffer is queued.

    Without ordering (the H100 hardware JPEG decoder may write before earlier work on the
    stream finished) the reader would see new pixels; the Decoder's guard prevents it.
    """
    import cupy

    srcs = [ASSETS / "astronaut.jpg"] * 8
    other = [ASSETS / "chelsea.jpg"] * 8
    dec = Decoder(gpu, backends=HARDWARE_FIRST_BACKENDS)  # the guard matters for the hardware decoder
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        batch = dec.decode_batch(srcs, stream=stream).images
        old = batch.arena.copy()
        seen = cupy.empty_like(old)
        _slow_reader(batch.arena, seen, spins=200_000_000)  # ~100 ms on an H100
        dec.decode_batch(other, out=batch, stream=stream)
        stream.synchronize()
    assert bool((seen == old).all())


@pytest.mark.xfail(strict=False, raises=AssertionError, reason="the hazard the guard prevents: the reader sees new pixels")
def test_reused_buffer_hazard_without_guard(gpu):
    """The same scenario with guard_reuse=False: XPASS means this GPU/decoder ordered it anyway."""
    import cupy

    dec = Decoder(gpu, guard_reuse=False, backends=HARDWARE_FIRST_BACKENDS)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        batch = dec.decode_batch([ASSETS / "astronaut.jpg"] * 8, stream=stream).images
        old = batch.arena.copy()
        seen = cupy.empty_like(old)
        _slow_reader(batch.arena, seen, spins=200_000_000)
        dec.decode_batch([ASSETS / "chelsea.jpg"] * 8, out=batch, stream=stream)
        stream.synchronize()
    assert bool((seen == old).all())


def test_jpeg_with_data_after_end_marker_still_decodes(dec):
    """Some cameras append metadata after the JPEG's end marker: not a truncated file."""
    data = (ASSETS / "chelsea.jpg").read_bytes() + b"\x00trailer" * 40
    _assert_jpeg_close(dec.decode(data).numpy(), load_asset("chelsea.jpg"))
    with pytest.raises(gpuimg.DecodeError, match="truncated"):
        dec.decode((ASSETS / "chelsea.jpg").read_bytes()[:-200])


@pytest.mark.parametrize("backends", [["hybrid", "cpu"], [("hw", 0.5), "hybrid", "gpu", "cpu"], list(HARDWARE_FIRST_BACKENDS)])
def test_gpu_backend_choices_decode_the_same_photo(gpu, backends):
    img = Decoder(gpu, backends=backends).decode(ASSETS / "coffee.jpg")
    _assert_jpeg_close(img.numpy(), load_asset("coffee.jpg"))
    with pytest.raises(ValueError, match="backend"):
        Decoder(gpu, backends=["nvjpeg"])


def test_batch_item_failing_inside_the_decode_call_is_dropped(dec):
    """A header that parses but pixels that do not: the later slots move down intact."""
    corrupt = bytearray((ASSETS / "chelsea.png").read_bytes())
    middle = len(corrupt) // 2
    corrupt[middle : middle + 200] = bytes(200)  # breaks the compressed pixel data only
    srcs = [ASSETS / "coffee.png", bytes(corrupt), ASSETS / "camera_gray.png", ASSETS / "chelsea.png"]
    res = dec.decode_batch(srcs)
    assert res.indices == [0, 2, 3] and [e.index for e in res.errors] == [1]
    assert "could not decode" in str(res.errors[0].error)
    for img, name in zip(res, ("coffee.png", "camera_gray.png", "chelsea.png")):
        assert np.array_equal(img.numpy(), load_asset(name))


# ---------------------------------------------------------------------------- parse once


def _fixed_decoder(device: str) -> Decoder:
    """Hardware-first fixed backends (the pipeline's): the same item always goes to the
    same JPEG decoder, so two decodes of it are bit-identical on the GPU too."""
    from gpuimg.pipeline import PipelineConfig

    return Decoder(device, backends=PipelineConfig().decode_backends)


def test_parse_then_decode_batch_equals_decode_batch_of_bytes(device, tmp_path, monkeypatch):
    from gpuimg.codec import sources

    dec = _fixed_decoder(device)
    rotated = tmp_path / "rotated.jpg"
    with PILImage.open(ASSETS / "rocket.jpg") as im:
        exif = im.getexif()
        exif[0x0112] = 6
        im.save(rotated, "JPEG", quality=90, exif=exif.tobytes())
    names = ["chelsea.jpg", "coffee.png", "camera_gray.png", "coffee_rgba.png", "rocket.jpg"]
    datas = [(ASSETS / n).read_bytes() for n in names] + [rotated.read_bytes()]
    parsed = [gpuimg.parse(d) for d in datas]
    assert all(isinstance(p, gpuimg.ParsedSource) for p in parsed)
    assert [p.info for p in parsed] == [gpuimg.info(d) for d in datas]
    assert parsed[-1].info.orientation == 6 and (parsed[-1].info.height, parsed[-1].info.width) == (640, 427)
    assert parsed[0].src is datas[0] and gpuimg.parse(parsed[0]) is parsed[0]

    want = dec.decode_batch(datas, mode="rgb")
    # No second read or parse: the decode takes the parsed headers as they are.
    monkeypatch.setattr(sources, "_read", lambda src: pytest.fail(f"read again: {src!r}"))
    monkeypatch.setattr(sources, "_info_of", lambda src: pytest.fail(f"parsed again: {src!r}"))
    got = dec.decode_batch(parsed, mode="rgb")
    assert got.ok and got.indices == list(range(len(datas))) and got.sources == parsed
    assert got.images.shapes == want.images.shapes
    for a, b in zip(got, want):
        assert np.array_equal(a.numpy(), b.numpy())
    # Single decodes and reuse: a parsed source decodes again, identically.
    assert np.array_equal(dec.decode(parsed[1]).numpy(), want[1].numpy())
    assert np.array_equal(gpuimg.read(parsed[1], device=device).numpy(), want[1].numpy())


def test_parse_errors_name_the_source(tmp_path):
    jpeg = (ASSETS / "astronaut.jpg").read_bytes()
    files = {
        "truncated.jpg": (jpeg[: len(jpeg) // 3], gpuimg.DecodeError, "truncated"),
        "corrupt.jpg": (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, gpuimg.DecodeError, "header"),
        "empty.jpg": (b"", gpuimg.DecodeError, "empty"),
        "notes.jpg": (b"this is not an image\n" * 20, gpuimg.DecodeError, "header"),
    }
    for name, (data, error, reason) in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(error, match=reason) as info:
            gpuimg.parse(path)
        assert isinstance(info.value, gpuimg.GpuImgError) and str(path) in str(info.value), name
    with pytest.raises(gpuimg.DecodeError, match="truncated"):
        gpuimg.parse(jpeg[:-200])  # bytes are named by their size
    heic = tmp_path / "a.heic"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    with pytest.raises(gpuimg.UnsupportedFormatError, match="HEIC"):
        gpuimg.parse(heic)
    with pytest.raises(FileNotFoundError):
        gpuimg.parse(tmp_path / "missing.jpg")
    with pytest.raises(TypeError, match="ParsedSource"):
        gpuimg.parse(12345)


def test_parsed_sources_in_a_batch_keep_errors_per_item(dec):
    """The pixel limit is the Decoder's: checked at decode, the error names the original
    source, and BatchError.source / BatchResult.sources are the objects passed."""
    huge = gpuimg.parse(_png_header(100_000, 100_000))
    assert huge.info.pixels == 10**10
    good = gpuimg.parse(ASSETS / "coffee.jpg")
    assert good.src == ASSETS / "coffee.jpg"
    res = dec.decode_batch([good, huge, ASSETS / "rocket.jpg"])
    assert res.indices == [0, 2] and res.sources == [good, ASSETS / "rocket.jpg"]
    assert res.errors[0].source is huge and isinstance(res.errors[0].error, gpuimg.ImageTooLargeError)
    assert "bytes>" in str(res.errors[0].error)  # named by the original bytes, not the wrapper
    with pytest.raises(gpuimg.ImageTooLargeError, match="100000x100000"):
        dec.decode(huge)
    _assert_jpeg_close(res[0].numpy(), load_asset("coffee.jpg"))
