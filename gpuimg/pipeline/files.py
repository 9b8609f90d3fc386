"""Files for the pipeline: input discovery, output path mapping, atomic writes, resume.

Only :mod:`gpuimg.pipeline` and :mod:`gpuimg.cli` know about folders (the codecs and ops
see bytes and pixels only); this
module is their file-system half, with no pixels in it. Format knowledge (which suffixes
are images, what suffix an output gets) comes from :mod:`gpuimg.codec.formats`.

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

import contextlib
import fnmatch
import hashlib
import os
import re
import secrets
import socket
import string
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..codec import formats
from ..errors import ArgumentError, NameTemplateError, check_choice  # NameTemplateError: re-exported, its old home

__all__ = [
    "OUTPUT_FORMATS",
    "output_format",
    "Job",
    "discover",
    "plan_jobs",
    "plan_outputs",
    "path_filter",
    "is_done",
    "atomic_write",
    "TMP_MARKER",
    "output_name",
    "NameTemplate",
    "NameTemplateError",
    "check_output_dir",
    "check_run_files",
    "remove_stale_temps",
]

# Formats the pipeline writes: every format of the table but PNM (never offered as an
# output). A folder scan picks up files whose extension is one gpuimg decodes
# (formats.image_patterns()): a README or a .DS_Store in a photo folder is not a
# failure; a corrupt "photo.jpg" is.
OUTPUT_FORMATS: tuple[formats.Format, ...] = tuple(f for f in formats.FORMATS if f.encodes and f.name != "pnm")
_OUTPUT_SPELLINGS = tuple(sorted(alias for f in OUTPUT_FORMATS for alias in f.aliases))


def output_format(fmt: str) -> formats.Format:
    """The output format called ``fmt`` (any alias, any case); ArgumentError naming the choices.

    Example:
        >>> output_format("JPG").suffix, output_format("jpeg2000").suffix
        ('.jpg', '.jp2')
    """
    check_choice(str(fmt).lower(), "format", _OUTPUT_SPELLINGS, "an output format")
    return formats.lookup(str(fmt))

# Temporary outputs are hidden files named TMP_MARKER + "-<host>-<pid>-<16 hex>" in the
# output's own folder: short whatever the output's name (a name at the 255-byte limit plus
# a suffix would not fit), recognisable (a later run of the same folder removes the ones a
# killed run left: see remove_stale_temps), never taken for inputs or outputs. <host> is a
# short hash of the machine's name: a pid means something on its own machine only (a
# folder on a network file system is shared).
TMP_MARKER = ".gpuimg-tmp"
_HOST = hashlib.blake2b(socket.gethostname().encode(errors="surrogateescape"), digest_size=3).hexdigest()
_TMP_NAME = re.compile(re.escape(TMP_MARKER) + r"-([0-9a-f]{6})-(\d+)-[0-9a-f]{16}")
# The names of older gpuimg versions: ".<output name>.gpuimg-tmp-<pid>-<thread id>".
_OLD_TMP_NAME = re.compile(r"\..+" + re.escape(TMP_MARKER) + r"-(\d+)-\d+")
# Another machine's temporary file is taken for stale only when it is this old.
_FOREIGN_STALE_SECONDS = 24 * 3600


def _tmp_name(pid: int) -> str:
    """A temporary file name of this machine's process ``pid`` (random, under 50 bytes)."""
    return f"{TMP_MARKER}-{_HOST}-{pid}-{secrets.token_hex(8)}"


@dataclass
class Job:
    """One input file and the output it maps to (``dst`` is None where none is written,
    ``refused`` then says why). ``data``: the input's bytes where the caller already has
    them (read elsewhere, e.g. by Ray Data); None: the readers read ``src``."""

    index: int
    src: Path
    dst: Path | None
    size: int = 0
    refused: str | None = None
    data: bytes | None = None


def _glob_regex(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One compiled regex for all globs (case-insensitive): one match call per file."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p.lower())})" for p in patterns))


def _matches(regex: re.Pattern[str] | None, rel_l: str, name_l: str) -> bool:
    """A glob matches the relative POSIX path or the file name (both lower case)."""
    return regex is not None and (regex.match(rel_l) is not None or regex.match(name_l) is not None)


def path_filter(include: Sequence[str] | None, exclude: Sequence[str] = ()) -> Callable[[str], bool]:
    """A test of a relative POSIX path: True where it matches an ``include`` glob (default:
    the image suffixes) and no ``exclude`` glob, as a folder scan selects its files (for
    listings made elsewhere: object stores).

    Example:
        >>> keep = path_filter(None, ["skip/*"])
        >>> keep("a/b.JPG"), keep("notes.txt"), keep("skip/c.jpg")
        (True, False, False)
    """
    wanted = _glob_regex(formats.image_patterns() if include is None else tuple(include))
    unwanted = _glob_regex(tuple(exclude))

    def keep(rel: str) -> bool:
        rel_l = rel.lower()
        name_l = rel_l.rsplit("/", 1)[-1]
        return TMP_MARKER not in name_l and _matches(wanted, rel_l, name_l) and not _matches(unwanted, rel_l, name_l)

    return keep


def _scan_folder(root: str, include: Sequence[str], exclude: Sequence[str], skip: str | None) -> list[str]:
    # Strings and os.path, not pathlib, in this loop: it runs once per file of a dataset
    # that may hold millions, and pathlib objects cost several microseconds each.
    wanted, unwanted = _glob_regex(include), _glob_regex(exclude)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        # Never read our own outputs back as inputs (output_dir inside the input tree).
        dirnames[:] = sorted(d for d in dirnames if skip is None or os.path.realpath(os.path.join(dirpath, d)) != skip)
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/").lower() + "/"
        for name in sorted(filenames):
            name_l = name.lower()
            if TMP_MARKER in name or not _matches(wanted, prefix + name_l, name_l):
                continue
            if not _matches(unwanted, prefix + name_l, name_l):
                found.append(os.path.join(dirpath, name))
    return found


def _read_list_file(path: Path) -> list[str]:
    """Paths from a text file, one a line; blank lines and '#' comments skipped; relative
    paths are taken relative to the list file's folder."""
    paths = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            paths.append(os.path.join(path.parent, os.path.expanduser(line)))
    return paths


def _discover(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    include: Sequence[str] | None,
    exclude: Sequence[str],
    skip_dir: str | os.PathLike | None,
) -> tuple[list[str], str]:
    include = formats.image_patterns() if include is None else tuple(include)
    skip = os.path.realpath(skip_dir) if skip_dir is not None else None
    if isinstance(inputs, str | os.PathLike):
        path = Path(inputs).expanduser()
        if path.is_dir():
            return _scan_folder(str(path), include, tuple(exclude), skip), str(path)
        if path.suffix.lower() in (".txt", ".lst", ".list"):
            files = _read_list_file(path)
        elif path.exists():
            files = [str(path)]
        else:
            raise FileNotFoundError(f"inputs={str(inputs)!r} does not exist (give a folder, a file, or a .txt list)")
    else:
        files = [os.path.expanduser(p) for p in inputs]
    if not files:
        return [], os.getcwd()
    # abspath, not realpath: '..' goes lexically, symlinked inputs keep their listed names.
    files = [os.path.abspath(p) for p in files]
    return files, os.path.commonpath([os.path.dirname(p) for p in files])


def discover(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    skip_dir: str | os.PathLike | None = None,
) -> tuple[list[Path], Path]:
    """(input files, the root their output paths are relative to).

    ``inputs``: a folder (scanned recursively for ``include`` globs, default image
    suffixes, minus ``exclude`` globs; a glob matches the file name or the path relative
    to the folder, case-insensitive), a ``.txt``/``.lst`` file of paths, or a list of
    paths. The root is the folder, or the deepest common folder of the listed files.
    ``skip_dir`` (the output folder) is never entered.

    Example:
        >>> files, root = discover([])
        >>> files
        []
    """
    files, root = _discover(inputs, include, exclude, skip_dir)
    return [Path(f) for f in files], Path(root)


class _OutputDirs:
    """Where each input folder's outputs go, decided once per folder (a million files
    share a few thousand folders, and resolving a path is several system calls)."""

    def __init__(self, root: str, out_root: str):
        self.root, self.out_root = root, out_root
        self.out_real = os.path.realpath(out_root)
        self._cache: dict[str, str | None] = {}

    def __call__(self, src_dir: str) -> str | None:
        """The real output folder for ``src_dir``; None if it would leave output_dir
        (a symlinked folder inside output_dir pointing elsewhere)."""
        if src_dir not in self._cache:
            rel = os.path.relpath(src_dir, self.root)
            real = os.path.realpath(os.path.join(self.out_root, rel))
            inside = real == self.out_real or real.startswith(self.out_real + os.sep)
            self._cache[src_dir] = real if inside else None
        return self._cache[src_dir]


def _real_files(files: list[str]) -> set[str]:
    """Each file as its real folder plus its own name (os.replace over a symlinked file
    replaces the link, never its target, so the name itself is not followed)."""
    real_dirs: dict[str, str] = {}
    out = set()
    for f in files:
        folder, name = os.path.split(f)
        if folder not in real_dirs:
            real_dirs[folder] = os.path.realpath(folder)
        out.add(os.path.join(real_dirs[folder], name))
    return out


def output_name(name: str, suffix: str) -> str:
    """The output file name of input ``name``: its extension (the part from the last dot,
    if any) replaced by ``suffix``; the rest of the name is kept as it is.

    Example:
        >>> output_name("a.png", ".jpg"), output_name("a.png.jpg", ".jpg"), output_name("README", ".jpg")
        ('a.jpg', 'a.png.jpg', 'README.jpg')
    """
    return os.path.splitext(name)[0] + suffix


class NameTemplate:
    """An output file name template (``--name`` on the command, ``name=`` of
    :func:`plan_jobs`): :meth:`str.format` fields ``{stem}`` (the input's name without its
    extension), ``{suffix}`` (the input's extension without the dot, '' where none),
    ``{ext}`` (the output format's extension without the dot) and ``{parent}`` (the
    input's folder relative to the input root, its separators written ``_``; '' at the
    top level). The template is the whole file name: ``{stem}.{ext}`` is the default rule.
    The output stays in the input's relative sub-folder (the layout is kept); a template
    cannot name a folder (no ``/`` or ``\\``, not ``.`` or ``..``). NameTemplateError
    names the template and what is wrong.

    Example:
        >>> NameTemplate("{stem}-{suffix}.{ext}").render("chelsea.png", "", ".webp")
        'chelsea-png.webp'
        >>> NameTemplate("{parent}_{stem}.{ext}").render("a.jpg", "x/y", ".jpg")
        'x_y_a.jpg'
        >>> NameTemplate("{name}.jpg")
        Traceback (most recent call last):
        ...
        gpuimg.errors.NameTemplateError: name='{name}.jpg' has an unknown field {name}; the fields are {stem}, {suffix}, {ext} and {parent}
    """

    FIELDS = ("stem", "suffix", "ext", "parent")

    def __init__(self, template: str):
        if not isinstance(template, str) or not template:
            raise NameTemplateError(f"name={template!r} must be a non-empty string such as '{{stem}}.{{ext}}'")
        self.template = template
        try:
            parts = list(string.Formatter().parse(template))
        except ValueError as exc:  # an unmatched brace
            raise NameTemplateError(f"name={template!r} is not a valid template ({exc}); write a literal brace as {{{{ or }}}}") from None
        for literal, field, spec, conversion in parts:
            if any(sep in literal for sep in ("/", "\\", os.sep)):
                raise NameTemplateError(f"name={template!r} holds a path separator; it names a file, and outputs keep "
                                        "their input's sub-folder")
            if field is not None and (field not in self.FIELDS or spec or conversion):
                shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                fields = ", ".join(f"{{{f}}}" for f in self.FIELDS[:-1]) + f" and {{{self.FIELDS[-1]}}}"
                raise NameTemplateError(f"name={template!r} has an unknown field {shown}; the fields are {fields}")
        if self.render("x.y", "", ".z") in ("", ".", ".."):
            raise NameTemplateError(f"name={template!r} names no file")

    def render(self, name: str, rel_folder: str, suffix: str) -> str:
        """The output name of input file ``name`` in folder ``rel_folder`` (relative to the
        input root, '' or '.' at the top) for an output ``suffix`` ('.jpg')."""
        stem, ext = os.path.splitext(name)
        parent = "" if rel_folder in ("", ".") else rel_folder.replace(os.sep, "_").replace("/", "_")
        return self.template.format(stem=stem, suffix=ext.lstrip("."), ext=suffix.lstrip("."), parent=parent)


def _key(path: str) -> str:
    # Paths that differ only in case are one file on macOS and Windows: counted as one
    # everywhere, so a plan never depends on the file system it runs on.
    return path.casefold()


def _shown(path: str, root: str) -> str:
    """``path`` relative to ``root`` where it lies under it (shorter messages)."""
    rel = os.path.relpath(path, root)
    return path if rel.startswith("..") else rel


def plan_jobs(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    output_dir: str | os.PathLike | None,
    suffix: str,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    name: str | None = None,
) -> list[Job]:
    """Jobs for every input, their outputs named by one fixed rule (or by ``name``).

    The naming rule: an input's output is its path relative to the input root (the
    folder, or the deepest common folder of listed files) under ``output_dir``, with the
    input's extension replaced by ``suffix`` (:func:`output_name`: ``sub/a.png`` ->
    ``sub/a.jpg``, ``a.png.jpg`` -> ``a.png.jpg``). The name depends on the input alone,
    never on filters or on the other files of the run. An input gets no output
    (``dst`` None, ``refused`` says why, and the run counts it as a failure) when:

    * two or more inputs of the run map to one output (``a.jpg`` and ``a.png`` both to
      ``a.jpg``; names differing only in case count as one): none of them is written,
      each one's reason names the others, whatever their order;
    * the output would be an input (output folder = input folder, same suffix; here too
      names differing only in case count as one);
    * the output would leave ``output_dir`` (a symlinked folder inside it).

    ``name``: a :class:`NameTemplate` string naming each output file instead of the rule
    (e.g. ``"{stem}-{suffix}.{ext}"``: ``a.jpg`` and ``a.png`` no longer clash); the
    sub-folder is kept and the refusals above still apply to the names it gives. A bad
    template raises NameTemplateError before any file is listed.

    Example:
        >>> plan_jobs([], "out", ".jpg")
        []
        >>> [j.dst.name for j in plan_jobs(["assets/chelsea.jpg", "assets/chelsea.png"], "out", ".webp",
        ...                                name="{stem}_{suffix}.{ext}")]
        ['chelsea_jpg.webp', 'chelsea_png.webp']
    """
    template = NameTemplate(name) if name is not None else None
    files, root = _discover(inputs, include, exclude, output_dir)
    return plan_outputs(files, root, output_dir, suffix, name=template)


def plan_outputs(files: Sequence[str], root: str, output_dir: str | os.PathLike | None, suffix: str, *,
                 name: str | NameTemplate | None = None) -> list[Job]:
    """Jobs for absolute input paths ``files`` under ``root``, named by the rule of
    :func:`plan_jobs` (which lists the files; callers that list them elsewhere, such as an
    object store, plan here).

    Example:
        >>> [j.dst.as_posix() for j in plan_outputs(["/in/a.png", "/in/s/b.png"], "/in", "/out", ".jpg")]
        ['/out/a.jpg', '/out/s/b.jpg']
    """
    if output_dir is None:
        return [Job(i, Path(src), None) for i, src in enumerate(files)]
    template = NameTemplate(name) if isinstance(name, str) else name
    out_dir_of = _OutputDirs(root, os.path.expanduser(output_dir))
    dsts: list[str | None] = []
    refused: list[str | None] = []
    for src in files:
        folder, base = os.path.split(src)
        out_dir = out_dir_of(folder)
        out_name = output_name(base, suffix) if template is None else template.render(base, os.path.relpath(folder, root), suffix)
        if out_name in ("", ".", ".."):
            dsts.append(None)
            refused.append(f"the name template {template.template!r} gives it no file name ({out_name!r})")  # type: ignore[union-attr]
            continue
        dsts.append(None if out_dir is None else os.path.join(out_dir, out_name))
        refused.append("its output would leave the output folder (a symlinked folder)" if out_dir is None else None)
    inputs_real = {_key(f) for f in _real_files(files)}
    by_dst: dict[str, list[int]] = {}
    for i, dst in enumerate(dsts):
        if dst is not None:
            by_dst.setdefault(_key(dst), []).append(i)
    for i, dst in enumerate(dsts):
        if dst is None:
            continue
        if _key(dst) in inputs_real:
            refused[i] = f"its output {dst} would overwrite an input"
        elif len(same := by_dst[_key(dst)]) > 1:
            names = [_shown(files[j], root) for j in same]
            listed = f"{', '.join(names[:-1])} and {names[-1]}"
            refused[i] = f"{listed} would {'both' if len(names) == 2 else 'all'} write {dst}; none of them is written"
    return [
        Job(i, Path(src), None if why is not None else Path(dst), refused=why)  # type: ignore[arg-type]
        for i, (src, dst, why) in enumerate(zip(files, dsts, refused))
    ]


def check_output_dir(inputs: str | os.PathLike | Iterable[str | os.PathLike], output_dir: str | os.PathLike) -> None:
    """ValueError when ``output_dir`` is an input folder or lies inside one: the folder
    scanned (and all under it), or the folder of any listed input file.

    Example:
        >>> import tempfile, os
        >>> src = tempfile.mkdtemp()
        >>> check_output_dir(src, os.path.join(src, "out"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: the output folder ... is inside the input folder ...
    """
    out_real = os.path.realpath(os.path.expanduser(output_dir))
    if isinstance(inputs, str | os.PathLike) and Path(inputs).expanduser().is_dir():
        folders = {os.path.realpath(Path(inputs).expanduser())}
    else:
        files, _ = _discover(inputs, None, (), None)
        folders = {os.path.realpath(os.path.dirname(f)) for f in files}
    folder = out_real
    while True:
        if folder in folders:
            raise ArgumentError(f"the output folder {os.fspath(output_dir)!r} is inside the input folder {folder!r} "
                                "(outputs would be written among the inputs)")
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def check_run_files(jobs: Sequence[Job], report: str | os.PathLike | None) -> None:
    """ArgumentError naming the file when the report path is an input or an output of
    ``jobs`` (the report would replace it); checked before anything is written.

    Example:
        >>> check_run_files([Job(0, Path("/d/a.jpg"), None)], "/d/a.jpg")
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: the report path '/d/a.jpg' is an input file of the run: it would be replaced by the report
    """
    if report is None:
        return
    folder, name = os.path.split(os.path.abspath(os.path.expanduser(report)))
    key = _key(os.path.join(os.path.realpath(folder), name))
    inputs = {_key(f) for f in _real_files([os.path.abspath(j.src) for j in jobs])}
    if key in inputs:
        raise ArgumentError(f"the report path {os.fspath(report)!r} is an input file of the run: it would be replaced by the report")
    outputs = {_key(os.fspath(j.dst)) for j in jobs if j.dst is not None}
    if key in outputs:
        raise ArgumentError(f"the report path {os.fspath(report)!r} is an output file of the run")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":
        # This process may be writing now (another run); on Windows os.kill(pid, 0) would
        # terminate the process, so every pid counts as running there.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def _stale(entry: os.DirEntry) -> bool:
    """Whether ``entry`` is a temporary file a killed gpuimg run left: gpuimg's name, and
    its process no longer runs (this machine's), or a day old (another machine's)."""
    if (match := _TMP_NAME.fullmatch(entry.name)) is not None:
        host, pid = match.group(1), int(match.group(2))
    elif (match := _OLD_TMP_NAME.fullmatch(entry.name)) is not None:
        host, pid = _HOST, int(match.group(1))
    else:
        return False
    if not entry.is_file(follow_symlinks=False):
        return False
    if host != _HOST:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > _FOREIGN_STALE_SECONDS
    return not _pid_alive(pid)


def remove_stale_temps(folders: Iterable[str | os.PathLike], keep: Iterable[str | os.PathLike] = ()) -> int:
    """Remove the temporary files killed gpuimg runs left in ``folders`` (only names of
    gpuimg's own pattern whose process no longer runs on this machine, or that another
    machine left a day ago, and never a path in ``keep``, the run's inputs); returns how
    many were removed. One directory listing per folder.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / _tmp_name(999999999)).write_bytes(b"x")  # a pid no process has
        >>> remove_stale_temps([d]), list(d.iterdir())
        (1, [])
    """
    kept = {_key(f) for f in _real_files([os.path.abspath(p) for p in keep])}
    removed = 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:  # not made yet, or unreadable: nothing of ours in it
            continue
        real = os.path.realpath(folder)
        for entry in entries:
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove
                if _stale(entry) and _key(os.path.join(real, entry.name)) not in kept:
                    os.unlink(entry.path)
                    removed += 1
    return removed


def is_done(job: Job) -> bool:
    """Resume test: the output exists and is at least as new as its input."""
    if job.dst is None:
        return False
    try:
        return job.dst.stat().st_mtime_ns >= job.src.stat().st_mtime_ns
    except OSError:
        return False


def atomic_write(path: str | os.PathLike, data: bytes | memoryview) -> int:
    """Write ``data`` to ``path`` through a hidden temporary file and a rename.

    The rename is atomic on POSIX and Windows: a reader (or a resumed run) sees the old
    file or the whole new one, never a partial one; an interrupted write leaves at most
    the temporary file (``TMP_MARKER-<host>-<pid>-<random>`` in the same folder), which is
    removed here when the interruption is an exception, and by :func:`remove_stale_temps`
    (the next run of the folder) when the process was killed.
    Missing folders are made. Returns the number of bytes written.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
        >>> atomic_write(p, b"abc"), p.read_bytes()
        (3, b'abc')
    """
    # os-level calls rather than pathlib/open(): this runs once per output file and the
    # Python overhead of the high-level calls is as large as the file system's own.
    path = os.fspath(path)
    folder = os.path.dirname(path)
    # A short random name: fits beside any valid output name; O_EXCL never opens a file
    # that exists (an input that happens to have this name stays untouched).
    tmp = os.path.join(folder, _tmp_name(os.getpid()))
    fd = _create(tmp, folder)  # before the try: a name we did not create is never removed
    try:
        try:
            view = memoryview(data).cast("B")
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return len(memoryview(data).cast("B"))


def _create(path: str, folder: str) -> int:
    """Open a new file for writing, making its folder on first use (no check per file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        return os.open(path, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        return os.open(path, flags, 0o666)


def cpu_codec_files(jobs: Sequence[Job], device: str) -> int:
    """How many of ``jobs`` the isolated CPU codecs will decode, by file suffix: all of them
    on the CPU device; on the GPU those whose format nvImageCodec decodes on the CPU (PNG,
    WebP, TIFF, ...: :attr:`Format.gpu_decode` is False), and unknown suffixes.

    Example:
        >>> jobs = [Job(0, Path("a.jpg"), None), Job(1, Path("b.png"), None), Job(2, Path("c"), None)]
        >>> cpu_codec_files(jobs, "cuda"), cpu_codec_files(jobs, "cpu")
        (2, 3)
    """
    if device == "cpu":
        return len(jobs)
    count = 0
    for job in jobs:
        fmt = formats.for_path(os.fspath(job.src))
        count += fmt is None or not fmt.gpu_decode
    return count


def mean_file_bytes(jobs: Sequence[Job], sample: int = 256) -> float:
    """The mean size of the jobs' input files, from up to ``sample`` of them spread over
    the list (0.0 for none; unreadable files count as empty).

    Example:
        >>> mean_file_bytes([])
        0.0
    """
    if not jobs:
        return 0.0
    step = max(1, len(jobs) // sample)
    sizes = []
    for job in jobs[::step][:sample]:
        try:
            sizes.append(os.stat(job.src).st_size)
        except (OSError, TypeError, ValueError):
            sizes.append(0)
    return sum(sizes) / len(sizes)
