"""Hundreds of greenlets share sockets while a chaos greenlet kills and times them out.

Each scenario runs one pattern (PUSH/PULL, PUSH/PULL through a green proxy,
DEALER/ROUTER, REQ/REP) over one transport with random high-water marks from 1
to 20. Workers loop on their sockets; some of their calls run under a short
``gevent.Timeout``; a chaos greenlet kills a random worker (or the proxy) every
few milliseconds and a fresh one takes its place. After a bounded time the
senders stop, everything in flight is drained, the sockets are closed under the
waiters still blocked on them, and the context is terminated. Then:

* every message whose send returned was received exactly once, where the pattern
  guarantees delivery (PUSH/PULL, with or without the proxy; DEALER/ROUTER with
  ``ROUTER_MANDATORY`` both ways; requests of REQ/REP, and each reply reaches the
  request it answers); the messages that were not are counted as ``lost``;
* no greenlet hangs: all of them end once their socket is closed;
* no wake-up was missed (the safety net of tests/conftest.py), and fds, hub
  watchers and greenlets are back to their starting count (the ``resources``
  fixture).

A kill or a timeout can only land where the victim is switched out, that is
inside a blocking call: a call that returned has done its work, so recording
its result on the next line cannot be interrupted.

What happens after the chaos (the *settling*) has no fixed duration: it may take
as long as it keeps moving, but fails with its reason when nothing progressed for
:data:`STALL_SECONDS`, and when all of it outlasts :data:`SETTLE_SECONDS`; the
test's timeout is above the sum, so a failure always says what was stuck.

A run is drawn from one seed, printed and quoted in the failure message:
``ZMQ_GREEN_CHAOS_SEED=<seed>`` replays the set-up (high-water marks, receive
timeout) and the chaos's draws (its pauses, and which worker it kills, by index
in the order of spawning). The scheduling of the greenlets and of libzmq's
threads is not replayed, nor the workers' own draws, which follow it (which call
times out, message sizes). ``ZMQ_GREEN_CHAOS_SECONDS`` sets how long the chaos
lasts (default 1.5 s, or ``ZMQ_GREEN_SOAK_SECONDS``).
"""

from __future__ import annotations

import os
import random
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any, Callable

import gevent
import gevent.lock
import pytest
from conftest import run_pytest_on, until
from gevent.event import Event
from gevent.greenlet import Greenlet

import zmq_green as zmq

from .conftest import FIGURES
from .soak import SOAK_SECONDS, loop_name

pytestmark = pytest.mark.stress

CHAOS_SECONDS = float(os.environ.get("ZMQ_GREEN_CHAOS_SECONDS") or SOAK_SECONDS or 1.5)
#: Longest time without progress after the chaos (a lost wake-up ends far sooner: the safety timeout).
STALL_SECONDS = 10.0
#: Longest time for all of the settling: stopping the senders, draining, closing.
SETTLE_SECONDS = 40.0
#: Share of worker calls that run under a short gevent.Timeout.
TIMEOUT_SHARE = 0.1
SEED_VARIABLE = "ZMQ_GREEN_CHAOS_SEED"


def scenario_bound(chaos_seconds: float) -> float:
    """Longest a scenario may take: the chaos, the settling, the clean-up after a
    failure, set-up and teardown (its timeout: a failure says what is stuck first)."""
    return chaos_seconds + SETTLE_SECONDS + STALL_SECONDS + 15


SENDER, SERVER, DEVICE = "sender", "server", "device"


class Ledger:
    """One kind of message: the ids whose send returned, and how often each id was received.

    Where the pattern does not guarantee delivery (*guaranteed* false), a message
    may be lost, but still not be received twice or without having been sent.
    """

    def __init__(self, what: str, guaranteed: bool = True) -> None:
        self.what = what
        self.guaranteed = guaranteed
        self.sent: set[int] = set()
        self.received: Counter[int] = Counter()

    def lost(self) -> int:
        """Guaranteed messages whose send returned and that were not received."""
        return len(self.sent - self.received.keys()) if self.guaranteed else 0

    def drained(self) -> bool:
        """Whether every message sent has been received (as far as the counts tell)."""
        return len(self.received) >= len(self.sent)

    def check(self) -> None:
        """Each message received at most once, only if sent, and at least once if guaranteed."""
        dups = [k for k, n in self.received.items() if n > 1]
        assert not dups, f"{self.what} received twice: {dups[:10]}"
        strangers = self.received.keys() - self.sent
        assert not strangers, f"{self.what} received but never sent: {sorted(strangers)[:10]}"
        assert not self.lost(), (
            f"{self.lost()} {self.what} lost: {sorted(self.sent - self.received.keys())[:10]}"
        )

    def __str__(self) -> str:
        return f"{self.what} {len(self.received)}/{len(self.sent)}"


class Heartbeat:
    """Whether the hub still runs.

    The greenlets that keep time (the chaos, the settling) call :meth:`beat` on
    each turn; workers call :meth:`stopped` after each call they make. Workers
    that made many calls and found no beat for *limit* seconds have been running
    all that time without the hub getting a turn: they loop without ever
    waiting, and starve every other greenlet. (The count of calls keeps a
    process that was merely frozen for a while from looking starved.)
    """

    CALLS = 10_000

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._beats = self._seen = self._calls = 0
        self._since = time.monotonic()

    def beat(self) -> None:
        self._beats += 1

    def stopped(self) -> bool:
        if self._beats != self._seen:
            self._seen, self._since, self._calls = self._beats, time.monotonic(), 0
        self._calls += 1
        return self._calls > self.CALLS and time.monotonic() - self._since > self.limit


class Crew:
    """Worker greenlets, a chaos greenlet that kills them, and replacements.

    A *sender* loops until :meth:`stop_sending`; a *server* loops until its socket
    is closed under it (``ENOTSOCK``); a *device* runs a proxy until it is killed.
    A killed worker is replaced by a new one with the same body until the sockets
    are closed. Any other exception is a failure, and so is a hub that stopped
    running (:class:`Heartbeat`): then every worker ends.

    After the chaos, :meth:`settle` waits for as long as something progresses, at
    most *stall* seconds without progress and *settle* seconds in all.

    The workers draw from ``rng``; the chaos from a random generator of its own, so
    that its draws do not depend on how many calls the workers made meanwhile, and
    picks its victim by index among the living workers in the order they were
    spawned.
    """

    def __init__(self, seed: int, stall: float = STALL_SECONDS, settle: float = SETTLE_SECONDS) -> None:
        self.stall_seconds, self.settle_seconds = stall, settle
        self.rng = random.Random(seed)
        self._chaos_rng = random.Random(f"{seed}/chaos")
        # dicts as ordered sets: the order of spawning, whatever the ids of the greenlets
        self.teams: dict[str, dict[Greenlet, None]] = {SENDER: {}, SERVER: {}, DEVICE: {}}
        self.ledgers: list[Ledger] = []
        self.sending = True
        self.chaos_on = True
        self.closing = False
        self.kills = 0
        self.timeouts = 0
        self.ended = 0
        self.errors: list[BaseException] = []
        self._settled_by = 0.0
        self.heart = Heartbeat(stall)
        self.starved = False
        self._chaos = gevent.spawn(self._kill_now_and_then)

    def ledger(self, what: str, guaranteed: bool = True) -> Ledger:
        """A new :class:`Ledger`, counted in :meth:`moved`, :meth:`lost` and progress."""
        self.ledgers.append(Ledger(what, guaranteed))
        return self.ledgers[-1]

    def spawn(self, body: Callable[[], object], n: int, role: str) -> None:
        for _ in range(n):
            g = gevent.spawn(self._loop, body, role)
            self.teams[role][g] = None
            g.link(lambda g, body=body, role=role: self._ended(g, body, role))

    def _loop(self, body: Callable[[], object], role: str) -> None:
        try:
            while (self.sending or role != SENDER) and not self._starved():
                body()
        except zmq.ZMQError as e:
            # ENOTSOCK: closed under a waiter; ENOTSUP: Socket.poll after close
            if not (self.closing and e.errno in (zmq.ENOTSOCK, zmq.ENOTSUP)):
                raise

    def _ended(self, g: Greenlet, body: Callable[[], object], role: str) -> None:
        del self.teams[role][g]
        self.ended += 1
        if not g.successful():
            self.errors.append(g.exception)
        elif isinstance(g.value, gevent.GreenletExit) and not self.closing:
            # a kill lands after the chaos greenlet sent it, maybe once the chaos is over
            self.spawn(body, 1, role)

    def _starved(self) -> bool:
        """Whether the hub stopped running; the first worker to see it records the failure."""
        if not self.starved and self.heart.stopped():
            self.starved = True
            self.errors.append(
                AssertionError(
                    f"the hub did not run for {self.heart.limit:g} s: workers loop without waiting"
                )
            )
        return self.starved

    def _kill_now_and_then(self) -> None:
        rng = self._chaos_rng
        while self.chaos_on:
            gevent.sleep(rng.uniform(0.0005, 0.003))
            self.heart.beat()
            # a device is one among hundreds: give it a fair share of the kills
            devices = self.teams[DEVICE] and rng.random() < 0.05
            team = list(self.teams[DEVICE]) if devices else [*self.teams[SENDER], *self.teams[SERVER]]
            if team and self.chaos_on:
                team[rng.randrange(len(team))].kill(block=False)
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

    def run(self) -> None:
        """Let the workers and the chaos run for CHAOS_SECONDS."""
        gevent.sleep(CHAOS_SECONDS)

    def stop_sending(self) -> None:
        """End the chaos, let every sender finish its call, and check none hangs."""
        self._settled_by = time.monotonic() + self.settle_seconds
        self.chaos_on = False
        self.settle(lambda: self._chaos.dead, lambda: "the chaos greenlet did not end")
        self.sending = False
        self._join(SENDER)

    def settle(self, done: Callable[[], bool], what: Callable[[], str]) -> None:
        """Let the other greenlets run until *done* (checked every 10 ms).

        Fails with ``what()`` when nothing progressed (no send returned, no message
        was received, no worker ended) for *stall* seconds, or when the settling has
        outlasted *settle* seconds; at once if a worker failed. Over tcp the
        kernel's buffers hold a backlog: draining it takes time, but it must keep
        moving.
        """
        last, since = self.progress(), time.monotonic()
        while not done():
            assert not self.errors, f"a worker failed: {self.errors[:3]}"
            now = time.monotonic()
            assert now - since < self.stall_seconds, (
                f"{what()}: nothing progressed for {self.stall_seconds:g} s"
            )
            assert now < self._settled_by, (
                f"{what()}: still not settled {self.settle_seconds:g} s after the chaos"
            )
            gevent.sleep(0.01)
            self.heart.beat()
            if self.progress() != last:
                last, since = self.progress(), time.monotonic()

    def progress(self) -> int:
        """A count that grows whenever a send returns, a message arrives or a worker ends."""
        return self.ended + sum(len(ledger.sent) + sum(ledger.received.values()) for ledger in self.ledgers)

    def close(self, *sockets: Any) -> None:
        """Stop the devices, close *sockets* under the servers still waiting, and
        check that all of them end."""
        self.closing = True
        # a device's sockets belong to its proxy thread until the proxy is stopped
        for g in list(self.teams[DEVICE]):
            g.kill(block=False)
        self._join(DEVICE)
        for s in sockets:
            s.close()
        self._join(SERVER)
        assert not self.errors, self.errors[:3]
        for ledger in self.ledgers:
            ledger.check()

    def _join(self, role: str) -> None:
        # replacements of workers killed last may join meanwhile
        team = self.teams[role]
        self.settle(lambda: not team, lambda: f"{len(team)} {role}s hang")

    def abandon(self) -> None:
        """Kill whatever still runs (after a failure), so the context can go."""
        self.chaos_on = self.sending = False
        self.closing = True
        running = [self._chaos, *(g for team in self.teams.values() for g in team)]
        gevent.killall(running, timeout=self.stall_seconds)

    @property
    def faults(self) -> int:
        return self.kills + self.timeouts

    def moved(self) -> int:
        """Messages received, of every kind."""
        return sum(sum(ledger.received.values()) for ledger in self.ledgers)

    def lost(self) -> int:
        """Guaranteed messages whose send returned and that were not received."""
        return sum(ledger.lost() for ledger in self.ledgers)


def endpoints(transport: str, tmp_path: Any, n: int) -> list[str]:
    """*n* endpoints to bind; tcp ones use a random port (read ``last_endpoint``)."""
    if transport == "inproc":
        return [f"inproc://stress-{i}" for i in range(n)]
    if transport == "ipc":
        return [f"ipc://{tmp_path}/{i}.ipc" for i in range(n)]
    return ["tcp://127.0.0.1:*"] * n


def bind(sock: Any, endpoint: str) -> str:
    sock.bind(endpoint)
    return str(sock.last_endpoint.decode())


def hwm(rng: random.Random) -> int:
    return rng.randint(1, 20)


# -- the patterns -------------------------------------------------------------


def push_pull(ctx: Any, crew: Crew, addrs: list[str]) -> None:
    """One PUSH bound, one PULL connected."""
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    push.sndhwm, pull.rcvhwm = hwm(crew.rng), hwm(crew.rng)
    pull.connect(bind(push, addrs[0]))
    pipeline(crew, push, pull)


def push_proxy_pull(ctx: Any, crew: Crew, addrs: list[str]) -> None:
    """PUSH to a green proxy (PULL in, PUSH out) to PULL.

    The proxy's greenlet is among the chaos's victims: killed mid-stream, then
    started again on the same sockets, it must lose nothing.
    """
    push, front, back, pull = (ctx.socket(t) for t in (zmq.PUSH, zmq.PULL, zmq.PUSH, zmq.PULL))
    push.sndhwm, front.rcvhwm, back.sndhwm, pull.rcvhwm = (hwm(crew.rng) for _ in range(4))
    push.connect(bind(front, addrs[0]))
    pull.connect(bind(back, addrs[1]))
    crew.spawn(lambda: zmq.proxy(front, back), 1, DEVICE)
    pipeline(crew, push, pull, front, back)


def pipeline(crew: Crew, push: Any, pull: Any, *more: Any) -> None:
    """100 greenlets push on *push*, 100 pull from *pull*; single and multipart."""
    rng = crew.rng
    pull.rcvtimeo = rng.choice([-1, 20, 100])
    ids = count()
    messages = crew.ledger("messages")

    def pusher() -> None:
        i = next(ids)
        key = b"%d" % i
        with crew.maybe_timeout():
            if i % 3:
                push.send(key)
            else:
                push.send_multipart([key, key + b":" + b"x" * rng.randint(0, 300), key + b"."])
            messages.sent.add(i)

    def take(frames: list[bytes]) -> None:
        key = frames[0]
        whole = len(frames) == 1 or (
            len(frames) == 3 and frames[1].partition(b":")[0] == key and frames[2] == key + b"."
        )
        assert whole, f"frames interleaved: {frames}"
        messages.received[int(key)] += 1

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
    crew.run()
    crew.stop_sending()
    crew.settle(messages.drained, lambda: f"draining: {messages}")
    crew.close(push, pull, *more)


def dealer_router(ctx: Any, crew: Crew, addrs: list[str]) -> None:
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
    requests, replies = crew.ledger("requests"), crew.ledger("replies")
    replying = [0]  # servers between taking a request and the end of their reply

    def client() -> None:
        i = next(ids)
        with crew.maybe_timeout():
            dealer.send(b"%d" % i)
            requests.sent.add(i)

    def reader() -> None:
        with crew.maybe_timeout():
            replies.received[int(dealer.recv())] += 1

    def server() -> None:
        with crew.maybe_timeout():
            ident, key = router.recv_multipart()
            requests.received[int(key)] += 1
            replying[0] += 1
            try:
                router.send_multipart([ident, key])
                replies.sent.add(int(key))
            finally:
                replying[0] -= 1

    crew.spawn(client, 60, SENDER)
    crew.spawn(reader, 60, SERVER)
    crew.spawn(server, 80, SERVER)
    crew.run()
    crew.stop_sending()
    crew.settle(
        lambda: requests.drained() and not replying[0] and replies.drained(),
        lambda: f"draining: {requests}, {replies}, {replying[0]} replying",
    )
    crew.close(dealer, router)


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


def req_rep(ctx: Any, crew: Crew, addrs: list[str]) -> None:
    """4 REQ sockets shared by 40 greenlets each, 2 REP sockets shared by 20 each.

    A REQ or REP socket serves one request at a time, so its greenlets take turns
    under a lock (a :class:`Lane` for REQ). A server killed between request and
    reply leaves its REP owing a reply: the next server on it pays that debt first.
    A reply is lost when its client gave up on it (killed or timed out).
    """
    rng = crew.rng
    reps = [ctx.socket(zmq.REP) for _ in range(2)]
    for rep in reps:
        rep.sndhwm, rep.rcvhwm = hwm(rng), hwm(rng)
    bound = [bind(rep, addr) for rep, addr in zip(reps, addrs)]
    lanes = [Lane(ctx, rng, bound) for _ in range(4)]
    ids = count()
    requests, replies = crew.ledger("requests"), crew.ledger("replies", guaranteed=False)
    owed: list[bytes | None] = [None] * len(reps)

    def client(lane: Lane) -> Callable[[], None]:
        def body() -> None:
            i = next(ids)
            key = b"%d" % i
            with crew.maybe_timeout(), lane.lock:
                reply = lane.ask(key, lambda: requests.sent.add(i))
                assert reply == key, f"request {key!r} answered with {reply!r}"
                replies.received[i] += 1

        return body

    def server(n: int, lock: gevent.lock.Semaphore) -> Callable[[], None]:
        rep = reps[n]

        def body() -> None:
            with crew.maybe_timeout(), lock:
                if owed[n] is None:
                    key = rep.recv()
                    requests.received[int(key)] += 1
                    owed[n] = key
                rep.send(owed[n])
                replies.sent.add(int(owed[n]))
                owed[n] = None

        return body

    for lane in lanes:
        crew.spawn(client(lane), 40, SENDER)
    for n in range(len(reps)):
        crew.spawn(server(n, gevent.lock.Semaphore()), 20, SERVER)
    crew.run()
    crew.stop_sending()
    crew.settle(
        lambda: requests.drained() and owed == [None] * len(reps),
        lambda: f"draining: {requests}, owed {owed}",
    )
    crew.close(*(lane.req for lane in lanes), *reps)
    assert replies.received, "no request was answered"


PATTERNS: dict[str, Callable[[Any, Crew, list[str]], None]] = {
    "push_pull": push_pull,
    "push_proxy_pull": push_proxy_pull,
    "dealer_router": dealer_router,
    "req_rep": req_rep,
}


@contextmanager
def replayable(seed: int) -> Iterator[None]:
    """Fail with the seed in the message, whatever fails inside."""
    try:
        yield
    except Exception as e:
        pytest.fail(f"{type(e).__name__}: {e}\n(chaos seed {seed}: replay with {SEED_VARIABLE}={seed})")


@pytest.mark.timeout(scenario_bound(CHAOS_SECONDS))
@pytest.mark.parametrize("transport", ["inproc", "ipc", "tcp"])
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_chaos(pattern: str, transport: str, tmp_path: Any, resources: None, record_property: Any) -> None:
    seed = int(os.environ.get(SEED_VARIABLE) or random.randrange(2**32))
    print(f"chaos seed {seed} on {loop_name()}")
    record_property("loop", loop_name())
    waits = zmq.stats()["waits"]
    ctx = zmq.Context()
    crew = Crew(seed)
    with replayable(seed):
        try:
            PATTERNS[pattern](ctx, crew, endpoints(transport, tmp_path, 2))
        finally:
            crew.abandon()
            ctx.destroy(linger=0)
            record_property("messages", crew.moved())
            record_property("faults", crew.faults)
            record_property("lost", crew.lost())
        assert crew.moved() > 100, "too little traffic to mean anything"
        assert zmq.stats()["waits"] > waits, "nobody ever waited"
        assert crew.kills and crew.timeouts, "no fault was injected"


#: The scenarios run again on libuv: each pattern once, the transports in turn.
LIBUV_SCENARIOS = ["push_pull-ipc", "push_proxy_pull-tcp", "dealer_router-tcp", "req_rep-inproc"]
LIBUV_CHAOS_SECONDS = 0.5
#: The child's bound: its scenarios, and its start and the accounting tests.
LIBUV_SECONDS = len(LIBUV_SCENARIOS) * scenario_bound(LIBUV_CHAOS_SECONDS) + 30


@pytest.mark.timeout(LIBUV_SECONDS + 10)
def test_chaos_on_libuv(tmp_path: Path, record_property: Any) -> None:
    """A short run of every pattern, and of the accounting's own checks, in a child on libuv.

    Its figures count in this session's; its failures come with their seed.
    """
    here = Path(__file__).parent
    report = tmp_path / "libuv.xml"
    tests = [f"{here / 'test_accounting.py'}", *(f"{__file__}::test_chaos[{s}]" for s in LIBUV_SCENARIOS)]
    child = run_pytest_on(
        "libuv-cffi",
        [f"--junitxml={report}", *tests],
        timeout=LIBUV_SECONDS,
        ZMQ_GREEN_CHAOS_SECONDS=str(LIBUV_CHAOS_SECONDS),
    )
    cases = ElementTree.parse(report).getroot().iter("testcase") if report.exists() else ()
    properties = [(p.get("name"), p.get("value")) for case in cases for p in case.iter("property")]
    for name, value in properties:
        if name in FIGURES:
            record_property(name, int(value))
    assert child.returncode == 0, "\n".join(child.stdout.splitlines()[-80:]) + child.stderr[-2000:]
    loops = {value for name, value in properties if name == "loop"}
    assert loops == {"gevent.libuv.loop"}, loops


# -- the harness's own waits ---------------------------------------------------


@contextmanager
def settling(stall: float, settle: float) -> Iterator[Crew]:
    """A crew with no workers, its chaos over: what is left is its settling."""
    crew = Crew(0, stall, settle)
    try:
        crew.stop_sending()
        yield crew
    finally:
        crew.abandon()


def trickle(ledger: Ledger, n: int | None) -> None:
    """Receive a message every 20 ms, *n* times (None: for ever)."""
    for i in count() if n is None else range(n):
        gevent.sleep(0.02)
        ledger.received[i] += 1


@pytest.mark.timeout(10)
def test_settling_lasts_while_progressing_and_fails_on_a_stall() -> None:
    with settling(stall=0.2, settle=5) as crew:
        moving = crew.ledger("messages")
        slow = gevent.spawn(trickle, moving, 25)  # 0.5 s in all, never 0.2 s without progress
        crew.settle(lambda: slow.dead, lambda: "trickling")
        assert sum(moving.received.values()) == 25
        started = time.monotonic()
        with pytest.raises(AssertionError, match=r"^stuck: nothing progressed for 0\.2 s"):
            crew.settle(lambda: False, lambda: "stuck")
        assert time.monotonic() - started >= 0.2


@pytest.mark.timeout(10)
def test_settling_fails_once_its_budget_is_spent_even_while_progressing() -> None:
    with settling(stall=5, settle=0.3) as crew:
        endless = gevent.spawn(trickle, crew.ledger("messages"), None)
        with pytest.raises(AssertionError, match=r"^draining: still not settled 0\.3 s after the chaos"):
            crew.settle(lambda: False, lambda: "draining")
        endless.kill()


@pytest.mark.timeout(10)
def test_workers_that_never_wait_are_stopped_and_reported() -> None:
    with settling(stall=0.2, settle=5) as crew:
        crew.spawn(lambda: None, 3, SERVER)  # a body that never switches: the hub starves
        with pytest.raises(AssertionError, match=r"the hub did not run for 0\.2 s"):
            crew.settle(lambda: False, lambda: "spinning")
        assert not crew.teams[SERVER]


@pytest.mark.timeout(10)
def test_the_chaos_picks_its_victims_from_its_seed_alone() -> None:
    def victims(seed: int) -> list[int]:
        """The first 30 workers killed, by the order in which they started."""
        serials, killed, idle = count(), [], Event()

        def body() -> None:
            me = next(serials)
            try:
                idle.wait()
            except gevent.GreenletExit:
                killed.append(me)
                raise

        crew = Crew(seed)
        try:
            crew.spawn(body, 50, SERVER)
            until(lambda: len(killed) >= 30)
        finally:
            crew.abandon()
        return killed[:30]

    assert victims(7) == victims(7) != victims(8)
