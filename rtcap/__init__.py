"""rtcap: record real-time market-data feeds losslessly and replay them through the same
codec, bar builder and event bus that live code uses.

The kernel (this package's modules but ``suite`` and ``cli``) is pure and deterministic; the
shells ``rtcap.capture``, ``rtcap.storage``, ``rtcap.replay``, ``rtcap.gateway`` and
``rtcap.analysis`` do the I/O.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtcap.analysis.tape import Tape
    from rtcap.analysis.tape import open_tape as open
    from rtcap.events import Event, EventBus, EventType
    from rtcap.models import Bar, Frame
    from rtcap.sources import ListSource
    from rtcap.suite import InstrumentContext, TradingSuite

__version__ = "0.1.0"

# Public names and the module each comes from, imported on first use: the recorder never
# touches the suite, and importing it would load polars before the first frame is journaled.
_EXPORTS = {
    "Bar": "rtcap.models",
    "Event": "rtcap.events",
    "EventBus": "rtcap.events",
    "EventType": "rtcap.events",
    "Frame": "rtcap.models",
    "InstrumentContext": "rtcap.suite",
    "ListSource": "rtcap.sources",
    "TradingSuite": "rtcap.suite",
    "Tape": "rtcap.analysis.tape",
    "open": "rtcap.analysis.tape",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rtcap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), "open_tape" if name == "open" else name)
    globals()[name] = value
    return value


__all__ = [
    "Bar",
    "Event",
    "EventBus",
    "EventType",
    "Frame",
    "InstrumentContext",
    "ListSource",
    "Tape",
    "TradingSuite",
    "__version__",
    "open",
]
