"""Green devices: libzmq's own proxy in a native thread, the caller waiting greenly.

How a proxy runs
----------------

``zmq_proxy_steerable`` is a C loop that releases the GIL and moves messages at
libzmq's native speed. Nothing can interrupt it but a message on its control
socket or the termination of its sockets' context. So each call gets:

* its own OS thread (:class:`NativeThread`), real even after
  ``gevent.monkey.patch_all()``. Not a worker of the hub's threadpool: a proxy
  keeps its thread for its whole life, and a few proxies would starve that
  shared pool for good;
* an internal REQ/REP pair of sockets, in a private context of its own, the REP
  as the C proxy's control socket. The context is terminated when the call ends,
  so nothing of it outlives the call (libzmq frees a closed socket's fds later,
  in its reaper thread; terminating the context frees them before returning).
  When the calling greenlet is killed or a ``gevent.Timeout`` fires, it sends
  ``TERMINATE`` there and waits (a few milliseconds) for the thread to let go of
  the sockets, which are then closable and their context terminable;
* if the caller gave a control socket, a greenlet relaying its commands to the
  internal pair, and the proxy's answers back.

The caller waits for the thread's end greenly (see :mod:`zmq_green._native`).
"""

from __future__ import annotations

from typing import Any

import gevent
import zmq
from gevent._hub_local import get_hub_if_exists
from greenlet import getcurrent
from zmq.backend import proxy_steerable as _c_proxy_steerable

from ._native import Completion, NativeThread
from .context import Context
from .socket import Socket

__all__ = ["Completion", "NativeThread", "device", "green_socket", "proxy", "proxy_steerable"]

TERMINATE = b"TERMINATE"
STATISTICS = b"STATISTICS"
# pyzmq's own class, bound now: once zmq_green.monkey has patched zmq, zmq.Socket is ours.
_ZmqSocket = zmq.Socket


def green_socket(socket: zmq.Socket[Any]) -> Socket[Any]:
    """*socket* itself if it is green, else a green shadow of the same libzmq socket."""
    if isinstance(socket, Socket):
        return socket
    return Socket.shadow(socket.underlying)


def _control_pair() -> tuple[Context[Any], Socket[Any], Socket[Any]]:
    """(a new private context, our REQ, the C proxy's REP), connected.

    REP, so that the proxy answers each command whatever libzmq's policy for other
    socket types; REQ_RELAXED, so that TERMINATE can go even while an answer is
    pending. Private, so that terminating the user's context never waits for these;
    without I/O threads, which inproc does not use.
    """
    context: Context[Any] = Context(io_threads=0)
    ours = context.socket(zmq.REQ)
    theirs = context.socket(zmq.REP)
    ours.linger = theirs.linger = 0
    ours.req_relaxed = ours.req_correlate = 1
    ours.bind("inproc://zmq_green.proxy")
    theirs.connect("inproc://zmq_green.proxy")
    return context, ours, theirs


def _relay(control: Socket[Any], ours: Socket[Any]) -> BaseException | None:
    """Pass the user's control commands to the proxy, and its answers back.

    Each frame is one command, as libzmq reads them, and gets the proxy's answer:
    the counters for ``STATISTICS``, an empty message otherwise (libzmq 4.3.5
    answers every command). Returns (not raises: a failed greenlet would be
    reported by the hub) the error that ended it, after telling the proxy to
    terminate.
    """
    try:
        while True:
            for command in control.recv_multipart():
                ours.send(command)
                control.send_multipart(ours.recv_multipart())
                if command == TERMINATE:
                    return None
    except Exception as e:
        ours.send(TERMINATE)
        return e


def _finish(thread: NativeThread) -> None:
    """Wait for *thread* to end, whatever interrupts the wait: its sockets are in use until then."""
    while True:
        try:
            thread.join()
            return
        except BaseException:  # a second kill; the first one is re-raised by our caller
            if not thread.is_alive():
                return


def proxy_steerable(
    frontend: zmq.Socket[Any],
    backend: zmq.Socket[Any],
    capture: zmq.Socket[Any] | None = None,
    control: zmq.Socket[Any] | None = None,
) -> int:
    """Start a zeromq proxy with control flow, blocking only the calling greenlet.

    libzmq's own proxy runs in a native thread (GIL released), so messages move at
    libzmq's speed; see :func:`zmq.proxy_steerable`. Killing the calling greenlet,
    or a :class:`gevent.Timeout` around the call, terminates the proxy within
    milliseconds and leaves its sockets closable and their context terminable.
    (libzmq's proxy reads commands between bursts of messages: while it is blocked
    sending to a peer at its high-water mark, it stops only when the peer reads or
    the context is terminated; the killed greenlet waits for that.)

    Parameters
    ----------
    frontend : Socket
        The Socket instance for the incoming traffic.
    backend : Socket
        The Socket instance for the outbound traffic. May be *frontend* itself.
    capture : Socket, optional
        The Socket instance for capturing traffic: it gets a copy of every message.
    control : Socket, optional
        The Socket instance for control flow, as in libzmq: ``PAUSE``, ``RESUME``,
        ``TERMINATE`` (the call returns 0), and ``STATISTICS``, answered with eight
        frames of 64-bit counters (frames and bytes received and sent on the
        frontend, then on the backend). Other commands are answered with an empty
        message, as libzmq 4.3.5 does; unknown ones are otherwise ignored.

    Returns
    -------
    rc : int
        0, once the proxy was told to terminate.

    Raises
    ------
    ContextTerminated
        When the context of the sockets is terminated, as in pyzmq.
    """
    for name, sock in (
        ("frontend", frontend),
        ("backend", backend),
        ("capture", capture),
        ("control", control),
    ):
        if sock is not None and not isinstance(sock, _ZmqSocket):
            # What pyzmq's typed backend raises, before any thread is started.
            raise TypeError(
                f"Argument '{name}' has incorrect type (expected zmq.Socket, got {type(sock).__name__})"
            )
    hub = get_hub_if_exists()
    if hub is None or getcurrent() is hub:
        # No greenlet to give the time to: block the thread, as pyzmq does.
        return _c_proxy_steerable(frontend, backend, capture, control)
    context, ours, theirs = _control_pair()
    try:
        thread = NativeThread(_c_proxy_steerable, (frontend, backend, capture, theirs))
        thread.start()
        relay = None if control is None else gevent.spawn(_relay, green_socket(control), ours)
        try:
            thread.join()
        except BaseException:
            if relay is not None:
                relay.kill()
            ours.send(TERMINATE)
            _finish(thread)
            raise
        if relay is not None:
            relay.kill()  # waiting in recv, or already done
        if thread.exception is not None:
            raise thread.exception
        if relay is not None and isinstance(relay.value, BaseException):
            raise relay.value
        return thread.result  # type: ignore[no-any-return]
    finally:
        ours.close()
        theirs.close()
        context.term()


def proxy(frontend: zmq.Socket[Any], backend: zmq.Socket[Any], capture: zmq.Socket[Any] | None = None) -> int:
    """Start a zeromq proxy, blocking only the calling greenlet.

    See :func:`zmq.proxy` and :func:`proxy_steerable` (which this is, without a
    control socket): it runs until the context is terminated (raising
    :class:`zmq.ContextTerminated`) or the calling greenlet is killed.

    Parameters
    ----------
    frontend : Socket
        The Socket instance for the incoming traffic.
    backend : Socket
        The Socket instance for the outbound traffic.
    capture : Socket, optional
        The Socket instance for capturing traffic.
    """
    return proxy_steerable(frontend, backend, capture)


def device(device_type: int, frontend: zmq.Socket[Any], backend: zmq.Socket[Any]) -> int:
    """Start a zeromq device, blocking only the calling greenlet.

    Deprecated alias for :func:`proxy`, as :func:`zmq.device` is.

    Parameters
    ----------
    device_type : int
        ``QUEUE``, ``FORWARDER`` or ``STREAMER`` (ignored: the sockets decide).
    frontend : Socket
        The Socket instance for the incoming traffic.
    backend : Socket
        The Socket instance for the outbound traffic. May be *frontend* itself.
    """
    return proxy(frontend, backend)
