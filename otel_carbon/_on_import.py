"""Patch a module right after it is imported, or now if it already is: one meta path finder
for every seam of the package (the hand-offs of :mod:`otel_carbon.offload`, the asyncio step
hook of :mod:`otel_carbon.task_timing`), so that nothing is imported only to be patched.

The module is found by the standard path finder and loaded unchanged; the patch runs once
its code has run. A patch that fails is logged once and never breaks the import (nor the
caller, when the module was already there).
"""

from __future__ import annotations

import importlib.machinery
import logging
import sys
import threading
from typing import Any, Callable, Dict, List

from otel_carbon._log import warn_once

_logger = logging.getLogger("otel_carbon")

Patch = Callable[[Any], None]

_waiting: Dict[str, List[Patch]] = {}  # module name -> patches to run once it is imported
_lock = threading.Lock()


def when_imported(name: str, patch: Patch) -> None:
    """Call ``patch(module)`` for module ``name``: now if it is imported, else right after its
    import (if ever)."""
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            _waiting.setdefault(name, []).append(patch)
            if not any(isinstance(f, _Finder) for f in sys.meta_path):
                sys.meta_path.insert(0, _Finder())
            return
    _run(name, patch, module)


def _run(name: str, patch: Patch, module: Any) -> None:
    try:
        patch(module)
    except Exception as exc:  # noqa: BLE001 - a seam left unpatched, the application unharmed
        warn_once(_logger, f"on-import:{name}:{patch!r}", "otel_carbon: could not patch %s: %r", name, exc)


class _Finder:
    """Runs the waiting patches of a module right after it is imported."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in _waiting:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            with _lock:
                patches = _waiting.pop(name, [])
            for patch in patches:
                _run(name, patch, module)

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec
