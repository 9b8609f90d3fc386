"""The module functions: :func:`read`, :func:`read_batch`, :func:`write`, :func:`info`.

Decoder and Encoder objects are NOT thread-safe (nor are nvImageCodec's), so these keep
one per thread and per device (the CUDA device current when the call is made).

Example:
    >>> from pathlib import Path
    >>> import gpuimg
    >>> read(Path(gpuimg.__file__).parent.parent / "assets" / "chelsea.png", device="cpu").shape
    (300, 451, 3)
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import replace
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from ..device import device_key, resolve_device
from ..errors import ArgumentError, ArgumentTypeError, DecodeError, EncodeError, GpuImgError, UnsupportedFormatError
from ..image import Image, ImageBatch
from ..meta.metadata import EMPTY as NO_METADATA
from ..meta.metadata import Metadata
from . import formats, sources
from .cmyk import read_cmyk
from .decoder import BatchResult, Decoder
from .encoder import Encoder
from .sources import ImageInfo, ParsedSource

__all__ = ["read", "read_batch", "write", "encode", "info"]

_local = threading.local()


def _thread_codec(kind: type, device: str | None) -> Any:
    """This thread's Decoder/Encoder for ``device`` (nvImageCodec objects are not thread-safe)."""
    dev = resolve_device(device)
    codecs = getattr(_local, "codecs", None)
    if codecs is None:
        codecs = _local.codecs = {}
    key = (kind, device_key(dev))
    codec = codecs.get(key)
    if codec is None:
        codec = codecs[key] = kind(dev)
    return codec


def _is_file_object(obj: Any, method: str) -> bool:
    """Whether ``obj`` is a file object to ``method`` ("read"/"write") rather than a path,
    bytes or an array (which have no such method)."""
    return not isinstance(obj, str | bytes | bytearray | memoryview | os.PathLike) and callable(getattr(obj, method, None))


def _file_label(f: Any) -> str:
    """How messages name a file object: its ``.name`` where it has one."""
    name = getattr(f, "name", None)
    return repr(name) if isinstance(name, str | bytes) and name else f"<{type(f).__name__} object>"


def _text_mode(f: Any) -> bool:
    mode = getattr(f, "mode", None)
    return isinstance(f, io.TextIOBase) or (isinstance(mode, str) and "b" not in mode)


def _file_bytes(src: Any) -> Any:
    """The bytes of a binary file object (anything with ``.read``), read from where it
    stands; any other ``src`` unchanged. DecodeError naming it for a text-mode file."""
    if not _is_file_object(src, "read"):
        return src
    if _text_mode(src):
        raise DecodeError(_file_label(src), "the file object is open in text mode; open it in binary mode ('rb')")
    data = src.read()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(_file_label(src), f"its .read() returned {type(data).__name__}, not bytes (text mode?); "
                          "open it in binary mode ('rb')")
    return data


def read(src: Any, out: Image | None = None, *, device: str | None = None, **options: Any) -> Image:
    """Decode one image with this thread's Decoder (options as :meth:`Decoder.decode`).

    ``src``: a path, the encoded bytes (bytes-like or a uint8 array), or a binary file
    object (anything with ``.read``: ``open(path, "rb")``, ``io.BytesIO``), read from its
    current position to the end.

    ``mode="cmyk"``: a CMYK JPEG's four ink channels, its metadata marked ``cmyk``, for
    :func:`gpuimg.convert_colorspace` (:func:`gpuimg.codec.cmyk.read_cmyk`; with
    ``apply_exif`` as the only other option); DecodeError for any other image.

    Example:
        >>> from pathlib import Path
        >>> import gpuimg
        >>> img = read(Path(gpuimg.__file__).parent.parent / "assets" / "coffee.jpg", device="cpu")
        >>> img.shape
        (400, 600, 3)
    """
    device = out.device if out is not None and device is None else device
    if _is_file_object(src, "read"):
        try:
            return read(_file_bytes(src), out, device=device, **options)
        except DecodeError as exc:  # named as the caller knows it, not as the bytes read
            raise DecodeError(_file_label(src), exc.reason) from None
    loaded = sources._load(src)  # read once here, for the decode and for the metadata
    if options.get("mode") == "cmyk":
        extra = sorted(set(options) - {"mode", "apply_exif"})
        if extra:
            raise ArgumentError(f"mode='cmyk' takes apply_exif only, not {', '.join(extra)}")
        return read_cmyk(loaded, out, device=device, apply_exif=options.get("apply_exif", True))
    img = _thread_codec(Decoder, device).decode(loaded, out, **options)
    img.metadata = _decoded_metadata(loaded, options)
    return img


def read_batch(srcs: Sequence[Any], out: ImageBatch | None = None, *, device: str | None = None, **options: Any) -> BatchResult:
    """Decode many images with this thread's Decoder (see :meth:`Decoder.decode_batch`).

    Example:
        >>> from pathlib import Path
        >>> import gpuimg
        >>> assets = Path(gpuimg.__file__).parent.parent / "assets"
        >>> res = read_batch([assets / "coffee.jpg", assets / "rocket.jpg"], device="cpu")
        >>> res.ok, res.images.shapes
        (True, [(400, 600, 3), (427, 640, 3)])
    """
    device = out.device if out is not None and device is None else device
    decoder = _thread_codec(Decoder, device)
    if isinstance(srcs, str | bytes | os.PathLike) or not isinstance(srcs, Sequence):
        return decoder.decode_batch(srcs, out, **options)  # the decoder's TypeError
    # Each source read and parsed once, here: for the decode and for its metadata. One
    # that cannot be goes to the decoder as it is, which reports it for that item.
    loaded = [_loaded(src) for src in srcs]
    res = decoder.decode_batch(loaded, out, **options)
    for img, k in zip(res.images, res.indices):
        img.metadata = _decoded_metadata(loaded[k], options)
    res.sources = [srcs[k] for k in res.indices]  # the caller's objects, as the Decoder names them
    res.errors = [err._replace(source=srcs[err.index]) for err in res.errors]
    return res


def _loaded(src: Any) -> Any:
    try:
        return sources._load(_file_bytes(src))
    except (GpuImgError, OSError, TypeError):
        return src


def _decoded_metadata(loaded: Any, options: dict[str, Any]) -> Metadata:
    """The source's metadata as the decoded pixels stand: the orientation applied or not."""
    if not isinstance(loaded, ParsedSource):
        return NO_METADATA
    meta = loaded.metadata
    if options.get("apply_exif", True) and loaded.orientation != 1:  # what the decoder turned
        meta = replace(meta, orientation_applied=True)
    return meta


def write(img: Image | Any, path: str | os.PathLike | IO[bytes], *, format: str | None = None,
          **options: Any) -> Path | IO[bytes]:
    """Encode ``img`` to ``path`` (codec from the extension, or ``format``) with this
    thread's Encoder; returns the path (or the file object).

    ``path`` may be a binary file object (anything with ``.write``: ``open(p, "wb")``,
    ``io.BytesIO``); its format is ``format=``, else its ``.name``'s extension.
    UnsupportedFormatError when there is neither, EncodeError for a text-mode file.

    The image's metadata (``img.metadata``: what :func:`read` found) is kept where the
    format stores it; ``metadata=`` gives another, ``keep=`` ("all", "icc", "no-gps",
    "none") chooses what of it (:meth:`Encoder.encode`).

    Example:
        >>> import numpy as np, tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = write(np.zeros((8, 8, 3), np.uint8), Path(tmp) / "out.webp", quality=80)
        ...     info(path).codec
        'webp'
        >>> import io
        >>> buf = write(np.zeros((8, 8, 3), np.uint8), io.BytesIO(), format="png", quality=50)  # PNG: zlib effort
        >>> read(io.BytesIO(buf.getvalue()), device="cpu").shape
        (8, 8, 3)
    """
    if isinstance(img, str | os.PathLike) and not isinstance(path, str | os.PathLike):
        raise ArgumentTypeError(f"write(img, path) takes the image first (cv2.imwrite's order is the other way round); got the "
                        f"path {os.fspath(img)!r} as img")
    image = img if isinstance(img, Image) else Image.from_array(img)
    codec = format if format is not None else options.pop("codec", None)
    if not _is_file_object(path, "write"):
        return _thread_codec(Encoder, image.device).write(image, path, codec=codec, **options)
    if codec is None:
        name = getattr(path, "name", None)
        codec = (os.path.splitext(name)[1] or None) if isinstance(name, str) else None
    if codec is None:
        raise UnsupportedFormatError(f"writing to {_file_label(path)}: give format= (e.g. 'png' or 'jpeg'); a file "
                                     f"object has no extension to take it from ({formats.aliases()})")
    if _text_mode(path):
        raise EncodeError(f"{_file_label(path)} is open in text mode; open it in binary mode ('wb')")
    path.write(_thread_codec(Encoder, image.device).encode(image, codec, **options))
    return path


def encode(img: Image | Any, codec: str = "jpeg", **options: Any) -> bytes:
    """The file bytes of ``img`` (an Image or an (H, W[, C]) array) in ``codec``, encoded
    by this thread's Encoder on the image's device (see :meth:`Encoder.encode`).

    Example:
        >>> import numpy as np
        >>> encode(np.zeros((8, 8, 3), np.uint8), "png")[:4]
        b'\\x89PNG'
    """
    image = img if isinstance(img, Image) else Image.from_array(img)
    return bytes(_thread_codec(Encoder, image.device).encode(image, codec, **options))


def info(src: Any) -> ImageInfo:
    """Header facts of ``src`` (width, height, channels, codec, dtype, orientation) and
    its ``metadata`` (EXIF tags, XMP, ICC profile; read from the file's structure only).

    Example:
        >>> from pathlib import Path
        >>> import gpuimg
        >>> info(Path(gpuimg.__file__).parent.parent / "assets" / "rocket.jpg").codec
        'jpeg'
    """
    loaded = sources._load(_file_bytes(src))
    return replace(loaded.info, metadata=loaded.metadata)
