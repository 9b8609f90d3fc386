"""What a new user meets in the first hour (issue 32): the command's paths and device
choice, gray images through --gray and --blend, mode rgb's compositing, output name
templates, PNG quality, file objects, Pillow interop. Outside references: Pillow.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import gpuimg
from gpuimg import cli
from gpuimg.cli import _process as cli_process
from gpuimg.device import cuda_available, device_report

from conftest import ASSETS


@pytest.fixture
def one_file(tmp_path: Path) -> Path:
    """A folder holding one small photo (and nothing else)."""
    with PILImage.open(ASSETS / "coffee.jpg") as im:
        im.crop((0, 0, 96, 64)).save(tmp_path / "one.jpg")
    return tmp_path / "one.jpg"


# ----------------------------------------------------------------------------- 1. a file SRC


def test_file_src_may_write_beside_itself(one_file: Path, capsys: pytest.CaptureFixture) -> None:
    out = one_file.parent / "out"
    assert cli.main(["process", str(one_file), str(out), "--device", "cpu", "--no-progress"]) == cli.EXIT_OK
    assert (out / "one.jpg").is_file()
    # a folder SRC is still refused a DST inside it
    assert cli.main(["process", str(one_file.parent), str(one_file.parent / "o2"), "--device", "cpu"]) == cli.EXIT_USAGE
    assert "inside the input folder" in capsys.readouterr().err


def test_file_src_never_overwrites_itself(one_file: Path, capsys: pytest.CaptureFixture) -> None:
    before = one_file.read_bytes()
    assert cli.main(["process", str(one_file), str(one_file.parent), "--device", "cpu", "--no-progress"]) == cli.EXIT_FAILURES
    assert "would overwrite an input" in capsys.readouterr().out
    assert one_file.read_bytes() == before


# ----------------------------------------------------------------------------- 2, 3. device choice


@pytest.mark.skipif(cuda_available(), reason="a GPU is usable here: the small-job line is the size one")
def test_small_job_without_gpu_says_why_and_no_cuda_hint(one_file: Path, capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUIMG_DEVICE", raising=False)
    assert cli.main(["process", str(one_file), str(one_file.parent / "out"), "--no-progress"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"; on {device_report()}" in out
    assert "--device cuda" not in out and "chosen for a job this small" not in out


def _big_job_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every job counts as large (it would go to the default device)."""
    from gpuimg.pipeline import PipelineConfig

    monkeypatch.setattr(cli_process, "_config", lambda: PipelineConfig(prestart_workers=False, cpu_job_max_bytes=0))


@pytest.mark.parametrize("large", [False, True])
def test_env_device_cuda_is_the_flag(one_file: Path, large: bool, capsys: pytest.CaptureFixture,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """GPUIMG_DEVICE=cuda means --device cuda for every job size: the GPU, or exit 2 with
    the reason where none is usable."""
    if large:
        _big_job_config(monkeypatch)
    reason = device_report().removeprefix("cpu (no GPU: ").rstrip(")")
    monkeypatch.setenv("GPUIMG_DEVICE", "cuda")
    code = cli.main(["process", str(one_file), str(one_file.parent / "out"), "--no-progress"])
    captured = capsys.readouterr()
    if cuda_available():
        assert code == cli.EXIT_OK and "; on cuda" in captured.out
    else:
        assert code == cli.EXIT_USAGE
        assert "GPUIMG_DEVICE='cuda' asks for a GPU" in captured.err and "no GPU" not in captured.out
        assert reason in captured.err
        assert not (one_file.parent / "out").exists()


@pytest.mark.parametrize("large", [False, True])
def test_env_device_cpu_is_the_flag(one_file: Path, large: bool, capsys: pytest.CaptureFixture,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if large:
        _big_job_config(monkeypatch)
    monkeypatch.setenv("GPUIMG_DEVICE", "cpu")
    assert cli.main(["process", str(one_file), str(one_file.parent / "out"), "--no-progress"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "; on cpu" in out and "chosen for a job this small" not in out


def test_env_device_nonsense_is_a_usage_error(one_file: Path, capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUIMG_DEVICE", "tpu")
    assert cli.main(["process", str(one_file), str(one_file.parent / "out")]) == cli.EXIT_USAGE
    assert "GPUIMG_DEVICE" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 13. a bad DST


def test_dst_that_is_a_file_is_a_usage_error(one_file: Path, capsys: pytest.CaptureFixture) -> None:
    dst = one_file.parent / "taken"
    dst.write_bytes(b"not a folder")
    for target, words in ((dst, "is a file, not a folder"), (dst / "sub", "cannot be made")):
        assert cli.main(["process", str(one_file), str(target), "--device", "cpu"]) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err
    assert dst.read_bytes() == b"not a folder"
    assert sorted(p.name for p in one_file.parent.iterdir()) == ["one.jpg", "taken"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into a folder whatever its mode bits say (as in CI): nothing to refuse")
def test_read_only_dst_is_a_usage_error(one_file: Path, capsys: pytest.CaptureFixture) -> None:
    dst = one_file.parent / "locked"
    dst.mkdir()
    dst.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        for target in (dst, dst / "sub"):
            assert cli.main(["process", str(one_file), str(target), "--device", "cpu"]) == cli.EXIT_USAGE
            err = capsys.readouterr().err
            assert "not writable" in err and "Traceback" not in err
        assert list(dst.iterdir()) == []
    finally:
        dst.chmod(stat.S_IRWXU)


# ----------------------------------------------------------------------------- 6. name templates


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name in ("chelsea.jpg", "chelsea.png"):
        shutil.copy(ASSETS / name, src / name)
    shutil.copy(ASSETS / "coffee.jpg", src / "sub" / "coffee.jpg")
    return src


def test_name_template_resolves_the_clash(tmp_path: Path) -> None:
    from gpuimg.pipeline.files import plan_jobs

    src, out = _tree(tmp_path), tmp_path / "out"
    plain = plan_jobs(src, out, ".webp")
    assert sum(j.dst is None for j in plain) == 2  # the default rule still refuses the pair
    jobs = plan_jobs(src, out, ".webp", name="{stem}-{suffix}.{ext}")
    assert sorted(j.dst.relative_to(out).as_posix() for j in jobs) == [
        "chelsea-jpg.webp", "chelsea-png.webp", "sub/coffee-jpg.webp"]
    # The API takes the same template, in one process or split over shards
    for shards in (1, 2):
        dst = tmp_path / f"api{shards}"
        summary = gpuimg.Pipeline([], device="cpu").run(src, dst, format="webp", name="{stem}-{suffix}.{ext}",
                                                        shards=shards)
        assert summary.failed == 0 and sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.webp")) == [
            "chelsea-jpg.webp", "chelsea-png.webp", "sub/coffee-jpg.webp"]
    parent = plan_jobs(src, out, ".png", name="{parent}{stem}.{ext}")
    assert sorted(j.dst.relative_to(out).as_posix() for j in parent if j.dst) == ["sub/subcoffee.png"]
    clash = plan_jobs(src, out, ".webp", name="{stem}.{ext}")  # the default rule, spelt out
    assert [j.dst for j in clash if "chelsea" in j.src.name] == [None, None]
    assert all("would both write" in j.refused for j in clash if j.dst is None)
    assert gpuimg.Pipeline([], device="cpu").plan(src, out, format="webp", name="{stem}_{suffix}.{ext}")[0].dst.name \
        == "chelsea_jpg.webp"


@pytest.mark.parametrize("template, words", [
    ("{name}.jpg", "unknown field {name}"),
    ("../{stem}.{ext}", "path separator"),
    ("sub/{stem}.{ext}", "path separator"),
    ("..", "names no file"),
    ("{stem", "not a valid template"),
])
def test_bad_name_template_is_refused(tmp_path: Path, template: str, words: str, capsys: pytest.CaptureFixture) -> None:
    from gpuimg.pipeline.files import NameTemplateError, plan_jobs

    with pytest.raises(NameTemplateError, match="name=") as info:
        plan_jobs(_tree(tmp_path), tmp_path / "out", ".jpg", name=template)
    assert words in str(info.value) and isinstance(info.value, gpuimg.GpuImgError)
    assert cli.main(["process", str(tmp_path / "in"), str(tmp_path / "o"), "--name", template]) == cli.EXIT_USAGE
    assert words in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_name_flag_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src, out = _tree(tmp_path), tmp_path / "out"
    argv = ["process", str(src), str(out), "--format", "webp", "--dry-run", "--device", "cpu"]
    assert cli.main(argv) == cli.EXIT_OK
    assert "2 refused" in capsys.readouterr().out
    assert cli.main(argv + ["--name", "{stem}-{suffix}.{ext}"]) == cli.EXIT_OK
    text = capsys.readouterr().out
    assert "0 refused" in text and "chelsea-png.webp" in text and os.path.join("sub", "coffee-jpg.webp") in text


def test_name_flag_writes_the_named_outputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src, out = _tree(tmp_path), tmp_path / "out"
    argv = ["process", str(src), str(out), "--format", "webp", "--name", "{stem}-{suffix}.{ext}", "--device", "cpu",
            "--no-progress"]
    assert cli.main(argv) == cli.EXIT_OK, capsys.readouterr()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.webp")) == [
        "chelsea-jpg.webp", "chelsea-png.webp", "sub/coffee-jpg.webp"]


# ----------------------------------------------------------------------------- 4. gray images


def _gray_photo() -> np.ndarray:
    with PILImage.open(ASSETS / "camera_gray.png") as im:
        return np.asarray(im.convert("L").crop((0, 0, 120, 80)))


def test_to_gray_of_gray_is_a_copy_as_in_pillow(device: str) -> None:
    gray = _gray_photo()
    img = gpuimg.Image.from_array(gray[..., None], device=device)
    got = gpuimg.to_gray(img)
    assert got is not img
    expected = np.asarray(PILImage.fromarray(gray).convert("L"))
    np.testing.assert_array_equal(got.numpy()[..., 0], expected)
    out = gpuimg.Image.empty(80, 120, 1, device=device)
    assert gpuimg.to_gray(img, out=out) is out
    np.testing.assert_array_equal(out.numpy()[..., 0], expected)


def _logo() -> np.ndarray:
    with PILImage.open(ASSETS / "coffee_rgba.png") as im:
        return np.asarray(im.convert("RGBA").crop((100, 100, 160, 140)))


def test_blend_onto_gray_matches_pillow(device: str) -> None:
    gray, logo = _gray_photo(), _logo()
    dst = gpuimg.Image.from_array(gray[..., None], device=device)
    got = gpuimg.blend(dst, gpuimg.Image.from_array(logo, device=device), top=10, left=20)
    assert got.channels == 1  # a gray dst stays gray
    canvas = PILImage.fromarray(gray).convert("RGBA")
    layer = PILImage.new("RGBA", canvas.size, (0, 0, 0, 0))
    layer.paste(PILImage.fromarray(logo), (20, 10))
    expected = np.asarray(PILImage.alpha_composite(canvas, layer).convert("L"))
    np.testing.assert_array_equal(got.numpy()[..., 0], expected)


def test_blend_gray_layer_onto_rgb_matches_pillow(device: str) -> None:
    gray = _gray_photo()[:30, :40]
    with PILImage.open(ASSETS / "chelsea.png") as im:
        rgb = np.asarray(im.convert("RGB").crop((0, 0, 120, 80)))
    got = gpuimg.blend(gpuimg.Image.from_array(rgb, device=device), gpuimg.Image.from_array(gray[..., None], device=device),
                       top=5, left=7)
    expected = PILImage.fromarray(rgb).convert("RGBA")
    expected.alpha_composite(PILImage.fromarray(gray).convert("RGBA"), (7, 5))
    np.testing.assert_array_equal(got.numpy(), np.asarray(expected.convert("RGB")))


def test_gray_and_blend_flags_on_gray_inputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "in"
    src.mkdir()
    PILImage.fromarray(_gray_photo()).save(src / "g.png")
    PILImage.fromarray(_logo()).save(tmp_path / "logo.png")
    out = tmp_path / "out"
    argv = ["process", str(src), str(out), "--gray", "--blend", f"{tmp_path / 'logo.png'}@10,20", "--format", "png",
            "--device", "cpu", "--no-progress"]
    assert cli.main(argv) == cli.EXIT_OK, capsys.readouterr().out
    canvas = PILImage.fromarray(_gray_photo()).convert("RGBA")
    canvas.alpha_composite(PILImage.fromarray(_logo()), (20, 10))
    with PILImage.open(out / "g.png") as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), np.asarray(canvas.convert("L")))


# ----------------------------------------------------------------------------- 5. mode rgb composites


@pytest.mark.parametrize("background", [(0, 0, 0), (255, 255, 255), (30, 140, 200)])
def test_mode_rgb_composites_alpha_like_pillow(tmp_path: Path, background: tuple[int, int, int],
                                               capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "in"
    src.mkdir()
    PILImage.fromarray(_logo()).save(src / "a.png")
    bg = ",".join(map(str, background))
    for mode in ("rgb", "keep"):
        argv = ["process", str(src), str(tmp_path / mode), "--mode", mode, "--background", bg, "--format", "jpeg",
                "--quality", "100", "--device", "cpu", "--no-progress"]
        assert cli.main(argv) == cli.EXIT_OK, capsys.readouterr().out
    argv = ["process", str(src), str(tmp_path / "png"), "--mode", "rgb", "--background", bg, "--format", "png",
            "--device", "cpu", "--no-progress"]
    assert cli.main(argv) == cli.EXIT_OK
    with PILImage.open(tmp_path / "rgb" / "a.jpg") as a, PILImage.open(tmp_path / "keep" / "a.jpg") as b:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # one compositing rule for both modes
    layer = PILImage.fromarray(_logo())
    expected = np.asarray(PILImage.alpha_composite(PILImage.new("RGBA", layer.size, (*background, 255)), layer).convert("RGB"))
    with PILImage.open(tmp_path / "png" / "a.png") as im:
        assert im.mode == "RGB"
        diff = np.abs(np.asarray(im, np.int16) - expected)
    assert diff.max() <= 1  # the fixed-point rounding of alpha_composite against an exact round


# ----------------------------------------------------------------------------- 7. PNG quality


def test_png_quality_is_the_commands_compression_effort(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from gpuimg.codec.encoder import png_compression_level
    from gpuimg.pipeline import codecs

    assert codecs.png_compression_level is png_compression_level  # one function for both
    img = gpuimg.read(ASSETS / "chelsea.png", device="cpu")
    for quality in (100, 50, 1):
        by_quality = gpuimg.write(img, tmp_path / f"q{quality}.png", quality=quality).read_bytes()
        by_level = gpuimg.write(img, tmp_path / f"l{quality}.png", compression_level=png_compression_level(quality))
        assert by_quality == by_level.read_bytes()
        with PILImage.open(tmp_path / f"q{quality}.png") as im:
            np.testing.assert_array_equal(np.asarray(im), img.numpy())
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(ASSETS / "chelsea.png", src)
    assert cli.main(["process", str(src), str(tmp_path / "out"), "--format", "png", "--quality", "50", "--device", "cpu",
                     "--no-progress"]) == cli.EXIT_OK
    assert (tmp_path / "out" / "chelsea.png").read_bytes() == (tmp_path / "q50.png").read_bytes()
    with pytest.raises(TypeError, match="not both"):
        gpuimg.write(img, tmp_path / "x.png", quality=50, compression_level=3)
    with pytest.raises(TypeError, match="takes no quality"):
        gpuimg.write(img, tmp_path / "x.bmp", quality=50)


# ----------------------------------------------------------------------------- 8. file objects


def test_read_and_write_binary_file_objects(tmp_path: Path) -> None:
    import io

    with open(ASSETS / "chelsea.png", "rb") as f:
        img = gpuimg.read(f, device="cpu")
    with PILImage.open(ASSETS / "chelsea.png") as ref:
        np.testing.assert_array_equal(img.numpy(), np.asarray(ref.convert("RGB")))
    data = (ASSETS / "coffee.jpg").read_bytes()
    assert gpuimg.read(io.BytesIO(data), device="cpu").shape == gpuimg.read(data, device="cpu").shape
    assert gpuimg.info(io.BytesIO(data)).codec == "jpeg"
    res = gpuimg.read_batch([io.BytesIO(data), ASSETS / "rocket.jpg"], device="cpu")
    assert res.ok and len(res.images) == 2
    buf = io.BytesIO()
    assert gpuimg.write(img, buf, format="png") is buf
    with PILImage.open(io.BytesIO(buf.getvalue())) as im:
        assert im.format == "PNG"
        np.testing.assert_array_equal(np.asarray(im), img.numpy())
    with open(tmp_path / "by-name.webp", "wb") as f:  # the format from the file's name
        gpuimg.write(img, f)
    assert gpuimg.info(tmp_path / "by-name.webp").codec == "webp"


def test_file_object_errors_name_the_object(tmp_path: Path) -> None:
    import io

    img = gpuimg.read(ASSETS / "chelsea.png", device="cpu")
    with open(ASSETS / "README.md") as text, pytest.raises(gpuimg.DecodeError, match="README.md.*text mode"):
        gpuimg.read(text)
    with pytest.raises(gpuimg.UnsupportedFormatError, match="BytesIO.*format="):
        gpuimg.write(img, io.BytesIO())
    with open(tmp_path / "t.png", "w") as text, pytest.raises(gpuimg.GpuImgError, match="t.png.*text mode"):
        gpuimg.write(img, text, format="png")
    with pytest.raises(gpuimg.DecodeError, match="BytesIO"):
        gpuimg.read(io.BytesIO(b"not an image at all"), device="cpu")


# ----------------------------------------------------------------------------- 9. Pillow interop


def test_pillow_fromarray_of_a_cpu_image() -> None:
    img = gpuimg.read(ASSETS / "chelsea.png", device="cpu")
    with PILImage.open(ASSETS / "chelsea.png") as ref:
        expected = np.asarray(ref.convert("RGB"))
    im = PILImage.fromarray(img)
    assert im.mode == "RGB" and im.size == (img.width, img.height)
    np.testing.assert_array_equal(np.asarray(im), expected)
    assert np.shares_memory(np.asarray(img), img.array)  # NumPy still takes a view
    rgba = gpuimg.read(ASSETS / "coffee_rgba.png", device="cpu", mode="rgba")
    assert PILImage.fromarray(rgba).mode == "RGBA"
    # a view with row padding (a crop of a wider buffer) goes through tobytes() unpadded
    padded = np.zeros((20, 40, 3), np.uint8)
    padded[:, :10] = 200
    view = gpuimg.Image.from_array(padded[:, :10], device="cpu")
    np.testing.assert_array_equal(np.asarray(PILImage.fromarray(view)), padded[:, :10])
    gray = gpuimg.Image.from_array(np.full((4, 5, 1), 9, np.uint8), device="cpu")
    assert PILImage.fromarray(gray.array[:, :, 0]).mode == "L"


def test_pillow_fromarray_of_a_gpu_image_says_copy_first() -> None:
    if not cuda_available():
        pytest.skip(f"GPU variant: {device_report()}")
    img = gpuimg.Image.from_array(np.zeros((4, 4, 3), np.uint8), device="cuda")
    with pytest.raises(AttributeError, match=r"img\.numpy\(\)"):
        PILImage.fromarray(img)
    with pytest.raises(TypeError, match=r"numpy\(\)"):
        img.tobytes()
    assert PILImage.fromarray(img.numpy()).size == (4, 4)
