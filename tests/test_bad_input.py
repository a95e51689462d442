"""Same misuse, same error: each bad call runs against pyzmq and zmq_green.

One table of calls that pyzmq rejects -- wrong types to send/recv/setsockopt, bad
endpoints, unknown socket types and options, use after close, calls out of the
state machine (EFSM), junk in a Poller, odd timeouts, non-bytes frames -- and a
few odd but valid calls (timeouts of ``None``, negative, float, huge). Each call
runs on a fresh set of sockets of ``zmq`` and then of ``zmq_green``; the outcomes
must match: the same exception type and errno, or the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gevent
import pytest
import zmq

import zmq_green


@dataclass
class Kit:
    """Fresh sockets of one module for one bad call."""

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


def two_sends(k: Kit) -> None:
    k.req.send(b"a")
    k.req.send(b"b")


def poll_after(register: Callable[[Kit], Any]) -> Callable[[Kit], Any]:
    def call(k: Kit) -> Any:
        register(k)
        return k.poller.poll(0)

    return call


def with_option(option: str, value: Any, call: Callable[[Kit], Any]) -> Callable[[Kit], Any]:
    def run(k: Kit) -> Any:
        setattr(k.pull, option, value)
        setattr(k.lone, option, value)
        return call(k)

    return run


def bind_twice(k: Kit) -> None:
    k.pull.bind("tcp://127.0.0.1:*")
    k.rep.bind(k.pull.last_endpoint)


def ready_poller(k: Kit) -> Any:
    k.poller.register(k.push, k.m.POLLOUT)
    return k.poller


def bad(name: str, call: Callable[[Kit], Any], xfail: str | None = None) -> Any:
    """A call that pyzmq rejects."""
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(call, True, id=name, marks=marks)


def odd(name: str, call: Callable[[Kit], Any]) -> Any:
    """An odd call that pyzmq accepts."""
    return pytest.param(call, False, id=name)


CASES = [
    # wrong types to send and recv
    bad("send-str", lambda k: k.push.send("text")),
    bad("send-int", lambda k: k.push.send(42)),
    bad("send-none", lambda k: k.push.send(None)),
    bad("send-object", lambda k: k.push.send(object())),
    bad("send-flags-str", lambda k: k.push.send(b"x", flags="now")),
    bad("send-flags-numeric-str", lambda k: k.push.send(b"x", flags="1")),
    bad("send-flags-none", lambda k: k.push.send(b"x", flags=None)),
    odd("send-flags-float", lambda k: k.push.send(b"x", flags=1.5)),
    bad("send-string-bytes", lambda k: k.push.send_string(b"bytes")),
    bad("send-json-unserializable", lambda k: k.push.send_json(object())),
    bad("send-pyobj-unpicklable", lambda k: k.push.send_pyobj(lambda: 0)),
    bad("recv-flags-str", lambda k: k.pull.recv(flags="now")),
    bad("recv-multipart-flags-numeric-str", lambda k: k.pull.recv_multipart(flags="1")),
    bad("recv-into-readonly", lambda k: k.pull.recv_into(b"readonly")),
    bad("recv-into-negative-nbytes", lambda k: k.pull.recv_into(bytearray(4), nbytes=-1)),
    bad("recv-into-nbytes-too-big", lambda k: k.pull.recv_into(bytearray(4), nbytes=8)),
    # non-bytes frames in send_multipart
    bad("multipart-str-frame", lambda k: k.push.send_multipart([b"a", "b"])),
    bad("multipart-int-frame", lambda k: k.push.send_multipart([b"a", 1])),
    bad("multipart-none-frame", lambda k: k.push.send_multipart([None])),
    bad("multipart-str", lambda k: k.push.send_multipart("abc")),
    bad("multipart-none", lambda k: k.push.send_multipart(None)),
    bad("multipart-empty", lambda k: k.push.send_multipart([])),
    # setsockopt and getsockopt
    bad("setsockopt-int-option-str", lambda k: k.push.setsockopt(k.m.SNDHWM, "many")),
    bad("setsockopt-bytes-option-int", lambda k: k.push.setsockopt(k.m.ROUTING_ID, 5)),
    bad("setsockopt-subscribe-str", lambda k: k.sub.setsockopt(k.m.SUBSCRIBE, "topic")),
    bad("setsockopt-unknown", lambda k: k.push.setsockopt(9999, 1)),
    bad("getsockopt-unknown", lambda k: k.push.getsockopt(9999)),
    bad("setsockopt-negative-hwm", lambda k: k.push.setsockopt(k.m.SNDHWM, -5)),
    bad("setsockopt-overflow", lambda k: k.push.setsockopt(k.m.LINGER, 2**40)),
    bad("setsockopt-float", lambda k: k.push.setsockopt(k.m.RCVTIMEO, 1.5)),
    bad("option-attribute-unknown", lambda k: k.push.no_such_option),
    # bad endpoints
    bad("bind-no-scheme", lambda k: k.pull.bind("nonsense")),
    bad("bind-empty-tcp", lambda k: k.pull.bind("tcp://")),
    bad("bind-bad-port", lambda k: k.pull.bind("tcp://127.0.0.1:port")),
    bad("bind-unknown-transport", lambda k: k.pull.bind("bogus://x")),
    bad("bind-none", lambda k: k.pull.bind(None)),
    bad("bind-in-use", bind_twice),
    bad("bind-ipc-missing-dir", lambda k: k.pull.bind("ipc:///nonexistent-dir/x.ipc")),
    bad("connect-no-port", lambda k: k.push.connect("tcp://127.0.0.1")),
    bad("connect-unknown-transport", lambda k: k.push.connect("bogus://x")),
    bad("unbind-not-bound", lambda k: k.pull.unbind("tcp://127.0.0.1:5")),
    bad("disconnect-not-connected", lambda k: k.push.disconnect("tcp://127.0.0.1:5")),
    # unknown socket types and context options
    bad("socket-type-unknown", lambda k: k.ctx.socket(999)),
    bad("socket-type-negative", lambda k: k.ctx.socket(-1)),
    bad("socket-type-str", lambda k: k.ctx.socket("PUSH")),
    bad("context-option-unknown", lambda k: k.ctx.set(9999, 1)),
    bad("context-get-unknown", lambda k: k.ctx.get(9999)),
    bad("socket-of-terminated-context", lambda k: k.dead_ctx.socket(k.m.PUSH)),
    # use after close
    bad("closed-send", lambda k: k.closed.send(b"x")),
    bad("closed-recv", lambda k: k.closed.recv()),
    bad("closed-send-multipart", lambda k: k.closed.send_multipart([b"a", b"b"])),
    bad("closed-recv-multipart", lambda k: k.closed.recv_multipart()),
    bad("closed-recv-into", lambda k: k.closed.recv_into(bytearray(4))),
    bad("closed-send-string", lambda k: k.closed.send_string("x")),
    bad("closed-bind", lambda k: k.closed.bind("inproc://again")),
    bad("closed-connect", lambda k: k.closed.connect("inproc://pull")),
    bad("closed-setsockopt", lambda k: k.closed.setsockopt(k.m.LINGER, 0)),
    bad("closed-getsockopt-events", lambda k: k.closed.get(k.m.EVENTS)),
    bad("closed-poll", lambda k: k.closed.poll(0)),
    # wrong direction, wrong state (EFSM)
    bad("push-recv", lambda k: k.push.recv()),
    bad("pull-send", lambda k: k.pull.send(b"x")),
    bad("pull-send-multipart", lambda k: k.pull.send_multipart([b"a", b"b"])),
    bad("sub-send", lambda k: k.sub.send(b"x")),
    bad("req-send-twice", two_sends),
    bad("req-recv-first", lambda k: k.req.recv()),
    bad("rep-send-first", lambda k: k.rep.send(b"x")),
    # junk in a Poller
    bad("poller-str", poll_after(lambda k: k.poller.register("junk", k.m.POLLIN))),
    bad("poller-object", poll_after(lambda k: k.poller.register(object(), k.m.POLLIN))),
    bad("poller-none", poll_after(lambda k: k.poller.register(None, k.m.POLLIN))),
    bad("poller-flags-str", poll_after(lambda k: k.poller.register(k.pull, "in"))),
    bad("poller-unregister-unknown", lambda k: k.poller.unregister(k.pull)),
    bad("poller-poll-str-timeout", lambda k: ready_poller(k).poll("soon")),
    bad("select-str-timeout", lambda k: k.m.select([k.pull], [], [], "soon")),
    bad("select-junk", lambda k: k.m.select(["junk"], [], [], 0)),
    # devices (each call fails before any proxy runs)
    bad("proxy-frontend-str", lambda k: k.m.proxy("junk", k.pull)),
    bad("proxy-backend-none", lambda k: k.m.proxy(k.pull, None)),
    bad("proxy-capture-str", lambda k: k.m.proxy(k.pull, k.lone, "junk")),
    bad("proxy-closed-frontend", lambda k: k.m.proxy(k.closed, k.lone)),
    bad("proxy-closed-backend", lambda k: k.m.proxy(k.pull, k.closed)),
    bad("proxy-steerable-control-str", lambda k: k.m.proxy_steerable(k.pull, k.lone, None, "junk")),
    bad("device-frontend-str", lambda k: k.m.device(k.m.QUEUE, "junk", k.lone)),
    # timeouts that expire, and odd ones
    bad("recv-dontwait", lambda k: k.pull.recv(k.m.DONTWAIT)),
    bad("send-dontwait-no-peer", lambda k: k.lone.send(b"x", k.m.NOBLOCK)),
    bad("recv-rcvtimeo-1ms", with_option("rcvtimeo", 1, lambda k: k.pull.recv())),
    bad("recv-rcvtimeo-0", with_option("rcvtimeo", 0, lambda k: k.pull.recv_multipart())),
    bad("send-sndtimeo-1ms", with_option("sndtimeo", 1, lambda k: k.lone.send(b"x"))),
    bad("setsockopt-rcvtimeo-below-minus-one", lambda k: k.pull.setsockopt(k.m.RCVTIMEO, -2)),
    odd("poller-poll-closed-socket", poll_after(lambda k: k.poller.register(k.closed, k.m.POLLIN))),
    odd("poller-poll-none", lambda k: ready_poller(k).poll(None)),
    odd("poller-poll-negative", lambda k: ready_poller(k).poll(-5)),
    odd("poller-poll-float", lambda k: ready_poller(k).poll(0.5)),
    bad("poller-poll-huge", lambda k: ready_poller(k).poll(2**40)),
    odd("poller-poll-float-not-ready", lambda k: k.m.Poller().poll(0.9)),
    odd("socket-poll-negative", lambda k: k.push.poll(-5, k.m.POLLOUT)),
    odd("socket-poll-float-not-ready", lambda k: k.pull.poll(0.7)),
    bad("socket-poll-huge", lambda k: k.push.poll(2**40, k.m.POLLOUT)),
    odd("select-none", lambda k: k.m.select([], [k.push], [], None)),
    odd("select-negative", lambda k: k.m.select([], [k.push], [], -1)),
    odd("select-float-not-ready", lambda k: k.m.select([k.pull], [], [], 0.001)),
    bad("select-huge", lambda k: k.m.select([], [k.push], [], 2.0**40)),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("call, raises", CASES)
def test_same_error_as_pyzmq(call: Callable[[Kit], Any], raises: bool, record_property: Any) -> None:
    results = []
    for m in (zmq, zmq_green):
        kit = Kit.make(m)
        try:
            results.append(outcome(call, kit))
        finally:
            kit.ctx.destroy(linger=0)
    record_property("bad_inputs", 1)
    reference, green = results
    assert (reference[0] == "raised") == raises, f"pyzmq: {reference}"
    assert green == reference
