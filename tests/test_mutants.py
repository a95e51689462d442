"""Behaviour that mutation testing (tools/mutation.sh) found unchecked.

Each test pins down something the rest of the suite let change unseen: the
directions a Poller watches a raw fd for, the state a held multipart send leaves
behind, a shadow's share of the waits, and the default busy-poll.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import gevent
import pytest
import zmq

import zmq_green
from tests.conftest import outcome, pair, until
from tests.test_poll import later
from tests.test_socket import LowersHwmBeforeFrame, xpub_with_room_for_one
from tests.transports import fill_until_full
from zmq_green import _spin, _waiting

HANG_GUARD = 5.0
#: Waits a poll may make while nothing it asked for happens (libuv may wake a timer early).
QUIET_WAITS = 4


def waits() -> int:
    return zmq_green.stats()["waits"]


# -- Poller: a raw fd is watched for what was asked, nothing more ----------------


@pytest.fixture
def fd_pairs() -> Iterator[tuple[socket.socket, socket.socket, socket.socket, socket.socket]]:
    """(quiet, quiet_peer, full, full_peer): *quiet* has nothing to read; *full* cannot
    send (its buffer is full) but has something to read."""
    quiet, quiet_peer = socket.socketpair()
    full, full_peer = socket.socketpair()
    full.setblocking(False)
    try:
        while True:
            full.send(b"x" * 65536)
    except BlockingIOError:
        pass
    full_peer.send(b"ready to read")
    yield quiet, quiet_peer, full, full_peer
    for s in (quiet, quiet_peer, full, full_peer):
        s.close()


@pytest.mark.timeout(10)
def test_poller_watches_a_raw_fd_only_for_the_directions_asked(fd_pairs: Any) -> None:
    """POLLIN on a writable fd and POLLOUT on a readable one wake nobody; twice, as the
    second poll reuses the first one's watchers; then the fd that becomes writable does."""
    quiet, _, full, full_peer = fd_pairs
    poller = zmq_green.Poller()
    poller.safety_timeout = None  # only the watch over the fds may find them
    poller.register(quiet.fileno(), zmq.POLLIN)
    poller.register(full, zmq.POLLOUT)  # an object with fileno(), not an int
    before = waits()
    assert poller.poll(50) == []
    assert waits() - before <= QUIET_WAITS, "the poller was woken by what it did not ask for"
    before = waits()
    polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
    gevent.sleep(0.05)
    assert waits() - before <= QUIET_WAITS, "the poller was woken by what it did not ask for"
    full_peer.setblocking(False)
    try:
        while True:
            full_peer.recv(1 << 20)
    except BlockingIOError:
        pass
    start = time.monotonic()
    assert polling.get(timeout=HANG_GUARD) == [(full.fileno(), zmq.POLLOUT)]  # as pyzmq gives it
    assert time.monotonic() - start < HANG_GUARD / 2  # hang guard: not found at the timeout


def test_poller_asked_for_pollpri_alone_is_not_woken_by_ordinary_data(fd_pairs: Any) -> None:
    quiet, quiet_peer, _, _ = fd_pairs
    quiet_peer.send(b"ordinary, not urgent")
    poller = zmq_green.Poller()
    poller.register(quiet, zmq.POLLPRI)
    before = waits()
    assert poller.poll(50) == []
    assert waits() - before <= QUIET_WAITS, "the poller was woken by what it did not ask for"


@pytest.mark.timeout(10)
def test_poller_used_from_another_thread_watches_with_that_threads_hub(fd_pairs: Any) -> None:
    """The idle watchers a poll leaves for the next belong to its hub: another thread makes its own."""
    quiet, quiet_peer, _, _ = fd_pairs
    poller = zmq_green.Poller()
    poller.register(quiet, zmq.POLLIN)
    assert poller.poll(10) == []  # leaves an idle watcher of this thread's hub
    result: list[Any] = []

    def in_thread() -> None:
        polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
        gevent.sleep(0.05)
        quiet_peer.send(b"x")
        result.append(polling.get(timeout=HANG_GUARD))
        gevent.get_hub().destroy(destroy_loop=True)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(HANG_GUARD * 2)
    assert result == [[(quiet.fileno(), zmq.POLLIN)]]


# -- a held multipart send, once complete, holds nothing -------------------------


@pytest.mark.timeout(10)
def test_a_completed_held_multipart_leaves_both_fast_paths_open(ctx: zmq_green.Context) -> None:
    xpub, sub = xpub_with_room_for_one(ctx)
    before = waits()
    sender = gevent.spawn(xpub.send_multipart, LowersHwmBeforeFrame([b"a0", b"a1", b"a2"], 1, xpub))
    until(lambda: waits() > before)  # "a0" went, "a1" waits for room: the send side is held
    assert [sub.recv_multipart() for _ in range(3)] == [[b"before-0"], [b"before-1"], [b"a0", b"a1", b"a2"]]
    sender.get(timeout=HANG_GUARD)
    # Nobody waits any more: calls in either direction take the fast path, DONTWAIT or not
    # (a blocking call that found its line closed would wait for a signal that never comes,
    # and be found by the safety net: a rescue).
    xpub.send(b"after", zmq.DONTWAIT)
    assert sub.recv() == b"after"
    until(lambda: bool(zmq.Socket.get(xpub, zmq.EVENTS) & zmq.POLLOUT))
    xpub.send(b"blocking")
    assert sub.recv() == b"blocking"
    sub.subscribe(b"t")
    sub.subscribe(b"u")
    until(lambda: bool(zmq.Socket.get(xpub, zmq.EVENTS) & zmq.POLLIN))
    assert xpub.recv(zmq.DONTWAIT) == b"\x01t"
    assert xpub.recv() == b"\x01u"


# -- shadows ---------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_a_dropped_shadow_leaves_the_socket_waitable(ctx: zmq_green.Context) -> None:
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    shadow = zmq_green.Socket.shadow(pull.underlying)
    assert shadow._waits is pull._waits
    del shadow
    before = waits()
    reader = gevent.spawn(pull.recv)
    until(lambda: waits() > before)
    push.send(b"after the shadow")
    assert reader.get(timeout=HANG_GUARD) == b"after the shadow"


# -- recv_into -------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_recv_into_takes_at_most_nbytes(mod_ctx: Any) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    push.send(b"abcdef")
    buffer = bytearray(8)
    assert pull.recv_into(buffer, nbytes=3) == 6  # the frame's size, as pyzmq says
    assert buffer == b"abc" + bytes(5)


# -- defaults and counters ---------------------------------------------------------


@pytest.mark.parametrize(
    ("affinity", "cpu_count", "expected"),
    [
        ({0}, None, 0.0),
        ({0, 1}, None, 50e-6),
        ({0, 1, 2}, None, 50e-6),
        (None, 4, 50e-6),  # no sched_getaffinity: os.cpu_count()
        (None, 1, 0.0),
        (None, None, 0.0),  # os.cpu_count() does not know
    ],
)
def test_default_busy_poll_spins_only_with_another_cpu(
    monkeypatch: pytest.MonkeyPatch, affinity: set[int] | None, cpu_count: int | None, expected: float
) -> None:
    if affinity is None:
        monkeypatch.delattr(os, "sched_getaffinity")  # not Linux: the CPUs of the machine count
    else:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: affinity)
    monkeypatch.setattr(os, "cpu_count", lambda: cpu_count)
    assert _waiting._default_busy_poll() == expected


@pytest.mark.timeout(10)
def test_busy_polling_keeps_no_loop_running() -> None:
    """A long busy-poll still lets the hub's loop end when nothing else is left to do.

    In a thread of its own, so that its hub is new (and its busy-poll watcher made there).
    """
    ended: list[bool] = []

    def in_thread() -> None:
        ctx = zmq_green.Context()
        a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        a.bind("inproc://busy")
        b.connect("inproc://busy")
        a.busy_poll = 60.0
        reader = gevent.spawn(a.recv)
        gevent.sleep(0)  # the reader waits, busy-polling for a minute
        b.send(b"x")
        assert reader.get() == b"x"
        ended.append(gevent.get_hub().join(timeout=2))
        ctx.destroy(linger=0)
        gevent.get_hub().destroy(destroy_loop=True)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(HANG_GUARD)
    assert ended == [True]


@pytest.mark.parametrize("seconds", [0.0, 0.5])
def test_a_blocked_call_busy_polls_for_its_sockets_busy_poll(ctx: zmq_green.Context, seconds: float) -> None:
    """A reader blocked on a socket with ``busy_poll`` keeps the hub polling without
    sleeping for that long, a few hub turns later too; with 0, not at all."""
    a, b = pair(ctx, zmq.PAIR, zmq.PAIR)
    a.busy_poll = seconds
    reader = gevent.spawn(a.recv)
    until(lambda: len(a._waits.readers) == 1)
    gevent.sleep(0.01)
    busy = _spin._spinners.get(gevent.get_hub())
    try:
        assert (busy is not None and busy.watcher.active) == (seconds > 0)
    finally:
        if busy is not None:
            busy.until = 0.0  # stops at the next turn: no spinning for the tests after
    b.send(b"x")
    assert reader.get(timeout=HANG_GUARD) == b"x"


def test_closing_a_socket_under_a_waiter_leaves_its_watcher_stopped(ctx: zmq_green.Context) -> None:
    """The fd watcher of a closed socket must not stay in the hub's loop (its fd is gone)."""
    a, _ = pair(ctx, zmq.PAIR, zmq.PAIR)
    reader = gevent.spawn(outcome, a.recv)
    until(lambda: len(a._waits.readers) == 1)
    watcher = a._waits.watcher
    assert watcher is not None and watcher.active
    a.close()
    assert isinstance(reader.get(timeout=HANG_GUARD), zmq.ZMQError)
    assert not watcher.active


def test_reset_stats_zeroes_every_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    counts = {"waits": 3, "safety_wakeups": 2, "rescues": 0, "lied_rescues": 1}
    monkeypatch.setattr(_waiting, "_stats", counts)
    _waiting.reset_stats()
    assert _waiting.stats() == dict.fromkeys(counts, 0)


# -- the frames after the first of a multipart send --------------------------------


@pytest.mark.timeout(10)
def test_send_multipart_with_sndmore_continues_the_message(mod_ctx: Any) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    push.send_multipart([b"1", b"2"], zmq.SNDMORE)
    push.send(b"3")
    assert pull.recv_multipart() == [b"1", b"2", b"3"]


@pytest.mark.timeout(10)
def test_send_multipart_copies_every_frame_unless_told_not_to(mod_ctx: Any) -> None:
    """With copy=True a frame is the buffer's content at the call, whatever the caller does next."""
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    big = bytearray(b"x" * 100_000)  # above copy_threshold: copy=False would share the buffer
    push.send_multipart([b"head", big, big])
    big[:5] = b"later"
    assert [bytes(f[:5]) for f in pull.recv_multipart()] == [b"head", b"xxxxx", b"xxxxx"]


@pytest.mark.timeout(10)
def test_send_multipart_tracks_the_last_frame(mod_ctx: Any) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    tracker = push.send_multipart([b"a", b"b" * 100_000], copy=False, track=True)
    assert isinstance(tracker, zmq.MessageTracker)
    assert pull.recv_multipart() == [b"a", b"b" * 100_000]
    tracker.wait(HANG_GUARD)
    assert tracker.done


@pytest.mark.timeout(10)
def test_a_held_multipart_keeps_out_newcomers_and_timed_out_senders_once_there_is_room(
    ctx: zmq_green.Context,
) -> None:
    """Room comes while the holder waits: until it has run, nobody else's frame may go.

    The hub runs late (CPU work), so the second sender's deadline falls due with the
    signal that wakes the holder, and the hub runs timers first: its last try must not
    send a frame into the middle of the held message.
    """
    xpub, sub = xpub_with_room_for_one(ctx)
    before = waits()
    holder = gevent.spawn(xpub.send_multipart, LowersHwmBeforeFrame([b"a0", b"a1", b"a2"], 1, xpub))
    until(lambda: waits() > before)  # "a0" went, "a1" waits for room
    xpub.sndtimeo = 100
    late = gevent.spawn(outcome, xpub.send_multipart, [b"b0", b"b1"])
    until(lambda: len(xpub._waits.writers) == 2)
    assert [sub.recv_multipart() for _ in range(2)] == [[b"before-0"], [b"before-1"]]  # room
    with pytest.raises(zmq.Again):
        xpub.send(b"c", zmq.DONTWAIT)  # it would come between "a0" and "a1"
    time.sleep(0.2)  # past the second sender's SNDTIMEO, before the hub's next turn
    holder.get(timeout=HANG_GUARD)
    late_outcome = late.get(timeout=HANG_GUARD)
    assert sub.recv_multipart() == [b"a0", b"a1", b"a2"]
    # libev runs the late sender's timer first (it gives up), libuv the holder's wake-up.
    if not isinstance(late_outcome, zmq.Again):
        assert sub.recv_multipart() == [b"b0", b"b1"]


@pytest.mark.timeout(10)
def test_a_held_multipart_keeps_the_readers_overtaking_bound(ctx: zmq_green.Context) -> None:
    """Readers overtaken OVERTAKE_LIMIT times stay ahead of newcomers that would wait while a send is held."""
    xpub, sub = xpub_with_room_for_one(ctx)
    before = waits()
    parked = gevent.spawn(outcome, xpub.recv)
    until(lambda: waits() > before)
    for i in range(_waiting.OVERTAKE_LIMIT):
        sub.subscribe(b"topic-%d" % i)
        assert xpub.recv(zmq.DONTWAIT) == b"\x01topic-%d" % i  # overtakes the parked reader
    before = waits()
    holder = gevent.spawn(xpub.send_multipart, LowersHwmBeforeFrame([b"a0", b"a1", b"a2"], 1, xpub))
    until(lambda: waits() > before)  # "a0" went, "a1" waits for room
    sub.subscribe(b"dontwait")
    assert xpub.recv(zmq.DONTWAIT) == b"\x01dontwait"  # takes what is ready, as pyzmq, held send or not
    sub.subscribe(b"last")
    late = gevent.spawn(xpub.recv)  # would wait: it queues behind the parked reader
    assert parked.get(timeout=HANG_GUARD) == b"\x01last"
    sub.subscribe(b"later")
    assert late.get(timeout=HANG_GUARD) == b"\x01later"
    assert [sub.recv_multipart() for _ in range(3)] == [[b"before-0"], [b"before-1"], [b"a0", b"a1", b"a2"]]
    holder.get(timeout=HANG_GUARD)


@pytest.mark.timeout(10)
def test_overtaking_a_queued_writer_is_bounded_each_time_the_line_forms(ctx: zmq_green.Context) -> None:
    """Sends that find room while a writer waits overtake it OVERTAKE_LIMIT times; then a send
    that would wait queues behind it. Once the line has emptied, the count starts again."""
    push = ctx.socket(zmq.PUSH)
    pull = ctx.socket(zmq.PULL)
    push.linger = pull.linger = 0
    push.sndhwm = pull.rcvhwm = 1  # before connecting: the pipe holds two messages
    push.sndtimeo = int(HANG_GUARD * 1000)  # a send that queues by mistake fails, not hangs
    push.bind(f"inproc://overtaken-{id(push)}")
    pull.connect(push.last_endpoint)
    for line in range(2):
        fill_until_full(push)
        queued = gevent.spawn(push.send, b"queued")
        until(lambda: len(push._waits.writers) == 1)
        for i in range(_waiting.OVERTAKE_LIMIT):
            pull.recv()  # room for one...
            assert push.get(zmq.EVENTS) & zmq.POLLOUT  # ...once the push has seen it (a send may not look)
            push.send(b"overtaking-%d" % i)  # a blocking send that finds room: it overtakes
        pull.recv()
        # Room, seen without waking the queued writer: the next send would take it at once.
        assert zmq.Socket.get(push, zmq.EVENTS) & zmq.POLLOUT
        reader = gevent.spawn(lambda: [pull.recv() for _ in range(3)])
        push.send(b"newcomer")  # a send that would wait: it queues behind
        assert reader.get(timeout=HANG_GUARD) == [
            b"overtaking-%d" % (_waiting.OVERTAKE_LIMIT - 1),
            b"queued",
            b"newcomer",
        ], f"line {line}"
        queued.get(timeout=HANG_GUARD)
        assert not push._waits.writers


@pytest.mark.timeout(10)
def test_closing_one_line_to_newcomers_leaves_the_other_closed(ctx: zmq_green.Context) -> None:
    """A DEALER's readers, then its writers, are overtaken OVERTAKE_LIMIT times: both lines
    are then closed, and a reader that would wait queues behind the reader already there."""
    a = ctx.socket(zmq.DEALER)
    b = ctx.socket(zmq.DEALER)
    a.linger = b.linger = 0
    a.sndhwm = b.rcvhwm = 1  # before connecting: the pipe holds two messages
    a.bind(f"inproc://both-lines-{id(a)}")
    b.connect(a.last_endpoint)
    fill_until_full(a)
    writer = gevent.spawn(outcome, a.send, b"queued")
    reader = gevent.spawn(a.recv)
    until(lambda: len(a._waits.writers) == 1 and len(a._waits.readers) == 1)
    for i in range(_waiting.OVERTAKE_LIMIT):
        b.send(b"r%d" % i)
        assert a.recv(zmq.DONTWAIT) == b"r%d" % i  # overtakes the queued reader
    for i in range(_waiting.OVERTAKE_LIMIT):
        b.recv()
        assert a.get(zmq.EVENTS) & zmq.POLLOUT
        a.send(b"w%d" % i, zmq.DONTWAIT)  # overtakes the queued writer
    b.send(b"for the queued reader")
    gevent.spawn_later(0.05, b.send, b"for the newcomer")
    a.rcvtimeo = int(HANG_GUARD * 1000)
    assert a.recv() == b"for the newcomer"  # would wait: it queues
    assert reader.get(timeout=HANG_GUARD) == b"for the queued reader"
    writer.kill()


@pytest.mark.timeout(10)
def test_a_reader_behind_the_head_makes_no_last_try_at_its_deadline(ctx: zmq_green.Context) -> None:
    """A message comes while the hub runs late, and the second reader's RCVTIMEO falls due with
    the signal that wakes the first: the message is the first reader's; the second gets Again."""
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    before = waits()
    first = gevent.spawn(outcome, pull.recv)
    until(lambda: waits() > before)
    pull.rcvtimeo = 100
    second = gevent.spawn(outcome, pull.recv)
    until(lambda: waits() > before + 1)
    push.send(b"for the first")
    time.sleep(0.2)  # CPU work: past the second reader's deadline before the hub's next turn
    assert first.get(timeout=HANG_GUARD) == b"for the first"
    assert isinstance(second.get(timeout=HANG_GUARD), zmq.Again)


def send_held(ctx: zmq_green.Context, frames: list[Any], **kwargs: Any) -> tuple[Any, Any]:
    """send_multipart *frames* on an XPUB whose second frame must wait for room; (result, sub)."""
    xpub, sub = xpub_with_room_for_one(ctx)
    before = waits()
    sender = gevent.spawn(xpub.send_multipart, LowersHwmBeforeFrame(frames, 1, xpub), **kwargs)
    until(lambda: waits() > before)  # the first frame went, the second waits for room
    assert [sub.recv_multipart() for _ in range(2)] == [[b"before-0"], [b"before-1"]]
    return sender.get(timeout=HANG_GUARD), sub


@pytest.mark.timeout(10)
def test_a_frame_that_waited_for_room_is_copied(ctx: zmq_green.Context) -> None:
    big = bytearray(b"x" * 100_000)  # above copy_threshold: copy=False would share the buffer
    _, sub = send_held(ctx, [b"a0", big, big])
    big[:5] = b"later"
    assert [bytes(f[:5]) for f in sub.recv_multipart()] == [b"a0", b"xxxxx", b"xxxxx"]


@pytest.mark.timeout(10)
def test_a_last_frame_that_waited_for_room_is_tracked(ctx: zmq_green.Context) -> None:
    tracker, sub = send_held(ctx, [b"a0", b"a1" * 50_000], copy=False, track=True)
    assert isinstance(tracker, zmq.MessageTracker)
    assert sub.recv_multipart() == [b"a0", b"a1" * 50_000]
    tracker.wait(HANG_GUARD)


@pytest.mark.timeout(10)
def test_the_greenlet_finishing_an_interrupted_multipart_copies_its_frames(ctx: zmq_green.Context) -> None:
    """Killed while its second frame waits for room, the sender leaves the rest of the
    message to a greenlet of its own, which sends it as the caller asked: copied."""
    xpub, sub = xpub_with_room_for_one(ctx)
    big = bytearray(b"x" * 100_000)  # above copy_threshold: copy=False would share the buffer
    before = waits()
    sender = gevent.spawn(xpub.send_multipart, LowersHwmBeforeFrame([b"a0", big, big], 1, xpub))
    until(lambda: waits() > before)  # "a0" went, the second frame waits for room
    sender.kill()
    finisher = xpub._waits.held
    assert isinstance(finisher, gevent.Greenlet)
    assert [sub.recv_multipart() for _ in range(2)] == [[b"before-0"], [b"before-1"]]
    assert finisher.join(HANG_GUARD) is None and finisher.dead
    big[:5] = b"later"
    assert [bytes(f[:5]) for f in sub.recv_multipart()] == [b"a0", b"xxxxx", b"xxxxx"]


# -- Poller: raw fds outside the hub's two directions ------------------------------


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    yield client, server
    client.close()
    server.close()


@pytest.mark.timeout(10)
def test_a_raw_fd_asked_for_pollpri_and_pollin_wakes_on_ordinary_data(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = tcp_pair
    poller = zmq_green.Poller()
    poller.safety_timeout = None  # only the watch over the fd may find it
    poller.register(server, zmq.POLLIN | zmq.POLLPRI)
    timer = later(0.05, lambda: client.send(b"ordinary"))
    start = time.monotonic()
    assert poller.poll(HANG_GUARD * 1000) == [(server.fileno(), zmq.POLLIN)]
    timer.join()
    assert time.monotonic() - start < HANG_GUARD / 2  # hang guard: not found at the timeout


@pytest.mark.timeout(10)
def test_a_raw_fd_asked_for_pollpri_and_pollout_wakes_when_there_is_room(fd_pairs: Any) -> None:
    _, _, full, full_peer = fd_pairs
    poller = zmq_green.Poller()
    poller.safety_timeout = None
    poller.register(full, zmq.POLLOUT | zmq.POLLPRI)
    assert poller.poll(20) == []

    def drain() -> None:
        full_peer.setblocking(False)
        try:
            while True:
                full_peer.recv(1 << 20)
        except BlockingIOError:
            pass

    timer = later(0.05, drain)
    start = time.monotonic()
    assert poller.poll(HANG_GUARD * 1000) == [(full.fileno(), zmq.POLLOUT)]
    timer.join()
    assert time.monotonic() - start < HANG_GUARD / 2


@pytest.mark.timeout(10)
def test_pollerr_alone_is_not_woken_by_urgent_data(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    """Unread urgent data is no error either: the poll waits without spinning on it."""
    client, server = tcp_pair
    client.send(b"!", socket.MSG_OOB)
    until(lambda: bool(zmq.zmq_poll([(server, zmq.POLLPRI)], 0)))
    poller = zmq_green.Poller()
    poller.register(server, zmq.POLLERR)
    before = waits()
    assert poller.poll(100) == []
    assert waits() - before <= QUIET_WAITS, "the poll spun on urgent data"


@pytest.mark.timeout(10)
def test_pollerr_alone_wakes_on_a_hang_up_when_it_comes() -> None:
    r, w = os.pipe()
    try:
        poller = zmq_green.Poller()
        poller.safety_timeout = None
        poller.register(r, zmq.POLLERR)
        timer = later(0.05, lambda: os.close(w))
        start = time.monotonic()
        assert poller.poll(HANG_GUARD * 1000) == [(r, zmq.POLLERR)]
        timer.join()
        assert time.monotonic() - start < HANG_GUARD / 2
    finally:
        os.close(r)


@pytest.mark.timeout(10)
def test_pollpri_without_epoll_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tcp_pair: tuple[socket.socket, socket.socket]
) -> None:
    _, server = tcp_pair
    monkeypatch.delattr(zmq_green.poll._select, "epoll")
    poller = zmq_green.Poller()
    poller.register(server, zmq.POLLPRI)
    with pytest.raises(NotImplementedError, match=r"POLLPRI, or for POLLERR alone, needs epoll"):
        poller.poll(10)


@pytest.mark.timeout(10)
def test_fd_0_is_watched_like_any_other() -> None:
    """poll(2) skips negative fds only: 0 is a file like the rest (here a pipe put there)."""
    saved = os.dup(0)
    r, w = os.pipe()
    try:
        os.dup2(r, 0)
        poller = zmq_green.Poller()
        poller.safety_timeout = None
        poller.register(0, zmq.POLLIN)
        timer = later(0.05, lambda: os.write(w, b"x"))
        start = time.monotonic()
        assert poller.poll(HANG_GUARD * 1000) == [(0, zmq.POLLIN)]
        timer.join()
        assert time.monotonic() - start < HANG_GUARD / 2  # hang guard: not found at the timeout
    finally:
        os.dup2(saved, 0)
        for fd in (saved, r, w):
            os.close(fd)


# -- select: timeouts and lists as pyzmq ----------------------------------------------


@pytest.fixture(params=["zmq", "zmq_green"])
def sel(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any, Any]]:
    """(module, PAIR a, PAIR b): a connected pair of the module's sockets."""
    mod = zmq if request.param == "zmq" else zmq_green
    ctx = mod.Context()
    a, b = pair(ctx, zmq.PAIR, zmq.PAIR)
    yield mod, a, b
    ctx.destroy(linger=0)


@pytest.mark.timeout(10)
def test_select_with_a_zero_timeout_returns_at_once_when_nothing_is_ready(sel: Any) -> None:
    mod, a, _ = sel
    assert mod.select([a], [], [], 0) == ([], [], [])


@pytest.mark.timeout(10)
@pytest.mark.parametrize("timeout", [None, -1, -0.5])
def test_select_with_no_or_a_negative_timeout_waits_for_readiness(sel: Any, timeout: Any) -> None:
    mod, a, b = sel
    # pyzmq's select blocks the thread: b sends from another (it is used only there).
    timer = later(0.1, lambda: b.send(b"x")) if mod is zmq else gevent.spawn_later(0.1, b.send, b"x")
    assert mod.select([a], [], [], timeout) == ([a], [], [])
    timer.join()


@pytest.mark.timeout(10)
def test_select_reports_each_socket_in_the_lists_it_was_given(sel: Any) -> None:
    mod, a, b = sel
    b.send(b"x")
    until(lambda: bool(a.poll(0)))
    # a is readable and writable, b writable: each is reported only for what was asked.
    assert mod.select([b], [], [], 0) == ([], [], [])
    assert mod.select([], [a], [], 0) == ([], [a], [])
    assert mod.select([a], [], [], 0) == ([a], [], [])
    assert mod.select([a], [a], [], 0) == ([a], [a], [])
    assert mod.select([], [], [a], 0) == ([], [], [])


@pytest.mark.timeout(10)
def test_select_reports_a_hung_up_fd_in_the_error_list(mod: Any) -> None:
    r, w = os.pipe()
    try:
        os.close(w)
        assert mod.select([], [], [r], 0) == ([], [], [r])
    finally:
        os.close(r)


@pytest.mark.timeout(10)
def test_select_polls_for_the_timeout_in_whole_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """As pyzmq's: ``int(timeout * 1000)``, so 0.0255 s is a 25 ms poll; none or a negative
    one is -1, forever."""
    asked: list[Any] = []
    monkeypatch.setattr(zmq_green.Poller, "poll", lambda self, timeout=None: asked.append(timeout) or [])
    for timeout in (0.0255, 2.5, None, -0.5):
        zmq_green.select([], [], [], timeout)
    assert asked == [25, 2500, -1, -1]


# -- defaults -------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_the_global_instance_has_one_io_thread_as_pyzmqs(mod: Any) -> None:
    previous = mod.Context._instance
    mod.Context._instance = None
    try:
        ctx = mod.Context.instance()
        assert ctx.get(zmq.IO_THREADS) == 1
        ctx.term()
    finally:
        mod.Context._instance = previous


@pytest.mark.timeout(10)
def test_recv_into_takes_float_flags_as_pyzmq(mod_ctx: Any) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    push.send(b"abc")
    buf = bytearray(8)
    assert pull.recv_into(buf, flags=0.0) == 3
    assert bytes(buf[:3]) == b"abc"


# -- who may try before a closed line -----------------------------------------------


@pytest.mark.parametrize(
    ("direction", "flags", "held", "may"),
    [
        (zmq.POLLIN, zmq.DONTWAIT, False, True),
        (zmq.POLLIN, zmq.DONTWAIT, True, True),  # a half-sent message does not concern readers
        (zmq.POLLOUT, zmq.DONTWAIT, False, True),  # takes the room there is, as in pyzmq
        (zmq.POLLOUT, zmq.DONTWAIT, True, False),  # its frame would join the half-sent message
        (zmq.POLLIN, 0, False, False),  # a call that would wait queues behind
        (zmq.POLLOUT, 0, False, False),
    ],
)
def test_only_dontwait_calls_try_before_a_closed_line_and_no_sender_while_one_is_held(
    direction: int, flags: int, held: bool, may: bool
) -> None:
    from zmq_green.socket import _may_overtake

    class Waits:
        pass

    waits = Waits()
    waits.held = gevent.getcurrent() if held else None  # type: ignore[attr-defined]
    assert _may_overtake(waits, int(direction), int(flags)) is may  # type: ignore[arg-type]


# -- send_multipart refuses what pyzmq refuses, in its words ---------------------------


def in_both(use: Callable[[Any, Any], Any]) -> Any:
    """``use(pull, push)`` on a connected PULL/PUSH pair of pyzmq's, then of zmq_green's:
    what it returned or (type, words) of what it raised, the same for both."""
    outcomes = []
    for mod in (zmq, zmq_green):
        ctx = mod.Context()
        pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
        try:
            outcomes.append(use(pull, push))
        except Exception as e:
            outcomes.append((type(e), str(e)))
        finally:
            ctx.destroy(linger=0)
    assert outcomes[0] == outcomes[1]
    return outcomes[0]


class Unbuffered:
    """A frame that is no buffer, with a repr of a chosen length."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __repr__(self) -> str:
        return "U" * self.length


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "parts",
    [
        pytest.param([b"ok", Unbuffered(31)], id="repr-31"),
        pytest.param([b"ok", Unbuffered(32)], id="repr-32"),
        pytest.param([b"ok", b"ok", Unbuffered(33)], id="repr-33-third"),
        pytest.param([Unbuffered(40), b"ok"], id="repr-40-first"),
        pytest.param([], id="empty"),
    ],
)
def test_send_multipart_refuses_what_pyzmq_refuses_in_its_words(parts: list[Any]) -> None:
    outcome = in_both(lambda pull, push: push.send_multipart(parts))
    assert isinstance(outcome, tuple) and issubclass(outcome[0], Exception), outcome  # refused


def assert_tracker(mod_ctx: Any, tracker: Any, tracked: bool) -> None:
    """*tracker* is None, or (if *tracked*) pyzmq's or zmq_green's tracker, and done."""
    if not tracked:
        assert tracker is None
        return
    assert isinstance(tracker, zmq.MessageTracker)
    if mod_ctx.__class__.__module__.startswith("zmq_green"):
        assert isinstance(tracker, zmq_green.MessageTracker)  # its wait() blocks only the caller
    tracker.wait(HANG_GUARD)
    assert tracker.done


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("frames", "kwargs", "tracked"),
    [
        pytest.param([b"a"], {"track": True}, False, id="copied-track"),  # a copy has nothing to track
        pytest.param([b"b" * 100_000], {"copy": False}, False, id="single-untracked"),
        pytest.param([b"b" * 100_000], {"copy": False, "track": True}, True, id="single-tracked"),
        pytest.param([b"a", b"b" * 100_000], {"copy": False, "track": True}, True, id="two-tracked"),
    ],
)
def test_send_multipart_returns_a_tracker_exactly_when_pyzmq_does(
    mod_ctx: Any, frames: list[bytes], kwargs: dict[str, Any], tracked: bool
) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    tracker = push.send_multipart(frames, **kwargs)
    assert pull.recv_multipart() == frames
    assert_tracker(mod_ctx, tracker, tracked)


@pytest.mark.timeout(10)
def test_send_multipart_copies_the_first_frame_too(mod_ctx: Any) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    big = bytearray(b"x" * 100_000)  # above copy_threshold: copy=False would share the buffer
    push.send_multipart([big, b"tail"])
    big[:5] = b"later"
    assert [bytes(f[:5]) for f in pull.recv_multipart()] == [b"xxxxx", b"tail"]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "flags", [0.0, Fraction(0), zmq.DONTWAIT * 1.0], ids=["float", "Fraction", "dontwait-float"]
)
@pytest.mark.parametrize("frames", [[b"a"], [b"a", b"b"]], ids=["one-frame", "two-frames"])
def test_send_multipart_takes_or_refuses_flags_that_are_no_int_as_pyzmq(
    flags: Any, frames: list[bytes]
) -> None:
    """pyzmq converts them for the last frame, and refuses them (``SNDMORE | flags``) before it."""
    in_both(lambda pull, push: (push.send_multipart(frames, flags=flags), pull.recv_multipart()))


@pytest.mark.timeout(10)
def test_one_fd_registered_twice_is_watched_for_both_masks() -> None:
    """As its number and as an object with fileno(), for POLLIN and for POLLOUT: a poll
    wakes for either (poll(2) sees both entries)."""
    sock, peer = socket.socketpair()
    sock.setblocking(False)
    try:
        try:
            while True:
                sock.send(b"x" * 65536)  # not writable, and nothing to read
        except BlockingIOError:
            pass
        safety_wakeups = zmq_green.stats()["safety_wakeups"]
        for first, second in ((zmq.POLLIN, zmq.POLLOUT), (zmq.POLLOUT, zmq.POLLIN)):
            poller = zmq_green.Poller()
            poller.safety_timeout = HANG_GUARD / 2  # a net far off: a wake-up before it is the watch's
            poller.register(sock.fileno(), first)
            poller.register(sock, second)
            assert poller.poll(20) == []
            timer = later(0.05, lambda: peer.send(b"wake"))
            start = time.monotonic()
            assert poller.poll(HANG_GUARD * 1000) != []
            timer.join()
            assert time.monotonic() - start < HANG_GUARD / 4  # hang guard: not found by the net
            assert sock.recv(16) == b"wake"
        assert zmq_green.stats()["safety_wakeups"] == safety_wakeups  # woken as ready, not by a net
    finally:
        sock.close()
        peer.close()


# -- a waiter is woken by readiness in its own direction only -------------------------


@pytest.mark.timeout(10)
def test_reads_on_a_socket_do_not_wake_its_blocked_writer() -> None:
    """A DEALER's writer waits for room; 100 messages are read from the same socket, each
    read followed by a recheck: the rechecks find POLLIN, not POLLOUT, and the writer
    sleeps through them."""
    ctx = zmq_green.Context()
    try:
        a, b = pair(ctx, zmq.DEALER, zmq.DEALER)
        a.sndhwm = b.rcvhwm = 1
        a.rcvhwm = b.sndhwm = 1000
        for i in range(100):
            b.send(b"%d" % i)
        fill_until_full(a)
        before = waits()
        writer = gevent.spawn(a.send, b"waits for room")
        until(lambda: waits() > before)
        before = waits()
        for i in range(100):
            assert a.recv() == b"%d" % i  # ready: the fast path, and a recheck for the writer
            gevent.sleep(0)  # the recheck runs
        assert waits() - before <= QUIET_WAITS, "the writer was woken by readability"
        assert not writer.ready()
        writer.kill()
    finally:
        ctx.destroy(linger=0)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("kwargs", "frames", "tracked"),
    [
        pytest.param({}, False, False, id="default"),
        pytest.param({"copy": False}, True, False, id="frames"),
        pytest.param({"copy": False, "track": True}, True, True, id="tracked-frames"),
    ],
)
def test_recv_multipart_gives_every_part_as_asked(
    mod_ctx: Any, kwargs: dict[str, Any], frames: bool, tracked: bool
) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    push.send_multipart([b"a", b"b", b"c"])
    parts = pull.recv_multipart(**kwargs)
    assert [bytes(p) for p in parts] == [b"a", b"b", b"c"]
    assert [isinstance(p, zmq.Frame) for p in parts] == [frames] * 3
    if frames:
        assert [p.tracker is not None for p in parts] == [tracked] * 3


# -- Poller.poll's timeout, as pyzmq's zmq_poll takes it ------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("timeout", [0, 0.9], ids=["zero", "under-a-millisecond"])
def test_a_poll_that_cannot_wait_lets_no_other_greenlet_run(mod_ctx: Any, mod: Any, timeout: float) -> None:
    """0, and a float under 1 (pyzmq takes whole milliseconds): a look, no wait, no switch."""
    pull, _ = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    poller = mod.Poller()
    poller.register(pull, zmq.POLLIN)
    ran: list[int] = []
    gevent.spawn(ran.append, 1)
    assert poller.poll(timeout) == []
    assert ran == []
    gevent.sleep(0)
    assert ran == [1]


@pytest.mark.timeout(10)
def test_a_poll_timeout_is_a_c_int_as_in_pyzmq(mod_ctx: Any, mod: Any) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    push.send(b"ready")
    until(lambda: bool(pull.poll(0)))
    poller = mod.Poller()
    poller.register(pull, zmq.POLLIN)
    assert poller.poll(2**31 - 1) == [(pull, zmq.POLLIN)]  # the largest C int: accepted
    with pytest.raises(OverflowError) as info:
        poller.poll(2**31)
    assert str(info.value) == "value too large to convert to int"


# -- send and recv: copy, track and flags as pyzmq ------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("data", "kwargs", "tracked"),
    [
        pytest.param(b"a", {}, False, id="default"),
        pytest.param(b"a", {"track": True}, False, id="copied-track"),
        pytest.param(b"b" * 100_000, {"copy": False}, False, id="untracked"),
        pytest.param(b"b" * 100_000, {"copy": False, "track": True}, True, id="tracked"),
    ],
)
def test_send_returns_a_tracker_exactly_when_pyzmq_does(
    mod_ctx: Any, data: bytes, kwargs: dict[str, Any], tracked: bool
) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    tracker = push.send(data, **kwargs)
    assert pull.recv() == data
    assert_tracker(mod_ctx, tracker, tracked)


@pytest.mark.timeout(10)
def test_send_copies_by_default(mod_ctx: Any) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    big = bytearray(b"x" * 100_000)  # above copy_threshold: copy=False would share the buffer
    push.send(big)
    big[:5] = b"later"
    assert pull.recv()[:5] == b"xxxxx"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("kwargs", "frame", "tracked"),
    [
        pytest.param({}, False, False, id="default"),
        pytest.param({"copy": False}, True, False, id="frame"),
        pytest.param({"copy": False, "track": True}, True, True, id="tracked-frame"),
    ],
)
def test_recv_gives_what_was_asked(mod_ctx: Any, kwargs: dict[str, Any], frame: bool, tracked: bool) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    push.send(b"a")
    got = pull.recv(**kwargs)
    assert bytes(got) == b"a" and isinstance(got, zmq.Frame) is frame
    if frame:
        assert (got.tracker is not None) is tracked


@pytest.mark.timeout(10)
def test_send_and_recv_take_float_flags_as_pyzmq(mod_ctx: Any) -> None:
    pull, push = pair(mod_ctx, zmq.PULL, zmq.PUSH)
    push.send(b"a", flags=0.0)
    assert pull.recv(flags=0.0) == b"a"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kwargs", [{"routing_id": 1}, {"group": "g"}, {"routing_id": 1, "group": "g"}])
def test_send_with_a_routing_id_or_group_does_what_pyzmqs_does(kwargs: dict[str, Any]) -> None:
    """Without libzmq's DRAFT API, pyzmq refuses both; with it, they label the frame."""
    in_both(lambda pull, push: (push.send(b"x", **kwargs), pull.recv()))


class LabelledFrame(zmq.Frame):
    """A Frame that records the DRAFT labels given to it (this libzmq would refuse them)."""

    labels: dict[str, Any]

    @property  # type: ignore[override]
    def routing_id(self) -> Any:
        return self.labels.get("routing_id")

    @routing_id.setter
    def routing_id(self, value: Any) -> None:
        self.labels["routing_id"] = value

    @property  # type: ignore[override]
    def group(self) -> Any:
        return self.labels.get("group")

    @group.setter
    def group(self, value: Any) -> None:
        self.labels["group"] = value


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kwargs", [{}, {"routing_id": 7}, {"group": "g"}, {"routing_id": 7, "group": "g"}])
def test_send_labels_a_frame_with_its_routing_id_and_group(
    ctx: zmq_green.Context, kwargs: dict[str, Any]
) -> None:
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    frame = LabelledFrame(b"x")
    frame.labels = {}
    push.send(frame, **kwargs)
    assert pull.recv() == b"x"
    assert frame.labels == kwargs


@pytest.mark.timeout(10)
@pytest.mark.parametrize("copy", [True, False])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("copy_threshold", [zmq.COPY_THRESHOLD, 1_000_000])
def test_send_builds_a_draft_frame_from_its_own_arguments(
    ctx: zmq_green.Context, monkeypatch: pytest.MonkeyPatch, copy: bool, track: bool, copy_threshold: int
) -> None:
    """send() hands its data, copy, track and the socket's copy threshold to the DRAFT
    frame, as pyzmq's does (this libzmq may refuse the label itself, so the frame is
    looked at before it is labelled)."""
    built: list[zmq.Frame] = []
    draft_frame = zmq_green.socket._draft_frame

    def unlabelled(sock: Any, data: Any, copy: bool, track: bool, routing_id: Any, group: Any) -> Any:
        built.append(draft_frame(sock, data, copy, track, None, None))
        return built[-1]

    monkeypatch.setattr(zmq_green.socket, "_draft_frame", unlabelled)
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    push.copy_threshold = copy_threshold
    data = bytearray(b"x" * 100_000)  # copied if asked, or if under the threshold
    tracker = push.send(data, copy=copy, track=track, routing_id=1)
    data[0] = ord("y")  # a copy keeps what was sent; without one, the frame shares this memory
    copied = copy or len(data) < copy_threshold
    assert pull.recv()[:2] == (b"xx" if copied else b"yx")
    (frame,) = built
    assert (frame.tracker is not None) is track
    assert (tracker is not None) is track


@pytest.mark.timeout(10)
def test_a_holder_killed_alone_leaves_the_send_side_held_until_its_message_is_finished(
    ctx: zmq_green.Context,
) -> None:
    """The holder of a half-sent message is killed while no other sender waits: its line
    empties, but the send side stays closed to newcomers until the greenlet that finishes
    the message has run. A DONTWAIT send that runs in between, with room there, is refused
    instead of joining the message."""
    xpub, sub = xpub_with_room_for_one(ctx)
    before = waits()
    holder = gevent.spawn(xpub.send_multipart, LowersHwmBeforeFrame([b"a0", b"a1", b"a2"], 1, xpub))
    until(lambda: waits() > before)  # "a0" went, "a1" waits for room
    xpub.sndhwm = 10  # room at once, and no command: the holder is not woken
    holder.kill(block=False)
    newcomer = gevent.spawn(outcome, xpub.send, b"c", zmq.DONTWAIT)  # runs right after the kill
    assert isinstance(newcomer.get(timeout=HANG_GUARD), zmq.Again)
    got = [sub.recv_multipart() for _ in range(3)]
    assert got == [[b"before-0"], [b"before-1"], [b"a0", b"a1", b"a2"]]


@pytest.mark.timeout(10)
@pytest.mark.rescues_expected
def test_the_safety_timeout_of_a_holder_whose_wakeup_was_missed_lets_it_try(ctx: zmq_green.Context) -> None:
    """The greenlet holding a half-sent message waits for room; the room comes, and its
    signal is taken behind zmq_green's back. Its safety timeout must let it try (it holds
    the send side: its turn), find the room, and count the rescue -- else it waits for good."""
    xpub, sub = xpub_with_room_for_one(ctx)
    xpub.safety_timeout = 0.05
    before = waits()
    holder = gevent.spawn(xpub.send_multipart, LowersHwmBeforeFrame([b"a0", b"a1", b"a2"], 1, xpub))
    until(lambda: waits() > before)  # "a0" went, "a1" waits for room
    counted = zmq_green.stats()["rescues"]
    try:
        assert [sub.recv_multipart() for _ in range(2)] == [[b"before-0"], [b"before-1"]]  # room
        zmq.Socket.get(xpub, zmq.EVENTS)  # the holder's signal, taken
        holder.get(timeout=HANG_GUARD)
        rescued = zmq_green.stats()["rescues"] - counted
    finally:
        zmq_green.reset_stats()  # the rescue was ours: no other test should count it
    assert rescued == 1
    assert sub.recv_multipart() == [b"a0", b"a1", b"a2"]
