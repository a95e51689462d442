"""The documentation cannot rot: it builds without a warning, and its code runs.

The site is built as the README says (``python -m sphinx -W -n --keep-going``:
warnings, unresolved cross-references included, are errors), every public module's
page is checked to document what the module defines, and every ```` ```python ````
block of the guides and the README runs in a fresh interpreter. Blocks that need
software the suite does not install are written as ``{code-block} python``.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zmq_green.__main__ import SUBCOMMANDS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PUBLIC = ["socket", "context", "poll", "device", "devices", "tracker", "eventloop", "auth", "monkey"]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def python_blocks(path: Path) -> list[str]:
    """The code of the ```` ```python ```` blocks of the markdown file *path*."""
    return FENCE.findall(path.read_text())


PAGES = [ROOT / "README.md", *sorted((DOCS / "guides").glob("*.md"))]
BLOCKS = [(page, i, code) for page in PAGES for i, code in enumerate(python_blocks(page))]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML site, built from scratch with warnings as errors."""
    out = tmp_path_factory.mktemp("html")
    command = [sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-q", "-b", "html"]
    proc = subprocess.run(
        [*command, str(DOCS), str(out)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    return out


@pytest.mark.timeout(300)
def test_the_site_builds_without_a_warning(site: Path) -> None:
    assert (site / "index.html").exists()
    for guide in ("waiting", "migrating", "frameworks", "examples", "benchmark", "reliability", "cli"):
        assert (site / "guides" / f"{guide}.html").exists(), guide
    # The plot of the benchmark guide is part of the site.
    assert (site / "_images" / "bench-quick.png").stat().st_size > 10_000


def documented_names(module_name: str) -> list[str]:
    """The public names that *module_name* itself defines (not those it re-exports)."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", [])
    return [
        f"{module_name}.{name}"
        for name in names
        if getattr(getattr(module, name), "__module__", None) == module_name
    ]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_module_has_its_api_page(site: Path, name: str) -> None:
    html = (site / "api" / f"{name}.html").read_text()
    modules = [f"zmq_green.{name}"]
    if name == "eventloop":
        modules += ["zmq_green.eventloop.ioloop", "zmq_green.eventloop.zmqstream"]
    for module_name in modules:
        assert f'id="module-{module_name}"' in html, module_name
        names = documented_names(module_name)
        assert names or module_name == "zmq_green.eventloop"
        for dotted in names:
            assert f'id="{dotted}"' in html, dotted


@pytest.mark.timeout(300)
def test_the_namespace_page_documents_what_zmq_green_adds(site: Path) -> None:
    html = (site / "api" / "zmq_green.html").read_text()
    for name in ("green_version", "stats", "reset_stats"):
        assert f'id="zmq_green.{name}"' in html, name


def test_every_guide_with_code_has_a_block_the_suite_runs() -> None:
    runnable = {page.name for page, _, _ in BLOCKS}
    assert {"README.md", "waiting.md", "migrating.md", "frameworks.md", "cli.md"} <= runnable


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    ("page", "index", "code"), BLOCKS, ids=[f"{page.name}-{index}" for page, index, _ in BLOCKS]
)
def test_the_code_in_the_guides_runs(page: Path, index: int, code: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{page.name}, python block {index}:\n{proc.stderr}"


def test_the_cli_guide_names_every_subcommand_and_option() -> None:
    guide = (DOCS / "guides" / "cli.md").read_text()
    bench_help = subprocess.run(
        [sys.executable, "-m", "zmq_green", "bench", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    options = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", bench_help)) - {"--help"}
    assert options, bench_help
    for name in [*SUBCOMMANDS, *options, "--version", "--capture", "zmq_green.monkey"]:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", guide), name


def test_the_readme_links_lead_to_files() -> None:
    readme = (ROOT / "README.md").read_text()
    links = [link for link in re.findall(r"\]\(([^)#\s]+)", readme) if "://" not in link]
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        assert (ROOT / link).exists(), link


def test_the_docs_build_command_is_the_one_the_readme_gives() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "pip install '.[docs]'" in readme
    assert "-m sphinx -W -n --keep-going -b html docs docs/_build/html" in readme
    assert "docs/_build/" in (ROOT / ".gitignore").read_text().splitlines()
