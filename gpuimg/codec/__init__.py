"""Decode straight into reused Images, encode through reused CodeStreams (nvImageCodec).

The package, one job per module:

- :mod:`~gpuimg.codec.formats`: the one table of formats (names, aliases, suffixes, lossy,
  what each stores, magic numbers, encode options);
- :mod:`~gpuimg.codec.sources`: reading a source (path, bytes-like, uint8 array,
  CodeStream), :func:`parse` / :class:`ParsedSource`, the header -> :class:`ImageInfo`;
- :mod:`~gpuimg.codec.backends`: which nvImageCodec backends a Decoder uses (the names,
  gpuimg's default, :data:`HARDWARE_FIRST_BACKENDS` for trusted data);
- :mod:`~gpuimg.codec.decoder`: :class:`Decoder`, which drives a batch through the
  backends, the isolated child and the checks; its parts: :mod:`~gpuimg.codec.plan`
  (each item's target shape and parameters), :mod:`~gpuimg.codec.targets` (pixels into
  their targets, staged results, compaction) and :mod:`~gpuimg.codec.results`
  (:class:`BatchResult` / :class:`BatchError`);
- :mod:`~gpuimg.codec.encoder`: :class:`Encoder` and its parameters;
- :mod:`~gpuimg.codec.api`: :func:`read`, :func:`read_batch`, :func:`write`, :func:`info`
  with one Decoder/Encoder per thread and device;
- :mod:`~gpuimg.codec.containers`: one module per container format (JPEG, PNG, WebP,
  TIFF, JPEG 2000, BMP, PNM), each with its one walker: the structural check of a file
  against its header before any decoder sees it, the metadata read and embed, the
  EXIF orientation's block (applied by gpuimg itself: one reading for every container),
  an APNG's default image and the BMP variants gpuimg decodes itself;
- :mod:`~gpuimg.codec.pixels`: un-premultiplying associated alpha;
- :mod:`~gpuimg.codec.isolation`: the CPU codecs in supervised child processes (its
  pool, child and canary), so a crash, hang or memory runaway costs one item.

The metadata every Image carries, and the parsers of its bytes (EXIF, ICC, TIFF
directories), are :mod:`gpuimg.meta`, below the codec and the ops.

Speed (bench/codec.py, BENCHMARKS.md): on the GPU a JPEG batch goes to the hybrid CUDA
decoder (the hardware one only when asked: it fills corrupt scans from earlier images),
the target arena and its ``as_image`` wrappers are reused, and per-image host work is small (header, EXIF walk, cached plan);
encode reuses pinned CodeStreams and wrappers.

Decoder and Encoder objects are NOT thread-safe (nor are nvImageCodec's): make one per
thread, or use the module functions, which keep one per thread and device.

Example:
    >>> from pathlib import Path
    >>> import gpuimg
    >>> img = gpuimg.read(Path(gpuimg.__file__).parent.parent / "assets" / "chelsea.png", device="cpu")
    >>> img.shape
    (300, 451, 3)
"""

from __future__ import annotations

from . import formats
from .api import encode, info, read, read_batch, write
from .decoder import DEPTHS, HARDWARE_FIRST_BACKENDS, MAX_PIXELS, MODES, BatchError, BatchResult, Decoder
from .encoder import Encoder
from .sources import ImageInfo, ParsedSource, parse

__all__ = [
    "Decoder",
    "HARDWARE_FIRST_BACKENDS",
    "Encoder",
    "ImageInfo",
    "ParsedSource",
    "BatchResult",
    "BatchError",
    "read",
    "read_batch",
    "write",
    "encode",
    "info",
    "parse",
    "MAX_PIXELS",
    "MODES",
    "DEPTHS",
    "formats",
]
