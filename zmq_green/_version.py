"""The version of zmq_green (``zmq_green.__version__`` is pyzmq's, as in ``zmq``).

Also the oldest pyzmq and gevent it runs on, checked when this module is imported,
which :mod:`zmq_green` does before any module that needs them: an older release
fails there with an :class:`ImportError` that says what is needed, not later with
an ``AttributeError`` from deep inside a call.
"""

from __future__ import annotations

import re

import gevent
import zmq

__version__ = "0.1.0"

#: The oldest releases zmq_green runs on (setup.cfg's lower bounds; ci/lowest.txt
#: pins them for the test run on the oldest). pyzmq 26.4 is the first whose
#: ``zmq.backend.Socket`` has ``recv_into``; before gevent 23.7, ``monkey.patch_all()``
#: fails beside today's zope.event and zope.interface (DistributionNotFound).
REQUIRED: dict[str, str] = {"pyzmq": "26.4.0", "gevent": "23.7.0"}

_VERSION = re.compile(r"v?(\d+(?:\.\d+)*)(.*)", re.IGNORECASE)
_PRE_RELEASE = re.compile(r"[-_.]?(a|b|c|rc|alpha|beta|pre|preview|dev)", re.IGNORECASE)


def release(version: str) -> tuple[tuple[int, ...], bool]:
    """The release numbers of a version and whether it is final, ordered as pip orders them.

    ``"26.4"`` and ``"26.4.0"`` give the same; ``"26.4.0b1"`` and ``"26.4.0.dev0"``
    come before ``"26.4.0"``; ``"26.4.0.post1"`` and ``"26.4.0+local"`` do not.

    Parameters
    ----------
    version : str
        A version as a package's ``__version__`` spells it.

    Returns
    -------
    tuple
        Its leading numbers without trailing zeros, and False for a pre-release
        or development release; ``((), False)`` if it starts with no number.
    """
    match = _VERSION.match(version.strip())
    if match is None:
        return (), False
    numbers = [int(part) for part in match.group(1).split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers), _PRE_RELEASE.match(match.group(2)) is None


def check_requirements(found: dict[str, str]) -> None:
    """Raise ImportError if a release in *found* is older than :data:`REQUIRED` asks.

    Parameters
    ----------
    found : dict of str to str
        The installed version of each distribution, by its name in :data:`REQUIRED`.

    Raises
    ------
    ImportError
        Naming every distribution that is too old, the version found and the one needed.
    """
    old = [name for name, needed in REQUIRED.items() if release(found[name]) < release(needed)]
    if old:
        found_needed = "; ".join(
            f"{name} {found[name]} is installed, zmq_green {__version__} needs {name}>={REQUIRED[name]}"
            for name in old
        )
        upgrade = " ".join(f"'{name}>={REQUIRED[name]}'" for name in old)
        raise ImportError(f"{found_needed}. Upgrade with: pip install -U {upgrade}")


check_requirements({"pyzmq": zmq.__version__, "gevent": gevent.__version__})
