"""One measurement in a fresh process: ``python -m zmq_green.bench._worker CASE PEER SIZE``.

Prints one JSON line: the case's figures (``value``, ``extra``), or ``failure``
(the exception's type name, or ``n/a: <reason>``) with ``detail``.

``--serve PEER ENDPOINT COUNT`` runs the REP echo server of ``reqrep-ipc-2proc``;
``--load-client ENDPOINT RATE SECONDS`` the client of the ``load-R`` cases, which prints
its report as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, Callable

from .cases import NotApplicable
from .load import run_client
from .peers import PEERS

__all__ = ["main", "measure"]


def measure(case: str, peer: str, size: int) -> dict[str, Any]:
    """Run *case* for *peer* at *size*; its figures, or why there are none."""
    reason = PEERS[peer].unavailable(case)
    if reason is not None:
        return {"failure": f"n/a: {reason}"}
    return _reported(PEERS[peer].bodies[case], size)


def _reported(func: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """What *func* returns, or the failure it raised, as a JSON line reports it."""
    try:
        return func(*args)
    except NotApplicable as e:
        return {"failure": f"n/a: {e}"}
    except Exception as e:  # the peer's failure is the result
        return {"failure": type(e).__name__, "detail": str(e)[:300]}


def main(argv: Sequence[str]) -> int:
    """Run a measurement (or the ``--serve`` server, or the load client) and print its JSON line."""
    if argv[0] == "--serve":
        peer, endpoint, count = argv[1:]
        serve = PEERS[peer].serve
        if serve is None:
            raise SystemExit(f"{peer} has no reqrep server")
        serve(endpoint, int(count))
        return 0
    if argv[0] == "--load-client":
        endpoint, rate, seconds = argv[1:]
        result = _reported(run_client, endpoint, int(rate), int(seconds))
    else:
        case, peer, size = argv
        result = measure(case, peer, int(size))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Devices, blocked receivers and their threads never end by themselves: leave without them.
    os._exit(code)
