"""What every sub-command of the ``gpuimg`` command shares: exit codes, the usage
error, printing, the device line, the pipeline it builds, progress and SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
EXIT_CODES_HELP = """exit codes:
  0    every item succeeded (or there was nothing to do)
  1    some items failed (the report lists them; the others were written)
  2    usage error (bad flags, unknown op, missing input, DST inside SRC without --in-place)
  130  interrupted by Ctrl-C (finished outputs kept, summary printed, report written)
  143  stopped by SIGTERM (as Ctrl-C)"""

class UsageError(Exception):
    """A bad command line found after parsing (unknown op parameter, unreadable --pipeline)."""

# One run per command: worker processes started for a later run would only slow this one.
def _config() -> Any:
    from ..pipeline import PipelineConfig

    return PipelineConfig(prestart_workers=False)

def _make_pipeline(steps: list[tuple[str, dict[str, Any]]], device: str | None, source: str = "--device") -> Any:
    from ..device import resolve_device
    from ..errors import DeviceUnavailableError
    from ..pipeline import Pipeline

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

def _device_line(device: str) -> str:
    """``device`` and, on the CPU, why not the GPU (gpuimg.device.device_report)."""
    from ..device import device_report

    report = device_report()
    return report if report.startswith(device) else f"{device} (asked for)"
