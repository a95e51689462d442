"""The eventloop examples run as documented, finish by themselves and print what they promise.

Each one runs in a fresh interpreter, as ``python examples/eventloop/NAME.py``
from the repository root.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# example -> regular expressions, each matching some line of its stdout
EXAMPLES = {
    "echo": (
        r"^echoed 100/100 messages over tcp://127\.0\.0\.1:\d+$",
        r"^OK$",
    ),
    "echostream": (
        r"^stream 1 echoed 50 messages; client1 got 50/50 right$",
        r"^stream 2 echoed 50 messages; client2 got 50/50 right$",
        r"^OK: one callback served both streams$",
    ),
    "broker": (
        r"^correct replies: 200/200$",
        r"^requests per worker: worker0=\d+, worker1=\d+, worker2=\d+, worker3=\d+$",
        r"^OK: 10 clients served by 4 workers through one broker$",
    ),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, f"examples/eventloop/{name}.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, report
    # A logged callback error or a greenlet's traceback would show here.
    assert proc.stderr == "", report
    for pattern in EXAMPLES[name]:
        assert re.search(pattern, proc.stdout, re.MULTILINE), f"no line matches {pattern!r}\n{report}"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_says_how_to_run_it(name: str) -> None:
    source = (ROOT / "examples" / "eventloop" / f"{name}.py").read_text()
    docstring = ast.get_docstring(ast.parse(source)) or ""
    assert f"python examples/eventloop/{name}.py" in docstring
