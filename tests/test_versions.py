"""The supported versions of pyzmq and gevent: stated once, checked at import, tested.

The oldest supported releases are setup.cfg's lower bounds, pinned in
``ci/lowest.txt`` and checked by :mod:`zmq_green._version` when zmq_green is
imported. :func:`test_core_tests_pass_on_the_oldest_supported_releases` installs
zmq_green with those pins into a fresh virtualenv and runs the core tests there,
so the README's one test command covers the oldest releases as well as the newest.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_online as run

from zmq_green._version import REQUIRED, __version__, release

ROOT = Path(__file__).resolve().parent.parent
LOWEST = ROOT / "ci" / "lowest.txt"
CORE = [
    "test_socket.py",
    "test_context.py",
    "test_poll.py",
    "test_namespace.py",
    "test_readiness.py",
    "test_wakeups.py",
]


def pins() -> dict[str, str]:
    """The ``name==version`` lines of ci/lowest.txt."""
    lines = (line.split("#")[0].strip() for line in LOWEST.read_text().splitlines())
    return dict(line.split("==") for line in lines if line)


def lower_bounds() -> dict[str, str]:
    """The ``>=`` bound of each of setup.cfg's install_requires."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requires = config["options"]["install_requires"].split()
    return dict(req.split(">=") for req in requires)


def test_the_lower_bounds_are_stated_once_in_three_places_that_agree() -> None:
    assert lower_bounds() == pins() == REQUIRED
    readme = (ROOT / "README.md").read_text()
    for name, version in REQUIRED.items():
        assert f"{name}>={version}" in readme


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("26.3.0", "26.4.0"),
        ("26.4.0b1", "26.4.0"),
        ("26.4.0rc2", "26.4.0"),
        ("26.4.0.dev0", "26.4.0"),
        ("26.4.0", "26.4.1"),
        ("26.9", "26.10"),
        ("9.0", "23.7.0"),
        ("", "0.1"),
        ("unknown", "0.0.1"),
    ],
)
def test_versions_are_ordered_as_pip_orders_them(earlier: str, later: str) -> None:
    assert release(earlier) < release(later)


@pytest.mark.parametrize(("one", "same"), [("26.4", "26.4.0"), ("26.4.0", "v26.4.0.0"), ("24", "24.0.0")])
def test_trailing_zeros_make_no_difference(one: str, same: str) -> None:
    assert release(one) == release(same)


@pytest.mark.parametrize("version", ["26.4.0", "26.4", "26.4.0.post1", "26.4.0+local", "27.0.0", "100"])
def test_the_oldest_supported_pyzmq_and_anything_newer_is_accepted(version: str) -> None:
    assert release(version) >= release(REQUIRED["pyzmq"])


def import_with(**versions: str) -> subprocess.CompletedProcess[str]:
    """``import zmq_green`` in a child interpreter where zmq or gevent claim *versions*."""
    fake = "; ".join(f"{module}.__version__ = {version!r}" for module, version in versions.items())
    return subprocess.run(
        [sys.executable, "-c", f"import gevent, zmq; {fake}; import zmq_green"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("versions", "named", "upgrade"),
    [
        ({"zmq": "26.3.0"}, ["pyzmq 26.3.0 is installed, zmq_green {v} needs pyzmq>=26.4.0"], ["pyzmq"]),
        (
            {"zmq": "26.4.0rc1"},
            ["pyzmq 26.4.0rc1 is installed, zmq_green {v} needs pyzmq>=26.4.0"],
            ["pyzmq"],
        ),
        (
            {"gevent": "22.10.2"},
            ["gevent 22.10.2 is installed, zmq_green {v} needs gevent>=23.7.0"],
            ["gevent"],
        ),
        (
            {"zmq": "25.1.2", "gevent": "1.5.0"},
            [
                "pyzmq 25.1.2 is installed, zmq_green {v} needs pyzmq>=26.4.0",
                "gevent 1.5.0 is installed, zmq_green {v} needs gevent>=23.7.0",
            ],
            ["pyzmq", "gevent"],
        ),
    ],
)
@pytest.mark.timeout(40)
def test_an_old_pyzmq_or_gevent_fails_the_import_naming_what_is_needed(
    versions: dict[str, str], named: list[str], upgrade: list[str]
) -> None:
    proc = import_with(**versions)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: ")
    for phrase in named:
        assert phrase.format(v=__version__) in last
    wanted = " ".join(f"'{name}>={REQUIRED[name]}'" for name in upgrade)
    assert last.endswith(f"Upgrade with: pip install -U {wanted}")


@pytest.mark.timeout(40)
def test_the_oldest_supported_releases_themselves_are_accepted() -> None:
    proc = import_with(zmq=REQUIRED["pyzmq"], gevent=REQUIRED["gevent"])
    assert proc.returncode == 0, proc.stderr


@pytest.mark.timeout(420)
def test_core_tests_pass_on_the_oldest_supported_releases(tmp_path: Path) -> None:
    # A copy of the sources to install from, and the tests in another folder to run
    # them from, so that the child imports the zmq_green installed in its venv.
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    src, here = tmp_path / "src", tmp_path / "run"
    shutil.copytree(ROOT / "zmq_green", src / "zmq_green", ignore=ignore)
    for name in ("setup.cfg", "setup.py", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "tests", here / "tests", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", here / "pyproject.toml")

    venv = tmp_path / "venv"
    python = str(venv / "bin" / "python")
    run([sys.executable, "-m", "venv", str(venv)], here, 120)
    # The core tests need pytest, pytest-timeout, and tornado (test_namespace compares
    # zmq_green.eventloop with pyzmq's). Wheels only for the pinned releases: a build
    # from source would mean these pins do not fit this Python.
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run(
        [
            *pip,
            "--only-binary",
            "pyzmq,gevent",
            "-c",
            str(LOWEST),
            str(src),
            "pytest",
            "pytest-timeout",
            "tornado",
        ],
        here,
        300,
    )

    probe = "import gevent, zmq, zmq_green; print(zmq.__version__, gevent.__version__, zmq_green.__file__)"
    found = run([python, "-c", probe], here, 60).stdout.split()
    assert found[:2] == [pins()["pyzmq"], pins()["gevent"]]
    assert found[2].startswith(str(venv))

    tests = [f"tests/{name}" for name in CORE]
    proc = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], here, 300)
    assert re.search(r"^\d+ passed", proc.stdout.splitlines()[-1]), proc.stdout[-3000:]
