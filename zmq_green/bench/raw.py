"""pyzmq itself in one thread: every call with DONTWAIT, no greenlets, no event loop.

One loop sends until the socket says ``Again``, then receives until it says
``Again``, and so on, through pyzmq's public ``Socket.send``/``recv`` with
plain-int flags: pyzmq as a program calls it, minus all waiting. When a whole
pass moved nothing, it blocks in libzmq's own ``zmq_poll`` on the two sockets
rather than spinning: a spinning loop steals the CPU that libzmq's I/O thread
needs and measured three times slower over tcp. This is the reference for
zmq_green's fast path ("as fast as pyzmq itself"). It only exists for cases
where one thread can drive both ends.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any, Callable

import zmq
from zmq.backend import zmq_poll

from .cases import (
    DONTWAIT,
    LARGE,
    LARGE_HWM,
    MSG,
    POLLIN,
    POLLOUT,
    PULL,
    PUSH,
    REP,
    REQ,
    SHARED_HWM,
    SHARED_SENDERS,
    Figures,
    figures,
    pair,
    shared_sizes,
    warmup,
)

__all__ = ["RAW_BODIES"]


def _loop(
    n: int, warm: int, transport: str, msg: bytes = MSG, copy: bool = True, hwm: int | None = None
) -> float:
    """Move *warm* messages PUSH->PULL in one thread, then *n* more: seconds the *n* took."""
    pull, push = pair(zmq.Context(), PULL, PUSH, transport, hwm)
    send: Any = push.send
    recv: Any = pull.recv
    again = zmq.Again

    def move(count: int) -> None:
        sent = received = 0
        while received < count:
            before = sent + received
            while sent < count:
                try:
                    send(msg, DONTWAIT, copy)
                except again:
                    break
                sent += 1
            while received < sent:
                try:
                    recv(DONTWAIT, copy)
                except again:
                    break
                received += 1
            if sent + received == before:
                zmq_poll([(pull, POLLIN), (push, POLLOUT if sent < count else 0)], -1)

    move(warm)
    t0 = perf_counter()
    move(n)
    return perf_counter() - t0


def stream(n: int, transport: str) -> Figures:
    """PUSH->PULL, 64-byte messages: msg/s."""
    return figures(n / _loop(n, warmup(n), transport))


def stream_large(n: int) -> Figures:
    """PUSH->PULL over tcp, 1 MiB messages without copies: MB/s."""
    elapsed = _loop(n, warmup(n), "tcp", b"x" * LARGE, copy=False, hwm=LARGE_HWM)
    return figures(n * LARGE / elapsed / 1e6)


def shared(n: int) -> Figures:
    """The messages of ``shared`` sent by one loop through the same kind of socket: msg/s."""
    per, warm = shared_sizes(n)
    total = per * SHARED_SENDERS
    return figures((total - warm) / _loop(total - warm, warm, "inproc", hwm=SHARED_HWM))


def reqrep(n: int) -> Figures:
    """REQ/REP over tcp, both ends driven by one thread: round trips/s.

    The client sends; the thread blocks in ``zmq_poll`` until the server has the
    request, echoes it, and blocks again until the client has the reply. No Python
    is run while a message travels: the round-trip rate of one thread that sleeps
    while it waits, as pyzmq's blocking calls do. (zmq_green's busy-polling keeps
    its hub awake instead, and goes faster; see ``zmq_green._waiting``.)
    """
    rep, req = pair(zmq.Context(), REP, REQ, "tcp")

    def trips(count: int) -> None:
        for _ in range(count):
            req.send(MSG, DONTWAIT)
            zmq_poll([(rep, POLLIN)], -1)
            rep.send(rep.recv(DONTWAIT), DONTWAIT)
            zmq_poll([(req, POLLIN)], -1)
            req.recv(DONTWAIT)

    trips(warmup(n))
    t0 = perf_counter()
    trips(n)
    return figures(n / (perf_counter() - t0))


RAW_BODIES: dict[str, Callable[[int], Figures]] = {
    "reqrep-tcp": reqrep,
    "stream-inproc": lambda n: stream(n, "inproc"),
    "stream-tcp": lambda n: stream(n, "tcp"),
    "stream-large": stream_large,
    "shared": shared,
}
