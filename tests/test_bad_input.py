"""Same misuse, same error: each call runs against pyzmq and zmq_green, outcomes compared.

Each row runs on a fresh set of sockets of ``zmq`` and then of ``zmq_green``; the
outcomes must match: the same exception type and errno, or the same result. The rows
are in three tables, and each row reports under its table's key (``record_property``;
tests/stress/conftest.py prints the totals when the stress tests are in the session):

* ``REJECTED`` (``bad_inputs``): calls that pyzmq rejects and that run zmq_green's own
  code -- wrong types and flags to the green send/recv family, use after close, the
  wrong direction and EFSM, junk in a green ``Poller`` or ``select``, device
  arguments, expiring ``RCVTIMEO``/``SNDTIMEO``, a socket closed or a context
  terminated under a waiting greenlet;
* ``ACCEPTED`` (``odd_inputs``): odd calls that pyzmq accepts and that run zmq_green's
  own code (timeouts of ``None``, negative, float, huge; flags of odd types...);
* ``PASS_THROUGH`` (``pass_through_inputs``): calls that never reach zmq_green's code
  (``setsockopt``, bind/connect, context options, serialisation that fails before
  ``send``). They compare pyzmq with itself and test zmq_green only in that the
  namespace hands them on; they are not counted as inputs tried on zmq_green.

Which table a row belongs to is not taken on trust: a profile hook watches the green
call, and a row that runs zmq_green's code in ``PASS_THROUGH``, or none elsewhere,
fails. A deviation from pyzmq is marked ``xfail(strict=True)`` with its reason until
it is fixed, and reports nothing.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from types import FrameType
from typing import Any, Callable

import gevent
import pytest
import zmq

import zmq_green

GREEN_CODE = os.path.dirname(zmq_green.__file__) + os.sep


@dataclass
class Kit:
    """Fresh sockets of one module for one call."""

    m: Any  # zmq or zmq_green
    ctx: Any
    push: Any  # connected to pull
    pull: Any
    lone: Any  # a PUSH with no peer
    req: Any  # connected to rep
    rep: Any
    sub: Any
    closed: Any  # a closed PULL
    poller: Any  # empty
    dead_ctx: Any  # a terminated context

    @classmethod
    def make(cls, m: Any) -> Kit:
        ctx = m.Context()
        s = {
            name: ctx.socket(getattr(m, kind))
            for name, kind in [
                ("push", "PUSH"),
                ("pull", "PULL"),
                ("lone", "PUSH"),
                ("req", "REQ"),
                ("rep", "REP"),
                ("sub", "SUB"),
                ("closed", "PULL"),
            ]
        }
        for sock in s.values():
            sock.linger = 0
        s["pull"].bind("inproc://pull")
        s["push"].connect("inproc://pull")
        s["rep"].bind("inproc://rep")
        s["req"].connect("inproc://rep")
        s["closed"].close()
        dead_ctx = m.Context()
        dead_ctx.term()
        return cls(m=m, ctx=ctx, poller=m.Poller(), dead_ctx=dead_ctx, **s)

    def names(self) -> dict[int, str]:
        return {id(v): k for k, v in vars(self).items()}


def shape(value: Any, names: dict[int, str]) -> Any:
    """A comparable picture of a return value: kit sockets by name, containers by content."""
    if id(value) in names:
        return names[id(value)]
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [shape(v, names) for v in value]
    if value is None or isinstance(value, (int, bytes, str)):
        return int(value) if isinstance(value, int) else value
    return type(value).__name__


def outcome(call: Callable[[Kit], Any], kit: Kit) -> tuple[Any, ...]:
    try:
        with gevent.Timeout(10):  # a green call that blocks here is a failure, not a hang
            value = call(kit)
    except Exception as e:
        return ("raised", type(e), getattr(e, "errno", None))
    return ("returned", shape(value, kit.names()))


def watched_outcome(call: Callable[[Kit], Any], kit: Kit) -> tuple[tuple[Any, ...], bool]:
    """:func:`outcome`, and whether any function of zmq_green ran meanwhile."""
    ran = False

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal ran
        if event == "call" and frame.f_code.co_filename.startswith(GREEN_CODE):
            ran = True

    gc.collect()  # so that no finalizer of an earlier row's objects runs in the watch
    sys.setprofile(profile)
    try:
        return outcome(call, kit), ran
    finally:
        sys.setprofile(None)


# -- helpers for the rows ------------------------------------------------------------


def two_sends(k: Kit) -> None:
    k.req.send(b"a")
    k.req.send(b"b")


def poll_after(register: Callable[[Kit], Any], timeout: Any = 0) -> Callable[[Kit], Any]:
    def call(k: Kit) -> Any:
        register(k)
        return k.poller.poll(timeout)

    return call


def with_option(option: str, value: Any, call: Callable[[Kit], Any]) -> Callable[[Kit], Any]:
    def run(k: Kit) -> Any:
        setattr(k.pull, option, value)
        setattr(k.lone, option, value)
        return call(k)

    return run


def with_message(call: Callable[[Kit], Any]) -> Callable[[Kit], Any]:
    """*call* once ``pull`` has a message waiting."""

    def run(k: Kit) -> Any:
        k.push.send(b"ready")
        return call(k)

    return run


def ready_poller(k: Kit) -> Any:
    k.poller.register(k.push, k.m.POLLOUT)
    return k.poller


class BadFileno:
    def fileno(self) -> str:
        return "not an fd"


def closed_under(name: str, op: Callable[[Any], Any]) -> Callable[[Kit], Any]:
    """``op(socket)`` while the socket is closed.

    In zmq_green a greenlet waits in *op* when another closes the socket. pyzmq cannot
    close a socket under a thread blocked on it; its error for a call on a closed
    socket is the reference.
    """

    def call(k: Kit) -> Any:
        sock = getattr(k, name)
        if k.m is zmq:
            sock.close()
            return op(sock)
        waiter = gevent.spawn(op, sock)
        gevent.idle()
        assert not waiter.ready(), "the call did not wait"
        sock.close()
        return waiter.get()

    return call


def terminated_under(kind: str, op: Callable[[Any, Any], Any]) -> Callable[[Kit], Any]:
    """``op(module, socket)``, blocking, on a socket of a context that is being terminated.

    Another thread (pyzmq) or greenlet (zmq_green) terminates the context; whichever
    starts first, the call ends with the error libzmq gives it.
    """

    def call(k: Kit) -> Any:
        ctx = k.m.Context()
        sock = ctx.socket(getattr(k.m, kind))
        sock.linger = 0
        sock.bind("inproc://terminated")
        if k.m is zmq:
            thread = threading.Thread(target=ctx.term)
            thread.start()
        else:
            terming = gevent.spawn(ctx.term)
        try:
            return op(k.m, sock)
        finally:
            sock.close()
            if k.m is zmq:
                thread.join(10)
            else:
                terming.get(timeout=10)

    return call


def in_poller(m: Any, sock: Any) -> Any:
    poller = m.Poller()
    poller.register(sock, m.POLLIN)
    return poller.poll()


def term_after_closing(k: Kit) -> None:
    ctx = k.m.Context()
    ctx.socket(k.m.PUSH).close()
    ctx.term()


# -- the tables ------------------------------------------------------------------------


def row(name: str, call: Callable[[Kit], Any], xfail: str | None = None) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(call, id=name, marks=marks)


#: Calls that pyzmq rejects and that run zmq_green's own code.
REJECTED = [
    # the green send: wrong data, flags, DRAFT arguments
    row("send-str", lambda k: k.push.send("text")),
    row("send-int", lambda k: k.push.send(42)),
    row("send-none", lambda k: k.push.send(None)),
    row("send-object", lambda k: k.push.send(object())),
    row("send-noncontiguous-buffer", lambda k: k.push.send(memoryview(bytearray(8))[::2])),
    row("send-str-copy-false", lambda k: k.push.send("text", copy=False)),
    row("send-flags-str", lambda k: k.push.send(b"x", flags="now")),
    row("send-flags-numeric-str", lambda k: k.push.send(b"x", flags="1")),
    row("send-flags-bytes", lambda k: k.push.send(b"x", flags=b"1")),
    row("send-flags-none", lambda k: k.push.send(b"x", flags=None)),
    row("send-flags-list", lambda k: k.push.send(b"x", flags=[1])),
    row("send-flags-complex", lambda k: k.push.send(b"x", flags=0j)),
    row("send-flags-huge", lambda k: k.push.send(b"x", flags=2**40)),
    row("send-flags-true-is-dontwait", lambda k: k.lone.send(b"x", flags=True)),
    row("send-flags-float-dontwait", lambda k: k.lone.send(b"x", flags=1.0)),
    row("send-sndmore-dontwait-no-peer", lambda k: k.lone.send(b"x", k.m.SNDMORE | k.m.DONTWAIT)),
    row("send-routing-id-without-draft", lambda k: k.push.send(b"x", routing_id=5)),
    row("send-group-without-draft", lambda k: k.push.send(b"x", group="g")),
    row("send-dontwait-no-peer", lambda k: k.lone.send(b"x", k.m.NOBLOCK)),
    # the green recv and recv_multipart
    row("recv-flags-str", lambda k: k.pull.recv(flags="now")),
    row("recv-flags-bytes", lambda k: k.pull.recv(flags=b"1")),
    row("recv-flags-none", lambda k: k.pull.recv(flags=None)),
    row("recv-flags-list", lambda k: k.pull.recv(flags=[])),
    row("recv-flags-huge", lambda k: k.pull.recv(flags=2**40)),
    row("recv-flags-negative-has-dontwait", lambda k: k.pull.recv(flags=-1)),
    row("recv-flags-float-dontwait", lambda k: k.pull.recv(flags=1.9)),
    row("recv-dontwait", lambda k: k.pull.recv(k.m.DONTWAIT)),
    row("recv-copy-false-dontwait", lambda k: k.pull.recv(k.m.DONTWAIT, copy=False)),
    row("recv-string-dontwait", lambda k: k.pull.recv_string(k.m.DONTWAIT)),
    row("recv-multipart-dontwait", lambda k: k.pull.recv_multipart(k.m.DONTWAIT)),
    row("recv-multipart-flags-none", lambda k: k.pull.recv_multipart(flags=None)),
    row("recv-multipart-flags-numeric-str", lambda k: k.pull.recv_multipart(flags="1")),
    # the green recv_into
    row("recv-into-readonly", lambda k: k.pull.recv_into(b"readonly")),
    row("recv-into-str", lambda k: k.pull.recv_into("abcd")),
    row("recv-into-none", lambda k: k.pull.recv_into(None)),
    row("recv-into-noncontiguous", lambda k: k.pull.recv_into(memoryview(bytearray(8))[::2])),
    row("recv-into-negative-nbytes", lambda k: k.pull.recv_into(bytearray(4), nbytes=-1)),
    row("recv-into-nbytes-too-big", lambda k: k.pull.recv_into(bytearray(4), nbytes=8)),
    row("recv-into-nbytes-str", lambda k: k.pull.recv_into(bytearray(4), nbytes="2")),
    row("recv-into-flags-str", lambda k: k.pull.recv_into(bytearray(4), flags="1")),
    row("recv-into-flags-none", lambda k: k.pull.recv_into(bytearray(4), flags=None)),
    row("recv-into-flags-negative", lambda k: k.pull.recv_into(bytearray(4), flags=-1)),
    row("recv-into-dontwait", lambda k: k.pull.recv_into(bytearray(4), flags=k.m.DONTWAIT)),
    # the green send_multipart
    row("multipart-str-frame", lambda k: k.push.send_multipart([b"a", "b"])),
    row("multipart-int-frame", lambda k: k.push.send_multipart([b"a", 1])),
    row("multipart-none-frame", lambda k: k.push.send_multipart([None])),
    row("multipart-str-last-frame", lambda k: k.push.send_multipart([b"a", b"b", "c"])),
    row("multipart-str", lambda k: k.push.send_multipart("abc")),
    row("multipart-bytes", lambda k: k.push.send_multipart(b"abc")),
    row("multipart-none", lambda k: k.push.send_multipart(None)),
    row("multipart-empty", lambda k: k.push.send_multipart([])),
    row("multipart-generator", lambda k: k.push.send_multipart(f for f in [b"a", b"b"])),
    row("multipart-set", lambda k: k.push.send_multipart({b"a"})),
    row("multipart-dict", lambda k: k.push.send_multipart({b"a": 1})),
    row("multipart-deque", lambda k: k.push.send_multipart(deque([b"a", b"b"]))),
    row("multipart-flags-str", lambda k: k.push.send_multipart([b"a", b"b"], flags="1")),
    row("multipart-flags-none", lambda k: k.push.send_multipart([b"a", b"b"], flags=None)),
    row("multipart-dontwait-no-peer", lambda k: k.lone.send_multipart([b"a", b"b"], k.m.DONTWAIT)),
    # the green get (getsockopt)
    row("getsockopt-unknown", lambda k: k.push.getsockopt(9999)),
    row("getsockopt-negative", lambda k: k.push.get(-1)),
    row("getsockopt-none", lambda k: k.push.get(None)),
    row("getsockopt-name-str", lambda k: k.push.getsockopt("EVENTS")),
    # socket types, terminated contexts (the green Socket's constructor)
    row("socket-type-unknown", lambda k: k.ctx.socket(999)),
    row("socket-type-negative", lambda k: k.ctx.socket(-1)),
    row("socket-type-str", lambda k: k.ctx.socket("PUSH")),
    row("socket-unknown-keyword", lambda k: k.ctx.socket(k.m.PUSH, junk=1)),
    # use after close
    row("closed-send", lambda k: k.closed.send(b"x")),
    row("closed-send-dontwait", lambda k: k.closed.send(b"x", k.m.DONTWAIT)),
    row("closed-send-str", lambda k: k.closed.send("x")),
    row("closed-recv", lambda k: k.closed.recv()),
    row("closed-recv-dontwait", lambda k: k.closed.recv(k.m.DONTWAIT)),
    row("closed-send-multipart", lambda k: k.closed.send_multipart([b"a", b"b"])),
    row("closed-send-multipart-empty", lambda k: k.closed.send_multipart([])),
    row("closed-recv-multipart", lambda k: k.closed.recv_multipart()),
    row("closed-recv-into", lambda k: k.closed.recv_into(bytearray(4))),
    row("closed-recv-into-readonly", lambda k: k.closed.recv_into(b"ro")),
    row("closed-send-string", lambda k: k.closed.send_string("x")),
    row("closed-getsockopt-events", lambda k: k.closed.get(k.m.EVENTS)),
    # a socket closed under a waiting greenlet
    row("closed-under-recv", closed_under("pull", lambda s: s.recv())),
    row("closed-under-recv-multipart", closed_under("pull", lambda s: s.recv_multipart())),
    row("closed-under-recv-into", closed_under("pull", lambda s: s.recv_into(bytearray(4)))),
    row("closed-under-recv-string", closed_under("pull", lambda s: s.recv_string())),
    row(
        "closed-under-recv-rcvtimeo", closed_under("pull", lambda s: (setattr(s, "rcvtimeo", 5000), s.recv()))
    ),
    row("closed-under-req-recv", closed_under("req", lambda s: (s.send(b"q"), s.recv()))),
    row("closed-under-send", closed_under("lone", lambda s: s.send(b"x"))),
    row("closed-under-send-multipart", closed_under("lone", lambda s: s.send_multipart([b"a", b"b"]))),
    row("closed-under-send-json", closed_under("lone", lambda s: s.send_json({}))),
    # a context terminated under a waiting greenlet
    row("terminated-under-recv", terminated_under("PULL", lambda m, s: s.recv())),
    row("terminated-under-recv-multipart", terminated_under("PULL", lambda m, s: s.recv_multipart())),
    row("terminated-under-recv-into", terminated_under("PULL", lambda m, s: s.recv_into(bytearray(4)))),
    row("terminated-under-send", terminated_under("PUSH", lambda m, s: s.send(b"x"))),
    row("terminated-under-socket-poll", terminated_under("PULL", lambda m, s: s.poll())),
    row("terminated-under-poller", terminated_under("PULL", in_poller)),
    row("terminated-under-select", terminated_under("PULL", lambda m, s: m.select([s], [], []))),
    # wrong direction, wrong state (EFSM)
    row("push-recv", lambda k: k.push.recv()),
    row("pull-send", lambda k: k.pull.send(b"x")),
    row("pull-send-multipart", lambda k: k.pull.send_multipart([b"a", b"b"])),
    row("sub-send", lambda k: k.sub.send(b"x")),
    row("req-send-twice", two_sends),
    row("req-recv-first", lambda k: k.req.recv()),
    row("rep-send-first", lambda k: k.rep.send(b"x")),
    # RCVTIMEO and SNDTIMEO that expire, or that never come into play
    row("rcvtimeo-1ms-recv", with_option("rcvtimeo", 1, lambda k: k.pull.recv())),
    row("rcvtimeo-1ms-recv-multipart", with_option("rcvtimeo", 1, lambda k: k.pull.recv_multipart())),
    row("rcvtimeo-1ms-recv-into", with_option("rcvtimeo", 1, lambda k: k.pull.recv_into(bytearray(4)))),
    row("rcvtimeo-1ms-recv-string", with_option("rcvtimeo", 1, lambda k: k.pull.recv_string())),
    row("rcvtimeo-0-recv", with_option("rcvtimeo", 0, lambda k: k.pull.recv())),
    row("rcvtimeo-0-recv-multipart", with_option("rcvtimeo", 0, lambda k: k.pull.recv_multipart())),
    row("rcvtimeo-0-recv-into", with_option("rcvtimeo", 0, lambda k: k.pull.recv_into(bytearray(4)))),
    row("rcvtimeo-1ms-req-recv-first", lambda k: (setattr(k.req, "rcvtimeo", 1), k.req.recv())),
    row("sndtimeo-1ms-send", with_option("sndtimeo", 1, lambda k: k.lone.send(b"x"))),
    row(
        "sndtimeo-1ms-send-multipart",
        with_option("sndtimeo", 1, lambda k: k.lone.send_multipart([b"a", b"b"])),
    ),
    row("sndtimeo-0-send", with_option("sndtimeo", 0, lambda k: k.lone.send(b"x"))),
    row(
        "sndtimeo-0-send-multipart", with_option("sndtimeo", 0, lambda k: k.lone.send_multipart([b"a", b"b"]))
    ),
    # junk in the green Poller
    row("poller-str", poll_after(lambda k: k.poller.register("junk", k.m.POLLIN))),
    row("poller-object", poll_after(lambda k: k.poller.register(object(), k.m.POLLIN))),
    row("poller-none", poll_after(lambda k: k.poller.register(None, k.m.POLLIN))),
    row("poller-unhashable", poll_after(lambda k: k.poller.register([1], k.m.POLLIN))),
    row("poller-fileno-not-int", poll_after(lambda k: k.poller.register(BadFileno(), k.m.POLLIN))),
    row("poller-flags-str", poll_after(lambda k: k.poller.register(k.pull, "in"))),
    row("poller-flags-huge", poll_after(lambda k: k.poller.register(k.push, 2**40))),
    row("poller-unregister-unknown", lambda k: k.poller.unregister(k.pull)),
    row("poller-unregister-none", lambda k: k.poller.unregister(None)),
    row(
        "poller-unregister-twice",
        lambda k: (k.poller.register(k.pull), k.poller.unregister(k.pull), k.poller.unregister(k.pull)),
    ),
    row("poller-poll-str-timeout", lambda k: ready_poller(k).poll("soon")),
    row("poller-poll-bytes-timeout", lambda k: k.poller.poll(b"1")),
    row("poller-poll-nan", lambda k: k.poller.poll(float("nan"))),
    row("poller-poll-inf", lambda k: k.poller.poll(float("inf"))),
    row("poller-poll-huge", lambda k: ready_poller(k).poll(2**40)),
    row("socket-poll-huge", lambda k: k.push.poll(2**40, k.m.POLLOUT)),
    row("socket-poll-nan", lambda k: k.pull.poll(float("nan"))),
    row("socket-poll-flags-str", lambda k: k.pull.poll(0, "in")),
    # the green select
    row("select-str-timeout", lambda k: k.m.select([k.pull], [], [], "soon")),
    row("select-junk", lambda k: k.m.select(["junk"], [], [], 0)),
    row("select-junk-in-xlist", lambda k: k.m.select([], [], [object()], 0)),
    row("select-unhashable", lambda k: k.m.select([[1]], [], [], 0)),
    row("select-none-list", lambda k: k.m.select(None, [], [], 0)),
    row("select-nan", lambda k: k.m.select([k.pull], [], [], float("nan"))),
    row("select-inf", lambda k: k.m.select([k.pull], [], [], float("inf"))),
    row("select-huge", lambda k: k.m.select([], [k.push], [], 2.0**40)),
    # devices (each call fails without blocking)
    row("proxy-frontend-str", lambda k: k.m.proxy("junk", k.pull)),
    row("proxy-backend-none", lambda k: k.m.proxy(k.pull, None)),
    row("proxy-backend-int", lambda k: k.m.proxy(k.pull, 5)),
    row("proxy-capture-str", lambda k: k.m.proxy(k.pull, k.lone, "junk")),
    row("proxy-closed-frontend", lambda k: k.m.proxy(k.closed, k.lone)),
    row("proxy-closed-backend", lambda k: k.m.proxy(k.pull, k.closed)),
    row("proxy-closed-both", lambda k: k.m.proxy(k.closed, k.closed)),
    row("proxy-steerable-control-str", lambda k: k.m.proxy_steerable(k.pull, k.lone, None, "junk")),
    row(
        "proxy-steerable-closed-capture-and-junk-control",
        lambda k: k.m.proxy_steerable(k.pull, k.lone, k.closed, "junk"),
    ),
    row(
        "proxy-steerable-closed-frontend-live-control",
        lambda k: k.m.proxy_steerable(k.closed, k.lone, None, k.rep),
    ),
    row("device-frontend-str", lambda k: k.m.device(k.m.QUEUE, "junk", k.lone)),
    row("device-type-junk", lambda k: k.m.device("junk", k.closed, k.lone)),
    row("device-type-none", lambda k: k.m.device(None, k.closed, k.lone)),
    row("device-closed-backend", lambda k: k.m.device(k.m.STREAMER, k.pull, k.closed)),
    # Context.destroy and term
    row("context-destroy-linger-str", lambda k: k.ctx.destroy(linger="x")),
]

#: Odd calls that pyzmq accepts and that run zmq_green's own code.
ACCEPTED = [
    row("send-flags-float", lambda k: k.push.send(b"x", flags=1.5)),
    row("send-flags-float-zero", lambda k: k.push.send(b"x", flags=0.0)),
    row("send-flags-decimal-zero", lambda k: k.push.send(b"x", flags=Decimal(0))),
    row("send-flags-false", lambda k: k.push.send(b"x", flags=False)),
    row("recv-flags-float-zero", with_message(lambda k: k.pull.recv(flags=0.0))),
    row("recv-flags-decimal-zero", with_message(lambda k: k.pull.recv(flags=Decimal(0)))),
    row("recv-multipart-flags-decimal-zero", with_message(lambda k: k.pull.recv_multipart(flags=Decimal(0)))),
    row("recv-into-flags-float-zero", with_message(lambda k: k.pull.recv_into(bytearray(4), flags=0.0))),
    row(
        "send-tracked-small-is-the-finished-singleton",
        lambda k: k.push.send(b"x", copy=False, track=True) is zmq._FINISHED_TRACKER,
    ),
    row("send-flags-negative", lambda k: k.push.send(b"x", flags=-1)),
    row("send-flags-fraction", lambda k: k.push.send(b"x", flags=Fraction(1))),
    row("send-flags-fraction-zero", lambda k: k.push.send(b"x", flags=Fraction(0))),
    row("recv-flags-fraction-zero", with_message(lambda k: k.pull.recv(flags=Fraction(0)))),
    row("send-bytearray", lambda k: k.push.send(bytearray(b"x"))),
    row("send-tracked", lambda k: k.push.send(b"x", copy=False, track=True)),
    row("recv-into-empty-buffer", with_message(lambda k: k.pull.recv_into(bytearray(0)))),
    row("recv-into-int-array", with_message(lambda k: k.pull.recv_into(memoryview(bytearray(8)).cast("i")))),
    row(
        "multipart-tuple-of-buffers",
        lambda k: k.push.send_multipart((b"a", bytearray(b"b"), memoryview(b"c"))),
    ),
    row("multipart-flags-negative", lambda k: k.push.send_multipart([b"a", b"b"], flags=-1)),
    row("multipart-tracked", lambda k: k.push.send_multipart([b"a", b"b"], copy=False, track=True)),
    row("getsockopt-events", lambda k: k.push.get(k.m.EVENTS)),
    row(
        "rcvtimeo-max-message-ready",
        with_option("rcvtimeo", 2**31 - 1, with_message(lambda k: k.pull.recv())),
    ),
    row(
        "rcvtimeo-minus-one-message-ready", with_option("rcvtimeo", -1, with_message(lambda k: k.pull.recv()))
    ),
    row("closed-close", lambda k: k.closed.close()),
    row("poller-flags-zero", poll_after(lambda k: k.poller.register(k.pull, 0))),
    row("poller-flags-negative", poll_after(lambda k: k.poller.register(k.push, -1))),
    row("poller-flags-float", poll_after(lambda k: k.poller.register(k.push, 2.0))),
    row("poller-fd-negative", poll_after(lambda k: k.poller.register(-1, k.m.POLLIN))),
    row("poller-registered-twice", poll_after(lambda k: [k.poller.register(k.push, f) for f in (1, 2)])),
    row("poller-poll-closed-socket", poll_after(lambda k: k.poller.register(k.closed, k.m.POLLIN))),
    row("poller-poll-closed-socket-1ms", poll_after(lambda k: k.poller.register(k.closed, k.m.POLLOUT), 1)),
    row("poller-poll-none", lambda k: ready_poller(k).poll(None)),
    row("poller-poll-negative", lambda k: ready_poller(k).poll(-5)),
    row("poller-poll-minus-inf", lambda k: ready_poller(k).poll(float("-inf"))),
    row("poller-poll-float", lambda k: ready_poller(k).poll(0.5)),
    row("poller-poll-float-not-ready", lambda k: k.m.Poller().poll(0.9)),
    row("poller-poll-fraction-not-ready", lambda k: k.m.Poller().poll(Fraction(3, 2))),
    row(
        "poller-poll-decimal-not-ready",
        poll_after(lambda k: k.poller.register(k.pull, k.m.POLLIN), Decimal(20)),
    ),
    row("socket-poll-decimal-not-ready", lambda k: k.pull.poll(Decimal(20))),
    row("socket-poll-negative", lambda k: k.push.poll(-5, k.m.POLLOUT)),
    row("socket-poll-float-not-ready", lambda k: k.pull.poll(0.7)),
    row("socket-poll-flags-zero", lambda k: k.pull.poll(0, 0)),
    row("select-none", lambda k: k.m.select([], [k.push], [], None)),
    row("select-negative", lambda k: k.m.select([], [k.push], [], -1)),
    row("select-tiny-negative", lambda k: k.m.select([k.pull], [], [], -0.0001)),
    row("select-float-not-ready", lambda k: k.m.select([k.pull], [], [], 0.001)),
    row("select-tuples", lambda k: k.m.select((k.pull,), (), (), 0)),
    row("select-closed-socket", lambda k: k.m.select([k.closed], [], [], 0)),
    row("select-fd-negative", lambda k: k.m.select([-1], [], [], 0)),
    row("select-one-socket-in-all-lists", lambda k: k.m.select([k.push], [k.push], [k.push], 0)),
    row("terminated-context-term", lambda k: k.dead_ctx.term()),
    row("terminated-context-destroy", lambda k: k.dead_ctx.destroy()),
    row("term-after-closing-its-sockets", term_after_closing),
]

#: Calls that never reach zmq_green's code: pyzmq against itself.
PASS_THROUGH = [
    row("send-string-bytes", lambda k: k.push.send_string(b"bytes")),
    row("send-json-unserializable", lambda k: k.push.send_json(object())),
    row("send-pyobj-unpicklable", lambda k: k.push.send_pyobj(lambda: 0)),
    row("recv-into-nbytes-positional", lambda k: k.pull.recv_into(bytearray(4), 2)),
    row("setsockopt-int-option-str", lambda k: k.push.setsockopt(k.m.SNDHWM, "many")),
    row("setsockopt-bytes-option-int", lambda k: k.push.setsockopt(k.m.ROUTING_ID, 5)),
    row("setsockopt-subscribe-str", lambda k: k.sub.setsockopt(k.m.SUBSCRIBE, "topic")),
    row("setsockopt-unknown", lambda k: k.push.setsockopt(9999, 1)),
    row("setsockopt-negative-hwm", lambda k: k.push.setsockopt(k.m.SNDHWM, -5)),
    row("setsockopt-overflow", lambda k: k.push.setsockopt(k.m.LINGER, 2**40)),
    row("setsockopt-float", lambda k: k.push.setsockopt(k.m.RCVTIMEO, 1.5)),
    row("setsockopt-rcvtimeo-below-minus-one", lambda k: k.pull.setsockopt(k.m.RCVTIMEO, -2)),
    row("option-attribute-unknown", lambda k: k.push.no_such_option),
    row("bind-no-scheme", lambda k: k.pull.bind("nonsense")),
    row("bind-empty-tcp", lambda k: k.pull.bind("tcp://")),
    row("bind-bad-port", lambda k: k.pull.bind("tcp://127.0.0.1:port")),
    row("bind-unknown-transport", lambda k: k.pull.bind("bogus://x")),
    row("bind-none", lambda k: k.pull.bind(None)),
    row("bind-in-use", lambda k: k.rep.bind("inproc://pull")),
    row("bind-ipc-missing-dir", lambda k: k.pull.bind("ipc:///nonexistent-dir/x.ipc")),
    row("connect-no-port", lambda k: k.push.connect("tcp://127.0.0.1")),
    row("connect-unknown-transport", lambda k: k.push.connect("bogus://x")),
    row("unbind-not-bound", lambda k: k.pull.unbind("tcp://127.0.0.1:5")),
    row("disconnect-not-connected", lambda k: k.push.disconnect("tcp://127.0.0.1:5")),
    row("context-option-unknown", lambda k: k.ctx.set(9999, 1)),
    row("context-get-unknown", lambda k: k.ctx.get(9999)),
    row("terminated-context-term-argument", lambda k: k.dead_ctx.term(5)),
    row("socket-of-terminated-context", lambda k: k.dead_ctx.socket(k.m.PUSH)),
    row("closed-bind", lambda k: k.closed.bind("inproc://again")),
    row("closed-connect", lambda k: k.closed.connect("inproc://pull")),
    row("closed-setsockopt", lambda k: k.closed.setsockopt(k.m.LINGER, 0)),
    row("closed-poll", lambda k: k.closed.poll(0)),
    row("device-missing-argument", lambda k: k.m.device(k.m.QUEUE, k.closed)),
    row("proxy-unknown-keyword", lambda k: k.m.proxy(k.closed, k.lone, junk=1)),
]

TABLES = {"bad_inputs": REJECTED, "odd_inputs": ACCEPTED, "pass_through_inputs": PASS_THROUGH}


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "table, call",
    [pytest.param(table, *p.values, id=p.id, marks=p.marks) for table, rows in TABLES.items() for p in rows],
)
def test_same_outcome_as_pyzmq(table: str, call: Callable[[Kit], Any], record_property: Any) -> None:
    kit = Kit.make(zmq)
    try:
        reference = outcome(call, kit)
    finally:
        kit.ctx.destroy(linger=0)
    kit = Kit.make(zmq_green)
    try:
        green, ran_green_code = watched_outcome(call, kit)
    finally:
        kit.ctx.destroy(linger=0)
    if table != "pass_through_inputs":
        assert (reference[0] == "raised") == (table == "bad_inputs"), f"pyzmq: {reference}: move the row"
    assert ran_green_code == (table != "pass_through_inputs"), (
        f"the call {'runs' if ran_green_code else 'never runs'} zmq_green's code: move the row"
    )
    assert green == reference
    record_property(table, 1)
