"""Many greenlets sharing ONE socket: the case ``zmq.green`` cannot handle.

100 greenlets send on a single PUSH socket whose high-water mark is only 10,
so most of them are blocked in ``send`` at the same time, waiting their turn.
One PULL receiver takes every message and checks that none is missing and
that each sender's messages arrive in the order it sent them.

With pyzmq's ``zmq.green`` the second greenlet to block on the socket raises
``AssertionError: Only one greenlet can be waiting on this event``; here they
simply queue up, first come, first served.

Run it::

    python examples/shared_socket.py
    python examples/shared_socket.py --greenlets 500 --messages 20

It prints the messages moved, the wall time, how many senders were active at
once, and ``zmq_green.stats()``. It exits with status 1 if a message is missing
or if the safety timeout ever had to rescue a missed wake-up.
"""

from __future__ import annotations

import argparse
import time

import gevent

import zmq_green as zmq


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Many greenlets sending on one PUSH socket.")
    parser.add_argument("--greenlets", type=int, default=100, help="senders sharing the socket")
    parser.add_argument("--messages", type=int, default=100, help="messages per sender")
    args = parser.parse_args(argv)
    total = args.greenlets * args.messages

    ctx = zmq.Context()
    receiver = ctx.socket(zmq.PULL)
    receiver.rcvhwm = 10
    receiver.bind("inproc://shared")
    push = ctx.socket(zmq.PUSH)  # the one socket every sender uses
    push.sndhwm = 10
    push.connect("inproc://shared")

    active = peak = 0

    def sender(n: int) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        for seq in range(args.messages):
            push.send_multipart([b"%d" % n, b"%d" % seq])  # blocks only this greenlet
        active -= 1

    def receive() -> dict[int, list[int]]:
        seen: dict[int, list[int]] = {}
        for _ in range(total):
            n, seq = receiver.recv_multipart()
            seen.setdefault(int(n), []).append(int(seq))
        return seen

    start = time.perf_counter()
    sink = gevent.spawn(receive)
    gevent.joinall([gevent.spawn(sender, n) for n in range(args.greenlets)], raise_error=True)
    seen = sink.get()
    elapsed = time.perf_counter() - start
    ctx.destroy(linger=0)

    expected = list(range(args.messages))
    complete = sum(len(seqs) for seqs in seen.values() if seqs == expected)
    stats = zmq.stats()
    print(f"moved {complete}/{total} messages from {args.greenlets} greenlets on one PUSH socket (SNDHWM 10)")
    print(f"wall time {elapsed:.3f} s ({total / elapsed:,.0f} msg/s)")
    print(f"peak senders active at once: {peak}/{args.greenlets}")
    print(f"stats: {stats}")
    if complete != total or stats["rescues"] or stats["lied_rescues"]:
        print("FAILED: messages missing or out of order, or a wake-up was missed")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
