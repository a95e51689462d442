"""Green :class:`Socket`: pyzmq's Socket whose blocking calls block only the calling greenlet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, TypeVar, cast

import gevent
import zmq
from greenlet import getcurrent
from zmq.backend import Socket as _RawSocket

from ._ints import (
    DONTWAIT,
    EAGAIN,
    EVENTS,
    POLLIN,
    POLLOUT,
    RCVMORE,
    RCVTIMEO,
    SNDMORE,
    SNDTIMEO,
    as_int,
)
from ._waiting import (
    DEFAULT_BUSY_POLL,
    DEFAULT_SAFETY_TIMEOUT,
    SocketWaits,
    waits_of,
    zmq_error,
)
from .poll import Poller
from .tracker import green_tracker

__all__ = ["Socket"]

# The backend's methods, called unbound: no sugar layer, no enum arithmetic.
_send = _RawSocket.send
_recv = _RawSocket.recv
_recv_into = _RawSocket.recv_into
_get = _RawSocket.get

_Again = zmq.Again
_ZMQError = zmq.ZMQError


_T = TypeVar("_T")
_Recv_co = TypeVar("_Recv_co", covariant=True)


class Socket(zmq.Socket[_Recv_co]):
    """Green version of :class:`zmq.Socket`.

    Every call that would block the thread in pyzmq (``send``, ``recv``,
    ``recv_into``, their multipart/string/json/pyobj/serialized variants and
    ``poll``) blocks only the calling greenlet. Any number of greenlets may use
    one socket at once: waiters are served first come, first served, and the
    frames of a multipart message are never interleaved with another greenlet's.

    ``RCVTIMEO``/``SNDTIMEO`` behave as in pyzmq (``zmq.Again`` on expiry) and an
    explicit ``zmq.DONTWAIT`` raises ``zmq.Again`` at once.

    Attributes
    ----------
    safety_timeout : float or None
        Seconds a greenlet waiting for readiness goes without a wake-up before it
        checks the socket anyway (default 10). A net for missed wake-ups, counted
        in :func:`zmq_green.stats` as ``rescues``; ``None`` or 0 disables it.
        Settable on the class or on an instance.
    busy_poll : float
        Seconds the hub may keep polling, without sleeping, when a greenlet starts
        to wait on this socket: the reply from libzmq's I/O thread is then seen
        without waiting for this CPU to wake up, for at most that much CPU per
        wait. The default (50e-6; 0 when the process may run on one CPU only,
        where spinning would delay libzmq's I/O thread) spins only while recent
        waits ended inside it and the CPU is not contended. A value set on the
        class or an instance spins as given on every wait; 0 disables it.
    """

    safety_timeout: float | None = DEFAULT_SAFETY_TIMEOUT
    busy_poll: float = DEFAULT_BUSY_POLL
    _waits: SocketWaits
    #: Every call through this class reaches the waiting protocol (a green Poller
    #: need not check the socket on every poll; see zmq_green.poll.Poller).
    _calls_seen = True
    _repr_cls = "zmq_green.Socket"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[misc]
        waits_of(self)

    def close(self, linger: int | None = None) -> None:
        """Close the socket, waking every greenlet waiting on it with ``ZMQError(ENOTSOCK)``.

        See :meth:`zmq.Socket.close`.
        """
        waits = self.__dict__.get("_waits")
        if waits is not None and not self._closed:
            waits.close()
        super().close(linger)

    # -- options ----------------------------------------------------------------

    def get(self, option: int) -> Any:
        """Get a socket option; see :meth:`zmq.Socket.get`.

        Reading ``EVENTS`` processes libzmq's pending commands, which may be what
        another greenlet waits for: it is passed on to them.
        """
        value = _get(self, option)
        if option == EVENTS:
            waits = self._waits
            if waits.watched:
                waits.dispatch(cast(int, value))
        return value

    getsockopt = get

    # -- sending ----------------------------------------------------------------

    def send(  # type: ignore[override]
        self,
        data: Any,
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        routing_id: int | None = None,
        group: str | None = None,
    ) -> zmq.MessageTracker | None:
        """Send a single zmq message frame, blocking only the calling greenlet.

        Parameters are those of :meth:`zmq.Socket.send`. With ``flags=zmq.DONTWAIT``
        (or ``SNDTIMEO`` expiring) raises :class:`zmq.Again`.
        """
        if routing_id is not None or group is not None:
            data = _draft_frame(self, data, copy, track, routing_id, group)
        if flags.__class__ is not int:
            flags = as_int(flags)
        tracker = _green(self, POLLOUT, flags, _send, data, flags | DONTWAIT, copy, track)
        return green_tracker(tracker) if track and tracker else tracker

    def send_multipart(
        self,
        msg_parts: Sequence[Any],
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        **kwargs: Any,
    ) -> zmq.MessageTracker | None:
        """Send a sequence of buffers as one multipart message, greenly.

        Once the first frame is accepted the socket's send side belongs to this
        greenlet until the last frame: no other greenlet's frames can come between.
        Parameters are those of :meth:`zmq.Socket.send_multipart`.
        """
        for i, part in enumerate(msg_parts):
            if isinstance(part, (zmq.Frame, bytes, memoryview)):
                continue
            try:
                memoryview(part)
            except Exception:
                rpart = repr(part)
                if len(rpart) > 32:
                    rpart = rpart[:32] + "..."
                raise TypeError(f"Frame {i} ({rpart}) does not support the buffer interface.")
        if not isinstance(msg_parts, (list, tuple)):
            msg_parts[:-1]  # pyzmq slices the parts: what cannot be sliced fails as there
        last = len(msg_parts) - 1
        if last < 0:
            # pyzmq's own behaviour for an empty message
            raise IndexError("list index out of range")
        if flags.__class__ is not int:
            if last:
                zmq.SNDMORE | flags  # pyzmq's frames before the last: refuses a float, as there
            flags = as_int(flags)
        tracker = self.send(msg_parts[0], flags | SNDMORE if last else flags, copy=copy, track=track)
        if last:
            tracker = _send_rest(self, msg_parts, 1, flags, copy, track)
            if self._waits.watched:
                self._waits.poke()
        return green_tracker(tracker) if track and tracker else tracker

    # -- receiving --------------------------------------------------------------

    def recv(self, flags: int = 0, copy: bool = True, track: bool = False) -> Any:
        """Receive one message frame, blocking only the calling greenlet.

        Parameters and return value are those of :meth:`zmq.Socket.recv`. With
        ``flags=zmq.DONTWAIT`` (or ``RCVTIMEO`` expiring) raises :class:`zmq.Again`.
        """
        if flags.__class__ is not int:
            flags = as_int(flags)
        return _green(self, POLLIN, flags, _recv, flags | DONTWAIT, copy, track)

    def recv_multipart(self, flags: int = 0, copy: bool = True, track: bool = False) -> list[Any]:
        """Receive a multipart message as a list of bytes or Frames, greenly.

        libzmq delivers a multipart message whole: once its first frame is here,
        the rest follow without waiting, so no other greenlet can take part of it.
        Parameters are those of :meth:`zmq.Socket.recv_multipart`.
        """
        parts = [self.recv(flags, copy=copy, track=track)]
        more = _get(self, RCVMORE)
        if more:
            # The rest is here already, and taken without queueing behind other readers.
            flags = as_int(flags) | DONTWAIT
        while more:
            parts.append(_recv(self, flags, copy, track))
            more = _get(self, RCVMORE)
        return parts

    def recv_into(self, buffer: Any, /, *, nbytes: int = 0, flags: int = 0) -> int:
        """Receive a frame into *buffer*, blocking only the calling greenlet.

        See :meth:`zmq.Socket.recv_into`.
        """
        if flags.__class__ is not int:
            flags = as_int(flags)
        return _green(self, POLLIN, flags, _recv_into_dontwait, buffer, nbytes, flags)

    _poller_class = Poller


def _green(socket: Socket[Any], direction: int, flags: int, op: Callable[..., _T], *args: Any) -> _T:
    """``op(socket, *args)``, a libzmq call made with ``DONTWAIT``; on ``EAGAIN``, wait and retry.

    The fast path of every send and receive: one try, and the hub only if others
    wait (they are told what the call changed) or if the call must wait. *flags*
    are the caller's: with ``DONTWAIT``, ``EAGAIN`` is raised instead of waiting.
    """
    waits = socket._waits
    if (not waits.fifo & direction or _may_overtake(waits, direction, flags)) and not (
        direction == POLLIN and waits.recv_idle and _nothing_yet(socket, waits, flags)
    ):
        try:
            result = op(socket, *args)
        except _Again:
            if flags & DONTWAIT:
                waits.poke()
                raise
            if direction == POLLIN:
                waits.recv_idle = True
        except _ZMQError:
            waits.poke()
            raise
        else:
            if waits.recv_turns:
                _took_turn(waits, direction, flags)
            if waits.watched:
                waits.overtook(direction)
            return result
    elif flags & DONTWAIT:
        raise zmq_error(EAGAIN)  # another greenlet's multipart message is half sent
    timeout = cast(int, _get(socket, RCVTIMEO if direction == POLLIN else SNDTIMEO))
    result = waits.call(direction, timeout, op, socket, *args)
    if waits.recv_turns:
        _took_turn(waits, direction, flags)
    return result


def _nothing_yet(socket: Socket[Any], waits: SocketWaits, flags: int) -> bool:
    """Whether a blocking receive, after one that found nothing, would find nothing again.

    A server that answers each request and then asks for the next one finds
    nothing most times. A receive that fails raises ``Again``, and pyzmq's
    exception costs more than a reading of ``EVENTS``, which processes the same
    commands: the fd fires on the next change all the same. So the receive asks
    first, and without ``POLLIN`` waits without trying. Others waiting on the
    socket are told what the reading found as they are told what a failed try
    found: by the wait it leads to, or by the call's recheck. Once the socket is
    found ready, receives try at once again.

    REQ and REP fail a receive out of turn with ``EFSM``, which ``EVENTS`` cannot
    always tell from a wait (a REQ whose peers have no room shows nothing either
    way). So they ask only in their turn, right after a send (see
    :func:`_took_turn`), and try when the reading shows ``POLLOUT``: the other
    turn, reached through a plain pyzmq object over the same socket.
    """
    if flags & DONTWAIT:
        return False
    events = cast(int, _get(socket, EVENTS))
    if events & POLLIN or (waits.recv_turns and events & POLLOUT):
        waits.recv_idle = False
        return False
    return True


def _took_turn(waits: SocketWaits, direction: int, flags: int) -> None:
    """A call on a REQ or REP succeeded: after a receive, the next receive is out of
    turn and must try; after a message's last frame sent, it is in turn and asks first."""
    if direction == POLLIN:
        waits.recv_idle = False
    elif not flags & SNDMORE:
        waits.recv_idle = True


def _may_overtake(waits: SocketWaits, direction: int, flags: int) -> bool:
    """Whether a call may try before the waiters of a line that is closed to newcomers.

    A call that would wait queues behind them (they have been overtaken often
    enough). A ``DONTWAIT`` call never waits, and takes what is ready as in pyzmq
    -- refusing it would only make a loop of ``poll()`` and ``DONTWAIT`` spin --
    unless another greenlet's multipart message is half sent.
    """
    return bool(flags & DONTWAIT) and (direction == POLLIN or waits.held is None)


def _send_rest(
    socket: Socket[Any], frames: Sequence[Any], start: int, flags: int, copy: bool, track: bool
) -> zmq.MessageTracker | None:
    """Send ``frames[start:]``, the rest of a multipart message; the last one's tracker.

    Usually they go at once: libzmq counts its high-water mark in whole messages.
    But XPUB with ``XPUB_NODROP`` checks it on every frame, and a peer may lower
    it meanwhile, so a frame can meet ``EAGAIN``. The frames sent so far cannot be
    taken back, so from then until the last frame the send side is *held*:
    newcomers queue behind (with ``DONTWAIT`` they get ``EAGAIN``), and if the
    sender is interrupted (killed, ``gevent.Timeout``) a greenlet of its own
    finishes the message, so that no other frame can join it.
    """
    waits = socket._waits
    last = len(frames) - 1
    tracker = None
    for i in range(start, last + 1):
        frame = frames[i]
        frame_flags = flags | DONTWAIT | SNDMORE if i < last else flags | DONTWAIT
        try:
            tracker = _send(socket, frame, frame_flags, copy, track)
            continue
        except _Again:
            pass
        waits.held = getcurrent()
        waits.fifo |= POLLOUT
        try:
            tracker = waits.call(POLLOUT, -1, _send, socket, frame, frame_flags, copy, track, front=True)
        except _ZMQError:
            waits.release()  # closed, or its context terminated: nothing left to finish
            raise
        except BaseException:
            waits.held = gevent.spawn(_send_rest, socket, frames, i, flags, copy, track)
            raise
    if waits.held is not None:
        waits.release()
    if waits.recv_turns:
        waits.recv_idle = True  # the message is out: a REQ's or REP's receive is in turn
    return tracker


def _recv_into_dontwait(socket: Socket[Any], buffer: Any, nbytes: int, flags: int) -> int:
    return _recv_into(socket, buffer, nbytes=nbytes, flags=flags | DONTWAIT)


def _draft_frame(
    socket: Socket[Any], data: Any, copy: bool, track: bool, routing_id: int | None, group: str | None
) -> zmq.Frame:
    """A Frame carrying a DRAFT routing id (SERVER) or group (RADIO), as pyzmq builds it."""
    if not isinstance(data, zmq.Frame):
        data = zmq.Frame(data, track=track, copy=copy or None, copy_threshold=socket.copy_threshold)
    if routing_id is not None:
        data.routing_id = routing_id
    if group is not None:
        data.group = group
    return cast(zmq.Frame, data)
