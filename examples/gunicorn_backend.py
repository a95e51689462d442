"""The backend of gunicorn_app.py: a ROUTER socket that squares numbers, many at once.

Each request takes 100 ms of work (``gevent.sleep`` standing in for the I/O a real
backend waits for: a database, another service) and is handled by a greenlet of
its own, so 100 requests take about 100 ms, not 10 s. All the handlers answer on
the one ROUTER socket: with zmq_green any number of greenlets may send on it.

Run it::

    python examples/gunicorn_backend.py [ENDPOINT]

``ENDPOINT`` defaults to ``tcp://127.0.0.1:5555`` (``tcp://127.0.0.1:*`` picks a
free port); the endpoint actually bound is printed on the first line.
"""

from __future__ import annotations

import sys

import gevent

import zmq_green as zmq

WORK_SECONDS = 0.1


def answer(router: zmq.Socket, envelope: list[bytes], payload: bytes) -> None:
    """Do the work for one request and send the reply back along its envelope."""
    gevent.sleep(WORK_SECONDS)
    router.send_multipart([*envelope, b"%d" % (int(payload) ** 2)])


def serve(router: zmq.Socket) -> None:
    """Receive requests forever; each is answered by a greenlet of its own.

    A request is ``[client identity, request id, number]``: everything before the
    number is the envelope the reply goes back with.
    """
    while True:
        *envelope, payload = router.recv_multipart()
        gevent.spawn(answer, router, envelope, payload)


def main(argv: list[str]) -> None:
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.bind(argv[0] if argv else "tcp://127.0.0.1:5555")
    print(router.last_endpoint.decode(), flush=True)
    try:
        serve(router)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
