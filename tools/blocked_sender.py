"""Measure what a sender blocked on a socket whose EVENTS lies costs, and when Again comes.

An XPUB with XPUB_NODROP whose subscriber is at its high-water mark reports POLLOUT
while every send fails with EAGAIN. One greenlet waits in ``recv`` on it (so the
sender is not alone), another sends with ``SNDTIMEO``. Printed: the seconds until
``zmq.Again``, the CPU seconds the process used meanwhile, and how often greenlets
blocked (``zmq_green.stats()["waits"]``).

Usage: python tools/blocked_sender.py [SNDTIMEO_MS]   (default 5000)
"""

from __future__ import annotations

import resource
import sys
import time

import gevent

import zmq_green as zmq


def main() -> None:
    timeout_ms = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    sub = ctx.socket(zmq.SUB)
    pub.linger = sub.linger = 0
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    pub.sndhwm = sub.rcvhwm = 10
    pub.bind("inproc://blocked-sender")
    sub.connect("inproc://blocked-sender")
    sub.subscribe(b"")
    pub.recv()  # the subscription
    while True:
        try:
            pub.send(b"fill", zmq.DONTWAIT)
        except zmq.Again:
            break
    parked = gevent.spawn(pub.recv)
    gevent.sleep(0.01)
    pub.sndtimeo = timeout_ms
    waits = zmq.stats()["waits"]
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    start = time.monotonic()
    try:
        pub.send(b"blocked")
    except zmq.Again:
        took = time.monotonic() - start
    else:
        raise SystemExit("the send went through: the subscriber was not full")
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = after.ru_utime - cpu.ru_utime + after.ru_stime - cpu.ru_stime
    print(
        f"SNDTIMEO {timeout_ms} ms: Again after {took:.3f} s; CPU {used:.4f} s "
        f"({100 * used / took:.2f} % of one CPU); waits {zmq.stats()['waits'] - waits}"
    )
    parked.kill()
    ctx.destroy(linger=0)


if __name__ == "__main__":
    main()
