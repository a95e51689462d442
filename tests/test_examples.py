"""Every example runs as documented, finishes by itself and prints what it promises.

Each one runs in a fresh interpreter, as ``python examples/NAME.py`` (NAME may be
``eventloop/echo``) from the repository root. To cover a new example, add it to
``EXAMPLES``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Example:
    """An example script and the lines its output must contain."""

    name: str  # path under examples/, without ".py"
    expect: tuple[str, ...]  # regular expressions, each matching some line of stdout
    args: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return " ".join([self.name, *self.args])


EXAMPLES = [
    Example(
        "shared_socket",
        (
            r"^moved 10000/10000 messages from 100 greenlets on one PUSH socket",
            r"^peak senders active at once: \d\d+/100$",  # at least 10 blocked together
            r"^stats: .*'rescues': 0, 'lied_rescues': 0\}$",
            r"^OK$",
        ),
    ),
    Example(
        "shared_socket",
        (r"^moved 91/91 messages from 7 greenlets", r"^OK$"),
        args=("--greenlets", "7", "--messages", "13"),
    ),
    Example(
        "reqrep",
        (
            r"^server answered 50 requests from 5 clients over tcp://127\.0\.0\.1:\d+$",
            r"^correct replies: 50/50$",
            r"served concurrently: True\)$",
            r"^OK$",
        ),
    ),
    Example(
        "pubsub",
        (
            r"^forecaster subscribed to weather: received weather=20$",
            r"^fan subscribed to sports: received sports=20$",
            r"^reader subscribed to news\+weather: received news=20, weather=20$",
            r"^OK: every subscriber got every message of its topics and nothing else$",
        ),
    ),
    Example(
        "ventilator",
        (
            r"^results: 200 of 200 tasks done$",
            r"^peak workers busy at once: ([2-9]|1\d|20)/20$",
            r"^OK: the workers shared one PULL and one PUSH socket and ran concurrently$",
        ),
    ),
    Example(
        "eventloop/echo",
        (
            r"^echoed 100/100 messages over tcp://127\.0\.0\.1:\d+$",
            r"^OK$",
        ),
    ),
    Example(
        "eventloop/echostream",
        (
            r"^stream 1 echoed 50 messages; client1 got 50/50 right$",
            r"^stream 2 echoed 50 messages; client2 got 50/50 right$",
            r"^OK: one callback served both streams$",
        ),
    ),
    Example(
        "eventloop/broker",
        (
            r"^correct replies: 200/200$",
            r"^requests per worker: worker0=\d+, worker1=\d+, worker2=\d+, worker3=\d+$",
            r"^OK: 10 clients served by 4 workers through one broker$",
        ),
    ),
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_example_runs(example: Example) -> None:
    proc = subprocess.run(
        [sys.executable, f"examples/{example.name}.py", *example.args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, report
    # Greenlet failures, logged callback errors and warnings (an ignored RCVTIMEO,
    # say) would show here.
    assert proc.stderr == "", report
    for pattern in example.expect:
        assert re.search(pattern, proc.stdout, re.MULTILINE), f"no line matches {pattern!r}\n{report}"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", sorted({e.name for e in EXAMPLES}))
def test_example_says_how_to_run_it(name: str) -> None:
    source = (ROOT / "examples" / f"{name}.py").read_text()
    docstring = ast.get_docstring(ast.parse(source)) or ""
    assert f"python examples/{name}.py" in docstring
