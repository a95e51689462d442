"""The cases: what each measures, in which unit, at which size; and what their bodies share.

The bodies live with each peer's way of running concurrent code (``blocking`` for
greenlets and OS threads, ``aio`` for asyncio and tornado, ``raw`` for the
one-thread loop). They all use the helpers and constants below, so that every
peer sends the same messages through the same kind of sockets.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from time import perf_counter
from typing import Any

import zmq

__all__ = [
    "CASES",
    "CPU_PER_TRIP",
    "LOADS",
    "SCALING",
    "Case",
    "Figures",
    "NotApplicable",
    "Trips",
    "cpu_seconds",
    "figures",
    "pair",
    "trip_figures",
    "warmup",
]

#: The scaling families: ``family-N`` for N in SCALES.
SCALING = ("poller", "zmqstream")

#: What a case body returns: ``value`` (the case's figure) and optional ``extra`` figures.
Figures = dict[str, Any]

# Plain ints: flag and type arguments cost microseconds as enum members.
PUSH, PULL, REQ, REP, PAIR = int(zmq.PUSH), int(zmq.PULL), int(zmq.REQ), int(zmq.REP), int(zmq.PAIR)
DEALER, ROUTER = int(zmq.DEALER), int(zmq.ROUTER)
DONTWAIT = int(zmq.DONTWAIT)
POLLIN, POLLOUT = int(zmq.POLLIN), int(zmq.POLLOUT)
STREAMER = int(zmq.STREAMER)
SNDHWM, RCVHWM, LINGER = int(zmq.SNDHWM), int(zmq.RCVHWM), int(zmq.LINGER)
MAX_SOCKETS = int(zmq.MAX_SOCKETS)

MSG = b"x" * 64
LARGE = 1 << 20
#: Both sides of ``stream-large``: bounds the memory a fast sender can queue (16 MiB each).
LARGE_HWM = 16
FANIN_CLIENTS = 1000
SHARED_SENDERS = 100
SHARED_HWM = 10
#: The registered sockets of the scaling cases (``poller-N``, ``zmqstream-N``): one
#: is active, the others idle. ``--quick`` stops at 1,000.
SCALES = (1, 100, 1_000, 10_000)
QUICK_SCALE = 1_000
#: A scaling run stops after this many seconds of measuring (and a fifth of it warming up)
#: and reports the rate of the round trips it made: a peer whose poll costs O(N) would
#: otherwise take minutes at 10,000 sockets, and be reported as hung.
SCALING_BUDGET = 10.0
IDLE_SOCKETS = 1000
#: ``idle`` reports CPU seconds per this many seconds, whatever it measured.
IDLE_WINDOW = 5.0
#: Time given to the idle waiters to block before the CPU clock starts.
IDLE_SETTLE = 0.5
#: The offered loads of the ``load-R`` cases, requests/s. ``--quick`` stops at 5,000.
LOADS = (1_000, 5_000, 20_000)
QUICK_LOAD = 5_000


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    ``size`` is the count a full run measures (messages, round trips, or seconds
    for ``idle``); ``quick_size`` the one ``--quick`` measures.
    """

    id: str
    unit: str
    size: int
    quick_size: int
    what: str
    lower_is_better: bool = False
    #: Whether ``--quick`` runs it by default.
    quick: bool = True

    @property
    def sockets(self) -> int:
        """The registered sockets of a scaling case (``poller-100``: 100); 0 for the others."""
        return self._number(SCALING)

    @property
    def rate(self) -> int:
        """The offered requests/s of a load case (``load-5000``: 5,000); 0 for the others."""
        return self._number(("load",))

    def _number(self, families: tuple[str, ...]) -> int:
        family, _, number = self.id.rpartition("-")
        return int(number) if family in families and number.isdigit() else 0


CASES: dict[str, Case] = {
    case.id: case
    for case in (
        Case(
            "stream-inproc",
            "msg/s",
            200_000,
            30_000,
            "PUSH->PULL over inproc, 64 B, one sender and one receiver",
        ),
        Case("stream-tcp", "msg/s", 200_000, 30_000, "PUSH->PULL over tcp, 64 B"),
        Case("stream-large", "MB/s", 2_000, 300, "PUSH->PULL over tcp, 1 MiB messages, copy=False"),
        Case("reqrep-tcp", "round trips/s", 20_000, 3_000, "REQ/REP over tcp in one process"),
        Case(
            "reqrep-ipc-2proc", "round trips/s", 20_000, 3_000, "REQ/REP over ipc, server in a second process"
        ),
        Case("fanin", "round trips/s", 20_000, 4_000, "1,000 DEALER clients, one ROUTER echo server, tcp"),
        Case("shared", "msg/s", 100_000, 20_000, "100 senders sharing one PUSH (SNDHWM 10), inproc"),
        *(
            Case(
                f"poller-{n}",
                "round trips/s",
                10_000,
                2_000,
                f"one poller on {n:,} sockets, one of them active",
                quick=n <= QUICK_SCALE,
            )
            for n in SCALES
        ),
        Case("device", "msg/s", 100_000, 20_000, "STREAMER device between two tcp endpoints"),
        Case(
            "zmqstream", "round trips/s", 10_000, 2_000, "ZMQStream echo server, REQ client in the same loop"
        ),
        *(
            Case(
                f"zmqstream-{n}",
                "round trips/s",
                10_000,
                2_000,
                f"{n:,} ZMQStreams on one loop, one of them an echo server (REQ client, tcp)",
                quick=n <= QUICK_SCALE,
            )
            for n in SCALES
        ),
        Case("idle", "CPU s/5 s", 5, 2, "1,000 receivers blocked on 1,000 sockets", lower_is_better=True),
        *(
            Case(
                f"load-{rate}",
                "CPU µs/req",
                4,
                2,
                f"ROUTER echo server, {rate:,} requests/s offered by an open-loop DEALER in another process, tcp",
                lower_is_better=True,
                quick=rate <= QUICK_LOAD,
            )
            for rate in LOADS
        ),
    )
}


def room_for(ctx: Any, sockets: int) -> None:
    """Let *ctx* (and the process) have *sockets* sockets, and a few more.

    libzmq's ``MAX_SOCKETS`` is 1,023 by default, and each socket holds a file
    descriptor for its mailbox: the open-files limit is raised to what the hard
    limit allows.
    """
    ctx.set(MAX_SOCKETS, sockets + 64)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < sockets + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def idle_sockets(ctx: Any, kind: int, count: int) -> list[Any]:
    """*count* sockets of *kind* with no peer: registered, they never become ready."""
    socks = [ctx.socket(kind) for _ in range(count)]
    for sock in socks:
        sock.setsockopt(LINGER, 0)
    return socks


class NotApplicable(Exception):
    """Raised by a case body when its peer lacks the feature the case needs."""


#: The extra of ``reqrep-tcp``: the process's CPU µs per round trip, both ends and every
#: thread (libzmq's too), warm-up included. Beside other work (``--contend``) the process
#: gets a share of the CPUs, and its round trips/s follow this cost.
CPU_PER_TRIP = "CPU us/rt"


def figures(value: float, **extra: float) -> Figures:
    """What a case body returns: its figure, and any extra figures by name."""
    return {"value": value, "extra": extra}


def trip_figures(measured: int, elapsed: float, cpu: float, trips: int) -> Figures:
    """``reqrep-tcp``'s figures: *measured* round trips in *elapsed* seconds, and the
    process's *cpu* seconds over all its *trips*, warm-up included (:data:`CPU_PER_TRIP`)."""
    return figures(measured / elapsed, **{CPU_PER_TRIP: cpu / trips * 1e6})


def warmup(n: int) -> int:
    """Messages or round trips run before the clock starts (connections up, caches warm)."""
    return max(1, min(1000, n // 20))


class Trips:
    """The round trips of a scaling run: iterate to make one per step, then read :attr:`rate`.

    *warm* steps first, then up to *n* timed ones; each phase is cut short after its share
    of :data:`SCALING_BUDGET`. Sync and async bodies loop over it alike.
    """

    def __init__(self, warm: int, n: int) -> None:
        self.warm, self.n = warm, n
        self.rate = 0.0

    def __iter__(self) -> Iterator[None]:
        deadline = perf_counter() + SCALING_BUDGET / 5
        for _ in range(self.warm):
            yield
            if perf_counter() > deadline:
                break
        t0 = perf_counter()
        deadline = t0 + SCALING_BUDGET
        done = 0
        while done < self.n:
            yield
            done += 1
            if perf_counter() > deadline:
                break
        self.rate = done / (perf_counter() - t0)


_inproc_names = count()


def pair(
    ctx: Any, bind_type: int, connect_type: int, transport: str, hwm: int | None = None
) -> tuple[Any, Any]:
    """Two connected sockets of *ctx*: the first binds, the second connects.

    *transport* is ``inproc`` or ``tcp`` (loopback, random port). With *hwm*, both
    sockets get it as SNDHWM and RCVHWM.
    """
    bound = ctx.socket(bind_type)
    connected = ctx.socket(connect_type)
    for sock in (bound, connected):
        sock.setsockopt(LINGER, 0)
        if hwm is not None:
            sock.setsockopt(SNDHWM, hwm)
            sock.setsockopt(RCVHWM, hwm)
    if transport == "inproc":
        endpoint = f"inproc://bench-{next(_inproc_names)}"
        bound.bind(endpoint)
    else:
        endpoint = bind_tcp(bound)
    connected.connect(endpoint)
    return bound, connected


def bind_tcp(sock: Any) -> str:
    """Bind *sock* to a random loopback tcp port; the endpoint to connect to."""
    sock.bind("tcp://127.0.0.1:*")
    endpoint: str = sock.last_endpoint.decode()
    return endpoint


def shared_sizes(n: int) -> tuple[int, int]:
    """``shared``: messages per sender and warm-up messages, for about *n* messages in all."""
    per = max(1, n // SHARED_SENDERS)
    return per, max(1, per * SHARED_SENDERS // 10)


def fanin_rounds(n: int) -> int:
    """``fanin``: round trips per client for about *n* round trips in all."""
    return max(1, n // FANIN_CLIENTS)


def cpu_seconds() -> float:
    """The CPU seconds this process has used, user and system, all its threads (libzmq's too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker(*args: str) -> list[str]:
    """The command line of a :mod:`._worker` process with *args*."""
    return [sys.executable, "-m", "zmq_green.bench._worker", *args]


def spawn_server(peer: str, endpoint: str, count: int) -> subprocess.Popen[bytes]:
    """Start the REP echo server of ``reqrep-ipc-2proc`` in a second process, run by *peer*."""
    return subprocess.Popen(_worker("--serve", peer, endpoint, str(count)))


def spawn_client(endpoint: str, rate: int, seconds: int) -> subprocess.Popen[str]:
    """Start the client of the ``load-R`` cases in another process; its report comes on its stdout."""
    return subprocess.Popen(
        _worker("--load-client", endpoint, str(rate), str(seconds)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
