"""pyzmq's constants as plain ints, for the code that runs per message.

pyzmq's constants are ``enum`` members: ``flags | zmq.DONTWAIT`` or
``events & zmq.POLLIN`` with one of them runs enum's Python-level operator and
builds a new member, about 2 us each -- more than the libzmq call itself. So
every module that does arithmetic on flags or events takes them from here.
"""

from __future__ import annotations

from typing import Any

import zmq

__all__ = [
    "DONTWAIT",
    "EAGAIN",
    "ENOTSOCK",
    "ETERM",
    "EVENTS",
    "FD",
    "POLLERR",
    "POLLIN",
    "POLLOUT",
    "POLLPRI",
    "RCVMORE",
    "RCVTIMEO",
    "REP",
    "REQ",
    "ROUTER",
    "SNDMORE",
    "SNDTIMEO",
    "TYPE",
    "as_int",
]

DONTWAIT = int(zmq.DONTWAIT)
SNDMORE = int(zmq.SNDMORE)
POLLIN = int(zmq.POLLIN)
POLLOUT = int(zmq.POLLOUT)
POLLERR = int(zmq.POLLERR)
POLLPRI = int(zmq.POLLPRI)
EVENTS = int(zmq.EVENTS)
FD = int(zmq.FD)
RCVMORE = int(zmq.RCVMORE)
RCVTIMEO = int(zmq.RCVTIMEO)
SNDTIMEO = int(zmq.SNDTIMEO)
ROUTER = int(zmq.ROUTER)
REQ = int(zmq.REQ)
REP = int(zmq.REP)
TYPE = int(zmq.TYPE)


def as_int(value: Any) -> int:
    """*value* (flags, a timeout) as a plain int, converted as pyzmq's backend converts
    its C integers: anything with ``__int__`` (floats truncate), never text."""
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError("an integer is required")
    try:
        return int(value)
    except TypeError:
        raise TypeError("an integer is required") from None


EAGAIN = int(zmq.EAGAIN)
ETERM = int(zmq.ETERM)
ENOTSOCK = int(zmq.ENOTSOCK)
