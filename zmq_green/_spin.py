"""When to busy-poll: a hub spins only while spinning pays.

What a spin buys, and what it costs
-----------------------------------

A greenlet about to wait may ask the hub to poll without sleeping for a moment
(``busy_poll`` seconds, 50 us by default): if the answer comes from libzmq's
I/O thread within that moment, this thread's CPU never goes to sleep, and the
wake-up, which on a virtual machine costs more than the message's trip, is not
paid. If the answer comes later, the moment was CPU thrown away. On a machine
doing other work it is worse than waste: the spinning thread holds a CPU that
libzmq's I/O thread, or the peer, needed to send the answer.

Which of the two happens depends on when answers come, and only recent waits
tell. Saturated request/reply answers within tens of microseconds, every time;
a server at moderate load waits hundreds of microseconds or milliseconds for
its next request; the same server moves between the two as its load changes.

The history
-----------

So each hub keeps a short history, as an adaptive mutex does (spin, then park,
with a spin budget learnt from the last acquisitions): a *score* between 0 and
:data:`CEILING`. A spun wait that ends inside its window raises it by one; one
that outlasts it lowers it by one. The hub spins while the score is at least
:data:`THRESHOLD`, half the ceiling: while at least half of the spun waits pay,
give or take the last few. That is where spinning stops paying: a hit spends
part of the window and saves a wake-up of the hub, which costs more CPU than
the whole window (``tools/wake_floor.py`` measures it), while a miss spends the
window and pays the wake-up too. A new hub starts at the ceiling, and spins, as
a hub that has only seen short waits does.

A hub that stopped spinning cannot learn from its waits whether spinning would
pay again: they now include the wake-up it no longer avoids. So it *probes*:
one wait in ``gap`` spins anyway and counts like any spun wait. A probe that
misses doubles the gap, up to :data:`MAX_GAP`; one that hits brings it back to
:data:`MIN_GAP`, and a few such hits bring the score back over the threshold.
A quiet server thus spins one window per 64 waits, and a server whose load
rises is spinning again within a few dozen waits.

Contention
----------

A spin that runs out its window while its thread got less than half of the wall
time (``time.thread_time`` against ``time.monotonic``) was preempted: other
processes want this CPU, and spinning competes with them, with libzmq's I/O
thread and with the peer. Such a spin says nothing about the answer's timing,
and everything about the machine: the hub stops spinning at once (score 0) and
probes at the widest gap.

The override
------------

Only the default ``busy_poll`` (the :class:`Adaptive` value
:data:`zmq_green._waiting.DEFAULT_BUSY_POLL`) adapts. A ``busy_poll`` set on a
socket, a poller or their class is used as given on every wait: a positive
value always spins that long, and 0 never spins.
"""

from __future__ import annotations

import time
import weakref

from gevent.hub import Hub

__all__ = ["CEILING", "MAX_GAP", "MIN_GAP", "THRESHOLD", "Adaptive", "Spinner", "spinner_of"]

#: The score's bounds, and the score from which a hub spins.
CEILING = 8
THRESHOLD = 4
#: Waits between two probes of a hub that stopped spinning: at first, and at most.
MIN_GAP = 8
MAX_GAP = 64
#: A spin whose thread got less of the wall time than this was preempted.
CONTENDED = 0.5

_monotonic = time.monotonic
_thread_time = time.thread_time


class Adaptive(float):
    """A ``busy_poll`` in seconds that the hub's history may switch off (see the notes)."""

    __slots__ = ()


class Spinner:
    """One hub's busy-polling: the watcher that keeps its loop polling, and the history.

    :meth:`begin` says whether a wait spins (and starts the spin); :meth:`learn`
    takes the duration of a wait that spun.
    """

    __slots__ = ("_cpu", "_started", "gap", "score", "skipped", "until", "watcher")

    def __init__(self, hub: Hub) -> None:
        self.until = 0.0
        self.score = CEILING
        self.gap = MIN_GAP
        self.skipped = 0
        self._started = self._cpu = 0.0
        # An idle watcher makes the loop poll with a zero timeout while it is
        # active; ref=False, so that busy-polling alone keeps no loop running.
        self.watcher = hub.loop.idle(ref=False)

    def begin(self, window: float) -> bool:
        """Spin for *window* seconds if the history says it pays; whether to :meth:`learn`.

        A *window* that is not :class:`Adaptive` spins whatever the history, and
        teaches it nothing.
        """
        if type(window) is not Adaptive:
            self.extend(window)
            return False
        if self.score < THRESHOLD:
            self.skipped += 1
            if self.skipped < self.gap:
                return False
            self.skipped = 0  # a probe
        self.extend(window)
        return True

    def learn(self, waited: float, window: float) -> None:
        """A spun wait of *window* seconds ended after *waited* seconds."""
        probe = self.score < THRESHOLD
        if waited <= window:
            self.score = min(CEILING, self.score + 1)
            self.gap = MIN_GAP
        else:
            self.score = max(0, self.score - 1)
            if probe:
                self.gap = min(MAX_GAP, self.gap * 2)

    def extend(self, seconds: float) -> None:
        """Poll without sleeping for at least *seconds* from now."""
        now = _monotonic()
        if now + seconds > self.until:
            self.until = now + seconds
        if not self.watcher.active:
            self._started, self._cpu = now, _thread_time()
            self.watcher.start(self._tick)

    def _tick(self) -> None:
        now = _monotonic()
        if now < self.until:
            return
        self.watcher.stop()
        if _thread_time() - self._cpu < CONTENDED * (now - self._started):
            self.score = 0
            self.gap = MAX_GAP


_spinners: weakref.WeakKeyDictionary[Hub, Spinner] = weakref.WeakKeyDictionary()


def spinner_of(hub: Hub) -> Spinner:
    """*hub*'s :class:`Spinner`, made on first use."""
    spinner = _spinners.get(hub)
    if spinner is None:
        spinner = _spinners[hub] = Spinner(hub)
    return spinner
