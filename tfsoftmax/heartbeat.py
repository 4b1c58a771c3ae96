"""A line every few seconds while a long step prints nothing — so nobody wonders if it hangs.

:class:`Heartbeat` stands between a program and its output stream. It passes
everything through and remembers when the last line went out; a background
thread checks four times a second, and when the stream has been silent for
``interval`` seconds it prints::

    ... still <what>: <seconds since the step began> s

where ``<what>`` is whatever :meth:`Heartbeat.doing` last named (creating
the environment, unpacking TensorFlow in pip, ...) — or, when nothing was
named, ``working after "<the last line printed>"``, the step that line
announced (``Importing TensorFlow and Keras ...``, ``Training custom ops
...``), timed from that line. The heartbeat itself counts as output, so a
silent step gets one line every ``interval`` seconds, and a talkative one
none.

Standard library only: :mod:`tfsoftmax.bootstrap` uses it before NumPy or
TensorFlow exist.

>>> import io, time
>>> out = io.StringIO()
>>> with Heartbeat(out, interval=0.2) as beat:
...     beat.doing("waiting")
...     time.sleep(1.0)
>>> out.getvalue().splitlines()[0]  # doctest: +ELLIPSIS
'... still waiting: ... s'
"""

import threading
import time

__all__ = ["HEARTBEAT_SECONDS", "Heartbeat"]

#: Seconds of silence before a heartbeat line.
HEARTBEAT_SECONDS = 8.0


class Heartbeat:
    """A text stream wrapping ``out`` that adds a line after ``interval`` silent seconds.

    Use as a context manager (the thread runs inside it). ``write`` and
    ``flush`` pass through; any other attribute is ``out``'s.
    """

    def __init__(self, out, interval=HEARTBEAT_SECONDS):
        self._out, self._interval = out, interval
        self._lock = threading.Lock()
        self._last = self._since = time.monotonic()
        self._what = None
        self._line, self._line_at = "", self._since
        self._stop = threading.Event()
        self._thread = None

    def doing(self, what):
        """Name the step now running (its clock starts now)."""
        with self._lock:
            self._what, self._since = what, time.monotonic()

    def write(self, text):
        with self._lock:
            self._last = time.monotonic()
            lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
            lines = [line for line in lines if line]
            if lines:
                self._line, self._line_at = lines[-1], self._last
            return self._out.write(text)

    def flush(self):
        with self._lock:
            self._out.flush()

    def __getattr__(self, name):
        return getattr(self._out, name)

    def _step(self, now):
        """``what: seconds`` of the step running now."""
        if self._what is not None or not self._line:
            return f"{self._what or 'working'}: {now - self._since:.0f}"
        line = self._line if len(self._line) <= 60 else self._line[:57] + "..."
        return f'working after "{line}": {now - self._line_at:.0f}'

    def _beat(self):
        while not self._stop.wait(0.25):
            with self._lock:
                now = time.monotonic()
                if now - self._last >= self._interval:
                    self._out.write(f"... still {self._step(now)} s\n")
                    self._out.flush()
                    self._last = now

    def __enter__(self):
        self._thread = threading.Thread(target=self._beat, name="tfsoftmax-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        return False
