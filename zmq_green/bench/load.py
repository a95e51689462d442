"""The ``load-R`` cases: what a server costs at a fixed offered load, and the client offering it.

The server is an echo ROUTER in the measured peer's style (``blocking.load``,
``aio.load``). The client runs in its own process, plain pyzmq in one thread: it sends
request *i* at ``t0 + i/R`` whatever the replies do (open loop) and takes the replies as
they come. A request carries its sequence number and its scheduled send time, and its
latency runs from that scheduled time to its reply: a server that stalls is charged for
every request it delayed, not only for the one it was answering (no coordinated omission).

The client tells the server where the measured window begins and ends with a *mark*,
an empty request the server echoes like any other; the server reads its CPU time at
each. The client's report (a JSON line on its stdout) and the server's CPU seconds make
the case's figures: CPU µs per request, p50 and p99 latency.
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import struct
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from select import select
from time import perf_counter
from typing import Any

import zmq

from .cases import (
    DEALER,
    LINGER,
    POLLIN,
    RCVHWM,
    SNDHWM,
    Figures,
    bind_tcp,
    cpu_seconds,
    figures,
    spawn_client,
)

__all__ = [
    "Exchange",
    "client",
    "client_figures",
    "client_report",
    "exchange",
    "percentile",
    "run_client",
    "serve_load",
]

#: A request: its sequence number and scheduled send time (``perf_counter`` seconds in the
#: client), padded to the 64 bytes every case sends.
REQUEST = struct.Struct("<Qd48x")
#: Seconds of requests at the case's rate before the window: connection up, caches warm.
WARM = 0.5
#: Seconds the client waits for the replies still due after its last request: for the
#: warm-up's (the first ones wait for the connection), for the window's, and for a mark.
PATIENCE = 10.0
#: The client keeps its schedule if 99 % of its requests leave less than this late (s).
#: Beyond, its own delays would be a large share of the latencies it reports. The
#: environment's ``ZMQ_GREEN_BENCH_LAG_LIMIT`` (seconds) replaces it: the test suite, on a
#: machine whose load it does not control, checks the plumbing, not the schedule.
LAG_LIMIT = float(os.environ.get("ZMQ_GREEN_BENCH_LAG_LIMIT", "0.001"))
#: Linux's ``prctl`` option that sets the calling thread's timer slack.
PR_SET_TIMERSLACK = 29
EVENTS, FD = int(zmq.EVENTS), int(zmq.FD)


# -- the server's side ----------------------------------------------------------------


@contextmanager
def client(endpoint: str, rate: int, seconds: int) -> Iterator[subprocess.Popen[str]]:
    """The load client's process, sending to *endpoint*; killed on the way out if still running."""
    proc = spawn_client(endpoint, rate, seconds)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def serve_load(router: Any, echo_to_mark: Callable[[Any], object], rate: int, seconds: int) -> Figures:
    """Have the load client send *rate* requests/s to *router* for *seconds*, answered by
    *echo_to_mark* (which echoes up to the client's next mark): the case's figures.

    A blocking server's whole run; an asyncio one runs the same steps with ``await``.
    """
    with client(bind_tcp(router), rate, seconds) as proc:
        echo_to_mark(router)  # the warm-up
        cpu = cpu_seconds()
        echo_to_mark(router)
        return client_figures(proc, cpu_seconds() - cpu)


def client_figures(proc: subprocess.Popen[str], cpu: float) -> Figures:
    """The case's figures from the client's report and the server's *cpu* seconds in the window.

    The value is CPU µs per request; the extras are the client's report. If the client
    failed, its failure (``failure`` and ``detail``, as the worker reports one).
    """
    out, _ = proc.communicate(timeout=PATIENCE)
    try:
        report: dict[str, Any] = json.loads(out)
    except ValueError:
        return {"failure": f"client exit {proc.returncode}", "detail": out.strip()[-300:]}
    if "failure" in report:
        return report
    return figures(cpu / report["replies"] * 1e6, **report)


# -- the client -----------------------------------------------------------------------


@dataclass
class Exchange:
    """What one open-loop schedule gave: seconds from each request's scheduled send time
    to its reply (in arrival order), and from its scheduled to its actual send time."""

    requests: int
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """The requests that had no reply."""
        return self.requests - len(self.latencies)


def run_client(endpoint: str, rate: int, seconds: int) -> dict[str, Any]:
    """The client's run: warm-up, a mark, *seconds* of *rate* requests/s, a mark; its report.

    The report has the replies, ``p50 us``, ``p99 us`` and ``lag p99 us`` (how late the
    client sent its requests), or a ``failure`` and its ``detail``: replies lost, or a
    client that could not keep its schedule.
    """
    _exact_timers()
    gc.disable()  # no collector pause in the client's schedule: nothing here makes cycles
    sock = zmq.Context().socket(DEALER)
    # Never block a send or drop a reply on the client's side: a backlog is the server's latency.
    for option, value in ((SNDHWM, 0), (RCVHWM, 0), (LINGER, 0)):
        sock.setsockopt(option, value)
    sock.connect(endpoint)
    marks = 0
    try:
        warm = exchange(sock, rate, max(1, round(rate * WARM)))
        if warm.lost:
            return _lost(warm, "warm-up ")
        marks = _mark(sock)
        window = exchange(sock, rate, rate * seconds)
        marks += _mark(sock)
    finally:
        for _ in range(marks, 2):  # the server ends at its second mark, whatever went wrong here
            _mark(sock, strict=False)
    return client_report(window, rate)


def exchange(sock: Any, rate: int, count: int) -> Exchange:
    """Send *count* requests on *sock* at *rate* a second from now, open loop, and take the
    replies as they come, until every one is in or :data:`PATIENCE` after the last request.

    Between sends the thread sleeps in ``select`` on the socket's descriptor until the next
    send is due or a reply may have come: libzmq's own poll only counts milliseconds.
    """
    send, recv, events = sock.send, sock.recv, sock.getsockopt
    pack, unpack = REQUEST.pack, REQUEST.unpack
    fd = [sock.getsockopt(FD)]
    clock = perf_counter
    run = Exchange(count)
    latency, lag = run.latencies.append, run.lags.append
    interval = 1.0 / rate
    sent = 0
    t0 = due = clock()
    end = math.inf
    while True:
        now = clock()
        while sent < count and due <= now:
            lag(clock() - due)
            send(pack(sent, due), 0)
            sent += 1
            due = t0 + sent * interval
        # The descriptor is edge-triggered: read the events last before sleeping on it.
        while events(EVENTS) & POLLIN:
            arrived = clock()
            latency(arrived - unpack(recv(0))[1])
            if arrived >= due and sent < count:
                break  # a burst of replies waits while a request is due
        if len(run.latencies) == count:
            break
        if sent < count:
            wait = due - clock()
        else:
            end = min(end, clock() + PATIENCE)
            wait = end - clock()
            if wait <= 0:
                break
        if wait > 0:
            select(fd, [], [], wait)
    return run


def client_report(run: Exchange, rate: int) -> dict[str, Any]:
    """The client's report on the measured window *run* at *rate*: figures, or a failure."""
    if run.lost:
        return _lost(run)
    lag = percentile(sorted(run.lags), 0.99)
    if lag > LAG_LIMIT:
        return {
            "failure": "client behind",
            "detail": f"1 % of its requests left more than {lag * 1e6:,.0f} µs late "
            f"(limit {LAG_LIMIT * 1e6:,.0f} µs): the client could not keep {rate:,} requests/s",
        }
    latencies = sorted(run.latencies)
    return {
        "replies": len(latencies),
        "p50 us": percentile(latencies, 0.5) * 1e6,
        "p99 us": percentile(latencies, 0.99) * 1e6,
        "lag p99 us": lag * 1e6,
    }


def _lost(run: Exchange, what: str = "") -> dict[str, Any]:
    return {
        "failure": "replies lost",
        "detail": f"{run.lost:,} of {run.requests:,} {what}requests had no reply "
        f"{PATIENCE:g} s after the last was sent",
    }


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank *q* quantile (0 < q <= 1) of the sorted, non-empty *ordered*."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _mark(sock: Any, strict: bool = True) -> int:
    """Send a mark and wait for its echo, passing over any late reply: 1 once echoed, else 0.

    Raises
    ------
    RuntimeError
        If *strict* and no echo came within :data:`PATIENCE` seconds.
    """
    sock.send(b"", 0)
    while sock.poll(PATIENCE * 1000, POLLIN):
        if not sock.recv(0):
            return 1
    if strict:
        raise RuntimeError(f"the server did not echo a mark within {PATIENCE:g} s")
    return 0


def _exact_timers() -> None:
    """Let this thread's sleeps end on time.

    Linux lets a sleep run up to 50 µs over (the thread's timer slack), as long as the
    whole interval between two requests at 20,000 requests/s.
    """
    try:
        ctypes.CDLL(None).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # no prctl: sleeps end as the system sees fit
