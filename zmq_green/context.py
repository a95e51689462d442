"""Green :class:`Context`: sockets are green, and term/destroy block only the caller."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import zmq
from gevent._hub_local import get_hub_if_exists
from greenlet import getcurrent

from .socket import Socket

__all__ = ["Context", "run_off_thread"]

_T = TypeVar("_T")
# pyzmq's own term, bound now: once zmq_green.monkey has patched zmq, zmq.Context is ours.
_native_term = zmq.Context.term


def run_off_thread(func: Callable[..., _T], *args: Any) -> _T:
    """Run a call that blocks inside libzmq (GIL released) in gevent's native threadpool.

    The calling greenlet waits cooperatively; other greenlets keep running. From
    the hub itself, or where no hub runs, the call is made inline: there is no
    greenlet to give the time to.
    """
    hub = get_hub_if_exists()
    if hub is None or getcurrent() is hub:
        return func(*args)
    return hub.threadpool.spawn(func, *args).get()  # type: ignore[no-any-return]


_Socket_co = TypeVar("_Socket_co", bound=Socket[Any], covariant=True)


class Context(zmq.Context[_Socket_co]):
    """Green version of :class:`zmq.Context`.

    Its sockets are :class:`zmq_green.Socket`. :meth:`term` and :meth:`destroy`
    block only the calling greenlet: libzmq's blocking termination runs in gevent's
    threadpool, and greenlets waiting on the context's sockets get
    :class:`zmq.ContextTerminated` (``ETERM``) as in pyzmq.
    :meth:`instance` is a green singleton, separate from ``zmq.Context.instance()``.
    """

    _socket_class: type[_Socket_co] = Socket  # type: ignore[assignment]
    _repr_cls = "zmq_green.Context"
    # A singleton of our own, never zmq.Context's.
    _instance: Any = None
    _instance_pid: int | None = None
    _in_del = False

    def term(self) -> None:
        """Terminate the context, blocking only the calling greenlet.

        See :meth:`zmq.Context.term`: blocking operations on its sockets raise
        :class:`zmq.ContextTerminated`; term returns once every socket is closed and
        its messages are sent or its linger period is over.
        """
        if self._in_del:
            # From a finalizer: switching greenlets here is not safe.
            _native_term(self)
            return
        run_off_thread(_native_term, self)

    def __del__(self) -> None:
        self._in_del = True
        super().__del__()
