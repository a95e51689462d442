"""Where pyzmq's own ``zmq.green`` breaks, and zmq_green does not.

Each test is one row of README.md's comparison table. It runs one scenario twice:
against ``zmq.green``, asserting the failure a user meets there, and against
``zmq_green``, asserting the behaviour that should have been. A call that blocks
the whole process is shown by a signal, not a duration: a greenlet spawned before
the call did not run at all while it was in progress (:func:`ran_during`). A hang is
shown by a bounded wait (a ``gevent.Timeout``, or a child process that is killed).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import warnings
from typing import Any, Callable

import gevent
import pytest
import zmq
import zmq.green
from conftest import outcome, pair, run_script
from test_context import LINGER_MS, lingering_push, refused_endpoint  # noqa: F401

import zmq_green

ONE_WAITER = "Only one greenlet can be waiting on this event"
HANG_GUARD = 10.0  # seconds for what should happen at once; only a hung test reaches it


def is_one_waiter_assertion(value: Any) -> bool:
    return isinstance(value, AssertionError) and ONE_WAITER in str(value)


def is_enotsock(value: Any) -> bool:
    return type(value) is zmq.ZMQError and value.errno == zmq.ENOTSOCK


def ran_during(call: Callable[[], Any], act: Callable[[], Any] = lambda: None) -> tuple[Any, bool]:
    """Call *call* in this greenlet while another greenlet waits for its turn to run *act*.

    That greenlet is spawned before the call and acts only if the call is still in
    progress when it runs: *act* may be what ends the call. Returns what *call*
    returned or raised, and whether the other greenlet ran before the call was over.
    """
    in_call = True
    ran = False

    def witness() -> None:
        nonlocal ran
        if in_call:
            ran = True
            act()

    greenlet = gevent.spawn(witness)
    try:
        result = outcome(call)
    finally:
        in_call = False
    greenlet.get(timeout=HANG_GUARD)
    return result, ran


# -- 100 greenlets sending on one PUSH socket ---------------------------------


def hundred_senders(green: Any) -> tuple[list[Any], list[list[bytes]]]:
    """100 greenlets send a two-frame message each on one PUSH (HWM 1).

    Returns their outcomes and what arrived.
    """
    ctx = green.Context()
    try:
        push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
        push.linger = pull.linger = 0
        push.sndhwm = pull.rcvhwm = 1
        pull.bind("inproc://hundred")
        push.connect("inproc://hundred")
        senders = [
            gevent.spawn(outcome, push.send_multipart, [b"%d" % i, b"tail %d" % i]) for i in range(100)
        ]
        gevent.idle()
        received: list[list[bytes]] = []
        with gevent.Timeout(HANG_GUARD, False):
            while not all(s.ready() for s in senders):
                received.append(pull.recv_multipart())
        gevent.killall(senders)
        while pull.poll(0):
            received.append(pull.recv_multipart())
        return [s.value for s in senders], received
    finally:
        ctx.destroy(linger=0)


@pytest.mark.timeout(30)
def test_hundred_greenlets_sending_on_one_socket() -> None:
    outcomes, received = hundred_senders(zmq.green)
    assert any(is_one_waiter_assertion(o) for o in outcomes)
    assert len(received) < 100

    outcomes, received = hundred_senders(zmq_green)
    assert outcomes == [None] * 100
    assert all(m == [m[0], b"tail " + m[0]] for m in received), received  # frames together
    assert sorted(int(m[0]) for m in received) == list(range(100))


# -- RCVTIMEO / SNDTIMEO --------------------------------------------------------

TIMEO_MS = 50
BOUND = 0.5  # seconds: ten times the timeout asked


def wait_with_timeo(green: Any, option: str) -> tuple[list[warnings.WarningMessage], Any, float]:
    """Set *option* to TIMEO_MS and wait, within a gevent.Timeout of BOUND.

    Returns the warnings, what the wait raised, and how long it took.
    """
    ctx = green.Context()
    try:
        sock = ctx.socket(zmq.PULL if option == "rcvtimeo" else zmq.PUSH)
        sock.linger = 0
        sock.bind("inproc://timeo")  # a PUSH with no peer: send waits
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            setattr(sock, option, TIMEO_MS)
            call = sock.recv if option == "rcvtimeo" else lambda: sock.send(b"x")
            start = time.monotonic()
            raised = outcome(gevent.with_timeout, BOUND, call)
            elapsed = time.monotonic() - start
        return caught, raised, elapsed
    finally:
        ctx.destroy(linger=0)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("option", ["rcvtimeo", "sndtimeo"])
def test_timeo_options_are_honoured(option: str) -> None:
    caught, raised, _ = wait_with_timeo(zmq.green, option)
    assert any("no effect" in str(w.message) for w in caught)
    assert isinstance(raised, gevent.Timeout)  # still waiting, ten times the timeout later

    caught, raised, elapsed = wait_with_timeo(zmq_green, option)
    assert caught == []
    assert isinstance(raised, zmq.Again)  # the option's expiry, not the gevent.Timeout
    # and not before the time asked (libzmq's clock and libuv's timers count whole ms)
    assert elapsed >= (TIMEO_MS - 1) / 1000


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
        gevent.joinall(waiters, timeout=HANG_GUARD)
        gevent.killall(waiters)
        return [w.value for w in waiters]
    finally:
        ctx.destroy(linger=0)


@pytest.mark.timeout(30)
def test_close_wakes_every_waiter() -> None:
    outcomes = close_under_waiters(zmq.green)
    assert sum(is_enotsock(o) for o in outcomes) == 1
    assert sum(is_one_waiter_assertion(o) for o in outcomes) == 19

    outcomes = close_under_waiters(zmq_green)
    assert all(is_enotsock(o) for o in outcomes), outcomes


# -- term() with a lingering message ---------------------------------------------


def term_with_a_lingering_message(green: Any, endpoint: str) -> tuple[bool, float]:
    """Terminate a context whose closed PUSH lingers LINGER_MS with a message for nobody.

    Returns whether a greenlet spawned before term ran while term was in progress,
    and how long term took.
    """
    ctx = green.Context()
    lingering_push(ctx, endpoint).close()
    start = time.monotonic()
    result, ran = ran_during(ctx.term)
    assert result is None
    return ran, time.monotonic() - start


@pytest.mark.timeout(30)
def test_term_with_a_lingering_message_leaves_other_greenlets_running(
    refused_endpoint: str,  # noqa: F811
) -> None:
    ran, elapsed = term_with_a_lingering_message(zmq.green, refused_endpoint)
    assert not ran
    assert elapsed >= 0.8 * LINGER_MS / 1000  # no other greenlet ran for that long

    ran, elapsed = term_with_a_lingering_message(zmq_green, refused_endpoint)
    assert ran
    assert elapsed >= 0.8 * LINGER_MS / 1000  # term did wait for the linger


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
        bufsize=0,  # unbuffered: reading up to "term" takes nothing that follows it
    )
    assert proc.stdout is not None
    try:
        while proc.stdout.readline() not in (b"term\n", b""):
            pass
        try:
            out, err = proc.communicate(timeout=frozen_for)
            returncode: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            returncode = None
    finally:
        proc.kill()
        proc.wait()
    return out.decode().splitlines(), returncode, err.decode()


@pytest.mark.timeout(30)
def test_term_while_a_greenlet_waits_in_recv_does_not_freeze_the_process() -> None:
    after_term, returncode, err = run_term_under_reader("zmq.green", frozen_for=1.5)
    assert returncode is None, err  # still frozen 1.5 s later: killed
    assert after_term == [], err  # not one greenlet ran after term was called

    after_term, returncode, err = run_term_under_reader("zmq_green", frozen_for=HANG_GUARD)
    assert returncode == 0, err
    assert "reader: ETERM" in after_term, (after_term, err)
    assert after_term[-1] == "termed", (after_term, err)


# -- a wake-up taken by another greenlet's call --------------------------------------


def wake_up_taken(green: Any, waiting: str, bound: float) -> tuple[Any, list[bytes]]:
    """A greenlet waits on a PULL (``recv`` or ``Poller.poll``); a message arrives, and
    this greenlet's ``poll(0)`` on the same socket processes libzmq's notice of it
    before the hub has seen the fd signal.

    Returns what the waiter got within *bound* seconds (a ``gevent.Timeout`` if it
    is still waiting; a poll's sockets by name), and what was left to receive.
    """
    ctx = green.Context()
    try:
        pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
        if waiting == "recv":
            call: Callable[[], Any] = pull.recv
            waiting_on: Any = pull
        else:
            waiting_on = green.Poller()
            waiting_on.register(pull, zmq.POLLIN)
            call = waiting_on.poll
        if green is zmq_green:
            waiting_on.safety_timeout = None  # the net: without it a missed wake-up hangs
        waiter = gevent.spawn(outcome, gevent.with_timeout, bound, call)
        gevent.idle()
        assert not waiter.ready()
        push.send(b"m")
        assert pull.poll(0) == zmq.POLLIN
        waiter.join()
        got = waiter.value
        if isinstance(got, list):
            got = [("pull" if s is pull else s, flags) for s, flags in got]
        left = []
        while pull.poll(0):
            left.append(pull.recv())
        return got, left
    finally:
        ctx.destroy(linger=0)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("waiting", ["recv", "poller"])
def test_a_wake_up_taken_by_another_greenlets_call_is_passed_on(waiting: str) -> None:
    # zmq.green's waiter sees the message only when its "gevent may have missed an
    # event" timer fires: 11.6 s for recv, 1.33 s for a Poller. Both are above BOUND.
    got, left = wake_up_taken(zmq.green, waiting, BOUND)
    assert isinstance(got, gevent.Timeout)
    assert left == [b"m"]

    got, left = wake_up_taken(zmq_green, waiting, HANG_GUARD)
    if waiting == "recv":
        assert (got, left) == (b"m", [])
    else:
        assert (got, left) == ([("pull", zmq.POLLIN)], [b"m"])


# -- select ---------------------------------------------------------------------------


def select_for_a_message(green: Any) -> tuple[Any, bool, float]:
    """``select`` on a PULL for BOUND seconds while another greenlet waits to send it a message.

    Returns what select returned (sockets by name), whether that greenlet ran
    meanwhile, and how long the select took.
    """
    ctx = green.Context()
    try:
        pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
        start = time.monotonic()
        result, ran = ran_during(lambda: green.select([pull], [], [], BOUND), lambda: push.send(b"m"))
        names = {id(pull): "pull"}
        return [[names[id(s)] for s in ready] for ready in result], ran, time.monotonic() - start
    finally:
        ctx.destroy(linger=0)


@pytest.mark.timeout(30)
def test_select_blocks_only_the_caller() -> None:
    result, ran, elapsed = select_for_a_message(zmq.green)
    assert (result, ran) == ([[], [], []], False)
    assert elapsed >= BOUND  # no other greenlet ran for that long

    result, ran, _ = select_for_a_message(zmq_green)
    assert (result, ran) == ([["pull"], [], []], True)


# -- proxy ------------------------------------------------------------------------


def command(peer: Any, name: bytes) -> None:
    """Send a proxy command; libzmq 4.3.5 answers every one with an empty message."""
    peer.send(name)
    assert peer.recv_multipart() == [b""]


def terminate(ctx: Any, endpoint: str) -> None:
    """Connect a PAIR of *ctx* to the proxy's control socket at *endpoint*; send TERMINATE."""
    peer = ctx.socket(zmq.PAIR)
    peer.linger = 0
    peer.connect(endpoint)
    command(peer, b"TERMINATE")
    peer.close()


def proxy_stopped_by_a_greenlet(green: Any) -> tuple[Any, bool]:
    """Run a ``proxy_steerable`` while another greenlet waits to send it TERMINATE.

    A native thread (it runs even when the hub cannot) sends TERMINATE from a context
    of its own if the proxy is still running a second later. Returns what the proxy
    returned, and whether the greenlet ran before it returned.
    """
    ctx = green.Context()
    try:
        frontend, _ = pair(ctx, zmq.PULL, zmq.PUSH)
        backend, _ = pair(ctx, zmq.PUSH, zmq.PULL)
        control = ctx.socket(zmq.PAIR)
        control.linger = 0
        control.bind("tcp://127.0.0.1:*")
        endpoint = control.last_endpoint
        finished = threading.Event()

        def rescue() -> None:
            if not finished.wait(1.0):
                with zmq.Context() as native:
                    terminate(native, endpoint)

        rescuer = threading.Thread(target=rescue)
        rescuer.start()
        try:
            return ran_during(
                lambda: green.proxy_steerable(frontend, backend, None, control),
                lambda: terminate(ctx, endpoint),
            )
        finally:
            finished.set()
            rescuer.join(HANG_GUARD)
    finally:
        ctx.destroy(linger=0)


@pytest.mark.timeout(30)
def test_proxy_blocks_only_the_caller() -> None:
    assert proxy_stopped_by_a_greenlet(zmq.green) == (0, False)
    assert proxy_stopped_by_a_greenlet(zmq_green) == (0, True)


# -- the eventloop ------------------------------------------------------------------

IOLOOP = """
import gevent
from %s import IOLoop
loop = IOLoop.current()
in_start = True
ran = []

def witness():
    if in_start:
        ran.append(True)
        loop.add_callback(loop.stop)

gevent.spawn(witness)
loop.call_later(%r, loop.stop)  # where no greenlet can stop it
loop.start()
in_start = False
print("ran" if ran else "did not run")
"""


@pytest.mark.timeout(60)
def test_ioloop_start_blocks_only_its_greenlet() -> None:
    pytest.importorskip("tornado")
    for module, bound, frozen in (
        ("zmq.green.eventloop.ioloop", BOUND, True),
        ("zmq_green.eventloop", HANG_GUARD, False),
    ):
        out = run_script(IOLOOP % (module, bound), timeout=HANG_GUARD * 2).stdout
        assert out == ("did not run\n" if frozen else "ran\n"), module
