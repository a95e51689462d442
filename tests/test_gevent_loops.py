"""The core tests pass on both of gevent's loops: libev (the default) and libuv.

The suite itself runs on whatever loop ``GEVENT_LOOP`` selects; this test runs
the core files again in a child interpreter on the loop the suite is *not* on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gevent
import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = [
    "tests/test_socket.py",
    "tests/test_context.py",
    "tests/test_poll.py",
    "tests/test_namespace.py",
    "tests/test_zmqstream.py",
    "tests/test_ioloop.py",
    "tests/test_device.py",
]


def _current_loop() -> str:
    return type(gevent.get_hub().loop).__module__


@pytest.mark.timeout(400)
def test_core_tests_pass_on_the_other_gevent_loop() -> None:
    other = "libev-cext" if "libuv" in _current_loop() else "libuv-cffi"
    env = dict(os.environ, GEVENT_LOOP=other)
    probe = subprocess.run(
        [sys.executable, "-c", "import gevent; print(type(gevent.get_hub().loop).__module__)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert other.split("-")[0] in probe.stdout, probe.stdout
    files = [f for f in CORE if (ROOT / f).exists()]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=380,
    )
    tail = "\n".join(result.stdout.splitlines()[-15:])
    assert result.returncode == 0, tail + result.stderr[-2000:]
    assert " passed" in tail
