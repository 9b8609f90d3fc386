"""A short fuzz run (bench/fuzz.py) is clean: mutated files of every format, through
``read``, ``read_batch`` and the pipeline in worker processes, give decoded pixels or a
clean gpuimg error, never a crash, hang, other exception, unwritten pixels, runaway
memory or a lost batch. Plus the harness's own classifier (crash, hang) on self-test
inputs.

The run includes the files of tests/repro as seeds (a clean run then also shows their
mutations handled); the failure message lists any findings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_bench

from gpuimg.device import cuda_available, device_report



fuzz = load_bench("fuzz")
REPRO = Path(__file__).resolve().parent / "repro"  # the regression files, as extra seeds


def _findings(rep: dict) -> str:
    lines = []
    for f in rep["findings"][:30]:
        det = next((e.get("detail", "") for e in f["events"] if e["class"] == f["class"]), "")
        lines.append(f"{f['class']} #{f['index']} {f['format']} from {f['seed']} {f['mutations']}: {det}"[:300])
    return "\n".join(lines)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_short_fuzz_run_is_clean(device, tmp_path):
    if device == "cuda" and not cuda_available():
        pytest.skip(f"GPU variant: {device_report()}")
    # memory_mb 1000: a runaway input is stopped sooner (seeds decode to < 1 MB, so a
    # legitimate input stays far below); timeout 20 s as the CLI's default.
    rep = fuzz.run_fuzz(300, seed=1, device=device, workers=2, memory_mb=1000, pipeline_every=50,
                        extra=REPRO, save=tmp_path / "saved")
    (tmp_path / "report.json").write_text(json.dumps(rep, indent=1))
    counts = rep["counts"]
    assert rep["inputs"] == 300
    # a healthy mix: plenty of both outcomes, every format seen
    assert counts["decoded"] >= 30, counts
    assert counts["clean"] >= 30, counts
    assert set(rep["by_format"]) == set(fuzz.FORMATS), rep["by_format"]
    for fmt, cnt in rep["by_format"].items():
        assert sum(cnt.values()) >= 5, (fmt, cnt)
    bad = {c: counts[c] for c in ("crash", "hang", "other", "unwritten", "memory", "batch-lost")}
    assert bad == dict.fromkeys(bad, 0), f"{bad}\n{_findings(rep)}"


def test_classifier_crash_hang_and_run_goes_on(monkeypatch, tmp_path):
    monkeypatch.setenv(fuzz.SELFTEST_ENV, "1")
    inject = [fuzz.SELFTEST_PREFIX + b"segv", fuzz.SELFTEST_PREFIX + b"hang", fuzz.SELFTEST_PREFIX + b"memory"]
    rep = fuzz.run_fuzz(12, seed=0, device="cpu", workers=2, formats=["png", "bmp"], timeout=3, extra=None,
                        pipeline_every=0, inject=inject, save=tmp_path)
    by_index = {f["index"]: f["class"] for f in rep["findings"]}
    assert by_index.get(-1) == "crash", rep["findings"]
    assert by_index.get(-2) == "hang", rep["findings"]
    assert by_index.get(-3) == "memory", rep["findings"]
    assert rep["inputs"] == 12 + 3  # the run went on after the crash and the hang
    assert rep["restarts"] >= 2
    assert rep["counts"]["decoded"] >= 4  # the unchanged seeds at least
    saved = [json.loads(line) for line in (tmp_path / "findings.jsonl").read_text().splitlines()]
    assert {s["class"] for s in saved} == {"crash", "hang", "memory"}
    assert all(Path(s["file"]).is_file() for s in saved)


def test_selftest_marker_is_inert_without_the_env_var(monkeypatch):
    monkeypatch.delenv(fuzz.SELFTEST_ENV, raising=False)
    rep = fuzz.run_fuzz(0, device="cpu", workers=1, formats=["png"], extra=None, pipeline_every=0,
                        inject=[fuzz.SELFTEST_PREFIX + b"segv"])
    assert rep["counts"]["clean"] == 1 and rep["counts"]["crash"] == 0, rep


def test_mutations_are_deterministic_and_change_the_data():
    seeds = fuzz.make_seeds(0, ["png", "jpeg"])
    a = [(t["seed"], t["data"]) for t in fuzz.generate(seeds, 60, seed=3)]
    b = [(t["seed"], t["data"]) for t in fuzz.generate(seeds, 60, seed=3)]
    assert a == b
    mutated = a[len(seeds):]
    originals = {data for _, _, data in seeds}
    assert sum(d not in originals for _, d in mutated) >= 0.9 * len(mutated)


def test_classify_takes_the_worst_event():
    assert fuzz.classify([]) == "clean"
    assert fuzz.classify([{"class": "decoded"}, {"class": "clean"}]) == "decoded"
    assert fuzz.classify([{"class": "decoded"}, {"class": "crash"}, {"class": "unwritten"}]) == "crash"
