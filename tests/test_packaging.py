"""Packaging from a user's side (issue 18): fresh virtual environments, real PyPI.

- ``pip install ".[cu13]" torch torchvision`` resolves cleanly beside PyPI's default
  torch (built for CUDA 13): one cuda-toolkit major, one nvImageCodec flavour, and the
  same torch pip picks without gpuimg (no backtracking to an old torch); so does the plain
  ``pip install . torch torchvision``. Dry runs with ``--report``: nothing is installed.
- ``pip install ".[cu12]" torch torchvision --extra-index-url`` PyTorch's cu126 index
  (the README's command) resolves to CUDA 12 throughout; skipped, with the reason, where
  that index cannot be reached.
- A plain ``pip install .`` (no extras: no CuPy) runs ``gpuimg --version`` and
  ``gpuimg bench --quick --device cpu``.

Marked ``network`` (``pytest -m "not network"`` leaves them out); skipped, with pip's
own words, where PyPI cannot be reached. ``--isolated`` keeps this machine's PIP_*
variables out of the resolution.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import gpuimg

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.network


def _fresh_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / ("Scripts" if os.name == "nt" else "bin") / "python"


def _pip(python: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the venv's gpuimg, not the checkout's
    return subprocess.run([str(python), "-m", "pip", "--isolated", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def _dry_run(python: Path, *requirements: str) -> dict[str, dict]:
    """name -> metadata of what pip would install for ``requirements`` (skip when offline)."""
    done = _pip(python, "install", "--dry-run", "--ignore-installed", "-q", "--report", "-", *requirements)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        if any(word in done.stderr for word in ("Could not fetch", "connection", "Network", "resolve", "No matching distribution")):
            pytest.skip(f"PyPI cannot be reached from this machine: {reason}")
        raise AssertionError(f"pip could not resolve {requirements}:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    return {item["metadata"]["name"].lower(): item["metadata"] for item in report["install"]}


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = _fresh_venv(tmp_path_factory.mktemp("venv"))
    probe = _pip(exe, "download", "--no-deps", "-q", "-d", str(exe.parent.parent / "probe"), "tqdm", timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"PyPI cannot be reached from this machine: {(probe.stderr.strip().splitlines() or ['?'])[-1]}")
    return exe


def test_cu13_extra_resolves_beside_default_torch(python: Path) -> None:
    alone = _dry_run(python, "torch", "torchvision")
    both = _dry_run(python, ".[cu13]", "torch", "torchvision")
    assert both["torch"]["version"] == alone["torch"]["version"], "gpuimg[cu13] made pip pick another torch"
    assert both["torchvision"]["version"] == alone["torchvision"]["version"]
    toolkits = {m["version"].split(".")[0] for n, m in both.items() if n == "cuda-toolkit"}
    assert toolkits <= {"13"}, f"cuda-toolkit majors: {toolkits}"
    assert "cupy-cuda13x" in both and "cupy-cuda12x" not in both
    codecs = [n for n in both if n.startswith("nvidia-nvimgcodec")]
    assert len(codecs) == 1, f"two nvImageCodec wheels install the same files: {codecs}"
    assert both["gpuimg"]["version"] == gpuimg.__version__
    plain = _dry_run(python, ".", "torch", "torchvision")  # the CPU install beside torch: torch's choice untouched
    assert plain["torch"]["version"] == alone["torch"]["version"] and "cupy-cuda12x" not in plain


PYTORCH_CU12_INDEX = "https://download.pytorch.org/whl/cu126"  # the README's Install gives this command


def _reachable(url: str) -> str | None:
    """None when ``url`` answers, else why not (in the library's words)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=15):
            return None
    except OSError as exc:
        return str(getattr(exc, "reason", exc))


def test_cu12_extra_resolves_with_pytorchs_index(python: Path) -> None:
    """The README's CUDA 12 + PyTorch command settles on CUDA 12 everywhere (without
    PyTorch's index, pip backtracks for minutes between the two CUDA majors' pins)."""
    why = _reachable(PYTORCH_CU12_INDEX + "/torch/")
    if why is not None:
        pytest.skip(f"PyTorch's package index ({PYTORCH_CU12_INDEX}) cannot be reached from this machine: {why}")
    both = _dry_run(python, ".[cu12]", "torch", "torchvision", "--extra-index-url", PYTORCH_CU12_INDEX)
    assert both["torch"]["version"].endswith("+cu126"), both["torch"]["version"]
    toolkits = {m["version"].split(".")[0] for n, m in both.items() if n == "cuda-toolkit"}
    assert toolkits <= {"12"}, f"cuda-toolkit majors: {toolkits}"
    assert "cupy-cuda12x" in both and "cupy-cuda13x" not in both
    assert len([n for n in both if n.startswith("nvidia-nvimgcodec")]) == 1


def test_plain_install_runs_on_the_cpu_without_cupy(python: Path) -> None:
    done = _pip(python, "install", "-q", ".")
    assert done.returncode == 0, done.stderr[-3000:]
    cli = python.parent / "gpuimg"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GPUIMG_DEVICE")}
    run = lambda *args: subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=300, env=env, cwd=python.parent)
    version = run("--version")
    assert version.returncode == 0 and gpuimg.__version__ in version.stdout + version.stderr
    assert subprocess.run([str(python), "-c", "import cupy"], capture_output=True, env=env).returncode != 0  # no extra: no CuPy
    bench = run("bench", "--quick", "--device", "cpu")
    assert bench.returncode == 0, bench.stdout[-2000:] + bench.stderr[-2000:]
    assert "images/s" in bench.stdout and "on cpu" in bench.stdout
    report = subprocess.run([str(python), "-c", "import gpuimg.device as d; print(d.device_report())"],
                            capture_output=True, text=True, env=env, cwd=python.parent)
    assert "CuPy is not installed: pip install 'gpuimg[cu12]' or 'gpuimg[cu13]'" in report.stdout


if __name__ == "__main__":  # pragma: no cover - for a look by hand
    sys.exit(pytest.main([__file__, "-v"]))
