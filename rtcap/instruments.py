"""The one registry of instruments: trader symbols, ProjectX gateway roots, contract ids and
``symbolId``s, tick sizes and values, listing cycles and trading sessions.

Every place that names an instrument asks this module: the ProjectX codec (contract id →
symbol), the feeds (symbol → the root a ``Contract/search`` answer must carry), the gateway and
the simulator (what they serve), the SQL views and the suite. A capture of a real gateway also
records the gateway's own answer (``id``, ``name``, ``symbolId``); :class:`ContractNames` puts
that first and this table second, so products the table lacks still replay under their names.

CME futures bucket their days (and 4hr grid) from their session open in America/Chicago;
everything else defaults to UTC midnight. Contract ids follow ``CON.F.US.<ROOT>.<month><yy>``
and payloads carry ``F.US.<ROOT>``; the gateway's roots often differ from the symbol traders
type (ES → ``EP``, NQ → ``ENQ``, CL → ``CLE``, ZN → ``TYA``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from rtcap.timeutil import NS, ns_to_datetime

MONTH_CODES = "FGHJKMNQUVXZ"
QUARTERLY = "HMUZ"
ALL_MONTHS = MONTH_CODES
CME_TIMEZONE = "America/Chicago"
CME_SESSION_START = "17:00"


@functools.lru_cache(maxsize=256)
def _decimals_of_tick(tick_size: float) -> int:
    exponent = Decimal(repr(tick_size)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """Static facts about one futures product."""

    symbol: str  # what traders type: MNQ, ES
    root: str  # gateway root in ids: MNQ, EP
    description: str
    sector: str
    tick_size: float
    tick_value: float
    base_price: float  # where the simulator starts
    months: str = QUARTERLY  # listed contract months (CME month codes)
    # Trading stops this many months before the contract month (energy: the month before).
    expires_months_before: int = 0
    roll_day: int = 12  # the front contract rolls on this day of its last trading month
    roll_rule: str = "day"  # "equity": CME's equity index roll date (see roll_date)
    session_start: str = CME_SESSION_START  # America/Chicago: the trading day starts here

    @property
    def name(self) -> str:
        return self.symbol

    @property
    def timezone(self) -> str:
        return CME_TIMEZONE

    @property
    def decimals(self) -> int:
        """Decimal places of a price on this product's tick grid (0.25 → 2, 0.0000005 → 7)."""
        return _decimals_of_tick(self.tick_size)

    def price(self, ticks: int) -> float:
        """The price ``ticks`` ticks above zero, without float noise (70.13, not 70.130000001)."""
        return round(ticks * self.tick_size, self.decimals)

    def keep_in_range(self, ticks: int) -> int:
        """``ticks`` reflected into the simulator's range (a quarter to four times the base
        price), so a long random walk on a coarse tick grid never goes negative."""
        base = round(self.base_price / self.tick_size)
        low, high = base // 4, base * 4
        if ticks < low:
            return min(2 * low - ticks, high)
        if ticks > high:
            return max(2 * high - ticks, low)
        return ticks

    def trading_day(self, at_ns: int) -> date:
        """The trading day ``at_ns`` belongs to: a session that starts in the evening (17:00
        Chicago) opens the next calendar day's trading day."""
        moment = ns_to_datetime(at_ns, CME_TIMEZONE)
        start = time.fromisoformat(self.session_start)
        day = moment.date()
        if start.hour >= 12 and moment.time() >= start:
            day += timedelta(days=1)
        return day

    def session_start_ns(self, day: date) -> int:
        """When trading day ``day`` opens (the evening before, for evening sessions)."""
        start = time.fromisoformat(self.session_start)
        opens_on = day - timedelta(days=1) if start.hour >= 12 else day
        moment = datetime.combine(opens_on, start, tzinfo=ZoneInfo(CME_TIMEZONE))
        return int(moment.timestamp()) * NS

    def roll_date(self, code: str, year: int) -> date:
        """The first trading day on which the next listed contract is the front one, for the
        contract of month ``code`` in ``year``. Equity index futures roll eight days before
        they expire on the third Friday of their month (CME's roll date, a Thursday); the
        others roll on ``roll_day`` of their last trading month."""
        month = MONTH_CODES.index(code) + 1
        if self.roll_rule == "equity":
            first = date(year, month, 1)
            third_friday = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
            return third_friday - timedelta(days=8)
        last_index = month - 1 - self.expires_months_before
        return date(year + last_index // 12, last_index % 12 + 1, self.roll_day)

    def _listed(self, from_day: date) -> Iterator[tuple[str, int]]:
        """(month code, year) of the listed contracts from ``from_day``'s month on."""
        for ahead in range(0, 25):
            index = from_day.month - 1 + ahead
            year, month = from_day.year + index // 12, index % 12 + 1
            if MONTH_CODES[month - 1] in self.months:
                yield MONTH_CODES[month - 1], year

    def front(self, at_ns: int) -> tuple[str, int]:
        """(month code, year) of the front contract at ``at_ns``: the first listed month whose
        roll date is after the trading day of ``at_ns``."""
        day = self.trading_day(at_ns)
        for code, year in self._listed(day):
            if self.roll_date(code, year) > day:
                return code, year
        raise AssertionError(f"{self.symbol} lists no month")  # every spec lists some

    def contract_id(self, at_ns: int) -> str:
        """Front contract id at ``at_ns`` (``CON.F.US.<ROOT>.<month><yy>``)."""
        code, year = self.front(at_ns)
        return f"CON.F.US.{self.root}.{code}{year % 100:02d}"

    def next_roll_ns(self, at_ns: int) -> int:
        """When the front contract at ``at_ns`` stops being the front one: the session open
        of its roll date."""
        code, year = self.front(at_ns)
        return self.session_start_ns(self.roll_date(code, year))

    @property
    def symbol_id(self) -> str:
        """The ``F.US.<ROOT>`` id that gateway payloads carry."""
        return f"F.US.{self.root}"


def _spec(
    symbol: str,
    root: str,
    description: str,
    sector: str,
    tick: float,
    value: float,
    base: float,
    **more: Any,
) -> InstrumentSpec:
    if sector == "equity":
        more.setdefault("roll_rule", "equity")
    return InstrumentSpec(symbol, root, description, sector, tick, value, base, **more)


_ENERGY = {"months": ALL_MONTHS, "expires_months_before": 1, "roll_day": 15}
_AGS = {"session_start": "19:00"}

CME_FUTURES: dict[str, InstrumentSpec] = {
    spec.symbol: spec
    for spec in (
        # equity index
        _spec("ES", "EP", "E-mini S&P 500", "equity", 0.25, 12.5, 6000.0),
        _spec("MES", "MES", "Micro E-mini S&P 500", "equity", 0.25, 1.25, 6000.0),
        _spec("NQ", "ENQ", "E-mini Nasdaq-100", "equity", 0.25, 5.0, 21000.0),
        _spec("MNQ", "MNQ", "Micro E-mini Nasdaq-100", "equity", 0.25, 0.5, 21000.0),
        _spec("YM", "YM", "E-mini Dow", "equity", 1.0, 5.0, 44000.0),
        _spec("MYM", "MYM", "Micro E-mini Dow", "equity", 1.0, 0.5, 44000.0),
        _spec("RTY", "RTY", "E-mini Russell 2000", "equity", 0.1, 5.0, 2300.0),
        _spec("M2K", "M2K", "Micro E-mini Russell 2000", "equity", 0.1, 0.5, 2300.0),
        _spec("NKD", "NKD", "Nikkei 225 (USD)", "equity", 5.0, 25.0, 38000.0),
        # energy
        _spec("CL", "CLE", "Crude Oil", "energy", 0.01, 10.0, 70.0, **_ENERGY),
        _spec("MCL", "MCLE", "Micro Crude Oil", "energy", 0.01, 1.0, 70.0, **_ENERGY),
        _spec("QM", "NQM", "E-mini Crude Oil", "energy", 0.025, 12.5, 70.0, **_ENERGY),
        _spec("NG", "NGE", "Natural Gas", "energy", 0.001, 10.0, 3.0, **_ENERGY),
        _spec("MNG", "MNG", "Micro Natural Gas", "energy", 0.001, 1.0, 3.0, **_ENERGY),
        _spec("QG", "NQG", "E-mini Natural Gas", "energy", 0.005, 12.5, 3.0, **_ENERGY),
        _spec("HO", "HOE", "NY Harbor ULSD", "energy", 0.0001, 4.2, 2.3, **_ENERGY),
        _spec("RB", "RBE", "RBOB Gasoline", "energy", 0.0001, 4.2, 2.1, **_ENERGY),
        # metals
        _spec("GC", "GCE", "Gold", "metals", 0.1, 10.0, 2600.0, months="GJMQVZ"),
        _spec("MGC", "MGC", "Micro Gold", "metals", 0.1, 1.0, 2600.0, months="GJMQVZ"),
        _spec("SI", "SIE", "Silver", "metals", 0.005, 25.0, 31.0, months="HKNUZ"),
        _spec("SIL", "SIL", "Micro Silver", "metals", 0.005, 5.0, 31.0, months="HKNUZ"),
        _spec("HG", "CPE", "Copper", "metals", 0.0005, 12.5, 4.2, months="HKNUZ"),
        _spec("MHG", "MHG", "Micro Copper", "metals", 0.0005, 1.25, 4.2, months="HKNUZ"),
        _spec("PL", "PLE", "Platinum", "metals", 0.1, 5.0, 950.0, months="FJNV"),
        # currencies
        _spec("6E", "EU6", "Euro FX", "currencies", 0.00005, 6.25, 1.08),
        _spec("M6E", "M6E", "Micro Euro FX", "currencies", 0.0001, 1.25, 1.08),
        _spec("6B", "BP6", "British Pound", "currencies", 0.0001, 6.25, 1.27),
        _spec("M6B", "M6B", "Micro British Pound", "currencies", 0.0001, 0.625, 1.27),
        _spec("6J", "JY6", "Japanese Yen", "currencies", 0.0000005, 6.25, 0.0065),
        _spec("6A", "DA6", "Australian Dollar", "currencies", 0.00005, 5.0, 0.65),
        _spec("M6A", "M6A", "Micro Australian Dollar", "currencies", 0.0001, 1.0, 0.65),
        _spec("6C", "CA6", "Canadian Dollar", "currencies", 0.00005, 5.0, 0.72),
        _spec("6S", "SF6", "Swiss Franc", "currencies", 0.00005, 6.25, 1.13),
        _spec("6N", "NE6", "New Zealand Dollar", "currencies", 0.00005, 5.0, 0.59),
        _spec("6M", "MX6", "Mexican Peso", "currencies", 0.00001, 5.0, 0.05),
        _spec("E7", "EEU", "E-mini Euro FX", "currencies", 0.0001, 6.25, 1.08),
        # rates
        _spec("ZT", "TUA", "2-Year T-Note", "rates", 0.00390625, 7.8125, 103.0),
        _spec("ZF", "FVA", "5-Year T-Note", "rates", 0.0078125, 7.8125, 107.0),
        _spec("ZN", "TYA", "10-Year T-Note", "rates", 0.015625, 15.625, 110.0),
        _spec("TN", "TNA", "Ultra 10-Year T-Note", "rates", 0.015625, 15.625, 113.0),
        _spec("ZB", "USA", "30-Year T-Bond", "rates", 0.03125, 31.25, 118.0),
        _spec("UB", "ULA", "Ultra T-Bond", "rates", 0.03125, 31.25, 122.0),
        # agriculture
        _spec("ZC", "ZCE", "Corn", "agriculture", 0.25, 12.5, 430.0, months="HKNUZ", **_AGS),
        _spec("ZS", "ZSE", "Soybeans", "agriculture", 0.25, 12.5, 1000.0, months="FHKNQUX", **_AGS),
        _spec(
            "ZW",
            "ZWA",
            "Chicago SRW Wheat",
            "agriculture",
            0.25,
            12.5,
            550.0,
            months="HKNUZ",
            **_AGS,
        ),
        _spec(
            "ZL", "ZLE", "Soybean Oil", "agriculture", 0.01, 6.0, 42.0, months="FHKNQUVZ", **_AGS
        ),
        _spec(
            "ZM", "ZME", "Soybean Meal", "agriculture", 0.1, 10.0, 300.0, months="FHKNQUVZ", **_AGS
        ),
        _spec(
            "HE",
            "HE",
            "Lean Hogs",
            "agriculture",
            0.00025,
            10.0,
            0.8,
            months="GJKMNQVZ",
            session_start="08:30",
        ),
        _spec(
            "LE",
            "GLE",
            "Live Cattle",
            "agriculture",
            0.00025,
            10.0,
            1.85,
            months="GJMQVZ",
            session_start="08:30",
        ),
    )
}

_BY_ROOT: dict[str, InstrumentSpec] = {spec.root: spec for spec in CME_FUTURES.values()}


def spec_for(symbol: str) -> InstrumentSpec:
    """The spec of a known futures product; ``ValueError`` lists the known ones."""
    spec = CME_FUTURES.get(symbol.upper())
    if spec is None:
        known = ", ".join(CME_FUTURES)
        raise ValueError(f"unknown instrument {symbol!r}: rtcap knows {known}")
    return spec


def spec_of_root(root: str) -> InstrumentSpec | None:
    """The product whose gateway root is ``root`` (``EP`` → ES), if the table has it."""
    return _BY_ROOT.get(root.upper())


def gateway_root(symbol: str) -> str:
    """``ES`` → ``EP``: the root of ``symbol`` in contract ids and ``F.US.*`` symbol ids (a
    symbol the table lacks is taken as its own root)."""
    spec = CME_FUTURES.get(symbol.upper())
    return spec.root if spec is not None else symbol.upper()


def root_of(contract_or_symbol_id: str) -> str:
    """``CON.F.US.EP.Z25`` or ``F.US.EP`` → ``EP``; anything else is returned whole."""
    parts = contract_or_symbol_id.split(".")
    if parts[0] == "CON" and len(parts) >= 5:
        return parts[3]
    if len(parts) >= 3:
        return parts[2]
    return contract_or_symbol_id


def symbol_of(contract_or_symbol_id: str) -> str:
    """The trader symbol of a contract id or ``symbolId`` by the table (``CON.F.US.CLE.Z25`` →
    ``CL``); an unknown root is its own symbol."""
    root = root_of(contract_or_symbol_id).upper()
    spec = _BY_ROOT.get(root)
    return spec.symbol if spec is not None else root


def contract_prefix(symbol: str) -> str | None:
    """``ES`` → ``CON.F.US.EP.``: how every contract id of a known futures symbol begins."""
    spec = CME_FUTURES.get(symbol.upper())
    return None if spec is None else f"CON.F.US.{spec.root}."


def dated_name(contract_id: str) -> str:
    """``CON.F.US.EP.Z26`` → ``ESZ26``: the trader symbol with the contract's month and year,
    the name a contract goes by once it is no longer its symbol's front contract."""
    month = contract_id.rsplit(".", 1)[-1] if contract_id.startswith("CON.") else ""
    return symbol_of(contract_id) + month


def session_of(symbol: str) -> tuple[str, str]:
    """(timezone, session start) in which ``symbol``'s bars align by default."""
    spec = CME_FUTURES.get(symbol.upper())
    if spec is not None:
        return spec.timezone, spec.session_start
    return "UTC", "00:00"


class ContractNames:
    """Contract id (or ``symbolId``) → trader symbol: what the gateway itself answered first
    (recorded in the capture), the table second. Answers are remembered: the codec asks once
    per contract."""

    def __init__(self, recorded: Mapping[str, str] | None = None) -> None:
        self._names: dict[str, str] = {}
        for contract, symbol in (recorded or {}).items():
            self._names[contract] = symbol.upper()
            root = root_of(contract)
            if root != contract:  # payloads name the contract by F.US.<ROOT> too
                self._names.setdefault(f"F.US.{root}", symbol.upper())

    @property
    def known(self) -> dict[str, str]:
        """The answers so far (a codec looks contracts up here directly; :meth:`roll` changes
        them in place, so every codec holding this dict follows a roll)."""
        return self._names

    def __call__(self, contract_or_symbol_id: str) -> str:
        name = self._names.get(contract_or_symbol_id)
        if name is None:
            name = self._names[contract_or_symbol_id] = symbol_of(contract_or_symbol_id)
        return name

    def roll(self, symbol: str, old: str, new: str) -> None:
        """``symbol``'s front contract is ``new`` from now on: ``old`` goes by its dated name
        (``MNQZ26``), so its last frames never mix into ``symbol``'s bars."""
        self._names[new] = symbol.upper()
        if old != new:
            self._names[old] = dated_name(old)


def sql_symbol_case(column: str) -> str:
    """A SQL expression naming the trader symbol of the contract id in ``column`` (by the
    table), for engines that read captures without rtcap's codecs."""
    root = f"split_part({column}, '.', 4)"
    whens = " ".join(
        f"WHEN '{spec.root}' THEN '{spec.symbol}'"
        for spec in CME_FUTURES.values()
        if spec.root != spec.symbol
    )
    return f"CASE {root} {whens} ELSE coalesce(nullif({root}, ''), {column}) END"
