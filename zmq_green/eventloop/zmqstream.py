"""ZMQStream: callbacks for the messages a zmq socket receives and sends.

The API and semantics are those of pyzmq's :class:`zmq.eventloop.zmqstream.ZMQStream`,
on :class:`zmq_green.eventloop.IOLoop`. The stream asks the loop for ``READ``
while it has a receive callback and for ``WRITE`` while its send queue waits for
the socket; the loop polls ``ZMQ_EVENTS``, so what is ready is never missed.

Once called, the stream keeps going while ``ZMQ_EVENTS`` says it can: it receives
and sends up to ``_BATCH`` messages per call before it returns to the loop, so one
busy socket delivers a burst without a poll per message, and cannot starve the
loop's other sockets, timers and callbacks.
"""

from __future__ import annotations

import pickle
import sys
import warnings
from collections import deque
from collections.abc import Sequence
from typing import Any, Callable

import zmq
from zmq.utils import jsonapi

from .._ints import DONTWAIT, ETERM, EVENTS, POLLIN, POLLOUT
from ..socket import Socket as _GreenSocket
from .ioloop import IOLoop, _run_callback, logger

__all__ = ["ZMQStream"]

_NOT_NOW = (int(zmq.EAGAIN), int(zmq.EFSM))

#: Messages received (and sent) per handler call before returning to the loop.
_BATCH = 128

_SendCallback = Callable[[Sequence[Any], Any], object]

# An exception in a callback is logged, not raised: the stream and the loop go on
# (pyzmq's handler would die).
_WHAT = "ZMQStream callback"


class ZMQStream:
    """Register callbacks for a zmq socket's messages, on an :class:`IOLoop`.

    Methods
    -------
    * ``on_recv(callback, copy=True)``: call ``callback(msg)`` with each message
      received (a list of frames: bytes, or :class:`zmq.Frame` if ``copy=False``).
    * ``on_send(callback)``: call ``callback(msg, status)`` after each send.
    * ``send_multipart(msg, ..., callback=None)`` and friends: queue a message; it
      is sent when the socket can take it. A *callback* replaces the ``on_send`` one.

    Callbacks may be coroutine functions, as in pyzmq 25+: each call's coroutine
    runs on in a greenlet of its own while the stream goes on (pyzmq runs it as an
    asyncio task), and an exception it raises is logged. No asyncio loop runs on the
    gevent hub: the coroutine may block greenly and await coroutines that do, but
    not asyncio futures (see :mod:`zmq_green.eventloop.ioloop`).

    ``on_recv(None)`` (or ``stop_on_recv()``) pauses receiving; messages wait in
    the socket until a receive callback is set again. ``bind``, ``connect``,
    ``setsockopt`` and ``getsockopt`` (and their string variants) are the socket's.

    Parameters
    ----------
    socket : zmq.Socket
        The socket to serve. An async socket (``zmq.asyncio``...) is shadowed by a
        green one, with a warning, as pyzmq does.
    io_loop : IOLoop, optional
        Defaults to :meth:`IOLoop.current`.

    Attributes
    ----------
    socket : zmq.Socket or None
        The socket; None once the stream is closed.
    io_loop : IOLoop
        The loop that runs the callbacks.
    """

    socket: zmq.Socket[Any]
    io_loop: IOLoop

    bind: Callable[..., Any]
    bind_to_random_port: Callable[..., int]
    connect: Callable[..., Any]
    setsockopt: Callable[..., None]
    getsockopt: Callable[..., Any]
    setsockopt_string: Callable[..., None]
    getsockopt_string: Callable[..., str]
    setsockopt_unicode: Callable[..., None]
    getsockopt_unicode: Callable[..., str]

    def __init__(self, socket: zmq.Socket[Any], io_loop: IOLoop | None = None) -> None:
        # Async sockets exist only once zmq._future is imported: no need to import
        # it (and asyncio) to tell.
        future = sys.modules.get("zmq._future")
        if future is not None and isinstance(socket, future._AsyncSocket):
            warnings.warn(
                "ZMQStream needs a plain (or green) zmq socket: shadowing "
                f"{socket!r} with a zmq_green.Socket",
                RuntimeWarning,
                stacklevel=2,
            )
            socket = _GreenSocket(shadow=socket.underlying)
        self.socket = socket
        self.io_loop = io_loop or IOLoop.current()
        # (msg, flags, copy, track, kwargs) per queued message.
        self._send_queue: deque[tuple[Sequence[Any], int, bool, bool, dict[str, Any]]] = deque()
        self._recv_callback: Callable[..., object] | None = None
        self._recv_with_stream = False
        self._recv_copy = False
        self._send_callback: Callable[..., object] | None = None
        self._send_with_stream = False
        self._close_callback: Callable[[], object] | None = None
        # Skip handling until the next loop iteration after a flush() (as pyzmq).
        self._flushed = False
        # The events asked of the loop.
        self._state = 0
        # Inside _handle_events: it will see new work itself.
        self._handling = False
        # A call of _handle_events is queued on the loop.
        self._soon = False
        self.io_loop.add_handler(socket, self._handle_events, 0)

        self.bind = socket.bind
        self.bind_to_random_port = socket.bind_to_random_port
        self.connect = socket.connect
        self.setsockopt = socket.setsockopt
        self.getsockopt = socket.getsockopt
        self.setsockopt_string = socket.setsockopt_string
        self.getsockopt_string = socket.getsockopt_string
        self.setsockopt_unicode = socket.setsockopt_unicode
        self.getsockopt_unicode = socket.getsockopt_unicode

    # -- callbacks --------------------------------------------------------------

    def on_recv(self, callback: Callable[[list[Any]], object] | None, copy: bool = True) -> None:
        """Call ``callback(msg)`` with every message received; None stops receiving.

        Parameters
        ----------
        callback : callable or None
            Takes one argument: the message as a list of frames. A coroutine
            function's coroutines run on in greenlets of their own, concurrently,
            as pyzmq runs them as tasks; they are never dropped (see the class
            docstring).
        copy : bool
            Frames as bytes (True) or as :class:`zmq.Frame` (False).
        """
        self._set_recv(callback, copy, False)

    def on_recv_stream(
        self, callback: Callable[[ZMQStream, list[Any]], object] | None, copy: bool = True
    ) -> None:
        """Like :meth:`on_recv`, with the stream as first argument: ``callback(stream, msg)``.

        Lets one callback serve many streams. A coroutine function's coroutines run
        on in greenlets of their own, as with :meth:`on_recv`.
        """
        self._set_recv(callback, copy, True)

    def _set_recv(self, callback: Callable[..., object] | None, copy: bool, with_stream: bool) -> None:
        self._check_closed()
        _check_callable(callback)
        self._recv_callback = callback
        self._recv_copy = copy
        self._recv_with_stream = with_stream
        self._rebuild_io_state()

    def on_send(self, callback: _SendCallback | None) -> None:
        """Call ``callback(msg, status)`` after each message sent; None stops.

        ``msg`` is the message as queued, ``status`` what ``send_multipart`` returned
        (a :class:`zmq.MessageTracker` or None), or the :class:`zmq.ZMQError` that
        the send raised. A coroutine function's coroutines run on in greenlets of
        their own, as with :meth:`on_recv`.
        """
        self._check_closed()
        _check_callable(callback)
        self._send_callback = callback
        self._send_with_stream = False

    def on_send_stream(self, callback: Callable[[ZMQStream, Sequence[Any], Any], object] | None) -> None:
        """Like :meth:`on_send`, with the stream as first argument: ``callback(stream, msg, status)``."""
        self.on_send(callback)  # type: ignore[arg-type]
        self._send_with_stream = callback is not None

    def stop_on_recv(self) -> None:
        """Stop receiving (same as ``on_recv(None)``)."""
        self.on_recv(None)

    def stop_on_send(self) -> None:
        """Stop calling back after sends (same as ``on_send(None)``)."""
        self.on_send(None)

    def stop_on_err(self) -> None:
        """Deprecated, does nothing (as in pyzmq)."""
        logger.warning("on_err does nothing, and will be removed")

    def on_err(self, callback: Callable[..., object]) -> None:
        """Deprecated, does nothing (as in pyzmq)."""
        logger.warning("on_err does nothing, and will be removed")

    def set_close_callback(self, callback: Callable[[], object] | None) -> None:
        """Call ``callback()`` when the stream is closed."""
        self._close_callback = callback

    # -- sending ------------------------------------------------------------------

    def send(
        self,
        msg: Any,
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        callback: _SendCallback | None = None,
        **kwargs: Any,
    ) -> None:
        """Queue a one-frame message; see :meth:`send_multipart`."""
        self.send_multipart([msg], flags, copy, track, callback, **kwargs)

    def send_multipart(
        self,
        msg: Sequence[Any],
        flags: int = 0,
        copy: bool = True,
        track: bool = False,
        callback: _SendCallback | None = None,
        **kwargs: Any,
    ) -> None:
        """Queue a multipart message, sent by the loop when the socket can take it.

        Parameters
        ----------
        msg : list
            The frames, as for :meth:`zmq.Socket.send_multipart`.
        flags, copy, track
            Passed to :meth:`zmq.Socket.send_multipart`.
        callback : callable, optional
            Becomes the :meth:`on_send` callback (for this and later sends).

        Raises
        ------
        OSError
            If the stream is closed.
        """
        self._check_closed()
        # A plain int: enum arithmetic on it later would cost microseconds per send.
        self._send_queue.append((msg, int(flags) if flags else 0, copy, track, kwargs))
        if callback is not None:
            self.on_send(callback)
        if not self._handling and not self._soon and not self._state & POLLOUT:
            # Usually the socket can take it at once: have the loop send it on its
            # next iteration instead of re-registering the socket with the poller.
            self._soon = True
            self.io_loop.add_callback(self._handle_soon)

    def send_string(
        self,
        u: str,
        flags: int = 0,
        encoding: str = "utf-8",
        callback: _SendCallback | None = None,
        **kwargs: Any,
    ) -> None:
        """Queue a str, encoded (utf-8 by default); see :meth:`send_multipart`."""
        if not isinstance(u, str):
            raise TypeError("unicode/str objects only")
        self.send(u.encode(encoding), flags, callback=callback, **kwargs)

    send_unicode = send_string

    def send_json(
        self, obj: Any, flags: int = 0, callback: _SendCallback | None = None, **kwargs: Any
    ) -> None:
        """Queue *obj* serialized as JSON; see :meth:`send_multipart`."""
        self.send(jsonapi.dumps(obj), flags, callback=callback, **kwargs)

    def send_pyobj(
        self,
        obj: Any,
        flags: int = 0,
        protocol: int = -1,
        callback: _SendCallback | None = None,
        **kwargs: Any,
    ) -> None:
        """Queue *obj* pickled with *protocol*; see :meth:`send_multipart`."""
        self.send(pickle.dumps(obj, protocol), flags, callback=callback, **kwargs)

    # -- flushing, state, closing -------------------------------------------------

    def flush(self, flag: int = POLLIN | POLLOUT, limit: int | None = None) -> int:
        """Handle pending incoming and/or outgoing messages now, without the loop.

        Incoming messages are received even with no receive callback set (so
        ``flush(zmq.POLLIN)`` can drop them). Returns when nothing matching *flag*
        is pending or the count reaches *limit*; the stream's handler then skips
        the rest of this loop iteration.

        Parameters
        ----------
        flag : int
            ``zmq.POLLIN``, ``zmq.POLLOUT`` or both (default).
        limit : int, optional
            The most messages to handle (receives and sends together).

        Returns
        -------
        count : int
            The number of messages received plus sent.
        """
        self._check_closed()
        already_flushed = self._flushed
        self._flushed = False
        flag = int(flag)
        count = 0
        pending = self._pending(flag)
        while pending and (not limit or count < limit):
            if pending & POLLIN:
                self._handle_recv()
                count += 1
                if self.socket is None:
                    break
            if pending & POLLOUT and self._send_queue:
                if not self._handle_send():
                    break
                count += 1
                if self.socket is None:
                    break
            pending = self._pending(flag)
        if count:
            self._flushed = True
            if not already_flushed:
                self.io_loop.add_callback(self._finish_flush)
        elif already_flushed:
            self._flushed = True
        self._rebuild_io_state()
        return count

    def _pending(self, flag: int) -> int:
        """What of *flag* the socket can do now (POLLOUT only with something to send)."""
        if self.socket is None:
            return 0
        wanted = flag & POLLIN
        if self._send_queue:
            wanted |= flag & POLLOUT
        if not wanted:
            return 0
        events: int = self.socket.get(EVENTS)  # type: ignore[assignment]
        return events & wanted

    def _finish_flush(self) -> None:
        self._flushed = False

    def receiving(self) -> bool:
        """Whether a receive callback is set."""
        return self._recv_callback is not None

    def sending(self) -> bool:
        """Whether messages wait in the send queue."""
        return bool(self._send_queue)

    def closed(self) -> bool:
        """Whether the stream is closed; a socket closed behind its back closes it."""
        if self.socket is None:
            return True
        if self.socket.closed:
            self.close()
            return True
        return False

    def close(self, linger: int | None = None) -> None:
        """Stop handling the socket, close it (with *linger*) and call the close callback."""
        socket = self.socket
        if socket is None:
            return
        self.io_loop.remove_handler(socket)
        if not socket.closed:
            socket.close(linger)
        self.socket = None  # type: ignore[assignment]
        if self._close_callback is not None:
            _run_callback(_WHAT, self._close_callback)

    # -- the handler ----------------------------------------------------------------

    def _handle_soon(self) -> None:
        self._soon = False
        if self.socket is not None:
            self._handle_events(self.socket, 0)

    def _handle_events(self, fd: Any, events: int) -> None:
        """Receive and send while the socket can, up to ``_BATCH`` times each.

        *events* comes from the poll that just ran, so the first round trusts it;
        after that ``ZMQ_EVENTS`` says whether to go on. Sends are tried without
        asking: the socket can nearly always take one, and ``zmq.Again`` says when not.
        """
        socket = self.socket
        if socket is None:
            logger.warning("Got events for closed stream %s", self)
            return
        # The poll's POLLIN is fresh; anything else (ERROR) is asked of EVENTS.
        events &= POLLIN
        can_send = True
        self._handling = True
        try:
            for _ in range(_BATCH):
                if self._flushed:
                    break
                if not events:
                    try:
                        events = socket.get(EVENTS)  # type: ignore[assignment]
                    except zmq.ZMQError as e:
                        self._on_socket_error(e)
                        return
                busy = False
                if events & POLLIN and self._recv_callback is not None:
                    self._handle_recv()
                    if self.socket is None or self._flushed:
                        break
                    busy = True
                if can_send and self._send_queue:
                    can_send = self._handle_send()
                    if self.socket is None:
                        break
                    busy = busy or can_send
                if not busy:
                    break
                events = 0
        finally:
            self._handling = False
        self._rebuild_io_state()

    def _handle_recv(self) -> None:
        try:
            msg = self.socket.recv_multipart(DONTWAIT, copy=self._recv_copy)
        except zmq.Again:
            return  # taken by someone else since EVENTS was read
        callback = self._recv_callback
        if callback is None:
            return  # flush() drops it
        if self._recv_with_stream:
            _run_callback(_WHAT, callback, self, msg)
        else:
            _run_callback(_WHAT, callback, msg)

    def _handle_send(self) -> bool:
        """Send the head of the queue; False if the socket cannot take it now."""
        msg, flags, copy, track, kwargs = self._send_queue[0]
        status: Any
        try:
            status = self.socket.send_multipart(msg, flags | DONTWAIT, copy, track, **kwargs)
        except zmq.ZMQError as e:
            # EAGAIN (high-water mark) or EFSM (REQ awaiting its reply) while
            # EVENTS lacks POLLOUT: not now. The message stays queued and the
            # poll says when the socket can take it, as pyzmq's POLLOUT wait does.
            if e.errno in _NOT_NOW and not self._can_send():
                return False
            logger.error("SEND Error: %s", e)
            status = e
        self._send_queue.popleft()
        callback = self._send_callback
        if callback is not None:
            if self._send_with_stream:
                _run_callback(_WHAT, callback, self, msg, status)
            else:
                _run_callback(_WHAT, callback, msg, status)
        return True

    def _can_send(self) -> bool:
        try:
            return bool(self.socket.get(EVENTS) & POLLOUT)  # type: ignore[operator]
        except zmq.ZMQError:
            return False

    def _on_socket_error(self, error: zmq.ZMQError) -> None:
        if error.errno == ETERM:
            # Closing is what lets the terminating context finish.
            logger.warning("Closing stream %s: its context was terminated", self)
            self.close()
        elif self.closed():
            logger.warning("Got events for stream %s attached to closed socket: %s", self, error)
        else:
            logger.error("Error getting events for %s: %s", self, error)

    def _rebuild_io_state(self) -> None:
        """Ask the loop for READ while receiving, WRITE while the queue waits."""
        if self.socket is None:
            return
        state = POLLIN if self._recv_callback is not None else 0
        if self._send_queue:
            state |= POLLOUT
        if state != self._state:
            self._state = state
            self.io_loop.update_handler(self.socket, state)

    def _check_closed(self) -> None:
        if self.socket is None:
            raise OSError("Stream is closed")


def _check_callable(callback: object) -> None:
    # pyzmq asserts this; the same misuse raises the same error here.
    if callback is not None and not callable(callback):
        raise AssertionError(f"{callback!r} is not callable")
