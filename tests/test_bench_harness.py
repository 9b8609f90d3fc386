"""bench/harness.py works on a machine without a GPU (and on one with a GPU)."""

import json
import time

import numpy as np
import pytest
from conftest import load_bench



harness = load_bench("harness")


@pytest.mark.parametrize("timer", [harness.time_host, harness.time_gpu])
def test_timing_counts_and_order(timer):
    a = np.arange(10_000, dtype=np.float32)
    t = timer(lambda: np.sqrt(a), warmup=1, repeat=7, number=3)
    assert len(t.samples) == 7 and t.number == 3
    assert 0 < t.best <= t.median and t.best <= t.mean
    assert "us" in str(t)


@pytest.mark.parametrize("timer", [harness.time_host, harness.time_gpu])
def test_timing_measures_per_call_time(timer):
    # A host sleep is seen by both timers: between the CUDA events the GPU sits idle.
    t = timer(lambda: time.sleep(0.002), warmup=0, repeat=3, number=2)
    assert 0.0015 < t.best < 0.5


def test_bad_counts_raise():
    with pytest.raises(ValueError):
        harness.time_host(lambda: None, repeat=0)


def test_copy_time_and_device_name():
    t = harness.copy_time(np.zeros((64, 64, 3), np.uint8), repeat=3)
    assert len(t.samples) == 3 and t.median > 0
    assert harness.copy_time(1 << 16, repeat=2).median > 0
    name = harness.device_name()
    assert isinstance(name, str) and name
    assert (name == "cpu") == (not harness.gpu_available())


def _sample_results():
    res = harness.Results("selftest", meta={"batch": 64})
    res.add("blur 4K", 2.0, "ms", peer_name="cv-cuda", peer_value=6.0)
    res.add("decode batch 64", 100.0, "img/s", peer_name="torchvision", peer_value=50.0)
    res.add("peak memory", 200.0, "MB", peer_name="dali", peer_value=100.0,
            higher_is_better=False, note="lower is better")
    res.add("invert 4K", 1.3, "x copy")
    return res


def test_ratio_direction_and_table():
    res = _sample_results()
    blur, decode, memory, invert = res.rows
    assert blur.ratio == pytest.approx(3.0)  # peer takes 3x as long: ours 3x faster
    assert decode.ratio == pytest.approx(2.0)  # ours 2x the throughput
    assert memory.ratio == pytest.approx(0.5)  # ours uses twice the memory: worse
    assert invert.ratio is None and not invert.higher_is_better
    text = res.table()
    assert "3.00x faster" in text and "2.00x faster" in text and "0.50x better (ours behind)" in text
    assert "x faster than peer" in text
    # Every table line has its column separators in the same places.
    body = [ln for ln in text.splitlines()[1:] if " | " in ln]
    assert len({ln.index(" | ") for ln in body}) == 1


def test_unknown_unit_needs_direction():
    with pytest.raises(ValueError):
        harness.Results().add("widgets", 3.0, "widgets")


def test_json_round_trip(tmp_path):
    res = _sample_results()
    path = res.save_json(tmp_path / "sub" / "bench.json")
    raw = json.loads(path.read_text())
    assert raw["device"] == harness.device_name() and raw["date"]
    assert {"python", "cupy", "nvimgcodec"} <= set(raw["versions"])
    assert raw["rows"][0]["ratio"] == pytest.approx(3.0)
    back = harness.Results.from_json(path)
    assert back.title == res.title and back.meta == res.meta
    assert back.rows == res.rows
    assert back.info["device"] == raw["device"]


def test_parse_args_and_report(tmp_path, capsys):
    args = harness.parse_args(lambda p: p.add_argument("--batch", type=int, default=64),
                              argv=["--quick", "--json", str(tmp_path / "r.json")])
    assert args.quick and args.repeat == 3 and args.batch == 64
    assert harness.parse_args(argv=[]).repeat == 20
    assert harness.parse_args(argv=["--quick", "--repeat", "9"]).repeat == 9
    harness.report(_sample_results(), args)
    assert "blur 4K" in capsys.readouterr().out
    assert (tmp_path / "r.json").exists()


def test_process_wall_times_a_whole_process_and_reports_failures():
    import sys

    assert harness.process_wall([sys.executable, "-c", "pass"]) > 0
    with pytest.raises(RuntimeError, match="exited 3"):
        harness.process_wall([sys.executable, "-c", "import sys; sys.exit(3)"])
