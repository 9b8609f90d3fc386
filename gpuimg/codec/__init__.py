"""Decode straight into reused Images, encode through reused CodeStreams (nvImageCodec).

:class:`Decoder` reads each header first (``nvimgcodec.CodeStream``: ~3 us, no pixels),
checks the pixel limit, gives the target :class:`~gpuimg.Image` or
:class:`~gpuimg.ImageBatch` the decoded shape (growing its buffer only when it is too
small) and lets nvImageCodec decode INTO that memory, a whole batch in one call.
:class:`Encoder` encodes into pinned ``CodeStream`` objects it keeps and reuses.
:func:`parse` reads a source and its header once, ahead of time (say on a reader thread):
the decode methods take the :class:`ParsedSource` it returns without parsing again.

Formats (nvImageCodec 0.9): JPEG, PNG, BMP, TIFF, JPEG 2000, WebP and PNM decode and
encode. On the GPU, JPEG (nvJPEG, hardware or hybrid), JPEG 2000 (nvJPEG2000) and TIFF
(nvTIFF) run on the device; PNG, WebP, BMP and PNM run on the CPU inside nvImageCodec and
land in device memory. Without a GPU every codec runs on nvImageCodec's CPU backends.
GIF, HEIC/HEIF, AVIF, JPEG XL, ICO, PSD and anything else raise
:class:`~gpuimg.UnsupportedFormatError`.

Modes: ``"rgb"``, ``"bgr"``, ``"gray"`` (ITU-R 601 luma, as Pillow's "L") and
``"rgba"`` come straight from nvImageCodec, except ``"rgba"`` from a source without alpha:
nvImageCodec refuses it, so such items decode as RGB into a staging buffer and get an
opaque alpha channel on the device (one copy). ``"unchanged"`` keeps gray as 1 channel,
alpha as 4 channels and everything else as RGB.

Errors: nothing comes back silently as None. A bad item raises (or, in a batch, is
listed as) :class:`~gpuimg.DecodeError` naming the source and the reason; a truncated JPEG
is an error on every device (nvJPEG on the GPU would return it with a grey remainder).
nvImageCodec's own log is quiet unless ``PYNVIMGCODEC_VERBOSITY`` is set before import.

Speed (bench/codec.py, BENCHMARKS.md): on the GPU a JPEG batch is shared between the
hardware decoder and the hybrid CUDA decoder, the target arena and its ``as_image``
wrappers are reused, and per-image host work is a few microseconds (header, EXIF walk,
cached plan); encode reuses pinned CodeStreams and wrappers.

Decoder and Encoder objects are NOT thread-safe (nor are nvImageCodec's): make one per
thread, or use the module functions :func:`read`, :func:`read_batch`, :func:`write` and
:func:`info`, which keep one per thread and device.

Example:
    >>> import gpuimg
    >>> img = gpuimg.read("assets/chelsea.png", device="cpu")      # doctest: +SKIP
    >>> img.shape                                                   # doctest: +SKIP
    (300, 451, 3)
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np

from .. import _exif
from ..device import resolve_device, stream_ptr, use_stream
from ..errors import DecodeError, EncodeError, GpuImgError, ImageTooLargeError, UnsupportedFormatError
from ..image import Image, ImageBatch

__all__ = [
    "Decoder",
    "Encoder",
    "ImageInfo",
    "ParsedSource",
    "BatchResult",
    "BatchError",
    "read",
    "read_batch",
    "write",
    "info",
    "parse",
    "MAX_PIXELS",
    "MODES",
    "DEPTHS",
    "CODECS",
]

# Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS): familiar to users.
MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3
MODES = ("rgb", "bgr", "rgba", "gray", "unchanged")
DEPTHS = ("uint8", "any")
# User-facing codec names (and file extensions) -> nvImageCodec's codec name.
CODECS = {
    "jpeg": "jpeg", "jpg": "jpeg", "jpe": "jpeg",
    "png": "png",
    "bmp": "bmp",
    "tiff": "tiff", "tif": "tiff",
    "jpeg2k": "jpeg2k", "jpeg2000": "jpeg2k", "jp2": "jpeg2k", "j2k": "jpeg2k", "j2c": "jpeg2k", "jpx": "jpeg2k",
    "webp": "webp",
    "pnm": "pnm", "ppm": "pnm", "pgm": "pnm", "pbm": "pnm",
}  # fmt: skip
# Magic numbers of formats nvImageCodec cannot read: named in UnsupportedFormatError.
_UNSUPPORTED_MAGIC = (
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"),
    (b"\xff\x0a", "JPEG XL"), (b"\x00\x00\x00\x0cJXL ", "JPEG XL"), (b"qoif", "QOI"),
)  # fmt: skip
_FTYP_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}


_nvimgcodec_module: list[Any] = []


def _nvimgcodec() -> Any:
    """The nvImageCodec module, imported on first use (its import prints loader noise)."""
    if not _nvimgcodec_module:
        # nvImageCodec logs every failed batch item; gpuimg reports each as an exception
        # naming the source instead, so its log is quiet unless the user asked for it
        # (PYNVIMGCODEC_VERBOSITY is read once, at import).
        os.environ.setdefault("PYNVIMGCODEC_VERBOSITY", "0")
        from nvidia import nvimgcodec

        _nvimgcodec_module.append(nvimgcodec)
    return _nvimgcodec_module[0]


# ============================================================================ sources


class ParsedSource:
    """One input, read and its header parsed once (made by :func:`parse`).

    Pass it to :meth:`Decoder.decode` / :meth:`Decoder.decode_batch` (or :func:`read`,
    :func:`read_batch`) in place of the original source: the file is not read and its
    header not parsed again, so a reader thread can do that work once and hand the
    object to a decode thread. ``src`` is the caller's original object (a path, bytes,
    array or CodeStream); ``info`` its :class:`ImageInfo`. Decode results name the object
    that was passed (``BatchResult.sources``, ``BatchError.source``: this ParsedSource);
    error messages name ``src``. It keeps the encoded bytes alive until it is dropped and
    may be decoded more than once; like the CodeStream it holds, use it from one thread
    at a time (made on one thread, decoded on another is fine).

    Example:
        >>> parsed = parse("assets/rocket.jpg")                  # doctest: +SKIP
        >>> parsed.info.width, parsed.src                       # doctest: +SKIP
        (640, 'assets/rocket.jpg')
        >>> img = read(parsed, device="cpu")                     # doctest: +SKIP
    """

    __slots__ = ("src", "stream", "orientation", "keep", "_info", "_checked")

    def __init__(self, src: Any, stream: Any, orientation: int, keep: Any):
        self.src = src  # the caller's object (named in error messages)
        self.stream = stream  # nvimgcodec.CodeStream
        self.orientation = orientation  # EXIF orientation; 1 when unknown (CodeStream sources)
        self.keep = keep  # the bytes/array the CodeStream reads from; None for CodeStream sources
        self._info: ImageInfo | None = None  # parsed on first use, then kept
        self._checked = False  # the JPEG truncation check passed

    @property
    def label(self) -> str:
        """How error messages name the source (made only when an error needs it)."""
        return _label(self.src)

    @property
    def info(self) -> ImageInfo:
        """The header facts (read on first use, then kept); raises DecodeError or
        UnsupportedFormatError for a header nvImageCodec cannot read."""
        if self._info is None:
            self._info = _info_of(self)
        return self._info

    def _checked_info(self) -> ImageInfo:
        """:attr:`info`, after the check that a JPEG is not truncated (done once).

        nvJPEG on the GPU "decodes" a truncated file (grey rest) where libjpeg fails, so a
        missing end-of-image marker is an error on every device.
        """
        info = self.info
        if not self._checked:
            if info.codec == "jpeg" and self.keep is not None and not _jpeg_complete(self.keep):
                raise DecodeError(self.label, "the JPEG data is truncated (no end-of-image marker after the last scan)")
            self._checked = True
        return info

    def __repr__(self) -> str:
        return f"ParsedSource({self.label!r}, {self._info!r})"


def _label(src: Any) -> str:
    if isinstance(src, ParsedSource):
        return src.label
    if isinstance(src, str | os.PathLike):
        return os.fspath(src) if isinstance(src, str) else str(src)
    if isinstance(src, np.ndarray):
        return f"<array of {src.nbytes} bytes>"
    if isinstance(src, bytes | bytearray | memoryview):
        return f"<{type(src).__name__} of {memoryview(src).nbytes} bytes>"
    return f"<{type(src).__name__}>"


def _read(src: Any) -> Any:
    """The encoded bytes of ``src`` as bytes or a 1-D uint8 array (None for a CodeStream)."""
    if isinstance(src, bytes):
        return src
    if isinstance(src, str | os.PathLike):
        return Path(src).read_bytes()  # FileNotFoundError names the path
    if isinstance(src, bytearray | memoryview):
        return np.frombuffer(src, np.uint8)
    if isinstance(src, np.ndarray):
        if src.dtype != np.uint8:
            raise TypeError(f"an encoded image array must have dtype uint8, got {src.dtype}")
        return np.ascontiguousarray(src).reshape(-1)
    if isinstance(src, _nvimgcodec().CodeStream):
        return None
    raise TypeError(
        f"cannot decode a {type(src).__name__}: pass a path, bytes/bytearray/memoryview, "
        "a NumPy uint8 array, an nvimgcodec.CodeStream or a gpuimg ParsedSource"
    )


def _load(src: Any) -> ParsedSource:
    """Read ``src`` (path, bytes-like, uint8 array or CodeStream) and open its header;
    a :class:`ParsedSource` comes back unchanged (already read).

    Raises FileNotFoundError, TypeError, UnsupportedFormatError or DecodeError.
    """
    if isinstance(src, ParsedSource):
        return src
    data = _read(src)
    if data is None:
        return ParsedSource(src, src, 1, None)
    if len(data) == 0:
        raise DecodeError(_label(src), "the data is empty (0 bytes)")
    try:
        stream = _nvimgcodec().CodeStream(data)
    except Exception as exc:  # nvImageCodec raises RuntimeError for unknown/garbled headers
        raise _unreadable(src, data, exc) from None
    return ParsedSource(src, stream, _exif.orientation(data), data)


def parse(src: Any) -> ParsedSource:
    """Read ``src`` and parse its header once, for a later decode that does not redo it.

    ``src``: a path, bytes/bytearray/memoryview, a NumPy uint8 array of the encoded file
    or an ``nvimgcodec.CodeStream`` (a ParsedSource comes back as it is). The result's
    ``info`` holds the header facts; hand the result to :meth:`Decoder.decode`,
    :meth:`Decoder.decode_batch`, :func:`read` or :func:`read_batch`. No pixels are
    decoded and the pixel limit (a Decoder setting) is checked at decode time, but a
    JPEG without its end-of-image marker is refused here, as a decode would refuse it.

    Raises FileNotFoundError (or another OSError) for a file that cannot be read,
    TypeError for an object that is not a source, :class:`~gpuimg.UnsupportedFormatError`
    for a known format gpuimg cannot decode, and :class:`~gpuimg.DecodeError` naming the
    source for empty, unreadable or truncated data.

    Example:
        >>> parsed = parse("assets/coffee.jpg")                       # doctest: +SKIP
        >>> parsed.info.height, parsed.info.width                     # doctest: +SKIP
        (400, 600)
        >>> res = Decoder("cpu").decode_batch([parsed])               # doctest: +SKIP
        >>> res.sources[0] is parsed                                  # doctest: +SKIP
        True
    """
    loaded = _load(src)
    loaded._checked_info()
    return loaded


def _unreadable(src: Any, data: Any, exc: Exception) -> GpuImgError:
    """The error for a header nvImageCodec cannot read: a known unsupported format, or junk."""
    head = bytes(memoryview(data)[:16]) if data is not None else b""
    name = next((n for magic, n in _UNSUPPORTED_MAGIC if head.startswith(magic)), None)
    if name is None and head[4:8] == b"ftyp":
        name = _FTYP_BRANDS.get(head[8:12])
    if name is not None:
        return UnsupportedFormatError(f"cannot decode {_label(src)}: {name} is not supported; use {_supported_text()}")
    return DecodeError(_label(src), f"its header is not a readable {_supported_text()} header ({exc})")


def _supported_text() -> str:
    return "JPEG, PNG, BMP, TIFF, JPEG 2000, WebP or PNM"


# ============================================================================ headers


@dataclass(frozen=True)
class ImageInfo:
    """What a header says, without decoding pixels.

    ``width``/``height`` are the decoded size with the EXIF ``orientation`` applied (as
    :meth:`Decoder.decode` returns it by default); ``channels`` is what the file stores
    (1 gray, 2 gray+alpha, 3 colour, 4 colour+alpha or CMYK); ``dtype`` is "uint8" or
    "uint16"; ``codec`` is nvImageCodec's name ("jpeg", "png", "tiff", ...).

    Example:
        >>> ImageInfo(640, 480, 3, "jpeg", "uint8", 1).pixels
        307200
    """

    width: int
    height: int
    channels: int
    codec: str
    dtype: str
    orientation: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _info_of(loaded: ParsedSource) -> ImageInfo:
    """Read the header facts from the CodeStream (use ``loaded.info``: kept once read)."""
    cs = loaded.stream
    try:
        w, h, c = cs.width, cs.height, cs.num_channels
        codec = cs.codec_name
        precision = cs.precision or 8
    except Exception as exc:  # CodeStream parses lazily: junk often fails only here
        raise _unreadable(loaded.src, loaded.keep, exc) from None
    if w < 1 or h < 1:
        raise DecodeError(loaded.label, f"its header gives an empty size {w}x{h}")
    if _exif.swaps_axes(loaded.orientation):
        w, h = h, w
    return ImageInfo(w, h, c, codec, "uint16" if precision > 8 else "uint8", loaded.orientation)


# ============================================================================ plans


class _Plan(NamedTuple):
    """How one item decodes: the target shape and nvImageCodec's parameters."""

    height: int
    width: int
    channels: int  # channels of the result
    dtype: np.dtype
    decode_channels: int  # channels nvImageCodec writes (3 when alpha is added afterwards)
    apply_exif: bool
    staged: bool  # decoded into the staging batch, then copied/converted into the result


def _jpeg_complete(data: Any) -> bool:
    """True when a JPEG ends with its end-of-image marker (after the last scan).

    The common case costs one look at the last bytes; files with data after the marker
    (some cameras append metadata) take a search of the whole file.
    """
    buf = data if isinstance(data, bytes) else bytes(memoryview(data))
    if buf.find(b"\xff\xd9", max(0, len(buf) - 64)) >= 0:
        return True
    return buf.rfind(b"\xff\xd9") > buf.rfind(b"\xff\xda") >= 0


def _check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not supported; use one of {MODES}")
    return mode


def _check_depth(depth: Any) -> str:
    if depth not in DEPTHS:
        raise ValueError(f"depth={depth!r} is not supported; use one of {DEPTHS} ('any' keeps 16-bit as uint16)")
    return depth


def _check_region(region: Any) -> tuple[int, int, int, int] | None:
    if region is None:
        return None
    ok = isinstance(region, Sequence) and len(region) == 4 and all(isinstance(v, int | np.integer) for v in region)
    if not ok or not (0 <= region[0] < region[2] and 0 <= region[1] < region[3]):
        raise ValueError(
            f"region={region!r} must be (top, left, bottom, right) ints with 0 <= top < bottom and 0 <= left < right"
        )
    return tuple(int(v) for v in region)  # type: ignore[return-value]


def _has_alpha(info: ImageInfo) -> bool:
    # A 4-channel JPEG is CMYK, not colour + alpha.
    return info.channels in (2, 4) and info.codec != "jpeg"


def _plan(
    loaded: ParsedSource, info: ImageInfo, mode: str, depth: str, apply_exif: bool, region: Any, max_pixels: int
) -> _Plan:
    """The item's decoded shape and parameters; raises ImageTooLargeError before any allocation."""
    if info.pixels > max_pixels:
        raise ImageTooLargeError(
            f"cannot decode {loaded.label}: its header claims {info.width}x{info.height} = {info.pixels:,} pixels, "
            f"over the limit of {max_pixels:,} (Decoder(max_pixels=...) raises it)"
        )
    h, w = info.height, info.width
    if not apply_exif and _exif.swaps_axes(info.orientation):
        h, w = w, h
    if mode == "unchanged":
        channels = 1 if info.channels == 1 else (4 if _has_alpha(info) else 3)
    else:
        channels = {"rgb": 3, "bgr": 3, "rgba": 4, "gray": 1}[mode]
    decode_channels = 3 if channels == 4 and not _has_alpha(info) else channels
    dtype = np.dtype(np.uint16 if depth == "any" and info.dtype == "uint16" else np.uint8)
    staged = region is not None or decode_channels != channels
    if region is not None:
        top, left, bottom, right = region
        if bottom > h or right > w:
            raise DecodeError(loaded.label, f"region={region} reaches outside the {w}x{h} image")
        out_hw = (bottom - top, right - left)
    else:
        out_hw = (h, w)
    return _Plan(out_hw[0], out_hw[1], channels, dtype, decode_channels, apply_exif, staged)


def _decode_params(nvimgcodec: Any, mode: str, channels: int, apply_exif: bool, any_depth: bool) -> Any:
    fmt, spec = _format_of(nvimgcodec, channels, mode)
    return nvimgcodec.DecodeParams(
        apply_exif_orientation=apply_exif, color_spec=spec, allow_any_depth=any_depth, sample_format=fmt
    )


def _format_of(nvimgcodec: Any, channels: int, mode: str = "rgb") -> tuple[Any, Any]:
    """nvImageCodec's (sample format, colour spec) for pixels of ``channels`` in ``mode``."""
    if channels == 1:
        return nvimgcodec.I_Y, nvimgcodec.GRAY
    if channels == 4:
        return nvimgcodec.I_RGBA, nvimgcodec.SRGB
    return (nvimgcodec.I_BGR if mode == "bgr" else nvimgcodec.I_RGB), nvimgcodec.SRGB


# ============================================================================ wrappers


class _OwnerWrappers:
    """The wrappers of one owner: per view, plus the last whole list asked for a batch."""

    __slots__ = ("base", "by_view", "last_key", "last")

    def __init__(self, base: int):
        self.base = base
        self.by_view: dict[tuple, Any] = {}
        self.last_key: tuple | None = None
        self.last: list[Any] = []


class _Wrappers:
    """Cached ``nvimgcodec.as_image`` wrappers of Image memory, per owner Image/ImageBatch.

    Re-wrapping each call costs ~12% of a batch decode (ANCHORS.md), and even building
    per-slot keys costs microseconds per image, so a batch whose layout did not change gets
    its previous list back from one comparison. A wrapper keeps its memory alive, so the
    cache is keyed weakly by the owner and emptied when the owner's base address changes
    (its buffer grew) or it holds more than a few entries per slot.
    """

    def __init__(self) -> None:
        self._owners: weakref.WeakKeyDictionary[Any, _OwnerWrappers] = weakref.WeakKeyDictionary()

    def _entry(self, owner: Any) -> _OwnerWrappers:
        base = owner.data_ptr
        entry = self._owners.get(owner)
        if entry is None or entry.base != base:
            entry = self._owners[owner] = _OwnerWrappers(base)
        return entry

    def get(self, owner: Any, img: Image, stream: int, sample_format: Any, color_spec: Any) -> Any:
        """The wrapper of ``img`` (a view of ``owner``'s memory), made once per layout."""
        cache = self._entry(owner).by_view
        key = (img.data_ptr, img.shape, img.pitch, img.dtype.str, int(sample_format), stream)
        wrapper = cache.get(key)
        if wrapper is None:
            if len(cache) > 4 * (len(owner) if isinstance(owner, ImageBatch) else 1) + 16:
                cache.clear()
            wrapper = _nvimgcodec().as_image(img.array, stream, sample_format=sample_format, color_spec=color_spec)
            cache[key] = wrapper
        return wrapper

    def for_slots(self, batch: ImageBatch, slots: list[int], stream: int, sample_format: Any, color_spec: Any) -> list[Any]:
        """Wrappers of ``batch``'s slots ``slots``; the same list again while nothing changed."""
        entry = self._entry(batch)
        key = (batch.table().tobytes(), tuple(slots), batch.dtype.str, int(sample_format), stream)
        if entry.last_key != key:
            entry.last = [self.get(batch, batch[i], stream, sample_format, color_spec) for i in slots]
            entry.last_key = key
        return entry.last


# ============================================================================ batch result


class BatchError(NamedTuple):
    """One failed item of a batch: its position in the input, the source, the error."""

    index: int
    source: Any
    error: GpuImgError


@dataclass
class BatchResult:
    """What :meth:`Decoder.decode_batch` returns.

    ``images``: an ImageBatch holding ONLY the decoded items, in input order (slot ``k``
    came from input ``indices[k]``, i.e. ``sources[k]``: the objects the caller passed,
    a :class:`ParsedSource` where one was passed). ``errors``: one
    :class:`BatchError` ``(index, source, error)`` per failed item, where ``error`` is a
    :class:`~gpuimg.DecodeError`, :class:`~gpuimg.UnsupportedFormatError` or
    :class:`~gpuimg.ImageTooLargeError` (a missing file is a DecodeError whose
    ``__cause__`` is the FileNotFoundError). Iterating yields the good Images.

    Example:
        >>> res = read_batch(["a.jpg", "missing.jpg"])       # doctest: +SKIP
        >>> len(res), res.indices, res.errors[0].index      # doctest: +SKIP
        (1, [0], 1)
    """

    images: ImageBatch
    indices: list[int] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)
    errors: list[BatchError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every item decoded."""
        return not self.errors

    def raise_errors(self) -> BatchResult:
        """Raise the first failed item's error; return self when every item decoded."""
        if self.errors:
            raise self.errors[0].error
        return self

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Image]:
        return iter(self.images)

    def __getitem__(self, k: int) -> Image:
        return self.images[k]


# ============================================================================ decoder


class Decoder:
    """Decodes into gpuimg Images/ImageBatches on one device (not thread-safe: one per thread).

    ``max_pixels``: headers claiming more pixels raise ImageTooLargeError before any
    allocation (default: Pillow's limit, about 89 megapixels). ``num_threads``: CPU
    threads nvImageCodec may use (0: one per core). ``guard_reuse``: on the GPU, wait
    (host side) for the work already queued on the stream before decoding into a buffer,
    because the nvJPEG hardware decoder on H100 has been seen writing its output before
    earlier kernels on the same stream finished (ANCHORS.md); the wait costs the overlap
    of the header/Huffman work with those kernels only. Turn it off when nothing earlier
    on the stream reads the target (e.g. double-buffered batches on their own stream).
    ``backends``: None for gpuimg's choice on the GPU (hardware and hybrid JPEG decoders
    sharing each batch, see :func:`_default_backends`), or a list of "hw", "hybrid",
    "gpu", "cpu", ``(name, load_hint)`` pairs or ``nvimgcodec.Backend`` objects; ignored
    on the CPU. ``options``: nvImageCodec's decoder option string, passed through.

    Example:
        >>> dec = Decoder("cpu")                                     # doctest: +SKIP
        >>> img = dec.decode("assets/coffee.jpg")                    # doctest: +SKIP
        >>> img = dec.decode("assets/chelsea.jpg", out=img)          # reuses img's buffer
    """

    def __init__(
        self,
        device: str | None = None,
        *,
        max_pixels: int = MAX_PIXELS,
        num_threads: int = 0,
        guard_reuse: bool = True,
        backends: Sequence[Any] | None = None,
        options: str = "",
    ):
        self.device = resolve_device(device)
        if not isinstance(max_pixels, int | np.integer) or max_pixels < 1:
            raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
        self.max_pixels = int(max_pixels)
        self.guard_reuse = bool(guard_reuse)
        self._nv = _nvimgcodec()
        self._decoder = self._make(num_threads, backends, options)
        self._wrappers = _Wrappers()
        self._staging: ImageBatch | None = None  # per-Decoder (so per-thread) staging arena
        self._plans: dict[tuple, _Plan] = {}
        self._event: Any = None

    def _make(self, num_threads: int, backends: Sequence[Any] | None, options: str) -> Any:
        nv = self._nv
        if self.device == "cpu":
            # The default arguments need a CUDA runtime (ANCHORS.md): ask for the CPU backends.
            return nv.Decoder(
                device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY, max_num_cpu_threads=num_threads, backends=[nv.Backend(nv.CPU_ONLY)]
            )
        import cupy

        chosen = _default_backends(nv) if backends is None else [_backend(nv, b) for b in backends]
        return nv.Decoder(device_id=cupy.cuda.Device().id, max_num_cpu_threads=num_threads, backends=chosen, options=options)

    # ------------------------------------------------------------------ public API
    def info(self, src: Any) -> ImageInfo:
        """Header facts of ``src`` without decoding pixels (see :class:`ImageInfo`).

        Example:
            >>> Decoder("cpu").info("assets/chelsea.jpg").width      # doctest: +SKIP
            451
        """
        return _load(src).info

    def decode(
        self,
        src: Any,
        out: Image | None = None,
        *,
        mode: str = "rgb",
        apply_exif: bool = True,
        depth: str = "uint8",
        region: tuple[int, int, int, int] | None = None,
        stream: Any = None,
    ) -> Image:
        """Decode one image into ``out`` (reshaped, grown only if too small) or a new Image.

        ``src``: a path, bytes/bytearray/memoryview, a NumPy uint8 array of the encoded
        file, an ``nvimgcodec.CodeStream`` (its EXIF orientation is not read: decoded
        as stored), or a :class:`ParsedSource` from :func:`parse` (not read or parsed
        again). ``mode``: one of :data:`MODES`. ``depth="any"`` keeps 16-bit PNG/TIFF
        as uint16. ``region=(top, left, bottom, right)`` in decoded (oriented)
        coordinates: decoded whole, then cropped on the device (nvImageCodec 0.9's GPU
        ROI decode crashes on H100, so one path serves every codec). ``stream``: the
        CUDA stream the decode is ordered on (default: CuPy's current stream).

        Raises FileNotFoundError, DecodeError, UnsupportedFormatError, ImageTooLargeError,
        ValueError (bad mode/depth/region).

        Example:
            >>> img = Decoder("cpu").decode("assets/camera_gray.png", mode="gray")  # doctest: +SKIP
            >>> img.shape                                                          # doctest: +SKIP
            (512, 512, 1)
        """
        if out is not None and not isinstance(out, Image):
            raise TypeError(f"out must be a gpuimg.Image, got {type(out).__name__}")
        if out is not None and out.device != self.device:
            raise ValueError(f"out is on {out.device!r} but this Decoder decodes on {self.device!r}")
        mode, depth, region = _check_mode(mode), _check_depth(depth), _check_region(region)
        loaded = _load(src)
        plan = self._plan_item(loaded, mode, depth, apply_exif, region)
        if out is None:
            out = Image.empty(plan.height, plan.width, plan.channels, plan.dtype, device=self.device)
        else:
            out.set_shape(plan.height, plan.width, plan.channels, plan.dtype)
        failed = self._run([loaded], [plan], [out], [out], mode, depth, region, stream)
        if failed:
            raise failed[0][1]
        return out

    def decode_batch(
        self,
        srcs: Sequence[Any],
        out: ImageBatch | None = None,
        *,
        mode: str = "rgb",
        apply_exif: bool = True,
        depth: str = "uint8",
        region: tuple[int, int, int, int] | None = None,
        stream: Any = None,
    ) -> BatchResult:
        """Decode many images in ONE nvImageCodec call into ``out``'s arena (or a new batch).

        Every header is read first (not again for :class:`ParsedSource` items, see
        :func:`parse`); the arena is laid out for the good items and grown
        as a whole only when too small; nvImageCodec decodes into the slots. An item that
        fails (unreadable, unsupported, too large, corrupt data) is listed in
        ``result.errors`` and left out; every good item is kept, in input order. Options
        as in :meth:`decode` (``region`` applies to every item). With ``depth="any"`` a
        batch holds one dtype: items whose depth differs from the first good item's fail.

        Example:
            >>> dec = Decoder("cpu")                                        # doctest: +SKIP
            >>> res = dec.decode_batch(["assets/coffee.jpg", b"junk"])      # doctest: +SKIP
            >>> len(res.images), [e.index for e in res.errors]              # doctest: +SKIP
            (1, [1])
        """
        if isinstance(srcs, str | bytes | os.PathLike) or not isinstance(srcs, Sequence):
            raise TypeError(f"srcs must be a list of sources, got {type(srcs).__name__}")
        if out is not None and not isinstance(out, ImageBatch):
            raise TypeError(f"out must be a gpuimg.ImageBatch, got {type(out).__name__}")
        if out is not None and out.device != self.device:
            raise ValueError(f"out is on {out.device!r} but this Decoder decodes on {self.device!r}")
        mode, depth, region = _check_mode(mode), _check_depth(depth), _check_region(region)
        errors: list[BatchError] = []
        good: list[tuple[int, ParsedSource, _Plan]] = []
        for index, src in enumerate(srcs):
            try:
                loaded = _load(src)
                plan = self._plan_item(loaded, mode, depth, apply_exif, region)
                if good and plan.dtype != good[0][2].dtype:
                    raise DecodeError(loaded.label, f"it is {plan.dtype.name} but this batch holds {good[0][2].dtype.name}")
            except (GpuImgError, OSError) as exc:
                errors.append(BatchError(index, src, _as_item_error(src, exc)))
                continue
            good.append((index, loaded, plan))
        batch = self._layout(out, [p for _, _, p in good])
        failed = self._run(
            [s for _, s, _ in good], [p for _, _, p in good], list(batch), [batch] * len(good), mode, depth, region, stream
        )
        if failed:
            bad = {k for k, _ in failed}
            errors += [BatchError(good[k][0], srcs[good[k][0]], err) for k, err in failed]
            errors.sort(key=lambda e: e.index)
            keep = [k for k in range(len(good)) if k not in bad]
            _compact(batch, keep, stream)
            good = [good[k] for k in keep]
        return BatchResult(batch, [i for i, _, _ in good], [srcs[i] for i, _, _ in good], errors)

    # ------------------------------------------------------------------ internals
    def _plan_item(self, loaded: ParsedSource, mode: str, depth: str, apply_exif: bool, region: Any) -> _Plan:
        exif = bool(apply_exif) and loaded.keep is not None  # CodeStream sources: orientation unknown, as stored
        info = loaded._checked_info()  # parsed and checked once per source (parse() may have done it)
        # Photos of a dataset share few header layouts: reuse their plans (microseconds per image).
        key = (info, mode, depth, exif, region)
        plan = self._plans.get(key)
        if plan is None:
            plan = _plan(loaded, info, mode, depth, exif, region, self.max_pixels)
            if len(self._plans) > 4096:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _layout(self, out: ImageBatch | None, plans: list[_Plan]) -> ImageBatch:
        shapes = [(p.height, p.width, p.channels) for p in plans]
        dtype = plans[0].dtype if plans else np.dtype(np.uint8)
        if out is None:
            return ImageBatch.empty(shapes, dtype=dtype, device=self.device)
        if out.dtype == dtype and len(out) == len(shapes) and len(shapes):
            if np.array_equal(out.table()[:, [1, 2, 4]], np.array(shapes)):
                return out  # same layout as last time: nothing to redo (the steady state)
        return out.set_shapes(shapes, dtype=dtype)

    def _staging_views(self, plans: list[_Plan], full: list[tuple[int, int]]) -> list[Image | None]:
        """Staging Images (whole decoded size, decode channels) for the staged items."""
        shapes = [(*hw, p.decode_channels) for p, hw in zip(plans, full) if p.staged]
        if not shapes:
            return [None] * len(plans)
        dtype = next(p.dtype for p in plans if p.staged)
        if self._staging is None:
            self._staging = ImageBatch.empty(shapes, dtype=dtype, device=self.device)
        else:
            self._staging.set_shapes(shapes, dtype=dtype)
        views = iter(self._staging)
        return [next(views) if p.staged else None for p in plans]

    def _run(
        self,
        sources: list[ParsedSource],
        plans: list[_Plan],
        targets: list[Image],
        owners: list[Any],
        mode: str,
        depth: str,
        region: Any,
        stream: Any,
    ) -> list[tuple[int, GpuImgError]]:
        """Decode ``sources`` into ``targets``; returns (position, error) of failed items."""
        if not sources:
            return []
        ptr = stream_ptr(stream) if self.device == "cuda" else 0
        staging = self._staging_views(plans, [_full_hw(p, s, region) for p, s in zip(plans, sources)])
        # One nvImageCodec call per parameter set: a single one unless modes mix in the batch.
        groups: dict[tuple, list[int]] = {}
        for k, p in enumerate(plans):
            groups.setdefault((p.decode_channels, p.apply_exif, p.staged), []).append(k)
        self._wait_for_stream(stream)
        failed: list[tuple[int, GpuImgError]] = []
        for (channels, exif, staged), members in groups.items():
            params = _decode_params(self._nv, mode, channels, exif, depth == "any")
            wrapped = self._wrap(members, staged, staging, targets, owners, ptr, _format_of(self._nv, channels, mode))
            try:
                results = self._decoder.decode([sources[k].stream for k in members], images=wrapped, params=params, cuda_stream=ptr)
            except Exception as exc:  # an argument error fails the whole call: report it per item
                results = [None] * len(members)
                reason = f"nvImageCodec refused the batch ({exc})"
            else:
                reason = "nvImageCodec could not decode it (corrupt or truncated data, or an unsupported variant)"
            for k, result in zip(members, results):
                if result is None:
                    failed.append((k, DecodeError(sources[k].label, reason)))
        bad = {k for k, _ in failed}
        finishing = [k for k, p in enumerate(plans) if p.staged and k not in bad]
        if finishing:
            with use_stream(self.device, stream):
                for k in finishing:
                    _finish(staging[k], targets[k], region)
        return sorted(failed, key=lambda f: f[0])

    def _wrap(
        self, members: list[int], staged: bool, staging: list[Any], targets: list[Image], owners: list[Any], ptr: int, fmt: tuple
    ) -> list[Any]:
        """nvImageCodec wrappers of the decode targets of ``members`` (cached, see _Wrappers)."""
        if staged:
            slots = [staging[k]._index for k in members]
            return self._wrappers.for_slots(self._staging, slots, ptr, *fmt)
        owner = owners[members[0]]
        if isinstance(owner, ImageBatch):
            return self._wrappers.for_slots(owner, [targets[k]._index for k in members], ptr, *fmt)
        return [self._wrappers.get(owners[k], targets[k], ptr, *fmt) for k in members]

    def _wait_for_stream(self, stream: Any) -> None:
        """The H100 hardware-decoder guard: let earlier work on ``stream`` finish first."""
        if self.device != "cuda" or not self.guard_reuse:
            return
        import cupy

        if self._event is None:
            self._event = cupy.cuda.Event(block=False, disable_timing=True)
        self._event.record(cupy.cuda.get_current_stream() if stream is None else _cupy_stream(stream))
        self._event.synchronize()


_BACKENDS = {"hw": "HW_GPU_ONLY", "hybrid": "HYBRID_CPU_GPU", "gpu": "GPU_ONLY", "cpu": "CPU_ONLY"}


def _backend(nv: Any, spec: Any) -> Any:
    """An nvimgcodec.Backend from itself, a name in _BACKENDS, or (name, load_hint)."""
    if isinstance(spec, nv.Backend):
        return spec
    name, hint = (spec, 1.0) if isinstance(spec, str) else tuple(spec)
    if name not in _BACKENDS:
        raise ValueError(f"backend {spec!r} is not one of {list(_BACKENDS)} (or an nvimgcodec.Backend)")
    kind = getattr(nv, _BACKENDS[name])
    return nv.Backend(kind, load_hint=float(hint), load_hint_policy=nv.LoadHintPolicy.FIXED)


def _default_backends(nv: Any) -> list[Any]:
    """The GPU decoder's backends: the JPEG hardware decoder AND the hybrid CUDA decoder.

    nvImageCodec's default sends a JPEG batch to the hardware decoder alone; sharing it
    with the hybrid decoder (CPU Huffman + CUDA IDCT), the hardware share adapted to keep
    both busy, decoded 1080p batches 1.2-1.3x faster on an H200 (6,802 vs 5,415 img/s at
    64, 7,871 vs 5,906 at 256, bench/codec.py). GPU_ONLY (nvJPEG2000, nvTIFF) and CPU_ONLY
    (PNG, WebP, BMP, PNM) keep the other formats. Without a hardware decoder the hybrid
    one takes every JPEG. Items may come from either JPEG decoder, which differ from each
    other (and from libjpeg) by a level or two. The hybrid share costs host CPU (about 4x
    that of hardware-first decoding per image), so the dataset pipeline, which shares the
    CPU with its other stages, asks for hardware-first instead (pipeline.DECODE_BACKENDS).
    """
    adaptive = nv.LoadHintPolicy.ADAPTIVE_MINIMIZE_IDLE_TIME
    return [
        nv.Backend(nv.HW_GPU_ONLY, load_hint=0.5, load_hint_policy=adaptive),
        nv.Backend(nv.HYBRID_CPU_GPU),
        nv.Backend(nv.GPU_ONLY),
        nv.Backend(nv.CPU_ONLY),
    ]


def _cupy_stream(stream: Any) -> Any:
    from ..device import get_stream

    return get_stream(stream)


def _full_hw(plan: _Plan, loaded: ParsedSource, region: Any) -> tuple[int, int]:
    """The whole decoded (height, width) of a staged item (before the region crop)."""
    if region is None:
        return plan.height, plan.width
    info = loaded.info
    h, w = info.height, info.width
    if not plan.apply_exif and _exif.swaps_axes(info.orientation):
        h, w = w, h
    return h, w


def _finish(staged: Image, out: Image, region: Any) -> None:
    """Copy a staged decode into ``out``: crop to ``region``, add opaque alpha if needed."""
    src = staged.array
    if region is not None:
        top, left, bottom, right = region
        src = src[top:bottom, left:right]
    dst = out.array
    xp = out.xp
    if src.shape[2] == dst.shape[2]:
        xp.copyto(dst, src)
        return
    # RGB decoded for an RGBA result (nvImageCodec cannot add alpha): colour, then opaque alpha.
    xp.copyto(dst[..., :3], src)
    dst[..., 3] = np.iinfo(out.dtype).max


def _compact(batch: ImageBatch, keep: list[int], stream: Any) -> None:
    """Drop failed slots from ``batch``: move the kept slots down, re-lay out in place.

    Slots only move to lower offsets; the pixels go through a staging copy so that an
    overlapping move cannot corrupt them. Rare path (a corrupt item), per-slot copies.
    """
    from ..memory import scratch

    old = batch.table()
    shapes = [batch.shapes[k] for k in keep]
    xp = batch.xp
    with use_stream(batch.device, stream):
        arena = batch.arena  # the used part, which covers every old slot
        spans = [(int(old[k, 0]), int(old[k, 1] * old[k, 3])) for k in keep]
        total = sum(n for _, n in spans)
        tmp = scratch("codec.compact", max(total, 1), batch.device).data
        pos = 0
        for start, n in spans:
            xp.copyto(tmp[pos : pos + n], arena[start : start + n])
            pos += n
        batch.set_shapes(shapes, dtype=batch.dtype)  # shrinks the layout: no growth, same memory
        arena, new = batch.arena, batch.table()
        pos = 0
        for row, (_, n) in zip(new, spans):
            xp.copyto(arena[int(row[0]) : int(row[0]) + n], tmp[pos : pos + n])
            pos += n


def _as_item_error(src: Any, exc: Exception) -> GpuImgError:
    if isinstance(exc, GpuImgError):
        return exc
    err = DecodeError(_label(src), f"it cannot be read ({exc.strerror or exc})" if isinstance(exc, OSError) else str(exc))
    err.__cause__ = exc
    return err


# ============================================================================ encoder


_CHROMA = {"444": "CSS_444", "422": "CSS_422", "420": "CSS_420", "440": "CSS_440", "411": "CSS_411", "410": "CSS_410", "gray": "CSS_GRAY"}
_OPTIONS = {
    "jpeg": ("chroma_subsampling", "progressive", "optimized_huffman"),
    "png": ("compression_level",),
    "webp": ("lossless",),
    "jpeg2k": ("lossless", "psnr"),
    "tiff": (),
    "bmp": (),
    "pnm": (),
}


def _codec_name(codec: Any) -> str:
    name = str(codec).lower().lstrip(".") if isinstance(codec, str) else None
    if name not in CODECS:
        raise UnsupportedFormatError(
            f"codec={codec!r} cannot be encoded; use one of {sorted(set(CODECS.values()))} (or an extension: {sorted(CODECS)})"
        )
    return CODECS[name]


class Encoder:
    """Encodes gpuimg Images through reused pinned CodeStreams (not thread-safe: one per thread).

    Each batch position keeps its own ``nvimgcodec.CodeStream``; its capacity grows with
    the largest output seen and is never recreated, so steady-state encoding allocates
    no output memory.

    Example:
        >>> enc = Encoder("cpu")                                                 # doctest: +SKIP
        >>> data = enc.encode(img, "jpeg", quality=90)                           # doctest: +SKIP
        >>> enc.write(img, "out.png", compression_level=1)                       # doctest: +SKIP
    """

    def __init__(self, device: str | None = None, *, num_threads: int = 0):
        self.device = resolve_device(device)
        self._nv = _nvimgcodec()
        nv = self._nv
        if self.device == "cpu":
            self._encoder = nv.Encoder(
                device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY, max_num_cpu_threads=num_threads, backends=[nv.Backend(nv.CPU_ONLY)]
            )
        else:
            import cupy

            self._encoder = nv.Encoder(device_id=cupy.cuda.Device().id, max_num_cpu_threads=num_threads)
        self._code_streams: list[Any] = []
        self._wrappers = _Wrappers()
        self._param_cache: dict[tuple, Any] = {}

    @property
    def code_streams(self) -> list[Any]:
        """The reused output CodeStreams (one per batch position so far)."""
        return list(self._code_streams)

    def encode(
        self,
        img: Image | Any,
        codec: str = "jpeg",
        *,
        quality: float | None = None,
        stream: Any = None,
        copy: bool = True,
        **options: Any,
    ) -> bytes | memoryview:
        """Encode one image; returns the file's bytes.

        ``codec``: "jpeg", "png", "bmp", "tiff", "jpeg2k", "webp", "pnm" (or an
        extension such as "jpg"). ``quality``: 1-100 for JPEG/WebP/JPEG 2000 (default:
        the codec's own). Options: JPEG ``chroma_subsampling`` ("444", "422", "420",
        "gray"), ``progressive``, ``optimized_huffman``; PNG ``compression_level`` 0-9;
        WebP ``lossless``; JPEG 2000 ``lossless``, ``psnr``. ``copy=False`` returns a
        memoryview of the reused CodeStream: valid only until this Encoder's next call.

        Example:
            >>> Encoder("cpu").encode(Image.empty(8, 8, device="cpu"), "png")[:4]  # doctest: +SKIP
            b'\\x89PNG'
        """
        return self.encode_batch([img], codec, quality=quality, stream=stream, copy=copy, **options)[0]

    def encode_batch(
        self,
        images: ImageBatch | Sequence[Image | Any],
        codec: str = "jpeg",
        *,
        quality: float | None = None,
        stream: Any = None,
        copy: bool = True,
        **options: Any,
    ) -> list[bytes | memoryview]:
        """Encode many images in ONE nvImageCodec call; a list of encoded files, in order.

        Raises EncodeError naming the first image that failed (nvImageCodec gives no
        reason; typically a channel count or dtype the codec cannot store).

        Example:
            >>> files = Encoder("cpu").encode_batch(batch, "jpeg", quality=90)   # doctest: +SKIP
        """
        name = _codec_name(codec)
        params = self._params(name, quality, options)
        items = self._items(images)
        if not items:
            return []
        ptr = stream_ptr(stream) if self.device == "cuda" else 0
        wrapped = self._wrap(images, items, ptr)
        while len(self._code_streams) < len(items):
            # Pinned host memory needs a CUDA device (ANCHORS.md); capacity grows on use.
            self._code_streams.append(self._nv.CodeStream(0, pin_memory=self.device == "cuda"))
        outs = self._code_streams[: len(items)]
        try:
            results = self._encoder.encode(wrapped, name, code_stream_s=outs, params=params, cuda_stream=ptr)
        except Exception as exc:
            raise EncodeError(f"nvImageCodec refused to encode {len(items)} image(s) as {name}: {exc}") from None
        for k, (img, res) in enumerate(zip(items, results)):
            if res is None:
                raise EncodeError(
                    f"cannot encode image {k} ({img.height}x{img.width}x{img.channels} {img.dtype.name}) as {name}: "
                    "nvImageCodec failed (the codec may not store this channel count or dtype)"
                )
        return [bytes(memoryview(r)) if copy else memoryview(r) for r in results]

    def write(
        self,
        img: Image | Any,
        path: str | os.PathLike,
        *,
        codec: str | None = None,
        quality: float | None = None,
        stream: Any = None,
        **options: Any,
    ) -> Path:
        """Encode ``img`` and write it to ``path``; the codec comes from the extension.

        Example:
            >>> Encoder("cpu").write(img, "out.jpg", quality=90)                  # doctest: +SKIP
        """
        path = Path(path)
        if codec is None:
            if not path.suffix:
                raise UnsupportedFormatError(f"path {str(path)!r} has no extension; pass codec= (one of {sorted(CODECS)})")
            codec = path.suffix
        data = self.encode(img, codec, quality=quality, stream=stream, copy=False, **options)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def _items(self, images: Any) -> list[Image]:
        if isinstance(images, ImageBatch):
            items = list(images)
        elif isinstance(images, Image) or not isinstance(images, Sequence):
            raise TypeError(f"images must be an ImageBatch or a list of Images, got {type(images).__name__}")
        else:
            items = [im if isinstance(im, Image) else Image.from_array(im) for im in images]
        if self.device == "cpu" and any(im.device == "cuda" for im in items):
            raise ValueError("the images are on the GPU but this Encoder runs on the CPU; use Encoder('cuda')")
        return items

    def _wrap(self, images: Any, items: list[Image], ptr: int) -> list[Any]:
        """nvImageCodec wrappers of ``items``: one cached list for a batch of one channel count."""
        if isinstance(images, ImageBatch) and images.uniform_channels is not None:
            fmt = _format_of(self._nv, images.uniform_channels)
            return self._wrappers.for_slots(images, list(range(len(items))), ptr, *fmt)
        owners = [images] * len(items) if isinstance(images, ImageBatch) else items
        return [self._wrappers.get(o, im, ptr, *_format_of(self._nv, im.channels)) for o, im in zip(owners, items)]

    def _params(self, codec: str, quality: float | None, options: dict[str, Any]) -> Any:
        """EncodeParams for these settings, built once per distinct settings."""
        try:
            key = (codec, quality, tuple(sorted(options.items())))
            hash(key)
        except TypeError:  # an unhashable option value: checked (and refused) by _encode_params
            return _encode_params(self._nv, codec, quality, options)
        params = self._param_cache.get(key)
        if params is None:
            params = self._param_cache[key] = _encode_params(self._nv, codec, quality, options)
        return params


def _encode_params(nv: Any, codec: str, quality: float | None, options: dict[str, Any]) -> Any:
    allowed = _OPTIONS[codec]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"{codec} encoding takes no option {unknown}; its options are {list(allowed) or 'none'} and quality")
    if quality is not None and not (isinstance(quality, int | float) and 1 <= quality <= 100):
        raise ValueError(f"quality={quality!r} must be a number from 1 to 100")
    kwargs: dict[str, Any] = {}
    if quality is not None:
        if codec not in ("jpeg", "webp", "jpeg2k"):
            raise TypeError(f"{codec} is lossless and takes no quality; use one of jpeg, webp, jpeg2k for quality")
        kwargs.update(quality_type=nv.QualityType.QUALITY, quality_value=float(quality))
    if options.get("lossless"):
        kwargs.update(quality_type=nv.QualityType.LOSSLESS, quality_value=0.0)
    if "psnr" in options:
        kwargs.update(quality_type=nv.QualityType.PSNR, quality_value=float(options["psnr"]))
    if "compression_level" in options:
        level = options["compression_level"]
        if level not in range(10):
            raise ValueError(f"compression_level={level!r} must be an int from 0 (fastest) to 9 (smallest)")
        kwargs.update(quality_type=nv.QualityType.LOSSLESS, quality_value=float(level))
    if "chroma_subsampling" in options:
        css = str(options["chroma_subsampling"]).lower()
        if css not in _CHROMA:
            raise ValueError(f"chroma_subsampling={options['chroma_subsampling']!r}; use one of {list(_CHROMA)}")
        kwargs["chroma_subsampling"] = getattr(nv.ChromaSubsampling, _CHROMA[css])
    if codec == "jpeg" and ("progressive" in options or "optimized_huffman" in options):
        kwargs["jpeg_encode_params"] = nv.JpegEncodeParams(
            progressive=bool(options.get("progressive", False)),
            optimized_huffman=bool(options.get("optimized_huffman", False)),
        )
    return nv.EncodeParams(**kwargs)


# ============================================================================ module-level


_local = threading.local()


def _thread_codec(kind: type, device: str | None) -> Any:
    """This thread's Decoder/Encoder for ``device`` (nvImageCodec objects are not thread-safe)."""
    dev = resolve_device(device)
    codecs = getattr(_local, "codecs", None)
    if codecs is None:
        codecs = _local.codecs = {}
    key = (kind, dev)
    codec = codecs.get(key)
    if codec is None:
        codec = codecs[key] = kind(dev)
    return codec


def read(src: Any, out: Image | None = None, *, device: str | None = None, **options: Any) -> Image:
    """Decode one image with this thread's Decoder (options as :meth:`Decoder.decode`).

    Example:
        >>> img = read("assets/coffee.jpg", device="cpu")            # doctest: +SKIP
    """
    device = out.device if out is not None and device is None else device
    return _thread_codec(Decoder, device).decode(src, out, **options)


def read_batch(srcs: Sequence[Any], out: ImageBatch | None = None, *, device: str | None = None, **options: Any) -> BatchResult:
    """Decode many images with this thread's Decoder (see :meth:`Decoder.decode_batch`).

    Example:
        >>> res = read_batch(["assets/coffee.jpg", "assets/rocket.jpg"])   # doctest: +SKIP
    """
    device = out.device if out is not None and device is None else device
    return _thread_codec(Decoder, device).decode_batch(srcs, out, **options)


def write(img: Image | Any, path: str | os.PathLike, **options: Any) -> Path:
    """Encode ``img`` to ``path`` (codec from the extension) with this thread's Encoder.

    Example:
        >>> write(img, "out.webp", quality=80)                        # doctest: +SKIP
    """
    image = img if isinstance(img, Image) else Image.from_array(img)
    return _thread_codec(Encoder, image.device).write(image, path, **options)


def info(src: Any) -> ImageInfo:
    """Header facts of ``src`` (width, height, channels, codec, dtype, orientation).

    Example:
        >>> info("assets/rocket.jpg").codec                            # doctest: +SKIP
        'jpeg'
    """
    return _load(src).info
