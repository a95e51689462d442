"""gunicorn_app.py's WSGI app served by gevent.pywsgi, with its backend in the same process.

Run it::

    python examples/pywsgi_app.py [PORT]
    curl 'http://127.0.0.1:8000/?n=7'      # {"n": 7, "square": 49, "worker": 12345}

``PORT`` defaults to 8000 (0 picks a free one); the URL served is printed first.

One process, one thread: the HTTP server, every request, the app's reply reader
and the backend's handlers (gunicorn_backend.py's ``serve``) are all greenlets
of one hub. App and backend talk over ``inproc://``, which needs them to share
a context: both use ``zmq_green.Context.instance()``. No monkey patching is
needed, as every wait goes through zmq_green or gevent.
"""

from __future__ import annotations

import sys

import gevent
from gevent.pywsgi import WSGIServer
from gunicorn_app import SquareApp
from gunicorn_backend import serve

import zmq_green as zmq

BACKEND = "inproc://square-backend"


def main(argv: list[str]) -> None:
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.bind(BACKEND)
    gevent.spawn(serve, router)
    server = WSGIServer(("127.0.0.1", int(argv[0]) if argv else 8000), SquareApp(BACKEND))
    server.start()
    print(f"serving http://127.0.0.1:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
