"""The pipeline's use of the codecs: its Decoders and Encoders (made, kept from run to
run), the gate that keeps decode and encode calls from overlapping, batch decode and
encode with per-item failures.

Example:
    >>> from gpuimg.pipeline.codecs import CodecPool
    >>> from gpuimg.pipeline.config import PipelineConfig
    >>> pool = CodecPool("cpu", PipelineConfig())
    >>> enc = pool.take("encode"); pool.give_back("encode", enc)
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, NamedTuple

from ..codec import Decoder, Encoder, formats, isolation
from ..codec.encoder import png_compression_level  # one meaning of PNG quality: gpuimg.write's too
from ..codec.backends import uses_hardware_decoder
from ..errors import EncodeError
from .config import PipelineConfig

if TYPE_CHECKING:
    from ..image import ImageBatch
    from .read import Item

__all__ = [
    "CodecPool", "new_decoder", "new_encoder", "size_hint", "decode_items", "encode_images", "free_cached_memory",
    "EncodeSettings", "encode_settings", "png_compression_level",
]

SizeHint = tuple[int, int, int]


def new_decoder(device: str, config: PipelineConfig, hint: SizeHint | None = None) -> Decoder:
    """The pipeline's Decoder (``config.decode_backends``, ``config.isolation``). ``hint`` = (batch size, height,
    width) of the largest batch expected: nvJPEG's hardware decoder, where the backends
    include it, then allocates its buffers for that at once instead of growing them batch after batch through a run of
    new sizes (faster first pass, BENCHMARKS.md).

    Example:
        >>> new_decoder("cpu", PipelineConfig()).device
        'cpu'
    """
    options = ""
    if hint is not None and device == "cuda":
        batch, height, width = hint
        options = " ".join(f"nvjpeg_hw_decoder:{k}={v}" for k, v in (
            ("preallocate_batch_size", batch), ("preallocate_height_hint", height), ("preallocate_width_hint", width)))
    # The decode lane host-waits for each ring slot's release event before decoding into
    # it, so the Decoder's own whole-stream guard would only cost overlap (gpuimg.codec).
    return Decoder(device, guard_reuse=False, backends=config.decode_backends, options=options, isolation=config.isolation,
                   num_threads=config.decoder_threads)


def new_encoder(device: str, config: PipelineConfig) -> Encoder:
    """The pipeline's Encoder: ``config.encoder_threads`` CPU threads (a few encode the
    pipeline's batches faster than one per core), ``config.encoder_cpu_threads`` for
    the formats encoded on the CPU (0: one per core).

    Example:
        >>> new_encoder("cpu", PipelineConfig()).device
        'cpu'
    """
    return Encoder(device, num_threads=config.encoder_threads, cpu_threads=config.encoder_cpu_threads or None)


def size_hint(shapes: list[tuple[int, int, int]], max_bytes: int) -> SizeHint | None:
    """(batch size, height, width) covering every image of ``shapes`` (see
    :func:`new_decoder`), the batch count lowered so the hint asks for at most
    ``max_bytes``; None when ``max_bytes`` is 0 (no preallocation).

    Example:
        >>> size_hint([(10, 20, 3), (30, 5, 3)], 2**30)
        (2, 30, 20)
    """
    if max_bytes <= 0:
        return None
    height, width = max(s[0] for s in shapes), max(s[1] for s in shapes)
    return max(1, min(len(shapes), max_bytes // (3 * height * width))), height, width


class CodecPool:
    """The Decoders and Encoders of one Pipeline, kept from run to run (and shared by its
    tensor iterators), plus the gate that keeps decode and encode calls from overlapping.

    Kept: nvImageCodec's decoder spends a long while on its first batch and grows its
    internal buffers over its first pass through new sizes, so a fresh decoder per run made
    every run pay that again. Each object is used by one thread at a time (they are not
    thread-safe) and goes back here only when its lane finished normally.

    Gate: the nvJPEG hardware decoder and the CUDA JPEG encoder slow each other down when
    they run at the same time, which is worse than taking turns (BENCHMARKS.md).
    ``config.serialize_codecs`` makes them take turns.

    Example:
        >>> pool = CodecPool("cpu", PipelineConfig(serialize_codecs=False))
        >>> with pool.gate:
        ...     pass
    """

    def __init__(self, device: str, config: PipelineConfig):
        self.device, self.config = device, config
        self._free: dict[str, list[Any]] = {"decode": [], "encode": []}
        self._lock = threading.Lock()
        # Only on the GPU: there the hardware JPEG decoder and the CUDA encoder slow each
        # other down; on the CPU device decode runs in the isolated child and encode here.
        turns = config.serialize_codecs and device == "cuda"
        self.gate: Any = threading.Lock() if turns else contextlib.nullcontext()
        self._warming: threading.Thread | None = None

    def prewarm(self, cpu_codec_files: int = 0) -> None:
        """Make a decoder and pay its first decode (:meth:`Decoder.warm_up`: on a GPU about
        a second of nvImageCodec start; on the CPU the start of the child process the
        codecs run in) on a background thread, while the run plans its jobs and reads its
        first files; the first decode lane then takes it. ``cpu_codec_files``: how many of
        the run's files the isolated CPU codecs will decode: for many on the GPU device,
        the whole pool of children starts (in the background, the first one first), else
        at most one. Once
        per pool; not where the backends include the hardware decoder (its buffers are
        sized from the first batch instead, see :func:`new_decoder`)."""
        # The whole pool only where batches are large enough to spread over it (the GPU
        # device's; a CPU-device batch holds config.cpu_batch_size images). Before the
        # return below: the pool is its own start.
        if self.device == "cuda" and cpu_codec_files >= self.config.pool_min_files:
            isolation.prestart(self.config.decoder_threads, self.config.isolation, children=None)
        if self._warming is not None or (self.device == "cuda" and uses_hardware_decoder(self.config.decode_backends)):
            return
        if self.device == "cpu":  # the child starts while this process imports nvImageCodec
            isolation.prestart(self.config.decoder_threads, self.config.isolation)

        def warm() -> None:
            try:
                decoder = new_decoder(self.device, self.config).warm_up()
            except Exception:  # noqa: BLE001 - the lane makes its own and meets the error there
                return
            with self._lock:
                self._free["decode"].append(decoder)

        # Not a daemon: the interpreter's exit waits for it rather than tearing nvImageCodec
        # down under a decode in flight.
        self._warming = threading.Thread(target=warm, name="gpuimg-decoder-warm-up")
        self._warming.start()

    def take(self, kind: str, shapes: list[tuple[int, int, int]] | None = None) -> Any:
        """A kept codec of ``kind`` ("decode"/"encode"), or a new one (a new decoder is
        sized for ``shapes``, the first batch's: see :func:`size_hint`). A decoder being
        warmed up (:meth:`prewarm`) is waited for: a second new one would pay the same start."""
        warming = self._warming
        if kind == "decode" and warming is not None and warming.is_alive():
            warming.join()
        with self._lock:
            if self._free[kind]:
                return self._free[kind].pop()
        if kind == "encode":
            return new_encoder(self.device, self.config)
        hint = size_hint(shapes, self.config.preallocate_max_bytes) if shapes else None
        return new_decoder(self.device, self.config, hint)

    def give_back(self, kind: str, codec: Any) -> None:
        """Keep ``codec`` for the next lane of its ``kind``."""
        with self._lock:
            self._free[kind].append(codec)


def decode_items(decoder: Decoder, items: list[Item], out: ImageBatch | None, stream: Any) -> tuple[ImageBatch, list[int], list[tuple[int, Any]]]:
    """Decode ``items`` to RGB into ``out`` (reused); (batch of the good ones, their
    indices, failures). The items' sources were parsed by the reader threads: their
    headers are not read again.

    Example:
        >>> from gpuimg.pipeline.read import read_item
        >>> from gpuimg.pipeline.files import plan_jobs
        >>> item = read_item(plan_jobs(["assets/coffee.jpg"], None, "")[0])
        >>> batch, good, failed = decode_items(Decoder("cpu"), [item], None, None)
        >>> batch.shapes, good, failed
        ([(400, 600, 3)], [0], [])
    """
    result = decoder.decode_batch([it.source for it in items], out, mode="rgb", stream=stream)
    return result.images, list(result.indices), [(e.index, e.error) for e in result.errors]


class EncodeSettings(NamedTuple):
    """What the encoder is given besides the image: ``quality`` passed (``lossy``), other
    encoder ``options``, and a ``note`` to say once per run (None: nothing to say)."""

    lossy: bool
    options: dict[str, Any]
    note: str | None = None


def encode_settings(fmt: formats.Format, quality: int, device: str) -> EncodeSettings:
    """How ``quality`` applies to ``fmt`` on ``device``:

    * lossy formats (JPEG, WebP; JPEG 2000 on the GPU): the encoder's quality;
    * PNG: the zlib level :func:`png_compression_level`;
    * JPEG 2000 on the CPU: nvImageCodec's CPU encoder (OpenCV's OpenJPEG) fails every
      image given a quality or a PSNR target, so quality 100 writes lossless files and
      any other quality the encoder's default rate (said once, in ``note``);
    * the other lossless formats (TIFF, BMP, PNM) take no quality.

    Example:
        >>> encode_settings(formats.lookup("png"), 90, "cpu")
        EncodeSettings(lossy=False, options={'compression_level': 2}, note=None)
        >>> encode_settings(formats.lookup("jp2"), 100, "cpu").options
        {'lossless': True}
    """
    if fmt.name == "png":
        return EncodeSettings(False, {"compression_level": png_compression_level(quality)})
    if fmt.name == "jpeg2k" and device != "cuda":
        if quality >= 100:
            return EncodeSettings(False, {"lossless": True})
        return EncodeSettings(False, {}, f"JPEG 2000 on the CPU: quality {quality} is not applied (nvImageCodec's CPU "
                                         "encoder takes no quality); files get its default rate (quality 100: lossless)")
    return EncodeSettings(fmt.lossy, {})


def encode_images(
    encoder: Encoder, images: Any, fmt: str, quality: int, settings: EncodeSettings, stream: Any
) -> list[bytes | memoryview | BaseException]:
    """Encoded files of every image of ``images`` (a batch or a list); a per-image error
    where one fails. ``settings`` (:func:`encode_settings`): whether ``quality`` is
    passed, and the format's other encoder options.

    The files are views of the encoder's reused output buffers (copied by the caller,
    outside the codec gate, before the encoder's next call). The Encoder fails a whole
    batch for one bad image; then each image is retried alone so only that image fails
    (rare path; those come as bytes).

    Example:
        >>> import gpuimg
        >>> img = gpuimg.Image.empty(8, 8, device="cpu")
        >>> settings = encode_settings(formats.lookup("png"), 90, "cpu")
        >>> files = encode_images(Encoder("cpu"), [img], "png", 90, settings, None)
        >>> bytes(files[0][:4])
        b'\\x89PNG'
    """
    kwargs = {"quality": quality, **settings.options} if settings.lossy else dict(settings.options)
    try:
        return list(encoder.encode_batch(images, fmt, stream=stream, copy=False, **kwargs))
    except EncodeError:
        pass
    out: list[bytes | BaseException] = []
    for img in images:
        try:
            out.append(encoder.encode(img, fmt, stream=stream, **kwargs))
        except EncodeError as exc:
            out.append(exc)
    return out


def free_cached_memory(device: str) -> None:
    """Give CuPy's cached blocks back before retrying a batch that ran out of memory.

    Example:
        >>> free_cached_memory("cpu")
    """
    if device == "cuda":
        import cupy

        cupy.get_default_memory_pool().free_all_blocks()
