"""Green :class:`Poller` and :func:`select`."""

from __future__ import annotations

import time
from typing import Any

import zmq
from gevent import get_hub
from zmq.backend import zmq_poll

from ._waiting import (
    POLLIN,
    POLLOUT,
    READY,
    TIMER,
    DEFAULT_SAFETY_TIMEOUT,
    Entry,
    SocketWaits,
    _stats,
    block,
    waits_of,
)

__all__ = ["Poller", "select"]

_POLLERR = int(zmq.POLLERR)


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
    """

    safety_timeout: float | None = DEFAULT_SAFETY_TIMEOUT

    def __init__(self) -> None:
        super().__init__()
        # fd watchers, made on first wait per (fd, events, hub) and kept while registered.
        self._fd_watchers: dict[tuple[int, int, Any], Any] = {}

    def unregister(self, socket: Any) -> None:
        """Remove a 0MQ socket or native fd from the poller; see :meth:`zmq.Poller.unregister`."""
        super().unregister(socket)
        self._drop_fd_watchers()

    def register(self, socket: Any, flags: int = POLLIN | POLLOUT) -> None:
        """Register a 0MQ socket or native fd; see :meth:`zmq.Poller.register`."""
        super().register(socket, flags)
        self._drop_fd_watchers()

    def _drop_fd_watchers(self) -> None:
        for watcher in self._fd_watchers.values():
            watcher.close()
        self._fd_watchers.clear()

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
        elif isinstance(timeout, float):
            timeout = int(timeout)
        sockets = self.sockets
        ready: list[tuple[Any, int]] = zmq_poll(sockets, 0)
        _pass_on(sockets, None)
        if ready or timeout == 0:
            return ready
        return self._wait(timeout)

    def _wait(self, timeout: int) -> list[tuple[Any, int]]:
        hub = get_hub()
        entry = Entry(hub, 0)
        deadline = None if timeout < 0 else time.monotonic() + timeout / 1000.0
        safety = self.safety_timeout if self.safety_timeout and self.safety_timeout > 0 else None
        joined: list[SocketWaits] = []
        watchers: list[Any] = []
        sockets = self.sockets
        try:
            for sock, flags in sockets:
                if isinstance(sock, zmq.Socket):
                    waits = waits_of(sock)
                    waits.bind()
                    waits.pollers.append((entry, flags))
                    joined.append(waits)
                    waits.join()
                else:
                    watcher = self._fd_watcher(hub, sock, flags)
                    watcher.start(entry.wake, READY)
                    watchers.append(watcher)
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                expiry = safety is None or (remaining is not None and remaining <= safety)
                value = block(entry, remaining if expiry else safety)
                # Whatever woke us (readiness, a timer, close or term), zmq_poll
                # says what is true, and raises what pyzmq's poll would raise.
                ready = zmq_poll(sockets, 0)
                _pass_on(sockets, entry)
                if value is TIMER and not expiry:
                    _stats["safety_wakeups"] += 1
                    if ready:
                        _stats["rescues"] += 1
                if ready or (value is TIMER and expiry):
                    return ready
        finally:
            for watcher in watchers:
                watcher.stop()
            for waits in joined:
                for i, (e, _) in enumerate(waits.pollers):
                    if e is entry:
                        del waits.pollers[i]
                        break
                waits.leave()

    def _fd_watcher(self, hub: Any, sock: Any, flags: int) -> Any:
        fd = sock if isinstance(sock, int) else sock.fileno()
        # POLLERR alone still needs a readable watch: errors show as readable.
        events = (1 if flags & (POLLIN | _POLLERR) else 0) | (2 if flags & POLLOUT else 0)
        key = (fd, events, hub)
        watcher = self._fd_watchers.get(key)
        if watcher is None:
            watcher = self._fd_watchers[key] = hub.loop.io(fd, events)
        return watcher

    def __del__(self) -> None:
        for watcher in getattr(self, "_fd_watchers", {}).values():
            try:
                watcher.close()
            except Exception:  # pragma: no cover - interpreter teardown
                pass


def _pass_on(sockets: list[tuple[Any, int]], me: Entry | None) -> None:
    """zmq_poll read EVENTS on every socket: tell their other waiters what it found.

    *me* is the polling greenlet's entry when it is registered on the sockets.
    """
    ours = 0 if me is None else 1
    for sock, _ in sockets:
        waits: SocketWaits | None = getattr(sock, "__dict__", {}).get("_waits")
        if waits is not None and waits.count > ours:
            waits.recheck(me)


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
            flags |= _POLLERR
        poller.register(s, flags)
    r: list[Any] = []
    w: list[Any] = []
    x: list[Any] = []
    for s, flags in poller.poll(ms):
        if flags & POLLIN:
            r.append(s)
        if flags & POLLOUT:
            w.append(s)
        if flags & _POLLERR:
            x.append(s)
    return r, w, x
