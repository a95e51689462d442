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
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import zmq

import zmq_green
from tests.conftest import outcome, pair, run_script, until
from tests.test_socket import LowersHwmBeforeFrame, xpub_with_room_for_one
from zmq_green import _waiting

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
    assert polling.get(timeout=HANG_GUARD) == [(full.fileno(), zmq.POLLOUT)]  # as pyzmq gives it


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
    # Nobody waits any more: calls in either direction take the fast path, DONTWAIT included.
    xpub.send(b"after", zmq.DONTWAIT)
    assert sub.recv() == b"after"
    sub.subscribe(b"t")
    until(lambda: bool(zmq.Socket.get(xpub, zmq.EVENTS) & zmq.POLLIN))
    assert xpub.recv(zmq.DONTWAIT) == b"\x01t"


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


def test_busy_polling_keeps_no_loop_running() -> None:
    """A long busy-poll still lets the hub's loop end when nothing else is left to do."""
    proc = run_script(
        """
        import gevent, zmq
        import zmq_green

        ctx = zmq_green.Context()
        a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        a.bind("inproc://busy")
        b.connect("inproc://busy")
        a.busy_poll = 60.0
        reader = gevent.spawn(a.recv)
        gevent.sleep(0)  # the reader waits, busy-polling for a minute
        b.send(b"x")
        assert reader.get() == b"x"
        print(gevent.get_hub().join(timeout=2))
        """
    )
    assert proc.stdout.split() == ["True"]


def test_reset_stats_zeroes_every_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_waiting, "_stats", {"waits": 3, "safety_wakeups": 2, "rescues": 0})
    _waiting.reset_stats()
    assert _waiting.stats() == {"waits": 0, "safety_wakeups": 0, "rescues": 0}


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
    sub.subscribe(b"last")
    late = gevent.spawn(xpub.recv)  # would wait: it queues behind the parked reader
    assert parked.get(timeout=HANG_GUARD) == b"\x01last"
    sub.subscribe(b"later")
    assert late.get(timeout=HANG_GUARD) == b"\x01later"
    assert [sub.recv_multipart() for _ in range(3)] == [[b"before-0"], [b"before-1"], [b"a0", b"a1", b"a2"]]
    holder.get(timeout=HANG_GUARD)


@pytest.mark.timeout(10)
def test_overtaking_a_queued_writer_is_bounded(ctx: zmq_green.Context) -> None:
    """Sends that find room while a writer waits overtake it OVERTAKE_LIMIT times; then a send
    that would wait queues behind it."""
    push = ctx.socket(zmq.PUSH)
    pull = ctx.socket(zmq.PULL)
    push.linger = pull.linger = 0
    push.sndhwm = pull.rcvhwm = 1  # before connecting: the pipe holds two messages
    push.bind(f"inproc://overtaken-{id(push)}")
    pull.connect(push.last_endpoint)
    sent = 0
    with pytest.raises(zmq.Again):
        while True:
            push.send(b"fill-%d" % sent, zmq.DONTWAIT)
            sent += 1
    before = waits()
    queued = gevent.spawn(push.send, b"queued")
    until(lambda: waits() > before)
    for i in range(_waiting.OVERTAKE_LIMIT):
        pull.recv()  # room for one...
        assert push.get(zmq.EVENTS) & zmq.POLLOUT  # ...once the push has seen it (a send may not look)
        push.send(b"overtaking-%d" % i, zmq.DONTWAIT)
    pull.recv()
    # Room, seen without waking the queued writer: the next send would take it at once.
    assert zmq.Socket.get(push, zmq.EVENTS) & zmq.POLLOUT
    reader = gevent.spawn(lambda: [pull.recv() for _ in range(3)])
    push.send(b"newcomer")  # a send that would wait: it queues behind
    assert reader.get(timeout=HANG_GUARD) == [
        b"overtaking-%d" % (_waiting.OVERTAKE_LIMIT - 1),
        b"queued",
        b"newcomer",
    ]
    queued.get(timeout=HANG_GUARD)


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
