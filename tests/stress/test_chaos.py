"""Hundreds of greenlets share sockets while a chaos greenlet kills and times them out.

Each scenario runs one pattern (PUSH/PULL, PUSH/PULL through a green proxy,
DEALER/ROUTER, REQ/REP) over one transport with random high-water marks from 1
to 20. Workers loop on their sockets; some of their calls run under a short
``gevent.Timeout``; a chaos greenlet kills a random worker (or the proxy) every
few milliseconds and a fresh one takes its place. After a bounded time the senders stop, everything in flight is drained,
the sockets are closed under the waiters still blocked on them, and the context
is terminated. Then:

* every message whose send returned was received exactly once, where the pattern
  guarantees delivery (PUSH/PULL, with or without the proxy; DEALER/ROUTER with
  ``ROUTER_MANDATORY`` both ways; requests of REQ/REP, and each reply reaches the
  request it answers);
* no greenlet hangs: all of them end once their socket is closed;
* no wake-up was missed, and fds and hub watchers are back to their starting
  count (the ``resources`` fixture).

A kill or a timeout can only land where the victim is switched out, that is
inside a blocking call: a call that returned has done its work, so recording
its result on the next line cannot be interrupted.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from typing import Any, Callable

import gevent
import gevent.lock
import pytest
from gevent.greenlet import Greenlet

import zmq_green as zmq

from .soak import SOAK_SECONDS

pytestmark = pytest.mark.stress

CHAOS_SECONDS = SOAK_SECONDS or 1.5
#: Time allowed without progress while draining, and to end after the chaos.
SETTLE_SECONDS = 30.0
#: Share of worker calls that run under a short gevent.Timeout.
TIMEOUT_SHARE = 0.1


SENDER, SERVER, DEVICE = "sender", "server", "device"


class Crew:
    """Worker greenlets, a chaos greenlet that kills them, and replacements.

    A *sender* loops until :meth:`stop_sending`; a *server* loops until its socket
    is closed under it (``ENOTSOCK``); a *device* runs a proxy until it is killed.
    A killed worker is replaced by a new one with the same body until the sockets
    are closed. Any other exception is a failure.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.teams: dict[str, set[Greenlet]] = {SENDER: set(), SERVER: set(), DEVICE: set()}
        self.sending = True
        self.chaos_on = True
        self.closing = False
        self.kills = 0
        self.timeouts = 0
        self.errors: list[BaseException] = []
        self._chaos = gevent.spawn(self._kill_now_and_then)

    def spawn(self, body: Callable[[], object], n: int, role: str) -> None:
        for _ in range(n):
            g = gevent.spawn(self._loop, body, role)
            self.teams[role].add(g)
            g.link(lambda g, body=body, role=role: self._ended(g, body, role))

    def _loop(self, body: Callable[[], object], role: str) -> None:
        try:
            while self.sending or role != SENDER:
                body()
        except zmq.ZMQError as e:
            # ENOTSOCK: closed under a waiter; ENOTSUP: Socket.poll after close
            if not (self.closing and e.errno in (zmq.ENOTSOCK, zmq.ENOTSUP)):
                raise

    def _ended(self, g: Greenlet, body: Callable[[], object], role: str) -> None:
        self.teams[role].discard(g)
        if not g.successful():
            self.errors.append(g.exception)
        elif isinstance(g.value, gevent.GreenletExit) and not self.closing:
            # a kill lands after the chaos greenlet sent it, maybe once the chaos is over
            self.spawn(body, 1, role)

    def _kill_now_and_then(self) -> None:
        while self.chaos_on:
            gevent.sleep(self.rng.uniform(0.0005, 0.003))
            # a device is one among hundreds: give it a fair share of the kills
            devices = self.teams[DEVICE] and self.rng.random() < 0.05
            team = self.teams[DEVICE] if devices else self.teams[SENDER] | self.teams[SERVER]
            if team and self.chaos_on:
                self.rng.choice(sorted(team, key=id)).kill(block=False)
                self.kills += 1

    @contextmanager
    def maybe_timeout(self) -> Iterator[None]:
        """Run the body of the ``with`` under a short gevent.Timeout, now and then.

        A timeout that fires is counted and swallowed: the rest of the body is skipped.
        """
        if self.rng.random() >= TIMEOUT_SHARE:
            yield
            return
        timeout = gevent.Timeout(self.rng.uniform(0.0002, 0.005))
        timeout.start()
        try:
            yield
        except gevent.Timeout as e:
            if e is not timeout:
                raise
            self.timeouts += 1
        finally:
            timeout.close()

    def stop_sending(self) -> None:
        """End the chaos, let every sender finish its call, and check none hangs."""
        self.chaos_on = False
        self._chaos.join(timeout=SETTLE_SECONDS)
        assert self._chaos.dead
        self.sending = False
        self._join(SENDER)

    def close(self, *sockets: Any) -> None:
        """Stop the devices, close *sockets* under the servers still waiting, and
        check that all of them end."""
        self.closing = True
        # a device's sockets belong to its proxy thread until the proxy is stopped
        gevent.killall(list(self.teams[DEVICE]), timeout=SETTLE_SECONDS)
        for s in sockets:
            s.close()
        self._join(SERVER)
        assert not self.errors, self.errors[:3]

    def _join(self, role: str) -> None:
        team = self.teams[role]
        with gevent.Timeout(SETTLE_SECONDS, False):
            while team:  # replacements of workers killed last may join meanwhile
                gevent.joinall(list(team))
        assert not team, f"{len(team)} {role}s hang"

    def abandon(self) -> None:
        """After a failure: kill whatever still runs, so the context can go."""
        self.chaos_on = self.sending = False
        self.closing = True
        gevent.killall(
            [self._chaos, *(g for team in self.teams.values() for g in team)], timeout=SETTLE_SECONDS
        )

    @property
    def faults(self) -> int:
        return self.kills + self.timeouts


def wait_until(done: Callable[[], bool], progress: Callable[[], int], what: Callable[[], str]) -> None:
    """Wait for *done* (checked every 10 ms); fail if *progress* stalls for SETTLE_SECONDS.

    Over tcp a long run leaves a deep backlog in the kernel's buffers: draining it
    takes time, but it must keep moving.
    """
    last, since = progress(), time.monotonic()
    while not done() and time.monotonic() - since < SETTLE_SECONDS:
        gevent.sleep(0.01)
        if progress() != last:
            last, since = progress(), time.monotonic()
    assert done(), what()


def endpoints(transport: str, tmp_path: Any, n: int) -> list[str]:
    """*n* endpoints to bind; tcp ones use a random port (read ``last_endpoint``)."""
    if transport == "inproc":
        return [f"inproc://stress-{id(tmp_path)}-{i}" for i in range(n)]
    if transport == "ipc":
        return [f"ipc://{tmp_path}/{i}.ipc" for i in range(n)]
    return ["tcp://127.0.0.1:*"] * n


def bind(sock: Any, endpoint: str) -> str:
    sock.bind(endpoint)
    return str(sock.last_endpoint.decode())


def hwm(rng: random.Random) -> int:
    return rng.randint(1, 20)


def check_exactly_once(sent: set[int], received: Counter[int], what: str) -> None:
    dups = [k for k, n in received.items() if n > 1]
    assert not dups, f"{what} received twice: {dups[:10]}"
    strangers = set(received) - sent
    assert not strangers, f"{what} received but never sent: {sorted(strangers)[:10]}"
    lost = sent - set(received)
    assert not lost, f"{len(lost)} {what} lost: {sorted(lost)[:10]}"


# -- the patterns -------------------------------------------------------------


def push_pull(ctx: Any, crew: Crew, addrs: list[str]) -> int:
    """One PUSH bound, one PULL connected."""
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    push.sndhwm, pull.rcvhwm = hwm(crew.rng), hwm(crew.rng)
    pull.connect(bind(push, addrs[0]))
    return pipeline(crew, push, pull)


def push_proxy_pull(ctx: Any, crew: Crew, addrs: list[str]) -> int:
    """PUSH to a green proxy (PULL in, PUSH out) to PULL.

    The proxy's greenlet is among the chaos's victims: killed mid-stream, then
    started again on the same sockets, it must lose nothing.
    """
    push, front, back, pull = (ctx.socket(t) for t in (zmq.PUSH, zmq.PULL, zmq.PUSH, zmq.PULL))
    push.sndhwm, front.rcvhwm, back.sndhwm, pull.rcvhwm = (hwm(crew.rng) for _ in range(4))
    push.connect(bind(front, addrs[0]))
    pull.connect(bind(back, addrs[1]))
    crew.spawn(lambda: zmq.proxy(front, back), 1, DEVICE)
    return pipeline(crew, push, pull, front, back)


def pipeline(crew: Crew, push: Any, pull: Any, *more: Any) -> int:
    """100 greenlets push on *push*, 100 pull from *pull*; single and multipart."""
    rng = crew.rng
    pull.rcvtimeo = rng.choice([-1, 20, 100])
    ids = count()
    sent: set[int] = set()
    received: Counter[int] = Counter()

    def pusher() -> None:
        i = next(ids)
        key = b"%d" % i
        with crew.maybe_timeout():
            if i % 3:
                push.send(key)
            else:
                push.send_multipart([key, key + b":" + b"x" * rng.randint(0, 300), key + b"."])
            sent.add(i)

    def take(frames: list[bytes]) -> None:
        key = frames[0]
        whole = len(frames) == 1 or (
            len(frames) == 3 and frames[1].partition(b":")[0] == key and frames[2] == key + b"."
        )
        assert whole, f"frames interleaved: {frames}"
        received[int(key)] += 1

    def puller() -> None:
        with crew.maybe_timeout():
            try:
                take(pull.recv_multipart())
            except zmq.Again:
                pass  # RCVTIMEO

    def poller() -> None:
        # poll, then race the other pullers for the message
        with crew.maybe_timeout():
            if pull.poll(50, zmq.POLLIN):
                try:
                    take(pull.recv_multipart(zmq.DONTWAIT))
                except zmq.Again:
                    pass

    crew.spawn(pusher, 100, SENDER)
    crew.spawn(puller, 80, SERVER)
    crew.spawn(poller, 20, SERVER)
    gevent.sleep(CHAOS_SECONDS)
    crew.stop_sending()
    wait_until(
        lambda: len(received) >= len(sent),
        lambda: len(received),
        lambda: f"{len(sent) - len(received)} lost",
    )
    crew.close(push, pull, *more)
    check_exactly_once(sent, received, "messages")
    return sum(received.values())


def dealer_router(ctx: Any, crew: Crew, addrs: list[str]) -> int:
    """60 greenlets send requests on one DEALER, 60 read replies, 80 serve one ROUTER.

    ``ROUTER_MANDATORY`` makes the ROUTER block at its high-water mark instead of
    dropping, so replies are guaranteed as requests are.
    """
    rng = crew.rng
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    router.router_mandatory = 1
    router.sndhwm, router.rcvhwm, dealer.sndhwm, dealer.rcvhwm = (hwm(rng) for _ in range(4))
    dealer.connect(bind(router, addrs[0]))
    ids = count()
    requests_sent: set[int] = set()
    requests: Counter[int] = Counter()
    replies_sent: set[int] = set()
    replies: Counter[int] = Counter()
    replying = [0]  # servers between taking a request and the end of their reply

    def client() -> None:
        i = next(ids)
        with crew.maybe_timeout():
            dealer.send(b"%d" % i)
            requests_sent.add(i)

    def reader() -> None:
        with crew.maybe_timeout():
            replies[int(dealer.recv())] += 1

    def server() -> None:
        with crew.maybe_timeout():
            ident, key = router.recv_multipart()
            requests[int(key)] += 1
            replying[0] += 1
            try:
                router.send_multipart([ident, key])
                replies_sent.add(int(key))
            finally:
                replying[0] -= 1

    crew.spawn(client, 60, SENDER)
    crew.spawn(reader, 60, SERVER)
    crew.spawn(server, 80, SERVER)
    gevent.sleep(CHAOS_SECONDS)
    crew.stop_sending()
    wait_until(
        lambda: len(requests) >= len(requests_sent) and not replying[0] and len(replies) >= len(replies_sent),
        lambda: len(requests) + len(replies),
        lambda: f"requests {len(requests)}/{len(requests_sent)}, replies {len(replies)}/{len(replies_sent)}",
    )
    crew.close(dealer, router)
    check_exactly_once(requests_sent, requests, "requests")
    check_exactly_once(replies_sent, replies, "replies")
    return sum(requests.values()) + sum(replies.values())


class Lane:
    """A REQ socket shared by a group of clients, who take turns under a lock.

    A client killed or timed out between request and reply leaves the REQ waiting
    for a reply: the next client replaces the socket (the "lazy pirate" pattern).
    The old socket lingers until its request is delivered; its reply is dropped.
    """

    def __init__(self, ctx: Any, rng: random.Random, endpoints: list[str]) -> None:
        self.ctx, self.rng, self.endpoints = ctx, rng, endpoints
        self.lock = gevent.lock.Semaphore()
        self.dirty = False
        self.req = self._connect()

    def _connect(self) -> Any:
        req = self.ctx.socket(zmq.REQ)
        req.sndhwm, req.rcvhwm = hwm(self.rng), hwm(self.rng)
        req.linger = int(SETTLE_SECONDS * 1000)
        for endpoint in self.endpoints:
            req.connect(endpoint)
        return req

    def ask(self, key: bytes, sent: Callable[[], None]) -> bytes:
        """Send *key*, call *sent*, and return the reply (the caller holds the lock)."""
        if self.dirty:
            self.req.close()
            self.req = self._connect()
        self.dirty = True
        self.req.send(key)
        sent()
        reply: bytes = self.req.recv()
        self.dirty = False
        return reply


def req_rep(ctx: Any, crew: Crew, addrs: list[str]) -> int:
    """4 REQ sockets shared by 40 greenlets each, 2 REP sockets shared by 20 each.

    A REQ or REP socket serves one request at a time, so its greenlets take turns
    under a lock (a :class:`Lane` for REQ). A server killed between request and
    reply leaves its REP owing a reply: the next server on it pays that debt first.
    """
    rng = crew.rng
    reps = [ctx.socket(zmq.REP) for _ in range(2)]
    for rep in reps:
        rep.sndhwm, rep.rcvhwm = hwm(rng), hwm(rng)
    bound = [bind(rep, addr) for rep, addr in zip(reps, addrs)]
    lanes = [Lane(ctx, rng, bound) for _ in range(4)]
    ids = count()
    requests_sent: set[int] = set()
    requests: Counter[int] = Counter()
    answered: Counter[int] = Counter()
    owed: list[bytes | None] = [None] * len(reps)

    def client(lane: Lane) -> Callable[[], None]:
        def body() -> None:
            i = next(ids)
            key = b"%d" % i
            with crew.maybe_timeout(), lane.lock:
                reply = lane.ask(key, lambda: requests_sent.add(i))
                assert reply == key, f"request {key!r} answered with {reply!r}"
                answered[i] += 1

        return body

    def server(n: int, lock: gevent.lock.Semaphore) -> Callable[[], None]:
        rep = reps[n]

        def body() -> None:
            with crew.maybe_timeout(), lock:
                if owed[n] is None:
                    key = rep.recv()
                    requests[int(key)] += 1
                    owed[n] = key
                rep.send(owed[n])
                owed[n] = None

        return body

    for lane in lanes:
        crew.spawn(client(lane), 40, SENDER)
    for n in range(len(reps)):
        crew.spawn(server(n, gevent.lock.Semaphore()), 20, SERVER)
    gevent.sleep(CHAOS_SECONDS)
    crew.stop_sending()
    wait_until(
        lambda: len(requests) >= len(requests_sent) and owed == [None] * len(reps),
        lambda: len(requests),
        lambda: f"requests {len(requests)}/{len(requests_sent)}, owed {owed}",
    )
    crew.close(*(lane.req for lane in lanes), *reps)
    check_exactly_once(requests_sent, requests, "requests")
    assert max(answered.values(), default=1) == 1
    assert answered, "no request was answered"
    return sum(requests.values()) + sum(answered.values())


PATTERNS: dict[str, Callable[[Any, Crew, list[str]], int]] = {
    "push_pull": push_pull,
    "push_proxy_pull": push_proxy_pull,
    "dealer_router": dealer_router,
    "req_rep": req_rep,
}


# draining may take as long as the chaos did, twice over on a loaded machine
@pytest.mark.timeout(3 * CHAOS_SECONDS + 3 * SETTLE_SECONDS + 30)
@pytest.mark.parametrize("transport", ["inproc", "ipc", "tcp"])
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_chaos(pattern: str, transport: str, tmp_path: Any, resources: None, record_property: Any) -> None:
    seed = random.randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    waits = zmq.stats()["waits"]
    ctx = zmq.Context()
    crew = Crew(rng)
    try:
        moved = PATTERNS[pattern](ctx, crew, endpoints(transport, tmp_path, 2))
    finally:
        crew.abandon()
        ctx.destroy(linger=0)
    assert moved > 100, "too little traffic to mean anything"
    assert zmq.stats()["waits"] > waits, "nobody ever waited"
    assert crew.kills and crew.timeouts, "no fault was injected"
    record_property("messages", moved)
    record_property("faults", crew.faults)
    record_property("lost", 0)
