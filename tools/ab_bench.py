"""Compare zmq_green at two commits, case by case, in one run.

    python tools/ab_bench.py BASE [--cases a,b] [--rounds 5] [--scale F]

Checks BASE out in a temporary worktree, then runs each case the two checkouts
share for the ``zmq_green`` peer, one fresh worker process per measurement
(``python -m zmq_green.bench._worker``), alternating which checkout goes first
from round to round. Prints each case's medians and this checkout's figure over
BASE's (for lower-is-better cases, BASE's over this one's): above 1, this
checkout does better. The bench compares peers; this compares commits.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from zmq_green.bench.runner import Run, read_result

HERE = Path(__file__).resolve().parent.parent


def case_sizes(tree: Path) -> dict[str, tuple[int, bool]]:
    """``{case: (full size, lower_is_better)}`` as *tree*'s bench defines them."""
    code = (
        "import json; from zmq_green.bench.cases import CASES; "
        "print(json.dumps({k: (c.size, c.lower_is_better) for k, c in CASES.items()}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=_env(tree), check=True, capture_output=True, text=True
    ).stdout
    return {case: (size, lower) for case, (size, lower) in json.loads(out).items()}


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def measure(tree: Path, case: str, size: int) -> Run:
    """One run of *case* by *tree*'s zmq_green: its figures (``value``, ``extra``), or its failure."""
    proc = subprocess.run(
        [sys.executable, "-m", "zmq_green.bench._worker", case, "zmq_green", str(size)],
        cwd=tree,
        env=_env(tree),
        capture_output=True,
        text=True,
        timeout=120,
    )
    run = Run(case, "zmq_green", 0)
    read_result(run, proc.stdout, proc.stderr, proc.returncode)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("--cases", default="")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(base), args.base], cwd=HERE, check=True
        )
        try:
            trees = {"base": base, "this": HERE}
            sizes = {name: case_sizes(tree) for name, tree in trees.items()}
            shared = [case for case in sizes["this"] if case in sizes["base"]]
            cases = args.cases.split(",") if args.cases else shared
            values: dict[tuple[str, str], list[float]] = {}
            extras: dict[tuple[str, str, str], list[float]] = {}
            for round_ in range(args.rounds):
                order = list(trees) if round_ % 2 == 0 else list(trees)[::-1]
                for case in cases:
                    for name in order:
                        size = max(1, round(sizes[name][case][0] * args.scale))
                        run = measure(trees[name], case, size)
                        value = run.value
                        print(
                            f"round {round_ + 1} {case:18} {name:5} {value} {run.failure or ''}",
                            file=sys.stderr,
                        )
                        if value is not None:
                            values.setdefault((case, name), []).append(value)
                            for key, extra in run.extra.items():
                                extras.setdefault((case, name, key), []).append(extra)
            print(
                f"| case | {args.base} | this | this vs base | extras (base / this) |\n|---|---|---|---|---|"
            )
            for case in cases:
                old, new = (
                    statistics.median(values.get((case, n), [float("nan")])) for n in ("base", "this")
                )
                better = old / new if sizes["this"][case][1] else new / old
                notes = ", ".join(
                    f"{key} {statistics.median(extras[case, 'base', key]):,.4g} / {statistics.median(extras[case, 'this', key]):,.4g}"
                    for (c, n, key) in extras
                    if c == case and n == "base" and (case, "this", key) in extras
                )
                print(f"| {case} | {old:,.6g} | {new:,.6g} | {better:.3f}x | {notes} |")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=HERE, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
