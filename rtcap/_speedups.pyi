"""Types of the compiled fast paths (``rtcap/_speedups.c``); each has a pure-Python reference."""

from collections.abc import Callable, Collection, Mapping
from typing import Any

def projectx_trades(
    payload: bytes, symbols: Mapping[str, str], /
) -> tuple[str, list[tuple[float, int | float, str | None, int | None]]] | None: ...
def projectx_decode(
    symbols: Mapping[str, str], general: Callable[[Any, Any], None], frame: Any, sink: Any, /
) -> None: ...
def projectx_types(
    quote: type, depth_level: type, depth_update: type, depth_sides: Mapping[int, str], /
) -> None: ...
def frames_from_arrays(
    cls: type, start: int, length: int, specs: list[tuple[Any, ...]], /
) -> list[Any] | None: ...
def frame_columns(
    frames: list[Any], cls: type, specs: list[tuple[str, int, bool]], /
) -> tuple[Any, ...] | None: ...
def apply_levels(
    bids: dict[float, float],
    asks: dict[float, float],
    bid_ns: dict[float, int],
    ask_ns: dict[float, int],
    bid_prices: list[float],
    ask_prices: list[float],
    levels: Any,
    ns: int | None,
    changed: list[tuple[str, float, float]] | None,
    sides: Mapping[int, str] | None,
    /,
) -> int: ...

class TradeFold:
    def __init__(
        self,
        fallback: Callable[..., None],
        many: bool,
        instruments: dict[str, Any],
        wanted: Collection[Any],
        refused: tuple[Any, ...],
        state_cls: type,
        builder_cls: type,
    ) -> None: ...
    def __call__(self, *args: Any) -> None: ...

def render_rows(
    order: Any,
    count: int,
    shape: tuple[Any, ...],
    payload: tuple[Any, ...],
    programs: list[list[tuple[Any, ...]]],
    specs: list[tuple[Any, ...]],
    /,
) -> tuple[bytes, Any] | None: ...
