"""The resource accounting of the stress tests catches what it claims to, on this loop.

Each leak is made on purpose inside :func:`soak.accounted`, which must then fail.
A proxy, killed or ended by its context's termination, must have given everything
back by the time it returns (its control sockets' private context once outlived
it, and libzmq's reaper freed their fds a moment later, after the count was taken).
``test_chaos_on_libuv`` runs this file on libuv too.
"""

from __future__ import annotations

from typing import Callable

import gevent
import pytest
from conftest import outcome
from gevent.event import Event

import zmq_green as zmq

from .soak import accounted, running_greenlets, watchers_counted

pytestmark = pytest.mark.stress


def leaks(make: Callable[[], Callable[[], object]], match: str) -> None:
    """Check that :func:`accounted` fails with *match* around ``make()``; then call
    what *make* returned, which undoes the leak."""
    undo: list[Callable[[], object]] = []
    with pytest.raises(AssertionError, match=match), accounted(lambda key, value: None):
        undo.append(make())
    undo[0]()


@pytest.mark.timeout(10)
def test_a_socket_left_open_leaks_fds() -> None:
    def make() -> Callable[[], object]:
        ctx = zmq.Context()
        ctx.socket(zmq.PULL).bind("tcp://127.0.0.1:*")
        return lambda: ctx.destroy(linger=0)

    leaks(make, "file descriptors leaked")


@pytest.mark.timeout(10)
def test_a_started_timer_is_a_watcher_left_active() -> None:
    assert watchers_counted()

    def make() -> Callable[[], object]:
        timer = gevent.get_hub().loop.timer(60)
        timer.start(lambda: None)
        return timer.close

    leaks(make, "hub watchers left active")


@pytest.mark.timeout(10)
def test_a_greenlet_left_waiting_is_still_running() -> None:
    def make() -> Callable[[], object]:
        event = Event()
        waiting = gevent.spawn(event.wait)  # waits on no watcher of the hub
        gevent.idle()
        return lambda: (event.set(), waiting.join())

    before = running_greenlets()
    leaks(make, "greenlets still running")
    assert running_greenlets() == before


@pytest.mark.timeout(10)
@pytest.mark.parametrize("ending", ["killed", "context terminated"])
def test_a_proxy_gives_everything_back_when_it_returns(ending: str) -> None:
    rescues: dict[str, int] = {}
    with accounted(rescues.__setitem__):
        ctx = zmq.Context()
        sockets = front, back, push, pull = [ctx.socket(t) for t in (zmq.PULL, zmq.PUSH, zmq.PUSH, zmq.PULL)]
        for s in sockets:
            s.linger = 0
        for bound, peer in ((front, push), (back, pull)):
            bound.bind("tcp://127.0.0.1:*")
            peer.connect(bound.last_endpoint)
        proxy = gevent.spawn(outcome, zmq.proxy, front, back)
        push.send(b"through")
        assert pull.recv() == b"through"  # the proxy's thread runs
        if ending == "killed":
            proxy.kill()
            ctx.destroy(linger=0)
        else:
            terminating = gevent.spawn(ctx.term)
            assert isinstance(proxy.get(), zmq.ContextTerminated)
            for s in sockets:
                s.close()
            terminating.get()
    assert rescues == {"rescues": 0}
