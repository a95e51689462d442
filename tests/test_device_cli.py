"""``zmq-green device``: endpoints as in CZMQ, rates on stderr, a clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

import zmq_green
from zmq_green import device_cli

# -- in process ----------------------------------------------------------------


def test_help_explains_the_endpoint_convention_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        device_cli.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for needle in ("queue", "forwarder", "streamer", "--capture", "'@tcp://*:5559' binds", "connects"):
        assert needle in text, needle
    assert "example:\n  zmq-green device queue @tcp://*:5559 @tcp://*:5560" in text
    # each device's bare-endpoint default is stated
    assert "frontend ROUTER binds" in text and "backend DEALER connects" in text


def test_an_unknown_device_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        device_cli.main(["funnel", "@inproc://a", "@inproc://b"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.timeout(10)
@pytest.mark.parametrize("endpoint", ["@nonsense://x", "@", "tcp://127.0.0.1:*,,"])
def test_a_bad_endpoint_exits_1_with_a_message(capsys: pytest.CaptureFixture[str], endpoint: str) -> None:
    assert device_cli.main(["streamer", endpoint, "@inproc://cli-bad-endpoint"]) == 1
    assert capsys.readouterr().err.startswith("zmq-green device: ")


@pytest.mark.timeout(10)
def test_attach_binds_on_at_connects_on_gt_and_follows_the_default_otherwise(ctx: zmq_green.Context) -> None:
    def socket(kind: int) -> Any:
        s = ctx.socket(kind)
        s.linger = 0
        return s

    def bound(address: str) -> bool:
        probe = socket(zmq.PUSH)
        try:
            probe.bind(address)
        except zmq.ZMQError as e:
            assert e.errno == zmq.EADDRINUSE
            return True
        finally:
            probe.close()
        return False

    first, second = socket(zmq.PULL), socket(zmq.PULL)
    device_cli.attach(first, "@inproc://cli-a, inproc://cli-b", ">")
    assert bound("inproc://cli-a") and not bound("inproc://cli-b")  # bare: connected
    device_cli.attach(second, ">inproc://cli-c,inproc://cli-d", "@")
    assert not bound("inproc://cli-c") and bound("inproc://cli-d")  # bare: bound
    # and a connected one really connects
    pull = socket(zmq.PULL)
    device_cli.attach(pull, "inproc://cli-e", ">")
    push = socket(zmq.PUSH)
    push.bind("inproc://cli-e")
    push.send(b"m")
    assert pull.recv() == b"m"


# -- as a command, in a subprocess -------------------------------------------------


class Command:
    """``python -m zmq_green device ...`` with its stderr read line by line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zmq_green", "device", *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert self.proc.stderr is not None
        threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)

    def line_matching(self, pattern: str, seconds: float = 15) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            self.seen.append(line)
            match = re.match(pattern, line)
            if match:
                return match

    def stop(self, signum: int) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def native() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def sock(ctx: zmq.Context[Any], kind: int, how: str, endpoint: str) -> Any:
    s = ctx.socket(kind)
    s.linger = 0
    s.rcvtimeo = s.sndtimeo = 10_000
    getattr(s, how)(endpoint)
    return s


@pytest.mark.timeout(60)
def test_streamer_moves_messages_and_copies_them_reports_rates_and_exits_0_on_sigterm(
    tmp_path: Path, native: zmq.Context[Any]
) -> None:
    front, back, cap = (f"ipc://{tmp_path}/{name}" for name in ("front", "back", "cap"))
    command = Command("streamer", f"@{front}", f">{back}", "--capture", cap)
    try:
        consumer = sock(native, zmq.PULL, "bind", back)
        producer = sock(native, zmq.PUSH, "connect", front)
        captured = sock(native, zmq.SUB, "connect", cap)
        captured.subscribe(b"")
        # A SUB hears only what is published after its subscription arrived.
        sent = 0
        while not captured.poll(20):
            producer.send_multipart([b"n", b"%d" % sent])
            assert consumer.recv_multipart() == [b"n", b"%d" % sent]
            sent += 1
        first = int(captured.recv_multipart()[1])
        for n in range(sent, sent + 200):
            producer.send_multipart([b"n", b"%d" % n])
        assert [consumer.recv_multipart() for _ in range(200)] == [
            [b"n", b"%d" % n] for n in range(sent, sent + 200)
        ]
        copies = [int(captured.recv_multipart()[1]) for _ in range(first + 1, sent + 200)]
        assert copies == list(range(first + 1, sent + 200))
        moving = command.line_matching(
            r"streamer: (\d+) msg/s \(frontend->backend (\d+), backend->frontend 0\)"
        )
        while int(moving.group(1)) == 0:  # until a second in which messages moved
            moving = command.line_matching(r"streamer: (\d+) msg/s")
        assert command.stop(signal.SIGTERM) == 0
    finally:
        command.kill()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_queue_with_bare_endpoints_binds_its_router_and_connects_its_dealer(
    tmp_path: Path, native: zmq.Context[Any], signum: int
) -> None:
    front, back = f"ipc://{tmp_path}/front", f"ipc://{tmp_path}/back"
    command = Command("queue", front, back)
    try:
        worker = sock(native, zmq.REP, "bind", back)  # the DEALER connects to it
        client = sock(native, zmq.REQ, "connect", front)  # the ROUTER is bound there
        for i in range(10):
            client.send(b"req %d" % i)
            worker.send(worker.recv().upper())
            assert client.recv() == b"REQ %d" % i
        command.line_matching(r"queue: \d+ msg/s")
        assert command.stop(signum) == 0
    finally:
        command.kill()


@pytest.mark.timeout(60)
def test_forwarder_with_bare_endpoints_connects_its_xsub_and_binds_its_xpub(
    tmp_path: Path, native: zmq.Context[Any]
) -> None:
    front, back = f"ipc://{tmp_path}/front", f"ipc://{tmp_path}/back"
    command = Command("forwarder", front, back)
    try:
        publisher = sock(native, zmq.PUB, "bind", front)  # the XSUB connects to it
        subscriber = sock(native, zmq.SUB, "connect", back)  # the XPUB is bound there
        subscriber.subscribe(b"topic")
        # The subscription travels through the device to the publisher.
        while not subscriber.poll(20):
            publisher.send(b"other")
            publisher.send(b"topic data")
        assert subscriber.recv() == b"topic data"
        assert command.stop(signal.SIGTERM) == 0
    finally:
        command.kill()


@pytest.mark.timeout(60)
def test_device_blocked_on_a_peer_that_does_not_read_still_exits_0_on_sigterm(
    tmp_path: Path, native: zmq.Context[Any]
) -> None:
    front, back = f"ipc://{tmp_path}/front", f"ipc://{tmp_path}/back"
    command = Command("streamer", f"@{front}", f">{back}")
    try:
        consumer = sock(native, zmq.PULL, "bind", back)
        producer = sock(native, zmq.PUSH, "connect", front)
        producer.send(b"first")
        assert consumer.recv() == b"first"
        producer.sndtimeo = 1000
        with pytest.raises(zmq.Again):  # every high-water mark on the way is full
            while True:
                producer.send(b"x" * 1000)
        assert command.stop(signal.SIGTERM) == 0
    finally:
        command.kill()
