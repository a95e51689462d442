"""Where pyzmq's own ``zmq.green`` breaks, and zmq_green does not.

Each test runs one scenario twice: against ``zmq.green``, asserting the failure a user
meets there, and against ``zmq_green``, asserting the behaviour that should have been.
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from typing import Any

import gevent
import pytest
import zmq
import zmq.green
from test_context import LINGER_MS, lingering_push, refused_endpoint, ticks_while  # noqa: F401
from test_socket import hwm_pair, outcome

import zmq_green

ONE_WAITER = "Only one greenlet can be waiting on this event"


def is_one_waiter_assertion(value: Any) -> bool:
    return isinstance(value, AssertionError) and ONE_WAITER in str(value)


def is_enotsock(value: Any) -> bool:
    return type(value) is zmq.ZMQError and value.errno == zmq.ENOTSOCK


# -- 100 greenlets sending on one PUSH socket ---------------------------------


def hundred_senders(green: Any) -> tuple[list[Any], list[bytes]]:
    """100 greenlets send on one PUSH (HWM 1); returns their outcomes and what arrived."""
    ctx = green.Context()
    try:
        pull, push = hwm_pair(ctx)
        senders = [gevent.spawn(outcome, push.send, b"%d" % i) for i in range(100)]
        gevent.idle()
        received: list[bytes] = []
        with gevent.Timeout(5, False):
            while not all(s.ready() for s in senders):
                received.append(pull.recv())
        gevent.killall(senders)
        while True:
            try:
                received.append(pull.recv(zmq.DONTWAIT))
            except zmq.Again:
                break
        return [s.value for s in senders], received
    finally:
        ctx.destroy(linger=0)


@pytest.mark.timeout(20)
def test_hundred_greenlets_sending_on_one_socket(no_rescues: None) -> None:
    outcomes, received = hundred_senders(zmq.green)
    assert any(is_one_waiter_assertion(o) for o in outcomes)
    assert len(received) < 100

    outcomes, received = hundred_senders(zmq_green)
    assert outcomes == [None] * 100
    assert sorted(int(m) for m in received) == list(range(100))


# -- RCVTIMEO / SNDTIMEO --------------------------------------------------------


def wait_with_timeo(green: Any, option: str) -> tuple[list[warnings.WarningMessage], Any, float]:
    """Set *option* to 50 ms and wait (bounded by a 0.5 s gevent.Timeout).

    Returns the warnings, what the wait raised, and how long it took.
    """
    ctx = green.Context()
    try:
        if option == "rcvtimeo":
            sock = ctx.socket(zmq.PULL)
            sock.bind("inproc://timeo")
        else:
            sock = ctx.socket(zmq.PUSH)
            sock.bind("inproc://timeo")  # no peer: send waits
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            setattr(sock, option, 50)
            call = sock.recv if option == "rcvtimeo" else lambda: sock.send(b"x")
            start = time.monotonic()
            raised = outcome(gevent.with_timeout, 0.5, call)
            elapsed = time.monotonic() - start
        return caught, raised, elapsed
    finally:
        ctx.destroy(linger=0)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("option", ["rcvtimeo", "sndtimeo"])
def test_timeo_options_are_honoured(no_rescues: None, option: str) -> None:
    caught, raised, elapsed = wait_with_timeo(zmq.green, option)
    assert any("no effect" in str(w.message) for w in caught)
    assert isinstance(raised, gevent.Timeout)  # still waiting long after the 50 ms
    assert elapsed >= 0.45

    caught, raised, elapsed = wait_with_timeo(zmq_green, option)
    assert caught == []
    assert isinstance(raised, zmq.Again)
    assert elapsed < 0.45


# -- close() while others wait -------------------------------------------------


def close_under_waiters(green: Any) -> list[Any]:
    """20 greenlets wait in recv on one socket, then it is closed; returns their outcomes."""
    ctx = green.Context()
    try:
        sock = ctx.socket(zmq.PULL)
        sock.bind("inproc://close")
        waiters = [gevent.spawn(outcome, sock.recv) for _ in range(20)]
        gevent.idle()
        sock.close()
        gevent.joinall(waiters, timeout=2)
        gevent.killall(waiters)
        return [w.value for w in waiters]
    finally:
        ctx.destroy(linger=0)


@pytest.mark.timeout(10)
def test_close_wakes_every_waiter(no_rescues: None) -> None:
    outcomes = close_under_waiters(zmq.green)
    assert sum(is_enotsock(o) for o in outcomes) == 1
    assert sum(is_one_waiter_assertion(o) for o in outcomes) == 19

    outcomes = close_under_waiters(zmq_green)
    assert all(is_enotsock(o) for o in outcomes), outcomes


# -- term() with a lingering message ---------------------------------------------


@pytest.mark.timeout(10)
def test_term_with_a_lingering_message_leaves_other_greenlets_running(
    refused_endpoint: str,  # noqa: F811
    no_rescues: None,
) -> None:
    for green, frozen in ((zmq.green, True), (zmq_green, False)):
        ctx = green.Context()
        lingering_push(ctx, refused_endpoint).close()
        ticks, elapsed = ticks_while(ctx.term)
        assert elapsed >= 0.8 * LINGER_MS / 1000
        if frozen:
            assert ticks == 0, green
        else:
            assert ticks >= 10, green


# -- term() while greenlets wait in recv -----------------------------------------

TERM_UNDER_READER = """
import sys, importlib, gevent
zmq = importlib.import_module(sys.argv[1])
ctx = zmq.Context()
sock = ctx.socket(zmq.PULL)
sock.linger = 0
sock.bind("inproc://frozen")

def reader():
    try:
        sock.recv()
    except zmq.ContextTerminated:
        print("reader: ETERM", flush=True)
    sock.close()

def ticker():
    while True:
        print("tick", flush=True)
        gevent.sleep(0.01)

gevent.spawn(reader)
gevent.spawn(ticker)
gevent.idle()
print("term", flush=True)
ctx.term()
print("termed", flush=True)
"""


def run_term_under_reader(module: str, frozen_for: float) -> tuple[list[str], int | None, str]:
    """Run the scenario in a fresh interpreter; kill it if still running *frozen_for* s after term.

    Returns the lines it printed after ``term``, its exit code (None when killed) and its stderr.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", TERM_UNDER_READER, module],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    returncode: int | None = None
    try:
        assert proc.stdout is not None
        if "term\n" in proc.stdout:  # reads up to and including that line
            try:
                returncode = proc.wait(timeout=frozen_for)
            except subprocess.TimeoutExpired:
                pass
        else:
            returncode = proc.wait()
    finally:
        proc.kill()
        out, err = proc.communicate()
    return out.splitlines(), returncode, err


@pytest.mark.timeout(30)
def test_term_while_a_greenlet_waits_in_recv_does_not_freeze_the_process() -> None:
    after_term, returncode, err = run_term_under_reader("zmq.green", frozen_for=1.5)
    assert returncode is None, err  # still frozen 1.5 s later: killed
    assert after_term == [], err  # not one greenlet ran after term was called

    after_term, returncode, err = run_term_under_reader("zmq_green", frozen_for=10)
    assert returncode == 0, err
    assert "reader: ETERM" in after_term, (after_term, err)
    assert after_term[-1] == "termed", (after_term, err)
