"""The pure parts of bench/pipeline.py and its modules, on the CPU: the dataset classes
(sizes, gray, EXIF orientation, the web class's formats and alpha), the OpenCV peer's
equal work, targets and ratios, the report's table and files, step failures as rows."""

import collections
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_bench

pytest.importorskip("cv2")

harness = load_bench("harness")
datasets = load_bench("datasets")
cv_peer = load_bench("cv_peer")
pipeline = load_bench("pipeline")


def test_every_class_has_a_spec_and_unknown_names_fail():
    rng = np.random.default_rng(0)
    for cls in datasets.CLASSES:
        s = datasets.spec(cls, 1, rng)
        assert s.width > 0 and s.height > 0
    with pytest.raises(ValueError, match="unknown dataset class"):
        datasets.spec("tiny", 0, rng)
    with pytest.raises(SystemExit):
        pipeline.parse_args(["--classes", "small,tiny"])


def test_small_and_phone_mix():
    specs = [datasets.spec("small", i, np.random.default_rng(i)) for i in range(400)]
    assert all(200 <= s.width <= 800 and 200 <= s.height <= 800 for s in specs)
    assert sum(s.progressive for s in specs) == 50  # 1/8
    assert sum(s.gray for s in specs) == 40  # 1/10
    assert sum(s.full_chroma for s in specs) == 100  # 1/4
    assert len({s.quality for s in specs}) > 10
    phone = [datasets.spec("phone", i, np.random.default_rng(i)) for i in range(10)]
    assert {(s.width, s.height) for s in phone} == {(4032, 3024)}
    assert sum(s.orientation == 6 for s in phone) == 5
    hd = [datasets.spec("hd", i, np.random.default_rng(i)) for i in range(30)]
    assert sum(s.full_chroma for s in hd) == 10  # 1/3


def test_web_class_mix():
    specs = [datasets.spec("web", i, np.random.default_rng(i)) for i in range(600)]
    kinds = collections.Counter((s.format, s.alpha) for s in specs)
    assert kinds[("jpeg", False)] == 360  # 60%
    assert kinds[("png", True)] + kinds[("png", False)] == 150  # 25%
    assert kinds[("png", True)] == 50  # 1/3 of the PNGs
    assert kinds[("webp", True)] + kinds[("webp", False)] == 90  # 15%
    assert 0 < kinds[("webp", True)] < 90
    jpegs = [s for s in specs if s.format == "jpeg"]
    assert all(200 <= s.width <= 2000 and 200 <= s.height <= 2000 for s in jpegs)
    # a few files already mix the kinds (tiny --count runs still see every format)
    assert len({(s.format, s.alpha) for s in specs[:8]}) >= 3


def test_soft_alpha_varies():
    a = datasets.soft_alpha(300, 200, np.random.default_rng(3))
    assert a.shape == (200, 300) and a.dtype == np.uint8
    assert a.min() == 0 and a.max() == 255
    assert ((a > 0) & (a < 255)).mean() > 0.02  # a soft edge, not a hard mask
    assert len(np.unique(a)) > 50


def test_made_files_read_back(tmp_path):
    """Files gpuimg reads back as their spec says: sizes, gray, orientation 6 (shown
    portrait), PNG/WebP with alpha; distinct bytes for every file."""
    import gpuimg

    datas = set()
    for cls, i in (("phone", 0), ("phone", 1), ("small", 3), ("small", 5), ("web", 1), ("web", 3), ("web", 4)):
        folder = tmp_path / cls
        folder.mkdir(exist_ok=True)
        datasets.make_one((cls, i, 100 + i, str(folder)))
        s = datasets.spec(cls, i, np.random.default_rng([i, 29]))
        path = folder / datasets.file_name(100 + i, s)
        datas.add(path.read_bytes())
        meta = gpuimg.info(str(path))
        if cls == "phone":
            assert meta.orientation == (6 if i % 2 else 1)
            assert (meta.width, meta.height) == ((3024, 4032) if i % 2 else (4032, 3024))
        else:
            assert (meta.width, meta.height) == (s.width, s.height)
            assert meta.channels == (1 if s.gray else 4 if s.alpha else 3)
    assert len(datas) == 7


def test_shuffled_names_are_a_permutation():
    names = datasets.shuffled_names(50)
    assert sorted(names) == list(range(50)) and names != list(range(50))


def test_opencv_peer_equal_work(tmp_path):
    """Alpha composited onto white, EXIF orientation applied, gray kept gray, 512x512."""
    import cv2

    rgba = np.zeros((300, 700, 4), np.uint8)
    rgba[..., 2] = 200  # red where opaque
    rgba[:, 350:, 3] = 255
    out = cv_peer.w1_image(rgba)
    assert out.shape == (512, 512, 3)
    assert out[256, 0].tolist() == [255, 255, 255] and out[256, 511].tolist() == [0, 0, 200]
    assert cv_peer.w1_image(np.zeros((900, 600), np.uint8)).shape == (512, 512)
    datasets.make_one(("phone", 1, 1, str(tmp_path)))
    src = tmp_path / "00001.jpg"
    cv_peer.w1_one((str(src), str(tmp_path / "out.jpg")))
    assert cv2.imread(str(tmp_path / "out.jpg")).shape == (512, 512, 3)


def test_targets_and_ratios():
    T, F = pipeline.Target, pipeline.Figure
    cmd = F("hd", "cmd", "img/s", 500.0, "OpenCV", 200.0, target=T(">=", 2))
    assert cmd.ratio == pytest.approx(2.5) and cmd.met is True
    assert F("hd", "cmd", "img/s", 300.0, "OpenCV", 200.0, target=T(">=", 2)).met is False
    fs = F("hd", "first", "s", 1.3, "second run", 1.0, False, T("<=", 1.25), plain_ratio=True)
    assert fs.ratio == pytest.approx(1.3) and fs.met is False
    allocs = F("hd", "allocs", "", 0, higher_is_better=False, target=T("==", 0, "value", ""))
    assert allocs.met is True and allocs.cells()[2] == "0"
    one = F("one-file", "one", "s", 0.4, higher_is_better=False, target=T("<=", 0.5, "value", " s"))
    assert one.met is True and one.cells()[6] == "<= 0.5 s"
    skipped = F("hd", "tv", "img/s", 500.0, "torchvision", None, target=T(">=", 1.5), status="peer skipped: no GPU")
    assert skipped.ratio is None and skipped.met is None and skipped.cells()[7] == "peer skipped: no GPU"
    assert pipeline.command_target("small").bound == 1.5 and pipeline.command_target("4k").bound == 2.0


def test_report_writes_markdown_and_json_after_each_figure(tmp_path, capsys):
    rep = pipeline.Report(tmp_path, {"device": "test gpu", "cpu_cores": 4, "git": "abc"}, json_path=tmp_path / "x.json")
    rep.add(pipeline.Figure("hd", "cmd | one", "img/s", 500.0, "OpenCV", 200.0, target=pipeline.Target(">=", 2)))
    assert "2.50x" in (tmp_path / "pipeline.md").read_text()
    rep.add(pipeline.Figure("hd", "ceiling", "img/s", 400.0, "decode ceiling", 1000.0, target=pipeline.Target(">=", 0.8)))
    md = (tmp_path / "pipeline.md").read_text()
    assert md.startswith("# bench/pipeline.py on test gpu")
    rows = [ln for ln in md.splitlines() if ln.startswith("| hd")]
    assert len(rows) == 2 and rows[0].count("|") == rows[1].count("|") == 10  # a "|" in a name is escaped
    assert "met" in rows[0] and "**missed**" in rows[1]
    assert "targets: 1 met, 1 missed, 0 not measured" in md
    data = json.loads((tmp_path / "pipeline.json").read_text())
    assert data["figures"][1]["ratio"] == pytest.approx(0.4) and data["figures"][1]["met"] is False
    assert json.loads((tmp_path / "x.json").read_text()) == data
    assert "[hd] cmd / one: 500 img/s" in capsys.readouterr().out


def test_failing_and_skipped_steps_become_rows(tmp_path):
    args = pipeline.parse_args(["--quick", "--skip", "opencv", "--out", str(tmp_path)])
    assert {"opencv", "workers", "tv-script"} <= args.skip and args.runs == 2
    b = pipeline.Bench(args, "cpu", pipeline.Report(tmp_path), tmp_path)
    assert b.step("hd", "command", lambda: 1 / 0).startswith("error: ZeroDivisionError")
    assert b.step("hd", "opencv", lambda: 1) == "skipped: --skip opencv"
    assert b.step("hd", "ceiling", lambda: 1, needs_gpu=True) == "skipped: no GPU"
    assert b.step("hd", "w2", lambda: 7) == 7
    fig = b.row("hd", "cmd", "img/s", 10.0, "OpenCV", b.step("hd", "opencv", lambda: 1), pipeline.Target(">=", 2))
    assert fig.status == "peer skipped: --skip opencv" and fig.met is None
    with pytest.raises(SystemExit):
        pipeline.parse_args(["--skip", "nonsense"])


def test_decode_ceiling_takes_the_fastest_set_that_decodes_everything(monkeypatch):
    """The best-of-backends pick (the decode itself needs a GPU: faked here)."""
    speed = {"nvImageCodec default": 1.0, "hardware-first": 0.5, "hybrid (+cpu)": 0.8, "CUDA (+cpu)": 2.0}

    def fake_pass(names, datas):
        if names == ("CUDA (+cpu)",):
            raise RuntimeError("no such backend")
        done = len(datas) - (1 if names == ("hardware-first",) else 0)  # fastest, but one file short
        return (0.4 if len(names) > 1 else speed[names[0]]), done

    monkeypatch.setattr(pipeline, "_decode_pass", fake_pass)
    c = pipeline.decode_ceiling([b""] * 10)
    assert c["best"] == "hardware-first + hybrid (+cpu) (2 threads)" and c["rate"] == pytest.approx(25.0)
    assert c["rates"]["CUDA (+cpu)"].startswith("error: RuntimeError")
    monkeypatch.setattr(pipeline, "CEILING_SETS", ("hardware-first",))
    monkeypatch.setattr(pipeline, "CEILING_SPLIT", ("CUDA (+cpu)",))
    assert pipeline.decode_ceiling([b""] * 10)["best"] == "hardware-first (9 of 10 decoded)"
