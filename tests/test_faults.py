"""Faults from outside a greenlet's control: a peer killed, a context terminated, a
socket closed under its waiters, a fork, other threads with hubs of their own.

In each case the green side must keep its promises: waiters get the error pyzmq
would give (``ETERM``, ``ENOTSOCK``), nothing hangs, the hub keeps running, and
fds and hub watchers return to where they were.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from itertools import count
from pathlib import Path
from typing import Any, Callable

import gevent
import pytest
from conftest import other_gevent_loop, outcome, run_pytest_on, run_script
from gevent.event import AsyncResult, Event
from stress import soak

import zmq_green as zmq

WAIT = 20.0  # seconds allowed for anything that should happen at once; the machine may be loaded


# fds, hub watchers and rescues back where they started
resources = soak.resources


def errnos(results: list[Any]) -> Counter[Any]:
    return Counter(getattr(r, "errno", repr(r)) for r in results)


class Progress:
    """Counters that greenlets bump, and a way to wait until they reach a level."""

    def __init__(self) -> None:
        self.counts: Counter[bytes] = Counter()
        self._changed = Event()

    def bump(self, key: bytes) -> None:
        self.counts[key] += 1
        self._changed.set()

    def wait_for(self, key: bytes, n: int) -> None:
        with gevent.Timeout(WAIT, False):
            while self.counts[key] < n:
                self._changed.clear()
                self._changed.wait()
        assert self.counts[key] >= n, f"{key!r}: {self.counts[key]} of {n} in {WAIT} s"


# -- a peer process killed mid-stream ------------------------------------------

PEER = textwrap.dedent(
    """
    import os, sys, time, zmq
    ctx = zmq.Context()
    echo = ctx.socket(zmq.ROUTER)
    echo.bind(sys.argv[1])
    client = ctx.socket(zmq.DEALER)
    client.connect(sys.argv[2])
    me = b"%d" % os.getpid()
    poller = zmq.Poller()
    poller.register(echo, zmq.POLLIN)
    poller.register(client, zmq.POLLIN)
    n, asked = 0, 0.0
    while True:
        ready = dict(poller.poll(100))
        if echo in ready:
            ident, body = echo.recv_multipart()
            echo.send_multipart([ident, body + b"@" + me])
        if client in ready:
            client.recv()
            asked = 0.0
        if time.monotonic() - asked > 0.1:  # answered, or the answer is late: ask again
            n += 1
            client.send(me + b":%d" % n)
            asked = time.monotonic()
    """
)


@pytest.mark.timeout(90)
def test_peer_sigkilled_mid_stream_and_restarted(
    tmp_path: Any, resources: None, record_property: Any
) -> None:
    """The green side serves the peer and is served by it; SIGKILL it and start it again.

    The green ROUTER keeps serving (the new peer's requests are answered) and the
    green DEALER reconnects to the new peer's endpoint (its requests are answered again).
    """
    ctx = zmq.Context()
    server = ctx.socket(zmq.ROUTER)
    client = ctx.socket(zmq.DEALER)
    server.linger = client.linger = 0
    server.bind("tcp://127.0.0.1:*")
    peer_endpoint = f"ipc://{tmp_path}/peer.ipc"
    client.connect(peer_endpoint)
    served, answered = Progress(), Progress()
    pending: dict[bytes, AsyncResult] = {}

    def serve() -> None:
        while True:
            ident, body = server.recv_multipart()
            served.bump(body.split(b":")[0])
            server.send_multipart([ident, body])

    def ask(n: int) -> None:
        for i in count():
            key = b"%d.%d" % (n, i)
            pending[key] = reply = AsyncResult()
            client.send(key)
            reply.wait(0.5)  # a request to a peer that died is lost: ask again
            pending.pop(key, None)

    def read_replies() -> None:
        while True:
            key, _, pid = client.recv().partition(b"@")
            answered.bump(pid)
            if key in pending:
                pending[key].set()

    greenlets = [gevent.spawn(serve) for _ in range(3)]
    greenlets += [gevent.spawn(ask, n) for n in range(3)]
    greenlets.append(gevent.spawn(read_replies))

    def start_peer() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", PEER, peer_endpoint, server.last_endpoint.decode()])

    peers = [start_peer()]
    try:
        for round_ in range(2):
            pid = b"%d" % peers[-1].pid
            served.wait_for(pid, 100)
            answered.wait_for(pid, 100)
            peers[-1].send_signal(signal.SIGKILL)
            peers[-1].wait(WAIT)
            if round_ == 0:
                peers.append(start_peer())
        assert all(not g.dead for g in greenlets), [g.exception for g in greenlets if g.dead]
    finally:
        for peer in peers:
            peer.kill()
            peer.wait(WAIT)
        gevent.killall(greenlets)
        ctx.destroy(linger=0)
    record_property("faults", len(peers))
    record_property("messages", sum(served.counts.values()) + sum(answered.counts.values()))


# -- context termination -------------------------------------------------------


@pytest.mark.timeout(60)
def test_term_wakes_100_waiters_with_eterm_while_other_greenlets_run(
    resources: None, record_property: Any
) -> None:
    """100 greenlets wait in recv, send, Poller.poll and Socket.poll; term from another.

    Each gets ContextTerminated while term is still in progress (it cannot end before
    the sockets are closed), and this greenlet closes the sockets meanwhile: the hub
    kept running. Then term returns.
    """
    ctx = zmq.Context()
    pulls = [ctx.socket(zmq.PULL) for _ in range(10)]
    pushes = [ctx.socket(zmq.PUSH) for _ in range(10)]  # no peer: send waits
    for i, s in enumerate(pulls):
        s.bind(f"inproc://term-{i}")
    for s in pulls + pushes:
        s.linger = 0
    poller = zmq.Poller()
    for s in pulls:
        poller.register(s, zmq.POLLIN)
    calls: list[Callable[[], Any]] = []
    for i in range(40):
        calls += [pulls[i % 10].recv, lambda s=pushes[i % 10]: s.send(b"x")]
    for i in range(10):
        calls += [pulls[i].poll, poller.poll]
    waits = zmq.stats()["waits"]
    watchers = soak.active_watchers()
    greenlets = [gevent.spawn(outcome, call) for call in calls]
    with gevent.Timeout(WAIT):
        # (libuv may run the hub's callbacks over more than one idle turn)
        while zmq.stats()["waits"] - waits < 100:
            gevent.idle()
    assert zmq.stats()["waits"] - waits == 100 and not any(g.dead for g in greenlets)
    assert soak.active_watchers() > watchers, "the loop's watchers are not counted"

    terminator = gevent.spawn(ctx.term)
    gevent.joinall(greenlets, timeout=WAIT)
    results = [g.value for g in greenlets]
    assert not terminator.dead, "term ended before the sockets were closed"
    for s in pulls + pushes:
        s.close()
    terminator.join(WAIT)
    assert terminator.successful(), terminator.exception or "term did not return"
    assert errnos(results) == {zmq.ETERM: 100}, errnos(results)
    assert all(isinstance(r, zmq.ContextTerminated) for r in results)
    record_property("faults", 1)


# -- close under waiters -------------------------------------------------------


@pytest.mark.timeout(30)
def test_close_wakes_every_waiter_with_enotsock(resources: None, record_property: Any) -> None:
    """Greenlets wait in every blocking call on two sockets; closing them wakes all with ENOTSOCK."""
    ctx = zmq.Context()
    try:
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)  # push has no peer: send waits
        pull.bind("inproc://close")
        poller = zmq.Poller()
        poller.register(pull, zmq.POLLIN)
        buf = bytearray(10)
        calls: list[Callable[[], Any]] = [
            pull.recv,
            pull.recv_multipart,
            lambda: pull.recv_into(buf),
            lambda: push.send(b"x"),
            lambda: push.send_multipart([b"a", b"b"]),
            poller.poll,
            pull.poll,
            lambda: zmq.select([pull], [], []),
        ]
        watchers = soak.active_watchers()
        greenlets = [gevent.spawn(outcome, calls[i % len(calls)]) for i in range(80)]
        gevent.idle()
        assert not any(g.dead for g in greenlets)
        assert soak.active_watchers() > watchers, "the loop's watchers are not counted"
        pull.close()
        push.close()
        gevent.joinall(greenlets, timeout=WAIT)
        assert errnos([g.value for g in greenlets]) == {zmq.ENOTSOCK: 80}
        assert soak.active_watchers() == watchers
    finally:
        ctx.destroy(linger=0)
    record_property("faults", 1)


# -- fork ----------------------------------------------------------------------

FORK = textwrap.dedent(
    """
    import os, sys, gevent, zmq_green as zmq

    def roundtrip(ctx):
        # 4 greenlets move 400 messages through a pair with a high-water mark of 1
        push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
        push.sndhwm = pull.rcvhwm = 1
        pull.bind("inproc://fork")
        push.connect("inproc://fork")
        got = []
        gs = [gevent.spawn(lambda: [push.send(b"x") for _ in range(200)]) for _ in range(2)]
        gs += [gevent.spawn(lambda: [got.append(pull.recv()) for _ in range(200)]) for _ in range(2)]
        gevent.joinall(gs, timeout=20, raise_error=True)
        assert len(got) == 400
        push.close()
        pull.close()

    ctx = zmq.Context()
    roundtrip(ctx)
    # a greenlet of the parent waits on a socket across the fork
    s = ctx.socket(zmq.PULL)
    s.bind("inproc://waiting")
    gevent.spawn(lambda: s.recv())
    gevent.idle()
    for fork in (os.fork, gevent.fork):
        r, w = os.pipe()
        pid = fork()
        if pid == 0:
            try:
                child = zmq.Context()
                roundtrip(child)
                child.term()
                os.write(w, b"ok")
            except BaseException as e:
                os.write(w, repr(e).encode())
            finally:
                os._exit(0)
        os.close(w)
        report = b""
        while True:
            chunk = os.read(r, 1000)
            if not chunk:
                break
            report += chunk
        os.close(r)
        os.waitpid(pid, 0)
        print(fork.__module__, report.decode(), flush=True)
        roundtrip(ctx)  # the parent's context goes on working
    s.close()
    ctx.term()
    print("parent ok")
    """
)


@pytest.mark.timeout(60)
def test_fork_then_a_new_context_in_the_child() -> None:
    """``os.fork()`` and ``gevent.fork()`` from a process whose greenlets wait on zmq_green
    sockets: a new Context in the child works greenly, and so does the parent's."""
    proc = run_script(FORK, timeout=WAIT * 2)
    assert proc.stdout.split("\n") == ["posix ok", "gevent.os ok", "parent ok", ""], proc.stdout


# -- native threads ------------------------------------------------------------


def traffic(ctx: Any, name: str, n: int, halfway: Callable[[], None] = lambda: None) -> int:
    """Greenlets of the current thread move *n* messages over a high-water mark of 1."""
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    push.sndhwm = pull.rcvhwm = 1
    pull.rcvtimeo = int(WAIT * 1000)
    pull.bind(f"inproc://{name}")
    push.connect(f"inproc://{name}")
    got: list[bytes] = []

    def consume() -> None:
        while len(got) < n:
            with gevent.Timeout(0.001, False):  # short timeouts lose nothing
                got.append(pull.recv())
                if len(got) == n // 2:
                    halfway()

    try:
        gs = [gevent.spawn(lambda: [push.send(b"x") for _ in range(n // 4)]) for _ in range(4)]
        gs += [gevent.spawn(consume) for _ in range(4)]
        gevent.joinall(gs, timeout=WAIT, raise_error=True)
        assert all(g.dead for g in gs)
    finally:
        push.close(linger=0)
        pull.close(linger=0)
    return len(got)


@pytest.mark.timeout(60)
def test_two_threads_each_with_its_own_hub(ctx: Any, record_property: Any) -> None:
    """Two native threads, each with its own hub, move messages at once on their own sockets.

    Both stop halfway at a barrier: each has greenlets waiting on its sockets while
    the other's are mid-stream too.
    """
    barrier = threading.Barrier(2, timeout=WAIT)
    results: dict[int, Any] = {}

    def run(i: int) -> None:
        try:
            hub = gevent.get_hub()
            moved = traffic(ctx, f"thread-{i}", 2000, barrier.wait)
            results[i] = (moved, hub)
            hub.destroy(destroy_loop=True)
        except BaseException as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 2)
    assert all(isinstance(r, tuple) for r in results.values()) and len(results) == 2, results
    assert [results[i][0] for i in range(2)] == [2000, 2000]
    hubs = {id(results[i][1]) for i in range(2)} | {id(gevent.get_hub())}
    assert len(hubs) == 3, "the threads shared a hub"
    record_property("messages", 4000)


def run_in_thread(func: Callable[[], Any]) -> Any:
    """Run *func* in a new native thread (with a hub of its own); return its outcome."""
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(outcome(func)))
    t.start()
    t.join(WAIT)
    assert result, "the thread hangs"
    return result[0]


def pingpong(push: Any, pull: Any) -> int:
    """Greenlets of the current thread move 200 messages from *push* to *pull*."""
    got: list[bytes] = []
    gs = [
        gevent.spawn(lambda: [push.send(b"x") for _ in range(200)]),
        gevent.spawn(lambda: [got.append(pull.recv()) for _ in range(200)]),
    ]
    gevent.joinall(gs, timeout=WAIT, raise_error=True)
    return len(got)


@pytest.fixture
def hwm_pair(ctx: Any) -> tuple[Any, Any]:
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    push.sndhwm = pull.rcvhwm = 1
    pull.bind("inproc://handed")
    push.connect("inproc://handed")
    return push, pull


@pytest.mark.timeout(60)
def test_sockets_handed_from_thread_to_thread(hwm_pair: tuple[Any, Any]) -> None:
    """Sockets waited on in one thread are used in another, then back in the first."""
    push, pull = hwm_pair
    assert pingpong(push, pull) == 200
    assert run_in_thread(lambda: pingpong(push, pull)) == 200
    assert run_in_thread(lambda: pingpong(push, pull)) == 200
    assert pingpong(push, pull) == 200


@pytest.mark.timeout(60)
def test_socket_waited_on_in_another_thread_refuses_a_second_waiter(hwm_pair: tuple[Any, Any]) -> None:
    """Waiting on a socket another thread's greenlets wait on is an error, not a hang."""
    push, pull = hwm_pair
    waiting, done = threading.Event(), threading.Event()
    got: list[Any] = []

    def wait_in_thread() -> None:
        g = gevent.spawn(lambda: got.append(pull.recv()))
        gevent.idle()
        waiting.set()
        g.join(WAIT)
        done.set()

    t = threading.Thread(target=wait_in_thread)
    t.start()
    try:
        assert waiting.wait(WAIT)
        with pytest.raises(
            RuntimeError,
            match="is being waited on in another thread; a zmq socket must not be used from two threads at once",
        ):
            pull.recv()
        push.send(b"for the other thread")
        assert done.wait(WAIT)
        assert got == [b"for the other thread"]
    finally:
        t.join(WAIT)


@pytest.mark.timeout(60)
def test_socket_used_after_its_threads_hub_is_destroyed(hwm_pair: tuple[Any, Any]) -> None:
    push, pull = hwm_pair

    def use_then_destroy_hub() -> int:
        moved = pingpong(push, pull)
        gevent.get_hub().destroy(destroy_loop=True)
        return moved

    assert run_in_thread(use_then_destroy_hub) == 200
    assert pingpong(push, pull) == 200


# -- on the other gevent loop --------------------------------------------------


@pytest.mark.timeout(180)
def test_faults_on_the_other_gevent_loop() -> None:
    """Every test above, run again on the gevent loop the suite is not on (libuv, by default).

    The fd and watcher counts mean something there too: the term and close tests
    assert that the count of active watchers rose while greenlets waited, so a loop
    whose watchers went uncounted fails instead of comparing 0 with 0.
    """
    name = f"tests/{Path(__file__).name}"
    deselect = f"{name}::test_faults_on_the_other_gevent_loop"
    result = run_pytest_on(other_gevent_loop(), [name, "--deselect", deselect], timeout=170)
    tail = "\n".join(result.stdout.splitlines()[-15:])
    assert result.returncode == 0, tail + result.stderr[-2000:]
    assert " passed" in tail and "skipped" not in tail, tail
