"""A request-reply broker made of two ZMQStreams.

Clients (REQ) connect to the broker's ROUTER frontend, workers (REP) to its DEALER
backend. The broker is two callbacks: whatever arrives on one stream is queued on
the other, envelopes included, so replies find their way back to the client that
asked. The DEALER spreads the requests over the workers; clients and workers are
greenlets in the same thread as the IOLoop, all served at once.

Run it::

    python examples/eventloop/broker.py
"""

from __future__ import annotations

from collections import Counter

import gevent

import zmq_green as zmq
from zmq_green.eventloop import ioloop, zmqstream

CLIENTS = 10
WORKERS = 4
REQUESTS = 20


def worker(ctx: zmq.Context, endpoint: str, name: str) -> None:
    """Answer requests with their upper-cased text and the worker's name, forever."""
    with ctx.socket(zmq.REP) as rep:
        rep.connect(endpoint)
        while True:
            request = rep.recv()
            gevent.sleep(0.001)  # some work, during which the other greenlets run
            rep.send_multipart([request.upper(), name.encode()])


def client(ctx: zmq.Context, endpoint: str, me: int) -> tuple[int, Counter[str]]:
    """Send REQUESTS requests; return how many replies were right, and who answered."""
    with ctx.socket(zmq.REQ) as req:
        req.rcvtimeo = 5000
        req.connect(endpoint)
        right = 0
        answered_by: Counter[str] = Counter()
        for i in range(REQUESTS):
            request = f"client {me} request {i}".encode()
            req.send(request)
            reply, name = req.recv_multipart()
            right += reply == request.upper()
            answered_by[name.decode()] += 1
        return right, answered_by


def main() -> int:
    loop = ioloop.IOLoop.current()
    ctx = zmq.Context()
    frontend = zmqstream.ZMQStream(ctx.socket(zmq.ROUTER), loop)
    backend = zmqstream.ZMQStream(ctx.socket(zmq.DEALER), loop)
    frontend.bind("tcp://127.0.0.1:*")
    backend.bind("tcp://127.0.0.1:*")
    frontend_endpoint = frontend.socket.last_endpoint.decode()
    backend_endpoint = backend.socket.last_endpoint.decode()

    # The whole broker: each stream forwards to the other.
    frontend.on_recv(backend.send_multipart)
    backend.on_recv(frontend.send_multipart)

    workers = [gevent.spawn(worker, ctx, backend_endpoint, f"worker{n}") for n in range(WORKERS)]
    clients = [gevent.spawn(client, ctx, frontend_endpoint, me) for me in range(CLIENTS)]
    gevent.spawn(gevent.joinall, clients).link(lambda _: loop.add_callback(loop.stop))
    deadline = loop.call_later(30, loop.stop)  # a demo must never hang
    loop.start()
    loop.remove_timeout(deadline)
    results = [c.get(timeout=5) for c in clients]
    gevent.killall(workers)
    frontend.close()
    backend.close()
    ctx.term()

    right = sum(r for r, _ in results)
    answered_by = sum((by for _, by in results), Counter())
    total = CLIENTS * REQUESTS
    print(f"broker {frontend_endpoint} -> {backend_endpoint}")
    print(f"correct replies: {right}/{total}")
    print("requests per worker: " + ", ".join(f"{n}={c}" for n, c in sorted(answered_by.items())))
    if right != total or len(answered_by) != WORKERS:
        print("FAILED")
        return 1
    print(f"OK: {CLIENTS} clients served by {WORKERS} workers through one broker")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
