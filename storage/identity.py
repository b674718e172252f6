"""Feed identity: what a capture holds, as (venue, symbol, channel), and over which time.

Two captures that hold the same instrument's same channel from the same venue over overlapping
time recorded the same messages: read together they would count every trade twice. Captures of
different symbols, channels or venues never conflict, whatever their stream names say.

* The **venue** is where the data came from, from the manifest's ``source``: a ProjectX gateway
  (its market hub's host), a Binance endpoint (its host: spot, USD-M and COIN-M differ), a
  simulated market (its seed and rate decide every message), a generic websocket (its URL), or
  the file an import came from, by its sha256 (the data cannot tell Binance spot from USD-M).
* The **symbol** and **channel** are each data frame's pushdown hints (``symbol`` and
  ``target`` columns: a contract id and ``GatewayTrade``, or ``ETHUSDT`` and ``trade``); a frame
  with no hint is the channel of its stream.

The manifest lists them as ``feeds``: ``[stream, channel, symbol, first_ns, last_ns]`` with the
receive-time span of the segments holding each, kept by every seal (:func:`note_feeds`). A
capture without the list (sealed before it existed, or appended to by such a version) has its
feeds read from the segment files' hint columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rtcap.storage.errors import CaptureError

Feed = tuple[str, str, str]  # (venue, symbol, channel)
DATA_KINDS = pa.array(["text", "binary"])
HINT_COLUMNS = ["kind", "stream", "target", "symbol"]


def segment_feeds(table: pa.Table) -> set[tuple[str, str, str]]:
    """The distinct (stream, channel, symbol) of ``table``'s data frames ("" for no hint).
    Grouped on the dictionary columns as they are, the payloads never copied: a seal pays
    about 0.1 µs a row for it."""
    names = ["stream", "target", "symbol"]
    hints = table.select(names).filter(pc.is_in(table.column("kind"), value_set=DATA_KINDS))
    # journal blocks each carry their own dictionaries
    unique = hints.unify_dictionaries().group_by(names).aggregate([])
    columns = [unique.column(name).to_pylist() for name in names]
    return {tuple(value or "" for value in row) for row in zip(*columns, strict=True)}


def note_feeds(
    manifest: dict[str, Any], found: Iterable[Iterable[str]] | None, first_ns: int, last_ns: int
) -> None:
    """Add a new segment's feeds (``None``: not known) spanning ``first_ns``–``last_ns`` to the
    manifest's list; the list is kept only while every segment's feeds are known."""
    if found is None or ("feeds" not in manifest and manifest.get("segments")):
        manifest.pop("feeds", None)  # incomplete from here on: readers look at the files
        return
    spans = {(r[0], r[1], r[2]): (r[3], r[4]) for r in manifest.get("feeds") or []}
    for stream, channel, symbol in found:
        first, last = spans.get((stream, channel, symbol), (first_ns, last_ns))
        spans[(stream, channel, symbol)] = (min(first, first_ns), max(last, last_ns))
    manifest["feeds"] = [[*key, *span] for key, span in sorted(spans.items())]


def feeds_problem(feeds: Any) -> str | None:
    """What is malformed in a manifest's ``feeds`` list (checked when a manifest is loaded)."""
    if not isinstance(feeds, list):
        return "'feeds' is not a list"
    for row in feeds:
        if not (
            isinstance(row, list)
            and len(row) == 5
            and all(isinstance(v, str) for v in row[:3])
            and all(isinstance(v, int) and not isinstance(v, bool) for v in row[3:])
        ):
            return "an entry of 'feeds' is not [stream, channel, symbol, first_ns, last_ns]"
    return None


def venue(manifest: dict[str, Any]) -> str:
    """Where the capture's data came from (see the module's docstring)."""
    source = manifest.get("source") or {}
    kind = str(source.get("kind") or "unknown")
    if kind == "sim":
        rate = source.get("rate")
        return f"sim seed={source.get('seed')}" + (f" rate={rate}" if rate is not None else "")
    if kind == "projectx":
        return f"projectx {_host(source.get('market_hub_url') or source.get('api_url'))}"
    if kind == "binance":
        return f"binance {_host(source.get('url'))}"
    if kind == "ws":
        return f"ws {source.get('url')}"
    if kind == "import":  # imports since the digest was kept name the file's content
        digest = str(source.get("sha256") or "")[:16]
        return f"import {source.get('format')} {digest or source.get('file')}"
    return kind


def _host(url: Any) -> str:
    return urlsplit(url).netloc if isinstance(url, str) else "?"


def capture_feeds(
    manifest: dict[str, Any], open_file: Callable[[dict[str, Any]], Any]
) -> dict[Feed, tuple[int, int]]:
    """Each feed the capture holds → the receive-time span of the segments that hold it.
    ``open_file(entry)`` opens a listed segment file (a path or a store's file), for captures
    whose manifest does not list their feeds."""
    where = venue(manifest)
    listed = manifest.get("feeds")
    if listed is None:
        listed = []
        for segment in manifest.get("segments") or []:
            found = set()
            for entry in segment.get("files") or []:
                found |= segment_feeds(pq.read_table(open_file(entry), columns=HINT_COLUMNS))
            for key in found:
                listed.append([*key, segment["first_ns"], segment["last_ns"]])
    spans: dict[Feed, tuple[int, int]] = {}
    for stream, channel, symbol, first_ns, last_ns in listed:
        feed = (where, symbol, channel or stream)
        first, last = spans.get(feed, (first_ns, last_ns))
        spans[feed] = (min(first, first_ns), max(last, last_ns))
    return spans


def overlapping(
    captures: Iterable[tuple[str, dict[Feed, tuple[int, int]]]], *, across_venues: bool = False
) -> tuple[str, str, Feed, Feed] | None:
    """Two captures (the first pair by name) holding one feed over overlapping time, and that
    feed in each. ``across_venues``: one symbol and channel from any two venues conflicts too
    (a replay builds one instrument per symbol, so it would merge two markets into one); frames
    naming no symbol are compared within their venue only. Spans that only touch (a feed split
    at one instant) do not overlap. One sweep per feed: a year of daily captures is cheap."""
    spans: dict[tuple[str, ...], list[tuple[int, int, str, Feed]]] = {}
    for name, feeds in captures:
        for feed, (first, last) in feeds.items():
            key = feed[1:] if across_venues and feed[1] else feed
            spans.setdefault(key, []).append((first, last, name, feed))
    found = []
    for listed in spans.values():
        listed.sort()
        reach: tuple[int, int, str, Feed] | None = None  # the span ending last so far
        for span in listed:
            if reach is not None and span[0] < reach[1] and reach[0] < span[1]:
                one, other = sorted((reach, span), key=lambda s: s[2])
                found.append((one[2], other[2], one[3], other[3]))
            if reach is None or span[1] > reach[1]:
                reach = span
    if not found:
        return None
    return min(found, key=lambda f: (f[0], f[1], not f[2][1], f[2]))  # symbols named first


def refuse_overlaps(
    captures: Iterable[tuple[str, dict[str, Any], Callable[[dict[str, Any]], Any]]],
    *,
    across_venues: bool = False,
) -> None:
    """Raise :class:`CaptureError` (:func:`refusal`) when two of ``captures`` — (label,
    manifest, how to open a listed file) — hold one feed over overlapping time."""
    found = overlapping(
        ((name, capture_feeds(manifest, open_file)) for name, manifest, open_file in captures),
        across_venues=across_venues,
    )
    if found is not None:
        raise CaptureError(refusal(*found))


def refusal(first: str, second: str, feed: Feed, other: Feed) -> str:
    """The one-line error for two captures of one feed (or one symbol from two venues)."""
    where, symbol, channel = feed
    what = " ".join(p for p in (symbol, channel) if p)
    pick = f"choose with --recorders {first.rsplit('=', 1)[-1]}"
    if other[0] != where:
        return (
            f"{first} and {second} both hold {what} at the same time, from {where} and "
            f"{other[0]}: their bars would merge two markets into one instrument; {pick} "
            f"(rtcap sql reads both apart, by capture)"
        )
    return (
        f"{first} and {second} recorded the same feed at the same time ({what} from {where}): "
        f"reading both would count every message twice; {pick}"
    )
