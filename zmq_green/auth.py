"""ZAP authentication in a greenlet: :class:`GreenAuthenticator`.

pyzmq's :class:`zmq.auth.thread.ThreadAuthenticator` answers ZAP requests from an
OS thread running an asyncio loop. :class:`GreenAuthenticator` has the same API
and the same policy logic (it is a :class:`zmq.auth.Authenticator`), but serves
the ZAP endpoint from a greenlet on a green ``ROUTER`` socket: no thread, no
event loop, and each request is handled in a greenlet of its own, so a
credentials callback may do green I/O (a database lookup) without holding up
the other handshakes.

Usage::

    import zmq_green as zmq
    from zmq_green.auth import GreenAuthenticator, load_certificate

    auth = GreenAuthenticator()          # serves zmq_green.Context.instance()
    auth.start()
    auth.allow("127.0.0.1")
    auth.configure_curve(domain="*", location="public_keys/")
    ...
    auth.stop()

The certificate helpers of :mod:`zmq.auth` (:func:`create_certificates`,
:func:`load_certificate`, :func:`load_certificates`) and
:data:`CURVE_ALLOW_ANY` are available here too.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import gevent
import zmq
from gevent.pool import Group
from greenlet import getcurrent
from zmq.auth import CURVE_ALLOW_ANY, Authenticator, create_certificates, load_certificate, load_certificates
from zmq.auth.base import VERSION as ZAP_VERSION

from .context import Context
from .socket import Socket

__all__ = [
    "CURVE_ALLOW_ANY",
    "ZAP_ENDPOINT",
    "GreenAuthenticator",
    "create_certificates",
    "load_certificate",
    "load_certificates",
]

#: Where libzmq sends a context's ZAP requests (RFC 27).
ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class GreenAuthenticator(Authenticator):
    """ZAP authentication served by a greenlet; the API of :class:`zmq.auth.thread.ThreadAuthenticator`.

    Configure it with :meth:`allow`, :meth:`deny`, :meth:`configure_plain`,
    :meth:`configure_curve`, :meth:`configure_curve_callback` and
    :meth:`configure_gssapi`, as any :class:`zmq.auth.Authenticator`, before or
    after :meth:`start`.

    Each ZAP request is handled in its own greenlet. A credentials provider's
    ``callback`` may block greenly; if it returns an awaitable, that must complete
    without suspending (there is no asyncio loop to resume it). A request whose
    handling raises is logged and refused with ZAP status ``500``.

    Parameters
    ----------
    context : zmq.Context, optional
        The context whose sockets are authenticated; default
        ``zmq_green.Context.instance()``. A native context works too: the ZAP
        socket is green whatever the context.
    encoding : str
        Encoding of domains, addresses, user names and passwords.
    log : logging.Logger, optional
        Where to log; default the ``zmq.auth`` logger.
    """

    def __init__(
        self, context: zmq.Context[Any] | None = None, encoding: str = "utf-8", log: Any = None
    ) -> None:
        context = context if context is not None else Context.instance()
        super().__init__(context=context, encoding=encoding, log=log)
        self._server: gevent.Greenlet[..., None] | None = None
        self._handlers = Group()
        # The ROUTER envelope of the request each handler greenlet is answering.
        self._envelopes: dict[Any, list[bytes]] = {}

    def start(self) -> None:
        """Bind the ZAP socket and start serving it in a greenlet.

        Raises
        ------
        zmq.ZMQError
            If another handler already serves the context's ZAP endpoint
            (``EADDRINUSE``).
        """
        self.zap_socket = self.context.socket(zmq.ROUTER, socket_class=Socket)
        self.zap_socket.linger = 1
        self.zap_socket.bind(ZAP_ENDPOINT)
        self._server = gevent.spawn(self._serve, self.zap_socket)
        self.log.debug("Starting")

    def stop(self) -> None:
        """Stop serving: end the greenlets and close the ZAP socket.

        Handshakes waiting for an answer then fail. Calling it again does nothing.
        """
        if self._server is not None:
            self._server.kill()
            self._server = None
        self._handlers.kill()
        super().stop()

    def is_alive(self) -> bool:
        """Whether the ZAP greenlet is serving.

        Returns
        -------
        alive : bool
            True between :meth:`start` and :meth:`stop`.
        """
        return self._server is not None and not self._server.dead

    def _serve(self, socket: Socket[Any]) -> None:
        while True:
            frames: list[bytes] = socket.recv_multipart()
            try:
                split = frames.index(b"") + 1
            except ValueError:
                self.log.error("Invalid ZAP request, no envelope delimiter: %r", frames)
                continue
            self._handlers.spawn(self._handle, frames[:split], frames[split:])

    def _handle(self, envelope: list[bytes], request: list[bytes]) -> None:
        me = getcurrent()
        self._envelopes[me] = envelope
        try:
            _run_to_end(self.handle_zap_message(request))
        except Exception:
            self.log.exception("ZAP request failed: %r", request)
            if len(request) > 1:
                self._send_zap_reply(request[1], b"500", b"Internal error")
        finally:
            del self._envelopes[me]

    def _send_zap_reply(
        self,
        request_id: bytes,
        status_code: bytes,
        status_text: bytes,
        user_id: str = "anonymous",
    ) -> None:
        """Answer the current greenlet's ZAP request through its ROUTER envelope (RFC 27)."""
        user = user_id.encode(self.encoding, "replace") if status_code == b"200" else b""
        self.log.debug("ZAP reply code=%s text=%s", status_code, status_text)
        reply = [ZAP_VERSION, request_id, status_code, status_text, user, b""]
        self.zap_socket.send_multipart(self._envelopes[getcurrent()] + reply)


def _run_to_end(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never suspends (the base class's handler) to its end."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("a ZAP credentials callback awaited something: under gevent, block greenly instead")
