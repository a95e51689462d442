"""The ``zmq-green`` command (also ``python -m zmq_green``).

Subcommands:

``bench``   measure zmq_green side by side with its peers (``zmq.green``, threads...)
``device``  run a queue/forwarder/streamer device between two endpoints
``info``    print the versions of zmq_green, pyzmq, libzmq, gevent and Python
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from collections.abc import Sequence
from typing import Callable

# subcommand -> (module, help); each module has ``main(argv) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("zmq_green.bench", "measure zmq_green side by side with its peers"),
    "device": ("zmq_green.device_cli", "run a queue, forwarder or streamer device"),
    "info": ("zmq_green.__main__", "print versions of zmq_green and what it runs on"),
}


def info_lines() -> list[str]:
    """Versions of everything that shapes zmq_green's behaviour and speed."""
    import gevent
    import zmq

    from zmq_green import green_version

    return [
        f"zmq_green {green_version}",
        f"pyzmq {zmq.pyzmq_version()}",
        f"libzmq {zmq.zmq_version()}",
        f"gevent {gevent.__version__} (loop: {type(gevent.get_hub().loop).__module__})",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"platform {platform.platform()}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; with no ``argv``, the command line."""
    from zmq_green import green_version

    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="zmq-green",
        description="zmq_green: pyzmq for gevent. Tools to measure it and to run devices.",
    )
    parser.add_argument("--version", action="version", version=f"zmq_green {green_version}")
    parser.add_argument(
        "command",
        choices=sorted(SUBCOMMANDS),
        help="; ".join(f"{name}: {helptext}" for name, (_, helptext) in sorted(SUBCOMMANDS.items())),
    )
    if not args or args[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if args else 2
    ns = parser.parse_args(args[:1])
    if ns.command == "info":
        print("\n".join(info_lines()))
        return 0
    module = importlib.import_module(SUBCOMMANDS[ns.command][0])
    run: Callable[[Sequence[str]], int] = module.main
    return run(args[1:])


if __name__ == "__main__":
    sys.exit(main())
