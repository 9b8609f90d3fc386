"""The ``gpuimg`` command: ``process`` folders of images, ``info`` on files, ``bench``.

Exit codes: 0 all items succeeded, 1 some items failed (the report lists them), 2 usage
errors (bad flags, unknown op, missing input, DST inside SRC without ``--in-place``, a
``--report`` path that is an input), 130 interrupted by Ctrl-C, 143 stopped by SIGTERM
(what ``timeout`` and job schedulers send; the run stops as on Ctrl-C: finished outputs
kept, summary printed, report written).

Example:
    $ gpuimg process assets/ out/ --include "*.jpg"     # re-encode the JPEGs (JPEG q90)
    $ gpuimg process photos/ small/ --resize-shorter 512 --center-crop 512 --sharpen 0.5
    $ gpuimg process photos/ out/ --pipeline steps.json --format png --resume
    $ gpuimg process photos/ marked/ --resize-shorter 512 --blend logo.png@10,10,0.5
    $ gpuimg process s3://bucket/photos/ out/ --resize-shorter 512 --ray     # every GPU, through Ray
    $ gpuimg info assets/chelsea.jpg
    $ gpuimg bench --count 256
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import check_choice
from .pipeline.files import OUTPUT_FORMATS, output_format
from .pipeline.steps import MODES, OutputRule

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILURES", "EXIT_USAGE", "EXIT_INTERRUPTED", "EXIT_TERMINATED"]

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
EXIT_CODES_HELP = """exit codes:
  0    every item succeeded (or there was nothing to do)
  1    some items failed (the report lists them; the others were written)
  2    usage error (bad flags, unknown op, missing input, DST inside SRC without --in-place)
  130  interrupted by Ctrl-C (finished outputs kept, summary printed, report written)
  143  stopped by SIGTERM (as Ctrl-C)"""
# --format takes every spelling of an output format, any case (files.output_format, from
# gpuimg.codec.formats); the help shows one per format, the first that is also a file
# extension (jpeg, ..., jp2, bmp).
_FORMAT_SHOWN = "{" + ",".join(f.extensions[0].lstrip(".") for f in OUTPUT_FORMATS) + "}"


class UsageError(Exception):
    """A bad command line found after parsing (unknown op parameter, unreadable --pipeline)."""


# --------------------------------------------------------------------------- value parsers


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _size(text: str) -> tuple[int, int]:
    """'HxW' or 'N' (a square) as (height, width)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected a size HxW (e.g. 224x224) or N, got {text!r}")
    return values[0], values[1]


def _box(text: str) -> tuple[int, int, int, int]:
    """'TOP,LEFT,HxW' as (top, left, height, width)."""
    try:
        top, left, size = text.split(",")
        height, width = _size(size)
        return int(top), int(left), height, width
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected TOP,LEFT,HxW (e.g. 10,20,224x224), got {text!r}") from None


def _format_name(text: str) -> str:
    """An output format's canonical name from any of its spellings (``jpg`` -> ``jpeg``)."""
    try:
        return output_format(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} ({exc})") from None


def _name_template(text: str) -> str:
    """A --name template, checked once here (unknown fields, separators) so a bad one is a
    usage error before any file is listed."""
    from .pipeline.files import NameTemplate, NameTemplateError

    try:
        NameTemplate(text)
    except NameTemplateError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _flip_axis(text: str) -> str:
    try:
        return check_choice(text, "--flip", ("h", "v", "hv"), "h (horizontal), v (vertical) or hv")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _overlay(text: str, with_opacity: bool) -> dict[str, Any]:
    """'FILE', 'FILE@TOP,LEFT' (or with ',OPACITY' for blend) as the op's parameters."""
    path, at, place = text.rpartition("@")
    if not at:
        path, place = text, ""
    counts = (0, 2, 3) if with_opacity else (0, 2)
    try:
        values = [float(v) for v in place.split(",")] if place else []
        ok = bool(path) and len(values) in counts and all(v == int(v) for v in values[:2]) \
            and (len(values) < 3 or 0 <= values[2] <= 1)
    except ValueError:
        ok = False
    if not ok:
        form = "FILE[@TOP,LEFT[,OPACITY]] (opacity in 0..1)" if with_opacity else "FILE[@TOP,LEFT]"
        raise argparse.ArgumentTypeError(f"expected {form}, e.g. logo.png@10,20, got {text!r}")
    params: dict[str, Any] = {"src": path, "top": int(values[0]) if values else 0, "left": int(values[1]) if values else 0}
    if len(values) == 3:
        params["opacity"] = values[2]
    return params


def _blend_overlay(text: str) -> dict[str, Any]:
    return _overlay(text, True)


def _paste_overlay(text: str) -> dict[str, Any]:
    return _overlay(text, False)


# --------------------------------------------------------------------------- op flags

# One flag per common op: (flag, metavar, value parser, help, step builder). The builder
# turns the parsed value into (op name, kwargs) in the ops' own parameter names.
OpFlag = tuple[str, str | None, Callable[[str], Any] | None, str, Callable[[Any], tuple[str, dict[str, Any]]]]
OP_FLAGS: tuple[OpFlag, ...] = (
    ("--resize-shorter", "N", _positive_int, "scale so the shorter side is N (antialiased)",
     lambda v: ("resize_shorter", {"size": v})),
    ("--resize", "HxW", _size, "resize to exactly HxW (antialiased)", lambda v: ("resize", {"size": v})),
    ("--center-crop", "HxW", _size, "crop HxW from the centre", lambda v: ("center_crop", {"size": v})),
    ("--crop", "T,L,HxW", _box, "crop HxW at (top, left)",
     lambda v: ("crop", {"top": v[0], "left": v[1], "height": v[2], "width": v[3]})),
    ("--flip", "h|v|hv", _flip_axis, "flip horizontally, vertically or both",
     lambda v: ("flip", {"horizontal": "h" in v, "vertical": "v" in v})),
    ("--blur", "SIGMA", _positive_float, "gaussian blur of standard deviation SIGMA",
     lambda v: ("gaussian_blur", {"sigma": v})),
    ("--sharpen", "A", _positive_float, "sharpen (unsharp mask) of amount A", lambda v: ("sharpen", {"amount": v})),
    ("--gray", None, None, "convert to grayscale", lambda v: ("to_gray", {})),
    ("--blend", "FILE[@T,L[,OP]]", _blend_overlay,
     "alpha-blend image FILE over each image at (top T, left L; default 0,0), its alpha scaled by "
     "opacity OP in 0..1 (a watermark); FILE is decoded once", lambda v: ("blend", v)),
    ("--paste", "FILE[@T,L]", _paste_overlay, "copy image FILE into each image at (top T, left L) without blending",
     lambda v: ("paste", v)),
    # colour (issue 19)
    ("--to-srgb", None, None, "convert colours from each image's embedded ICC profile to sRGB (a LittleCMS "
     "transform applied on the GPU; needs gpuimg[color]; CMYK JPEGs through their CMYK profile); the outputs "
     "carry the sRGB profile",
     lambda v: ("convert_colorspace", {"to": "srgb"})),
    ("--thumbnail", "N", _positive_int, "shrink to fit within NxN keeping the aspect ratio (never enlarging; "
     "Pillow's thumbnail size rule), colours to sRGB from the embedded profile", lambda v: ("fit_thumbnail", {"size": v})),
)


class _AppendStep(argparse.Action):
    """Records op flags in the order given on the command line (order matters for ops)."""

    def __init__(self, *args: Any, build: Callable[[Any], tuple[str, dict[str, Any]]], **kwargs: Any):
        self.build = build
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        steps = list(getattr(namespace, "steps", None) or [])
        steps.append(self.build(values))
        namespace.steps = steps


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gpuimg`` command (its sub-commands and flags).

    Example:
        >>> build_parser().parse_args(["process", "in", "out", "--gray"]).steps
        [('to_gray', {})]
    """
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="gpuimg", description="Decode, process and encode images on the GPU.", epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gpuimg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_process(sub)
    info = sub.add_parser("info", help="format, size, channels and EXIF orientation of image files")
    info.add_argument("files", nargs="+", metavar="FILE", help="image files, or folders (their images, recursively)")
    info.add_argument("--json", action="store_true", help="one JSON object per line")
    bench = sub.add_parser("bench", help="short self-benchmark on generated images (images/s)")
    bench.add_argument("--count", type=_positive_int, default=None, help="images to generate (default 256; 32 with --quick)")
    bench.add_argument("--size", type=_size, default=None, metavar="HxW",
                       help="image size (default 1080x1920; 480x640 with --quick)")
    bench.add_argument("--quick", action="store_true", help="a few small images: a check that runs in seconds, on the CPU too")
    bench.add_argument("--batch-size", type=_positive_int, default=64)
    bench.add_argument("--device", choices=("cpu", "cuda"), default=None)
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _add_process(sub: Any) -> None:
    p = sub.add_parser(
        "process",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
        help="process a folder (or list) of images into an output folder",
        description="Ops are applied in the order their flags are given. With no op flag the "
        "images are re-encoded (JPEG quality 90 unless --format/--quality say otherwise).",
    )
    p.add_argument("src", metavar="SRC", help="a folder (recursive), an image file, or a .txt list of paths")
    p.add_argument("dst", metavar="DST", help="output folder (mirrors SRC's layout)")
    ops = p.add_argument_group("operations (applied in the order given)")
    for flag, metavar, parse, help_text, build in OP_FLAGS:
        if parse is None:
            ops.add_argument(flag, dest="steps", nargs=0, action=_AppendStep, build=build, help=help_text)
        else:
            ops.add_argument(flag, dest="steps", metavar=metavar, type=parse, action=_AppendStep, build=build, help=help_text)
    ops.add_argument("--pipeline", metavar="FILE", help="JSON file of steps: [[name, {params}], ...] (after any op flags); "
                     "any registered op, e.g. [[\"fill\", {\"color\": [0, 0, 0], \"region\": [0, 0, 20, 4000]}]] or "
                     "[[\"gradient\", {\"stops\": [[0, 0, 0], [255, 255, 255]], \"angle\": 90}]]; a blend/paste "
                     "\"src\" may be an image file path")
    out = p.add_argument_group("output")
    out.add_argument("--format", type=_format_name, metavar=_FORMAT_SHOWN, default="jpeg",
                     help="output format (default jpeg; aliases such as jpg, tif, jpeg2000 work too)")
    out.add_argument("--name", type=_name_template, default=None, metavar="TEMPLATE",
                     help="output file names from TEMPLATE instead of the input's name with the format's extension: "
                     "fields {stem} (input name without extension), {suffix} (input extension, no dot), {ext} (output "
                     "extension, no dot), {parent} (input's folder relative to SRC, '/' as '_', '' at the top), e.g. "
                     "--name '{stem}-{suffix}.{ext}' writes chelsea.jpg and chelsea.png as chelsea-jpg.webp and "
                     "chelsea-png.webp; sub-folders are kept; names that still clash are refused per item")
    out.add_argument("--quality", type=_quality, default=90, help="encoder quality 1..100 (default 90)")
    out.add_argument("--mode", choices=MODES, default="keep",
                     help="what each output is: keep (default: channels and 16-bit kept where the format stores them, "
                     "alpha composited onto --background and 16-bit rounded where it does not), or rgb, rgba, gray")
    out.add_argument("--background", type=_rgb, default=(255, 255, 255), metavar="R,G,B",
                     help="colour alpha is composited onto for formats without alpha (default 255,255,255)")
    # metadata (issue 19): what the outputs keep of the inputs' EXIF, XMP and ICC profile
    from .meta import KEEP

    out.add_argument("--keep-metadata", choices=KEEP, default="all",
                     help="EXIF/XMP/ICC kept where the format stores them: all (default; Orientation reset to 1), "
                     "icc (the colour profile only: no EXIF, GPS or XMP), no-gps, none")
    out.add_argument("--strip-metadata", dest="keep_metadata", action="store_const", const="none",
                     help="keep no metadata (same as --keep-metadata none)")
    out.add_argument("--report", metavar="FILE", help="failure report path (default DST/gpuimg-report.json; "
                     "refused when it is an input or output file)")
    out.add_argument("--in-place", action="store_true", help="allow DST to be SRC or a folder inside it (outputs "
                     "that would replace an input are still refused, per item)")
    run = p.add_argument_group("run")
    run.add_argument("--batch-size", type=_positive_int, default=64, help="images per batch (default 64)")
    run.add_argument("--max-batch-mb", type=_positive_int, default=512, help="decoded pixels per batch, MB (default 512)")
    run.add_argument("--device", choices=("cpu", "cuda"), default=None,
                     help="default: the environment variable GPUIMG_DEVICE where set (the same meaning as "
                     "--device), else the CPU for a job of a few MB (it ends before a GPU would have started), "
                     "else cuda when usable")
    run.add_argument("--include", action="append", metavar="GLOB", help="only files matching (repeatable)")
    run.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip files matching (repeatable)")
    run.add_argument("--resume", action="store_true", help="skip outputs newer than their input")
    run.add_argument("--shards", type=_positive_int, default=None, metavar="N",
                     help="processes sharing the run (default: chosen from the job and the machine's cores; "
                     "1: this process only)")
    run.add_argument("--dry-run", action="store_true", help="list what would be written; process nothing")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (it is drawn only when stderr is a terminal)")
    scale = p.add_argument_group("scale out (pip install \"gpuimg[ray]\")")
    scale.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run on a Ray cluster (ADDRESS as ray.init takes it; none: a local Ray), one actor per "
                            "GPU; same outputs, report and exit codes; SRC may then be a URL (s3://, gs://)")
    scale.add_argument("--gpus", type=_positive_int, default=None, metavar="N",
                       help="N actors on this machine through a local Ray, one GPU each (with --device cpu: N CPU actors)")
    p.set_defaults(steps=[])


def _quality(text: str) -> int:
    value = _positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"expected a quality in 1..100, got {text!r}")
    return value


# --------------------------------------------------------------------------- commands


def _steps_of(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    steps = list(args.steps)
    if args.pipeline:
        from .pipeline import load_steps

        try:
            steps += load_steps(args.pipeline)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return steps


def _rgb(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    try:
        values = tuple(int(v) for v in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise argparse.ArgumentTypeError(f"expected R,G,B with each 0..255, got {text!r}")
    return values  # type: ignore[return-value]


# One run per command: worker processes started for a later run would only slow this one.
def _config() -> Any:
    from .pipeline import PipelineConfig

    return PipelineConfig(prestart_workers=False)


def _asked_device(args: argparse.Namespace) -> tuple[str | None, str]:
    """(the device the user asked for, where): ``--device``, else the environment variable
    ``GPUIMG_DEVICE`` with the same meaning (gpuimg.device), else (None, "")."""
    if args.device is not None:
        return args.device, "--device"
    env = os.environ.get("GPUIMG_DEVICE", "").strip()
    return (env, "GPUIMG_DEVICE") if env else (None, "")


def _job_device(jobs: list[Any]) -> str | None:
    """The device for a command that named none: the CPU for a job so small that it ends
    there before the GPU would have started (PipelineConfig.job_device), else None."""
    config = _config()
    if not jobs or len(jobs) > 64 or not config.cpu_job_max_bytes:
        return None
    total = 0
    for job in jobs:
        try:
            total += os.stat(job.src).st_size
        except OSError:  # it fails in the run, and costs nothing there
            continue
    return config.job_device(total)


def _make_pipeline(steps: list[tuple[str, dict[str, Any]]], device: str | None, source: str = "--device") -> Any:
    from .device import resolve_device
    from .errors import DeviceUnavailableError
    from .pipeline import Pipeline

    config = _config()
    try:
        return Pipeline(steps, config=config,
                        device=resolve_device(device, _source=source or "--device") if device is not None else None)
    except (ValueError, TypeError, DeviceUnavailableError) as exc:
        raise UsageError(str(exc)) from None


def _progress_bar(total: int, enabled: bool) -> tuple[Any, Callable[[int, int], None] | None]:
    """A tqdm bar on stderr, only when it is a terminal (a log file gets no bar lines)."""
    isatty = getattr(sys.stderr, "isatty", None)
    if not enabled or total == 0 or not (isatty and isatty()):
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="img", dynamic_ncols=True, file=sys.stderr)

    def update(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return bar, update


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: the pipeline stops on it as on Ctrl-C."""


@contextlib.contextmanager
def _sigterm_stops() -> Any:
    """SIGTERM (``timeout``, job schedulers) raises _Terminated once, in the main thread;
    later ones are ignored, so the clean stop (summary, report) is not cut short. Yields
    a namespace whose ``raised`` says whether it came (the pipeline reports the stop as
    ``interrupted`` either way)."""
    state = argparse.Namespace(raised=False)
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        if not state.raised:
            state.raised = True
            raise _Terminated

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: the caller handles its signals
        yield state
        return
    try:
        yield state
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)  # None: set outside Python


def _say(text: str) -> None:
    """Print a line that may hold any file name, to a stdout that may be gone.

    A name that is not valid UTF-8 (held as surrogate escapes) or not in the terminal's
    encoding is shown with backslash escapes; a closed pipe (``gpuimg process ... | head``)
    ends the printing, never the command (the run's exit code stands).
    """
    stream = sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    text = text.encode(encoding, "backslashreplace").decode(encoding, "replace")
    try:
        print(text, file=stream, flush=True)
    except BrokenPipeError:
        # Later writes (and the interpreter's flush at exit) go nowhere instead of failing.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())


def _check_dst(dst: str) -> None:
    """Refuse a DST that is a file, lies under a file, or is not writable (the run's first
    write, the clean-up of stale temporary files in DST, would fail with a traceback)."""
    path = Path(dst).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"DST {dst!r} is a file, not a folder: give a folder (it is made if missing)")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"DST {dst!r} cannot be made: {str(existing)!r} is a file, not a folder")
    # os.access answers for the real user (root passes a chmod, not a read-only mount)
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "DST" if existing == path else f"DST's nearest existing folder {str(existing)!r}"
        raise UsageError(f"{what} is not writable (DST {dst!r}): choose a folder you can write to")


def _check_paths(args: argparse.Namespace, jobs: list[Any]) -> None:
    """Refuse, before anything is written, a DST that is a file or not writable, a DST
    inside SRC (unless --in-place; an image file SRC is no folder, so DST may sit beside
    it) and a --report path that is an input or an output of the run."""
    from .pipeline.files import check_output_dir, check_run_files
    from .pipeline.results import REPORT_NAME

    _check_dst(args.dst)
    one_file = len(jobs) == 1 and Path(args.src).is_file() and jobs[0].src == Path(os.path.abspath(args.src))
    try:
        if not args.in_place and not one_file:
            check_output_dir(args.src, args.dst)
    except ValueError as exc:
        raise UsageError(f"{exc} (give --in-place to write there anyway)") from None
    try:
        check_run_files(jobs, args.report if args.report is not None else Path(args.dst) / REPORT_NAME)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def cmd_process(args: argparse.Namespace) -> int:
    on_ray = args.ray is not None or args.gpus is not None
    remote = "://" in args.src  # an object store: listed by the Ray job itself
    if remote and (not on_ray or args.dry_run):
        raise UsageError(f"SRC {args.src!r} is a URL: give --ray (or --gpus N) to read it; --dry-run lists local SRCs only")
    if not remote and not Path(args.src).exists():
        raise UsageError(f"SRC {args.src!r} does not exist")
    try:
        OutputRule(output_format(args.format), args.mode, args.background)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from .pipeline.files import plan_jobs

    jobs: list[Any] = []
    if not remote:
        jobs = plan_jobs(args.src, args.dst, output_format(args.format).suffix, args.include, args.exclude, name=args.name)
        if not jobs:
            filters = " matching --include/--exclude" if args.include or args.exclude else ""
            print(f"gpuimg process: nothing to do: no input images{filters} in {args.src!r}", file=sys.stderr)
            return EXIT_OK
    # On Ray the actors run the steps (on --device, or on the cluster's GPUs): the driver,
    # perhaps a cluster head without a GPU, only plans and reports.
    asked, source = _asked_device(args)
    chosen = "cpu" if on_ray else asked or _job_device(jobs)
    pipeline = _make_pipeline(_steps_of(args), chosen, source)
    small_job = not on_ray and asked is None and chosen == "cpu"
    if not remote:
        _check_paths(args, jobs)
        if args.dry_run:
            return _dry_run(pipeline, jobs)
    bar, progress = _progress_bar(len(jobs), not args.no_progress)
    options = _run_options(args)
    try:
        with _sigterm_stops() as sigterm:
            if on_ray:
                summary = _run_on_ray(pipeline, args, options, progress)
            else:
                summary = pipeline.run(args.src, args.dst, options, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if on_ray:
        where = f"Ray actors ({args.device or 'on the GPUs where the cluster has them'})"
    elif small_job:
        where = _small_job_line()
    else:
        where = _device_line(pipeline.device)
    _say(f"{summary}; on {where}")
    for failure in summary.failures[:10]:
        _say(f"  failed: {failure.path} ({failure.stage}: {failure.reason})")
    if summary.failed:
        more = f" (and {summary.failed - 10} more)" if summary.failed > 10 else ""
        _say(f"{summary.failed} failed{more}; report: {summary.report_path}")
    if summary.interrupted:
        return EXIT_TERMINATED if sigterm.raised else EXIT_INTERRUPTED
    return EXIT_FAILURES if summary.failed else EXIT_OK


def _run_options(args: argparse.Namespace) -> Any:
    """The command's options as the one RunOptions object the pipeline takes."""
    from .pipeline.options import RunOptions

    try:
        return RunOptions(format=args.format, quality=args.quality, batch_size=args.batch_size,
                          max_batch_bytes=args.max_batch_mb * 2**20, include=args.include, exclude=args.exclude,
                          resume=args.resume, report=args.report, mode=args.mode, background=args.background,
                          keep_metadata=args.keep_metadata, shards=args.shards, name=args.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _run_on_ray(pipeline: Any, args: argparse.Namespace, options: Any, progress: Any) -> Any:
    """``process`` through :func:`gpuimg.ray.run_on_ray` (--ray ADDRESS, --gpus N)."""
    from .ray import RayNotInstalledError, run_on_ray

    address = None if args.ray in (None, "local") else args.ray
    if address is not None and args.gpus is not None:
        raise UsageError("--gpus N runs on this machine: give it without a --ray ADDRESS")
    try:
        return run_on_ray(pipeline, args.src, args.dst, options, progress=progress, address=address, actors=args.gpus,
                          device=args.device)
    except (RayNotInstalledError, ValueError) as exc:  # no Ray; more GPUs asked for than the cluster has
        raise UsageError(str(exc)) from None


def _dry_run(pipeline: Any, jobs: list[Any]) -> int:
    steps = " -> ".join(f"{name}({', '.join(f'{k}={v!r}' for k, v in kw.items())})" for name, kw in pipeline.steps)
    _say(f"steps: decode -> {steps + ' -> ' if steps else ''}encode on {pipeline.device}")
    refused = 0
    for job in jobs:
        if job.dst is None:
            refused += 1
            _say(f"{job.src} -> (refused: {job.refused})")
        else:
            _say(f"{job.src} -> {job.dst}")
    _say(f"{len(jobs)} inputs, {refused} refused (dry run: nothing written)")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from .codec import info

    status = EXIT_OK
    for name in _info_inputs(args.files):
        try:
            meta = _info_dict(info(name))
        except Exception as exc:  # per file: report and go on, like `process`
            print(f"{name}: error: {exc}", file=sys.stderr)
            status = EXIT_FAILURES
            continue
        if args.json:
            _say(json.dumps({"file": name, **meta}))
        else:
            _say(f"{name}: {_info_text(meta)}")
    return status


def _info_inputs(names: Sequence[str]) -> list[str]:
    """The files ``info`` reads: each name, a folder replaced by its image files (the
    suffixes ``process`` takes, recursively, in sorted order)."""
    from .pipeline.files import discover

    out: list[str] = []
    for name in names:
        if os.path.isdir(name):
            found = [str(p) for p in discover(name)[0]]
            if not found:
                print(f"{name}: no image files in this folder", file=sys.stderr)
            out += found
        else:
            out.append(name)
    return out


_INFO_EXIF_TAGS = ("Make", "Model", "DateTimeOriginal", "DateTime", "Software")


def _info_dict(meta: Any) -> dict[str, Any]:
    fields = ("codec", "width", "height", "channels", "dtype", "orientation")
    out: dict[str, Any] = {}
    for key in fields:
        value = getattr(meta, key, None)
        if value is not None:
            out[key] = value if isinstance(value, int | float | str) else str(value)
    out.update(_metadata_summary(getattr(meta, "metadata", None)))
    return out


def _metadata_summary(md: Any) -> dict[str, Any]:
    """What ``info`` prints of a file's metadata: the ICC profile's description, the
    usual EXIF tags (and whether it holds a location), the XMP packet's size, problems."""
    if md is None:
        return {}
    out: dict[str, Any] = {}
    if md.icc is not None:
        out["icc"] = md.icc_description or f"unnamed profile ({len(md.icc)} bytes)"
    if md.exif is not None:
        tags = md.exif_tags
        named = {k: str(tags[k]).strip() for k in _INFO_EXIF_TAGS if k in tags}
        out["exif"] = {**named, "tags": len(tags), "gps": md.gps}
    if md.xmp is not None:
        out["xmp"] = f"{len(md.xmp)} characters"
    if md.problems:
        out["metadata problems"] = list(md.problems)
    return out


def _info_text(meta: dict[str, Any]) -> str:
    """One ``info`` line: "key value" pairs; the EXIF summary in parentheses."""
    parts = []
    for key, value in meta.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {v}" for k, v in value.items())
            parts.append(f"{key} ({inner})")
        elif isinstance(value, list):
            parts.append(f"{key}: {'; '.join(map(str, value))}")
        else:
            parts.append(f"{key} {value}")
    return ", ".join(parts)


def cmd_bench(args: argparse.Namespace) -> int:
    """Generate ``count`` JPEGs (gpuimg's own encoder, from a synthetic photo-like image),
    then time a typical run: decode -> resize_shorter 512 -> center_crop 512 -> JPEG q90."""
    from .pipeline import Pipeline

    count = args.count if args.count is not None else (32 if args.quick else 256)
    size = args.size if args.size is not None else ((480, 640) if args.quick else (1080, 1920))
    pipeline = _make_pipeline([("resize_shorter", {"size": 512}), ("center_crop", {"size": (512, 512)})], args.device)
    print(f"gpuimg bench on {_device_line(pipeline.device)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpuimg-bench-") as tmp:
        src, dst = Path(tmp) / "in", Path(tmp) / "out"
        t0 = time.perf_counter()
        _generate_images(src, count, size)
        print(f"generated {count} JPEGs of {size[1]}x{size[0]} in {time.perf_counter() - t0:.1f} s", flush=True)
        warm = min(count, args.batch_size)  # a first batch: kernels compiled, decoder and buffers made
        Pipeline([], device=pipeline.device).run(sorted(src.iterdir())[:warm], dst, batch_size=args.batch_size,
                                                 report=Path(tmp) / "warm.json")
        bar, progress = _progress_bar(count, not args.no_progress)
        try:
            summary = pipeline.run(src, dst, batch_size=args.batch_size, report=Path(tmp) / "report.json", progress=progress)
        finally:
            if bar is not None:
                bar.close()
    print(f"decode -> resize_shorter 512 -> center_crop 512 -> JPEG q90 on {pipeline.device}: {summary}")
    busy = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(summary.stage_seconds.items()))
    print(f"stage busy time (threads summed): {busy}")
    return EXIT_OK if not summary.failed else EXIT_FAILURES


def _small_job_line() -> str:
    """Why a small job ran on the CPU: its size where a GPU is usable, else the reason
    there is none (then no hint to ask for one)."""
    from .device import cuda_available

    if cuda_available():
        return "cpu (chosen for a job this small: it ends before a GPU would have started; --device cuda to use one)"
    return _device_line("cpu")


def _device_line(device: str) -> str:
    """``device`` and, on the CPU, why not the GPU (gpuimg.device.device_report)."""
    from .device import device_report

    report = device_report()
    return report if report.startswith(device) else f"{device} (asked for)"


def _generate_images(folder: Path, count: int, size: tuple[int, int]) -> None:
    """``count`` JPEGs: a synthetic photo-like gradient with noise, four variants encoded
    once each with gpuimg's encoder (on the CPU: no GPU needed), copied to fill the count."""
    import numpy as np

    from .codec import Encoder
    from .image import Image

    folder.mkdir(parents=True, exist_ok=True)
    height, width = size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:height, :width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) % 256], -1).astype(np.uint8)
    encoder = Encoder("cpu")
    encoded = []
    for _ in range(4):
        v = np.clip(base.astype(np.int16) + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
        encoded.append(bytes(encoder.encode(Image.from_array(v, device="cpu"), "jpeg", quality=90)))
    for i in range(count):
        (folder / f"img{i:05d}.jpg").write_bytes(encoded[i % len(encoded)])


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"process": cmd_process, "info": cmd_info, "bench": cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gpuimg`` console script; returns the exit code.

    Example:
        >>> main(["process"])  # usage message on stderr
        2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse prints the usage and message itself
        return int(exc.code or 0)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"gpuimg {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except _Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
