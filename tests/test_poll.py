"""Green Poller and select: pyzmq's results, blocking only the caller, many pollers at once.

The tests of waiting run over every transport of ``transports.TRANSPORTS``: over ipc
and tcp the wake-ups come from libzmq's I/O thread, at moments the test does not choose.
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
import zmq.green
from conftest import Ticker, active_watchers, outcome, pair, until
from transports import HANG_GUARD, TRANSPORTS, bound, connected, connecting, fill_until_full

import zmq_green
from zmq_green._waiting import waits_of

# -- helpers -------------------------------------------------------------------

#: Times a poll may block while nothing it asked for happens (libuv may wake a timer early).
QUIET_WAITS = 4


def waits() -> int:
    return zmq_green.stats()["waits"]


def until_waiting(before: int, greenlets: int = 1) -> None:
    """Let the hub run until *greenlets* more waits began than *before* (``stats()["waits"]``)."""
    until(lambda: waits() - before >= greenlets)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def named(result: list[tuple[Any, int]], names: dict[Any, str]) -> list[tuple[str, int]]:
    """Poll results with sockets replaced by names, in a stable order."""
    return sorted((names[s], int(events)) for s, events in result)


# -- same results as zmq.Poller ----------------------------------------------------


@pytest.mark.timeout(10)
def test_poll_results_equal_pyzmqs_for_the_same_setups(mod: Any, mod_ctx: Any) -> None:
    pull, push = pair(mod_ctx, mod.PULL, mod.PUSH)
    dealer, router = pair(mod_ctx, mod.DEALER, mod.ROUTER)
    names = {pull: "pull", push: "push", dealer: "dealer", router: "router"}
    poller = mod.Poller()
    for s in names:
        poller.register(s)  # default: POLLIN | POLLOUT
    steps = [named(poller.poll(0), names)]
    push.send(b"m")
    until(lambda: pull.poll(0) != 0)
    steps.append(named(poller.poll(0), names))
    poller.modify(push, mod.POLLIN)
    poller.register(dealer, 0)  # same as unregister
    steps.append(named(poller.poll(0), names))
    poller.unregister(pull)
    steps.append(named(poller.poll(None), names))  # ready: returns at once
    poller.modify(router, mod.POLLIN)
    steps.append(named(poller.poll(10.5), names))  # nothing ready: float ms, then []
    dealer.send(b"hello")
    steps.append(named(poller.poll(-1), names))
    assert (dealer in poller, pull in poller, push in poller, router in poller) == (False, False, True, True)
    out, inn = int(zmq.POLLOUT), int(zmq.POLLIN)
    assert steps == [
        [("dealer", out), ("push", out), ("router", out)],
        [("dealer", out), ("pull", inn), ("push", out), ("router", out)],
        [("pull", inn), ("router", out)],
        [("router", out)],
        [],
        [("router", inn)],
    ]


@pytest.mark.timeout(10)
def test_poll_results_with_raw_fds_and_fileno_objects_equal_pyzmqs(mod: Any, pipe: tuple[int, int]) -> None:
    r, w = pipe
    a, b = socket.socketpair()
    try:
        poller = mod.Poller()
        poller.register(r, mod.POLLIN)
        poller.register(w, mod.POLLOUT)
        poller.register(a, mod.POLLIN | mod.POLLOUT)
        first = poller.poll(0)
        os.write(w, b"x")
        b.send(b"y")
        second = poller.poll(1000)
        fd = a.fileno()
    finally:
        a.close()
        b.close()
    # pyzmq reports an object with fileno() by its fd
    assert first == [(w, zmq.POLLOUT), (fd, zmq.POLLOUT)]
    assert second == [(r, zmq.POLLIN), (w, zmq.POLLOUT), (fd, zmq.POLLIN | zmq.POLLOUT)]


@pytest.mark.timeout(10)
def test_pollerr_on_a_pipe_whose_writer_closed_matches_pyzmq(mod: Any, pipe: tuple[int, int]) -> None:
    r, w = pipe
    poller = mod.Poller()
    poller.register(r, mod.POLLERR)
    assert poller.poll(0) == []
    os.close(w)
    # libzmq reports the hang-up as POLLERR
    assert poller.poll(1000) == [(r, zmq.POLLERR)]


@pytest.mark.timeout(10)
def test_poll_errors_equal_pyzmqs(mod: Any, mod_ctx: Any) -> None:
    pull, _ = pair(mod_ctx, mod.PULL, mod.PUSH)
    poller = mod.Poller()
    poller.register(object(), mod.POLLIN)
    with pytest.raises(TypeError):
        poller.poll(0)

    class BadFileno:
        def fileno(self) -> int:
            raise OSError("closed")

    poller = mod.Poller()
    poller.register(BadFileno(), mod.POLLIN)
    with pytest.raises(ValueError):
        poller.poll(0)
    with pytest.raises(KeyError):
        mod.Poller().unregister(pull)


@pytest.mark.timeout(10)
def test_select_results_equal_pyzmqs(mod: Any, mod_ctx: Any, pipe: tuple[int, int]) -> None:
    r, w = pipe
    pull, push = pair(mod_ctx, mod.PULL, mod.PUSH)
    rlist, wlist, xlist = mod.select([pull, r], [push, w], [pull], 0)
    assert (rlist, sorted(wlist, key=repr), xlist) == ([], sorted([push, w], key=repr), [])
    push.send(b"m")
    os.write(w, b"x")
    until(lambda: pull.poll(0) != 0)
    rlist, wlist, xlist = mod.select([pull, r], [push], [pull], None)
    assert (sorted(rlist, key=repr), wlist, xlist) == (sorted([pull, r], key=repr), [push], [])
    assert mod.select([pull, pull], [pull], [], 0) == ([pull], [], [])  # listed twice: reported once
    assert mod.select([], [], [], 0.01) == ([], [], [])


# -- blocking only the caller ------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("shared", [False, True], ids=["own-pollers", "one-shared-poller"])
def test_ten_greenlets_polling_one_socket_all_wake_on_one_message(
    ctx: zmq_green.Context, shared: bool, transport: str
) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    common = zmq_green.Poller()
    common.register(pull, zmq.POLLIN)

    def poll() -> Any:
        poller = common
        if not shared:
            poller = zmq_green.Poller()
            poller.register(pull, zmq.POLLIN)
        return poller.poll(5000)

    before = waits()
    pollers = [gevent.spawn(poll) for _ in range(10)]
    until_waiting(before, 10)  # every one of them is blocked
    assert not any(g.ready() for g in pollers)
    push.send(b"one")
    results = [g.get(timeout=HANG_GUARD) for g in pollers]
    assert results == [[(pull, zmq.POLLIN)]] * 10
    assert pull.recv() == b"one"


@pytest.mark.timeout(10)
def test_poller_wakes_on_a_raw_pipe_fd_blocking_only_the_caller(pipe: tuple[int, int]) -> None:
    r, w = pipe
    poller = zmq_green.Poller()
    poller.register(r, zmq.POLLIN)
    before = waits()
    caller = gevent.spawn(poller.poll, 5000)
    until_waiting(before)  # this greenlet runs while the caller waits
    assert not caller.ready()
    os.write(w, b"x")
    assert caller.get(timeout=HANG_GUARD) == [(r, zmq.POLLIN)]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_poller_mixing_a_socket_and_a_pipe_reports_whichever_is_ready(
    ctx: zmq_green.Context, pipe: tuple[int, int], transport: str
) -> None:
    r, w = pipe
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    poller = zmq_green.Poller()
    poller.register(pull, zmq.POLLIN)
    poller.register(r, zmq.POLLIN)
    before = waits()
    waiting = gevent.spawn(poller.poll, 5000)
    until_waiting(before)
    os.write(w, b"x")
    assert waiting.get(timeout=HANG_GUARD) == [(r, zmq.POLLIN)]
    os.read(r, 1)
    before = waits()
    waiting = gevent.spawn(poller.poll, 5000)
    until_waiting(before)
    push.send(b"m")
    assert waiting.get(timeout=HANG_GUARD) == [(pull, zmq.POLLIN)]


@pytest.mark.timeout(10)
def test_poller_waits_for_pollout_until_the_peer_drains(ctx: zmq_green.Context) -> None:
    # Over inproc only: over ipc and tcp libzmq's I/O thread drains the pipe by itself.
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    pull.rcvhwm = push.sndhwm = 1
    sent = 0
    while push.poll(0, zmq.POLLOUT):
        push.send(b"fill")
        sent += 1
    poller = zmq_green.Poller()
    poller.register(push, zmq.POLLOUT)
    before = waits()
    waiting = gevent.spawn(poller.poll, 5000)
    until_waiting(before)
    for _ in range(sent):
        pull.recv()
    assert waiting.get(timeout=HANG_GUARD) == [(push, zmq.POLLOUT)]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_poller_waits_for_pollout_until_a_peer_connects(ctx: zmq_green.Context, transport: str) -> None:
    push, address = bound(ctx, zmq.PUSH, transport)  # no peer: nowhere to send
    poller = zmq_green.Poller()
    poller.register(push, zmq.POLLOUT)
    before = waits()
    waiting = gevent.spawn(poller.poll, 5000)
    until_waiting(before)
    assert not waiting.ready()
    pull = connecting(ctx, zmq.PULL, address)
    assert waiting.get(timeout=HANG_GUARD) == [(push, zmq.POLLOUT)]
    push.send(b"m")
    assert pull.recv() == b"m"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_poller_and_a_reader_on_the_same_socket_both_see_their_messages(
    ctx: zmq_green.Context, transport: str
) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    poller = zmq_green.Poller()
    poller.register(pull, zmq.POLLIN)
    before = waits()
    reader = gevent.spawn(pull.recv)
    polling = gevent.spawn(poller.poll, 5000)
    until_waiting(before, 2)
    push.send(b"first")
    assert reader.get(timeout=HANG_GUARD) == b"first"
    # The reader took the message; the poller must not miss the next one.
    push.send(b"second")
    assert polling.get(timeout=HANG_GUARD) == [(pull, zmq.POLLIN)]
    assert pull.recv() == b"second"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_native_pyzmq_socket_in_a_green_poller_waits_greenly(transport: str) -> None:
    native = zmq.Context()
    try:
        pull, push = connected(native, zmq.PULL, zmq.PUSH, transport)
        poller = zmq_green.Poller()
        poller.register(pull, zmq.POLLIN)
        before = waits()
        caller = gevent.spawn(poller.poll, 5000)
        until_waiting(before)  # this greenlet runs while the caller waits
        assert not caller.ready()
        push.send(b"m")
        assert caller.get(timeout=HANG_GUARD) == [(pull, zmq.POLLIN)]
    finally:
        native.destroy(linger=0)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_poll_timeout_returns_empty_while_other_greenlets_run(ctx: zmq_green.Context, transport: str) -> None:
    pull, _ = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    poller = zmq_green.Poller()
    poller.register(pull, zmq.POLLIN)
    ticker = Ticker()
    start = time.monotonic()
    assert poller.poll(150) == []
    elapsed = time.monotonic() - start
    # This greenlet did not run meanwhile: every tick happened while poll() waited.
    assert ticker.stop() > 0
    assert elapsed >= 0.14  # not before the time asked


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("timeout", [None, -1, -1000])
def test_poll_none_or_negative_waits_forever(ctx: zmq_green.Context, timeout: Any, transport: str) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    poller = zmq_green.Poller()
    poller.register(pull, zmq.POLLIN)
    # Still waiting after 0.2 s, longer than any of these read as milliseconds would be.
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.2):
        poller.poll(timeout)
    before = waits()
    waiting = gevent.spawn(poller.poll, timeout)
    until_waiting(before)
    push.send(b"m")
    assert waiting.get(timeout=HANG_GUARD) == [(pull, zmq.POLLIN)]


# -- watchers: made per blocked poll, nothing left after kill/Timeout ----------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("how", ["kill", "gevent.Timeout", "timeout", "ready"])
def test_a_poll_leaves_nothing_started(
    ctx: zmq_green.Context,
    pipe: tuple[int, int],
    how: str,
    transport: str,
    request: pytest.FixtureRequest,
) -> None:
    r, w = pipe
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    poller = zmq_green.Poller()
    poller.register(pull, zmq.POLLIN)
    poller.register(r, zmq.POLLIN)
    quiet, quiet_peer = socket.socketpair()
    request.addfinalizer(quiet.close)
    request.addfinalizer(quiet_peer.close)
    poller.register(quiet, zmq.POLLPRI)  # watched through the poll's own epoll set
    started = active_watchers()
    before = waits()
    if how == "kill":
        waiting = gevent.spawn(poller.poll, 5000)
        until_waiting(before)
        waiting.kill()
    elif how == "gevent.Timeout":
        with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):
            poller.poll(5000)
    elif how == "timeout":
        assert poller.poll(20) == []
    else:
        waiting = gevent.spawn(poller.poll, 5000)
        until_waiting(before)
        os.write(w, b"x")
        assert waiting.get(timeout=HANG_GUARD) == [(r, zmq.POLLIN)]
        os.read(r, 1)
    assert waits() > before  # it did block
    state = waits_of(pull)
    assert state.count == 0 and not any(interest.blocked for interest in state.interests)
    # The poller keeps watching its socket (the next poll checks only what changed),
    # not the raw fds (libuv's loop counts no watchers: there, only the first holds).
    assert state.watcher.active and active_watchers() == started + 1
    # ...and the poller still works.
    push.send(b"m")
    assert poller.poll(HANG_GUARD * 1000) == [(pull, zmq.POLLIN)]
    poller.unregister(pull)
    assert not state.interests and not state.watcher.active


# -- raw fds: what the hub's watchers cannot see, as pyzmq sees it -------------------


def later(seconds: float, action: Any) -> threading.Timer:
    """Run *action* in another OS thread after *seconds*: pyzmq's poll blocks this one."""
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def full_pair(mod_ctx: Any) -> tuple[Any, Any]:
    """Two PAIR sockets over inproc, the first unable to send (its pipe is full)."""
    a = mod_ctx.socket(zmq.PAIR)
    b = mod_ctx.socket(zmq.PAIR)
    a.linger = b.linger = 0
    a.sndhwm = b.rcvhwm = 1
    a.bind(f"inproc://full-{id(a)}")
    b.connect(a.last_endpoint)
    fill_until_full(a)
    return a, b


@pytest.mark.timeout(20)
def test_a_poll_woken_for_several_sockets_at_once_reports_them_all(
    ctx: zmq_green.Context, pipe: tuple[int, int]
) -> None:
    """Sockets (and a pipe) found ready before the woken poll runs: all are reported.

    Reading EVENTS through zmq_green passes what it finds on to the poll, which then
    runs only when this greenlet yields: by then every socket has fired.
    """
    first, first_peer = pair(ctx, zmq.PULL, zmq.PUSH)
    second, second_peer = pair(ctx, zmq.PULL, zmq.PUSH)
    r, w = pipe
    names = {first: "first", second: "second", r: "pipe"}
    for registered in ([first, second], [first, r], [first, second, r]):
        poller = zmq_green.Poller()
        for sock in registered:
            poller.register(sock, zmq.POLLIN)
        before = waits()
        polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
        until_waiting(before)
        os.write(w, b"z")
        for sock, peer in ((first, first_peer), (second, second_peer)):
            peer.send(b"x")
            assert sock.get(zmq.EVENTS) & zmq.POLLIN
        assert named(polling.get(timeout=HANG_GUARD), names) == sorted(
            (names[s], zmq.POLLIN) for s in registered
        )
        first.recv()
        second.recv()
        os.read(r, 1)


def test_a_poll_that_takes_a_readers_signal_passes_it_on(ctx: zmq_green.Context) -> None:
    """poll(0) processes the command that would wake a reader of the same socket (zmq_poll
    reads EVENTS): the reader must still be woken, not left to its safety net (a rescue)."""
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    before = waits()
    reader = gevent.spawn(pull.recv)
    until_waiting(before)
    poller = zmq_green.Poller()
    poller.register(pull, zmq.POLLIN)
    push.send(b"for the reader")  # pull's fd signals; the hub has not run
    assert poller.poll(0) == [(pull, zmq.POLLIN)]
    assert reader.get(timeout=HANG_GUARD) == b"for the reader"


def test_a_poll_blocked_while_another_greenlet_changes_the_poller_keeps_what_it_started_with(
    ctx: zmq_green.Context,
) -> None:
    """As pyzmq's zmq_poll keeps the list it was given: a socket unregistered (and the poller
    re-read by another poll) while a poll waits on it is still that poll's -- reported, and
    no spinning over a fired socket that the new registrations lack."""
    first, first_peer = pair(ctx, zmq.PULL, zmq.PUSH)
    second, _ = pair(ctx, zmq.PULL, zmq.PUSH)
    poller = zmq_green.Poller()
    poller.register(first, zmq.POLLIN)
    before = waits()
    polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
    until_waiting(before)
    poller.unregister(first)
    poller.register(second, zmq.POLLIN)
    assert poller.poll(0) == []
    first_peer.send(b"for the first poll")
    assert polling.get(timeout=HANG_GUARD) == [(first, zmq.POLLIN)]
    assert waits() - before <= QUIET_WAITS, "the poll spun"
    assert poller.poll(0) == []  # the poller itself has moved on


@pytest.mark.timeout(20)
def test_a_socket_registered_with_its_shadow_is_reported_as_pyzmq(mod: Any, mod_ctx: Any) -> None:
    """One libzmq socket registered through two objects, for different events: each as registered."""
    a, b = full_pair(mod_ctx)
    shadow = mod.Socket.shadow(a.underlying)
    names = {a: "a", shadow: "shadow"}
    poller = mod.Poller()
    poller.register(a, zmq.POLLIN)
    poller.register(shadow, zmq.POLLOUT)
    timer = later(0.05, lambda: b.send(b"x"))
    assert named(poller.poll(HANG_GUARD * 1000), names) == [("a", zmq.POLLIN)]
    timer.join()
    assert a.recv() == b"x"
    only_shadow = mod.Poller()
    only_shadow.register(shadow, zmq.POLLIN)
    timer = later(0.05, lambda: b.send(b"y"))
    assert named(only_shadow.poll(HANG_GUARD * 1000), names) == [("shadow", zmq.POLLIN)]
    timer.join()


@pytest.mark.timeout(20)
def test_a_poller_of_a_socket_and_its_shadow_wakes_for_either_beside_another_waiter(
    ctx: zmq_green.Context,
) -> None:
    """The poller is one waiter of the socket, woken for all its objects' events.

    With a sender blocked on the socket too, the socket's fd is read for the
    waiters as a whole: a poller known only by the shadow's POLLOUT would miss
    the POLLIN it polls through the original (a rescue, caught by the autouse
    check). When it returns it leaves no waiter counted.
    """
    a, b = full_pair(ctx)
    shadow = zmq_green.Socket.shadow(a.underlying)
    sender = gevent.spawn(outcome, a.send, b"blocked")
    until(lambda: len(a._waits.writers) == 1)
    poller = zmq_green.Poller()
    poller.register(a, zmq.POLLIN)
    poller.register(shadow, zmq.POLLOUT)
    assert poller.poll(10) == []
    gevent.spawn_later(0.05, b.send, b"x")
    assert poller.poll(HANG_GUARD * 1000) == [(a, zmq.POLLIN)]
    assert a._waits.count == 1  # the sender alone
    sender.kill()
    assert a._waits.count == 0


@pytest.mark.timeout(20)
def test_pollerr_alone_on_a_readable_fd_waits_without_spinning(mod: Any, pipe: tuple[int, int]) -> None:
    """Unread data is no error: the poll lasts its timeout (zmq_green: blocked a handful of
    times, not spinning on readability), then a hang-up is reported as POLLERR."""
    r, w = pipe
    os.write(w, b"unread")
    poller = mod.Poller()
    poller.register(r, zmq.POLLERR)
    before, start = waits(), time.monotonic()
    assert poller.poll(200) == []
    assert time.monotonic() - start >= 0.2
    assert waits() - before <= QUIET_WAITS, "the poll spun on a readable fd"
    timer = later(0.05, lambda: os.close(w))
    assert poller.poll(HANG_GUARD * 1000) == [(r, zmq.POLLERR)]
    timer.join()


@pytest.mark.timeout(20)
def test_pollpri_reports_tcp_urgent_data_when_it_comes(mod: Any) -> None:
    """Out-of-band data sent while the poll blocks is reported then, not at the timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    try:
        poller = mod.Poller()
        poller.safety_timeout = None  # only the watch over the fd may find it
        poller.register(server, zmq.POLLPRI)
        assert poller.poll(50) == []
        timer = later(0.05, lambda: client.send(b"!", socket.MSG_OOB))
        start = time.monotonic()
        result = poller.poll(HANG_GUARD * 1000)
        timer.join()
        assert result == [(server.fileno(), zmq.POLLPRI)]  # pyzmq gives the fd
        assert time.monotonic() - start < HANG_GUARD / 2  # hang guard: not found at the timeout
        assert server.recv(1, socket.MSG_OOB) == b"!"
        assert poller.poll(0) == []  # the urgent data is read: the condition is gone
    finally:
        for s in (client, server, listener):
            s.close()


@pytest.mark.timeout(20)
def test_an_fd_number_reused_between_polls_is_watched_anew(mod: Any, pipe: tuple[int, int]) -> None:
    """The registered number now names another pipe (dup2 closes the old one): data
    written to the new pipe is reported when it comes, as pyzmq's poll(2) sees it."""
    r, _ = pipe
    poller = mod.Poller()
    poller.safety_timeout = None  # only the watch over the fd may find it
    poller.register(r, zmq.POLLIN)
    assert poller.poll(20) == []  # blocked once on the old pipe
    r2, w2 = os.pipe()
    try:
        os.dup2(r2, r)  # r is now the new pipe's read end
        timer = later(0.05, lambda: os.write(w2, b"x"))
        start = time.monotonic()
        result = poller.poll(HANG_GUARD * 1000)
        timer.join()
        assert result == [(r, zmq.POLLIN)]
        assert time.monotonic() - start < HANG_GUARD / 2  # hang guard: not found at the timeout
    finally:
        os.close(r2)
        os.close(w2)


@pytest.mark.timeout(20)
def test_a_negative_fd_is_skipped_as_poll_does(mod: Any) -> None:
    poller = mod.Poller()
    poller.register(-1, zmq.POLLIN)
    start = time.monotonic()
    assert poller.poll(50) == []
    assert time.monotonic() - start >= 0.05


# -- several greenlets on one Poller with raw fds -----------------------------------


@pytest.mark.timeout(20)
def test_two_greenlets_polling_one_poller_on_a_pipe_both_wake(pipe: tuple[int, int]) -> None:
    r, w = pipe
    poller = zmq_green.Poller()
    poller.safety_timeout = None  # nothing but the pipe can wake them
    poller.register(r, zmq.POLLIN)
    before = waits()
    polls = [gevent.spawn(poller.poll, -1) for _ in range(2)]
    until_waiting(before, 2)  # both are blocked
    os.write(w, b"x")
    assert [g.get(timeout=HANG_GUARD) for g in polls] == [[(r, zmq.POLLIN)]] * 2


@pytest.mark.timeout(20)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_registering_while_another_greenlet_polls_a_pipe_does_not_lose_its_wakeup(
    ctx: zmq_green.Context, pipe: tuple[int, int], transport: str
) -> None:
    r, w = pipe
    pull, _ = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    poller = zmq_green.Poller()
    poller.safety_timeout = None  # nothing but the pipe can wake it
    poller.register(r, zmq.POLLIN)
    before = waits()
    waiting = gevent.spawn(poller.poll, -1)
    until_waiting(before)
    poller.register(pull, zmq.POLLIN)
    os.write(w, b"x")
    assert waiting.get(timeout=HANG_GUARD) == [(r, zmq.POLLIN)]


# -- select -------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_select_with_a_timeout_lets_other_greenlets_run_where_zmq_green_freezes_them() -> None:
    for module, frozen in ((zmq.green, True), (zmq_green, False)):
        ctx = module.Context()
        try:
            pull, _ = pair(ctx, zmq.PULL, zmq.PUSH)
            ticker = Ticker()
            start = time.monotonic()
            assert module.select([pull], [], [], 0.2) == ([], [], [])
            elapsed = time.monotonic() - start
            # This greenlet did not run meanwhile: every tick happened while select() waited.
            ticks = ticker.stop()
        finally:
            ctx.destroy(linger=0)
        assert elapsed >= 0.19, module  # not before the time asked
        if frozen:
            assert ticks == 0, "zmq.green.select was expected to block the whole process"
        else:
            assert ticks > 0


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_select_wakes_when_a_socket_becomes_readable(ctx: zmq_green.Context, transport: str) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    before = waits()
    waiting = gevent.spawn(zmq_green.select, [pull], [], [], None)
    until_waiting(before)
    push.send(b"m")
    assert waiting.get(timeout=HANG_GUARD) == ([pull], [], [])


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_select_killed_while_waiting_leaves_the_socket_clean(ctx: zmq_green.Context, transport: str) -> None:
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    before = waits()
    waiting = gevent.spawn(outcome, zmq_green.select, [pull], [], [], 10)
    until_waiting(before)
    waiting.kill()
    state = waits_of(pull)
    assert state.count == 0
    push.send(b"m")
    assert pull.recv() == b"m"


# -- standing registrations: a poll checks what changed ------------------------------


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many registrations each zmq_poll of the green Poller looked at."""
    sizes: list[int] = []
    real = zmq_green.poll.zmq_poll

    def counting(items: Any, timeout: int = -1) -> Any:
        sizes.append(len(items))
        return real(items, timeout)

    monkeypatch.setattr(zmq_green.poll, "zmq_poll", counting)
    return sizes


@pytest.mark.timeout(20)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_poll_looks_only_at_what_changed(
    ctx: zmq_green.Context, transport: str, checked: list[int]
) -> None:
    """200 registered sockets, one active: once the poller has blocked, each poll looks
    at the active socket (and those found ready last time), not at the other 199."""
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    quiet = [ctx.socket(zmq.PULL) for _ in range(199)]
    poller = zmq_green.Poller()
    for sock in [*quiet[:100], pull, *quiet[100:]]:
        poller.register(sock, zmq.POLLIN)
    assert poller.poll(10) == []  # blocks: the poller now watches them
    checked.clear()
    for i in range(20):
        polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
        gevent.sleep(0)
        push.send(b"%d" % i)
        assert polling.get(timeout=HANG_GUARD) == [(pull, zmq.POLLIN)]
        assert pull.recv() == b"%d" % i
    assert checked and max(checked) <= 2, checked
    for sock in quiet:
        sock.close()


@pytest.mark.timeout(20)
def test_a_busy_poll_loop_that_never_blocks_looks_only_at_what_changed(
    ctx: zmq_green.Context, checked: list[int]
) -> None:
    """A poller polled again keeps its registrations although no poll blocks: a loop
    whose every poll finds a message costs the active socket, not the 200."""
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, "inproc")
    quiet = [ctx.socket(zmq.PULL) for _ in range(199)]
    poller = zmq_green.Poller()
    for sock in [*quiet[:100], pull, *quiet[100:]]:
        poller.register(sock, zmq.POLLIN)
    checked.clear()
    for i in range(20):
        push.send(b"%d" % i)
        assert poller.poll(HANG_GUARD * 1000) == [(pull, zmq.POLLIN)]
        assert pull.recv() == b"%d" % i
    # The first poll checks every registration, the second too, and keeps them.
    assert checked[:2] == [200, 200] and max(checked[2:]) <= 2, checked
    for sock in quiet:
        sock.close()


@pytest.mark.timeout(10)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_socket_left_ready_is_found_again_without_a_new_signal(
    ctx: zmq_green.Context, transport: str
) -> None:
    """Two messages, one read between polls: the second poll finds the socket still ready
    although its fd has not fired again (the signal was consumed by the first poll)."""
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, transport)
    poller = zmq_green.Poller()
    poller.safety_timeout = None  # no net: only the poller's own record may find it
    poller.register(pull, zmq.POLLIN)
    assert poller.poll(10) == []
    push.send(b"one")
    push.send(b"two")
    until(lambda: poller.poll(0) != [])
    assert poller.poll(HANG_GUARD * 1000) == [(pull, zmq.POLLIN)]  # not consumed: still ready
    assert pull.recv() == b"one"
    assert poller.poll(HANG_GUARD * 1000) == [(pull, zmq.POLLIN)]
    assert pull.recv() == b"two"
    assert poller.poll(10) == []


@pytest.mark.timeout(10)
def test_a_plain_socket_made_ready_by_a_plain_call_between_polls_is_found() -> None:
    """zmq_green does not see calls through plain pyzmq objects: such sockets are checked
    by every poll. A plain reading of EVENTS takes the signal of a message that came
    between two polls; the second poll finds the message all the same."""
    native = zmq.Context()
    try:
        router = native.socket(zmq.ROUTER)
        router.linger = 0
        router.bind("tcp://127.0.0.1:*")
        dealer = native.socket(zmq.DEALER)
        dealer.linger = 0
        poller = zmq_green.Poller()
        poller.safety_timeout = None
        poller.register(dealer, zmq.POLLIN)
        assert poller.poll(10) == []
        dealer.connect(router.last_endpoint)
        dealer.send(b"ping")
        identity, _ = router.recv_multipart()
        router.send_multipart([identity, b"pong"])
        # Plain calls, and the hub does not run: they consume the signal of the pong
        # before the poller's watcher could see it.
        while not dealer.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            time.sleep(0.001)
        assert poller.poll(HANG_GUARD * 1000) == [(dealer, zmq.POLLIN)]
    finally:
        native.destroy(linger=0)


@pytest.mark.timeout(10)
def test_an_unregistered_socket_is_watched_until_no_blocked_poll_keeps_it(ctx: zmq_green.Context) -> None:
    """Unregistered while a poll waits on it: that poll keeps it (as pyzmq's zmq_poll keeps
    its list), and once it has returned, the socket is watched and reported no more."""
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, "inproc")
    other_pull, other_push = connected(ctx, zmq.PULL, zmq.PUSH, "inproc")
    poller = zmq_green.Poller()
    poller.register(pull, zmq.POLLIN)
    poller.register(other_pull, zmq.POLLIN)
    before = waits()
    polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
    until_waiting(before)
    poller.unregister(pull)  # while the poll is blocked
    assert waits_of(pull).interests
    push.send(b"for the blocked poll")
    assert polling.get(timeout=HANG_GUARD) == [(pull, zmq.POLLIN)]
    assert not waits_of(pull).interests and not waits_of(pull).watcher.active
    other_push.send(b"for the poller")
    assert poller.poll(HANG_GUARD * 1000) == [(other_pull, zmq.POLLIN)]
    assert pull.recv() == b"for the blocked poll"


@pytest.mark.timeout(10)
def test_two_pollers_of_one_socket_do_not_keep_waking_each_other(ctx: zmq_green.Context) -> None:
    """Each poll reads EVENTS and has the other poller's socket rechecked; a recheck wakes
    only what it finds ready, so two blocked polls stay blocked while nothing happens."""
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, "inproc")
    pollers = [zmq_green.Poller(), zmq_green.Poller()]
    for poller in pollers:
        poller.register(pull, zmq.POLLIN)
    before = waits()
    polls = [gevent.spawn(poller.poll, HANG_GUARD * 1000) for poller in pollers]
    until_waiting(before, 2)
    settled = waits()
    gevent.sleep(0.05)
    assert waits() == settled, "the pollers woke each other"
    push.send(b"m")
    assert [p.get(timeout=HANG_GUARD) for p in polls] == [[(pull, zmq.POLLIN)]] * 2


@pytest.mark.timeout(10)
def test_a_dropped_poller_stops_watching(ctx: zmq_green.Context) -> None:
    pull, _ = connected(ctx, zmq.PULL, zmq.PUSH, "inproc")
    poller = zmq_green.Poller()
    poller.register(pull, zmq.POLLIN)
    assert poller.poll(10) == []
    assert waits_of(pull).interests and waits_of(pull).watcher.active
    del poller
    # The collector may run a finalizer in the middle of any code, a loop over these
    # very interests included (a chaos run on libuv hit it): it leaves the closing to
    # the hub...
    assert waits_of(pull).interests
    gevent.sleep(0)
    assert not waits_of(pull).interests and not waits_of(pull).watcher.active  # ...which has run


@pytest.mark.timeout(20)
def test_a_socket_handed_to_another_thread_is_watched_there_and_again_here(
    ctx: zmq_green.Context,
) -> None:
    """A poller of this thread watches a socket; another thread then uses the socket (its
    hub takes the watcher over). The poller, polled here again, watches it anew."""
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, "inproc")
    poller = zmq_green.Poller()
    poller.register(pull, zmq.POLLIN)
    assert poller.poll(10) == []
    push.send(b"to the thread")
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(pull.recv()))
    thread.start()
    thread.join(HANG_GUARD)
    assert got == [b"to the thread"]
    before = waits()
    polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
    until_waiting(before)
    push.send(b"back here")
    assert polling.get(timeout=HANG_GUARD) == [(pull, zmq.POLLIN)]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("polling", [True, False], ids=["while-polling", "between-polls"])
def test_a_context_terminated_under_a_standing_poller_is_reported(polling: bool) -> None:
    """Termination begins while a poll of the poller is blocked, or between two polls:
    that poll, or the next, raises ContextTerminated (libzmq's ETERM), as pyzmq's would."""
    ctx = zmq_green.Context()
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    poller = zmq_green.Poller()
    poller.register(pull, zmq.POLLIN)
    assert poller.poll(10) == []  # the poller now watches the socket
    before = waits()
    blocked = gevent.spawn(outcome, poller.poll, HANG_GUARD * 1000) if polling else None
    if blocked is not None:
        until_waiting(before)
    terming = gevent.spawn(ctx.term)
    if blocked is not None:
        error = blocked.get(timeout=HANG_GUARD)
    else:
        until(lambda: os.getpid() in ctx._terminations())  # zmq_ctx_term has been called
        error = outcome(poller.poll, HANG_GUARD * 1000)
    assert type(error) is zmq.ContextTerminated, error
    pull.close()
    terming.get(timeout=HANG_GUARD)


@pytest.mark.timeout(10)
def test_a_socket_registered_during_a_blocked_poll_is_polled_next_time(ctx: zmq_green.Context) -> None:
    """As in pyzmq, a poll uses the registrations it began with; the next one has the new one."""
    pull, push = connected(ctx, zmq.PULL, zmq.PUSH, "inproc")
    late_pull, late_push = connected(ctx, zmq.PULL, zmq.PUSH, "inproc")
    poller = zmq_green.Poller()
    poller.register(pull, zmq.POLLIN)
    before = waits()
    polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
    until_waiting(before)
    poller.register(late_pull, zmq.POLLIN)
    late_push.send(b"late")
    push.send(b"first")
    assert pull in dict(polling.get(timeout=HANG_GUARD))
    assert pull.recv() == b"first"
    assert poller.poll(HANG_GUARD * 1000) == [(late_pull, zmq.POLLIN)]


@pytest.mark.timeout(10)
def test_unregistering_beside_a_bad_registration_raises_only_at_the_poll(mod: Any, mod_ctx: Any) -> None:
    """pyzmq checks registrations when it polls: a bad one beside does not make an
    unregister fail, and the poll then rejects it."""
    good, other = mod_ctx.socket(mod.PULL), mod_ctx.socket(mod.PULL)
    poller = mod.Poller()
    poller.register(good, mod.POLLIN)
    assert poller.poll(10) == []  # zmq_green's poller now watches good
    poller.register(other, "now")
    poller.unregister(good)
    with pytest.raises(TypeError):
        poller.poll(0)
    for sock in (good, other):
        sock.close()


# -- standing raw fds (the IOLoop's rule: an fd is unregistered before it closes) ----


class StandingPoller(zmq_green.Poller):
    _standing_fds = True


def hub_turns(seconds: float) -> int:
    """How many times the hub's loop turns while the caller sleeps *seconds*."""
    turns = [0]
    check = gevent.get_hub().loop.check()  # libuv has no prepare watchers
    check.start(lambda: turns.__setitem__(0, turns[0] + 1))
    try:
        gevent.sleep(seconds)
    finally:
        check.close()
    return turns[0]


@pytest.fixture
def pipes() -> Iterator[list[tuple[int, int]]]:
    made = [os.pipe() for _ in range(100)]
    yield made
    for r, w in made:
        os.close(r)
        os.close(w)


@pytest.mark.timeout(20)
def test_standing_fds_a_poll_looks_only_at_the_fd_that_fired(
    pipes: list[tuple[int, int]], checked: list[int]
) -> None:
    poller = StandingPoller()
    for r, _ in pipes:
        poller.register(r, zmq.POLLIN)
    assert poller.poll(10) == []  # blocks: the fds are watched from now on
    checked.clear()
    r, w = pipes[50]
    for _ in range(20):
        polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
        gevent.sleep(0)
        os.write(w, b"x")
        assert polling.get(timeout=HANG_GUARD) == [(r, zmq.POLLIN)]
        assert os.read(r, 1) == b"x"
    assert checked and max(checked) <= 1, checked


@pytest.mark.timeout(10)
def test_standing_fds_an_fd_left_ready_is_reported_until_read(pipe: tuple[int, int]) -> None:
    r, w = pipe
    poller = StandingPoller()
    poller.safety_timeout = None  # only the watch may find it
    poller.register(r, zmq.POLLIN)
    assert poller.poll(10) == []
    os.write(w, b"ab")
    assert poller.poll(HANG_GUARD * 1000) == [(r, zmq.POLLIN)]
    assert os.read(r, 1) == b"a"
    assert poller.poll(HANG_GUARD * 1000) == [(r, zmq.POLLIN)]  # one byte left: still ready
    assert os.read(r, 1) == b"b"
    assert poller.poll(20) == []
    os.write(w, b"c")  # fires the watcher made anew when the fd was found no longer ready
    assert poller.poll(HANG_GUARD * 1000) == [(r, zmq.POLLIN)]


@pytest.mark.timeout(10)
def test_standing_fds_a_ready_fd_nobody_polls_does_not_turn_the_hub(pipe: tuple[int, int]) -> None:
    """The hub's watchers are level-triggered: a started watcher on an unread pipe would
    fire on every turn of the loop. One that fired stands down until the next poll."""
    r, w = pipe
    poller = StandingPoller()
    poller.register(r, zmq.POLLIN)
    assert poller.poll(10) == []
    quiet = hub_turns(0.1)
    os.write(w, b"x")  # readable, and nobody polls or reads
    assert hub_turns(0.1) <= quiet + 3
    assert poller.poll(0) == [(r, zmq.POLLIN)]


@pytest.mark.timeout(10)
def test_standing_fds_unregistered_or_changed_during_a_blocked_poll(pipe: tuple[int, int]) -> None:
    r, w = pipe
    r2, w2 = os.pipe()
    try:
        poller = StandingPoller()
        poller.safety_timeout = None
        poller.register(r, zmq.POLLIN)
        poller.register(r2, zmq.POLLIN)
        polling = gevent.spawn(poller.poll, HANG_GUARD * 1000)
        gevent.sleep(0.02)  # the poll has blocked (no signal to wait for: nothing happens)
        poller.unregister(r)
        os.write(w, b"x")  # the blocked poll keeps what it started with, as pyzmq's
        assert polling.get(timeout=HANG_GUARD) == [(r, zmq.POLLIN)]
        assert poller.poll(50) == []  # the poller itself has moved on
        poller.register(r2, zmq.POLLOUT)  # now watched for the other direction
        poller.register(r, zmq.POLLIN)  # back, and ready
        assert poller.poll(HANG_GUARD * 1000) == [(r, zmq.POLLIN)]
        os.read(r, 1)
        os.write(w2, b"y")  # r2 is readable, but watched for POLLOUT only
        assert poller.poll(50) == []
    finally:
        os.close(r2)
        os.close(w2)


@pytest.mark.timeout(10)
def test_standing_fds_a_dropped_poller_leaves_no_watcher(pipe: tuple[int, int]) -> None:
    r, _ = pipe
    before = active_watchers()
    poller = StandingPoller()
    poller.register(r, zmq.POLLIN)
    assert poller.poll(10) == []
    assert poller._standing is not None and poller._standing.watchers  # watched from now on
    del poller
    gevent.sleep(0)  # the hub closes the watches of a finalized poller
    assert active_watchers() == before
