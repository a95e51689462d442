"""The programs that tests/test_properties.py runs, and the model that checks them.

A program drives two connected sockets, ``a`` (which connects) and ``b`` (which
binds), from greenlets that its steps spawn; :func:`run_program` runs one and
checks it (see tests/test_properties.py for what is checked, and why it is sound).
"""

from __future__ import annotations

import functools
import select
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import gevent
from conftest import active_watchers
from hypothesis import note, strategies as st
from zmq.backend import Socket as RawSocket

import zmq_green as zmq
from zmq_green._waiting import waits_of

IN, OUT = int(zmq.POLLIN), int(zmq.POLLOUT)
READINESS = {0: "nothing", IN: "POLLIN", OUT: "POLLOUT", IN | OUT: "POLLIN|POLLOUT"}
SIDES = ("a", "b")
#: The DEALER's identity, which the ROUTER answers.
IDENTITY = b"A"
#: How long the hub may go without progress before it must have settled: below the
#: safety timeout (0.5 s in these tests), so that a lost wake-up is found by the
#: check, not rescued first. Progress (a call entered or done, a message delivered)
#: gives it as long again: on a machine busy with other work, a program's greenlets
#: may need longer than that to finish what they can do.
SETTLE_SECONDS = 0.4
#: How long the hub may keep making progress without settling: a livelock.
CHANGING_SECONDS = 20.0
#: A pause that libzmq's send cannot tell from a longer one. A send processes the
#: commands pending for its socket only if the last send that did was more than
#: 3,000,000 TSC ticks ago (1.4 ms at 2.1 GHz): after a pause near that, whether the
#: next send eats a signal would depend on the machine's load, and a failing program
#: would fail only now and then, which hypothesis cannot shrink.
PAUSE = 0.002
#: Bytes added to each message over ipc and tcp, where the kernel's buffers hold
#: thousands of small messages: enough that senders block after about seven (tcp
#: with 128 KiB socket buffers, libzmq does not size ipc's). Smaller tcp buffers are
#: no good: below twice the loopback MSS (64 KiB) a closed receive window reopens
#: only when the sender's persist timer probes it, 200 ms and more later.
PADDING = {"inproc": 0, "ipc": 16_000, "tcp": 100_000}
TCP_BUFFER = 131_072


def other(side: str) -> str:
    return "b" if side == "a" else "a"


# -- programs --------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    """Two socket types, ``a`` connecting to ``b``, and which of them send and receive."""

    name: str
    types: tuple[int, int]
    senders: tuple[str, ...]
    receivers: tuple[str, ...]

    def type_name(self, side: str) -> str:
        return zmq.SocketType(self.types[SIDES.index(side)]).name

    def masks(self, side: str) -> list[int]:
        """What a poller may wait for on *side*."""
        can = (IN if side in self.receivers else 0) | (OUT if side in self.senders else 0)
        return [mask for mask in (IN, OUT, IN | OUT) if mask & can == mask]


PUSH_PULL = Pattern("push/pull", (zmq.PUSH, zmq.PULL), ("a",), ("b",))
DEALER_ROUTER = Pattern("dealer/router", (zmq.DEALER, zmq.ROUTER), SIDES, SIDES)
PAIR = Pattern("pair", (zmq.PAIR, zmq.PAIR), SIDES, SIDES)
PATTERNS = (PUSH_PULL, DEALER_ROUTER, PAIR)


@dataclass(frozen=True)
class Step:
    """One step of a program; ``str()`` is how a failing program is printed."""

    kind: str
    side: str = ""
    #: send: "", "multipart" or "dontwait"; recv: "" or "dontwait"; kill: "exit" or
    #: "timeout"; timeo: "rcvtimeo" or "sndtimeo"
    mode: str = ""
    #: seconds of the gevent.Timeout the call runs under
    guard: float | None = None
    #: kill: which blocked greenlet; timeo: milliseconds; poll: ((side, mask), ...)
    #: ("nothing" is the step the shrinker turns an irrelevant one into)
    arg: Any = None
    #: poll: its timeout in milliseconds
    timeout: int | None = None

    def __str__(self) -> str:
        guard = "" if self.guard is None else f"  under gevent.Timeout({self.guard * 1000:g} ms)"
        if self.kind == "send":
            mode = {"": "", "multipart": "3 frames", "dontwait": "DONTWAIT"}[self.mode]
            return f"{self.side}.send({mode}){guard}"
        if self.kind == "recv":
            return f"{self.side}.recv({'DONTWAIT' if self.mode else ''}){guard}"
        if self.kind == "poll":
            polled = ", ".join(f"{side} {READINESS[mask]}" for side, mask in self.arg)
            return f"poll({polled}; timeout={self.timeout}){guard}"
        if self.kind == "events":
            return f"{self.side}.get(EVENTS) in a new greenlet"
        if self.kind == "kill":
            exc = "GreenletExit" if self.mode == "exit" else "gevent.Timeout"
            return f"throw {exc} into blocked greenlet #{self.arg}"
        if self.kind == "timeo":
            return f"{self.side}.{self.mode} = {self.arg}"
        if self.kind == "close":
            return f"close {self.side}"
        hub = {"yield": "gevent.sleep(0)", "idle": "gevent.idle()", "sleep": f"gevent.sleep({PAUSE})"}
        return hub.get(self.kind, self.kind)


@dataclass(frozen=True)
class Program:
    """Sockets to make and steps to run; its repr is a numbered listing."""

    pattern: Pattern
    transport: str
    #: (sndhwm, rcvhwm) of a and of b
    hwm: tuple[tuple[int, int], tuple[int, int]]
    #: bytes added to each message's first frame
    pad: int
    steps: tuple[Step, ...]

    def __repr__(self) -> str:
        sockets = ", ".join(
            f"{side} {self.pattern.type_name(side)} sndhwm={snd} rcvhwm={rcv}"
            for side, (snd, rcv) in zip(SIDES, self.hwm)
        )
        lines = [f"{self.pattern.name} over {self.transport} ({sockets}; {self.pad}-byte padding)"]
        lines += [f"  {i:2d}  {step}" for i, step in enumerate(self.steps) if step.kind != "nothing"]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How hypothesis prints a falsifying program: as the listing, not field by field."""
        for i, line in enumerate(repr(self).splitlines()):
            if i:
                printer.break_()
            printer.text(line)


#: How often each kind of step comes, in percent.
SHARES = {
    "yield": 9,
    "send": 22,
    "recv": 18,
    "check": 10,
    "idle": 3,
    "sleep": 3,
    "kill": 7,
    "poll": 8,
    "events": 5,
    "timeo": 6,
    "close": 2,
}
#: (seconds of a gevent.Timeout around a call, weight)
GUARDS = ((None, 4), (0.0, 1), (0.001, 1), (0.003, 1))


#: What a program may leave out (swarm testing): kinds of step, and "guard", the
#: gevent.Timeouts around calls. Kills, polls and EVENTS readers wake greenlets, and
#: can hide a lost wake-up before a check sees it; programs without them find it.
OPTIONAL = ("kill", "poll", "events", "timeo", "close", "idle", "sleep", "guard")


@functools.cache
def step_table(pattern: Pattern, busy: str, enabled: frozenset[str]) -> st.SearchStrategy[Step]:
    """Every step a program for *pattern* may take, each repeated by its weight.

    A program draws each step from this table (made once: hypothesis would hash it
    on every use): one draw per step is several times cheaper than drawing kind,
    side and mode apart. The shrinker moves towards the front, where a step that
    does nothing stands (a failing program prints without them): it takes no time,
    so replacing steps with it keeps the timing of the rest. Most
    sends come from the *busy* socket and half the receives happen on it, so that it
    has senders and receivers blocked at once. Of :data:`OPTIONAL`, only what is
    *enabled* appears.
    """
    guards = GUARDS if "guard" in enabled else GUARDS[:1]
    senders = [(side, 3 if side == busy else 1) for side in pattern.senders]
    receivers = [(side, 1) for side in pattern.receivers]
    polled = [((side, mask),) for side in SIDES for mask in pattern.masks(side)]
    polled += [(("a", a), ("b", b)) for a in pattern.masks("a") for b in pattern.masks("b")]
    kinds: dict[str, list[tuple[Step, int]]] = {
        "send": [
            (Step("send", side, mode, guard), w * mw * gw)
            for side, w in senders
            for mode, mw in (("", 2), ("multipart", 1), ("dontwait", 1))
            for guard, gw in guards
        ],
        "recv": [
            (Step("recv", side, mode, guard), w * mw * gw)
            for side, w in receivers
            for mode, mw in (("", 2), ("dontwait", 1))
            for guard, gw in guards
        ],
        "poll": [
            (Step("poll", arg=arg, timeout=timeout, guard=guard), tw * gw)
            for arg in polled
            for timeout, tw in ((None, 2), (0, 1), (2, 1))
            for guard, gw in ((None, 3), (0.001, 1))[: len(guards)]
        ],
        "kill": [(Step("kill", mode=mode, arg=i), 1) for mode in ("exit", "timeout") for i in range(8)],
        "timeo": [
            (Step("timeo", side, mode, arg=ms), 1)
            for mode, sides in (("rcvtimeo", pattern.receivers), ("sndtimeo", pattern.senders))
            for side in sides
            for ms in (-1, 0, 2, 5)
        ],
        "events": [(Step("events", side), 1) for side in SIDES],
        "close": [(Step("close", side), 1) for side in SIDES],
    }
    table = [Step("nothing")]
    for kind, share in SHARES.items():
        if kind in OPTIONAL and kind not in enabled:
            continue
        variants = kinds.get(kind, [(Step(kind), 1)])
        total = sum(w for _, w in variants)
        for step, w in variants:
            table += [step] * max(1, round(20 * share * w / total))
    return st.sampled_from(table)


@st.composite
def programs(draw: st.DrawFn, transport: str) -> Program:
    """Programs of 0 to 80 steps over *transport*."""
    pattern = draw(st.sampled_from(PATTERNS))
    # A high-water mark of 1 makes libzmq tell the sender of every message read.
    hwm = draw(st.tuples(*[st.tuples(*[st.sampled_from([1, 1, 2, 3])] * 2)] * 2))
    pad = draw(st.sampled_from([0, PADDING[transport]]))
    busy = draw(st.sampled_from(SIDES))
    enabled = frozenset(kind for kind in OPTIONAL if draw(st.booleans()))
    # The length is drawn first: st.lists' own lengths average 5 whatever the maximum.
    length = draw(st.integers(0, 80))
    program_steps = draw(st.lists(step_table(pattern, busy, enabled), min_size=length, max_size=length))
    return Program(pattern, transport, hwm, pad, tuple(program_steps))


# -- running and checking -------------------------------------------------------


def name(error: BaseException) -> str:
    """How a failure report names an exception a call ended with."""
    if isinstance(error, gevent.Timeout):
        return "gevent.Timeout"
    if isinstance(error, zmq.ZMQError) and error.errno:
        return f"{type(error).__name__}({zmq.Errno(error.errno).name})"
    return repr(error)


def show(frames: list[bytes]) -> str:
    """A message as a failure report shows it: its frames without identity or padding."""
    return "/".join(f.rstrip(b"~").decode() for f in frames if f != IDENTITY) or "''"


SKIPPED = "skipped: a polled socket is closed"


@dataclass(eq=False)
class Call:
    """A greenlet spawned by a step: what it waits for when blocked, and how it ended."""

    number: int
    #: the step that spawned it; None for the final drain
    index: int | None
    step: Step
    #: what it waits for while blocked: (side, POLLIN/POLLOUT mask) pairs
    waits_on: tuple[tuple[str, int], ...]
    greenlet: Any = None
    entered: bool = False
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    #: the RCVTIMEO/SNDTIMEO (0 for DONTWAIT) or poll timeout it ran with; -1 for none
    timeo_ms: int = -1
    started_at: float = 0.0
    ended_at: float = 0.0
    #: what was thrown at it: "exit" (GreenletExit), "timeout" (gevent.Timeout)
    thrown: set[str] = field(default_factory=set)
    #: the sockets closed while it was blocked on them
    closed_under: set[str] = field(default_factory=set)
    #: one of its sockets was closed by the time it ended
    closed_at_end: bool = False
    #: poll: messages sent to each polled socket and not yet received, when it returned
    unreceived: dict[str, int] = field(default_factory=dict)

    @property
    def sides(self) -> set[str]:
        return {side for side, _ in self.step.arg} if self.step.kind == "poll" else {self.step.side}

    def blocked(self) -> bool:
        return self.entered and not self.done

    def outcome(self, names: dict[int, str]) -> str:
        """How the call ended; *names* names the sockets (by id) a poll returned."""
        if not self.entered:
            return "not started"
        if not self.done:
            return "blocked"
        elapsed = f" after {(self.ended_at - self.started_at) * 1000:.1f} ms"
        if self.error is not None:
            thrown = f" (thrown: {', '.join(sorted(self.thrown))})" if self.thrown else ""
            return f"{name(self.error)}{elapsed}{thrown}"
        if self.step.kind == "recv":
            return f"got {show(self.result)}"
        if self.step.kind == "poll" and self.result != SKIPPED:
            return f"{[(names.get(id(s), s), READINESS.get(m, m)) for s, m in self.result]}{elapsed}"
        return "returned" if self.result is None else f"returned {self.result}"


class Run:
    """One program's run: its sockets, its calls, and what the model knows."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.pattern = program.pattern
        self.inproc = program.transport == "inproc"
        self.sockets: dict[str, Any] = {}
        self.fds: dict[str, int] = {}
        #: by sender: every message whose send returned, as its receiver gets it
        self.sent: dict[str, list[list[bytes]]] = {side: [] for side in SIDES}
        #: by receiver: every message received, in order
        self.delivered: dict[str, list[list[bytes]]] = {side: [] for side in SIDES}
        self.closed: set[str] = set()
        self.timeo = {(side, opt): -1 for side in SIDES for opt in ("rcvtimeo", "sndtimeo")}
        self.calls: list[Call] = []
        self.notes: dict[int, str] = {}
        self.facts: Counter[str] = Counter()
        self.baseline = 0

    # -- setting up and tearing down ----------------------------------------------

    def open(self, ctx: Any, endpoint: str) -> None:
        """Make and connect the sockets, and pass a message each way that the pattern allows."""
        for side, sock_type, (sndhwm, rcvhwm) in zip(SIDES, self.pattern.types, self.program.hwm):
            sock = self.sockets[side] = ctx.socket(sock_type)
            sock.linger = 0
            sock.sndhwm, sock.rcvhwm = sndhwm, rcvhwm
            if self.program.pad and self.program.transport == "tcp":
                sock.sndbuf = sock.rcvbuf = TCP_BUFFER
        a, b = self.sockets["a"], self.sockets["b"]
        if self.pattern == DEALER_ROUTER:
            a.routing_id = IDENTITY
            b.router_mandatory = 1
        b.bind(endpoint)
        a.connect(b.last_endpoint)
        self.fds = {side: RawSocket.get(sock, zmq.FD) for side, sock in self.sockets.items()}
        with gevent.Timeout(5):
            a.send(b"hello")
            b.recv_multipart()
            if "b" in self.pattern.senders:
                b.send_multipart(self.framed("b", [b"hello"]))
                a.recv()
        # gevent keeps a watcher active while callbacks are queued: count with none queued.
        gevent.idle()
        self.baseline = active_watchers()

    def close_all(self) -> None:
        gevent.killall([c.greenlet for c in self.calls if not c.greenlet.dead], timeout=5)
        for sock in self.sockets.values():
            sock.close()

    def framed(self, side: str, frames: list[bytes]) -> list[bytes]:
        """*frames* as *side* sends or receives them: a ROUTER has the DEALER's identity first."""
        return [IDENTITY, *frames] if self.pattern == DEALER_ROUTER and side == "b" else frames

    # -- steps ------------------------------------------------------------------

    def do(self, index: int, step: Step) -> None:
        self.observe()
        getattr(self, "step_" + step.kind)(index, step)

    def spawn(self, index: int | None, step: Step, body: Callable[[Call], Any]) -> None:
        waits_on = {
            "send": ((step.side, OUT),),
            "recv": ((step.side, IN),),
            "poll": step.arg,
        }.get(step.kind, ())
        call = Call(len(self.calls), index, step, waits_on)

        def run() -> None:
            guard = None if step.guard is None else gevent.Timeout(step.guard)
            call.entered = True
            call.started_at = time.monotonic()
            if guard is not None:
                guard.start()
            try:
                call.result = body(call)
            except BaseException as e:  # kills and timeouts included: the model judges them
                call.error = e
            finally:
                if guard is not None:
                    guard.close()
                call.ended_at = time.monotonic()
                call.closed_at_end = bool(call.sides & self.closed)
                call.done = True

        call.greenlet = gevent.spawn(run)
        self.calls.append(call)

    def step_send(self, index: int, step: Step) -> None:
        side, sock = step.side, self.sockets[step.side]
        key = f"{side}{sum(c.step.kind == 'send' and c.step.side == side for c in self.calls)}".encode()
        frames = [key + b"~" * self.program.pad]
        if step.mode == "multipart":
            frames += [key + b"/1", key + b"/2"]
        flags = zmq.DONTWAIT if step.mode == "dontwait" else 0

        def body(call: Call) -> None:
            call.timeo_ms = 0 if flags else self.timeo[side, "sndtimeo"]
            sock.send_multipart(self.framed(side, frames), flags)
            self.sent[side].append(self.framed(other(side), frames))

        self.spawn(index, step, body)

    def receive(self, side: str, flags: int) -> list[bytes]:
        frames: list[bytes] = self.sockets[side].recv_multipart(flags)
        self.delivered[side].append(frames)
        return frames

    def step_recv(self, index: int | None, step: Step) -> None:
        flags = zmq.DONTWAIT if step.mode == "dontwait" else 0

        def body(call: Call) -> list[bytes]:
            call.timeo_ms = 0 if flags else self.timeo[step.side, "rcvtimeo"]
            return self.receive(step.side, flags)

        self.spawn(index, step, body)

    def unreceived(self, side: str) -> int:
        """Messages sent to *side* whose send returned and that nobody received yet."""
        return len(self.sent[other(side)]) - len(self.delivered[side])

    def step_poll(self, index: int, step: Step) -> None:
        def body(call: Call) -> Any:
            call.timeo_ms = -1 if step.timeout is None else step.timeout
            if call.sides & self.closed:
                # pyzmq's zmq_poll reports a closed socket as (0, POLLIN); nothing to learn here
                return SKIPPED
            poller = zmq.Poller()
            for side, mask in step.arg:
                poller.register(self.sockets[side], mask)
            ready = poller.poll(step.timeout)
            call.unreceived = {side: self.unreceived(side) for side in call.sides}
            return ready

        self.spawn(index, step, body)

    def step_events(self, index: int, step: Step) -> None:
        self.spawn(index, step, lambda call: self.sockets[step.side].get(zmq.EVENTS))

    def step_kill(self, index: int, step: Step) -> None:
        blocked = [c for c in self.calls if c.blocked()]
        if not blocked:
            self.notes[index] = "nothing blocked"
            return
        call = blocked[step.arg % len(blocked)]
        call.thrown.add(step.mode)
        call.greenlet.kill(gevent.GreenletExit if step.mode == "exit" else gevent.Timeout(), block=False)
        self.notes[index] = f"thrown into [{call.number}]"

    def step_timeo(self, index: int | None, step: Step) -> None:
        if step.side in self.closed:
            if index is not None:
                self.notes[index] = "closed"
            return
        setattr(self.sockets[step.side], step.mode, step.arg)
        self.timeo[step.side, step.mode] = step.arg

    def step_close(self, index: int | None, step: Step) -> None:
        if step.side in self.closed:
            if index is not None:
                self.notes[index] = "already closed"
            return
        for call in self.calls:
            if call.blocked() and step.side in call.sides:
                call.closed_under.add(step.side)
        self.closed.add(step.side)
        self.sockets[step.side].close()
        if index is not None:
            self.facts["closes"] += 1

    def step_nothing(self, index: int, step: Step) -> None:
        pass

    def step_yield(self, index: int, step: Step) -> None:
        gevent.sleep(0)

    def step_idle(self, index: int, step: Step) -> None:
        gevent.idle()

    def step_sleep(self, index: int, step: Step) -> None:
        gevent.sleep(PAUSE)

    def step_check(self, index: int | None, step: Step) -> None:
        self.check()

    # -- the checks ---------------------------------------------------------------

    def observe(self) -> None:
        """Count the steps that start with a sender and a receiver blocked on one socket."""
        for side in SIDES:
            kinds = {c.step.kind for c in self.calls if c.blocked() and c.step.side == side}
            if {"send", "recv"} <= kinds:
                self.facts["contended"] += 1
                return

    def waited_on(self) -> set[str]:
        """The open sockets that blocked greenlets wait on."""
        return {side for c in self.calls if c.blocked() for side in c.sides} - self.closed

    def signalled(self, sides: set[str]) -> list[str]:
        """Which of *sides* have their ``ZMQ_FD`` readable (commands pending); ``select`` consumes nothing.

        A socket nobody waits on may stay signalled: nobody needs its commands processed.
        """
        fds = {side: self.fds[side] for side in sorted(sides)}
        readable = select.select(list(fds.values()), [], [], 0)[0]
        return [side for side, fd in fds.items() if fd in readable]

    def awaited(self) -> list[str]:
        """Sockets where a greenlet waits to receive and messages are on their way.

        Over inproc nothing is ever on its way: libzmq posts every command from the
        thread that sends. A closed sender's last messages may never come.
        """
        if self.inproc:
            return []
        return [
            side
            for side in SIDES
            if not {side, other(side)} & self.closed
            and self.unreceived(side) > 0
            and any(c.blocked() and (side, IN) in {(s, m & IN) for s, m in c.waits_on} for c in self.calls)
        ]

    def stuck(self) -> list[str] | None:
        """Blocked greenlets whose socket is ready for them, by ``EVENTS``.

        ``EVENTS`` is read through the backend, so that the check wakes nobody, and only
        while the socket's fd is quiet: then no command is pending and the read
        processes none. None when an fd is signalled (the hub has not settled).
        """
        blocked = [c for c in self.calls if c.blocked()]
        events: dict[str, int] = {}
        for side in sorted(self.waited_on()):
            if self.signalled({side}):
                return None
            events[side] = int(RawSocket.get(self.sockets[side], zmq.EVENTS))
        if self.signalled(self.waited_on()):
            # Our read posted a command to the peer (a ROUTER prefetching): let the hub pass it on.
            return None
        return [
            f"[{c.number}] {c.step} is blocked while {side} has {READINESS[events[side]]}"
            for c in blocked
            for side, mask in c.waits_on
            if events.get(side, 0) & mask
        ]

    def snapshot(self) -> tuple[int, ...]:
        return (
            len(self.calls),
            sum(c.entered for c in self.calls),
            sum(c.done for c in self.calls),
            *(len(self.delivered[side]) for side in SIDES),
        )

    def settle(self) -> None:
        """Let the hub run until nothing changes; fail if a greenlet then waits in vain.

        Over ipc and tcp the I/O thread works on its own, so the state must hold for a
        few rounds, and no check is made while a message is on its way to a blocked
        receiver (the read of ``EVENTS`` could take the command that brings it).
        """
        rounds = 1 if self.inproc else 3
        start = time.monotonic()
        deadline = start + SETTLE_SECONDS
        quiet, last = 0, None
        while True:
            gevent.sleep(0)
            gevent.idle()
            if not self.inproc:
                gevent.sleep(0.001)
            now = self.snapshot()
            quiet = quiet + 1 if now == last and not self.signalled(self.waited_on()) else 0
            if now != last:  # progress: as long again
                deadline = min(time.monotonic() + SETTLE_SECONDS, start + CHANGING_SECONDS)
            last = now
            if time.monotonic() > deadline:
                stuck = self.stuck()
                assert not stuck, "missed wake-up: " + "; ".join(stuck)
                raise AssertionError(self.unsettled())
            if quiet < rounds or self.awaited():
                continue
            stuck = self.stuck()
            if stuck is None:
                quiet = 0
                continue
            assert not stuck, "missed wake-up: " + "; ".join(stuck)
            return

    def unsettled(self) -> str:
        problems = [
            f"ZMQ_FD of {side} stays signalled while greenlets wait on it"
            for side in self.signalled(self.waited_on())
        ]
        problems += [
            f"{self.unreceived(side)} message(s) sent to {side} never reached the greenlets waiting for them"
            for side in self.awaited()
        ]
        return f"the hub did not settle ({SETTLE_SECONDS} s without progress): " + "; ".join(
            problems or [f"it kept changing for {CHANGING_SECONDS} s"]
        )

    def check(self) -> None:
        """Settle, then check the model, the closed sockets and the hub's watchers.

        A check lasts at least :data:`PAUSE` (during which, over inproc, nothing can
        happen), so that the next send processes pending commands whatever the load.
        """
        start = time.monotonic()
        self.settle()
        time.sleep(max(0.0, start + PAUSE - time.monotonic()))
        self.facts["checks"] += 1
        for side in SIDES:
            got = self.delivered[side]
            assert got == self.sent[other(side)][: len(got)], (
                f"{side} received what was not sent, or out of order"
            )
        for call in self.calls:
            assert not (call.blocked() and call.sides & self.closed), (
                f"[{call.number}] {call.step} still waits on a closed socket"
            )
        if not any(c.blocked() for c in self.calls):
            # A poller that has blocked keeps watching its sockets while it lives (one
            # kept by a traceback of a poll interrupted in a step, say): nothing else may.
            polled = sum(
                1 for side in SIDES if side not in self.closed and waits_of(self.sockets[side]).interests
            )
            assert active_watchers() == self.baseline + polled, (
                f"nothing waits, yet the hub has {active_watchers() - self.baseline - polled} more active"
                " watcher(s) than the pollers that watch its sockets"
            )

    def drain(self) -> None:
        """Receive what is left, one receiver at a time, checking after each message.

        From an open sender must come exactly what it sent and was not received yet,
        then nothing; from a closed one, whatever it left behind.
        """
        for dst in self.pattern.receivers:
            src = other(dst)
            if dst in self.closed:
                continue
            if src in self.closed:
                while True:
                    try:
                        self.receive(dst, zmq.DONTWAIT)
                    except zmq.Again:
                        break
                continue
            self.step_timeo(None, Step("timeo", dst, "rcvtimeo", arg=-1))
            before = None
            while True:
                senders = [
                    c for c in self.calls if c.step.kind == "send" and c.step.side == src and not c.done
                ]
                if not (senders or self.unreceived(dst) > 0):
                    break
                now = (len(self.delivered[dst]), len(senders))
                assert now != before, f"draining {dst} is stuck: {self.unreceived(dst)} message(s) missing"
                before = now
                if not any(c.blocked() and c.waits_on == ((dst, IN),) for c in self.calls):
                    self.step_recv(None, Step("recv", dst))
                self.settle()
            try:
                extra = self.sockets[dst].recv_multipart(zmq.DONTWAIT)
            except zmq.Again:
                continue
            raise AssertionError(f"{dst} received {show(extra)}, which no send returned")

    def finish(self) -> None:
        """The end of every program: check, drain, check, close both sockets under their waiters."""
        closed_early = set(self.closed)
        self.observe()
        self.check()
        self.drain()
        self.check()
        self.observe()
        for side in SIDES:
            self.step_close(None, Step("close", side))
        deadline, done = time.monotonic() + SETTLE_SECONDS, -1
        while done < len(self.calls) and time.monotonic() < deadline:
            gevent.sleep(0.001)
            now = sum(c.done for c in self.calls)
            if now != done:  # progress: as long again
                done, deadline = now, time.monotonic() + SETTLE_SECONDS
        for call in self.calls:
            problem = self.judge(call)
            assert problem is None, f"[{call.number}] {call.step}: {problem}"
        for dst in self.pattern.receivers:
            got, sent = self.delivered[dst], self.sent[other(dst)]
            if {dst, other(dst)} & closed_early:
                assert got == sent[: len(got)], f"{dst} received what was not sent, or out of order"
            else:
                assert got == sent, f"{dst} did not receive exactly what was sent to it"
        gevent.idle()
        assert active_watchers() == self.baseline, "the hub keeps a watcher after both sockets closed"

    def judge(self, call: Call) -> str | None:
        """Why *call* did not end as allowed, or None."""
        e = call.error
        if not call.done:
            return "still blocked after its socket was closed" if call.entered else "never ran"
        faults: tuple[type, ...] = ()
        if "exit" in call.thrown:
            faults += (gevent.GreenletExit,)
        if "timeout" in call.thrown or call.step.guard is not None:
            faults += (gevent.Timeout,)
        if isinstance(e, faults):
            return None
        if isinstance(e, zmq.ZMQError) and e.errno == zmq.ENOTSOCK and call.closed_at_end:
            return None
        if call.closed_under:
            # A poll woken by its other socket just before the close may report that one.
            polled = e is None and call.step.kind == "poll"
            reported = {self.names().get(id(s)) for s, _ in call.result} if polled else set()
            if not reported or reported & call.closed_under:
                closed = " and ".join(sorted(call.closed_under))
                return f"was blocked on {closed} when it was closed, then: {call.outcome(self.names())}"
        elapsed = call.ended_at - call.started_at
        if isinstance(e, zmq.Again):
            if call.timeo_ms < 0:
                return "Again without DONTWAIT or a timeout"
            if elapsed < call.timeo_ms / 1000:
                return f"Again after {elapsed * 1000:.2f} ms, before its timeout of {call.timeo_ms} ms"
            return None
        if (
            isinstance(e, zmq.ZMQError)
            and e.errno == zmq.EHOSTUNREACH
            and self.pattern == DEALER_ROUTER
            and call.step.kind == "send"
            and call.step.side == "b"
            and "a" in self.closed
        ):
            return None
        if e is not None:
            return f"ended with {name(e)}"
        if call.step.kind == "poll" and call.result != SKIPPED:
            return self.judge_poll(call, elapsed)
        return None

    def judge_poll(self, call: Call, elapsed: float) -> str | None:
        polled = dict(call.step.arg)
        for sock, mask in call.result:
            side = next((s for s in polled if self.sockets[s] is sock), None)
            if side is None:
                return f"returned {sock!r}, which it does not poll"
            if not mask or mask & ~polled[side]:
                return f"returned {mask} for {side}, polled for {READINESS[polled[side]]}"
            if mask & IN and not call.unreceived[side]:
                return f"reported POLLIN on {side}, which had no message to receive"
        if not call.result:
            if call.timeo_ms < 0:
                return "returned [] without a timeout"
            if elapsed < call.timeo_ms / 1000:
                return f"returned [] after {elapsed * 1000:.2f} ms, before its timeout of {call.timeo_ms} ms"
        return None

    # -- reporting ----------------------------------------------------------------

    def names(self) -> dict[int, str]:
        return {id(sock): side for side, sock in self.sockets.items()}

    def report(self) -> str:
        """What each step and call did, for a failing program."""
        lines = [f"step {i:2d}: {note_}" for i, note_ in sorted(self.notes.items())]
        for call in self.calls:
            where = "drain  " if call.index is None else f"step {call.index:2d}"
            lines.append(f"[{call.number}] {where}  {call.step}  ->  {call.outcome(self.names())}")
        for side in SIDES:
            if side in self.pattern.senders:
                lines.append(f"sent by {side}: {[show(m) for m in self.sent[side]]}")
            if side in self.pattern.receivers:
                lines.append(f"received by {side}: {[show(m) for m in self.delivered[side]]}")
        lines.append(f"closed: {sorted(self.closed) or 'none'} (then both, at the end)")
        return "\n".join(lines)

    def summary(self) -> Counter[str]:
        """Facts about the run, for the distribution printed at the end of the session."""
        facts = self.facts
        errors = [c.error for c in self.calls if c.index is not None]
        facts["sends"] = sum(len(self.sent[side]) for side in SIDES)
        facts["messages"] = sum(len(self.delivered[side]) for side in SIDES)
        facts["received"] = sum(
            c.step.kind == "recv" and c.index is not None and c.error is None for c in self.calls
        )
        facts["GreenletExit"] = sum(isinstance(e, gevent.GreenletExit) for e in errors)
        facts["gevent.Timeout"] = sum(isinstance(e, gevent.Timeout) for e in errors)
        facts["timeo expired"] = sum(
            isinstance(c.error, zmq.Again) and c.timeo_ms > 0 for c in self.calls if c.index is not None
        )
        facts["closed under"] = sum(bool(c.closed_under) for c in self.calls)
        return facts


def run_program(program: Program, ctx: Any, endpoint: str) -> Counter[str]:
    """Run *program* on new sockets of *ctx* bound to *endpoint*, check it; return facts about it."""
    before = zmq.stats()
    run = Run(program)
    try:
        run.open(ctx, endpoint)
        for index, step in enumerate(program.steps):
            run.do(index, step)
        run.finish()
        assert zmq.stats()["rescues"] == before["rescues"], "the safety timeout rescued a missed wake-up"
    except AssertionError as e:
        # One place for every failed check, so that hypothesis shrinks them as one
        # failure; the report in the message, so that a flaky failure shows it too.
        raise AssertionError(f"{e}\n\nwhat the calls did:\n{run.report()}") from None
    except BaseException:
        note(run.report())
        raise
    finally:
        run.close_all()
    facts = run.summary()
    facts["waits"] = zmq.stats()["waits"] - before["waits"]
    return facts
