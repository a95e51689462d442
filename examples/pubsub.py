"""Publish/subscribe between greenlets, with topic filtering and no lost messages.

A publisher greenlet sends ``[topic, payload]`` messages on several topics;
subscriber greenlets, each with its own SUB socket, receive only the topics they
subscribed to (a subscription matches every topic that starts with it).

The slow-joiner problem: a PUB socket drops messages for a subscriber whose
subscription has not reached it yet, so publishing right after ``connect``
loses the first messages. A sleep only makes that less likely. Here the
publisher uses an XPUB socket, which hands it every subscription as a message
(``XPUB_VERBOSE`` so that two subscribers to one topic are both reported), and
it starts publishing once every subscription has arrived. While it waits in
``recv``, the subscribers keep running: only its greenlet is blocked.

Run it::

    python examples/pubsub.py
"""

from __future__ import annotations

from collections import Counter

import gevent

import zmq_green as zmq

MESSAGES = 20  # per topic
TOPICS = [b"weather", b"sports", b"news", b"stocks"]
SUBSCRIBERS = {  # name -> subscriptions; nobody follows "stocks"
    "forecaster": [b"weather"],
    "fan": [b"sports"],
    "reader": [b"news", b"weather"],
}


def publisher(xpub: zmq.Socket) -> None:
    """Wait for every subscription, then publish MESSAGES per topic and an END on each."""
    pending = sum(len(topics) for topics in SUBSCRIBERS.values())
    while pending:
        event = xpub.recv()  # b"\x01" + topic on subscribe, b"\x00" + topic on unsubscribe
        if event[0] == 1:
            pending -= 1
    for i in range(MESSAGES):
        for topic in TOPICS:
            xpub.send_multipart([topic, b"%s #%d" % (topic, i)])
    for topic in TOPICS:
        xpub.send_multipart([topic, b"END"])


def subscriber(ctx: zmq.Context, endpoint: str, topics: list[bytes]) -> Counter[bytes]:
    """Receive until every subscribed topic has ended; count messages by topic."""
    received: Counter[bytes] = Counter()
    with ctx.socket(zmq.SUB) as sub:
        for topic in topics:
            sub.subscribe(topic)
        sub.connect(endpoint)
        ended: set[bytes] = set()
        while len(ended) < len(topics):
            topic, payload = sub.recv_multipart()
            if payload == b"END":
                ended.add(topic)
            else:
                received[topic] += 1
    return received


def main() -> int:
    ctx = zmq.Context()
    xpub = ctx.socket(zmq.XPUB)
    xpub.xpub_verbose = 1
    xpub.bind("tcp://127.0.0.1:*")
    endpoint = xpub.last_endpoint.decode()

    with gevent.Timeout(30):  # a demo must never hang
        publishing = gevent.spawn(publisher, xpub)
        subs = {name: gevent.spawn(subscriber, ctx, endpoint, topics) for name, topics in SUBSCRIBERS.items()}
        gevent.joinall([publishing, *subs.values()], raise_error=True)
    ctx.destroy(linger=0)

    ok = True
    for name, topics in SUBSCRIBERS.items():
        received = subs[name].value
        expected = Counter({topic: MESSAGES for topic in topics})
        ok = ok and received == expected
        shown = ", ".join(f"{t.decode()}={n}" for t, n in sorted(received.items()))
        print(f"{name} subscribed to {b'+'.join(topics).decode()}: received {shown}")
    print(f"published {MESSAGES} messages on each of {len(TOPICS)} topics over {endpoint}")
    if not ok:
        print("FAILED: a subscriber missed a message or got a topic it did not subscribe to")
        return 1
    print("OK: every subscriber got every message of its topics and nothing else")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
