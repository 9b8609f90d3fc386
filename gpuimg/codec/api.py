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

import os
import threading
from dataclasses import replace
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..device import device_key, resolve_device
from ..errors import GpuImgError
from ..image import Image, ImageBatch
from . import sources
from .cmyk import read_cmyk
from .decoder import BatchResult, Decoder
from .encoder import Encoder
from .metadata import EMPTY as NO_METADATA
from .metadata import Metadata
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


def read(src: Any, out: Image | None = None, *, device: str | None = None, **options: Any) -> Image:
    """Decode one image with this thread's Decoder (options as :meth:`Decoder.decode`).

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
    loaded = sources._load(src)  # read once here, for the decode and for the metadata
    if options.get("mode") == "cmyk":
        extra = sorted(set(options) - {"mode", "apply_exif"})
        if extra:
            raise ValueError(f"mode='cmyk' takes apply_exif only, not {', '.join(extra)}")
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
        return sources._load(src)
    except (GpuImgError, OSError, TypeError):
        return src


def _decoded_metadata(loaded: Any, options: dict[str, Any]) -> Metadata:
    """The source's metadata as the decoded pixels stand: the orientation applied or not."""
    if not isinstance(loaded, ParsedSource):
        return NO_METADATA
    meta = loaded.metadata
    if options.get("apply_exif", True) and meta.orientation != 1:
        meta = replace(meta, orientation_applied=True)
    return meta


def write(img: Image | Any, path: str | os.PathLike, **options: Any) -> Path:
    """Encode ``img`` to ``path`` (codec from the extension) with this thread's Encoder.

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
    """
    if isinstance(img, str | os.PathLike) and not isinstance(path, str | os.PathLike):
        raise TypeError(f"write(img, path) takes the image first (cv2.imwrite's order is the other way round); got the "
                        f"path {os.fspath(img)!r} as img")
    image = img if isinstance(img, Image) else Image.from_array(img)
    return _thread_codec(Encoder, image.device).write(image, path, **options)


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
    loaded = sources._load(src)
    return replace(loaded.info, metadata=loaded.metadata)
