"""What the stress tests share: the soak setting and resource counters."""

from __future__ import annotations

import os

import gevent

#: 0 for the default bounded run; otherwise seconds per chaos scenario.
SOAK_SECONDS = float(os.environ.get("ZMQ_GREEN_SOAK_SECONDS") or 0)


def open_fds() -> int:
    """File descriptors open in this process."""
    return len(os.listdir("/proc/self/fd"))


def active_watchers() -> int:
    """Active (referenced) watchers of this thread's hub loop (libev's ``activecnt``)."""
    return int(gevent.get_hub().loop.activecnt)
