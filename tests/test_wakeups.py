"""Wake-ups that other calls could eat, shadows that share a socket, and the bound on overtaking.

Every test here fails on a missed wake-up through the suite's autouse check: the
safety timeout is 0.5 s in tests, and a rescue fails the test that caused it.
"""

from __future__ import annotations

import os
import random
import select
import time
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import zmq

import zmq_green
from tests.conftest import at_the_check_after_a_failure, outcome, until
from tests.transports import (
    HANG_GUARD,
    TRANSPORTS,
    connected,
    fill_until_full,
    polls_blocked_on,
    req_awaiting_its_reply,
)
from zmq_green import _waiting
from zmq_green._waiting import OVERTAKE_LIMIT

pytestmark = pytest.mark.timeout(60)

PAYLOAD = b"x" * 65536


def blocked_flood(dealer: Any, count: int) -> tuple[gevent.Greenlet, list[int]]:
    """A greenlet sending *count* messages on *dealer*, and its progress; returns once it is blocked.

    Over ipc and tcp the kernel's buffers take a few MB first; large messages fill them quickly.
    """
    sent = [0]

    def flood() -> None:
        for i in range(count):
            dealer.send(b"%d" % i + PAYLOAD)
            sent[0] += 1

    greenlet = gevent.spawn(flood)
    until(lambda: bool(dealer._waits.writers) or greenlet.dead, HANG_GUARD)
    return greenlet, sent


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_recv_that_queues_passes_on_the_writers_signal(ctx: zmq_green.Context, transport: str) -> None:
    """A writer waits for room and a reader for a reply on one DEALER; the peer drains; a new
    recv() fails, processes the command that made room, and queues behind the reader: it must
    tell the writer. Over inproc the order is exact; over ipc and tcp it is raced many times.
    """
    rounds = 1 if transport == "inproc" else 10
    for _ in range(rounds):
        router, dealer = connected(ctx, zmq.ROUTER, zmq.DEALER, transport, sndhwm=1, rcvhwm=1)
        count = 100
        flood, sent = blocked_flood(dealer, count)
        reader = gevent.spawn(dealer.recv)
        until(lambda d=dealer: len(d._waits.readers) == 1)
        received = 0
        while received < count:
            # Take what has arrived without letting the hub run...
            try:
                router.recv_multipart(zmq.DONTWAIT)
                received += 1
                continue
            except zmq.Again:
                pass
            # ...then a newcomer's recv runs, fails and queues, before the hub polls.
            late = gevent.spawn(outcome, dealer.recv)
            gevent.sleep(0)
            late.kill()
            assert router.poll(HANG_GUARD * 1000), "the writer was never woken"
        flood.get(timeout=HANG_GUARD)
        assert sent == [count]
        reader.kill()
        router.close()
        dealer.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("interrupt", ["kill", "timeout"])
def test_waiters_in_both_directions_with_heads_interrupted(
    ctx: zmq_green.Context, transport: str, interrupt: str
) -> None:
    """Writers and readers on one DEALER and on one ROUTER while the messages go both ways;
    waiting readers are killed, or time out. Every message arrives once; nothing hangs.
    """
    router, dealer = connected(ctx, zmq.ROUTER, zmq.DEALER, transport, sndhwm=2, rcvhwm=2)
    router.router_mandatory = 1  # a full peer blocks the sender instead of losing the message
    dealer.send(b"hello")
    dealer_id = router.recv_multipart()[0]
    rng = random.Random(7)
    count = 300
    got: dict[Any, list[bytes]] = {dealer: [], router: []}

    def write(sock: Any, start: int) -> None:
        for i in range(start, count, 3):
            if sock is dealer:
                dealer.send(b"%d" % i)
            else:
                router.send_multipart([dealer_id, b"%d" % i])

    def read(sock: Any) -> None:
        while True:
            try:
                with gevent.Timeout(rng.uniform(0.0005, 0.005) if interrupt == "timeout" else None):
                    msg = sock.recv_multipart()
            except gevent.Timeout:
                continue
            got[sock].append(msg[-1])

    writers = [gevent.spawn(write, sock, k) for sock in got for k in range(3)]
    readers = {sock: [gevent.spawn(read, sock) for _ in range(3)] for sock in got}
    kills = 0
    while not all(w.dead for w in writers) or sum(map(len, got.values())) < 2 * count:
        gevent.sleep(rng.choice((0, 0.0005, 0.002)))
        sock = rng.choice(list(got))
        if interrupt == "kill" and sock._waits.readers:
            # Kill a reader while readers wait on that socket: perhaps the head.
            victim = readers[sock].pop(rng.randrange(3))
            victim.kill(block=False)
            readers[sock].append(gevent.spawn(read, sock))
            kills += 1
        assert kills < 100_000
    gevent.joinall(writers, raise_error=True)
    assert sorted(got[router]) == sorted(b"%d" % i for i in range(count))
    assert sorted(got[dealer]) == sorted(b"%d" % i for i in range(count))
    assert interrupt != "kill" or kills
    for greenlets in readers.values():
        gevent.killall(greenlets)


def test_new_head_after_a_kill_has_the_safety_net(ctx: zmq_green.Context) -> None:
    """The second writer becomes head when the first is killed; a missed signal is then
    found by its safety timeout (and counted), never a hang."""
    router, dealer = connected(ctx, zmq.ROUTER, zmq.DEALER, "inproc", sndhwm=1, rcvhwm=1)
    fill_until_full(dealer)
    first = gevent.spawn(dealer.send, b"first")
    second = gevent.spawn(dealer.send, b"second")
    until(lambda: len(dealer._waits.writers) == 2)
    first.kill()
    before = zmq_green.stats()["safety_wakeups"]
    until(lambda: zmq_green.stats()["safety_wakeups"] > before, HANG_GUARD)  # its net is armed
    assert not second.dead
    while router.recv_multipart()[-1] != b"second":
        pass
    second.get(timeout=HANG_GUARD)


# -- one waiting state per libzmq socket ------------------------------------------


def test_shadows_share_one_waiting_state(ctx: zmq_green.Context) -> None:
    a, _b = connected(ctx, zmq.PAIR, zmq.PAIR, "inproc")
    shadow = zmq_green.Socket.shadow(a.underlying)
    assert shadow._waits is a._waits
    assert zmq_green.Socket(shadow=a.underlying)._waits is a._waits


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_call_through_the_original_wakes_a_waiter_on_the_shadow(
    ctx: zmq_green.Context, transport: str
) -> None:
    a, b = connected(ctx, zmq.PAIR, zmq.PAIR, transport)
    shadow = zmq_green.Socket.shadow(a.underlying)
    reader = gevent.spawn(shadow.recv)
    until(lambda: bool(a._waits.readers))
    b.send(b"for the shadow")
    if transport != "inproc":
        # Over ipc and tcp the message comes from the I/O thread: wait for its signal
        # without letting the hub see it, as a busy greenlet would.
        assert select.select([a.get(zmq.FD)], [], [], HANG_GUARD)[0]
    # A send through the original processes the command that announced the message.
    a.send(b"from the original")
    assert reader.get(timeout=HANG_GUARD) == b"for the shadow"
    assert b.recv() == b"from the original"


# -- overtaking is bounded ----------------------------------------------------------


def test_overtaking_a_queued_reader_is_bounded(ctx: zmq_green.Context) -> None:
    """Twenty greenlets keep calling recv() and arrive while a burst is ready; a reader queued
    before them is served after at most OVERTAKE_LIMIT of their calls."""
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, "inproc", rcvhwm=1000, sndhwm=1000)
    taken: list[str] = []
    stop = False

    def barger(name: str) -> None:
        while not stop:
            pull.recv()
            taken.append(name)
            gevent.sleep(0)  # back at once, while the burst lasts

    def queued() -> None:
        pull.recv()
        taken.append("queued")

    waiter = gevent.spawn(queued)
    until(lambda: bool(pull._waits.readers))
    bargers = [gevent.spawn(barger, f"barger-{i}") for i in range(20)]
    for i in range(100):
        push.send(b"%d" % i)
    waiter.get(timeout=HANG_GUARD)
    assert taken.index("queued") <= OVERTAKE_LIMIT
    stop = True
    for i in range(20):
        push.send(b"%d" % i)
    gevent.joinall(bargers, timeout=HANG_GUARD)


def test_a_newcomer_queues_once_overtaking_is_used_up(mod_ctx: Any, mod: Any) -> None:
    """...but a DONTWAIT call, which never waits, takes what is ready, as with pyzmq."""
    pull, push = connected(mod_ctx, zmq.PULL, zmq.PUSH, "inproc")
    if mod is zmq:
        push.send(b"ready")
        assert pull.recv(zmq.DONTWAIT) == b"ready"
        return
    order: list[bytes] = []

    def reader() -> None:
        order.append(pull.recv())

    first = gevent.spawn(reader)
    until(lambda: bool(pull._waits.readers))
    # Overtake the queued reader until its line closes to newcomers that would wait.
    for i in range(OVERTAKE_LIMIT):
        push.send(b"%d" % i)
        pull.recv()
    assert pull._waits.fifo & zmq.POLLIN
    push.send(b"one")
    push.send(b"two")
    late = gevent.spawn(reader)  # tries after "first" although "one" is there
    gevent.joinall([first, late], timeout=HANG_GUARD, raise_error=True)
    assert order == [b"one", b"two"]
    assert not pull._waits.fifo  # the line has emptied: overtaking is allowed again
    push.send(b"ready")
    assert pull.recv(zmq.DONTWAIT) == b"ready"


def test_dontwait_after_poll_takes_what_is_ready_while_others_queue(ctx: zmq_green.Context) -> None:
    """A loop of poll() and recv(DONTWAIT) beside queued readers never spins: each poll that
    says POLLIN is followed by a message."""
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, "inproc", rcvhwm=1000, sndhwm=1000)
    got: list[str] = []

    def polling() -> None:
        while len(got) < 1000:
            if pull.poll(1000, zmq.POLLIN):
                try:
                    pull.recv(zmq.DONTWAIT)
                    got.append("poller")
                except zmq.Again:
                    pass

    def blocking() -> None:
        while len(got) < 1000:
            pull.recv()
            got.append("reader")

    greenlets = [gevent.spawn(polling) for _ in range(2)] + [gevent.spawn(blocking) for _ in range(5)]
    for i in range(1000 + 7):
        push.send(b"%d" % i)
        if i % 50 == 0:
            gevent.sleep(0)
    gevent.joinall(greenlets, timeout=HANG_GUARD * 2, raise_error=True)
    assert "reader" in got


# -- a late hub is no missed wake-up --------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_each_call_that_takes_a_waiters_signal_hands_it_on_every_time(
    ctx: zmq_green.Context, transport: str
) -> None:
    """Round after round, a send through the socket a reader waits on takes the signal that
    would wake it, and the recheck it schedules wakes it: never the safety net (which a
    recheck left pending forever would also excuse as a late hub)."""
    a, b = connected(ctx, zmq.PAIR, zmq.PAIR, transport)
    before = zmq_green.stats()
    for i in range(3):
        waits = zmq_green.stats()["waits"]
        reader = gevent.spawn(a.recv)
        until(lambda: zmq_green.stats()["waits"] > waits)  # noqa: B023 - checked at once
        b.send(b"%d" % i)
        fd = a.get(zmq.FD)
        select.select([fd], [], [], HANG_GUARD)  # the message's command is pending
        a.send(b"through the same socket")  # processes it: the reader's signal is taken
        assert reader.get(timeout=HANG_GUARD) == b"%d" % i
        assert b.recv() == b"through the same socket"
    assert zmq_green.stats()["safety_wakeups"] == before["safety_wakeups"]


def test_a_late_hub_is_no_missed_wakeup(ctx: zmq_green.Context) -> None:
    """The hub turns late (CPU work): a safety timer and the fd signal fall due in one turn,
    the timer first. The signal was pending, not missed: no rescue (the autouse check)."""
    a, b = connected(ctx, zmq.DEALER, zmq.DEALER, "inproc", sndhwm=1, rcvhwm=1)
    sent = 0
    while True:
        try:
            a.send(b"x", zmq.DONTWAIT)
            sent += 1
        except zmq.Again:
            break
    a.safety_timeout = 0.2
    writer = gevent.spawn(a.send, b"last")
    reader = gevent.spawn(outcome, a.recv)
    until(lambda: len(a._waits.writers) == 1 and len(a._waits.readers) == 1)
    for _ in range(sent):
        b.recv()  # posts the command that makes room to a's mailbox: its fd signals
    time.sleep(0.3)  # the hub does not run: the safety timers are due when it does
    writer.get(timeout=HANG_GUARD)
    reader.kill()


def test_a_poller_on_a_late_hub_counts_no_rescue(ctx: zmq_green.Context) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, "inproc")
    poller = zmq_green.Poller()
    poller.safety_timeout = 0.2
    poller.register(pull, zmq.POLLIN)
    polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
    until(lambda: polls_blocked_on(pull) > 0)
    push.send(b"x")
    time.sleep(0.3)  # the hub does not run: the poller's safety timer is due when it does
    assert polling.get(timeout=HANG_GUARD) == [(pull, zmq.POLLIN)]


def test_a_poller_on_a_late_hub_with_a_raw_fd_ready_counts_no_rescue() -> None:
    r, w = os.pipe()
    try:
        poller = zmq_green.Poller()
        poller.safety_timeout = 0.2
        poller.register(r, zmq.POLLIN)
        before = zmq_green.stats()["waits"]
        polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
        until(lambda: zmq_green.stats()["waits"] > before)
        os.write(w, b"x")
        time.sleep(0.3)  # the hub does not run: the poller's safety timer is due when it does
        assert polling.get(timeout=HANG_GUARD) == [(r, zmq.POLLIN)]
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.timeout(10)
@pytest.mark.rescues_expected
def test_a_pollers_missed_wakeup_is_rescued_by_its_safety_timeout_and_counted(ctx: zmq_green.Context) -> None:
    """As for a socket's waiter: EVENTS read behind zmq_green's back eats the signal that
    would wake the poll, and only its safety timeout finds the message (with a quiet raw
    fd beside the socket, which explains nothing)."""
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, "inproc")
    r, w = os.pipe()
    try:
        poller = zmq_green.Poller()
        poller.safety_timeout = 0.1
        poller.register(pull, zmq.POLLIN)
        poller.register(r, zmq.POLLIN)
        before = zmq_green.stats()
        try:
            for i in range(2):  # twice: each is counted
                waits = zmq_green.stats()["waits"]
                polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
                until(lambda: zmq_green.stats()["waits"] > waits)  # noqa: B023 - checked at once
                push.send(b"missed %d" % i)
                assert zmq.Socket.get(pull, zmq.EVENTS) & zmq.POLLIN
                start = time.monotonic()
                assert polling.get(timeout=HANG_GUARD) == [(pull, zmq.POLLIN)]
                assert time.monotonic() - start < HANG_GUARD / 2  # found by the net, not at the timeout
                assert pull.recv() == b"missed %d" % i
            after = zmq_green.stats()
        finally:
            zmq_green.reset_stats()  # the rescues were ours: no other test should count them
        assert after["rescues"] - before["rescues"] == 2
        assert after["safety_wakeups"] - before["safety_wakeups"] == 2
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.timeout(10)
@pytest.mark.rescues_expected
def test_a_pollers_missed_wakeup_found_by_another_waiters_net_is_counted_once(
    ctx: zmq_green.Context,
) -> None:
    """A poller (no net of its own) and a writer wait on one DEALER; the poller's signal is
    eaten behind zmq_green's back. The writer's safety timeout reads EVENTS, finds POLLIN,
    and wakes the poller as a rescue: the poller reports the socket, and the rescue is
    counted once (the writer's own try still fails: no rescue of its own). Twice: each
    is counted."""
    a, b = connected(ctx, zmq.DEALER, zmq.DEALER, "inproc", sndhwm=1, rcvhwm=1)
    fill_until_full(a)
    a.safety_timeout = 0.1
    poller = zmq_green.Poller()
    poller.safety_timeout = None
    poller.register(a, zmq.POLLIN)
    before = zmq_green.stats()
    try:
        writer = gevent.spawn(outcome, a.send, b"waits for room")
        until(lambda: len(a._waits.writers) == 1)
        for i in range(2):
            polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
            until(lambda: polls_blocked_on(a) > 0)
            b.send(b"for the poller %d" % i)
            assert zmq.Socket.get(a, zmq.EVENTS) & zmq.POLLIN  # the poller's signal, eaten
            start = time.monotonic()
            assert polling.get(timeout=HANG_GUARD) == [(a, zmq.POLLIN)]
            assert time.monotonic() - start < HANG_GUARD / 2  # found by the writer's net
            assert a.recv() == b"for the poller %d" % i
        after = zmq_green.stats()
        writer.kill()
    finally:
        zmq_green.reset_stats()  # the rescues were ours: no other test should count them
    assert after["rescues"] - before["rescues"] == 2


def reader_without_net_and_writer_with(
    ctx: zmq_green.Context, writer_net: float
) -> tuple[Any, Any, Any, Any]:
    """A DEALER (and its peer) with a reader blocked with no safety net, and a writer
    blocked for room with a net of *writer_net* seconds (each call reads it as it starts)."""
    a, b = connected(ctx, zmq.DEALER, zmq.DEALER, "inproc", sndhwm=1, rcvhwm=1)
    fill_until_full(a)
    a.safety_timeout = None
    reader = gevent.spawn(a.recv)
    until(lambda: len(a._waits.readers) == 1)
    a.safety_timeout = writer_net
    writer = gevent.spawn(outcome, a.send, b"waits for room")
    until(lambda: len(a._waits.writers) == 1)
    return a, b, reader, writer


@pytest.mark.timeout(10)
@pytest.mark.rescues_expected
def test_a_readers_missed_wakeup_found_by_a_writers_net_is_counted_once(ctx: zmq_green.Context) -> None:
    """A reader (a long net) and a writer (a short one) wait on one DEALER; the reader's
    signal is eaten behind zmq_green's back. The writer's safety timeout reads EVENTS,
    finds POLLIN and wakes the reader as a rescue: the reader gets its message, and the
    rescue is counted once (the writer's own try still fails: no rescue of its own)."""
    before = zmq_green.stats()
    try:
        a, b, reader, writer = reader_without_net_and_writer_with(ctx, 0.1)
        b.send(b"for the reader")
        assert zmq.Socket.get(a, zmq.EVENTS) & zmq.POLLIN  # the reader's signal, eaten
        assert reader.get(timeout=HANG_GUARD) == b"for the reader"
        after = zmq_green.stats()
        assert not writer.ready()
        writer.kill()
    finally:
        zmq_green.reset_stats()  # the rescue was ours: no other test should count it
    assert after["rescues"] - before["rescues"] == 1


def test_a_late_hub_whose_net_finds_another_waiter_ready_counts_no_rescue(ctx: zmq_green.Context) -> None:
    """As above, but the message is for the reader, whose signal is pending (not eaten) when
    the hub, late, runs the writer's safety timer first: that timer wakes the reader, which
    missed nothing -- no rescue (the autouse check)."""
    _, b, reader, writer = reader_without_net_and_writer_with(ctx, 0.2)
    b.send(b"for the reader")  # a's fd signals
    time.sleep(0.3)  # the hub does not run: the writer's safety timer is due when it does
    assert reader.get(timeout=HANG_GUARD) == b"for the reader"
    writer.kill()


def test_a_late_hub_with_a_recheck_pending_is_no_missed_wakeup(ctx: zmq_green.Context) -> None:
    """A call takes the reader's signal and schedules the recheck that will wake it; the hub
    turns late, and (on libuv, which runs timers first) the reader's safety timer comes before
    that recheck. The wake-up was on its way, not missed: no rescue."""
    a, b = connected(ctx, zmq.PAIR, zmq.PAIR, "inproc")
    a.safety_timeout = 0.2
    reader = gevent.spawn(a.recv)
    until(lambda: bool(a._waits.readers))
    b.send(b"for the reader")  # a's fd signals
    a.send(b"through the same socket")  # processes that command, schedules the recheck
    time.sleep(0.3)  # the hub does not run: the reader's safety timer is due when it does
    assert reader.get(timeout=HANG_GUARD) == b"for the reader"
    assert b.recv() == b"through the same socket"


# -- news after a safety timeout is no missed wake-up ------------------------------------


@pytest.fixture
def lied_to_sender(ctx: zmq_green.Context) -> Iterator[tuple[Any, Any, Any, Any]]:
    """A ROUTER_MANDATORY sender blocked on a full peer while another has room (EVENTS
    lies: POLLOUT), beside a reader whose safety timeout fires every 50 ms.

    Yields (router, the full peer, the sender greenlet, the reader greenlet) once the
    sender has been lied to.
    """
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.router_mandatory = 1
    router.sndhwm = 1
    router.bind(f"inproc://lied-{id(router)}")
    full, room = (ctx.socket(zmq.DEALER) for _ in range(2))
    for peer, name in ((full, b"full"), (room, b"room")):
        peer.linger = 0
        peer.rcvhwm = 1
        peer.identity = name
        peer.connect(router.last_endpoint)
        peer.send(b"hello")
    assert {router.recv_multipart()[0] for _ in range(2)} == {b"full", b"room"}
    while True:
        try:
            router.send_multipart([b"full", b"x"], zmq.DONTWAIT)
        except zmq.Again:
            break
    router.safety_timeout = 0.05
    reader = gevent.spawn(outcome, router.recv)
    until(lambda: bool(router._waits.readers))
    router.safety_timeout = HANG_GUARD  # the sender's net does not fire in the test
    sender = gevent.spawn(router.send_multipart, [b"full", b"last"])
    until(lambda: bool(router._waits.writers) and router._waits.writers[0].lied)
    yield router, full, sender, reader
    reader.kill()
    room.close()  # the peer with room, which POLLOUT reports, lives until here


def second_failure_to_send(waits: Any, entry: Any, failed: int) -> bool:
    """A sender's second failed try in a row: the one after which it is lied to."""
    return bool(entry.mask == zmq.POLLOUT and failed == 2)


def drain(sock: Any) -> None:
    """Receive all *sock* holds; over inproc that posts "room again" to its peer's mailbox."""
    while True:
        try:
            sock.recv(zmq.DONTWAIT)
        except zmq.Again:
            return


def test_news_between_a_safety_wakeup_and_the_try_is_no_rescue(
    lied_to_sender: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's safety timeout reads EVENTS (POLLOUT: the lie) and wakes the lied-to
    sender; before the sender runs, the full peer drains and the reader's own reading takes
    that news. The sender's send then succeeds because of the news, not the net: no rescue
    (the autouse check)."""
    _, full, sender, _ = lied_to_sender
    events = _waiting.SocketWaits.events
    drained = []

    def then_the_peer_drains(waits: Any, me: Any = None, value: str = _waiting.READY) -> int:
        found = events(waits, me, value)
        if value is _waiting.RESCUED and not drained:
            drained.append(found)
            drain(full)
        return found

    monkeypatch.setattr(_waiting.SocketWaits, "events", then_the_peer_drains)
    sender.get(timeout=HANG_GUARD)
    assert drained == [zmq.POLLOUT]  # the net fired, and found the lie


def test_a_failed_first_try_after_a_safety_wakeup_is_no_rescue(
    lied_to_sender: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender woken by the reader's safety timeout fails its first try: nothing was
    missed. Room that comes right after (its signal taken unseen, as a command that lands
    between a check and a reading would be) lets the next try succeed: still no rescue."""
    router, full, sender, _ = lied_to_sender
    after_failure = _waiting.SocketWaits._after_failure
    rescued = []

    def then_room_comes_unseen(waits: Any, entry: Any, failed: int) -> Any:
        if entry.mask == zmq.POLLOUT and not rescued and waits.rescued_at == waits.news:
            rescued.append(failed)
            drain(full)
            router.get(zmq.EVENTS)  # processes the "room again" command: the fd is quiet
        return after_failure(waits, entry, failed)

    monkeypatch.setattr(_waiting.SocketWaits, "_after_failure", then_room_comes_unseen)
    sender.get(timeout=HANG_GUARD)
    assert rescued == [1]  # the first try after the safety wake-up failed


def test_a_command_consumed_while_the_thread_was_preempted_is_news(
    lied_to_sender: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender's second failed try finds no command pending; then its thread loses
    the CPU, the full peer drains meanwhile, and the reading consumes the command that
    says so. A reading that late is taken for news: the sender tries again at once,
    no safety timeout needed (no rescue, the autouse check)."""
    _, full, sender, _ = lied_to_sender

    def preempted() -> None:
        drain(full)  # the command lands in the window...
        time.sleep(_waiting.PREEMPTED * 10)  # ...while this thread is off its CPU

    preempt = at_the_check_after_a_failure(monkeypatch, second_failure_to_send, preempted, in_the_window=True)
    sender.get(timeout=HANG_GUARD)
    assert preempt == [True, False]


@pytest.mark.rescues_expected  # one, of a lied-to waiter: counted below
def test_a_command_consumed_in_the_undisturbed_window_is_a_lied_rescue(
    lied_to_sender: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same command, landing between the check and the reading without any
    preemption: nothing can show the reading consumed it, so the lied-to sender is
    left to a safety timeout (the reader's, every 50 ms), whose reading wakes it. It
    is counted as a rescue of a lied-to waiter, apart from the protocol's rescues."""
    _, full, sender, _ = lied_to_sender
    # The drain posts the command now; the reading that follows consumes it.
    window = at_the_check_after_a_failure(
        monkeypatch, second_failure_to_send, lambda: drain(full), in_the_window=True
    )
    # Undisturbed: however long the drain above takes, the window is not taken for a
    # preemption (the test before this one is about that).
    monkeypatch.setattr(_waiting, "PREEMPTED", HANG_GUARD)
    before = zmq_green.stats()
    sender.get(timeout=HANG_GUARD)
    after = zmq_green.stats()
    assert window == [True, False]
    assert after["lied_rescues"] - before["lied_rescues"] == 1
    assert after["rescues"] == before["rescues"]


def test_a_reader_robbed_of_its_message_blocks_again_without_spinning(ctx: zmq_green.Context) -> None:
    """A reader is woken for a message, and a DONTWAIT call takes it before the reader
    runs. Its try fails, its reading (a writer waits too) shows nothing for it: it blocks
    until the next signal -- one wait, not a retry every turn of the hub."""
    a, b = connected(ctx, zmq.DEALER, zmq.DEALER, "inproc", sndhwm=1, rcvhwm=1)
    sent = fill_until_full(a)
    a.safety_timeout = 5  # no net fires while the waits are counted
    writer = gevent.spawn(outcome, a.send, b"waits for room")
    reader = gevent.spawn(a.recv)
    until(lambda: len(a._waits.writers) == 1 and len(a._waits.readers) == 1)
    b.send(b"taken")
    assert select.select([a.get(zmq.FD)], [], [], HANG_GUARD)[0]
    assert a.getsockopt(zmq.EVENTS) & zmq.POLLIN  # through the green socket: wakes the reader
    assert a.recv(zmq.DONTWAIT) == b"taken"  # before the reader runs
    before = zmq_green.stats()["waits"]
    gevent.sleep(0.1)  # whatever could wake the reader has run
    assert zmq_green.stats()["waits"] - before == 1, "the robbed reader spun"
    b.send(b"for the reader")
    assert reader.get(timeout=HANG_GUARD) == b"for the reader"
    for _ in range(sent):
        b.recv()
    assert writer.get(timeout=HANG_GUARD) is None


def test_a_poller_woken_by_a_reading_after_a_failed_try_counts_no_safety_wakeup(
    ctx: zmq_green.Context,
) -> None:
    """A writer, woken for room that a DONTWAIT send then takes, fails its try; the try
    processes the command of a message that came meanwhile, so only the reading after it
    sees POLLIN. That reading is no news to a lied-to waiter, but to the poller waiting
    for POLLIN it is a wake-up like any other: not its safety timeout."""
    a, b = connected(ctx, zmq.DEALER, zmq.DEALER, "inproc", sndhwm=1, rcvhwm=1)
    fill_until_full(a)
    a.safety_timeout = 5  # no net fires meanwhile
    writer = gevent.spawn(outcome, a.send, b"waits for room")
    poller = zmq_green.Poller()
    poller.register(a, zmq.POLLIN)
    poller.safety_timeout = 5
    polled = gevent.spawn(poller.poll)
    until(lambda: len(a._waits.writers) == 1 and polls_blocked_on(a) == 1)
    b.recv()  # room for one
    assert a.getsockopt(zmq.EVENTS) & zmq.POLLOUT  # through the green socket: wakes the writer
    a.send(b"takes the room", zmq.DONTWAIT)  # before the writer runs
    b.send(b"for the poller")  # its command is pending when the writer tries
    time.sleep(0.01)  # past libzmq's throttle (1 ms): the writer's send processes it
    before = zmq_green.stats()
    assert polled.get(timeout=HANG_GUARD) == [(a, zmq.POLLIN)]
    assert zmq_green.stats()["safety_wakeups"] == before["safety_wakeups"]
    assert not writer.ready()
    writer.kill()


def test_a_message_after_the_try_that_followed_a_safety_timeout_is_no_rescue(
    ctx: zmq_green.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader's safety timeout fires and its try fails; a message arrives between the
    check after that failure and the reading, which consumes its command unseen and says
    POLLIN. The reader's next try succeeds, but what made it succeed came after a failed
    try: news, not a missed wake-up (no rescue, the autouse check)."""
    a, b = connected(ctx, zmq.DEALER, zmq.DEALER, "inproc", sndhwm=1, rcvhwm=1)
    sent = fill_until_full(a)
    writer = gevent.spawn(outcome, a.send, b"waits for room")  # not alone: the reader reads EVENTS
    until(lambda: len(a._waits.writers) == 1)
    a.safety_timeout = 0.05
    window = at_the_check_after_a_failure(
        monkeypatch,
        lambda waits, entry, failed: entry.mask == zmq.POLLIN and waits.rescued_at == waits.news,
        lambda: b.send(b"after the failed try"),  # its command lands in the window
        in_the_window=True,
    )
    monkeypatch.setattr(_waiting, "PREEMPTED", HANG_GUARD)  # the send above is no preemption
    before = zmq_green.stats()
    assert a.recv() == b"after the failed try"
    assert window == [True, False]
    assert zmq_green.stats()["safety_wakeups"] > before["safety_wakeups"]
    for _ in range(sent):
        b.recv()
    assert writer.get(timeout=HANG_GUARD) is None


def test_a_reader_is_not_woken_by_its_own_reading(ctx: zmq_green.Context) -> None:
    """REQ discards a reply without an envelope, but EVENTS announces it. Such a reply
    arrives for a reader (a poller beside it) whose signal is then taken behind its back:
    its safety timeout finds POLLIN, and the reader tries, fails and blocks again -- once.
    The reading was its own: it wakes the others, never the reader itself, so every
    safety wake-up is followed by exactly one more wait."""
    router, req, peer = req_awaiting_its_reply(ctx)
    poller = zmq_green.Poller()
    poller.register(req, zmq.POLLOUT)  # never: a REQ awaiting its reply cannot send
    poller.safety_timeout = HANG_GUARD
    polled = gevent.spawn(poller.poll)
    req.safety_timeout = 0.05
    reply = gevent.spawn(req.recv)
    until(lambda: len(req._waits.readers) == 1 and polls_blocked_on(req) == 1)
    before = zmq_green.stats()
    router.send_multipart([peer, b"no-delimiter"])
    assert zmq.Socket.get(req, zmq.EVENTS) & zmq.POLLIN  # the signal, taken
    until(lambda: zmq_green.stats()["safety_wakeups"] - before["safety_wakeups"] >= 2)
    after = zmq_green.stats()
    assert after["waits"] - before["waits"] == after["safety_wakeups"] - before["safety_wakeups"]
    router.send_multipart([peer, b"", b"answer"])
    assert reply.get(timeout=HANG_GUARD) == b"answer"
    polled.kill()


def test_a_safety_timeout_that_finds_a_waiter_already_retrying_for_news_is_no_rescue(
    lied_to_sender: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender fails twice, and the check after its second failure finds a command
    pending (its peer drained): news, so it lets the others run once and retries. If
    another waiter's safety timeout falls in that turn and its reading wakes the sender,
    the sender's success is still the news it saw, not a missed wake-up (no rescue, the
    autouse check)."""
    router, full, sender, _ = lied_to_sender
    block = _waiting.block
    # The drain posts "room again": the check finds it pending.
    news = at_the_check_after_a_failure(
        monkeypatch, second_failure_to_send, lambda: drain(full), in_the_window=False
    )
    rescued: list[bool] = []

    def with_a_net_in_the_same_turn(entry: Any, seconds: Any, busy_poll: float = 0.0) -> Any:
        if seconds == 0 and news == [True, False] and not rescued:
            rescued.append(True)
            router._waits.rescued_at = router._waits.news  # as another waiter's safety timeout does
            entry.woken = False  # (as block() does first)
            entry.wake(_waiting.RESCUED)  # and its reading, finding the sender ready
        return block(entry, seconds, busy_poll)

    monkeypatch.setattr(_waiting, "block", with_a_net_in_the_same_turn)
    sender.get(timeout=HANG_GUARD)
    assert news == [True, False]
    assert rescued == [True]


def test_a_late_hub_that_runs_the_woken_waiter_before_the_fd_callback_counts_no_rescue(
    ctx: zmq_green.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message comes for a reader (no net) while a writer's safety timeout falls due in
    the same turn of the hub, which runs the timer first and the woken reader before the
    fd's callback (libuv may: it polls fds after running callbacks). The writer's reading
    finds the signal pending and consumes it: the hub was late, nothing was missed, and
    the reader's success must not count as a rescue (the autouse check)."""
    monkeypatch.setattr(_waiting.SocketWaits, "_on_fd", lambda waits: None)  # not run yet
    _, b, reader, writer = reader_without_net_and_writer_with(ctx, 0.05)
    b.send(b"for the reader")  # a's fd signals
    assert reader.get(timeout=HANG_GUARD) == b"for the reader"
    writer.kill()


def test_news_between_a_safety_timeout_and_the_try_it_caused_is_counted(
    ctx: zmq_green.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DEALER with two peers, a reader (no net) and a writer (a short net) blocked on it.
    The reader's signal for a message from the first peer is eaten; the writer's safety
    timeout reads EVENTS and wakes the reader. Before the reader runs, the writer's failed
    try finds a command pending: the second peer's message, news that would have woken
    the reader anyway. The reader's success is then no rescue -- the news counter must
    have moved on from the value the safety timeout recorded (the autouse check)."""
    a = ctx.socket(zmq.DEALER)
    a.linger = 0
    a.sndhwm = 1
    a.bind(f"inproc://two-peers-{id(a)}")
    peers = []
    for _ in range(2):
        peer = ctx.socket(zmq.DEALER)
        peer.linger = 0
        peer.rcvhwm = 1
        peer.connect(a.last_endpoint)
        peers.append(peer)
    sent = fill_until_full(a)
    a.safety_timeout = None
    reader = gevent.spawn(a.recv)
    until(lambda: len(a._waits.readers) == 1)
    a.safety_timeout = 0.05
    writer = gevent.spawn(outcome, a.send, b"waits for room")
    until(lambda: len(a._waits.writers) == 1)
    steps = at_the_check_after_a_failure(
        monkeypatch,
        lambda waits, entry, failed: entry.mask == zmq.POLLOUT and waits.rescued_at == waits.news,
        lambda: peers[1].send(b"second"),  # its pipe was empty: a command for a's mailbox
        in_the_window=False,
    )
    peers[0].send(b"first")
    assert zmq.Socket.get(a, zmq.EVENTS) & zmq.POLLIN  # the reader's signal, eaten
    assert reader.get(timeout=HANG_GUARD) == b"first"
    assert steps == [True, False]
    assert a.recv() == b"second"
    assert sent > 0
    writer.kill()


def test_a_lone_waiters_safety_timeout_beating_its_wakeup_is_no_rescue(ctx: zmq_green.Context) -> None:
    """A reading through the green socket, made by a greenlet whose timer falls due in the
    same turn of the hub as a lone reader's safety timer (a little earlier), finds the
    reader's message and sends it a wake-up; the safety timer runs next, before that
    wake-up. A wake-up was on its way: no rescue (the autouse check)."""
    a, b = connected(ctx, zmq.PAIR, zmq.PAIR, "inproc")
    a.safety_timeout = 0.2
    reader = gevent.spawn(a.recv)
    until(lambda: bool(a._waits.readers))
    reading = gevent.spawn_later(0.1, a.getsockopt, zmq.EVENTS)  # wakes the reader
    b.send(b"for the reader")
    assert select.select([a.get(zmq.FD)], [], [], HANG_GUARD)[0]
    assert zmq.Socket.get(a, zmq.EVENTS) & zmq.POLLIN  # the signal is taken: only that reading wakes it
    time.sleep(0.3)  # the hub does not run: both timers are due when it does
    assert reader.get(timeout=HANG_GUARD) == b"for the reader"
    assert reading.get(timeout=HANG_GUARD) & zmq.POLLIN


def test_a_pollers_safety_timeout_passes_on_what_its_check_consumed(ctx: zmq_green.Context) -> None:
    """A poller waits for room on a DEALER (a short net), a reader with no net beside it.
    A message for the reader arrives in the hub turn in which the poller's safety timer
    fires (sent from a timer due just before it). The poller's check processes its command
    and finds nothing for itself: it must have the reader told, or nobody ever would."""
    a, b = connected(ctx, zmq.DEALER, zmq.DEALER, "inproc", sndhwm=1, rcvhwm=1)
    fill_until_full(a)
    a.safety_timeout = None
    reader = gevent.spawn(a.recv)
    until(lambda: bool(a._waits.readers))
    poller = zmq_green.Poller()
    poller.register(a, zmq.POLLOUT)
    poller.safety_timeout = 0.2
    polled = gevent.spawn(poller.poll)
    until(lambda: polls_blocked_on(a) > 0)
    before = zmq_green.stats()["safety_wakeups"]
    sending = gevent.spawn_later(0.1, b.send, b"for the reader")  # due just before the net
    time.sleep(0.3)  # the hub does not run: both timers are due when it does
    assert reader.get(timeout=HANG_GUARD) == b"for the reader"
    assert zmq_green.stats()["safety_wakeups"] > before  # the poller's net did fire
    sending.get(timeout=HANG_GUARD)
    polled.kill()


def test_a_lone_waiters_safety_timeout_costs_one_try_and_no_reading(
    ctx: zmq_green.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone on its socket, a reader whose safety timeout fires just tries again: nobody
    else needs EVENTS read for them, and its try tells it the truth."""
    a, b = connected(ctx, zmq.PAIR, zmq.PAIR, "inproc")
    readings: list[int] = []
    raw_get = _waiting._raw_get

    def counted(sock: Any, option: int) -> Any:
        if option == zmq.EVENTS:
            readings.append(option)
        return raw_get(sock, option)

    monkeypatch.setattr(_waiting, "_raw_get", counted)
    a.safety_timeout = 0.02
    before = zmq_green.stats()["safety_wakeups"]
    reader = gevent.spawn(a.recv)
    until(lambda: zmq_green.stats()["safety_wakeups"] - before >= 3)
    assert readings == []
    b.send(b"at last")
    assert reader.get(timeout=HANG_GUARD) == b"at last"
