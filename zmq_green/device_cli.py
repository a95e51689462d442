"""``zmq-green device``: run libzmq's proxy between two endpoints from the command line."""

from __future__ import annotations

import argparse
import signal
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any

import gevent
import zmq
from gevent.event import Event

from .context import Context
from .device import STATISTICS, proxy_steerable

__all__ = ["main"]

# device -> ((frontend type, its default), (backend type, its default)); "@" binds, ">" connects.
# The defaults are CZMQ's for each socket type: the stable side binds.
DEVICES: dict[str, tuple[tuple[int, str], tuple[int, str]]] = {
    "queue": ((zmq.ROUTER, "@"), (zmq.DEALER, ">")),
    "forwarder": ((zmq.XSUB, ">"), (zmq.XPUB, "@")),
    "streamer": ((zmq.PULL, "@"), (zmq.PUSH, ">")),
}

EPILOG = """\
endpoints:
  '@tcp://*:5559' binds, '>tcp://host:5560' connects (CZMQ's convention);
  several endpoints may be joined with commas. A bare endpoint gets the
  default of its socket type, as in CZMQ:
    queue      frontend ROUTER binds,    backend DEALER connects
    forwarder  frontend XSUB connects,   backend XPUB binds
    streamer   frontend PULL binds,      backend PUSH connects
    --capture  PUB binds (it gets a copy of every message)

Every second, stderr shows the messages moved per second in each direction
(libzmq's counters: each frame of a multipart message counts). SIGINT or
SIGTERM stops the device cleanly, with exit status 0.

example:
  zmq-green device queue @tcp://*:5559 @tcp://*:5560
    a broker: clients connect REQ sockets to port 5559, workers connect REP
    sockets to port 5560.
"""


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``zmq-green device``."""
    p = argparse.ArgumentParser(
        prog="zmq-green device",
        description="Run a queue, forwarder or streamer device (libzmq's own proxy) between two endpoints.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "device",
        choices=sorted(DEVICES),
        help="queue: ROUTER-DEALER, forwarder: XSUB-XPUB, streamer: PULL-PUSH",
    )
    p.add_argument("frontend", metavar="FRONTEND", help="endpoint(s) of the frontend socket")
    p.add_argument("backend", metavar="BACKEND", help="endpoint(s) of the backend socket")
    p.add_argument("--capture", metavar="ENDPOINT", help="endpoint(s) of a PUB socket copying every message")
    return p


def attach(socket: zmq.Socket[Any], endpoints: str, default: str) -> None:
    """Bind or connect *socket* to each of the comma-separated *endpoints*.

    ``@`` binds, ``>`` connects; an endpoint without either follows *default*.
    """
    for endpoint in endpoints.split(","):
        endpoint = endpoint.strip()
        mode = default
        if endpoint[:1] in ("@", ">"):
            mode, endpoint = endpoint[0], endpoint[1:]
        if not endpoint:
            raise ValueError(f"empty endpoint in {endpoints!r}")
        if mode == "@":
            socket.bind(endpoint)
        else:
            socket.connect(endpoint)


def _report(name: str, control: zmq.Socket[Any]) -> None:
    """Each second, print on stderr the messages moved per second since the last report."""
    last = (0, 0)
    then = time.monotonic()
    asked = False
    while True:
        gevent.sleep(1.0)
        if not asked:
            control.send(STATISTICS)
            asked = True
        # The proxy answers between bursts, within microseconds, unless it is blocked
        # sending to a peer at its high-water mark.
        if not control.poll(250):
            print(f"{name}: stalled (a peer is not reading)", file=sys.stderr, flush=True)
            continue
        asked = False
        counters = [struct.unpack("<Q", frame)[0] for frame in control.recv_multipart()]
        now = time.monotonic()
        counts = (counters[0], counters[4])  # received on the frontend, on the backend
        rates = [(c - p) / (now - then) for c, p in zip(counts, last)]
        print(
            f"{name}: {sum(rates):.0f} msg/s (frontend->backend {rates[0]:.0f}, "
            f"backend->frontend {rates[1]:.0f})",
            file=sys.stderr,
            flush=True,
        )
        last, then = counts, now


def _proxy(
    frontend: zmq.Socket[Any],
    backend: zmq.Socket[Any],
    capture: zmq.Socket[Any] | None,
    control: zmq.Socket[Any],
) -> Exception | None:
    """Run the proxy; return (not raise: the hub would print it) what ended it abnormally."""
    try:
        proxy_steerable(frontend, backend, capture, control)
    except Exception as e:
        return e
    return None


def main(argv: Sequence[str]) -> int:
    """Run ``zmq-green device`` with the arguments *argv*; return the exit status."""
    args = parser().parse_args(argv)
    (front_type, front_default), (back_type, back_default) = DEVICES[args.device]
    ctx: Context[Any] = Context()
    sockets: list[zmq.Socket[Any]] = []

    def socket(socket_type: int) -> zmq.Socket[Any]:
        s: zmq.Socket[Any] = ctx.socket(socket_type)
        s.linger = 0
        sockets.append(s)
        return s

    try:
        frontend, backend = socket(front_type), socket(back_type)
        attach(frontend, args.frontend, front_default)
        attach(backend, args.backend, back_default)
        capture = None
        if args.capture:
            capture = socket(zmq.PUB)
            attach(capture, args.capture, "@")
        control, theirs = socket(zmq.PAIR), socket(zmq.PAIR)
        control.bind("inproc://zmq-green-device-control")
        theirs.connect("inproc://zmq-green-device-control")
    except (zmq.ZMQError, ValueError) as e:
        print(f"zmq-green device: {e}", file=sys.stderr)
        for s in sockets:
            s.close()
        ctx.term()
        return 1

    stop = Event()
    handlers = [gevent.signal_handler(signum, stop.set) for signum in (signal.SIGINT, signal.SIGTERM)]
    runner = gevent.spawn(_proxy, frontend, backend, capture, theirs)
    runner.link(lambda _: stop.set())
    reporter = gevent.spawn(_report, args.device, control)
    try:
        stop.wait()
    finally:
        reporter.kill()
        # Terminating the context stops the proxy even while it is blocked sending to a
        # peer at its high-water mark, where a TERMINATE command would wait its turn.
        terminating = gevent.spawn(ctx.term)
        runner.join()
        for s in sockets:
            s.close()
        terminating.join()
        for handler in handlers:
            handler.cancel()
    error = runner.value
    if error is not None and not isinstance(error, zmq.ContextTerminated):
        print(f"zmq-green device: {error}", file=sys.stderr)
        return 1
    return 0
