"""Busy-polling: a waiting head keeps the hub polling, without sleeping, for ``busy_poll`` seconds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import zmq
from conftest import pair, run_script, until
from gevent import get_hub

import zmq_green
from zmq_green._waiting import _busy_polls

pytestmark = pytest.mark.timeout(20)

WINDOW = 0.05  # seconds the test watches the loop for


@pytest.fixture
def loop_turns() -> Iterator[list[int]]:
    """How many times the hub's loop has polled for I/O (one check watcher counts them)."""
    turns = [0]

    def count() -> None:
        turns[0] += 1

    watcher = get_hub().loop.check(ref=False)
    watcher.start(count)
    yield turns
    watcher.close()


def turns_during(turns: list[int], seconds: float) -> int:
    """Loop turns while this greenlet sleeps for *seconds* (the window being watched)."""
    before = turns[0]
    gevent.sleep(seconds)
    return turns[0] - before


def busy_polling() -> bool:
    busy = _busy_polls.get(get_hub())
    return busy is not None and bool(busy.watcher.active)


def test_busy_poll_defaults_to_50_microseconds_on_sockets_and_pollers_given_two_cpus(
    ctx: zmq_green.Context,
) -> None:
    default = 50e-6 if len(os.sched_getaffinity(0)) > 1 else 0.0  # spinning on one CPU only delays
    assert zmq_green.Socket.busy_poll == zmq_green.Poller.busy_poll == default
    with ctx.socket(zmq.PULL) as sock:
        assert sock.busy_poll == default


@pytest.mark.timeout(30)
def test_busy_poll_is_off_by_default_in_a_process_pinned_to_one_cpu() -> None:
    script = "import zmq_green; print(zmq_green.Socket.busy_poll, zmq_green.Poller.busy_poll)"
    pin = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})"
    one_cpu = run_script(f"{pin}; {script}", timeout=25)
    assert one_cpu.stdout.split() == ["0.0", "0.0"]


def test_a_waiting_socket_keeps_the_hub_polling_then_lets_it_sleep(
    ctx: zmq_green.Context, no_rescues: None, loop_turns: list[int]
) -> None:
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    pull.busy_poll = 10 * WINDOW
    receiver = gevent.spawn(pull.recv)
    gevent.sleep(0)  # the receiver starts and waits
    assert busy_polling()
    # Sleeping, the loop would turn a handful of times in the window; polling, thousands.
    assert turns_during(loop_turns, WINDOW) > 100
    until(lambda: not busy_polling())
    assert turns_during(loop_turns, WINDOW) < 20
    push.send(b"after")
    assert receiver.get(timeout=5) == b"after"


@pytest.mark.parametrize("waiter", ["socket", "poller"])
def test_busy_poll_of_zero_lets_the_hub_sleep_at_once(
    ctx: zmq_green.Context, no_rescues: None, loop_turns: list[int], waiter: str
) -> None:
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    until(lambda: not busy_polling())
    wait: Any
    if waiter == "socket":
        pull.busy_poll = 0
        wait = pull.recv
    else:
        poller = zmq_green.Poller()
        poller.busy_poll = 0
        poller.register(pull, zmq.POLLIN)
        wait = poller.poll
    blocked = gevent.spawn(wait)
    gevent.sleep(0)
    assert not busy_polling()
    assert turns_during(loop_turns, WINDOW) < 20
    push.send(b"x")
    assert blocked.get(timeout=5)


def test_a_waiting_poller_keeps_the_hub_polling(
    ctx: zmq_green.Context, no_rescues: None, loop_turns: list[int]
) -> None:
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    poller = zmq_green.Poller()
    poller.busy_poll = 10 * WINDOW
    poller.register(pull, zmq.POLLIN)
    polling = gevent.spawn(poller.poll)
    gevent.sleep(0)
    assert busy_polling()
    assert turns_during(loop_turns, WINDOW) > 100
    push.send(b"x")
    assert polling.get(timeout=5) == [(pull, zmq.POLLIN)]


def test_round_trips_between_greenlets_over_tcp_are_the_same_with_and_without_busy_poll(
    ctx: zmq_green.Context, no_rescues: None
) -> None:
    """Busy-polling changes when the hub sees an fd, never what the calls return."""
    rep, req = pair(ctx, zmq.REP, zmq.REQ, "tcp")

    def echo(count: int) -> None:
        for _ in range(count):
            rep.send(rep.recv())

    for busy_poll in (0.0, 50e-6, 0.01):
        rep.busy_poll = req.busy_poll = busy_poll
        server = gevent.spawn(echo, 200)
        for i in range(200):
            req.send(b"%d" % i)
            assert req.recv() == b"%d" % i
        server.get(timeout=5)
