"""Green Socket: every blocking call blocks only its greenlet, and many greenlets share a socket.

The tests of waiting (timeouts, FIFO order, kills, close) run over every transport
of ``transports.TRANSPORTS``: over ipc and tcp the wake-ups come from libzmq's I/O
thread, at moments the test does not choose.
"""

from __future__ import annotations

import gc
import re
import select
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections import Counter
from typing import Any, Callable

import gevent
import gevent.event
import pytest
import zmq
from conftest import Ticker, outcome, pair, run_script, until
from transports import HANG_GUARD, TRANSPORTS, bound, connected, connecting, fill_until_full
from zmq.backend import Socket as RawSocket

import zmq_green

# -- helpers -------------------------------------------------------------------


def waits() -> int:
    return zmq_green.stats()["waits"]


def until_waiting(before: int, greenlets: int = 1) -> None:
    """Let the hub run until *greenlets* more waits began than *before* (``stats()["waits"]``)."""
    until(lambda: waits() - before >= greenlets)


def hwm_pair(ctx: Any, transport: str = "inproc") -> tuple[Any, Any]:
    """A connected (PULL, PUSH) with high-water marks of 1."""
    return connected(ctx, zmq.PULL, zmq.PUSH, transport, sndhwm=1, rcvhwm=1)


def blocks_only_caller(call: Callable[[], Any], provide: Callable[[], Any]) -> Any:
    """Run *call* in a greenlet and, once it waits, *provide* what it waits for; return its result.

    The caller must really wait, and this greenlet runs meanwhile: only the caller is blocked.
    """
    before = waits()
    caller = gevent.spawn(call)
    until_waiting(before)
    assert not caller.ready()
    provide()
    return caller.get(timeout=HANG_GUARD)


def again_at_once(mod: Any, call: Callable[[], Any]) -> None:
    """*call* raises ``Again`` without giving the hub a turn: a greenlet spawned before it never ran."""
    ran: list[bool] = []
    other = gevent.spawn(ran.append, True)
    with pytest.raises(mod.Again):
        call()
    assert ran == []
    other.kill()


def recv_into(sock: Any, **kw: Any) -> tuple[int, bytes]:
    buf = bytearray(16)
    n = sock.recv_into(buf, **kw)
    return n, bytes(buf[:n])


def drain(sock: Any, last: bytes) -> list[list[bytes]]:
    """The messages *sock* receives up to and including the first whose last frame is *last*."""
    messages: list[list[bytes]] = []
    while not messages or messages[-1][-1] != last:
        assert sock.poll(HANG_GUARD * 1000), f"{last!r} never came; got {messages}"
        messages.append(sock.recv_multipart())
    return messages


# -- point: every blocking call blocks only the calling greenlet --------------

# name -> (call on the PULL socket, what the PUSH peer sends, expected result)
RECV_CASES: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any], Any]] = {
    "recv": (lambda s: s.recv(), lambda p: p.send(b"m"), b"m"),
    "recv_frame": (lambda s: s.recv(copy=False).bytes, lambda p: p.send(b"m"), b"m"),
    "recv_multipart": (
        lambda s: s.recv_multipart(),
        lambda p: p.send_multipart([b"a", b"b", b"c"]),
        [b"a", b"b", b"c"],
    ),
    "recv_into": (recv_into, lambda p: p.send(b"into"), (4, b"into")),
    "recv_string": (lambda s: s.recv_string(), lambda p: p.send_string("\u00e9t\u00e9"), "\u00e9t\u00e9"),
    "recv_json": (lambda s: s.recv_json(), lambda p: p.send_json({"a": [1, 2]}), {"a": [1, 2]}),
    "recv_pyobj": (lambda s: s.recv_pyobj(), lambda p: p.send_pyobj((1, "x")), (1, "x")),
    "recv_serialized": (
        lambda s: s.recv_serialized(lambda frames: [f.decode() for f in frames]),
        lambda p: p.send_multipart([b"x", b"y"]),
        ["x", "y"],
    ),
    "poll": (lambda s: s.poll(), lambda p: p.send(b"m"), zmq.POLLIN),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", list(RECV_CASES))
def test_receiving_call_blocks_only_the_calling_greenlet(ctx: zmq_green.Context, name: str) -> None:
    call, send, expected = RECV_CASES[name]
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    assert blocks_only_caller(lambda: call(pull), lambda: send(push)) == expected


# name -> (call on a PUSH socket at its high-water mark, how the PULL peer reads it, expected)
SEND_CASES: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any], Any]] = {
    "send": (lambda s: s.send(b"m"), lambda s: s.recv(), b"m"),
    "send_frame": (lambda s: s.send(zmq.Frame(b"m"), copy=False), lambda s: s.recv(), b"m"),
    "send_multipart": (
        lambda s: s.send_multipart([b"a", b"b", b"c"]),
        lambda s: s.recv_multipart(),
        [b"a", b"b", b"c"],
    ),
    "send_string": (lambda s: s.send_string("\u00e9t\u00e9"), lambda s: s.recv_string(), "\u00e9t\u00e9"),
    "send_json": (lambda s: s.send_json({"a": [1, 2]}), lambda s: s.recv_json(), {"a": [1, 2]}),
    "send_pyobj": (lambda s: s.send_pyobj((1, "x")), lambda s: s.recv_pyobj(), (1, "x")),
    "send_serialized": (
        lambda s: s.send_serialized(["x", "y"], lambda msg: [m.encode() for m in msg]),
        lambda s: s.recv_multipart(),
        [b"x", b"y"],
    ),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", list(SEND_CASES))
def test_sending_call_blocks_only_the_calling_greenlet(ctx: zmq_green.Context, name: str) -> None:
    call, read, expected = SEND_CASES[name]
    pull, push = hwm_pair(ctx)
    filled = fill_until_full(push)
    assert filled >= 1

    def drain_fill() -> None:
        assert [pull.recv() for _ in range(filled)] == [b"fill"] * filled

    blocks_only_caller(lambda: call(push), drain_fill)
    assert read(pull) == expected
    with pytest.raises(zmq.Again):
        pull.recv(zmq.DONTWAIT)  # sent once, not twice


@pytest.mark.timeout(10)
def test_socket_poll_for_pollout_blocks_only_the_calling_greenlet(ctx: zmq_green.Context) -> None:
    pull, push = hwm_pair(ctx)
    filled = fill_until_full(push)
    drain_fill = lambda: [pull.recv() for _ in range(filled)]  # noqa: E731
    assert blocks_only_caller(lambda: push.poll(flags=zmq.POLLOUT), drain_fill) == zmq.POLLOUT


@pytest.mark.timeout(10)
def test_socket_poll_timeout_returns_zero_and_blocks_only_the_caller(ctx: zmq_green.Context) -> None:
    pull, _ = pair(ctx, zmq.PULL, zmq.PUSH)
    ticker = Ticker()
    assert pull.poll(timeout=100) == 0
    # This greenlet did not run meanwhile: every tick happened while poll() waited.
    assert ticker.stop() > 0


# -- point: explicit NOBLOCK/DONTWAIT keeps pyzmq semantics -------------------

RECV_DONTWAIT: dict[str, Callable[[Any, int], Any]] = {
    "recv": lambda s, f: s.recv(f),
    "recv_frame": lambda s, f: s.recv(f, copy=False),
    "recv_multipart": lambda s, f: s.recv_multipart(f),
    "recv_into": lambda s, f: recv_into(s, flags=f),
    "recv_string": lambda s, f: s.recv_string(f),
    "recv_json": lambda s, f: s.recv_json(f),
    "recv_pyobj": lambda s, f: s.recv_pyobj(f),
    "recv_serialized": lambda s, f: s.recv_serialized(lambda m: m, f),
}

SEND_DONTWAIT: dict[str, Callable[[Any, int], Any]] = {
    "send": lambda s, f: s.send(b"m", f),
    "send_multipart": lambda s, f: s.send_multipart([b"a", b"b"], f),
    "send_string": lambda s, f: s.send_string("m", f),
    "send_json": lambda s, f: s.send_json(1, f),
    "send_pyobj": lambda s, f: s.send_pyobj(1, f),
    "send_serialized": lambda s, f: s.send_serialized([b"m"], lambda m: m, f),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("flag", ["DONTWAIT", "NOBLOCK"])
@pytest.mark.parametrize("name", list(RECV_DONTWAIT))
def test_dontwait_receive_raises_again_at_once(mod: Any, mod_ctx: Any, name: str, flag: str) -> None:
    pull, _ = pair(mod_ctx, mod.PULL, mod.PUSH)
    again_at_once(mod, lambda: RECV_DONTWAIT[name](pull, getattr(mod, flag)))


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", list(SEND_DONTWAIT))
def test_dontwait_send_without_peer_raises_again_at_once(mod: Any, mod_ctx: Any, name: str) -> None:
    push, _ = bound(mod_ctx, mod.PUSH, "inproc")
    again_at_once(mod, lambda: SEND_DONTWAIT[name](push, mod.DONTWAIT))


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dontwait_raises_again_while_other_greenlets_wait_and_leaves_them_waiting(
    ctx: zmq_green.Context, transport: str
) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    before = waits()
    readers = [gevent.spawn(pull.recv) for _ in range(3)]
    until_waiting(before, 3)
    again_at_once(zmq, lambda: pull.recv(zmq.DONTWAIT))
    for i in range(3):
        push.send(b"%d" % i)
    assert [r.get(timeout=HANG_GUARD) for r in readers] == [b"0", b"1", b"2"]


# -- point: RCVTIMEO/SNDTIMEO behave exactly as in pyzmq ------------------------

RECV_TIMEO: dict[str, Callable[[Any], Any]] = {
    "recv": lambda s: s.recv(),
    "recv_multipart": lambda s: s.recv_multipart(),
    "recv_into": recv_into,
    "recv_string": lambda s: s.recv_string(),
}

SEND_TIMEO: dict[str, Callable[[Any], Any]] = {
    "send": lambda s: s.send(b"m"),
    "send_multipart": lambda s: s.send_multipart([b"a", b"b"]),
    "send_string": lambda s: s.send_string("m"),
}


def times_out_silently(mod: Any, sock: Any, option: str, call: Callable[[Any], Any]) -> None:
    """With *option* (``rcvtimeo``/``sndtimeo``) at 100 ms, *call* raises Again, not before, warning nothing."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        setattr(sock, option, 100)
        assert getattr(sock, option) == 100
        start = time.monotonic()
        with pytest.raises(mod.Again):
            call(sock)
        elapsed = time.monotonic() - start
    assert caught == []
    assert elapsed >= 0.09  # libzmq's clock may round down by a millisecond or so


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name", list(RECV_TIMEO))
def test_rcvtimeo_raises_again_after_the_timeout_without_warning(
    mod: Any, mod_ctx: Any, name: str, transport: str
) -> None:
    pull, _ = connected(mod_ctx, mod.PULL, mod.PUSH, transport)
    times_out_silently(mod, pull, "rcvtimeo", RECV_TIMEO[name])


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", list(SEND_TIMEO))
def test_sndtimeo_raises_again_after_the_timeout_without_warning(mod: Any, mod_ctx: Any, name: str) -> None:
    push, _ = bound(mod_ctx, mod.PUSH, "inproc")  # no peer: nowhere to send
    times_out_silently(mod, push, "sndtimeo", SEND_TIMEO[name])


@pytest.mark.timeout(10)
@pytest.mark.parametrize("option", ["rcvtimeo", "sndtimeo"])
def test_timeo_zero_raises_again_at_once(mod: Any, mod_ctx: Any, option: str) -> None:
    # No peer: nothing to receive, nowhere to send.
    sock, _ = bound(mod_ctx, mod.PULL if option == "rcvtimeo" else mod.PUSH, "inproc")
    setattr(sock, option, 0)
    again_at_once(mod, lambda: sock.recv() if option == "rcvtimeo" else sock.send(b"m"))


def _later(delay: float, func: Callable[[], Any]) -> threading.Thread:
    """Call *func* from a native thread after *delay*: works whether the caller blocks the thread or not."""
    thread = threading.Thread(target=lambda: (time.sleep(delay), func()))
    thread.start()
    return thread


@pytest.mark.timeout(10)
def test_rcvtimeo_minus_one_waits_until_a_message_comes(mod: Any, mod_ctx: Any) -> None:
    pull, push = pair(mod_ctx, mod.PULL, mod.PUSH)
    pull.rcvtimeo = 50
    pull.rcvtimeo = -1
    start = time.monotonic()
    # The delay is what is tested: far past the earlier timeout, the call still waits.
    sender = _later(0.3, lambda: push.send(b"late"))
    assert pull.recv() == b"late"
    assert time.monotonic() - start >= 0.25
    sender.join()


@pytest.mark.timeout(10)
def test_sndtimeo_minus_one_waits_until_a_peer_comes(mod: Any, mod_ctx: Any) -> None:
    push, address = bound(mod_ctx, mod.PUSH, "inproc")
    pull = mod_ctx.socket(mod.PULL)
    pull.linger = 0
    push.sndtimeo = 50
    push.sndtimeo = -1
    start = time.monotonic()
    # The delay is what is tested: far past the earlier timeout, the call still waits.
    connector = _later(0.3, lambda: pull.connect(address))
    push.send(b"late")
    assert time.monotonic() - start >= 0.25
    connector.join()
    assert pull.recv() == b"late"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rcvtimeo_wait_blocks_only_the_calling_greenlet(ctx: zmq_green.Context, transport: str) -> None:
    pull, _ = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    pull.rcvtimeo = 300
    before = waits()
    waiter = gevent.spawn(outcome, pull.recv)
    until_waiting(before)  # this greenlet runs while the other waits
    assert not waiter.ready()
    assert isinstance(waiter.get(timeout=HANG_GUARD), zmq.Again)


#: Greenlets queued on one socket with a RCVTIMEO of 100 ms: were the timeout measured
#: from reaching the head of the line, the last would give up after LINE * 100 ms.
LINE = 60


@pytest.mark.timeout(20)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rcvtimeo_counts_the_time_spent_waiting_in_line(ctx: zmq_green.Context, transport: str) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    pull.rcvtimeo = 100
    waiters = [gevent.spawn(outcome, pull.recv) for _ in range(LINE)]
    # Measured from each call, every timeout ends about 100 ms from now. A hang guard
    # of half of LINE * 100 ms leaves most of the line waiting if it is measured from the head.
    gevent.joinall(waiters, timeout=LINE * 0.1 / 2)
    results = [w.value if w.ready() else "still waiting" for w in waiters]
    assert all(isinstance(r, zmq.Again) for r in results), results
    push.send(b"after")
    assert pull.recv() == b"after"  # nobody is left in line to take it


# -- point: many greenlets on one socket, FIFO, no frames interleaved ---------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hundred_greenlets_share_one_push_socket_and_every_message_arrives(
    ctx: zmq_green.Context, transport: str
) -> None:
    pull, push = hwm_pair(ctx, transport)
    started: list[int] = []
    all_started = gevent.event.Event()

    def sender(i: int) -> None:
        started.append(i)
        if len(started) == 100:
            all_started.set()
        push.send(b"%d" % i)

    senders = [gevent.spawn(sender, i) for i in range(100)]
    assert all_started.wait(HANG_GUARD)
    queued = sum(not s.ready() for s in senders)
    received = [int(pull.recv()) for _ in range(100)]
    gevent.joinall(senders, timeout=HANG_GUARD, raise_error=True)
    if transport == "inproc":
        # Nothing is read while they start: all but the first ones queue, and are woken FIFO.
        assert queued >= 90
        assert received == list(range(100))
    else:
        # libzmq's I/O thread drains the socket while they start: a newcomer may find room
        # and overtake the queue (a bounded number of times).
        assert sorted(received) == list(range(100))
    push.send(b"end")
    assert pull.recv() == b"end"  # and nothing was sent twice


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_queued_senders_are_woken_in_fifo_order(ctx: zmq_green.Context, transport: str) -> None:
    push, address = bound(ctx, zmq.PUSH, transport, sndhwm=1)
    before = waits()
    senders = [gevent.spawn(push.send, b"%d" % i) for i in range(20)]
    until_waiting(before, 20)  # no peer yet: every one of them queues
    assert not any(s.ready() for s in senders)
    # The peer's arrival, then every message it reads, is what wakes them (over ipc
    # and tcp, from libzmq's I/O thread); with HWMs of 1 they go a few at a time.
    pull = connecting(ctx, zmq.PULL, address, rcvhwm=1)
    received = [pull.recv() for _ in range(20)]
    assert received == [b"%d" % i for i in range(20)]
    gevent.joinall(senders, timeout=HANG_GUARD, raise_error=True)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_queued_receivers_are_woken_in_fifo_order(ctx: zmq_green.Context, transport: str) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    before = waits()
    receivers = [gevent.spawn(pull.recv) for _ in range(20)]
    until_waiting(before, 20)
    for i in range(20):
        push.send(b"%d" % i)
    gevent.joinall(receivers, timeout=HANG_GUARD, raise_error=True)
    assert [r.value for r in receivers] == [b"%d" % i for i in range(20)]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_multipart_frames_never_interleave_between_greenlets(ctx: zmq_green.Context, transport: str) -> None:
    pull, push = hwm_pair(ctx, transport)
    got: list[list[bytes]] = []

    def receiver() -> None:
        while True:
            msg = pull.recv_multipart()
            if msg == [b"stop"]:
                return
            got.append(msg)

    def sender(i: int) -> None:
        push.send_multipart([b"%d" % i, b"%d-1" % i, b"%d-2" % i])

    receivers = [gevent.spawn(receiver) for _ in range(10)]
    senders = [gevent.spawn(sender, i) for i in range(100)]
    gevent.joinall(senders, timeout=10, raise_error=True)
    for _ in receivers:
        push.send_multipart([b"stop"])
    gevent.joinall(receivers, timeout=10, raise_error=True)
    assert len(got) == 100
    for msg in got:
        head = msg[0]
        assert msg == [head, head + b"-1", head + b"-2"]
    assert sorted(int(m[0]) for m in got) == list(range(100))


# -- point: a multipart send that must wait after its first frame --------------
#
# libzmq 4.3.5 can refuse a frame after the first of a message with EAGAIN:
# XPUB with XPUB_NODROP checks its high-water marks on every frame (xpub.cpp,
# xpub_t::xsend), and SNDHWM set on a connected socket applies to its pipes at once
# (socket_base.cpp, update_pipe_options). The sender then holds the send side until
# its last frame: no other greenlet's frames may come between.


class LowersHwmBeforeFrame(list[bytes]):
    """A message whose frame *at*, when send_multipart takes it, first lowers *sock*'s SNDHWM to 1.

    It stands for what libzmq may process between two frames of one send: the peer's new
    RCVHWM, which lowers the pipe's high-water mark as this does.
    """

    def __init__(self, frames: list[bytes], at: int, sock: Any) -> None:
        super().__init__(frames)
        self.at = at
        self.sock = sock

    def __getitem__(self, index: Any) -> Any:
        if index == self.at and self.sock.sndhwm != 1:
            self.sock.sndhwm = 1
        return super().__getitem__(index)


def xpub_with_room_for_one(ctx: zmq_green.Context) -> tuple[Any, Any]:
    """(XPUB with XPUB_NODROP, subscribed SUB) over inproc, the pipe one message from full.

    Over inproc the pipe holds the XPUB's SNDHWM plus the SUB's RCVHWM: 2 + 1. It holds 2
    ("before-0", "before-1"), and lowering SNDHWM to 1 fills it. Only inproc gives a pipe
    whose fill level stays put: over ipc and tcp libzmq's I/O thread drains it meanwhile.
    """
    xpub, address = bound(ctx, zmq.XPUB, "inproc", sndhwm=2, xpub_nodrop=1)
    sub = connecting(ctx, zmq.SUB, address, rcvhwm=1)
    sub.subscribe(b"")
    assert xpub.recv() == b"\x01"  # the subscription: the pipe is there
    for i in range(2):
        xpub.send(b"before-%d" % i, zmq.DONTWAIT)
    return xpub, sub


@pytest.mark.timeout(10)
def test_multipart_send_waiting_after_its_first_frame_keeps_other_senders_out(ctx: zmq_green.Context) -> None:
    xpub, sub = xpub_with_room_for_one(ctx)
    before = waits()
    first = gevent.spawn(xpub.send_multipart, LowersHwmBeforeFrame([b"a0", b"a1", b"a2"], 1, xpub))
    until_waiting(before)  # "a0" went, "a1" waits for room
    second = gevent.spawn(xpub.send_multipart, [b"b0", b"b1"])
    until_waiting(before, 2)
    with pytest.raises(zmq.Again):
        xpub.send(b"c", zmq.DONTWAIT)  # it would come between "a0" and "a1"
    assert not first.ready() and not second.ready()
    assert drain(sub, b"b1") == [[b"before-0"], [b"before-1"], [b"a0", b"a1", b"a2"], [b"b0", b"b1"]]
    gevent.joinall([first, second], timeout=HANG_GUARD, raise_error=True)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("how", ["kill", "gevent.Timeout"])
def test_multipart_send_interrupted_after_its_first_frame_leaves_no_half_message(
    ctx: zmq_green.Context, how: str
) -> None:
    xpub, sub = xpub_with_room_for_one(ctx)
    message = LowersHwmBeforeFrame([b"a0", b"a1", b"a2"], 1, xpub)
    before = waits()
    if how == "kill":
        first = gevent.spawn(xpub.send_multipart, message)
    else:
        first = gevent.spawn(outcome, gevent.with_timeout, 0.05, xpub.send_multipart, message)
    until_waiting(before)  # "a0" went, "a1" waits for room
    second = gevent.spawn(xpub.send_multipart, [b"b0", b"b1"])
    until_waiting(before, 2)
    if how == "kill":
        first.kill()
    else:
        assert isinstance(first.get(timeout=HANG_GUARD), gevent.Timeout)
    received = drain(sub, b"b1")
    second.get(timeout=HANG_GUARD)
    # The interrupted message arrives whole or not at all; the next one after it, whole.
    assert received[:2] == [[b"before-0"], [b"before-1"]]
    assert received[2:] in ([[b"a0", b"a1", b"a2"], [b"b0", b"b1"]], [[b"b0", b"b1"]])
    xpub.send_multipart([b"c0", b"c1"])
    assert sub.recv_multipart() == [b"c0", b"c1"]


# -- point: killed or timed-out waiters ----------------------------------------


def arrived(sock: Any) -> None:
    """Block the thread (not the hub) until a message is there to receive on *sock*.

    ``EVENTS`` is read through the green socket, so whoever waits on it is woken, but
    none of them runs before the caller lets the hub run.
    """
    fd = sock.getsockopt(zmq.FD)
    while not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
        assert select.select([fd], [], [], HANG_GUARD)[0], "no message came"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_killed_head_reader_hands_the_message_to_the_next(ctx: zmq_green.Context, transport: str) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    before = waits()
    first = gevent.spawn(pull.recv)
    second = gevent.spawn(pull.recv)
    until_waiting(before, 2)
    first.kill(block=True)
    assert isinstance(first.value, gevent.GreenletExit)
    push.send(b"one")
    assert second.get(timeout=HANG_GUARD) == b"one"
    push.send(b"two")
    assert pull.recv() == b"two"  # still usable


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reader_killed_after_being_woken_hands_its_turn_on(ctx: zmq_green.Context, transport: str) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    before = waits()
    first = gevent.spawn(pull.recv)
    second = gevent.spawn(pull.recv)
    until_waiting(before, 2)
    first.kill(block=False)  # queued before the wake-up below
    push.send(b"one")
    arrived(pull)  # wakes the head: `first`, about to die
    assert second.get(timeout=HANG_GUARD) == b"one"
    assert isinstance(first.get(timeout=HANG_GUARD), gevent.GreenletExit)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_gevent_timeout_while_waiting_propagates_and_the_socket_stays_usable(
    ctx: zmq_green.Context, transport: str
) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    timeout = gevent.Timeout(0.05)
    with pytest.raises(gevent.Timeout) as raised, timeout:
        pull.recv()
    assert raised.value is timeout
    before = waits()
    later = gevent.spawn(pull.recv)
    until_waiting(before)
    push.send(b"after")
    assert later.get(timeout=HANG_GUARD) == b"after"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sender_hit_by_timeout_sends_nothing_and_the_next_sender_goes_through(
    ctx: zmq_green.Context, transport: str
) -> None:
    push, address = bound(ctx, zmq.PUSH, transport)  # no peer yet: senders wait
    before = waits()
    timed_out = gevent.spawn(outcome, gevent.with_timeout, 0.05, push.send, b"late")
    next_one = gevent.spawn(push.send, b"next")
    until_waiting(before, 2)
    assert isinstance(timed_out.get(timeout=HANG_GUARD), gevent.Timeout)
    pull = connecting(ctx, zmq.PULL, address)
    next_one.get(timeout=HANG_GUARD)
    push.send(b"end")
    assert [pull.recv(), pull.recv()] == [b"next", b"end"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kills_and_timeouts_among_waiters_lose_and_duplicate_nothing(
    ctx: zmq_green.Context, transport: str
) -> None:
    pull, push = hwm_pair(ctx, transport)
    total = 300
    got: list[bytes] = []
    gave_up: list[float] = []

    def reader(patience: float | None) -> None:
        while True:
            with gevent.Timeout(patience, False):
                got.append(pull.recv())
                continue
            gave_up.append(patience)  # timed out while waiting
            return

    readers = [gevent.spawn(reader, 0.002 * (i % 4) if i % 2 else None) for i in range(16)]
    patient = [r for i, r in enumerate(readers) if i % 2]
    victims = [r for i, r in enumerate(readers) if not i % 2][::2]
    for i in range(total):
        if i % 50 == 25 and victims:
            # Killed while it waits, or while it was woken and is about to run.
            victims.pop().kill(block=False)
        push.send(b"%d" % i)
        if i % 7 == 0:
            gevent.sleep(0)
    until(lambda: all(r.dead for r in patient))  # with nothing more coming, they give up
    gevent.killall(readers, timeout=HANG_GUARD)
    pull.rcvtimeo = int(HANG_GUARD * 1000)
    while len(got) < total:
        got.append(pull.recv())  # what the readers left (Again if a message was lost)
    push.send(b"end")
    assert pull.recv() == b"end"
    assert len(gave_up) == len(patient)
    assert sorted(int(m) for m in got) == list(range(total))


# -- point: close() while others wait ------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_close_wakes_every_waiter_with_enotsock(ctx: zmq_green.Context, transport: str) -> None:
    dealer, _ = bound(ctx, zmq.DEALER, transport)  # no peer: both recv and send wait
    dealer.safety_timeout = None  # nothing but close() can wake them
    before = waits()
    waiters = [gevent.spawn(outcome, dealer.recv) for _ in range(10)]
    waiters += [gevent.spawn(outcome, dealer.send, b"x") for _ in range(10)]
    until_waiting(before, 20)
    assert not any(w.ready() for w in waiters)
    dealer.close()
    errors = [w.get(timeout=HANG_GUARD) for w in waiters]
    assert all(type(e) is zmq.ZMQError and e.errno == zmq.ENOTSOCK for e in errors), errors


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_close_while_messages_arrive_wakes_every_reader_and_loses_none_it_took(
    ctx: zmq_green.Context, transport: str
) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    got: list[int] = []

    def reader() -> BaseException:
        while True:
            try:
                got.append(int(pull.recv()))
            except zmq.ZMQError as e:
                return e

    def writer() -> None:
        for i in range(100_000):
            push.send(b"%d" % i)
            if i % 10 == 0:
                gevent.sleep(0)

    readers = [gevent.spawn(reader) for _ in range(10)]
    writing = gevent.spawn(writer)
    until(lambda: len(got) >= 200)
    pull.close()  # while the writer keeps sending
    errors = [r.get(timeout=HANG_GUARD) for r in readers]
    writing.kill()
    assert all(type(e) is zmq.ZMQError and e.errno == zmq.ENOTSOCK for e in errors), errors
    # One pipe, readers served in turn: what they took is the stream's first messages, in order.
    assert got == list(range(len(got)))


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_close_wakes_greenlets_polling_the_socket_with_enotsock(
    ctx: zmq_green.Context, transport: str
) -> None:
    dealer, _ = bound(ctx, zmq.DEALER, transport)
    dealer.safety_timeout = None
    poller = zmq_green.Poller()
    poller.safety_timeout = None
    poller.register(dealer, zmq.POLLIN)
    before = waits()
    waiters = [gevent.spawn(outcome, dealer.poll), gevent.spawn(outcome, poller.poll)]
    until_waiting(before, 2)
    dealer.close()
    errors = [w.get(timeout=HANG_GUARD) for w in waiters]
    assert all(isinstance(e, zmq.ZMQError) and e.errno == zmq.ENOTSOCK for e in errors), errors


@pytest.mark.parametrize("call", ["recv", "send", "poll"])
def test_calls_on_a_closed_socket_raise_as_in_pyzmq(mod: Any, mod_ctx: Any, call: str) -> None:
    sock = mod_ctx.socket(mod.DEALER)
    sock.close()
    with pytest.raises(mod.ZMQError) as raised:
        getattr(sock, call)(*((b"x",) if call == "send" else ()))
    assert raised.value.errno == (mod.ENOTSUP if call == "poll" else mod.ENOTSOCK)


# -- point: the safety timeout and stats() -----------------------------------


def _safety_wakeups_during_recv(sock: Any) -> int:
    before = zmq_green.stats()["safety_wakeups"]
    with pytest.raises(zmq.Again):
        sock.recv()
    return zmq_green.stats()["safety_wakeups"] - before


@pytest.mark.timeout(30)
def test_safety_timeout_defaults_to_ten_seconds() -> None:
    # In a fresh interpreter: the tests run with a shorter one (conftest).
    script = """
        import zmq_green
        with zmq_green.Context() as ctx, ctx.socket(zmq_green.PULL) as sock:
            print(zmq_green.Socket.safety_timeout, zmq_green.Poller.safety_timeout, sock.safety_timeout)
    """
    assert run_script(script, timeout=25).stdout.split() == ["10.0", "10.0", "10.0"]


@pytest.mark.timeout(10)
def test_safety_timeout_set_on_an_instance_applies_to_that_socket_only(ctx: zmq_green.Context) -> None:
    default = zmq_green.Socket.safety_timeout
    assert default is not None and default > 0.2
    quick, _ = pair(ctx, zmq.PULL, zmq.PUSH)
    other, _ = pair(ctx, zmq.PULL, zmq.PUSH)
    quick.safety_timeout = 0.02
    quick.rcvtimeo = other.rcvtimeo = 200
    assert _safety_wakeups_during_recv(quick) >= 1
    assert _safety_wakeups_during_recv(other) == 0
    assert zmq_green.Socket.safety_timeout == default


@pytest.mark.timeout(10)
def test_safety_timeout_set_on_the_class_applies_to_every_socket(
    ctx: zmq_green.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zmq_green.Socket, "safety_timeout", 0.02)
    sock, _ = pair(ctx, zmq.PULL, zmq.PUSH)
    sock.rcvtimeo = 200
    assert _safety_wakeups_during_recv(sock) >= 1


@pytest.mark.timeout(10)
@pytest.mark.parametrize("disabled", [None, 0])
def test_safety_timeout_none_or_zero_disables_the_net(ctx: zmq_green.Context, disabled: float | None) -> None:
    sock, _ = pair(ctx, zmq.PULL, zmq.PUSH)
    sock.safety_timeout = disabled
    sock.rcvtimeo = 100
    assert _safety_wakeups_during_recv(sock) == 0


def test_stats_returns_a_fresh_dict_with_the_counters() -> None:
    stats = zmq_green.stats()
    assert {"waits", "safety_wakeups", "rescues"} <= set(stats)
    assert all(type(v) is int and v >= 0 for v in stats.values())
    stats["waits"] = -1
    assert zmq_green.stats()["waits"] >= 0  # a copy, not the live counters


@pytest.mark.timeout(10)
def test_stats_count_each_wait(ctx: zmq_green.Context) -> None:
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    push.send(b"ready")
    before = waits()
    assert pull.recv() == b"ready"  # the fast path does not wait
    assert waits() == before
    reader = gevent.spawn(pull.recv)
    until_waiting(before)
    push.send(b"later")
    assert reader.get(timeout=HANG_GUARD) == b"later"


@pytest.mark.timeout(10)
@pytest.mark.rescues_expected
def test_missed_wakeup_is_rescued_by_the_safety_timeout_and_counted(ctx: zmq_green.Context) -> None:
    # The one test that provokes a rescue on purpose: reading EVENTS behind
    # zmq_green's back eats the mailbox signal of a waiting reader.
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    pull.safety_timeout = 0.1
    before = zmq_green.stats()
    try:
        for i in range(2):  # twice: each is counted
            waits = zmq_green.stats()["waits"]
            reader = gevent.spawn(pull.recv)
            until_waiting(waits)
            push.send(b"missed %d" % i)
            assert RawSocket.get(pull, zmq.EVENTS) & zmq.POLLIN
            assert reader.get(timeout=HANG_GUARD) == b"missed %d" % i
        after = zmq_green.stats()
    finally:
        zmq_green.reset_stats()  # the rescues were ours: no other test should count them
    assert after["rescues"] - before["rescues"] == 2
    assert after["safety_wakeups"] - before["safety_wakeups"] == 2


# -- point: a socket handed to another native thread ---------------------------


def _use_in_thread(pull: Any, push: Any, destroy_hub: bool) -> dict[str, Any]:
    """In a new native thread with its own hub, wait on *pull* greenly while *push* sends from here."""
    out: dict[str, Any] = {}
    waiting_there = threading.Event()

    def thread_main() -> None:
        hub = gevent.get_hub()
        try:
            before = waits()
            reader = gevent.spawn(pull.recv)
            until_waiting(before)  # the thread's hub runs while its reader waits
            assert not reader.ready()
            waiting_there.set()
            out["msg"] = reader.get(timeout=HANG_GUARD)
        except BaseException as e:
            out["error"] = e
        finally:
            waiting_there.set()
            if destroy_hub:
                hub.destroy(destroy_loop=True)

    thread = threading.Thread(target=thread_main)
    thread.start()
    assert waiting_there.wait(HANG_GUARD)
    push.send(b"to the thread")
    thread.join(HANG_GUARD)
    assert not thread.is_alive()
    return out


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "destroy_hub",
    [False, True],
)
def test_socket_handed_to_another_thread_with_its_own_hub_is_used_there(
    ctx: zmq_green.Context, destroy_hub: bool
) -> None:
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    # Used (and waited on) here first, so the socket's watcher belongs to this hub.
    before = waits()
    here = gevent.spawn(pull.recv)
    until_waiting(before)
    push.send(b"here")
    assert here.get(timeout=HANG_GUARD) == b"here"

    out = _use_in_thread(pull, push, destroy_hub)
    assert "error" not in out, out.get("error")
    assert out["msg"] == b"to the thread"

    before = waits()
    back = gevent.spawn(pull.recv)
    until_waiting(before)
    push.send(b"back")
    assert back.get(timeout=HANG_GUARD) == b"back"


# -- point: repr, shadow, context manager, __del__ -----------------------------


def test_repr_matches_pyzmqs_format(mod: Any, mod_ctx: Any) -> None:
    sock = mod_ctx.socket(mod.DEALER)
    name = "zmq_green.Socket" if mod is zmq_green else "zmq.Socket"
    assert repr(sock) == f"<{name}(zmq.DEALER) at {hex(id(sock))}>"
    sock.close()
    assert repr(sock) == f"<{name}(zmq.DEALER) at {hex(id(sock))} closed>"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("by", ["address", "socket"])
def test_green_shadow_of_a_native_socket_waits_greenly(by: str) -> None:
    native_ctx = zmq.Context()
    try:
        native = native_ctx.socket(zmq.PULL)
        peer = native_ctx.socket(zmq.PUSH)
        native.bind("inproc://shadowed")
        peer.connect("inproc://shadowed")
        shadow = zmq_green.Socket.shadow(native.underlying if by == "address" else native)
        assert type(shadow) is zmq_green.Socket
        assert shadow.underlying == native.underlying
        got = blocks_only_caller(shadow.recv, lambda: peer.send(b"through the shadow"))
        assert got == b"through the shadow"
    finally:
        native_ctx.destroy(linger=0)


@pytest.mark.timeout(10)
def test_context_manager_closes_the_socket_and_wakes_its_waiters(ctx: zmq_green.Context) -> None:
    with ctx.socket(zmq.PULL) as sock:
        assert type(sock) is zmq_green.Socket
        sock.bind("inproc://cm")
        before = waits()
        waiter = gevent.spawn(outcome, sock.recv)
        until_waiting(before)
        assert not waiter.ready()
    assert sock.closed
    error = waiter.get(timeout=HANG_GUARD)
    assert isinstance(error, zmq.ZMQError) and error.errno == zmq.ENOTSOCK


@pytest.mark.timeout(10)
def test_unreferenced_socket_that_has_waited_is_closed_by_its_finalizer(ctx: zmq_green.Context) -> None:
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    address = pull.last_endpoint
    before = waits()
    reader = gevent.spawn(pull.recv)
    until_waiting(before)
    push.send(b"x")
    assert reader.get(timeout=HANG_GUARD) == b"x"
    ref = weakref.ref(pull)
    del pull, reader
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert ref() is None
    again = ctx.socket(zmq.PULL)
    again.bind(address)  # the endpoint is free: the old socket was closed
    again.close()


EXIT_SCRIPT = """
import gevent
import zmq_green as zmq

ctx = zmq.Context()
# Waited on once, then left open: its waiting machinery exists when __del__ runs.
waited = ctx.socket(zmq.PULL)
waited.bind("inproc://waited")
peer = ctx.socket(zmq.PUSH)
peer.connect("inproc://waited")
reader = gevent.spawn(waited.recv)
gevent.idle()
peer.send(b"x")
reader.join()
del reader
# A message that can never be delivered, default linger: exit must not hang on it.
lingering = ctx.socket(zmq.PUSH)
lingering.connect("tcp://127.0.0.1:1")
lingering.send(b"never delivered")
# Greenlets still waiting at exit keep their DEALER alive: it is never finalized.
dealer = ctx.socket(zmq.DEALER)
waiting = [gevent.spawn(dealer.recv), gevent.spawn(dealer.send, b"x")]
gevent.idle()
cycle = {"socket": ctx.socket(zmq.SUB)}
cycle["self"] = cycle
singleton = zmq.Context.instance().socket(zmq.PUB)
print("exiting", flush=True)
"""


@pytest.mark.timeout(30)
def test_unclosed_sockets_are_finalized_cleanly_at_interpreter_exit() -> None:
    # pyzmq's __del__ warns before it closes: with the warnings shown, each line on
    # stderr is one finalizer that ran, and anything else would be an error.
    done = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", EXIT_SCRIPT],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0
    assert done.stdout == "exiting\n"
    finalized = re.findall(
        r"^\S+ ResourceWarning: Unclosed socket <zmq_green.Socket\(zmq.(\w+)\) at 0x\w+>$", done.stderr, re.M
    )
    assert sorted(finalized) == ["PUB", "PULL", "PUSH", "PUSH", "SUB"], done.stderr
    # Besides those, only the hint that tracemalloc would say where they were made.
    others = [
        line
        for line in done.stderr.splitlines()
        if "Unclosed socket" not in line and "Enable tracemalloc" not in line
    ]
    assert others == [], done.stderr


@pytest.mark.timeout(10)
@pytest.mark.parametrize("frames", [1, 2, 5])
def test_recv_multipart_reads_rcvmore_once_per_frame_as_pyzmq_does(
    ctx: zmq_green.Context, option_reads: Counter[int], frames: int
) -> None:
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    message = [b"%d" % i for i in range(frames)]
    push.send_multipart(message)
    assert pull.recv_multipart() == message
    # Each read costs about as much as receiving a frame: one per frame, no more.
    assert option_reads[zmq.RCVMORE] == frames
