"""zmq_green.devices: pyzmq's device classes in a gevent program, and a green monitored_queue."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import gevent
import pytest
import zmq
import zmq.devices
from conftest import Ticker, outcome, pair, run_script, until

import zmq_green
import zmq_green.devices as devices
from zmq_green.device import NativeThread

# -- helpers -------------------------------------------------------------------


def streamer(dev: Any, ctx: Any) -> tuple[Any, Any]:
    """Bind *dev* as a PULL->PUSH streamer on random ports; (producer, consumer) of *ctx*."""
    in_port = dev.bind_in_to_random_port("tcp://127.0.0.1")
    out_port = dev.bind_out_to_random_port("tcp://127.0.0.1")
    producer = ctx.socket(zmq.PUSH)
    consumer = ctx.socket(zmq.PULL)
    producer.linger = consumer.linger = 0
    producer.connect(f"tcp://127.0.0.1:{in_port}")
    consumer.connect(f"tcp://127.0.0.1:{out_port}")
    return producer, consumer


def flows(producer: Any, consumer: Any, count: int = 5) -> None:
    for i in range(count):
        producer.send(b"%d" % i)
    assert [consumer.recv() for _ in range(count)] == [b"%d" % i for i in range(count)]


# -- the namespace ---------------------------------------------------------------


def test_every_class_of_zmq_devices_is_here_and_green_where_it_matters() -> None:
    assert set(zmq.devices.__all__) <= set(devices.__all__)
    for name in zmq.devices.__all__:
        ours = getattr(devices, name)
        assert ours is not getattr(zmq.devices, name), name
        if isinstance(ours, type):
            assert issubclass(ours, getattr(zmq.devices, name)), name
    assert devices.Device.context_factory == zmq_green.Context.instance
    assert devices.ThreadDevice.context_factory == zmq_green.Context.instance
    assert devices.ThreadDevice._launch_class is not threading.Thread
    assert issubclass(devices.ThreadDevice._launch_class, NativeThread)


# -- in the calling greenlet ---------------------------------------------------------


@pytest.mark.timeout(10)
def test_device_runs_in_its_greenlet_and_join_waits_greenly(ctx: zmq_green.Context) -> None:
    dev = devices.Device(zmq.STREAMER, zmq.PULL, zmq.PUSH)
    dev.context_factory = lambda: ctx
    producer, consumer = streamer(dev, ctx)
    joined = gevent.spawn(dev.join)  # before start: waits for the device to stop
    running = gevent.spawn(outcome, dev.start)
    ticker = Ticker()
    flows(producer, consumer)
    until(lambda: ticker.ticks >= 3)
    assert not joined.ready() and not dev.done
    running.kill()
    joined.get(timeout=5)
    ticker.stop()
    assert dev.done
    assert all(s.closed for s in dev._sockets)


@pytest.mark.timeout(10)
def test_device_join_with_a_timeout_returns_while_it_runs(ctx: zmq_green.Context) -> None:
    dev = devices.Device(zmq.STREAMER, zmq.PULL, zmq.PUSH)
    dev.context_factory = lambda: ctx
    streamer(dev, ctx)
    running = gevent.spawn(outcome, dev.start)
    start = time.monotonic()
    dev.join(0.1)
    assert 0.09 <= time.monotonic() - start < 2 and not dev.done
    running.kill()
    assert dev.done


@pytest.mark.timeout(10)
@pytest.mark.parametrize("cls", [devices.Proxy, devices.MonitoredQueue])
def test_proxy_and_monitored_queue_copy_to_their_monitor_socket(ctx: zmq_green.Context, cls: Any) -> None:
    dev = cls(zmq.PULL, zmq.PUSH, zmq.PUSH)
    dev.context_factory = lambda: ctx
    producer, consumer = streamer(dev, ctx)
    mon_port = dev.bind_mon_to_random_port("tcp://127.0.0.1")
    monitor = ctx.socket(zmq.PULL)
    monitor.linger = 0
    monitor.connect(f"tcp://127.0.0.1:{mon_port}")
    running = gevent.spawn(outcome, dev.start)
    flows(producer, consumer, 2)
    prefix = [b"in"] if cls is devices.MonitoredQueue else []
    assert [monitor.recv_multipart() for _ in range(2)] == [[*prefix, b"0"], [*prefix, b"1"]]
    running.kill()
    assert dev.done


@pytest.mark.timeout(10)
def test_proxy_steerable_answers_its_control_socket(ctx: zmq_green.Context) -> None:
    dev = devices.ProxySteerable(zmq.PULL, zmq.PUSH, zmq.PUB, zmq.PAIR)
    dev.context_factory = lambda: ctx
    producer, consumer = streamer(dev, ctx)
    ctrl_port = dev.bind_ctrl_to_random_port("tcp://127.0.0.1")
    control = ctx.socket(zmq.PAIR)
    control.linger = 0
    control.connect(f"tcp://127.0.0.1:{ctrl_port}")
    running = gevent.spawn(outcome, dev.start)
    flows(producer, consumer, 3)
    control.send(b"STATISTICS")
    stats = control.recv_multipart()
    assert int.from_bytes(stats[0], "little") == 3  # messages received on the frontend
    control.send(b"TERMINATE")
    assert control.recv() == b""
    assert running.get(timeout=5) is None
    assert dev.done


# -- in a real OS thread --------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "cls",
    [devices.ThreadDevice, devices.ThreadProxy, devices.ThreadProxySteerable, devices.ThreadMonitoredQueue],
)
def test_thread_devices_run_off_the_hub_and_end_when_the_context_terms(cls: Any) -> None:
    ctx = zmq_green.Context()
    if cls is devices.ThreadDevice:
        dev = cls(zmq.STREAMER, zmq.PULL, zmq.PUSH)
    elif cls is devices.ThreadProxySteerable:
        dev = cls(zmq.PULL, zmq.PUSH, zmq.PUB, zmq.PAIR)
        dev.bind_ctrl("inproc://ctrl")
    else:
        dev = cls(zmq.PULL, zmq.PUSH, zmq.PUB)
    dev.context_factory = lambda: ctx
    producer, consumer = streamer(dev, ctx)
    dev.start()
    assert isinstance(dev.launcher, NativeThread)
    ticker = Ticker()
    flows(producer, consumer)
    dev.join(0.05)  # green: the ticker keeps ticking
    assert dev.launcher.is_alive()
    producer.close()
    consumer.close()
    with gevent.Timeout(10):
        ctx.term()  # the device gets ETERM and closes its sockets
        dev.join()
    assert ticker.stop() >= 5
    assert not dev.launcher.is_alive() and dev.done


# -- in a child process ---------------------------------------------------------------


@pytest.mark.timeout(30)
def test_process_device_join_blocks_only_the_calling_greenlet(ctx: zmq_green.Context) -> None:
    dev = devices.ProcessDevice(zmq.STREAMER, zmq.PULL, zmq.PUSH)
    producer, consumer = streamer(dev, ctx)
    dev.start()
    try:
        flows(producer, consumer)
        ticker = Ticker()
        start = time.monotonic()
        dev.join(0.2)
        assert time.monotonic() - start >= 0.19
        assert dev.launcher.is_alive()
        assert ticker.ticks >= 1  # another greenlet ran while join waited
        dev.launcher.terminate()
        dev.join(10)
        assert not dev.launcher.is_alive()
        ticker.stop()
    finally:
        if dev.launcher.is_alive():
            dev.launcher.kill()


# -- monitored_queue ------------------------------------------------------------------


def monitored_routers(mod: Any, run: Callable[[Callable[[], Any]], Callable[[], Any]]) -> list[Any]:
    """ROUTER-ROUTER monitored queue: what the worker and the monitor get for one request."""
    ctx = mod.Context()
    ins, outs = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
    client, worker = ctx.socket(zmq.DEALER), ctx.socket(zmq.DEALER)
    client.identity, worker.identity = b"c", b"w"
    for s, address in ((ins, "clients"), (outs, "workers")):
        s.bind(f"inproc://{address}")
    client.connect("inproc://clients")
    worker.connect("inproc://workers")
    mon, monitor = pair(ctx, zmq.PUSH, zmq.PULL)

    def queue() -> Any:
        try:
            return mod.devices.monitored_queue(ins, outs, mon, b"in", b"out")
        finally:
            for s in (ins, outs, mon):
                s.close()

    result = run(queue)
    client.send_multipart([b"w", b"hi"])
    got = [worker.recv_multipart(), monitor.recv_multipart()]
    worker.send_multipart([b"c", b"back"])
    got += [client.recv_multipart(), monitor.recv_multipart()]
    for s in (client, worker, monitor):
        s.close()
    ctx.term()
    got.append(type(result()))
    return got


def in_a_thread(func: Callable[[], Any]) -> Callable[[], Any]:
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(outcome(func)), daemon=True)
    thread.start()
    return lambda: (thread.join(5), box[0])[1]


def in_a_greenlet(func: Callable[[], Any]) -> Callable[[], Any]:
    return gevent.spawn(outcome, func).get


@pytest.mark.timeout(20)
def test_monitored_queue_between_routers_behaves_as_pyzmqs() -> None:
    expected = [
        [b"c", b"hi"],
        [b"in", b"w", b"c", b"hi"],  # the ids swapped, as sent on
        [b"w", b"back"],
        [b"out", b"c", b"w", b"back"],
        zmq.ContextTerminated,
    ]
    assert monitored_routers(zmq, in_a_thread) == expected
    assert monitored_routers(zmq_green, in_a_greenlet) == expected


@pytest.mark.timeout(10)
def test_monitored_queue_blocks_only_the_caller_and_stops_when_killed(ctx: zmq_green.Context) -> None:
    ins, client = pair(ctx, zmq.ROUTER, zmq.REQ)
    outs, worker = pair(ctx, zmq.DEALER, zmq.REP)
    mon, monitor = pair(ctx, zmq.PUB, zmq.SUB)
    monitor.subscribe(b"")
    running = gevent.spawn(outcome, devices.monitored_queue, ins, outs, mon)
    ticker = Ticker()
    client.send(b"req")
    assert worker.recv() == b"req"
    worker.send(b"rep")
    assert client.recv() == b"rep"
    until(lambda: ticker.ticks >= 3)
    ticker.stop()
    assert not running.ready()
    running.kill()
    assert isinstance(running.value, gevent.GreenletExit)
    # Its sockets are free: used here directly.
    client.send(b"direct")
    assert ins.recv_multipart()[-1] == b"direct"


# -- after gevent.monkey.patch_all() --------------------------------------------------


@pytest.mark.timeout(60)
def test_devices_after_patch_all_run_in_real_threads_without_blocking_the_hub() -> None:
    script = """
        from gevent import monkey
        monkey.patch_all()
        import threading, time
        import gevent
        import zmq
        import zmq_green
        from zmq_green import devices

        native_id = monkey.get_original("threading", "get_native_id")
        main_thread = native_id()
        ctx = zmq_green.Context()
        seen = {}

        class Recording(devices.ThreadProxy):
            def run_device(self):
                seen["thread"] = native_id()
                super().run_device()

        ticks = 0
        def ticker():
            global ticks
            while True:
                gevent.sleep(0.005)
                ticks += 1
        gevent.spawn(ticker)

        def check(dev):
            dev.context_factory = lambda: ctx
            i = dev.bind_in_to_random_port("tcp://127.0.0.1")
            o = dev.bind_out_to_random_port("tcp://127.0.0.1")
            p, c = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
            p.linger = c.linger = 0
            p.connect(f"tcp://127.0.0.1:{i}")
            c.connect(f"tcp://127.0.0.1:{o}")
            return p, c

        threaded = Recording(zmq.PULL, zmq.PUSH, zmq.PUB)
        p1, c1 = check(threaded)
        threaded.start()
        foreground = devices.Device(zmq.STREAMER, zmq.PULL, zmq.PUSH)
        p2, c2 = check(foreground)
        g = gevent.spawn(foreground.start)
        for p, c in ((p1, c1), (p2, c2)):
            for n in range(100):
                p.send(b"%d" % n)
            assert [c.recv() for n in range(100)] == [b"%d" % n for n in range(100)]
        before = ticks
        threaded.join(0.2)
        assert ticks > before + 5, (ticks, before)
        g.kill()
        for s in (p1, c1, p2, c2):
            s.close()
        ctx.term()
        threaded.join(5)
        assert not threaded.launcher.is_alive() and foreground.done
        assert seen["thread"] != main_thread
        print("OK")
        """
    assert run_script(script).stdout.strip() == "OK"


@pytest.mark.timeout(10)
def test_an_error_in_a_device_thread_is_reported_on_stderr(
    ctx: zmq_green.Context, capfd: pytest.CaptureFixture[str]
) -> None:
    dev = devices.ThreadDevice(zmq.STREAMER, zmq.PULL, zmq.PUSH)
    dev.context_factory = lambda: ctx
    dev.bind_in("nonsense://address")
    dev.start()
    dev.join(5)
    assert not dev.launcher.is_alive() and dev.done
    assert isinstance(dev.launcher.exception, zmq.ZMQError)
    err = capfd.readouterr().err
    assert "Exception in device thread" in err and "Protocol not supported" in err
