"""A WSGI app for gunicorn's gevent worker whose requests call a zmq backend.

Run it, from the repository root, with the backend of gunicorn_backend.py::

    python examples/gunicorn_backend.py tcp://127.0.0.1:5555
    ZMQ_BACKEND=tcp://127.0.0.1:5555 gunicorn -k gevent -w 2 --chdir examples gunicorn_app:application
    curl 'http://127.0.0.1:8000/?n=7'      # {"n": 7, "square": 49, "worker": 12345}

gevent.pywsgi serves the same app in pywsgi_app.py.

One DEALER socket per worker process
------------------------------------
Every request greenlet of a worker sends on the worker's one DEALER socket,
``[request id, number]``; a reader greenlet receives the replies and hands each
to the greenlet waiting for its id. This is the design to copy, rather than a
pool of REQ sockets:

* One connection per worker whatever the load. A pool caps the requests in
  flight at its size (the next one waits for a socket, not for the backend) and
  has to be sized per deployment.
* Timeouts are cheap: a request that gives up forgets its id and a late reply
  is dropped. A REQ socket whose reply never came is stuck in its send/receive
  lockstep and must be closed and replaced.
* The backend may answer out of order, which is what lets it work on many
  requests at once.

zmq_green makes the sharing safe: any number of greenlets may send on one
socket at once, and frames of different messages are never interleaved.

The socket is made in the worker process, on its first request: a zmq socket
must not cross a ``fork()``, and gunicorn forks its workers (after importing
the app, with ``--preload``).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable
from typing import Any, Callable
from urllib.parse import parse_qs

import gevent
from gevent.event import AsyncResult

import zmq_green as zmq

TIMEOUT = 5.0  # seconds a request waits for the backend


class BackendClient:
    """Calls to the backend from any number of greenlets over one DEALER socket."""

    def __init__(self, endpoint: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(endpoint)
        self._ids = itertools.count()
        self._waiting: dict[bytes, AsyncResult] = {}
        self._reader = gevent.spawn(self._read_replies)

    def call(self, payload: bytes, timeout: float) -> bytes:
        """Send *payload*, wait for its reply (``gevent.Timeout`` after *timeout* s)."""
        request_id = b"%d" % next(self._ids)
        reply = self._waiting[request_id] = AsyncResult()
        try:
            self.socket.send_multipart([request_id, payload])
            result: bytes = reply.get(timeout=timeout)
            return result
        finally:
            del self._waiting[request_id]

    def _read_replies(self) -> None:
        while True:
            request_id, payload = self.socket.recv_multipart()
            reply = self._waiting.get(request_id)
            if reply is not None:  # else: its caller gave up waiting
                reply.set(payload)


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class SquareApp:
    """WSGI app: ``GET /?n=<integer>`` answers ``{"n", "square", "worker"}`` as JSON.

    The squaring is done by the backend at *endpoint*; after *timeout* seconds
    without its reply the answer is ``504``.
    """

    def __init__(self, endpoint: str, timeout: float = TIMEOUT) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._client: BackendClient | None = None
        self._pid = 0

    def client(self) -> BackendClient:
        """This process's client, made on first use (so never inherited across a fork)."""
        if self._client is None or self._pid != os.getpid():
            self._client = BackendClient(self.endpoint)
            self._pid = os.getpid()
        return self._client

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            n = int(parse_qs(environ.get("QUERY_STRING", ""))["n"][0])
        except (KeyError, ValueError):
            return respond(start_response, "400 Bad Request", {"error": "use ?n=<integer>"})
        try:
            square = int(self.client().call(b"%d" % n, self.timeout))
        except gevent.Timeout:
            return respond(start_response, "504 Gateway Timeout", {"error": "the backend did not answer"})
        return respond(start_response, "200 OK", {"n": n, "square": square, "worker": os.getpid()})


def respond(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


application = SquareApp(os.environ.get("ZMQ_BACKEND", "tcp://127.0.0.1:5555"))
