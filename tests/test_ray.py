"""gpuimg.ray: the pipeline on Ray Data actors gives what ``gpuimg process`` gives.

One local Ray (2 CPUs, as a small CI machine has) serves the whole module; the tests
marked ``ray`` start it (a few seconds) and skip, with the reason, where Ray is not
installed (``-m "not ray"`` leaves them out). The reference is the same job without Ray:
the same output files with the same bytes, the same failures in the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import gpuimg
import gpuimg.pipeline
import gpuimg.ray  # imports no Ray (only its functions do)
from gpuimg import cli
from gpuimg.pipeline import files as _files

from conftest import BAD, GOOD, ROOT, checkout_pythonpath, write_bad_files, write_good_files

STEPS = [("resize_shorter", {"size": 40}), ("center_crop", {"size": [32, 32]})]
STEP_FLAGS = ["--resize-shorter", "40", "--center-crop", "32x32"]
# What fails in a Ray tree: the broken files, and a dangling link (a read error, also as
# root, where the locked file of BAD reads fine and the actors see no monkeypatch).
RAY_BAD = [b for b in BAD if b != "locked.png"] + ["gone.jpg"]


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason='Ray is not installed: pip install "gpuimg[ray]"')
    pytest.importorskip("ray.data", reason='Ray Data is not installed: pip install "gpuimg[ray]"')
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = checkout_pythonpath()  # the actors import this checkout
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    write_good_files(root)
    write_bad_files(root)
    (root / "locked.png").unlink()
    (root / "gone.jpg").symlink_to(root / "nothing-here.jpg")
    return root


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and _files.TMP_MARKER not in p.name and p.name != gpuimg.pipeline.REPORT_NAME}


def _failures(report: Path) -> set[tuple[str, str]]:
    return {(f["path"], f["stage"]) for f in json.loads(report.read_text())["failures"]}


def _same_pixels(a: dict[str, bytes], b: dict[str, bytes]) -> None:
    """The same files; bytes equal, or (GPU codecs) pixels within 2 levels on average."""
    import io

    from PIL import Image as PILImage

    assert sorted(a) == sorted(b)
    for name in a:
        if a[name] != b[name]:
            x, y = (np.asarray(PILImage.open(io.BytesIO(v)).convert("RGB"), float) for v in (a[name], b[name]))
            assert x.shape == y.shape and np.abs(x - y).mean() < 2, name


@pytest.mark.ray
def test_tree_through_ray_equals_gpuimg_process(ray_cluster, tree: Path, tmp_path: Path, device: str) -> None:
    plain, on_ray = tmp_path / "plain", tmp_path / "ray"
    args = ["process", str(tree), "--device", device, *STEP_FLAGS, "--no-progress"]
    assert cli.main([*args[:2], str(plain), *args[2:]]) == cli.EXIT_FAILURES
    assert cli.main([*args[:2], str(on_ray), *args[2:], "--ray"]) == cli.EXIT_FAILURES
    outputs = _outputs(on_ray)
    assert len(outputs) == len(GOOD)
    _same_pixels(_outputs(plain), outputs)
    report = on_ray / gpuimg.pipeline.REPORT_NAME
    assert _failures(plain / gpuimg.pipeline.REPORT_NAME) == _failures(report)
    assert {Path(p).name for p, _ in _failures(report)} == set(RAY_BAD)
    plain_report = json.loads((plain / gpuimg.pipeline.REPORT_NAME).read_text())
    ray_report = json.loads(report.read_text())
    assert sorted(map(json.dumps, plain_report["failures"])) == sorted(map(json.dumps, ray_report["failures"]))
    assert ray_report["summary"]["processed"] == len(GOOD) and ray_report["steps"] == plain_report["steps"]


def _finishes(work, seconds: float = 90) -> object:
    """``work()``'s result, failing (not hanging) when it has not finished in ``seconds``."""
    result: dict[str, object] = {}
    worker = threading.Thread(target=lambda: result.setdefault("value", work()), daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    assert not worker.is_alive(), "the Ray job did not finish: deadlocked"
    return result["value"]


@pytest.mark.ray
def test_two_actors_on_two_cpus_finish(ray_cluster, tree: Path, tmp_path: Path) -> None:
    """The deadlock of a first try: two actors of one CPU each on 2 CPUs leave none to Ray's
    read tasks, and the job waits forever (it does, with num_cpus=1). The actors ask for
    what plan_actors says (half a CPU each here), through the command and on Ray's reader."""
    argv = ["process", str(tree), str(tmp_path / "out"), "--device", "cpu", "--gpus", "2", "--no-progress"]
    assert _finishes(lambda: cli.main(argv)) == cli.EXIT_FAILURES
    assert len(_outputs(tmp_path / "out")) == len(GOOD)
    plan = gpuimg.ray.plan_actors(cpus=2, gpus=0, device="cpu", actors=2)
    ray = ray_cluster
    ds = ray.data.read_binary_files([str(tree / rel) for rel, *_ in GOOD], include_paths=True, override_num_blocks=2)
    ds = ds.map_batches(gpuimg.ray.ProcessBatches, batch_size=1, compute=ray.data.ActorPoolStrategy(size=plan.actors),
                        num_cpus=plan.num_cpus, fn_constructor_kwargs=dict(output_dir=str(tmp_path / "class"),
                                                                          input_root=str(tree), device="cpu"))
    assert _finishes(ds.count) == len(GOOD) and len(_outputs(tmp_path / "class")) == len(GOOD)


@pytest.mark.ray
def test_resume_after_a_killed_ray_run(ray_cluster, tree: Path, tmp_path: Path, device: str) -> None:
    out = tmp_path / "out"
    address = ray_cluster.get_runtime_context().gcs_address
    script = f"""
import os, ray, gpuimg, gpuimg.ray
ray.init(address={address!r}, log_to_driver=False, configure_logging=False)
pipe = gpuimg.Pipeline({STEPS!r}, device={device!r})
def kill(done, total):
    if done >= 3:
        os.kill(os.getpid(), 9)  # killed, not stopped: no report, no summary
gpuimg.ray.run_on_ray(pipe, {str(tree)!r}, {str(out)!r}, progress=kill, rows_per_task=1, actors=1, device={device!r})
"""
    env = {**os.environ, "PYTHONPATH": checkout_pythonpath()}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert before, "the killed run wrote nothing"
    stale = out / _files._tmp_name(999999999)  # what a write killed half-way leaves (no such process)
    stale.write_bytes(b"partial")
    pipe = gpuimg.Pipeline(STEPS, device=device)
    summary = gpuimg.ray.run_on_ray(pipe, tree, out, resume=True, device=device)
    assert summary.skipped == len(before) and summary.processed == len(GOOD) - len(before)
    assert summary.failed == len(RAY_BAD) and not summary.interrupted
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # done work is not redone
    assert not stale.exists() and len(_outputs(out)) == len(GOOD)


@pytest.mark.ray
def test_url_inputs_through_fsspec(ray_cluster, tree: Path, tmp_path: Path, device: str) -> None:
    import fsspec
    import pyarrow.fs

    pipe = gpuimg.Pipeline(STEPS, device=device)
    plain = pipe.run(tree, tmp_path / "plain")
    url = f"file://{tree}"
    summary = gpuimg.ray.run_on_ray(pipe, url, tmp_path / "url", device=device, actors=1, calls_per_actor=2)
    assert (summary.processed, summary.failed) == (plain.processed, plain.failed) == (len(GOOD), len(RAY_BAD))
    _same_pixels(_outputs(tmp_path / "plain"), _outputs(tmp_path / "url"))
    assert {(Path(f.path).name, f.stage) for f in summary.failures} == {(Path(f.path).name, f.stage) for f in plain.failures}
    assert all(f.path.startswith("file://") for f in summary.failures)
    # The class on Ray's own reader of an fsspec file system: outputs named from input_root.
    ray = ray_cluster
    fs = pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fsspec.filesystem("file")))
    good = [str(tree / rel) for rel, *_ in GOOD]
    ds = ray.data.read_binary_files(good + [str(tree / "corrupt.jpg")], include_paths=True, filesystem=fs)
    rows = ds.map_batches(gpuimg.ray.ProcessBatches, batch_size=4, num_cpus=0.5, num_gpus=1 if device == "cuda" else None,
                          compute=ray.data.ActorPoolStrategy(size=1),
                          fn_constructor_kwargs=dict(steps=STEPS, output_dir=str(tmp_path / "class"), input_root=str(tree),
                                                     device=device)).take_all()
    by_name = {Path(r["path"]).name: r for r in rows}
    assert not by_name["corrupt.jpg"]["ok"] and by_name["corrupt.jpg"]["stage"] == "decode"
    assert sum(r["ok"] for r in rows) == len(GOOD)
    _same_pixels(_outputs(tmp_path / "plain"), _outputs(tmp_path / "class"))


@pytest.mark.ray
def test_training_loop_over_tensor_batches(ray_cluster, tmp_path: Path, device: str) -> None:
    folder = tmp_path / "train"
    write_good_files(folder)
    write_bad_files(folder)
    for name in ("README.md", "locked.png", "truncated.jpg", "empty.jpg", "notes.jpg"):
        (folder / name).unlink()  # Ray's reader reads every file: the images and one corrupt one
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    want = {}
    for x, paths in gpuimg.Pipeline(STEPS, device=device).batches(folder, 4, mean=mean, std=std):
        host = x.get() if hasattr(x, "get") else np.array(x)
        want.update({Path(p).name: host[k] for k, p in enumerate(paths)})
    ray = ray_cluster
    ds = ray.data.read_binary_files(str(folder), include_paths=True).map_batches(
        gpuimg.ray.TensorBatches, batch_size=4, num_cpus=0.5, num_gpus=1 if device == "cuda" else None,
        compute=ray.data.ActorPoolStrategy(size=1),
        fn_constructor_kwargs=dict(steps=STEPS, size=(32, 32), mean=mean, std=std, device=device))
    weights, seen, failed = np.zeros(3 * 32 * 32, np.float32), set(), {}
    for batch in ds.iter_batches(batch_size=4, batch_format="numpy"):
        x = batch["tensor"]
        assert x.dtype == np.float32 and x.shape[1:] == (3, 32, 32)
        for i, path in enumerate(batch["path"]):
            name = Path(path).name
            if not batch["ok"][i]:
                failed[name] = batch["reason"][i]
                continue
            np.testing.assert_allclose(x[i], want[name], atol=1e-6)
            seen.add(name)
        good = x[batch["ok"]].reshape(int(batch["ok"].sum()), -1)
        if len(good):  # one step of least squares towards 1: a model consuming the batches
            weights -= 1e-4 * good.T @ (good @ weights - 1) / len(good)
    assert seen == set(want) and len(seen) == len(GOOD)
    assert set(failed) == {"corrupt.jpg"} and "decode" in failed["corrupt.jpg"]
    assert np.isfinite(weights).all() and np.abs(weights).sum() > 0


@pytest.mark.ray
def test_ray_benchmark_smoke(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason='Ray is not installed: pip install "gpuimg[ray]"')
    pytest.importorskip("cv2", reason="the benchmark's dataset is made with OpenCV")
    out = tmp_path / "ray.json"
    argv = ["bench/ray_bench.py", "--device", "cpu", "--quick", "--classes", "small", "--count", "6", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": checkout_pythonpath()}
    done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    names = [row["name"] for row in json.loads(out.read_text())["rows"]]
    assert any("Ray, 2 CPU actors" in n for n in names) and any("in-process" in n for n in names)


def test_importing_gpuimg_never_imports_ray() -> None:
    code = ("import sys, gpuimg, gpuimg.pipeline.api, gpuimg.cli, gpuimg.ray; "
            "assert 'ray' not in sys.modules, sorted(m for m in sys.modules if m.startswith('ray'))")
    env = {**os.environ, "PYTHONPATH": checkout_pythonpath()}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_without_ray_the_cli_says_how_to_install_it(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['ray'] = None; from gpuimg import cli; "
            f"sys.exit(cli.main(['process', 'assets', {str(tmp_path / 'out')!r}, '--ray', '--include', 'coffee.jpg']))")
    env = {**os.environ, "PYTHONPATH": checkout_pythonpath()}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == cli.EXIT_USAGE, done.stderr
    assert 'pip install "gpuimg[ray]"' in done.stderr and not (tmp_path / "out").exists()
