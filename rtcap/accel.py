"""Which compiled fast paths this process uses: ``rtcap._speedups`` when it was built and
``RTCAP_PURE`` is unset (or ``0``), else none, and every caller takes its pure-Python path.

The pure-Python modules are the reference: a compiled path must give byte-identical results
and hand anything it does not fully understand back to them (tests check both ways).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def _pure_requested() -> bool:
    return os.environ.get("RTCAP_PURE", "0") not in ("", "0")


def _load() -> ModuleType | None:
    if _pure_requested():
        return None
    try:
        return importlib.import_module("rtcap._speedups")
    except ImportError:
        return None


speedups: ModuleType | None = _load()


def describe() -> str:
    """One line for ``--version``-style reports: which kernel this process runs."""
    if speedups is not None:
        return "compiled fast paths (rtcap._speedups)"
    if _pure_requested():
        return "pure Python (RTCAP_PURE is set)"
    return "pure Python (rtcap._speedups was not built)"
