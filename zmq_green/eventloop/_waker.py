"""Wake an :class:`~zmq_green.eventloop.IOLoop` blocked in its poll.

The loop greenlet blocks in a green :class:`zmq_green.Poller`; the only things
that end that wait are readiness of what the poller watches and its timeout. So
the loop watches one more fd: the read end of a pipe. Writing a byte to it wakes
the loop from anywhere -- another greenlet, another OS thread, or a Python signal
handler, which may run in the middle of any greenlet (including the hub) and so
must not switch greenlets: ``os.write`` on a non-blocking pipe never does.
"""

from __future__ import annotations

import os
import signal

__all__ = ["Waker"]


class Waker:
    """A self-pipe: :meth:`wake` makes :meth:`fileno` readable until :meth:`drain`.

    At most one byte is in flight: :meth:`wake` writes only if no wake-up is
    pending, which keeps a burst of ``add_callback`` calls to one syscall.
    """

    __slots__ = ("_pending", "_read", "_write")

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._pending = False

    def fileno(self) -> int:
        """The fd to poll for reading."""
        return self._read

    def signals(self) -> int | None:
        """Have signals wake the loop from now on: the previous wake-up fd, to restore.

        A Python signal handler runs only when this thread next runs Python code,
        and gevent checks for signals before it polls, not while it sleeps: a
        signal that lands in between waits for the poll's next event (a handler
        that calls ``add_callback_from_signal`` is not seen). With the write end
        as the wake-up fd, Python's C-level handler writes to it, and the loop
        wakes at once. ``None`` where that is not possible (not the main thread).
        """
        try:
            return signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        except ValueError:  # not the main thread of the main interpreter
            return None

    def wake(self) -> None:
        """Make the read end readable (safe from threads and signal handlers)."""
        if not self._pending:
            self._pending = True
            try:
                os.write(self._write, b"\0")
            except OSError:
                pass  # full (a wake-up is in the pipe already) or closed

    def drain(self) -> None:
        """Consume every pending wake-up."""
        try:
            while os.read(self._read, 512):
                pass
        except OSError:
            pass  # empty
        # Only now: a wake() between the read and this line leaves a byte in the
        # pipe (a spurious wake-up later), never a lost one.
        self._pending = False

    def close(self) -> None:
        """Close both ends; later :meth:`wake` calls do nothing."""
        for fd in (self._read, self._write):
            if fd >= 0:
                os.close(fd)
        # -1 makes a late wake() fail with EBADF instead of writing to a reused fd.
        self._read = self._write = -1
        self._pending = True

    def __del__(self) -> None:
        # A loop that was never closed (IOLoop.current() in a finished thread,
        # say) must not leak its two fds.
        if getattr(self, "_write", -1) >= 0:
            self.close()
