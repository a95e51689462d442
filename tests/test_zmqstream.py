"""ZMQStream: pyzmq's semantics on the gevent hub.

Tests that take ``impl`` run the same body on pyzmq's ZMQStream over tornado (the
reference) and on zmq_green's; each loop runs until the body stops it, or fails
after a deadline. The others need greenlets, which only zmq_green's loop serves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import gevent
import gevent.event
import pytest
import zmq
from conftest import pair

import zmq_green
from zmq_green.eventloop import IOLoop, PeriodicCallback, ZMQStream


class GreenEvent:
    """A gevent Event with an awaitable ``wait()``: a coroutine that blocks greenly."""

    def __init__(self) -> None:
        self._event = gevent.event.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        self._event.wait()


@dataclass
class Impl:
    """One ZMQStream implementation with its loop and context."""

    name: str
    zmq: Any  # the module that makes contexts
    loop: Any
    Stream: Any
    PeriodicCallback: Any
    Event: Any  # an event whose wait() is awaited
    ctx: Any = field(init=False)

    def __post_init__(self) -> None:
        self.ctx = self.zmq.Context()

    def pair(self, a_type: int, b_type: int, hwm: int | None = None) -> tuple[Any, Any]:
        """Two connected inproc sockets; *hwm* sets both high-water marks (0: none)."""
        if hwm is None:
            return pair(self.ctx, a_type, b_type)
        a, b = self.ctx.socket(a_type), self.ctx.socket(b_type)
        for sock in (a, b):
            sock.linger = 0
            sock.sndhwm = sock.rcvhwm = hwm
        a.bind(f"inproc://hwm-{id(a)}")
        b.connect(f"inproc://hwm-{id(a)}")
        return a, b

    def streams(self, a_type: int, b_type: int) -> tuple[Any, Any]:
        a, b = self.pair(a_type, b_type)
        return self.Stream(a, self.loop), self.Stream(b, self.loop)

    def run(self, seconds: float = 20.0) -> None:
        """Run the loop until the test stops it; fail if *seconds* pass first."""
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            self.loop.stop()

        handle = self.loop.call_later(seconds, expire)
        self.loop.start()
        self.loop.remove_timeout(handle)
        assert not expired, f"{self.name}: the loop was not stopped within {seconds} s"

    def close(self) -> None:
        self.loop.close(all_fds=False)
        self.ctx.destroy(linger=0)


@pytest.fixture(params=["pyzmq", "zmq_green"])
def impl(request: pytest.FixtureRequest) -> Iterator[Impl]:
    if request.param == "pyzmq":
        tornado_ioloop = pytest.importorskip("tornado.ioloop")  # the reference needs tornado
        from zmq.eventloop.zmqstream import ZMQStream as PyzmqStream

        made = Impl(
            "pyzmq",
            zmq,
            tornado_ioloop.IOLoop(make_current=False),
            PyzmqStream,
            tornado_ioloop.PeriodicCallback,
            asyncio.Event,
        )
    else:
        made = Impl("zmq_green", zmq_green, IOLoop(), ZMQStream, PeriodicCallback, GreenEvent)
    yield made
    made.close()


@pytest.fixture
def green() -> Iterator[Impl]:
    made = Impl("zmq_green", zmq_green, IOLoop(), ZMQStream, PeriodicCallback, GreenEvent)
    yield made
    made.close()


# -- the same behaviour as pyzmq's ZMQStream ------------------------------------


@pytest.mark.timeout(30)
def test_echo_rep_stream_with_a_req_stream_client(impl: Impl) -> None:
    server, client = impl.streams(zmq.REP, zmq.REQ)
    server.on_recv(server.send_multipart)
    replies: list[list[bytes]] = []

    def on_reply(msg: list[bytes]) -> None:
        replies.append(msg)
        if len(replies) == 5:
            impl.loop.stop()

    client.on_recv(on_reply)
    # A REQ socket takes the next request only after the reply: the stream holds
    # the queued ones until the socket can send them, and loses none.
    for i in range(5):
        client.send_multipart([b"echo", b"%d" % i])
    impl.run()
    assert replies == [[b"echo", b"%d" % i] for i in range(5)]


@pytest.mark.timeout(30)
def test_one_callback_serves_two_streams(impl: Impl) -> None:
    (router1, dealer1), (router2, dealer2) = (
        impl.streams(zmq.ROUTER, zmq.DEALER),
        impl.streams(zmq.ROUTER, zmq.DEALER),
    )
    served: list[tuple[Any, bytes]] = []

    def echo(stream: Any, msg: list[bytes]) -> None:
        served.append((stream, msg[-1]))
        stream.send_multipart(msg)

    router1.on_recv_stream(echo)
    router2.on_recv_stream(echo)
    answers: dict[str, list[bytes]] = {"one": [], "two": []}

    def answered(name: str) -> Callable[[list[bytes]], None]:
        def on_recv(msg: list[bytes]) -> None:
            answers[name].append(msg[-1])
            if len(answers["one"]) == 3 and len(answers["two"]) == 3:
                impl.loop.stop()

        return on_recv

    dealer1.on_recv(answered("one"))
    dealer2.on_recv(answered("two"))
    for i in range(3):
        dealer1.send(b"one-%d" % i)
        dealer2.send(b"two-%d" % i)
    impl.run()
    assert answers == {"one": [b"one-0", b"one-1", b"one-2"], "two": [b"two-0", b"two-1", b"two-2"]}
    assert sorted(body for stream, body in served if stream is router1) == answers["one"]
    assert sorted(body for stream, body in served if stream is router2) == answers["two"]


@pytest.mark.timeout(60)
def test_burst_queued_before_start_is_delivered_in_full_in_order(impl: Impl) -> None:
    count = 10_000
    push, pull = impl.pair(zmq.PUSH, zmq.PULL, hwm=0)
    for i in range(count):
        push.send(b"%d" % i)
    received: list[int] = []

    def on_recv(msg: list[bytes]) -> None:
        received.append(int(msg[0]))
        if len(received) == count:
            impl.loop.stop()

    impl.Stream(pull, impl.loop).on_recv(on_recv)
    impl.run(40)
    assert received == list(range(count))


@pytest.mark.timeout(30)
def test_send_callbacks_run_in_order_with_pyzmqs_replacement_rule(impl: Impl) -> None:
    push, pull = impl.pair(zmq.PUSH, zmq.PULL)
    stream = impl.Stream(push, impl.loop)
    sent: list[tuple[str, list[bytes], Any]] = []

    def recorder(name: str) -> Callable[[list[bytes], Any], None]:
        return lambda msg, status: sent.append((name, list(msg), status))

    stream.on_send(recorder("on_send"))
    # A callback given to a send becomes the on_send callback: it is the one in
    # place when the loop sends that reports every queued message.
    stream.send(b"a")
    stream.send_multipart([b"b", b"c"], callback=recorder("second"))
    stream.send_string("d")
    stream.send_json({"e": 1})
    stream.send_pyobj(("f",))
    stream.send_multipart([b"g", b"h"], copy=False, track=True)
    received: list[list[bytes]] = []

    def on_recv(msg: list[bytes]) -> None:
        received.append(msg)
        if len(received) == 6:
            impl.loop.stop()

    impl.Stream(pull, impl.loop).on_recv(on_recv)
    impl.run()
    assert [name for name, _, _ in sent] == ["second"] * 6
    assert [msg for _, msg, _ in sent] == received
    assert received[:3] == [[b"a"], [b"b", b"c"], [b"d"]]
    assert zmq.utils.jsonapi.loads(received[3][0]) == {"e": 1}
    assert [status for _, _, status in sent[:5]] == [None] * 5
    assert isinstance(sent[5][2], zmq.MessageTracker)
    assert not stream.sending()


@pytest.mark.timeout(30)
def test_a_tracked_one_frame_send_reports_its_tracker(impl: Impl) -> None:
    push, pull = impl.streams(zmq.PUSH, zmq.PULL)
    statuses: list[Any] = []
    pull.on_recv(lambda msg: impl.loop.stop())
    push.send(b"g", copy=False, track=True, callback=lambda msg, status: statuses.append(status))
    impl.run()
    assert isinstance(statuses[0], zmq.MessageTracker)


@pytest.mark.timeout(30)
def test_sends_wait_in_the_queue_while_the_socket_is_full(impl: Impl) -> None:
    push, pull = impl.pair(zmq.PUSH, zmq.PULL, hwm=1)
    sender, receiver = impl.Stream(push, impl.loop), impl.Stream(pull, impl.loop)
    sent: list[bytes] = []
    sender.on_send(lambda msg, status: sent.append(msg[0]))
    for i in range(50):
        sender.send(b"%d" % i)
    received: list[bytes] = []

    def on_recv(msg: list[bytes]) -> None:
        received.append(msg[0])
        if len(received) == 50:
            impl.loop.stop()

    receiver.on_recv(on_recv)
    impl.run()
    assert received == sent == [b"%d" % i for i in range(50)]
    assert not sender.sending()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("resume_with", ["on_recv", "on_recv_stream"])
def test_pause_and_resume_receiving(impl: Impl, resume_with: str) -> None:
    push, pull = impl.pair(zmq.PUSH, zmq.PULL)
    for i in range(10):
        push.send(b"%d" % i)
    stream = impl.Stream(pull, impl.loop)
    received: list[bytes] = []
    paused_at: list[int] = []

    def on_recv(msg: list[bytes]) -> None:
        received.append(msg[0])
        if len(received) == 3:
            stream.on_recv(None)  # pause
            check_paused(5)
        elif len(received) == 10:
            impl.loop.stop()

    def check_paused(iterations: int) -> None:
        # Several loop iterations pass while paused: nothing may arrive.
        paused_at.append(len(received))
        if iterations:
            impl.loop.add_callback(check_paused, iterations - 1)
        elif resume_with == "on_recv":
            stream.on_recv(on_recv)
        else:
            stream.on_recv_stream(lambda s, msg: on_recv(msg))

    stream.on_recv_stream(lambda s, msg: on_recv(msg))
    impl.run()
    assert paused_at == [3] * 6
    assert received == [b"%d" % i for i in range(10)]
    assert stream.receiving()


@pytest.mark.timeout(30)
def test_flush_with_a_limit_counts_what_it_handled(impl: Impl) -> None:
    push, pull = impl.pair(zmq.PUSH, zmq.PULL)
    out, into = impl.pair(zmq.PUSH, zmq.PULL)
    for i in range(5):
        push.send(b"%d" % i)
    stream = impl.Stream(pull, impl.loop)
    received: list[bytes] = []
    stream.on_recv(lambda msg: received.append(msg[0]))
    assert zmq.zmq_poll([(pull, zmq.POLLIN)], 5000)  # the burst has arrived
    assert stream.flush(zmq.POLLIN, limit=3) == 3
    assert received == [b"0", b"1", b"2"]
    assert stream.flush(zmq.POLLOUT) == 0  # nothing to send
    assert stream.flush() == 2
    assert stream.flush() == 0
    assert received == [b"%d" % i for i in range(5)]

    sender = impl.Stream(out, impl.loop)
    sent: list[list[bytes]] = []
    sender.on_send(lambda msg, status: sent.append(msg))
    for i in range(4):
        sender.send(b"%d" % i)
    assert sender.flush(zmq.POLLIN) == 0  # nothing to receive, sends untouched
    assert sender.flush(zmq.POLLOUT, limit=1) == 1
    assert sender.flush(limit=10) == 3
    assert sent == [[b"%d" % i] for i in range(4)]
    assert not sender.sending()
    assert [into.recv() for _ in range(4)] == [b"%d" % i for i in range(4)]

    # With no receive callback, flushing POLLIN drops what is there.
    stream.stop_on_recv()
    push.send(b"x")
    push.send(b"y")
    assert zmq.zmq_poll([(pull, zmq.POLLIN)], 5000)
    assert stream.flush(zmq.POLLIN) == 2
    assert pull.poll(0) == 0
    assert len(received) == 5


@pytest.mark.timeout(30)
def test_periodic_callback(impl: Impl) -> None:
    calls: list[float] = []
    periodic: list[Any] = []

    def tick() -> None:
        calls.append(impl.loop.time())
        if len(calls) == 2:
            raise RuntimeError("a failing tick does not stop the schedule")
        if len(calls) == 4:
            periodic[0].stop()
            impl.loop.add_callback(impl.loop.stop)

    def begin() -> None:
        pc = impl.PeriodicCallback(tick, 10)
        periodic.append(pc)
        assert not pc.is_running()
        pc.start()
        assert pc.is_running()

    impl.loop.add_callback(begin)
    impl.run()
    assert len(calls) == 4
    assert not periodic[0].is_running()
    assert all(b > a for a, b in zip(calls, calls[1:]))
    with pytest.raises(ValueError):
        impl.PeriodicCallback(tick, 0)


@pytest.mark.timeout(30)
@pytest.mark.filterwarnings("ignore:Unregistering FD:UserWarning")  # pyzmq's, closing behind its back
def test_close_callback_and_closed_state(impl: Impl) -> None:
    a, b = impl.pair(zmq.PAIR, zmq.PAIR)
    stream = impl.Stream(a, impl.loop)
    closes: list[bool] = []
    stream.set_close_callback(lambda: closes.append(stream.closed()))
    assert not stream.closed()
    stream.close(linger=0)
    assert closes == [True]
    assert stream.closed() and a.closed
    stream.close()  # again: nothing happens
    assert closes == [True]
    with pytest.raises(OSError):
        stream.send(b"late")
    with pytest.raises(OSError):
        stream.on_recv(lambda msg: None)

    # A socket closed behind the stream's back: closed() notices and closes it.
    other = impl.Stream(b, impl.loop)
    other.set_close_callback(lambda: closes.append(True))
    b.close(linger=0)
    assert other.closed()
    assert closes == [True, True]


@pytest.mark.timeout(30)
def test_close_from_a_recv_callback_stops_delivery(impl: Impl) -> None:
    push, pull = impl.pair(zmq.PUSH, zmq.PULL)
    for i in range(5):
        push.send(b"%d" % i)
    stream = impl.Stream(pull, impl.loop)
    received: list[bytes] = []

    def on_recv(msg: list[bytes]) -> None:
        received.append(msg[0])
        stream.close()

    stream.set_close_callback(lambda: impl.loop.add_callback(impl.loop.stop))
    stream.on_recv(on_recv)
    impl.run()
    assert received == [b"0"]


@pytest.mark.timeout(30)
def test_copy_false_delivers_frames(impl: Impl) -> None:
    push, pull = impl.streams(zmq.PUSH, zmq.PULL)
    received: list[list[Any]] = []

    def on_recv(msg: list[Any]) -> None:
        received.append(msg)
        impl.loop.stop()

    pull.on_recv(on_recv, copy=False)
    push.send_multipart([b"a", b"b"])
    impl.run()
    assert [type(f) for f in received[0]] == [zmq.Frame, zmq.Frame]
    assert [f.bytes for f in received[0]] == [b"a", b"b"]


@pytest.mark.timeout(10)
def test_misuse_raises_what_pyzmq_raises(impl: Impl) -> None:
    a, _ = impl.pair(zmq.PAIR, zmq.PAIR)
    stream = impl.Stream(a, impl.loop)
    with pytest.raises(AssertionError):
        stream.on_recv("not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        stream.send_string(b"bytes")  # type: ignore[arg-type]
    assert stream.bind == a.bind
    assert stream.getsockopt(zmq.TYPE) == zmq.PAIR
    stream.close()


@pytest.mark.timeout(30)
def test_coroutine_callbacks_run_concurrently_to_their_end(impl: Impl) -> None:
    """pyzmq (25+) runs a coroutine callback's coroutine as an asyncio task; zmq_green in a greenlet.

    Each receive coroutine waits until all three messages have arrived, so all three
    run at once: a stream that awaited each one in turn would never finish.
    """
    push, pull = impl.streams(zmq.PUSH, zmq.PULL)
    all_in = impl.Event()
    started: list[bytes] = []
    finished: list[bytes] = []
    sent: list[bytes] = []

    def stop_when_done() -> None:
        if len(finished) == len(sent) == 3:
            impl.loop.stop()

    async def on_recv(msg: list[bytes]) -> None:
        started.append(msg[0])
        if len(started) == 3:
            all_in.set()
        await all_in.wait()
        finished.append(msg[0])
        stop_when_done()

    async def on_send(msg: list[bytes], status: Any) -> None:
        await asyncio.sleep(0)
        sent.append(msg[0])
        stop_when_done()

    pull.on_recv(on_recv)
    push.on_send(on_send)
    for i in range(3):
        push.send(b"%d" % i)
    impl.run()
    assert started == sent == [b"0", b"1", b"2"]
    assert sorted(finished) == [b"0", b"1", b"2"]


@pytest.mark.timeout(30)
def test_an_exception_in_a_coroutine_callback_is_logged_and_the_rest_still_arrives(
    impl: Impl, caplog: pytest.LogCaptureFixture
) -> None:
    push, pull = impl.streams(zmq.PUSH, zmq.PULL)
    received: list[bytes] = []

    def raised() -> list[BaseException]:
        return [r.exc_info[1] for r in caplog.records if r.exc_info and r.exc_info[1]]

    def stop_when_logged() -> None:
        # pyzmq logs from the task's done-callback, a loop iteration after it raised.
        if len(received) == 3 and raised():
            impl.loop.stop()
        else:
            impl.loop.call_later(0.001, stop_when_logged)

    async def on_recv(msg: list[bytes]) -> None:
        await asyncio.sleep(0)
        received.append(msg[0])
        if msg[0] == b"0":
            raise ValueError("boom")

    pull.on_recv_stream(lambda stream, msg: on_recv(msg))  # a plain function returning a coroutine
    for i in range(3):
        push.send(b"%d" % i)
    impl.loop.add_callback(stop_when_logged)
    with caplog.at_level(logging.ERROR):
        impl.run()
    assert sorted(received) == [b"0", b"1", b"2"]
    assert [str(e) for e in raised()] == ["boom"]


# -- where zmq_green's stream does better --------------------------------------


@pytest.mark.timeout(30)
def test_a_raising_callback_is_logged_and_the_rest_still_arrives(
    impl: Impl, caplog: pytest.LogCaptureFixture
) -> None:
    push, pull = impl.pair(zmq.PUSH, zmq.PULL)
    for i in range(3):
        push.send(b"%d" % i)
    received: list[bytes] = []

    def on_recv(msg: list[bytes]) -> None:
        received.append(msg[0])
        if len(received) == 1:
            raise ValueError("boom")
        if len(received) == 3:
            impl.loop.stop()

    impl.Stream(pull, impl.loop).on_recv(on_recv)
    if impl.name == "pyzmq":
        # pyzmq's handler dies with the exception after the edge-triggered fd was
        # consumed: the two other messages stay stranded in the socket.
        impl.loop.call_later(0.5, impl.loop.stop)
        with caplog.at_level(logging.CRITICAL):
            impl.loop.start()
        assert received == [b"0"]
        return
    with caplog.at_level(logging.ERROR, logger="zmq_green.eventloop"):
        impl.run()
    assert received == [b"0", b"1", b"2"]
    errors = [r for r in caplog.records if r.name == "zmq_green.eventloop" and r.exc_info]
    assert len(errors) == 1 and isinstance(errors[0].exc_info[1], ValueError)  # type: ignore[index]


@pytest.mark.timeout(30)
def test_a_callback_may_block_greenly_while_other_greenlets_run(green: Impl) -> None:
    push, pull = green.streams(zmq.PUSH, zmq.PULL)
    req, rep = green.pair(zmq.REQ, zmq.REP)
    answered: list[bytes] = []

    def server() -> None:
        # A greenlet outside the loop answers the blocking request below.
        rep.send(rep.recv() + b"!")

    def on_recv(msg: list[bytes]) -> None:
        req.send(msg[0])
        answered.append(req.recv())  # blocks this greenlet only
        if len(answered) == 2:
            green.loop.stop()

    pull.on_recv(on_recv)
    servers = [gevent.spawn(server), gevent.spawn(server)]
    push.send(b"a")
    push.send(b"b")
    green.run()
    gevent.joinall(servers, raise_error=True, timeout=10)
    assert answered == [b"a!", b"b!"]


@pytest.mark.timeout(30)
def test_echo_server_stream_with_a_green_req_client(green: Impl) -> None:
    server_sock, client_sock = green.pair(zmq.REP, zmq.REQ)
    server = ZMQStream(server_sock, green.loop)
    server.on_recv(server.send_multipart)
    replies: list[bytes] = []

    def client() -> None:
        for i in range(200):
            client_sock.send(b"%d" % i)
            replies.append(client_sock.recv())
        green.loop.add_callback(green.loop.stop)

    g = gevent.spawn(client)
    green.run()
    g.get(timeout=10)
    assert replies == [b"%d" % i for i in range(200)]


@pytest.mark.timeout(30)
def test_a_stream_send_from_another_greenlet_wakes_the_idle_loop(green: Impl) -> None:
    push, pull = green.streams(zmq.PUSH, zmq.PULL)
    received: list[list[bytes]] = []
    started = gevent.event.Event()

    def on_recv(msg: list[bytes]) -> None:
        received.append(msg)
        green.loop.stop()

    pull.on_recv(on_recv)
    green.loop.add_callback(started.set)

    def sender() -> None:
        started.wait()  # runs once the loop waits in its poll
        push.send(b"wake up")

    g = gevent.spawn(sender)
    green.run()
    g.get(timeout=10)
    assert received == [[b"wake up"]]


@pytest.mark.timeout(60)
def test_a_busy_stream_lets_other_greenlets_run(green: Impl) -> None:
    count = 10_000
    push, pull = green.pair(zmq.PUSH, zmq.PULL, hwm=0)
    for i in range(count):
        push.send(b"%d" % i)
    ticks = [0]
    ticks_seen: list[int] = []

    def ticker() -> None:
        while True:
            ticks[0] += 1
            gevent.sleep(0)

    def on_recv(msg: list[bytes]) -> None:
        ticks_seen.append(ticks[0])
        if len(ticks_seen) == count:
            green.loop.stop()

    ZMQStream(pull, green.loop).on_recv(on_recv)
    t = gevent.spawn(ticker)
    try:
        green.run(40)
    finally:
        t.kill()
    # The ticker ran many times while the burst was being delivered.
    assert ticks_seen[-1] - ticks_seen[0] >= count // 1000


@pytest.mark.timeout(30)
def test_context_term_closes_the_stream_and_completes(green: Impl) -> None:
    a, b = green.pair(zmq.PAIR, zmq.PAIR)
    b.close()
    stream = ZMQStream(a, green.loop)
    stream.on_recv(lambda msg: None)
    stream.set_close_callback(green.loop.stop)
    terminating = gevent.spawn(green.ctx.term)
    green.run()
    terminating.get(timeout=10)  # term() returned: the stream closed its socket
    assert stream.closed() and a.closed


@pytest.mark.timeout(10)
def test_async_sockets_are_shadowed_with_a_warning(green: Impl) -> None:
    import zmq.asyncio

    actx = zmq.asyncio.Context()
    try:
        sock = actx.socket(zmq.PAIR)
        with pytest.warns(RuntimeWarning):
            stream = ZMQStream(sock, green.loop)
        assert isinstance(stream.socket, zmq_green.Socket)
        assert stream.socket.underlying == sock.underlying
        stream.io_loop.remove_handler(stream.socket)
        sock.close(linger=0)
    finally:
        actx.term()
