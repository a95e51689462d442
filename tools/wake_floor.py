"""What a wake-up of the gevent hub costs, against zmq_green's and blocking pyzmq's.

    python tools/wake_floor.py [RATE ...] [--rounds 5] [--seconds 3]

Runs the bench's ``load-R`` server three ways, in fresh processes, alternating
their order from round to round, and prints each one's median server CPU
per request:

* ``threads``: blocking pyzmq, the bench's ``threads`` peer;
* ``floor``: the least a gevent program can do per request: plain pyzmq
  ``recv_multipart(NOBLOCK)``, and on ``Again`` one wait on the socket's fd
  through the hub (``hub.wait`` on an io watcher); no waiting protocol, no safety
  timeout, no busy-polling;
* ``zmq_green``: the bench's ``zmq_green`` peer.

``floor`` minus ``threads`` is what the hub's wake-up costs; ``zmq_green`` minus
``floor`` is what zmq_green adds to it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent

FLOOR = """
import json, sys
import zmq
from gevent import get_hub
from zmq_green.bench.load import serve_load

NOBLOCK, EVENTS, POLLIN = int(zmq.NOBLOCK), int(zmq.EVENTS), int(zmq.POLLIN)
router = zmq.Context().socket(zmq.ROUTER)
router.linger = 0
hub = get_hub()
readable = hub.loop.io(router.getsockopt(zmq.FD), 1)

def echo_to_mark(router):
    recv, send, get = router.recv_multipart, router.send_multipart, router.getsockopt
    while True:
        try:
            request = recv(NOBLOCK)
        except zmq.Again:
            if not get(EVENTS) & POLLIN:  # the fd is edge-triggered: read EVENTS last
                hub.wait(readable)
            continue
        send(request, 0)
        if not request[-1]:
            return

print(json.dumps(serve_load(router, echo_to_mark, int(sys.argv[1]), int(sys.argv[2]))))
"""


def measure(way: str, rate: int, seconds: int) -> dict[str, Any]:
    """One run of *way* at *rate*: its figures (``value``: server CPU µs per request), or its failure."""
    if way == "floor":
        command = [sys.executable, "-c", FLOOR, str(rate), str(seconds)]
    else:
        command = [sys.executable, "-m", "zmq_green.bench._worker", f"load-{rate}", way, str(seconds)]
    proc = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1]) if lines else {"failure": f"exit {proc.returncode}"}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rates", nargs="*", type=int, default=[1000, 5000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    ways = ["threads", "floor", "zmq_green"]
    values: dict[tuple[int, str], list[float]] = {}
    for round_ in range(args.rounds):
        for rate in args.rates:
            for way in ways if round_ % 2 == 0 else ways[::-1]:
                result = measure(way, rate, args.seconds)
                value = result.get("value")
                print(
                    f"round {round_ + 1} {rate:>6} {way:9} {value or result.get('failure')}", file=sys.stderr
                )
                if value is not None:
                    values.setdefault((rate, way), []).append(value)
    print("| offered req/s | " + " | ".join(f"{way} CPU µs/req" for way in ways) + " |")
    print("|---" * (len(ways) + 1) + "|")
    for rate in args.rates:
        cells = [
            f"{statistics.median(values[rate, way]):,.1f}" if (rate, way) in values else "-" for way in ways
        ]
        print(f"| {rate:,} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
