"""zmq_green.monkey leaves pyzmq's asyncio and tornado-future layers as they are.

``zmq._future`` (under ``zmq.asyncio`` and ``zmq.eventloop.future``) and pyzmq's
authenticators look ``zmq.Socket`` up on the :mod:`zmq` module each time they run:
to tell zmq sockets from file descriptors when polling, and to make the plain
sockets of their plumbing. Each test runs one body in two fresh interpreters, one
unpatched and one after :func:`zmq_green.monkey.patch`, with the flavour imported
after patching, and compares what the two report; the unpatched report is also
checked, so that the comparison means something.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest
from conftest import run_script

FLAVOURS = ["zmq.asyncio", "zmq.eventloop.future"]

# The child's head: patch or not, then import the flavour; `report(main)` runs the
# coroutine on a fresh asyncio loop (tornado's IOLoop.current() wraps it) and
# prints the dict it returns, with the errors the loop's exception handler saw.
HEAD = """
import asyncio, json, time
import zmq_green.monkey
if {patched}:
    zmq_green.monkey.patch()
import zmq
import {flavour} as flavour

def report(main):
    async def run():
        errors = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, c: errors.append(c["message"]))
        result = await main()
        result["loop errors"] = errors
        return result
    print(json.dumps(asyncio.run(run())))

def state(future):
    if not future.done():
        return "pending"
    if future.cancelled():
        return "cancelled"
    if future.exception() is not None:
        return type(future.exception()).__name__
    return repr(future.result())

def tcp_pair(ctx):
    # Over tcp the puller's fd signals while the connection is set up: a poll
    # that took the socket for a plain fd would wake up with nothing to read.
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    pull.linger = push.linger = 0
    pull.bind("tcp://127.0.0.1:*")
    push.connect(pull.last_endpoint)
    return pull, push
"""


def native_and_patched(flavour: str, body: str) -> tuple[Any, Any]:
    """Run *body* after :data:`HEAD` unpatched, then patched; the JSON each printed last."""
    reports = []
    for patched in (False, True):
        code = HEAD.format(patched=patched, flavour=flavour) + textwrap.dedent(body)
        reports.append(json.loads(run_script(code, timeout=25).stdout.splitlines()[-1]))
    return reports[0], reports[1]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_poll_returns_when_the_message_arrives(flavour: str) -> None:
    native, patched = native_and_patched(
        flavour,
        """
        async def main():
            ctx = flavour.Context()
            pull, push = tcp_pair(ctx)
            sent = []
            asyncio.get_running_loop().call_later(0.2, lambda: sent.append(push.send(b"late")))
            events = await pull.poll(5000)
            sent_before_poll_returned = bool(sent)
            got = await asyncio.wait_for(pull.recv(), 5)
            result = {
                "events": int(events),
                "sent before poll returned": sent_before_poll_returned,
                "got": got.decode(),
                "context classes": [c.__module__ for c in type(ctx).__mro__[:3]],
            }
            ctx.destroy(linger=0)
            return result

        report(main)
        """,
    )
    assert native["events"] == 1  # POLLIN
    assert native["sent before poll returned"] is True
    assert native["got"] == "late"
    assert native["context classes"][1] == "zmq.sugar.context"
    assert patched == native


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_poll_with_nothing_to_read_lasts_its_timeout(flavour: str) -> None:
    native, patched = native_and_patched(
        flavour,
        """
        async def main():
            ctx = flavour.Context()
            pull, push = tcp_pair(ctx)
            polls = {}

            async def timed_poll(name):
                start = time.monotonic()
                events = await pull.poll(300)
                polls[name] = {"events": int(events), "at least its timeout": time.monotonic() - start >= 0.299}

            await timed_poll("while connecting")
            await push.send(b"one")
            await asyncio.wait_for(pull.recv(), 5)
            await timed_poll("after the only message was read")
            ctx.destroy(linger=0)
            return polls

        report(main)
        """,
    )
    for name in ("while connecting", "after the only message was read"):
        assert native[name] == {"events": 0, "at least its timeout": True}
    assert patched == native


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_recv_under_wait_for(flavour: str) -> None:
    native, patched = native_and_patched(
        flavour,
        """
        async def main():
            ctx = flavour.Context()
            pull, push = tcp_pair(ctx)
            start = time.monotonic()
            try:
                outcome = repr(await asyncio.wait_for(pull.recv(), 0.3))
            except Exception as e:  # tornado's futures end in their own CancelledError
                outcome = type(e).__name__
            waited_its_timeout = time.monotonic() - start >= 0.299
            # The timed-out recv is gone: it takes no message from the next one.
            await push.send(b"after")
            after = await asyncio.wait_for(pull.recv(), 5)
            sent = []
            asyncio.get_running_loop().call_later(0.2, lambda: sent.append(push.send(b"late")))
            late = await asyncio.wait_for(pull.recv(), 5)
            result = {
                "timed out": outcome,
                "waited its timeout": waited_its_timeout,
                "after": after.decode(),
                "late": late.decode(),
                "late was sent first": bool(sent),
            }
            ctx.destroy(linger=0)
            return result

        report(main)
        """,
    )
    assert native == {
        "timed out": {"zmq.asyncio": "TimeoutError", "zmq.eventloop.future": "CancelledError"}[flavour],
        "waited its timeout": True,
        "after": "after",
        "late": "late",
        "late was sent first": True,
        "loop errors": [],
    }
    assert patched == native


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_close_cancels_pending_poll_and_recv(flavour: str) -> None:
    native, patched = native_and_patched(
        flavour,
        """
        async def main():
            ctx = flavour.Context()
            pull, push = tcp_pair(ctx)
            await pull.poll(0)  # the socket is watched by the loop from now on
            pending = {"poll": pull.poll(5000), "recv": pull.recv(), "recv_multipart": pull.recv_multipart()}
            before = {name: state(f) for name, f in pending.items()}
            pull.close(linger=0)
            await asyncio.wait(pending.values(), timeout=3)  # a hang guard, not a clock
            result = {"before close": before, "after close": {name: state(f) for name, f in pending.items()}}
            ctx.destroy(linger=0)
            return result

        report(main)
        """,
    )
    assert native == {
        "before close": {"poll": "pending", "recv": "pending", "recv_multipart": "pending"},
        "after close": {"poll": "cancelled", "recv": "cancelled", "recv_multipart": "cancelled"},
        "loop errors": [],
    }
    assert patched == native


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_async_sockets_are_zmq_sockets(flavour: str) -> None:
    native, patched = native_and_patched(
        flavour,
        """
        async def main():
            ctx = flavour.Context()
            pull, push = tcp_pair(ctx)
            sync_push = zmq.Socket(push)  # pyzmq's sync copy of an async socket
            sync_push.send(b"through the copy")
            got = await asyncio.wait_for(pull.recv(), 5)
            result = {
                "async socket is a zmq.Socket": isinstance(pull, zmq.Socket),
                "context socket is a zmq.Socket": isinstance(zmq.Context.instance().socket(zmq.PAIR), zmq.Socket),
                "sync copy shares the socket": sync_push.underlying == push.underlying,
                "got": got.decode(),
            }
            ctx.destroy(linger=0)
            zmq.Context.instance().destroy(linger=0)
            return result

        report(main)
        """,
    )
    assert native == {
        "async socket is a zmq.Socket": True,
        "context socket is a zmq.Socket": True,
        "sync copy shares the socket": True,
        "got": "through the copy",
        "loop errors": [],
    }
    assert patched == native


@pytest.mark.timeout(60)
@pytest.mark.parametrize("authenticator", ["AsyncioAuthenticator", "ThreadAuthenticator"])
def test_authenticator_handshakes(authenticator: str) -> None:
    # PLAIN rounds against a server that polls before it reads: right passwords get
    # through, a wrong one is refused; the authenticator's own sockets are pyzmq's.
    # zmq.asyncio only: unpatched, a tornado-future REQ socket made after a few
    # handshakes under a ThreadAuthenticator now and then never completes its send.
    native, patched = native_and_patched(
        "zmq.asyncio",
        f"""
        from zmq.auth.asyncio import AsyncioAuthenticator
        from zmq.auth.thread import ThreadAuthenticator

        async def main():
            ctx = flavour.Context()
            auth = {authenticator}(ctx)
            auth.start()
            auth.configure_plain(domain="*", passwords={{"admin": "secret"}})
            server = ctx.socket(zmq.REP)
            server.linger = 0
            server.plain_server = True
            server.bind("tcp://127.0.0.1:*")

            async def handshake(password):
                client = ctx.socket(zmq.REQ)
                client.linger = 0
                client.plain_username, client.plain_password = b"admin", password
                client.connect(server.last_endpoint)
                await client.send(b"hello")
                if not await server.poll(1000):
                    client.close()
                    return "refused"
                request = await server.recv()
                await server.send(request.upper())
                reply = await asyncio.wait_for(client.recv(), 5)
                client.close()
                return reply.decode()

            rounds = [await handshake(p) for p in (b"secret", b"secret", b"wrong", b"secret")]
            plumbing = [auth.zap_socket] + ([auth.pipe] if hasattr(auth, "pipe") else [])
            kinds = sorted({{f"{{type(s).__module__}}.{{type(s).__name__}}" for s in plumbing}})
            auth.stop()
            ctx.destroy(linger=0)
            return {{"rounds": rounds, "plumbing sockets": kinds}}

        report(main)
        """,
    )
    assert native == {
        "rounds": ["HELLO", "HELLO", "refused", "HELLO"],
        "plumbing sockets": ["zmq.sugar.socket.Socket"],
        "loop errors": [],
    }
    assert patched == native
