"""Decode straight into reused Images and ImageBatches (nvImageCodec).

:class:`Decoder` reads each header first (``nvimgcodec.CodeStream``: no pixels), checks
the pixel limit, gives the target :class:`~gpuimg.Image` or :class:`~gpuimg.ImageBatch`
the decoded shape (growing its buffer only when it is too small) and lets nvImageCodec
decode INTO that memory, a whole batch in one call.

Formats (nvImageCodec 0.9, :mod:`gpuimg.codec.formats`): on the GPU, JPEG (nvJPEG's
hybrid decoder; the hardware one on request) runs on the device; PNG, WebP, BMP, PNM,
TIFF and JPEG 2000 run on the CPU (in the isolated child, which contains their crashes
and hangs) and land in device memory. Without a
GPU every codec runs on nvImageCodec's CPU backends. GIF, ICO/CUR, TGA and PSD, which
nvImageCodec lacks, decode with Pillow in the isolated child (:mod:`gpuimg.codec.pillow`;
an animation gives its first frame; ``pip install "gpuimg[formats]"``) and land in device
memory likewise. HEIC/HEIF, AVIF, JPEG XL and anything else raise
:class:`~gpuimg.UnsupportedFormatError`.

Modes: ``"rgb"``, ``"bgr"``, ``"gray"`` (ITU-R 601 luma, as Pillow's "L") and
``"rgba"`` come straight from nvImageCodec, except ``"rgba"`` from a source without alpha:
nvImageCodec refuses it, so such items decode as RGB into a staging buffer and get an
opaque alpha channel on the device (one copy). ``"unchanged"`` keeps gray as 1 channel,
alpha as 4 channels and everything else as RGB.

Hostile files: before any decoder sees a file, :mod:`~gpuimg.codec.containers` compares its
structure with its header (chunk and box lengths inside the file, one value per size
tag, the same dimensions); the CPU codecs run in a supervised child process
(:mod:`~gpuimg.codec.isolation`), where a crash, a hang or an allocation beyond
4 x the decoded size + 200 MB fails that item only; and a CPU decode that leaves part
of its target unwritten is an error, not an image. The orientation is read and applied
by gpuimg for every container, from EXIF, XMP and ImageMagick's raw profiles, with
Pillow's precedence (:func:`gpuimg.meta.exif.decide_orientation`).

Errors: nothing comes back silently as None. A bad item raises (or, in a batch, is
listed as) :class:`~gpuimg.DecodeError` naming the source and the reason; a truncated JPEG
is an error on every device (nvJPEG on the GPU would return it with a grey remainder).
nvImageCodec's own log is quiet unless ``PYNVIMGCODEC_VERBOSITY`` is set before import.

Example:
    >>> from pathlib import Path
    >>> import gpuimg
    >>> assets = Path(gpuimg.__file__).parent.parent / "assets"
    >>> Decoder("cpu").decode(assets / "chelsea.png").shape
    (300, 451, 3)
"""

from __future__ import annotations

import base64
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..device import device_key, get_stream, resolve_device, stream_ptr, use_stream
from ..errors import ArgumentError, ArgumentTypeError, DecodeError, GpuImgError, check_choice
from ..image import Image, ImageBatch
from . import _nvimgcodec, formats, isolation, sources
from . import backends as _backends
from ._wrappers import Wrappers
from .backends import HARDWARE_FIRST_BACKENDS
from .pixels import unpremultiply
from .plan import DEPTHS, MAX_PIXELS, MODES, Plan, check_region, decode_params, make_plan, stored_hw, unchanged_layout
from .results import BatchError, BatchResult, item_error
from .sources import ImageInfo, ParsedSource
from .targets import by_pillow, compact, decode_bmp, decode_pillow, finish, own_bmp, put

__all__ = ["Decoder", "BatchResult", "BatchError", "MAX_PIXELS", "MODES", "DEPTHS", "HARDWARE_FIRST_BACKENDS", "unchanged_layout"]

class Decoder:
    """Decodes into gpuimg Images/ImageBatches on one device (not thread-safe: one per thread).

    ``max_pixels``: headers claiming more pixels raise ImageTooLargeError before any
    allocation (default: Pillow's limit, about 89 megapixels). ``num_threads``: CPU
    threads nvImageCodec may use (0: one per core). ``guard_reuse``: on the GPU, wait
    (host side) for the work already queued on the stream before decoding into a buffer,
    because the nvJPEG hardware decoder on H100 has been seen writing its output before
    earlier kernels on the same stream finished (torchvision issue 9606, torchcodec PR 1634); the wait costs the overlap
    of the header/Huffman work with those kernels only. Turn it off when nothing earlier
    on the stream reads the target (e.g. double-buffered batches on their own stream).
    ``backends``: None for gpuimg's choice on the GPU (the hybrid JPEG decoder, whose
    pixels depend on the file alone, see :func:`gpuimg.codec.backends.default_backends`), or a list of "hw",
    "hybrid", "gpu", "cpu", ``(name, load_hint)`` pairs or ``nvimgcodec.Backend`` objects
    (:data:`HARDWARE_FIRST_BACKENDS`: faster on small JPEGs, for trusted data only); ignored
    on the CPU; with isolation on, the CPU backend is left out of the in-process decoder
    and what the GPU decoders cannot do goes to the child. ``options``: nvImageCodec's
    decoder option string, passed through. ``isolation``: an
    :class:`~gpuimg.codec.isolation.Isolation` (or False for none): the CPU codecs (every
    codec on the CPU device; PNG, WebP, BMP, PNM and GPU fallbacks on a GPU) run in a
    supervised child process, so a crash, hang or memory runaway on one file fails that
    item only. ``check_written``: on the GPU, prove that each decode wrote its whole
    target (:mod:`~gpuimg.codec.isolation.canary`: two batched kernels and one small copy per
    call); a decode that did not is a DecodeError instead of an image holding what the
    buffer held before. The CPU codecs are always checked (in the child).

    Raises:
        ArgumentError / ArgumentTypeError: a bad argument when made (``max_pixels``,
            ``backends``, ``isolation``) or when called (``mode``, ``depth``, ``region``,
            an ``out`` of another device or type), naming the argument and the allowed values.
        DeviceUnavailableError: ``device="cuda"`` where no GPU can be used (the reason said).
        DecodeError: from :meth:`decode`, a file that cannot be decoded (truncated, corrupt,
            a structure that does not match its header, a decode that left pixels unwritten,
            a crash, hang or memory runaway of a CPU codec in its child), naming the file;
            :meth:`decode_batch` lists these per item instead and keeps every good one.
        UnsupportedFormatError: a format gpuimg does not read, naming it (and the extra to
            install where one would read it).
        ImageTooLargeError: a header claiming more than ``max_pixels``, before any allocation.
        OutOfMemoryError: a target buffer that cannot be allocated (how many bytes, where).

    Example:
        >>> from pathlib import Path
        >>> import gpuimg
        >>> assets = Path(gpuimg.__file__).parent.parent / "assets"
        >>> dec = Decoder("cpu")
        >>> img = dec.decode(assets / "coffee.jpg")
        >>> img = dec.decode(assets / "chelsea.jpg", out=img)  # reuses img's buffer
        >>> img.shape
        (300, 451, 3)
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
        isolation: isolation.Isolation | bool = True,
        check_written: bool = True,
    ):
        self.device = resolve_device(device)
        if not isinstance(max_pixels, int | np.integer) or max_pixels < 1:
            raise ArgumentError(f"max_pixels must be a positive int, got {max_pixels!r}")
        self.max_pixels = int(max_pixels)
        self.guard_reuse = bool(guard_reuse)
        self._nv = _nvimgcodec.load()
        if self.device == "cuda":
            _nvimgcodec.warn_missing_gpu_libraries()
        self._device_key = device_key(self.device)
        self.isolation = _isolation_of(isolation)
        self._num_threads = int(num_threads)
        self._local_cpu = True  # the in-process decoder has CPU codecs (set by _make)
        self._cpu_decoder: Any = None  # CPU codecs in this process where the child cannot serve (see _decode_here)
        self.check_written = bool(check_written)
        self._canary: Any = None
        self._scans: Any = None  # the batched JPEG scan check on the device (decode_batch on a GPU)
        if self.device == "cuda" and self.check_written:
            from .isolation.canary import Canary

            self._canary = Canary(self.device)  # its buffers are made once, with the Decoder
        self._decoder = self._make(num_threads, backends, options)
        self._wrappers = Wrappers(self._device_key)
        self._staging: ImageBatch | None = None  # per-Decoder (so per-thread) staging arena
        self._plans: dict[tuple, Plan] = {}
        self._event: Any = None

    def _make(self, num_threads: int, backends: Sequence[Any] | None, options: str) -> Any:
        nv = self._nv
        if self.device == "cpu":
            return _backends.cpu_only(nv, num_threads)
        chosen = _backends.resolve(nv, backends, isolated=self.isolation.active)  # the child has the CPU codecs
        self._local_cpu = any(b.backend_kind == nv.CPU_ONLY for b in chosen)
        device_id = self._device_key[1]
        return nv.Decoder(device_id=device_id, max_num_cpu_threads=num_threads, backends=chosen, options=options)

    def warm_up(self) -> Decoder:
        """Pay nvImageCodec's one-time start now: its first GPU decode (about a second on
        a GPU, once per process, less again per Decoder: BENCHMARKS.md) on a tiny built-in
        JPEG, so that the first real batch does not wait for it. Returns the Decoder.
        Run it on a thread that has nothing better to do (nvImageCodec releases the
        interpreter while it decodes); on the CPU it costs a millisecond.

        Example:
            >>> Decoder("cpu").warm_up().device
            'cpu'
        """
        result = self.decode_batch([_WARM_UP_JPEG])
        if result.errors:  # a Decoder that cannot decode a baseline JPEG is broken: say so now
            raise result.errors[0].error
        if self.device == "cuda":
            import cupy

            cupy.cuda.get_current_stream().synchronize()
        return self

    # ------------------------------------------------------------------ public API
    def info(self, src: Any) -> ImageInfo:
        """Header facts of ``src`` without decoding pixels (see :class:`ImageInfo`).

        Example:
            >>> from pathlib import Path
            >>> import gpuimg
            >>> assets = Path(gpuimg.__file__).parent.parent / "assets"
            >>> Decoder("cpu").info(assets / "chelsea.jpg").width
            451
        """
        return sources._load(src).info

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
            >>> from pathlib import Path
            >>> import gpuimg
            >>> assets = Path(gpuimg.__file__).parent.parent / "assets"
            >>> img = Decoder("cpu").decode(assets / "camera_gray.png", mode="gray")
            >>> img.shape
            (512, 512, 1)
        """
        mode, depth, region = self._check_call(out, Image, mode, depth, region)
        loaded = sources._load(src)
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
            >>> from pathlib import Path
            >>> import gpuimg
            >>> dec = Decoder("cpu")
            >>> assets = Path(gpuimg.__file__).parent.parent / "assets"
            >>> res = dec.decode_batch([assets / "coffee.jpg", b"junk"])
            >>> len(res.images), [e.index for e in res.errors]
            (1, [1])
        """
        if isinstance(srcs, str | bytes | os.PathLike) or not isinstance(srcs, Sequence):
            raise ArgumentTypeError(f"srcs must be a list of sources, got {type(srcs).__name__}")
        mode, depth, region = self._check_call(out, ImageBatch, mode, depth, region)
        errors: list[BatchError] = []
        good: list[tuple[int, ParsedSource, Plan]] = []
        on_device = self.device == "cuda"  # JPEG scans checked below, on the GPU, for the whole batch
        for index, src in enumerate(srcs):
            try:
                loaded = sources._load(src)
                plan = self._plan_item(loaded, mode, depth, apply_exif, region, scans=not on_device)
                if good and plan.dtype != good[0][2].dtype:
                    raise DecodeError(loaded.label, f"it is {plan.dtype.name} but this batch holds {good[0][2].dtype.name}")
            except (GpuImgError, OSError) as exc:
                errors.append(BatchError(index, src, item_error(src, exc)))
                continue
            good.append((index, loaded, plan))
        if on_device:
            good = self._check_scans(srcs, good, errors, stream)
        batch = self._layout(out, [p for _, _, p in good])
        failed = self._run(
            [s for _, s, _ in good], [p for _, _, p in good], list(batch), [batch] * len(good), mode, depth, region, stream
        )
        if failed:
            bad = {k for k, _ in failed}
            errors += [BatchError(good[k][0], srcs[good[k][0]], err) for k, err in failed]
            errors.sort(key=lambda e: e.index)
            keep = [k for k in range(len(good)) if k not in bad]
            compact(batch, keep, stream)
            good = [good[k] for k in keep]
        return BatchResult(batch, [i for i, _, _ in good], [srcs[i] for i, _, _ in good], errors)

    # ------------------------------------------------------------------ internals
    def _check_call(self, out: Any, kind: type, mode: Any, depth: Any, region: Any) -> tuple[str, str, Any]:
        """The checks both decode methods start with: ``out`` (None or a ``kind`` on this
        Decoder's device), then ``mode``, ``depth`` and ``region``."""
        if out is not None and not isinstance(out, kind):
            raise ArgumentTypeError(f"out must be a gpuimg.{kind.__name__}, got {type(out).__name__}")
        if out is not None and out.device != self.device:
            raise ArgumentError(f"out is on {out.device!r} but this Decoder decodes on {self.device!r}")
        return check_choice(mode, "mode", MODES), check_choice(depth, "depth", DEPTHS), check_region(region)

    def _check_scans(
        self, srcs: Sequence[Any], good: list[tuple[int, ParsedSource, Plan]], errors: list[BatchError], stream: Any
    ) -> list[tuple[int, ParsedSource, Plan]]:
        """The JPEG scan check, on the GPU, of the items of ``good`` not yet checked; those
        that fail move to ``errors`` (kept in input order)."""
        todo = [k for k, (_, s, _) in enumerate(good) if not s._checked]
        if not todo:
            return good
        if self._scans is None:
            from ._scan_gpu import DeviceScanCheck

            self._scans = DeviceScanCheck(self.device)
        problems = self._scans.problems([good[k][1].keep for k in todo], get_stream(stream))
        bad = set()
        for k, problem in zip(todo, problems):
            index, loaded, _ = good[k]
            try:
                loaded._scans_checked(problem)
            except DecodeError as exc:
                errors.append(BatchError(index, srcs[index], exc))
                bad.add(k)
        if not bad:
            return good
        errors.sort(key=lambda e: e.index)
        return [g for k, g in enumerate(good) if k not in bad]

    def _plan_item(self, loaded: ParsedSource, mode: str, depth: str, apply_exif: bool, region: Any, scans: bool = True) -> Plan:
        exif = bool(apply_exif) and loaded.keep is not None  # CodeStream sources: orientation unknown, as stored
        info = loaded._checked_info(scans)  # parsed and checked once per source (parse() may have done it)
        # Photos of a dataset share few header layouts: reuse their plans (planning is per-image host time).
        key = (info, mode, depth, exif, region)
        plan = self._plans.get(key)
        if plan is None:
            plan = make_plan(loaded, info, mode, depth, exif, region, self.max_pixels)
            if len(self._plans) > 4096:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _layout(self, out: ImageBatch | None, plans: list[Plan]) -> ImageBatch:
        shapes = [(p.height, p.width, p.channels) for p in plans]
        dtype = plans[0].dtype if plans else np.dtype(np.uint8)
        if out is None:
            return ImageBatch.empty(shapes, dtype=dtype, device=self.device)
        if out.dtype == dtype and len(out) == len(shapes) and len(shapes):
            if np.array_equal(out.table()[:, [1, 2, 4]], np.array(shapes)):
                return out  # same layout as last time: nothing to redo (the steady state)
        return out.set_shapes(shapes, dtype=dtype)

    def _staging_views(self, plans: list[Plan], full: list[tuple[int, int]]) -> list[Image | None]:
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
        loaded: list[ParsedSource],
        plans: list[Plan],
        targets: list[Image],
        owners: list[Any],
        mode: str,
        depth: str,
        region: Any,
        stream: Any,
    ) -> list[tuple[int, GpuImgError]]:
        """Decode ``loaded`` into ``targets``; returns (position, error) of failed items."""
        if not loaded:
            return []
        ptr = stream_ptr(stream) if self.device == "cuda" else 0
        staging = self._staging_views(plans, [stored_hw(s.info) for s in loaded])
        # One nvImageCodec call per parameter set: a single one unless modes mix in the batch.
        groups: dict[tuple, list[int]] = {}
        for k, p in enumerate(plans):
            groups.setdefault((p.decode_channels, p.staged), []).append(k)
        self._wait_for_stream(stream)
        failed: list[tuple[int, GpuImgError]] = []
        for (channels, staged), members in groups.items():
            params = decode_params(self._nv, mode, channels, depth == "any")
            fmt = _nvimgcodec.format_of(self._nv, channels, mode)
            own = [k for k in members if own_bmp(loaded[k])]
            for k in own:  # no native code: decoded here (gpuimg.codec.bmp)
                error = decode_bmp(loaded[k], staging[k] if staged else targets[k], mode, stream)
                if error is not None:
                    failed.append((k, error))
            # Pillow's formats go to the child; here only where isolation is off.
            pil = [k for k in members if by_pillow(loaded[k]) and not self._isolates(loaded[k])]
            for k in pil:
                error = decode_pillow(loaded[k], staging[k] if staged else targets[k], mode, stream)
                if error is not None:
                    failed.append((k, error))
            own += pil
            # CPU codecs on a GPU that the child cannot take (a CodeStream source has no
            # bytes to hand over; the child may be unavailable) while the in-process GPU
            # decoder has no CPU backend: decoded here, uncontained.
            here = [k for k in members if k not in own and self._cpu_codec_here(loaded[k])]
            rest = [k for k in members if k not in own and k not in here]
            local = [k for k in rest if not self._isolates(loaded[k])]
            away = [k for k in rest if self._isolates(loaded[k])]
            if local:
                status = self._decode_local(local, loaded, staged, staging, targets, owners, ptr, fmt, params, stream)
                if len(local) > 1:  # one bad item can spoil a GPU batch for others: each alone again
                    for k in [k for k in local if status[k] is not None]:
                        status.update(self._decode_local([k], loaded, staged, staging, targets, owners, ptr, fmt, params, stream))
                for k in local:
                    st = status[k]
                    if st is None:
                        continue
                    if isinstance(st, int):
                        img = staging[k] if staged else targets[k]
                        failed.append((k, DecodeError(loaded[k].label, isolation.unwritten_reason(img.width, img.height, st, img.nbytes))))
                    elif self.isolation.active and loaded[k].keep is not None:
                        away.append(k)  # what the GPU decoders cannot do, the CPU codecs try (isolated)
                    elif not self._local_cpu:
                        here.append(k)  # ... or here, where the child cannot take it
                    else:
                        failed.append((k, DecodeError(loaded[k].label, st)))
            if away:
                dest = [staging[k] if staged else targets[k] for k in away]
                failed += self._decode_isolated(away, [loaded[k] for k in away], dest, fmt, depth == "any", stream)
            if here:
                where = [(k, staging[k] if staged else targets[k], loaded[k]) for k in here]
                failed += self._decode_here(where, fmt, depth == "any", stream)
        bad = {k for k, _ in failed}
        finishing = [k for k, p in enumerate(plans) if p.staged and k not in bad]
        if finishing:
            with use_stream(self.device, stream):
                for k in finishing:
                    if plans[k].premultiplied:
                        unpremultiply(staging[k].array, out=staging[k].array)
                    finish(staging[k], targets[k], region, plans[k].orientation, mode)
        return sorted(failed, key=lambda f: f[0])

    def _isolates(self, loaded: ParsedSource) -> bool:
        """True when ``loaded`` decodes in the isolated child (a CPU codec, bytes at hand)."""
        if not self.isolation.active or loaded.keep is None:
            return False
        return self.device == "cpu" or loaded.info.codec not in _GPU_CODECS

    def _decode_local(
        self, members: list[int], loaded: list[ParsedSource], staged: bool, staging: list[Any], targets: list[Image],
        owners: list[Any], ptr: int, fmt: tuple, params: Any, stream: Any,
    ) -> dict[int, Any]:
        """Decode ``members`` with this process's decoder. Per item: None (decoded and, on
        the GPU, proven fully written), an int (bytes left unwritten) or a str (why
        nvImageCodec returned nothing)."""
        wrapped = self._wrap(members, staged, staging, targets, owners, ptr, fmt)
        dest = [staging[k] if staged else targets[k] for k in members]
        canary = self._mark(dest, stream)
        try:
            results = self._decoder.decode([loaded[k].stream for k in members], images=wrapped, params=params, cuda_stream=ptr)
        except Exception as exc:  # an argument error fails the whole call: report it per item
            results = [None] * len(members)
            reason = f"nvImageCodec refused the batch ({exc})"
        else:
            reason = _UNDECODABLE
        missing = canary.unwritten(get_stream(stream)) if canary is not None else [0] * len(members)
        return {k: reason if result is None else (gap or None) for k, result, gap in zip(members, results, missing)}

    def _mark(self, dest: list[Image], stream: Any) -> Any:
        """The canary set on ``dest`` before a GPU decode (None: no check here)."""
        if self._canary is None or not all(img.is_contiguous for img in dest):
            return None
        self._canary.fill([(img.data_ptr, img.nbytes) for img in dest], get_stream(stream))
        return self._canary

    def _cpu_codec_here(self, loaded: ParsedSource) -> bool:
        """True for a CPU codec's item on a GPU that neither the in-process decoder (no CPU
        backend) nor the child (no bytes, or no child) can take."""
        return (
            self.device == "cuda" and not self._local_cpu and loaded.info.codec not in _GPU_CODECS and not self._isolates(loaded)
        )

    def _decode_isolated(
        self, positions: list[int], loaded: list[ParsedSource], dest: list[Image], fmt: tuple, any_depth: bool, stream: Any
    ) -> list[tuple[int, GpuImgError]]:
        """Decode ``loaded`` in the isolated child into ``dest``; (position, error) of failures."""
        failed: list[tuple[int, GpuImgError]] = []
        items, where = [], []
        for k, src, img in zip(positions, loaded, dest):
            h, w, c = img.shape
            codec = src.info.codec if by_pillow(src) else ""
            items.append(isolation.IsolatedItem(src.keep, h, w, c, img.dtype, fmt[0].name, fmt[1].name, any_depth, src.label, codec))
            where.append((k, img, src))
        if not items:
            return failed
        on_gpu = self.device == "cuda"
        sync = (lambda: get_stream(stream).synchronize()) if on_gpu else None
        try:
            reasons = isolation.decode(
                items, lambda j, px: put(where[j][1], px, stream, pinned=on_gpu), self.isolation, self._num_threads,
                for_gpu=on_gpu, delivered=sync,
            )
        except isolation.IsolationUnavailable as exc:
            _warn_once(f"gpuimg: {exc}; CPU codecs run in this process (no crash containment)")
            self.isolation = isolation.Isolation(enabled=False)
            return failed + self._decode_here(where, fmt, any_depth, stream)
        return failed + [(where[j][0], DecodeError(items[j].label, r)) for j, r in enumerate(reasons) if r is not None]

    def _decode_here(self, where: list[tuple[int, Image, ParsedSource]], fmt: tuple, any_depth: bool, stream: Any) -> list[tuple[int, GpuImgError]]:
        """The CPU codecs in this process, one item at a time (CodeStream sources on a GPU,
        or no child process: rare), through one CPU decoder made on first use."""
        nv = self._nv
        if self._cpu_decoder is None:
            self._cpu_decoder = _backends.cpu_only(nv, self._num_threads)
        cpu = self._cpu_decoder
        params = nv.DecodeParams(apply_exif_orientation=False, color_spec=fmt[1], allow_any_depth=any_depth, sample_format=fmt[0])
        failed: list[tuple[int, GpuImgError]] = []
        for k, img, src in where:
            if by_pillow(src):
                error = decode_pillow(src, img, "bgr" if fmt[0] == nv.I_BGR else "rgb", stream)
                if error is not None:
                    failed.append((k, error))
                continue
            result = cpu.decode(src.stream, params=params)
            if result is None or tuple(result.shape) != img.shape:
                failed.append((k, DecodeError(src.label, _UNDECODABLE)))
            else:
                put(img, np.asarray(result.cpu()), stream)
        return failed

    def _wrap(
        self, members: list[int], staged: bool, staging: list[Any], targets: list[Image], owners: list[Any], ptr: int, fmt: tuple
    ) -> list[Any]:
        """nvImageCodec wrappers of the decode targets of ``members`` (cached, see Wrappers)."""
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
        self._event.record(cupy.cuda.get_current_stream() if stream is None else get_stream(stream))
        self._event.synchronize()


_UNDECODABLE = "nvImageCodec could not decode it (corrupt or truncated data, or an unsupported variant)"
_GPU_CODECS = frozenset(fmt.name for fmt in formats.FORMATS if fmt.gpu_decode)
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _isolation_of(value: Any) -> isolation.Isolation:
    if isinstance(value, isolation.Isolation):
        return value
    if isinstance(value, bool):
        return isolation.Isolation(enabled=value)
    raise ArgumentTypeError(f"isolation must be a gpuimg.codec.isolation.Isolation or a bool, got {type(value).__name__}")


# A 16x16 4:2:0 baseline JPEG (300 bytes, made with Pillow) for Decoder.warm_up.
_WARM_UP_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/"
    "2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAQABADASIAAhEBAxEB/8QA"
    "FQABAQAAAAAAAAAAAAAAAAAAAwD/xAAVEAEBAAAAAAAAAAAAAAAAAAACAP/EABUBAQEAAAAAAAAAAAAAAAAAAAEF/8QAGBEAAwEBAAAAAAAAAAAAAAAAAAME"
    "ITH/2gAMAwEAAhEDEQA/AEbgbpuBunoQEMPMP//Z"
)
