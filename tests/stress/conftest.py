"""Bounds, resource accounting and figures for the stress tests.

By default every stress test is bounded so that the whole directory runs in well
under a minute. ``ZMQ_GREEN_SOAK_SECONDS=S`` turns it into a soak run: each chaos
scenario lasts *S* seconds and the memory test moves 1,000,000 messages.

Tests report what they did with ``record_property`` under the keys of
:data:`FIGURES`; the totals are printed at the end of the session (the figures
quoted in RELIABILITY.md come from there).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import gevent
import pytest

import zmq_green

from .soak import active_watchers, open_fds

#: user_properties summed over the session, and how the summary names them.
FIGURES = {
    "messages": "messages moved",
    "faults": "faults injected",
    "bad_inputs": "bad inputs tried",
    "lost": "messages lost",
}


def warm_up() -> None:
    """Open what zmq_green opens once per process and keeps: the hub's threadpool
    (where contexts terminate) and the private context of proxies' control sockets."""
    ctx = zmq_green.Context()
    front, back = ctx.socket(zmq_green.PULL), ctx.socket(zmq_green.PUSH)
    with gevent.Timeout(0.01, False):
        zmq_green.proxy(front, back)
    front.close()
    back.close()
    ctx.term()


@pytest.fixture
def resources() -> Iterator[None]:
    """Fail the test unless fds, hub watchers and rescues are back to where they started.

    The test must terminate its contexts before it returns.
    """
    warm_up()
    fds, watchers, rescues = open_fds(), active_watchers(), zmq_green.stats()["rescues"]
    yield
    assert open_fds() == fds, "file descriptors leaked"
    assert active_watchers() == watchers, "hub watchers left active"
    assert zmq_green.stats()["rescues"] == rescues, "a wake-up was missed (safety timeout rescued it)"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    totals: Counter[str] = Counter()
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for key, value in getattr(report, "user_properties", ()):
                if key in FIGURES:
                    totals[key] += value
    if not totals:
        return
    terminalreporter.write_sep("-", "reliability figures")
    for key, label in FIGURES.items():
        terminalreporter.write_line(f"{label}: {totals[key]:,}")
