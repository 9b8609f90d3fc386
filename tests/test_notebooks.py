"""Every notebook in notebooks/ runs top to bottom (CPU in CI, GPU on the device machine).

A cell that raises, or runs past CELL_TIMEOUT_S, fails the notebook's test. The kernel is
python3 started in notebooks/ (as Jupyter would), with the checkout importable. Outputs
are not written back: the committed notebooks stay without outputs. To look at a run's
outputs, set GPUIMG_EXECUTED_NOTEBOOKS to a folder: the executed notebooks go there.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import checkout_pythonpath

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT_S = 300  # generous: the first cell of a GPU run compiles kernels and loads nvImageCodec
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_there_are_notebooks():
    assert [p.name for p in PATHS] == [
        "01_quickstart.ipynb",
        "02_memory_reuse.ipynb",
        "03_effects.ipynb",
        "04_dataset_preprocessing.ipynb",
        "05_performance.ipynb",
    ]


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code, "a notebook without code teaches nothing"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "clear the outputs"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # The kernel inherits the environment: make the checkout importable without installing it.
    monkeypatch.setenv("PYTHONPATH", checkout_pythonpath())
    monkeypatch.delenv("MPLBACKEND", raising=False)  # let ipykernel use its inline backend
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    start = time.perf_counter()
    try:
        client.execute()  # raises CellExecutionError (with the traceback) when a cell fails
    finally:
        print(f"{path.name}: {time.perf_counter() - start:.1f} s")
        keep = os.environ.get("GPUIMG_EXECUTED_NOTEBOOKS")  # a folder: keep the run's outputs to look at
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, Path(keep) / path.name)
