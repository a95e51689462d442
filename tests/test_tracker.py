"""Green MessageTracker: wait() blocks only the calling greenlet, with pyzmq's semantics."""

from __future__ import annotations

import socket
import time
from typing import Any

import gevent
import pytest
import zmq
from conftest import Ticker, run_script, until

import zmq_green
from zmq_green.tracker import MessageTracker, green_tracker

BIG = b"x" * 200_000  # above pyzmq's copy threshold: sent zero-copy, so tracked


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pending_send(ctx: Any, port: int) -> tuple[Any, Any]:
    """A tracked zero-copy send to a port nobody listens on yet: (socket, tracker)."""
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    push.connect(f"tcp://127.0.0.1:{port}")  # the message waits in the pipe
    return push, push.send(BIG, copy=False, track=True)


def deliver(ctx: Any, port: int) -> bytes:
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    pull.bind(f"tcp://127.0.0.1:{port}")
    return bytes(pull.recv())


@pytest.mark.timeout(10)
def test_tracked_send_returns_a_green_tracker(ctx: zmq_green.Context) -> None:
    _push, tracker = pending_send(ctx, free_port())
    assert isinstance(tracker, MessageTracker) and isinstance(tracker, zmq.MessageTracker)
    assert zmq_green.MessageTracker is MessageTracker
    assert not tracker.done


@pytest.mark.timeout(10)
def test_wait_blocks_only_the_calling_greenlet_until_zmq_is_done(ctx: zmq_green.Context) -> None:
    port = free_port()
    _push, tracker = pending_send(ctx, port)
    waiting = gevent.spawn(tracker.wait)
    ticker = Ticker()
    until(lambda: ticker.ticks >= 5)
    assert not waiting.ready()
    assert deliver(ctx, port) == BIG
    assert waiting.get(timeout=5) is None
    assert tracker.done
    ticker.stop()


@pytest.mark.timeout(10)
def test_wait_timeout_raises_notdone_as_in_pyzmq(mod: Any, mod_ctx: Any) -> None:
    _push, tracker = pending_send(mod_ctx, free_port())
    start = time.monotonic()
    with pytest.raises(zmq.NotDone):
        tracker.wait(0.1)
    assert time.monotonic() - start >= 0.09
    with pytest.raises(zmq.NotDone):
        tracker.wait(0)
    assert not tracker.done


@pytest.mark.timeout(10)
def test_a_tracker_of_trackers_waits_for_every_one(ctx: zmq_green.Context) -> None:
    first_port, second_port = free_port(), free_port()
    first_push, first = pending_send(ctx, first_port)
    second_push, second = pending_send(ctx, second_port)
    both = MessageTracker(first, zmq.MessageTracker(second))
    waiting = gevent.spawn(both.wait, 5)
    deliver(ctx, first_port)
    until(lambda: first.done)
    gevent.sleep(0.05)  # a wrong wait() would return here; a right one keeps waiting
    assert not waiting.ready()
    deliver(ctx, second_port)
    assert waiting.get(timeout=5) is None
    assert both.done
    first_push.close()
    second_push.close()


@pytest.mark.timeout(10)
def test_killed_waiter_leaves_nothing_attached_to_the_event(ctx: zmq_green.Context) -> None:
    port = free_port()
    _push, tracker = pending_send(ctx, port)
    (event,) = {e for peer in tracker.peers for e in peer.events}
    waiting = gevent.spawn(tracker.wait)
    until(lambda: bool(event._cond._waiters))
    waiting.kill()
    assert not event._cond._waiters
    deliver(ctx, port)
    until(lambda: tracker.done)


def test_green_tracker_keeps_a_green_one_and_wraps_pyzmqs() -> None:
    done = zmq.MessageTracker()
    wrapped = green_tracker(done)
    assert isinstance(wrapped, MessageTracker) and wrapped.done
    assert green_tracker(wrapped) is wrapped
    wrapped.wait(0)  # done: returns at once


@pytest.mark.timeout(60)
def test_wait_after_patch_all_blocks_only_the_calling_greenlet() -> None:
    script = """
        from gevent import monkey
        monkey.patch_all()
        import gevent, socket, zmq, zmq_green

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ctx = zmq_green.Context()
        push = ctx.socket(zmq.PUSH)
        push.linger = 0
        push.connect(f"tcp://127.0.0.1:{port}")
        tracker = push.send(b"x" * 200_000, copy=False, track=True)
        waiting = gevent.spawn(tracker.wait, 10)
        ticks = 0
        def ticker():
            global ticks
            while True:
                gevent.sleep(0.005)
                ticks += 1
        gevent.spawn(ticker)
        gevent.sleep(0.1)
        assert not waiting.ready() and ticks >= 5, ticks
        pull = ctx.socket(zmq.PULL)
        pull.linger = 0
        pull.bind(f"tcp://127.0.0.1:{port}")
        assert len(pull.recv()) == 200_000
        waiting.get(timeout=10)
        assert tracker.done
        print("OK")
        """
    assert run_script(script).stdout.strip() == "OK"
