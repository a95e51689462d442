"""Count how often libzmq's CONFLATE hides the last message over tcp, with pyzmq alone.

libzmq's conflate buffer (``src/dbuffer.hpp``) publishes a write only if
``try_lock`` succeeds; when the other thread (the I/O thread, or the reading
application thread) holds the lock at that instant, the message stays in the
back slot until the next write. If it was the last message, a reader never gets
it. PUSH/PULL over tcp, CONFLATE on both, 100 messages sent, then the reader
reads until message 99 or until ``RCVTIMEO`` expires. No gevent involved: this
is the ground truth zmq_green's tests must allow for. Run it beside CPU hogs to
see the race; on an idle machine it is rare.

Usage: python tools/conflate_race.py [RUNS]   (default 300)
"""

from __future__ import annotations

import sys

import zmq


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    ctx = zmq.Context()
    hidden = 0
    for _ in range(runs):
        pull = ctx.socket(zmq.PULL)
        push = ctx.socket(zmq.PUSH)
        pull.conflate = push.conflate = 1
        pull.linger = push.linger = 0
        pull.rcvtimeo = 300
        pull.bind("tcp://127.0.0.1:*")
        push.connect(pull.last_endpoint)
        for i in range(100):
            push.send(b"%d" % i)
        try:
            while int(pull.recv()) < 99:
                pass
        except zmq.Again:
            hidden += 1
        pull.close()
        push.close()
    ctx.term()
    print(
        f"last message hidden: {hidden} of {runs} runs (pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()})"
    )


if __name__ == "__main__":
    main()
