"""Property-based tests of the waiting protocol: hypothesis hunts for lost wake-ups.

Hypothesis writes programs of up to 80 steps (tests/test_properties_model.py) for two
connected sockets, ``a`` and ``b`` -- PUSH/PULL, DEALER/ROUTER (the ROUTER, with
``ROUTER_MANDATORY``, answers the DEALER's identity) or PAIR/PAIR -- over inproc, ipc
or tcp, with high-water marks of 1 to 3 and, over ipc and tcp, messages big enough to
fill the kernel's buffers, so that senders block while receivers wait, on one socket
too. A step spawns a greenlet that sends (one frame, three, or ``DONTWAIT``), receives
(blocking or ``DONTWAIT``), waits in a ``Poller`` on one socket or both, or reads
``EVENTS`` as a bystander, the first three possibly under a ``gevent.Timeout``; or it
throws ``GreenletExit`` or a ``gevent.Timeout`` into a greenlet blocked in a call,
sets ``RCVTIMEO``/``SNDTIMEO``, closes a socket, lets the hub run, or checks. After
the last step the run is checked, what is left is drained (checking after each
message), and both sockets are closed under their remaining waiters.

Each program leaves out a random few kinds of step (swarm testing: kills, polls and
``EVENTS`` readers wake greenlets and may hide a lost wake-up), and one of its sockets
is the busy one, with most of the sends and half the receives. A check lasts at
least 2 ms, longer than libzmq's send waits before it processes commands again, so
that a failing program fails again when hypothesis replays it and can be shrunk.

What is checked needs no knowledge of libzmq's buffers:

* **no missed wake-up**: once the hub has settled, no greenlet is blocked on a socket
  that is ready for it. The hub has settled when nothing changed for a round and no
  socket's ``ZMQ_FD`` is signalled (probed with ``select``, which consumes nothing).
  Then ``EVENTS`` is read through the backend, not through zmq_green, so that the
  check wakes nobody, and compared with what the blocked greenlets wait for. A quiet
  fd means no command is pending, so that read processes none. Over ipc and tcp the
  I/O thread may post one meanwhile, so the state must hold for three rounds and no
  check is made while a message is on its way to a blocked receiver; if it never
  arrives, the check fails after ``SETTLE_SECONDS`` (below the safety timeout);
* **exactly once, in order, whole**: what each socket received, then what is left to
  drain, is exactly the sequence of sends to it that returned; frames are never
  interleaved. A direction with a socket closed mid-program delivers a prefix;
* **every call ended as allowed**: returned; ``GreenletExit`` or ``gevent.Timeout``
  only where one was thrown or armed; ``Again`` only for ``DONTWAIT`` or an expired
  ``RCVTIMEO``/``SNDTIMEO``, and not before that time; ``ENOTSOCK`` once its socket
  was closed, and every greenlet blocked on a socket when it was closed gets
  ``ENOTSOCK``; ``EHOSTUNREACH`` for a ROUTER whose DEALER is gone. A poll returns
  only sockets it polls, reports ``POLLIN`` only where a message is to be received,
  and returns ``[]`` only once its timeout expired;
* **no leftover watcher**: whenever nothing waits, the hub has as many active
  watchers as before the sockets were made, and ``stats()["rescues"]`` did not move
  (the safety timeout is 0.5 s here).

A failure prints the shrunk program, one numbered step a line, and what each call
did. Examples are derandomized (the same programs on every run) and no database is
written; ``ZMQ_GREEN_SOAK_SECONDS`` tries ten times as many programs and
``ZMQ_GREEN_PROPERTY_SCALE`` multiplies the count (the run on the other gevent loop
uses it). The terminal summary shows the distribution of the programs tried::

    python -m pytest tests/test_properties.py -q -p no:cacheprovider
"""

from __future__ import annotations

import itertools
import os
import re
import statistics
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
from conftest import other_gevent_loop, run_pytest_on
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.internal.conjecture import engine
from test_properties_model import Program, programs, run_program

import zmq_green as zmq

ROOT = Path(__file__).resolve().parent.parent
_PROPERTY_SCALE = float(os.environ.get("ZMQ_GREEN_PROPERTY_SCALE", 1))
#: A soak run (see tests/stress) tries ten times as many programs.
SCALE = _PROPERTY_SCALE * (10 if os.environ.get("ZMQ_GREEN_SOAK_SECONDS") else 1)
EXAMPLES = {"inproc": 700, "ipc": 70, "tcp": 70}
#: Hypothesis would shrink a failure for up to 5 minutes; a program takes up to a second.
SHRINK_SECONDS = 60
#: The run on the other gevent loop: a fifth of the programs, three tests that may shrink.
OTHER_LOOP_SECONDS = 3 * SHRINK_SECONDS + int(60 * SCALE)

SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow],
)


def _loop_name() -> str:
    return type(gevent.get_hub().loop).__module__


class Distribution:
    """The programs tried in this session, summarised at its end (a pytest plugin)."""

    def __init__(self) -> None:
        self.programs: list[tuple[Program, Counter[str]]] = []

    def add(self, program: Program, facts: Counter[str]) -> None:
        self.programs.append((program, facts))

    def lines(self) -> list[str]:
        n = len(self.programs)
        lengths = [sum(s.kind != "nothing" for s in p.steps) for p, _ in self.programs]
        transports = Counter(p.transport for p, _ in self.programs)
        patterns = Counter(p.pattern.name for p, _ in self.programs)
        spread = Counter(min(length // 20, 3) for length in lengths)

        def having(test: Any) -> str:
            count = sum(1 for p, f in self.programs if test(p, f))
            return f"{count} ({count / n:.0%})"

        def steps_of(p: Program, kind: str, mode: str | None = None) -> bool:
            return any(s.kind == kind and (mode is None or s.mode == mode) for s in p.steps)

        totals: Counter[str] = Counter()
        for _, facts in self.programs:
            totals.update(facts)
        return [
            f"loop: {_loop_name()}",
            f"programs: {n} -- "
            + ", ".join(f"{k} {v}" for k, v in sorted(transports.items()))
            + "; "
            + ", ".join(f"{k} {v}" for k, v in sorted(patterns.items())),
            f"steps: mean {statistics.mean(lengths):.1f}, median {statistics.median(lengths):g}, "
            f"max {max(lengths)}; 0-19: {spread[0]}, 20-39: {spread[1]}, 40-59: {spread[2]}, 60-80: {spread[3]}",
            f"with a send that returned: {having(lambda p, f: f['sends'])}; "
            f"a message received by a step: {having(lambda p, f: f['received'])}; "
            f"both: {having(lambda p, f: f['sends'] and f['received'])}",
            f"with a sender and a receiver blocked on one socket at once: {having(lambda p, f: f['contended'])}",
            f"with GreenletExit landing in a blocked call: {having(lambda p, f: f['GreenletExit'])}; "
            f"a gevent.Timeout landing: {having(lambda p, f: f['gevent.Timeout'])}; "
            f"RCVTIMEO/SNDTIMEO expiring: {having(lambda p, f: f['timeo expired'])}",
            f"with multipart: {having(lambda p, f: steps_of(p, 'send', 'multipart'))}; "
            f"DONTWAIT: {having(lambda p, f: steps_of(p, 'send', 'dontwait') or steps_of(p, 'recv', 'dontwait'))}; "
            f"a Poller: {having(lambda p, f: steps_of(p, 'poll'))}; "
            f"an EVENTS bystander: {having(lambda p, f: steps_of(p, 'events'))}",
            f"with a socket closed mid-program: {having(lambda p, f: f['closes'])}; "
            f"closed under a blocked greenlet (mid-program or at the end): "
            f"{having(lambda p, f: f['closed under'])}",
            f"totals: {sum(lengths)} steps, {totals['messages']} messages received, {totals['waits']} waits, "
            f"{totals['checks']} checks; rescues since the process started: {zmq.stats()['rescues']}",
        ]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.programs:
            terminalreporter.write_sep("-", "property programs")
            for line in self.lines():
                terminalreporter.write_line(line)


DISTRIBUTION = Distribution()


@pytest.fixture(scope="module", autouse=True)
def _distribution(request: pytest.FixtureRequest) -> Iterator[None]:
    """Register :data:`DISTRIBUTION` as a plugin, so that its summary ends the session."""
    manager = request.config.pluginmanager
    if not manager.is_registered(DISTRIBUTION):
        manager.register(DISTRIBUTION, "zmq_green-property-distribution")
    yield


@pytest.fixture(autouse=True)
def _short_safety_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zmq.Socket, "safety_timeout", 0.5)
    monkeypatch.setattr(zmq.Poller, "safety_timeout", 0.5)
    # Hypothesis allows this setting to be patched; it bounds the time a failure takes to shrink.
    monkeypatch.setattr(engine, "MAX_SHRINKING_SECONDS", SHRINK_SECONDS)


@pytest.mark.timeout(SHRINK_SECONDS + int(120 * SCALE))
@pytest.mark.parametrize("transport", ["inproc", "ipc", "tcp"])
def test_no_program_loses_a_wakeup_or_a_message(
    transport: str, ctx: Any, tmp_path: Path, record_property: Any
) -> None:
    numbers = itertools.count()
    totals: Counter[str] = Counter()
    rescues = zmq.stats()["rescues"]

    def endpoint() -> str:
        if transport == "inproc":
            return f"inproc://properties-{next(numbers)}"
        if transport == "ipc":
            return f"ipc://{tmp_path}/{next(numbers)}"
        return "tcp://127.0.0.1:*"

    @settings(SETTINGS, max_examples=max(1, int(EXAMPLES[transport] * SCALE)))
    @given(program=programs(transport))
    def program_holds(program: Program) -> None:
        facts = run_program(program, ctx, endpoint())
        DISTRIBUTION.add(program, facts)
        totals.update(facts)

    program_holds()
    record_property("messages", totals["messages"])
    record_property("faults", totals["GreenletExit"] + totals["gevent.Timeout"] + totals["closes"])
    record_property("rescues", zmq.stats()["rescues"] - rescues)


@pytest.mark.timeout(OTHER_LOOP_SECONDS + 20)
def test_no_program_loses_a_wakeup_on_the_other_gevent_loop() -> None:
    """A fifth of the programs again, in a child interpreter on the gevent loop this one is not on.

    The child's summary must name that loop, count every program, and show sockets
    with senders and receivers blocked at once.
    """
    other = other_gevent_loop()
    scale = _PROPERTY_SCALE / 5
    result = run_pytest_on(
        other,
        ["-k", "not other_gevent_loop", __file__],
        timeout=OTHER_LOOP_SECONDS,
        ZMQ_GREEN_PROPERTY_SCALE=str(scale),
    )
    summary = result.stdout[max(0, result.stdout.find("property programs")) :]
    failures = result.stdout[max(0, result.stdout.find("= FAILURES =")) :][:15000]
    assert result.returncode == 0, f"{failures}\n{summary}{result.stderr[-2000:]}"
    assert re.search(rf"loop: \S*{other.split('-')[0]}", summary), summary
    tried = re.search(r"programs: (\d+)", summary)
    assert tried and int(tried.group(1)) >= sum(max(1, int(n * scale)) for n in EXAMPLES.values()), summary
    contended = re.search(r"blocked on one socket at once: (\d+)", summary)
    assert contended and int(contended.group(1)) > 0, summary
