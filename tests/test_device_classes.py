"""The classes of ``zmq_green.devices`` work in gevent programs, patched or not."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import gevent
import pytest
import zmq
import zmq.devices.proxydevice

import zmq_green
from zmq_green import devices

ROOT = Path(__file__).resolve().parent.parent


def test_devices_offers_every_class_of_zmq_devices() -> None:
    for name in (
        "Device",
        "ThreadDevice",
        "ProcessDevice",
        "Proxy",
        "ThreadProxy",
        "ProcessProxy",
        "ProxySteerable",
        "ThreadProxySteerable",
        "ProcessProxySteerable",
        "monitored_queue",
    ):
        assert hasattr(devices, name), name
    assert issubclass(devices.ThreadDevice, zmq.devices.ThreadDevice)
    assert issubclass(devices.ThreadProxy, zmq.devices.proxydevice.ProxyBase)


@pytest.mark.timeout(20)
def test_thread_proxy_moves_messages_while_greenlets_keep_running(no_rescues: None) -> None:
    dev = devices.ThreadProxy(zmq.PULL, zmq.PUSH, zmq.PUB)
    dev.bind_in("inproc://classes-in")
    dev.bind_out("inproc://classes-out")
    dev.bind_mon("inproc://classes-mon")
    dev.start()
    ctx = zmq_green.Context.instance()
    push, pull, mon = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL), ctx.socket(zmq.SUB)
    try:
        mon.subscribe(b"")
        push.connect("inproc://classes-in")
        pull.connect("inproc://classes-out")
        mon.connect("inproc://classes-mon")
        ticks = 0

        def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                gevent.sleep(0.001)

        ticking = gevent.spawn(ticker)
        # Send until the capture has a copy: its subscription travels asynchronously.
        sent: list[bytes] = []
        received: list[bytes] = []
        while not mon.poll(10):
            sent.append(b"%d" % len(sent))
            push.send(sent[-1])
            received.append(pull.recv())
        assert received == sent
        assert mon.recv() in sent
        assert ticks > 0
        ticking.kill()
    finally:
        for s in (push, pull, mon):
            s.close(linger=0)


SCRIPT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import threading, gevent, zmq
    import zmq_green
    from zmq_green import devices

    dev = devices.ThreadDevice(zmq.STREAMER, zmq.PULL, zmq.PUSH)
    dev.bind_in("inproc://patched-in")
    dev.bind_out("inproc://patched-out")
    dev.start()
    ctx = zmq_green.Context.instance()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    push.connect("inproc://patched-in")
    pull.connect("inproc://patched-out")
    ticks = [0]
    def ticker():
        while True:
            ticks[0] += 1
            gevent.sleep(0.001)
    t = gevent.spawn(ticker)
    for i in range(100):
        push.send(b"%d" % i)
        assert pull.recv() == b"%d" % i
    assert ticks[0] > 0, "the hub was blocked"
    print("moved 100, ticks", ticks[0] > 0, flush=True)
    """
)


@pytest.mark.timeout(60)
def test_thread_device_runs_in_a_real_thread_under_patch_all() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=50
    )
    assert done.returncode == 0, done.stderr
    assert "moved 100, ticks True" in done.stdout


@pytest.mark.timeout(20)
def test_monitored_queue_blocks_only_its_greenlet(ctx: zmq_green.Context, no_rescues: None) -> None:
    front, back, mon = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER), ctx.socket(zmq.PUB)
    front.bind("inproc://mq-front")
    back.bind("inproc://mq-back")
    mon.bind("inproc://mq-mon")
    req, rep, sub = ctx.socket(zmq.REQ), ctx.socket(zmq.REP), ctx.socket(zmq.SUB)
    sub.subscribe(b"")
    req.connect("inproc://mq-front")
    rep.connect("inproc://mq-back")
    sub.connect("inproc://mq-mon")
    queue = gevent.spawn(devices.monitored_queue, front, back, mon)
    try:

        def echo() -> None:
            rep.send(rep.recv())

        server = gevent.spawn(echo)
        req.send(b"ping")
        assert req.recv() == b"ping"
        server.get(timeout=5)
        assert sub.recv_multipart()[0] == b"in"
    finally:
        queue.kill()
    assert queue.dead
