"""Reading a source: path, bytes-like, uint8 array or CodeStream -> a ParsedSource.

:func:`parse` reads a source and its header once, ahead of time (say on a reader thread);
the decode methods take the :class:`ParsedSource` it returns without parsing again. The
one function that turns a loaded source into :class:`ImageInfo` is :func:`_info_of`;
callers look it up here at call time (tests patch it to count header parses), as they do
:func:`_read`, the raw read.

Example:
    >>> from pathlib import Path
    >>> import gpuimg
    >>> assets = Path(gpuimg.__file__).parent.parent / "assets"
    >>> parse(assets / "coffee.jpg").info.codec
    'jpeg'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, DecodeError, GpuImgError, UnsupportedFormatError
from ..meta.exif import swaps_axes
from ..meta.metadata import EMPTY as NO_METADATA
from ..meta.metadata import Metadata
from . import _nvimgcodec, containers, formats, pillow
from .containers import bmp, jpeg, png, tga, tiff

__all__ = ["ParsedSource", "ImageInfo", "parse"]


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
        >>> from pathlib import Path
        >>> import gpuimg
        >>> data = (Path(gpuimg.__file__).parent.parent / "assets" / "rocket.jpg").read_bytes()
        >>> parsed = parse(data)
        >>> parsed.info.width, parsed.src is data
        (640, True)
        >>> gpuimg.read(parsed, device="cpu").shape
        (427, 640, 3)
    """

    __slots__ = ("src", "stream", "orientation", "keep", "_info", "_checked", "_metadata")

    def __init__(self, src: Any, stream: Any, orientation: int, keep: Any):
        self.src = src  # the caller's object (named in error messages)
        self.stream = stream  # nvimgcodec.CodeStream; None for a format Pillow decodes (gpuimg.codec.pillow)
        self.orientation = orientation  # EXIF orientation; 1 when unknown (CodeStream sources)
        self.keep = keep  # the bytes/array the CodeStream reads from; None for CodeStream sources
        self._info: ImageInfo | None = None  # parsed on first use, then kept
        self._checked = False  # the checks of _checked_info passed
        self._metadata: Metadata | None = None  # read on first use (not on the decode path)

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

    @property
    def metadata(self) -> Metadata:
        """The EXIF, XMP and ICC profile of the file (:func:`gpuimg.codec.containers.read_metadata`:
        its structure only, never its pixels; read on first use, then kept). Malformed
        parts are left out and named in ``problems``; a CodeStream source has none.

        Example:
            >>> from pathlib import Path
            >>> import gpuimg
            >>> parse(Path(gpuimg.__file__).parent.parent / "assets" / "rocket.jpg").metadata.empty
            True
        """
        if self._metadata is None:
            self._metadata = containers.read_metadata(self.keep) if self.keep is not None else NO_METADATA
        return self._metadata

    def _checked_info(self, scans: bool = True) -> ImageInfo:
        """:attr:`info`, after the checks of the data against it (done once).

        A JPEG's scans are checked (:func:`~gpuimg.codec.containers.jpeg.scan_problem`: a
        truncated or corrupt scan decodes "successfully" with filled-in pixels), other
        formats' structure against the size nvImageCodec read, on every device.
        ``scans=False`` leaves a JPEG's scan check to the caller (a GPU Decoder checks a
        batch's scans on the device, then calls :meth:`_scans_checked`).
        """
        info = self.info
        if not self._checked:
            if self.keep is None:
                self._checked = True
            elif info.codec == "jpeg":
                if scans:
                    self._scans_checked(jpeg.scan_problem(self.keep))
            else:
                # The header nvImageCodec read must describe the data its decoder will see:
                # lengths inside the file, one value per size tag, the same dimensions.
                problem = containers.structure_problem(self.keep, info.codec, self.stream.width, self.stream.height)
                if problem:
                    raise DecodeError(self.label, problem)
                self._checked = True
        return info

    def _scans_checked(self, problem: str | None) -> None:
        """Record a JPEG scan check's outcome: DecodeError naming the source for a problem."""
        if problem:
            raise DecodeError(self.label, problem)
        self._checked = True

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
            raise ArgumentTypeError(f"an encoded image array must have dtype uint8, got {src.dtype}")
        return np.ascontiguousarray(src).reshape(-1)
    if isinstance(src, _nvimgcodec.load().CodeStream):
        return None
    raise ArgumentTypeError(
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
    # An APNG decodes as its default image (what still-image readers and Pillow show);
    # nvImageCodec would return an animation frame.
    head = bytes(memoryview(data)[:16])
    default = png.default_image(data) if head[:4] == b"\x89PNG" else None
    if default is not None:
        data = default
    # nvImageCodec's header parser is native code too (a JPEG 2000 tile size of 0 made it
    # divide by zero, a WebP chunk size of 3 GB made it allocate that): the structure is
    # checked before it sees the data, the size once it has read it (_checked_info).
    fmt = formats.sniff(head)
    # A true-colour TGA starts with a cursor's magic number: its name or footer decides.
    if (fmt is None or fmt.name == "ico") and _tga_named(src, data):
        fmt = formats.lookup("tga")
    if fmt is not None and fmt.engine == "pillow":
        return _load_pillow(src, data, fmt)
    if fmt is not None and fmt.name != "jpeg":
        problem = containers.structure_problem(data, fmt.name)
        if problem:
            raise DecodeError(_label(src), problem)
    if fmt is not None and fmt.name == "tiff":
        # nvImageCodec's libtiff path returns L*a*b* samples raw as RGB: refused, not wrong.
        lab = tiff.lab_kind(data)
        if lab is not None:
            raise UnsupportedFormatError(f"cannot decode {_label(src)}: a CIE L*a*b* TIFF is not converted to RGB yet (PhotometricInterpretation {lab})")
        # ... and bilevel pixels wrong (neither oriented nor as stored): Pillow decodes them.
        if tiff.bilevel(data):
            return _load_pillow(src, data, fmt)
    try:
        stream = _nvimgcodec.load().CodeStream(data)
    except Exception as exc:  # nvImageCodec raises RuntimeError for unknown/garbled headers
        raise _unreadable(src, data, exc) from None
    return ParsedSource(src, stream, containers.exif_orientation(data), data)


def _tga_named(src: Any, data: Any) -> bool:
    """A TGA has no magic number: a file named ``*.tga``, or data ending in the TGA 2.0 footer."""
    if isinstance(src, str | os.PathLike) and str(src).lower().endswith(".tga"):
        return True
    return tga.has_footer(memoryview(data))


def _load_pillow(src: Any, data: Any, fmt: formats.Format) -> ParsedSource:
    """A source of a format Pillow decodes: its header walked here (gpuimg's own code),
    its pixels decoded later in the isolated child (:mod:`gpuimg.codec.pillow`)."""
    why = pillow.missing(fmt.name)
    if why is not None:
        raise UnsupportedFormatError(f"cannot decode {_label(src)}: {fmt.title} {why}")
    found = containers.pillow_header(data, fmt.name)
    if isinstance(found, str):
        raise DecodeError(_label(src), found)
    orientation = containers.exif_orientation(data)
    loaded = ParsedSource(src, None, orientation, data)
    w, h = (found.height, found.width) if swaps_axes(orientation) else (found.width, found.height)
    loaded._info = ImageInfo(w, h, found.channels, fmt.name, found.dtype, orientation)
    loaded._checked = True  # the walk above is this format's structure check
    return loaded


def parse(src: Any, *, check_scans: bool = True) -> ParsedSource:
    """Read ``src`` and parse its header once, for a later decode that does not redo it.

    ``src``: a path, bytes/bytearray/memoryview, a NumPy uint8 array of the encoded file
    or an ``nvimgcodec.CodeStream`` (a ParsedSource comes back as it is). The result's
    ``info`` holds the header facts; hand the result to :meth:`Decoder.decode`,
    :meth:`Decoder.decode_batch`, :func:`read` or :func:`read_batch`. No pixels are
    decoded and the pixel limit (a Decoder setting) is checked at decode time, but a
    JPEG without its end-of-image marker (or with a corrupt scan) is refused here, as a
    decode would refuse it. ``check_scans=False`` leaves that JPEG scan check to the
    decode, where a GPU Decoder runs it for the whole batch on the device (what a reader
    thread feeding a GPU decode wants: the host pass over every byte is its costliest work).

    Raises FileNotFoundError (or another OSError) for a file that cannot be read,
    TypeError for an object that is not a source, :class:`~gpuimg.UnsupportedFormatError`
    for a known format gpuimg cannot decode, and :class:`~gpuimg.DecodeError` naming the
    source for empty, unreadable or truncated data.

    Example:
        >>> from pathlib import Path
        >>> import gpuimg
        >>> parsed = parse(Path(gpuimg.__file__).parent.parent / "assets" / "coffee.jpg")
        >>> parsed.info.height, parsed.info.width
        (400, 600)
        >>> res = gpuimg.Decoder("cpu").decode_batch([parsed])
        >>> res.sources[0] is parsed
        True
    """
    loaded = _load(src)
    loaded._checked_info(scans=bool(check_scans))
    return loaded


def _unreadable(src: Any, data: Any, exc: Exception) -> GpuImgError:
    """The error for a header nvImageCodec cannot read: a known unsupported format, or junk."""
    head = bytes(memoryview(data)[:16]) if data is not None else b""
    name = formats.unsupported_format_name(head)
    if name is not None:
        return UnsupportedFormatError(f"cannot decode {_label(src)}: {name} is not supported; use {_supported_text()}")
    return DecodeError(_label(src), f"its header is not a readable {_supported_text()} header ({exc})")


def _supported_text() -> str:
    """The formats gpuimg decodes, as messages name them ("JPEG, PNG, ... or PNM")."""
    titles = [fmt.title for fmt in formats.FORMATS]
    return ", ".join(titles[:-1]) + " or " + titles[-1]


@dataclass(frozen=True)
class ImageInfo:
    """What a header says, without decoding pixels.

    ``width``/``height`` are the decoded size with the EXIF ``orientation`` applied (as
    :meth:`Decoder.decode` returns it by default); ``channels`` is what the file stores
    (1 gray, 2 gray+alpha, 3 colour, 4 colour+alpha or CMYK); ``dtype`` is "uint8" or
    "uint16"; ``codec`` is nvImageCodec's name ("jpeg", "png", "tiff", ...);
    ``premultiplied``: the alpha is associated (a TIFF with ExtraSamples = 1), which
    the decoder un-premultiplies, as Pillow does. ``metadata``: the file's EXIF, XMP and
    ICC profile (:class:`~gpuimg.meta.Metadata`) where the caller asked for it
    (:func:`gpuimg.info` does); None otherwise. It takes no part in comparisons.

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
    premultiplied: bool = False
    metadata: Metadata | None = field(default=None, compare=False, repr=False)

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
    premultiplied = False
    if loaded.keep is not None and codec == "bmp" and bmp.needs_own_decoder(loaded.keep):
        # gpuimg decodes these BMPs itself (gpuimg.codec.containers.bmp); nvImageCodec miscounts their channels.
        c = bmp.header(loaded.keep, loaded.label).channels
    elif loaded.keep is not None and codec == "tiff" and c == 4:
        premultiplied = tiff.associated_alpha(loaded.keep)
    if swaps_axes(loaded.orientation):
        w, h = h, w
    return ImageInfo(w, h, c, codec, "uint16" if precision > 8 else "uint8", loaded.orientation, premultiplied)

