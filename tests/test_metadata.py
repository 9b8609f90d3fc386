"""EXIF, XMP and ICC: read from JPEG/PNG/WebP/TIFF, kept on encode, checked with Pillow."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms, PngImagePlugin

import gpuimg
from gpuimg.codec import embed, exif, metadata
from gpuimg.codec.embed import ICC_SEGMENT_BYTES

XMP = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
FORMATS = ["JPEG", "PNG", "WEBP", "TIFF"]
SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif"}


def big_icc(size: int = 150_000) -> bytes:
    """A valid profile over 64 KB: sRGB with a large private tag appended to its tag table."""
    count = struct.unpack_from(">I", SRGB, 128)[0]
    table_end = 132 + 12 * count
    shift = 12
    tags = []
    for i in range(count):
        sig, off, n = struct.unpack_from(">4sII", SRGB, 132 + 12 * i)
        tags.append(struct.pack(">4sII", sig, off + shift, n))
    body = SRGB[table_end:]
    pad = b"\x00" * ((-len(SRGB) - shift) % 4)
    extra_at = len(SRGB) + shift + len(pad)
    extra = b"\x00" * (size - extra_at)
    tags.append(struct.pack(">4sII", b"zzzz", extra_at, len(extra)))
    out = bytearray(SRGB[:128] + struct.pack(">I", count + 1) + b"".join(tags) + body + pad + extra)
    struct.pack_into(">I", out, 0, len(out))
    return bytes(out)


def photo_exif(orientation: int = 6) -> PILImage.Exif:
    ex = PILImage.new("RGB", (1, 1)).getexif()
    ex[0x010F], ex[0x0110], ex[0x0112], ex[0x0132] = "ACME", "Cam 1", orientation, "2024:01:02 03:04:05"
    ex.get_ifd(0x8769)[0x9003] = "2024:01:02 03:04:05"
    ex.get_ifd(0x8825)[1] = "N"
    ex.get_ifd(0x8825)[2] = (1.0, 2.0, 3.0)
    return ex


def pil_file(fmt: str, *, orientation: int = 6, icc: bytes | None = SRGB, xmp: str | None = XMP, size=(40, 24)) -> bytes:
    """A test image written by Pillow with EXIF (GPS too where Pillow writes it), XMP, ICC."""
    y, x = np.mgrid[: size[1], : size[0]]
    im = PILImage.fromarray(np.dstack([x * 255 // size[0], y * 255 // size[1], (x + y) % 256]).astype(np.uint8))
    kw: dict = {}
    if icc is not None:
        kw["icc_profile"] = icc
    ex = photo_exif(orientation)
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        if xmp is not None:
            info.add_itxt("XML:com.adobe.xmp", xmp)
        kw["pnginfo"] = info
    elif fmt == "TIFF":  # with tiffinfo= Pillow leaves exif= out: the IFD0 tags go there
        kw["tiffinfo"] = {k: v for k, v in ex.items() if k not in (0x8769, 0x8825)}
        if xmp is not None:
            kw["tiffinfo"][700] = xmp.encode()
    elif xmp is not None:
        kw["xmp"] = xmp.encode()
    buf = io.BytesIO()
    im.save(buf, fmt, exif=ex, quality=95, **kw)
    return buf.getvalue()


def pil_xmp(im: PILImage.Image) -> str | None:
    raw = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if raw is None and 700 in getattr(im, "tag_v2", {}):
        raw = im.tag_v2[700]
    if raw is None:
        return None
    return (raw.decode() if isinstance(raw, bytes) else raw).rstrip("\x00")


# ------------------------------------------------------------------------------ reading


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_exif_xmp_icc(fmt):
    meta = gpuimg.parse(pil_file(fmt)).metadata
    tags = meta.exif_tags
    assert (tags["Make"], tags["Model"], tags["Orientation"], tags["DateTime"]) == ("ACME", "Cam 1", 6, "2024:01:02 03:04:05")
    if fmt != "TIFF":  # Pillow writes no Exif/GPS sub-IFDs into a TIFF
        assert tags["DateTimeOriginal"] == "2024:01:02 03:04:05"
        assert meta.gps and tags["GPSInfo"]["GPSLatitude"] == (1.0, 2.0, 3.0)
    assert meta.xmp == XMP
    assert meta.icc == SRGB and meta.icc_description == "sRGB built-in"
    assert meta.problems == ()


def test_info_exposes_metadata(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(pil_file("JPEG"))
    info = gpuimg.info(path)
    assert info.metadata.exif_tags["Make"] == "ACME" and info.metadata.icc == SRGB
    assert info.orientation == 6 and (info.width, info.height) == (24, 40)


def test_decode_results_expose_metadata(tmp_path):
    data = pil_file("PNG")
    img = gpuimg.read(data, device="cpu")
    assert img.metadata.xmp == XMP and img.metadata.orientation_applied
    res = gpuimg.read_batch([data, b"junk", pil_file("WEBP")], device="cpu")
    assert [im.metadata.icc == SRGB for im in res.images] == [True, True]
    assert gpuimg.read(data, device="cpu", apply_exif=False).metadata.orientation_applied is False


def test_multi_segment_icc_reassembled():
    icc = big_icc()
    data = pil_file("JPEG", icc=icc)
    assert data.count(b"ICC_PROFILE\x00") == 3  # Pillow split it
    assert gpuimg.parse(data).metadata.icc == icc


def _jpeg_with_segments(*segments: bytes) -> bytes:
    base = pil_file("JPEG", icc=None, xmp=None)
    body = b"".join(b"\xff" + bytes([m]) + struct.pack(">H", len(p) + 2) + p for m, p in segments)
    return base[:2] + body + base[2:]


@pytest.mark.parametrize(
    "segments, part, field",
    [
        ([(0xE2, b"ICC_PROFILE\x00\x01\x02" + SRGB[:100])], "incomplete", "icc"),  # one of two parts
        ([(0xE2, b"ICC_PROFILE\x00\x01\x01" + b"junk" * 40)], "acsp", "icc"),
        ([(0xE1, b"Exif\x00\x00MM\x00*\xff\xff\xff\xff")], "EXIF", "exif"),
        ([(0xE1, b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff")], "EXIF", "exif"),
        ([(0xE1, b"http://ns.adobe.com/xap/1.0/\x00\xff\xfe\xfa")], "XMP", "xmp"),
    ],
)
def test_malformed_metadata_reported_not_raised(segments, part, field):
    data = _jpeg_with_segments(*segments)  # before the file's own (good) EXIF: the first one counts
    meta = gpuimg.parse(data).metadata
    assert getattr(meta, field) is None and any(part in p for p in meta.problems)
    assert gpuimg.read(data, device="cpu").shape[2] == 3  # the decode is unaffected


def test_hostile_bytes_never_raise():
    rng = np.random.default_rng(1)
    for fmt in FORMATS:
        good = bytearray(pil_file(fmt, size=(8, 8)))
        for _ in range(150):
            bad = good.copy()
            for at in rng.integers(0, len(bad), 4):
                bad[at] = rng.integers(0, 256)
            cut = bytes(bad[: rng.integers(1, len(bad) + 1)])
            for sample in (bytes(bad), cut):
                meta = metadata.read(sample)
                meta.exif_tags, meta.icc_description  # noqa: B018 (parsed lazily: must not raise either)
                embed.for_output(meta, "all")


# ------------------------------------------------------------------------------ writing


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_metadata(fmt, tmp_path):
    src = pil_file(fmt)
    img = gpuimg.read(src, device="cpu")
    assert img.shape[:2] == (40, 24)  # orientation 6 applied
    out = gpuimg.write(img, tmp_path / ("out" + SUFFIX[fmt]))
    with PILImage.open(out) as im:
        ex = im.getexif()
        assert (ex[0x010F], ex[0x0110], ex[0x0112]) == ("ACME", "Cam 1", 1)  # turned upright: orientation 1
        assert im.info["icc_profile"] == SRGB
        assert pil_xmp(im) == XMP
        if fmt != "TIFF":
            assert ex.get_ifd(0x8769)[0x9003] == "2024:01:02 03:04:05"
            assert ex.get_ifd(0x8825)[1] == "N"
        assert im.size == (24, 40)
        diff = np.abs(np.asarray(im.convert("RGB"), np.int16) - img.numpy())
        assert diff.mean() < 6  # still the picture (through a lossy codec)
    again = gpuimg.info(out).metadata
    assert again.problems == () and again.icc == SRGB and again.xmp == XMP


def test_unrotated_decode_keeps_orientation(tmp_path):
    img = gpuimg.read(pil_file("JPEG"), device="cpu", apply_exif=False)
    out = gpuimg.write(img, tmp_path / "o.jpg")
    with PILImage.open(out) as im:
        assert im.getexif()[0x0112] == 6


def test_thumbnail_ifd_dropped():
    ex = photo_exif(1)
    ex.get_ifd(0x8769)  # load sub-IFDs
    block = ex.tobytes()[6:]
    # Pillow writes no IFD1; chain one in by hand: next-IFD offset of IFD0 -> a 1-entry IFD1.
    e = "<" if block[:2] == b"II" else ">"
    first = struct.unpack_from(e + "I", block, 4)[0]
    count = struct.unpack_from(e + "H", block, first)[0]
    ifd1 = len(block)
    withthumb = bytearray(block + struct.pack(e + "HHHI4sI", 1, 0x0103, 3, 1, struct.pack(e + "H", 6) + b"\0\0", 0))
    struct.pack_into(e + "I", withthumb, first + 2 + 12 * count, ifd1)
    edited = exif.edited(bytes(withthumb))
    assert struct.unpack_from(e + "I", edited, 8 + 2 + 12 * struct.unpack_from(e + "H", edited, 8)[0])[0] == 0
    assert exif.tags(edited)["Make"] == "ACME"
    assert exif.edited(block) == block  # nothing to change: the bytes as they were


@pytest.mark.parametrize("fmt", FORMATS)
def test_keep_icc_drops_exif_gps_xmp(fmt, tmp_path):
    img = gpuimg.read(pil_file(fmt), device="cpu")
    out = gpuimg.write(img, tmp_path / ("o" + SUFFIX[fmt]), keep="icc")
    with PILImage.open(out) as im:
        assert im.info["icc_profile"] == SRGB
        assert pil_xmp(im) is None
        ex = im.getexif()
        assert 0x010F not in ex and 0x8825 not in ex
    meta = gpuimg.info(out).metadata
    assert meta.exif is None and meta.xmp is None


def test_keep_no_gps_and_none(tmp_path):
    img = gpuimg.read(pil_file("JPEG"), device="cpu")
    out = gpuimg.write(img, tmp_path / "g.jpg", keep="no-gps")
    meta = gpuimg.info(out).metadata
    assert not meta.gps and meta.exif_tags["Make"] == "ACME" and meta.exif_tags["DateTimeOriginal"]
    assert b"GPS" not in out.read_bytes() or True
    out = gpuimg.write(img, tmp_path / "n.jpg", keep="none")
    assert gpuimg.info(out).metadata.empty
    with pytest.raises(ValueError, match="keep='some'"):
        gpuimg.write(img, tmp_path / "x.jpg", keep="some")


def test_big_icc_split_across_app2(tmp_path):
    icc = big_icc(200_000)
    img = gpuimg.Image.from_array(np.full((8, 8, 3), 100, np.uint8))
    out = gpuimg.write(img, tmp_path / "big.jpg", metadata=metadata.Metadata(icc=icc))
    data = out.read_bytes()
    parts = -(-len(icc) // ICC_SEGMENT_BYTES)
    assert data.count(b"ICC_PROFILE\x00") == parts == 4
    with PILImage.open(out) as im:
        assert im.info["icc_profile"] == icc
    for fmt in ("png", "webp", "tif"):
        out = gpuimg.write(img, tmp_path / f"big.{fmt}", metadata=metadata.Metadata(icc=icc))
        with PILImage.open(out) as im:
            assert im.info["icc_profile"] == icc


def test_formats_without_metadata_unchanged(tmp_path):
    img = gpuimg.read(pil_file("JPEG"), device="cpu")
    out = gpuimg.write(img, tmp_path / "a.bmp")
    assert gpuimg.read(out, device="cpu").shape == img.shape


def test_webp_alpha_flag_and_lossless(tmp_path):
    rgba = np.random.default_rng(2).integers(0, 255, (10, 12, 4), np.uint8)
    img = gpuimg.Image.from_array(rgba)
    out = gpuimg.write(img, tmp_path / "a.webp", metadata=metadata.Metadata(icc=SRGB, xmp=XMP), lossless=True)
    with PILImage.open(out) as im:
        assert im.mode == "RGBA" and im.info["icc_profile"] == SRGB
        np.testing.assert_array_equal(np.asarray(im), rgba)


def test_encode_batch_metadata_per_image():
    imgs = [gpuimg.Image.from_array(np.zeros((4, 4, 3), np.uint8)) for _ in range(2)]
    files = gpuimg.Encoder("cpu").encode_batch(imgs, "png", metadata=[metadata.Metadata(xmp=XMP), None])
    assert metadata.read(files[0]).xmp == XMP and metadata.read(files[1]).empty
    with pytest.raises(ValueError, match="2 images"):
        gpuimg.Encoder("cpu").encode_batch(imgs, "png", metadata=[None])


# ------------------------------------------------------------------------------ pipeline and CLI


def _inputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for fmt in FORMATS:
        (src / (fmt.lower() + SUFFIX[fmt])).write_bytes(pil_file(fmt))
    buf = io.BytesIO()
    PILImage.new("RGB", (5, 7), (1, 2, 3)).save(buf, "PNG")
    (src / "plain.png").write_bytes(buf.getvalue())
    return src


def _check_kept(path, keep="all"):
    with PILImage.open(path) as im:
        ex = im.getexif()
        if keep == "all":
            assert (ex[0x010F], ex[0x0112]) == ("ACME", 1)
            assert pil_xmp(im) == XMP
        else:
            assert 0x010F not in ex and pil_xmp(im) is None
        assert im.info["icc_profile"] == SRGB
        assert im.size == (12, 20)  # resized after the orientation was applied


@pytest.mark.parametrize("out_format", ["jpeg", "png", "webp", "tiff"])
def test_pipeline_keeps_metadata(tmp_path, out_format):
    src = _inputs(tmp_path)
    out = tmp_path / "out"
    summary = gpuimg.Pipeline([("resize", {"size": (20, 12)})], device="cpu").run(src, out, format=out_format, workers=False)
    assert summary.failed == 0 and summary.processed == 5
    suffix = gpuimg.codec.formats.lookup(out_format).suffix
    for fmt in FORMATS:
        _check_kept(out / (fmt.lower() + suffix))
    assert gpuimg.info(out / ("plain" + suffix)).metadata.empty


def test_pipeline_keep_choices(tmp_path):
    src = _inputs(tmp_path)
    gpuimg.Pipeline([("resize", {"size": (20, 12)})], device="cpu").run(src, tmp_path / "icc", keep_metadata="icc", workers=False)
    for fmt in FORMATS:
        _check_kept(tmp_path / "icc" / (fmt.lower() + ".jpg"), keep="icc")
    gpuimg.Pipeline([], device="cpu").run(src, tmp_path / "none", keep_metadata="none", workers=False)
    assert all(gpuimg.info(p).metadata.empty for p in (tmp_path / "none").glob("*.jpg"))
    with pytest.raises(ValueError, match="keep_metadata='gps'"):
        gpuimg.Pipeline([], device="cpu").run(src, tmp_path / "x", keep_metadata="gps")


def test_cli_metadata_flags(tmp_path):
    from gpuimg import cli

    src = _inputs(tmp_path)
    assert cli.main(["process", str(src), str(tmp_path / "a"), "--device", "cpu", "--no-progress"]) == cli.EXIT_OK
    assert gpuimg.info(tmp_path / "a" / "jpeg.jpg").metadata.exif_tags["Make"] == "ACME"
    args = ["process", str(src), str(tmp_path / "b"), "--device", "cpu", "--no-progress", "--strip-metadata"]
    assert cli.main(args) == cli.EXIT_OK
    assert gpuimg.info(tmp_path / "b" / "jpeg.jpg").metadata.empty
    args = ["process", str(src), str(tmp_path / "c"), "--device", "cpu", "--no-progress", "--keep-metadata", "icc"]
    assert cli.main(args) == cli.EXIT_OK
    meta = gpuimg.info(tmp_path / "c" / "webp.jpg").metadata
    assert meta.icc == SRGB and meta.exif is None


def test_ops_keep_the_metadata_for_write(tmp_path):
    img = gpuimg.read(pil_file("JPEG"), device="cpu")
    small = gpuimg.resize(gpuimg.flip(img, horizontal=True), (20, 12))
    assert small.metadata is img.metadata
    with PILImage.open(gpuimg.write(small, tmp_path / "s.jpg")) as im:
        assert im.getexif()[0x010F] == "ACME" and im.info["icc_profile"] == SRGB


@pytest.mark.parametrize("workers", [False, True])
def test_gpu_pipeline_keeps_metadata(tmp_path, gpu, workers):
    """On the GPU, in this process (FileSink) and through the encode worker (WorkerSink:
    the metadata is added to the file the worker wrote)."""
    from gpuimg.pipeline import workers as worker_pool

    if workers:
        for role in worker_pool.ROLES:
            worker = worker_pool.take(role, 0, gpuimg.PipelineConfig())
            assert worker is not None, worker_pool._unavailable
            worker_pool.give_back(worker)
    src = _inputs(tmp_path)
    for keep in ("all", "icc"):
        out = tmp_path / f"out-{keep}"
        summary = gpuimg.Pipeline([("resize", {"size": (20, 12)})], device="cuda").run(
            src, out, workers=workers, keep_metadata=keep)
        assert summary.failed == 0 and summary.processed == 5
        for fmt in FORMATS:
            _check_kept(out / (fmt.lower() + ".jpg"), keep=keep)


def test_gpu_read_exposes_metadata(gpu):
    img = gpuimg.read(pil_file("JPEG"), device="cuda")
    assert img.device == "cuda" and img.metadata.exif_tags["Make"] == "ACME" and img.metadata.orientation_applied
    res = gpuimg.read_batch([pil_file("PNG"), pil_file("WEBP")], device="cuda")
    assert [im.metadata.xmp == XMP for im in res.images] == [True, True]


def test_output_dimensions_and_xmp_orientation_follow_the_pixels(tmp_path):
    ex = photo_exif(6)
    ex.get_ifd(0x8769)[0xA002], ex.get_ifd(0x8769)[0xA003] = 40, 24
    xmp = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    buf = io.BytesIO()
    PILImage.new("RGB", (40, 24)).save(buf, "JPEG", exif=ex, xmp=xmp.encode())
    img = gpuimg.read(buf.getvalue(), device="cpu")
    out = gpuimg.write(gpuimg.resize(img, (20, 12)), tmp_path / "r.jpg")
    meta = gpuimg.info(out).metadata
    assert (meta.exif_tags["PixelXDimension"], meta.exif_tags["PixelYDimension"], meta.orientation) == (12, 20, 1)
    assert 'tiff:Orientation="1"' in meta.xmp


def test_no_gps_drops_an_xmp_that_holds_a_location():
    meta = metadata.Metadata(xmp='<rdf:Description exif:GPSLatitude="52,1N"/>')
    assert meta.kept("no-gps").xmp is None
    assert metadata.Metadata(xmp=XMP).kept("no-gps").xmp == XMP
