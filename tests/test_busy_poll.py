"""Busy-polling: a waiting head keeps the hub polling, without sleeping, for ``busy_poll`` seconds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import pytest
import zmq
from conftest import pair, run_script, until
from gevent import get_hub
from transports import HANG_GUARD

import zmq_green
from zmq_green._waiting import _busy_polls

pytestmark = pytest.mark.timeout(20)

WINDOW = 0.05  # seconds the test watches the loop for
SPINS = 1000  # loop turns with nothing to wake the loop: only a spinning loop makes them


class LoopTurns:
    """Counts the hub's loop turns (polls for I/O), with a check watcher."""

    def __init__(self) -> None:
        self.turns = 0
        self._target = 0
        self._reached = gevent.event.Event()
        self._watcher = get_hub().loop.check(ref=False)
        self._watcher.start(self._count)

    def _count(self) -> None:
        self.turns += 1
        if self.turns == self._target:
            self._reached.set()

    def during(self, seconds: float) -> int:
        """Turns while this greenlet sleeps for *seconds*: one or two if the loop sleeps too."""
        before = self.turns
        gevent.sleep(seconds)
        return self.turns - before

    def spin(self, turns: int = SPINS) -> bool:
        """Whether the loop turns *turns* times before the hang guard, this greenlet asleep.

        A sleeping loop turns once per event, and nothing is due here but the hang guard
        (and the waits' safety timeouts, switched off): only a loop that polls without
        sleeping makes them.
        """
        self._reached.clear()
        self._target = self.turns + turns
        return self._reached.wait(HANG_GUARD)

    def close(self) -> None:
        self._watcher.close()


@pytest.fixture
def loop() -> Iterator[LoopTurns]:
    counter = LoopTurns()
    yield counter
    counter.close()


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
    ctx: zmq_green.Context, loop: LoopTurns
) -> None:
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    pull.busy_poll = 10 * WINDOW
    pull.safety_timeout = None  # each of its wake-ups would start polling again
    before = zmq_green.stats()["waits"]
    receiver = gevent.spawn(pull.recv)
    until(lambda: zmq_green.stats()["waits"] > before)  # the receiver waits
    assert busy_polling()
    assert loop.spin()
    until(lambda: not busy_polling())
    assert loop.during(WINDOW) < 20  # polling, it would turn thousands of times
    push.send(b"after")
    assert receiver.get(timeout=HANG_GUARD) == b"after"


@pytest.mark.parametrize("waiter", ["socket", "poller"])
def test_busy_poll_of_zero_lets_the_hub_sleep_at_once(
    ctx: zmq_green.Context, loop: LoopTurns, waiter: str
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
    before = zmq_green.stats()["waits"]
    blocked = gevent.spawn(wait)
    until(lambda: zmq_green.stats()["waits"] > before)
    assert not busy_polling()
    assert loop.during(WINDOW) < 20  # polling, it would turn thousands of times
    push.send(b"x")
    assert blocked.get(timeout=HANG_GUARD)


def test_a_waiting_poller_keeps_the_hub_polling(ctx: zmq_green.Context, loop: LoopTurns) -> None:
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    poller = zmq_green.Poller()
    poller.busy_poll = 10 * WINDOW
    poller.safety_timeout = None
    poller.register(pull, zmq.POLLIN)
    before = zmq_green.stats()["waits"]
    polling = gevent.spawn(poller.poll)
    until(lambda: zmq_green.stats()["waits"] > before)
    assert busy_polling()
    assert loop.spin()
    push.send(b"x")
    assert polling.get(timeout=HANG_GUARD) == [(pull, zmq.POLLIN)]


def test_round_trips_between_greenlets_over_tcp_are_the_same_with_and_without_busy_poll(
    ctx: zmq_green.Context,
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
