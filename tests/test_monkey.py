"""zmq_green.monkey: code that does ``import zmq`` becomes green.

Patching changes process-wide state, so every test runs in a fresh interpreter
with the stand-in library ``tests/thirdparty/zmqlib.py`` importable; the child
prints a JSON summary that the test checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

THIRDPARTY = Path(__file__).parent / "thirdparty"
LIBRARY_CALLS = ["receive", "poll_then_receive", "select_then_receive"]

# Prepended to every child's code: start_ticker() counts `ticks` in a greenlet
# and sets `ticked` after 5 of them.
PRELUDE = """
import gevent, gevent.event
ticks = 0
ticked = gevent.event.Event()
def _tick():
    global ticks
    while True:
        ticks += 1
        if ticks == 5:
            ticked.set()
        gevent.sleep(0.005)
def start_ticker():
    gevent.spawn(_tick)
"""


def run_child(*argv: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python argv...`` with the stand-in library on the path."""
    path = os.pathsep.join(p for p in (str(THIRDPARTY), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
    )


def child_json(code: str) -> Any:
    """Run *code* in a fresh interpreter; return the JSON it printed last."""
    proc = run_child("-c", PRELUDE + textwrap.dedent(code))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("call", LIBRARY_CALLS)
def test_library_blocks_only_its_greenlet_when_patched(call: str) -> None:
    result = child_json(
        f"""
        import zmq_green.monkey
        zmq_green.monkey.patch()
        import json, zmq, zmqlib
        sock, endpoint = zmqlib.make_puller()
        receiver = gevent.spawn(zmqlib.{call}, sock)
        start_ticker()
        ticked_while_blocked = ticked.wait(30) and not receiver.ready()
        push = zmq.Context.instance().socket(zmq.PUSH)
        push.connect(endpoint)
        push.send(b"hello")
        got = receiver.get(timeout=30).decode()
        print(json.dumps({{"ticked_while_blocked": ticked_while_blocked, "got": got}}))
        """
    )
    assert result == {"ticked_while_blocked": True, "got": "hello"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("patched", [False, True], ids=["native", "patched"])
@pytest.mark.parametrize("call", LIBRARY_CALLS)
def test_library_wait_with_timeout(call: str, patched: bool) -> None:
    # Same body both ways: natively the library's 200 ms wait freezes the ticker;
    # patched, the ticker runs during it, and the timeout still raises zmq.Again.
    result = child_json(
        f"""
        import zmq_green.monkey
        if {patched}:
            zmq_green.monkey.patch()
        import json, zmq, zmqlib
        start_ticker()
        sock, _ = zmqlib.make_puller()
        def attempt():
            before = ticks
            try:
                zmqlib.{call}(sock, 200)
            except zmq.Again:
                return ticks - before
        print(json.dumps({{"ticks_during_wait": gevent.spawn(attempt).get(timeout=30)}}))
        """
    )
    ticks = result["ticks_during_wait"]
    assert ticks is not None, "zmq.Again expected after the library's timeout"
    if patched:
        assert ticks > 0
    else:
        assert ticks == 0


@pytest.mark.timeout(60)
def test_names_are_green() -> None:
    result = child_json(
        """
        import json, sys
        import zmq_green, zmq_green.monkey
        from zmq_green.monkey import GREEN_NAMES
        ioloop_imported_before = "zmq_green.eventloop.ioloop" in sys.modules
        zmq_green.monkey.patch()
        import zmq, zmq.sugar
        import zmq.green
        from zmq.green import Context as GreenContext
        import zmq.green.poll
        import zmq.green.device
        import zmq.green.eventloop.ioloop as lazily_aliased

        ctx = zmq.Context()
        sock = ctx.socket(zmq.PAIR)
        singleton_sock = zmq.Context.instance().socket(zmq.PAIR)
        print(json.dumps({
            "not_green": [
                f"{ns.__name__}.{name}" for ns in (zmq, zmq.sugar) for name in GREEN_NAMES
                if hasattr(ns, name) and getattr(ns, name) is not getattr(zmq_green, name)
            ],
            "context": type(ctx) is zmq_green.Context,
            "instance": zmq.Context.instance() is zmq_green.Context.instance(),
            "socket": type(sock) is zmq_green.Socket and type(singleton_sock) is zmq_green.Socket,
            "isinstance": isinstance(sock, zmq.Socket) and isinstance(sock, zmq.sugar.socket.Socket),
            "zmq.Socket stays pyzmq's": zmq.Socket is zmq.sugar.Socket is zmq.sugar.socket.Socket
                and zmq.SyncSocket is zmq.sugar.socket.SyncSocket,
            "zmq.green": zmq.green is zmq_green and GreenContext is zmq_green.Context,
            "zmq.green.poll": zmq.green.poll is sys.modules["zmq_green.poll"],
            "device still a function": zmq_green.device is zmq.device and callable(zmq.device),
            "lazy alias": not ioloop_imported_before
                and lazily_aliased is sys.modules["zmq_green.eventloop.ioloop"]
                and lazily_aliased.__spec__.name == "zmq_green.eventloop.ioloop",
            "unknown submodule": __import__("importlib").util.find_spec("zmq.green.core") is None,
        }))
        """
    )
    assert result == {
        "not_green": [],
        "context": True,
        "instance": True,
        "socket": True,
        "isinstance": True,
        "zmq.Socket stays pyzmq's": True,
        "zmq.green": True,
        "zmq.green.poll": True,
        "device still a function": True,
        "lazy alias": True,
        "unknown submodule": True,
    }


@pytest.mark.timeout(60)
def test_library_with_thread_authenticator_imported_after_patch() -> None:
    # zmq.auth.thread imports zmq.asyncio, whose classes derive from zmq.Socket on import.
    result = child_json(
        """
        import json
        import zmq_green, zmq_green.monkey
        zmq_green.monkey.patch()
        import zmq, zmq.asyncio, zmq.auth.thread
        start_ticker()
        ctx = zmq.Context.instance()
        auth = zmq.auth.thread.ThreadAuthenticator(ctx)
        auth.start()
        auth.allow("127.0.0.1")
        server = ctx.socket(zmq.PULL)
        server.zap_domain = b"checked"
        server.bind("tcp://127.0.0.1:*")
        client = ctx.socket(zmq.PUSH)
        client.connect(server.last_endpoint)
        client.send(b"hello")
        server.rcvtimeo = 20000
        got = server.recv().decode()
        auth.stop()
        print(json.dumps({
            "got": got,
            "ticked": ticked.wait(30),
            "asyncio sockets are green": issubclass(zmq.asyncio.Socket, zmq_green.Socket),
        }))
        """
    )
    assert result == {"got": "hello", "ticked": True, "asyncio sockets are green": False}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pyzmq_green_first", [False, True], ids=["fresh", "zmq.green-imported"])
def test_patch_is_idempotent_and_unpatch_restores_exactly(pyzmq_green_first: bool) -> None:
    result = child_json(
        f"""
        import json, sys
        import zmq, zmq.sugar
        import zmq.asyncio, zmq.eventloop.future  # patch() imports them, and a module stays imported
        if {pyzmq_green_first}:
            import zmq.green, zmq.green.poll
        import zmq_green, zmq_green.monkey as monkey

        def snapshot():
            return (
                dict(vars(zmq)),
                dict(vars(zmq.sugar)),
                {{k: v for k, v in sys.modules.items() if k.startswith("zmq.green")}},
                list(sys.meta_path),
            )

        def same(a, b):
            return all(
                x.keys() == y.keys() and all(x[k] is y[k] for k in x) if isinstance(x, dict)
                else len(x) == len(y) and all(p is q for p, q in zip(x, y))
                for x, y in zip(a, b)
            )

        before = snapshot()
        states = [monkey.is_patched()]
        monkey.patch()
        patched_once = snapshot()
        monkey.patch()
        states.append(monkey.is_patched())
        idempotent = same(patched_once, snapshot())
        green_socket = zmq.Context().socket(zmq.PAIR)
        monkey.unpatch()
        states.append(monkey.is_patched())
        restored = same(before, snapshot())
        monkey.unpatch()
        unpatch_twice = same(before, snapshot())
        import zmq.green
        print(json.dumps({{
            "states": states,
            "idempotent": idempotent,
            "restored": restored,
            "unpatch twice": unpatch_twice,
            "zmq.green is pyzmq's again": zmq.green is not zmq_green
                and zmq.green.Context is not zmq_green.Context,
            "made while patched stays green": isinstance(green_socket, zmq_green.Socket)
                and isinstance(green_socket, zmq.Socket),
        }}))
        """
    )
    assert result == {
        "states": [False, True, False],
        "idempotent": True,
        "restored": True,
        "unpatch twice": True,
        "zmq.green is pyzmq's again": True,
        "made while patched stays green": True,
    }


@pytest.mark.timeout(60)
def test_patch_without_tornado() -> None:
    result = child_json(
        """
        import json, sys
        sys.modules["tornado"] = None  # as if tornado were not installed
        import zmq_green.monkey
        zmq_green.monkey.patch()
        import zmq, zmq.asyncio
        print(json.dumps({
            "patched": zmq_green.monkey.is_patched(),
            "zmq.eventloop.future imported": "zmq.eventloop.future" in sys.modules,
            "asyncio context is pyzmq's": zmq.asyncio.Context.__mro__[1] is zmq.sugar.context.Context,
        }))
        """
    )
    assert result == {
        "patched": True,
        "zmq.eventloop.future imported": False,
        "asyncio context is pyzmq's": True,
    }


@pytest.mark.timeout(60)
def test_warns_about_native_sockets_made_before_patch() -> None:
    result = child_json(
        """
        import json, warnings
        import zmq
        import zmq_green.monkey as monkey

        def warnings_of_patch():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                monkey.patch()
            monkey.unpatch()
            return [(w.category.__name__, issubclass(w.category, UserWarning), w.filename) for w in caught]

        results = {"no sockets": warnings_of_patch()}
        native = zmq.Context.instance().socket(zmq.PUSH)
        results["open native socket"] = warnings_of_patch()
        native.close()
        results["closed native socket"] = warnings_of_patch()
        print(json.dumps(results))
        """
    )
    assert result == {
        "no sockets": [],
        "open native socket": [["NativeSocketWarning", True, "<string>"]],
        "closed native socket": [],
    }


SCRIPT = (
    PRELUDE
    + """
import json, os, sys
import zmq_green.monkey
import zmq, zmqlib
start_ticker()
sock, endpoint = zmqlib.make_puller()
receiver = gevent.spawn(zmqlib.receive, sock)
ticked.wait(30)
push = zmq.Context.instance().socket(zmq.PUSH)
push.connect(endpoint)
push.send(b"hello")
print(json.dumps({
    "argv": sys.argv,
    "name": __name__,
    "patched": zmq_green.monkey.is_patched(),
    "path0": sys.path[0],
    "got": receiver.get(timeout=30).decode(),
    "ticked_first": ticked.is_set(),
    "gevent_patched": __import__("gevent.monkey").monkey.is_module_patched("socket"),
}))
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["script", "module", "with-gevent-monkey"])
def test_command_line_runs_script_patched(tmp_path: Path, how: str) -> None:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    head = {
        "script": ["-m", "zmq_green.monkey", str(script)],
        "module": ["-m", "zmq_green.monkey", "-m", "app"],
        "with-gevent-monkey": ["-m", "gevent.monkey", "--module", "zmq_green.monkey", str(script)],
    }[how]
    proc = run_child(*head, "a", "--b", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["argv"][1:] == ["a", "--b"]
    assert Path(result["argv"][0]).resolve() == script.resolve()
    assert result["name"] == "__main__"
    assert result["patched"] is True
    assert Path(result["path0"]).resolve() == tmp_path.resolve()
    assert result["got"] == "hello"
    assert result["ticked_first"] is True
    assert result["gevent_patched"] is (how == "with-gevent-monkey")


@pytest.mark.timeout(60)
def test_command_line_exit_status_and_usage(tmp_path: Path) -> None:
    script = tmp_path / "exits.py"
    script.write_text("import sys\nsys.exit(3)\n")
    assert run_child("-m", "zmq_green.monkey", str(script)).returncode == 3
    usage = run_child("-m", "zmq_green.monkey")
    assert usage.returncode == 2
    assert "usage: python -m zmq_green.monkey" in usage.stderr
    helped = run_child("-m", "zmq_green.monkey", "--help")
    assert helped.returncode == 0
    assert "usage: python -m zmq_green.monkey" in helped.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("operation", ["proxy", "native socket in Poller"])
def test_green_pieces_work_while_patched(operation: str) -> None:
    result = child_json(
        f"""
        import json
        import zmq
        native_ctx = zmq.Context()
        import zmq_green.monkey
        zmq_green.monkey.patch()
        start_ticker()
        ctx = zmq.Context()
        if {operation!r} == "proxy":
            front, back = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
            front.bind("inproc://in")
            back.bind("inproc://out")
            gevent.spawn(zmq.proxy, front, back)
            push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
            push.connect("inproc://in")
            pull.connect("inproc://out")
            push.send(b"through")
            done = pull.recv() == b"through"
        else:
            native = native_ctx.socket(zmq.PULL)
            native.bind("inproc://native")
            poller = zmq.Poller()
            poller.register(native, zmq.POLLIN)
            waiting = gevent.spawn(poller.poll, 30000)
            ticked.wait(30)
            push = native_ctx.socket(zmq.PUSH)
            push.connect("inproc://native")
            push.send(b"x")
            done = waiting.get(timeout=30) == [(native, zmq.POLLIN)]
        print(json.dumps({{"done": done, "ticked": ticked.wait(30)}}))
        """
    )
    assert result == {"done": True, "ticked": True}


@pytest.mark.timeout(60)
def test_context_term_while_patched() -> None:
    result = child_json(
        """
        import json
        import zmq_green.monkey
        zmq_green.monkey.patch()
        import zmq
        start_ticker()
        ctx = zmq.Context()
        ctx.socket(zmq.PAIR).close()
        gevent.spawn(ctx.term).get(timeout=30)
        print(json.dumps({"closed": ctx.closed, "ticked": ticked.wait(30)}))
        """
    )
    assert result == {"closed": True, "ticked": True}
