"""CUDA generation of the fused pointwise kernel: a chain's step snippets pasted into one source.

See :mod:`gpuimg.ops.color.fusion` for the kernel shape (uint4 vector path, statistic pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._engine.kernels import PRELUDE
from ._base import BINS, PointwiseStep

# ----------------------------------------------------------------------------- code generation



def _pixel_code(steps: Sequence[PointwiseStep], channels: int, offsets: Sequence[int]) -> tuple[str, int]:
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


def _stat_code(step: PointwiseStep, channels: int, offset: int, shared: list[str], prologue: list[str]) -> tuple[str, str, str]:
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


def _kernel_source(steps: Sequence[PointwiseStep], cin: int, output: _Output, stat_index: int, hist_stride: int) -> str:
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
