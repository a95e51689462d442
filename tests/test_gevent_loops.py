"""The core tests pass on both of gevent's loops: libev (the default) and libuv.

The suite itself runs on whatever loop ``GEVENT_LOOP`` selects; this test runs
the core files again in a child interpreter on the loop the suite is *not* on.
"""

from __future__ import annotations

import pytest
from conftest import ROOT, other_gevent_loop, run_pytest_on

CORE = [
    "tests/test_socket.py",
    "tests/test_context.py",
    "tests/test_poll.py",
    "tests/test_namespace.py",
    "tests/test_zmqstream.py",
    "tests/test_ioloop.py",
    "tests/test_device.py",
    "tests/test_wakeups.py",
    "tests/test_readiness.py",
    "tests/test_mutants.py",
]


@pytest.mark.timeout(400)
def test_core_tests_pass_on_the_other_gevent_loop() -> None:
    files = [f for f in CORE if (ROOT / f).exists()]
    result = run_pytest_on(other_gevent_loop(), files, timeout=380)
    tail = "\n".join(result.stdout.splitlines()[-15:])
    assert result.returncode == 0, tail + result.stderr[-2000:]
    assert " passed" in tail
