import pytest

import gpuimg
from gpuimg.device import array_module, resolve_device


def test_resolve_known_names():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(" CPU ") == "cpu"


def test_unknown_device_names_the_allowed_ones():
    with pytest.raises(ValueError, match="'tpu'.*cpu.*cuda"):
        resolve_device("tpu")
    with pytest.raises(TypeError, match="device must be a string"):
        resolve_device(3)


def test_environment_variable_overrides_the_default(monkeypatch):
    monkeypatch.setenv("GPUIMG_DEVICE", "cpu")
    assert gpuimg.default_device() == "cpu"
    assert gpuimg.Image.empty(2, 2).device == "cpu"
    monkeypatch.setenv("GPUIMG_DEVICE", "quantum")
    with pytest.raises(ValueError, match="GPUIMG_DEVICE"):
        gpuimg.default_device()


def test_cuda_without_gpu_is_a_clear_error():
    if gpuimg.cuda_available():
        assert resolve_device("cuda") == "cuda"
        assert array_module("cuda").__name__ == "cupy"
    else:
        with pytest.raises(gpuimg.DeviceUnavailableError, match="no.*GPU|none can be used"):
            resolve_device("cuda")
        with pytest.raises(gpuimg.GpuImgError):
            gpuimg.Image.empty(2, 2, device="cuda")


def test_stream_helpers(gpu):
    import cupy

    from gpuimg.device import get_stream, stream_ptr

    s = cupy.cuda.Stream(non_blocking=True)
    assert get_stream(s) is s
    assert stream_ptr(s) == s.ptr
    assert get_stream(int(s.ptr)).ptr == s.ptr
    with s:
        assert stream_ptr() == s.ptr
    with pytest.raises(TypeError, match="not a CUDA stream"):
        get_stream("fast")


def test_import_gpuimg_is_light_and_every_exported_name_resolves():
    # `import gpuimg` loads neither CuPy nor nvImageCodec nor the op families: they load
    # on first use of a name that needs them (gpuimg.__init__'s lazy map).
    import subprocess
    import sys

    code = (
        "import sys, gpuimg\n"
        "heavy = [m for m in ('cupy', 'nvidia.nvimgcodec', 'gpuimg.codec', 'gpuimg.ops', 'gpuimg.display',"
        " 'gpuimg.pipeline') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "missing = [n for n in gpuimg.__all__ if getattr(gpuimg, n, None) is None]\n"
        "assert not missing, missing\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**__import__("os").environ, "GPUIMG_DEVICE": "cpu"})


def test_no_gpu_reasons_say_what_to_do():
    from gpuimg.device import no_gpu_reason

    err = "cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version"
    assert "no NVIDIA driver is installed" in no_gpu_reason(err, None, 13000)
    old = no_gpu_reason(err, 12040, 13000)
    assert "supports CUDA up to 12.4" in old and "need 13.0" in old and "update the driver" in old
    assert "no CUDA device is present" in no_gpu_reason("cudaErrorNoDevice: no CUDA-capable device is detected", 13000, 13000)
    assert "(weird)" in no_gpu_reason("weird", 13000, 13000)


def test_device_report_on_this_machine_is_truthful():
    from gpuimg.device import _driver_cuda_version, device_report

    report = device_report()
    if not gpuimg.cuda_available() and _driver_cuda_version() is None:
        assert "no NVIDIA driver is installed" in report
        assert "insufficient" not in report


def test_the_chosen_device_is_logged_once(caplog, monkeypatch):
    import logging

    from gpuimg import device as dev

    monkeypatch.delenv("GPUIMG_DEVICE", raising=False)
    dev._say_device_once.cache_clear()
    with caplog.at_level(logging.INFO, logger="gpuimg"):
        first = dev.default_device()
        dev.default_device()
    lines = [r for r in caplog.records if r.name == "gpuimg"]
    assert len(lines) == 1
    if first == "cpu":
        assert lines[0].levelno == logging.WARNING and dev._cuda_probe()[1] in lines[0].getMessage()
    else:
        assert "GPU" in lines[0].getMessage()


def test_without_cupy_gpuimg_runs_on_the_cpu_and_says_how_to_get_the_gpu(tmp_path):
    # A plain `pip install gpuimg` has no CuPy (the GPU path is the cu12/cu13 extra).
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['cupy'] = None\n"  # `import cupy` now raises ModuleNotFoundError
        "import numpy as np, gpuimg, gpuimg.device as d\n"
        "from gpuimg.ops import geometry\n"
        "img = gpuimg.read('assets/coffee.jpg')\n"
        "small = geometry.resize(img, (40, 60))\n"
        f"gpuimg.write(small, {str(tmp_path / 'small.png')!r})\n"
        "print(img.device, small.shape, d.device_report())\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "GPUIMG_DEVICE"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                          cwd=__import__("pathlib").Path(__file__).resolve().parent.parent)
    from gpuimg.device import _driver_cuda_version

    first = "no NVIDIA driver is installed" if _driver_cuda_version() is None else "CuPy is not installed"
    assert done.stdout.startswith(f"cpu (40, 60, 3) cpu (no GPU: {first}"), done.stdout  # the root cause first
    assert "CuPy is not installed: pip install 'gpuimg[cu12]' or 'gpuimg[cu13]'" in done.stdout
    assert (tmp_path / "small.png").stat().st_size > 0
    # nvImageCodec's loader hints for the GPU codecs a plain install lacks are held back,
    # in this process and in the isolated decoder's child alike
    assert "Failed to load" not in done.stderr and "nvImageCodec's Python distribution" not in done.stderr, done.stderr


def test_nvimgcodec_import_holds_back_only_the_loader_noise(monkeypatch, capfd):
    # Whatever else reaches fd 2 during the import (a warning, another thread's output)
    # is passed on after it; the libraries the loader named are kept for the GPU warning.
    import os

    from gpuimg.codec import _nvimgcodec

    def noisy_import():
        os.write(2, b"Failed to load nvjpeg library! Please install CUDA toolkit or ...\n")
        os.write(2, b"another thread: 42%\r")
        os.write(2, b"Failed to load nvtiff library! Please install nvTIFF (see https://...).\n")
        os.write(2, b"Note: If using nvImageCodec's Python distribution, it is enough to install ...\n")
        os.write(2, b"a real warning\n")
        return "module"

    monkeypatch.setattr(_nvimgcodec, "_import_module", noisy_import)
    monkeypatch.setattr(_nvimgcodec, "_missing", [])
    assert _nvimgcodec._import_quietly() == "module"
    err = capfd.readouterr().err
    assert err == "another thread: 42%\ra real warning\n"
    assert _nvimgcodec._missing == ["nvjpeg", "nvtiff"]
    os.write(2, b"after\n")  # fd 2 is the real stderr again
    assert capfd.readouterr().err == "after\n"


def test_a_gpu_codec_without_nvjpeg_says_which_extra_to_install(monkeypatch, caplog):
    import logging

    from gpuimg.codec import _nvimgcodec

    monkeypatch.setattr(_nvimgcodec, "_missing", ["nvjpeg", "nvjpeg2k"])
    monkeypatch.setattr(_nvimgcodec, "_warned", [])
    with caplog.at_level(logging.WARNING, logger="gpuimg"):
        _nvimgcodec.warn_missing_gpu_libraries()
        _nvimgcodec.warn_missing_gpu_libraries()
    said = [r.getMessage() for r in caplog.records if r.name == "gpuimg"]
    assert len(said) == 1 and "could not load nvjpeg, nvjpeg2k" in said[0] and "gpuimg[cu12]" in said[0]
