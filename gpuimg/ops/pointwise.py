"""Fusion machinery for pointwise ops: a :class:`Chain` of :class:`Step` s runs as ONE kernel.

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
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..image import Image, ImageBatch, images_of
from ..memory import Buffer, scratch
from ..device import get_stream
from ..errors import check_choice
from ._engine.args import check_range, check_src, per_sample, uniform_channels
from ._engine.batch import launch, prepare_out
from ._engine.kernels import PRELUDE, compiled
from ._engine.params import upload

__all__ = ["Step", "Chain", "chain", "run_steps", "TensorSpec", "tensor_spec"]

BINS = 256
_UINT8 = (np.dtype(np.uint8),)
_THREADS = 256
_MAX_BLOCKS_PER_IMAGE = 2048  # x 256 threads x 16 pixels covers a 4K image in one sweep
_COLOR_MODES = {"gray": 1, "rgb": 3, "bgr": 3, "rgba": 4}


# ----------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Step:
    """One pointwise operation: CUDA snippet, NumPy twin, parameters and channel effect.

    Subclasses set ``kind`` (part of the kernel cache key), ``values`` (parameter values, each
    a scalar or one per image) and implement ``cuda``/``numpy``. ``stat`` is None,
    "gray_sum" (sum of torchvision's floored gray level), "gray" (its histogram) or
    "channels" (one histogram per channel).
    """

    kind: str
    values: tuple[Any, ...] = ()
    stat: str | None = None

    # -- what subclasses override
    def out_channels(self, channels: int) -> int:
        return channels

    def check(self, channels: int) -> None:
        """Raise ValueError when the step cannot run on ``channels`` channels."""

    def cuda(self, channels: int, p: str, sh: str) -> str:  # pragma: no cover - abstract
        """CUDA statements over ``float v[4]``; ``p`` names the params, ``sh`` the step's shared array."""
        raise NotImplementedError

    def prologue(self, channels: int, p: str, hist: str, sh: str) -> str:
        """Per-block setup run before the pixel loop (e.g. a LUT in shared memory ``sh``)."""
        return ""

    def shared_floats(self, channels: int) -> int:
        return 0

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: np.ndarray | None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    # -- shared plumbing
    def key(self, channels: int) -> tuple[Any, ...]:
        """What the generated code depends on (not the parameter values)."""
        return (self.kind, channels)

    def param_rows(self, count: int) -> np.ndarray:
        """Parameters as (count, len(values)) float32: one row per image."""
        if not self.values:
            return np.zeros((count, 0), np.float32)
        cols = [per_sample(v, count, f"{self.kind} parameter") for v in self.values]
        return np.stack(cols, axis=1).astype(np.float32)

    def stat_bins(self, channels: int) -> int:
        """u32 slots of the statistic: a 64-bit sum takes 2, a histogram 256 per channel."""
        if self.stat is None:
            return 0
        if self.stat == "gray_sum":
            return 2
        return BINS * (channels if self.stat == "channels" else 1)


# ----------------------------------------------------------------------------- code generation



def _pixel_code(steps: Sequence[Step], channels: int, offsets: Sequence[int]) -> tuple[str, int]:
    """The statements of ``steps`` in order, and the channel count they leave."""
    code, c = [], channels
    for i, step in enumerate(steps):
        code.append(f"{{ // {step.kind}\n{step.cuda(c, f'(P + {offsets[i]})', f'SH{i}')}\n}}")
        c = step.out_channels(c)
    return "\n".join(code), c


@dataclass(frozen=True)
class _Output:
    """Where the main kernel writes: an image (uint8) or a tensor (float32/float16, NCHW/NHWC)."""

    kind: str  # "image", "tensor" or "hist"
    dtype: str = "uint8"
    layout: str = "NHWC"

    @property
    def ctype(self) -> str:
        return {"uint8": "u8", "float32": "float", "float16": "unsigned short"}[self.dtype]

    def convert(self, expr: str) -> str:
        if self.dtype == "uint8":
            return f"(u8)f2b({expr})"
        if self.dtype == "float16":
            return f"f2h({expr})"
        return f"({expr})"


_HIST_COPIES = 4  # warps spread over 4 shared histograms: less atomic contention on smooth images


def _stat_code(step: Step, channels: int, offset: int, shared: list[str], prologue: list[str]) -> tuple[str, str, str]:
    """(setup, per-pixel accumulation, block epilogue) of the statistic pass of ``step``."""
    gray = "tv_gray(v[0], v[1], v[2])" if channels >= 3 else "v[0]"
    if step.stat == "gray_sum":  # a sum: per-thread, then warp shuffles, one atomic per warp
        shared.append("__shared__ unsigned long long SSUM;")
        prologue.append("if (threadIdx.x == 0) SSUM = 0ull;")
        epilogue = (
            "for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);\n"
            "if ((threadIdx.x & 31) == 0) atomicAdd(&SSUM, (unsigned long long)acc);\n"
            f"__syncthreads();\nif (threadIdx.x == 0) atomicAdd((unsigned long long*)(HISTW + {offset}), SSUM);"
        )
        return "unsigned long long acc = 0;", f"acc += f2b({gray});", epilogue
    bins = step.stat_bins(channels)
    shared.append(f"__shared__ u32 SHIST[{_HIST_COPIES * bins}];")
    prologue.append(f"for (int k = threadIdx.x; k < {_HIST_COPIES * bins}; k += blockDim.x) SHIST[k] = 0;")
    setup = f"u32* const hcopy = SHIST + ((threadIdx.x >> 5) % {_HIST_COPIES}) * {bins};"
    if step.stat == "gray":
        acc = f"atomicAdd(&hcopy[f2b({gray})], 1u);"
    else:
        acc = " ".join(f"atomicAdd(&hcopy[{k * BINS} + f2b(v[{k}])], 1u);" for k in range(channels))
    epilogue = (
        f"__syncthreads();\nfor (int k = threadIdx.x; k < {bins}; k += blockDim.x) {{\n"
        f"  u32 n = 0; for (int c = 0; c < {_HIST_COPIES}; ++c) n += SHIST[c * {bins} + k];\n"
        f"  if (n) atomicAdd(HISTW + {offset} + k, n);\n}}"
    )
    return setup, acc, epilogue


def _kernel_source(steps: Sequence[Step], cin: int, output: _Output, stat_index: int, hist_stride: int) -> str:
    """CUDA source of the fused kernel (``output.kind == "hist"``: the statistic pass of
    ``steps[stat_index]``, running only the steps before it)."""
    offsets, hist_offsets, o, h = [], [], 0, 0
    c = cin
    for step in steps:
        offsets.append(o)
        hist_offsets.append(h)
        o += len(step.values)
        h += step.stat_bins(c)
        c = step.out_channels(c)
    run = steps if output.kind != "hist" else steps[:stat_index]
    body, cout = _pixel_code(run, cin, offsets)
    shared = []
    prologue = []
    c = cin
    for i, step in enumerate(run):
        n = step.shared_floats(c)
        if n:
            shared.append(f"__shared__ float SH{i}[{n}];")
        pro = step.prologue(c, f"(P + {offsets[i]})", f"(HIST + {hist_offsets[i]})", f"SH{i}")
        if pro:
            prologue.append(f"{{ {pro} }}")
        c = step.out_channels(c)

    if output.kind == "hist":
        out_setup, group_store, epilogue = _stat_code(steps[stat_index], cout, hist_offsets[stat_index], shared, prologue)
        one_store = group_store
        flat_ok = "true"
        buf_decl = ""
    else:
        ot = output.ctype
        conv = output.convert
        buf_decl = f"union {{ uint4 q[(16 * {cout} * sizeof({ot}) + 15) / 16]; {ot} e[16 * {cout}]; }} ob;"
        group_store_px = " ".join(f"ob.e[i * {cout} + {k}] = {conv(f'v[{k}]')};" for k in range(cout))
        if output.kind == "image":
            out_setup = (
                "const i64* dr = dtab + img * 5; u8* d = (u8*)dst + dr[0]; const i64 dpitch = dr[3];\n"
                f"const bool out_flat = dpitch == W * {cout} && (((size_t)d) & 15) == 0;"
            )
            store_group = (
                f"uint4* dq = (uint4*)(d + g * 16 * {cout});\n"
                f"#pragma unroll\nfor (int k = 0; k < {cout}; ++k) dq[k] = ob.q[k];"
            )
            one_store = " ".join(f"d[y * dpitch + x * {cout} + {k}] = {conv(f'v[{k}]')};" for k in range(cout))
        elif output.layout == "NHWC":
            out_setup = (
                f"{ot}* d = ({ot}*)dst + img * npix * {cout};\n"
                "const bool out_flat = (((size_t)d) & 15) == 0;"
            )
            store_group = (
                f"uint4* dq = (uint4*)(d + g * 16 * {cout});\n"
                f"#pragma unroll\nfor (int k = 0; k < (int)(sizeof(ob.q) / 16); ++k) dq[k] = ob.q[k];"
            )
            one_store = " ".join(f"d[p * {cout} + {k}] = {conv(f'v[{k}]')};" for k in range(cout))
        else:  # NCHW: 16 consecutive values per channel plane
            out_setup = (
                f"{ot}* d = ({ot}*)dst + img * npix * {cout};\n"
                f"const bool out_flat = (((size_t)d) & 15) == 0 && ((npix * sizeof({ot})) & 15) == 0;"
            )
            per_plane = f"(16 * sizeof({ot}) / 16)"
            direct = (
                f"#pragma unroll\nfor (int k = 0; k < {cout}; ++k) {{\n"
                f"  {ot} plane[16];\n"
                f"  #pragma unroll\n  for (int i = 0; i < 16; ++i) plane[i] = ob.e[i * {cout} + k];\n"
                f"  uint4* dq = (uint4*)(d + k * npix + g * 16);\n"
                f"  #pragma unroll\n  for (int j = 0; j < {per_plane}; ++j) dq[j] = ((uint4*)plane)[j];\n}}"
            )
            store_group = direct
            one_store = " ".join(f"d[{k} * npix + p] = {conv(f'v[{k}]')};" for k in range(cout))
        group_store = group_store_px
        flat_ok = "out_flat"
        epilogue = ""
    # In the group loop, `group_store` runs per pixel (fills ob / accumulates), then the
    # vector store (image/tensor only) writes the group.
    group_tail = "" if output.kind == "hist" else store_group
    load = " ".join(f"v[{k}] = b2f(b[i * {cin} + {k}]);" for k in range(cin))
    load_one = " ".join(f"v[{k}] = b2f(sp[{k}]);" for k in range(cin))
    return f"""{PRELUDE}
extern "C" __global__ void pointwise(const u8* __restrict__ src, const i64* __restrict__ stab,
        void* __restrict__ dst, const i64* __restrict__ dtab, const float* __restrict__ params,
        const int pstride, u32* __restrict__ hist) {{
    const int img = blockIdx.y;
    const i64* sr = stab + img * 5;
    const u8* s = src + sr[0];
    const i64 H = sr[1], W = sr[2], spitch = sr[3];
    const i64 npix = H * W;
    const float* P = params + (i64)img * pstride;
    const u32* HIST = hist + (i64)img * {max(hist_stride, 1)};
    u32* HISTW = hist + (i64)img * {max(hist_stride, 1)};
    {' '.join(shared)}
    {' '.join(prologue)}
    __syncthreads();
    {out_setup}
    const i64 tid = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    const i64 nth = (i64)gridDim.x * blockDim.x;
    i64 start = 0;
    if (spitch == W * {cin} && (((size_t)s) & 15) == 0 && {flat_ok}) {{
        const i64 groups = npix >> 4;
        for (i64 g = tid; g < groups; g += nth) {{
            union {{ uint4 q[{cin}]; u8 e[16 * {cin}]; }} in;
            const uint4* sq = (const uint4*)(s + g * 16 * {cin});
            #pragma unroll
            for (int k = 0; k < {cin}; ++k) in.q[k] = sq[k];
            const u8* b = in.e;
            {buf_decl}
            #pragma unroll
            for (int i = 0; i < 16; ++i) {{
                float v[4] = {{0.f, 0.f, 0.f, 0.f}};
                {load}
                {body}
                {group_store}
            }}
            {group_tail}
        }}
        start = groups << 4;
    }}
    for (i64 p = start + tid; p < npix; p += nth) {{
        const i64 y = p / W, x = p - y * W;
        const u8* sp = s + y * spitch + x * {cin};
        float v[4] = {{0.f, 0.f, 0.f, 0.f}};
        {load_one}
        {body}
        {one_store}
    }}
    {epilogue}
}}
"""


# ----------------------------------------------------------------------------- running


@functools.lru_cache(maxsize=None)
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

    def __init__(self, *steps: Step, tensor: Any = None):
        for step in steps:
            if not isinstance(step, Step):
                raise TypeError(f"chain takes pointwise steps (e.g. color.step.brightness(1.2)), got {type(step).__name__}")
        if not steps and tensor is None:
            raise ValueError("steps must hold at least one pointwise step")
        self.steps = tuple(steps)
        self.tensor = tensor  # a color._TensorSpec or None

    def then(self, *steps: Step) -> Chain:
        """A longer chain: these steps after this chain's."""
        if self.tensor is not None:
            raise ValueError("to_tensor ends a chain; add steps before it")
        return Chain(*self.steps, *steps)

    def to_tensor(self, mean: Any = None, std: Any = None, dtype: str = "float32", layout: str = "NCHW") -> Chain:
        """This chain ending in a normalised float tensor (one kernel for all of it)."""
        if self.tensor is not None:
            raise ValueError("this chain already ends in to_tensor")
        return Chain(*self.steps, tensor=tensor_spec(mean, std, dtype, layout))

    def __repr__(self) -> str:
        names = [s.kind for s in self.steps] + (["to_tensor"] if self.tensor is not None else [])
        return f"Chain({' -> '.join(names)})"

    # -- calling
    def all_steps(self) -> tuple[Step, ...]:
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


def chain(*steps: Step) -> Chain:
    """Fuse pointwise steps into one kernel (see :class:`Chain`).

    Example:
        >>> from gpuimg.ops import color
        >>> S = color.step
        >>> color.chain(S.brightness(1.2), S.contrast(0.9), S.gamma(0.8))
        Chain(brightness -> contrast -> gamma)
    """
    return Chain(*steps)


def run_steps(src: Image | ImageBatch, steps: Sequence[Step], out: Any = None, stream: Any = None) -> Any:
    """Run ``steps`` fused on ``src``: what every pointwise op in :mod:`color` calls."""
    return Chain(*steps)(src, out=out, stream=stream)


def _param_table(steps: Sequence[Step], count: int) -> np.ndarray:
    rows = [s.param_rows(count) for s in steps]
    return np.concatenate(rows, axis=1) if rows else np.zeros((count, 0), np.float32)


def _gpu_params(steps: Sequence[Step], count: int) -> tuple[np.ndarray, int, tuple[float, ...] | None]:
    """The params table, its per-image stride and a cheap cache key: one shared row (stride
    0, key = the values) when every value is a scalar, which skips a row per image."""
    values = tuple(v for s in steps for v in s.values)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.array(values, np.float32)[None], 0, values
    table = _param_table(steps, count)
    return table, table.shape[1], None


def _hist_layout(steps: Sequence[Step], channels: int) -> tuple[list[int], int]:
    offsets, total, c = [], 0, channels
    for step in steps:
        offsets.append(total)
        total += step.stat_bins(c)
        c = step.out_channels(c)
    return offsets, total


def _run_gpu(steps: Sequence[Step], src: Image | ImageBatch, channels: int, out: Any, tensor: Any, stream: Any) -> None:
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
_plans: dict[tuple[Any, ...], tuple[list[Any], Any, int]] = {}


def _tensor_output(tensor: Any) -> _Output:
    return _Output("tensor", tensor.dtype, tensor.layout)


def _plan(steps: Sequence[Step], channels: int, output: _Output) -> tuple[list[Any], Any, int]:
    """(statistic kernels, main kernel, histogram stride) of a chain structure, made once."""
    structure = tuple(s.key(c) for s, c in zip(steps, _channel_trace(steps, channels)))
    import cupy

    key = (cupy.cuda.runtime.getDevice(), structure, channels, output)  # compiled kernels belong to a device
    plan = _plans.get(key)
    if plan is None:
        _, hist_stride = _hist_layout(steps, channels)
        stats = [_compiled(structure, steps, channels, _Output("hist"), i, hist_stride) for i, s in enumerate(steps) if s.stat]
        plan = _plans[key] = (stats, _compiled(structure, steps, channels, output, -1, hist_stride), hist_stride)
    return plan


def _channel_trace(steps: Sequence[Step], channels: int) -> list[int]:
    trace, c = [], channels
    for step in steps:
        trace.append(c)
        c = step.out_channels(c)
    return trace


def _compiled(structure: tuple[Any, ...], steps: Sequence[Step], channels: int, output: _Output, stat_index: int, hist_stride: int) -> Any:
    """The kernel for this chain structure and output, generated once, compiled once per device."""
    source = _source_for(structure, steps, channels, output, stat_index, hist_stride)
    # --fmad=false: the same float rounding as the NumPy twin (no fused multiply-adds).
    return compiled(source, "pointwise", ("--std=c++17", "--fmad=false"))


_sources: dict[tuple[Any, ...], str] = {}


def _source_for(structure: tuple[Any, ...], steps: Sequence[Step], channels: int, output: _Output, stat_index: int, hist_stride: int) -> str:
    key = (structure, channels, output, stat_index, hist_stride)
    source = _sources.get(key)
    if source is None:
        source = _sources[key] = _kernel_source(steps, channels, output, stat_index, hist_stride)
    return source


def _run_cpu(steps: Sequence[Step], src: Image | ImageBatch, out: Any, tensor: Any) -> None:
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


def gray_tv_numpy(v: np.ndarray) -> np.ndarray:
    """torchvision's floored float gray level, in float32 like the CUDA ``tv_gray``."""
    f = np.float32
    return np.floor(v[..., 0] * f(0.2989) + v[..., 1] * f(0.587) + v[..., 2] * f(0.114))


def new_tensor(shape: tuple[int, ...], dtype: str, device: str) -> Any:
    """A fresh tensor-shaped array on ``device`` from a counted :class:`Buffer`."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dt.itemsize
    buf = Buffer(max(nbytes, 1), device)
    strides = tuple(int(s) * dt.itemsize for s in _c_strides(shape))
    return buf.view(0, shape, dt, strides)


def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


# ----------------------------------------------------------------------------- the tensor ending


@dataclass(frozen=True)
class _ToTensor(Step):
    """``v * scale + bias`` per channel: (v / 255 - mean) / std folded into one multiply-add."""

    given: int = 1  # how many mean/std values the caller gave (1 or the channel count)

    def check(self, c: int) -> None:
        if self.given not in (1, c):
            raise ValueError(f"mean/std have {self.given} values for an image of {c} channels; give 1 or {c}")

    def cuda(self, c: int, p: str, sh: str) -> str:
        return f"for (int k = 0; k < {c}; ++k) v[k] = v[k] * {p}[k] + {p}[4 + k];"

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        c = v.shape[2]
        return v * p[:c] + p[4 : 4 + c]

    def key(self, c: int) -> tuple[Any, ...]:
        return (self.kind, c)


_TENSOR_DTYPES = ("float32", "float16")
_LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class TensorSpec:
    """How a chain ends in a tensor: normalisation, dtype and layout (checked)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    dtype: str
    layout: str

    @functools.cached_property
    def _step(self) -> Step:
        count = len(self.mean)
        mean = np.resize(np.asarray(self.mean, np.float64), 4)
        std = np.resize(np.asarray(self.std, np.float64), 4)
        scale = 1.0 / (255.0 * std)
        bias = -mean / std
        return _ToTensor("to_tensor", (*scale.tolist(), *bias.tolist()), given=count)

    def step(self) -> Step:
        """The to_tensor step (built once per spec)."""
        return self._step

    def shape(self, src: Source, channels: int) -> tuple[int, ...]:
        if isinstance(src, ImageBatch):
            sizes = {(h, w) for h, w, _ in src.shapes}
            if len(sizes) != 1:
                raise ValueError(f"src is a batch of {len(sizes)} different sizes; to_tensor needs equal-size images (resize first)")
            (h, w), n = sizes.pop(), len(src)
            return (n, channels, h, w) if self.layout == "NCHW" else (n, h, w, channels)
        h, w = src.height, src.width
        return (channels, h, w) if self.layout == "NCHW" else (h, w, channels)

    def prepare(self, src: Source, channels: int, out: Any) -> Any:
        shape = self.shape(src, channels)
        if out is None:
            return new_tensor(shape, self.dtype, src.device)
        xp = src.xp
        if not isinstance(out, xp.ndarray):
            raise TypeError(f"out must be a {xp.__name__}.ndarray on {src.device!r}, got {type(out).__name__}")
        if tuple(out.shape) != shape or out.dtype != np.dtype(self.dtype) or not out.flags.c_contiguous:
            raise ValueError(
                f"out has shape {tuple(out.shape)} {out.dtype}; to_tensor needs a C-contiguous {shape} {self.dtype} array"
            )
        return out

    def store_cpu(self, out: np.ndarray, index: int, v: np.ndarray, batched: bool) -> None:
        arr = v.astype(self.dtype)
        if self.layout == "NCHW":
            arr = arr.transpose(2, 0, 1)
        if batched:
            out[index] = arr
        else:
            out[...] = arr


def tensor_spec(mean: Any, std: Any, dtype: str, layout: str) -> TensorSpec:
    """Checked :class:`TensorSpec` (ValueError naming the bad argument), cached per arguments."""
    try:
        return _tensor_spec_cached(_hashable(mean), _hashable(std), dtype, layout)
    except TypeError:  # unhashable (an array of values): check without the cache
        return _make_tensor_spec(mean, std, dtype, layout)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@functools.lru_cache(maxsize=64)
def _tensor_spec_cached(mean: Any, std: Any, dtype: str, layout: str) -> TensorSpec:
    return _make_tensor_spec(mean, std, dtype, layout)


def _make_tensor_spec(mean: Any, std: Any, dtype: str, layout: str) -> TensorSpec:
    check_choice(dtype, "dtype", _TENSOR_DTYPES)
    check_choice(layout, "layout", _LAYOUTS)
    mean_t = _vector(0.0 if mean is None else mean, "mean")
    std_t = _vector(1.0 if std is None else std, "std")
    if any(s <= 0 for s in std_t):
        raise ValueError(f"std={std!r} must be positive")
    if len(mean_t) != len(std_t):
        if len(mean_t) == 1:
            mean_t = mean_t * len(std_t)
        elif len(std_t) == 1:
            std_t = std_t * len(mean_t)
        else:
            raise ValueError(f"mean has {len(mean_t)} values and std {len(std_t)}; give the same count (or one)")
    return TensorSpec(mean_t, std_t, dtype, layout)


def _vector(value: Any, name: str) -> tuple[float, ...]:
    arr = np.atleast_1d(np.asarray(value, np.float64))
    if arr.ndim != 1 or not 1 <= arr.size <= 4 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}={value!r} must be a number or 1 to 4 finite numbers (one per channel)")
    return tuple(arr.tolist())
