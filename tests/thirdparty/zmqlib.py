"""A stand-in for a third-party library: plain ``import zmq``, blocking calls, no gevent.

Tests put this folder on ``PYTHONPATH`` of a child interpreter and check that,
once ``zmq_green.monkey.patch()`` ran, its blocking calls block only their greenlet.
"""

from __future__ import annotations

import zmq


def make_puller() -> tuple[zmq.Socket, str]:
    """A PULL socket of the global context on a random loopback port, and its endpoint."""
    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.linger = 0
    sock.bind("tcp://127.0.0.1:*")
    return sock, sock.last_endpoint.decode()


def receive(sock: zmq.Socket, timeout_ms: int = -1) -> bytes:
    """Block in ``recv`` (``zmq.Again`` after *timeout_ms*)."""
    sock.rcvtimeo = timeout_ms
    return sock.recv()


def poll_then_receive(sock: zmq.Socket, timeout_ms: int = -1) -> bytes:
    """Block in ``zmq.Poller.poll``, then receive."""
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    if not poller.poll(None if timeout_ms < 0 else timeout_ms):
        raise zmq.Again()
    return sock.recv(zmq.NOBLOCK)


def select_then_receive(sock: zmq.Socket, timeout_ms: int = -1) -> bytes:
    """Block in ``zmq.select``, then receive."""
    readable, _, _ = zmq.select([sock], [], [], None if timeout_ms < 0 else timeout_ms / 1000)
    if not readable:
        raise zmq.Again()
    return sock.recv(zmq.NOBLOCK)
