"""Event-driven zmq on the gevent hub: :class:`IOLoop` and :class:`ZMQStream`.

``zmq_green.eventloop.ioloop.IOLoop`` has tornado's IOLoop API and
``zmq_green.eventloop.zmqstream.ZMQStream`` pyzmq's ZMQStream API, with neither
tornado nor asyncio underneath: the loop runs in a greenlet and waits in a green
poller, so every other greenlet keeps running.
"""

from __future__ import annotations

from .ioloop import IOLoop, PeriodicCallback
from .zmqstream import ZMQStream

__all__ = ["IOLoop", "PeriodicCallback", "ZMQStream"]
