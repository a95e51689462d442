"""An IOLoop with tornado's API, running on the gevent hub.

:class:`IOLoop` is a greenlet-friendly event loop for code written against
tornado's ``IOLoop`` (and pyzmq's :class:`~zmq_green.eventloop.zmqstream.ZMQStream`),
with no tornado and no asyncio underneath. Its loop runs in the greenlet that
calls :meth:`IOLoop.start`:

1. run the callbacks queued before this iteration, then the timers that are due;
2. block in a green :class:`zmq_green.Poller` over the registered handlers (zmq
   sockets, raw fds, objects with ``fileno()``) until one is ready, the next timer
   is due, or a :class:`~zmq_green.eventloop._waker.Waker` says new work arrived;
3. call the handlers of what is ready.

Blocking happens in the green poller only, so every other greenlet keeps running
while the loop waits; callbacks and handlers run in the loop's greenlet and may
make green blocking calls of their own. Zmq sockets are polled on ``ZMQ_EVENTS``,
so handlers see the level (ready or not), never the edge of ``ZMQ_FD``.

While a loop runs in the main thread, signals wake it: its waker is the process's
``signal.set_wakeup_fd`` (the previous one comes back when the loop stops), as an
asyncio loop's is, so a Python signal handler that calls
:meth:`IOLoop.add_callback_from_signal` is run at once, not at the poll's next event.

Coroutine functions are accepted wherever a callback is, as tornado accepts them,
and their coroutines are run, never dropped. There is no asyncio loop on the gevent
hub, so a coroutine is driven in a greenlet: it may block greenly (``gevent.sleep``,
zmq_green sockets, ``gevent.event``) and await coroutines that do, and a bare
``yield`` (``await asyncio.sleep(0)``) lets the other greenlets run. What only an
asyncio loop can finish (an asyncio or tornado future, ``asyncio.sleep(1)``) cannot
be awaited: such an ``await`` raises (a TypeError thrown in at the ``await``, or
asyncio's own RuntimeError) in the coroutine, and the error is logged.
"""

from __future__ import annotations

import datetime
import functools
import heapq
import itertools
import logging
import math
import os
import random
import signal
import time
from collections import deque
from collections.abc import Awaitable
from inspect import isawaitable
from typing import Any, Callable, TypeVar, overload

import zmq
from gevent import Greenlet, get_hub, sleep
from gevent.event import AsyncResult
from gevent.monkey import get_original

from .._ints import EVENTS, POLLERR, POLLIN, POLLOUT
from .._waiting import Entry, _stats, block
from ..poll import Poller
from ._waker import Waker

__all__ = ["IOLoop", "PeriodicCallback", "ZMQIOLoop", "install"]

logger = logging.getLogger("zmq_green.eventloop")

_monotonic = time.monotonic
_time = time.time
_heappush = heapq.heappush
_heappop = heapq.heappop

# A real thread-local even under monkey.patch_all(), which turns threading.local
# into a greenlet-local: the current IOLoop is per thread, shared by its greenlets.
_thread_state: Any = get_original("_thread", "_local")()

_T = TypeVar("_T")


class _Timeout:
    """The handle of a scheduled call: cancelled by dropping its callback."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback: Callable[[], object] | None = callback


class _Handler:
    """What :meth:`IOLoop.add_handler` registered for one socket or fd."""

    __slots__ = ("callback", "events", "fileobj")

    def __init__(self, fileobj: Any, callback: Callable[[Any, int], object], events: int) -> None:
        self.fileobj = fileobj
        self.callback = callback
        self.events = events


def _log_exception(what: str, callback: object) -> None:
    logger.error("Exception in %s %r", what, callback, exc_info=True)


def _run_callback(what: str, callback: Callable[..., object], *args: Any) -> Greenlet | None:
    """Call ``callback(*args)``, logging what it raises.

    If it returns an awaitable (a coroutine function's coroutine), run that on in a
    greenlet of its own, as tornado runs it as a task, and log what it raises.

    Returns
    -------
    greenlet : gevent.Greenlet or None
        The greenlet that runs the awaitable, if there is one.
    """
    try:
        result = callback(*args)
    except Exception:
        _log_exception(what, callback)
        return None
    return None if result is None else _run_on(what, callback, result)


def _run_on(what: str, callback: object, result: object) -> Greenlet | None:
    """Run *result* on in a greenlet of its own if it is awaitable (or ignore it)."""
    if not isawaitable(result):
        return None
    return Greenlet.spawn(_finish, what, callback, result)


def _finish(what: str, callback: object, awaitable: Awaitable[object]) -> None:
    try:
        _complete(awaitable)
    except Exception:
        _log_exception(what, callback)


async def _awaiting(awaitable: Awaitable[_T]) -> _T:
    # Gives any awaitable a coroutine's send() and throw().
    return await awaitable


def _complete(awaitable: Awaitable[_T]) -> _T:
    """Run *awaitable* to its end in this greenlet: its result, or what it raised.

    A coroutine that blocks greenly does not suspend. At a bare ``yield`` (``await
    asyncio.sleep(0)``) it suspends with None: the other greenlets run, then it goes
    on. Anything else it suspends on (an asyncio or tornado future) waits for an
    event loop that is not here: a TypeError is thrown in at that ``await`` instead
    of a wait that would never end.
    """
    coro = _awaiting(awaitable)
    error: TypeError | None = None
    try:
        while True:
            try:
                waited_for = coro.send(None) if error is None else coro.throw(error)
            except StopIteration as done:
                result: _T = done.value
                return result
            error = None
            if waited_for is not None:
                error = TypeError(
                    f"cannot await {waited_for!r} in a greenlet: no asyncio loop runs on the "
                    "gevent hub. Block greenly instead (gevent, zmq_green sockets)."
                )
            sleep(0)
    finally:
        coro.close()  # killed while suspended: run the coroutine's finally blocks


class _HandlerPoller(Poller):
    """The loop's poller: raw fds are watched standing, since a handler must be
    removed before its fd is closed (tornado's rule too; see ``zmq_green.poll``)."""

    _standing_fds = True


class IOLoop:
    """A level-triggered I/O event loop on the gevent hub, with tornado's IOLoop API.

    :meth:`start` runs the loop in the calling greenlet until :meth:`stop`; all
    other greenlets keep running meanwhile. Callbacks, timers and handlers run in
    the loop's greenlet, one at a time; an exception in one of them is logged
    (logger ``zmq_green.eventloop``) and the loop goes on.

    Parameters
    ----------
    make_current : bool
        Make the new loop the current one of this thread (default, as in tornado).

    Attributes
    ----------
    READ, WRITE, ERROR : int
        Event flags for :meth:`add_handler`. They equal ``zmq.POLLIN``,
        ``zmq.POLLOUT`` and ``zmq.POLLERR``, as in pyzmq's original IOLoop.
    """

    # A handler's events are zmq's poll flags, so they go to the poller as they are.
    READ = POLLIN
    WRITE = POLLOUT
    ERROR = POLLERR

    def __init__(self, make_current: bool = True) -> None:
        self._callbacks: deque[Callable[[], object]] = deque()
        # (monotonic deadline, sequence number, handle): tuples compare in C.
        self._timers: list[tuple[float, int, _Timeout]] = []
        self._sequence = itertools.count()
        self._cancelled = 0
        # Keyed by the zmq socket itself, or by the fd number of anything else.
        self._handlers: dict[Any, _Handler] = {}
        # Event masks to give the poller before its next wait. Applied by the loop
        # greenlet only: the poller must not change under a wait in progress.
        self._changes: dict[Any, int] = {}
        self._registered: dict[Any, int] = {}
        self._poller = _HandlerPoller()
        self._waker = Waker()
        self._handlers[self._waker.fileno()] = _Handler(self._waker, self._on_wake, POLLIN)
        self._changes[self._waker.fileno()] = POLLIN
        self._running = False
        self._stopping = False
        self._closed = False
        # True from the loop's last look at its work until its poll returns: new
        # work must wake it then, and only then (see start()).
        self._polling = False
        if make_current:
            self.make_current()

    # -- the current loop of a thread --------------------------------------

    @overload
    @staticmethod
    def current() -> IOLoop: ...

    @overload
    @staticmethod
    def current(instance: bool) -> IOLoop | None: ...

    @staticmethod
    def current(instance: bool = True) -> IOLoop | None:
        """The current thread's IOLoop.

        That is the running loop, or the one made current by :meth:`make_current`
        (a new IOLoop makes itself current). All greenlets of a thread share it.

        Parameters
        ----------
        instance : bool
            If there is no current loop, create one (default) or return None.

        Returns
        -------
        loop : IOLoop or None
        """
        loop: IOLoop | None = getattr(_thread_state, "loop", None)
        if loop is None and instance:
            loop = IOLoop()
        return loop

    @staticmethod
    def instance() -> IOLoop:
        """Alias of :meth:`current`, as in tornado 5+: the current thread's IOLoop."""
        return IOLoop.current()

    def make_current(self) -> None:
        """Make this the current IOLoop of this thread."""
        _thread_state.loop = self

    install = make_current

    @staticmethod
    def clear_current() -> None:
        """Forget the current IOLoop of this thread (the next :meth:`current` makes one)."""
        _thread_state.loop = None

    clear_instance = clear_current

    # -- callbacks and timers -----------------------------------------------

    def time(self) -> float:
        """The loop's clock: :func:`time.time`, as in tornado.

        Deadlines given to :meth:`call_at` and :meth:`add_timeout` use this scale;
        waiting itself uses the monotonic clock, so a jump of the wall clock after
        scheduling does not move a timer.
        """
        return _time()

    def add_callback(self, callback: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Call ``callback(*args, **kwargs)`` on the next iteration of the loop.

        Safe from any greenlet, any thread and signal handlers: a loop waiting in
        its poll is woken at once. A coroutine function's coroutine runs on in a
        greenlet of its own (see the module's docstring), as tornado runs it as a
        task; an exception it raises is logged.
        """
        if self._closed:
            return
        self._callbacks.append(functools.partial(callback, *args, **kwargs) if args or kwargs else callback)
        if self._polling:
            self._waker.wake()

    def add_callback_from_signal(self, callback: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Like :meth:`add_callback`, from a signal handler (which it is safe for too)."""
        self.add_callback(callback, *args, **kwargs)

    def spawn_callback(self, callback: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        """Like :meth:`add_callback` (as in tornado 6), coroutine functions included."""
        self.add_callback(callback, *args, **kwargs)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any, **kwargs: Any) -> object:
        """Call ``callback(*args, **kwargs)`` after *delay* seconds.

        A coroutine function's coroutine runs on as with :meth:`add_callback`.

        Returns
        -------
        handle : object
            An opaque handle for :meth:`remove_timeout`.
        """
        return self._schedule(_monotonic() + delay, callback, args, kwargs)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any, **kwargs: Any) -> object:
        """Call ``callback(*args, **kwargs)`` at the time *when* (on the scale of :meth:`time`).

        A coroutine function's coroutine runs on as with :meth:`add_callback`.

        Returns
        -------
        handle : object
            An opaque handle for :meth:`remove_timeout`.
        """
        return self._schedule(_monotonic() + (when - _time()), callback, args, kwargs)

    def add_timeout(
        self,
        deadline: float | datetime.timedelta,
        callback: Callable[..., object],
        *args: Any,
        **kwargs: Any,
    ) -> object:
        """Call ``callback(*args, **kwargs)`` at *deadline*.

        Parameters
        ----------
        deadline : float or datetime.timedelta
            A time on the scale of :meth:`time`, or a delay from now.
        callback : callable
            A coroutine function's coroutine runs on as with :meth:`add_callback`.

        Returns
        -------
        handle : object
            An opaque handle for :meth:`remove_timeout`.
        """
        if isinstance(deadline, datetime.timedelta):
            return self.call_later(deadline.total_seconds(), callback, *args, **kwargs)
        if isinstance(deadline, (int, float)):
            return self.call_at(deadline, callback, *args, **kwargs)
        raise TypeError(f"Unsupported deadline {deadline!r}")

    def remove_timeout(self, timeout: object) -> None:
        """Cancel a call scheduled by :meth:`call_later`, :meth:`call_at` or :meth:`add_timeout`.

        Safe to call when the call has already run.
        """
        if isinstance(timeout, _Timeout) and timeout.callback is not None:
            timeout.callback = None
            self._cancelled += 1
            # Cancelled timers stay in the heap until due; compact it when they dominate.
            if self._cancelled > 512 and self._cancelled > len(self._timers) // 2:
                self._timers = [t for t in self._timers if t[2].callback is not None]
                heapq.heapify(self._timers)
                self._cancelled = 0

    def _schedule(
        self, deadline: float, callback: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _Timeout:
        handle = _Timeout(functools.partial(callback, *args, **kwargs) if args or kwargs else callback)
        _heappush(self._timers, (deadline, next(self._sequence), handle))
        if self._polling:
            self._waker.wake()
        return handle

    # -- handlers -------------------------------------------------------------

    def add_handler(self, fd: Any, handler: Callable[[Any, int], object], events: int) -> None:
        """Call ``handler(fd, events)`` whenever *fd* is ready for *events*.

        Parameters
        ----------
        fd : zmq.Socket, int or object with ``fileno()``
            A zmq socket (polled on ``ZMQ_EVENTS``) or a native file descriptor.
        handler : callable
            Called as ``handler(fd, events)`` with the ready subset of *events*
            (plus :attr:`ERROR` for a native fd in error). A coroutine function's
            coroutine runs to its end before the loop goes on, as a handler that
            blocks greenly does, so that it consumes what made the fd ready before
            the next poll (tornado drops it, never awaited).
        events : int
            :attr:`READ`, :attr:`WRITE` or both; 0 registers without polling.
        """
        key = _key(fd)
        if key in self._handlers:
            raise ValueError(f"fd {key!r} added twice")
        self._handlers[key] = _Handler(fd, handler, int(events))
        self._set_events(key, int(events))

    def update_handler(self, fd: Any, events: int) -> None:
        """Change the events watched for *fd* (0: none, the handler stays registered)."""
        key = _key(fd)
        handler = self._handlers[key]
        events = int(events)
        if handler.events != events:
            handler.events = events
            self._set_events(key, events)

    def remove_handler(self, fd: Any) -> None:
        """Stop watching *fd*; unknown fds are ignored."""
        key = _key(fd)
        if self._handlers.pop(key, None) is not None:
            self._set_events(key, 0)

    def _set_events(self, key: Any, events: int) -> None:
        self._changes[key] = events & (POLLIN | POLLOUT | POLLERR)
        if self._polling:
            self._waker.wake()

    def _apply_changes(self) -> None:
        registered = self._registered
        for key, events in self._changes.items():
            if registered.get(key, 0) != events:
                self._poller.register(key, events)  # 0 unregisters
                if events:
                    registered[key] = events
                else:
                    del registered[key]
        self._changes.clear()

    def _on_wake(self, fd: Any, events: int) -> None:
        self._waker.drain()

    # -- running ------------------------------------------------------------------

    def start(self) -> None:
        """Run the loop in the calling greenlet until :meth:`stop` is called.

        Other greenlets keep running. The loop is the current IOLoop of the thread
        while it runs.

        Raises
        ------
        RuntimeError
            If the loop is running already, or closed.
        """
        if self._closed:
            raise RuntimeError("IOLoop is closed")
        if self._running:
            raise RuntimeError("IOLoop is already running")
        self._running = True
        previous = getattr(_thread_state, "loop", None)
        _thread_state.loop = self
        callbacks = self._callbacks
        poll = self._poller.poll
        pause = Entry(get_hub(), 0)
        wakeup = self._waker.signals()
        try:
            while True:
                passes = _stats["waits"]
                # Callbacks queued during this batch wait for the next iteration.
                for _ in range(len(callbacks)):
                    # _run_callback() inlined: this is the loop's hottest path.
                    callback = callbacks.popleft()
                    try:
                        result = callback()
                    except Exception:
                        _log_exception("callback", callback)
                    else:
                        if result is not None:
                            _run_on("callback", callback, result)
                if self._timers:
                    self._run_timers()
                if self._stopping:
                    break
                if self._changes:
                    self._apply_changes()
                # Check, then sleep. Whoever adds work (any thread, or a signal
                # handler between two bytecodes of this one) first stores it, then
                # wakes the loop if _polling is set. So _polling is set before the
                # last look at the work: work stored before that look is seen (no
                # wait), work stored after it finds _polling set and wakes the
                # poll. Set after the look, an add in between would be neither.
                self._polling = True
                if callbacks or self._stopping or self._changes:
                    timeout = 0
                elif self._timers:
                    timeout = max(0, math.ceil((self._timers[0][0] - _monotonic()) * 1000))
                else:
                    timeout = -1
                try:
                    ready = poll(timeout)
                except zmq.ZMQError:
                    ready = self._failed_sockets()
                finally:
                    self._polling = False
                if self._dispatch(ready):
                    self._dispatch(self._failed_sockets())
                if _stats["waits"] == passes:
                    # Nothing in this iteration waited in the hub: let the other
                    # greenlets (and the hub's I/O) run before the next one.
                    block(pause, 0)
        finally:
            if wakeup is not None:
                signal.set_wakeup_fd(wakeup)
            self._running = False
            self._stopping = False
            _thread_state.loop = previous

    def _dispatch(self, ready: list[tuple[Any, int]]) -> bool:
        """Call the handlers of what the poll found ready.

        Returns True if the poll reported something never registered: pyzmq's poll
        reports a closed zmq socket as fd 0.
        """
        handlers = self._handlers
        unknown = False
        for key, events in ready:
            handler = handlers.get(key)
            if handler is None:
                # Removed by a handler earlier in this batch, or not ours at all.
                unknown = unknown or key not in self._registered
                continue
            events &= handler.events | POLLERR
            if events:
                try:
                    result = handler.callback(handler.fileobj, events)
                    if result is not None and isawaitable(result):
                        _complete(result)
                except Exception:
                    _log_exception("handler", handler.callback)
        return unknown

    def _run_timers(self) -> None:
        timers = self._timers
        now = _monotonic()
        due = []
        while timers and timers[0][0] <= now:
            due.append(_heappop(timers)[2])
        while timers and timers[0][2].callback is None:
            _heappop(timers)
        for handle in due:
            # A timer that ran earlier in this batch may have cancelled this one.
            callback = handle.callback
            if callback is not None:
                handle.callback = None
                _run_callback("timeout", callback)

    def _failed_sockets(self) -> list[tuple[Any, int]]:
        """The poll failed or made no sense: a socket was closed, or its context terminated.

        Take the failing zmq sockets out of the poller and report them as
        :attr:`ERROR` to their handlers, which may close them or register them again.
        """
        failed = []
        for key in list(self._registered):
            if isinstance(key, zmq.Socket):
                try:
                    key.get(EVENTS)  # ENOTSOCK when closed, ETERM when terminated
                except zmq.ZMQError as e:
                    logger.warning("Polling %r failed: %s", key, e)
                    self._poller.unregister(key)
                    del self._registered[key]
                    handler = self._handlers.get(key)
                    if handler is not None:
                        handler.events = 0
                    failed.append((key, POLLERR))
        return failed

    def stop(self) -> None:
        """Stop the loop after the current iteration.

        If the loop is not running, the next :meth:`start` runs one iteration and
        returns. Safe from any greenlet, any thread and signal handlers.
        """
        self._stopping = True
        if self._polling:
            self._waker.wake()

    def run_sync(self, func: Callable[[], Any], timeout: float | None = None) -> Any:
        """Start the loop, run *func* in a new greenlet until it returns, stop the loop.

        *func* may make green blocking calls while the loop serves its handlers
        (a greenlet is gevent's coroutine). If it returns a :class:`gevent.Greenlet`
        or :class:`gevent.event.AsyncResult`, its value is waited for; if it is a
        coroutine function, its coroutine is run to its end (see the module's
        docstring), as tornado does.

        Parameters
        ----------
        func : callable
            Called with no arguments.
        timeout : float, optional
            Seconds after which *func*'s greenlet is killed.

        Returns
        -------
        result
            What *func* returned; an exception it raised is raised here.

        Raises
        ------
        TimeoutError
            If *timeout* passed first.
        RuntimeError
            If the loop was stopped before *func* returned.
        """
        if self._running:
            raise RuntimeError("IOLoop is already running")
        outcome: list[tuple[bool, Any]] = []
        timed_out = []

        def main() -> None:
            try:
                result = func()
                if isinstance(result, (Greenlet, AsyncResult)):
                    result = result.get()
                elif result is not None and isawaitable(result):
                    result = _complete(result)
            except Exception as e:
                outcome.append((False, e))
            else:
                outcome.append((True, result))
            self.stop()

        def expire() -> None:
            timed_out.append(True)
            self.stop()

        runner = Greenlet(main)
        self.add_callback(runner.start)
        handle = None if timeout is None else self.call_later(timeout, expire)
        try:
            self.start()
        finally:
            if handle is not None:
                self.remove_timeout(handle)
            if not outcome:
                runner.kill()
        if not outcome:
            if timed_out:
                raise TimeoutError(f"Operation timed out after {timeout} seconds")
            raise RuntimeError("IOLoop stopped before func completed")
        ok, value = outcome[0]
        if ok:
            return value
        raise value

    def close(self, all_fds: bool = False) -> None:
        """Free the loop's resources; it must not be running.

        Parameters
        ----------
        all_fds : bool
            Also close every registered zmq socket, fd and file object.
        """
        if self._running:
            raise RuntimeError("Cannot close a running IOLoop")
        if self._closed:
            return
        self._closed = True
        waker_key = self._waker.fileno()
        for key, handler in self._handlers.items():
            if all_fds and key != waker_key:
                _close(handler.fileobj)
        self._handlers.clear()
        for key in list(self._registered):
            self._poller.unregister(key)
        self._registered.clear()
        self._changes.clear()
        self._callbacks.clear()
        self._timers.clear()
        self._waker.close()
        if getattr(_thread_state, "loop", None) is self:
            _thread_state.loop = None


ZMQIOLoop = IOLoop
"""Alias of :class:`IOLoop`, the name of pyzmq's original loop."""


def install() -> None:
    """Nothing to do: kept for code that called pyzmq's ``ioloop.install()``."""


def _key(fd: Any) -> Any:
    """How a handler is known: a zmq socket by itself, anything else by its fd number."""
    if isinstance(fd, (zmq.Socket, int)):
        return fd
    return fd.fileno()


def _close(fileobj: Any) -> None:
    try:
        if isinstance(fileobj, int):
            os.close(fileobj)
        else:
            fileobj.close()
    except OSError:
        pass


class PeriodicCallback:
    """Call *callback* every *callback_time* milliseconds on the current IOLoop.

    As in tornado: the period runs from the start of one call to the start of the
    next; calls that would fall while a slow one runs are skipped to get back on
    schedule. An exception in *callback* is logged and the schedule goes on.

    Parameters
    ----------
    callback : callable
        Called with no arguments, in the loop's greenlet. A coroutine function's
        coroutine runs on in a greenlet of its own, and, as in tornado, the next
        call is scheduled when it has finished: calls never overlap.
    callback_time : float or datetime.timedelta
        The period, in milliseconds if a number.
    jitter : float
        Spread each period randomly over ``jitter * callback_time`` (0.1 = 10%).
    """

    def __init__(
        self, callback: Callable[[], object], callback_time: float | datetime.timedelta, jitter: float = 0
    ) -> None:
        if isinstance(callback_time, datetime.timedelta):
            callback_time = callback_time.total_seconds() * 1000.0
        if callback_time <= 0:
            raise ValueError("Periodic callback must have a positive callback_time")
        self.callback = callback
        self.callback_time: float = callback_time
        self.jitter = jitter
        self.io_loop: IOLoop | None = None
        self._running = False
        self._timeout: object = None
        self._next = 0.0

    def start(self) -> None:
        """Start calling, on the current thread's IOLoop."""
        self.io_loop = IOLoop.current()
        self._running = True
        self._next = self.io_loop.time()
        self._schedule()

    def stop(self) -> None:
        """Stop calling."""
        self._running = False
        if self._timeout is not None and self.io_loop is not None:
            self.io_loop.remove_timeout(self._timeout)
            self._timeout = None

    def is_running(self) -> bool:
        """Whether :meth:`start` was called and :meth:`stop` was not since."""
        return self._running

    def _run(self) -> None:
        if not self._running:
            return
        running = _run_callback("periodic callback", self.callback)
        if running is None:
            self._schedule()
        else:
            running.rawlink(self._schedule_after)

    def _schedule_after(self, running: Greenlet) -> None:
        self._schedule()

    def _schedule(self) -> None:
        loop = self.io_loop
        if not self._running or loop is None:
            return
        period = self.callback_time / 1000.0
        if self.jitter:
            period *= 1 + self.jitter * (random.random() - 0.5)
        now = loop.time()
        if self._next <= now:
            # Skip the periods already missed: the next call is the first one ahead.
            self._next += (math.floor((now - self._next) / period) + 1) * period
        else:
            self._next += period
        self._timeout = loop.call_at(self._next, self._run)
