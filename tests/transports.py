"""The transports that tests of waiting run over, and sockets connected on each.

Over inproc a peer's signal is posted by the calling thread, before the hub next
polls. Over ipc and tcp it comes from libzmq's I/O thread, at a moment of its
choosing: the races that the waiting protocol exists for happen only there. So a
test of waiting takes ``transport`` from :data:`TRANSPORTS`, and sockets from
:func:`bound` and :func:`connected`.
"""

from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
from typing import Any

import zmq

TRANSPORTS = ("inproc", "ipc", "tcp")

#: Seconds to wait for what takes microseconds: only a guard against hanging.
HANG_GUARD = 5.0

_numbers = itertools.count()
_ipc_dirs: list[str] = []


def endpoint(transport: str) -> str:
    """A fresh address to bind on *transport* (over tcp, the port is picked at bind)."""
    number = next(_numbers)
    if transport == "inproc":
        return f"inproc://transports-{number}"
    if transport == "ipc":
        if not _ipc_dirs:
            # Short (ipc paths are limited to about 100 bytes), and removed at exit.
            _ipc_dirs.append(tempfile.mkdtemp(prefix="zg-"))
            atexit.register(shutil.rmtree, _ipc_dirs[0], ignore_errors=True)
        return f"ipc://{_ipc_dirs[0]}/{number}"
    if transport == "tcp":
        return "tcp://127.0.0.1:*"
    raise ValueError(f"unknown transport {transport!r}")


def bound(ctx: Any, sock_type: int, transport: str, **options: Any) -> tuple[Any, str]:
    """A socket of *ctx* with linger 0 and *options*, bound on *transport*; and its address."""
    sock = ctx.socket(sock_type)
    sock.linger = 0
    for name, value in options.items():
        setattr(sock, name, value)
    sock.bind(endpoint(transport))
    return sock, sock.last_endpoint.decode()


def connecting(ctx: Any, sock_type: int, address: str, **options: Any) -> Any:
    """A socket of *ctx* with linger 0 and *options*, connecting to *address*."""
    sock = ctx.socket(sock_type)
    sock.linger = 0
    for name, value in options.items():
        setattr(sock, name, value)
    sock.connect(address)
    return sock


# The socket types that can send the first message to their peer.
_OPENERS = {zmq.PUSH, zmq.DEALER, zmq.REQ, zmq.PAIR}


def connected(ctx: Any, a_type: int, b_type: int, transport: str, **options: Any) -> tuple[Any, Any]:
    """``a`` bound on *transport* and ``b`` connected to it, both with *options* (HWMs...).

    Returns once a first message has gone from one to the other: over ipc and tcp the
    connection is made by libzmq's I/O thread some time after ``connect()``, and that
    message is the signal that it is. It has been received, and over inproc what its
    reading told the sender (room in the pipe) has been processed: nothing is pending.
    """
    a, address = bound(ctx, a_type, transport, **options)
    b = connecting(ctx, b_type, address, **options)
    sender, receiver = (b, a) if b_type in _OPENERS else (a, b)
    sender.send(b"connected?")
    assert receiver.poll(HANG_GUARD * 1000), f"no connection over {transport}"
    message = receiver.recv_multipart()
    assert message[-1] == b"connected?"
    if sender.type == zmq.REQ:
        receiver.send_multipart(message)
        assert sender.recv() == b"connected?"
    sender.getsockopt(zmq.EVENTS)
    return a, b


def fill_until_full(sock: Any) -> int:
    """Send with ``DONTWAIT`` until *sock* sees no room; return how many messages went.

    ``EAGAIN`` alone is not enough: commands that make room (the peer read) may still
    be pending, and reading ``EVENTS`` runs them. Over inproc nothing changes the
    pipe's fill level afterwards but this thread. Not for sockets whose ``EVENTS``
    lies about ``POLLOUT`` (XPUB with ``XPUB_NODROP``...): it would never stop.
    """
    sent = 0
    while True:
        try:
            sock.send(b"fill", zmq.DONTWAIT)
        except zmq.Again:
            if not sock.getsockopt(zmq.EVENTS) & zmq.POLLOUT:
                return sent
        else:
            sent += 1


def polls_blocked_on(sock: Any) -> int:
    """How many green polls are blocked waiting on *sock*'s libzmq socket."""
    return sum(len(interest.blocked) for interest in sock._waits.interests)


def req_awaiting_its_reply(ctx: Any) -> tuple[Any, Any, bytes]:
    """A REQ that has sent its question over inproc, the ROUTER that took it, and the
    REQ's routing id there: (router, req, peer)."""
    router = ctx.socket(zmq.ROUTER)
    req = ctx.socket(zmq.REQ)
    router.linger = req.linger = 0
    router.bind(f"inproc://req-{id(router)}")
    req.connect(router.last_endpoint)
    req.send(b"question")
    peer, _, _ = router.recv_multipart()
    return router, req, peer
