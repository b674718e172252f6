"""What the kernel knows about instruments: sessions, ticks and ProjectX contract naming.

CME futures bucket their days (and 4hr grid) from the 17:00 America/Chicago session open;
everything else defaults to UTC midnight. Contract ids follow ``CON.F.US.<ROOT>.<month><yy>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtcap.timeutil import ns_to_datetime

MONTH_CODES = "FGHJKMNQUVXZ"
QUARTERLY = (3, 6, 9, 12)  # H M U Z


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """Static facts about one futures product."""

    symbol: str  # what traders type: MNQ, ES
    root: str  # gateway root in ids: MNQ, EP
    name: str
    description: str
    tick_size: float
    tick_value: float
    base_price: float  # where the simulator starts

    def contract_id(self, at_ns: int) -> str:
        """Front quarterly contract id at ``at_ns`` (rolls in the expiry month)."""
        moment = ns_to_datetime(at_ns, "America/Chicago")
        year, month = moment.year, moment.month
        for quarter in QUARTERLY:
            if month < quarter or (month == quarter and moment.day < 12):
                code = MONTH_CODES[quarter - 1]
                return f"CON.F.US.{self.root}.{code}{year % 100:02d}"
        return f"CON.F.US.{self.root}.H{(year + 1) % 100:02d}"

    @property
    def symbol_id(self) -> str:
        """The ``F.US.<ROOT>`` id that gateway payloads carry."""
        return f"F.US.{self.root}"


CME_FUTURES: dict[str, InstrumentSpec] = {
    spec.symbol: spec
    for spec in (
        InstrumentSpec("MNQ", "MNQ", "MNQ", "Micro E-mini Nasdaq-100", 0.25, 0.5, 21000.0),
        InstrumentSpec("NQ", "ENQ", "NQ", "E-mini Nasdaq-100", 0.25, 5.0, 21000.0),
        InstrumentSpec("ES", "EP", "ES", "E-mini S&P 500", 0.25, 12.5, 6000.0),
        InstrumentSpec("MES", "MES", "MES", "Micro E-mini S&P 500", 0.25, 1.25, 6000.0),
        InstrumentSpec("YM", "YM", "YM", "E-mini Dow", 1.0, 5.0, 44000.0),
        InstrumentSpec("MYM", "MYM", "MYM", "Micro E-mini Dow", 1.0, 0.5, 44000.0),
        InstrumentSpec("RTY", "RTY", "RTY", "E-mini Russell 2000", 0.1, 5.0, 2300.0),
        InstrumentSpec("M2K", "M2K", "M2K", "Micro E-mini Russell 2000", 0.1, 0.5, 2300.0),
        InstrumentSpec("CL", "CLE", "CL", "Crude Oil", 0.01, 10.0, 70.0),
        InstrumentSpec("GC", "GCE", "GC", "Gold", 0.1, 10.0, 2600.0),
    )
}

CME_TIMEZONE = "America/Chicago"
CME_SESSION_START = "17:00"


def spec_for(symbol: str) -> InstrumentSpec:
    """The spec of a known futures product; ``ValueError`` lists the known ones."""
    spec = CME_FUTURES.get(symbol.upper())
    if spec is None:
        known = ", ".join(CME_FUTURES)
        raise ValueError(f"unknown instrument {symbol!r}: the simulator knows {known}")
    return spec


def default_session(symbol: str) -> tuple[str, str]:
    """(timezone, session start) in which ``symbol``'s bars align by default."""
    if symbol.upper() in CME_FUTURES:
        return CME_TIMEZONE, CME_SESSION_START
    return "UTC", "00:00"
