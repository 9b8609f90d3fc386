"""Files for the pipeline: input discovery, output path mapping, atomic writes, resume.

Only :mod:`gpuimg.pipeline` and :mod:`gpuimg.cli` know about folders (DESIGN.md); this
module is their file-system half, with no pixels in it.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "a.png").write_bytes(b"x")
    1
    >>> jobs = plan_jobs(root, root / "out", ".jpg")
    >>> [j.dst.relative_to(root).as_posix() for j in jobs]
    ['out/a.jpg']
"""

from __future__ import annotations

import fnmatch
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "IMAGE_PATTERNS",
    "FORMAT_SUFFIX",
    "Job",
    "discover",
    "plan_jobs",
    "is_done",
    "atomic_write",
    "TMP_MARKER",
]

# What a folder scan picks up by default: files that look like images. A README or a
# .DS_Store in a photo folder is not a failure; a corrupt "photo.jpg" is.
IMAGE_PATTERNS = (
    "*.jpg", "*.jpeg", "*.jpe", "*.png", "*.webp", "*.tif", "*.tiff", "*.bmp",
    "*.jp2", "*.j2k", "*.jpx", "*.pnm", "*.ppm", "*.pgm", "*.pbm",
)

# Output file suffix of each encoder format name the pipeline accepts.
FORMAT_SUFFIX = {
    "jpeg": ".jpg", "jpg": ".jpg", "png": ".png", "webp": ".webp",
    "tiff": ".tif", "tif": ".tif", "jp2": ".jp2", "jpeg2000": ".jp2", "bmp": ".bmp",
}

# Temporary outputs are hidden files carrying this marker; they are never taken for outputs.
TMP_MARKER = ".gpuimg-tmp"


@dataclass
class Job:
    """One input file and the output it maps to (``dst`` is None where none is written)."""

    index: int
    src: Path
    dst: Path | None
    size: int = 0


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    """Glob match on the relative POSIX path or on the file name, case-insensitive."""
    rel_l = rel.lower()
    name_l = rel_l.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel_l, p.lower()) or fnmatch.fnmatchcase(name_l, p.lower()) for p in patterns)


def _scan_folder(root: Path, include: Sequence[str], exclude: Sequence[str], skip: Path | None) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        # Never read our own outputs back as inputs (output_dir inside the input tree).
        dirnames[:] = sorted(d for d in dirnames if skip is None or (here / d).resolve() != skip)
        for name in sorted(filenames):
            rel = (here / name).relative_to(root).as_posix()
            if TMP_MARKER in name or not _matches(rel, include) or _matches(rel, exclude):
                continue
            found.append(here / name)
    return found


def _read_list_file(path: Path) -> list[Path]:
    """Paths from a text file, one a line; blank lines and '#' comments skipped; relative
    paths are taken relative to the list file's folder."""
    paths = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line).expanduser()
            paths.append(p if p.is_absolute() else path.parent / p)
    return paths


def discover(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    skip_dir: str | os.PathLike | None = None,
) -> tuple[list[Path], Path]:
    """(input files, the root their output paths are relative to).

    ``inputs``: a folder (scanned recursively for ``include`` globs, default image
    suffixes, minus ``exclude`` globs), a ``.txt``/``.lst`` file of paths, or a list of
    paths. The root is the folder, or the deepest common folder of the listed files.

    Example:
        >>> files, root = discover([])
        >>> files
        []
    """
    include = IMAGE_PATTERNS if include is None else tuple(include)
    skip = Path(skip_dir).resolve() if skip_dir is not None else None
    if isinstance(inputs, str | os.PathLike):
        path = Path(inputs).expanduser()
        if path.is_dir():
            return _scan_folder(path, include, tuple(exclude), skip), path
        if path.suffix.lower() in (".txt", ".lst", ".list"):
            files = _read_list_file(path)
        elif path.exists():
            files = [path]
        else:
            raise FileNotFoundError(f"inputs={str(inputs)!r} does not exist (give a folder, a file, or a .txt list)")
    else:
        files = [Path(p).expanduser() for p in inputs]
    if not files:
        return [], Path.cwd()
    # abspath, not resolve: '..' goes lexically, symlinked inputs keep their listed names.
    files = [Path(os.path.abspath(p)) for p in files]
    root = Path(os.path.commonpath([str(p.parent) for p in files]))
    return files, root


def _map_output(src: Path, root: Path, out_root: Path, suffix: str) -> Path:
    rel = Path(os.path.abspath(src)).relative_to(os.path.abspath(root))
    dst = (out_root / rel).with_suffix(suffix)
    # Resolve symlinks and '..' so a crafted name cannot land outside output_dir.
    resolved = dst.parent.resolve() / dst.name
    if out_root.resolve() not in resolved.parents:
        raise ValueError(f"output {dst} of {src} would leave output_dir {out_root}")
    return resolved


def plan_jobs(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    output_dir: str | os.PathLike | None,
    suffix: str,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> list[Job]:
    """Jobs for every input: ``dst`` mirrors the input's path under ``output_dir`` with
    ``suffix``; it is None (and the job is refused later) where it would leave
    ``output_dir`` or overwrite an input. Inputs whose outputs collide ("a.png" and
    "a.jpg" both to "a.jpg") keep their old suffix in the name ("a.png.jpg").

    Example:
        >>> plan_jobs([], "out", ".jpg")
        []
    """
    out_root = Path(output_dir).expanduser() if output_dir is not None else None
    files, root = discover(inputs, include, exclude, skip_dir=out_root)
    if out_root is None:
        return [Job(i, src, None) for i, src in enumerate(files)]
    dsts: list[Path | None] = []
    for src in files:
        try:
            dsts.append(_map_output(src, root, out_root, suffix))
        except ValueError:
            dsts.append(None)
    _rename_collisions(files, dsts, suffix)
    inputs_resolved = {src.resolve() for src in files}
    return [
        Job(i, src, None if dst is None or dst in inputs_resolved else dst)
        for i, (src, dst) in enumerate(zip(files, dsts))
    ]


def _rename_collisions(files: list[Path], dsts: list[Path | None], suffix: str) -> None:
    seen: dict[Path, int] = {}
    for i, dst in enumerate(dsts):
        if dst is not None:
            seen[dst] = seen.get(dst, 0) + 1
    for i, (src, dst) in enumerate(zip(files, dsts)):
        if dst is not None and seen[dst] > 1:
            dsts[i] = dst.with_name(src.name + suffix)


def is_done(job: Job) -> bool:
    """Resume test: the output exists and is at least as new as its input."""
    if job.dst is None:
        return False
    try:
        return job.dst.stat().st_mtime_ns >= job.src.stat().st_mtime_ns
    except OSError:
        return False


def atomic_write(path: Path, data: bytes | memoryview) -> int:
    """Write ``data`` to ``path`` through a hidden temporary file and a rename.

    The rename is atomic on POSIX and Windows: a reader (or a resumed run) sees the old
    file or the whole new one, never a partial one; an interrupted write leaves at most
    the temporary file, which is removed here when the interruption is an exception.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
        >>> atomic_write(p, b"abc"), p.read_bytes()
        (3, b'abc')
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARKER}-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(data)
