"""What a wake-up of the gevent hub costs, against zmq_green's and blocking pyzmq's.

    python tools/wake_floor.py [RATE ...] [--rounds 5] [--seconds 3] [--ways threads,floor,...]

Runs the bench's ``load-R`` server several ways, in fresh processes, alternating
their order from round to round, and prints each one's median server CPU per
request, p50 and p99 latency:

* ``threads``: blocking pyzmq, the bench's ``threads`` peer;
* ``floor``: the least a gevent program can do per request: plain pyzmq
  ``recv_multipart(NOBLOCK)``, and on ``Again`` one wait on the socket's fd
  through the hub (``hub.wait`` on an io watcher); no waiting protocol, no safety
  timeout, no busy-polling;
* ``floor-asks``: the same, reading ``EVENTS`` before each receive instead of
  failing one (pyzmq's raised ``Again`` is the dearest part of a try that fails);
* ``idle-block``: ``floor-asks``, blocking in libzmq's ``zmq_poll`` (on the
  socket and the loop's own fd) instead of in the hub whenever the hub has no
  other watcher and no callback: the least a greenlet can spend per request
  without giving up the hub. A sketch: it does not see the hub's unreferenced
  timers, so zmq_green does not do it;
* ``zmq_green``: the bench's ``zmq_green`` peer.

``floor`` minus ``threads`` is what the hub's wake-up costs; ``zmq_green`` minus
``floor`` is what zmq_green adds to it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from zmq_green.bench.runner import Run, read_result

HERE = Path(__file__).resolve().parent.parent

FLOOR = """
import json, sys
import zmq
from gevent import get_hub
from zmq_green.bench.load import serve_load

way = sys.argv[3]
NOBLOCK, EVENTS, POLLIN = int(zmq.NOBLOCK), int(zmq.EVENTS), int(zmq.POLLIN)
router = zmq.Context().socket(zmq.ROUTER)
router.linger = 0
hub = get_hub()
loop = hub.loop
readable = loop.io(router.getsockopt(zmq.FD), 1)
both = [(router, POLLIN), (loop.fileno(), POLLIN)]

def wait():
    if way == "idle-block" and not loop.activecnt and not len(loop._callbacks):
        zmq.zmq_poll(both, 1000)  # the hub has nothing to do: block here, wake for its fd too
    else:
        hub.wait(readable)

def echo_to_mark(router):
    recv, send, get = router.recv_multipart, router.send_multipart, router.getsockopt
    while True:
        if way == "floor":
            try:
                request = recv(NOBLOCK)
            except zmq.Again:
                if not get(EVENTS) & POLLIN:  # the fd is edge-triggered: read EVENTS last
                    wait()
                continue
        else:
            if not get(EVENTS) & POLLIN:
                wait()
                continue
            request = recv(NOBLOCK)
        send(request, 0)
        if not request[-1]:
            return

print(json.dumps(serve_load(router, echo_to_mark, int(sys.argv[1]), int(sys.argv[2]))))
"""
SKETCHES = ("floor", "floor-asks", "idle-block")


def measure(way: str, rate: int, seconds: int) -> Run:
    """One run of *way* at *rate*: its figures (``value``: server CPU µs per request), or its failure."""
    if way in SKETCHES:
        command = [sys.executable, "-c", FLOOR, str(rate), str(seconds), way]
    else:
        command = [sys.executable, "-m", "zmq_green.bench._worker", f"load-{rate}", way, str(seconds)]
    proc = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=120)
    run = Run(f"load-{rate}", way, 0)
    read_result(run, proc.stdout, proc.stderr, proc.returncode)
    return run


WAYS = ("threads", "floor", "floor-asks", "idle-block", "zmq_green")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rates", nargs="*", type=int, default=[1000, 5000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--ways", default=",".join(WAYS), help="comma-separated, of: " + ", ".join(WAYS))
    args = parser.parse_args()
    ways = args.ways.split(",")
    unknown = set(ways) - set(WAYS)
    if unknown:
        parser.error(f"unknown ways: {', '.join(sorted(unknown))}")
    # (rate, way) -> one (CPU us/req, p50 us, p99 us) per round that gave figures
    runs: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
    for round_ in range(args.rounds):
        for rate in args.rates:
            for way in ways if round_ % 2 == 0 else ways[::-1]:
                run = measure(way, rate, args.seconds)
                value, extra = run.value, run.extra
                print(f"round {round_ + 1} {rate:>6} {way:10} {value or run.failure}", file=sys.stderr)
                if value is not None:
                    runs.setdefault((rate, way), []).append((value, extra["p50 us"], extra["p99 us"]))
    print("CPU µs per request · p50 µs · p99 µs (medians); in brackets, CPU against threads")
    print()
    print("| offered req/s | " + " | ".join(ways) + " |")
    print("|---" * (len(ways) + 1) + "|")
    for rate in args.rates:
        medians = {
            way: [statistics.median(run[k] for run in runs[rate, way]) for k in range(3)]
            for way in ways
            if (rate, way) in runs
        }
        base = medians.get("threads", [0.0])[0]
        cells = []
        for way in ways:
            if way not in medians:
                cells.append("-")
                continue
            cpu, p50, p99 = medians[way]
            ratio = f" ({cpu / base:.2f}x)" if base and way != "threads" else ""
            cells.append(f"{cpu:,.1f}{ratio} · {p50:,.0f} · {p99:,.0f}")
        print(f"| {rate:,} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
