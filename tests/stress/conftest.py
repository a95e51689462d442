"""Bounds, resource accounting and figures for the stress tests.

By default every stress test is bounded so that the whole directory runs in well
under a minute. ``ZMQ_GREEN_SOAK_SECONDS=S`` turns it into a soak run: each chaos
scenario lasts *S* seconds and the memory test moves 1,000,000 messages.

The ``resources`` fixture (from :mod:`soak`) checks that a test gives back every
fd, hub watcher and greenlet it took, and records the safety-timeout rescues
counted during it. Tests report what they did with ``record_property`` under the
keys of :data:`FIGURES`; the totals are printed at the end of the session (the
figures quoted in RELIABILITY.md come from there). Every figure is a measurement.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .soak import resources as resources

#: user_properties summed over the session, and how the summary names them.
FIGURES = {
    "messages": "messages moved",
    "faults": "faults injected",
    "bad_inputs": "bad inputs tried on zmq_green's own code, each against zmq and zmq_green",
    "odd_inputs": "odd but valid inputs tried on zmq_green's own code",
    "pass_through_inputs": "inputs that never reach zmq_green's code (pyzmq against itself; not counted above)",
    "lost": "messages lost (their send returned, never received)",
    "rescues": "missed wake-ups (safety-timeout rescues)",
    "lied_rescues": "rescues of waiters EVENTS lies to (libzmq's window; let pass in lie_window tests only)",
    "rss_growth": "RSS growth over the memory test, bytes",
}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    totals: Counter[str] = Counter()
    for reports in terminalreporter.stats.values():
        for report in reports:
            # a teardown report carries what the test and its fixtures recorded
            if getattr(report, "when", None) != "teardown":
                continue
            for key, value in getattr(report, "user_properties", ()):
                if key in FIGURES:
                    totals[key] += value
    if not totals:
        return
    terminalreporter.write_sep("-", "reliability figures")
    for key, label in FIGURES.items():
        terminalreporter.write_line(f"{label}: {totals[key]:,}")
