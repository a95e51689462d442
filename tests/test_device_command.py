"""``zmq-green device``: moves messages between endpoints, reports rates, stops cleanly."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import zmq

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_streamer_moves_messages_reports_rates_and_exits_0_on_signal(stop: int) -> None:
    front, back = _free_port(), _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zmq_green",
            "device",
            "streamer",
            f"@tcp://127.0.0.1:{front}",
            f"@tcp://127.0.0.1:{back}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stderr, stderr), daemon=True).start()
    ctx = zmq.Context()
    try:
        push = ctx.socket(zmq.PUSH)
        pull = ctx.socket(zmq.PULL)
        for s in (push, pull):
            s.linger = 0
        pull.rcvtimeo = 10_000
        push.connect(f"tcp://127.0.0.1:{front}")
        pull.connect(f"tcp://127.0.0.1:{back}")
        for i in range(1000):
            push.send(b"%d" % i)
        assert [pull.recv() for _ in range(1000)] == [b"%d" % i for i in range(1000)]
        # The rate line for the second in which they moved (a real signal, not a sleep).
        moved = 0.0
        while moved == 0:
            line = stderr.get(timeout=10)
            if "msg/s (frontend->backend" in line:
                moved = float(line.split("frontend->backend ")[1].split(",")[0])
        assert moved > 0
        proc.send_signal(stop)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ctx.destroy(linger=0)


@pytest.mark.timeout(30)
def test_help_explains_the_endpoint_convention_with_an_example() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "zmq_green", "device", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0
    assert "'@tcp://*:5559' binds" in done.stdout and "connects" in done.stdout
    assert "example:" in done.stdout


@pytest.mark.timeout(30)
def test_a_bad_endpoint_is_a_clear_error_not_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "zmq_green", "device", "queue", "@nonsense://x", "@tcp://127.0.0.1:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip()
