"""Pipeline end to end on small trees of real photos (assets/) with broken files mixed in.

Outside references: Pillow decodes inputs and outputs, OpenCV applies the same blur; the
batched run is also checked against the same ops applied one image at a time through
gpuimg's single-image path. Tolerances are stated where JPEG re-encoding enters.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

import gpuimg
from gpuimg.codec import Decoder, Encoder
from gpuimg.ops import registry
from gpuimg.pipeline import Pipeline, PipelineConfig, RunOptions, available_ops, load_steps
from gpuimg.pipeline import codecs as pipeline_codecs
from gpuimg.pipeline import files as _files
from gpuimg.pipeline import sinks as _sinks
from gpuimg.pipeline import workers as _workers

from conftest import ASSETS, BAD, GOOD, nvjpeg_generation, write_bad_files, write_good_files

@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of good photos in several formats and sizes plus broken files."""
    root = tmp_path / "in"
    write_good_files(root)
    write_bad_files(root)
    locked = root / "locked.png"
    os.chmod(locked, 0)
    if os.geteuid() == 0:  # root reads through chmod 000: simulate the refusal instead
        real = Path.read_bytes

        def read_bytes(self: Path) -> bytes:
            if self.name == "locked.png":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
    yield root
    os.chmod(locked, 0o644)


def _decoder(device: str) -> Decoder:
    """The pipeline's own fixed (hardware-first) JPEG backends: the Decoder's adaptive
    default may give one item to either JPEG decoder, which differ by a few levels."""
    return Decoder(device, backends=PipelineConfig().decode_backends)


def _decode_file(path: Path, device: str) -> np.ndarray:
    return _decoder(device).decode(path.read_bytes()).numpy()


def _reference(src: Path, steps: list, device: str) -> np.ndarray:
    """The same ops one image at a time: decode, ops on the Image, encode, decode."""
    img = _decoder(device).decode(src.read_bytes(), mode="rgb")
    for name, kwargs in steps:
        img = registry.get_op(name).fn(img, **kwargs)
    encoded = Encoder(device).encode(img, "jpeg", quality=90)
    return _decoder(device).decode(encoded).numpy()


BLUR = [("gaussian_blur", {"sigma": 1.5})]


def test_run_end_to_end(tree: Path, tmp_path: Path, device: str) -> None:
    out = tmp_path / "out"
    # In this process (a test below compares it with the worker path); ring slots reused.
    summary = Pipeline(BLUR, device=device).run(tree, out, batch_size=2, workers=False)
    assert (summary.processed, summary.failed, summary.skipped) == (len(GOOD), len(BAD), 0)
    for rel, *_ in GOOD:
        dst = (out / rel).with_suffix(".jpg")
        got = _decode_file(dst, device)
        want = _reference(tree / rel, BLUR, device)
        # Same decoder, op and encoder as the single-image path: at most 1 level (rounding
        # of a batch vs single kernel; nvJPEG 12's coarser IDCT can turn that into 3 after
        # the JPEG round trip), and the same shape.
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want).max() <= (3 if nvjpeg_generation() == 12 else 1), rel
    report = json.loads((out / "gpuimg-report.json").read_text())
    failed = {Path(f["path"]).name: f for f in report["failures"]}
    assert sorted(failed) == sorted(BAD)
    assert failed["locked.png"]["stage"] == "read" and "ermission" in failed["locked.png"]["reason"]
    assert failed["empty.jpg"]["reason"].endswith("empty file (0 bytes)")
    assert failed["truncated.jpg"]["stage"] == "decode"
    assert report["summary"]["processed"] == len(GOOD) and report["steps"] == [["gaussian_blur", {"sigma": 1.5}]]
    assert summary.bytes_in > 0 and summary.bytes_out > 0
    assert not list(out.rglob(f"*{_files.TMP_MARKER}*"))


def test_matches_opencv_blur_of_pillow_decode(tree: Path, tmp_path: Path, device: str) -> None:
    """Outside reference: Pillow decode -> OpenCV GaussianBlur vs our output decoded by
    Pillow. JPEG q90 re-encoding costs ~1-2 levels on average: mean abs diff < 2.5."""
    cv2 = pytest.importorskip("cv2")
    out = tmp_path / "out"
    Pipeline(BLUR, device=device).run(tree, out, batch_size=3)
    for rel, *_ in GOOD[:4]:
        with PILImage.open(tree / rel) as im:
            src = np.asarray(im.convert("RGB"))
        want = cv2.GaussianBlur(src, (0, 0), 1.5, borderType=cv2.BORDER_REFLECT_101)
        with PILImage.open((out / rel).with_suffix(".jpg")) as im:
            got = np.asarray(im.convert("RGB"))
        assert np.abs(got.astype(float) - want).mean() < 2.5, rel


def test_reencode_without_steps_matches_pillow(tmp_path: Path, device: str) -> None:
    """No steps: a plain re-encode. Its error against the PNG is that of Pillow's own JPEG
    q90 round trip (the outside reference) within 0.5 level on average."""
    out = tmp_path / "out"
    summary = Pipeline([], device=device).run(ASSETS, out, include=["*.png"], format="jpeg")
    assert summary.failed == 0 and summary.processed == len(list(ASSETS.glob("*.png")))
    with PILImage.open(ASSETS / "coffee.png") as im:
        want = np.asarray(im.convert("RGB"))
    with PILImage.open(out / "coffee.jpg") as im:
        got = np.asarray(im.convert("RGB"))
    buf = io.BytesIO()
    PILImage.fromarray(want).save(buf, "JPEG", quality=90)
    pillow_error = np.abs(np.asarray(PILImage.open(buf).convert("RGB")).astype(float) - want).mean()
    assert np.abs(got.astype(float) - want).mean() < pillow_error + 0.5


def test_resume_skips_done_work(tree: Path, tmp_path: Path, device: str) -> None:
    out = tmp_path / "out"
    pipe = Pipeline([], device=device)
    first = pipe.run(tree, out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    (out / "astronaut.jpg").unlink()
    second = pipe.run(tree, out, resume=True)
    assert first.processed == len(GOOD)
    assert (second.processed, second.skipped) == (1, len(GOOD) - 1)
    for path, stamp in stamps.items():
        if path.name != "astronaut.jpg":
            assert path.stat().st_mtime_ns == stamp  # untouched
    # An input newer than its output is redone.
    newer = tree / "sub" / "coffee.png"
    os.utime(newer, ns=(stamps[out / "sub" / "coffee.jpg"] + 10**9,) * 2)
    assert pipe.run(tree, out, resume=True).processed == 1


def test_interrupt_keeps_finished_work_and_leaves_no_partial_file(tmp_path: Path, device: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(12):
        (src / f"img{i:02d}.png").write_bytes((ASSETS / "chelsea.png").read_bytes())
    out = tmp_path / "out"

    def interrupt(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt  # what Ctrl-C raises in the calling thread

    summary = Pipeline([], device=device).run(src, out, batch_size=2, progress=interrupt)
    assert summary.interrupted
    written = sorted(out.glob("*.jpg"))
    assert 3 <= len(written) < 12 and summary.processed == len(written)
    assert not list(out.rglob(f"*{_files.TMP_MARKER}*"))
    for path in written:  # every kept output is whole
        with PILImage.open(path) as im:
            im.load()
    rest = Pipeline([], device=device).run(src, out, resume=True)
    assert rest.processed + rest.skipped == 12 and rest.skipped == len(written)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "o" / "x.jpg"
    with pytest.raises(TypeError):  # fails inside the write: the temporary file goes
        _files.atomic_write(target, 12345)  # type: ignore[arg-type]
    assert list(target.parent.iterdir()) == []

    def interrupted_rename(a, b):
        raise KeyboardInterrupt  # Ctrl-C between the full write and the rename

    monkeypatch.setattr(_files.os, "replace", interrupted_rename)
    with pytest.raises(KeyboardInterrupt):
        _files.atomic_write(target, b"abc")
    assert list(target.parent.iterdir()) == []
    monkeypatch.undo()
    _files.atomic_write(target, b"abc")
    assert target.read_bytes() == b"abc" and [p.name for p in target.parent.iterdir()] == ["x.jpg"]


def test_outputs_never_escape_or_overwrite_inputs(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for name in ("a.jpg", "sub/b.png", "sub/a.png"):
        (root / name).write_bytes(b"x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(elsewhere)  # a link inside output_dir pointing out of it
    jobs = {j.src.name: j.dst for j in _files.plan_jobs(root, out, ".jpg")}
    assert jobs["a.jpg"] == (out / "a.jpg").resolve()
    assert jobs["b.png"] is None and jobs["a.png"] is None  # would land in elsewhere/
    # Output folder == input folder with the same suffix: never over the input.
    same = {j.src.name: j.dst for j in _files.plan_jobs(root, root, ".jpg")}
    assert same["a.jpg"] is None and same["b.png"] == (root / "sub" / "b.jpg").resolve()
    # A list with '..' components maps under the common folder, inside output_dir.
    listed = _files.plan_jobs([root / "sub" / ".." / "a.jpg", root / "sub" / "b.png"], tmp_path / "o2", ".png")
    for job in listed:
        assert (tmp_path / "o2").resolve() in job.dst.parents


def test_refused_outputs_are_failures(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jpg").write_bytes((ASSETS / "chelsea.jpg").read_bytes())
    summary = Pipeline([], device="cpu").run(src, src, report=tmp_path / "r.json")
    assert summary.failed == 1 and summary.failures[0].stage == "plan"
    assert (src / "a.jpg").read_bytes() == (ASSETS / "chelsea.jpg").read_bytes()


def test_discovery_globs_and_list_file(tree: Path, tmp_path: Path) -> None:
    files, root = _files.discover(tree, include=["*.png"], exclude=["sub/*"])
    assert sorted(p.name for p in files) == ["camera.png", "locked.png"] and root == tree
    listing = tmp_path / "list.txt"
    listing.write_text("# two files\nin/astronaut.jpg\n\nin/sub/coffee.png\n")
    files, root = _files.discover(listing)
    assert [p.name for p in files] == ["astronaut.jpg", "coffee.png"] and root == tree.absolute()
    jobs = Pipeline([], device="cpu").plan(listing, tmp_path / "o", format="png")
    assert [j.dst.name for j in jobs] == ["astronaut.png", "coffee.png"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _files.discover(tmp_path / "missing")


@pytest.fixture
def uncapped() -> PipelineConfig:
    """A config whose CPU batches are as large as asked (the batching logic, tested on the
    CPU, is the GPU's)."""
    return PipelineConfig(cpu_batch_size=10**6)


def test_cpu_batches_are_small_so_progress_moves_per_image(tree: Path, tmp_path: Path) -> None:
    sizes: list[int] = []
    done: list[int] = []

    def record(batch):
        sizes.append(len(batch))
        return batch

    Pipeline([record], device="cpu").run(tree, tmp_path / "o", batch_size=64, progress=lambda d, t: done.append(d))
    assert max(sizes) <= PipelineConfig().cpu_batch_size == 2 and sum(sizes) == len(GOOD)
    assert done == list(range(1, len(GOOD) + len(BAD) + 1))


def test_batches_respect_count_and_bytes(tree: Path, tmp_path: Path, uncapped: PipelineConfig) -> None:
    sizes: list[int] = []

    def record(batch):
        sizes.append(len(batch))
        return batch

    pipe = Pipeline([record], config=uncapped, device="cpu")
    pipe.run(tree, tmp_path / "a", batch_size=4)
    assert sizes and max(sizes) <= 4 and sum(sizes) == len(GOOD)
    sizes.clear()
    pipe.run(tree, tmp_path / "b", batch_size=64, max_batch_bytes=30_000)  # ~1 image each
    assert max(sizes) <= 2 and sum(sizes) == len(GOOD)


def test_out_of_memory_splits_the_batch(tree: Path, tmp_path: Path, uncapped: PipelineConfig) -> None:
    seen: list[int] = []

    def picky(batch):
        seen.append(len(batch))
        if len(batch) > 1:
            raise MemoryError("out of memory (simulated)")
        return batch

    summary = Pipeline([picky], config=uncapped, device="cpu").run(tree, tmp_path / "o", batch_size=6)
    assert summary.processed == len(GOOD) and seen.count(1) == len(GOOD)


def test_out_of_memory_while_decoding_splits_the_batch(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       uncapped: PipelineConfig) -> None:
    real = pipeline_codecs.decode_items

    def small_only(decoder, items, out, stream):
        if len(items) > 2:
            raise MemoryError("out of memory (simulated)")
        return real(decoder, items, out, stream)

    monkeypatch.setattr(pipeline_codecs, "decode_items", small_only)
    summary = Pipeline([], config=uncapped, device="cpu").run(tree, tmp_path / "o", batch_size=8)
    assert (summary.processed, summary.failed) == (len(GOOD), len(BAD))


def test_several_decode_and_encode_lanes(tree: Path, tmp_path: Path, device: str) -> None:
    # encode lanes are the in-process path; decode in this process too (same decoder as the reference)
    config = PipelineConfig(decode_lanes=2, encode_lanes=2, encode_in_worker=False, decode_in_worker=False)
    summary = Pipeline(BLUR, config=config, device=device).run(tree, tmp_path / "o", batch_size=1)
    assert (summary.processed, summary.failed) == (len(GOOD), len(BAD))
    for rel, *_ in GOOD:
        got = _decode_file((tmp_path / "o" / rel).with_suffix(".jpg"), device)
        assert np.abs(got.astype(int) - _reference(tree / rel, BLUR, device)).max() <= (3 if nvjpeg_generation() == 12 else 1), rel


def test_steady_state_allocates_nothing(tmp_path: Path, device: str) -> None:
    """Allocations do not grow with the number of batches: buffers are reused."""
    src = tmp_path / "in"
    src.mkdir()
    data = (ASSETS / "chelsea.jpg").read_bytes()

    def allocations(count: int) -> int:
        for i in range(count):
            (src / f"{i:03d}.jpg").write_bytes(data)
        gpuimg.reset_memory_stats()
        Pipeline(BLUR, device=device).run(src, tmp_path / f"o{count}", batch_size=2)
        return gpuimg.memory_stats(device)["allocations"]

    # 8 batches use every pooled buffer (decode ring, step-output sets) at least once;
    # 20 batches then allocate nothing more. A first run warms the GPU encode worker,
    # whose staging buffers outlive pipelines.
    allocations(16)
    assert allocations(16) == allocations(40)


def test_batches_match_to_tensor_on_single_images(tmp_path: Path, device: str) -> None:
    from gpuimg.ops.color import to_tensor

    src = tmp_path / "in"
    src.mkdir()
    for i, (rel, asset, box, fmt) in enumerate(GOOD[:5]):
        left, top = box[:2]
        with PILImage.open(ASSETS / asset) as im:
            im.crop((left, top, left + 48, top + 40)).save(src / f"{i}.png")
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    it = Pipeline([], device=device).batches(src, 2, size=(40, 48), mean=mean, std=std)
    seen = []
    for tensor, paths in it:
        assert tensor.shape == (len(paths), 3, 40, 48) and tensor.dtype == np.float32
        host = tensor.get() if device == "cuda" else tensor
        for row, path in zip(host, paths):
            img = Decoder(device).decode(Path(path).read_bytes(), mode="rgb")
            want = to_tensor(img, mean=mean, std=std)
            want = want.get() if device == "cuda" else want
            np.testing.assert_allclose(row, want, rtol=0, atol=1e-5)
            # Outside reference: Pillow's pixels normalised by hand.
            with PILImage.open(path) as im:
                rgb = np.asarray(im.convert("RGB"), np.float32) / 255
            np.testing.assert_allclose(row, ((rgb - mean) / std).transpose(2, 0, 1), atol=1e-4)
            seen.append(path)
    assert len(seen) == 5 and it.failures == []


def test_batches_skip_bad_files(tree: Path, device: str) -> None:
    pytest.importorskip("gpuimg.ops.geometry")
    with Pipeline([], device=device).batches(tree, 4, size=(32, 32)) as it:
        rows = sum(len(paths) for _, paths in it)
    assert rows == len(GOOD) and sorted(Path(f.path).name for f in it.failures) == sorted(BAD)


def test_batches_default_to_the_steps_output_size(tree: Path) -> None:
    # Issue 18: steps ending in a fixed crop give tensors of that crop, not a silent 224x224.
    steps = [("resize_shorter", {"size": 80}), ("center_crop", {"size": [64, 48]})]
    with Pipeline(steps, device="cpu").batches(tree, 4) as it:
        shapes = {tuple(t.shape[1:]) for t, _ in it}
    assert shapes == {(3, 64, 48)}


@pytest.mark.parametrize("steps", [[], [("resize_shorter", {"size": 80})], [lambda b: b]])
def test_batches_need_size_where_the_steps_size_is_not_fixed(tree: Path, steps: list) -> None:
    with pytest.raises(ValueError, match=r"needs size=\(height, width\)"):
        Pipeline(steps, device="cpu").batches(tree, 4)
    with Pipeline(steps, device="cpu").batches(tree, 4, size=(32, 32)) as it:  # given: resized to it
        assert {tuple(t.shape[2:]) for t, _ in it} == {(32, 32)}


def test_run_progress_true_draws_a_tqdm_bar(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    Pipeline([], device="cpu").run(tree, tmp_path / "a", progress=True)
    assert f"{len(GOOD) + len(BAD)}/{len(GOOD) + len(BAD)}" in capsys.readouterr().err  # tqdm.auto in a terminal: stderr
    calls: list[tuple[int, int]] = []
    Pipeline([], device="cpu").run(tree, tmp_path / "b", progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(GOOD) + len(BAD),) * 2 and [d for d, _ in calls] == list(range(1, len(calls) + 1))
    for off in (False, None):
        Pipeline([], device="cpu").run(tree, tmp_path / f"c{off}", progress=off)
        assert capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="progress must be"):
        Pipeline([], device="cpu").run(tree, tmp_path / "d", progress="yes")


def test_steps_from_json_and_errors(tmp_path: Path) -> None:
    spec = tmp_path / "p.json"
    spec.write_text(json.dumps({"steps": [["gaussian_blur", {"sigma": 2}], {"op": "sharpen", "amount": 0.5}]}))
    steps = load_steps(spec)
    assert steps == [("gaussian_blur", {"sigma": 2}), ("sharpen", {"amount": 0.5})]
    assert Pipeline(steps, device="cpu").steps == [["gaussian_blur", {"sigma": 2}], ["sharpen", {"amount": 0.5}]]
    assert {"gaussian_blur", "sharpen"} <= set(available_ops())
    with pytest.raises(ValueError, match="unknown step 'blurr'.*gaussian_blur"):
        Pipeline([("blurr", {})], device="cpu")
    with pytest.raises(ValueError, match="step 'gaussian_blur' cannot take"):
        Pipeline([("gaussian_blur", {"sigmaa": 1})], device="cpu")
    spec.write_text("[1, 2]")
    with pytest.raises(ValueError, match="step 0"):
        load_steps(spec)
    with pytest.raises(ValueError, match="format='gif'"):
        Pipeline([], device="cpu").run([], tmp_path, format="gif")
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        Pipeline([], device="cpu").run([], tmp_path, batch_size=0)


def test_readers_parse_each_file_once_and_report_bad_files(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device: str) -> None:
    """Headers are parsed once, on the reader threads: the decode lane gets the parsed
    sources; a corrupt file fails there, per item, and never reaches it (a truncated JPEG
    too on the CPU; on a GPU the decode checks JPEG scans on the device)."""
    from gpuimg import codec
    from gpuimg.codec import sources  # the one place a header becomes an ImageInfo
    parsed: list[object] = []
    real_info_of, real_decode = sources._info_of, pipeline_codecs.decode_items

    def counting_info_of(loaded):
        parsed.append(loaded)
        return real_info_of(loaded)

    decoded: list[str] = []

    def recording_decode(decoder, items, out, stream):
        assert all(isinstance(it.source, codec.ParsedSource) for it in items)
        decoded.extend(it.job.src.name for it in items)
        return real_decode(decoder, items, out, stream)

    monkeypatch.setattr(sources, "_info_of", counting_info_of)
    monkeypatch.setattr(pipeline_codecs, "decode_items", recording_decode)
    monkeypatch.setattr(pipeline_codecs.CodecPool, "prewarm", lambda self, *args: None)  # its tiny JPEG is no input
    # in-process lanes only: a decode worker process reads and parses its batches itself
    summary = Pipeline(BLUR, device=device).run(tree, tmp_path / "o", batch_size=3, workers=False)
    assert (summary.processed, summary.failed) == (len(GOOD), len(BAD))
    # One header read per good file, plus at most one per bad file that has bytes
    # (truncated, corrupt, notes): decoding did not parse again (it would double the count).
    assert len(GOOD) + 1 <= len(parsed) <= len(GOOD) + 3
    # On a GPU a JPEG's scans are checked by the decode, for the whole batch on the device
    # (parse(check_scans=False) in the readers): the truncated JPEG fails there, per item.
    late = ["truncated.jpg"] if device == "cuda" else []
    assert sorted(decoded) == sorted([Path(rel).name for rel, *_ in GOOD] + late)
    failed = {Path(f.path).name: f for f in summary.failures}
    assert sorted(failed) == sorted(BAD)
    assert failed["truncated.jpg"].stage == "decode" and "truncated" in failed["truncated.jpg"].reason
    assert failed["corrupt.jpg"].stage == "decode" and "DecodeError" in failed["corrupt.jpg"].reason
    assert failed["notes.jpg"].stage == "decode" and failed["empty.jpg"].stage == "read"
    assert failed["locked.png"].stage == "read"


def test_pipeline_decoder_and_writer_defaults(device: str) -> None:
    """Hardware-first JPEG backends (fixed load hints) build and decode on every device;
    two writer threads by default."""
    import inspect

    dec = pipeline_codecs.new_decoder(device, PipelineConfig())
    got = dec.decode_batch([ASSETS / "coffee.jpg", ASSETS / "coffee.png"], mode="rgb").raise_errors()
    with PILImage.open(ASSETS / "coffee.jpg") as im:
        want = np.asarray(im.convert("RGB"))
    assert np.abs(got[0].numpy().astype(int) - want).max() <= 4
    with PILImage.open(ASSETS / "coffee.png") as im:
        assert np.array_equal(got[1].numpy(), np.asarray(im.convert("RGB")))
    assert RunOptions().writers == 1


# --------------------------------------------------------------------------- encode worker


@pytest.fixture
def worker_ready(gpu: str) -> str:
    """A started encode worker in the pool: a run of any size then uses it."""
    for role in _workers.ROLES:
        worker = _workers.take(role, 0, PipelineConfig())
        assert worker is not None, _workers._unavailable
        _workers.give_back(worker)
    return gpu


def test_gpu_codecs_in_worker_processes_with_the_same_outputs(tree: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch, worker_ready: str) -> None:
    """On the GPU the encode-and-write stage runs in a worker process and a second worker
    decodes part of the batches (the codecs overlap there); the files are byte for byte
    those of the in-process path, and the same files fail at the same stage."""
    taken = []
    real_take = _workers.take
    monkeypatch.setattr(_workers, "take", lambda role, device_id, config, wait=True, start=True: taken.append(real_take(role, device_id, config, wait, start)) or taken[-1])
    gpu = worker_ready
    by_worker = Pipeline(BLUR, device=gpu).run(tree, tmp_path / "worker", batch_size=3, workers=True)
    assert len(taken) == 2 and None not in taken, _workers._unavailable
    in_process = Pipeline(BLUR, device=gpu).run(tree, tmp_path / "here", batch_size=3, workers=False)
    assert (by_worker.processed, by_worker.failed) == (in_process.processed, in_process.failed) == (len(GOOD), len(BAD))
    assert sorted((f.path, f.stage) for f in by_worker.failures) == sorted((f.path, f.stage) for f in in_process.failures)
    for rel, *_ in GOOD:
        dst = Path(rel).with_suffix(".jpg")
        a, b = (tmp_path / "worker" / dst).read_bytes(), (tmp_path / "here" / dst).read_bytes()
        assert a == b, rel  # the same decoders and encoder on both paths: the same bytes
    assert by_worker.stage_seconds["encode"] > 0 and by_worker.stage_seconds["write"] > 0


def test_encode_worker_applies_png_quality(tree: Path, tmp_path: Path, worker_ready: str) -> None:
    """PNG quality sets the zlib level in the encode worker as in this process: the same
    bytes on both paths, smaller files at low quality, the same pixels at every level."""
    gpu = worker_ready
    sizes = {}
    for q in (100, 10):
        for where, workers in (("worker", True), ("here", False)):
            out = tmp_path / f"{where}{q}"
            Pipeline([], device=gpu).run(tree, out, batch_size=3, format="png", quality=q, workers=workers)
            sizes[where, q] = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")}
        assert sizes["worker", q] == sizes["here", q]
    assert sizes["worker", 10] and sum(map(len, sizes["worker", 10].values())) < sum(map(len, sizes["worker", 100].values()))
    for rel, data in sizes["worker", 10].items():
        assert np.array_equal(np.asarray(PILImage.open(io.BytesIO(data))), np.asarray(PILImage.open(io.BytesIO(sizes["worker", 100][rel]))))


def test_worker_reports_write_failures_per_item(tmp_path: Path, worker_ready: str) -> None:
    gpu = worker_ready
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / f"{name}.jpg").write_bytes((ASSETS / "chelsea.jpg").read_bytes())
    (out / "b.jpg").mkdir(parents=True)  # the output path is taken by a folder
    summary = Pipeline([], device=gpu).run(src, out, workers=True)
    assert (summary.processed, summary.failed) == (2, 1), summary.failures
    failure = summary.failures[0]
    assert Path(failure.path).name == "b.jpg" and failure.stage == "write" and failure.reason
    assert (out / "a.jpg").is_file() and (out / "c.jpg").is_file()
    assert not list(out.rglob(f"*{_files.TMP_MARKER}*"))


def test_workers_join_a_run_that_started_without_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      worker_ready: str) -> None:
    """Plan "join": the run starts in this process and the workers take over once ready
    (here: after a few batches). Every output is there, byte-equal to a run without
    workers (the same decoders and encoder on both paths), and both paths were used."""
    src = tmp_path / "join-in"
    src.mkdir()
    for i in range(12):
        (src / f"{i:02d}.jpg").write_bytes((ASSETS / ("chelsea.jpg", "coffee.jpg")[i % 2]).read_bytes())
    config = PipelineConfig(worker_min_run_bytes=1)  # every run "joins"; worker_ready started them: the run
    polls = {"decode": 0, "encode": 0}  # is told they are not ready for its first few batches
    real_ready = _workers.Joining.ready

    def late(self: _workers.Joining) -> Any:
        polls[self.role] += 1
        return real_ready(self) if polls[self.role] > 3 else None

    monkeypatch.setattr(_workers.Joining, "ready", late)
    made = []
    real_sink = _sinks.WorkerSink.__init__
    monkeypatch.setattr(_sinks.WorkerSink, "__init__", lambda self, *a, **k: made.append(1) or real_sink(self, *a, **k))
    pipe = Pipeline(BLUR, config=config, device=worker_ready)
    joined = pipe.run(src, tmp_path / "joined", batch_size=1)
    alone = Pipeline(BLUR, device=worker_ready).run(src, tmp_path / "alone", batch_size=1, workers=False)
    assert (joined.processed, joined.failed) == (alone.processed, alone.failed) == (12, 0)
    # The encode worker joined mid-run (the sink asks once per batch); the decode lane asked
    # too (it may have found the batches all taken before its fourth look: timing).
    assert made == [1] and polls["encode"] > 3 and polls["decode"] >= 1
    for i in range(12):
        a, b = (tmp_path / "joined" / f"{i:02d}.jpg").read_bytes(), (tmp_path / "alone" / f"{i:02d}.jpg").read_bytes()
        assert a == b, i


def test_pipeline_falls_back_to_encoding_in_process(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    device: str) -> None:
    monkeypatch.setattr(_workers, "take", lambda role, device_id, config, wait=True, start=True: None)  # no worker can run here
    summary = Pipeline(BLUR, device=device).run(tree, tmp_path / "o", batch_size=2, workers=True)
    assert (summary.processed, summary.failed) == (len(GOOD), len(BAD))


def test_workers_argument_chooses_the_path(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           worker_ready: str) -> None:
    asked = []
    real_take = _workers.take
    monkeypatch.setattr(_workers, "take", lambda role, device_id, config, wait=True, start=True: asked.append((role, wait)) or real_take(role, device_id, config, wait, start))
    pipe = Pipeline([], device=worker_ready)
    assert pipe.run(tree, tmp_path / "a", workers=False).processed == len(GOOD) and asked == []
    assert pipe.run(tree, tmp_path / "b", workers=True).processed == len(GOOD)
    assert sorted(asked) == [("decode", True), ("encode", True)]
    asked.clear()
    assert pipe.run(tree, tmp_path / "c").processed == len(GOOD)  # a short run does not wait
    assert sorted(asked) == [("decode", False), ("encode", False)]
    asked.clear()
    picky = Pipeline([], config=PipelineConfig(worker_min_file_bytes=10**9), device=worker_ready)
    assert picky.run(tree, tmp_path / "d").processed == len(GOOD)  # files below the size: in this process
    assert asked == []


def test_worker_plan_comes_from_the_data(tmp_path: Path) -> None:
    """Workers only for inputs that average worker_min_file_bytes; a run of
    worker_min_run_bytes starts them and lets them join, a shorter one takes them only if
    ready; the run's argument overrides (True waits for them)."""
    cfg = PipelineConfig(worker_min_run_bytes=3000, worker_min_file_bytes=1000)
    assert [cfg.worker_plan(n, size, None) for n, size in ((3, 1000), (2, 1000), (3, 999))] == ["join", "ready", "off"]
    assert cfg.worker_plan(1, 0, True) == "wait" and cfg.worker_plan(10**6, 10**9, False) == "off"
    for i, size in enumerate((100, 300)):
        (tmp_path / f"{i}.jpg").write_bytes(b"x" * size)
    jobs = _files.plan_jobs(tmp_path, None, "", None, ())
    assert _files.mean_file_bytes(jobs) == 200
    assert _files.mean_file_bytes(jobs + [_files.Job(9, tmp_path / "gone.jpg", None)]) == 400 / 3


def test_worker_that_cannot_start_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting a worker without a usable GPU fails with WorkerUnavailable naming the cause
    (the pipeline then encodes in-process); the switch turns workers off."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the child sees no GPU, on any machine
    for role in _workers.ROLES:
        with pytest.raises(_workers.WorkerUnavailable, match=f"{role} worker could not start"):
            _workers.Worker(role, 0)
    monkeypatch.delenv("GPUIMG_ENCODE_WORKER", raising=False)
    monkeypatch.delenv("GPUIMG_DECODE_WORKER", raising=False)
    assert PipelineConfig().encode_in_worker and PipelineConfig().decode_in_worker
    monkeypatch.setenv("GPUIMG_DECODE_WORKER", "0")  # read into the default config
    assert PipelineConfig().encode_in_worker and not PipelineConfig().decode_in_worker
    assert PipelineConfig().worker_roles("cuda") == ["encode"] and PipelineConfig(decode_in_worker=True).worker_roles("cuda") == ["encode", "decode"]


# --------------------------------------------------------------------------- registry steps


def _png_tree(root: Path, count: int = 3) -> Path:
    root.mkdir(parents=True)
    for i in range(count):
        with PILImage.open(ASSETS / "chelsea.png") as im:
            im.convert("RGB").crop((10 * i, 0, 10 * i + 96, 64 + 8 * i)).save(root / f"{i}.png")
    return root


def test_overlay_steps_decode_the_file_once_and_match_the_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              device: str) -> None:
    """blend/paste name their overlay by path: decoded once when the Pipeline is made, then
    layered over every image of every batch; pixels equal the op on single images (PNG)."""
    from gpuimg.ops import compose
    from gpuimg.pipeline import steps as steps_module

    src = _png_tree(tmp_path / "in")
    mark = tmp_path / "mark.png"
    with PILImage.open(ASSETS / "coffee_rgba.png") as im:
        im.crop((250, 150, 282, 174)).save(mark)
    reads: list[object] = []
    real_read = steps_module.read
    monkeypatch.setattr(steps_module, "read", lambda *a, **k: reads.append(a) or real_read(*a, **k))
    spec = [("blend", {"src": str(mark), "top": 5, "left": -3, "opacity": 0.5}), ("paste", {"src": str(mark), "top": 40})]
    pipe = Pipeline(spec, device=device)
    assert len(reads) == 2 and pipe.steps == [list(s) for s in spec]
    summary = pipe.run(src, tmp_path / "out", format="png", batch_size=2)
    assert (summary.processed, summary.failed) == (3, 0) and len(reads) == 2
    layer = Decoder(device).decode(mark.read_bytes(), mode="rgba")
    for path in sorted(src.glob("*.png")):
        img = Decoder(device).decode(path.read_bytes(), mode="rgb")
        want = compose.paste(compose.blend(img, layer, top=5, left=-3, opacity=0.5), layer, top=40).numpy()
        assert np.array_equal(_decode_file(tmp_path / "out" / path.name, device), want), path.name
    with pytest.raises(ValueError, match="step 'blend': src='.*missing.png' cannot be read"):
        Pipeline([("blend", {"src": str(tmp_path / "missing.png")})], device=device)


def test_fill_and_gradient_from_json_steps(tmp_path: Path, device: str) -> None:
    from gpuimg.ops import compose

    src = _png_tree(tmp_path / "in", 2)
    spec = tmp_path / "p.json"
    spec.write_text(json.dumps([{"op": "gradient", "stops": [[0, 0, 0], [255, 128, 0]], "angle": 90},
                                ["fill", {"color": [9, 9, 9], "region": [0, 0, 4, 8]}]]))
    summary = Pipeline(load_steps(spec), device=device).run(src, tmp_path / "out", format="png")
    assert (summary.processed, summary.failed) == (2, 0)
    for path in sorted(src.glob("*.png")):
        img = Decoder(device).decode(path.read_bytes(), mode="rgb")
        want = compose.fill(compose.gradient(img, [[0, 0, 0], [255, 128, 0]], angle=90), [9, 9, 9], region=[0, 0, 4, 8])
        assert np.array_equal(_decode_file(tmp_path / "out" / path.name, device), want.numpy()), path.name
    assert {"fill", "gradient", "blend", "paste"} <= set(available_ops()) and "grid" not in available_ops()
    with pytest.raises(ValueError, match="unknown step 'grid'"):
        Pipeline([("grid", {"columns": 2})], device="cpu")


def test_config_is_checked_and_frozen() -> None:
    import dataclasses

    cfg = PipelineConfig()
    assert (cfg.decode_lanes, cfg.encode_lanes, cfg.decode_ring, cfg.serialize_codecs) == (1, 1, 2, True)
    assert cfg.worker_roles("cpu") == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.decode_lanes = 2  # type: ignore[misc]
    with pytest.raises(ValueError, match="decode_lanes must be an int >= 1"):
        PipelineConfig(decode_lanes=0)
    with pytest.raises(TypeError, match="config must be a PipelineConfig"):
        Pipeline([], config={"decode_lanes": 2}, device="cpu")  # type: ignore[arg-type]
    assert pipeline_codecs.size_hint([(100, 200, 3)] * 8, 0) is None  # no preallocation
