"""bench/color_tables.py runs on the CPU (quick settings) and prints its table."""

from conftest import load_bench

color_tables = load_bench("color_tables")


def test_color_tables_bench_quick(capsys, tmp_path):
    out = tmp_path / "c.json"
    assert color_tables.main(["--quick", "--repeat", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "table build, Display P3" in text and "ImageCms.profileToProfile" in text
    assert out.exists()
