"""The one place where zmq_green waits.

Every green call that cannot complete at once -- send, recv, poll, Poller.poll,
select -- ends up here. Nothing else in the package talks to the hub's io
watchers. This module is small on purpose: it is where wake-ups are won or lost.

What libzmq gives us
--------------------

A ZeroMQ socket is not a kernel socket. The file descriptor behind the ``ZMQ_FD``
option is the socket's *mailbox signal*: libzmq's I/O thread writes to it when it
posts a command for the socket (a peer attached, a pipe became writable again, a
message arrived on an empty pipe, the context is terminating). It therefore says
"commands may be pending", not "a message is ready". Only ``ZMQ_EVENTS``
(``POLLIN``/``POLLOUT``) tells the truth, and reading it is what processes the
pending commands.

The signal behaves edge-triggered. Any call on the socket -- ``send``, ``recv``,
``getsockopt(EVENTS)``, even one that fails with ``EAGAIN`` -- may process the
pending commands and clear the signal, including commands that made the socket
ready for the *other* direction. After that the fd stays quiet until a *new*
command arrives. Two consequences shape everything below:

* a waiter must read ``EVENTS`` *after* it joined the waiters and *before* it
  blocks: if the socket is not ready at that moment, libzmq guarantees the fd
  will fire on the next change. A call that failed with ``EAGAIN`` has just done
  as much for a waiter that is alone: a ``recv`` processes every pending
  command before giving up, and a ``send`` either does too or skips them all
  (libzmq throttles their processing there), and then the fd is still
  signalled -- it is cleared only when the commands are read. So a lone waiter
  blocks right after its failed call, which also gives the other greenlets
  their turn: that is what ``EAGAIN`` means in a cooperative program. A
  reading of ``EVENTS`` that finds nothing does as much, for less than pyzmq's
  raised ``Again``: a receive that follows one which found nothing (on REQ and
  REP: one in turn, right after a send) reads it instead of trying
  (``zmq_green.socket._nothing_yet``);
* whoever makes a call on a socket while others wait on it may have eaten their
  signal -- a call that fails and then queues behind them too -- so it must
  read ``EVENTS`` once and wake whoever can now proceed.

When ``EVENTS`` lies
--------------------

``EVENTS`` is libzmq's ``has_in``/``has_out`` of the socket type, and for some
types it answers "some pipe could take part in this", not "this call succeeds"
(libzmq 4.3.5, ``src/*.cpp``):

* ``POLLOUT`` is always set on PUB/XPUB (``dist_t::has_out`` returns true), but
  with ``XPUB_NODROP`` a send fails with ``EAGAIN`` while any matching
  subscriber is at its high-water mark; the same for RADIO (DRAFT);
* ROUTER with ``ROUTER_MANDATORY`` sets ``POLLOUT`` when *any* peer has room; a
  send to a full peer fails;
* STREAM, SERVER and PEER (DRAFT) always set ``POLLOUT``; a send to a peer
  whose pipe is full fails (STREAM: on the routing-id frame);
* ``POLLIN`` on REQ means "a message is queued", but ``recv`` discards replies
  with a bad envelope (or, with ``REQ_CORRELATE``, a stale request id) and may
  then fail.

Other types (PUSH/PULL, DEALER, PAIR, SUB/XSUB, REP, ROUTER without the option,
DISH, CONFLATE on any of them) prefetch or check the very pipe the call will
use, so their ``EVENTS`` holds until another call changes it. We assume no
list is complete, though: a waiter whose try fails twice in a row while
``EVENTS`` says it is ready is *lied to* (the second try covers the one honest
case: a message that arrived while the first failed, whose signal our own
``EVENTS`` reading then consumed). It holds up nobody behind it -- a ROUTER's
send to a full peer must not stop the next greenlet's send to a peer with room
-- and it blocks until there is *news*: the fd fires, a call is made outside a
wait, someone leaves, a safety timeout fires, or a reading finds commands
pending (the fd is readable just before it, so it consumes them). An
``EVENTS`` reading made after a failed try inside a wait, with no command
pending, is no news: it may wake a lied-to waiter once (that try may have
consumed its signal), then no more until news, so lied-to waiters can never
keep waking each other. A window stays open between that check and the reading:
a command that arrives in it is consumed unseen. It is microseconds wide, unless
the thread loses its CPU there -- on a busy machine, for milliseconds, while
libzmq's I/O thread goes on posting commands. So a reading that ends more than
:data:`PREEMPTED` after the check is taken for news.

What remains cannot be closed with libzmq's API. Every try and every reading
may process commands, and nothing shows whether it did: a try shows what they
meant for its caller, a reading what they meant for everyone else, and whichever
of the two comes last before a lied-to waiter blocks may have consumed its news
(a try last would leave the others' news unseen instead). When a command lands in
those microseconds and no other follows (the drained peer of a ROUTER over tcp:
the command for its last message), the lied-to waiter is left to the safety
timeout. That is a missed wake-up, but one of libzmq's window, not of the
protocol: :func:`stats` counts it as ``lied_rescues``, apart from ``rescues``.
Between sockets of one thread it cannot happen (the peer's command is posted by
this thread, never inside the window), and the test suite fails on either count
there.

The protocol
------------

Each libzmq socket has one :class:`SocketWaits` (shared by every Python object
over it: shadows too), bound to one hub: two FIFO lines (readers and writers),
the pollers that poll it, and one io watcher on ``ZMQ_FD`` that is started only
while somebody waits or polls. Only the head of a line tries the call; the
others wait for their turn. When ``EVENTS`` shows readiness, the head of the
matching line and every matching poller are woken -- one greenlet per
readiness per line. Whoever makes a call on the socket while others wait, and a
head that leaves its line for any reason (success, timeout, kill, error), has
``EVENTS`` read again before the hub next blocks (:meth:`SocketWaits.poke`):
that hands the turn on if the socket is still ready, in either direction.
``close()`` wakes every waiter with ``ENOTSOCK``; a terminating context wakes
them with ``ETERM`` (libzmq posts a command, ``EVENTS`` then fails with
``ETERM``).

Pollers
-------

A poll must cost what changed since the last one, not what is registered: a
broker polls a thousand backends, one of which is busy. So a poller's
registration stands from poll to poll (:class:`Interest`), once a poll has
blocked. While it stands, the socket's fd is watched, and whatever may have made
the socket ready *marks* it for the poller: the fd fired (read at once when no
poll is blocked, which also quiets the fd; else the woken poll's own check reads
it), an ``EVENTS`` reading found it ready, or a green call was made on it (with
greenlets waiting, the recheck that the call schedules marks it if ready;
without, the call marks it outright: it is cheaper than a reading). A poll
checks, with one ``zmq_poll``, only the marked sockets; those its last check
found ready (the fd is edge-triggered: a socket left ready does not signal
again); new registrations; and what zmq_green cannot see calls on -- plain
``zmq.Socket`` objects and raw fds. Then it blocks until a mark or an fd wakes it.

A check reads ``EVENTS``, so it may eat a signal that others wait for: it has
their socket rechecked (a reading of its own, which wakes only whom it finds
ready: two pollers of one socket that marked each other outright would never
stop). The safety timeout of a blocked poll checks every registration, as
pyzmq's poll would. A call through a plain pyzmq object over a green socket
(a plain shadow) goes unseen, as it does for waiting greenlets.

A call that arrives while others of its direction are queued tries once before
queueing, and may so overtake them: that keeps a busy socket fast. It may do so
:data:`OVERTAKE_LIMIT` times per queue; then newcomers that would wait queue at
the back until the line has emptied, so no waiter is passed over by them more
than that many times. A ``DONTWAIT`` call never waits, and takes what is ready
as in pyzmq: holding it back would only make a loop of ``poll()`` and
``DONTWAIT`` calls spin.

Blocking itself happens in :func:`block` only: a :class:`gevent.hub.Waiter` and at
most one timer, closed on every exit. The timer is armed from a fresh clock: the
loop's cached one is stale by however long the caller ran since the hub's last
turn, and every timeout is measured from the call. Every waiter also arms the
*safety timeout*. It is a net, not a mechanism: when it fires, the head tries
again, and so does whoever its ``EVENTS`` reading wakes; if that first try
succeeds while no wake-up is on its way (the fd signalled, a recheck
scheduled: the hub is then only late), the wake-up was missed, and
:func:`stats` counts a *rescue* (a lied-to waiter's apart, see above). The
test suite fails on any.

Busy-polling
------------

The answer a head waits for usually comes from libzmq's I/O thread, which
signals the fd from another CPU. If the hub is asleep in ``epoll_wait`` by then,
the kernel must wake this thread's CPU first, and on virtual machines that costs
more than the whole message took to travel: a request/reply round trip between
two greenlets over loopback tcp spends most of its ~140 us in two such wake-ups.
So a head asks the hub to *busy-poll* for a moment (``busy_poll`` seconds: 50 us
by default, none when the process may run on one CPU only) before it may sleep:
an idle watcher keeps the loop polling its fds without blocking, so the signal
is seen as soon as it is written. It changes when the hub notices the fd,
nothing else: the same watcher wakes the same greenlet. It costs at most
``busy_poll`` of CPU per spun wait. The default spins only where that pays:
each hub learns from its recent waits whether answers come inside the window,
and stops at once on a contended CPU (:mod:`zmq_green._spin` tells how); a
``busy_poll`` the user sets spins as given.
"""

from __future__ import annotations

import os
import time
import weakref
from collections import deque
from typing import Any, Callable, TypeVar, cast

import zmq
from gevent import get_hub
from gevent.hub import Hub, Waiter
from greenlet import getcurrent
from zmq.backend import Socket as _RawSocket, zmq_poll

from ._ints import EAGAIN, ENOTSOCK, ETERM, EVENTS, FD, POLLIN, POLLOUT, REP, REQ, TYPE
from ._spin import Adaptive, spinner_of

__all__ = [
    "DEFAULT_BUSY_POLL",
    "OVERTAKE_LIMIT",
    "RESCUED",
    "Entry",
    "Interest",
    "SocketWaits",
    "block",
    "block_until",
    "busy_poll_of",
    "reset_stats",
    "safety_timeout_of",
    "stats",
    "waits_of",
    "zmq_error",
]

_T = TypeVar("_T")

_raw_get = _RawSocket.get
_monotonic = time.monotonic

# What a waiter is woken with. Errors are passed as exception instances.
READY = "ready"
#: Ready, as found by somebody's safety timeout: if the try succeeds, it is a rescue.
RESCUED = "rescued"
#: Ready, as read after a failed try inside a wait: no news for a lied-to waiter.
MAYBE = "maybe"
TIMER = "timer"

#: Seconds between the check for pending commands and the ``EVENTS`` reading
#: after it beyond which the thread was preempted there (they are microseconds
#: apart otherwise): see "When EVENTS lies" in the module's notes.
PREEMPTED = 0.0001

#: How many calls may overtake the waiters queued in one line before newcomers
#: queue behind them (see the module's notes).
OVERTAKE_LIMIT = 8


def _default_busy_poll() -> float:
    """50 us where another CPU can run libzmq's I/O thread meanwhile; on one CPU, 0.

    With a single CPU the I/O thread cannot answer while this one spins, so
    spinning would only delay it.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return Adaptive(50e-6) if cpus > 1 else 0.0


DEFAULT_BUSY_POLL = _default_busy_poll()

_stats = {"waits": 0, "safety_wakeups": 0, "rescues": 0, "lied_rescues": 0}


def stats() -> dict[str, int]:
    """Counters of the waiting protocol since start (or :func:`reset_stats`).

    Returns
    -------
    stats : dict
        ``waits``: times a greenlet blocked on a socket or poller;
        ``safety_wakeups``: times the safety timeout fired;
        ``rescues``: safety wake-ups that found the socket ready -- missed
        wake-ups. It should always be 0. ``lied_rescues``: the same for waiters
        that ``EVENTS`` lies to, whose news a reading can consume unseen (see
        "When EVENTS lies" in the notes of ``zmq_green._waiting``): rare, on
        sockets served by libzmq's I/O thread only.
    """
    return dict(_stats)


def reset_stats() -> None:
    """Set every counter of :func:`stats` back to zero."""
    for key in _stats:
        _stats[key] = 0


def zmq_error(errno: int) -> zmq.ZMQError:
    """The exception pyzmq raises for *errno* (``Again``, ``ContextTerminated``...)."""
    if errno == EAGAIN:
        return zmq.Again(errno)
    if errno == ETERM:
        return zmq.ContextTerminated(errno)
    return zmq.ZMQError(errno)


class Entry:
    """One greenlet's place among the waiters of a socket (or a poller's).

    ``mask`` is what it waits for (``POLLIN``, ``POLLOUT``, or both for a poller).
    ``woken`` is set when a wake-up has been sent and not yet consumed, so that a
    readiness is delivered once, not once per observer. ``lied`` is set while
    ``EVENTS`` says the socket is ready for it and its tries fail regardless;
    ``credit`` while it may still be woken once by what is no news.
    """

    __slots__ = ("credit", "hub", "lied", "mask", "waiter", "woken")

    def __init__(self, hub: Hub, mask: int) -> None:
        self.hub = hub
        self.waiter = Waiter(hub)
        self.mask = mask
        self.woken = False
        self.lied = False
        self.credit = False

    def wake(self, value: Any) -> None:
        """Deliver *value* to the waiting greenlet, at most once per wait."""
        if self.woken:
            return
        self.woken = True
        hub = self.hub
        if getcurrent() is hub:
            self.waiter.switch(value)
        else:
            hub.loop.run_callback(self.waiter.switch, value)


class Interest:
    """A poller's standing registration with the sockets it polls, in one hub.

    Kept from poll to poll (see "Pollers" in the module's notes): the sockets it
    watches (:class:`SocketWaits`, and the mask polled) keep their fd watched for
    it, and whatever may have made one of them ready -- its fd fired, an ``EVENTS``
    reading found it ready, a green call was made on it -- *marks* it, and wakes
    the polls blocked on it. A poll checks only the marked sockets.
    """

    __slots__ = ("blocked", "failed", "hub", "lost", "marked", "watching")

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.watching: dict[SocketWaits, int] = {}
        #: Marked since the last check, in marking order (a dict as an ordered set).
        self.marked: dict[SocketWaits, None] = {}
        #: The entries of the polls blocked on it now.
        self.blocked: list[Entry] = []
        #: The error each of them must raise: a socket closed (ENOTSOCK), its context
        #: ended (ETERM). Kept apart from the wake-up, which may have been sent already.
        self.failed: dict[Entry, BaseException] = {}
        #: A socket stopped being watched for it (handed to another thread's hub).
        self.lost = False

    def mark(self, waits: SocketWaits, value: Any = READY) -> None:
        """*waits*' socket may be ready (or *value* is its error): note it, wake the blocked polls."""
        self.marked[waits] = None
        # A copy: a poll woken from the hub runs at once, and leaves the list.
        for entry in tuple(self.blocked):
            if isinstance(value, BaseException):
                self.failed.setdefault(entry, value)
            entry.wake(value)

    def take_marked(self) -> dict[SocketWaits, None]:
        """The sockets marked since the last call, which the caller is about to check."""
        marked, self.marked = self.marked, {}
        return marked

    def watch(self, waits: SocketWaits, mask: int) -> None:
        """Watch *waits*' socket for *mask* from now on (or, if watched, for *mask* instead)."""
        if waits.hub is not self.hub:
            waits.bind()  # raises if greenlets of another thread wait on it
        if self not in waits.interests:
            waits.watched += 1
            if waits.watched == 1 and waits.watcher is not None:
                waits.watcher.start(waits._on_fd)
        waits.interests[self] = mask
        self.watching[waits] = mask

    def unwatch(self, waits: SocketWaits) -> None:
        """Stop watching *waits*' socket."""
        self.watching.pop(waits, None)
        self.marked.pop(waits, None)
        if waits.interests.pop(self, None) is not None:
            waits.watched -= 1
            if waits.watched == 0 and waits.watcher is not None:
                waits.watcher.stop()

    def close(self) -> None:
        """Watch nothing any more: the poller is gone, or moves to another thread."""
        for waits in list(self.watching):
            self.unwatch(waits)


def block(entry: Entry, seconds: float | None, busy_poll: float = 0.0) -> Any:
    """Switch to the hub until *entry* is woken or *seconds* pass.

    The only place zmq_green blocks a greenlet. With *busy_poll*, the hub may poll
    without sleeping for that many seconds first (see the module's notes, and
    :mod:`zmq_green._spin` for when it does). Returns the wake-up value
    (:data:`READY`, :data:`TIMER`, or an exception instance for the caller to
    raise). The timer never outlives the call.
    """
    _stats["waits"] += 1
    waiter = entry.waiter
    waiter.clear()
    entry.woken = False
    spinner = None
    if busy_poll > 0:
        spinner = spinner_of(entry.hub)
        if spinner.begin(busy_poll):
            started = _monotonic()
        else:
            spinner = None
    if seconds is None:
        value = waiter.get()
    else:
        loop = entry.hub.loop
        # The loop's clock is cached: after CPU work or a blocking call it is behind,
        # and a timer armed from it fires early by that much.
        loop.update_now()
        # libuv counts whole milliseconds (and warns below one).
        timer = loop.timer(max(seconds, 0.001) if seconds > 0 else 0)
        timer.start(waiter.switch, TIMER)
        try:
            value = waiter.get()
        finally:
            timer.close()
    if spinner is not None:
        spinner.learn(_monotonic() - started, busy_poll)
    return value


DEFAULT_SAFETY_TIMEOUT = 10.0


def block_until(
    entry: Entry, deadline: float | None, safety: float | None, busy_poll: float = 0.0
) -> tuple[Any, bool]:
    """:func:`block` until *deadline* (monotonic seconds, or None) or for *safety* seconds.

    Returns the wake-up value, and whether the deadline (not the safety timeout)
    was the timer armed: with :data:`TIMER`, True means the deadline has passed.
    """
    while True:
        remaining = None if deadline is None else deadline - _monotonic()
        expiry = safety is None or (remaining is not None and remaining <= safety)
        value = block(entry, remaining if expiry else safety, busy_poll)
        if value is TIMER and expiry and deadline is not None and _monotonic() < deadline:
            continue  # libuv counts whole milliseconds, rounded down: not yet
        return value, expiry


class SocketWaits:
    """The greenlets waiting on one libzmq socket in one hub, and the watcher that wakes them.

    One per libzmq socket (:func:`waits_of`), shared by every Python object over
    it; rebound to another hub when the socket is handed to another thread while
    nobody waits on it. It holds those objects weakly, so that an abandoned socket
    is still closed by its ``__del__``.
    """

    __slots__ = (
        "__weakref__",
        "_refs",
        "closed",
        "count",
        "fd",
        "fifo",
        "held",
        "hub",
        "interests",
        "news",
        "overtaken",
        "poked",
        "readers",
        "recv_idle",
        "recv_turns",
        "rescued_at",
        "watched",
        "watcher",
        "writers",
    )

    def __init__(self, socket: zmq.Socket[Any]) -> None:
        self._refs = [weakref.ref(socket)]
        self.hub: Hub | None = None
        self.watcher: Any = None
        self.fd = -1
        self.readers: deque[Entry] = deque()
        self.writers: deque[Entry] = deque()
        #: The mask each poller that polls the socket (see Interest) polls it for.
        self.interests: dict[Interest, int] = {}
        #: readers + writers: non-zero means a greenlet may need waking.
        self.count = 0
        #: count + interests: non-zero means the fd is watched, and calls are passed on.
        self.watched = 0
        self.closed = False
        #: The directions (POLLIN, POLLOUT) whose newcomers must queue until the
        #: line has emptied: they overtook its waiters OVERTAKE_LIMIT times, or a
        #: greenlet waits in the middle of a multipart send.
        self.fifo = 0
        #: The greenlet whose multipart message is half sent: the send side is
        #: its own until the last frame (see zmq_green.socket._send_rest).
        self.held: Any = None
        #: Calls that overtook the waiters of each line, by direction.
        self.overtaken = {POLLIN: 0, POLLOUT: 0}
        #: A recheck is scheduled for the hub's next turn.
        self.poked = False
        #: News seen on the socket (its fd fired, a reading woke with READY, a check
        #: found a signal pending), and its count when a safety timeout last read
        #: ``EVENTS`` (see :meth:`missed`).
        self.news = 0
        self.rescued_at = -1
        #: The next blocking receive reads ``EVENTS`` before it tries (see
        #: zmq_green.socket._nothing_yet): the last one found nothing, or, on REQ and
        #: REP, a message was just sent and the answer cannot be here yet.
        self.recv_idle = False
        #: Receives and sends take turns (REQ, REP): a receive out of turn fails with ``EFSM``.
        self.recv_turns = _type_of(socket) in (REQ, REP)

    @property
    def socket(self) -> zmq.Socket[Any]:
        """A live Python object over the libzmq socket."""
        for ref in self._refs:
            sock = ref()
            if sock is not None:
                return sock
        raise zmq_error(ENOTSOCK)  # only reachable from a stale watcher callback

    def adopt(self, socket: zmq.Socket[Any]) -> None:
        """Another Python object (a shadow) over the same libzmq socket shares these waits."""
        self._refs = [ref for ref in self._refs if ref() is not None]
        self._refs.append(weakref.ref(socket))

    # -- joining and leaving ----------------------------------------------

    def bind(self) -> Hub:
        """Make sure the watcher belongs to the current thread's hub; return that hub."""
        hub = get_hub()
        if hub is not self.hub:
            if self.count:
                raise RuntimeError(
                    f"{self.socket!r} is being waited on in another thread; "
                    "a zmq socket must not be used from two threads at once"
                )
            if self.closed:
                raise zmq_error(ENOTSOCK)
            for interest in list(self.interests):
                # A poller of the other thread's: it watches again when it next polls there.
                interest.unwatch(self)
                interest.lost = True
            if self.watcher is not None:
                try:
                    self.watcher.close()
                except ValueError:
                    pass  # its loop was destroyed with the other thread's hub
            self.hub = hub
            self.fd = cast(int, _raw_get(self.socket, FD))
            self.watcher = hub.loop.io(self.fd, 1)
        return hub

    def join(self) -> None:
        """Count one more waiter; the first one to watch starts the watcher."""
        self.count += 1
        self.watched += 1
        if self.watched == 1 and self.watcher is not None:
            self.watcher.start(self._on_fd)

    def leave(self) -> None:
        """Count one waiter less; the last one to watch stops the watcher."""
        self.count -= 1
        self.watched -= 1
        if self.watched == 0 and self.watcher is not None:
            self.watcher.stop()

    # -- observing the socket ---------------------------------------------

    def _on_fd(self) -> None:
        """The mailbox signal fired (runs in the hub)."""
        self.news += 1
        if self.watched == 1:
            # A lone reader, or one poller with a poll blocked: its retry (recv, or
            # zmq_poll) processes the commands and tells the truth; reading EVENTS
            # first would do it twice. A poller that is not polling reads nothing
            # soon: EVENTS is read now, which also quiets the fd.
            if self.readers:
                self.readers[0].wake(READY)
                return
            if self.interests:
                interest = next(iter(self.interests))
                if interest.blocked:
                    interest.mark(self)
                    return
        try:
            self.events()
        except zmq.ZMQError:
            pass  # every waiter has been told

    def events(self, me: Entry | None = None, value: str = READY) -> int:
        """Read ``EVENTS`` and wake whoever can now proceed, except *me*.

        *value* is what they are woken with: :data:`MAYBE` when the reading
        follows a failed try inside a wait, which is no news for a lied-to waiter
        (see the module's notes). On an error (``ETERM``, ``ENOTSOCK``) every
        waiter is woken with it, and it is raised to the caller too.
        """
        events = self._read()
        self.dispatch(events, me, value)
        return events

    def _read(self) -> int:
        """``EVENTS``; on an error every waiter is woken with it, and it is raised."""
        try:
            return cast(int, _raw_get(self.socket, EVENTS))
        except zmq.ZMQError as e:
            self.fail_all(e.errno or ENOTSOCK)
            raise

    def dispatch(self, events: int, me: Entry | None = None, value: str = READY) -> None:
        """Wake the head of each line that *events* make ready, and matching pollers."""
        if value is READY:
            self.news += 1
        if events & POLLIN and self.readers:
            _wake_turn(self.readers, me, value)
        if events & POLLOUT and self.writers:
            _wake_turn(self.writers, me, value)
        if self.interests:
            # A copy: a woken poll runs at once (we may be in the hub) and may
            # change what its poller watches.
            for interest, mask in list(self.interests.items()):
                if mask & events:
                    interest.mark(self, READY if value is MAYBE else value)

    def signalled(self) -> bool:
        """Whether the fd is signalled: commands are pending, and the watcher will fire.

        Pending commands are news, whoever's call then processes them: counted.
        """
        if zmq_poll([(self.fd, POLLIN)], 0):
            self.news += 1
            return True
        return False

    def wakeup_pending(self) -> bool:
        """Whether a wake-up is on its way: a recheck is scheduled, or the fd is signalled.

        A socket found ready while one is pending has missed nothing: the hub is
        only late in delivering it.
        """
        return self.poked or self.signalled()

    def missed(self) -> bool:
        """Whether a readiness found now, after the last safety timeout, is a missed wake-up.

        It is if no news came since that safety timeout's reading and none is on
        its way: otherwise the news, not the net, is what made the socket ready.
        Every try checks, before its call processes what is pending (see
        :meth:`_try`).
        """
        return self.news == self.rescued_at and not self.wakeup_pending()

    def poke(self) -> None:
        """A call was made on the socket while others wait: recheck before the hub blocks.

        The recheck runs as a hub callback, so a greenlet making many calls in a
        row pays for one ``EVENTS`` read, and it runs before the hub next waits
        for I/O, so no wake-up can be lost in between. With only pollers watching,
        the call marks the socket for them instead: their next check reads it.
        """
        if self.count:
            self.recheck()
        elif self.interests:
            for interest in list(self.interests):
                interest.mark(self)

    def recheck(self) -> None:
        """Have ``EVENTS`` read, and whoever it finds ready woken, before the hub next blocks."""
        if not self.poked and self.hub is not None:
            self.poked = True
            self.hub.loop.run_callback(self._poked)

    def _poked(self) -> None:
        """The recheck itself: pass on what the calls revealed (runs in the hub)."""
        self.poked = False
        if self.watched and not self.closed:
            try:
                self.events()
            except zmq.ZMQError:
                pass  # every waiter has been told

    def overtook(self, direction: int) -> None:
        """A call of *direction* succeeded while others wait: recheck, and count it against the line.

        Once a line's waiters have been overtaken :data:`OVERTAKE_LIMIT` times,
        newcomers of that direction queue behind them until the line has emptied.
        A head that ``EVENTS`` lies to is not counted as overtaken: its call could
        not have succeeded (a ROUTER's send to a full peer, while others go to peers
        with room).
        """
        line = self.readers if direction == POLLIN else self.writers
        if line and not line[0].lied:
            self.overtaken[direction] += 1
            if self.overtaken[direction] >= OVERTAKE_LIMIT:
                self.fifo |= direction
        self.poke()

    def release(self) -> None:
        """The held multipart message is complete (or can never be): senders may start again."""
        self.held = None
        if not self.writers:
            self.fifo &= ~POLLOUT
        self.poke()

    def fail_all(self, errno: int) -> None:
        """Wake every waiter with ``ZMQError(errno)``."""
        for entry in [*self.readers, *self.writers]:
            entry.wake(zmq_error(errno))
        for interest in list(self.interests):
            interest.mark(self, zmq_error(errno))

    def close(self) -> None:
        """The socket is closing: stop watching its fd, wake all waiters with ENOTSOCK."""
        self.closed = True
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            try:
                # Stopped first: libuv's close() of an fd's watcher leaves it
                # reporting itself active.
                watcher.stop()
                watcher.close()
            except Exception:  # pragma: no cover - the hub is gone (interpreter exit)
                pass
        self.fail_all(ENOTSOCK)

    # -- waiting ----------------------------------------------------------

    def call(
        self,
        direction: int,
        timeout_ms: int,
        op: Callable[..., _T],
        *args: Any,
        front: bool = False,
    ) -> _T:
        """Wait for our turn and for readiness, then return ``op(*args)``.

        Called after ``op`` failed with ``EAGAIN`` in the fast path. *direction* is
        ``POLLIN`` or ``POLLOUT``; *timeout_ms* follows ``RCVTIMEO``/``SNDTIMEO``
        (-1: forever; on expiry ``zmq.Again``); *front* puts us at the head of the
        line (the next frame of a multipart message that already holds the socket).
        """
        deadline = None if timeout_ms < 0 else _monotonic() + timeout_ms / 1000.0
        if timeout_ms == 0:
            # pyzmq's RCVTIMEO/SNDTIMEO of 0: fail at once, as the fast path just did.
            self.poke()
            raise zmq_error(EAGAIN)
        hub = self.bind()
        entry = Entry(hub, direction)
        line = self.readers if direction == POLLIN else self.writers
        if front:
            line.appendleft(entry)
        else:
            line.append(entry)
        self.join()
        sock = self.socket
        safety = safety_timeout_of(sock)
        busy_poll = busy_poll_of(sock)
        me = getcurrent()  # a sender that holds the send side (see held) goes first
        failed = 1  # tries that failed since the last news; the fast path's was one
        rescue: str | None = None  # the counter a success goes to after a safety wake-up
        try:
            # Our failed try may have processed the commands that others wait for.
            attempt = self.watched > 1 and bool(self.events(entry) & direction)
            while True:
                if self.closed:
                    raise zmq_error(ENOTSOCK)
                head = self._may_try(line, entry, me)
                if head and attempt:
                    try:
                        return self._try(op, args, rescue)
                    except zmq.Again:
                        # A failed try is no missed wake-up: whatever makes a later
                        # try succeed came after it (news), not before the net fired.
                        failed += 1
                        rescue = None
                    attempt, news = self._after_failure(entry, failed)
                    if attempt:
                        continue
                    if news:
                        # Commands came meanwhile: try again, but after the others' turn.
                        # Whoever wakes us meanwhile (even a safety timeout's reading)
                        # tells us nothing we did not know: that news is why we retry.
                        value, expiry = block(entry, 0), False
                        if not isinstance(value, BaseException):
                            value = READY
                    else:
                        value, expiry = block_until(entry, deadline, safety, busy_poll)
                else:
                    value, expiry = block_until(entry, deadline, safety, busy_poll if head else 0.0)
                if value is READY or value is RESCUED or value is MAYBE:
                    rescue = _rescue_counter(entry) if value is RESCUED else None
                    if value is not MAYBE:  # news
                        entry.lied = False
                    failed = 0
                    attempt = True
                    continue
                if value is not TIMER:
                    raise value
                head = self._may_try(line, entry, me)
                if expiry:
                    # The deadline passed: a last try, then Again.
                    if head:
                        return op(*args)
                    raise zmq_error(EAGAIN)
                # The safety net fired: try again, and have the others try too. With a
                # wake-up already sent to us, a recheck scheduled, or the signal still
                # pending, the hub is late (what would wake us was due in this same
                # turn, after the timers): no missed wake-up.
                _stats["safety_wakeups"] += 1
                late = entry.woken or self.wakeup_pending()
                self.rescued_at = self.news
                if self.watched > 1:
                    self.events(entry, READY if late else RESCUED)
                attempt = head
                rescue = _rescue_counter(entry) if head and not late else None
                failed = 0
        finally:
            was_head = _has_turn(line, entry)
            line.remove(entry)
            if not line:
                self.overtaken[direction] = 0
                if direction == POLLIN or self.held is None:
                    self.fifo &= ~direction
            self.leave()
            if was_head and self.watched:
                # Our call (or our leaving the head of the line) may concern the others,
                # in either direction: a recv can process the command that made the
                # socket writable. Tell them before the hub next blocks.
                self.poke()

    def _may_try(self, line: deque[Entry], entry: Entry, me: Any) -> bool:
        """Whether *entry*, of greenlet *me*, may try its call now.

        It has its turn in *line*, and, for a sender, no other greenlet's multipart
        message is half sent.
        """
        return _has_turn(line, entry) and (entry.mask == POLLIN or self.held in (None, me))

    def _try(self, op: Callable[..., _T], args: tuple[Any, ...], rescue: str | None) -> _T:
        """``op(*args)``; a success after a safety wake-up that missed nothing else counts in *rescue*."""
        # missed() first: while a safety timeout's finding stands, any try may process
        # pending news, and it must be seen as news, whoever's try it is.
        missed = self.missed()
        result = op(*args)
        if rescue and missed:
            _stats[rescue] += 1
        return result

    def _after_failure(self, entry: Entry, failed: int) -> tuple[bool, bool]:
        """Our try failed: whether to try again at once, and whether commands were pending.

        Alone, we block at once (see the module's notes). Otherwise what our try
        processed may concern the others, so ``EVENTS`` is read for them, and it
        may say we are ready all the same: a message came meanwhile -- or it lies.
        """
        if self.watched == 1:
            return False, False
        checked = _monotonic()
        news = self.signalled()  # commands pending now are news, which the reading consumes
        events = self._read()
        if not news and _monotonic() - checked > PREEMPTED:
            # This thread lost its CPU between the check and the reading: a command
            # that came meanwhile was consumed unseen. Take it for news.
            news = True
        self.dispatch(events, entry, READY if news else MAYBE)
        ready = events & entry.mask
        if not ready or failed < 2:
            return bool(ready), False
        if not news and not entry.lied:
            entry.lied = entry.credit = True
        return False, news


def _type_of(socket: zmq.Socket[Any]) -> int | None:
    """The socket's type, or None once it is closed."""
    try:
        return cast(int, _raw_get(socket, TYPE))
    except zmq.ZMQError:
        return None


def _rescue_counter(entry: Entry) -> str:
    """Where a rescue of *entry* is counted: apart for a lied-to waiter (see the module's notes)."""
    return "lied_rescues" if entry.lied else "rescues"


def _has_turn(line: deque[Entry], entry: Entry) -> bool:
    """Whether *entry* has its turn: it is first in *line*, or only lied-to waiters are ahead.

    A waiter that ``EVENTS`` lies to holds up nobody: a ROUTER's send to a full
    peer must not keep the next greenlet from sending to a peer with room.
    """
    for ahead in line:
        if ahead is entry:
            return True
        if not ahead.lied:
            return False
    return False


def _wake_turn(line: deque[Entry], me: Entry | None, value: str) -> None:
    """Wake the first waiter of *line* that has not been lied to, and the lied-to ones ahead of it.

    A :data:`MAYBE` (no news) wakes a lied-to waiter only while it has credit:
    once between two pieces of news.
    """
    for entry in line:
        if entry is not me:
            if value is not MAYBE or not entry.lied:
                entry.wake(value)
            elif entry.credit:
                entry.credit = False
                entry.wake(value)
        if not entry.lied:
            return


def safety_timeout_of(waiter: Any) -> float | None:
    """The ``safety_timeout`` of a socket or poller in seconds, or None when it is off."""
    timeout = getattr(waiter, "safety_timeout", DEFAULT_SAFETY_TIMEOUT)
    return timeout if timeout and timeout > 0 else None


def busy_poll_of(waiter: Any) -> float:
    """The ``busy_poll`` of a socket or poller in seconds (0.0 when it is off)."""
    seconds = getattr(waiter, "busy_poll", DEFAULT_BUSY_POLL)
    return seconds if seconds and seconds > 0 else 0.0


# Every Python object over one libzmq socket (an original and its shadows) shares
# its waits: a call through one may eat the signal that a waiter on another needs.
_waits_by_handle: weakref.WeakValueDictionary[int, SocketWaits] = weakref.WeakValueDictionary()


def waits_of(socket: zmq.Socket[Any]) -> SocketWaits:
    """The :class:`SocketWaits` of *socket*'s libzmq socket, created on first use.

    Green sockets get theirs at creation; a plain ``zmq.Socket`` given to a green
    Poller gets one here. Objects over the same libzmq socket share one.
    """
    waits: SocketWaits | None = socket.__dict__.get("_waits")
    if waits is None:
        handle = socket.underlying
        waits = _waits_by_handle.get(handle) if handle else None
        if waits is None or waits.closed:
            # None, or a closed socket's: libzmq reuses the memory of closed sockets.
            waits = SocketWaits(socket)
            if handle:
                _waits_by_handle[handle] = waits
        else:
            waits.adopt(socket)
        socket.__dict__["_waits"] = waits
    return waits
