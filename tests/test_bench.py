"""The benchmark's own logic: arguments, arithmetic, the table, the JSON record, and the
subprocess path on a tiny scale. No timing is asserted: speed is what the command reports.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from zmq_green.bench import _worker as worker, cases, main, plot
from zmq_green.bench.cases import CASES, NotApplicable, Trips, figures
from zmq_green.bench.load import Exchange, client_figures, client_report, percentile
from zmq_green.bench.options import parse_args
from zmq_green.bench.peers import PEERS, Peer
from zmq_green.bench.report import (
    Cell,
    document,
    format_cell,
    format_ratio,
    format_value,
    headline,
    load_table,
    median,
    ratio,
    summarize,
    table,
)
from zmq_green.bench.runner import Run, contenders, plan, read_result, run_one

SPEC_CASES = [
    "stream-inproc",
    "stream-tcp",
    "stream-large",
    "reqrep-tcp",
    "reqrep-ipc-2proc",
    "fanin",
    "shared",
    "poller-1",
    "poller-100",
    "poller-1000",
    "poller-10000",
    "device",
    "zmqstream",
    "zmqstream-1",
    "zmqstream-100",
    "zmqstream-1000",
    "zmqstream-10000",
    "idle",
    "load-1000",
    "load-5000",
    "load-20000",
]


# -- arguments -------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_defaults_run_every_case_for_every_peer_three_rounds() -> None:
    opts = parse_args([])
    assert opts.cases == tuple(SPEC_CASES)
    assert opts.peers == ("zmq_green", "zmq.green", "threads", "raw", "asyncio", "tornado")
    assert (opts.rounds, opts.quick, opts.json, opts.plot) == (3, False, None, None)
    assert opts.size("stream-inproc") == CASES["stream-inproc"].size


@pytest.mark.timeout(10)
def test_quick_is_one_round_at_quick_sizes_unless_rounds_given() -> None:
    quick = parse_args(["--quick"])
    assert quick.rounds == 1
    assert quick.timeout < parse_args([]).timeout
    assert all(quick.size(case) == CASES[case].quick_size for case in CASES)
    assert all(CASES[case].quick_size < CASES[case].size for case in CASES)
    assert parse_args(["--quick", "--rounds", "2"]).rounds == 2
    # --quick stops the scaling cases at 1,000 sockets and the load cases at 5,000
    # requests/s, unless they are asked for.
    left_out = ("poller-10000", "zmqstream-10000", "load-20000")
    assert quick.cases == tuple(case for case in SPEC_CASES if case not in left_out)
    assert parse_args(["--quick", "--cases", "poller-10000"]).cases == ("poller-10000",)
    assert parse_args(["--quick", "--cases", "load-20000"]).cases == ("load-20000",)


@pytest.mark.timeout(10)
def test_cases_peers_scale_and_files() -> None:
    opts = parse_args(
        [
            "--cases",
            "idle,stream-tcp",
            "--peers",
            "threads, zmq_green",
            "--scale",
            "0.001",
            "--json",
            "out.json",
            "--plot",
            "out.png",
            "--timeout",
            "5",
        ]
    )
    assert opts.cases == ("idle", "stream-tcp")  # in the order given
    assert opts.peers == ("threads", "zmq_green")
    assert opts.size("stream-tcp") == round(CASES["stream-tcp"].size * 0.001)
    assert opts.size("idle") == 1  # never scaled to nothing
    assert (opts.json, opts.plot, opts.timeout) == ("out.json", "out.png", 5.0)


@pytest.mark.timeout(10)
def test_contend_starts_no_process_unless_asked() -> None:
    assert parse_args([]).contend == 0
    assert parse_args(["--contend", "0"]).contend == 0
    assert parse_args(["--contend", "2"]).contend == 2


@pytest.mark.timeout(10)
def test_load_cases_measure_seconds_at_their_rate() -> None:
    assert [CASES[case].rate for case in ("load-1000", "load-5000", "load-20000")] == [1000, 5000, 20000]
    assert CASES["poller-100"].rate == CASES["idle"].rate == CASES["load-1000"].sockets == 0
    load = CASES["load-5000"]
    assert (load.unit, load.size, load.quick_size, load.lower_is_better) == ("CPU µs/req", 4, 2, True)
    assert parse_args(["--quick", "--scale", "0.1"]).size("load-1000") == 1  # never scaled to nothing


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "argv, complaint",
    [
        (["--cases", "stream-udp"], "unknown case stream-udp"),
        (["--peers", "zmq_green,eventlet"], "unknown peer eventlet"),
        (["--cases", ","], "unknown case"),
        (["--rounds", "0"], "must be positive"),
        (["--scale", "-1"], "must be positive"),
        (["--contend", "-1"], "must be from 0 to 64: -1"),
        (["--contend", "65"], "must be from 0 to 64: 65"),
        (["--contend", "two"], "invalid"),
    ],
)
def test_bad_arguments_exit_2_and_say_why(argv: list[str], complaint: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert complaint in capsys.readouterr().err


@pytest.mark.timeout(10)
def test_peer_order_alternates_by_round() -> None:
    opts = parse_args(["--cases", "idle,fanin", "--peers", "zmq_green,threads,raw", "--rounds", "3"])
    steps = list(plan(opts))
    assert len(steps) == 3 * 2 * 3
    by_round = [[(case, peer) for r, case, peer in steps if r == i] for i in range(3)]
    forward = [
        ("idle", "zmq_green"),
        ("idle", "threads"),
        ("idle", "raw"),
        ("fanin", "zmq_green"),
        ("fanin", "threads"),
        ("fanin", "raw"),
    ]
    backward = [
        ("idle", "raw"),
        ("idle", "threads"),
        ("idle", "zmq_green"),
        ("fanin", "raw"),
        ("fanin", "threads"),
        ("fanin", "zmq_green"),
    ]
    assert by_round == [forward, backward, forward]


# -- peers and cases -------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_every_case_has_a_zmq_green_body_and_every_gap_a_reason() -> None:
    assert list(CASES) == SPEC_CASES
    assert set(PEERS["zmq_green"].bodies) == set(CASES)
    for peer in PEERS.values():
        assert set(peer.bodies) <= set(CASES), peer.name
        for case in CASES:
            reason = peer.unavailable(case)
            assert (reason is None) == (case in peer.bodies)
            assert reason is None or reason.strip()
    assert PEERS["threads"].unavailable("shared") == "not thread-safe"
    assert set(PEERS["tornado"].bodies) == {case for case in CASES if case.startswith("zmqstream")}
    assert PEERS["asyncio"].unavailable("zmqstream-100") == "see tornado"
    assert set(PEERS["raw"].bodies) == {"stream-inproc", "stream-tcp", "stream-large", "shared", "reqrep-tcp"}
    for peer in ("zmq_green", "zmq.green", "threads", "asyncio"):
        assert {"load-1000", "load-5000", "load-20000"} <= set(PEERS[peer].bodies), peer
    assert PEERS["raw"].unavailable("load-1000") == "a blocking server: see threads"
    assert PEERS["tornado"].unavailable("load-1000") == "zmqstream cases only"


def _fake_peer(monkeypatch: Any, body: Any) -> None:
    monkeypatch.setitem(PEERS, "fake", Peer("fake", "a peer for tests", {"idle": body}))


@pytest.mark.timeout(10)
def test_worker_reports_figures_failures_and_missing_features(monkeypatch: Any) -> None:
    def works(n: int) -> dict[str, Any]:
        return figures(n * 2.0, **{"wake-ups": 0})

    def missing(n: int) -> dict[str, Any]:
        raise NotApplicable("needs tornado")

    def broken(n: int) -> dict[str, Any]:
        raise AssertionError("Only one greenlet can be waiting on this event")

    _fake_peer(monkeypatch, works)
    assert worker.measure("idle", "fake", 21) == {"value": 42.0, "extra": {"wake-ups": 0}}
    assert worker.measure("fanin", "fake", 21) == {"failure": "n/a: not measured"}
    _fake_peer(monkeypatch, missing)
    assert worker.measure("idle", "fake", 1) == {"failure": "n/a: needs tornado"}
    _fake_peer(monkeypatch, broken)
    assert worker.measure("idle", "fake", 1) == {
        "failure": "AssertionError",
        "detail": "Only one greenlet can be waiting on this event",
    }


@pytest.mark.timeout(10)
def test_a_worker_that_dies_without_a_result_shows_its_exit_status() -> None:
    crashed = Run("device", "zmq.green", 0)
    read_result(crashed, "", "Fatal Python error: Segmentation fault\n", -11)
    assert (crashed.failure, crashed.detail, crashed.value) == (
        "exit -11",
        "Fatal Python error: Segmentation fault",
        None,
    )
    garbled = Run("device", "zmq.green", 0)
    read_result(garbled, '{"value": 1', "", 0)
    assert garbled.failure == "bad output"
    fine = Run("device", "zmq_green", 0)
    read_result(fine, 'noise\n{"value": 5.0, "extra": {"rescues": 0}}\n', "", 0)
    assert (fine.failure, fine.value, fine.extra) == (None, 5.0, {"rescues": 0.0})


# -- arithmetic ------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_trips_run_warm_plus_n_steps_when_the_budget_allows() -> None:
    trips = Trips(3, 5)
    assert sum(1 for _ in trips) == 8
    assert trips.rate > 0


def test_trips_cut_a_slow_run_short_and_report_the_rate_of_what_ran(monkeypatch: Any) -> None:
    clock = iter(range(1000))  # every reading of the clock is one second later
    monkeypatch.setattr(cases, "perf_counter", lambda: float(next(clock)))
    monkeypatch.setattr(cases, "SCALING_BUDGET", 5.0)
    trips = Trips(100, 100)
    steps = sum(1 for _ in trips)
    # Warm-up: its 1 s share (until 1) is over at the reading of 2, after two steps.
    # Timed: the clock starts at 3, its 5 s are over at the reading of 9, after six
    # steps; the rate reads the clock at 10.
    assert steps == 2 + 6
    assert trips.rate == 6 / (10 - 3)


def test_median() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([7.0]) == 7.0
    assert median([]) is None


@pytest.mark.timeout(10)
def test_ratio_says_how_many_times_better_zmq_green_is() -> None:
    assert ratio(300.0, 100.0) == 3.0
    assert ratio(50.0, 100.0) == 0.5
    # Lower is better (CPU seconds): the peer's figure over ours.
    assert ratio(0.01, 0.04, lower_is_better=True) == 4.0
    assert ratio(0.0, 0.04, lower_is_better=True) == math.inf
    assert ratio(0.0, 0.0, lower_is_better=True) is None
    assert ratio(None, 100.0) is None
    assert ratio(100.0, None) is None


@pytest.mark.timeout(10)
def test_summarize_takes_the_median_of_the_rounds_that_gave_a_figure() -> None:
    runs = [
        Run("stream-tcp", "zmq_green", 0, value=30.0),
        Run("stream-tcp", "zmq_green", 1, value=10.0),
        Run("stream-tcp", "zmq_green", 2, value=20.0),
        Run("stream-tcp", "zmq.green", 0, failure="timeout"),
        Run("stream-tcp", "zmq.green", 1, value=5.0),
        Run("stream-tcp", "zmq.green", 2, failure="timeout"),
        Run("shared", "zmq.green", 0, failure="AssertionError"),
    ]
    cells = summarize(runs)
    assert cells["stream-tcp", "zmq_green"] == Cell(20.0, 3, 3, None)
    assert cells["stream-tcp", "zmq.green"] == Cell(5.0, 1, 3, "timeout")
    assert cells["shared", "zmq.green"] == Cell(None, 0, 1, "AssertionError")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "value, text",
    [
        (449_123.0, "449,000"),
        (1_534_000.0, "1,530,000"),
        (6_412.0, "6,410"),
        (999.7, "1,000"),
        (15.93, "15.9"),
        (2.0, "2"),
        (2.5, "2.50"),
        (0.000406605, "0.000407"),
        (0.0, "0"),
        (math.inf, "inf"),
    ],
)
def test_values_have_three_significant_digits(value: float, text: str) -> None:
    assert format_value(value) == text


@pytest.mark.timeout(10)
def test_cells_are_never_blank() -> None:
    assert format_cell(Cell(449_000.0, 3, 3, None)) == "449,000"
    assert format_cell(Cell(5.5, 1, 3, "timeout")) == "5.50 (1/3)"
    assert format_cell(Cell(None, 0, 3, "AssertionError")) == "AssertionError"
    assert format_cell(Cell(None, 0, 1, "n/a: needs tornado")) == "n/a: needs tornado"
    assert format_cell(None) == "not run"
    assert format_ratio(None) == "-"
    assert format_ratio(6.4912) == "6.49x"
    assert format_ratio(math.inf) == "infx"


# -- the table -------------------------------------------------------------------------


def _cells(text: str) -> list[list[str]]:
    """The cells of a Markdown table, row by row."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()]


def _sample_runs() -> list[Run]:
    return [
        Run("stream-inproc", "zmq_green", 0, value=400_000.0),
        Run("stream-inproc", "zmq.green", 0, value=50_000.0),
        Run("stream-inproc", "tornado", 0, failure="n/a: zmqstream only"),
        Run("shared", "zmq_green", 0, value=300_000.0, extra={"shared/1 sender": 0.75}),
        Run("shared", "zmq.green", 0, failure="AssertionError", detail="Only one greenlet..."),
        Run("shared", "tornado", 0, failure="n/a: zmqstream only"),
        Run("idle", "zmq_green", 0, value=0.01, extra={"wake-ups": 0.0, "rescues": 0.0}),
        Run("idle", "zmq.green", 0, value=0.04),
        Run("idle", "tornado", 0, failure="timeout", detail="killed after 20 s"),
    ]


@pytest.mark.timeout(10)
def test_table_shows_medians_failures_ratios_and_notes() -> None:
    text = table(["stream-inproc", "shared", "idle"], ["zmq_green", "zmq.green", "tornado"], _sample_runs())
    lines = text.splitlines()
    assert len(lines) == 2 + 3
    assert len({len(line) for line in lines}) == 1, "columns are aligned"
    rows = _cells(text)
    assert rows[0] == [
        "case",
        "unit",
        "zmq_green",
        "zmq.green",
        "tornado",
        "vs zmq.green",
        "vs tornado",
        "notes",
    ]
    assert all(set(cell) == {"-"} for cell in rows[1])
    assert rows[2] == ["stream-inproc", "msg/s", "400,000", "50,000", "n/a: zmqstream only", "8.00x", "-", ""]
    assert rows[3] == [
        "shared",
        "msg/s",
        "300,000",
        "AssertionError",
        "n/a: zmqstream only",
        "-",
        "-",
        "shared/1 sender 0.750",
    ]
    # idle: lower is better, so zmq_green using a quarter of the CPU is 4x better.
    assert rows[4] == [
        "idle",
        "CPU s/5 s",
        "0.0100",
        "0.0400",
        "timeout",
        "4.00x",
        "-",
        "wake-ups 0, rescues 0",
    ]


@pytest.mark.timeout(10)
def test_table_without_zmq_green_has_no_ratios_and_no_empty_notes() -> None:
    runs = [Run("fanin", "threads", 0, value=1000.0), Run("fanin", "asyncio", 0, value=900.0)]
    header = _cells(table(["fanin"], ["threads", "asyncio"], runs))[0]
    assert header == ["case", "unit", "threads", "asyncio"]


def _load_runs() -> list[Run]:
    def ran(case: str, peer: str, round_: int, cpu: float, p50: float, p99: float) -> Run:
        return Run(case, peer, round_, value=cpu, extra={"replies": 4000.0, "p50 us": p50, "p99 us": p99})

    return [
        ran("load-1000", "zmq_green", 0, 30.0, 80.0, 200.0),
        ran("load-1000", "zmq_green", 1, 10.0, 60.0, 400.0),
        ran("load-1000", "zmq_green", 2, 20.0, 70.0, 300.0),
        ran("load-1000", "threads", 0, 40.0, 140.0, 150.0),
        Run("load-1000", "threads", 1, failure="replies lost", detail="3 of 4,000 requests had no reply"),
        Run("load-1000", "raw", 0, failure="n/a: a blocking server: see threads"),
        Run("load-5000", "zmq_green", 0, failure="client behind"),
        ran("load-5000", "threads", 0, 12.5, 90.0, 250.0),
        Run("load-5000", "raw", 0, failure="n/a: a blocking server: see threads"),
        Run("idle", "zmq_green", 0, value=0.01),
    ]


@pytest.mark.timeout(10)
def test_load_table_shows_every_peers_cpu_and_latencies_and_ratios_to_threads() -> None:
    text = load_table(["idle", "load-1000", "load-5000"], ["zmq_green", "threads", "raw"], _load_runs())
    assert len({len(line) for line in text.splitlines()}) == 1, "columns are aligned"
    rows = _cells(text)
    assert rows[0] == [
        "case: CPU µs/req · p50 µs · p99 µs",
        "zmq_green",
        "threads",
        "raw",
        "CPU vs threads",
        "p50 vs threads",
        "p99 vs threads",
    ]
    # Medians over the rounds that gave figures, each figure on its own: zmq_green's
    # CPU 20 (of 10, 20, 30), p50 70, p99 300. Lower is better, so the ratios are
    # threads' figures over zmq_green's: 40/20, 140/70, 150/300.
    assert rows[2] == [
        "load-1000",
        "20 · 70 · 300",
        "40 · 140 · 150 (1/2)",
        "n/a: a blocking server: see threads",
        "2.00x",
        "2.00x",
        "0.500x",
    ]
    assert rows[3] == [
        "load-5000",
        "client behind",
        "12.5 · 90 · 250",
        "n/a: a blocking server: see threads",
        "-",
        "-",
        "-",
    ]
    assert len(rows) == 4, "one row per load case, no other case"


@pytest.mark.timeout(10)
def test_load_table_is_empty_without_load_cases_and_has_no_ratios_without_threads() -> None:
    assert load_table(["idle", "stream-tcp"], ["zmq_green", "threads"], _load_runs()) == ""
    rows = _cells(load_table(["load-1000"], ["zmq_green", "raw"], _load_runs()))
    assert rows[0][1:] == ["zmq_green", "raw"]
    assert rows[2] == ["load-1000", "20 · 70 · 300", "n/a: a blocking server: see threads"]
    # The main table shows the CPU alone, lower being better, and zmq_green's latencies as notes.
    main_rows = _cells(table(["load-1000"], ["zmq_green", "threads"], _load_runs()))
    assert main_rows[2] == [
        "load-1000",
        "CPU µs/req",
        "20",
        "40 (1/2)",
        "2.00x",
        "replies 4,000, p50 us 70, p99 us 300",
    ]


@pytest.mark.timeout(10)
def test_headline_says_when_how_and_under_which_contention() -> None:
    started = datetime(2026, 12, 2, 14, 30, tzinfo=timezone.utc)
    line = headline(parse_args(["--quick", "--contend", "1"]), started)
    assert line.startswith("zmq-green bench, 2026-12-02 14:30 UTC, ")
    assert (
        "1 round, quick sizes, under contention: 1 CPU-bound process beside every run (--contend 1)" in line
    )
    line = headline(parse_args(["--scale", "0.5", "--contend", "3"]), started)
    assert "3 rounds, full sizes, scale 0.5, under contention: 3 CPU-bound processes" in line
    assert headline(parse_args([]), started).endswith("3 rounds, full sizes, no contenders")


# -- the load client -------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_percentiles_are_nearest_rank() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0
    assert percentile([float(i) for i in range(1, 201)], 0.99) == 198.0
    assert percentile([5.0], 0.5) == percentile([5.0], 0.99) == 5.0


@pytest.mark.timeout(10)
def test_client_reports_latencies_in_us_or_why_it_has_none() -> None:
    answered = Exchange(4, latencies=[4e-4, 1e-4, 2e-4, 3e-4], lags=[0.0, 1e-5, 0.0, 2e-5])
    assert client_report(answered, 1000) == pytest.approx(
        {"replies": 4, "p50 us": 200.0, "p99 us": 400.0, "lag p99 us": 20.0}
    )
    lost = Exchange(4, latencies=[1e-4] * 3, lags=[0.0] * 4)
    assert client_report(lost, 1000) == {
        "failure": "replies lost",
        "detail": "1 of 4 requests had no reply 10 s after the last was sent",
    }
    # One request in a hundred sent 5 ms late is the client's hiccup; two is a client
    # that did not keep its schedule: its own delays would be the p99 it reports.
    hiccup = Exchange(100, latencies=[1e-4] * 100, lags=[0.0] * 99 + [0.005])
    assert client_report(hiccup, 20_000)["replies"] == 100
    behind = Exchange(100, latencies=[1e-4] * 100, lags=[0.0] * 98 + [0.005] * 2)
    assert client_report(behind, 20_000) == {
        "failure": "client behind",
        "detail": "1 % of its requests left more than 5,000 µs late (limit 1,000 µs): "
        "the client could not keep 20,000 requests/s",
    }


def _printing(text: str) -> subprocess.Popen[str]:
    """A process standing in for the load client: it prints *text*."""
    return subprocess.Popen([sys.executable, "-c", f"print({text!r})"], stdout=subprocess.PIPE, text=True)


@pytest.mark.timeout(30)
def test_server_figures_are_cpu_us_per_reply_and_the_clients_report() -> None:
    client = _printing('{"replies": 4000, "p50 us": 70.0, "p99 us": 300.0, "lag p99 us": 9.0}')
    assert client_figures(client, 0.08) == {
        "value": pytest.approx(20.0),
        "extra": {"replies": 4000, "p50 us": 70.0, "p99 us": 300.0, "lag p99 us": 9.0},
    }
    failed = '{"failure": "replies lost", "detail": "3 of 4,000 requests had no reply"}'
    assert client_figures(_printing(failed), 0.08) == json.loads(failed)
    assert client_figures(_printing("Traceback: ..."), 0.08) == {
        "failure": "client exit 0",
        "detail": "Traceback: ...",
    }


# -- the JSON record -------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_json_record_has_every_run_the_versions_and_the_cpu() -> None:
    opts = parse_args(["--cases", "stream-inproc,shared,idle", "--peers", "zmq_green,zmq.green,tornado"])
    runs = _sample_runs()
    doc = document(opts, runs, datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc))
    text = json.dumps(doc, allow_nan=False)  # strict JSON, even for an infinite ratio
    doc = json.loads(text)
    assert set(doc) == {"date", "machine", "options", "peers", "cases", "runs", "summary"}
    assert list(doc["peers"]) == ["zmq_green", "zmq.green", "tornado"]
    assert doc["date"] == "2026-11-25T12:00:00+00:00"
    for key in ("python", "pyzmq", "libzmq", "gevent", "zmq_green", "cpu", "cpus"):
        assert doc["machine"][key], key
    assert doc["options"]["peers"] == ["zmq_green", "zmq.green", "tornado"]
    assert doc["options"]["contend"] == 0
    assert doc["cases"]["idle"] == {
        "unit": "CPU s/5 s",
        "what": CASES["idle"].what,
        "lower_is_better": True,
        "size": 5,
    }
    assert len(doc["runs"]) == len(runs)
    assert doc["runs"][4] == {
        "case": "shared",
        "peer": "zmq.green",
        "round": 0,
        "value": None,
        "extra": {},
        "failure": "AssertionError",
        "detail": "Only one greenlet...",
        "seconds": 0.0,
    }
    assert doc["summary"]["stream-inproc"]["zmq.green"] == {
        "median": 50_000.0,
        "ok": 1,
        "rounds": 1,
        "failure": None,
        "ratio": 8.0,
    }
    assert doc["summary"]["idle"]["zmq_green"]["ratio"] is None
    assert doc["summary"]["idle"]["tornado"]["failure"] == "timeout"


@pytest.mark.timeout(10)
def test_infinite_ratio_is_written_as_a_string() -> None:
    opts = parse_args(["--cases", "idle", "--peers", "zmq_green,threads"])
    runs = [Run("idle", "zmq_green", 0, value=0.0), Run("idle", "threads", 0, value=0.002)]
    doc = json.loads(json.dumps(document(opts, runs, datetime.now(timezone.utc)), allow_nan=False))
    assert doc["summary"]["idle"]["threads"]["ratio"] == "inf"


# -- plot ------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_plot_without_matplotlib_fails_clearly_before_running_anything(
    monkeypatch: Any, capsys: Any, tmp_path: Any
) -> None:
    monkeypatch.setattr(plot, "available", lambda: False)
    started = []
    monkeypatch.setattr("zmq_green.bench.run_all", lambda *a: started.append(a) or [])
    assert main(["--cases", "idle", "--plot", str(tmp_path / "r.png")]) == 2
    assert started == []
    assert "pip install 'zmq_green[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "r.png").exists()


class Recorder:
    """Stands in for a matplotlib module or object: records every method called on it,
    in order, in *calls*; a call returns what *returns* gives for its name, or None."""

    def __init__(
        self,
        name: str,
        calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]],
        returns: dict[str, Any] | None = None,
    ) -> None:
        self._name = name
        self._calls = calls
        self._returns = returns or {}

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((f"{self._name}.{method}", args, kwargs))
            return self._returns.get(method)

        return call


@pytest.mark.timeout(10)
def test_plot_draws_one_bar_per_finite_ratio_on_a_log_scale(monkeypatch: Any) -> None:
    """The plotting logic, through a matplotlib that records what it is asked to draw.

    It runs without matplotlib (an optional extra, absent where the tests run);
    :func:`test_plot_draws_a_png` checks the real one where it is installed.
    """
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    fig, ax = Recorder("fig", calls), Recorder("ax", calls)
    monkeypatch.setitem(sys.modules, "matplotlib", Recorder("matplotlib", calls))
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", Recorder("plt", calls, {"subplots": (fig, [[ax]])}))

    plot.plot(
        "ratios.png",
        ["stream-inproc", "shared", "idle"],
        ["zmq_green", "zmq.green", "tornado"],
        _sample_runs(),
    )

    names = [name for name, _, _ in calls]
    # No display needed: the Agg backend is chosen before pyplot draws anything.
    assert names[:2] == ["matplotlib.use", "plt.subplots"] and calls[0][1] == ("Agg",)
    bars = [(args, kwargs) for name, args, kwargs in calls if name == "ax.barh"]
    # One series per other peer, each bar at its case's row (offset by the series):
    # zmq.green's ratios are 8 (400k/50k msg/s) and 4 (idle CPU, lower is better);
    # "shared" failed for zmq.green and every tornado run failed: no bar, no zero.
    assert bars == [
        (([0.0, 2.0], [8.0, 4.0]), {"height": 0.4, "label": "vs zmq.green"}),
        (([], []), {"height": 0.4, "label": "vs tornado"}),
    ]
    assert ("ax.set_xscale", ("log",), {}) in calls
    assert ("ax.axvline", (1.0,), {"color": "black", "linewidth": 0.8}) in calls
    ticks = next(args for name, args, _ in calls if name == "ax.set_yticks")
    assert ticks == (pytest.approx([0.2, 1.2, 2.2]), ["stream-inproc", "shared", "idle"])
    assert ("fig.savefig", ("ratios.png",), {"dpi": 120}) in calls
    assert names[-1] == "plt.close" and calls[-1][1] == (fig,)


@pytest.mark.timeout(10)
def test_plot_draws_cost_against_sockets_for_a_scaling_family(monkeypatch: Any) -> None:
    """poller-N at two sizes: below the bars, a log-log line per peer of microseconds per
    round trip against N (a peer with no figure draws no line)."""
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    fig, ax, scaling = Recorder("fig", calls), Recorder("ax", calls), Recorder("scaling", calls)
    monkeypatch.setitem(sys.modules, "matplotlib", Recorder("matplotlib", calls))
    grid = {"subplots": (fig, [[ax], [scaling]])}
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", Recorder("plt", calls, grid))
    runs = [
        Run("poller-1", "zmq_green", 0, value=10_000.0),
        Run("poller-100", "zmq_green", 0, value=8_000.0),
        Run("poller-1", "threads", 0, value=20_000.0),
        Run("poller-100", "threads", 0, value=5_000.0),
        Run("poller-1", "tornado", 0, failure="n/a: zmqstream cases only"),
        Run("poller-100", "tornado", 0, failure="n/a: zmqstream cases only"),
    ]

    plot.plot("ratios.png", ["poller-1", "poller-100"], ["zmq_green", "threads", "tornado"], runs)

    subplots = next((args, kwargs) for name, args, kwargs in calls if name == "plt.subplots")
    assert subplots[0] == (2, 1)
    lines = [(args, kwargs["label"]) for name, args, kwargs in calls if name == "scaling.plot"]
    assert lines == [
        (((1, 100), (100.0, 125.0)), "zmq_green"),
        (((1, 100), (50.0, 200.0)), "threads"),
    ]
    assert ("scaling.set_xscale", ("log",), {}) in calls
    assert ("scaling.set_yscale", ("log",), {}) in calls


@pytest.mark.timeout(60)
def test_plot_draws_a_png(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "ratios.png"
    plot.plot(
        str(path), ["stream-inproc", "shared", "idle"], ["zmq_green", "zmq.green", "tornado"], _sample_runs()
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- through real worker processes -----------------------------------------------------


@pytest.mark.timeout(120)
def test_tiny_run_of_two_cases_through_worker_processes(tmp_path: Any, capsys: Any) -> None:
    out = tmp_path / "out.json"
    argv = [
        "--cases",
        "stream-inproc,fanin",
        "--peers",
        "zmq_green,threads,raw",
        "--rounds",
        "2",
        "--scale",
        "0.002",
        "--timeout",
        "50",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    doc = json.loads(out.read_text())
    runs = {(r["case"], r["peer"], r["round"]): r for r in doc["runs"]}
    assert len(runs) == 2 * 3 * 2
    for (case, peer, _), run in runs.items():
        if (case, peer) == ("fanin", "raw"):
            assert run["failure"] == "n/a: no one-thread form"
        else:
            assert run["failure"] is None, run
            assert run["value"] > 0
    rows = {line.split("|")[1].strip(): line for line in captured.out.splitlines() if line.startswith("| ")}
    assert set(rows) == {"case", "stream-inproc", "fanin"}
    assert "n/a: no one-thread form" in rows["fanin"]
    # Progress went to stderr, one line per run, as the runs ended.
    assert sum("round " in line for line in captured.err.splitlines()) == 12


@pytest.mark.timeout(60)
def test_tiny_load_run_through_worker_processes(
    tmp_path: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load-1000 for 1 s (the least a run measures) for zmq_green and threads: a server in
    the worker, a client process of its own; every figure there and sane, no timing asserted."""
    # A client that a busy machine holds up is not what this checks.
    monkeypatch.setenv("ZMQ_GREEN_BENCH_LAG_LIMIT", "10")
    out = tmp_path / "out.json"
    argv = ["--cases", "load-1000", "--peers", "zmq_green,threads", "--rounds", "1", "--scale", "0.1"]
    argv += ["--json", str(out)]
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["cases"]["load-1000"]["size"] == 1
    assert [run["peer"] for run in doc["runs"]] == ["zmq_green", "threads"]
    for run in doc["runs"]:
        assert run["failure"] is None, run
        assert run["value"] > 0  # CPU µs per request
        extra = run["extra"]
        assert extra["replies"] == 1000
        assert extra["p99 us"] >= extra["p50 us"] > 0
        assert extra["lag p99 us"] >= 0
    text = capsys.readouterr().out
    tables = [line for line in text.splitlines() if line.startswith("| load-1000 ")]
    assert len(tables) == 2, text  # the main table's row, and the load table's
    assert "CPU vs threads" in text


def _alive(pid: int) -> bool:
    """Whether *pid* is a running process (a zombie, dead and not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self").exists():
        return True  # no /proc: os.kill's answer stands
    try:
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.timeout(10)
def test_contenders_spin_until_the_block_ends_however_it_ends() -> None:
    with pytest.raises(KeyboardInterrupt), contenders(2) as pids:
        assert len(pids) == 2
        assert all(_alive(pid) for pid in pids)
        raise KeyboardInterrupt
    assert not any(_alive(pid) for pid in pids)
    with contenders(0) as none:
        assert none == []


@pytest.mark.timeout(20)
def test_a_contender_ends_by_itself_when_the_bench_is_gone() -> None:
    # A bench killed outright runs no finally: its contender must see it gone and stop.
    code = (
        "import os\n"
        "from zmq_green.bench.runner import contenders\n"
        "print(contenders(1).__enter__()[0], flush=True)\n"
        "os._exit(0)\n"
    )
    pid = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=10).stdout)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("interrupted", [False, True])
def test_contend_runs_beside_every_measurement_and_never_outlives_the_bench(
    interrupted: bool, monkeypatch: Any, capsys: Any
) -> None:
    import zmq_green.bench as bench

    started: list[int] = []
    alive_while_measuring: list[bool] = []
    real_contenders, real_run_all = bench.contenders, bench.run_all

    @contextmanager
    def recorded(n: int) -> Iterator[list[int]]:
        with real_contenders(n) as pids:
            started.extend(pids)
            yield pids

    def run_all(opts: Any, progress: Any) -> list[Run]:
        alive_while_measuring.extend(_alive(pid) for pid in started)
        if interrupted:
            raise KeyboardInterrupt
        runs: list[Run] = real_run_all(opts, progress)
        alive_while_measuring.extend(_alive(pid) for pid in started)
        return runs

    monkeypatch.setattr(bench, "contenders", recorded)
    monkeypatch.setattr(bench, "run_all", run_all)
    argv = ["--cases", "stream-inproc", "--peers", "zmq_green", "--scale", "0.001", "--contend", "1"]
    if interrupted:
        with pytest.raises(KeyboardInterrupt):
            main(argv)
    else:
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "under contention: 1 CPU-bound process beside every run (--contend 1)" in out.splitlines()[0]
    assert len(started) == 1
    assert alive_while_measuring and all(alive_while_measuring)
    assert not _alive(started[0])


@pytest.mark.timeout(60)
def test_a_hung_worker_is_killed_and_reported_as_timeout() -> None:
    # pyzmq's zmq.green runs tornado's IOLoop, which blocks the gevent hub: the client never runs.
    pytest.importorskip("tornado")
    run = run_one("zmqstream", "zmq.green", 10, timeout=3.0)
    assert run.failure == "timeout"
    assert run.value is None
    assert 3.0 <= run.seconds < 30.0


@pytest.mark.timeout(10)
def test_notes_show_blocking_pyzmqs_cpu_per_round_trip_beside_zmq_greens() -> None:
    runs = [
        Run("reqrep-tcp", "zmq_green", 0, value=16000.0, extra={"CPU us/rt": 90.0}),
        Run("reqrep-tcp", "zmq_green", 1, value=15000.0, extra={"CPU us/rt": 100.0}),
        Run("reqrep-tcp", "threads", 0, value=15000.0, extra={"CPU us/rt": 60.0}),
        Run("reqrep-tcp", "zmq.green", 0, value=9000.0, extra={"CPU us/rt": 150.0}),
    ]
    rows = _cells(table(["reqrep-tcp"], ["zmq_green", "zmq.green", "threads"], runs))
    assert rows[2][-1] == "CPU us/rt 95 (threads 60)"
    # Without a threads figure, ours alone.
    rows = _cells(table(["reqrep-tcp"], ["zmq_green", "zmq.green"], runs[:2] + runs[3:]))
    assert rows[2][-1] == "CPU us/rt 95"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("peer", ["zmq_green", "threads", "asyncio"])
def test_reqrep_reports_the_cpu_of_each_round_trip(peer: str) -> None:
    run = run_one("reqrep-tcp", peer, 200, timeout=50.0)
    assert run.failure is None, run.detail
    assert run.value is not None and run.value > 0
    # Both ends do work in every round trip, whatever the clock's resolution.
    assert run.extra["CPU us/rt"] > 0
