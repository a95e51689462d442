"""What the reliability tests share: the soak setting and resource accounting."""

from __future__ import annotations

import os
from collections.abc import Iterator

import gevent
import pytest

import zmq_green

#: 0 for the default bounded run; otherwise seconds per chaos scenario.
SOAK_SECONDS = float(os.environ.get("ZMQ_GREEN_SOAK_SECONDS") or 0)
FD_RELEASE_SECONDS = 5.0


def open_fds() -> int:
    """File descriptors open in this process."""
    return len(os.listdir("/proc/self/fd"))


def watchers_counted() -> bool:
    """Whether the loop counts its active watchers (libev does; gevent's libuv loop says 0)."""
    return "libev" in type(gevent.get_hub().loop).__module__


def active_watchers() -> int:
    """Active (referenced) watchers of this thread's hub loop (libev's ``activecnt``)."""
    return int(gevent.get_hub().loop.activecnt)


def warm_up() -> None:
    """Open what zmq_green opens once per process and keeps: the hub's threadpool
    (where contexts terminate) and the private context of proxies' control sockets."""
    ctx = zmq_green.Context()
    front, back = ctx.socket(zmq_green.PULL), ctx.socket(zmq_green.PUSH)
    with gevent.Timeout(0.01, False):
        zmq_green.proxy(front, back)
    front.close()
    back.close()
    ctx.term()


@pytest.fixture
def resources() -> Iterator[None]:
    """Fail the test unless fds, hub watchers and rescues are back to where they started.

    The test must terminate its contexts before it returns.
    """
    warm_up()
    fds, watchers, rescues = open_fds(), active_watchers(), zmq_green.stats()["rescues"]
    yield
    # libzmq's reaper thread frees the fds of a closed socket a moment later (proxies'
    # control sockets live in a context that is never terminated): give it time.
    with gevent.Timeout(FD_RELEASE_SECONDS, False):
        while open_fds() != fds:
            gevent.sleep(0.01)
    assert open_fds() == fds, f"file descriptors leaked: {open_fds()} open, {fds} before"
    assert active_watchers() == watchers, f"hub watchers left active: {active_watchers()}, {watchers} before"
    assert zmq_green.stats()["rescues"] == rescues, "a wake-up was missed (safety timeout rescued it)"
