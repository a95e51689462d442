"""Echo server on a ZMQStream: every message a REP socket receives goes back.

The server is event-driven, as with pyzmq's ``zmq.eventloop``: a ZMQStream calls
``echo`` with each message and ``echo`` queues the reply. The IOLoop runs on the
gevent hub, in the main greenlet, so a client greenlet in the same thread can use
plain blocking ``send``/``recv`` while the loop serves it -- no tornado, no
threads.

Run it::

    python examples/eventloop/echo.py
"""

from __future__ import annotations

import gevent

import zmq_green as zmq
from zmq_green.eventloop import ioloop, zmqstream

REQUESTS = 100


def main() -> int:
    loop = ioloop.IOLoop.current()
    ctx = zmq.Context()
    socket = ctx.socket(zmq.REP)
    socket.bind("tcp://127.0.0.1:*")
    endpoint = socket.last_endpoint.decode()
    stream = zmqstream.ZMQStream(socket, loop)

    def echo(msg: list[bytes]) -> None:
        stream.send_multipart(msg)

    stream.on_recv(echo)

    def client() -> int:
        """Send REQUESTS messages and count the right echoes; then stop the loop."""
        with ctx.socket(zmq.REQ) as req:
            req.rcvtimeo = 5000
            req.connect(endpoint)
            right = 0
            for i in range(REQUESTS):
                msg = [b"hello", b"%d" % i]
                req.send_multipart(msg)
                right += req.recv_multipart() == msg
        loop.add_callback(loop.stop)
        return right

    asking = gevent.spawn(client)
    deadline = loop.call_later(30, loop.stop)  # a demo must never hang
    loop.start()  # returns when the client stops it
    loop.remove_timeout(deadline)
    right = asking.get(timeout=5)
    stream.close()
    ctx.term()

    print(f"echoed {right}/{REQUESTS} messages over {endpoint}")
    if right != REQUESTS:
        print("FAILED")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
