"""Make code that does ``import zmq`` green.

Most ZeroMQ code a gevent program runs is not its own: libraries do ``import zmq``
(or ``import zmq.green``) and would block the hub. :func:`patch` puts zmq_green's
pieces in place on the real :mod:`zmq` module, so that such code gets green
sockets without being changed::

    import zmq_green.monkey
    zmq_green.monkey.patch()   # before the library makes its sockets

    import some_library        # its zmq.Context(), zmq.Poller(), zmq.proxy()... are green

or, for a whole script, ``python -m zmq_green.monkey script.py args...`` (combine
with gevent's own patching as ``python -m gevent.monkey --module zmq_green.monkey
script.py args...``).

What changes
------------
* ``zmq.Context``, ``zmq.SyncContext``, ``zmq.Poller``, ``zmq.select``,
  ``zmq.device``, ``zmq.proxy`` and ``zmq.proxy_steerable`` (and the same names on
  ``zmq.sugar``) are zmq_green's, so contexts made from then on make green sockets.
* ``zmq.Context.instance()`` is the green singleton.
* ``import zmq.green`` (and ``zmq.green.poll``, ``zmq.green.eventloop``...) gives
  zmq_green's modules.

What stays
----------
``zmq.Socket`` (and ``zmq.SyncSocket``) stay pyzmq's: the base class of every
socket, green, asyncio or native, so ``isinstance(sock, zmq.Socket)`` holds for all
of them, as in pyzmq. pyzmq's own code looks this name up on :mod:`zmq` each time it
runs, to tell zmq sockets from file descriptors (the pollers of ``zmq.asyncio`` and
``zmq.eventloop.future``) and to make the plain sockets of its plumbing (the
synchronous shadow of each async socket, the ZAP and pipe sockets of its
authenticators); given the green class, it would poll async sockets as bare file
descriptors. So a socket made by naming the class (``zmq.Socket(ctx, type)``,
``ctx.socket(type, socket_class=zmq.Socket)``, ``zmq.Socket.shadow(...)``) is a
plain pyzmq socket; ``ctx.socket(type)`` of a patched context, or
``zmq_green.Socket``, gives a green one.

``zmq.asyncio`` and ``zmq.eventloop.future`` derive their classes from
``zmq.Context`` and ``zmq.Poller`` when first imported: :func:`patch` imports them
first (the latter if tornado is installed), so their contexts, pollers and sockets
stay pyzmq's whatever the order of imports. The modules that define pyzmq's classes
(``zmq.sugar.context``...) keep the originals. Objects made before :func:`patch`
stay what they are: native sockets block the hub, hence :class:`NativeSocketWarning`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import runpy
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import zmq
import zmq.sugar

import zmq_green
from zmq_green.socket import Socket as _GreenSocket

__all__ = ["GREEN_NAMES", "NativeSocketWarning", "is_patched", "main", "patch", "unpatch"]

#: Names that :func:`patch` replaces on ``zmq`` and ``zmq.sugar`` (where present).
#: Not ``Socket``: pyzmq's own code needs its class under that name (see above).
GREEN_NAMES = (
    "Context",
    "SyncContext",
    "Poller",
    "select",
    "device",
    "proxy",
    "proxy_steerable",
)

# pyzmq's modules whose classes derive from zmq.Context or zmq.Poller on import;
# zmq.eventloop.future needs tornado.
_DERIVE_ON_IMPORT = ("zmq.asyncio", "zmq.eventloop.future")

_ALIAS_PREFIX = "zmq.green."
_MISSING = object()

# What patch() replaced, to put back exactly: (namespace, name, previous value or _MISSING).
_saved_attrs: list[tuple[Any, str, Any]] = []
# sys.modules entries "zmq.green" and "zmq.green.*" as they were before patch().
_saved_modules: dict[str, ModuleType] | None = None


class NativeSocketWarning(UserWarning):
    """Native (blocking) zmq sockets existed when :func:`zmq_green.monkey.patch` ran.

    Patching changes what ``zmq`` makes from then on; sockets made before stay
    native, and a blocking call on them blocks every greenlet of the thread.
    """


class _GreenAliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``zmq.green.<name>`` as the module ``zmq_green.<name>`` itself.

    Aliasing lazily keeps :func:`patch` from importing what the program may never
    use, and never loads a second copy of a module under another name.
    """

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_ALIAS_PREFIX):
            return None
        if importlib.util.find_spec(_target(fullname)) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(_target(spec.name))
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the alias's spec on the module: give its own back.
        module.__spec__ = self._specs.pop(_alias(module.__name__))


def _target(alias: str) -> str:
    return "zmq_green." + alias[len(_ALIAS_PREFIX) :]


def _alias(name: str) -> str:
    return _ALIAS_PREFIX + name[len("zmq_green.") :]


_finder = _GreenAliasFinder()


def is_patched() -> bool:
    """Whether :func:`patch` is in force.

    Returns
    -------
    patched : bool
        True between :func:`patch` and :func:`unpatch`.
    """
    return _saved_modules is not None


def patch() -> None:
    """Make ``zmq`` green for all code that imports it.

    Replaces pyzmq's blocking pieces on the :mod:`zmq` module (see the module
    documentation) and makes ``import zmq.green`` give :mod:`zmq_green`. Call it
    before other code makes its sockets; calling it again does nothing.

    Warns
    -----
    NativeSocketWarning
        If sockets of ``zmq.Context.instance()`` made before patching are open:
        they stay native, and block the hub.
    """
    global _saved_modules
    if is_patched():
        return
    _warn_native_sockets()
    for name in _DERIVE_ON_IMPORT:
        try:
            importlib.import_module(name)
        except ImportError:  # without tornado, nobody can import zmq.eventloop.future
            pass
    for namespace in (zmq, zmq.sugar):
        for name in GREEN_NAMES:
            if hasattr(namespace, name):
                _replace(namespace, name, getattr(zmq_green, name))
    _replace(zmq, "green", zmq_green)
    _saved_modules = {name: sys.modules.pop(name) for name in _zmq_green_entries()}
    sys.modules["zmq.green"] = zmq_green
    # Submodules already imported are aliased now; the others when imported.
    for name, module in list(sys.modules.items()):
        if name.startswith("zmq_green."):
            sys.modules[_alias(name)] = module
    sys.meta_path.insert(0, _finder)


def unpatch() -> None:
    """Undo :func:`patch`: ``zmq`` and ``sys.modules`` are as they were before it.

    Objects made while patched stay green. Does nothing if not patched.
    """
    global _saved_modules
    if _saved_modules is None:
        return
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    for name in _zmq_green_entries():
        del sys.modules[name]
    sys.modules.update(_saved_modules)
    _saved_modules = None
    while _saved_attrs:
        namespace, name, value = _saved_attrs.pop()
        if value is _MISSING:
            delattr(namespace, name)
        else:
            setattr(namespace, name, value)


def _zmq_green_entries() -> list[str]:
    """The names ``zmq.green`` and ``zmq.green.*`` in ``sys.modules``."""
    return [name for name in sys.modules if name == "zmq.green" or name.startswith(_ALIAS_PREFIX)]


def _replace(namespace: Any, name: str, value: Any) -> None:
    _saved_attrs.append((namespace, name, namespace.__dict__.get(name, _MISSING)))
    setattr(namespace, name, value)


def _warn_native_sockets() -> None:
    """Warn about open native sockets of the global context.

    Only ``zmq.Context.instance()`` is looked at: it is where library code that does
    not bring its own context makes its sockets, and pyzmq keeps a weak set of each
    context's sockets. Contexts held privately are not reachable without a scan of
    the whole heap (``gc.get_objects()``), whose cost grows with the program and
    which also finds garbage; patching stays cheap and its result deterministic.
    """
    context = zmq.sugar.context.Context._instance
    if context is None or context.closed:
        return
    native = [s for s in list(context._sockets or ()) if not s.closed and not isinstance(s, _GreenSocket)]
    if native:
        warnings.warn(
            f"{len(native)} zmq socket(s) of zmq.Context.instance() were made before "
            "zmq_green.monkey.patch(); they stay native and block every greenlet. "
            "Patch before importing the code that makes them.",
            NativeSocketWarning,
            stacklevel=3,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run a script or module with :func:`patch` in force.

    ``python -m zmq_green.monkey script.py args...`` or
    ``python -m zmq_green.monkey -m module args...``: the script sees
    ``sys.argv`` as ``[script.py, args...]`` and runs as ``__main__``.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``-m zmq_green.monkey``; default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 once the script returns; 2 for a usage error. A script's
        ``sys.exit()`` propagates as usual.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    as_module = bool(args) and args[0] == "-m"
    if as_module:
        args = args[1:]
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: python -m zmq_green.monkey [-m module | script.py] [args...]\n"
            "Run a script (or module) with zmq patched green.",
            file=sys.stderr if not args else sys.stdout,
        )
        return 0 if args else 2
    patch()
    sys.argv[:] = args
    if as_module:
        runpy.run_module(args[0], run_name="__main__", alter_sys=True)
    else:
        # As `python script.py` would: the script's folder, not ours, first on the path.
        sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
        runpy.run_path(args[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    # Run the canonical module's main, so the script's `zmq_green.monkey` sees the patch.
    from zmq_green.monkey import main as _main

    sys.exit(_main())
