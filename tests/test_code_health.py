"""The package type-checks (mypy --strict), lints and is formatted (ruff) clean, as configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=280
    )


@pytest.mark.timeout(300)
def test_mypy_strict_is_clean_on_the_package() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


@pytest.mark.timeout(120)
def test_ruff_is_clean_on_package_tests_and_examples() -> None:
    result = _run("ruff", "check", "zmq_green", "tests", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(120)
def test_ruff_format_leaves_package_tests_and_examples_unchanged() -> None:
    result = _run("ruff", "format", "--check", "zmq_green", "tests", "examples")
    assert result.returncode == 0, result.stdout + result.stderr
