"""The peers zmq_green is measured against, and which cases each can run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

from . import aio, blocking, raw
from .cases import CASES, Figures

__all__ = ["PEERS", "Peer"]


@dataclass(frozen=True)
class Peer:
    """A way of running the cases: its bodies by case id, and why it has none for the others."""

    name: str
    what: str
    bodies: Mapping[str, Callable[[int], Figures]]
    #: The REP echo server of ``reqrep-ipc-2proc``, run in the second process.
    serve: Callable[[str, int], None] | None = None
    #: Why a case has no body here; ``other`` for any case not listed.
    cannot: Mapping[str, str] = field(default_factory=dict)
    other: str = "not measured"

    def unavailable(self, case: str) -> str | None:
        """``None`` if this peer runs *case*, else the reason it does not."""
        if case in self.bodies:
            return None
        return self.cannot.get(case, self.other)


def _blocking(model: Any, bodies: Mapping[str, Callable[[Any, int], Figures]]) -> dict[str, Any]:
    return {case: partial(body, model) for case, body in bodies.items()}


def _peers() -> dict[str, Peer]:
    green = blocking.Green("zmq_green")
    pyzmq_green = blocking.Green("zmq.green")
    threads = blocking.Threads()
    return {
        peer.name: peer
        for peer in (
            Peer(
                "zmq_green",
                "zmq_green: greenlets on the gevent hub",
                _blocking(green, blocking.GREEN_BODIES),
                partial(blocking.serve_reqrep, green),
            ),
            Peer(
                "zmq.green",
                "pyzmq's zmq.green: greenlets on the gevent hub",
                _blocking(pyzmq_green, blocking.GREEN_BODIES),
                partial(blocking.serve_reqrep, pyzmq_green),
            ),
            Peer(
                "threads",
                "plain pyzmq, blocking calls in OS threads",
                _blocking(threads, blocking.THREAD_BODIES),
                partial(blocking.serve_reqrep, threads),
                cannot=blocking.THREADS_CANNOT,
            ),
            Peer(
                "raw",
                "plain pyzmq, one thread, DONTWAIT loop blocking in zmq_poll",
                raw.RAW_BODIES,
                cannot={case: "a blocking server: see threads" for case in CASES if CASES[case].rate},
                other="no one-thread form",
            ),
            Peer(
                "asyncio",
                "zmq.asyncio coroutines on one event loop",
                aio.ASYNCIO_BODIES,
                aio.serve_reqrep,
                cannot={case: "see tornado" for case in CASES if case.startswith("zmqstream")},
            ),
            Peer(
                "tornado",
                "pyzmq's ZMQStream on tornado's IOLoop",
                aio.TORNADO_BODIES,
                other="zmqstream cases only",
            ),
        )
    }


PEERS: dict[str, Peer] = _peers()
