"""Every ```python block of README.md runs as written, from the repo root, and leaves
nothing behind in the checkout. A block preceded by ``<!-- readme-test: skip (why) -->``
is skipped with that reason (kept for what truly needs a cluster or a GPU)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"(?:^<!-- readme-test: skip \((?P<why>[^)]*)\) -->\n)?^```python\n(?P<code>.*?)^```", re.S | re.M)
_IGNORED = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def _blocks() -> list[tuple[int, str | None, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start("code")) + 1, m.group("why"), m.group("code")) for m in _BLOCK.finditer(text)]


def _checkout_files() -> set[str]:
    found = set()
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in _IGNORED and not d.endswith(".egg-info")]
        found.update(os.path.relpath(os.path.join(folder, f), ROOT) for f in files)
    return found


def test_the_readme_has_runnable_examples() -> None:
    blocks = _blocks()
    assert len(blocks) >= 3
    assert sum(why is not None for _, why, _ in blocks) <= 1  # skipping stays rare


@pytest.mark.parametrize("line, why, code", _blocks(), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_readme_example_runs(line: int, why: str | None, code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if why is not None:
        pytest.skip(f"README.md line {line}: {why}")
    monkeypatch.chdir(ROOT)
    before = _checkout_files()
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
    assert _checkout_files() == before, "the example left files in the checkout"
