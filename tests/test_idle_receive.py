"""A receive after one that found nothing asks ``EVENTS`` first, and changes nothing else.

A server that answers a request and asks for the next finds nothing most times.
Its next blocking receive reads ``EVENTS`` instead of failing a try (a raised
``Again``), where the answer is enough: every type but REQ and REP, whose receive
out of turn fails with ``EFSM`` (see ``zmq_green.socket._nothing_yet``). These
tests count the failed tries, and check that what a program sees is pyzmq's.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import zmq
from conftest import outcome, pair, until
from transports import HANG_GUARD, TRANSPORTS, bound, connecting

import zmq_green
import zmq_green.socket as green_socket

ROUND_TRIPS = 50


@pytest.fixture
def failed_receives(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A one-item list: the green receives' tries that failed with ``EAGAIN`` so far."""
    failed = [0]
    raw = green_socket._recv

    def counted(*args: Any) -> Any:
        try:
            return raw(*args)
        except zmq.Again:
            failed[0] += 1
            raise

    monkeypatch.setattr(green_socket, "_recv", counted)
    yield failed


def serve_round_trips(server: Any, client: Any, reply: Any) -> None:
    """*server* answers :data:`ROUND_TRIPS` requests from *client*, each in its own greenlet's turn."""

    def serve() -> None:
        for _ in range(ROUND_TRIPS):
            reply(server, server.recv_multipart())

    serving = gevent.spawn(serve)
    for i in range(ROUND_TRIPS):
        client.send(b"%d" % i)
        assert client.recv() == b"%d" % i
    serving.get(timeout=HANG_GUARD)


#: server type, client type, how the server answers a request
ROUND_TRIP_PAIRS = {
    "ROUTER-DEALER": (zmq.ROUTER, zmq.DEALER, lambda s, m: s.send_multipart(m)),
    "REP-REQ": (zmq.REP, zmq.REQ, lambda s, m: s.send(m[0])),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kinds", list(ROUND_TRIP_PAIRS))
def test_a_server_waiting_for_each_request_fails_no_try_per_request(
    ctx: zmq_green.Context, failed_receives: list[int], transport: str, kinds: str
) -> None:
    server_type, client_type, reply = ROUND_TRIP_PAIRS[kinds]
    server, address = bound(ctx, server_type, transport)
    serve_round_trips(server, connecting(ctx, client_type, address), reply)
    # Each side's receive asks: after one that found nothing, or (REQ, REP) right
    # after its send. A try after a wake-up by a command that brought no message
    # fails, rarely: trying on each request would fail twice per round trip.
    assert failed_receives[0] <= ROUND_TRIPS // 5, failed_receives


def received_after_waiting(mod: Any, sock: Any, provide: Any) -> Any:
    """``sock.recv()``, made to wait for what *provide* sends (green); with pyzmq, provide first.

    A green receive that waited leaves the socket's next receive asking first.
    """
    if mod is zmq:
        provide()
        return sock.recv()
    before = zmq_green.stats()["waits"]
    receiving = gevent.spawn(sock.recv)
    until(lambda: zmq_green.stats()["waits"] > before)
    provide()
    return receiving.get(timeout=HANG_GUARD)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("kind", "peer_gone"), [("REQ", False), ("REQ", True), ("REP", False)])
def test_a_receive_out_of_turn_after_one_that_waited_raises_efsm_as_in_pyzmq(
    mod: Any, mod_ctx: Any, kind: str, peer_gone: bool
) -> None:
    """Out of turn, pyzmq fails at once, and so must we, without waiting.

    With its peer gone, a REQ out of turn shows no ``POLLOUT`` (no peer has room):
    ``EVENTS`` then looks like a wait.
    """
    rep, req = pair(mod_ctx, zmq.REP, zmq.REQ)
    # A receive that waited (not an error) would end in Again, not hang.
    rep.rcvtimeo = req.rcvtimeo = 1000
    if kind == "REQ":
        req.send(b"q")
        assert rep.recv() == b"q"
        assert received_after_waiting(mod, req, lambda: rep.send(b"r")) == b"r"
        waited, peer = req, rep
    else:
        assert received_after_waiting(mod, rep, lambda: req.send(b"q")) == b"q"
        waited, peer = rep, req
    if peer_gone:
        peer.close()
        until_gone(waited)
    waits = zmq_green.stats()["waits"]
    error = outcome(waited.recv)
    assert type(error) is zmq.ZMQError and error.errno == zmq.EFSM
    assert zmq_green.stats()["waits"] == waits


def until_gone(sock: Any) -> None:
    """Until *sock* shows no ``POLLOUT``: its only peer's pipe is gone."""
    for _ in range(500):
        if not sock.getsockopt(zmq.EVENTS) & zmq.POLLOUT:
            return
        gevent.sleep(0.002)
    raise AssertionError("the peer's pipe is still there")


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", ["REQ", "REP"])
def test_a_receive_in_turn_after_a_send_waits_for_the_answer_as_in_pyzmq(
    mod: Any, mod_ctx: Any, kind: str
) -> None:
    rep, req = pair(mod_ctx, zmq.REP, zmq.REQ)
    rep.rcvtimeo = req.rcvtimeo = 20
    req.send(b"q")
    asking = req
    if kind == "REP":
        rep.rcvtimeo = 1000
        assert rep.recv() == b"q"
        rep.rcvtimeo = 20
        rep.send(b"r")
        asking = rep
    # Nothing to receive yet, in turn: the timeout, as in pyzmq.
    assert isinstance(outcome(asking.recv), zmq.Again)


@pytest.mark.timeout(10)
def test_an_idle_receive_with_dontwait_or_on_a_closed_socket_raises_as_in_pyzmq(
    mod: Any, mod_ctx: Any
) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    pull.rcvtimeo = 10
    assert isinstance(outcome(pull.recv), zmq.Again)
    assert isinstance(outcome(pull.recv, zmq.DONTWAIT), zmq.Again)
    push.send(b"m")
    pull.rcvtimeo = 1000
    assert pull.recv() == b"m"
    pull.rcvtimeo = 10
    assert isinstance(outcome(pull.recv), zmq.Again)
    pull.close()
    error = outcome(pull.recv)
    assert type(error) is zmq.ZMQError and error.errno == zmq.ENOTSOCK


@pytest.mark.timeout(10)
def test_once_a_message_is_found_receives_try_at_once_again(
    ctx: zmq_green.Context, option_reads: Counter[int]
) -> None:
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    assert received_after_waiting(zmq_green, pull, lambda: push.send(b"first")) == b"first"
    for i in range(10):
        push.send(b"%d" % i)
    option_reads.clear()
    assert [pull.recv() for _ in range(10)] == [b"%d" % i for i in range(10)]
    # One question found the first message ready; the nine after it were simply taken.
    assert option_reads[zmq.EVENTS] == 1


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_messages_from_another_thread_at_any_moment_reach_an_idle_receiver(
    ctx: zmq_green.Context, transport: str
) -> None:
    """A message landing between the question and the wait is never missed (the safety net counts)."""
    count = 2000
    pull, address = bound(ctx, zmq.PULL, transport)
    plain = zmq.Context()

    def send() -> None:
        push = plain.socket(zmq.PUSH)
        push.linger = 0
        push.connect(address)
        pace = random.Random(transport)
        for i in range(count):
            push.send(b"%d" % i)
            if pace.random() < 0.5:
                threading.Event().wait(pace.random() * 0.0002)
        push.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert [pull.recv() for _ in range(count)] == [b"%d" % i for i in range(count)]
    finally:
        sender.join()
        plain.term()


@pytest.mark.timeout(10)
def test_a_reply_taken_through_a_plain_shadow_leaves_the_req_out_of_turn_as_in_pyzmq(
    mod: Any, mod_ctx: Any
) -> None:
    rep, req = pair(mod_ctx, zmq.REP, zmq.REQ)
    rep.rcvtimeo = req.rcvtimeo = 1000
    req.send(b"q")  # in turn to receive: the next receive would ask
    assert rep.recv() == b"q"
    rep.send(b"r")
    plain = zmq.Socket.shadow(req.underlying)
    plain.rcvtimeo = 1000
    assert plain.recv() == b"r"  # unseen by zmq_green: the turn is the REQ's send now
    waits = zmq_green.stats()["waits"]
    error = outcome(req.recv)
    assert type(error) is zmq.ZMQError and error.errno == zmq.EFSM
    assert zmq_green.stats()["waits"] == waits


@pytest.mark.timeout(10)
@pytest.mark.parametrize("how", ["kill", "gevent.Timeout"])
def test_an_interrupted_receive_in_turn_leaves_the_req_in_turn(ctx: zmq_green.Context, how: str) -> None:
    rep, req = pair(ctx, zmq.REP, zmq.REQ)
    req.send(b"q")
    before = zmq_green.stats()["waits"]
    if how == "kill":
        receiving = gevent.spawn(req.recv)
        until(lambda: zmq_green.stats()["waits"] > before)
        receiving.kill()
        assert isinstance(receiving.value, gevent.GreenletExit)
    else:
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.01):
            req.recv()
    # Still the REQ's turn to receive: the reply comes to the next receive, which asks first...
    assert rep.recv() == b"q"
    assert received_after_waiting(zmq_green, req, lambda: rep.send(b"r")) == b"r"
    # ...and the one after it is out of turn: EFSM at once.
    waits = zmq_green.stats()["waits"]
    error = outcome(req.recv)
    assert type(error) is zmq.ZMQError and error.errno == zmq.EFSM
    assert zmq_green.stats()["waits"] == waits
