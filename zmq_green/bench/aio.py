"""Case bodies for ``zmq.asyncio``, and for pyzmq's ZMQStream on tornado.

The same measured loops as :mod:`zmq_green.bench.blocking`, with ``await``:
coroutines on one asyncio event loop instead of greenlets on the gevent hub.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
from collections.abc import Coroutine
from functools import partial
from time import perf_counter
from typing import Any, Callable

import zmq
import zmq.asyncio

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
from .load import client, client_figures

__all__ = ["ASYNCIO_BODIES", "TORNADO_BODIES", "serve_reqrep"]


def _sync(body: Callable[[int], Coroutine[Any, Any, Figures]]) -> Callable[[int], Figures]:
    return lambda n: asyncio.run(body(n))


async def _pump(push: Any, pull: Any, n: int, warm: int, msg: bytes, copy: bool = True) -> float:
    """Move *warm* messages from *push* to *pull*, then *n* more: seconds the *n* took."""
    warmed = asyncio.Event()

    async def send() -> float:
        send = push.send
        for _ in range(warm):
            await send(msg, 0, copy)
        await warmed.wait()
        t0 = perf_counter()
        for _ in range(n):
            await send(msg, 0, copy)
        return t0

    async def receive() -> float:
        recv = pull.recv
        for _ in range(warm):
            await recv(0, copy)
        warmed.set()
        for _ in range(n):
            await recv(0, copy)
        return perf_counter()

    t1, t0 = await asyncio.gather(receive(), send())
    return t1 - t0


async def _echo(sock: Any, count: int) -> None:
    recv, send = sock.recv, sock.send
    for _ in range(count):
        await send(await recv(0), 0)


async def _round_trips(sock: Any, warm: int, n: int) -> float:
    send, recv = sock.send, sock.recv
    for _ in range(warm):
        await send(MSG, 0)
        await recv(0)
    t0 = perf_counter()
    for _ in range(n):
        await send(MSG, 0)
        await recv(0)
    return perf_counter() - t0


async def stream(n: int, transport: str) -> Figures:
    """PUSH->PULL, 64-byte messages: msg/s."""
    pull, push = pair(zmq.asyncio.Context(), PULL, PUSH, transport)
    return figures(n / await _pump(push, pull, n, warmup(n), MSG))


async def stream_large(n: int) -> Figures:
    """PUSH->PULL over tcp, 1 MiB messages without copies: MB/s."""
    pull, push = pair(zmq.asyncio.Context(), PULL, PUSH, "tcp", hwm=LARGE_HWM)
    return figures(n * LARGE / await _pump(push, pull, n, warmup(n), b"x" * LARGE, copy=False) / 1e6)


async def reqrep(n: int) -> Figures:
    """REQ/REP over tcp, both ends on this loop: round trips/s, and CPU per round trip."""
    rep, req = pair(zmq.asyncio.Context(), REP, REQ, "tcp")
    warm = warmup(n)
    cpu = cpu_seconds()
    _, elapsed = await asyncio.gather(_echo(rep, warm + n), _round_trips(req, warm, n))
    return trip_figures(n, elapsed, cpu_seconds() - cpu, warm + n)


async def reqrep_2proc(n: int) -> Figures:
    """REQ here, REP in a second process, over ipc: round trips/s."""
    warm = warmup(n)
    with tempfile.TemporaryDirectory() as tmp:
        endpoint = f"ipc://{os.path.join(tmp, 'reqrep')}"
        server = spawn_server("asyncio", endpoint, warm + n)
        try:
            req = zmq.asyncio.Context().socket(REQ)
            req.linger = 0
            req.connect(endpoint)
            elapsed = await _round_trips(req, warm, n)
        finally:
            server.wait(10)
    return figures(n / elapsed)


def serve_reqrep(endpoint: str, count: int) -> None:
    """The server of ``reqrep-ipc-2proc``: echo *count* requests, then return."""

    ctx = zmq.asyncio.Context()

    async def serve() -> None:
        rep = ctx.socket(REP)
        rep.bind(endpoint)
        await _echo(rep, count)

    asyncio.run(serve())
    ctx.destroy(linger=5000)  # returns once the last reply is out: the process ends right after


async def fanin(n: int) -> Figures:
    """1,000 DEALERs, one task each, against one ROUTER echo: round trips/s."""
    ctx = zmq.asyncio.Context()
    ctx.set(MAX_SOCKETS, FANIN_CLIENTS + 16)
    router = ctx.socket(ROUTER)
    router.linger = 0
    endpoint = bind_tcp(router)
    rounds = fanin_rounds(n)
    arrived = 0
    all_in = asyncio.Event()

    async def serve() -> None:
        recv, send = router.recv_multipart, router.send_multipart
        for _ in range(FANIN_CLIENTS * (rounds + 1)):
            await send(await recv(0), 0)

    async def client() -> None:
        nonlocal arrived
        dealer = ctx.socket(DEALER)
        dealer.linger = 0
        dealer.connect(endpoint)
        send, recv = dealer.send, dealer.recv
        await send(MSG, 0)
        await recv(0)
        arrived += 1
        if arrived == FANIN_CLIENTS:
            all_in.set()
        await all_in.wait()
        for _ in range(rounds):
            await send(MSG, 0)
            await recv(0)

    async def start() -> float:
        await all_in.wait()
        return perf_counter()

    results: list[Any] = await asyncio.gather(serve(), start(), *(client() for _ in range(FANIN_CLIENTS)))
    return figures(FANIN_CLIENTS * rounds / (perf_counter() - results[1]))


async def _shared_rate(senders: int, per: int, warm: int) -> float:
    pull, push = pair(zmq.asyncio.Context(), PULL, PUSH, "inproc", hwm=SHARED_HWM)
    total = senders * per

    async def send() -> None:
        send = push.send
        for _ in range(per):
            await send(MSG, 0)

    async def receive() -> float:
        recv = pull.recv
        for _ in range(warm):
            await recv(0)
        t0 = perf_counter()
        for _ in range(total - warm):
            await recv(0)
        return perf_counter() - t0

    results: list[Any] = await asyncio.gather(receive(), *(send() for _ in range(senders)))
    elapsed: float = results[0]
    return (total - warm) / elapsed


async def shared(n: int) -> Figures:
    """100 tasks sending on one PUSH (HWM 10): msg/s; and one task sending them all."""
    per, warm = shared_sizes(n)
    many = await _shared_rate(SHARED_SENDERS, per, warm)
    solo = await _shared_rate(1, per * SHARED_SENDERS, warm)
    return figures(many, **{"1 sender msg/s": solo, "shared/1 sender": many / solo})


async def poller(n: int, sockets: int) -> Figures:
    """One poller on *sockets* PULL sockets, one of them active: a driver sends on it and
    waits for the poller's ack. The others have no peer."""
    ctx = zmq.asyncio.Context()
    room_for(ctx, sockets)
    pull, push = pair(ctx, PULL, PUSH, "inproc")
    ack_in, ack_out = pair(ctx, PULL, PUSH, "inproc")
    idle = idle_sockets(ctx, PULL, sockets - 1)
    poller = zmq.asyncio.Poller()
    for sock in [*idle[: len(idle) // 2], pull, *idle[len(idle) // 2 :]]:
        poller.register(sock, POLLIN)
    warm = warmup(n)

    async def poll() -> None:
        ack, wait = ack_out.send, poller.poll
        while True:
            for sock, _ in await wait():
                if not await sock.recv(0):
                    return  # the driver's end mark
                await ack(b"", 0)

    async def drive() -> float:
        recv = ack_in.recv
        trips = Trips(warm, n)
        try:
            for _ in trips:
                await push.send(MSG, 0)
                await recv(0)
        finally:
            await push.send(b"", 0)
        return trips.rate

    rate: float = (await asyncio.gather(poll(), drive()))[1]
    return figures(rate)


async def device(n: int) -> Figures:
    """PUSH -> tcp -> STREAMER device (libzmq's, in a thread) -> tcp -> PULL: msg/s."""
    ctx = zmq.asyncio.Context()
    front, push = pair(ctx, PULL, PUSH, "tcp")
    back, pull = pair(ctx, PUSH, PULL, "tcp")
    # A daemon thread, not the loop's executor: the device never returns.
    threading.Thread(target=zmq.device, args=(STREAMER, front, back), daemon=True).start()
    return figures(n / await _pump(push, pull, n, warmup(n), MSG))


async def idle(seconds: int) -> Figures:
    """1,000 pending recvs on 1,000 silent sockets: CPU seconds per 5 s."""
    ctx = zmq.asyncio.Context()
    ctx.set(MAX_SOCKETS, IDLE_SOCKETS + 16)
    pending = []
    for i in range(IDLE_SOCKETS):
        sock = ctx.socket(PULL)
        sock.linger = 0
        sock.bind(f"inproc://idle-{i}")
        pending.append(sock.recv())
    await asyncio.sleep(IDLE_SETTLE)
    cpu = time.process_time()
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu
    return figures(cpu * IDLE_WINDOW / seconds)


async def load(seconds: int, rate: int) -> Figures:
    """A ROUTER echo server on this loop for *seconds* of *rate* requests/s from the load
    client's process: CPU µs per request, and the latencies the client saw."""
    router = zmq.asyncio.Context().socket(ROUTER)
    router.linger = 0
    with client(bind_tcp(router), rate, seconds) as proc:
        await _echo_to_mark(router)  # the warm-up
        cpu = cpu_seconds()
        await _echo_to_mark(router)
        return client_figures(proc, cpu_seconds() - cpu)


async def _echo_to_mark(router: Any) -> None:
    """Echo the requests on *router* up to the client's next mark (an empty request), that one too."""
    recv, send = router.recv_multipart, router.send_multipart
    while True:
        request = await recv(0)
        await send(request, 0)
        if not request[-1]:
            return


def zmqstream_tornado(n: int, sockets: int = 1) -> Figures:
    """pyzmq's ZMQStream echo server on tornado's IOLoop, a zmq.asyncio REQ client on the same loop.

    With *sockets*, that many streams share the loop: the echo server's, and streams
    on sockets with no peer.
    """
    try:
        from zmq.eventloop.zmqstream import ZMQStream
    except ImportError:
        raise NotApplicable("needs tornado")

    async def run() -> float:
        ctx = zmq.Context()
        room_for(ctx, sockets)
        rep = ctx.socket(REP)
        rep.linger = 0
        endpoint = bind_tcp(rep)
        req = zmq.asyncio.Context().socket(REQ)
        req.linger = 0
        req.connect(endpoint)
        stream = ZMQStream(rep)  # on tornado's IOLoop for the running asyncio loop
        stream.on_recv(stream.send_multipart)
        for sock in idle_sockets(ctx, PAIR, sockets - 1):
            ZMQStream(sock).on_recv(_ignore)
        send, recv = req.send, req.recv
        trips = Trips(warmup(n), n)
        for _ in trips:
            await send(MSG, 0)
            await recv(0)
        return trips.rate

    return figures(asyncio.run(run()))


def _ignore(message: Any) -> None:
    """What the idle streams do with the messages they never get."""


ASYNCIO_BODIES: dict[str, Callable[[int], Figures]] = {
    "stream-inproc": _sync(partial(stream, transport="inproc")),
    "stream-tcp": _sync(partial(stream, transport="tcp")),
    "stream-large": _sync(stream_large),
    "reqrep-tcp": _sync(reqrep),
    "reqrep-ipc-2proc": _sync(reqrep_2proc),
    "fanin": _sync(fanin),
    "shared": _sync(shared),
    **{f"poller-{k}": _sync(partial(poller, sockets=k)) for k in SCALES},
    "device": _sync(device),
    "idle": _sync(idle),
    **{f"load-{rate}": _sync(partial(load, rate=rate)) for rate in LOADS},
}

TORNADO_BODIES: dict[str, Callable[[int], Figures]] = {
    "zmqstream": zmqstream_tornado,
    **{f"zmqstream-{k}": partial(zmqstream_tornado, sockets=k) for k in SCALES},
}
