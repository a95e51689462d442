"""What the reliability tests share: the soak setting and resource accounting.

The accounting is exact, with no grace period: a test terminates its contexts
before it returns, and a terminated context has freed all its fds (libzmq frees a
closed socket's fds later, in the context's reaper thread, but ``zmq_ctx_term``
waits for that thread). So a count that differs, up or down, is a real leak or
something outliving the test.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import gevent
import pytest
from gevent.greenlet import Greenlet

import zmq_green

#: 0 for the default bounded run; otherwise seconds per chaos scenario.
SOAK_SECONDS = float(os.environ.get("ZMQ_GREEN_SOAK_SECONDS") or 0)


def open_fds() -> dict[int, str]:
    """File descriptors open in this process, and what each one is."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:  # the directory's own fd, closed by now
            pass
    return fds


def fd_changes(before: dict[int, str], after: dict[int, str]) -> str:
    """What differs between two :func:`open_fds`, or "" if nothing does."""
    opened = [f"{fd} {after[fd]}" for fd in sorted(after.keys() - before.keys())]
    closed = [f"{fd} {before[fd]}" for fd in sorted(before.keys() - after.keys())]
    reused = [
        f"{fd} {before[fd]} -> {after[fd]}"
        for fd in sorted(before.keys() & after.keys())
        if before[fd] != after[fd]
    ]
    return "; ".join(
        f"{what}: {', '.join(fds)}"
        for what, fds in (("opened", opened), ("closed", closed), ("now other", reused))
        if fds
    )


def loop_name() -> str:
    """The module of this thread's hub loop (``gevent.libev.corecext``, ``gevent.libuv.loop``, ...)."""
    return type(gevent.get_hub().loop).__module__


def watchers_counted() -> bool:
    """Whether :func:`active_watchers` counts this loop's watchers (it knows libev and libuv)."""
    return "libev" in loop_name() or "libuv" in loop_name()


def active_watchers() -> int:
    """Active watchers of this thread's hub loop.

    libev's ``activecnt`` (the referenced ones). gevent's libuv loop has no such
    count (its ``activecnt`` is always 0), so there, the handles that are active,
    referenced and not being closed, but for the loop's own (it starts a check
    handle while callbacks are pending, for instance). Unreferenced ones, such as
    busy-polling's idle watcher, keep no loop running, as in libev's count.
    """
    loop = gevent.get_hub().loop
    if "libuv" in loop_name():
        return sum(1 for h in loop.debug() if h.ref and h.active and not h.closing and h.watcher is not loop)
    return int(loop.activecnt)


def running_greenlets() -> int:
    """gevent greenlets started and not yet ended, in this process."""
    return sum(1 for g in gc.get_objects() if isinstance(g, Greenlet) and g)


def warm_up() -> None:
    """Open what stays open once made, so that the counts taken next do not see
    it: this thread's hub (its loop has fds) and whatever a context's termination
    needs."""
    gevent.get_hub()
    ctx = zmq_green.Context()
    ctx.socket(zmq_green.PULL).close()
    ctx.term()


@contextmanager
def accounted(record: Callable[[str, Any], None]) -> Iterator[None]:
    """Check that the body gives back every fd, hub watcher and greenlet it took.

    The body must terminate its contexts. *record* is given ``("rescues", n)``,
    the safety-timeout rescues counted during the body, before anything is checked
    (that there are none is every test's check: tests/conftest.py's safety net).
    """
    warm_up()
    fds, watchers, greenlets = open_fds(), active_watchers(), running_greenlets()
    rescues = zmq_green.stats()["rescues"]
    yield
    record("rescues", zmq_green.stats()["rescues"] - rescues)
    changes = fd_changes(fds, open_fds())
    assert not changes, f"file descriptors leaked or closed: {changes}"
    assert active_watchers() == watchers, f"hub watchers left active: {active_watchers()}, {watchers} before"
    assert running_greenlets() == greenlets, (
        f"greenlets still running: {running_greenlets()}, {greenlets} before"
    )


@pytest.fixture
def resources(record_property: Callable[[str, Any], None]) -> Iterator[None]:
    """Fail the test unless fds, hub watchers and greenlets are back to where they
    started (see :func:`accounted`); record the rescues counted during it."""
    with accounted(record_property):
        yield
