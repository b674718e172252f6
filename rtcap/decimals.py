"""Exact decimal sums of exchange amounts, and the one canonical text of an amount.

Exchanges send sizes as decimal strings (``"19.947"``); the codecs carry them as the nearest
float. Adding those floats drifts (``165.58510000000055`` where the prints sum to ``165.5851``),
so every running sum of amounts goes through :func:`add`: it adds, then rounds to the most
decimal places any amount of that sum had. Each step then lands on the float nearest the exact
decimal sum, so sums never drift however many prints they fold. (That holds while a sum
needs at most the 15 significant digits a float holds: 10 million at 8 decimal places, a
billion at 6. Past that no float holds the exact sum, and the sum is within an ulp of it.)
Whole amounts (contract counts) stay ``int`` and add as integers.
"""

from __future__ import annotations

_PLACES: dict[float, int] = {}
_PLACES_CACHED = 4096


def places_of(amount: int | float) -> int:
    """Decimal places of ``amount`` as the exchange wrote it: ``0.25`` → 2, ``1e-05`` → 5,
    ``3.0`` and ints → 0 (the shortest text that reads back as the same float)."""
    if type(amount) is int:
        return 0
    places = _PLACES.get(amount)
    if places is None:
        text = repr(float(amount))
        mantissa, _, exponent = text.partition("e")
        fraction = mantissa.partition(".")[2].rstrip("0")
        places = max(0, len(fraction) - (int(exponent) if exponent else 0))
        if len(_PLACES) < _PLACES_CACHED:
            _PLACES[amount] = places
    return places


def add(total: int | float, amount: int | float, places: int) -> int | float:
    """``total + amount`` exactly, where neither has more than ``places`` decimal places."""
    if type(total) is int and type(amount) is int:
        return total + amount
    return round(total + amount, places)


def format_amount(amount: int | float) -> str:
    """The canonical text of an amount or a price, as every command prints it: whole amounts
    without a fraction (``1`` whether it is ``1`` or ``1.0``), others as the shortest text of the
    float, which is the exchange's own decimal (``21055.75``, ``0.25``), never rounded."""
    if type(amount) is not int and float(amount).is_integer():
        return str(int(amount))
    return repr(amount)
