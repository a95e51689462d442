"""Sphinx configuration of zmq_green's documentation.

Build it with ``python -m sphinx -W -n --keep-going -b html docs docs/_build/html``
(``pip install '.[docs]'`` first); ``tests/test_docs.py`` does the same.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from typing import TYPE_CHECKING

from zmq_green import green_version

if TYPE_CHECKING:
    from docutils.nodes import Element
    from sphinx.addnodes import pending_xref
    from sphinx.application import Sphinx
    from sphinx.domains import Domain
    from sphinx.environment import BuildEnvironment

project = "zmq_green"
author = "the zmq_green developers"
copyright = "2026, the zmq_green developers"
version = release = green_version

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
# Links such as RELIABILITY.md#what-the-tests-check-and-how reach headings.
myst_heading_anchors = 3

autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_preprocess_types = True
# Words of numpydoc type specs ("callable", "sequence of str") that are no class names.
napoleon_type_aliases = {"callable": "collections.abc.Callable", "sequence": "collections.abc.Sequence"}


def _locate(name: str, module: str | None, cls: str | None) -> tuple[object, str] | None:
    """The object that *name* names where it is written, and its canonical dotted name.

    Tried as written, then in the current class and module (as the Python domain
    looks up names), in the namespace of ``zmq_green`` (all of zmq's names: a bare
    ``ContextTerminated`` is zmq's error), then among the builtins. The canonical
    name is where the object is defined, so ``zmq_green.Socket`` leads to
    ``zmq_green.socket.Socket``.
    """
    scopes = [
        f"{module}.{cls}." if cls else "",
        f"{module}." if module else "",
        "",
        "zmq_green.",
        "builtins.",
    ]
    for scope in dict.fromkeys(scopes):
        parts = (scope + name).split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj: object = importlib.import_module(".".join(parts[:i]))
            except (ImportError, ValueError):  # ValueError: an empty name, from ".name"
                continue
            canonical = ".".join(parts[:i])
            try:
                for part in parts[i:]:
                    obj = inspect.getattr_static(obj, part)
                    obj = getattr(obj, "__func__", obj)  # classmethod, staticmethod
                    defined = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
                    is_named = inspect.isclass(obj) or inspect.isroutine(obj)
                    canonical = (
                        ".".join(defined) if is_named and None not in defined else f"{canonical}.{part}"
                    )
            except AttributeError:
                break
            return obj, canonical
    return None


def _resolve(app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: Element) -> Element | None:
    """Link a name to where its object is documented.

    Docstrings name objects by the paths users write (``zmq_green.Socket``,
    ``zmq_green.proxy``); the docs document each object once, in the module that
    defines it.
    """
    if node["refdomain"] != "py":
        return None
    found = _locate(node["reftarget"], node.get("py:module"), node.get("py:class"))
    if found is None or found[1] == node["reftarget"]:
        return None
    domain = env.get_domain("py")
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], found[1], node, contnode)


def _external(app: Sphinx, domain: Domain, node: pending_xref) -> bool | None:
    """Leave a name defined outside zmq_green unlinked, without a warning.

    No intersphinx: the build must work without a network (CI reaches only package
    registries), so names documented elsewhere (Python's, pyzmq's, gevent's...) have
    nothing to link to. Nitpicky mode still flags every name of zmq_green that leads
    nowhere.
    """
    if domain is None or domain.name != "py":
        return None
    target = node["reftarget"]
    found = _locate(target, node.get("py:module"), node.get("py:class"))
    if found is not None:
        return True if not found[1].startswith("zmq_green") else None
    # Not importable here (zmq.eventloop needs tornado, which the docs extra leaves out):
    # external if it is under a package other than zmq_green.
    top = target.split(".")[0]
    return True if "." in target and top != "zmq_green" and importlib.util.find_spec(top) else None


# Docstrings that lead nowhere, left as they are until they are fixed where they are:
nitpick_ignore = [
    # zmq_green.auth's module docstring: pyzmq's constant, re-exported (a str: no
    # telling where it was defined).
    ("py:data", "CURVE_ALLOW_ANY"),
    # zmq_green.context's and zmq_green.device's module docstrings name a private module.
    ("py:mod", "zmq_green._native"),
    # zmq_green.eventloop.ioloop's module docstring names a private class.
    ("py:class", "zmq_green.eventloop._waker.Waker"),
    # IOLoop's "Attributes" lists READ, WRITE, ERROR on one line, which documents none.
    ("py:attr", "READ"),
    ("py:attr", "WRITE"),
    ("py:attr", "ERROR"),
    # IOLoop.add_handler's type of fd, and IOLoop.run_sync's "Returns" (a name without a type).
    ("py:class", "object with ``fileno()``"),
    ("py:class", "result"),
]


def setup(app: Sphinx) -> None:
    app.connect("missing-reference", _resolve)
    app.connect("warn-missing-reference", _external)
