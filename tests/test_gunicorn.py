"""examples/gunicorn_app.py under a real ``gunicorn -k gevent -w 2``, with its zmq backend.

100 HTTP requests are sent at once; the backend spends 100 ms on each. Every
answer must be the right one for its request, and they must overlap: one after
another would take 10 s. The helpers here also serve test_pywsgi_example.py.
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import gevent
import pytest
import zmq

import zmq_green

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
REQUESTS = 100
# 100 requests of 100 ms one after another take 10 s; overlapping, well under 1 s.
OVERLAPPED_SECONDS = 5.0


class Running:
    """A child ``python argv...`` in its own session, its output read line by line.

    As a context manager, it is stopped on exit (SIGINT, then SIGKILL to its
    process group if it lingers).
    """

    def __init__(self, *argv: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The match of the next output line that matches *pattern*."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"no line matched {pattern!r}; output:\n{''.join(self.output)}")
            match = re.search(pattern, line)
            if match:
                return match

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def get(port: int, query: str) -> tuple[int, Any]:
    """``GET /?query`` on 127.0.0.1:port: the status and the decoded JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", f"/?{query}")
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def get_squares_at_once(port: int) -> tuple[list[tuple[int, Any]], float]:
    """Ask for the squares of 0..REQUESTS-1, all at once; the answers, in order, and the seconds taken."""
    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        start = time.monotonic()
        answers = list(pool.map(lambda n: get(port, f"n={n}"), range(REQUESTS)))
        return answers, time.monotonic() - start


def check_squares(answers: list[tuple[int, Any]]) -> None:
    """Every answer is a 200 with the square of its own request's number."""
    got = [(status, body.get("n"), body.get("square")) for status, body in answers]
    assert got == [(200, n, n * n) for n in range(REQUESTS)]


@pytest.mark.timeout(120)
def test_gunicorn_gevent_workers_serve_concurrent_requests() -> None:
    with Running(str(EXAMPLES / "gunicorn_backend.py"), "tcp://127.0.0.1:*") as backend:
        endpoint = backend.wait_for(r"^tcp://127\.0\.0\.1:\d+$").group(0)
        argv = ["-m", "gunicorn", "-k", "gevent", "-w", "2", "-b", "127.0.0.1:0", "--no-control-socket"]
        argv += ["--chdir", str(EXAMPLES), "gunicorn_app:application"]
        with Running(*argv, env={"ZMQ_BACKEND": endpoint}) as gunicorn:
            port = int(gunicorn.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
            workers = {int(gunicorn.wait_for(r"Booting worker with pid: (\d+)").group(1)) for _ in range(2)}
            answers, seconds = get_squares_at_once(port)
    check_squares(answers)
    assert {body["worker"] for _, body in answers} <= workers
    assert seconds < OVERLAPPED_SECONDS, f"{REQUESTS} requests took {seconds:.1f} s: they did not overlap"


def call_app(app: Any, query: str) -> tuple[str, Any]:
    """Call a WSGI app in this greenlet: the status line and the decoded JSON body."""
    status: list[str] = []
    body = b"".join(app({"QUERY_STRING": query}, lambda line, headers: status.append(line)))
    return status[0], json.loads(body)


@pytest.mark.timeout(30)
def test_app_answers_400_504_and_drops_late_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    gunicorn_app = importlib.import_module("gunicorn_app")
    gunicorn_backend = importlib.import_module("gunicorn_backend")
    router = zmq_green.Context.instance().socket(zmq.ROUTER)
    router.linger = 0
    router.bind("inproc://silent-backend")
    app = gunicorn_app.SquareApp("inproc://silent-backend", timeout=0.2)
    server = None
    try:
        assert call_app(app, "n=x") == ("400 Bad Request", {"error": "use ?n=<integer>"})
        assert call_app(app, "n=3") == ("504 Gateway Timeout", {"error": "the backend did not answer"})
        # The backend comes to life: it answers the abandoned request first, which is dropped.
        server = gevent.spawn(gunicorn_backend.serve, router)
        assert call_app(app, "n=4") == ("200 OK", {"n": 4, "square": 16, "worker": os.getpid()})
        assert app.client()._waiting == {}
    finally:
        if server is not None:
            server.kill()
        client = app._client
        if client is not None:
            client._reader.kill()
            client.socket.close()
        router.close()
