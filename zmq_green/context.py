"""Green :class:`Context`: its sockets are green, and term/destroy block only the caller.

How a context terminates
------------------------

``zmq_ctx_term`` blocks until every socket of the context is closed and has sent
its messages or given up on them (``LINGER``). It must run once per context: a
second call, made while the first runs or after it freed the context, is a
use-after-free inside libzmq (it aborts, or a later term hangs). pyzmq only skips
a context already marked closed, and marks it when libzmq returns.

So the first :meth:`Context.term` of a context starts the termination -- pyzmq's
own term, in a :class:`~zmq_green._native.NativeThread` -- and the context keeps
it. Every caller, the first, concurrent ones and later ones, waits for that one
termination to end, and gets the error it raised, if any. Interrupting a caller
(``gevent.Timeout``, a kill, ``KeyboardInterrupt``) ends its wait, not the
termination, which still needs the sockets closed: :meth:`Context.destroy`
closes them and then waits for the running termination instead of starting
another.

The termination does not run in gevent's threadpool: that pool is shared and may
be full, for instance of tasks blocked on this context's sockets that only the
termination would wake with ``ETERM``; and the child of a plain :func:`os.fork`
inherits a pool whose threads it does not have.

A termination belongs to the process that started it. A child of :func:`os.fork`
starts its own (for a context of its parent's it only marks the context closed,
as pyzmq does), and, under the hub it inherited, waits for it blocking its OS
thread, as in the hub itself or a thread without a hub: that hub may lose the
wake-up of a thread's end (see :mod:`zmq_green._native`), and a termination
lasts no longer than its sockets' linger.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import zmq

from ._native import NativeThread, inherited_hub
from .socket import Socket

__all__ = ["Context"]

# pyzmq's own term, bound now: once zmq_green.monkey has patched zmq, zmq.Context is ours.
_native_term = zmq.Context.term

_Socket_co = TypeVar("_Socket_co", bound=Socket[Any], covariant=True)


class Context(zmq.Context[_Socket_co]):
    """Green version of :class:`zmq.Context`.

    Its sockets are :class:`zmq_green.Socket`. :meth:`term` and :meth:`destroy`
    block only the calling greenlet, and terminate the context once however many
    greenlets call them and however often they are interrupted; greenlets waiting
    on the context's sockets get :class:`zmq.ContextTerminated` (``ETERM``) as in
    pyzmq. :meth:`instance` is a green singleton, separate from
    ``zmq.Context.instance()``.
    """

    _socket_class: type[_Socket_co] = Socket  # type: ignore[assignment]
    _repr_cls = "zmq_green.Context"
    # A singleton of our own, never zmq.Context's.
    _instance: Any = None
    _instance_pid: int | None = None
    _in_del = False

    @classmethod
    def instance(cls, io_threads: int = 1) -> Any:
        """The global green context; see :meth:`zmq.Context.instance`.

        As pyzmq, a new one once the current one is closed -- and once its
        termination has begun, if it is still running (its caller was interrupted):
        a terminating context is never handed out.
        """
        current = cls._instance
        if current is not None and os.getpid() in current._terminations():
            cls._instance = None
        return super().instance(io_threads)

    def term(self) -> None:
        """Terminate the context, blocking only the calling greenlet.

        See :meth:`zmq.Context.term`: blocking operations on its sockets raise
        :class:`zmq.ContextTerminated`; term returns once every socket is closed and
        its messages are sent or its linger period is over.

        The first call starts the termination, in a native thread of its own; every
        call, concurrent or later, waits for that same termination and raises what
        it raised. An interrupted call (:class:`gevent.Timeout`, a kill,
        ``KeyboardInterrupt``) leaves the termination running: call :meth:`term`
        again, or :meth:`destroy` to close the sockets it waits for, to wait for
        its end. From the hub, from a thread without a hub, or under a hub
        inherited through a fork, the call blocks the thread, as pyzmq's does.
        """
        if self.closed:
            return
        if self._in_del:
            # From a finalizer: no termination can be running (its thread holds the
            # context), and neither switching greenlets nor starting threads is safe here.
            _native_term(self)
            return
        termination = self._termination()
        if inherited_hub():
            termination.finished.wait_blocking()  # see the module's notes
        else:
            termination.join()
        if termination.exception is not None:
            raise termination.exception

    def destroy(self, linger: int | None = None) -> None:
        """Close all sockets of the context, then terminate it, blocking only the calling greenlet.

        See :meth:`zmq.Context.destroy` and :meth:`term`. If a termination is
        already running (its caller was interrupted), the sockets are closed and
        the call waits for it; a socket that has seen it begin refuses *linger*
        (libzmq takes no options then) and is closed all the same.

        Parameters
        ----------
        linger : int, optional
            If specified, set LINGER on sockets prior to closing them.
        """
        if linger is not None and os.getpid() in self._terminations():
            # A socket that has seen the termination begin (a waiter got ETERM) takes
            # no more options: libzmq refuses LINGER with ETERM, and pyzmq's destroy
            # would stop there, leaving the other sockets open and the termination
            # waiting for them. close(linger) sets what it can and closes anyway.
            for socket in list(self._sockets):
                if not socket.closed:
                    socket.close(linger)
        super().destroy(linger)

    def _terminations(self) -> dict[int, NativeThread]:
        """This context's terminations, by process: the child of a fork has not the thread of its parent's."""
        terminations: dict[int, NativeThread] = self.__dict__.setdefault("_termination_threads", {})
        return terminations

    def _termination(self) -> NativeThread:
        """This context's termination in this process, started by the first caller."""
        # Atomic under the GIL (no Python code runs in dict.setdefault): of callers
        # racing here from several threads, one starts the termination.
        terminations = self._terminations()
        pid = os.getpid()
        termination = terminations.get(pid)
        if termination is None:
            candidate = NativeThread(_native_term, (self,))
            termination = terminations.setdefault(pid, candidate)
            if termination is candidate:
                try:
                    candidate.start()
                except BaseException:  # no thread to be had: the next caller tries again
                    del terminations[pid]
                    raise
        return termination

    def __del__(self) -> None:
        self._in_del = True
        super().__del__()
