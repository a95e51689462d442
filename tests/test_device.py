"""Green device, proxy and proxy_steerable: libzmq's proxy off the hub, stoppable by kill."""

from __future__ import annotations

import struct
import threading
import time
from typing import Any, Callable

import gevent
import pytest
import zmq
from conftest import outcome, pair, until

import zmq_green
from zmq_green._waiting import waits_of

HANG_GUARD = 10.0  # seconds for what should happen at once; only a hung test reaches it

# -- helpers -------------------------------------------------------------------


class Background:
    """``func(*args)`` beside the test: a greenlet for zmq_green, a thread for pyzmq,
    whose proxy blocks the thread that calls it."""

    def __init__(self, mod: Any, func: Callable[..., Any], *args: Any) -> None:
        self._green = mod is zmq_green
        if self._green:
            self._greenlet = gevent.spawn(outcome, func, *args)
        else:
            self._result: list[Any] = []
            self._thread = threading.Thread(
                target=lambda: self._result.append(outcome(func, *args)), daemon=True
            )
            self._thread.start()

    def result(self, timeout: float = 5.0) -> Any:
        if self._green:
            return self._greenlet.get(timeout=timeout)
        self._thread.join(timeout)
        assert self._result, "still running"
        return self._result[0]


def control_pair(ctx: Any, control_type: int = zmq.PAIR) -> tuple[Any, Any]:
    """(the proxy's control socket, the test's end of it)."""
    peer_type = zmq.REQ if control_type == zmq.REP else zmq.PAIR
    return pair(ctx, control_type, peer_type)


def statistics(control_peer: Any) -> list[int]:
    control_peer.send(b"STATISTICS")
    return [struct.unpack("<Q", frame)[0] for frame in control_peer.recv_multipart()]


def command(control_peer: Any, name: bytes) -> None:
    """Send a command; libzmq 4.3.5 answers every one with an empty message."""
    control_peer.send(name)
    assert control_peer.recv_multipart() == [b""]


def stream(ctx: Any) -> tuple[Any, Any, Any, Any]:
    """(frontend PULL, backend PUSH, producer PUSH, consumer PULL), connected."""
    frontend, producer = pair(ctx, zmq.PULL, zmq.PUSH)
    backend, consumer = pair(ctx, zmq.PUSH, zmq.PULL)
    return frontend, backend, producer, consumer


# -- queues, ETERM -----------------------------------------------------------------


@pytest.mark.timeout(10)
def test_proxy_queue_moves_requests_and_replies(ctx: zmq_green.Context) -> None:
    frontend, client = pair(ctx, zmq.ROUTER, zmq.REQ)
    backend, worker = pair(ctx, zmq.DEALER, zmq.REP)
    running = gevent.spawn(outcome, zmq_green.proxy, frontend, backend)

    def serve() -> None:
        for _ in range(20):
            worker.send(worker.recv().upper())

    serving = gevent.spawn(serve)
    for i in range(20):
        client.send(b"req %d" % i)
        assert client.recv() == b"REQ %d" % i
    serving.get(timeout=5)
    running.kill()
    assert isinstance(running.value, gevent.GreenletExit)


@pytest.mark.timeout(10)
def test_device_with_one_socket_on_both_sides_echoes_as_in_pyzmq(mod: Any) -> None:
    ctx = mod.Context()
    rep, req = pair(ctx, zmq.REP, zmq.REQ)

    def run() -> Any:
        try:
            return mod.device(zmq.QUEUE, rep, rep)
        finally:
            rep.close()

    running = Background(mod, run)
    for msg in (b"hello", b"again"):
        req.send(msg)
        assert req.recv() == msg
    req.close()
    ctx.term()  # green in zmq_green: the proxy greenlet gets ETERM meanwhile
    assert isinstance(running.result(), zmq.ContextTerminated)


@pytest.mark.timeout(10)
def test_context_term_ends_the_proxy_with_eterm_as_in_pyzmq(mod: Any) -> None:
    ctx = mod.Context()
    frontend, backend, producer, consumer = stream(ctx)

    def run() -> Any:
        try:
            return mod.proxy(frontend, backend)
        finally:
            frontend.close()
            backend.close()

    running = Background(mod, run)
    producer.send(b"m")
    assert consumer.recv() == b"m"
    producer.close()
    consumer.close()
    ctx.term()
    error = running.result()
    assert isinstance(error, zmq.ContextTerminated) and error.errno == zmq.ETERM


# -- capture and control ---------------------------------------------------------


@pytest.mark.timeout(10)
def test_capture_gets_a_copy_of_every_message_as_in_pyzmq(mod: Any, mod_ctx: Any) -> None:
    frontend, backend, producer, consumer = stream(mod_ctx)
    capture, captured = pair(mod_ctx, zmq.PUSH, zmq.PULL)
    control, peer = control_pair(mod_ctx)
    running = Background(mod, mod.proxy_steerable, frontend, backend, capture, control)
    sent = [[b"one"], [b"two", b"parts"], [b"three", b"", b"frames"]]
    for msg in sent:
        producer.send_multipart(msg)
    assert [consumer.recv_multipart() for _ in sent] == sent
    assert [captured.recv_multipart() for _ in sent] == sent
    command(peer, b"TERMINATE")
    assert running.result() == 0
    # The proxy has returned: whatever it sent to the inproc capture is there already.
    assert captured.poll(0) == 0, "commands are not captured"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("control_type", [zmq.PAIR, zmq.REP], ids=["PAIR", "REP"])
def test_terminate_ends_the_proxy_with_0_as_in_pyzmq(mod: Any, mod_ctx: Any, control_type: int) -> None:
    frontend, backend, producer, consumer = stream(mod_ctx)
    control, peer = control_pair(mod_ctx, control_type)
    running = Background(mod, mod.proxy_steerable, frontend, backend, None, control)
    producer.send(b"m")
    assert consumer.recv() == b"m"
    command(peer, b"TERMINATE")
    assert running.result() == 0
    # The sockets are ours again.
    producer.send(b"after")
    assert frontend.recv() == b"after"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("control_type", [zmq.PAIR, zmq.REP], ids=["PAIR", "REP"])
def test_statistics_answers_libzmqs_counters_as_in_pyzmq(mod: Any, mod_ctx: Any, control_type: int) -> None:
    frontend, client = pair(mod_ctx, zmq.ROUTER, zmq.DEALER)
    backend, worker = pair(mod_ctx, zmq.DEALER, zmq.DEALER)
    control, peer = control_pair(mod_ctx, control_type)
    running = Background(mod, mod.proxy_steerable, frontend, backend, None, control)
    assert statistics(peer) == [0] * 8
    client.send_multipart([b"ab", b"cde"])
    request = worker.recv_multipart()
    assert request[1:] == [b"ab", b"cde"]
    worker.send_multipart([request[0], b"reply"])
    assert client.recv_multipart() == [b"reply"]
    size = len(request[0]) + 5  # the routing id and 5 bytes each way
    # [frontend received, sent, backend received, sent], each as (frames, bytes)
    assert statistics(peer) == [3, size, 2, size, 2, size, 3, size]
    command(peer, b"TERMINATE")
    assert running.result() == 0


@pytest.mark.timeout(10)
def test_pause_is_answered_and_forwarding_goes_on_as_in_pyzmq(mod: Any, mod_ctx: Any) -> None:
    # libzmq 4.3.5's proxy answers PAUSE but keeps forwarding (what it does after
    # RESUME is not asserted: here nothing sent after it arrived); the green proxy,
    # being libzmq's own, does the same.
    frontend, backend, producer, consumer = stream(mod_ctx)
    control, peer = control_pair(mod_ctx)
    consumer.rcvtimeo = 5000  # a hang guard: zmq.Again instead of a hung test
    running = Background(mod, mod.proxy_steerable, frontend, backend, None, control)
    command(peer, b"PAUSE")  # answered: the proxy has read it
    producer.send(b"sent while paused")
    assert consumer.recv() == b"sent while paused"  # before RESUME was sent
    command(peer, b"RESUME")
    command(peer, b"TERMINATE")
    assert running.result() == 0


@pytest.mark.timeout(10)
def test_unknown_commands_are_ignored_as_in_pyzmq(mod: Any, mod_ctx: Any) -> None:
    frontend, backend, producer, consumer = stream(mod_ctx)
    control, peer = control_pair(mod_ctx)
    running = Background(mod, mod.proxy_steerable, frontend, backend, None, control)
    command(peer, b"NONSENSE")
    assert len(statistics(peer)) == 8
    producer.send(b"m")
    assert consumer.recv() == b"m"
    command(peer, b"TERMINATE")
    assert running.result() == 0


# -- stopping by kill or gevent.Timeout --------------------------------------------


@pytest.mark.timeout(20)
def test_device_killed_mid_stream_lets_go_of_its_sockets_and_the_context_then_terms() -> None:
    ctx = zmq_green.Context()
    frontend, backend, producer, consumer = stream(ctx)
    running = gevent.spawn(outcome, zmq_green.device, zmq.STREAMER, frontend, backend)
    received = 0

    def produce() -> None:
        while True:
            producer.send(b"x" * 100)

    def consume() -> None:
        nonlocal received
        while True:
            consumer.recv()
            received += 1

    workers = [gevent.spawn(produce), gevent.spawn(consume)]
    until(lambda: received >= 10_000)
    with gevent.Timeout(HANG_GUARD):  # kill waits for the proxy's thread to end
        running.kill()
    assert isinstance(running.value, gevent.GreenletExit)
    gevent.killall(workers)
    # The proxy has let go of its sockets: they are usable here, then closable.
    # (The producer filled both high-water marks; drain them first.)
    drained = 0
    while frontend.poll(0):
        assert frontend.recv() == b"x" * 100
        drained += 1
    producer.send(b"mine")
    assert frontend.recv() == b"mine"
    assert drained > 0
    for s in (frontend, backend, producer, consumer):
        s.close()
    with gevent.Timeout(HANG_GUARD):
        ctx.term()


@pytest.mark.timeout(10)
def test_gevent_timeout_around_a_proxy_stops_it_and_frees_its_sockets(ctx: zmq_green.Context) -> None:
    frontend, backend, producer, _ = stream(ctx)
    control, peer = control_pair(ctx)
    start = time.monotonic()
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.1):
        zmq_green.proxy_steerable(frontend, backend, None, control)
    assert time.monotonic() - start >= 0.1  # the proxy ran until the timeout, not less
    # No greenlet is left waiting on the control socket, and nothing uses the others.
    assert waits_of(control).count == 0
    peer.send(b"to the test")
    assert control.recv() == b"to the test"
    producer.send(b"m")
    assert frontend.recv() == b"m"


@pytest.mark.timeout(30)
def test_more_proxies_than_threadpool_workers_do_not_starve_context_term() -> None:
    ctx = zmq_green.Context()
    count = gevent.get_hub().threadpool.maxsize + 2
    streams = [stream(ctx) for _ in range(count)]

    def run(frontend: Any, backend: Any) -> Any:
        try:
            return zmq_green.proxy(frontend, backend)
        finally:
            frontend.close()
            backend.close()

    proxies = [gevent.spawn(outcome, run, f, b) for f, b, _, _ in streams]
    for _, _, producer, consumer in streams:
        producer.send(b"m")
        assert consumer.recv() == b"m"
        producer.close()
        consumer.close()
    with gevent.Timeout(10):
        ctx.term()
    assert all(isinstance(g.get(), zmq.ContextTerminated) for g in proxies)


@pytest.mark.timeout(10)
def test_proxy_called_where_no_hub_runs_blocks_that_thread_as_pyzmq() -> None:
    ctx = zmq_green.Context()
    try:
        frontend, backend, producer, consumer = stream(ctx)
        control, peer = control_pair(ctx)
        result: list[Any] = []
        thread = threading.Thread(
            target=lambda: result.append(zmq_green.proxy_steerable(frontend, backend, None, control))
        )
        thread.start()
        producer.send(b"m")
        assert consumer.recv() == b"m"
        command(peer, b"TERMINATE")
        thread.join(5)
        assert result == [0]
    finally:
        ctx.destroy(linger=0)
