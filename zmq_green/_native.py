"""Real OS threads whose end greenlets await.

What must block inside libzmq -- a context's termination, the C proxy -- runs in
a thread of its own while the caller waits. Not in a worker of the hub's
threadpool: that pool is shared and may be full (user tasks blocked in it would
then wait forever for the very termination that would free them), and a child of
a plain :func:`os.fork` inherits a pool whose threads it does not have. The
threads here are started with the original ``_thread.start_new_thread``, so they
are real even after ``gevent.monkey.patch_all()``.

A thread's end is a :class:`Completion`: a one-shot flag that the thread sets
and any number of callers wait for. A greenlet blocks through
:func:`zmq_green._waiting.block`, woken by an async watcher on its own hub: the
only watcher that libev and libuv let another thread signal. The hub itself, and
a thread without a hub, block the OS thread on a native lock instead: the hub
has no greenlet to give the time to, and a thread without a hub has no other
greenlets.

A hub inherited through a fork is a case apart. In the child of a plain
:func:`os.fork`, without :func:`gevent.reinit`, its async watchers cannot be
trusted: with libuv the child polls the parent's epoll instance, and the parent
may consume the wake-up; with libev, which re-creates its kernel state in the
child by itself (``EVFLAG_FORKCHECK``), a wake-up is still lost if the parent
had used the hub's threadpool and the watcher was started before the child's
loop ran. Both were seen to hang a child, and both work after ``gevent.reinit``
-- which leaves no mark telling a repaired hub from a broken one. So under any
hub older than the process (:func:`inherited_hub`), a wait that is short and
must not hang, a context's termination, blocks the OS thread
(:meth:`Completion.wait_blocking`). A proxy's caller still waits greenly:
blocking the hub for the proxy's whole life would stop the child.
"""

from __future__ import annotations

import os
import signal
import time
import weakref
from collections.abc import Sequence
from typing import Any, Callable

from gevent._hub_local import get_hub_if_exists
from gevent.hub import Hub
from gevent.monkey import get_original
from greenlet import getcurrent

from ._waiting import READY, Entry, block_until

__all__ = ["Completion", "NativeThread", "inherited_hub"]

# Real OS threads and locks, whatever gevent.monkey has patched.
_start_new_thread: Callable[..., int] = get_original("_thread", "start_new_thread")
_allocate_lock: Callable[[], Any] = get_original("_thread", "allocate_lock")
_pthread_sigmask = signal.pthread_sigmask
_SIG_BLOCK, _SIG_SETMASK = signal.SIG_BLOCK, signal.SIG_SETMASK
_ALL_SIGNALS = signal.valid_signals()

# Hubs that a fork copied, and the process they were made in (the oldest one).
_hub_pids: weakref.WeakKeyDictionary[Hub, int] = weakref.WeakKeyDictionary()


def _note_fork() -> None:
    hub = get_hub_if_exists()
    if hub is not None:
        _hub_pids.setdefault(hub, os.getpid())


os.register_at_fork(before=_note_fork)


def inherited_hub() -> bool:
    """Whether the calling thread's hub was made before a fork that made this process.

    If so, its async watchers may lose a wake-up (see the module's notes).
    """
    hub = get_hub_if_exists()
    return hub is not None and _hub_pids.get(hub, os.getpid()) != os.getpid()


class Completion:
    """A one-shot flag, set from any OS thread, awaited by greenlets of any thread.

    :meth:`wait` blocks only the calling greenlet. Each waiting greenlet holds an
    async watcher on its own hub while it waits; it keeps the hub's loop alive
    meanwhile. :meth:`wait_blocking` blocks the OS thread.
    """

    __slots__ = ("_done", "_lock", "_unset", "_watchers")

    def __init__(self) -> None:
        self._lock = _allocate_lock()
        self._done = False
        self._watchers: list[Any] = []
        # Held until set(): wait_blocking() blocks on it.
        self._unset = _allocate_lock()
        self._unset.acquire()

    def is_set(self) -> bool:
        """Whether :meth:`set` has been called."""
        return self._done

    def set(self) -> None:
        """Set the flag and wake every waiter. Callable from any thread."""
        with self._lock:
            if not self._done:
                self._done = True
                self._unset.release()
            # Under the lock: a waiter closes its watcher only while holding it.
            for watcher in self._watchers:
                watcher.send()

    def wait(self, timeout: float | None = None) -> bool:
        """Block the calling greenlet until the flag is set or *timeout* seconds pass.

        From the hub itself, or in a thread without a hub, this is
        :meth:`wait_blocking`: there is no other greenlet to give the time to.

        Returns
        -------
        set : bool
            Whether the flag is set.
        """
        if self._done:
            return True
        hub = get_hub_if_exists()
        if hub is None or getcurrent() is hub:
            return self.wait_blocking(timeout)
        entry = Entry(hub, 0)
        watcher = hub.loop.async_()
        watcher.start(entry.wake, READY)
        with self._lock:
            if self._done:
                watcher.close()
                return True
            self._watchers.append(watcher)
        try:
            block_until(entry, None if timeout is None else time.monotonic() + timeout, None)
        finally:
            with self._lock:
                self._watchers.remove(watcher)
                watcher.close()
        return self._done

    def wait_blocking(self, timeout: float | None = None) -> bool:
        """Block the calling OS thread until the flag is set or *timeout* seconds pass.

        Returns
        -------
        set : bool
            Whether the flag is set.
        """
        if self._done:
            return True
        if self._unset.acquire(True, -1 if timeout is None else max(timeout, 0)):
            self._unset.release()  # for the next one blocked here
        return self._done


class NativeThread:
    """Run ``target(*args)`` in a real OS thread; join it from a greenlet without blocking the hub.

    The part of :class:`threading.Thread`'s API that devices use: :meth:`start`,
    :meth:`join`, :meth:`is_alive`, ``daemon``. The thread is real even after
    ``gevent.monkey.patch_all()``, and, like a daemon thread, does not keep the
    interpreter alive at exit (``daemon`` is accepted for compatibility only).
    As :class:`threading.Thread` does, it lets go of *target* and *args* once
    *target* returns, so that they do not live on through the thread object.

    Attributes
    ----------
    result : object
        What *target* returned.
    exception : BaseException or None
        What *target* raised, if anything, or why the thread could not start.
    finished : Completion
        Set when *target* has returned or raised.
    """

    def __init__(self, target: Callable[..., Any], args: Sequence[Any] = ()) -> None:
        self.target: Callable[..., Any] | None = target
        self.args = tuple(args)
        self.daemon = True
        self.result: Any = None
        self.exception: BaseException | None = None
        self.finished = Completion()
        self._started = False

    def start(self) -> None:
        """Start the thread.

        If no thread can be started, the error is raised here and also kept as
        :attr:`exception`, and :attr:`finished` is set: whoever waits for this
        thread learns of it.
        """
        if self._started:
            raise RuntimeError("threads can only be started once")
        self._started = True
        # The thread starts with every signal blocked (a thread inherits its
        # creator's mask): a signal sent to the process then goes to a thread
        # that handles it. Delivered to this one, blocked in a C call, it would
        # only set Python's flag, and the main thread, asleep in the hub's poll,
        # would not see it until something else woke the hub.
        mask = _pthread_sigmask(_SIG_BLOCK, _ALL_SIGNALS)
        try:
            _start_new_thread(self._run, ())
        except BaseException as e:
            self._end(exception=e)
            raise
        finally:
            _pthread_sigmask(_SIG_SETMASK, mask)

    def _run(self) -> None:
        assert self.target is not None
        try:
            result = self.target(*self.args)
        except BaseException as e:  # handed to whoever joins
            self._end(exception=e)
        else:
            self._end(result=result)

    def _end(self, result: Any = None, exception: BaseException | None = None) -> None:
        self.result = result
        self.exception = exception
        self.target = None
        self.args = ()
        self.finished.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the thread ends or *timeout* seconds pass, blocking only the calling greenlet."""
        if not self._started:
            raise RuntimeError("cannot join thread before it is started")
        self.finished.wait(timeout)

    def is_alive(self) -> bool:
        """Whether the thread has started and not yet finished."""
        return self._started and not self.finished.is_set()
