"""Sockets whose ``EVENTS`` lies: a waiter never spins, timeouts and kills land on time.

For XPUB with ``XPUB_NODROP``, ROUTER with ``ROUTER_MANDATORY`` and several peers,
and STREAM, ``POLLOUT`` means "some pipe has room", not "this send succeeds"; on
REQ, ``POLLIN`` may announce a reply that ``recv`` then discards (see the notes in
``zmq_green._waiting``). A waiter must then block until the socket's fd signals
again. Spinning shows as the number of times greenlets blocked (``stats()["waits"]``)
while nothing changed: it must stay at a handful, not run into the thousands.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import zmq
from gevent import socket as pysocket

import zmq_green
from tests.conftest import at_the_check_after_a_failure, outcome, until
from tests.transports import req_awaiting_its_reply

pytestmark = pytest.mark.timeout(30)

#: Waits allowed while a blocked call sees nothing change: the first wait, and the
#: wake-ups of the safety timeout (0.5 s in tests) over the second it is watched.
QUIET_WAITS = 4


def waits() -> int:
    return zmq_green.stats()["waits"]


def quiet_while_blocked(sent: list[int], seconds: float = 0.3) -> None:
    """Over *seconds*, a blocked sender waits a handful of times, plus a few per message it sent.

    Over tcp libzmq's I/O thread keeps draining into the kernel's buffers for a
    while, and each message that goes is news: the sender is then woken for it.
    """
    before, progress = waits(), sent[0]
    gevent.sleep(seconds)
    assert waits() - before <= QUIET_WAITS + 3 * (sent[0] - progress), "the blocked sender spun"


def fill(sock: Any, *frames: bytes) -> int:
    """Send *frames* with DONTWAIT until EAGAIN; how many messages went."""
    sent = 0
    while True:
        try:
            sock.send_multipart(list(frames), zmq.DONTWAIT)
        except zmq.Again:
            return sent
        sent += 1


@pytest.fixture
def nodrop(ctx: zmq_green.Context) -> Iterator[tuple[Any, Any]]:
    """An XPUB with XPUB_NODROP and a subscribed SUB, both at a high-water mark of 10."""
    pub = ctx.socket(zmq.XPUB)
    sub = ctx.socket(zmq.SUB)
    pub.linger = sub.linger = 0
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    pub.sndhwm = sub.rcvhwm = 10
    pub.bind(f"inproc://nodrop-{id(pub)}")
    sub.connect(pub.last_endpoint)
    sub.subscribe(b"")
    assert pub.recv() == b"\x01"  # the subscription has arrived
    yield pub, sub


def test_xpub_nodrop_sender_blocks_while_a_reader_waits(nodrop: tuple[Any, Any]) -> None:
    """The reported hang: a sender, a greenlet parked in pub.recv(), a late reader."""
    pub, sub = nodrop
    parked = gevent.spawn(outcome, pub.recv)
    got: list[bytes] = []

    def sender() -> None:
        for i in range(2000):
            pub.send(b"%d" % i)

    def reader() -> None:
        while len(got) < 2000:
            got.append(sub.recv())

    s = gevent.spawn(sender)
    # The sender is blocked (EVENTS says POLLOUT, send says EAGAIN) beside the parked reader.
    until(lambda: len(pub._waits.writers) == 1)
    before = waits()
    gevent.sleep(0.2)
    assert waits() - before <= QUIET_WAITS, "the blocked sender spun"
    r = gevent.spawn(reader)
    gevent.joinall([s, r], timeout=20, raise_error=True)
    assert got == [b"%d" % i for i in range(2000)]
    parked.kill()


def test_xpub_nodrop_sndtimeo_raises_again_at_the_timeout(nodrop: tuple[Any, Any]) -> None:
    pub, _ = nodrop
    assert fill(pub, b"x") > 0
    pub.sndtimeo = 300
    before = waits()
    start = time.monotonic()
    with pytest.raises(zmq.Again):
        pub.send(b"late")
    assert time.monotonic() - start >= 0.3
    assert waits() - before <= QUIET_WAITS


def test_xpub_nodrop_timeout_and_kill_land_while_blocked(nodrop: tuple[Any, Any]) -> None:
    pub, _ = nodrop
    fill(pub, b"x")
    parked = gevent.spawn(outcome, pub.recv)
    timed = gevent.spawn(outcome, lambda: gevent.with_timeout(0.2, pub.send, b"t"))
    killed = gevent.spawn(outcome, pub.send, b"k")
    until(lambda: len(pub._waits.writers) == 2)
    killed.kill()
    assert isinstance(killed.value, gevent.GreenletExit)
    start = time.monotonic()
    timed.join(5)
    assert isinstance(timed.value, gevent.Timeout)
    assert time.monotonic() - start < 5  # hang guard
    parked.kill()
    assert not pub._waits.count


def test_xpub_nodrop_safety_wakeups_are_not_rescues(nodrop: tuple[Any, Any]) -> None:
    """A lone sender sees the safety timeout fire; its retry fails, so nothing was missed."""
    pub, sub = nodrop
    fill(pub, b"x")
    pub.safety_timeout = 0.05
    sender = gevent.spawn(pub.send, b"last")
    until(lambda: zmq_green.stats()["safety_wakeups"] >= 3 and bool(pub._waits.writers))
    assert not sender.dead
    while sub.recv() != b"last":  # the autouse check asserts: no rescue
        pass
    sender.get(timeout=5)


@pytest.mark.parametrize("transport", ["inproc", pytest.param("tcp", marks=pytest.mark.lie_window)])
def test_router_mandatory_send_to_a_full_peer(ctx: zmq_green.Context, transport: str) -> None:
    """One peer full, another with room: POLLOUT is set, the send to the full peer fails."""
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.router_mandatory = 1
    router.sndhwm = 2
    endpoint = f"inproc://mandatory-{id(router)}" if transport == "inproc" else "tcp://127.0.0.1:*"
    router.bind(endpoint)
    peers = {}
    for name in (b"full", b"room"):
        peer = ctx.socket(zmq.DEALER)
        peer.linger = 0
        peer.rcvhwm = 2
        peer.identity = name
        peer.connect(router.last_endpoint)
        peer.send(b"hello")
        peers[name] = peer
    assert {router.recv_multipart()[0] for _ in peers} == set(peers)
    parked = gevent.spawn(outcome, router.recv)
    payload = b"x" * 65536

    sent = [0]

    def flood() -> None:
        """Send to the peer that never reads; over tcp the kernel's buffers fill first."""
        for i in range(1000):
            router.send_multipart([b"full", b"%d" % i, payload])
            sent[0] += 1

    sender = gevent.spawn(flood)
    until(lambda: len(router._waits.writers) == 1, 20)
    assert router.get(zmq.EVENTS) & zmq.POLLOUT  # the lie
    # Meanwhile sends to the peer with room go through: the lied-to head holds nobody up.
    for i in range(20):
        router.send_multipart([b"room", b"%d" % i])
        assert peers[b"room"].recv() == b"%d" % i
    quiet_while_blocked(sent)
    for i in range(1000):
        assert peers[b"full"].recv_multipart()[0] == b"%d" % i
    sender.get(timeout=5)
    parked.kill()


@pytest.mark.lie_window
def test_stream_send_to_a_slow_client(ctx: zmq_green.Context) -> None:
    """STREAM always reports POLLOUT; a send to a client that does not read fails."""
    server = ctx.socket(zmq.STREAM)
    server.linger = 0
    server.sndhwm = 1
    server.bind("tcp://127.0.0.1:*")
    port = int(server.last_endpoint.rsplit(b":", 1)[1])
    client = pysocket.create_connection(("127.0.0.1", port))
    try:
        routing_id, empty = server.recv_multipart()  # the connection
        assert empty == b""
        payload = b"x" * 65536
        parked = gevent.spawn(outcome, server.recv_multipart)
        sent = [0]

        def flood() -> None:
            # More than the kernel's buffers hold: the sender ends up blocked.
            for _ in range(400):
                server.send_multipart([routing_id, payload])
                sent[0] += 1

        sender = gevent.spawn(flood)
        until(lambda: len(server._waits.writers) == 1, 10)
        quiet_while_blocked(sent)
        received = 0
        client.settimeout(10)
        while received < 400 * len(payload):
            chunk = client.recv(1 << 20)
            assert chunk
            received += len(chunk)
            gevent.sleep(0)
        sender.get(timeout=10)
        parked.kill()
    finally:
        client.close()


def test_req_discarded_replies_do_not_end_a_wait(ctx: zmq_green.Context) -> None:
    """POLLIN on REQ can announce a reply that recv() discards (bad envelope)."""
    router, req, peer = req_awaiting_its_reply(ctx)
    reply = gevent.spawn(req.recv)
    until(lambda: len(req._waits.readers) == 1)
    router.send_multipart([peer, b"no-delimiter"])  # discarded by REQ
    router.send_multipart([peer, b"", b"answer"])
    assert reply.get(timeout=5) == b"answer"


def conflated(mod_ctx: Any, endpoint: str) -> tuple[Any, Any]:
    """A PULL and a PUSH, both with CONFLATE, after the PUSH sent 0 to 99."""
    pull = mod_ctx.socket(zmq.PULL)
    push = mod_ctx.socket(zmq.PUSH)
    pull.conflate = push.conflate = 1
    pull.linger = push.linger = 0
    pull.bind(endpoint)
    push.connect(pull.last_endpoint)
    for i in range(100):
        push.send(b"%d" % i)
    return pull, push


def test_conflate_keeps_only_the_last_message(mod_ctx: Any, mod: Any) -> None:
    """CONFLATE: later messages replace earlier ones; one recv gets the last (as pyzmq).

    Over inproc the writer and the reader are the same OS thread, so libzmq's
    conflate buffer never sees its lock held by the other side: exact.
    """
    pull, _ = conflated(mod_ctx, f"inproc://conflate-{id(mod_ctx)}")
    pull.rcvtimeo = 5000
    assert pull.recv() == b"99"
    with pytest.raises(zmq.Again):
        pull.recv(zmq.DONTWAIT)


def test_conflate_over_tcp_delivers_newer_messages_in_order(mod_ctx: Any, mod: Any) -> None:
    """CONFLATE over tcp: each recv gets a newer message, until the last (as pyzmq).

    libzmq's conflate buffer (dbuffer.hpp) only publishes a write if try_lock
    succeeds; when the I/O thread holds the lock at that moment the message
    stays hidden until the next write. On a busy machine that hides the last
    message for good, with pyzmq alone (``python tools/conflate_race.py``
    counts how often). So, as a CONFLATE user must, the sender repeats the
    last value when the reader times out.
    """
    pull, push = conflated(mod_ctx, "tcp://127.0.0.1:*")
    pull.rcvtimeo = 1000
    got: list[int] = []
    for _ in range(30):
        try:
            got.append(int(pull.recv()))
        except zmq.Again:
            push.send(b"99")
        if got and got[-1] == 99:
            break
    assert got and got[-1] == 99, got
    assert got == sorted(set(got)), got


@pytest.mark.skipif(not zmq.has("draft"), reason="libzmq built without the DRAFT API")
def test_draft_server_send_to_a_full_client(ctx: zmq_green.Context) -> None:  # pragma: no cover
    server = ctx.socket(zmq.SERVER)
    client = ctx.socket(zmq.CLIENT)
    server.linger = client.linger = 0
    server.sndhwm = client.rcvhwm = 2
    server.bind(f"inproc://server-{id(server)}")
    client.connect(server.last_endpoint)
    client.send(b"hello")
    frame = server.recv(copy=False)
    routing_id = frame.routing_id
    sent = 0
    while True:
        try:
            server.send(b"x", zmq.DONTWAIT, routing_id=routing_id)
        except zmq.Again:
            break
        sent += 1
    sender = gevent.spawn(server.send, b"last", routing_id=routing_id)
    until(lambda: len(server._waits.writers) == 1)
    before = waits()
    gevent.sleep(0.2)
    assert waits() - before <= QUIET_WAITS
    for _ in range(sent + 1):
        client.recv()
    sender.get(timeout=5)


def mandatory_router(ctx: zmq_green.Context, names: tuple[bytes, ...]) -> tuple[Any, dict[bytes, Any]]:
    """A ROUTER with ROUTER_MANDATORY (SNDHWM 1, no safety net: only news may wake anyone)
    over inproc, and a connected DEALER (RCVHWM 1) for each of *names*, known to it."""
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.router_mandatory = 1
    router.sndhwm = 1
    router.safety_timeout = None
    router.bind(f"inproc://mandatory-{id(router)}")
    peers = {}
    for name in names:
        peer = peers[name] = ctx.socket(zmq.DEALER)
        peer.linger = 0
        peer.rcvhwm = 1
        peer.identity = name
        peer.connect(router.last_endpoint)
        peer.send(b"hello")
    assert {router.recv_multipart()[0] for _ in peers} == set(peers)
    return router, peers


def test_two_lied_to_writers_wake_once_per_piece_of_news(ctx: zmq_green.Context) -> None:
    """Two senders to two full peers of a ROUTER_MANDATORY socket (POLLOUT: a third peer
    has room), and a parked reader, with no safety net. Waits are counted exactly: none
    while nothing changes; when one full peer drains, its sender sends, and the other,
    woken by the same news, fails and blocks once more -- woken once, never again."""
    router, peers = mandatory_router(ctx, (b"full1", b"full2", b"room"))
    for name in (b"full1", b"full2"):
        assert fill(router, name, b"x") > 0
    parked = gevent.spawn(outcome, router.recv)
    until(lambda: bool(router._waits.readers))
    senders = [gevent.spawn(router.send_multipart, [name, b"last"]) for name in (b"full1", b"full2")]
    until(lambda: len(router._waits.writers) == 2 and all(e.lied for e in router._waits.writers))

    def waits_over(action: Any) -> int:
        before = waits()
        action()
        gevent.sleep(0.05)  # whatever the action set off has run: nothing else can wake anyone
        return waits() - before

    assert waits_over(lambda: None) == 0, "a lied-to waiter woke with nothing new"
    assert waits_over(lambda: (drain(peers[b"full1"]), senders[0].get(timeout=5))) == 1
    assert not senders[1].ready()
    assert waits_over(lambda: None) == 0, "a lied-to waiter woke with nothing new"
    assert waits_over(lambda: (drain(peers[b"full2"]), senders[1].get(timeout=5))) == 0
    for name in (b"full1", b"full2"):
        assert peers[name].recv() == b"last"
    parked.kill()


def drain(sock: Any) -> int:
    """Receive all *sock* holds (over inproc, its reading posts "room again" to the peer)."""
    received = 0
    while True:
        try:
            sock.recv(zmq.DONTWAIT)
        except zmq.Again:
            return received
        received += 1


@pytest.fixture
def tries(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bool]]:
    """Every send zmq_green makes, as (data, succeeded), in order."""
    made: list[tuple[bytes, bool]] = []
    real = zmq_green.socket._send

    def counted(sock: Any, data: Any, *args: Any) -> Any:
        try:
            result = real(sock, data, *args)
        except zmq.Again:
            made.append((bytes(data), False))
            raise
        made.append((bytes(data), True))
        return result

    monkeypatch.setattr(zmq_green.socket, "_send", counted)
    return made


def test_a_lied_to_sender_tries_twice_per_safety_wakeup(nodrop: tuple[Any, Any], tries: list[Any]) -> None:
    """After news (here: its safety wake-ups) a waiter that EVENTS calls ready tries twice.

    The first failure may be honest (a message came while it failed, and our own
    reading took its signal); the second makes it lied to, and it blocks until
    the next news. A parked reader makes the sender not alone (so it reads
    EVENTS); its net (read when its call starts) is long, so it never wakes.
    """
    pub, sub = nodrop
    fill(pub, b"x")
    pub.safety_timeout = 60
    parked = gevent.spawn(outcome, pub.recv)
    until(lambda: len(pub._waits.readers) == 1)
    pub.safety_timeout = 0.05
    tries.clear()
    start = zmq_green.stats()["safety_wakeups"]
    sender = gevent.spawn(pub.send, b"s")
    until(lambda: zmq_green.stats()["safety_wakeups"] - start >= 4)
    # Whenever this greenlet runs the sender is blocked: its fast path and its
    # first try, then two per safety wake-up.
    wakeups = zmq_green.stats()["safety_wakeups"] - start
    assert tries == [(b"s", False)] * (2 + 2 * wakeups)
    while sub.recv() != b"s":
        pass
    sender.get(timeout=5)
    assert tries[-1] == (b"s", True)
    parked.kill()


def test_lied_to_senders_try_a_bounded_number_of_times_per_piece_of_news(
    nodrop: tuple[Any, Any], tries: list[Any]
) -> None:
    """Three senders lied to by one XPUB: each piece of news costs each two to four tries.

    Two, because news may be what lets it send (see above); at most two more,
    because a reading after a failed try inside a wait is no news: it may wake a
    lied-to waiter once (its credit), then not again until news, so the senders
    never keep waking one another. News here is a send from outside the wait.
    """
    pub, _ = nodrop
    fill(pub, b"x")
    parked = gevent.spawn(outcome, pub.recv)
    pub.safety_timeout = 60  # no safety wake-up: the news below is all there is
    names = (b"a", b"b", b"c")
    senders = []
    for arrived, name in enumerate(names):
        before = len(tries)
        senders.append(gevent.spawn(outcome, pub.send, name))
        until(lambda n=arrived + 1: len(pub._waits.writers) == n and all(e.lied for e in pub._waits.writers))
        # Its fast path (news for the others) and first try; then two to four
        # each for the others, and up to two for its own credit.
        made = tries[before:]
        assert made[:2] == [(name, False)] * 2
        for other in names[:arrived]:
            assert 2 <= made.count((other, False)) <= 4, made
        assert made.count((name, False)) <= 4, made
    for _ in range(5):
        before = len(tries)
        with pytest.raises(zmq.Again):
            pub.send(b"news", zmq.DONTWAIT)
        gevent.sleep(0.02)  # the absence of further tries is what is checked
        assert all(e.lied for e in pub._waits.writers)
        made = tries[before:]
        assert made[0] == (b"news", False)
        for name in names:
            assert 2 <= made.count((name, False)) <= 4, made
        assert len(made) == 1 + sum(made.count((name, False)) for name in names)
    for sender in senders:
        sender.kill()
    parked.kill()


def test_a_lone_lied_to_sender_blocks_after_its_fast_path(nodrop: tuple[Any, Any], tries: list[Any]) -> None:
    """Alone on the socket, a sender blocks right after its failed fast path: no EVENTS
    reading (it would say POLLOUT, the lie) and no second try before the fd signals."""
    pub, sub = nodrop
    fill(pub, b"x")
    tries.clear()
    sender = gevent.spawn(pub.send, b"s")
    until(lambda: bool(pub._waits.writers))
    assert tries == [(b"s", False)]
    while sub.recv() != b"s":
        pass
    sender.get(timeout=5)


def test_a_sender_not_alone_tries_only_when_events_says_it_may(
    ctx: zmq_green.Context, tries: list[Any]
) -> None:
    """A DEALER at its high-water mark, a reader parked on it: a new sender's failed fast
    path is followed by one EVENTS reading (for the reader), which says no POLLOUT, so the
    sender blocks without trying again -- the honest case of the lie above."""
    a, b = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    a.linger = b.linger = 0
    a.sndhwm = b.rcvhwm = 1
    a.bind(f"inproc://honest-{id(a)}")
    b.connect(a.last_endpoint)
    sent = fill(a, b"x")
    parked = gevent.spawn(outcome, a.recv)
    until(lambda: bool(a._waits.readers))
    tries.clear()
    sender = gevent.spawn(a.send, b"s")
    until(lambda: bool(a._waits.writers))
    assert tries == [(b"s", False)]
    assert [b.recv() for _ in range(sent + 1)][-1] == b"s"
    sender.get(timeout=5)
    parked.kill()


def test_news_found_after_a_failed_try_wakes_the_lied_to_waiters_ahead(
    ctx: zmq_green.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two senders lied to by a ROUTER_MANDATORY socket, no safety net; the first has no
    credit left. The second is woken by what is no news (its credit), fails again, and
    the check after its failure finds a command pending: the first's peer drained. That
    is news, so the reading that consumes it wakes the first -- no credit needed."""
    router, peers = mandatory_router(ctx, (b"full1", b"full2", b"room"))
    for name in (b"full1", b"full2"):
        assert fill(router, name, b"x") > 0
    parked = gevent.spawn(outcome, router.recv)  # not alone: the senders read EVENTS
    until(lambda: bool(router._waits.readers))
    first = gevent.spawn(router.send_multipart, [b"full1", b"last"])
    second = gevent.spawn(outcome, router.send_multipart, [b"full2", b"last"])
    until(lambda: len(router._waits.writers) == 2 and all(e.lied for e in router._waits.writers))
    entries = list(router._waits.writers)
    entries[0].credit = False
    failing = at_the_check_after_a_failure(
        monkeypatch,
        lambda waits, entry, failed: entry is entries[1],
        lambda: drain(peers[b"full1"]),  # posts "room again" for the first sender
        in_the_window=False,
    )
    entries[1].wake(zmq_green._waiting.MAYBE)
    first.get(timeout=5)
    assert failing == [True, False]
    assert not second.ready()
    second.kill()
    parked.kill()


def test_a_waiter_leaving_from_behind_the_head_is_no_news(ctx: zmq_green.Context) -> None:
    """A sender lied to by a ROUTER_MANDATORY socket, no safety net, two readers parked.
    The second reader is killed: it never had the turn, so its leaving changes nothing
    and wakes nobody -- the lied-to sender stays blocked, without a single wake-up."""
    router, peers = mandatory_router(ctx, (b"full", b"room"))
    assert fill(router, b"full", b"x") > 0
    readers = [gevent.spawn(outcome, router.recv) for _ in range(2)]
    until(lambda: len(router._waits.readers) == 2)
    sender = gevent.spawn(router.send_multipart, [b"full", b"last"])
    until(lambda: bool(router._waits.writers) and router._waits.writers[0].lied)
    gevent.sleep(0.05)  # the credit the sender may have: spent or kept, it is settled
    before = waits()
    readers[1].kill()
    gevent.sleep(0.05)  # whatever the kill set off has run
    assert waits() == before, "a waiter that never had the turn woke the lied-to sender"
    drain(peers[b"full"])
    sender.get(timeout=5)
    readers[0].kill()
