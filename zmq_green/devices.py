"""The device classes of :mod:`zmq.devices`, for gevent programs.

* ``Device``, ``Proxy``, ``ProxySteerable``, ``MonitoredQueue`` run in the
  greenlet that calls ``start()``, blocking only it (the green :func:`proxy` and
  :func:`monitored_queue`). ``join()`` waits greenly for ``start()`` to return.
* ``Thread*`` run in a real OS thread, even after ``gevent.monkey.patch_all()``
  (a patched ``threading.Thread`` would be a greenlet, and the blocking C proxy
  would freeze the hub); ``join()`` blocks only the calling greenlet. Their
  sockets come from ``zmq_green.Context.instance()``: terminating it ends them.
* ``Process*`` run in a child process, as in pyzmq; ``join()`` is green.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any, Callable, NoReturn

import zmq
import zmq.devices as _zd

from ._ints import POLLIN, ROUTER
from .context import Context
from .device import Completion, NativeThread, green_socket, proxy, proxy_steerable
from .poll import Poller

__all__ = [
    "Device",
    "MonitoredQueue",
    "ProcessDevice",
    "ProcessMonitoredQueue",
    "ProcessProxy",
    "ProcessProxySteerable",
    "Proxy",
    "ProxySteerable",
    "ThreadDevice",
    "ThreadMonitoredQueue",
    "ThreadProxy",
    "ThreadProxySteerable",
    "monitored_queue",
]


def monitored_queue(
    in_socket: zmq.Socket[Any],
    out_socket: zmq.Socket[Any],
    mon_socket: zmq.Socket[Any],
    in_prefix: bytes = b"in",
    out_prefix: bytes = b"out",
) -> NoReturn:
    """Start a monitored queue device, blocking only the calling greenlet.

    See :func:`zmq.devices.monitored_queue`: a queue between *in_socket* and
    *out_socket* (both may be ROUTERs: the first two frames are then swapped) that
    sends every message, prefixed with *in_prefix* or *out_prefix*, on *mon_socket*.
    It runs as a greenlet loop, so that killing the calling greenlet stops it.

    Parameters
    ----------
    in_socket : zmq.Socket
        One side of the queue; its messages are prefixed with *in_prefix*.
    out_socket : zmq.Socket
        The other side; its messages are prefixed with *out_prefix*.
    mon_socket : zmq.Socket
        Gets a copy of every message, after its prefix.
    in_prefix, out_prefix : bytes
        The prefixes of each direction on *mon_socket*.
    """
    ins, outs, mons = (green_socket(s) for s in (in_socket, out_socket, mon_socket))
    swap_ids = ins.type == ROUTER and outs.type == ROUTER
    routes = {ins: (outs, in_prefix), outs: (ins, out_prefix)}
    poller = Poller()
    poller.register(ins, POLLIN)
    poller.register(outs, POLLIN)
    while True:
        for source, _ in poller.poll():
            target, prefix = routes[source]
            msg = source.recv_multipart(copy=False)
            if swap_ids:
                msg[0], msg[1] = msg[1], msg[0]
            target.send_multipart(msg, copy=False)
            mons.send_multipart([prefix, *msg], copy=False)


class _Foreground:
    """Runs in the greenlet that calls ``start()``; ``join()`` waits for it greenly."""

    context_factory: Callable[[], zmq.Context[Any]] = Context.instance

    def _finished(self) -> Completion:
        finished: Completion = self.__dict__.setdefault("_finished_flag", Completion())
        return finished

    def run(self) -> None:
        try:
            super().run()  # type: ignore[misc]
        finally:
            self._finished().set()

    def join(self, timeout: float | None = None) -> None:
        """Wait until the device stops or *timeout* seconds pass, blocking only the calling greenlet."""
        self._finished().wait(timeout)


class _DeviceThread(NativeThread):
    """A device's launcher: a real OS thread that reports an error as ``threading`` would."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(_reporting, (target,))


def _reporting(target: Callable[[], Any]) -> None:
    try:
        target()
    except BaseException:
        print(f"Exception in device thread {target!r}:", file=sys.stderr)
        traceback.print_exc()
        raise


class _InThread:
    """Runs in a real OS thread; sockets from the green context instance."""

    context_factory: Callable[[], zmq.Context[Any]] = Context.instance
    _launch_class: Any = _DeviceThread


class _InProcess:
    """Runs in a child process, as in pyzmq; ``join()`` waits greenly."""

    launcher: Any

    def join(self, timeout: float | None = None) -> None:
        """Wait until the device process ends or *timeout* seconds pass, blocking only the calling greenlet."""
        poller = Poller()
        poller.register(self.launcher.sentinel, POLLIN)
        if poller.poll(None if timeout is None else int(timeout * 1000)):
            # The child has closed its fds; reaping it waits for the rest of its exit,
            # a matter of microseconds.
            self.launcher.join()


class Device(_Foreground, _zd.Device):
    """A 0MQ device run in the calling greenlet; see :class:`zmq.devices.Device`.

    ``start()`` blocks only the calling greenlet, until the context is terminated
    or the greenlet is killed (which stops the device at once).
    """

    def run_device(self) -> None:
        """The runner method: set up the sockets and run the green :func:`zmq_green.proxy`."""
        proxy(*self._setup_sockets())


class ThreadDevice(_InThread, _zd.ThreadDevice):
    """A Device run in a real OS thread; see :class:`zmq.devices.ThreadDevice`."""


class ProcessDevice(_InProcess, _zd.ProcessDevice):
    """A Device run in a child process; see :class:`zmq.devices.ProcessDevice`."""


class Proxy(Device, _zd.Proxy):
    """A Proxy run in the calling greenlet; see :class:`zmq.devices.Proxy`."""

    def run_device(self) -> None:
        """The runner method: set up the sockets and run the green :func:`zmq_green.proxy`."""
        proxy(*self._setup_sockets())  # type: ignore[no-untyped-call]


class ThreadProxy(ThreadDevice, _zd.ThreadProxy):
    """A Proxy run in a real OS thread; see :class:`zmq.devices.ThreadProxy`."""


class ProcessProxy(ProcessDevice, _zd.ProcessProxy):
    """A Proxy run in a child process; see :class:`zmq.devices.ProcessProxy`."""


class ProxySteerable(Proxy, _zd.ProxySteerable):
    """A steerable Proxy run in the calling greenlet; see :class:`zmq.devices.ProxySteerable`."""

    def run_device(self) -> None:
        """The runner method: set up the sockets and run the green :func:`zmq_green.proxy_steerable`."""
        proxy_steerable(*self._setup_sockets())  # type: ignore[no-untyped-call]


class ThreadProxySteerable(ThreadProxy, _zd.ThreadProxySteerable):
    """A steerable Proxy run in a real OS thread; see :class:`zmq.devices.ThreadProxySteerable`."""


class ProcessProxySteerable(ProcessProxy, _zd.ProcessProxySteerable):
    """A steerable Proxy run in a child process; see :class:`zmq.devices.ProcessProxySteerable`."""


class MonitoredQueue(Proxy, _zd.MonitoredQueue):
    """A monitored queue run in the calling greenlet; see :class:`zmq.devices.MonitoredQueue`."""

    def run_device(self) -> None:
        """The runner method: set up the sockets and run the green :func:`monitored_queue`."""
        ins, outs, mons = self._setup_sockets()  # type: ignore[no-untyped-call]
        monitored_queue(ins, outs, mons, self._in_prefix, self._out_prefix)


class ThreadMonitoredQueue(ThreadProxy, _zd.ThreadMonitoredQueue):
    """A monitored queue run in a real OS thread; see :class:`zmq.devices.ThreadMonitoredQueue`."""


class ProcessMonitoredQueue(ProcessProxy, _zd.ProcessMonitoredQueue):
    """A monitored queue run in a child process; see :class:`zmq.devices.ProcessMonitoredQueue`."""
