"""bench/parity.py runs on the CPU and prints one Markdown row per case."""

from conftest import load_bench

parity = load_bench("parity")


def test_parity_prints_a_table_and_passes_on_exact_ops(capsys, tmp_path):
    out = tmp_path / "rows.json"
    assert parity.main(["--filter", "pad", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| op | reference | stated tolerance | max abs | mean abs | status |" in text
    assert "| pad wrap | NumPy np.pad(mode='wrap') | exact | 0 | 0.0000 | ok |" in text
    assert out.exists()


def test_every_case_names_a_stated_tolerance():
    assert all(case.stated in parity.STATED for case in parity._cases())
