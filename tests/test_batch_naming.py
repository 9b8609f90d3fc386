"""Output naming and the files a run may touch, end to end on trees the tests make.

The naming rule (gpuimg.pipeline.files.plan_jobs): an output is the input's relative path
with its extension replaced by the format's suffix; inputs that would share an output are
all refused, naming each other, before anything is written. Also here: DST inside SRC,
--report over an input, 255-byte names, stale temporary files, names that are not UTF-8,
closed pipes, SIGTERM, --format spellings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from gpuimg import cli
from gpuimg.pipeline import files as _files

from conftest import checkout_pythonpath

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": checkout_pythonpath(), "GPUIMG_DEVICE": "cpu"}


def _photo(path: Path, size: int = 24, seed: int = 0) -> Path:
    """A small real image (noise: it decodes, and different seeds give different files)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() == ".jpg" else "PNG"
    PILImage.fromarray(pixels).save(path, format=fmt)
    return path


def _process(*argv: str) -> int:
    return cli.main(["process", *argv, "--device", "cpu", "--no-progress"])


def _gpuimg(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gpuimg.cli", *argv], cwd=ROOT, env=ENV, **kwargs)


def test_clashing_inputs_are_all_refused_whatever_the_order(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """a.jpg and a.png would both write a.jpg: neither is written, each names the other;
    a.png.jpg keeps its own name. Listing the files in another order changes nothing."""
    src = tmp_path / "in"
    for i, name in enumerate(("a.jpg", "a.png", "a.png.jpg")):
        _photo(src / name, seed=i)
    out = tmp_path / "out"
    assert _process(str(src), str(out)) == cli.EXIT_FAILURES
    assert sorted(p.name for p in out.iterdir()) == ["a.png.jpg", "gpuimg-report.json"]
    text = capsys.readouterr().out
    assert "processed 1, skipped 0, failed 2" in text
    report = json.loads((out / "gpuimg-report.json").read_text())
    reasons = {Path(f["path"]).name: (f["stage"], f["reason"]) for f in report["failures"]}
    assert set(reasons) == {"a.jpg", "a.png"}
    for stage, why in reasons.values():
        assert stage == "plan" and f"a.jpg and a.png would both write {out / 'a.jpg'}" in why
    names = ["a.png.jpg", "a.png", "a.jpg"]
    for order in (names, names[::-1]):
        jobs = _files.plan_jobs([src / n for n in order], tmp_path / "o2", ".jpg")
        assert {j.src.name: (j.dst.name if j.dst else None) for j in jobs} == \
            {"a.jpg": None, "a.png": None, "a.png.jpg": "a.png.jpg"}
    capsys.readouterr()
    assert _process(str(src), str(tmp_path / "o4"), "--dry-run") == cli.EXIT_OK  # the dry run says why
    assert "a.png -> (refused: a.jpg and a.png would both write" in capsys.readouterr().out
    # Names that differ only in case are one file on macOS and Windows: a clash everywhere.
    jobs = _files.plan_jobs([src / "a.jpg", src / "A.png"], tmp_path / "o3", ".jpg")
    assert [j.dst for j in jobs] == [None, None] and "would both write" in (jobs[0].refused or "")


def test_dst_inside_or_equal_to_src_is_refused_unless_in_place(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "in"
    _photo(src / "a.png")
    _photo(src / "b.jpg", seed=1)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    for dst in (src, src / "out", src / "deeper" / "out"):
        assert _process(str(src), str(dst)) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert "is inside the input folder" in err and "--in-place" in err
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # nothing written
    # A listed file's folder is an input folder too (a single image file SRC is no folder:
    # its output may go beside it, tests/test_first_hour.py).
    (tmp_path / "list.txt").write_text(f"{src / 'a.png'}\n")
    assert _process(str(tmp_path / "list.txt"), str(src)) == cli.EXIT_USAGE
    # --in-place: outputs whose name is an input's are refused; the others are written.
    assert _process(str(src), str(src), "--in-place", "--report", str(tmp_path / "r.json")) == cli.EXIT_FAILURES
    assert (src / "a.jpg").exists() and (src / "b.jpg").read_bytes() == before["b.jpg"]
    assert "would overwrite an input" in capsys.readouterr().out


def test_report_path_that_is_an_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "in"
    victim = _photo(src / "a.png")
    data = victim.read_bytes()
    out = tmp_path / "out"
    assert _process(str(src), str(out), "--report", str(victim)) == cli.EXIT_USAGE
    assert f"the report path {str(victim)!r} is an input file" in capsys.readouterr().err
    assert victim.read_bytes() == data and not out.exists()
    # The API refuses it too, before writing anything.
    from gpuimg.pipeline import Pipeline

    with pytest.raises(ValueError, match="is an input file"):
        Pipeline([], device="cpu").run(src, out, report=victim)
    with pytest.raises(ValueError, match="is an output file"):
        Pipeline([], device="cpu").run(src, out, report=out / "a.jpg")
    assert victim.read_bytes() == data and not out.exists()


def test_names_at_the_255_byte_limit(tmp_path: Path) -> None:
    """The temporary name is short whatever the output's name: a 255-byte name works."""
    src = tmp_path / "in"
    names = ["n" * 251 + ".png", "é" * 125 + "x.jpg"]  # 255 bytes each (é is 2 bytes in UTF-8)
    assert all(len(os.fsencode(n)) == 255 for n in names)
    try:
        for i, name in enumerate(names):
            _photo(src / name, seed=i)
    except OSError as exc:
        pytest.skip(f"this file system refuses 255-byte names: {exc}")
    out = tmp_path / "out"
    assert _process(str(src), str(out)) == cli.EXIT_OK
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted(n[:-4] + ".jpg" for n in names)
    assert not [p for p in out.iterdir() if _files.TMP_MARKER in p.name]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temp_files_are_removed_by_the_next_run(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _photo(src / "sub" / "a.png")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    dead = _dead_pid()
    other_host = "000000" if _files._HOST != "000000" else "111111"
    stale = [out / _files._tmp_name(dead), out / "sub" / _files._tmp_name(dead),
             out / "sub" / f".a.jpg{_files.TMP_MARKER}-{dead}-140000",  # an older gpuimg's name
             out / f"{_files.TMP_MARKER}-{other_host}-1-0123456789abcdef"]  # another machine's, a day old
    alive = out / _files._tmp_name(os.getppid())  # its writer still runs
    recent = out / f"{_files.TMP_MARKER}-{other_host}-1-fedcba9876543210"  # another machine's, recent
    foreign = out / "sub" / "notes.gpuimg-tmp.txt"  # not gpuimg's pattern
    for path in (*stale, alive, recent, foreign):
        path.write_bytes(b"partial")
    day_old = time.time() - 25 * 3600
    os.utime(stale[-1], (day_old, day_old))
    assert _process(str(src), str(out)) == cli.EXIT_OK
    assert not any(p.exists() for p in stale)
    assert alive.exists() and recent.exists() and foreign.exists() and (out / "sub" / "a.jpg").exists()


def test_stale_temp_removal_never_touches_an_input(tmp_path: Path) -> None:
    """An input that happens to carry a temporary file's name, in an output folder."""
    from gpuimg.pipeline import Pipeline

    out = tmp_path / "out"
    odd = _photo(out / _files._tmp_name(_dead_pid()))
    data = odd.read_bytes()
    summary = Pipeline([], device="cpu").run([odd], out, report=tmp_path / "r.json")
    assert summary.processed == 1 and odd.read_bytes() == data


def test_name_that_is_not_utf8_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A failing input whose name is not UTF-8: printed with escapes, reported in the JSON,
    and the reason names the file (not '<bytes of N bytes>')."""
    src = tmp_path / "in"
    src.mkdir()
    raw = os.path.join(os.fsencode(src), b"bad\xff.jpg")
    try:
        with open(raw, "wb") as f:
            f.write(b"\xff\xd8\xff not really a jpeg")
    except OSError as exc:
        pytest.skip(f"this file system refuses a name that is not UTF-8: {exc}")
    _photo(src / "good.png")
    out = tmp_path / "out"
    assert _process(str(src), str(out)) == cli.EXIT_FAILURES
    text = capsys.readouterr().out
    assert "failed: " in text and "bad\\udcff.jpg" in text and "<bytes of" not in text
    report = json.loads((out / "gpuimg-report.json").read_text())
    (failure,) = report["failures"]
    assert os.fsencode(failure["path"]) == raw and "bad" in failure["reason"] and "<bytes of" not in failure["reason"]
    assert (out / "good.jpg").exists()


def test_failure_reason_names_the_file(tmp_path: Path) -> None:
    from gpuimg.pipeline import Pipeline

    src = tmp_path / "in"
    _photo(src / "ok.png")
    bad = src / "broken.png"
    bad.write_bytes((src / "ok.png").read_bytes()[:60])  # a truncated PNG
    summary = Pipeline([], device="cpu").run(src, tmp_path / "out")
    (failure,) = summary.failures
    assert str(bad) in failure.reason and "<bytes of" not in failure.reason


def test_closed_stdout_never_crashes_the_printing(tmp_path: Path) -> None:
    """`gpuimg process ... | head -1`: the reader went away; the run ends with its own exit code."""
    src = tmp_path / "in"
    for i in range(12):
        (src / f"bad{i}.jpg").parent.mkdir(parents=True, exist_ok=True)
        (src / f"bad{i}.jpg").write_bytes(b"\xff\xd8\xff junk")
    proc = _gpuimg("process", str(src), str(tmp_path / "out"), "--no-progress", stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)
    proc.stdout.close()  # before the first line is printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == cli.EXIT_FAILURES
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert (tmp_path / "out" / "gpuimg-report.json").exists()


def test_sigterm_stops_cleanly_and_resume_finishes_identically(tmp_path: Path) -> None:
    """SIGTERM (timeout, schedulers) = Ctrl-C: exit 143, summary, report; --resume then
    gives the outputs a clean run gives, byte for byte."""
    src = tmp_path / "in"
    for i in range(200):
        _photo(src / f"img{i:03d}.png", size=128, seed=i)
    ops = ["--device", "cpu", "--no-progress", "--batch-size", "2", "--blur", "6", "--sharpen", "1", "--blur", "6"]
    out = tmp_path / "out"
    proc = _gpuimg("process", str(src), str(out), *ops, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out.exists() and len(list(out.glob("*.jpg"))) >= 5) and proc.poll() is None:
        assert time.monotonic() < deadline, "no outputs appeared"
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be stopped: give it more work"
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == cli.EXIT_TERMINATED, stderr
    assert "(interrupted)" in stdout and "Traceback" not in stderr
    report = json.loads((out / "gpuimg-report.json").read_text())
    assert report["summary"]["interrupted"] and 0 < report["summary"]["processed"] < 200
    assert not [p for p in out.iterdir() if _files.TMP_MARKER in p.name]
    resumed = _gpuimg("process", str(src), str(out), *ops, "--resume", stdout=subprocess.PIPE, text=True)
    assert resumed.wait(timeout=120) == cli.EXIT_OK
    clean = tmp_path / "clean"
    assert _gpuimg("process", str(src), str(clean), *ops, stdout=subprocess.DEVNULL).wait(timeout=120) == cli.EXIT_OK
    names = sorted(p.name for p in clean.glob("*.jpg"))
    assert len(names) == 200 and sorted(p.name for p in out.glob("*.jpg")) == names
    assert all((out / n).read_bytes() == (clean / n).read_bytes() for n in names)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_whole_process_group(tmp_path: Path, device: str, sig: int) -> None:
    """`timeout`, schedulers and a terminal's Ctrl-C signal the whole process group: the
    decoder's child process and the GPU worker processes are in it. The run still stops
    as for a signal to gpuimg alone: the exit status, the summary, no traceback, no item
    failed as a crash of the child."""
    src = tmp_path / "in"
    for i in range(300):
        _photo(src / f"img{i:03d}.png", size=96, seed=i)  # PNG: decoded in the child
    out = tmp_path / "out"
    env = {**ENV, "GPUIMG_DEVICE": device}
    proc = subprocess.Popen([sys.executable, "-m", "gpuimg.cli", "process", str(src), str(out), "--no-progress",
                             "--batch-size", "2", "--blur", "6", "--sharpen", "1", "--blur", "6"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out.exists() and len(list(out.glob("*.jpg"))) >= 5) and proc.poll() is None:
        assert time.monotonic() < deadline, "no outputs appeared"
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be stopped: give it more work"
    os.killpg(proc.pid, sig)
    stdout, stderr = proc.communicate(timeout=120)
    expected = cli.EXIT_TERMINATED if sig == signal.SIGTERM else cli.EXIT_INTERRUPTED
    assert proc.returncode == expected, stderr
    assert "(interrupted)" in stdout and "Traceback" not in stderr, stderr
    report = json.loads((out / "gpuimg-report.json").read_text())
    assert not [f for f in report["failures"] if "crash" in f["reason"] or "exited" in f["reason"]], report["failures"]


@pytest.mark.parametrize("spelling, name", [("jpg", "jpeg"), ("JPG", "jpeg"), ("tif", "tiff"), ("jpeg2000", "jpeg2k"),
                                            ("j2k", "jpeg2k"), ("webp", "webp")])
def test_format_takes_every_alias_as_its_canonical_name(spelling: str, name: str) -> None:
    assert cli.build_parser().parse_args(["process", "a", "b", "--format", spelling]).format == name


def test_format_alias_end_to_end(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _photo(src / "a.png")
    assert _process(str(src), str(tmp_path / "out"), "--format", "TIF") == cli.EXIT_OK
    with PILImage.open(tmp_path / "out" / "a.tif") as im:
        assert im.format == "TIFF"
