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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..device import device_key, resolve_device
from ..image import Image, ImageBatch
from . import sources
from .decoder import BatchResult, Decoder
from .encoder import Encoder
from .sources import ImageInfo

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

    Example:
        >>> from pathlib import Path
        >>> import gpuimg
        >>> img = read(Path(gpuimg.__file__).parent.parent / "assets" / "coffee.jpg", device="cpu")
        >>> img.shape
        (400, 600, 3)
    """
    device = out.device if out is not None and device is None else device
    return _thread_codec(Decoder, device).decode(src, out, **options)


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
    return _thread_codec(Decoder, device).decode_batch(srcs, out, **options)


def write(img: Image | Any, path: str | os.PathLike, **options: Any) -> Path:
    """Encode ``img`` to ``path`` (codec from the extension) with this thread's Encoder.

    Example:
        >>> import numpy as np, tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = write(np.zeros((8, 8, 3), np.uint8), Path(tmp) / "out.webp", quality=80)
        ...     info(path).codec
        'webp'
    """
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
    """Header facts of ``src`` (width, height, channels, codec, dtype, orientation).

    Example:
        >>> from pathlib import Path
        >>> import gpuimg
        >>> info(Path(gpuimg.__file__).parent.parent / "assets" / "rocket.jpg").codec
        'jpeg'
    """
    return sources._load(src).info
