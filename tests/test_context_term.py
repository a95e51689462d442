"""Context termination: once per context, interruptible, and free of gevent's threadpool.

A context is terminated once, ever: a second ``zmq_ctx_term`` of the same
context is a use-after-free in libzmq that aborts the process, so the scripts
that could provoke one run in a fresh interpreter. Every caller of term/destroy
waits for that one termination, whoever started it and however it was
interrupted; termination never waits for a free worker of the shared pool; and
a child of a plain ``os.fork()`` can terminate a context of its own.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import gevent
import pytest
import zmq
from conftest import outcome, run_script
from test_context import LINGER_MS, lingering_push, refused_endpoint  # noqa: F401

import zmq_green
import zmq_green._native
import zmq_green.context

WAIT = 20.0  # seconds for what should happen at once; only a guard against hangs


# -- an interrupted term, then term or destroy: one termination, no crash, no thread left --

ROUNDS = """
import os, signal, socket, threading, time
import gevent, zmq_green as zmq

# Python leaves SIGINT ignored when it starts with it ignored (a background job of a
# non-interactive shell, and its children): the test needs KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)

def native_threads():
    return len(os.listdir("/proc/self/task"))

holder = socket.socket()
holder.bind(("127.0.0.1", 0))
endpoint = "tcp://127.0.0.1:%d" % holder.getsockname()[1]
before = native_threads()

def saw_eterm(sock):
    try:
        sock.recv()
    except zmq.ContextTerminated:
        return True
    return False

def term_outcome(ctx, results):
    try:
        ctx.term()
        results.append(None)
    except BaseException as e:
        results.append(e)

def interrupted_term(ctx, begun):
    # Leaves ctx.term() interrupted while libzmq's termination waits for the sockets.
    if INTERRUPT == "timeout":
        try:
            with gevent.Timeout(0.05):
                ctx.term()
        except gevent.Timeout:
            return
    elif INTERRUPT == "kill":
        terming = gevent.spawn(ctx.term)
        begun.join(WAIT)
        terming.kill(timeout=WAIT)
        assert isinstance(terming.value, gevent.GreenletExit), terming
        return
    elif INTERRUPT == "sigint":
        def interrupt():
            begun.join(WAIT)
            os.kill(os.getpid(), signal.SIGINT)
        gevent.spawn(interrupt)
        try:
            ctx.term()
        except KeyboardInterrupt:
            return
    raise AssertionError("term returned with sockets open")

for _ in range(20):
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)  # blocks termination until closed with a shorter linger
    push.linger = -1
    push.connect(endpoint)
    push.send(b"never delivered")
    pull = ctx.socket(zmq.PULL)
    # ETERM here shows the termination has begun; then pull refuses options (LINGER).
    begun = gevent.spawn(saw_eterm, pull)
    interrupted_term(ctx, begun)
    assert begun.get(timeout=WAIT) is True
    if THEN == "destroy":
        ctx.destroy(linger=0)
    else:
        results = []
        if THEN == "term":
            second = gevent.spawn(term_outcome, ctx, results)
        else:  # from a native thread, without a hub: it blocks there, as pyzmq's term does
            second = threading.Thread(target=term_outcome, args=(ctx, results), daemon=True)
            second.start()
        gevent.idle()
        assert results == []  # the second caller waits: the sockets are still open
        push.close(linger=0)
        pull.close()
        second.join(WAIT)
        assert results == [None], results
    assert ctx.closed and push.closed and pull.closed
    ctx.term()  # over: at once
    ctx.destroy(linger=0)

deadline = time.monotonic() + WAIT
while native_threads() != before:  # the termination threads exit once done
    assert time.monotonic() < deadline, (native_threads(), before)
    time.sleep(0.01)
print("OK")
"""


@pytest.mark.timeout(WAIT * 3)
@pytest.mark.parametrize("then", ["term", "destroy", "thread"])
@pytest.mark.parametrize("interrupt", ["timeout", "kill", "sigint"])
def test_interrupted_term_then_term_or_destroy_terminates_once(interrupt: str, then: str) -> None:
    """20 rounds of: term interrupted while libzmq waits for the sockets, then
    destroy(linger=0), or a second term (from a greenlet, or a native thread) that
    waits while the sockets are closed. Each waits for the running termination
    instead of starting a second one on the same context; no native thread outlives
    the rounds."""
    script = f"INTERRUPT = {interrupt!r}\nTHEN = {then!r}\nWAIT = {WAIT}\n" + ROUNDS
    assert run_script(script, timeout=WAIT * 2).stdout.strip() == "OK"


# -- concurrent callers ----------------------------------------------------------


@pytest.fixture
def native_terms(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The contexts pyzmq's own term is run on; a second run on one context fails at once."""
    calls: list[Any] = []
    native = zmq_green.context._native_term

    def once(ctx: Any) -> None:
        if any(seen is ctx for seen in calls):
            raise AssertionError("a second native termination of one context")
        calls.append(ctx)
        native(ctx)

    monkeypatch.setattr(zmq_green.context, "_native_term", once)
    return calls


@pytest.mark.timeout(WAIT)
def test_concurrent_terms_wait_for_one_termination(
    refused_endpoint: str,  # noqa: F811
    native_terms: list[Any],
) -> None:
    ctx = zmq_green.Context()
    lingering_push(ctx, refused_endpoint).close()

    def term() -> bool:
        ctx.term()
        return bool(ctx.closed)  # returned only once the termination was over

    callers = [gevent.spawn(outcome, term) for _ in range(3)]
    gevent.joinall(callers, timeout=WAIT)
    assert [c.value for c in callers] == [True] * 3
    assert native_terms == [ctx]


@pytest.mark.timeout(WAIT)
def test_a_native_error_reaches_every_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = zmq_green.Context()
    native = zmq_green.context._native_term
    error = zmq.ZMQError(zmq.EFAULT)

    def failing(ctx: Any) -> None:
        raise error

    monkeypatch.setattr(zmq_green.context, "_native_term", failing)
    callers = [gevent.spawn(outcome, ctx.term) for _ in range(2)]
    gevent.joinall(callers, timeout=WAIT)
    assert [c.value for c in callers] == [error, error]
    assert outcome(ctx.term) is error  # a later caller too: the termination is over
    assert not ctx.closed
    native(ctx)


@pytest.mark.timeout(WAIT)
def test_destroy_after_an_interrupted_term_closes_a_socket_that_saw_eterm(
    refused_endpoint: str,  # noqa: F811
) -> None:
    """A socket that has seen ETERM refuses LINGER (pyzmq's destroy would raise there
    and leave the sockets open); destroy closes it all the same, with the linger asked
    for on the sockets that still take it, and the termination ends."""
    ctx = zmq_green.Context()
    pull = ctx.socket(zmq.PULL)
    push = lingering_push(ctx, refused_endpoint, linger=-1)
    receiving = gevent.spawn(outcome, pull.recv)
    gevent.idle()
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):
        ctx.term()
    assert isinstance(receiving.get(timeout=WAIT), zmq.ContextTerminated)
    with pytest.raises(zmq.ContextTerminated):
        pull.linger = 0
    with gevent.Timeout(WAIT):
        ctx.destroy(linger=0)
    assert pull.closed and push.closed and ctx.closed


# -- gevent's threadpool, full ---------------------------------------------------


def receive_then_close(sock: Any) -> Any:
    """A plain blocking recv, as a pool task or a thread would make it: the errno it ends with."""
    try:
        return sock.recv()
    except zmq.ZMQError as e:
        return e.errno
    finally:
        sock.close()


@pytest.mark.timeout(WAIT * 2)
def test_term_wakes_a_full_threadpool_of_blocking_receivers(mod: Any) -> None:
    """As many plain blocking receives as gevent's threadpool has workers: with pyzmq,
    each in a thread; with zmq_green, each a pool task, so that the pool is full. The
    termination starts all the same, and every one of them gets ETERM."""
    pool = gevent.get_hub().threadpool
    ctx = mod.Context()
    sockets = [ctx.socket(zmq.PULL, socket_class=zmq.Socket) for _ in range(pool.maxsize)]
    if mod is zmq:
        results: list[Any] = []
        threads = [
            threading.Thread(target=lambda s=s: results.append(receive_then_close(s))) for s in sockets
        ]
        for thread in threads:
            thread.start()
        ctx.term()
        for thread in threads:
            thread.join(WAIT)
    else:
        tasks = [pool.spawn(receive_then_close, s) for s in sockets]
        with gevent.Timeout(WAIT):
            ctx.term()
        results = [task.get(timeout=WAIT) for task in tasks]
    assert results == [zmq.ETERM] * pool.maxsize
    assert ctx.closed


@pytest.mark.timeout(WAIT * 2)
def test_term_waiting_for_a_lingering_socket_lets_greenlets_run_with_the_threadpool_busy(
    refused_endpoint: str,  # noqa: F811
) -> None:
    """Every pool worker is busy with something else; term still starts, waits out the
    linger, and meanwhile a ticker greenlet keeps running."""
    pool = gevent.get_hub().threadpool
    release = threading.Event()  # a native one: this process is not monkey-patched
    busy = [pool.spawn(release.wait, WAIT) for _ in range(pool.maxsize)]
    ticks = 0
    try:
        ctx = zmq_green.Context()
        lingering_push(ctx, refused_endpoint).close()

        def ticker() -> None:
            nonlocal ticks
            while True:
                gevent.sleep(0.005)
                if not ctx.closed:  # libzmq's termination has not returned yet
                    ticks += 1

        ticking = gevent.spawn(ticker)
        with gevent.Timeout(WAIT):
            ctx.term()
        ticking.kill()
    finally:
        release.set()
        gevent.joinall(busy, timeout=WAIT)
    assert ctx.closed
    assert ticks > 0


# -- a child of a plain os.fork() ------------------------------------------------

FORK = """
import os, select, socket, sys
os.environ["GEVENT_LOOP"] = LOOP
import gevent
mod = __import__(MOD)
import zmq

holder = socket.socket()
holder.bind(("127.0.0.1", 0))
endpoint = "tcp://127.0.0.1:%d" % holder.getsockname()[1]

# The parent has used gevent's threadpool: the child inherits it, without its threads.
gevent.get_hub().threadpool.spawn(lambda: None).get()
inherited = mod.Context()
held = inherited.socket(zmq.PULL)
if MOD == "zmq_green":
    # and a termination of the parent's is running: the child has not its thread
    try:
        with gevent.Timeout(0.05):
            inherited.term()
    except gevent.Timeout:
        pass

r, w = os.pipe()
pid = os.fork()
if pid == 0:
    verdict = b"failed"
    try:
        os.close(r)
        ctx = mod.Context()
        push = ctx.socket(zmq.PUSH)
        push.linger = 100
        push.connect(endpoint)
        push.send(b"never delivered")
        push.close()
        ctx.term()
        inherited.term()  # the parent's context: only marked closed, as pyzmq does
        if ctx.closed and inherited.closed:
            verdict = b"OK"
    finally:
        os.write(w, verdict)
        os._exit(0)
os.close(w)
ready, _, _ = select.select([r], [], [], WAIT)  # the child's verdict, or its exit
if not ready:
    os.kill(pid, 9)
verdict = os.read(r, 100) if ready else b"hung"
os.waitpid(pid, 0)
held.close()
inherited.term()
print(verdict.decode())
"""


@pytest.mark.timeout(WAIT * 3)
@pytest.mark.parametrize("loop", ["libev-cext", "libuv-cffi"])
def test_a_child_of_a_plain_fork_terminates_a_context(mod: Any, loop: str) -> None:
    script = f"LOOP = {loop!r}\nMOD = {mod.__name__!r}\nWAIT = {WAIT}\n" + FORK
    assert run_script(script, timeout=WAIT * 2).stdout.strip() == "OK"


@pytest.mark.timeout(WAIT)
def test_a_termination_that_could_not_start_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = zmq_green.Context()

    def no_thread(*args: Any) -> int:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(zmq_green._native, "_start_new_thread", no_thread)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        ctx.term()
    assert not ctx.closed
    monkeypatch.undo()
    ctx.term()
    assert ctx.closed


# -- the global instance ----------------------------------------------------------


@pytest.mark.timeout(WAIT)
def test_instance_never_hands_out_a_context_whose_termination_runs(
    refused_endpoint: str,  # noqa: F811
) -> None:
    """The global context's term() was interrupted while a socket lingers: instance()
    gives a new, working context, as pyzmq's does once the old one is closed."""
    first = zmq_green.Context.instance()
    push = lingering_push(first, refused_endpoint, linger=-1)
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.05):
        first.term()
    assert not first.closed  # still terminating: it waits for push
    second = zmq_green.Context.instance()
    try:
        assert second is not first
        pull, feeder = second.socket(zmq.PULL), second.socket(zmq.PUSH)
        pull.bind("inproc://after-an-interrupted-term")
        feeder.connect("inproc://after-an-interrupted-term")
        feeder.send(b"works")
        assert pull.recv() == b"works"
        assert zmq_green.Context.instance() is second
    finally:
        push.close(linger=0)
        first.term()
        second.destroy(linger=0)
    assert first.closed


# -- signals reach the main thread ------------------------------------------------


@pytest.mark.timeout(WAIT)
def test_a_termination_thread_blocks_every_signal() -> None:
    """A signal sent to the process must go to the main thread: there it wakes the hub and
    raises (KeyboardInterrupt in a greenlet waiting in term()). Delivered to the thread in
    zmq_ctx_term, it only set Python's flag, and a term() interrupted by SIGINT could wait
    for the next timer (the red loaded run: 20 s a round). Native threads start with every
    signal blocked; their creator's mask is left as it was."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    thread = zmq_green._native.NativeThread(signal.pthread_sigmask, (signal.SIG_BLOCK, []))
    thread.start()
    thread.join()
    blocked = thread.result
    assert {signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGCHLD} <= blocked
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
