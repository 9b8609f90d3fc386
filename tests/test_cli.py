"""The ``gpuimg`` command: process/info/bench, exit codes 0/1/2, usage messages.

Pixel correctness of the pipeline is tested in test_pipeline.py; here the outputs are
checked against Pillow (the outside reference) only where the CLI adds something.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from gpuimg import cli
from gpuimg.cli import _common as cli_common
from gpuimg.cli import _process as cli_process

from conftest import ASSETS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """Three small real photos (two formats) in a folder tree."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name, box in (("chelsea.png", (100, 50, 196, 122)), ("coffee.jpg", (200, 100, 296, 172))):
        with PILImage.open(ASSETS / name) as im:
            im.crop(box).save(src / name)
    shutil.copy(src / "chelsea.png", src / "sub" / "again.png")
    return src


def test_op_flags_keep_their_order() -> None:
    args = cli.build_parser().parse_args(
        ["process", "a", "b", "--blur", "1.5", "--gray", "--resize-shorter", "256", "--center-crop", "224x200", "--sharpen", "0.5"]
    )
    assert args.steps == [
        ("gaussian_blur", {"sigma": 1.5}),
        ("to_gray", {}),
        ("resize_shorter", {"size": 256}),
        ("center_crop", {"size": (224, 200)}),
        ("sharpen", {"amount": 0.5}),
    ]
    assert cli.build_parser().parse_args(["process", "a", "b"]).steps == []


def test_process_defaults_reencode_jpeg(small: Path, tmp_path: Path, device: str, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    code = cli.main(["process", str(small), str(out), "--device", device, "--no-progress"])
    assert code == cli.EXIT_OK
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == ["chelsea.jpg", "coffee.jpg", "sub/again.jpg"]
    with PILImage.open(out / "chelsea.jpg") as im, PILImage.open(small / "chelsea.png") as ref:
        assert im.format == "JPEG" and im.size == ref.size
        # JPEG q90 of a photo: a few levels on average (Pillow decodes both).
        assert np.abs(np.asarray(im, float) - np.asarray(ref.convert("RGB"))).mean() < 4
    assert "processed 3, skipped 0, failed 0" in capsys.readouterr().out


def test_process_with_ops_png_and_resume(small: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    argv = ["process", str(small), str(out), "--blur", "1", "--gray", "--format", "png", "--device", "cpu", "--no-progress"]
    assert cli.main(argv) == cli.EXIT_OK
    with PILImage.open(out / "coffee.png") as im:
        assert im.size == (96, 72)
        pixels = np.asarray(im)
    assert pixels.ndim == 2 or np.array_equal(pixels[..., 0], pixels[..., 1])  # gray
    capsys.readouterr()
    assert cli.main(argv + ["--resume"]) == cli.EXIT_OK
    assert "processed 0, skipped 3" in capsys.readouterr().out


def test_process_failures_exit_1_with_report(small: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # as on a terminal: the bar is drawn
    (small / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (small / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    code = cli.main(["process", str(small), str(out), "--device", "cpu"])  # with the tqdm bar
    assert code == cli.EXIT_FAILURES
    report = json.loads((out / "gpuimg-report.json").read_text())
    assert sorted(Path(f["path"]).name for f in report["failures"]) == ["broken.jpg", "empty.png"]
    assert report["summary"]["processed"] == 3
    captured = capsys.readouterr()
    assert "failed: " in captured.out and "report:" in captured.out
    assert "5/5" in captured.err  # the progress bar counted every item, failures included


def test_pipeline_file_and_dry_run(small: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "steps.json"
    spec.write_text(json.dumps([["gaussian_blur", {"sigma": 2.0}], ["sharpen", {"amount": 1.0}]]))
    out = tmp_path / "out"
    code = cli.main(["process", str(small), str(out), "--pipeline", str(spec), "--dry-run", "--device", "cpu"])
    assert code == cli.EXIT_OK and not out.exists()
    text = capsys.readouterr().out
    assert "gaussian_blur(sigma=2.0) -> sharpen(amount=1.0)" in text and "3 inputs" in text
    assert str(out / "sub" / "again.jpg") in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["process"], "required: SRC, DST"),
        (["process", "a", "b", "--resize-shorter", "abc"], "expected a positive integer"),
        (["process", "a", "b", "--center-crop", "2x2x2"], "expected a size HxW"),
        (["process", "a", "b", "--quality", "101"], "quality in 1..100"),
        (["process", "a", "b", "--format", "gif"], "invalid choice: 'gif'"),
        (["process", "a", "b", "--format", "pnm"], "invalid choice: 'pnm'"),  # decoded, never written
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "required: COMMAND"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(argv) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_usage_errors_found_after_parsing_exit_2(small: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = str(tmp_path / "out")
    assert cli.main(["process", str(tmp_path / "missing"), out]) == cli.EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err
    spec = tmp_path / "bad.json"
    spec.write_text('[["no_such_op", {}]]')
    assert cli.main(["process", str(small), out, "--pipeline", str(spec), "--device", "cpu"]) == cli.EXIT_USAGE
    assert "unknown step 'no_such_op'; available steps:" in capsys.readouterr().err
    spec.write_text("{not json")
    assert cli.main(["process", str(small), out, "--pipeline", str(spec), "--device", "cpu"]) == cli.EXIT_USAGE
    assert "cannot be read as JSON" in capsys.readouterr().err
    spec.write_text('[["gaussian_blur", {"radius_typo": 3}]]')
    assert cli.main(["process", str(small), out, "--pipeline", str(spec), "--device", "cpu"]) == cli.EXIT_USAGE
    assert "step 'gaussian_blur' cannot take" in capsys.readouterr().err


def test_info(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    bad = tmp_path / "x.jpg"
    bad.write_text("nope")
    code = cli.main(["info", str(ASSETS / "chelsea.jpg"), str(ASSETS / "camera_gray.png"), str(bad), "--json"])
    assert code == cli.EXIT_FAILURES  # one file could not be read; the others are listed
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    with PILImage.open(ASSETS / "chelsea.jpg") as im:
        assert (rows[0]["width"], rows[0]["height"], rows[0]["codec"]) == (*im.size, "jpeg")
    assert rows[1]["channels"] == 1 and rows[1]["orientation"] == 1


def test_bench_runs(capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("gpuimg.ops.geometry")
    assert cli.main(["bench", "--count", "6", "--size", "96x128", "--batch-size", "4", "--device", "cpu"]) == cli.EXIT_OK
    assert "images/s" in capsys.readouterr().out


def test_console_script_module_entry(tmp_path: Path) -> None:
    """``python -m gpuimg.cli`` is the console script's code path, exit code included."""
    result = subprocess.run([sys.executable, "-m", "gpuimg.cli", "process", "--quality", "0", "a", "b"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "quality" in result.stderr


def test_readme_quick_start_command(tmp_path: Path, device: str, capsys: pytest.CaptureFixture) -> None:
    """`gpuimg process assets/ out/ --include "*.jpg"`: every bundled JPEG re-encoded, exit 0
    (without the filter chelsea.jpg and chelsea.png would both write chelsea.jpg: refused)."""
    out = tmp_path / "out"
    argv = ["process", str(ASSETS), str(out), "--include", "*.jpg", "--device", device, "--no-progress"]
    assert cli.main(argv) == cli.EXIT_OK
    images = [p for p in ASSETS.iterdir() if p.suffix == ".jpg"]
    written = list(out.glob("*.jpg"))
    assert len(written) == len(images) and not (out / "README.jpg").exists()
    for path in written:
        with PILImage.open(path) as im:
            assert im.format == "JPEG" and im.mode in ("RGB", "L")  # gray stays gray (--mode keep)


def test_blend_and_paste_flags(small: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--blend FILE@T,L,OPACITY (a watermark) and --paste FILE@T,L: steps in flag order,
    the overlay decoded once; pixels equal the ops on single images."""
    from gpuimg.codec import Decoder
    from gpuimg.ops import compose

    mark = tmp_path / "logo.png"
    with PILImage.open(ASSETS / "coffee_rgba.png") as im:
        im.crop((250, 150, 274, 166)).save(mark)
    args = cli.build_parser().parse_args(["process", "a", "b", "--gray", "--blend", f"{mark}@4,6,0.5", "--paste", str(mark)])
    assert args.steps == [("to_gray", {}), ("blend", {"src": str(mark), "top": 4, "left": 6, "opacity": 0.5}),
                          ("paste", {"src": str(mark), "top": 0, "left": 0})]
    out = tmp_path / "out"
    argv = ["process", str(small), str(out), "--blend", f"{mark}@4,-6,0.5", "--paste", f"{mark}@30,2", "--format", "png",
            "--device", "cpu", "--no-progress"]
    assert cli.main(argv) == cli.EXIT_OK
    layer = Decoder("cpu").decode(mark.read_bytes(), mode="rgba")
    img = Decoder("cpu").decode((small / "coffee.jpg").read_bytes(), mode="rgb")
    want = compose.paste(compose.blend(img, layer, top=4, left=-6, opacity=0.5), layer, top=30, left=2).numpy()
    with PILImage.open(out / "coffee.png") as im:
        assert np.array_equal(np.asarray(im), want)
    for bad in (f"{mark}@1", f"{mark}@1,2,3", "@1,2"):
        assert cli.main(["process", "a", "b", "--blend", bad]) == cli.EXIT_USAGE
        assert "expected FILE[@TOP,LEFT[,OPACITY]]" in capsys.readouterr().err
    assert cli.main(["process", "a", "b", "--paste", f"{mark}@1,2,0.5"]) == cli.EXIT_USAGE
    assert cli.main(["process", str(small), str(out), "--blend", str(tmp_path / "nope.png"), "--device", "cpu"]) == cli.EXIT_USAGE
    assert "cannot be read as an image" in capsys.readouterr().err


def test_format_aliases_and_fill_through_pipeline_json(small: Path, tmp_path: Path) -> None:
    spec = tmp_path / "steps.json"
    spec.write_text(json.dumps([["fill", {"color": [255, 0, 0]}]]))
    out = tmp_path / "out"
    assert cli.main(["process", str(small), str(out), "--pipeline", str(spec), "--format", "tif", "--device", "cpu",
                     "--no-progress"]) == cli.EXIT_OK
    with PILImage.open(out / "chelsea.tif") as im:
        assert im.format == "TIFF" and np.asarray(im.convert("RGB"))[0, 0].tolist() == [255, 0, 0]


# --- first-hour gaps (issue 18) -------------------------------------------------------------


def _run_cli(*argv: str, cwd: Path = ROOT, pipe_to_head: bool = False) -> subprocess.CompletedProcess:
    from conftest import checkout_pythonpath

    env = {**__import__("os").environ, "PYTHONPATH": checkout_pythonpath()}
    cmd = [sys.executable, "-m", "gpuimg.cli", *argv]
    if pipe_to_head:
        producer = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert producer.stdout is not None
        producer.stdout.readline()
        producer.stdout.close()  # what `| head -1` does: the reader goes away
        _, err = producer.communicate(timeout=120)
        return subprocess.CompletedProcess(cmd, producer.returncode, "", err.decode())
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_version_flag(capsys: pytest.CaptureFixture) -> None:
    import gpuimg

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gpuimg {gpuimg.__version__}"


def test_help_lists_exit_codes(capsys: pytest.CaptureFixture) -> None:
    for argv in (["--help"], ["process", "--help"]):
        assert cli.main(argv) == 0
        text = capsys.readouterr().out
        assert "exit codes:" in text and "143" in text and "130" in text


def test_info_on_a_folder_lists_its_images(tmp_path: Path, small: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["info", str(small)]) == cli.EXIT_OK
    names = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert [Path(n).name for n in names] == ["chelsea.png", "coffee.jpg", "again.png"]
    (tmp_path / "none").mkdir()
    assert cli.main(["info", str(tmp_path / "none")]) == cli.EXIT_OK
    assert "no image files" in capsys.readouterr().err


def test_empty_folder_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "in").mkdir()
    assert cli.main(["process", str(tmp_path / "in"), str(tmp_path / "out"), "--device", "cpu"]) == cli.EXIT_OK
    assert "nothing to do: no input images" in capsys.readouterr().err
    (tmp_path / "in" / "a.jpg").write_bytes((ASSETS / "coffee.jpg").read_bytes())
    assert cli.main(["process", str(tmp_path / "in"), str(tmp_path / "out"), "--include", "*.png", "--device", "cpu"]) == 0
    assert "matching --include/--exclude" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_output_into_a_closed_pipe_is_quiet(small: Path, tmp_path: Path) -> None:
    for argv in (("process", str(small), str(tmp_path / "o"), "--dry-run", "--device", "cpu"), ("info", str(ASSETS))):
        result = _run_cli(*argv, pipe_to_head=True)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_device_cuda_without_gpu_names_the_flag(small: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import gpuimg

    if gpuimg.cuda_available():
        pytest.skip("a GPU is usable here: --device cuda works")
    assert cli.main(["process", str(small), str(tmp_path / "o"), "--device", "cuda"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "--device cuda asks for a GPU" in err and "Use --device cpu" in err and "device='cpu'" not in err


def test_a_small_job_without_device_runs_on_the_cpu(small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    """Without --device, a job of few pixels goes to the CPU (it ends before a GPU would
    have started) and the summary says so; a larger one, or more files than the header
    check reads, gets the default device; --device always wins."""
    from gpuimg.pipeline import PipelineConfig
    from gpuimg.pipeline.files import plan_jobs

    assert cli.main(["process", str(small), str(tmp_path / "o"), "--no-progress"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    import gpuimg

    if gpuimg.cuda_available():
        assert "; on cpu (chosen for a job this small" in out and "--device cuda" in out
    else:  # no GPU to suggest: the reason instead (tests/test_first_hour.py)
        assert "; on cpu (no GPU: " in out and "--device cuda" not in out
    jobs = plan_jobs(small, tmp_path / "o2", ".jpg")
    assert jobs and cli_process._job_device(jobs) == "cpu"
    assert cli_process._job_device(jobs * 65) is None  # too many files to be a small job
    monkeypatch.setattr(cli_process, "_config", lambda: PipelineConfig(prestart_workers=False, cpu_job_max_bytes=100))
    assert cli_process._job_device(jobs) is None
    monkeypatch.setattr(cli_process, "_config", lambda: PipelineConfig(prestart_workers=False, cpu_job_max_bytes=0))
    assert cli_process._job_device(jobs) is None


def test_summary_names_the_device(small: Path, tmp_path: Path, device: str, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["process", str(small), str(tmp_path / "o"), "--device", device]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"; on {device}" in out
    if device == "cpu":
        from gpuimg.device import device_report

        assert device_report() in out or "(asked for)" in out


def test_no_progress_bar_when_stderr_is_not_a_terminal(small: Path, tmp_path: Path) -> None:
    result = _run_cli("process", str(small), str(tmp_path / "o"), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "img/s" not in result.stderr and "\r" not in result.stderr  # tqdm's bar lines


def test_bench_quick_on_a_plain_install(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """`gpuimg bench --quick` needs nothing beyond gpuimg's dependencies (no Pillow)."""
    import builtins

    real_import = builtins.__import__

    def no_pillow(name: str, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ModuleNotFoundError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pillow)
    assert cli.main(["bench", "--quick", "--count", "8", "--device", "cpu", "--no-progress"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "gpuimg bench on cpu" in out and "generated 8 JPEGs of 640x480" in out and "images/s" in out


def test_process_command_does_not_start_workers_for_a_later_run():
    """The command runs once: worker processes started for a next run would only compete
    with this one and hold up its exit."""
    from gpuimg import cli

    assert cli_common._make_pipeline([], "cpu").config.prestart_workers is False


def test_info_prints_metadata(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """``gpuimg info`` says what metadata a file carries: the ICC profile's description,
    the usual EXIF tags and whether there is a location, the XMP packet."""
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    ex = PILImage.new("RGB", (1, 1)).getexif()
    ex[0x010F], ex[0x0110] = "ACME", "Phone 9"
    ex.get_ifd(0x8825)[2] = (1.0, 2.0, 3.0)  # GPSLatitude: a location
    photo = tmp_path / "p.jpg"
    PILImage.new("RGB", (8, 6), (10, 20, 30)).save(photo, icc_profile=srgb, exif=ex, xmp=b"<x:xmpmeta/>")
    assert cli.main(["info", str(photo), "--json"]) == cli.EXIT_OK
    row = json.loads(capsys.readouterr().out)
    assert row["icc"] and "sRGB" in row["icc"]
    assert row["exif"]["Make"] == "ACME" and row["exif"]["Model"] == "Phone 9" and row["exif"]["gps"] is True
    assert row["xmp"] == "12 characters"
    assert cli.main(["info", str(photo)]) == cli.EXIT_OK
    line = capsys.readouterr().out
    assert "exif (Make ACME, Model Phone 9" in line and "gps True" in line and "icc " in line
    assert cli.main(["info", str(ASSETS / "chelsea.jpg"), "--json"]) == cli.EXIT_OK
    assert "exif" not in json.loads(capsys.readouterr().out)  # none there: nothing said
