"""Push/pull pipeline: a ventilator, a pool of workers sharing two sockets, a sink.

The ventilator PUSHes tasks; a ``gevent.pool.Pool`` of worker greenlets all
receive from ONE PULL socket and all send their results on ONE PUSH socket to a
sink. Each task stands for I/O-bound work (a ``gevent.sleep`` of a few
milliseconds), so while one worker "works" the others receive, work and send:
the whole batch takes far less wall time than the sum of its tasks, and the
example shows how many workers were busy at once.

Sharing sockets between greenlets like this fails at once with pyzmq's
``zmq.green`` (``AssertionError: Only one greenlet can be waiting on this
event``); zmq_green queues the waiting greenlets first come, first served.

Run it::

    python examples/ventilator.py
"""

from __future__ import annotations

import time

import gevent
import gevent.pool

import zmq_green as zmq

TASKS = 200
WORKERS = 20
STOP = b""  # one per worker, sent after the tasks


def ventilator(push: zmq.Socket) -> float:
    """Send TASKS numbered tasks, then a STOP for each worker; return the seconds of work sent."""
    total_ms = 0
    for n in range(TASKS):
        ms = 5 + n % 10
        push.send(b"%d %d" % (n, ms))
        total_ms += ms
    for _ in range(WORKERS):
        push.send(STOP)
    return total_ms / 1000


def sink(pull: zmq.Socket) -> set[int]:
    """Collect TASKS results; return the numbers of the tasks done."""
    return {int(pull.recv()) for _ in range(TASKS)}


def main() -> int:
    ctx = zmq.Context()
    tasks_out = ctx.socket(zmq.PUSH)
    tasks_out.bind("tcp://127.0.0.1:*")
    results_in = ctx.socket(zmq.PULL)
    results_in.bind("tcp://127.0.0.1:*")
    # The two sockets every worker shares.
    tasks_in = ctx.socket(zmq.PULL)
    tasks_in.connect(tasks_out.last_endpoint)
    results_out = ctx.socket(zmq.PUSH)
    results_out.connect(results_in.last_endpoint)

    busy = peak = 0

    def worker() -> None:
        nonlocal busy, peak
        while (task := tasks_in.recv()) != STOP:
            n, ms = task.split()
            busy += 1
            peak = max(peak, busy)
            gevent.sleep(int(ms) / 1000)  # the work: any cooperative I/O
            busy -= 1
            results_out.send(n)

    start = time.perf_counter()
    with gevent.Timeout(30):  # a demo must never hang
        collecting = gevent.spawn(sink, results_in)
        pool = gevent.pool.Pool(WORKERS)
        workers = [pool.spawn(worker) for _ in range(WORKERS)]
        work = ventilator(tasks_out)
        gevent.joinall(workers, raise_error=True)  # unlike pool.join, sees early failures
        done = collecting.get()
    elapsed = time.perf_counter() - start
    ctx.destroy(linger=0)

    print(f"results: {len(done)} of {TASKS} tasks done")
    print(f"peak workers busy at once: {peak}/{WORKERS}")
    print(f"{work:.2f} s of work done in {elapsed:.2f} s wall time")
    if done != set(range(TASKS)) or peak < 2:
        print("FAILED")
        return 1
    print("OK: the workers shared one PULL and one PUSH socket and ran concurrently")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
