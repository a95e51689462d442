"""Case bodies in blocking style, run by greenlets (zmq_green, ``zmq.green``) or OS threads.

One body serves three peers: a :class:`Green` or :class:`Threads` model says how
to run functions side by side, and which zmq module makes the sockets. The
measured loops are the same calls in the same order for all of them.
"""

from __future__ import annotations

import importlib
import os
import queue
import tempfile
import threading
import time
from functools import partial
from time import perf_counter
from typing import Any, Callable, Protocol

from .cases import (
    DEALER,
    FANIN_CLIENTS,
    IDLE_SETTLE,
    IDLE_SOCKETS,
    IDLE_WINDOW,
    LARGE,
    LARGE_HWM,
    LOADS,
    MAX_SOCKETS,
    MSG,
    PAIR,
    POLLIN,
    PULL,
    PUSH,
    REP,
    REQ,
    ROUTER,
    SCALES,
    SHARED_HWM,
    SHARED_SENDERS,
    STREAMER,
    Figures,
    NotApplicable,
    Trips,
    bind_tcp,
    cpu_seconds,
    fanin_rounds,
    figures,
    idle_sockets,
    pair,
    room_for,
    shared_sizes,
    spawn_server,
    trip_figures,
    warmup,
)
from .load import serve_load

__all__ = ["GREEN_BODIES", "THREAD_BODIES", "Green", "Model", "Threads", "serve_reqrep"]


class Model(Protocol):
    """How a peer runs functions side by side, and with which zmq module."""

    peer: str

    @property
    def zmq(self) -> Any: ...

    def gather(self, *funcs: Callable[[], Any]) -> list[Any]:
        """Run *funcs* concurrently; their results in order, or the first exception raised."""

    def background(self, func: Callable[..., Any], *args: Any) -> None:
        """Start *func* and never wait for it (it may block until the process ends)."""

    def event(self) -> Any:
        """A new event (``set()``, ``wait()``) for this model's concurrency."""

    def barrier(self, parties: int) -> Callable[[], None]:
        """A wait() that returns once *parties* callers are in it."""

    def sleep(self, seconds: float) -> None:
        """Sleep, letting the others run."""

    def counters(self) -> dict[str, int]:
        """Wake-up counters that only grow, by name: what ``idle`` reports the growth of."""


class Green:
    """Greenlets on the gevent hub; sockets from *module* (``zmq_green`` or ``zmq.green``)."""

    def __init__(self, module: str) -> None:
        self.peer = module
        self._module = module

    @property
    def zmq(self) -> Any:
        # Imported on first use: only the worker of this peer loads it.
        return importlib.import_module(self._module)

    def gather(self, *funcs: Callable[[], Any]) -> list[Any]:
        import gevent
        from gevent.queue import Queue

        done: Queue = Queue()
        greenlets = [gevent.spawn(_report, done, i, func) for i, func in enumerate(funcs)]
        return _collect(done, len(funcs), lambda: gevent.killall(greenlets, block=False))

    def background(self, func: Callable[..., Any], *args: Any) -> None:
        import gevent

        gevent.spawn(func, *args)

    def event(self) -> Any:
        from gevent.event import Event

        return Event()

    def barrier(self, parties: int) -> Callable[[], None]:
        from gevent.event import Event

        arrived = [0]
        everyone = Event()

        def wait() -> None:
            arrived[0] += 1
            if arrived[0] == parties:
                everyone.set()
            everyone.wait()

        return wait

    def sleep(self, seconds: float) -> None:
        import gevent

        gevent.sleep(seconds)

    def counters(self) -> dict[str, int]:
        from gevent import get_hub

        # Every turn of the hub's loop is one wake-up of the process.
        counters = {"hub wake-ups": get_hub().loop.iteration}
        stats: Callable[[], dict[str, int]] | None = getattr(self.zmq, "stats", None)
        if stats is not None:
            # zmq_green: each wake-up of a waiting greenlet ends in a new wait.
            now = stats()
            counters.update({"greenlet wake-ups": now["waits"], "rescues": now["rescues"]})
        return counters


class Threads:
    """OS threads with plain pyzmq, one socket per thread."""

    peer = "threads"

    @property
    def zmq(self) -> Any:
        import zmq

        return zmq

    def gather(self, *funcs: Callable[[], Any]) -> list[Any]:
        done: queue.Queue[tuple[int, Any, BaseException | None]] = queue.Queue()
        for i, func in enumerate(funcs):
            threading.Thread(target=_report, args=(done, i, func), daemon=True).start()
        # Threads cannot be killed: on failure the ones left end with the process.
        return _collect(done, len(funcs), lambda: None)

    def background(self, func: Callable[..., Any], *args: Any) -> None:
        threading.Thread(target=func, args=args, daemon=True).start()

    def event(self) -> Any:
        return threading.Event()

    def barrier(self, parties: int) -> Callable[[], None]:
        return threading.Barrier(parties).wait  # type: ignore[return-value]

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def counters(self) -> dict[str, int]:
        return {}


def _report(done: Any, i: int, func: Callable[[], Any]) -> None:
    try:
        done.put((i, func(), None))
    except BaseException as e:  # reported, so that gather can raise it
        done.put((i, None, e))


def _collect(done: Any, n: int, stop_others: Callable[[], None]) -> list[Any]:
    results: list[Any] = [None] * n
    for _ in range(n):
        i, value, error = done.get()
        if error is not None:
            stop_others()
            raise error
        results[i] = value
    return results


# -- the measured loops ---------------------------------------------------------------


def _pump(m: Model, push: Any, pull: Any, n: int, warm: int, msg: bytes, copy: bool = True) -> float:
    """Move *warm* messages from *push* to *pull*, then *n* more: seconds the *n* took.

    The clock runs from the first send of the *n* to the last receive, so that
    messages queued during the warm-up do not flatter anyone.
    """
    warmed = m.event()

    def send() -> float:
        send = push.send
        for _ in range(warm):
            send(msg, 0, copy)
        warmed.wait()
        t0 = perf_counter()
        for _ in range(n):
            send(msg, 0, copy)
        return t0

    def receive() -> float:
        recv = pull.recv
        for _ in range(warm):
            recv(0, copy)
        warmed.set()
        for _ in range(n):
            recv(0, copy)
        return perf_counter()

    t1, t0 = m.gather(receive, send)
    return float(t1 - t0)


def _echo(sock: Any, count: int) -> None:
    recv, send = sock.recv, sock.send
    for _ in range(count):
        send(recv(0), 0)


def _round_trips(sock: Any, warm: int, n: int) -> float:
    """*warm* + *n* request/reply round trips on *sock*; seconds the last *n* took."""
    send, recv = sock.send, sock.recv
    for _ in range(warm):
        send(MSG, 0)
        recv(0)
    t0 = perf_counter()
    for _ in range(n):
        send(MSG, 0)
        recv(0)
    return perf_counter() - t0


# -- the cases ------------------------------------------------------------------------


def stream(m: Model, n: int, transport: str) -> Figures:
    """PUSH->PULL, 64-byte messages: msg/s."""
    pull, push = pair(m.zmq.Context(), PULL, PUSH, transport)
    return figures(n / _pump(m, push, pull, n, warmup(n), MSG))


def stream_large(m: Model, n: int) -> Figures:
    """PUSH->PULL over tcp, 1 MiB messages without copies: MB/s."""
    pull, push = pair(m.zmq.Context(), PULL, PUSH, "tcp", hwm=LARGE_HWM)
    elapsed = _pump(m, push, pull, n, warmup(n), b"x" * LARGE, copy=False)
    return figures(n * LARGE / elapsed / 1e6)


def reqrep(m: Model, n: int) -> Figures:
    """REQ/REP over tcp, both ends in this process: round trips/s, and CPU per round trip."""
    rep, req = pair(m.zmq.Context(), REP, REQ, "tcp")
    warm = warmup(n)
    cpu = cpu_seconds()
    elapsed: float = m.gather(partial(_echo, rep, warm + n), partial(_round_trips, req, warm, n))[1]
    return trip_figures(n, elapsed, cpu_seconds() - cpu, warm + n)


def reqrep_2proc(m: Model, n: int) -> Figures:
    """REQ here, REP in a second process, over ipc: round trips/s."""
    warm = warmup(n)
    with tempfile.TemporaryDirectory() as tmp:
        endpoint = f"ipc://{os.path.join(tmp, 'reqrep')}"
        server = spawn_server(m.peer, endpoint, warm + n)
        try:
            req = m.zmq.Context().socket(REQ)
            req.linger = 0
            req.connect(endpoint)  # connecting before the server binds is fine: zmq retries
            elapsed = _round_trips(req, warm, n)
        finally:
            server.wait(10)
    return figures(n / elapsed)


def serve_reqrep(m: Model, endpoint: str, count: int) -> None:
    """The server of ``reqrep-ipc-2proc``: echo *count* requests, then return."""
    ctx = m.zmq.Context()
    rep = ctx.socket(REP)
    rep.bind(endpoint)
    _echo(rep, count)
    ctx.destroy(linger=5000)  # returns once the last reply is out: the process ends right after


def fanin(m: Model, n: int) -> Figures:
    """1,000 DEALERs, each in its own greenlet or thread, against one ROUTER echo: round trips/s."""
    ctx = m.zmq.Context()
    ctx.set(MAX_SOCKETS, FANIN_CLIENTS + 16)
    router = ctx.socket(ROUTER)
    router.linger = 0
    endpoint = bind_tcp(router)
    rounds = fanin_rounds(n)
    all_in = m.barrier(FANIN_CLIENTS + 1)

    def serve() -> None:
        recv, send = router.recv_multipart, router.send_multipart
        for _ in range(FANIN_CLIENTS * (rounds + 1)):
            send(recv(0), 0)

    def client() -> None:
        dealer = ctx.socket(DEALER)
        dealer.linger = 0
        dealer.connect(endpoint)
        send, recv = dealer.send, dealer.recv
        send(MSG, 0)  # warm-up: the connection is up once this returns
        recv(0)
        all_in()
        for _ in range(rounds):
            send(MSG, 0)
            recv(0)

    def start() -> float:
        all_in()
        return perf_counter()

    t0 = m.gather(serve, start, *[client] * FANIN_CLIENTS)[1]
    return figures(FANIN_CLIENTS * rounds / (perf_counter() - t0))


def _shared_rate(m: Model, senders: int, per: int, warm: int) -> float:
    pull, push = pair(m.zmq.Context(), PULL, PUSH, "inproc", hwm=SHARED_HWM)
    total = senders * per

    def send() -> None:
        send = push.send
        for _ in range(per):
            send(MSG, 0)

    def receive() -> float:
        recv = pull.recv
        for _ in range(warm):
            recv(0)
        t0 = perf_counter()
        for _ in range(total - warm):
            recv(0)
        return perf_counter() - t0

    elapsed: float = m.gather(receive, *[send] * senders)[0]
    return (total - warm) / elapsed


def shared(m: Model, n: int) -> Figures:
    """100 greenlets sending on one PUSH (HWM 10): msg/s; and one greenlet sending them all."""
    per, warm = shared_sizes(n)
    many = _shared_rate(m, SHARED_SENDERS, per, warm)
    solo = _shared_rate(m, 1, per * SHARED_SENDERS, warm)
    return figures(many, **{"1 sender msg/s": solo, "shared/1 sender": many / solo})


def poller(m: Model, n: int, sockets: int) -> Figures:
    """One poller on *sockets* PULL sockets, one of them active: a driver sends on it and
    waits for the poller's ack. The others have no peer."""
    ctx = m.zmq.Context()
    room_for(ctx, sockets)
    pull, push = pair(ctx, PULL, PUSH, "inproc")
    ack_in, ack_out = pair(ctx, PULL, PUSH, "inproc")
    idle = idle_sockets(ctx, PULL, sockets - 1)
    poller = m.zmq.Poller()
    for sock in [*idle[: len(idle) // 2], pull, *idle[len(idle) // 2 :]]:
        poller.register(sock, POLLIN)
    warm = warmup(n)

    def poll() -> None:
        ack, wait = ack_out.send, poller.poll
        while True:
            for sock, _ in wait():
                if not sock.recv(0):
                    return  # the driver's end mark
                ack(b"", 0)

    def drive() -> float:
        send, recv = push.send, ack_in.recv
        trips = Trips(warm, n)
        try:
            for _ in trips:
                send(MSG, 0)
                recv(0)
        finally:
            send(b"", 0)
        return trips.rate

    rate: float = m.gather(poll, drive)[1]
    return figures(rate)


def device(m: Model, n: int) -> Figures:
    """PUSH -> tcp -> STREAMER device -> tcp -> PULL: msg/s."""
    ctx = m.zmq.Context()
    front, push = pair(ctx, PULL, PUSH, "tcp")
    back, pull = pair(ctx, PUSH, PULL, "tcp")
    m.background(m.zmq.device, STREAMER, front, back)  # runs until the process ends
    return figures(n / _pump(m, push, pull, n, warmup(n), MSG))


def zmqstream(m: Model, n: int, sockets: int = 1) -> Figures:
    """ZMQStream echo server on the module's IOLoop, REQ client in a greenlet: round trips/s.

    With *sockets*, that many streams share the loop: the echo server's, and streams
    on sockets with no peer.
    """
    try:
        ioloop = importlib.import_module(f"{m.peer}.eventloop.ioloop")
        zmqstream = importlib.import_module(f"{m.peer}.eventloop.zmqstream")
    except ImportError as e:
        raise NotApplicable(f"no {e.name or e}")
    loop = ioloop.IOLoop.current()
    ctx = m.zmq.Context()
    room_for(ctx, sockets)
    rep, req = pair(ctx, REP, REQ, "tcp")
    stream = zmqstream.ZMQStream(rep, loop)
    stream.on_recv(stream.send_multipart)
    for sock in idle_sockets(ctx, PAIR, sockets - 1):
        zmqstream.ZMQStream(sock, loop).on_recv(_ignore)

    def client() -> float:
        send, recv = req.send, req.recv
        trips = Trips(warmup(n), n)
        try:
            for _ in trips:
                send(MSG, 0)
                recv(0)
        finally:
            loop.add_callback(loop.stop)
        return trips.rate

    rate: float = m.gather(client, loop.start)[0]
    return figures(rate)


def _ignore(message: Any) -> None:
    """What the idle streams do with the messages they never get."""


def idle(m: Model, seconds: int) -> Figures:
    """1,000 receivers blocked on 1,000 silent sockets: CPU seconds per 5 s, and wake-ups.

    The hub's own timer for the window's end counts as one hub wake-up.
    """
    ctx = m.zmq.Context()
    ctx.set(MAX_SOCKETS, IDLE_SOCKETS + 16)
    for i in range(IDLE_SOCKETS):
        sock = ctx.socket(PULL)
        sock.linger = 0
        sock.bind(f"inproc://idle-{i}")
        m.background(sock.recv)
    m.sleep(IDLE_SETTLE)
    before = m.counters()
    cpu = time.process_time()
    m.sleep(seconds)
    cpu = time.process_time() - cpu
    after = m.counters()
    return figures(cpu * IDLE_WINDOW / seconds, **{key: after[key] - before[key] for key in before})


def load(m: Model, seconds: int, rate: int) -> Figures:
    """A ROUTER echo server in this thread (or greenlet) for *seconds* of *rate* requests/s
    from the load client's process: CPU µs per request, and the latencies the client saw."""
    router = m.zmq.Context().socket(ROUTER)
    router.linger = 0
    return serve_load(router, _echo_to_mark, rate, seconds)


def _echo_to_mark(router: Any) -> None:
    """Echo the requests on *router* up to the client's next mark (an empty request), that one too."""
    recv, send = router.recv_multipart, router.send_multipart
    while True:
        request = recv(0)
        send(request, 0)
        if not request[-1]:
            return


GREEN_BODIES: dict[str, Callable[[Any, int], Figures]] = {
    "stream-inproc": partial(stream, transport="inproc"),
    "stream-tcp": partial(stream, transport="tcp"),
    "stream-large": stream_large,
    "reqrep-tcp": reqrep,
    "reqrep-ipc-2proc": reqrep_2proc,
    "fanin": fanin,
    "shared": shared,
    **{f"poller-{k}": partial(poller, sockets=k) for k in SCALES},
    "device": device,
    "zmqstream": zmqstream,
    **{f"zmqstream-{k}": partial(zmqstream, sockets=k) for k in SCALES},
    "idle": idle,
    **{f"load-{rate}": partial(load, rate=rate) for rate in LOADS},
}

#: Cases OS threads do not run, and why.
THREADS_CANNOT = {
    "shared": "not thread-safe",
    "zmqstream": "needs an event loop",
    **{f"zmqstream-{k}": "needs an event loop" for k in SCALES},
}

THREAD_BODIES = {case: body for case, body in GREEN_BODIES.items() if case not in THREADS_CANNOT}
