"""examples/pywsgi_app.py: gevent.pywsgi and the zmq backend in one process, many requests at once."""

from __future__ import annotations

import pytest
from test_gunicorn import (
    EXAMPLES,
    OVERLAPPED_SECONDS,
    REQUESTS,
    Running,
    check_squares,
    get,
    get_squares_at_once,
)


@pytest.mark.timeout(90)
def test_pywsgi_app_serves_concurrent_requests() -> None:
    with Running(str(EXAMPLES / "pywsgi_app.py"), "0") as server:
        port = int(server.wait_for(r"^serving http://127\.0\.0\.1:(\d+)/$").group(1))
        answers, seconds = get_squares_at_once(port)
        bad = get(port, "n=seven")
    check_squares(answers)
    assert {body["worker"] for _, body in answers} == {server.proc.pid}
    assert seconds < OVERLAPPED_SECONDS, f"{REQUESTS} requests took {seconds:.1f} s: they did not overlap"
    assert bad == (400, {"error": "use ?n=<integer>"})
