"""Green :class:`Poller` and :func:`select`.

Raw file descriptors
--------------------

A blocked :meth:`Poller.poll` has the hub watch each registered raw fd, and
``zmq_poll`` then says what is ready, so results are pyzmq's. The hub's
watchers see only "readable" and "writable". Two registrations need more:

* ``POLLPRI`` (TCP urgent data): no readable watch sees it, and a readable one
  would wake for ordinary data;
* ``POLLERR`` alone: the kernel reports errors and hang-ups whatever was asked,
  but a readable watch on an fd with unread data fires at once, every time --
  the poll would spin.

Those fds go into an epoll set of the poll's own, registered for exactly what was
asked (epoll, like poll(2), always reports errors and hang-ups), and the hub
watches that set's fd: it is readable while a member is ready. Each blocked poll
makes its watchers, and that set, afresh, and closes them when it returns: a
kept watcher would outlive its file. Once an fd is closed the kernel forgets its
registrations, and a stopped watcher restarted on a new file that has the same
number is never registered again: the poll would not see it.
"""

from __future__ import annotations

import select as _select
import time
from typing import Any

import zmq
from gevent import get_hub
from zmq.backend import zmq_poll

from ._ints import POLLERR, POLLIN, POLLOUT, POLLPRI, as_int
from ._waiting import (
    DEFAULT_BUSY_POLL,
    DEFAULT_SAFETY_TIMEOUT,
    READY,
    RESCUED,
    PollEntry,
    SocketWaits,
    _stats,
    add_poller,
    block_until,
    busy_poll_of,
    remove_poller,
    safety_timeout_of,
    waits_of,
)

__all__ = ["Poller", "select"]

_INT_MAX = 2**31 - 1
# pyzmq's own class, bound now: once zmq_green.monkey has patched zmq, zmq.Socket is ours.
_ZmqSocket = zmq.Socket


class Poller(zmq.Poller):
    """Green version of :class:`zmq.Poller`.

    Same API and results; :meth:`poll` blocks only the calling greenlet. Any number
    of greenlets may poll at once, on the same sockets too, and every one of them
    sees the readiness. Raw file descriptors and objects with ``fileno()`` are
    watched by the hub directly.

    Attributes
    ----------
    safety_timeout : float or None
        As :attr:`zmq_green.Socket.safety_timeout`, for a blocked :meth:`poll`.
    busy_poll : float
        As :attr:`zmq_green.Socket.busy_poll`, for a blocked :meth:`poll`.
    """

    safety_timeout: float | None = DEFAULT_SAFETY_TIMEOUT
    busy_poll: float = DEFAULT_BUSY_POLL

    def __init__(self) -> None:
        super().__init__()
        self._split: _Registrations | None = None

    def register(self, socket: Any, flags: int = POLLIN | POLLOUT) -> None:
        """Register a 0MQ socket or native fd; see :meth:`zmq.Poller.register`."""
        super().register(socket, flags)
        self._changed()

    def unregister(self, socket: Any) -> None:
        """Remove a 0MQ socket or native fd from the poller; see :meth:`zmq.Poller.unregister`."""
        super().unregister(socket)
        self._changed()

    def _changed(self) -> None:
        self._split = None

    def _registered(self) -> _Registrations:
        """The registrations as a poll starting now uses them (made once per change)."""
        if self._split is None:
            self._split = _Registrations(self.sockets)
        return self._split

    def poll(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        """Poll the registered 0MQ sockets and fds, blocking only the calling greenlet.

        Parameters
        ----------
        timeout : int, optional
            Milliseconds to wait; ``None`` or negative waits forever, 0 returns at once.

        Returns
        -------
        events : list
            ``(socket, event_mask)`` for each ready socket or fd, as :meth:`zmq.Poller.poll`.
        """
        if timeout is None or timeout < 0:
            timeout = -1
        elif timeout.__class__ is not int:
            timeout = as_int(timeout)  # a float, Decimal...: as pyzmq's zmq_poll takes it
        if timeout > _INT_MAX:
            # What pyzmq's zmq_poll raises: its timeout is a C int.
            raise OverflowError("value too large to convert to int")
        # zmq_poll first: it rejects a bad registration as pyzmq does (TypeError for
        # string flags), before _registered() would see it.
        ready: list[tuple[Any, int]] = zmq_poll(self.sockets, 0)
        _pass_on(self._registered().zsocks, 0)
        if ready or timeout == 0:
            return ready
        return self._wait(timeout)

    def _wait(self, timeout: int) -> list[tuple[Any, int]]:
        hub = get_hub()
        entry = PollEntry(hub)
        deadline = None if timeout < 0 else time.monotonic() + timeout / 1000.0
        safety = safety_timeout_of(self)
        busy_poll = busy_poll_of(self)
        registered = self._registered()
        zsocks, fds = registered.zsocks, registered.fds
        watch = _FdWatch(hub, fds) if fds else None
        try:
            add_poller(entry, zsocks)
            if watch is not None:
                watch.start(entry.wake)
            while True:
                entry.fired.clear()
                if watch is not None:
                    watch.rearm()
                value, expiry = block_until(entry, deadline, safety, busy_poll)
                if isinstance(value, BaseException):
                    raise value  # a polled socket was closed (ENOTSOCK) or its context ended
                if value is READY or value is RESCUED:
                    # Found by another waiter's safety timeout: a missed wake-up if
                    # the check finds a socket ready, and no news came meanwhile.
                    rescued = value is RESCUED and all(waits.missed() for waits, _ in entry.fired)
                    # Every other socket's fd has stayed quiet since poll() found it
                    # not ready, so it still is not: check only what fired.
                    ready = registered.check(entry.fired)
                    if ready:
                        if rescued:
                            _stats["rescues"] += 1
                        return ready
                    continue
                # A signal or fd still pending at the safety timeout means the hub is
                # late (its callback was due in this same turn): no missed wake-up.
                late = not expiry and (entry.woken or any(waits.wakeup_pending() for waits, _ in zsocks))
                late = late or bool(fds and not expiry and zmq_poll(fds, 0))
                ready = zmq_poll(registered.items, 0)
                _pass_on(zsocks, 1)
                if not expiry:
                    _stats["safety_wakeups"] += 1
                    if ready and not late:
                        _stats["rescues"] += 1
                if ready or expiry:
                    return ready
        finally:
            if watch is not None:
                watch.close()
            remove_poller(entry, zsocks)


class _Registrations:
    """A poller's registrations, as a blocked poll uses them.

    A poll keeps what was registered when it started, as pyzmq's ``zmq_poll``
    keeps its list: another greenlet may change the poller meanwhile. Objects over
    one libzmq socket (an original and its shadows) share its waits, which are
    listed once with all their flags: the poller is woken for each object, and
    counted once among the socket's waiters.
    """

    __slots__ = ("by_waits", "fds", "items", "zsocks")

    def __init__(self, sockets: list[tuple[Any, int]]) -> None:
        self.items = list(sockets)
        self.fds: list[tuple[Any, int]] = []
        self.by_waits: dict[SocketWaits, list[tuple[Any, int]]] = {}
        masks: dict[SocketWaits, int] = {}
        for s, f in self.items:
            if isinstance(s, _ZmqSocket):
                waits = waits_of(s)
                masks[waits] = masks.get(waits, 0) | int(f)
                self.by_waits.setdefault(waits, []).append((s, f))
            else:
                self.fds.append((s, int(f)))
        self.zsocks = list(masks.items())

    def check(self, fired: list[tuple[SocketWaits, int]]) -> list[tuple[Any, int]]:
        """``zmq_poll`` the sockets that fired, and the raw fds, in registration order."""
        if len(fired) == 1 and not self.fds:
            items = self.by_waits[fired[0][0]]  # as registered: one may be a shadow
        else:
            seen = {waits for waits, _ in fired}
            items = [(s, f) for s, f in self.items if not isinstance(s, _ZmqSocket) or waits_of(s) in seen]
        ready: list[tuple[Any, int]] = zmq_poll(items, 0) if items else []
        _pass_on(fired, 1)
        return ready


class _FdWatch:
    """The hub's watch over one blocked poll's raw fds (see the module's notes)."""

    __slots__ = ("kernel", "watchers")

    def __init__(self, hub: Any, fds: list[tuple[Any, int]]) -> None:
        self.watchers: list[Any] = []
        self.kernel: Any = None  # the epoll set, for what the hub's watchers cannot see
        asked: dict[int, int] = {}
        for sock, flags in fds:
            fd = sock if isinstance(sock, int) else sock.fileno()
            if fd >= 0:  # poll(2), and so zmq_poll, skips negative fds
                asked[fd] = asked.get(fd, 0) | flags
        try:
            for fd, flags in asked.items():
                if flags & POLLPRI or not flags & (POLLIN | POLLOUT):
                    self._add_to_kernel_set(hub, fd, flags)
                else:
                    events = (1 if flags & POLLIN else 0) | (2 if flags & POLLOUT else 0)
                    self.watchers.append(hub.loop.io(fd, events))
        except BaseException:
            self.close()
            raise

    def _add_to_kernel_set(self, hub: Any, fd: int, flags: int) -> None:
        if self.kernel is None:
            if not hasattr(_select, "epoll"):
                raise NotImplementedError(
                    "a raw fd registered for POLLPRI, or for POLLERR alone, needs epoll (Linux); "
                    "register it for POLLIN or POLLOUT as well"
                )
            self.kernel = _select.epoll()
            self.watchers.append(hub.loop.io(self.kernel.fileno(), 1))
        self.kernel.register(
            fd,
            (_select.EPOLLIN if flags & POLLIN else 0)
            | (_select.EPOLLOUT if flags & POLLOUT else 0)
            | (_select.EPOLLPRI if flags & POLLPRI else 0),
        )

    def start(self, wake: Any) -> None:
        for watcher in self.watchers:
            watcher.start(wake, READY)

    def rearm(self) -> None:
        """Before blocking again: forget what the epoll set reported and was not ready.

        Its fd stays readable until the set is read, whatever became of the
        condition that made it so.
        """
        if self.kernel is not None:
            self.kernel.poll(0)

    def close(self) -> None:
        for watcher in self.watchers:
            watcher.close()
        if self.kernel is not None:
            self.kernel.close()


def _pass_on(zsocks: list[tuple[SocketWaits, int]], ours: int) -> None:
    """zmq_poll read EVENTS on these sockets: have their other waiters told what it found.

    *ours* is how many of each socket's waiters are this poller (0 or 1).
    """
    for waits, _ in zsocks:
        if waits.count > ours:
            waits.poke()


def select(
    rlist: list[Any], wlist: list[Any], xlist: list[Any], timeout: float | None = None
) -> tuple[list[Any], list[Any], list[Any]]:
    """Green version of :func:`zmq.select`: blocks only the calling greenlet.

    Parameters
    ----------
    rlist, wlist, xlist : list
        Sockets or fds to poll for reading, writing and errors.
    timeout : float, optional
        Seconds to wait; ``None`` (or negative) waits forever.

    Returns
    -------
    rlist, wlist, xlist : list
        The sockets or fds that are readable, writable, or in error.
    """
    if timeout is None:
        timeout = -1
    ms = int(timeout * 1000.0)
    if ms < 0:
        ms = -1
    poller = Poller()
    for s in set(rlist + wlist + xlist):
        flags = 0
        if s in rlist:
            flags |= POLLIN
        if s in wlist:
            flags |= POLLOUT
        if s in xlist:
            flags |= POLLERR
        poller.register(s, flags)
    r: list[Any] = []
    w: list[Any] = []
    x: list[Any] = []
    for s, flags in poller.poll(ms):
        if flags & POLLIN:
            r.append(s)
        if flags & POLLOUT:
            w.append(s)
        if flags & POLLERR:
            x.append(s)
    return r, w, x
