"""``--plot``: zmq_green's ratio to each peer, per case, as a bar chart (needs matplotlib)."""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence

from .report import SUBJECT, Run, ratio_to, summarize

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
    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.45 * len(cases) * max(1, len(others)) / 2))
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
