"""A run split into shard processes (gpuimg.pipeline.shards) keeps every guarantee of a
run in one process: the same outputs byte for byte, per-item failures, the naming and clash
rules decided once for the whole run, resume, atomic writes, one summary and report, a
clean stop on SIGTERM or Ctrl-C to the command or to its whole process group, and a shard
killed mid-run costs no item (its unreported items run again in a fresh shard).

Also RunOptions: one frozen, validated, picklable object for every entry point.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from gpuimg import cli
from gpuimg.pipeline import Pipeline, PipelineConfig, RunOptions
from gpuimg.pipeline import files as _files
from gpuimg.pipeline.shards import chunk_size, shard_config, shardable

from conftest import checkout_pythonpath

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": checkout_pythonpath()}
STEPS = [("resize_shorter", {"size": 20}), ("center_crop", {"size": (16, 16)})]


def _photos(folder: Path, count: int, size: int = 40, fmt: str = "JPEG") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = np.random.default_rng(i).integers(0, 255, (size + i % 7, size + i % 5, 3), dtype=np.uint8)
        path = folder / f"img{i:03d}.{'jpg' if fmt == 'JPEG' else 'png'}"
        PILImage.fromarray(pixels).save(path, format=fmt)
        paths.append(path)
    return paths


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.jpg"))}


def test_sharded_run_equals_one_process_byte_for_byte(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _photos(src, 24)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (src / "img000.png").write_bytes((src / "img000.jpg").read_bytes())  # clashes with img000.jpg
    pipe = Pipeline(STEPS, device="cpu")
    one = pipe.run(src, tmp_path / "one", shards=1)
    many = pipe.run(src, tmp_path / "many", shards=3)
    assert (one.processed, one.failed) == (many.processed, many.failed) == (23, 3)
    assert _outputs(tmp_path / "one") == _outputs(tmp_path / "many") and len(_outputs(tmp_path / "many")) == 23
    assert sorted((f.path, f.stage) for f in one.failures) == sorted((f.path, f.stage) for f in many.failures)
    stages = {Path(f.path).name: f.stage for f in many.failures}
    assert stages == {"broken.jpg": "decode", "img000.jpg": "plan", "img000.png": "plan"}, many.failures
    report = json.loads((tmp_path / "many" / "gpuimg-report.json").read_text())
    assert report["summary"]["processed"] == 23 and len(report["failures"]) == 3
    assert many.bytes_in == one.bytes_in and many.bytes_out == one.bytes_out
    assert not [p for p in (tmp_path / "many").iterdir() if _files.TMP_MARKER in p.name]


def test_sharded_resume_skips_done_outputs(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _photos(src, 12)
    pipe = Pipeline(STEPS, device="cpu")
    first = pipe.run(src, tmp_path / "out", shards=2)
    again = pipe.run(src, tmp_path / "out", shards=2, resume=True)
    assert first.processed == 12 and (again.processed, again.skipped) == (0, 12)


def test_progress_counts_every_item_of_every_shard(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _photos(src, 10)
    seen: list[tuple[int, int]] = []
    Pipeline(STEPS, device="cpu").run(src, tmp_path / "out", shards=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(d, 10) for d in range(1, 11)]


def _shard_pids() -> list[int]:
    """This process's shard children (from /proc: no extra dependency)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), -1)
        if ppid == os.getpid() and b"gpuimg.pipeline.shards" in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="finds the shard processes through /proc (Linux)")
def test_a_killed_shard_loses_no_item(tmp_path: Path) -> None:
    """SIGKILL of a shard mid-run (what a native crash or the OOM killer does): every item
    is still processed, by the fresh shard that reruns the dead one's unreported items."""
    src = tmp_path / "in"
    _photos(src, 40, fmt="PNG")
    killed: list[int] = []

    def progress(done: int, total: int) -> None:
        if done == 3 and not killed:
            pids = _shard_pids()
            assert pids, "no shard process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    summary = Pipeline(STEPS, device="cpu").run(src, tmp_path / "out", shards=2, batch_size=1, progress=progress)
    assert killed
    assert (summary.processed, summary.failed) == (40, 0), summary.failures
    assert len(_outputs(tmp_path / "out")) == 40
    assert not [p for p in (tmp_path / "out").iterdir() if _files.TMP_MARKER in p.name]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="finds the shard processes through /proc (Linux)")
def test_items_of_dying_shards_run_again_alone_and_only_those_that_kill_alone_fail(tmp_path: Path) -> None:
    """Shards that keep dying (a poison file that crashes its decoder would): the items a
    dead shard held run again, each alone; one whose lone shard dies too fails naming the
    signal; every other item is done."""
    src = tmp_path / "in"
    _photos(src, 30, fmt="PNG")
    killed: set[int] = set()
    rounds = [0]

    def progress(done: int, total: int) -> None:
        fresh = [pid for pid in _shard_pids() if pid not in killed]
        if rounds[0] < 2 and fresh and done >= 2 * (rounds[0] + 1):
            for pid in fresh:  # every running shard: the second round kills the one that took the items back
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            rounds[0] += 1

    summary = Pipeline(STEPS, device="cpu").run(src, tmp_path / "out", shards=2, batch_size=1, progress=progress)
    assert rounds[0] == 2
    assert summary.processed + summary.failed == 30
    # only items killed alone fail (a lone shard per item: at most the ones running in round 2)
    assert summary.failed <= 4, summary.failures
    assert all(f.stage == "shard" and "SIGKILL while it processed this item alone" in f.reason
               for f in summary.failures), summary.failures
    # a lone shard may be killed after its atomic write, before it said so: never fewer outputs
    written = _outputs(tmp_path / "out")
    assert summary.processed <= len(written) <= 30
    assert not [p for p in (tmp_path / "out").iterdir() if _files.TMP_MARKER in p.name]


@pytest.mark.parametrize("to_group", [False, True])
def test_sigterm_stops_every_shard_cleanly(tmp_path: Path, to_group: bool) -> None:
    """SIGTERM to the command (or its whole process group, as `timeout` and schedulers
    send it): exit 143, one summary and report marked interrupted, no partial file; a
    --resume run then completes the outputs as a clean run writes them."""
    src = tmp_path / "in"
    _photos(src, 160, size=96, fmt="PNG")
    ops = ["--device", "cpu", "--no-progress", "--shards", "2", "--batch-size", "1", "--blur", "6", "--sharpen", "1"]
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "gpuimg.cli", "process", str(src), str(out), *ops], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out.exists() and len(list(out.glob("*.jpg"))) >= 4) and proc.poll() is None:
        assert time.monotonic() < deadline, "no outputs appeared"
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be stopped: give it more work"
    if to_group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == cli.EXIT_TERMINATED, stderr
    assert "(interrupted)" in stdout and "Traceback" not in stderr, stderr
    report = json.loads((out / "gpuimg-report.json").read_text())
    assert report["summary"]["interrupted"] and 0 < report["summary"]["processed"] < 160
    assert not report["failures"], report["failures"]
    assert not [p for p in out.iterdir() if _files.TMP_MARKER in p.name]
    resumed = subprocess.run([sys.executable, "-m", "gpuimg.cli", "process", str(src), str(out), *ops, "--resume"],
                             cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == cli.EXIT_OK, resumed.stderr
    clean = tmp_path / "clean"
    done = subprocess.run([sys.executable, "-m", "gpuimg.cli", "process", str(src), str(clean), *ops], cwd=ROOT,
                          env=ENV, capture_output=True, timeout=300)
    assert done.returncode == cli.EXIT_OK
    assert _outputs(out) == _outputs(clean) and len(_outputs(clean)) == 160


def test_a_callable_step_keeps_the_run_in_this_process(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _photos(src, 4)
    pipe = Pipeline([lambda batch: batch], device="cpu")
    assert not shardable(pipe._specs) and pipe.shard_count(pipe.plan(src, tmp_path / "o"), RunOptions(shards=4)) == 1
    assert pipe.run(src, tmp_path / "out", shards=4).processed == 4


def test_chunks_shrink_towards_the_end_of_the_run() -> None:
    assert chunk_size(10_000, 8, 64) == 64
    assert [chunk_size(n, 2, 8) for n in (40, 12, 4, 1)] == [8, 3, 1, 1]
    assert chunk_size(0, 0, 8) == 1


def test_late_and_slow_shards_take_less(tmp_path: Path) -> None:
    """Jobs are handed out as the shards ask: every job is done exactly once, whatever
    order the shards come in (one shard of three is kept busy by the largest files)."""
    src = tmp_path / "in"
    _photos(src, 30)
    _photos(tmp_path / "big", 3, size=900)
    for p in (tmp_path / "big").iterdir():
        p.rename(src / f"big-{p.name}")
    summary = Pipeline(STEPS, device="cpu").run(src, tmp_path / "out", shards=3, batch_size=1)
    assert (summary.processed, summary.failed) == (33, 0)
    assert len(_outputs(tmp_path / "out")) == 33


def test_shard_count_follows_the_job_and_the_cores() -> None:
    cfg = PipelineConfig(max_shards=8, gpu_max_shards=8, shard_cores=2, shard_min_files=100, shard_min_bytes=10 << 20)
    assert cfg.shard_count(10, 1 << 20, cores=16) == 1  # too small to gain
    assert cfg.shard_count(250, 1 << 20, cores=16) == 2  # by files
    assert cfg.shard_count(5, 45 << 20, cores=16) == 4  # by bytes (big files)
    assert cfg.shard_count(10_000, 10 << 30, cores=16) == 8  # by cores
    assert cfg.shard_count(10_000, 10 << 30, cores=64) == 8  # at most max_shards
    assert cfg.shard_count(10_000, 10 << 30, cores=1) == 1
    assert PipelineConfig().shard_count(10_000, 10 << 30, cores=64) == 4  # contexts share one GPU
    assert PipelineConfig().shard_count(10_000, 10 << 30, cores=64, device="cpu") == 8
    assert cfg.shard_count(64, 1 << 20, cores=4, device="cpu") == 2  # fewer files per shard on the CPU device
    with pytest.raises(ValueError, match="max_shards"):
        PipelineConfig(max_shards=0)


def test_shard_config_shares_the_cores() -> None:
    cfg = shard_config(PipelineConfig(encoder_threads=4), 8, cores=16)
    assert (cfg.decoder_threads, cfg.encoder_threads) == (2, 2)
    assert not (cfg.encode_in_worker or cfg.decode_in_worker or cfg.prestart_workers)


def test_run_options_validate_and_pickle() -> None:
    opts = RunOptions(format="tif", include=["*.png"], exclude="skip/*", background=[1, 2, 3], shards=2)
    assert (opts.format, opts.include, opts.exclude, opts.background) == ("tiff", ("*.png",), ("skip/*",), (1, 2, 3))
    again = pickle.loads(pickle.dumps(opts))
    assert again == opts and again.output.suffix == ".tif"
    with pytest.raises(ValueError, match="shards must be"):
        RunOptions(shards=0)
    with pytest.raises(ValueError, match="format="):
        RunOptions(format="gif89")
    with pytest.raises(ValueError, match="mode='rgba' cannot be written as JPEG"):
        RunOptions(mode="rgba")
    with pytest.raises(ValueError, match="workers must be"):
        RunOptions(workers="yes")
    with pytest.raises(TypeError, match="options must be a RunOptions"):
        Pipeline([], device="cpu").run([], "out", {"quality": 3})
    with pytest.raises(TypeError):
        Pipeline([], device="cpu").run([], "out", qualty=80)  # a misspelt option is an error, not ignored


def test_a_worker_whose_parent_is_gone_ends_quietly(tmp_path: Path) -> None:
    """A GPU worker process that starts after its run ended finds no listener: it exits
    without a traceback on the run's terminal (a 600-file run printed one at its end)."""
    from multiprocessing.connection import Listener

    listener = Listener()
    address = str(listener.address)
    listener.close()  # nobody listens there any more
    env = {**ENV, "GPUIMG_WORKER_AUTHKEY": os.urandom(16).hex()}
    proc = subprocess.run([sys.executable, "-m", "gpuimg.pipeline.workers", address, "encode", "0", "2", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
