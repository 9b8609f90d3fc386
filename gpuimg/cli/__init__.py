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
import sys
from collections.abc import Callable, Sequence

from ._bench import cmd_bench
from ._common import EXIT_CODES_HELP, EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE, UsageError
from ._common import _Terminated
from ._flags import _positive_int, _size
from ._info import cmd_info
from ._process import _add_process, cmd_process

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILURES", "EXIT_USAGE", "EXIT_INTERRUPTED", "EXIT_TERMINATED"]

# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``gpuimg`` command (its sub-commands and flags).

    Example:
        >>> build_parser().parse_args(["process", "in", "out", "--gray"]).steps
        [('to_gray', {})]
    """
    from .. import __version__

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
