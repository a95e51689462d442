"""``zmq-green bench``: zmq_green measured side by side with its peers, in one run.

Each (case, peer, round) runs in a fresh process (:mod:`._worker`), rounds in
turn with the peers' order reversed every other round; the parent prints one
table of medians and zmq_green's ratio to each peer, and when the ``load-R``
cases ran, a second one with every peer's latencies. The cases are in
:mod:`.cases`, the peers in :mod:`.peers`; ``benchmarks.md`` says what each
case measures and why.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone

from . import plot
from .options import parse_args
from .report import LEGEND, LOAD_LEGEND, document, headline, load_table, table
from .runner import contenders, run_all

__all__ = ["main"]


def main(argv: Sequence[str]) -> int:
    """Run the benchmark as ``argv`` says; print the table on stdout, progress on stderr.

    Parameters
    ----------
    argv : sequence of str
        The arguments after ``bench`` (see ``zmq-green bench --help``).

    Returns
    -------
    status : int
        0, or 2 when ``--plot`` is asked for without matplotlib.
    """
    opts = parse_args(argv)
    if opts.plot and not plot.available():
        print(plot.MISSING, file=sys.stderr)
        return 2
    started = datetime.now(timezone.utc)

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    with contenders(opts.contend) as pids:
        if pids:
            progress(f"--contend {len(pids)}: CPU-bound processes {', '.join(map(str, pids))} running")
        runs = run_all(opts, progress)
    print(headline(opts, started))
    print()
    print(table(opts.cases, opts.peers, runs))
    print()
    print(LEGEND)
    loads = load_table(opts.cases, opts.peers, runs)
    if loads:
        print()
        print(loads)
        print()
        print(LOAD_LEGEND)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(document(opts, runs, started), f, indent=1)
            f.write("\n")
        progress(f"wrote {opts.json}")
    if opts.plot:
        plot.plot(opts.plot, opts.cases, opts.peers, runs)
        progress(f"wrote {opts.plot}")
    return 0
