"""One error vocabulary: every deliberate error is a GpuImgError, a bad argument an
ArgumentError (a ValueError) or ArgumentTypeError (a TypeError) naming the argument."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest

import gpuimg
from gpuimg import errors
from gpuimg.errors import ArgumentError, ArgumentTypeError, GpuImgError, check_choice, check_int

PACKAGE = Path(gpuimg.__file__).resolve().parent

# Folders of gpuimg/ the scan skips for now. gpuimg/codec/ is being restructured; once
# that lands and its raises are converted, empty this and the scan covers the package.
SCAN_EXCLUDED: tuple[str, ...] = ()

# A bare builtin raise is allowed where its line says why, e.g. ``# builtin: protocol``.
ALLOW_MARK = "# builtin:"
BUILTINS = {"ValueError", "TypeError"}


def _raised_name(node: ast.Raise) -> str | None:
    exc = node.exc
    if isinstance(exc, ast.Call):
        exc = exc.func
    return exc.id if isinstance(exc, ast.Name) else None


def _bare_raises() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in SCAN_EXCLUDED:
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, ast.Raise) and _raised_name(node) in BUILTINS:
                line = lines[node.lineno - 1]
                if ALLOW_MARK not in line:
                    found.append(f"gpuimg/{rel.as_posix()}:{node.lineno}: {line.strip()}")
    return found


def test_no_bare_builtin_raises() -> None:
    bare = _bare_raises()
    assert not bare, (
        "raise ArgumentError/ArgumentTypeError (gpuimg.errors) instead, or say why on the line "
        f"with {ALLOW_MARK!r}:\n" + "\n".join(bare)
    )


def test_the_scan_finds_a_bare_raise(tmp_path: Path) -> None:
    tree = ast.parse("def f(x):\n    raise ValueError(f'x={x!r}')\n")
    raises = [n for n in ast.walk(tree) if isinstance(n, ast.Raise)]
    assert [_raised_name(n) for n in raises] == ["ValueError"]


@pytest.mark.parametrize("name", errors.__all__)
def test_every_listed_class_is_a_gpuimg_error_and_exported(name: str) -> None:
    value = getattr(errors, name)
    if isinstance(value, type):
        assert issubclass(value, GpuImgError)
        assert getattr(gpuimg, name) is value
        assert name in gpuimg.__all__


def test_argument_errors_are_the_builtin_types() -> None:
    assert issubclass(ArgumentError, ValueError) and issubclass(ArgumentTypeError, TypeError)
    assert not issubclass(ArgumentError, TypeError) and not issubclass(ArgumentTypeError, ValueError)
    assert issubclass(errors.NameTemplateError, ArgumentError)


def test_the_old_homes_still_export_the_moved_classes() -> None:
    from gpuimg.ops.color.profiles import ColorEngineMissingError
    from gpuimg.pipeline.files import NameTemplateError
    from gpuimg.ray import RayNotInstalledError

    assert NameTemplateError is errors.NameTemplateError
    assert ColorEngineMissingError is errors.ColorEngineMissingError
    assert RayNotInstalledError is errors.RayNotInstalledError


def test_errors_pickle_with_their_fields() -> None:
    err = pickle.loads(pickle.dumps(ArgumentError("m", argument="a", value=3, expected="an int")))
    assert (type(err), str(err), err.argument, err.value, err.expected) == (ArgumentError, "m", "a", 3, "an int")
    big = pickle.loads(pickle.dumps(ArgumentError("m", argument="src", value=np.zeros((512, 512, 3), np.uint8))))
    assert (big.argument, big.value) == ("src", None)  # an array stays behind: the message shows it
    decode = pickle.loads(pickle.dumps(errors.DecodeError("a.jpg", "truncated")))
    assert (decode.source, decode.reason, str(decode)) == ("a.jpg", "truncated", "cannot decode a.jpg: truncated")


def test_check_choice_names_the_argument() -> None:
    with pytest.raises(ArgumentError, match=r"border='x' is not supported; use one of \('edge',\)") as info:
        check_choice("x", "border", ("edge",))
    assert (info.value.argument, info.value.value) == ("border", "x")
    with pytest.raises(ArgumentError):
        check_choice([1], "border", ("edge",))  # unhashable: not a choice, not a TypeError


@pytest.mark.parametrize("value", [0, -3, 1.0, "2", True, None])
def test_check_int_refuses(value: object) -> None:
    with pytest.raises(ArgumentError, match=r"^readers must be an int >= 1, got ") as info:
        check_int(value, "readers", low=1)
    assert info.value.argument == "readers"


def test_check_int_accepts() -> None:
    assert check_int(np.int64(3), "n", low=1) == 3
    assert check_int(None, "n", low=1, optional=True) is None
    assert check_int(100, "quality", 1, 100) == 100
    with pytest.raises(ArgumentError, match=r"quality must be an int in \[1, 100\], got 101"):
        check_int(101, "quality", 1, 100)


def test_resize_with_a_bad_size() -> None:
    img = gpuimg.Image.empty(8, 8, device="cpu")
    with pytest.raises(ArgumentError, match="size") as info:
        gpuimg.resize(img, (0, 4))
    assert "size" in str(info.value)
    with pytest.raises(ArgumentError, match="size"):
        gpuimg.resize_shorter(img, 0)


def test_run_with_quality_zero(tmp_path: Path) -> None:
    pipe = gpuimg.Pipeline([("resize", {"size": (4, 4)})], device="cpu")
    with pytest.raises(ArgumentError, match="quality must be") as info:
        pipe.run(tmp_path, tmp_path / "out", quality=0)
    assert info.value.argument == "quality"


def test_run_options_with_zero_shards() -> None:
    with pytest.raises(ArgumentError, match=r"shards must be None or an int >= 1, got 0") as info:
        gpuimg.RunOptions(shards=0)
    assert info.value.argument == "shards"


def test_a_wrong_type_is_an_argument_type_error() -> None:
    with pytest.raises(ArgumentTypeError, match="sigma") as info:
        gpuimg.gaussian_blur(gpuimg.Image.empty(8, 8, device="cpu"), "2")
    assert (info.value.argument, info.value.value) == ("sigma", "2")
