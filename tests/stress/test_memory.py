"""Resident memory stays flat while greenlets move a great many messages.

Ten greenlets push and ten pull on one inproc PUSH/PULL pair with a high-water
mark of 5, so that nearly every message makes some greenlet wait: the waiting
protocol's objects (entries, waiters, timers of RCVTIMEO and gevent.Timeout)
are made and dropped hundreds of thousands of times. After a warm-up of a tenth
of the run, RSS may not grow by more than :data:`RSS_BOUND`.

The default run moves 300,000 messages; a soak run (``ZMQ_GREEN_SOAK_SECONDS``)
moves 1,000,000. A leak of a single small object per wait would show as
megabytes.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import gevent
import pytest
from gevent.event import Event

import zmq_green as zmq

from .soak import SOAK_SECONDS

pytestmark = pytest.mark.stress

MESSAGES = 1_000_000 if SOAK_SECONDS else 300_000
RSS_BOUND = 2 * 1024 * 1024
WORKERS = 10


def rss() -> int:
    """Resident set size of this process, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def move(push: Any, pull: Any, n: int) -> None:
    """Move *n* messages from *push* to *pull*, ten greenlets on each side."""
    received = [0]
    done = Event()

    def producer(k: int) -> None:
        for i in range(k):
            if i % 7:
                push.send(b"x" * 32)
            else:
                push.send_multipart([b"a", b"b" * 100])

    def consumer(poller: Any) -> None:
        while True:
            with gevent.Timeout(0.05, False):  # silent: nothing is lost, just waits again
                if poller is not None and not poller.poll(1000):
                    continue
                try:
                    pull.recv_multipart()
                except zmq.Again:  # RCVTIMEO, or a poller's message was taken by another
                    continue
                received[0] += 1
                if received[0] == n:
                    done.set()

    pollers = [zmq.Poller() for _ in range(2)]
    for poller in pollers:
        poller.register(pull, zmq.POLLIN)
    consumers = [gevent.spawn(consumer, p) for p in [*pollers, *[None] * (WORKERS - 2)]]
    producers = [gevent.spawn(producer, n // WORKERS) for _ in range(WORKERS)]
    try:
        assert done.wait(timeout=300), f"{n - received[0]} messages lost"
        gevent.joinall(producers, timeout=30, raise_error=True)
        assert all(p.dead for p in producers)
    finally:
        gevent.killall(consumers + producers)


@pytest.mark.timeout(600 if SOAK_SECONDS else 120)
def test_rss_flat(resources: None, record_property: Any) -> None:
    ctx = zmq.Context()
    try:
        push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
        push.sndhwm = pull.rcvhwm = 5
        pull.rcvtimeo = 1000
        push.bind("inproc://rss")
        pull.connect("inproc://rss")
        move(push, pull, MESSAGES // 10)
        gc.collect()
        before = rss()
        move(push, pull, MESSAGES)
        gc.collect()
        growth = rss() - before
    finally:
        ctx.destroy(linger=0)
    record_property("rss_growth", growth)
    assert growth <= RSS_BOUND, f"RSS grew by {growth / 2**20:.1f} MiB over {MESSAGES:,} messages"
    record_property("messages", MESSAGES + MESSAGES // 10)
