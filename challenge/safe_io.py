"""Standard streams that can neither block nor kill the run.

The organisers read stdout (and maybe stderr) through a pipe they may close: ``predict.py ... 2>&1 | head -2``
then turns every later write into BrokenPipeError, raised inside a progress bar, a log handler or the writer
thread. ``protect_standard_streams`` wraps sys.stdout and sys.stderr so that the first failing write points
the stream's file descriptor at /dev/null (what the Python docs advise for SIGPIPE) and every later write
succeeds; the run goes on and its report still lands in the output root.
"""
from __future__ import annotations

import io
import os
import sys


class SafeStream(io.TextIOBase):
    """A text stream over ``stream`` whose write and flush never raise; after the first failure everything
    written is dropped (and the file descriptor, if any, redirected to /dev/null so that buffered data and
    C-level writes cannot fail either)."""

    def __init__(self, stream):
        super().__init__()
        self._stream = stream
        self.broken: str | None = None        # why writing stopped, once it has

    def write(self, text: str) -> int:
        if self.broken is None:
            try:
                self._stream.write(text)
            except (OSError, ValueError) as error:   # ValueError: the stream was closed
                self._break(error)
        return len(text)

    def flush(self) -> None:
        if self.broken is None:
            try:
                self._stream.flush()
            except (OSError, ValueError) as error:
                self._break(error)

    def _break(self, error: Exception) -> None:
        self.broken = f"{type(error).__name__}: {error}"
        try:
            descriptor = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, descriptor)
            os.close(null)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass

    def isatty(self) -> bool:
        try:
            return self.broken is None and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self):
        return getattr(self._stream, "encoding", "utf-8")

    @property
    def errors(self):
        return getattr(self._stream, "errors", "strict")

    def __getattr__(self, name):
        return getattr(self._stream, name)


def protect_standard_streams() -> None:
    """Replace sys.stdout and sys.stderr by SafeStreams (once)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, SafeStream):
            setattr(sys, name, SafeStream(stream))
