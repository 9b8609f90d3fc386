"""gpuimg.codec.checks: structural checks before decoding, premultiplied-alpha TIFFs.

Valid files come from Pillow and tifffile (the outside writers); corrupt ones are those
files patched with struct, or built byte by byte, so no test depends on the repro
folder (tests/repro; its files are checked too).
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

import gpuimg
from PIL import Image

from gpuimg.codec.checks import jpeg_scan_problem, structure_problem, tiff_associated_alpha, unpremultiply
from gpuimg.meta import tiff_ifd

REPRO = Path(__file__).resolve().parent / "repro"


# --- writers -----------------------------------------------------------------------------


def _pixels(h: int, w: int, c: int, dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    arr = rng.integers(0, top, size=(h, w, c), endpoint=True, dtype=dtype)
    return arr[:, :, 0] if c == 1 else arr


def _pil(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _tif(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = 8, []
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _png_join(chunks: list[tuple[bytes, bytes]]) -> bytes:
    parts = [b"\x89PNG\r\n\x1a\n"]
    for kind, body in chunks:
        parts.append(struct.pack(">I4s", len(body), kind) + body + struct.pack(">I", zlib.crc32(kind + body)))
    return b"".join(parts)


def _png_rechunked(data: bytes, size: int) -> bytes:
    """The same PNG with its image data split into IDAT chunks of ``size`` bytes."""
    chunks = _png_chunks(data)
    stream = b"".join(body for kind, body in chunks if kind == b"IDAT")
    head = [c for c in chunks if c[0] not in (b"IDAT", b"IEND")]
    idats = [(b"IDAT", stream[i : i + size]) for i in range(0, len(stream), size)]
    return _png_join(head + idats + [(b"IEND", b"")])


def _tiff_by_hand(entries: list[tuple[int, int, int]], width: int, height: int, raster: bytes) -> bytes:
    """A little-endian 8-bit gray TIFF whose IFD0 holds ``entries`` (tag, SHORT/LONG type,
    value) in the given order, duplicates kept, plus one strip of ``raster``."""
    strip = 8
    ifd = strip + len(raster) + (len(raster) & 1)
    fixed = [(258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, strip), (277, 3, 1), (278, 4, height),
             (279, 4, len(raster))]  # fmt: skip
    all_entries = entries + fixed
    out = bytearray(struct.pack("<2sHI", b"II", 42, ifd) + raster + b"\0" * (len(raster) & 1))
    out += struct.pack("<H", len(all_entries))
    for tag, kind, value in all_entries:
        field = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + field
    return bytes(out + b"\0\0\0\0")


def _repro_tiff() -> bytes:
    """The shape of tiff-two-widths-stale.tif: ImageWidth 88, then ImageWidth 590."""
    return _tiff_by_hand([(256, 3, 88), (257, 3, 590), (256, 3, 590)], 590, 590, bytes(88 * 590))


def _repro_png() -> bytes:
    """The shape of png-idat-length-4gb.png: a 104x72 RGBA PNG whose IDAT length is 0xFFFFFFFF."""
    data = bytearray(_pil(Image.fromarray(_pixels(72, 104, 4)), "PNG"))
    assert data[37:41] == b"IDAT"
    data[33:37] = b"\xff\xff\xff\xff"
    return bytes(data)


def _ascii_pnm(magic: str, arr: np.ndarray, maxval: int) -> bytes:
    h, w = arr.shape[:2]
    body = "\n".join(" ".join(str(v) for v in row.reshape(-1)) for row in arr)
    return f"{magic}\n# made by hand\n{w} {h}\n{maxval}\n{body}\n".encode()


W, H = 37, 23  # odd sizes: BMP row padding and PNM bit packing matter


def _valid_files() -> dict[str, tuple[bytes, str, int, int]]:
    """name -> (data, nvImageCodec codec name, stored width, stored height)."""
    rgb, rgba, gray = _pixels(H, W, 3), _pixels(H, W, 4), _pixels(H, W, 1)
    gray16 = _pixels(H, W, 1, np.uint16)
    photo = Image.fromarray(np.linspace(0, 255, H * W * 3).astype(np.uint8).reshape(H, W, 3))
    files = {
        "png-rgb": (_pil(Image.fromarray(rgb), "PNG"), "png"),
        "png-rgba": (_pil(Image.fromarray(rgba), "PNG"), "png"),
        "png-16bit": (_pil(Image.fromarray(gray16), "PNG"), "png"),
        "png-palette": (_pil(Image.fromarray(rgb).quantize(17), "PNG"), "png"),
        "png-many-idat": (_png_rechunked(_pil(Image.fromarray(rgb), "PNG"), 64), "png"),
        "png-gray-optimized": (_pil(Image.fromarray(gray), "PNG", optimize=True), "png"),
        "tiff-strips": (_tif(rgb, photometric="rgb", rowsperstrip=4), "tiff"),
        "tiff-deflate-strips": (_tif(rgb, photometric="rgb", rowsperstrip=5, compression="zlib"), "tiff"),
        "tiff-tiled": (_tif(_pixels(40, 48, 3), photometric="rgb", tile=(16, 16)), "tiff"),
        "tiff-16bit-bigendian": (_tif(gray16, byteorder=">"), "tiff"),
        "tiff-planar": (_tif(rgb.transpose(2, 0, 1).copy(), photometric="rgb", planarconfig="separate", rowsperstrip=8), "tiff"),
        "tiff-bigtiff": (_tif(rgba, photometric="rgb", extrasamples=[2], bigtiff=True, rowsperstrip=8), "tiff"),
        "tiff-pillow": (_pil(Image.fromarray(rgb), "TIFF"), "tiff"),
        "webp-lossy": (_pil(photo, "WEBP", quality=80), "webp"),
        "webp-lossless": (_pil(Image.fromarray(rgb), "WEBP", lossless=True), "webp"),
        "webp-vp8x-alpha": (_pil(Image.fromarray(rgba), "WEBP", quality=70), "webp"),
        "webp-vp8x-lossless-alpha": (_pil(Image.fromarray(rgba), "WEBP", lossless=True), "webp"),
        "jp2": (_pil(photo, "JPEG2000"), "jpeg2k"),
        "jp2-tiles": (_pil(photo, "JPEG2000", tile_size=(16, 16)), "jpeg2k"),
        "j2k-codestream": (_pil(photo, "JPEG2000", no_jp2=True, tile_size=(16, 16)), "jpeg2k"),
        "bmp-24": (_pil(Image.fromarray(rgb), "BMP"), "bmp"),
        "bmp-32": (_pil(Image.fromarray(rgba), "BMP"), "bmp"),
        "bmp-8-palette": (_pil(Image.fromarray(rgb).quantize(20), "BMP"), "bmp"),
        "bmp-1": (_pil(Image.fromarray(gray).convert("1"), "BMP"), "bmp"),
        "pgm": (_pil(Image.fromarray(gray), "PPM"), "pnm"),
        "pgm-16bit": (_pil(Image.fromarray(gray16), "PPM"), "pnm"),
        "ppm": (_pil(Image.fromarray(rgb), "PPM"), "pnm"),
        "pbm": (_pil(Image.fromarray(gray).convert("1"), "PPM"), "pnm"),
        "pgm-ascii": (_ascii_pnm("P2", gray, 255), "pnm"),
        "ppm-ascii": (_ascii_pnm("P3", rgb, 255), "pnm"),
    }  # fmt: skip
    out = {}
    for name, (data, codec) in files.items():
        w, h = (48, 40) if name == "tiff-tiled" else (W, H)
        out[name] = (data, codec, w, h)
    return out


VALID = _valid_files()
# Formats whose every truncation is detectable (an end marker, a total size or a raster
# size); ASCII PNM has none.
DETECTS_EVERY_CUT = [name for name in VALID if not name.endswith("-ascii")]


def _nvimgcodec():
    try:
        from gpuimg.codec import _nvimgcodec

        return _nvimgcodec.load()
    except Exception:  # noqa: BLE001 - any import failure means "not available here"
        return None


# --- the repro files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, codec, size, expect",
    [
        ("tiff-two-widths-stale.tif", "tiff", (590, 590), "ImageWidth (256) appears twice"),
        ("png-idat-length-4gb.png", "png", (104, 72), "'IDAT' at byte 33 claims 4294967295 bytes"),
        ("jp2-truncated-segv.jp2", "jpeg2k", (2717, 3701), "truncated"),
        ("webp-exif-prefix-orientation6.webp", "webp", (100, 60), None),  # sound structure
        ("jpeg-exif-count-heap.jpg", "jpeg", (104, 72), None),  # JPEG is not parsed here
    ],
)
def test_repro_files(name: str, codec: str, size: tuple[int, int], expect: str) -> None:
    path = REPRO / name
    if not path.is_file():
        pytest.skip(f"{path} is not there (the built equivalents are tested below)")
    problem = structure_problem(path.read_bytes(), codec, *size)
    if expect is None:
        assert problem is None
    else:
        assert problem is not None and expect in problem


@pytest.mark.parametrize(
    "build, codec, size, expect",
    [
        (_repro_tiff, "tiff", (590, 590), "ImageWidth (256) appears twice"),
        (_repro_png, "png", (104, 72), "'IDAT' at byte 33 claims 4294967295 bytes"),
    ],
    ids=["tiff-two-widths", "png-idat-4gb"],
)
def test_repro_equivalents(build, codec: str, size: tuple[int, int], expect: str) -> None:
    data = build()
    nv = _nvimgcodec()
    if nv is not None:  # the header as nvImageCodec reads it: the size the decode would use
        try:
            cs = nv.CodeStream(data)
            header = (cs.codec_name, cs.width, cs.height)
        except RuntimeError:
            # Its PNG parser skips chunks by their 32-bit length + 12, which wraps; whether
            # it then lands on something readable depends on the IDAT bytes (the repro
            # file's do, these need not). When it reads a header, it must be this one.
            header = None
        assert header in (None, (codec, *size))
    problem = structure_problem(data, codec, *size)
    assert problem is not None and expect in problem


def test_single_width_tiff_by_hand_is_valid() -> None:
    data = _tiff_by_hand([(256, 3, 88), (257, 4, 590)], 88, 590, bytes(88 * 590))
    assert structure_problem(data, "tiff", 88, 590) is None
    assert np.asarray(Image.open(io.BytesIO(data))).shape == (590, 88)


# --- valid files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALID))
def test_valid_files_pass(name: str) -> None:
    data, codec, w, h = VALID[name]
    assert structure_problem(data, codec, w, h) is None
    # Every buffer kind the sources hand over reads the same.
    for form in (bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        assert structure_problem(form, codec, w, h) is None


def test_valid_files_match_nvimgcodec_header() -> None:
    """The codec names and stored sizes the checks compare with are nvImageCodec's."""
    nv = _nvimgcodec()
    if nv is None:
        pytest.skip("nvImageCodec cannot be imported here")
    for name, (data, codec, w, h) in VALID.items():
        cs = nv.CodeStream(data)
        assert (cs.codec_name, cs.width, cs.height) == (codec, w, h), name
        assert structure_problem(data, cs.codec_name, cs.width, cs.height) is None, name


def test_valid_files_differ_in_size_are_refused() -> None:
    for name, (data, codec, w, h) in VALID.items():
        problem = structure_problem(data, codec, w + 1, h)
        assert problem is not None and f"{w}x{h}" in problem and f"{w + 1}x{h}" in problem, name


def test_jpeg_and_unknown_codecs_are_not_parsed() -> None:
    assert structure_problem(b"\xff\xd8\xff" + b"junk" * 10, "jpeg", 5, 5) is None
    assert structure_problem(b"", "jpeg", 5, 5) is None
    assert structure_problem(b"whatever", "gif", 5, 5) is None


# --- JPEG scans ---------------------------------------------------------------------------


def _jpeg(progressive: bool = False, thumbnail: bool = False, restart: bool = False, size=(96, 64)) -> bytes:
    """A JPEG of a photo-like array; with an EXIF block that holds a whole JPEG thumbnail
    (its own scan and end marker, inside APP1) and/or restart markers."""
    img = Image.fromarray(_pixels(size[1], size[0], 3, seed=5))
    kw: dict = {"quality": 90, "progressive": progressive}
    if restart:
        kw["restart_marker_blocks"] = 2
    if thumbnail:
        thumb = io.BytesIO()
        img.resize((16, 12)).save(thumb, "JPEG")
        t = thumb.getvalue()
        # TIFF header, IFD0 (1 entry: orientation), IFD1 with JPEGInterchangeFormat(Length)
        ifd0 = struct.pack("<H", 1) + struct.pack("<HHII", 0x0112, 3, 1, 1) + struct.pack("<I", 26)
        ifd1 = struct.pack("<H", 2) + struct.pack("<HHII", 0x0201, 4, 1, 56) + struct.pack("<HHII", 0x0202, 4, 1, len(t)) + b"\0\0\0\0"
        kw["exif"] = b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd0 + ifd1 + t
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("thumbnail", [False, True])
@pytest.mark.parametrize("restart", [False, True])
def test_valid_jpeg_scans_pass(progressive: bool, thumbnail: bool, restart: bool) -> None:
    data = _jpeg(progressive, thumbnail, restart)
    assert (b"\xff\xd9" in data[: data.rfind(b"\xff\xda")]) == thumbnail  # the thumbnail's own scan is there
    assert jpeg_scan_problem(data) is None
    assert jpeg_scan_problem(data + b"\x00camera trailer" * 9) is None  # data after the end marker
    assert jpeg_scan_problem(memoryview(data)) is None and jpeg_scan_problem(np.frombuffer(data, np.uint8)) is None


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("thumbnail", [False, True])
def test_corrupt_jpeg_scans_are_refused(progressive: bool, thumbnail: bool) -> None:
    data = _jpeg(progressive, thumbnail)
    last_scan = data.rfind(b"\xff\xda")
    assert "truncated" in jpeg_scan_problem(data[: (last_scan + len(data)) // 2])
    assert "truncated" in jpeg_scan_problem(data[:-2])
    bad = bytearray(data)
    at = (last_scan + len(data)) // 2
    bad[at : at + 2] = b"\xff\x05"
    assert f"reserved marker 0xFF05 at byte {at:,}" in jpeg_scan_problem(bytes(bad))
    first_scan = data.find(b"\xff\xda", data.find(b"\xff\xd9") + 2 if thumbnail else 0)
    assert "no scan" in jpeg_scan_problem(data[:first_scan] + b"\xff\xd9")


def test_jpeg_scan_check_never_raises_on_damage() -> None:
    rng = np.random.default_rng(3)
    data = _jpeg(thumbnail=True)
    for _ in range(300):
        d = bytearray(data)
        for _ in range(int(rng.integers(1, 6))):
            d[int(rng.integers(0, len(d)))] = int(rng.integers(0, 256))
        cut = int(rng.integers(0, len(d) + 1))
        problem = jpeg_scan_problem(bytes(d[:cut]))
        assert problem is None or isinstance(problem, str)
    assert jpeg_scan_problem(b"") and jpeg_scan_problem(b"\xff\xd8") and jpeg_scan_problem(b"\xff\xd8\xff\xda\x00")


def _damaged_jpegs(count: int, seed: int) -> list[bytes]:
    """Valid JPEGs of every kind and damaged ones (bytes changed, cut, reserved markers)."""
    rng = np.random.default_rng(seed)
    kinds = [_jpeg(p, t, r) for p in (False, True) for t in (False, True) for r in (False, True)]
    out = list(kinds)
    for k in range(count):
        d = bytearray(kinds[k % len(kinds)])
        for _ in range(int(rng.integers(0, 4))):
            d[int(rng.integers(0, len(d)))] = int(rng.integers(0, 256))
        if k % 3 == 0:
            at = int(rng.integers(2, len(d) - 2))
            d[at : at + 2] = bytes([0xFF, int(rng.integers(1, 0xC0))])
        cut = len(d) if k % 4 else int(rng.integers(0, len(d) + 1))
        out.append(bytes(d[:cut]))
    return out


def test_scan_walk_from_the_first_scan_matches_the_whole_check() -> None:
    """What the GPU check does (markers from the first scan on, found elsewhere, then the
    same walk) gives the whole check's answer on valid and damaged files."""
    from gpuimg.codec.containers import jpeg

    problems = 0
    for data in _damaged_jpegs(400, seed=8):
        want = jpeg_scan_problem(data)
        first = jpeg.first_scan(data)
        if first >= 0:
            assert data[first : first + 2] == b"\xff\xda"
            got = jpeg.scan_walk(data, jpeg.markers(data, first))
            assert got == want, (first, got, want)
        problems += want is not None
    assert 100 < problems < 400  # both outcomes are exercised


def test_device_scan_check_matches_the_host_check() -> None:
    cupy = pytest.importorskip("cupy")
    from gpuimg.device import cuda_available, device_report

    if not cuda_available():
        pytest.skip(f"GPU variant: {device_report()}")
    from gpuimg.codec._scan_gpu import DeviceScanCheck

    datas = _damaged_jpegs(300, seed=9)
    want = [jpeg_scan_problem(d) for d in datas]
    stream = cupy.cuda.Stream(non_blocking=True)
    for cap in (256, 2):  # cap 2: most files overflow the table and are checked on the host
        check = DeviceScanCheck("cuda", cap=cap)
        for start in range(0, len(datas), 64):
            assert check.problems(datas[start : start + 64], stream) == want[start : start + 64]
        arrays = [np.frombuffer(d, np.uint8) for d in datas[:10]]
        assert check.problems(arrays, stream) == want[:10]
    assert check.problems([], stream) == []
    gpuimg.reset_memory_stats()
    check.problems(datas[:64], stream)  # a batch no larger than before: nothing allocated
    assert gpuimg.memory_stats()["allocations"] == 0


def test_batch_on_gpu_refuses_corrupt_scans_and_keeps_the_rest() -> None:
    from gpuimg.device import cuda_available, device_report

    if not cuda_available():
        pytest.skip(f"GPU variant: {device_report()}")
    good = _jpeg(size=(96, 64))
    bad = bytearray(good)
    at = (good.rfind(b"\xff\xda") + len(good)) // 2
    bad[at : at + 2] = b"\xff\x05"
    srcs = [good, bytes(bad), good[:-300], good]
    for dec_srcs in (srcs, [gpuimg.codec.parse(s, check_scans=False) if k != 2 else s for k, s in enumerate(srcs)]):
        res = gpuimg.Decoder("cuda").decode_batch(dec_srcs)
        assert res.indices == [0, 3]
        assert [e.index for e in res.errors] == [1, 2]
        assert "reserved marker 0xFF05" in str(res.errors[0].error) and "truncated" in str(res.errors[1].error)
    with pytest.raises(gpuimg.DecodeError, match="reserved marker"):
        gpuimg.codec.parse(bytes(bad))
    assert gpuimg.codec.parse(bytes(bad), check_scans=False).info.codec == "jpeg"


# --- corruptions, one kind at a time -----------------------------------------------------


def _patch(data: bytes, pos: int, fmt: str, *values) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, pos, *values)
    return bytes(out)


def _expect(data: bytes, codec: str, w: int, h: int, *words: str) -> None:
    problem = structure_problem(data, codec, w, h)
    assert problem is not None, words
    for word in words:
        assert word in problem, (word, problem)


def test_png_corruptions() -> None:
    data, _, w, h = VALID["png-rgb"]
    chunks = _png_chunks(data)
    _expect(data[:-12], "png", w, h, "truncated", "before the IEND")
    _expect(b"\x89PNG\r\n\x1a\x00" + data[8:], "png", w, h, "signature")
    _expect(_patch(data, 16, ">I", w + 5), "png", w, h, "IHDR chunk says")
    _expect(_png_join([chunks[0], (b"tEXt", b"a\0b"), chunks[0]] + chunks[1:]), "png", w, h, "second IHDR")
    _expect(_png_join([chunks[0], (b"IEND", b"")]), "png", w, h, "no IDAT")
    _expect(_png_join([chunks[0], (b"t\x00Xt", b"x")] + chunks[1:]), "png", w, h, "invalid type")
    _expect(_png_join([(b"tEXt", b"a\0b")] + chunks), "png", w, h, "first PNG chunk", "'tEXt'")
    bad_depth = _png_join([(b"IHDR", chunks[0][1][:8] + b"\x03\x02" + chunks[0][1][10:])] + chunks[1:])
    _expect(bad_depth, "png", w, h, "bit depth 3")
    pal = _png_chunks(VALID["png-palette"][0])
    _expect(_png_join([c for c in pal if c[0] != b"PLTE"]), "png", w, h, "no PLTE")
    # A big length in a middle IDAT of a many-chunk file names that chunk.
    many = VALID["png-many-idat"][0]
    pos = many.find(b"IDAT", 2000) - 4
    _expect(_patch(many, pos, ">I", 0x7FFFFFF0), "png", w, h, f"'IDAT' at byte {pos} claims 2147483632 bytes")


def test_tiff_corruptions() -> None:
    data, _, w, h = VALID["tiff-strips"]
    page = tifffile.TiffFile(io.BytesIO(data)).pages[0]
    _expect(data[: page.dataoffsets[-1] + 10], "tiff", w, h, "truncated", "strip 5 of 6")
    _expect(_patch(data, 4, "<I", len(data) + 100), "tiff", w, h, "first IFD offset")
    _expect(_patch(data, page.offset, "<H", 0), "tiff", w, h, "claims 0 entries")
    _expect(_patch(data, page.offset, "<H", 60000), "tiff", w, h, "claims 60000 entries")
    _expect(_patch(data, page.offset, "<H", 4000), "tiff", w, h, "truncated", "entries")
    _expect(b"II*\x00\x08", "tiff", w, h, "truncated")
    _expect(b"IX*\x00" + data[4:], "tiff", w, h, "byte-order")
    _expect(data, "tiff", w, h + 3, "TIFF IFD0 says")
    # Each watched tag, duplicated: the entry copied over the next one.
    for tag in (256, 257, 258, 259, 273, 277, 279, 284):
        raw = bytearray(data)
        count = struct.unpack_from("<H", raw, page.offset)[0]
        entries = [bytes(raw[page.offset + 2 + 12 * i : page.offset + 14 + 12 * i]) for i in range(count)]
        idx = next(i for i, e in enumerate(entries) if struct.unpack_from("<H", e)[0] == tag)
        other = 1 if idx != 1 else 2
        raw[page.offset + 2 + 12 * other : page.offset + 14 + 12 * other] = entries[idx]
        _expect(bytes(raw), "tiff", w, h, f"({tag}) appears twice")
    tiled, _, tw, th = VALID["tiff-tiled"]
    tpage = tifffile.TiffFile(io.BytesIO(tiled)).pages[0]
    _expect(tiled[: tpage.dataoffsets[3] + 5], "tiff", tw, th, "tile 3 of")
    big, _, bw, bh = VALID["tiff-bigtiff"]
    _expect(big[:-20], "tiff", bw, bh, "truncated")
    _expect(_patch(big, 4, "<H", 4), "tiff", bw, bh, "offset size of 4")


def test_one_ifd_reader_for_the_structure_check_and_the_metadata() -> None:
    """The TIFF check and the EXIF/TIFF metadata read walk directories with one reader:
    BigTIFF too, one entry limit for both."""
    big, _, bw, bh = VALID["tiff-bigtiff"]
    order, is_big, offset = tiff_ifd.read_header(big)
    slots, _ = tiff_ifd.directory(big, order, offset, big=is_big)
    first, again = tiff_ifd.first_copies(slots)
    assert is_big and not again and {256, 257} <= set(first)
    width = tiff_ifd.value_span(big, order, first[256], big=True)
    assert struct.unpack_from(order + ("H" if first[256].type == 3 else "I"), big, width[0])[0] == bw
    over = tiff_ifd.MAX_ENTRIES + 1
    block = b"II*\x00" + struct.pack("<IH", 8, over) + bytes(12 * over + 4)
    with pytest.raises(tiff_ifd.IfdError, match=f"claims {over} entries"):
        tiff_ifd.read_ifd(block, "<", 8)
    assert f"claims {over} entries" in structure_problem(block, "tiff", bw, bh)


def test_tiff_byte_counts_past_the_end_near_uint64_max() -> None:
    """Offset + byte count that would wrap a 64-bit sum is still beyond the end."""
    data = _tiff_by_hand([(256, 3, 4), (257, 3, 4)], 4, 4, bytes(16))
    raw = bytearray(data)
    pos = raw.find(struct.pack("<HHI", 279, 4, 1))
    struct.pack_into("<I", raw, pos + 8, 0xFFFFFFFF)
    _expect(bytes(raw), "tiff", 4, 4, "strip 0 of 1", "beyond the end")


def test_webp_corruptions() -> None:
    for name in ("webp-lossy", "webp-lossless", "webp-vp8x-alpha"):
        data, _, w, h = VALID[name]
        _expect(data[:-7], "webp", w, h, "truncated", "RIFF header claims")
        _expect(_patch(data, 16, "<I", len(data)), "webp", w, h, "claims")
        _expect(data, "webp", w, h + 1, "says")
        # A RIFF size smaller than the data is fine (trailing bytes are ignored)...
        assert structure_problem(data + b"\0" * 10, "webp", w, h) is None
    data, _, w, h = VALID["webp-vp8x-alpha"]
    _expect(_patch(data, 24, "<I", (w + 3 - 1) | (h - 1) << 24)[:27] + data[27:], "webp", w, h, "VP8X canvas says")
    _expect(b"RIFF\x04\x00\x00\x00WEBP", "webp", w, h, "no VP8")
    _expect(b"RIFX" + data[4:], "webp", w, h, "RIFF header")


def test_jpeg2000_corruptions() -> None:
    data, _, w, h = VALID["jp2"]
    _expect(data[:-100], "jpeg2k", w, h, "truncated")
    _expect(data, "jpeg2k", w + 2, h, "JP2 ihdr box says")
    ihdr = data.find(b"ihdr") + 4
    _expect(_patch(data, ihdr, ">I", h + 1), "jpeg2k", w, h, "ihdr box says")
    jp2c = data.find(b"jp2c") - 4
    _expect(_patch(data, jp2c, ">I", len(data)), "jpeg2k", w, h, "'jp2c'", "claims")
    siz = data.find(b"\xff\x4f\xff\x51")
    _expect(_patch(data, siz + 8, ">I", w + 9), "jpeg2k", w, h, "SIZ marker says")
    j2k, _, w, h = VALID["j2k-codestream"]
    _expect(j2k[:-2] + b"\0\0", "jpeg2k", w, h, "no EOC")
    _expect(j2k[: len(j2k) // 2], "jpeg2k", w, h, "truncated")
    sot = j2k.find(b"\xff\x90")
    _expect(_patch(j2k, sot + 6, ">I", len(j2k)), "jpeg2k", w, h, "tile-part 0", "claims")
    _expect(_patch(j2k, sot + 6, ">I", 3), "jpeg2k", w, h, "impossible length 3")
    _expect(j2k[:sot] + j2k[-2:], "jpeg2k", w, h, "truncated", "before any tile data")
    # Psot 0 (the last tile-part runs to the EOC) is allowed when the EOC is there.
    last = j2k.rfind(b"\xff\x90")
    assert structure_problem(_patch(j2k, last + 6, ">I", 0), "jpeg2k", w, h) is None


def test_bmp_corruptions() -> None:
    data, _, w, h = VALID["bmp-24"]
    _expect(data[:-5], "bmp", w, h, "truncated", f"{h} rows need")
    _expect(_patch(data, 10, "<I", len(data) + 1), "bmp", w, h, "offset", "beyond the end")
    _expect(_patch(data, 10, "<I", 20), "bmp", w, h, "inside its headers")
    _expect(_patch(data, 22, "<i", -h), "bmp", w, h + 1, "says")
    assert structure_problem(_patch(data, 22, "<i", -h)[: len(data)], "bmp", w, h) is None  # top-down
    _expect(_patch(data, 28, "<H", 7), "bmp", w, h, "bit count 7")
    _expect(_patch(data, 14, "<I", 13), "bmp", w, h, "unknown size")
    _expect(b"BM" + data[2:20], "bmp", w, h, "cut off")


def test_pnm_corruptions() -> None:
    data, _, w, h = VALID["ppm"]
    _expect(data[:-1], "pnm", w, h, "raster is truncated")
    _expect(data, "pnm", w, h + 1, "PNM header says")
    _expect(data.replace(b"255", b"0", 1), "pnm", w, h, "maximum value 0")
    _expect(data.replace(b"255", b"70000", 1), "pnm", w, h, "maximum value 70000")
    _expect(b"P6\n37 2", "pnm", w, h, "header is truncated")
    _expect(b"P6\n37 x3 255\n", "pnm", w, h, "non-number")
    _expect(b"P9\n1 1 255\n\0", "pnm", 1, 1, "magic")
    g16, _, w, h = VALID["pgm-16bit"]
    _expect(g16[: len(g16) - w], "pnm", w, h, "raster is truncated")


# --- junk never raises -------------------------------------------------------------------


def _cuts(n: int) -> list[int]:
    return sorted(set(range(min(n, 80))) | set(np.linspace(0, n - 1, 60).astype(int).tolist()))


@pytest.mark.parametrize("name", list(VALID))
def test_truncation_never_raises(name: str) -> None:
    data, codec, w, h = VALID[name]
    for cut in _cuts(len(data)):
        problem = structure_problem(data[:cut], codec, w, h)
        assert problem is None or isinstance(problem, str)
        if name in DETECTS_EVERY_CUT:
            assert problem is not None, (name, cut)


@pytest.mark.parametrize("codec", ["png", "tiff", "webp", "jpeg2k", "bmp", "pnm"])
def test_random_damage_never_raises(codec: str) -> None:
    rng = np.random.default_rng(7)
    bases = [v for v in VALID.values() if v[1] == codec]
    for trial in range(300):
        data, _, w, h = bases[trial % len(bases)]
        raw = np.frombuffer(data, np.uint8).copy()
        # Most damage goes in the headers, where the walkers read.
        spots = rng.integers(0, min(len(raw), 120 if trial % 3 else len(raw)), size=rng.integers(1, 6))
        raw[spots] = rng.integers(0, 256, size=len(spots))
        problem = structure_problem(raw, codec, w, h)
        assert problem is None or isinstance(problem, str)
    for junk in (b"", b"\0", bytes(range(256)) * 3, b"\xff" * 64, rng.bytes(500)):
        problem = structure_problem(junk, codec, 3, 3)
        assert problem is None or isinstance(problem, str)


# --- speed -------------------------------------------------------------------------------


def _timed(data: bytes, codec: str, w: int, h: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        assert structure_problem(data, codec, w, h) is None
        best = min(best, time.perf_counter() - start)
    return best


def test_png_walk_is_fast() -> None:
    """A 1080p PNG in 8 KB IDAT chunks (about 750 chunks), and in 1 KB ones (about 6,000)."""
    rng = np.random.default_rng(1)
    frame = Image.fromarray(rng.integers(0, 256, size=(1080, 1920, 3), dtype=np.uint8))
    plain = _pil(frame, "PNG", compress_level=0)
    small = VALID["png-rgb"][0]
    rechunked = {size: _png_rechunked(plain, size) for size in (8192, 1024)}
    times = {size: _timed(data, "png", 1920, 1080, 5) for size, data in rechunked.items()}
    t_small = _timed(small, "png", W, H, 50)
    print(f"\nstructure_problem, 1080p PNG: {len(rechunked[8192]) // 8204} IDATs {times[8192] * 1e3:.2f} ms, "
          f"{len(rechunked[1024]) // 1036} IDATs {times[1024] * 1e3:.2f} ms; small PNG {t_small * 1e6:.1f} us")  # fmt: skip
    assert times[1024] < 0.05 and t_small < 0.001


# --- premultiplied alpha -----------------------------------------------------------------


def _premultiplied_pairs() -> np.ndarray:
    """A 256x256 RGBa image: row = colour value, column = alpha, every (value, alpha) pair."""
    value, alpha = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    return np.stack([value, 255 - value, (value * 7) % 256, alpha], -1).astype(np.uint8)


def test_unpremultiply_is_bit_exact_with_pillow() -> None:
    arr = _premultiplied_pairs()
    # Pillow's reader of premultiplied TIFFs (raw mode "RGBa" into an RGBA image).
    want = np.asarray(Image.frombytes("RGBA", (256, 256), arr.tobytes(), "raw", "RGBa"))
    got = unpremultiply(arr)
    assert got is not arr and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(arr, _premultiplied_pairs())  # the input is untouched
    # Image.convert("RGBA") of an RGBa image: the same wherever alpha is not 0, and
    # everywhere on premultiplied data (colour <= alpha); at alpha 0 it keeps the colour.
    converted = np.asarray(Image.frombytes("RGBa", (256, 256), arr.tobytes()).convert("RGBA"))
    np.testing.assert_array_equal(got[:, 1:], converted[:, 1:])
    valid = arr[..., :3] <= arr[..., 3:]
    np.testing.assert_array_equal(got[..., :3][valid], converted[..., :3][valid])


def test_unpremultiply_in_place_and_into_out() -> None:
    arr = _premultiplied_pairs()
    want = unpremultiply(arr)
    out = np.empty_like(arr)
    assert unpremultiply(arr, out=out) is out
    np.testing.assert_array_equal(out, want)
    # A strided view works in place too (the caller's array is the one changed).
    big = np.zeros((256, 512, 4), np.uint8)
    big[:, ::2] = arr
    assert unpremultiply(big[:, ::2], out=big[:, ::2]) is not None
    np.testing.assert_array_equal(big[:, ::2], want)
    assert unpremultiply(arr, out=arr) is arr
    np.testing.assert_array_equal(arr, want)


def test_unpremultiply_uint16() -> None:
    rng = np.random.default_rng(3)
    alpha = rng.integers(0, 65536, size=(64, 64, 1), dtype=np.uint32)
    alpha[0, :8, 0] = (0, 1, 2, 65534, 65535, 0, 65535, 32768)
    colour = (rng.integers(0, 65536, size=(64, 64, 3)) * alpha // 65535).astype(np.uint32)
    colour[0, 0] = 77  # non-zero colour under zero alpha: 0, as the uint8 formula does
    arr = np.concatenate([colour, alpha], -1).astype(np.uint16)
    got = unpremultiply(arr)
    a = alpha.astype(np.int64)
    want = np.where(a == 0, 0, np.minimum(65535, colour.astype(np.int64) * 65535 // np.maximum(a, 1)))
    np.testing.assert_array_equal(got[..., :3], want)
    np.testing.assert_array_equal(got[..., 3:], alpha)


def test_unpremultiply_refuses_bad_arrays() -> None:
    with pytest.raises(ValueError, match="shape"):
        unpremultiply(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        unpremultiply(np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="out must be"):
        unpremultiply(np.zeros((4, 4, 4), np.uint8), out=np.zeros((4, 4, 4), np.uint16))


def test_unpremultiply_cupy_matches_numpy() -> None:
    cupy = pytest.importorskip("cupy")
    from gpuimg.device import cuda_available, device_report

    if not cuda_available():
        pytest.skip(f"GPU variant: {device_report()}")
    arr = _premultiplied_pairs()
    dev = cupy.asarray(arr)
    got = unpremultiply(dev)
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(got), unpremultiply(arr))
    assert unpremultiply(dev, out=dev) is dev
    np.testing.assert_array_equal(cupy.asnumpy(dev), unpremultiply(arr))


def test_tiff_associated_alpha_detection() -> None:
    rgba = _pixels(8, 8, 4)
    assoc = _tif(rgba, photometric="rgb", extrasamples=[1])
    assert tiff_associated_alpha(assoc)
    assert tiff_associated_alpha(np.frombuffer(assoc, np.uint8))
    assert tiff_associated_alpha(_tif(rgba, photometric="rgb", extrasamples=["assocalpha"], byteorder=">"))
    assert tiff_associated_alpha(_tif(rgba, photometric="rgb", extrasamples=[1], bigtiff=True))
    assert not tiff_associated_alpha(_tif(rgba, photometric="rgb", extrasamples=[2]))
    assert not tiff_associated_alpha(_tif(rgba, photometric="rgb", extrasamples=[0]))
    assert not tiff_associated_alpha(_tif(_pixels(8, 8, 3), photometric="rgb"))
    for junk in (b"", b"II*\x00", b"MM\x00*\xff\xff\xff\xff", VALID["png-rgb"][0], assoc[:30]):
        assert not tiff_associated_alpha(junk)


def test_premultiplied_tiff_matches_pillow() -> None:
    """tifffile's raw (premultiplied) pixels, unpremultiplied, are what Pillow returns."""
    straight = _pixels(16, 16, 4, seed=5)
    alpha = straight[..., 3:].astype(np.uint32)
    premultiplied = np.concatenate([(straight[..., :3] * alpha + 127) // 255, alpha], -1).astype(np.uint8)
    data = _tif(premultiplied, photometric="rgb", extrasamples=[1])
    assert tiff_associated_alpha(data)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGBA"  # Pillow un-premultiplies while it reads
        want = np.asarray(im)
    np.testing.assert_array_equal(unpremultiply(tifffile.imread(io.BytesIO(data))), want)
