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

import sys as _sys
from importlib import import_module as _import_module
from importlib.util import find_spec as _find_spec
from typing import TYPE_CHECKING, Any

import zmq as _zmq

if TYPE_CHECKING:
    # Spelled out so that type checkers see the green classes below, not zmq's.
    from zmq import (
        COPY_THRESHOLD as COPY_THRESHOLD,
        DRAFT_API as DRAFT_API,
        IPC_PATH_MAX_LEN as IPC_PATH_MAX_LEN,
        PYZMQ_DRAFT_API as PYZMQ_DRAFT_API,
        Frame as Frame,
        Message as Message,
        Stopwatch as Stopwatch,
        __revision__ as __revision__,
        __version__ as __version__,
        curve_keypair as curve_keypair,
        curve_public as curve_public,
        get_includes as get_includes,
        has as has,
        pyzmq_version as pyzmq_version,
        pyzmq_version_info as pyzmq_version_info,
        strerror as strerror,
        zmq_errno as zmq_errno,
        zmq_poll as zmq_poll,
        zmq_version as zmq_version,
        zmq_version_info as zmq_version_info,
    )
    from zmq.constants import *  # noqa: F403
    from zmq.error import *  # noqa: F403
else:
    from zmq import *  # noqa: F403

# First: it checks the versions of pyzmq and gevent before the modules that need them.
from ._version import __version__ as green_version
from ._waiting import reset_stats, stats
from .context import Context
from .device import (
    device as device,
    proxy as proxy,
    proxy_steerable as proxy_steerable,
)
from .poll import Poller as Poller, select as select
from .socket import Socket
from .tracker import MessageTracker as MessageTracker

SyncSocket = Socket
SyncContext = Context

__all__: list[str] = [*_zmq.__all__, "green_version", "stats", "reset_stats"]


# `from zmq_green.error import ZMQError` works as `from zmq.error import ZMQError` does.
for _name in ("constants", "error", "utils"):
    _sys.modules.setdefault(f"{__name__}.{_name}", getattr(_zmq, _name))


def __getattr__(name: str) -> Any:
    # Our own submodules first (zmq_green.devices is not zmq.devices), then what zmq
    # has beyond zmq.__all__ (error, constants, utils...).
    if _find_spec(f"{__name__}.{name}") is not None:
        return _import_module(f"{__name__}.{name}")
    return getattr(_zmq, name)
