"""Running the measurements: one fresh process per (case, peer, round), peers in alternating order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

from .cases import CASES
from .options import Options
from .peers import PEERS
from .report import Run, format_value

__all__ = ["Run", "contenders", "plan", "read_result", "run_all", "run_one"]

#: A contender of ``--contend``: a CPU-bound loop that looks up now and then whether the
#: bench that started it (its argument) is still its parent, and ends when it is not: a
#: bench killed outright leaves nothing spinning.
CONTENDER = """\
import os, sys
parent = int(sys.argv[1])
while os.getppid() == parent:
    for _ in range(1_000_000):
        pass
"""


def plan(opts: Options) -> Iterator[tuple[int, str, str]]:
    """``(round, case, peer)`` in running order: rounds outermost, peers reversed every other round."""
    for round_ in range(opts.rounds):
        peers = opts.peers if round_ % 2 == 0 else opts.peers[::-1]
        for case in opts.cases:
            for peer in peers:
                yield round_, case, peer


def run_one(case: str, peer: str, size: int, timeout: float, round_: int = 0) -> Run:
    """Measure *case* for *peer* in a fresh process; kill it after *timeout* seconds."""
    run = Run(case, peer, round_)
    reason = PEERS[peer].unavailable(case)
    if reason is not None:  # known without starting a process
        run.failure = f"n/a: {reason}"
        return run
    command = [sys.executable, "-m", "zmq_green.bench._worker", case, peer, str(size)]
    start = time.perf_counter()
    # Its own process group: a timeout kills the worker and any server it started.
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        run.failure = "timeout"
        run.detail = f"killed after {timeout:g} s"
    finally:
        _kill_group(proc)
        run.seconds = time.perf_counter() - start
    if run.failure is None:
        read_result(run, out, err, proc.returncode)
    return run


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


def read_result(run: Run, out: str, err: str, returncode: int) -> None:
    """Fill *run* from a worker's output: its last JSON line's figures or failure, or, with
    no such line, ``exit <returncode>`` and the last line of *err*."""
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        run.failure = f"exit {returncode}"
        run.detail = (err.strip().splitlines() or [""])[-1][:300]
        return
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except ValueError:
        run.failure, run.detail = "bad output", lines[-1][:300]
        return
    run.failure = result.get("failure")
    run.detail = result.get("detail", "")
    if run.failure is None:
        run.value = float(result["value"])
        run.extra = {key: float(value) for key, value in result.get("extra", {}).items()}


@contextmanager
def contenders(n: int) -> Iterator[list[int]]:
    """*n* CPU-bound processes, running until the block ends, however it ends: their pids.

    Each has its own session, so that a Ctrl-C at the terminal reaches the bench alone,
    which kills them on its way out.
    """
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(n):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", CONTENDER, str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def run_all(opts: Options, progress: Callable[[str], None]) -> list[Run]:
    """Every measurement *opts* asks for, reporting each on *progress* as it ends."""
    runs = []
    steps = list(plan(opts))
    for i, (round_, case, peer) in enumerate(steps, 1):
        run = run_one(case, peer, opts.size(case), opts.timeout, round_)
        runs.append(run)
        if run.value is not None:
            outcome = f"{format_value(run.value)} {CASES[case].unit}"
        else:
            outcome = f"{run.failure} {run.detail}".rstrip()
        progress(
            f"[{i}/{len(steps)}] round {round_ + 1} {case:<17} {peer:<10} {outcome} ({run.seconds:.1f} s)"
        )
    return runs
