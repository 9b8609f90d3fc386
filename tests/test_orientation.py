"""Orientation from every place a file stores it (issue 31): PNG eXIf (before or after
the image data), ImageMagick's raw EXIF profiles in PNG text chunks, XMP
``tiff:Orientation`` in PNG text chunks, JPEG APP1 and WebP XMP chunks; which one wins
when they disagree (Pillow 13's rule: an EXIF Orientation tag, then the XMP).

Every file is made here with Pillow (or by hand where Pillow writes no such file), and
compared with Pillow's pixels after ``ImageOps.exif_transpose`` on every device, through
``gpuimg.read`` and through ``Pipeline.run`` (batch equals single). Hostile variants give
orientation 1 or a clean per-file error.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import load_asset

import gpuimg
from gpuimg.codec import containers
from gpuimg.codec.containers import png as png_container
from gpuimg.meta import exif as exif_mod
from gpuimg.meta import for_output
from gpuimg.meta import xmp as xmp_mod
from gpuimg.pipeline import Pipeline

PIL = pytest.importorskip("PIL")
from PIL import Image as PILImage  # noqa: E402
from PIL import ImageOps, PngImagePlugin  # noqa: E402

ORIENTATION = 0x0112
STORED = load_asset("chelsea.png")[:40, :64]  # not square: a transpose shows


def _xmp(value: object, form: str = "attribute") -> bytes:
    inner = (f'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="{value}"/>'
             if form == "attribute" else
             f'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/"><tiff:Orientation>{value}</tiff:Orientation>'
             "</rdf:Description>")  # fmt: skip
    return (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f"{inner}</rdf:RDF></x:xmpmeta>").encode()  # fmt: skip


def _exif(orientation: int | None) -> bytes:
    """An EXIF block as Pillow writes it (``Exif\\0\\0`` + TIFF), with a Make tag so that a
    block without an Orientation tag is still a block."""
    e = PILImage.Exif()
    e[0x010F] = "ACME"
    if orientation is not None:
        e[ORIENTATION] = orientation
    return e.tobytes()


def _png(exif: bytes | None = None, xmp: bytes | None = None, xmp_chunk: str = "iTXt") -> bytes:
    info = PngImagePlugin.PngInfo()
    if xmp is not None:
        if xmp_chunk == "iTXt":
            info.add_itxt("XML:com.adobe.xmp", xmp.decode())
        else:
            info.add_text("XML:com.adobe.xmp", xmp.decode(), zip=xmp_chunk == "zTXt")
    buf = io.BytesIO()
    PILImage.fromarray(STORED).save(buf, "PNG", pnginfo=info, **({"exif": exif} if exif is not None else {}))
    return buf.getvalue()


def _raw_profile(block: bytes, name: str = "exif", declared: int | None = None) -> str:
    """ImageMagick's raw profile text: a newline, the name, the length, the hex in lines of 72."""
    hexed = block.hex()
    lines = "\n".join(hexed[i : i + 72] for i in range(0, len(hexed), 72))
    return f"\n{name}\n{len(block) if declared is None else declared:8}\n{lines}\n"


def _with_chunk(data: bytes, chunk: bytes, after_idat: bool = False) -> bytes:
    """``data`` (a PNG) with ``chunk`` inserted before its first IDAT (or before IEND)."""
    at = data.rindex(b"IEND") - 4 if after_idat else data.index(b"IDAT") - 4
    return data[:at] + chunk + data[at:]


def _text_chunk(kind: bytes, keyword: str, text: str) -> bytes:
    key = keyword.encode("latin-1") + b"\x00"
    if kind == b"tEXt":
        body = key + text.encode("latin-1")
    elif kind == b"zTXt":
        body = key + b"\x00" + zlib.compress(text.encode("latin-1"))
    else:
        body = key + b"\x00\x00\x00\x00" + text.encode("utf-8")
    return png_container.chunk(kind, body)


def _imagemagick_png(orientation: int, kind: bytes = b"tEXt", name: str = "exif", declared: int | None = None) -> bytes:
    block = _exif(orientation)
    if name == "APP1":  # the APP1 segment's payload: Exif\0\0 and the block (what _exif gives)
        assert block.startswith(b"Exif\x00\x00")
    return _with_chunk(_png(), _text_chunk(kind, f"Raw profile type {name}", _raw_profile(block, name, declared)))


def _jpeg(exif: bytes | None = None, xmp: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    extra = {k: v for k, v in (("exif", exif), ("xmp", xmp)) if v is not None}
    PILImage.fromarray(STORED).save(buf, "JPEG", quality=95, **extra)
    return buf.getvalue()


def _webp(exif: bytes | None = None, xmp: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    extra = {k: v for k, v in (("exif", exif), ("xmp", xmp)) if v is not None}
    PILImage.fromarray(STORED).save(buf, "WEBP", lossless=True, **extra)
    return buf.getvalue()


def _pillow(data: bytes) -> tuple[int, np.ndarray]:
    """(the orientation Pillow applies, its pixels after exif_transpose)."""
    with PILImage.open(io.BytesIO(data)) as im:
        im.load()
        value = im.getexif().get(ORIENTATION, 1)
        return value, np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def _turned(stored: np.ndarray, value: int) -> np.ndarray:
    """``stored`` as Pillow's exif_transpose turns an image of EXIF orientation ``value``."""
    im = PILImage.fromarray(stored)
    im.getexif()[ORIENTATION] = value
    return np.asarray(ImageOps.exif_transpose(im))


def _check(data: bytes, device: str, expected: int, lossless: bool = True) -> np.ndarray:
    """gpuimg reads ``data`` as Pillow does: the orientation ``expected`` (Pillow's own,
    asserted), the pixels turned once; returns them."""
    value, ref = _pillow(data)
    assert (value if isinstance(value, int) and 1 <= value <= 8 else 1) == expected
    got = gpuimg.read(data, device=device).numpy()
    stored = gpuimg.read(data, device=device, apply_exif=False).numpy()
    assert stored.shape == STORED.shape
    assert np.array_equal(got, _turned(stored, expected))  # turned exactly once, as Pillow turns
    if lossless:
        assert np.array_equal(got, ref)
    else:
        assert got.shape == ref.shape
    assert containers.exif_orientation(data) == expected
    info = gpuimg.info(data)
    assert info.orientation == expected == info.metadata.orientation  # one reading
    assert (info.height, info.width) == got.shape[:2]
    return got


# --- every place -----------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_exif_chunk(device, orientation):
    _check(_png(exif=_exif(orientation)), device, orientation)


def test_png_exif_chunk_after_the_image_data(device):
    data = _png()
    chunk = png_container.chunk(b"eXIf", _exif(6)[6:])
    _check(_with_chunk(data, chunk, after_idat=True), device, 6)


@pytest.mark.parametrize("form", ["attribute", "element"])
@pytest.mark.parametrize("chunk", ["iTXt", "zTXt", "tEXt"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_png_xmp(device, orientation, chunk, form):
    _check(_png(xmp=_xmp(orientation, form), xmp_chunk=chunk), device, orientation)


@pytest.mark.parametrize("kind", [b"tEXt", b"zTXt", b"iTXt"])
@pytest.mark.parametrize("orientation", [2, 6, 7])
def test_png_imagemagick_raw_profile(device, orientation, kind):
    _check(_imagemagick_png(orientation, kind), device, orientation)


def test_png_imagemagick_app1_profile(device):
    """"Raw profile type APP1" (older ImageMagick): gpuimg reads it where Pillow does not
    (Pillow's getexif knows only "Raw profile type exif"), so the reference is Pillow's
    turn of the stored pixels."""
    data = _imagemagick_png(6, b"zTXt", "APP1")
    assert _pillow(data)[0] == 1
    got = gpuimg.read(data, device=device).numpy()
    assert np.array_equal(got, _turned(STORED, 6))
    assert gpuimg.info(data).metadata.orientation == 6


@pytest.mark.parametrize("form", ["attribute", "element"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_jpeg_xmp_only(device, orientation, form):
    _check(_jpeg(xmp=_xmp(orientation, form)), device, orientation, lossless=False)


@pytest.mark.parametrize("form", ["attribute", "element"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_webp_xmp_only(device, orientation, form):
    _check(_webp(xmp=_xmp(orientation, form)), device, orientation)


# --- which one wins --------------------------------------------------------------------

# (EXIF Orientation tag or None for a block without one, XMP value) -> what Pillow applies
CONFLICTS = [(3, 6, 3), (1, 6, 1), (None, 6, 6), (8, None, 8), (6, 1, 6)]


@pytest.mark.parametrize(("exif_value", "xmp_value", "expected"), CONFLICTS)
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_exif_wins_over_xmp(device, fmt, exif_value, xmp_value, expected):
    make = {"png": _png, "jpeg": _jpeg, "webp": _webp}[fmt]
    data = make(exif=_exif(exif_value), xmp=_xmp(xmp_value) if xmp_value is not None else None)
    _check(data, device, expected, lossless=fmt != "jpeg")


def test_png_exif_chunk_wins_over_raw_profile_and_raw_over_xmp(device):
    both = _with_chunk(_png(exif=_exif(3)), _text_chunk(b"zTXt", "Raw profile type exif", _raw_profile(_exif(6))))
    _check(both, device, 3)
    raw_and_xmp = _with_chunk(_png(xmp=_xmp(8)), _text_chunk(b"tEXt", "Raw profile type exif", _raw_profile(_exif(6))))
    _check(raw_and_xmp, device, 6)
    # a raw profile without an Orientation tag: the XMP counts, as after an eXIf without one
    no_tag = _with_chunk(_png(xmp=_xmp(8)), _text_chunk(b"tEXt", "Raw profile type exif", _raw_profile(_exif(None))))
    _check(no_tag, device, 8)


def test_decide_orientation_is_pillows_rule():
    for exif_value, xmp_value, expected in CONFLICTS:
        assert exif_mod.decide_orientation(exif_value, xmp_value) == expected
    assert exif_mod.decide_orientation(0, 6) == 1  # the tag is there: the XMP does not count
    assert exif_mod.decide_orientation(None, 9) == 1


# --- through the pipeline --------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "exif_chunk.png": _png(exif=_exif(6)),
        "xmp.png": _png(xmp=_xmp(8, "element")),
        "imagemagick.png": _imagemagick_png(7, b"zTXt"),
        "xmp_jpeg.jpg": _jpeg(xmp=_xmp(6)),
        "xmp_webp.webp": _webp(xmp=_xmp(5)),
        "conflict.png": _png(exif=_exif(3), xmp=_xmp(6)),
        "upright.png": _png(),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    return files


def test_pipeline_batch_equals_single(device, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    files = _tree(src)
    summary = Pipeline([], device=device).run(src, tmp_path / "out", format="png", workers=False)
    assert summary.processed == len(files) and summary.failed == 0, summary.failures
    for name in files:
        single = gpuimg.read(src / name, device=device).numpy()
        out = tmp_path / "out" / (Path(name).stem + ".png")
        with PILImage.open(out) as im:
            batch = np.asarray(im.convert("RGB"))
            assert np.array_equal(ImageOps.exif_transpose(im).convert("RGB"), batch), name  # says upright
        assert np.array_equal(batch, single), name
        assert gpuimg.info(out).orientation == 1
        if not name.endswith(".jpg"):
            assert np.array_equal(batch, _pillow(files[name])[1]), name


def test_outputs_say_upright(device, tmp_path):
    """An XMP-only orientation is rewritten to 1 in the output (as the EXIF's is), so no
    reader turns the pixels again; the stored-orientation read keeps it."""
    img = gpuimg.read(_png(xmp=_xmp(6)), device=device)
    assert img.metadata.orientation_applied and img.shape[:2] == (64, 40)
    for fmt in ("png", "jpeg", "webp"):
        buf = io.BytesIO()
        gpuimg.write(img, buf, format=fmt)
        data = buf.getvalue()
        meta = gpuimg.info(data).metadata
        assert meta.xmp is not None and 'tiff:Orientation="1"' in meta.xmp, fmt
        assert containers.exif_orientation(data) == 1
        assert _pillow(data)[1].shape[:2] == (64, 40)
    stored = gpuimg.read(_png(xmp=_xmp(6)), device=device, apply_exif=False)
    assert 'tiff:Orientation="6"' in for_output(stored.metadata).xmp


def test_upright_rewrites_whatever_pillow_reads():
    for packet in ['tiff:Orientation="60"', "<tiff:Orientation>9</tiff:Orientation>", "tiff:Orientation = '6'",
                   '<tiff:Orientation> 6</tiff:Orientation> tiff:Orientation="3"']:  # fmt: skip
        assert xmp_mod.orientation(xmp_mod.upright(packet)) in (1, None), packet


# --- hostile variants ------------------------------------------------------------------


def _hostile() -> dict[str, bytes]:
    upright = _png()
    return {
        "huge declared length": _imagemagick_png(6, b"tEXt", declared=999_999_999),
        "bad hex": _with_chunk(upright, _text_chunk(b"tEXt", "Raw profile type exif", "\nexif\n      20\nzz49492a00\n")),
        "no header": _with_chunk(upright, _text_chunk(b"tEXt", "Raw profile type exif", "49492a00")),
        "length not a number": _with_chunk(upright, _text_chunk(b"tEXt", "Raw profile type exif", "\nexif\n  -1\n4949\n")),
        "hex of junk": _with_chunk(upright, _text_chunk(b"tEXt", "Raw profile type exif", _raw_profile(b"junk" * 8))),
        "zTXt not zlib": _with_chunk(upright, png_container.chunk(b"zTXt", b"Raw profile type exif\x00\x00notzlib")),
        "zTXt method 1": _with_chunk(upright, png_container.chunk(b"zTXt", b"XML:com.adobe.xmp\x00\x01" + zlib.compress(_xmp(6)))),
        "iTXt cut": _with_chunk(upright, png_container.chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01")),
        "no keyword end": _with_chunk(upright, png_container.chunk(b"tEXt", b"XML:com.adobe.xmp" * 8)),
        "xmp 0": _png(xmp=_xmp(0)),
        "xmp 9": _png(xmp=_xmp(9)),
        "xmp x": _png(xmp=_xmp("x")),
        "xmp element x": _png(xmp=_xmp("x", "element")),
        "jpeg xmp 9": _jpeg(xmp=_xmp(9)),
        "webp xmp 0": _webp(xmp=_xmp(0)),
        "exif orientation 0 hides the xmp": _png(exif=_exif(0), xmp=_xmp(6)),
        "eXIf of junk": _png(exif=b"Exif\x00\x00MM\x00*\xff\xff\xff\xff", xmp=None),
    }


@pytest.mark.parametrize("name", sorted(_hostile()))
def test_hostile_gives_orientation_1(device, name):
    data = _hostile()[name]
    assert containers.exif_orientation(data) == 1
    meta = containers.read_metadata(data)
    assert meta.orientation == 1
    got = gpuimg.read(data, device=device).numpy()
    assert np.array_equal(got, gpuimg.read(data, device=device, apply_exif=False).numpy())
    if not name.startswith("jpeg"):
        assert np.array_equal(got, STORED)


def test_hostile_xmp_10_reads_its_first_digit_as_pillow_does(device):
    data = _png(xmp=_xmp(10))
    _check(data, device, 1)
    data = _png(xmp=_xmp(60))
    _check(data, device, 6)


def test_raw_profile_bounds():
    block = _exif(6)[6:]
    text = _raw_profile(_exif(6)).encode()
    assert exif_mod.raw_profile(text) == block
    assert exif_mod.raw_profile(text.replace(b"\n", b"\r\n")) == block  # CRLF lines
    assert exif_mod.raw_profile(b"\nexif\n" + b"9" * 100 + b"\n4949\n") is None  # a header line too long
    assert exif_mod.raw_profile(b"\n\n\n") is None
    # declared shorter than the hex: what is past the length is ignored (ImageMagick's reading)
    assert exif_mod.raw_profile(_raw_profile(b"II*\x00extra", declared=4).encode()) == b"II*\x00"


def test_inflation_is_bounded():
    """A zTXt raw profile inflating past 64 MB is named and left out; no orientation."""
    bomb = b"\nexif\n 1000\n" + b"0" * (65 << 20)
    data = _with_chunk(_png(), png_container.chunk(b"zTXt", b"Raw profile type exif\x00\x00" + zlib.compress(bomb, 9)))
    meta = containers.read_metadata(data)
    assert meta.exif is None and any("inflates past" in p for p in meta.problems)
    assert containers.exif_orientation(data) == 1


def test_truncated_chunk_is_a_clean_per_file_error(device, tmp_path):
    good = _imagemagick_png(6, b"zTXt")
    at = good.index(b"zTXt") - 4
    cut = good[:at] + struct.pack(">I", 1 << 30) + good[at + 4 :]  # the chunk claims 1 GB
    assert containers.exif_orientation(cut) == 1 and containers.exif_orientation(good[: at + 20]) == 1
    assert containers.read_metadata(cut).exif is None
    with pytest.raises(gpuimg.DecodeError):
        gpuimg.read(cut, device=device)
    src = tmp_path / "in"
    src.mkdir()
    (src / "cut.png").write_bytes(cut)
    (src / "good.png").write_bytes(good)
    summary = Pipeline([], device=device).run(src, tmp_path / "out", format="png", workers=False)
    assert (summary.processed, summary.failed) == (1, 1)
    with PILImage.open(tmp_path / "out" / "good.png") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), _turned(STORED, 6))


def test_mutated_metadata_never_raises():
    """Byte flips, cuts and overwritten lengths in files whose metadata holds the
    orientation: the readers give 1-8 and a Metadata, never an exception, and stay fast."""
    import time

    seeds = [_imagemagick_png(6, b"zTXt"), _imagemagick_png(3, b"iTXt"), _png(exif=_exif(5), xmp=_xmp(6, "element")),
             _png(xmp=_xmp(8), xmp_chunk="zTXt"), _jpeg(exif=_exif(2), xmp=_xmp(6)), _webp(xmp=_xmp(7))]  # fmt: skip
    rng = np.random.default_rng(31)
    start = time.perf_counter()
    for i in range(1500):
        data = bytearray(seeds[i % len(seeds)])
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(0, len(data)))
            choice = int(rng.integers(0, 4))
            if choice == 0:
                data[at] = int(rng.integers(0, 256))
            elif choice == 1:
                data[at : at + 4] = b"\xff\xff\xff\xff"
            elif choice == 2:
                del data[at:]
            else:
                data[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8))
        raw = bytes(data)
        value = containers.exif_orientation(raw)
        assert 1 <= value <= 8 and containers.read_metadata(raw).orientation == value  # one reading
    assert time.perf_counter() - start < 30
