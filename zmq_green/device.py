"""Green devices: libzmq's own proxy in gevent's threadpool, the caller waiting greenly."""

from __future__ import annotations

from typing import Any

import zmq

from .context import run_off_thread

__all__ = ["device", "proxy", "proxy_steerable"]


def proxy(frontend: zmq.Socket, backend: zmq.Socket, capture: zmq.Socket | None = None) -> None:
    """Start a zeromq proxy, blocking only the calling greenlet; see :func:`zmq.proxy`."""
    run_off_thread(zmq.proxy, frontend, backend, capture)


def proxy_steerable(
    frontend: zmq.Socket,
    backend: zmq.Socket,
    capture: zmq.Socket | None = None,
    control: zmq.Socket | None = None,
) -> None:
    """Start a steerable proxy, blocking only the calling greenlet; see :func:`zmq.proxy_steerable`."""
    run_off_thread(zmq.proxy_steerable, frontend, backend, capture, control)


def device(device_type: int, frontend: zmq.Socket, backend: zmq.Socket) -> Any:
    """Start a zeromq device, blocking only the calling greenlet; see :func:`zmq.device`."""
    return run_off_thread(zmq.device, device_type, frontend, backend)
