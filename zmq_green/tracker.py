"""Green :class:`MessageTracker`: ``wait()`` blocks only the calling greenlet.

pyzmq marks a zero-copy message as done by setting a :class:`threading.Event`
from its garbage-collector thread. Waiting on that event blocks the OS thread,
so the green tracker never calls ``Event.wait``: it puts a stand-in lock among
the waiters of the event's condition. ``Event.set`` releases every waiter it
finds there; our stand-in's ``release`` signals an async watcher of the waiting
greenlet's hub, the one watcher another thread may signal. (Once monkey-patched,
the events are gevent's own and already green.)
"""

from __future__ import annotations

import time
from typing import Any

import zmq
from gevent import get_hub
from gevent.monkey import get_original

from ._waiting import READY, TIMER, Entry, block_until

__all__ = ["MessageTracker", "green_tracker"]

# threading.Event as it was before any monkey-patching: the kind pyzmq may hold.
_NativeEvent: type = get_original("threading", "Event")


class _Signal:
    """A stand-in lock in a Condition's waiters: ``release()`` wakes a greenlet."""

    __slots__ = ("watcher",)

    def __init__(self, watcher: Any) -> None:
        self.watcher = watcher

    def release(self) -> None:
        self.watcher.send()


def _wait_native(event: Any, timeout: float | None) -> bool:
    """Wait for a native ``threading.Event`` greenly; return whether it is set."""
    cond = event._cond
    hub = get_hub()
    entry = Entry(hub, 0)
    watcher = hub.loop.async_()
    watcher.start(entry.wake, READY)
    signal = _Signal(watcher)
    with cond:
        if event.is_set():
            watcher.close()
            return True
        cond._waiters.append(signal)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not event.is_set():
            if block_until(entry, deadline, None)[0] is TIMER:
                break
    finally:
        with cond:  # Event.set notifies under this lock: no send after close
            try:
                cond._waiters.remove(signal)
            except ValueError:
                pass  # already notified
            watcher.close()
    return bool(event.is_set())


def _events_of(tracker: zmq.MessageTracker) -> list[Any]:
    """Every event *tracker* and its peers, recursively, depend on."""
    events: list[Any] = list(tracker.events)
    for peer in tracker.peers:
        events.extend(_events_of(peer))
    return events


class MessageTracker(zmq.MessageTracker):
    """Green version of :class:`zmq.MessageTracker`.

    Tracks whether 0MQ is done with one or more zero-copy messages; :meth:`wait`
    blocks only the calling greenlet. Parameters are those of
    :class:`zmq.MessageTracker`: Events, MessageTrackers or tracked Frames.
    """

    def wait(self, timeout: float | int = -1) -> None:
        """Wait for 0MQ to be done with the message(s), or until *timeout*.

        Blocks only the calling greenlet.

        Parameters
        ----------
        timeout : float
            Seconds to wait at most; -1 (the default) waits forever.

        Raises
        ------
        NotDone
            If *timeout* passed before 0MQ was done.
        """
        deadline = None if timeout is False or timeout < 0 else time.monotonic() + timeout
        for event in _events_of(self):
            if event.is_set():
                continue
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if isinstance(event, _NativeEvent):
                done = _wait_native(event, remaining)
            else:  # gevent's Event, green already
                done = event.wait(remaining)
            if not done:
                raise zmq.NotDone


def green_tracker(tracker: zmq.MessageTracker) -> zmq.MessageTracker:
    """The green :class:`MessageTracker` tracking what *tracker* tracks.

    For ``Socket.send(..., track=True)``: wraps the tracker pyzmq returns, but
    for pyzmq's finished singleton (a small message sent by copy), which has
    nothing to wait for and which pyzmq's users compare with ``is``.
    """
    if isinstance(tracker, MessageTracker) or tracker is zmq._FINISHED_TRACKER:
        return tracker
    return MessageTracker(tracker)
