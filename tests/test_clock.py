"""Every timeout lasts at least what was asked, measured from the call.

The hub's loop caches its clock and updates it once per iteration. A timer armed
after a stretch of CPU work, or of a call that blocked the thread, from that stale
clock fires early by the stretch. Each case runs the call right after such a
stretch and checks that it did not end before its timeout: a lower bound, which a
slow machine cannot break. Where pyzmq has the same call, the same body runs
against both.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import gevent
import pytest
import zmq

import zmq_green
from zmq_green.eventloop.ioloop import IOLoop

pytestmark = pytest.mark.timeout(30)

STRETCH = 0.3  # seconds of work during which the hub does not run


def busy() -> None:
    """Keep the CPU busy without letting the hub run."""
    end = time.monotonic() + STRETCH
    while time.monotonic() < end:
        pass


def blocked() -> None:
    """Block the thread (time.sleep is not patched here) without letting the hub run."""
    time.sleep(STRETCH)


STRETCHES = [busy, blocked]


def lasted(call: Callable[[], Any], stretch: Callable[[], None]) -> float:
    """Seconds *call* took when made right after *stretch*, from a hub that was up to date."""
    gevent.sleep(0.001)  # a full turn of the loop: its clock is fresh here
    stretch()
    start = time.monotonic()
    call()
    return time.monotonic() - start


@pytest.fixture
def quiet_pull(mod_ctx: Any) -> Any:
    """A bound PULL that nothing ever sends to."""
    pull = mod_ctx.socket(zmq.PULL)
    pull.linger = 0
    pull.bind("tcp://127.0.0.1:*")
    return pull


@pytest.mark.parametrize("stretch", STRETCHES)
def test_recv_rcvtimeo(quiet_pull: Any, stretch: Callable[[], None]) -> None:
    quiet_pull.rcvtimeo = 100

    def recv() -> None:
        with pytest.raises(zmq.Again):
            quiet_pull.recv()

    assert lasted(recv, stretch) >= 0.1


@pytest.mark.parametrize("stretch", STRETCHES)
def test_send_sndtimeo(mod_ctx: Any, stretch: Callable[[], None]) -> None:
    push = mod_ctx.socket(zmq.PUSH)
    push.linger = 0
    push.sndtimeo = 100
    push.bind("tcp://127.0.0.1:*")  # no peer: nothing can be sent

    def send() -> None:
        with pytest.raises(zmq.Again):
            push.send(b"x")

    assert lasted(send, stretch) >= 0.1


@pytest.mark.parametrize("stretch", STRETCHES)
def test_poller_poll(mod: Any, quiet_pull: Any, stretch: Callable[[], None]) -> None:
    poller = mod.Poller()
    poller.register(quiet_pull, zmq.POLLIN)
    assert lasted(lambda: poller.poll(50), stretch) >= 0.05


@pytest.mark.parametrize("stretch", STRETCHES)
def test_socket_poll(quiet_pull: Any, stretch: Callable[[], None]) -> None:
    assert lasted(lambda: quiet_pull.poll(50), stretch) >= 0.05


@pytest.mark.parametrize("stretch", STRETCHES)
def test_select(mod: Any, quiet_pull: Any, stretch: Callable[[], None]) -> None:
    assert lasted(lambda: mod.select([quiet_pull], [], [], 0.1), stretch) >= 0.1


@pytest.mark.parametrize("stretch", STRETCHES)
def test_tracker_wait(mod_ctx: Any, stretch: Callable[[], None]) -> None:
    push = mod_ctx.socket(zmq.PUSH)
    pull = mod_ctx.socket(zmq.PULL)
    push.linger = pull.linger = 0
    push.bind(f"inproc://tracked-{id(push)}")
    pull.connect(push.last_endpoint)
    # Nobody reads: the message stays in the pipe, and its tracker pending.
    tracker = push.send(b"x" * 100_000, copy=False, track=True)  # above zmq.COPY_THRESHOLD

    def wait() -> None:
        with pytest.raises(zmq.NotDone):
            tracker.wait(0.1)

    assert lasted(wait, stretch) >= 0.1


@pytest.mark.parametrize("stretch", STRETCHES)
def test_safety_timeout(ctx: zmq_green.Context, stretch: Callable[[], None]) -> None:
    """The safety net, too, is measured from the wait: it must not fire at once."""
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    pull.bind("tcp://127.0.0.1:*")
    pull.safety_timeout = 0.2
    pull.rcvtimeo = 150
    before = zmq_green.stats()["safety_wakeups"]

    def recv() -> None:
        with pytest.raises(zmq.Again):
            pull.recv()

    lasted(recv, stretch)
    assert zmq_green.stats()["safety_wakeups"] == before


@pytest.mark.parametrize("stretch", STRETCHES)
def test_native_thread_join(stretch: Callable[[], None]) -> None:
    from zmq_green._native import Completion

    never = Completion()
    assert lasted(lambda: never.wait(0.1), stretch) >= 0.1


@pytest.mark.parametrize("stretch", STRETCHES)
def test_ioloop_call_later(stretch: Callable[[], None]) -> None:
    loop = IOLoop()
    fired: list[float] = []

    def schedule() -> None:
        stretch()
        start = time.monotonic()
        loop.call_later(0.1, lambda: (fired.append(time.monotonic() - start), loop.stop()))

    try:
        loop.add_callback(schedule)
        loop.start()
    finally:
        loop.close()
    assert fired and fired[0] >= 0.1
