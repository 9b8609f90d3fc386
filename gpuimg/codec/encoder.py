"""Encode gpuimg Images through reused pinned CodeStreams (nvImageCodec).

Each batch position keeps its own ``nvimgcodec.CodeStream``, and the ``as_image`` wrappers
and encode parameters are cached, so steady-state encoding allocates no output memory.
Which options a codec takes, and whether it takes a quality, come from
:mod:`gpuimg.codec.formats`.

Example:
    >>> import numpy as np
    >>> from gpuimg import Image
    >>> img = Image.from_array(np.zeros((8, 8, 3), np.uint8))
    >>> Encoder("cpu").encode(img, "png")[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..device import device_key, resolve_device, stream_ptr
from ..errors import ArgumentError, ArgumentTypeError, EncodeError, UnsupportedFormatError, check_choice
from ..image import Image, ImageBatch
from ..meta.metadata import Metadata, for_output
from . import _nvimgcodec, containers, formats
from ..device import usable_cores
from ._wrappers import Wrappers

__all__ = ["Encoder"]

# chroma_subsampling= choices -> nvImageCodec's ChromaSubsampling member.
# Formats the GPU encodes (nvJPEG, nvJPEG2000); the others run on nvImageCodec's CPU
# encoders, which encode a batch on one thread: gpuimg splits such batches over threads.
_GPU_ENCODED = frozenset({"jpeg", "jpeg2k"})
# A CPU batch smaller than this encodes in one call: the hand-off to threads would cost
# more than it saves.
_SPLIT_MIN_BYTES = 1 << 20

_CHROMA = {"444": "CSS_444", "422": "CSS_422", "420": "CSS_420", "440": "CSS_440", "411": "CSS_411", "410": "CSS_410", "gray": "CSS_GRAY"}


def _format(codec: Any) -> formats.Format:
    """The format ``codec`` names (a codec name or an extension, any case, dot or not)."""
    try:
        fmt = formats.lookup(codec)
    except (TypeError, UnsupportedFormatError):
        fmt = None
    if fmt is None or not fmt.encodes:  # GIF, ICO, ... are read (with Pillow), never written
        spellings = sorted(a for f in formats.FORMATS if f.encodes for a in f.aliases)
        raise UnsupportedFormatError(
            f"codec={codec!r} cannot be encoded; use one of {formats.encodable_names()} (or an extension: {spellings})"
        ) from None
    return fmt


class Encoder:
    """Encodes gpuimg Images through reused pinned CodeStreams (not thread-safe: one per thread).

    Each batch position keeps its own ``nvimgcodec.CodeStream``; its capacity grows with
    the largest output seen and is never recreated, so steady-state encoding allocates
    no output memory.

    ``num_threads``: nvImageCodec's CPU threads per encoder (0: one per core).
    ``cpu_threads``: the threads a batch of a CPU-encoded format (PNG, WebP, TIFF, BMP,
    PNM; every format on the CPU device) is split over, each with its own nvImageCodec
    encoder, because nvImageCodec's CPU encoders run a batch on one thread (None: the
    cores this process may use; 1: one call; a process sharing the machine with others,
    such as one of several shards, sets its part of the cores).

    Example:
        >>> import numpy as np, tempfile
        >>> from pathlib import Path
        >>> from gpuimg import Image
        >>> img = Image.from_array(np.full((16, 16, 3), 128, np.uint8))
        >>> enc = Encoder("cpu")
        >>> data = enc.encode(img, "jpeg", quality=90)
        >>> data[:2]
        b'\\xff\\xd8'
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     enc.write(img, Path(tmp) / "out.png", compression_level=1).name
        'out.png'
    """

    def __init__(self, device: str | None = None, *, num_threads: int = 0, cpu_threads: int | None = None):
        self.device = resolve_device(device)
        self._nv = _nvimgcodec.load()
        if self.device == "cuda":
            _nvimgcodec.warn_missing_gpu_libraries()
        self._device_key = device_key(self.device)
        if cpu_threads is not None and (not isinstance(cpu_threads, int) or isinstance(cpu_threads, bool) or cpu_threads < 1):
            raise ArgumentError(f"cpu_threads must be None or an int >= 1, got {cpu_threads!r}")
        self.cpu_threads = usable_cores() if cpu_threads is None else cpu_threads
        self._num_threads = int(num_threads)
        self._encoder = self._new_encoder()
        self._helpers: list[Any] = []  # one more encoder per extra thread (nvImageCodec's are not thread-safe)
        self._pool: ThreadPoolExecutor | None = None
        self._code_streams: list[Any] = []
        self._wrappers = Wrappers(self._device_key)
        self._param_cache: dict[tuple, Any] = {}

    def _new_encoder(self) -> Any:
        nv = self._nv
        if self.device == "cpu":
            return nv.Encoder(
                device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY, max_num_cpu_threads=self._num_threads, backends=[nv.Backend(nv.CPU_ONLY)]
            )
        return nv.Encoder(device_id=self._device_key[1], max_num_cpu_threads=self._num_threads)

    def _run(self, name: str, wrapped: list[Any], outs: list[Any], params: Any, ptr: int, nbytes: int) -> list[Any]:
        """nvImageCodec's results for ``wrapped`` into ``outs``: one call, or for a large
        batch of a CPU-encoded format, parts of about equal bytes on several threads."""
        n = min(self.cpu_threads, len(wrapped))
        if n < 2 or nbytes < _SPLIT_MIN_BYTES or (self.device == "cuda" and name in _GPU_ENCODED):
            return list(self._encoder.encode(wrapped, name, code_stream_s=outs, params=params, cuda_stream=ptr))
        while len(self._helpers) < n - 1:
            self._helpers.append(self._new_encoder())
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.cpu_threads - 1, thread_name_prefix="gpuimg-encode")
        parts = [list(range(k, len(wrapped), n)) for k in range(n)]  # interleaved: neighbours are alike in size

        def part(encoder: Any, members: list[int]) -> list[Any]:
            return list(encoder.encode([wrapped[k] for k in members], name, code_stream_s=[outs[k] for k in members],
                                       params=params, cuda_stream=ptr))

        futures = [self._pool.submit(part, enc, members) for enc, members in zip(self._helpers, parts[1:])]
        results: list[Any] = [None] * len(wrapped)
        try:
            first = part(self._encoder, parts[0])
        finally:
            done = [f.result() for f in futures]  # every part finishes before its streams are reused
        for members, got in zip(parts, [first, *done]):
            for k, r in zip(members, got):
                results[k] = r
        return results

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
        metadata: Metadata | None = None,
        keep: str = "all",
        **options: Any,
    ) -> bytes | memoryview:
        """Encode one image; returns the file's bytes.

        ``codec``: "jpeg", "png", "bmp", "tiff", "jpeg2k", "webp", "pnm" (or an
        extension such as "jpg"). ``quality``: 1-100 for JPEG/WebP/JPEG 2000 (default:
        the codec's own); for PNG the zlib effort (:func:`png_compression_level`, as the
        ``gpuimg`` command's ``--quality``). Options: JPEG ``chroma_subsampling`` ("444", "422", "420",
        "gray"), ``progressive``, ``optimized_huffman``; PNG ``compression_level`` 0-9;
        WebP ``lossless``; JPEG 2000 ``lossless``, ``psnr``. ``copy=False`` returns a
        memoryview of the reused CodeStream: valid only until this Encoder's next call
        (an output that carries metadata is always new bytes).

        ``metadata``: the EXIF, XMP and ICC profile to store (default: ``img.metadata``,
        what :func:`gpuimg.read` found in the file); ``keep``: what of it ("all", "icc":
        the profile only, "no-gps", "none"), see :func:`gpuimg.meta.for_output`.
        JPEG, PNG, WebP and TIFF store it; the other formats drop it.

        Example:
            >>> Encoder("cpu").encode(Image.empty(8, 8, device="cpu"), "png")[:4]
            b'\\x89PNG'
        """
        metas = None if metadata is None else [metadata]
        return self.encode_batch([img], codec, quality=quality, stream=stream, copy=copy, metadata=metas, keep=keep, **options)[0]

    def encode_batch(
        self,
        images: ImageBatch | Sequence[Image | Any],
        codec: str = "jpeg",
        *,
        quality: float | None = None,
        stream: Any = None,
        copy: bool = True,
        metadata: Sequence[Metadata | None] | None = None,
        keep: str = "all",
        **options: Any,
    ) -> list[bytes | memoryview]:
        """Encode many images in ONE nvImageCodec call; a list of encoded files, in order.

        ``metadata``: one Metadata (or None) per image (default: each image's own
        ``metadata``); ``keep``: as in :meth:`encode`.

        Raises EncodeError naming the first image that failed (nvImageCodec gives no
        reason; typically a channel count or dtype the codec cannot store).

        Example:
            >>> from gpuimg import ImageBatch
            >>> batch = ImageBatch.empty([(8, 8, 3), (4, 6, 3)], device="cpu")
            >>> files = Encoder("cpu").encode_batch(batch, "jpeg", quality=90)
            >>> len(files), files[1][:2]
            (2, b'\\xff\\xd8')
        """
        fmt = _format(codec)
        name = fmt.name
        params = self._params(fmt, quality, options)
        items = self._items(images)
        if not items:
            return []
        if metadata is not None and len(metadata) != len(items):
            raise ArgumentError(f"metadata= has {len(metadata)} entries for {len(items)} images")
        given = metadata if metadata is not None else [im.metadata for im in items]
        metas = [for_output(m, keep, (im.height, im.width)) for m, im in zip(given, items)]
        ptr = stream_ptr(stream) if self.device == "cuda" else 0
        wrapped = self._wrap(images, items, ptr)
        while len(self._code_streams) < len(items):
            # Pinned host memory needs a CUDA device (without one CodeStream(pin_memory=True) raises
            # "Unable to get device count"); capacity grows on use.
            self._code_streams.append(self._nv.CodeStream(0, pin_memory=self.device == "cuda"))
        outs = self._code_streams[: len(items)]
        try:
            results = self._run(name, wrapped, outs, params, ptr, sum(im.nbytes for im in items))
        except Exception as exc:
            raise EncodeError(f"nvImageCodec refused to encode {len(items)} image(s) as {name}: {exc}") from None
        for k, (img, res) in enumerate(zip(items, results)):
            if res is None:
                raise EncodeError(
                    f"cannot encode image {k} ({img.height}x{img.width}x{img.channels} {img.dtype.name}) as {name}: "
                    "nvImageCodec failed (the codec may not store this channel count or dtype)"
                )
        return [
            containers.embed(memoryview(r), name, m, has_alpha=img.channels in (2, 4)) if not m.empty
            else bytes(memoryview(r)) if copy else memoryview(r)
            for r, m, img in zip(results, metas, items)
        ]

    def write(
        self,
        img: Image | Any,
        path: str | os.PathLike,
        *,
        codec: str | None = None,
        quality: float | None = None,
        stream: Any = None,
        metadata: Metadata | None = None,
        keep: str = "all",
        **options: Any,
    ) -> Path:
        """Encode ``img`` and write it to ``path``; the codec comes from the extension.
        ``metadata`` / ``keep``: as in :meth:`encode` (by default the image's own is kept).

        Example:
            >>> import tempfile
            >>> from pathlib import Path
            >>> img = Image.empty(8, 8, device="cpu")
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     path = Encoder("cpu").write(img, Path(tmp) / "out.jpg", quality=90)
            ...     path.read_bytes()[:2]
            b'\\xff\\xd8'
        """
        path = Path(path)
        if codec is None:
            if not path.suffix:
                raise UnsupportedFormatError(f"path {str(path)!r} has no extension; pass codec= (one of {formats.aliases()})")
            codec = path.suffix
        data = self.encode(img, codec, quality=quality, stream=stream, copy=False, metadata=metadata, keep=keep, **options)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def _items(self, images: Any) -> list[Image]:
        if isinstance(images, ImageBatch):
            items = list(images)
        elif isinstance(images, Image) or not isinstance(images, Sequence):
            raise ArgumentTypeError(f"images must be an ImageBatch or a list of Images, got {type(images).__name__}")
        else:
            items = [im if isinstance(im, Image) else Image.from_array(im) for im in images]
        if self.device == "cpu" and any(im.device == "cuda" for im in items):
            raise ArgumentError("the images are on the GPU but this Encoder runs on the CPU; use Encoder('cuda')")
        return items

    def _wrap(self, images: Any, items: list[Image], ptr: int) -> list[Any]:
        """nvImageCodec wrappers of ``items``: one cached list for a batch of one channel count."""
        if isinstance(images, ImageBatch) and images.uniform_channels is not None:
            fmt = _nvimgcodec.format_of(self._nv, images.uniform_channels)
            return self._wrappers.for_slots(images, list(range(len(items))), ptr, *fmt)
        owners = [images] * len(items) if isinstance(images, ImageBatch) else items
        return [self._wrappers.get(o, im, ptr, *_nvimgcodec.format_of(self._nv, im.channels)) for o, im in zip(owners, items)]

    def _params(self, fmt: formats.Format, quality: float | None, options: dict[str, Any]) -> Any:
        """EncodeParams for these settings, built once per distinct settings (the cache is
        this Encoder's, so per thread and device)."""
        try:
            key = (fmt.name, quality, tuple(sorted(options.items())))
            hash(key)
        except TypeError:  # an unhashable option value: checked (and refused) by _encode_params
            return _encode_params(self._nv, fmt, quality, options)
        params = self._param_cache.get(key)
        if params is None:
            params = self._param_cache[key] = _encode_params(self._nv, fmt, quality, options)
        return params


def png_compression_level(quality: float) -> int:
    """PNG is lossless: ``quality`` sets the zlib effort, lower quality = smaller file
    (as with the lossy formats) and slower: level ``min(9, (100 - quality) // 10 + 1)``,
    so 91..100 -> 1 (fastest, about the encoder's default size), 90 (the default) -> 2,
    ..., 1..20 -> 9. The pixels are the same at every level. What ``quality=`` means for
    PNG in :meth:`Encoder.encode`, :func:`gpuimg.write` and the ``gpuimg`` command alike.

    Example:
        >>> [png_compression_level(q) for q in (100, 90, 50, 10, 1)]
        [1, 2, 6, 9, 9]
    """
    return min(9, (100 - int(quality)) // 10 + 1)


def _encode_params(nv: Any, fmt: formats.Format, quality: float | None, options: dict[str, Any]) -> Any:
    codec, allowed = fmt.name, fmt.encode_options
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ArgumentTypeError(f"{codec} encoding takes no option {unknown}; its options are {list(allowed) or 'none'} and quality")
    if quality is not None and not (isinstance(quality, int | float) and 1 <= quality <= 100):
        raise ArgumentError(f"quality={quality!r} must be a number from 1 to 100")
    kwargs: dict[str, Any] = {}
    if quality is not None and codec == "png":
        if "compression_level" in options:
            raise ArgumentTypeError("png takes quality (mapped to a compression level) or compression_level, not both")
        options = {**options, "compression_level": png_compression_level(quality)}
        quality = None
    if quality is not None:
        if not fmt.lossy:
            lossy = ", ".join(f.name for f in formats.FORMATS if f.lossy)
            raise ArgumentTypeError(f"{codec} is lossless and takes no quality; use one of {lossy} for quality")
        kwargs.update(quality_type=nv.QualityType.QUALITY, quality_value=float(quality))
    if options.get("lossless"):
        kwargs.update(quality_type=nv.QualityType.LOSSLESS, quality_value=0.0)
    if "psnr" in options:
        kwargs.update(quality_type=nv.QualityType.PSNR, quality_value=float(options["psnr"]))
    if "compression_level" in options:
        level = options["compression_level"]
        if level not in range(10):
            raise ArgumentError(f"compression_level={level!r} must be an int from 0 (fastest) to 9 (smallest)")
        kwargs.update(quality_type=nv.QualityType.LOSSLESS, quality_value=float(level))
    if "chroma_subsampling" in options:
        css = str(options["chroma_subsampling"]).lower()
        check_choice(css, "chroma_subsampling", _CHROMA, "a chroma subsampling")
        kwargs["chroma_subsampling"] = getattr(nv.ChromaSubsampling, _CHROMA[css])
    if codec == "jpeg" and ("progressive" in options or "optimized_huffman" in options):
        kwargs["jpeg_encode_params"] = nv.JpegEncodeParams(
            progressive=bool(options.get("progressive", False)),
            optimized_huffman=bool(options.get("optimized_huffman", False)),
        )
    return nv.EncodeParams(**kwargs)
