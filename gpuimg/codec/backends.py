"""Which nvImageCodec backends a :class:`~gpuimg.codec.Decoder` decodes with.

The names a caller may give (:data:`BACKEND_NAMES`), gpuimg's choice when none are
given (:func:`default_backends`: the hybrid JPEG decoder, never the hardware one
unasked), :data:`HARDWARE_FIRST_BACKENDS` for trusted data, and :func:`resolve`, which
turns a configuration's list into the ``nvimgcodec.Backend`` objects a GPU decoder is
made with. :func:`uses_hardware_decoder` tells whether a list may reach nvJPEG's
hardware decoder (which preallocates its buffers and must not share the GPU with
the CUDA JPEG encoder).

Example:
    >>> uses_hardware_decoder(HARDWARE_FIRST_BACKENDS), uses_hardware_decoder(["hybrid", "cpu"])
    (True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import check_choice

__all__ = ["BACKEND_NAMES", "HARDWARE_FIRST_BACKENDS", "default_backends", "backend", "resolve", "cpu_only",
           "uses_hardware_decoder"]  # fmt: skip

# A backend's name -> the nvimgcodec backend kind it stands for.
BACKEND_NAMES = {"hw": "HW_GPU_ONLY", "hybrid": "HYBRID_CPU_GPU", "gpu": "GPU_ONLY", "cpu": "CPU_ONLY"}

# The nvJPEG hardware decoder first, the hybrid one for what it cannot take (progressive
# JPEGs, for instance), then the other formats' decoders. For data you trust only: see
# default_backends.
HARDWARE_FIRST_BACKENDS: tuple[Any, ...] = (("hw", 1.0), ("hybrid", 1.0), "gpu", "cpu")


def default_backends(nv: Any) -> list[Any]:
    """The GPU decoder's backends: the hybrid CUDA JPEG decoder (CPU or GPU Huffman
    decoding, CUDA IDCT), nvJPEG2000 (GPU_ONLY) and the CPU codecs.

    The nvJPEG hardware decoder is left out. On a JPEG whose scan data is corrupt but
    still parses (bytes lost or changed inside the scan), it reports success and fills the
    part it could not decode from its own buffers, which hold earlier images: the same
    file gives different pixels from call to call and depends on what was decoded before
    it, up to half of a 4K image (bench/jpeg_determinism.py, BENCHMARKS.md). Nothing in
    the result tells such a decode apart, so a success would not mean decoded pixels. The
    hybrid decoder's result depends on the file alone. It is slower on small images
    (its Huffman decoding runs on the CPU there); pass ``backends=HARDWARE_FIRST_BACKENDS``
    for data you trust.
    """
    return [nv.Backend(nv.HYBRID_CPU_GPU), nv.Backend(nv.GPU_ONLY), nv.Backend(nv.CPU_ONLY)]


def backend(nv: Any, spec: Any) -> Any:
    """An nvimgcodec.Backend from itself, a name in :data:`BACKEND_NAMES`, or (name, load_hint).

    Example:
        >>> from gpuimg.codec import _nvimgcodec
        >>> backend(_nvimgcodec.load(), "quantum")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        gpuimg.errors.ArgumentError: backend must be one of ...
    """
    if isinstance(spec, nv.Backend):
        return spec
    name, hint = (spec, 1.0) if isinstance(spec, str) else tuple(spec)
    check_choice(name, "backend", BACKEND_NAMES, "a backend name (or pass an nvimgcodec.Backend)")
    kind = getattr(nv, BACKEND_NAMES[name])
    return nv.Backend(kind, load_hint=float(hint), load_hint_policy=nv.LoadHintPolicy.FIXED)


def resolve(nv: Any, backends: Sequence[Any] | None, *, isolated: bool) -> list[Any]:
    """The ``nvimgcodec.Backend`` objects of a GPU decoder asked for ``backends`` (None:
    :func:`default_backends`). ``isolated``: the CPU codecs run in the isolated child,
    so the CPU backend is left out here (unless it is all there is).
    """
    chosen = default_backends(nv) if backends is None else [backend(nv, b) for b in backends]
    if isolated:
        chosen = [b for b in chosen if b.backend_kind != nv.CPU_ONLY] or chosen
    return chosen


def cpu_only(nv: Any, threads: int) -> Any:
    """An nvImageCodec decoder of the CPU backends alone, on ``threads`` threads (0: one
    per core). Without a GPU the default arguments fail ("CUDA Runtime failure:
    '#35'"), so the CPU backends are asked for by name."""
    return nv.Decoder(device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY, max_num_cpu_threads=threads, backends=[nv.Backend(nv.CPU_ONLY)])


def uses_hardware_decoder(backends: Sequence[Any] | None) -> bool:
    """Whether ``backends`` (a Decoder's or a pipeline's ``decode_backends``) may include
    nvJPEG's hardware decoder; an ``nvimgcodec.Backend`` object is taken to, whatever
    its kind. None (gpuimg's choice) does not.

    Example:
        >>> uses_hardware_decoder([("hw", 0.5), "hybrid"]), uses_hardware_decoder(None)
        (True, False)
    """
    names = [b[0] if isinstance(b, tuple) else b for b in (backends or ())]
    return any(not isinstance(n, str) or n == "hw" for n in names)
