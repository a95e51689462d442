"""zmq_green: pyzmq for gevent, with every blocking call blocking only its greenlet.

Usage::

    import zmq_green as zmq

Every public name of :mod:`zmq` is here (constants, errors, Frame, utilities),
with green :class:`Context`, :class:`Socket`, :class:`Poller`, :func:`select`
and devices in place. Names not listed in ``zmq.__all__`` (``zmq_green.error``,
``zmq_green.utils``...) are looked up on :mod:`zmq`.

``zmq_green.__version__`` is pyzmq's version, as ``zmq.__version__`` is; the
version of zmq_green itself is :data:`green_version`.
"""

from __future__ import annotations

from typing import Any

import zmq as _zmq
from zmq import *  # noqa: F403

from ._version import __version__ as green_version
from ._waiting import reset_stats, stats
from .context import Context
from .device import device as device
from .device import proxy as proxy  # type: ignore[assignment]
from .device import proxy_steerable as proxy_steerable  # type: ignore[assignment]
from .poll import Poller as Poller
from .poll import select as select
from .socket import Socket

SyncSocket = Socket  # type: ignore[misc]
SyncContext = Context  # type: ignore[misc]

__all__: list[str] = [*_zmq.__all__, "green_version", "stats", "reset_stats"]


def __getattr__(name: str) -> Any:
    # Submodules and helpers of zmq that are not in zmq.__all__ (error, constants, utils...).
    return getattr(_zmq, name)
