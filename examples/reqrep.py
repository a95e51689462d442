"""Request/reply between greenlets: one REP server, several REQ clients.

A server greenlet answers on a REP socket; each client greenlet has its own REQ
socket (a REQ socket is a strict send/recv/send/recv state machine, so it is one
conversation at a time) and sends a few requests. All of them run in one thread:
every ``send``/``recv`` blocks only the greenlet that makes it, so the server
interleaves the clients' requests as they come.

Clients set ``RCVTIMEO``, as they would with pyzmq: if the server stopped
answering, their ``recv`` would raise ``zmq.Again`` after 5 s. (pyzmq's
``zmq.green`` ignores ``RCVTIMEO`` and would wait forever.)

Run it::

    python examples/reqrep.py
"""

from __future__ import annotations

import gevent

import zmq_green as zmq

CLIENTS = 5
REQUESTS = 10


def server(rep: zmq.Socket, count: int) -> list[int]:
    """Answer *count* requests with the square of the number asked; return who asked, in order."""
    order: list[int] = []
    for _ in range(count):
        client, number = rep.recv_json()
        order.append(client)
        rep.send_json(number * number)
    return order


def client(ctx: zmq.Context, endpoint: str, me: int) -> int:
    """Ask for the squares of REQUESTS numbers; return how many answers were right."""
    with ctx.socket(zmq.REQ) as req:
        req.rcvtimeo = 5000
        req.connect(endpoint)
        right = 0
        for i in range(REQUESTS):
            number = me * 100 + i
            req.send_json([me, number])
            right += req.recv_json() == number * number
        return right


def main() -> int:
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.bind("tcp://127.0.0.1:*")
    endpoint = rep.last_endpoint.decode()

    with gevent.Timeout(30):  # a demo must never hang
        serving = gevent.spawn(server, rep, CLIENTS * REQUESTS)
        clients = [gevent.spawn(client, ctx, endpoint, me) for me in range(CLIENTS)]
        gevent.joinall(clients, raise_error=True)
        order = serving.get()
    ctx.destroy(linger=0)

    right = sum(c.value for c in clients)
    # How often the server went from one client's request to another's: served
    # one after another, the clients would give only CLIENTS - 1 switches.
    switches = sum(a != b for a, b in zip(order, order[1:]))
    print(f"server answered {len(order)} requests from {CLIENTS} clients over {endpoint}")
    print(f"correct replies: {right}/{CLIENTS * REQUESTS}")
    print(f"server switched between clients {switches} times (served concurrently: {switches >= CLIENTS})")
    if right != CLIENTS * REQUESTS or switches < CLIENTS:
        print("FAILED")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
