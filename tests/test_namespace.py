"""``import zmq_green as zmq`` gives everything ``import zmq`` gives, with the green pieces in place."""

from __future__ import annotations

import gevent
import pytest
import zmq

import zmq_green

# The names whose zmq_green version differs from pyzmq's: everything that can block.
GREEN_NAMES = {
    "Context",
    "SyncContext",
    "Socket",
    "SyncSocket",
    "Poller",
    "select",
    "device",
    "proxy",
    "proxy_steerable",
    "MessageTracker",
}


def test_every_name_of_zmq_all_is_exported() -> None:
    missing = [name for name in zmq.__all__ if not hasattr(zmq_green, name)]
    assert missing == []
    assert set(zmq.__all__) <= set(zmq_green.__all__)


def test_star_import_gives_every_name_of_zmq_all() -> None:
    namespace: dict[str, object] = {}
    exec("from zmq_green import *", namespace)
    assert set(zmq.__all__) <= set(namespace)
    assert namespace["Socket"] is zmq_green.Socket


def test_non_blocking_names_are_pyzmqs_own_objects() -> None:
    # Constants, errors, Frame, Message, utilities: the very same objects, so that
    # `except zmq.Again` and `isinstance(x, zmq.Frame)` work across both modules.
    different = [
        name
        for name in zmq.__all__
        if name not in GREEN_NAMES and getattr(zmq_green, name) is not getattr(zmq, name)
    ]
    assert different == []
    assert zmq_green.Again is zmq.Again
    assert zmq_green.ZMQError is zmq.ZMQError
    assert zmq_green.POLLIN == zmq.POLLIN
    assert zmq_green.__version__ == zmq.__version__


def test_blocking_names_are_green_replacements() -> None:
    assert all(getattr(zmq_green, name) is not getattr(zmq, name) for name in GREEN_NAMES)
    assert issubclass(zmq_green.Context, zmq.Context)
    assert issubclass(zmq_green.Socket, zmq.Socket)
    assert issubclass(zmq_green.Poller, zmq.Poller)
    assert issubclass(zmq_green.MessageTracker, zmq.MessageTracker)
    assert zmq_green.SyncContext is zmq_green.Context
    assert zmq_green.SyncSocket is zmq_green.Socket


def test_green_context_makes_green_sockets_and_pollers(ctx: zmq_green.Context) -> None:
    with ctx.socket(zmq.PAIR) as sock:
        assert type(sock) is zmq_green.Socket
        assert isinstance(sock, zmq.Socket)
        assert isinstance(sock._poller_class(), zmq_green.Poller)
    with zmq_green.Socket(ctx, zmq.PAIR) as direct:
        assert type(direct) is zmq_green.Socket


def test_green_poller_waits_greenly(ctx: zmq_green.Context) -> None:
    a = ctx.socket(zmq.PAIR)
    b = ctx.socket(zmq.PAIR)
    a.bind("inproc://namespace-poller")
    b.connect("inproc://namespace-poller")
    poller = zmq_green.Poller()
    poller.register(a, zmq.POLLIN)
    waiting = gevent.spawn(poller.poll)
    gevent.idle()
    assert not waiting.ready()  # the hub ran other greenlets while poll waits
    b.send(b"ready")
    assert waiting.get(timeout=2) == [(a, zmq.POLLIN)]
    a.close(0)
    b.close(0)


def test_context_instance_is_a_green_singleton_separate_from_pyzmqs() -> None:
    native = zmq.Context.instance()
    green = zmq_green.Context.instance()
    assert type(green) is zmq_green.Context
    assert green is zmq_green.Context.instance()
    assert green is not native
    # Asking pyzmq afterwards still gives pyzmq's own, not the green one.
    assert zmq.Context.instance() is native
    assert type(native) is zmq.Context


def test_closed_green_instance_is_replaced_by_a_new_green_one() -> None:
    first = zmq_green.Context.instance()
    first.term()
    second = zmq_green.Context.instance()
    assert second is not first
    assert type(second) is zmq_green.Context
    assert not second.closed


@pytest.mark.parametrize("name", ["error", "constants", "utils", "backend", "sugar"])
def test_zmq_submodules_are_reachable_as_attributes(name: str) -> None:
    assert getattr(zmq_green, name) is getattr(zmq, name)


def test_error_classes_are_reachable_through_submodule_attribute() -> None:
    assert zmq_green.error.ZMQError is zmq.ZMQError
    assert zmq_green.error.ContextTerminated is zmq.ContextTerminated


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError):
        zmq_green.no_such_name  # noqa: B018


def test_stats_and_version_are_exported() -> None:
    assert {"stats", "reset_stats", "green_version"} <= set(zmq_green.__all__)
    assert isinstance(zmq_green.green_version, str) and zmq_green.green_version


def test_own_submodules_win_over_pyzmqs_of_the_same_name() -> None:
    import zmq.auth
    import zmq.devices
    import zmq.eventloop

    from zmq_green import auth, devices, eventloop

    assert (auth.__name__, devices.__name__, eventloop.__name__) == (
        "zmq_green.auth",
        "zmq_green.devices",
        "zmq_green.eventloop",
    )
    assert zmq_green.devices is devices and zmq.devices is not devices
