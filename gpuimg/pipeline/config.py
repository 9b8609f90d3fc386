"""PipelineConfig: the tuning of a Pipeline (lanes, ring, codecs, worker processes).

Example:
    >>> from gpuimg.pipeline import PipelineConfig
    >>> PipelineConfig().decode_lanes, PipelineConfig(decode_lanes=2).decode_lanes
    (1, 2)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError, check_int
from ..codec.isolation import Isolation
from ..device import usable_cores

__all__ = ["PipelineConfig", "DECODE_BACKENDS", "WORKER_ROLES", "worker_switch"]

WORKER_ROLES = ("encode", "decode")

# The Decoder's own choice, spelled out: the hybrid JPEG decoder (the hardware one fills
# corrupt scans from earlier images, see gpuimg.codec.decoder._default_backends), "gpu"
# and "cpu" for the other formats. For trusted data, gpuimg.codec.HARDWARE_FIRST_BACKENDS
# decodes small JPEGs faster with less CPU (BENCHMARKS.md). FIXED load hints; on the CPU
# device the Decoder ignores backends.
DECODE_BACKENDS: tuple[Any, ...] = ("hybrid", "gpu", "cpu")


def worker_switch(role: str) -> bool:
    """Whether the environment lets pipelines use a ``role`` worker process
    (``GPUIMG_ENCODE_WORKER=0`` / ``GPUIMG_DECODE_WORKER=0`` turn them off).

    Example:
        >>> worker_switch("encode") in (True, False)
        True
    """
    value = os.environ.get(f"GPUIMG_{role.upper()}_WORKER", "1")
    return value.strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class PipelineConfig:
    """How a :class:`~gpuimg.pipeline.Pipeline` runs; the defaults are the measured best
    (bench/pipeline.py ``--sweep``, figures in BENCHMARKS.md).

    ``decode_lanes`` / ``encode_lanes``: decode and (in-process) encode threads, each with
    its own codec object and CUDA stream. One of each: the host (GIL, cores shared with
    nvImageCodec's own threads), not the GPU, limits the pipeline, so more only contend.
    ``decode_ring``: decoded batches per decode lane (one being decoded, one processed).
    ``serialize_codecs`` (GPU): in-process decode and encode calls take turns (the hardware
    JPEG decoder and the CUDA encoder slow each other down when they overlap).
    ``encode_in_worker`` / ``decode_in_worker`` (GPU): encode and write in a worker process,
    and decode part of the batches in another with the hybrid decoder, so the codecs
    overlap; their defaults come from the environment when the config is made
    (``GPUIMG_ENCODE_WORKER=0`` / ``GPUIMG_DECODE_WORKER=0`` turn them off).
    Whether a run uses them (``workers=None``, the default) comes from its data: only
    when its inputs average at least ``worker_min_file_bytes`` (0: measured to help or
    tie on every dataset class, BENCHMARKS.md), and then a run whose inputs total at
    least ``worker_min_run_bytes`` starts them and goes on without them until they are
    ready (about 2 s), when they join it (a run shorter than their start would pay for
    them and not use them); a shorter run uses them only if they are ready and, with
    ``prestart_workers`` (the default), starts them in the background for the next run
    of this process (the ``gpuimg`` command runs once and turns that off; workers still
    starting when the process exits are killed).
    ``worker_read_threads``: the decode worker's file readers. ``worker_start_timeout_s``:
    how long a worker may take to start (spawn, import CuPy and nvImageCodec, a CUDA
    context). ``encoder_threads``: CPU threads of the JPEG encoder (a few beat one per
    core). ``decode_backends``: both decoders' backends (None: the Decoder's default;
    see :data:`DECODE_BACKENDS`). ``preallocate_max_bytes``: the most a
    decoder's first-batch size hint may ask nvJPEG's hardware decoder to preallocate (0:
    no hint; the decoder then grows its buffers batch by batch). ``isolation``: how the
    CPU codecs are contained (:class:`gpuimg.codec.isolation.Isolation`: time and memory
    limits of the child process; ``Isolation(enabled=False)`` runs them in this process).
    ``cpu_batch_size``: the most images a batch holds on the CPU device, whatever a run's
    ``batch_size`` says: the CPU ops run image by image, so a batch buys nothing there, and
    batches of two keep decode, process and encode overlapped and the progress moving per
    image (BENCHMARKS.md, "CPU path"). ``cpu_job_max_bytes``: a job whose input files
    total at most this many bytes that the ``gpuimg`` command runs without ``--device`` goes to the CPU,
    where it ends before the GPU would have started (CUDA context and nvImageCodec's
    first GPU decode: about 2 s; see :meth:`job_device`). 0: always the GPU.
    ``decoder_threads``: the CPU threads of the decoder (0: nvImageCodec's default, one
    per core; a shard gets its share of the cores). ``max_shards``, ``gpu_max_shards``, ``shard_cores``,
    ``shard_min_files``, ``cpu_shard_min_files``, ``shard_min_bytes``: how many processes share a run
    (:meth:`shard_count`; a run's ``shards`` option overrides it).
    ``encoder_cpu_threads``: threads a batch of a CPU-encoded format (PNG, WebP, TIFF,
    ...) is split over (0: one per core). ``pool_min_files``: a run with at least this
    many files for the isolated CPU codecs starts their whole pool of children
    (``isolation.children``) as it warms up; a shorter one starts at most one.

    Raises:
        ArgumentError: a count or size field is not an int (a bool is not one) or is
            below its least value (lanes, rings, threads and shard sizes >= 1 or >= 0, as
            the message says), or ``worker_start_timeout_s`` is not positive. A
            ``ValueError``.

    Example:
        >>> cfg = PipelineConfig(encode_in_worker=False)
        >>> cfg.encode_in_worker, cfg.decode_ring
        (False, 2)
    """

    decode_lanes: int = 1
    encode_lanes: int = 1
    decode_ring: int = 2
    serialize_codecs: bool = True
    encode_in_worker: bool = field(default_factory=lambda: worker_switch("encode"))
    decode_in_worker: bool = field(default_factory=lambda: worker_switch("decode"))
    worker_min_run_bytes: int = 128 << 20
    worker_min_file_bytes: int = 0
    prestart_workers: bool = True
    cpu_batch_size: int = 2
    cpu_job_max_bytes: int = 8 << 20
    worker_read_threads: int = 4
    worker_start_timeout_s: float = 120.0
    encoder_threads: int = 4
    decode_backends: tuple[Any, ...] | None = DECODE_BACKENDS
    preallocate_max_bytes: int = 2**30
    isolation: Isolation = field(default_factory=Isolation)
    decoder_threads: int = 0
    max_shards: int = 8
    gpu_max_shards: int = 4
    shard_cores: int = 2
    shard_min_files: int = 192
    shard_min_bytes: int = 48 << 20
    cpu_shard_min_files: int = 32
    encoder_cpu_threads: int = 0
    pool_min_files: int = 16

    def __post_init__(self) -> None:
        for name, low in (("decode_lanes", 1), ("encode_lanes", 1), ("decode_ring", 1), ("worker_min_run_bytes", 0),
                          ("worker_min_file_bytes", 0), ("cpu_batch_size", 1), ("cpu_job_max_bytes", 0),
                          ("worker_read_threads", 1), ("encoder_threads", 0), ("preallocate_max_bytes", 0),
                          ("decoder_threads", 0), ("max_shards", 1), ("gpu_max_shards", 1), ("shard_cores", 1), ("shard_min_files", 1),
                          ("shard_min_bytes", 0), ("cpu_shard_min_files", 1),
                          ("encoder_cpu_threads", 0), ("pool_min_files", 1)):
            check_int(getattr(self, name), name, low=low)
        if not self.worker_start_timeout_s > 0:
            raise ArgumentError(f"worker_start_timeout_s must be positive, got {self.worker_start_timeout_s!r}")
        if self.decode_backends is not None:
            object.__setattr__(self, "decode_backends", tuple(self.decode_backends))

    def worker_plan(self, count: int, mean_file_bytes: float, workers: bool | None) -> str:
        """How a run of ``count`` inputs averaging ``mean_file_bytes`` uses the worker
        processes: "join" (start them; they join the run once ready), "wait" (start them
        and wait), "ready" (use them only if started), or "off"; ``workers`` is the run's
        argument (True: wait, False: off, None: from the data).

        Example:
            >>> cfg = PipelineConfig(worker_min_run_bytes=10**6, worker_min_file_bytes=1000)
            >>> cfg.worker_plan(500, 5000, None), cfg.worker_plan(50, 5000, None), cfg.worker_plan(500, 10, None)
            ('join', 'ready', 'off')
            >>> cfg.worker_plan(50, 5000, True)
            'wait'
        """
        if workers is not None:
            return "wait" if workers else "off"
        if mean_file_bytes < self.worker_min_file_bytes:
            return "off"
        return "join" if count * mean_file_bytes >= self.worker_min_run_bytes else "ready"

    def shard_count(self, count: int, input_bytes: int, cores: int | None = None, device: str = "cuda") -> int:
        """How many processes share a run of ``count`` inputs totalling ``input_bytes``
        on ``device`` on a machine with ``cores`` usable CPU cores (None: this process's):
        one (the run stays in this process) for a job too small to gain from more, else
        one shard per ``shard_cores`` cores (a shard keeps about two busy: its own
        interpreter, and the CPU Huffman decoding or the isolated CPU codecs beside it), at
        most ``max_shards`` (``gpu_max_shards`` on the GPU, whose CUDA contexts take turns
        on the device), and no more than the job fills (``shard_min_files`` inputs,
        ``cpu_shard_min_files`` on the CPU device, where each file is more work, or
        ``shard_min_bytes`` of input per shard).

        Each shard is a whole pipeline in its own process (its own interpreter, CUDA
        context and codecs, sharing the GPU), so the host work of a run (parsing, Python
        per batch, CPU Huffman decoding, the CPU codecs) uses the machine's cores instead
        of one interpreter's. A shard's start (interpreter, imports, CUDA context, the
        decoder's first decode) is paid by all of them at once, in parallel with the
        others, in place of this process's own start.

        Example:
            >>> cfg = PipelineConfig()
            >>> cfg.shard_count(50, 10 << 20, cores=16), cfg.shard_count(3000, 300 << 20, cores=16)
            (1, 4)
            >>> cfg.shard_count(3000, 300 << 20, cores=2), cfg.shard_count(400, 40 << 20, cores=16)
            (1, 2)
            >>> cfg.shard_count(200, 8 << 20, cores=2, device="cpu"), cfg.shard_count(200, 8 << 20, cores=8, device="cpu")
            (1, 4)
        """
        cores = usable_cores() if cores is None else cores
        min_files = self.shard_min_files if device == "cuda" else self.cpu_shard_min_files
        most = min(self.max_shards, self.gpu_max_shards) if device == "cuda" else self.max_shards
        by_cores = min(most, max(1, cores // self.shard_cores))
        by_bytes = input_bytes // self.shard_min_bytes if self.shard_min_bytes else 0
        return int(max(1, min(by_cores, max(count // min_files, by_bytes))))

    def job_device(self, input_bytes: int) -> str | None:
        """The device for a one-off job whose input files total ``input_bytes`` when the
        user named none: "cpu" for a job the CPU finishes before the GPU would have
        started (``cpu_job_max_bytes``: about a dozen 1080p JPEGs; file sizes, not
        headers, so that choosing costs no codec import), else None (the default device).

        Example:
            >>> PipelineConfig().job_device(400_000), PipelineConfig().job_device(10**9)
            ('cpu', None)
        """
        return "cpu" if input_bytes <= self.cpu_job_max_bytes else None

    def worker_roles(self, device: str) -> list[str]:
        """The worker roles a pipeline on ``device`` uses (only on the GPU).

        Example:
            >>> PipelineConfig().worker_roles("cpu")
            []
        """
        if device != "cuda":
            return []
        wanted = {"encode": self.encode_in_worker, "decode": self.decode_in_worker}
        return [role for role in WORKER_ROLES if wanted[role]]
