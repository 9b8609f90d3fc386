"""Fusion machinery for pointwise ops: a :class:`Chain` of :class:`PointwiseStep` s runs as ONE kernel.

Each step is a small piece of CUDA working on one pixel (``float v[4]``, the channel count
known at compile time) plus the NumPy twin of the same formula (the CPU path and the
oracle). A chain pastes the snippets into one generated kernel, compiled once per chain
*structure* (step kinds and channel counts); parameter values travel in a small device
array, so new values never recompile.

Kernel shape (one launch per Image or ImageBatch): ``blockIdx.y`` is the image, a
grid-stride loop covers its pixels. A contiguous, 16-byte aligned image is read and written
16 pixels at a time with ``uint4`` loads/stores (16 x channels bytes: pixel-aligned and
vector-aligned at once); the remainder and pitched images go one pixel at a time.

Steps that need a statistic of their input (contrast: the mean gray level; equalize and
Otsu: a histogram) get one extra "histogram" launch that runs the steps before them on the
fly; the statistic is then read in the main kernel. A chain of N steps therefore costs
1 + (number of statistic steps) launches, whatever N is and however many images.

Every step rounds its result to uint8 exactly as the unfused op does (torchvision's
truncation, Pillow's rounding), so a fused chain equals the unfused ops bit for bit on the
CPU, and within float rounding (one level) between GPU and CPU.

Example:
    >>> import numpy as np, gpuimg
    >>> from gpuimg.ops import color
    >>> img = gpuimg.Image.from_array(np.full((4, 4, 3), 100, np.uint8))
    >>> out = color.chain(color.step.brightness(1.5), color.step.gamma(1.0))(img)
    >>> int(out.numpy()[0, 0, 0])
    150
"""


from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import ArgumentError, ArgumentTypeError
from ...image import Image, ImageBatch, images_of
from ...memory import scratch
from ...device import device_key, get_stream
from .._engine.args import check_src, uniform_channels
from .._engine.batch import launch, prepare_out
from .._engine.cache import cache
from .._engine.kernels import compiled
from .._engine.params import upload
from ._base import BINS, PointwiseStep, Step, gray_tv_numpy
from .kernel_source import _kernel_source, _Output
from .tensor import tensor_spec

__all__ = ["PointwiseStep", "Step", "Chain", "chain", "run_steps"]

_UINT8 = (np.dtype(np.uint8),)
_THREADS = 256
_MAX_BLOCKS_PER_IMAGE = 2048  # x 256 threads x 16 pixels covers a 4K image in one sweep


# ----------------------------------------------------------------------------- running


@functools.lru_cache(maxsize=None)  # no arguments: one value, nothing to bound
def _resident_blocks() -> int:
    """Blocks of 256 threads the whole GPU holds at once (about 8 per SM): a grid-stride
    grid of this size has no partly filled last wave."""
    import cupy

    return 8 * int(cupy.cuda.Device().attributes["MultiProcessorCount"])


def _grid(images: Sequence[Image]) -> tuple[int, int]:
    most = max(im.height * im.width for im in images)
    cap = max(1, _resident_blocks() // len(images))
    blocks = min(_MAX_BLOCKS_PER_IMAGE, cap, max(1, -(-most // (16 * _THREADS))))
    return blocks, len(images)


class Chain:
    """Pointwise steps fused into one kernel; call it like an op: ``chain(src, out=None, stream=None)``.

    ``.to_tensor(mean, std, dtype, layout)`` ends the chain in a float tensor instead of an
    image (see :func:`gpuimg.ops.color.to_tensor`).

    Example:
        >>> import numpy as np, gpuimg
        >>> from gpuimg.ops import color
        >>> img = gpuimg.Image.from_array(np.full((2, 2, 3), 10, np.uint8))
        >>> t = color.chain(color.step.invert()).to_tensor()(img)
        >>> t.shape, round(float(t[0, 0, 0]), 3)
        ((3, 2, 2), 0.961)
    """

    def __init__(self, *steps: PointwiseStep, tensor: Any = None):
        for step in steps:
            if not isinstance(step, PointwiseStep):
                raise ArgumentTypeError(f"chain takes pointwise steps (e.g. color.step.brightness(1.2)), got {type(step).__name__}")
        if not steps and tensor is None:
            raise ArgumentError("steps must hold at least one pointwise step")
        self.steps = tuple(steps)
        self.tensor = tensor  # a color._TensorSpec or None

    def then(self, *steps: PointwiseStep) -> Chain:
        """A longer chain: these steps after this chain's."""
        if self.tensor is not None:
            raise ArgumentError("to_tensor ends a chain; add steps before it")
        return Chain(*self.steps, *steps)

    def to_tensor(self, mean: Any = None, std: Any = None, dtype: str = "float32", layout: str = "NCHW") -> Chain:
        """This chain ending in a normalised float tensor (one kernel for all of it)."""
        if self.tensor is not None:
            raise ArgumentError("this chain already ends in to_tensor")
        return Chain(*self.steps, tensor=tensor_spec(mean, std, dtype, layout))

    def __repr__(self) -> str:
        names = [s.kind for s in self.steps] + (["to_tensor"] if self.tensor is not None else [])
        return f"Chain({' -> '.join(names)})"

    # -- calling
    def all_steps(self) -> tuple[PointwiseStep, ...]:
        return self.steps + ((self.tensor.step(),) if self.tensor is not None else ())

    def __call__(self, src: Image | ImageBatch, out: Any = None, stream: Any = None) -> Any:
        check_src(src, dtypes=_UINT8)
        channels = uniform_channels(src)
        steps = self.all_steps()
        cout = channels
        for step in steps:
            step.check(cout)
            cout = step.out_channels(cout)
        if self.tensor is not None:
            out = self.tensor.prepare(src, cout, out)
        else:
            shapes = [(h, w, cout) for h, w, _ in src.shapes] if isinstance(src, ImageBatch) else (src.height, src.width, cout)
            out = prepare_out(src, out, shapes)
        if src.device == "cuda":
            _run_gpu(steps, src, channels, out, self.tensor, stream)
        else:
            _run_cpu(steps, src, out, self.tensor)
        return out


def chain(*steps: PointwiseStep) -> Chain:
    """Fuse pointwise steps into one kernel (see :class:`Chain`).

    Example:
        >>> from gpuimg.ops import color
        >>> S = color.step
        >>> color.chain(S.brightness(1.2), S.contrast(0.9), S.gamma(0.8))
        Chain(brightness -> contrast -> gamma)
    """
    return Chain(*steps)


def run_steps(src: Image | ImageBatch, steps: Sequence[PointwiseStep], out: Any = None, stream: Any = None) -> Any:
    """Run ``steps`` fused on ``src``: what every pointwise op in :mod:`color` calls."""
    return Chain(*steps)(src, out=out, stream=stream)


def _param_table(steps: Sequence[PointwiseStep], count: int) -> np.ndarray:
    rows = [s.param_rows(count) for s in steps]
    return np.concatenate(rows, axis=1) if rows else np.zeros((count, 0), np.float32)


def _gpu_params(steps: Sequence[PointwiseStep], count: int) -> tuple[np.ndarray, int, tuple[float, ...] | None]:
    """The params table, its per-image stride and a cheap cache key: one shared row (stride
    0, key = the values) when every value is a scalar, which skips a row per image."""
    values = tuple(v for s in steps for v in s.values)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.array(values, np.float32)[None], 0, values
    table = _param_table(steps, count)
    return table, table.shape[1], None


def _hist_layout(steps: Sequence[PointwiseStep], channels: int) -> tuple[list[int], int]:
    offsets, total, c = [], 0, channels
    for step in steps:
        offsets.append(total)
        total += step.stat_bins(c)
        c = step.out_channels(c)
    return offsets, total


def _run_gpu(steps: Sequence[PointwiseStep], src: Image | ImageBatch, channels: int, out: Any, tensor: Any, stream: Any) -> None:
    import cupy

    images = images_of(src)
    count = len(images)
    output = _tensor_output(tensor) if tensor is not None else _IMAGE_OUT
    stat_kernels, main_kernel, hist_stride = _plan(steps, channels, output)
    table, pstride, key = _gpu_params(steps, count)
    params = upload("pointwise.params", np.asarray(table, np.float32).reshape(-1), "cuda", stream, key)
    hist = scratch("pointwise.hist", max(8, count * hist_stride * 4), "cuda")
    if hist_stride:
        # A memset is a copy-engine operation, not a kernel: ordered on the stream.
        cupy.cuda.runtime.memsetAsync(hist.ptr, 0, count * hist_stride * 4, get_stream(stream).ptr)
    stab = src.kernel_table(stream)
    grid = _grid(images)
    for kernel in stat_kernels:
        launch(kernel, grid, (_THREADS,), (src.data_ptr, stab, 0, stab, params, np.int32(pstride), hist.ptr), stream)
    if tensor is not None:
        dst, dtab = out.data.ptr, stab
    else:
        dst, dtab = out.data_ptr, out.kernel_table(stream)
    launch(main_kernel, grid, (_THREADS,), (src.data_ptr, stab, dst, dtab, params, np.int32(pstride), hist.ptr), stream)


_IMAGE_OUT = _Output("image")
# Chain structures a run uses (kernel plans per device; their sources, per structure).
_plans = cache("pointwise:plans", max_items=256)


def _tensor_output(tensor: Any) -> _Output:
    return _Output("tensor", tensor.dtype, tensor.layout)


def _plan(steps: Sequence[PointwiseStep], channels: int, output: _Output) -> tuple[list[Any], Any, int]:
    """(statistic kernels, main kernel, histogram stride) of a chain structure, made once."""
    structure = tuple(s.key(c) for s, c in zip(steps, _channel_trace(steps, channels)))
    key = (device_key("cuda"), structure, channels, output)  # compiled kernels belong to a device
    return _plans.get_or_make(key, lambda: _make_plan(structure, steps, channels, output))


def _make_plan(structure: tuple[Any, ...], steps: Sequence[PointwiseStep], channels: int, output: _Output) -> tuple[list[Any], Any, int]:
    _, hist_stride = _hist_layout(steps, channels)
    stats = [_compiled(structure, steps, channels, _Output("hist"), i, hist_stride) for i, s in enumerate(steps) if s.stat]
    return stats, _compiled(structure, steps, channels, output, -1, hist_stride), hist_stride


def _channel_trace(steps: Sequence[PointwiseStep], channels: int) -> list[int]:
    trace, c = [], channels
    for step in steps:
        trace.append(c)
        c = step.out_channels(c)
    return trace


def _compiled(structure: tuple[Any, ...], steps: Sequence[PointwiseStep], channels: int, output: _Output, stat_index: int, hist_stride: int) -> Any:
    """The kernel for this chain structure and output, generated once, compiled once per device."""
    source = _source_for(structure, steps, channels, output, stat_index, hist_stride)
    # --fmad=false: the same float rounding as the NumPy twin (no fused multiply-adds).
    return compiled(source, "pointwise", ("--std=c++17", "--fmad=false"))


_sources = cache("pointwise:sources", max_items=256)


def _source_for(structure: tuple[Any, ...], steps: Sequence[PointwiseStep], channels: int, output: _Output, stat_index: int, hist_stride: int) -> str:
    key = (structure, channels, output, stat_index, hist_stride)
    return _sources.get_or_make(key, lambda: _kernel_source(steps, channels, output, stat_index, hist_stride))


def _run_cpu(steps: Sequence[PointwiseStep], src: Image | ImageBatch, out: Any, tensor: Any) -> None:
    images = images_of(src)
    table = _param_table(steps, len(images))
    offsets = np.cumsum([0] + [len(s.values) for s in steps])
    outs = None if tensor is not None else images_of(out)
    for i, im in enumerate(images):
        v = np.asarray(im.array, dtype=np.float32)
        for k, step in enumerate(steps):
            p = table[i, offsets[k] : offsets[k + 1]]
            hist = _numpy_hist(v, step.stat)
            v = step.numpy(v, p, hist)
        if tensor is not None:
            tensor.store_cpu(out, i, v, isinstance(src, ImageBatch))
        else:
            outs[i].array[...] = v.astype(np.uint8)


def _numpy_hist(v: np.ndarray, stat: str | None) -> np.ndarray | None:
    if stat is None:
        return None
    if stat in ("gray", "gray_sum"):
        g = (gray_tv_numpy(v) if v.shape[2] >= 3 else v[..., 0]).astype(np.int64)
        return np.array([[int(g.sum())]]) if stat == "gray_sum" else np.bincount(g.ravel(), minlength=BINS)[None]
    return np.stack([np.bincount(v[..., k].astype(np.int64).ravel(), minlength=BINS) for k in range(v.shape[2])])
