"""``gpuimg process``: its flags, the device it picks, the checks before anything is
written, and the run (in this process, in shards, or on Ray)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..pipeline.files import output_format
from ..pipeline.steps import OUTPUT_MODES, OutputRule
from ._common import (EXIT_CODES_HELP, EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, UsageError,
                      _config, _device_line, _make_pipeline, _progress_bar, _say, _sigterm_stops)
from ._flags import (_FORMAT_SHOWN, OP_FLAGS, _AppendStep, _format_name, _name_template, _positive_int,
                     _quality, _rgb)


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
    out.add_argument("--mode", choices=OUTPUT_MODES, default="keep",
                     help="what each output is: keep (default: channels and 16-bit kept where the format stores them, "
                     "alpha composited onto --background and 16-bit rounded where it does not), or rgb, rgba, gray")
    out.add_argument("--background", type=_rgb, default=(255, 255, 255), metavar="R,G,B",
                     help="colour alpha is composited onto for formats without alpha (default 255,255,255)")
    # metadata: what the outputs keep of the inputs' EXIF, XMP and ICC profile
    from ..meta import KEEP

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

# --------------------------------------------------------------------------- commands


def _steps_of(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    steps = list(args.steps)
    if args.pipeline:
        from ..pipeline import load_steps

        try:
            steps += load_steps(args.pipeline)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return steps

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
    from ..pipeline.files import check_output_dir, check_run_files
    from ..pipeline.results import REPORT_NAME

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
    _start_cpu_codecs_early(args)
    from ..pipeline.files import plan_jobs

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
                summary = pipeline.run(args.src, args.dst, options, progress=progress, planned=jobs)
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

def _start_cpu_codecs_early(args: argparse.Namespace) -> None:
    """Where the run will decode on the CPU for sure (``--device cpu``, GPUIMG_DEVICE=cpu,
    or no NVIDIA driver at all), start the isolated codecs' child process now: its start
    (an interpreter importing NumPy and nvImageCodec) then overlaps this process's
    planning and imports instead of following them. The run's warm-up finds it."""
    if args.dry_run or args.ray is not None or args.gpus is not None:
        return
    asked = (args.device or os.environ.get("GPUIMG_DEVICE", "")).strip().lower()
    from ..device import _driver_cuda_version

    if asked == "cpu" or (not asked and _driver_cuda_version() is None):
        from ..codec import isolation
        from ..pipeline.config import PipelineConfig

        isolation.prestart(PipelineConfig().decoder_threads, PipelineConfig().isolation)

def _run_options(args: argparse.Namespace) -> Any:
    """The command's options as the one RunOptions object the pipeline takes."""
    from ..pipeline.options import RunOptions

    try:
        return RunOptions(format=args.format, quality=args.quality, batch_size=args.batch_size,
                          max_batch_bytes=args.max_batch_mb * 2**20, include=args.include, exclude=args.exclude,
                          resume=args.resume, report=args.report, mode=args.mode, background=args.background,
                          keep_metadata=args.keep_metadata, shards=args.shards, name=args.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

def _run_on_ray(pipeline: Any, args: argparse.Namespace, options: Any, progress: Any) -> Any:
    """``process`` through :func:`gpuimg.ray.run_on_ray` (--ray ADDRESS, --gpus N)."""
    from ..ray import RayNotInstalledError, run_on_ray

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

def _small_job_line() -> str:
    """Why a small job ran on the CPU: its size where a GPU is usable, else the reason
    there is none (then no hint to ask for one)."""
    from ..device import cuda_available

    if cuda_available():
        return "cpu (chosen for a job this small: it ends before a GPU would have started; --device cuda to use one)"
    return _device_line("cpu")
