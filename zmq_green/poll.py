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

That makes raw fds cost what is registered, per blocked poll: pyzmq's poll
(``poll(2)`` on every call) lets a registered number be closed and reopened
between polls, and a poller must follow it. A registry that forbids that, as
tornado's ``add_handler`` does (remove the handler before closing its fd), can
keep its watchers standing instead (``Poller._standing_fds``, which the green
IOLoop sets): a watcher is made once for each fd and started; when it fires it
marks the fd and is closed (the hub's watchers are level-triggered: a ready fd
left started would fire on every turn of the loop); the next poll checks the
marked fds with the sockets, and gives those that are not ready a new watcher (a
new one: its fd is registered with the kernel afresh) before it blocks. So a poll
costs the fds that fired, as it costs the sockets that changed.
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
    Entry,
    Interest,
    SocketWaits,
    _stats,
    block_until,
    busy_poll_of,
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

    A poll costs what changed since the last one, not what is registered: once
    a poll has blocked, the poller keeps watching its zmq sockets (see
    "Pollers" in ``zmq_green._waiting``), and a poll checks only the sockets
    that may have become ready since (their fd fired, or a green call was made on
    them), those it found ready last time, new registrations, raw fds, and zmq
    sockets whose calls zmq_green does not see (plain ``zmq.Socket`` objects).

    Attributes
    ----------
    safety_timeout : float or None
        As :attr:`zmq_green.Socket.safety_timeout`, for a blocked :meth:`poll`.
    busy_poll : float
        As :attr:`zmq_green.Socket.busy_poll`, for a blocked :meth:`poll`.
    """

    safety_timeout: float | None = DEFAULT_SAFETY_TIMEOUT
    busy_poll: float = DEFAULT_BUSY_POLL
    #: Raw fds are watched from poll to poll, and must be unregistered before they are
    #: closed (see the module's notes); else watched afresh by each blocked poll.
    _standing_fds = False

    def __init__(self) -> None:
        super().__init__()
        self._interest: Interest | None = None
        #: Registered zmq sockets by SocketWaits, as the interest watches them.
        self._watched: dict[SocketWaits, list[Any]] = {}
        #: zmq sockets (un)registered since the interest last took them in.
        self._pending: dict[Any, None] = {}
        #: Checked by every poll: zmq sockets whose calls are not seen, and raw fds.
        self._unseen: dict[Any, None] = {}
        self._fds: dict[Any, None] = {}
        #: zmq sockets (and standing raw fds) the last check found ready: they may
        #: still be, without news.
        self._last_ready: dict[Any, None] = {}
        self._polled = False
        #: The standing watch over raw fds, while the interest stands (_standing_fds).
        self._standing: _StandingFds | None = None
        #: The registrations each blocked poll started with, kept at the first change
        #: made while it waits: as pyzmq's zmq_poll keeps the list it was given.
        self._kept: dict[Entry, tuple[list[tuple[Any, int]], dict[Any, int]]] = {}
        #: zmq sockets a blocked poll keeps although their registration changed: the
        #: interest takes the change in once no poll keeps them.
        self._deferred: dict[Any, None] = {}

    def register(self, socket: Any, flags: int = POLLIN | POLLOUT) -> None:
        """Register a 0MQ socket or native fd; see :meth:`zmq.Poller.register`."""
        self._keep_for_blocked_polls()
        super().register(socket, flags)
        self._note(socket)

    def unregister(self, socket: Any) -> None:
        """Remove a 0MQ socket or native fd from the poller; see :meth:`zmq.Poller.unregister`."""
        self._keep_for_blocked_polls()
        super().unregister(socket)
        self._note(socket)

    def _keep_for_blocked_polls(self) -> None:
        """The registrations are about to change: the polls blocked now keep them as they are."""
        interest = self._interest
        if interest is not None:
            for entry in interest.blocked:
                if entry not in self._kept:
                    self._kept[entry] = (list(self.sockets), dict(self._map))

    def _kept_flags(self, socket: Any) -> int:
        """The events the blocked polls that kept their registrations wait for on *socket*."""
        flags = 0
        for sockets, positions in self._kept.values():
            if socket in positions:
                flags |= int(sockets[positions[socket]][1])
        return flags

    def _note(self, socket: Any) -> None:
        """*socket*'s registration changed (pyzmq's ``register`` with 0 flags unregisters)."""
        registered = socket in self._map
        if isinstance(socket, _ZmqSocket):
            self._pending[socket] = None
            if not getattr(socket, "_calls_seen", False):
                _toggle(self._unseen, socket, registered)
            if not registered and self._interest is not None:
                # Stop watching it now, not at the next poll (and only it: the other
                # pending registrations are not yet known to be valid).
                self._take_in((socket,))
                del self._pending[socket]
        else:
            _toggle(self._fds, socket, registered)
            if self._standing is not None:
                if self._kept and self._kept_flags(socket):
                    self._deferred[socket] = None  # a blocked poll still watches it as it was
                    return
                self._standing.remove(socket)  # its mask changed, or it is gone
                if registered:
                    self._standing.add(socket, int(self.sockets[self._map[socket]][1]))

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
        hub = get_hub()
        interest = self._interest
        if interest is not None and (interest.hub is not hub or interest.lost):
            # Polled from another thread, or a socket went to one: watch afresh.
            self._detach()
            interest = None
        # The new registrations are checked before the interest takes them in: zmq_poll
        # rejects a bad one as pyzmq does (TypeError for string flags).
        ready = self._check()
        # A poller polled once (Socket.poll, select) only pays for the registrations
        # if it blocks; one polled again keeps them, blocking or not: a busy loop's
        # polls find something ready every time.
        if (not ready and timeout != 0) or interest is not None or self._polled:
            if self._interest is None:
                self._interest = Interest(hub)
                if self._standing_fds:
                    self._standing = _StandingFds(self._interest)
                    for fd in self._fds:  # just checked: watched, not marked
                        self._standing.add(fd, int(self.sockets[self._map[fd]][1]), checked=True)
            self._take_in(self._pending)
            self._pending.clear()
        self._polled = True
        if ready or timeout == 0:
            return ready
        return self._wait(timeout)

    def _registrations(self, entry: Entry | None) -> tuple[list[tuple[Any, int]], dict[Any, int]]:
        """The registrations the poll of *entry* uses: those it kept, or the poller's."""
        kept = self._kept.get(entry) if entry is not None else None
        return kept if kept is not None else (self.sockets, self._map)

    def _check(self, rescue: bool = False, entry: Entry | None = None) -> list[tuple[Any, int]]:
        """``zmq_poll`` what may be ready, in registration order; count a rescue if asked and due.

        *rescue*: the poll was woken by another waiter's safety timeout, which found
        the socket that marked it ready; a missed wake-up if nothing else since can
        explain it (:meth:`SocketWaits.missed`). *entry*: the blocked poll checking,
        which may have kept the registrations it started with.
        """
        candidates = dict(self._pending)
        candidates.update(self._last_ready)
        candidates.update(self._unseen)
        standing = self._standing
        if standing is None:
            candidates.update(self._fds)
        else:
            candidates.update(standing.others)
            candidates.update(standing.take_marked())
        interest = self._interest
        if interest is not None and interest.marked:
            marked = interest.take_marked()
            rescue = rescue and all(waits.missed() for waits in marked)
            for waits in marked:
                candidates.update(dict.fromkeys(self._watched.get(waits, ())))
        else:
            rescue = False
        sockets, positions = self._registrations(entry)
        items = [sockets[i] for i in sorted(positions[s] for s in candidates if s in positions)]
        ready: list[tuple[Any, int]] = zmq_poll(items, 0) if items else []
        self._last_ready = dict.fromkeys(s for s, _ in ready)
        _pass_on(items, interest)
        if ready and rescue:
            _stats["rescues"] += 1
        return ready

    def _take_in(self, changed: Any) -> None:
        """Have the interest watch the *changed* zmq sockets' registrations as they are now."""
        interest = self._interest
        assert interest is not None
        positions, sockets, watched = self._map, self.sockets, self._watched
        for socket in changed:
            waits = waits_of(socket)
            objects = watched.setdefault(waits, [])
            kept = self._kept_flags(socket) if self._kept else 0
            if kept:
                self._deferred[socket] = None
            if socket in positions:
                if socket not in objects:
                    objects.append(socket)
            elif socket in objects and not kept:
                objects.remove(socket)
            if objects:
                mask = 0
                for o in objects:
                    if o in positions:
                        mask |= int(sockets[positions[o]][1])
                    if self._kept:
                        mask |= self._kept_flags(o)
                interest.watch(waits, mask)
            else:
                del watched[waits]
                interest.unwatch(waits)

    def _detach(self) -> None:
        """Watch nothing: every registration is pending again."""
        if self._interest is not None:
            self._interest.close()
            self._interest = None
        if self._standing is not None:
            self._standing.close()
            self._standing = None
        self._watched.clear()
        self._pending = {s: None for s, _ in self.sockets if isinstance(s, _ZmqSocket)}

    def _wait(self, timeout: int) -> list[tuple[Any, int]]:
        interest = self._interest
        assert interest is not None  # poll() attached before waiting
        entry = Entry(interest.hub, 0)
        deadline = None if timeout < 0 else time.monotonic() + timeout / 1000.0
        safety = safety_timeout_of(self)
        busy_poll = busy_poll_of(self)
        standing = self._standing
        fds = [
            (s, int(self.sockets[self._map[s]][1]))
            for s in (self._fds if standing is None else standing.others)
        ]
        watch = _FdWatch(interest.hub, fds) if fds else None
        try:
            if watch is not None:
                watch.start(entry.wake)
            while True:
                if watch is not None:
                    watch.rearm()
                if standing is not None:
                    standing.arm()
                interest.blocked.append(entry)
                try:
                    value, expiry = block_until(entry, deadline, safety, busy_poll)
                finally:
                    interest.blocked.remove(entry)
                    failure = interest.failed.pop(entry, None)
                if failure is not None:
                    raise failure  # a polled socket was closed (ENOTSOCK) or its context ended
                if isinstance(value, BaseException):
                    raise value
                if value is READY or value is RESCUED:
                    ready = self._check(rescue=value is RESCUED, entry=entry)
                    if ready:
                        return ready
                    continue
                # A signal or fd still pending at the safety timeout means the hub is
                # late (its callback was due in this same turn): no missed wake-up.
                late = not expiry and (
                    entry.woken
                    or bool(interest.marked)
                    or bool(standing and standing.marked)
                    or any(waits.wakeup_pending() for waits in interest.watching)
                    or bool(fds and zmq_poll(fds, 0))
                )
                items = self._registrations(entry)[0]
                ready = zmq_poll(items, 0)
                _pass_on(items, interest)
                self._last_ready = dict.fromkeys(s for s, _ in ready)
                if not expiry:
                    _stats["safety_wakeups"] += 1
                    if ready and not late:
                        _stats["rescues"] += 1
                if ready or expiry:
                    return ready
        finally:
            if watch is not None:
                watch.close()
            self._kept.pop(entry, None)
            if not self._kept and self._deferred and self._interest is interest:
                deferred, self._deferred = self._deferred, {}
                for socket in deferred:  # no poll keeps them now: the changes take effect
                    self._note(socket)

    def __del__(self) -> None:
        # The collector may run this in the middle of any code, that of the sockets'
        # waits included (iterating over their interests): the watches are closed by
        # the hub, between greenlets, never here.
        interest = self.__dict__.get("_interest")
        if interest is None:
            return
        for watch in (interest, self.__dict__.get("_standing")):
            if watch is not None:
                try:
                    interest.hub.loop.run_callback(watch.close)
                except Exception:  # pragma: no cover - the hub is gone (interpreter teardown)
                    pass


def _toggle(members: dict[Any, None], item: Any, present: bool) -> None:
    if present:
        members[item] = None
    else:
        members.pop(item, None)


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


class _StandingFds:
    """A poller's standing watch over its raw fds (see the module's notes).

    Kept with the poller's :class:`Interest`, whose blocked polls a fired fd wakes;
    it holds no reference to the poller, so a dropped poller is collected.
    """

    __slots__ = ("flags", "interest", "marked", "others", "spent", "unwatched", "watchers")

    def __init__(self, interest: Interest) -> None:
        self.interest = interest
        self.flags: dict[Any, int] = {}
        #: The started watcher of each fd that has one.
        self.watchers: dict[Any, Any] = {}
        #: Registered fds with no watcher started: new, or fired.
        self.unwatched: dict[Any, None] = {}
        #: Fds that fired, or were registered, since the last check.
        self.marked: dict[Any, None] = {}
        #: Fds asked for POLLPRI or POLLERR alone: checked and watched by every poll.
        self.others: dict[Any, None] = {}
        #: Watchers that fired and stopped, to close outside their callback.
        self.spent: list[Any] = []

    def add(self, fd: Any, flags: int, checked: bool = False) -> None:
        """Watch *fd* for *flags* from the next poll on; the next check looks at it unless *checked*."""
        if flags & POLLPRI or not flags & (POLLIN | POLLOUT):
            self.others[fd] = None
        else:
            self.flags[fd] = flags
            self.unwatched[fd] = None
            if not checked:
                self.marked[fd] = None

    def remove(self, fd: Any) -> None:
        self.others.pop(fd, None)
        self.flags.pop(fd, None)
        self.unwatched.pop(fd, None)
        self.marked.pop(fd, None)
        watcher = self.watchers.pop(fd, None)
        if watcher is not None:
            watcher.close()

    def take_marked(self) -> dict[Any, None]:
        marked, self.marked = self.marked, {}
        return marked

    def arm(self) -> None:
        """Before a poll blocks: a new watcher for each fd that has none."""
        for watcher in self.spent:
            watcher.close()
        self.spent.clear()
        loop = self.interest.hub.loop
        for fd in self.unwatched:
            fileno = fd if isinstance(fd, int) else fd.fileno()
            if fileno < 0:
                continue  # poll(2) skips negative fds: never ready
            flags = self.flags[fd]
            watcher = loop.io(fileno, (1 if flags & POLLIN else 0) | (2 if flags & POLLOUT else 0))
            watcher.start(self._fired, fd)
            self.watchers[fd] = watcher
        self.unwatched.clear()

    def _fired(self, fd: Any) -> None:
        """*fd* may be ready (runs in the hub): one shot, marked, the blocked polls woken."""
        watcher = self.watchers.pop(fd, None)
        if watcher is None:
            return
        watcher.stop()
        self.spent.append(watcher)
        self.unwatched[fd] = None
        self.marked[fd] = None
        for entry in tuple(self.interest.blocked):
            entry.wake(READY)

    def close(self) -> None:
        for watcher in [*self.watchers.values(), *self.spent]:
            watcher.close()
        self.watchers.clear()
        self.spent.clear()


def _pass_on(items: list[tuple[Any, int]], ours: Interest | None) -> None:
    """zmq_poll read EVENTS on these sockets: have their other waiters and pollers told.

    By a reading of their own (:meth:`SocketWaits.recheck`), which wakes only what
    it finds ready: marking the other pollers outright, two pollers of one socket
    would keep waking each other.
    """
    for socket, _ in items:
        if isinstance(socket, _ZmqSocket):
            waits = waits_of(socket)
            if waits.count or len(waits.interests) > (ours in waits.interests):
                waits.recheck()


def select(
    rlist: list[Any], wlist: list[Any], xlist: list[Any], timeout: float | None = None
) -> tuple[list[Any], list[Any], list[Any]]:
    """Green version of :func:`zmq.select`: blocks only the calling greenlet.

    Each call polls a new poller over the lists, so it costs their length, as
    pyzmq's does; to wait on many sockets again and again, keep a :class:`Poller`,
    whose polls cost what changed.

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
    asked: dict[Any, int] = {}  # one pass per list: pyzmq's `in` over the lists costs n * n
    for members, flag in ((rlist, POLLIN), (wlist, POLLOUT), (xlist, POLLERR)):
        for s in members:
            asked[s] = asked.get(s, 0) | flag
    poller = Poller()
    for s, flags in asked.items():
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
