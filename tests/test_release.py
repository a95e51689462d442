"""What a release ships: ``python -m build`` makes an sdist and a wheel that hold
zmq_green and nothing else, ``twine check`` passes them, and the wheel installs into a
fresh virtualenv with a working ``zmq-green`` command. The version is written once.

The build runs on a copy of the files git tracks, as a clean checkout would have them,
so nothing left in the working tree (caches, builds, scratch files) can hide a stray
file or a missing one.
"""

from __future__ import annotations

import re
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import run_online as run

from zmq_green._version import __version__, release

ROOT = Path(__file__).resolve().parent.parent


def tracked(prefix: str = "") -> set[str]:
    """The files git tracks (under *prefix*), that exist in the working tree."""
    out = run(["git", "ls-files", "-z", "--", prefix or "."], ROOT, 60).stdout
    return {name for name in out.split("\0") if name and (ROOT / name).is_file()}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder where ``python -m build`` put the sdist and the wheel."""
    src = tmp_path_factory.mktemp("checkout")
    for name in tracked():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(src)], src, 300)
    return out


def only(folder: Path, pattern: str) -> Path:
    """The one file of *folder* that matches *pattern*."""
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


@pytest.mark.timeout(360)
def test_the_wheel_holds_the_package_and_its_metadata_only(dist: Path) -> None:
    wheel = only(dist, f"zmq_green-{__version__}-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    info = f"zmq_green-{__version__}.dist-info/"
    package = {name for name in names if not name.startswith(info)}
    # Every module of the package and its py.typed marker; no tests, caches or other files.
    expected = {name for name in tracked("zmq_green") if name.endswith((".py", "py.typed"))}
    assert package == expected
    assert "zmq_green/py.typed" in package
    assert {name.split("/")[0] for name in names} == {"zmq_green", info.rstrip("/")}
    metadata = zipfile.ZipFile(wheel).read(f"{info}METADATA").decode()
    assert f"\nVersion: {__version__}\n" in metadata
    assert "\nRequires-Python: >=3.9\n" in metadata
    for requirement in ("pyzmq>=26.4.0", "gevent>=23.7.0"):
        assert f"\nRequires-Dist: {requirement}\n" in metadata
    entry_points = zipfile.ZipFile(wheel).read(f"{info}entry_points.txt").decode()
    assert re.search(r"^zmq-green = zmq_green.__main__:main$", entry_points, re.MULTILINE)
    assert any(name.startswith(info) and name.endswith("LICENSE") for name in names)


@pytest.mark.timeout(360)
def test_the_sdist_holds_tracked_files_and_generated_metadata_only(dist: Path) -> None:
    sdist = only(dist, f"zmq_green-{__version__}.tar.gz")
    top = f"zmq_green-{__version__}/"
    with tarfile.open(sdist) as archive:
        files = {member.name[len(top) :] for member in archive.getmembers() if member.isfile()}
    generated = {name for name in files if name == "PKG-INFO" or name.startswith("zmq_green.egg-info/")}
    assert "PKG-INFO" in generated
    assert files - generated <= tracked()
    assert {"setup.cfg", "pyproject.toml", "README.md", "LICENSE", "zmq_green/py.typed"} <= files
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in files)


@pytest.mark.timeout(360)
def test_twine_check_passes(dist: Path) -> None:
    proc = run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))], dist, 120
    )
    assert proc.stdout.count("PASSED") == 2, proc.stdout


@pytest.mark.timeout(420)
def test_the_wheel_installs_into_a_fresh_venv_with_its_command(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, 120)
    wheel = only(dist, "*.whl")
    run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(wheel),
        ],
        tmp_path,
        300,
    )

    version = run([str(venv / "bin" / "zmq-green"), "--version"], tmp_path, 60).stdout
    assert version == f"zmq_green {__version__}\n"
    probe = (
        "import importlib.util, pathlib, zmq_green\n"
        "package = pathlib.Path(zmq_green.__file__).parent\n"
        "print(package)\n"
        "print((package / 'py.typed').is_file())\n"
        "print(importlib.util.find_spec('tests') is None)\n"
    )
    package, typed, no_tests = run([str(venv / "bin" / "python"), "-c", probe], tmp_path, 60).stdout.split()
    assert package.startswith(str(venv))
    assert (typed, no_tests) == ("True", "True")


def test_the_version_is_written_in_one_place() -> None:
    assert re.search(
        r'^__version__ = "[^"]+"$', (ROOT / "zmq_green" / "_version.py").read_text(), re.MULTILINE
    )
    assert "version = attr: zmq_green._version.__version__" in (ROOT / "setup.cfg").read_text()
    others = [
        ROOT / "setup.py",
        ROOT / "pyproject.toml",
        ROOT / "docs" / "conf.py",
        *ROOT.glob("zmq_green/**/*.py"),
    ]
    for path in others:
        if path.name != "_version.py" or path.parent.name != "zmq_green":
            text = path.read_text()
            assert __version__ not in re.findall(r"\d+\.\d+[\w.]*", text), path
            assert not re.search(r"^\s*(__version__|version)\s*=\s*['\"]", text, re.MULTILINE), path


def changelog_versions() -> list[str]:
    """The versions of CHANGELOG.md's ``## [...]`` headings, newest first."""
    return re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)


def test_the_version_matches_the_changelog() -> None:
    newest, *released = changelog_versions()
    if newest == "Unreleased":
        # The coming release: its version is newer than every one released.
        assert all(release(__version__) > release(version) for version in released), released
    else:
        assert newest == __version__
