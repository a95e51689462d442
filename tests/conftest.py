"""Shared fixtures.

``mod`` runs a test body against native pyzmq and zmq_green where their behaviour
must match; ``ctx`` gives a green context that is destroyed after the test. Every
test runs with a short safety timeout and fails on a rescue (``_safety_net``), and
no greenlet may still wait on an open socket after it (``_no_waiter_left``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import zmq

import zmq_green
import zmq_green.socket as green_socket
from zmq_green._waiting import _waits_by_handle


@pytest.fixture(params=["zmq", "zmq_green"])
def mod(request: pytest.FixtureRequest) -> Any:
    """The module under test: ``zmq`` (the reference) or ``zmq_green``."""
    return zmq if request.param == "zmq" else zmq_green


@pytest.fixture
def mod_ctx(mod: Any) -> Iterator[Any]:
    """A context of ``mod``, destroyed (linger 0) after the test."""
    ctx = mod.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def ctx() -> Iterator[zmq_green.Context]:
    """A green context, destroyed (linger 0) after the test."""
    context = zmq_green.Context()
    yield context
    context.destroy(linger=0)


def outcome(func: Callable[..., Any], *args: Any) -> Any:
    """What *func* returned, or the exception it raised (so greenlets never print tracebacks)."""
    try:
        return func(*args)
    except BaseException as e:  # gevent.Timeout and GreenletExit included
        return e


def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Let other greenlets run until *condition* holds (or fail after *seconds*)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        gevent.sleep(0.001)


def at_the_check_after_a_failure(
    monkeypatch: pytest.MonkeyPatch,
    failing: Callable[[Any, Any, int], bool],
    action: Callable[[], Any],
    in_the_window: bool,
) -> list[bool]:
    """Run *action* once, at the check for pending commands that follows a failed try.

    The try is the first for which ``failing(waits, entry, failed)`` holds. *action*
    runs before that check, so the check finds the command it posts (news), or, with
    *in_the_window*, after a check that found none, so the ``EVENTS`` reading
    consumes the command unseen. Returns a list that holds ``True`` once the failure
    is seen, and ``[True, False]`` once *action* has run.
    """
    after_failure = zmq_green._waiting.SocketWaits._after_failure
    signalled = zmq_green._waiting.SocketWaits.signalled
    steps: list[bool] = []

    def noted(waits: Any, entry: Any, failed: int) -> Any:
        if not steps and failing(waits, entry, failed):
            steps.append(True)
        return after_failure(waits, entry, failed)

    def checked(waits: Any) -> bool:
        if steps == [True] and not in_the_window:
            steps.append(False)
            action()
        pending = signalled(waits)
        if steps == [True] and not pending:
            steps.append(False)
            action()
        return pending

    monkeypatch.setattr(zmq_green._waiting.SocketWaits, "_after_failure", noted)
    monkeypatch.setattr(zmq_green._waiting.SocketWaits, "signalled", checked)
    return steps


ROOT = Path(__file__).resolve().parent.parent


def other_gevent_loop() -> str:
    """The ``GEVENT_LOOP`` of the loop this session is not on (libuv, by default)."""
    return "libev-cext" if "libuv" in type(gevent.get_hub().loop).__module__ else "libuv-cffi"


def run_pytest_on(loop: str, args: list[str], timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest with *args*, from the repository's root, in a child interpreter on gevent's *loop*.

    The child is first shown to run on that loop (a misspelt ``GEVENT_LOOP`` falls
    back to the default one silently). *env* is added to the child's environment.
    """
    child_env = dict(os.environ, GEVENT_LOOP=loop, **env)
    probe = subprocess.run(
        [sys.executable, "-c", "import gevent; print(type(gevent.get_hub().loop).__module__)"],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loop.split("-")[0] in probe.stdout, probe.stdout + probe.stderr
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=child_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# What pip and build say when they cannot reach the package index.
OFFLINE = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|ProxyError"
)


def run_online(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """*args* in *cwd*; on failure, skip if the package index is out of reach outside CI."""
    proc = subprocess.run(
        args, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0 and not os.environ.get("CI") and OFFLINE.search(proc.stdout + proc.stderr):
        pytest.skip(f"the package index is out of reach: {args[:4]}")
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def run_script(script: str, timeout: float = 50) -> subprocess.CompletedProcess[str]:
    """Run *script* (dedented) in a fresh interpreter; fail with its stderr unless it exits 0."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


class Ticker:
    """A greenlet counting how often it ran: proof that the hub kept running."""

    def __init__(self, every: float = 0.005) -> None:
        self.ticks = 0
        self._every = every
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            gevent.sleep(self._every)
            self.ticks += 1

    def stop(self) -> int:
        """Stop counting; the number of ticks."""
        self._greenlet.kill()
        return self.ticks


def pair(ctx: Any, a_type: int, b_type: int, transport: str = "inproc") -> tuple[Any, Any]:
    """Two connected sockets of *ctx*: ``a`` binds, ``b`` connects."""
    a = ctx.socket(a_type)
    b = ctx.socket(b_type)
    a.linger = 0
    b.linger = 0
    if transport == "inproc":
        addr = f"inproc://pair-{id(a)}"
        a.bind(addr)
        b.connect(addr)
    else:
        a.bind("tcp://127.0.0.1:*")
        b.connect(a.last_endpoint)
    return a, b


#: The safety timeout every test runs with: short, so that a missed wake-up is
#: caught (as a rescue) inside the test that caused it, not hidden behind 10 s.
TEST_SAFETY_TIMEOUT = 0.5


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "rescues_expected: the test provokes safety-timeout rescues on purpose"
    )
    config.addinivalue_line(
        "markers",
        "lie_window: a socket that EVENTS lies to, served by libzmq's I/O thread: a"
        " lied-to waiter's news may be consumed unseen (lied_rescues, see zmq_green._waiting)",
    )


@pytest.fixture(autouse=True)
def _safety_net(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test runs with a short safety timeout and fails on a rescue (a missed wake-up).

    A lied-to waiter's rescues are allowed only where libzmq's window for them
    exists (``lie_window``).
    """
    saved = zmq_green.Socket.safety_timeout, zmq_green.Poller.safety_timeout
    zmq_green.Socket.safety_timeout = zmq_green.Poller.safety_timeout = TEST_SAFETY_TIMEOUT
    before = zmq_green.stats()
    try:
        yield
    finally:
        zmq_green.Socket.safety_timeout, zmq_green.Poller.safety_timeout = saved
    if request.node.get_closest_marker("rescues_expected") is None:
        after = zmq_green.stats()
        # Summed into the session's reliability figures (tests/stress/conftest.py).
        request.node.user_properties.append(("lied_rescues", after["lied_rescues"] - before["lied_rescues"]))
        checked = ["rescues"]
        if request.node.get_closest_marker("lie_window") is None:
            checked.append("lied_rescues")
        for counter in checked:
            missed = after[counter] - before[counter]
            assert missed == 0, f"{missed} wake-up(s) missed (found by the safety timeout: {counter})"


@pytest.fixture(autouse=True)
def _no_waiter_left() -> Iterator[None]:
    """After a test, no greenlet still waits on an open socket: every wait ended with it."""
    yield
    # Let killed greenlets finish their cleanup first.
    gevent.sleep(0)
    gevent.sleep(0)
    left = [w for w in _waits_by_handle.values() if w.count and not w.closed]
    assert not left, f"greenlets still wait on {len(left)} open socket(s) after the test"


@pytest.fixture
def option_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """How often green sockets read each option through ``zmq_green.socket``'s getter, from now on."""
    reads: Counter[int] = Counter()
    raw = green_socket._get

    def counted(socket: Any, option: int) -> Any:
        reads[option] += 1
        return raw(socket, option)

    monkeypatch.setattr(green_socket, "_get", counted)
    return reads


def active_watchers() -> int:
    """The hub's active watchers: libev's count; libuv's started fd watchers (its activecnt is always 0).

    The hub runs its callbacks first: finalized pollers leave the closing of their
    watches to it.
    """
    gevent.sleep(0)
    loop = gevent.get_hub().loop
    io = getattr(loop, "_io_watchers", None)
    if io is not None:
        return sum(1 for watcher in io.values() if watcher.active)
    return int(loop.activecnt)
