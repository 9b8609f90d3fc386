"""bench/thumbnail.py runs on the CPU (quick settings) and prints its table."""

from conftest import load_bench

thumbnail = load_bench("thumbnail")


def test_thumbnail_bench_quick(capsys, tmp_path):
    out = tmp_path / "t.json"
    assert thumbnail.main(["--quick", "--repeat", "1", "--count", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "thumbnail 256" in text and "Pillow 1 thread" in text
    assert "processes" in text  # the per-core peer ran
    assert out.exists()
