"""How a child process ended, in words (the isolated codecs' children and the shards).

Example:
    >>> died_of(-11), died_of(0), died_of(None)
    ('SIGSEGV', None, None)
"""

from __future__ import annotations

import signal

__all__ = ["died_of"]


def died_of(returncode: int | None) -> str | None:
    """The signal that ended a process with ``returncode`` (a Popen's: negative for a
    signal), by name; None when it exited on its own or has not ended.

    Example:
        >>> died_of(-9), died_of(-200)
        ('SIGKILL', 'signal 200')
    """
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"
