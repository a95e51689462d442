"""zmq_green.auth: ZAP served by a greenlet, with real handshakes over loopback tcp.

The policy tests run against pyzmq's ThreadAuthenticator (native sockets) and
GreenAuthenticator (green sockets) alike; one test runs every green case again in
a child interpreter under ``gevent.monkey.patch_all()``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import pytest
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

import zmq_green
import zmq_green.auth
from zmq_green.auth import GreenAuthenticator

HANDSHAKE_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


@dataclass
class Outcome:
    """What the server side saw of one connection attempt."""

    event: str  # first handshake event of the server's monitor
    value: int  # its value: the ZAP status code for HANDSHAKE_FAILED_AUTH
    received: bytes | None  # what the server received, if anything


ALLOWED = Outcome("HANDSHAKE_SUCCEEDED", 0, b"hello")


def denied(status: int = 400) -> Outcome:
    return Outcome("HANDSHAKE_FAILED_AUTH", status, None)


def handshake(ctx: Any, server_options: dict[str, Any], client_options: dict[str, Any]) -> Outcome:
    """Connect a PUSH client to a PULL server over tcp and report what the server saw."""
    server = ctx.socket(zmq.PULL)
    client = ctx.socket(zmq.PUSH)
    monitor = server.get_monitor_socket(HANDSHAKE_EVENTS)
    try:
        for sock, options in ((server, server_options), (client, client_options)):
            sock.linger = 0
            for name, value in options.items():
                setattr(sock, name, value)
        server.bind("tcp://127.0.0.1:*")
        client.connect(server.last_endpoint)
        try:
            # Queued on the pipe that connect() made, unless an authenticator running
            # in another thread has already refused the handshake and dropped it.
            client.send(b"hello", zmq.DONTWAIT)
        except zmq.Again:
            pass
        monitor.rcvtimeo = 20_000
        event = recv_monitor_message(monitor)
        succeeded = event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED
        # A refused client keeps reconnecting and being refused: give it some tries.
        server.rcvtimeo = 20_000 if succeeded else 300
        try:
            received = server.recv()
        except zmq.Again:
            received = None
        return Outcome(zmq.Event(event["event"]).name, event["value"], received)
    finally:
        server.disable_monitor()
        for sock in (monitor, client, server):
            sock.close(linger=0)


@pytest.fixture(params=["thread", "green"])
def auth(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A started authenticator: pyzmq's ThreadAuthenticator or GreenAuthenticator, on its own context."""
    if request.param == "thread":
        ctx: Any = zmq.Context()
        authenticator: Any = ThreadAuthenticator(ctx)
    else:
        ctx = zmq_green.Context()
        authenticator = GreenAuthenticator(ctx)
    yield from running(authenticator)


def running(authenticator: Any) -> Iterator[Any]:
    """Start *authenticator*; once the test is done, stop it and destroy its context."""
    authenticator.start()
    yield authenticator
    authenticator.stop()
    authenticator.context.destroy(linger=0)


@dataclass
class Keys:
    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes
    stranger_public: bytes
    stranger_secret: bytes
    allowed_dir: Path  # holds the public certificate of "client" only


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    made = {}
    for name in ("server", "client", "stranger"):
        _, secret_file = zmq.auth.create_certificates(tmp_path, name)
        made[name] = zmq.auth.load_certificate(secret_file)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (tmp_path / "client.key").rename(allowed / "client.key")
    return Keys(*made["server"], *made["client"], *made["stranger"], allowed)  # type: ignore[arg-type]


def curve_server(keys: Keys) -> dict[str, Any]:
    return {
        "curve_server": True,
        "curve_publickey": keys.server_public,
        "curve_secretkey": keys.server_secret,
    }


def curve_client(keys: Keys, public: bytes, secret: bytes) -> dict[str, Any]:
    return {"curve_serverkey": keys.server_public, "curve_publickey": public, "curve_secretkey": secret}


@pytest.mark.timeout(30)
def test_curve_allowed_key_talks(auth: Any, keys: Keys) -> None:
    auth.configure_curve(domain="*", location=str(keys.allowed_dir))
    client = curve_client(keys, keys.client_public, keys.client_secret)
    assert handshake(auth.context, curve_server(keys), client) == ALLOWED


@pytest.mark.timeout(30)
def test_curve_unknown_key_gets_nothing(auth: Any, keys: Keys) -> None:
    auth.configure_curve(domain="*", location=str(keys.allowed_dir))
    client = curve_client(keys, keys.stranger_public, keys.stranger_secret)
    assert handshake(auth.context, curve_server(keys), client) == denied()


@pytest.mark.timeout(30)
def test_curve_allow_any(auth: Any, keys: Keys) -> None:
    auth.configure_curve(domain="*", location=zmq_green.auth.CURVE_ALLOW_ANY)
    client = curve_client(keys, keys.stranger_public, keys.stranger_secret)
    assert handshake(auth.context, curve_server(keys), client) == ALLOWED


@pytest.mark.timeout(30)
@pytest.mark.parametrize("password, expected", [(b"secret", ALLOWED), (b"wrong", denied())])
def test_plain_password(auth: Any, password: bytes, expected: Outcome) -> None:
    auth.configure_plain(domain="*", passwords={"admin": "secret"})
    client = {"plain_username": b"admin", "plain_password": password}
    assert handshake(auth.context, {"plain_server": True}, client) == expected


NULL_SERVER = {"zap_domain": b"test"}  # with a ZAP domain, NULL connections are checked too


@pytest.mark.timeout(30)
@pytest.mark.parametrize("address, expected", [("127.0.0.1", denied()), ("10.9.9.9", ALLOWED)])
def test_deny_address(auth: Any, address: str, expected: Outcome) -> None:
    auth.deny(address)
    assert handshake(auth.context, NULL_SERVER, {}) == expected


@pytest.mark.timeout(30)
@pytest.mark.parametrize("address, expected", [("127.0.0.1", ALLOWED), ("10.9.9.9", denied())])
def test_null_with_allow(auth: Any, address: str, expected: Outcome) -> None:
    auth.allow(address)
    assert handshake(auth.context, NULL_SERVER, {}) == expected


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["thread", "green"])
def test_lifecycle(kind: str) -> None:
    ctx: Any = zmq.Context() if kind == "thread" else zmq_green.Context()
    authenticator: Any = (ThreadAuthenticator if kind == "thread" else GreenAuthenticator)(ctx)
    try:
        assert not authenticator.is_alive()
        authenticator.start()
        assert authenticator.is_alive()
        zap_socket = authenticator.zap_socket
        authenticator.stop()
        assert not authenticator.is_alive()
        assert zap_socket.closed
        assert authenticator.zap_socket is None
        authenticator.stop()  # again: nothing to do
    finally:
        ctx.destroy(linger=0)


@pytest.mark.timeout(30)
def test_green_defaults_and_reexports() -> None:
    authenticator = GreenAuthenticator()
    assert authenticator.context is zmq_green.Context.instance()
    assert authenticator.encoding == "utf-8"
    for name in ("create_certificates", "load_certificate", "load_certificates", "CURVE_ALLOW_ANY"):
        assert getattr(zmq_green.auth, name) is getattr(zmq.auth, name)


@pytest.mark.timeout(30)
def test_green_zap_socket_serves_a_native_context(keys: Keys) -> None:
    ctx = zmq.Context()
    authenticator = GreenAuthenticator(ctx)
    authenticator.start()
    try:
        assert isinstance(authenticator.zap_socket, zmq_green.Socket)
        authenticator.configure_plain(passwords={"admin": "secret"})
        client = {"plain_username": b"admin", "plain_password": b"secret"}
        # The server waits greenly for the handshake the ZAP greenlet answers.
        green_view = zmq_green.Context(ctx)
        assert handshake(green_view, {"plain_server": True}, client) == ALLOWED
    finally:
        authenticator.stop()
        ctx.destroy(linger=0)


class Provider:
    """A CURVE credentials provider whose answers wait for *release*."""

    def __init__(self, release: gevent.event.Event, allowed: set[bytes]) -> None:
        self.release = release
        self.allowed = allowed
        self.entered = 0

    def callback(self, domain: str, key: bytes) -> bool:
        self.entered += 1
        if self.entered == 2:
            self.release.set()
        self.release.wait()
        return key in self.allowed


@pytest.fixture
def green_auth() -> Iterator[GreenAuthenticator]:
    yield from running(GreenAuthenticator(zmq_green.Context()))


@pytest.mark.timeout(30)
def test_green_requests_are_handled_concurrently(green_auth: GreenAuthenticator, keys: Keys) -> None:
    # Each callback blocks until two are in progress: one request at a time would never finish.
    release = gevent.event.Event()
    provider = Provider(release, allowed={keys.client_public})  # z85, as callbacks get keys
    green_auth.configure_curve_callback(domain="*", credentials_provider=provider)
    good = gevent.spawn(
        handshake,
        green_auth.context,
        curve_server(keys),
        curve_client(keys, keys.client_public, keys.client_secret),
    )
    bad = gevent.spawn(
        handshake,
        green_auth.context,
        curve_server(keys),
        curve_client(keys, keys.stranger_public, keys.stranger_secret),
    )
    assert good.get(timeout=25) == ALLOWED
    assert bad.get(timeout=25) == denied()
    assert provider.entered >= 2


class AsyncProvider:
    """A credentials provider whose callback is a coroutine function."""

    def __init__(self, allowed: bytes) -> None:
        self.allowed = allowed

    async def callback(self, domain: str, key: bytes) -> bool:
        return key == self.allowed


class BrokenProvider:
    def callback(self, domain: str, key: bytes) -> bool:
        raise RuntimeError("database unreachable")


@pytest.mark.timeout(30)
def test_green_async_callback(green_auth: GreenAuthenticator, keys: Keys) -> None:
    green_auth.configure_curve_callback(credentials_provider=AsyncProvider(keys.client_public))
    client = curve_client(keys, keys.client_public, keys.client_secret)
    assert handshake(green_auth.context, curve_server(keys), client) == ALLOWED


@pytest.mark.timeout(30)
def test_green_failing_callback_refuses_with_500_and_keeps_serving(
    green_auth: GreenAuthenticator, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    green_auth.configure_curve_callback(credentials_provider=BrokenProvider())
    client = curve_client(keys, keys.client_public, keys.client_secret)
    assert handshake(green_auth.context, curve_server(keys), client) == denied(500)
    assert "database unreachable" in caplog.text
    assert green_auth.is_alive()
    green_auth.configure_curve(location=zmq_green.auth.CURVE_ALLOW_ANY)
    assert handshake(green_auth.context, curve_server(keys), client) == ALLOWED


@pytest.mark.timeout(120)
def test_green_cases_under_patch_all() -> None:
    selection = "not thread and not patch_all"
    code = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import sys, pytest\n"
        "class Count:\n"
        "    def pytest_collection_finish(self, session):\n"
        "        print('collected', len(session.items))\n"
        f"args = [{__file__!r}, '-q', '-p', 'no:cacheprovider', '-k', {selection!r}]\n"
        "sys.exit(pytest.main(args, plugins=[Count()]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=Path(__file__).parent.parent,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    collected = int(proc.stdout.split("collected ", 1)[1].split()[0])
    assert collected > 10
    assert f"{collected} passed" in proc.stdout


@pytest.mark.timeout(30)
def test_green_malformed_requests_do_not_stop_serving(
    green_auth: GreenAuthenticator, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    peer = green_auth.context.socket(zmq.DEALER)
    peer.linger = 0
    peer.rcvtimeo = 10_000
    peer.connect(zmq_green.auth.ZAP_ENDPOINT)
    try:
        peer.send_multipart([b"no delimiter"])
        peer.send_multipart([b"", b"1.0", b"7"])  # too short: answered, not served
        assert peer.recv_multipart() == [b"", b"1.0", b"7", b"400", b"Not enough frames", b"", b""]
        assert "no envelope delimiter" in caplog.text
    finally:
        peer.close()
    assert green_auth.is_alive()
    green_auth.configure_curve(location=zmq_green.auth.CURVE_ALLOW_ANY)
    client = curve_client(keys, keys.client_public, keys.client_secret)
    assert handshake(green_auth.context, curve_server(keys), client) == ALLOWED
