"""Property-based tests of the waiting protocol.

Hypothesis writes programs for a PUSH/PULL pair shared by greenlets: spawn a
sender or a receiver (blocking, ``DONTWAIT``, multipart, under a short
``gevent.Timeout``), spawn a greenlet that polls, kill a greenlet, let the hub
run, close a socket. The program runs, the hub settles, and what happened is
checked against a model that needs no knowledge of libzmq's buffers:

* what the receivers got, followed by what is left in the pipe, is exactly the
  sequence of messages whose send returned, in that order, whole;
* a settled hub has no receiver or POLLIN poller waiting while a message is
  ready, and no sender or POLLOUT poller waiting while the pipe is empty
  (a missed wake-up);
* every call ended as the model allows: returned, killed, its own timeout,
  ``Again`` for ``DONTWAIT``/``RCVTIMEO``, ``ENOTSOCK`` once its socket was closed;
* no waiter outlives the close of its socket, and once both sockets are closed
  the hub has no watcher left.

Examples are derandomized (the same programs on every run) and no example
database is written. ``ZMQ_GREEN_SOAK_SECONDS`` tries ten times as many.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import gevent
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import zmq_green as zmq

SETTLE_SECONDS = 2.0
#: A soak run (see tests/stress) tries ten times as many programs.
SCALE = 10 if os.environ.get("ZMQ_GREEN_SOAK_SECONDS") else 1

TIMEOUTS = st.sampled_from([None, None, 0, 0.001])
ACTIONS = st.one_of(
    st.tuples(st.just("send"), st.sampled_from(["single", "multipart", "dontwait"]), TIMEOUTS),
    st.tuples(st.just("recv"), st.sampled_from(["wait", "dontwait"]), TIMEOUTS),
    st.tuples(st.just("poll"), st.sampled_from(["in", "out"]), st.sampled_from([None, 0, 5])),
    st.tuples(st.just("kill"), st.integers(0, 30)),
    st.tuples(st.just("step")),
    st.tuples(st.just("idle")),
    st.tuples(st.just("close"), st.sampled_from(["push", "pull"])),
)
PROGRAMS = st.lists(ACTIONS, max_size=60)


@dataclass
class Call:
    """One spawned greenlet: which socket it uses, which way, and how it ended."""

    side: str  # "push" or "pull"
    kind: str  # "send", "recv", "poll-in" or "poll-out"
    may_again: bool  # DONTWAIT or RCVTIMEO: zmq.Again is a fair outcome
    ready: Any = None  # what a poll returns when its socket is ready
    greenlet: Any = None
    result: Any = None

    def ended_as_allowed(self, closed: set[str]) -> bool:
        r = self.result
        if r is None or isinstance(r, (gevent.GreenletExit, gevent.Timeout)):
            return True  # returned, killed, or its own timeout
        if isinstance(r, list):  # a poll's result
            # polling a socket closed before the call returns what pyzmq's does: [(0, POLLIN)]
            return r in ([], self.ready) or self.side in closed
        if isinstance(r, zmq.Again):
            return self.may_again
        return getattr(r, "errno", None) == zmq.ENOTSOCK and self.side in closed


@dataclass
class Run:
    """A program's run against a PUSH/PULL pair, and what the model needs of it."""

    push: Any
    pull: Any
    rcvtimeo: int
    sent: list[list[bytes]] = field(default_factory=list)
    received: list[list[bytes]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    closed: set[str] = field(default_factory=set)
    next_id: int = 0

    def spawn(
        self,
        side: str,
        kind: str,
        body: Callable[[], Any],
        timeout: float | None,
        may_again: bool = False,
        ready: Any = None,
    ) -> None:
        call = Call(side, kind, may_again, ready)

        def run() -> None:
            timer = None if timeout is None else gevent.Timeout(timeout)
            if timer is not None:
                timer.start()
            try:
                call.result = body()
            except BaseException as e:  # kills and timeouts included: the model checks them
                call.result = e
            finally:
                if timer is not None:
                    timer.close()

        call.greenlet = gevent.spawn(run)
        self.calls.append(call)

    def send(self, mode: str, timeout: float | None) -> None:
        key = b"%d" % self.next_id
        self.next_id += 1
        frames = [key, key + b"+"] if mode == "multipart" else [key]
        flags = zmq.DONTWAIT if mode == "dontwait" else 0

        def body() -> None:
            self.push.send_multipart(frames, flags)
            self.sent.append(frames)

        self.spawn("push", "send", body, timeout, may_again=mode == "dontwait")

    def recv(self, mode: str, timeout: float | None) -> None:
        flags = zmq.DONTWAIT if mode == "dontwait" else 0
        may_again = mode == "dontwait" or self.rcvtimeo >= 0
        self.spawn(
            "pull", "recv", lambda: self.received.append(self.pull.recv_multipart(flags)), timeout, may_again
        )

    def poll(self, direction: str, timeout_ms: int | None) -> None:
        poller = zmq.Poller()
        sock, side = (self.pull, "pull") if direction == "in" else (self.push, "push")
        mask = zmq.POLLIN if direction == "in" else zmq.POLLOUT
        poller.register(sock, mask)
        self.spawn(side, "poll-" + direction, lambda: poller.poll(timeout_ms), None, ready=[(sock, mask)])

    def live(self) -> list[Call]:
        return [c for c in self.calls if not c.greenlet.dead]

    def missed_wakeup(self) -> str | None:
        """What a settled hub must not show, or None."""
        if self.closed:
            return None
        live = {c.kind for c in self.live()}
        if len(self.sent) > len(self.received) and live & {"recv", "poll-in"}:
            return "a receiver waits while a message is ready"
        if "recv" in live and live & {"send", "poll-out"}:
            return "a sender waits while the pipe is empty"
        return None

    def settle(self) -> None:
        """Let the hub run until nothing waits in vain, or fail."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while self.missed_wakeup() and time.monotonic() < deadline:
            gevent.sleep(0.001)
        assert self.missed_wakeup() is None, self.missed_wakeup()
        gevent.idle()
        for call in self.live():
            assert call.side not in self.closed, f"a {call.kind} waits on a closed socket"

    def drain(self) -> list[list[bytes]]:
        """What is left to receive: as many as were sent and not received, then
        whatever else arrives at once (nothing, if the model holds)."""
        rest = []
        flags = zmq.DONTWAIT if self.closed else 0
        self.pull.rcvtimeo = int(SETTLE_SECONDS * 1000)
        try:
            while len(self.received) + len(rest) < len(self.sent):
                rest.append(self.pull.recv_multipart(flags))
            while True:
                rest.append(self.pull.recv_multipart(zmq.DONTWAIT))
        except zmq.Again:
            return rest


def execute(
    program: list[tuple[Any, ...]], ctx: Any, hwm: int, rcvtimeo: int, transport: str
) -> tuple[int, int]:
    """Run *program*, check it against the model; return (messages delivered, faults injected)."""
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    push.linger = pull.linger = 0
    push.sndhwm, pull.rcvhwm, pull.rcvtimeo = hwm, hwm, rcvtimeo
    pull.bind("inproc://properties" if transport == "inproc" else "tcp://127.0.0.1:*")
    push.connect(pull.last_endpoint)
    run = Run(push, pull, rcvtimeo)
    faults = 0
    try:
        for action in program:
            name = action[0]
            if name == "send":
                run.send(action[1], action[2])
            elif name == "recv":
                run.recv(action[1], action[2])
            elif name == "poll":
                run.poll(action[1], action[2])
            elif name == "kill":
                live = run.live()
                if live:
                    live[action[1] % len(live)].greenlet.kill(block=False)
                    faults += 1
            elif name == "step":
                gevent.sleep(0)
            elif name == "idle":
                gevent.idle()
            elif name == "close":
                faults += action[1] not in run.closed
                run.closed.add(action[1])
                (push if action[1] == "push" else pull).close()
        run.settle()
        gevent.killall([c.greenlet for c in run.live()])
        for call in run.calls:
            assert call.ended_as_allowed(run.closed), (call.kind, call.result)
        delivered = run.received + ([] if "pull" in run.closed else run.drain())
        if run.closed:
            assert delivered == run.sent[: len(delivered)], "delivered out of order, twice or unsent"
        else:
            assert delivered == run.sent, "lost, duplicated, reordered or unsent messages"
        faults += sum(isinstance(c.result, gevent.Timeout) for c in run.calls)
        return len(delivered), faults
    finally:
        gevent.killall([c.greenlet for c in run.calls])
        push.close()
        pull.close()


SETTINGS = settings(
    max_examples=1000 * SCALE,
    derandomize=True,
    database=None,
    deadline=5000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def check_program(
    program: list[tuple[Any, ...]], hwm: int, rcvtimeo: int, transport: str, record_property: Any
) -> None:
    watchers = gevent.get_hub().loop.activecnt
    rescues = zmq.stats()["rescues"]
    ctx = zmq.Context()
    try:
        messages, faults = execute(program, ctx, hwm, rcvtimeo, transport)
    finally:
        ctx.destroy(linger=0)
    assert gevent.get_hub().loop.activecnt == watchers, "hub watchers left active"
    assert zmq.stats()["rescues"] == rescues, "a wake-up was missed (safety timeout rescued it)"
    record_property("messages", messages)
    record_property("faults", faults)


@pytest.mark.timeout(120 * SCALE)
@SETTINGS
@given(program=PROGRAMS, hwm=st.integers(1, 4), rcvtimeo=st.sampled_from([-1, -1, 5]))
def test_interleavings_inproc(
    program: list[tuple[Any, ...]], hwm: int, rcvtimeo: int, record_property: Any
) -> None:
    check_program(program, hwm, rcvtimeo, "inproc", record_property)


@pytest.mark.timeout(120 * SCALE)
@settings(SETTINGS, max_examples=300 * SCALE)
@given(program=PROGRAMS, hwm=st.integers(1, 4), rcvtimeo=st.sampled_from([-1, -1, 5]))
def test_interleavings_tcp(
    program: list[tuple[Any, ...]], hwm: int, rcvtimeo: int, record_property: Any
) -> None:
    check_program(program, hwm, rcvtimeo, "tcp", record_property)
