"""IOLoop on the gevent hub: tornado's API, and every other greenlet keeps running.

Tests that take ``make_loop`` run the same body on tornado's IOLoop (the
reference) and on zmq_green's.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Iterator
from typing import Any, Callable

import gevent
import gevent.event
import pytest
import zmq
from conftest import pair, run_script

import zmq_green
import zmq_green.eventloop
from zmq_green.eventloop import ioloop
from zmq_green.eventloop.ioloop import IOLoop, PeriodicCallback


@pytest.fixture
def loop() -> Iterator[IOLoop]:
    made = IOLoop()
    yield made
    made.close()
    IOLoop.clear_current()


@pytest.fixture(params=["tornado", "zmq_green"])
def make_loop(request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    made: list[Any] = []

    if request.param == "tornado":
        tornado_ioloop = pytest.importorskip("tornado.ioloop")  # the reference needs tornado

    def factory() -> Any:
        new = tornado_ioloop.IOLoop(make_current=False) if request.param == "tornado" else IOLoop()
        made.append(new)
        return new

    yield factory
    for each in made:
        each.close()
    IOLoop.clear_current()


def run(loop: Any, seconds: float = 20.0) -> None:
    """Run *loop* until the test stops it; fail if *seconds* pass first."""
    expired: list[bool] = []

    def expire() -> None:
        expired.append(True)
        loop.stop()

    handle = loop.call_later(seconds, expire)
    loop.start()
    loop.remove_timeout(handle)
    assert not expired, f"the loop was not stopped within {seconds} s"


# -- the same behaviour as tornado's IOLoop ---------------------------------------


@pytest.mark.timeout(10)
def test_callbacks_run_in_order_and_new_ones_on_the_next_iteration(make_loop: Callable[[], Any]) -> None:
    loop = make_loop()
    order: list[str] = []

    def first() -> None:
        order.append("first")
        loop.add_callback(order.append, "added by first")
        loop.add_callback(loop.stop)

    loop.add_callback(first)
    loop.add_callback(order.append, "second")
    loop.spawn_callback(lambda *, word: order.append(word), word="third")
    run(loop)
    assert order == ["first", "second", "third", "added by first"]


@pytest.mark.timeout(10)
def test_timers_run_by_deadline_and_can_be_cancelled(make_loop: Callable[[], Any]) -> None:
    loop = make_loop()
    order: list[str] = []
    loop.call_later(0.08, order.append, "call_later 80ms")
    cancelled = loop.call_later(0.02, order.append, "cancelled")
    loop.add_timeout(datetime.timedelta(milliseconds=60), order.append, "timedelta 60ms")
    loop.add_timeout(loop.time() + 0.04, order.append, "add_timeout 40ms")
    loop.call_at(loop.time() + 0.01, order.append, "call_at 10ms")
    loop.call_later(0.1, loop.stop)
    loop.remove_timeout(cancelled)
    run(loop)
    assert order == ["call_at 10ms", "add_timeout 40ms", "timedelta 60ms", "call_later 80ms"]
    loop.remove_timeout(cancelled)  # again, and after the others ran: harmless
    with pytest.raises(TypeError):
        loop.add_timeout("soon", order.append, "never")


@pytest.mark.timeout(10)
def test_stop_before_start_runs_one_iteration(make_loop: Callable[[], Any]) -> None:
    loop = make_loop()
    ran: list[bool] = []
    loop.add_callback(ran.append, True)
    loop.stop()
    loop.start()  # returns by itself
    assert ran == [True]
    loop.add_callback(loop.stop)
    loop.start()  # and the loop can run again


@pytest.mark.timeout(10)
def test_handlers_on_native_sockets(make_loop: Callable[[], Any]) -> None:
    loop = make_loop()
    left, right = socket.socketpair()
    try:
        seen: list[tuple[Any, int]] = []

        def on_read(fd: Any, events: int) -> None:
            seen.append((fd, events & loop.READ))
            fd.recv(100)
            loop.remove_handler(fd)
            loop.add_handler(right.fileno(), on_write, loop.WRITE)

        def on_write(fd: Any, events: int) -> None:
            seen.append((fd, events & loop.WRITE))
            loop.remove_handler(fd)
            loop.stop()

        loop.add_handler(left, on_read, loop.READ)
        with pytest.raises(ValueError):
            loop.add_handler(left.fileno(), on_read, loop.READ)  # the same fd twice
        right.send(b"x")
        run(loop)
        assert seen == [(left, loop.READ), (right.fileno(), loop.WRITE)]
        loop.remove_handler(left)  # unknown by now: ignored
    finally:
        left.close()
        right.close()


# -- zmq_green's IOLoop ----------------------------------------------------------------


@pytest.mark.timeout(10)
def test_current_is_per_thread_and_always_this_class() -> None:
    IOLoop.clear_current()
    assert IOLoop.current(instance=False) is None
    main = IOLoop.current()
    assert type(main) is IOLoop
    assert IOLoop.instance() is main is IOLoop.current()
    assert zmq_green.eventloop.IOLoop is IOLoop is ioloop.ZMQIOLoop
    in_thread: list[Any] = []

    def other_thread() -> None:
        in_thread.append(IOLoop.current(instance=False))
        in_thread.append(IOLoop.current())
        in_thread[-1].close()

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert in_thread[0] is None
    assert type(in_thread[1]) is IOLoop and in_thread[1] is not main
    assert gevent.spawn(IOLoop.current).get() is main  # greenlets share their thread's
    second = IOLoop(make_current=False)
    assert IOLoop.current() is main
    second.make_current()
    assert IOLoop.current() is second
    second.close()  # closing the current loop forgets it
    assert IOLoop.current(instance=False) is None
    main.close()


@pytest.mark.timeout(10)
def test_start_runs_the_loop_as_the_current_one(loop: IOLoop) -> None:
    other = IOLoop(make_current=False)
    seen: list[Any] = []
    other.add_callback(lambda: seen.append(IOLoop.current()))
    other.add_callback(other.stop)
    other.start()
    assert seen == [other]
    assert IOLoop.current() is loop
    other.close()


@pytest.mark.timeout(10)
def test_start_twice_and_close_while_running_raise(loop: IOLoop) -> None:
    errors: list[BaseException] = []

    def misuse() -> None:
        for call in (loop.start, loop.close):
            try:
                call()
            except RuntimeError as e:
                errors.append(e)
        loop.stop()

    loop.add_callback(misuse)
    run(loop)
    assert len(errors) == 2
    loop.close()
    with pytest.raises(RuntimeError):
        loop.start()


@pytest.mark.timeout(10)
def test_start_in_a_greenlet_keeps_a_ticker_ticking(loop: IOLoop) -> None:
    ctx = zmq_green.Context()
    a, _ = pair(ctx, zmq.PULL, zmq.PUSH)
    loop.add_handler(a, lambda fd, events: None, loop.READ)  # idle: nothing arrives
    running = gevent.event.Event()
    loop.add_callback(running.set)
    ticks: list[bool] = []

    def ticker() -> None:
        running.wait()
        for _ in range(5):
            gevent.sleep(0.01)
            ticks.append(not looping.dead)
        loop.add_callback(loop.stop)

    looping = gevent.spawn(loop.start)
    ticking = gevent.spawn(ticker)
    gevent.joinall([looping, ticking], raise_error=True, timeout=10)
    assert ticks == [True] * 5
    assert looping.dead and looping.successful()
    loop.remove_handler(a)
    ctx.destroy(linger=0)


@pytest.mark.timeout(10)
def test_zmq_dot_green_tornado_loop_in_a_greenlet_blocks_every_other_greenlet() -> None:
    pytest.importorskip("tornado")  # pyzmq's zmq.green eventloop is tornado's
    with pytest.warns(DeprecationWarning):
        import zmq.green.eventloop.ioloop as green_ioloop

    ticks: list[int] = []

    def ticker() -> None:
        while True:
            ticks.append(1)
            gevent.sleep(0.01)

    ticking = gevent.spawn(ticker)
    tornado_loop = green_ioloop.IOLoop(make_current=False)
    seen: list[int] = []

    def stop() -> None:
        seen.append(len(ticks))
        tornado_loop.stop()

    tornado_loop.add_callback(lambda: seen.append(len(ticks)))
    tornado_loop.call_later(0.2, stop)
    gevent.spawn(tornado_loop.start).join()
    ticking.kill()
    tornado_loop.close()
    assert len(seen) == 2 and seen[0] == seen[1]  # 0.2 s of loop, not one tick


@pytest.mark.timeout(10)
def test_a_callback_blocking_greenly_does_not_stall_other_greenlets(loop: IOLoop) -> None:
    released = gevent.event.Event()
    order: list[str] = []

    def blocking() -> None:
        order.append("blocking")
        released.wait()  # only this greenlet waits
        order.append("released")

    def releaser() -> None:
        order.append("other greenlet")
        released.set()

    loop.add_callback(blocking)
    loop.add_callback(order.append, "next callback")
    loop.add_callback(loop.stop)
    gevent.spawn(releaser)
    run(loop)
    assert order == ["blocking", "other greenlet", "released", "next callback"]


@pytest.mark.timeout(20)
def test_busy_callbacks_do_not_starve_other_greenlets(loop: IOLoop) -> None:
    spins = [0]

    def spin() -> None:
        spins[0] += 1
        loop.add_callback(spin)  # never idle

    def ticker() -> None:
        for _ in range(3):
            gevent.sleep(0.001)
        loop.add_callback(loop.stop)

    loop.add_callback(spin)
    t = gevent.spawn(ticker)
    run(loop)
    t.get(timeout=1)
    assert spins[0] > 3


@pytest.mark.timeout(10)
def test_add_callback_from_another_greenlet_wakes_the_idle_loop(loop: IOLoop) -> None:
    waiting = gevent.event.Event()
    loop.add_callback(waiting.set)

    def other() -> None:
        waiting.wait()  # runs only once the loop waits in its poll
        loop.add_callback(loop.stop)

    g = gevent.spawn(other)
    loop.start()  # no timers, no handlers: only the wake-up ends this
    g.get(timeout=1)


def when_polling(loop: IOLoop, action: Callable[[], object]) -> threading.Thread:
    """A thread that runs *action* once *loop* waits in its poll (so only a wake-up can end that wait)."""

    def run_when_polling() -> None:
        while not loop._polling:
            time.sleep(0.001)
        action()

    return threading.Thread(target=run_when_polling)


@pytest.mark.timeout(10)
def test_add_callback_from_a_thread_wakes_the_idle_loop(loop: IOLoop) -> None:
    done: list[str] = []
    t = when_polling(loop, lambda: loop.add_callback(loop.stop))
    loop.add_callback(t.start)
    loop.add_callback(done.append, "started")
    loop.start()  # no timers, no handlers: only the wake-up ends this
    t.join()
    assert done == ["started"]


@pytest.mark.timeout(10)
def test_add_callback_from_signal_wakes_the_idle_loop(loop: IOLoop) -> None:
    got: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        loop.add_callback_from_signal(got.append, signum)
        loop.add_callback_from_signal(loop.stop)

    previous = signal.signal(signal.SIGUSR1, on_signal)
    try:
        # Sent from another OS thread while this one waits in the hub.
        kill = when_polling(loop, lambda: os.kill(os.getpid(), signal.SIGUSR1))
        loop.add_callback(kill.start)
        loop.start()
        kill.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert got == [signal.SIGUSR1]


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Switch OS threads every microsecond: a thread runs inside the loop's every window."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def test_signals_wake_a_running_loop_through_its_waker_and_the_old_fd_comes_back(loop: IOLoop) -> None:
    """A Python signal handler runs only when Python next runs: while the loop runs, the
    signal's C-level handler writes to the loop's waker, so a loop asleep in its poll wakes."""
    before = signal.set_wakeup_fd(-1)
    r, w = os.pipe()
    os.set_blocking(w, False)
    seen: list[int] = []

    def look() -> None:
        current = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(current)
        seen.append(current)
        loop.stop()

    try:
        signal.set_wakeup_fd(w)
        loop.add_callback(look)
        loop.start()
        assert seen and seen[0] not in (-1, w)
        assert os.fstat(seen[0]).st_mode == os.fstat(w).st_mode  # a pipe's write end: the waker's
        assert signal.set_wakeup_fd(-1) == w  # given back when the loop stopped
    finally:
        signal.set_wakeup_fd(before)
        os.close(r)
        os.close(w)


def test_a_loop_in_another_thread_runs_and_leaves_the_wakeup_fd_alone() -> None:
    """Only the main thread may set the wake-up fd: a loop elsewhere runs without it."""
    ran: list[bool] = []

    def run() -> None:
        other = IOLoop()
        other.add_callback(lambda: (ran.append(True), other.stop()))
        other.start()
        other.close()

    r, w = os.pipe()
    os.set_blocking(w, False)
    before = signal.set_wakeup_fd(w)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join(10)
        assert ran == [True]
        assert signal.set_wakeup_fd(before) == w
    finally:
        os.close(r)
        os.close(w)


#: How long one round may take before a thread calls the wake-up lost (a hang guard).
LOST_AFTER = 5.0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("how", "threads"), [("add_callback", 2), ("call_later", 2), ("signal", 1)])
@pytest.mark.usefixtures("tiny_switch_interval")
def test_no_wake_up_from_another_thread_is_lost(loop: IOLoop, how: str, threads: int) -> None:
    """Each thread hands the loop a callback and waits for it to run before the next one.

    The loop's only timer is an hour away, so a wake-up lost while the loop goes from
    its callbacks to its poll leaves it asleep until the thread gives up waiting.
    Signals are sent by one thread: a second pending SIGUSR1 would merge with the first.
    """
    if how == "signal" and "libuv" in type(gevent.get_hub().loop).__module__:
        pytest.skip("gevent's libuv loop runs signal handlers only every 0.3 s while it waits")
    rounds = 10_000
    ran = [0]
    lost: list[int] = []

    def worker(done: threading.Event, callback: Callable[[], None]) -> None:
        hand_over: Callable[[], object] = {
            "add_callback": lambda: loop.add_callback(callback),
            "call_later": lambda: loop.call_later(0, callback),
            "signal": lambda: os.kill(os.getpid(), signal.SIGUSR1),
        }[how]
        for i in range(rounds):
            done.clear()
            hand_over()
            if not done.wait(LOST_AFTER):
                lost.append(i)
                loop.stop()  # the loop sleeps in its poll by now: this wake-up arrives
                return

    def counter(done: threading.Event) -> Callable[[], None]:
        def callback() -> None:
            ran[0] += 1
            done.set()
            if ran[0] == rounds * threads:
                loop.stop()

        return callback

    dones = [threading.Event() for _ in range(threads)]
    callbacks = [counter(done) for done in dones]
    workers = [threading.Thread(target=worker, args=pair) for pair in zip(dones, callbacks)]
    previous = signal.signal(
        signal.SIGUSR1, lambda signum, frame: loop.add_callback_from_signal(callbacks[0])
    )
    try:
        loop.call_later(3600, loop.stop)
        for t in workers:
            loop.add_callback(t.start)
        loop.start()
        for t in workers:
            t.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert not lost, f"a wake-up was lost: {ran[0]} of {rounds * threads} callbacks ran"
    assert ran[0] == rounds * threads


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("tiny_switch_interval")
def test_no_stop_from_another_thread_is_lost(loop: IOLoop) -> None:
    """Another thread stops the running loop, again and again, as soon as it runs.

    The thread spins on a counter (a wait on an Event would wake it too late) and
    then a random while, so its stop() lands anywhere in the loop's first iteration.
    The loop's only timer is an hour away: a lost wake-up leaves start() asleep until
    the thread gives up.
    """
    rounds = 15_000
    runs = [0]
    returned = threading.Event()
    lost: list[int] = []

    def stopper() -> None:
        for i in range(rounds):
            deadline = time.monotonic() + LOST_AFTER
            while runs[0] <= i:
                if time.monotonic() > deadline:
                    lost.append(i)
                    return
            for _ in range(random.randrange(100)):
                pass
            loop.stop()
            if not returned.wait(LOST_AFTER):
                lost.append(i)
                loop.stop()  # the loop sleeps in its poll by now: this wake-up arrives
                return
            returned.clear()

    def count_run() -> None:
        runs[0] += 1

    loop.call_later(3600, lambda: None)
    t = threading.Thread(target=stopper)
    t.start()
    stops = 0
    for _ in range(rounds):
        loop.add_callback(count_run)
        loop.start()
        if lost:
            break
        stops += 1
        returned.set()
    t.join()
    assert not lost, f"a wake-up was lost: start() returned {stops} of {rounds} times"


@pytest.mark.timeout(10)
def test_errors_in_callbacks_timers_and_handlers_are_logged_and_the_loop_goes_on(
    loop: IOLoop, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = zmq_green.Context()
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    after: list[str] = []

    def bad_handler(sock: Any, events: int) -> None:
        sock.recv()
        raise KeyError("handler")

    def fail(what: str) -> None:
        raise ValueError(what)

    loop.add_handler(pull, bad_handler, loop.READ)
    push.send(b"x")
    loop.add_callback(fail, "callback")
    loop.call_later(0.01, fail, "timer")
    periodic = PeriodicCallback(lambda: fail("periodic"), 5)
    periodic.start()
    loop.call_later(0.1, after.append, "later")
    loop.call_later(0.1, loop.stop)
    with caplog.at_level(logging.ERROR, logger="zmq_green.eventloop"):
        run(loop)
    periodic.stop()
    assert after == ["later"]
    raised = {str(r.exc_info[1]) for r in caplog.records if r.name == "zmq_green.eventloop" and r.exc_info}
    assert {"callback", "timer", "periodic", "'handler'"} <= raised
    loop.remove_handler(pull)
    ctx.destroy(linger=0)


@pytest.mark.timeout(10)
def test_zmq_sockets_are_level_triggered(loop: IOLoop) -> None:
    ctx = zmq_green.Context()
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    for i in range(3):
        push.send(b"%d" % i)
    got: list[bytes] = []

    def on_read(sock: Any, events: int) -> None:
        assert events == loop.READ
        got.append(sock.recv())  # one per call: the loop calls again while ready
        if len(got) == 3:
            loop.update_handler(sock, 0)
            loop.add_callback(loop.stop)

    loop.add_handler(pull, on_read, loop.READ)
    run(loop)
    assert got == [b"0", b"1", b"2"]
    loop.remove_handler(pull)
    ctx.destroy(linger=0)


@pytest.mark.timeout(10)
def test_a_handler_removed_by_another_in_the_same_batch_is_not_called(loop: IOLoop) -> None:
    a1, b1 = socket.socketpair()
    a2, b2 = socket.socketpair()
    try:
        calls: list[Any] = []

        def handler(fd: Any, events: int) -> None:
            calls.append(fd)
            loop.remove_handler(a1)
            loop.remove_handler(a2)
            loop.add_callback(loop.stop)

        loop.add_handler(a1, handler, loop.READ)
        loop.add_handler(a2, handler, loop.READ)
        b1.send(b"x")
        b2.send(b"x")
        assert zmq_green.zmq_poll([(a1, zmq.POLLIN), (a2, zmq.POLLIN)], 5000)
        run(loop)
        assert len(calls) == 1
    finally:
        for s in (a1, b1, a2, b2):
            s.close()


@pytest.mark.timeout(20)
def test_a_terminated_context_is_reported_to_the_handler_once(
    loop: IOLoop, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = zmq_green.Context()
    pull = ctx.socket(zmq.PULL)
    events_seen: list[int] = []

    def handler(sock: Any, events: int) -> None:
        events_seen.append(events)
        with pytest.raises(zmq.ContextTerminated):
            sock.get(zmq.EVENTS)
        loop.add_callback(loop.stop)

    loop.add_handler(pull, handler, loop.READ)
    terminating = gevent.spawn(ctx.term)
    with caplog.at_level(logging.WARNING, logger="zmq_green.eventloop"):
        run(loop)
    assert events_seen == [loop.ERROR]
    loop.add_callback(loop.stop)
    run(loop)  # no longer polled: the loop runs on without reporting it again
    assert events_seen == [loop.ERROR]
    loop.remove_handler(pull)
    pull.close()
    terminating.get(timeout=10)


@pytest.mark.timeout(60)
def test_a_socket_closed_under_the_loop_is_reported_to_its_handler() -> None:
    # pyzmq's poll reports a closed zmq socket as fd 0 (its NULL handle), so what
    # the loop sees depends on fd 0: here a readable /dev/null, in a fresh process.
    script = """
        import zmq_green as zmq
        from zmq_green.eventloop import IOLoop, ZMQStream

        loop = IOLoop()
        ctx = zmq.Context()
        raw = ctx.socket(zmq.PULL)
        seen = []
        loop.add_handler(raw, lambda sock, events: seen.append(events), loop.READ)
        stream = ZMQStream(ctx.socket(zmq.PULL), loop)
        stream.on_recv(lambda msg: None)
        stream.set_close_callback(lambda: loop.add_callback(loop.stop))
        loop.add_callback(raw.close)
        loop.add_callback(stream.socket.close)  # behind the stream's back
        loop.call_later(20, loop.stop)
        loop.start()
        assert seen == [loop.ERROR], seen
        assert stream.closed()
        print("OK reported")
        """
    assert run_script(script).stdout.strip() == "OK reported"


@pytest.mark.timeout(10)
def test_run_sync_runs_a_greenlet_while_the_loop_serves(loop: IOLoop) -> None:
    ctx = zmq_green.Context()
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    reply_pull, reply_push = pair(ctx, zmq.PULL, zmq.PUSH)
    loop.add_handler(pull, lambda sock, events: reply_push.send(sock.recv() + b"!"), loop.READ)

    def main() -> bytes:
        push.send(b"ping")
        return reply_pull.recv()  # blocks this greenlet; the loop answers

    assert loop.run_sync(main, timeout=5) == b"ping!"
    assert loop.run_sync(lambda: gevent.spawn(lambda: 42)) == 42
    with pytest.raises(ZeroDivisionError):
        loop.run_sync(lambda: 1 / 0)
    with pytest.raises(TimeoutError):
        loop.run_sync(lambda: gevent.sleep(10), timeout=0.05)
    loop.remove_handler(pull)
    ctx.destroy(linger=0)


@pytest.mark.timeout(10)
def test_close_all_fds_closes_what_is_registered() -> None:
    ctx = zmq_green.Context()
    loop = IOLoop()
    sock = ctx.socket(zmq.PULL)
    r, w = os.pipe()
    left, right = socket.socketpair()
    for fd in (sock, r, left):
        loop.add_handler(fd, lambda fd, events: None, loop.READ)
    loop.close(all_fds=True)
    assert sock.closed and left.fileno() == -1
    with pytest.raises(OSError):
        os.fstat(r)
    loop.close()  # again: nothing to do
    loop.add_callback(lambda: None)  # ignored, as tornado does
    os.close(w)
    right.close()
    ctx.destroy(linger=0)


@pytest.mark.timeout(10)
def test_a_loop_dropped_without_close_leaves_no_fd_behind() -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        IOLoop(make_current=False)
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.timeout(10)
def test_periodic_callback_takes_a_timedelta_and_skips_missed_periods(loop: IOLoop) -> None:
    calls: list[float] = []
    periodic = PeriodicCallback(lambda: calls.append(loop.time()), datetime.timedelta(milliseconds=20))
    assert periodic.callback_time == pytest.approx(20)
    with pytest.raises(ValueError):
        PeriodicCallback(lambda: None, datetime.timedelta(0))

    def slow() -> None:
        gevent.sleep(0.1)  # holds the loop's greenlet for five periods

    def stop() -> None:
        periodic.stop()
        loop.stop()

    periodic.start()
    loop.call_later(0.01, slow)
    loop.call_later(0.2, stop)
    run(loop)
    # Ten periods, five of them missed during the slow call: the missed ones are
    # skipped (a late machine skips more), not run in a rush afterwards.
    assert 1 <= len(calls) <= 6
    assert not periodic.is_running()


@pytest.mark.timeout(60)
def test_works_under_monkey_patch_all() -> None:
    script = """
        from gevent import monkey
        monkey.patch_all()
        import threading
        import gevent
        import zmq_green as zmq
        from zmq_green.eventloop import IOLoop, PeriodicCallback, ZMQStream

        loop = IOLoop.current()
        # Greenlets and patched threads share the one OS thread's loop.
        assert gevent.spawn(IOLoop.current).get() is loop
        box = []
        t = threading.Thread(target=lambda: box.append(IOLoop.current()))
        t.start(); t.join()
        assert box == [loop], box

        ctx = zmq.Context()
        rep = ctx.socket(zmq.REP)
        rep.bind("tcp://127.0.0.1:*")
        server = ZMQStream(rep)
        server.on_recv(server.send_multipart)
        ticks = []
        done = []

        def tick():
            ticks.append(1)
            if done and len(ticks) >= 3:
                loop.stop()

        periodic = PeriodicCallback(tick, 5)
        periodic.start()

        def client():
            req = ctx.socket(zmq.REQ)
            req.connect(rep.last_endpoint)
            replies = []
            for i in range(50):
                req.send(b"%d" % i)
                replies.append(req.recv())
            req.close()
            # A patched thread is a greenlet: add_callback from it wakes the loop.
            threading.Thread(target=loop.add_callback, args=(done.append, True)).start()
            return replies

        g = gevent.spawn(client)
        loop.start()
        periodic.stop()
        assert g.get() == [b"%d" % i for i in range(50)]
        server.close()
        ctx.term()
        print("OK patched")
        """
    proc = run_script(script)
    assert proc.stdout.strip() == "OK patched"
    assert proc.stderr == ""


@pytest.mark.timeout(10)
def test_legacy_names() -> None:
    ioloop.install()  # nothing to do, kept for pyzmq code
    loop = IOLoop(make_current=False)
    loop.install()
    assert IOLoop.current() is loop
    IOLoop.clear_instance()
    assert IOLoop.current(instance=False) is None
    assert (loop.READ, loop.WRITE, loop.ERROR) == (zmq.POLLIN, zmq.POLLOUT, zmq.POLLERR)
    loop.close()


# -- coroutine functions as callbacks -----------------------------------------------


def nap_for(loop: Any) -> Callable[[float], Awaitable[None]]:
    """A sleep to await on *loop*: asyncio's on tornado's, a green one on zmq_green's."""
    if not isinstance(loop, IOLoop):
        return asyncio.sleep

    async def green_nap(seconds: float) -> None:
        gevent.sleep(seconds)  # a coroutine that blocks greenly

    return green_nap


@pytest.mark.timeout(10)
def test_coroutine_callbacks_run_to_their_end(
    make_loop: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    loop = make_loop()
    done: list[str] = []

    async def work(word: str) -> None:
        await asyncio.sleep(0)  # suspends: only a caller that drives the coroutine gets past
        done.append(word)
        if len(done) == 4:
            loop.stop()

    async def fail() -> None:
        await work("fail")
        raise ValueError("coroutine")

    loop.add_callback(work, "add_callback")
    loop.spawn_callback(work, word="spawn_callback")
    loop.add_callback(fail)
    loop.add_callback(lambda: 42)  # not awaitable: ignored
    loop.call_later(0.01, work, "call_later")
    with caplog.at_level(logging.ERROR):
        run(loop)
    assert sorted(done) == ["add_callback", "call_later", "fail", "spawn_callback"]
    raised = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert len(raised) == 1 and str(raised[0]) == "coroutine"


@pytest.mark.timeout(10)
def test_run_sync_runs_a_coroutine_function(make_loop: Callable[[], Any]) -> None:
    loop = make_loop()

    async def main() -> int:
        await asyncio.sleep(0)
        return 42

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ZeroDivisionError

    assert loop.run_sync(main) == 42
    with pytest.raises(ZeroDivisionError):
        loop.run_sync(fails)


@pytest.mark.timeout(10)
def test_a_coroutine_periodic_callback_never_overlaps_itself(make_loop: Callable[[], Any]) -> None:
    loop = make_loop()
    periodic_class = (
        PeriodicCallback
        if isinstance(loop, IOLoop)
        else pytest.importorskip("tornado.ioloop").PeriodicCallback
    )
    nap = nap_for(loop)
    running = [0]
    at_start: list[int] = []

    async def tick() -> None:
        running[0] += 1
        at_start.append(running[0])
        await nap(0.03)  # three periods
        running[0] -= 1
        if len(at_start) >= 3:
            periodic.stop()
            loop.stop()

    periodic = periodic_class(tick, 10)
    loop.add_callback(periodic.start)  # tornado's takes the current loop: the running one
    run(loop)
    assert at_start[:3] == [1, 1, 1]


@pytest.mark.timeout(10)
def test_a_coroutine_callback_blocks_only_its_own_greenlet(loop: IOLoop) -> None:
    released = gevent.event.Event()
    order: list[str] = []

    async def wait_greenly() -> None:
        released.wait()

    async def waiter() -> None:
        order.append("waiting")
        await wait_greenly()
        order.append("released")
        loop.stop()

    def release() -> None:
        order.append("the loop ran on")
        released.set()

    loop.add_callback(waiter)
    loop.call_later(0.01, release)
    run(loop)
    assert order == ["waiting", "the loop ran on", "released"]


@pytest.mark.timeout(10)
def test_a_coroutine_handler_runs_to_its_end_before_the_next_poll(loop: IOLoop) -> None:
    """Level-triggered: a handler that returned before reading would be called again at once.

    tornado never awaits a coroutine handler (it is dropped with a RuntimeWarning).
    """
    ctx = zmq_green.Context()
    pull, push = pair(ctx, zmq.PULL, zmq.PUSH)
    for i in range(3):
        push.send(b"%d" % i)
    assert pull.poll(5000)
    calls = [0]
    got: list[bytes] = []

    async def on_read(sock: Any, events: int) -> None:
        calls[0] += 1
        await asyncio.sleep(0)  # other greenlets run; the loop waits for this handler
        got.append(sock.recv(zmq.NOBLOCK))
        if len(got) == 3:
            loop.stop()

    loop.add_handler(pull, on_read, loop.READ)
    run(loop)
    assert got == [b"0", b"1", b"2"]
    assert calls[0] == 3
    loop.remove_handler(pull)
    ctx.destroy(linger=0)


@pytest.mark.timeout(10)
def test_awaiting_what_only_asyncio_can_finish_raises_in_the_coroutine(
    loop: IOLoop, caplog: pytest.LogCaptureFixture
) -> None:
    """No asyncio loop runs on the hub: such an await raises instead of waiting forever."""
    other = asyncio.new_event_loop()  # makes futures nobody here can resolve
    seen: list[str] = []

    async def catches() -> None:
        try:
            await other.create_future()
        except TypeError as e:
            seen.append(str(e))
        await asyncio.sleep(0)
        seen.append("went on")

    async def does_not_catch() -> None:
        try:
            await other.create_future()
        finally:
            seen.append("finally")

    async def sleeps() -> None:
        await asyncio.sleep(1)

    def stop_when_logged() -> None:
        if len([r for r in caplog.records if r.exc_info]) == 2:
            loop.stop()
        else:
            loop.call_later(0.001, stop_when_logged)

    for coroutine_function in (catches, does_not_catch, sleeps):
        loop.add_callback(coroutine_function)
    loop.add_callback(stop_when_logged)
    try:
        with caplog.at_level(logging.ERROR, logger="zmq_green.eventloop"):
            run(loop)
    finally:
        other.close()
    assert "no asyncio loop" in seen[0] and "Block greenly" in seen[0]
    assert sorted(seen[1:]) == ["finally", "went on"]
    raised = sorted(type(r.exc_info[1]).__name__ for r in caplog.records if r.exc_info)
    assert raised == ["RuntimeError", "TypeError"]  # asyncio's "no running event loop"


@pytest.mark.timeout(20)
def test_a_loop_iteration_looks_only_at_the_raw_fds_that_fired(
    loop: IOLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100 pipe handlers, one active: once the loop has blocked, each iteration's check
    looks at the fds that fired (this pipe, the loop's waker), not at all 100."""
    import zmq_green.poll

    checked: list[int] = []
    real = zmq_green.poll.zmq_poll

    def counting(items: Any, timeout: int = -1) -> Any:
        checked.append(len(items))
        return real(items, timeout)

    pipes = [os.pipe() for _ in range(100)]
    got: list[bytes] = []
    try:
        for r, _ in pipes:
            loop.add_handler(r, lambda fd, events: got.append(os.read(fd, 1)), IOLoop.READ)
        writer = pipes[50][1]

        def write_then_stop() -> None:
            monkeypatch.setattr(zmq_green.poll, "zmq_poll", counting)
            for i in range(20):
                os.write(writer, b"%d" % (i % 10))
                gevent.sleep(0.005)
            loop.add_callback(loop.stop)

        loop.call_later(0.05, lambda: gevent.spawn(write_then_stop))
        loop.start()
        assert got == [b"%d" % (i % 10) for i in range(20)]
        assert checked and max(checked) <= 2, checked
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)
