"""Every CUDA source the ops can generate compiles with NVRTC (which needs no GPU), so a
kernel edit is checked on CPU CI too. One section per op family (each family's module
paths are private: this test follows them)."""

from __future__ import annotations

import os

import numpy as np
import pytest

DTYPES = [np.dtype(d) for d in ("uint8", "uint16", "float32")]
FMAD = ("--fmad=false",)


def test_every_generated_kernel_source_compiles_with_nvrtc() -> None:
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc", reason="NVRTC (cupy) is not installed")
    import cupy

    include = "-I" + os.path.join(os.path.dirname(cupy.__file__), "_core", "include")
    try:
        nvrtc.getVersion()
    except Exception as exc:  # pragma: no cover - no NVRTC library
        pytest.skip(f"NVRTC is not usable here: {exc}")
    sources = filters_sources() + geometry_sources() + compose_sources() + color_sources() + codec_sources()
    for label, source, options in sources:
        prog = nvrtc.createProgram(source, "check.cu", [], [])
        try:
            nvrtc.compileProgram(prog, ["-arch=compute_90", "--std=c++17", include, *options])
        except Exception as exc:
            pytest.fail(f"{label} does not compile: {exc}\n{nvrtc.getProgramLog(prog)}")


def codec_sources() -> list[tuple[str, str, tuple[str, ...]]]:
    """The decode canary (gpuimg.codec.isolation.canary)."""
    from gpuimg.codec.isolation import canary as _canary

    return [("codec canary", _canary.SOURCE, _canary.OPTIONS)]


# ---------------------------------------------------------------------------- filters


def filters_sources() -> list[tuple[str, str, tuple[str, ...]]]:
    """Each module, each tile radius, median size and dtype."""
    from gpuimg.ops.filters import _common, median, separable

    out = [("filters", _common._module_source(), ())]
    for d in DTYPES:
        out += [(f"sep_tile{r} {d}", separable._tile_source(r, d), ()) for r in range(1, separable.MAX_TILE_RADIUS + 1)]
        out += [(f"median{k} {d}", median._median_source(k, d), ()) for k in range(3, median.MAX_MEDIAN_SIZE + 1, 2)]
    out += [(f"median{k} u8x4", median._median_simd_source(k), ()) for k in range(3, median.MAX_MEDIAN_SIZE + 1, 2)]
    return out


# ---------------------------------------------------------------------------- geometry


def geometry_sources() -> list[tuple[str, str, tuple[str, ...]]]:
    """The remap/warp module, the resampler and its weight tables."""
    from gpuimg.ops.geometry import resample, resample_weights, warp

    return [
        ("geometry", warp._source(), ()),
        ("resample", resample._module_source(8), ()),
        ("resample weights", resample_weights._WEIGHTS_SOURCE, FMAD),
    ]


# ---------------------------------------------------------------------------- compose


def compose_sources() -> list[tuple[str, str, tuple[str, ...]]]:
    """The compositing module."""
    from gpuimg.ops.compose import _kernels

    return [("compose", _kernels.CUDA_PRELUDE + _kernels._PRELUDE + _kernels._KERNELS, FMAD)]


# ---------------------------------------------------------------------------- color


def color_sources() -> list[tuple[str, str, tuple[str, ...]]]:
    """The fused pointwise kernel for every step kind, channel count and output (image,
    tensor dtype/layout, statistic pass)."""
    from gpuimg.ops import color
    from gpuimg.ops.color import fusion, kernel_source

    out: list[tuple[str, str, tuple[str, ...]]] = []
    S = color.step
    per_channels = {
        1: [S.brightness(1.2), S.contrast(0.9), S.gamma(0.8), S.invert(), S.threshold(100), S.threshold("otsu"), S.equalize(),
            S.saturation(0.5), S.hue(0.1), S.convert("rgb"), S.convert("rgba")],
        3: [S.brightness(1.2), S.contrast(0.9), S.saturation(0.5), S.hue(0.1), S.gamma(0.8), S.invert(), S.threshold(100),
            S.equalize(), S.to_gray(), S.to_gray("bt709"), S.convert("bgr"), S.convert("rgba"), S.convert("gray", "bgr")],
        4: [S.brightness(1.2), S.contrast(0.9), S.opacity(0.5), S.hue(0.1), S.equalize(), S.to_gray(src_mode="rgba"),
            S.convert("rgb"), S.convert("bgr", "rgba")],
    }
    tensors = [color.tensor_spec(0.5, 0.5, dt, lay) for dt in ("float32", "float16") for lay in ("NCHW", "NHWC")]
    for channels, steps in per_channels.items():
        for st in steps:
            for tensor in [None, *tensors]:
                all_steps = (st,) + ((tensor.step(),) if tensor is not None else ())
                output = fusion._tensor_output(tensor) if tensor is not None else fusion._IMAGE_OUT
                _, stride = fusion._hist_layout(all_steps, channels)
                label = f"pointwise {st.kind} c={channels} {output}"
                out.append((label, kernel_source._kernel_source(all_steps, channels, output, -1, stride), FMAD))
                for i, s in enumerate(all_steps):
                    if s.stat:
                        out.append((label + " stat", kernel_source._kernel_source(all_steps, channels, kernel_source._Output("hist"), i, stride), FMAD))
    from gpuimg.ops.color.icc import kernel as icc_kernel

    out.append(("colour profiles (RGB and CMYK tables)", icc_kernel.SOURCE, ("--std=c++17", "--fmad=false")))
    long_chain = (S.brightness(1.1), S.contrast(0.9), S.saturation(1.2), S.hue(0.05), S.gamma(0.9), S.equalize(), tensors[0].step())
    _, stride = fusion._hist_layout(long_chain, 3)
    out.append(("pointwise long chain", kernel_source._kernel_source(long_chain, 3, fusion._tensor_output(tensors[0]), -1, stride), FMAD))
    return out
