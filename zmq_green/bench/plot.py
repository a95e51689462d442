"""``--plot``: zmq_green's ratio to each peer, per case, as a bar chart (needs matplotlib).

Below the bars, each scaling family measured at two sizes or more (``poller-N``,
``zmqstream-N``) gets a log-log chart of each peer's cost per round trip against
N: a flat line is a cost that does not grow with the sockets registered.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

from .cases import CASES, SCALING
from .report import SUBJECT, Cell, Run, ratio_to, summarize

__all__ = ["MISSING", "available", "plot"]

MISSING = "--plot needs matplotlib: pip install 'zmq_green[plot]'"


def available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        return False
    return True


def plot(path: str, cases: Sequence[str], peers: Sequence[str], runs: Sequence[Run]) -> None:
    """Draw zmq_green's ratio to each other peer for each case into *path* (PNG).

    Bars are on a log scale around 1: right of the line, zmq_green does better.
    Cases a peer could not run have no bar for it.
    """
    # Imported by name: matplotlib is an optional extra, absent where the package is type-checked.
    importlib.import_module("matplotlib").use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")

    cells = summarize(runs)
    others = [peer for peer in peers if peer != SUBJECT]
    families = [
        f for f in SCALING if sum(CASES[case].sockets > 0 and case.startswith(f"{f}-") for case in cases) > 1
    ]
    bars_height = 0.5 + 0.45 * len(cases) * max(1, len(others)) / 2
    fig, axes = plt.subplots(
        1 + len(families),
        1,
        figsize=(9, bars_height + 4 * len(families)),
        gridspec_kw={"height_ratios": [bars_height] + [4] * len(families)},
        squeeze=False,
    )
    ax = axes[0][0]
    height = 0.8 / max(1, len(others))
    for i, peer in enumerate(others):
        ys, widths = [], []
        for row, case in enumerate(cases):
            value = ratio_to(cells, case, peer)
            if value is not None and math.isfinite(value):
                ys.append(row + i * height)
                widths.append(value)
        ax.barh(ys, widths, height=height, label=f"vs {peer}")
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks([row + 0.4 - height / 2 for row in range(len(cases))], list(cases))
    ax.invert_yaxis()
    ax.set_xlabel("zmq_green's ratio to the peer (above 1: zmq_green does better)")
    ax.legend(loc="lower right", fontsize="small")
    for family, row in zip(families, axes[1:]):
        _scaling(row[0], family, cases, peers, cells)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _scaling(
    ax: Any, family: str, cases: Sequence[str], peers: Sequence[str], cells: dict[tuple[str, str], Cell]
) -> None:
    """Microseconds per round trip against registered sockets, one line per peer, log-log."""
    sizes = sorted((CASES[case].sockets, case) for case in cases if case.startswith(f"{family}-"))
    for peer in peers:
        points = [
            (n, 1e6 / cell.median)
            for n, case in sizes
            if (cell := cells.get((case, peer))) is not None and cell.median
        ]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=peer)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(f"{family}-N: cost per round trip against N (flat: it does not grow)")
    ax.set_xlabel("registered sockets (N)")
    ax.set_ylabel("µs per round trip")
    ax.legend(fontsize="small")
