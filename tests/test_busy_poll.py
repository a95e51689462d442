"""Busy-polling: a waiting head keeps the hub polling, without sleeping, for ``busy_poll`` seconds."""

from __future__ import annotations

import os
import threading
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
from zmq_green import _spin
from zmq_green._spin import _spinners

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


@pytest.fixture(autouse=True)
def no_spin_left_over() -> Iterator[None]:
    """End the spin a test started (some are seconds long) before the next test."""
    yield
    spinner = _spinners.get(get_hub())
    if spinner is not None:
        spinner.until = 0.0
        until(lambda: not spinner.watcher.active)


def busy_polling() -> bool:
    busy = _spinners.get(get_hub())
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


# -- when the default spins (zmq_green._spin) ----------------------------------------
#
# The policy is driven here with the durations of waits, as block() reports them:
# the decisions are tested, never their timing.

ADAPTIVE = _spin.Adaptive(50e-6)
SHORT, LONG = 10e-6, 1e-3  # a wait that ended inside the window, and one that outlasted it


@pytest.fixture
def spinner() -> Iterator[_spin.Spinner]:
    """A spinner with no history, on this thread's hub."""
    fresh = _spin.Spinner(get_hub())
    yield fresh
    fresh.watcher.close()


def spins(spinner: _spin.Spinner, waited: float | None = None) -> bool:
    """Whether the next wait spins; if it does, it ends after *waited*."""
    spun = spinner.begin(ADAPTIVE)
    if spun and waited is not None:
        spinner.learn(waited, ADAPTIVE)
    return spun


def stop_spinning(spinner: _spin.Spinner) -> None:
    while spinner.score >= _spin.THRESHOLD:
        assert spins(spinner, LONG)


def test_the_default_busy_poll_adapts_and_a_set_one_does_not(ctx: zmq_green.Context) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: the default is 0")
    assert type(zmq_green.Socket.busy_poll) is type(zmq_green.Poller.busy_poll) is _spin.Adaptive
    with ctx.socket(zmq.PULL) as sock:
        sock.busy_poll = 50e-6
        assert type(sock.busy_poll) is float


def test_a_new_hub_spins_and_keeps_spinning_while_waits_end_inside_the_window(
    spinner: _spin.Spinner,
) -> None:
    assert all(spins(spinner, SHORT) for _ in range(100))
    assert spinner.score == _spin.CEILING


def test_a_hub_stops_spinning_after_waits_that_outlast_the_window(spinner: _spin.Spinner) -> None:
    outlasted = 0
    while spins(spinner, LONG):
        outlasted += 1
    # From the ceiling, each miss costs one: the hub spins down to the threshold.
    assert outlasted == _spin.CEILING - _spin.THRESHOLD + 1
    assert not spins(spinner)


def test_one_miss_in_two_keeps_a_hub_spinning_and_two_in_three_stop_it(spinner: _spin.Spinner) -> None:
    assert all(spins(spinner, LONG if i % 2 == 0 else SHORT) for i in range(300))
    assert not all(spins(spinner, SHORT if i % 3 == 0 else LONG) for i in range(300))


def waits_to_a_probe(spinner: _spin.Spinner, waited: float) -> int:
    """The waits up to and with the next one that spins (the probe ends after *waited*)."""
    waits = 1
    while not spins(spinner, waited):
        waits += 1
    return waits


def test_a_stopped_hub_probes_and_backs_off_while_probes_miss(spinner: _spin.Spinner) -> None:
    stop_spinning(spinner)
    gaps = [waits_to_a_probe(spinner, LONG) for _ in range(6)]
    assert gaps == [8, 16, 32, 64, 64, 64] == [min(_spin.MIN_GAP << i, _spin.MAX_GAP) for i in range(6)]
    assert spinner.score == 0  # and no lower: a few hits bring it back


def test_probes_that_pay_bring_the_spinning_back(spinner: _spin.Spinner) -> None:
    stop_spinning(spinner)
    waits_to_a_probe(spinner, LONG)  # the gap widens...
    gaps = []
    while spinner.score < _spin.THRESHOLD:
        gaps.append(waits_to_a_probe(spinner, SHORT))
    # ... and the first probe that pays brings it back to its least.
    assert gaps[0] == 2 * _spin.MIN_GAP and set(gaps[1:]) == {_spin.MIN_GAP}
    assert all(spins(spinner, SHORT) for _ in range(100))  # every wait spins again


def test_a_preempted_spin_stops_the_spinning_at_once(
    spinner: _spin.Spinner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_spin, "_thread_time", lambda: 0.0)  # the thread got no CPU
    assert spins(spinner)
    spinner.until = 0.0
    spinner._tick()  # the window ran out
    assert not spinner.watcher.active
    assert spinner.score == 0 and spinner.gap == _spin.MAX_GAP
    assert not any(spins(spinner) for _ in range(_spin.MAX_GAP - 1))


def test_a_spin_that_had_its_cpu_leaves_the_history_alone(
    spinner: _spin.Spinner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_spin, "_thread_time", _spin._monotonic)  # all the wall time was CPU
    assert spins(spinner)
    spinner.until = 0.0
    spinner._tick()
    assert not spinner.watcher.active
    assert spinner.score == _spin.CEILING


@pytest.mark.parametrize("seconds", [50e-6, 0.5])
def test_a_set_busy_poll_spins_whatever_the_history_and_teaches_it_nothing(
    spinner: _spin.Spinner, seconds: float
) -> None:
    stop_spinning(spinner)
    score, gap = spinner.score, spinner.gap
    for _ in range(2 * _spin.MAX_GAP):
        assert spinner.begin(seconds) is False  # nothing to learn
        assert spinner.watcher.active
    assert (spinner.score, spinner.gap) == (score, gap)
    spinner.until = 0.0


def test_waits_through_a_socket_teach_the_hub(
    ctx: zmq_green.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers that come long after the request stop a hub's spinning; with a
    ``busy_poll`` set on the socket, the same waits teach it nothing."""
    hub = get_hub()
    fresh = _spin.Spinner(hub)
    monkeypatch.setitem(_spinners, hub, fresh)
    # On a busy machine a spin may be preempted, which stops the spinning at once
    # (tested above): here every spin had all its wall time as CPU.
    monkeypatch.setattr(_spin, "_thread_time", _spin._monotonic)
    rep, req = pair(ctx, zmq.REP, zmq.REQ)
    rep.busy_poll = 0  # only the requester's waits teach
    req.busy_poll = ADAPTIVE
    misses = _spin.CEILING - _spin.THRESHOLD + 1

    def serve(count: int) -> None:
        for _ in range(count):
            rep.recv()
            gevent.sleep(0.005)  # the input: an answer that outlasts the window
            rep.send(b"late")

    server = gevent.spawn(serve, 2 * misses)
    for _ in range(misses):
        req.send(b"?")
        assert req.recv() == b"late"
    assert fresh.score == _spin.THRESHOLD - 1
    req.busy_poll = 50e-6
    for _ in range(misses):
        req.send(b"?")
        assert req.recv() == b"late"
    assert fresh.score == _spin.THRESHOLD - 1
    server.get(timeout=HANG_GUARD)
    fresh.until = 0.0


def test_an_interrupted_wait_teaches_nothing(ctx: zmq_green.Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait ended by a kill or a gevent.Timeout says nothing about when answers come."""
    hub = get_hub()
    fresh = _spin.Spinner(hub)
    monkeypatch.setitem(_spinners, hub, fresh)
    monkeypatch.setattr(_spin, "_thread_time", _spin._monotonic)  # no preemption seen
    pull, _push = pair(ctx, zmq.PULL, zmq.PUSH)
    pull.busy_poll = ADAPTIVE
    for _ in range(_spin.CEILING):
        waiter = gevent.spawn(pull.recv)
        until(lambda: len(pull._waits.readers) == 1)
        gevent.sleep(0.002)  # the wait outlasts the window: a miss, were it counted
        waiter.kill()
        with gevent.Timeout(0.002, False):
            pull.recv()
    assert fresh.score == _spin.CEILING
    fresh.until = 0.0


def test_each_hub_keeps_its_own_history(ctx: zmq_green.Context) -> None:
    """A hub in another thread spins, or not, by its own waits."""
    mine = _spin.spinner_of(get_hub())
    theirs: list[_spin.Spinner] = []

    def other_thread() -> None:
        spinner = _spin.spinner_of(get_hub())
        for _ in range(_spin.CEILING):
            if spinner.begin(ADAPTIVE):
                spinner.learn(LONG, ADAPTIVE)
        spinner.until = 0.0
        theirs.append(spinner)

    score = mine.score
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(HANG_GUARD)
    assert theirs and theirs[0] is not mine
    assert theirs[0].score < _spin.THRESHOLD
    assert mine.score == score
