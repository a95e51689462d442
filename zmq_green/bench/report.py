"""From runs to results: medians, zmq_green's ratios, the table, and the JSON record."""

from __future__ import annotations

import math
import os
import platform
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .cases import CASES, CPU_PER_TRIP
from .peers import PEERS

if TYPE_CHECKING:
    from .options import Options

__all__ = [
    "BASELINE",
    "LATENCIES",
    "SUBJECT",
    "Cell",
    "Run",
    "cpu_model",
    "document",
    "extras",
    "format_cell",
    "format_ratio",
    "format_value",
    "headline",
    "load_table",
    "machine",
    "median",
    "notes",
    "ratio",
    "ratio_to",
    "summarize",
    "table",
]

#: The peer the ratios are about.
SUBJECT = "zmq_green"
#: The peer the load table compares zmq_green with: plain pyzmq, blocking calls.
BASELINE = "threads"
#: The extras of a ``load-R`` run that the load table shows beside its CPU µs per request.
LATENCIES = ("p50 us", "p99 us")


@dataclass
class Run:
    """The outcome of one measurement: a value, or the failure that stands in its place.

    ``failure`` is an exception's type name (``AssertionError``), ``timeout``,
    ``exit <status>`` or ``n/a: <reason>``; ``detail`` says more where known.
    """

    case: str
    peer: str
    round: int
    value: float | None = None
    extra: dict[str, float] = field(default_factory=dict)
    failure: str | None = None
    detail: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Cell:
    """One peer's result for one case over its rounds.

    ``median`` is over the rounds that succeeded (``ok`` of ``rounds``);
    ``failure`` is the most frequent failure among the others.
    """

    median: float | None
    ok: int
    rounds: int
    failure: str | None


def median(values: Sequence[float]) -> float | None:
    """The median of *values*, or ``None`` if there are none."""
    return statistics.median(values) if values else None


def ratio(ours: float | None, theirs: float | None, lower_is_better: bool = False) -> float | None:
    """How many times better *ours* is than *theirs*: ``ours/theirs``, or ``theirs/ours``
    when lower is better. ``None`` if either is missing or both are zero.
    """
    if ours is None or theirs is None:
        return None
    if lower_is_better:
        ours, theirs = theirs, ours
    if theirs == 0:
        return math.inf if ours > 0 else None
    return ours / theirs


def summarize(runs: Sequence[Run]) -> dict[tuple[str, str], Cell]:
    """One :class:`Cell` per (case, peer) found in *runs*."""
    grouped: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        grouped.setdefault((run.case, run.peer), []).append(run)
    cells = {}
    for key, group in grouped.items():
        values = [run.value for run in group if run.value is not None]
        failures = Counter(run.failure for run in group if run.value is None and run.failure)
        cells[key] = Cell(
            median=median(values),
            ok=len(values),
            rounds=len(group),
            failure=failures.most_common(1)[0][0] if failures else None,
        )
    return cells


def format_value(value: float) -> str:
    """*value* to three significant digits, with thousands separators: ``449,000``, ``15.9``.

    Small whole numbers (counts: wake-ups, rescues) are written without decimals.
    """
    if math.isfinite(value) and value == int(value) and abs(value) < 1000:
        return str(int(value))
    return _three_digits(value)


def _three_digits(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    digits = 2 - math.floor(math.log10(abs(value)))
    rounded = round(value, digits)
    if abs(rounded) >= 1000:
        return f"{rounded:,.0f}"
    return f"{rounded:.{max(digits, 0)}f}"


def format_cell(cell: Cell | None, more: Sequence[float | None] = ()) -> str:
    """A peer's table cell: its median, its failure (never blank), and how many rounds failed.

    Figures in *more* follow the median, each after a ``·`` (``-`` for a missing one).
    """
    if cell is None:
        return "not run"
    if cell.median is None:
        return cell.failure or "no result"
    text = " · ".join("-" if value is None else format_value(value) for value in (cell.median, *more))
    if cell.ok < cell.rounds:
        text += f" ({cell.ok}/{cell.rounds})"
    return text


def format_ratio(value: float | None) -> str:
    """A ratio cell: ``1.23x``, ``infx``; ``-`` when there is nothing to compare."""
    if value is None:
        return "-"
    return f"{_three_digits(value)}x"


def extras(runs: Sequence[Run], case: str, peer: str) -> dict[str, float]:
    """*peer*'s extra figures for *case*, each the median over the rounds that gave a figure."""
    found: dict[str, list[float]] = {}
    for run in runs:
        if run.case == case and run.peer == peer and run.value is not None:
            for key, value in run.extra.items():
                found.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in found.items()}


def notes(runs: Sequence[Run], case: str) -> str:
    """zmq_green's extra figures for *case* (medians over its rounds), e.g. wake-ups.

    Its CPU per round trip comes with blocking pyzmq's beside it: the figure that
    decides the round trips a process gets from a share of busy CPUs.
    """
    theirs = extras(runs, case, BASELINE)
    found = []
    for key, value in extras(runs, case, SUBJECT).items():
        beside = f" ({BASELINE} {format_value(theirs[key])})" if key == CPU_PER_TRIP and key in theirs else ""
        found.append(f"{key} {format_value(value)}{beside}")
    return ", ".join(found)


def ratio_to(cells: dict[tuple[str, str], Cell], case: str, peer: str) -> float | None:
    """zmq_green's ratio to *peer* for *case*, from the medians in *cells*."""
    ours, theirs = cells.get((case, SUBJECT)), cells.get((case, peer))
    if ours is None or theirs is None:
        return None
    return ratio(ours.median, theirs.median, CASES[case].lower_is_better)


def table(cases: Sequence[str], peers: Sequence[str], runs: Sequence[Run]) -> str:
    """The results as one Markdown table: each peer's median, then zmq_green's ratio to each peer."""
    cells = summarize(runs)
    others = [peer for peer in peers if peer != SUBJECT] if SUBJECT in peers else []
    case_notes = {case: notes(runs, case) for case in cases}
    header = ["case", "unit", *peers, *(f"vs {peer}" for peer in others)]
    if any(case_notes.values()):
        header.append("notes")
    rows = []
    for case in cases:
        row = [case, CASES[case].unit, *(format_cell(cells.get((case, peer))) for peer in peers)]
        row += [format_ratio(ratio_to(cells, case, peer)) for peer in others]
        if len(header) > len(row):
            row.append(case_notes[case])
        rows.append(row)
    return _markdown(header, rows)


def load_table(cases: Sequence[str], peers: Sequence[str], runs: Sequence[Run]) -> str:
    """The ``load-R`` cases among *cases* as a second Markdown table; ``""`` if there are none.

    One row per load case: each peer's CPU µs per request, p50 and p99 latency (medians
    over its rounds), then zmq_green's ratio to :data:`BASELINE` for each of the three.
    """
    loads = [case for case in cases if CASES[case].rate]
    if not loads:
        return ""
    cells = summarize(runs)
    compare = SUBJECT in peers and BASELINE in peers
    header = ["case: CPU µs/req · p50 µs · p99 µs", *peers]
    if compare:
        header += [f"{figure.split()[0]} vs {BASELINE}" for figure in ("CPU", *LATENCIES)]
    rows = []
    for case in loads:
        figures = {peer: _load_figures(cells, runs, case, peer) for peer in peers}
        row = [case, *(format_cell(cells.get((case, peer)), figures[peer][1:]) for peer in peers)]
        if compare:
            row += [
                format_ratio(ratio(ours, theirs, lower_is_better=True))
                for ours, theirs in zip(figures[SUBJECT], figures[BASELINE])
            ]
        rows.append(row)
    return _markdown(header, rows)


def _load_figures(
    cells: dict[tuple[str, str], Cell], runs: Sequence[Run], case: str, peer: str
) -> tuple[float | None, ...]:
    """*peer*'s CPU µs per request and latencies for *case*; ``None`` for what it lacks."""
    cell = cells.get((case, peer))
    found = extras(runs, case, peer)
    return (None if cell is None else cell.median, *(found.get(key) for key in LATENCIES))


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """*header* and *rows* as a Markdown table, its columns aligned."""
    widths = [max(len(line[i]) for line in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


LEGEND = (
    "Medians over the rounds; (k/n): only k of n rounds gave a figure. "
    "vs X: zmq_green's figure over X's (for idle and load-R, X's CPU over zmq_green's): "
    "above 1, zmq_green does better."
)

LOAD_LEGEND = (
    "load-R: R requests/s offered by an open-loop client in another process. Each cell: the "
    "server's CPU µs per request · p50 · p99 latency in µs, from each request's scheduled send "
    f"time to its reply; medians over the rounds. X vs {BASELINE}: {BASELINE}' figure over "
    "zmq_green's: above 1, zmq_green does better."
)


def headline(opts: Options, started: datetime) -> str:
    """The line above the tables: when, on how many CPUs, at which sizes, and any contention."""
    parts = [
        f"{opts.rounds} round{'' if opts.rounds == 1 else 's'}",
        "quick sizes" if opts.quick else "full sizes",
    ]
    if opts.scale != 1:
        parts.append(f"scale {opts.scale:g}")
    if opts.contend:
        processes = "process" if opts.contend == 1 else "processes"
        parts.append(
            f"under contention: {opts.contend} CPU-bound {processes} beside every run "
            f"(--contend {opts.contend})"
        )
    else:
        parts.append("no contenders")
    return f"zmq-green bench, {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs: {', '.join(parts)}"


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, or what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for text in f:
                if text.startswith("model name"):
                    return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Versions of Python, pyzmq, libzmq, gevent, tornado and zmq_green, and the CPU."""
    import gevent
    import zmq

    from .._version import __version__

    try:
        import tornado

        tornado_version: str | None = tornado.version
    except ImportError:
        tornado_version = None
    return {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "pyzmq": zmq.pyzmq_version(),
        "libzmq": zmq.zmq_version(),
        "gevent": gevent.__version__,
        "tornado": tornado_version,
        "zmq_green": __version__,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def document(opts: Options, runs: Sequence[Run], started: datetime) -> dict[str, Any]:
    """Everything about a benchmark run, for ``--json``."""
    cells = summarize(runs)
    summary: dict[str, dict[str, Any]] = {}
    for (case, peer), cell in cells.items():
        vs = None if peer == SUBJECT else ratio_to(cells, case, peer)
        # JSON has no infinity: an idle zmq_green that used no CPU at all is "inf" times better.
        summary.setdefault(case, {})[peer] = {**asdict(cell), "ratio": "inf" if vs == math.inf else vs}
    return {
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "options": asdict(opts),
        "peers": {peer: PEERS[peer].what for peer in opts.peers},
        "cases": {
            case: {
                "unit": CASES[case].unit,
                "what": CASES[case].what,
                "lower_is_better": CASES[case].lower_is_better,
                "size": opts.size(case),
            }
            for case in opts.cases
        },
        "runs": [asdict(run) for run in runs],
        "summary": summary,
    }
