"""The command line of ``zmq-green bench``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, TypeVar

from .cases import CASES
from .peers import PEERS

__all__ = ["MAX_CONTEND", "Options", "parse_args", "parser"]

_N = TypeVar("_N", int, float)

#: The most CPU-bound processes ``--contend`` starts: enough to load any machine, not to sink it.
MAX_CONTEND = 64


@dataclass(frozen=True)
class Options:
    """What to run and where to write it."""

    cases: tuple[str, ...]
    peers: tuple[str, ...]
    rounds: int
    quick: bool
    timeout: float
    scale: float
    json: str | None
    plot: str | None
    #: CPU-bound processes kept running beside every measurement.
    contend: int

    def size(self, case: str) -> int:
        """The size *case* runs at: its full or quick size, times ``scale``."""
        spec = CASES[case]
        return max(1, round((spec.quick_size if self.quick else spec.size) * self.scale))


def _names(known: Sequence[str], what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(name.strip() for name in text.split(",") if name.strip())
        unknown = [name for name in names if name not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or repr(text)}; choose from {', '.join(known)}"
            )
        return names

    return parse


def _checked(kind: Callable[[str], _N], valid: Callable[[_N], bool], rule: str) -> Callable[[str], _N]:
    def parse(text: str) -> _N:
        value = kind(text)
        if not valid(value):
            raise argparse.ArgumentTypeError(f"{rule}: {text}")
        return value

    return parse


def _positive(kind: Callable[[str], _N]) -> Callable[[str], _N]:
    return _checked(kind, lambda value: value > 0, "must be positive")


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``zmq-green bench``."""
    p = argparse.ArgumentParser(
        prog="zmq-green bench",
        description=(
            "Measure zmq_green side by side with its peers, each run in a fresh process, "
            "and print one table of medians and zmq_green's ratio to each peer."
        ),
        epilog=f"cases: {', '.join(CASES)}; peers: {', '.join(PEERS)}",
    )
    p.add_argument(
        "--cases",
        type=_names(list(CASES), "case"),
        default=None,
        help=(
            "comma-separated case ids (default: all; with --quick, the scaling cases up to 1,000 "
            "and the load cases up to 5,000)"
        ),
    )
    p.add_argument(
        "--peers",
        type=_names(list(PEERS), "peer"),
        default=tuple(PEERS),
        help="comma-separated peers (default: all)",
    )
    p.add_argument(
        "--rounds",
        type=_positive(int),
        default=None,
        help="runs of each case per peer, median reported (default 3; 1 with --quick)",
    )
    p.add_argument(
        "--quick", action="store_true", help="1 round, smaller sizes: a first look in under 2 minutes"
    )
    p.add_argument(
        "--timeout",
        type=_positive(float),
        default=None,
        help="seconds before a run is killed and reported as timeout (default 60; 20 with --quick)",
    )
    p.add_argument(
        "--scale",
        type=_positive(float),
        default=1.0,
        help="multiply every case's size (messages, round trips, idle and load seconds)",
    )
    p.add_argument(
        "--contend",
        metavar="N",
        type=_checked(int, lambda n: 0 <= n <= MAX_CONTEND, f"must be from 0 to {MAX_CONTEND}"),
        default=0,
        help="keep N CPU-bound processes running beside every measurement (default 0)",
    )
    p.add_argument("--json", metavar="FILE", help="write every run's figures, versions and CPU to FILE")
    p.add_argument(
        "--plot", metavar="FILE.png", help="draw zmq_green's ratios to FILE.png (needs matplotlib)"
    )
    return p


def parse_args(argv: Sequence[str]) -> Options:
    """Parse the arguments of ``zmq-green bench``; exits with status 2 on bad ones."""
    ns = parser().parse_args(list(argv))
    return Options(
        cases=ns.cases or tuple(case for case in CASES if CASES[case].quick or not ns.quick),
        peers=ns.peers,
        rounds=ns.rounds or (1 if ns.quick else 3),
        quick=ns.quick,
        timeout=ns.timeout or (20.0 if ns.quick else 60.0),
        scale=ns.scale,
        json=ns.json,
        plot=ns.plot,
        contend=ns.contend,
    )
