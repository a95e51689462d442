"""One callback serving two ZMQStreams, with ``on_recv_stream``.

``on_recv_stream`` passes the stream to the callback along with the message, so a
single ``echo`` can answer on whichever stream the message came from. Two REP
servers share it; a client greenlet per server talks to its own one, and every
reply must come back through the stream that received the request.

Run it::

    python examples/eventloop/echostream.py
"""

from __future__ import annotations

import gevent

import zmq_green as zmq
from zmq_green.eventloop import ioloop, zmqstream

REQUESTS = 50


def main() -> int:
    loop = ioloop.IOLoop.current()
    ctx = zmq.Context()
    served: dict[zmqstream.ZMQStream, int] = {}

    def echo(stream: zmqstream.ZMQStream, msg: list[bytes]) -> None:
        served[stream] += 1
        stream.send_multipart(msg)

    streams = []
    for _ in range(2):
        socket = ctx.socket(zmq.REP)
        socket.bind("tcp://127.0.0.1:*")
        stream = zmqstream.ZMQStream(socket, loop)
        stream.on_recv_stream(echo)
        served[stream] = 0
        streams.append(stream)

    def client(name: str, endpoint: str) -> int:
        """Send REQUESTS messages to one server; count the right echoes."""
        with ctx.socket(zmq.REQ) as req:
            req.rcvtimeo = 5000
            req.connect(endpoint)
            right = 0
            for i in range(REQUESTS):
                msg = [name.encode(), b"%d" % i]
                req.send_multipart(msg)
                right += req.recv_multipart() == msg
            return right

    clients = [
        gevent.spawn(client, f"client{n}", stream.socket.last_endpoint.decode())
        for n, stream in enumerate(streams, 1)
    ]
    gevent.spawn(gevent.joinall, clients).link(lambda _: loop.add_callback(loop.stop))
    deadline = loop.call_later(30, loop.stop)  # a demo must never hang
    loop.start()
    loop.remove_timeout(deadline)
    rights = [c.get(timeout=5) for c in clients]
    counts = [served[s] for s in streams]
    for stream in streams:
        stream.close()
    ctx.term()

    for n, (right, count) in enumerate(zip(rights, counts), 1):
        print(f"stream {n} echoed {count} messages; client{n} got {right}/{REQUESTS} right")
    if rights != [REQUESTS, REQUESTS] or counts != [REQUESTS, REQUESTS]:
        print("FAILED")
        return 1
    print("OK: one callback served both streams")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
