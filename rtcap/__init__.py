"""rtcap: record real-time market-data feeds losslessly and replay them through the same
codec, bar builder and event bus that live code uses.

The kernel (this package's modules but ``suite`` and ``cli``) is pure and deterministic; the
shells ``rtcap.capture``, ``rtcap.storage`` and ``rtcap.replay`` do the I/O.
"""

from rtcap.events import Event, EventBus, EventType
from rtcap.models import Bar, Frame
from rtcap.sources import ListSource
from rtcap.suite import InstrumentContext, TradingSuite

__version__ = "0.1.0"

__all__ = [
    "Bar",
    "Event",
    "EventBus",
    "EventType",
    "Frame",
    "InstrumentContext",
    "ListSource",
    "TradingSuite",
    "__version__",
]
