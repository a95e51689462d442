"""Green Context: term() and destroy() block only the calling greenlet; waiters get ETERM."""

from __future__ import annotations

import gc
import socket
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from typing import Any, Callable

import gevent
import pytest
import zmq
from conftest import Ticker, outcome

import zmq_green

LINGER_MS = 300


@pytest.fixture
def refused_endpoint() -> Iterator[str]:
    """A tcp endpoint where nobody ever accepts: the port is held, but not listening."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    yield f"tcp://127.0.0.1:{holder.getsockname()[1]}"
    holder.close()


def lingering_push(ctx: Any, endpoint: str, linger: int = LINGER_MS) -> Any:
    """A PUSH socket holding one message for a peer that never connects, *linger* ms long."""
    push = ctx.socket(zmq.PUSH)
    push.linger = linger
    push.connect(endpoint)
    push.send(b"never delivered")
    return push


def ticks_while(call: Callable[[], Any]) -> tuple[int, float]:
    """Run *call* in this greenlet while a :class:`Ticker` counts; return (ticks, seconds)."""
    ticker = Ticker()
    start = time.monotonic()
    try:
        call()
    finally:
        elapsed = time.monotonic() - start
        ticks = ticker.stop()
    return ticks, elapsed


def test_context_repr_names_the_green_class() -> None:
    ctx = zmq_green.Context()
    assert repr(ctx).startswith("<zmq_green.Context(")
    ctx.term()
    assert repr(ctx).endswith(" closed>")


@pytest.mark.timeout(10)
def test_term_waiting_for_a_lingering_message_blocks_only_the_caller(refused_endpoint: str) -> None:
    ctx = zmq_green.Context()
    lingering_push(ctx, refused_endpoint).close()
    ticks, elapsed = ticks_while(ctx.term)
    assert ctx.closed
    assert elapsed >= 0.8 * LINGER_MS / 1000  # term did wait for the linger
    assert ticks >= 1  # and another greenlet ran meanwhile


@pytest.mark.timeout(10)
def test_destroy_with_linger_blocks_only_the_caller_and_closes_sockets(refused_endpoint: str) -> None:
    ctx = zmq_green.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(refused_endpoint)
    push.send(b"never delivered")
    ticks, elapsed = ticks_while(lambda: ctx.destroy(linger=LINGER_MS))
    assert push.closed and ctx.closed
    assert elapsed >= 0.8 * LINGER_MS / 1000
    assert ticks >= 1  # another greenlet ran meanwhile


@pytest.mark.timeout(10)
def test_context_manager_exit_blocks_only_the_caller(refused_endpoint: str) -> None:
    def use() -> None:
        with zmq_green.Context() as ctx:
            lingering_push(ctx, refused_endpoint).close()

    ticks, elapsed = ticks_while(use)
    assert elapsed >= 0.8 * LINGER_MS / 1000
    assert ticks >= 1  # another greenlet ran meanwhile


@pytest.mark.timeout(10)
def test_term_lingers_as_long_as_pyzmqs(mod: Any, refused_endpoint: str) -> None:
    ctx = mod.Context()
    lingering_push(ctx, refused_endpoint).close()
    start = time.monotonic()
    ctx.term()
    assert 0.8 * LINGER_MS / 1000 <= time.monotonic() - start < 5


@pytest.mark.timeout(10)
def test_term_waits_for_open_sockets_while_other_greenlets_run() -> None:
    ctx = zmq_green.Context()
    sock = ctx.socket(zmq.PULL)
    terming = gevent.spawn(ctx.term)
    for _ in range(5):  # this greenlet keeps running while term waits for the socket
        gevent.sleep(0.005)
        assert not terming.ready()
    sock.close()
    terming.get(timeout=5)
    assert ctx.closed


@pytest.mark.timeout(10)
def test_term_wakes_every_waiting_greenlet_with_context_terminated() -> None:
    ctx = zmq_green.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://term-waiters")
    dealer = ctx.socket(zmq.DEALER)  # no peer: send waits
    for sock in (pull, dealer):
        sock.linger = 0

    def wait_then_close(sock: Any, call: Callable[[], Any]) -> BaseException | None:
        try:
            call()
        except zmq.ZMQError as e:
            return e
        finally:
            sock.close()  # as pyzmq asks, so that term can finish
        return None

    waiters = [gevent.spawn(wait_then_close, pull, pull.recv) for _ in range(5)]
    waiters += [gevent.spawn(wait_then_close, pull, pull.recv_multipart) for _ in range(2)]
    waiters += [gevent.spawn(wait_then_close, dealer, lambda: dealer.send(b"x")) for _ in range(3)]
    gevent.idle()
    assert not any(w.ready() for w in waiters)
    terming = gevent.spawn(ctx.term)
    gevent.joinall(waiters, timeout=5)
    errors = [w.value for w in waiters]
    # The first to wake closes its socket, so the others of that socket may see ENOTSOCK;
    # none is left waiting, and each socket's waiters were told of the termination.
    assert all(isinstance(e, zmq.ZMQError) for e in errors), errors
    assert {e.errno for e in errors} <= {zmq.ETERM, zmq.ENOTSOCK}
    for of_one_socket in (errors[:7], errors[7:]):
        assert any(type(e) is zmq.ContextTerminated for e in of_one_socket), of_one_socket
    terming.get(timeout=5)
    assert ctx.closed


@pytest.mark.timeout(10)
def test_term_wakes_greenlets_that_do_not_close_with_context_terminated() -> None:
    ctx = zmq_green.Context()
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    errors: list[BaseException] = []

    def waiter(call: Callable[[], Any]) -> None:
        try:
            call()
        except zmq.ZMQError as e:
            errors.append(e)

    waiters = [gevent.spawn(waiter, pull.recv) for _ in range(5)] + [gevent.spawn(waiter, pull.poll)]
    gevent.idle()
    terming = gevent.spawn(ctx.term)
    gevent.joinall(waiters, timeout=5)
    assert len(errors) == 6
    assert all(type(e) is zmq.ContextTerminated and e.errno == zmq.ETERM for e in errors), errors
    assert not terming.ready()  # the socket is still open
    pull.close()
    terming.get(timeout=5)


@pytest.mark.timeout(10)
def test_destroy_closes_sockets_and_wakes_their_waiters() -> None:
    ctx = zmq_green.Context()
    pull = ctx.socket(zmq.PULL)
    dealer = ctx.socket(zmq.DEALER)
    pull.bind("inproc://destroy-waiters")

    waiters = [gevent.spawn(outcome, pull.recv) for _ in range(5)]
    waiters += [gevent.spawn(outcome, lambda: dealer.send(b"x")) for _ in range(5)]
    gevent.idle()
    start = time.monotonic()
    ctx.destroy(linger=0)
    gevent.joinall(waiters, timeout=2)
    assert time.monotonic() - start < 1
    assert pull.closed and dealer.closed and ctx.closed
    errors = [w.value for w in waiters]
    assert all(type(e) is zmq.ZMQError and e.errno == zmq.ENOTSOCK for e in errors), errors


@pytest.mark.timeout(10)
def test_term_from_a_native_thread_without_a_hub(refused_endpoint: str) -> None:
    ctx = zmq_green.Context()
    lingering_push(ctx, refused_endpoint).close()
    failures: list[BaseException] = []

    def term() -> None:
        try:
            ctx.term()
        except BaseException as e:  # pragma: no cover - reported below
            failures.append(e)

    thread = threading.Thread(target=term)
    thread.start()
    thread.join(5)
    assert not thread.is_alive() and failures == []
    assert ctx.closed


@pytest.mark.parametrize("call", ["socket", "term", "destroy"])
def test_calls_on_a_terminated_context_behave_as_in_pyzmq(mod: Any, call: str) -> None:
    ctx = mod.Context()
    ctx.term()
    if call == "socket":
        with pytest.raises(mod.ZMQError) as raised:
            ctx.socket(mod.PUSH)
        assert raised.value.errno == mod.ENOTSUP
    else:
        getattr(ctx, call)()  # a no-op once closed
    assert ctx.closed


def test_unreferenced_context_is_destroyed_by_its_finalizer(monkeypatch: pytest.MonkeyPatch) -> None:
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    ctx = zmq_green.Context()
    sock = ctx.socket(zmq.PULL)  # holds the context: finalized first, and closed
    ref = weakref.ref(ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del ctx, sock
        gc.collect()
    assert ref() is None
    assert unraisable == []


def test_a_finalizer_terminates_its_context_without_switching_greenlets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The garbage collector may run a context's finalizer in any greenlet, in the middle
    of anything: it terminates the context there and then, never letting the hub (and so
    other greenlets) run before the interrupted code resumes."""
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    others = Ticker(every=0)  # ticks whenever the hub lets it run
    gevent.sleep(0)
    ctx = zmq_green.Context()
    ref = weakref.ref(ctx)
    cycle: list[Any] = [ctx]
    cycle.append(cycle)  # only the collector frees it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del ctx, cycle
        before = others.ticks
        gc.collect()
        assert others.ticks == before, "the finalizer let other greenlets run"
    assert ref() is None
    assert unraisable == []
    others.stop()
