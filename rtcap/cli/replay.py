"""``rtcap replay`` and ``rtcap verify``: a capture through the same pipeline as live."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from rtcap.bars import bar_record
from rtcap.booksnap import BookSampler, BookSnapshot
from rtcap.cli import summary
from rtcap.cli.options import (
    CAPTURE,
    DURATION,
    book_options,
    book_sampling,
    on_each_capture,
    readable,
    recorders_option,
    split_list,
    timeframes_option,
)
from rtcap.cli.output import ResultsOut
from rtcap.cli.serving import stop_on_signals
from rtcap.decimals import format_amount
from rtcap.events import Event, EventBus, EventType
from rtcap.pipeline import Pipeline
from rtcap.replay.pacing import parse_speed
from rtcap.replay.run import run
from rtcap.replay.source import Replay
from rtcap.replay.verify import first_difference, live_bar_lines, replay_digest
from rtcap.storage.errors import CaptureError
from rtcap.storage.integrity import open_capture, sessions
from rtcap.storage.manifest import gap_summary, subscribed_contracts
from rtcap.timeutil import ns_to_datetime

CSV_HEADER = "timestamp,instrument,timeframe,open,high,low,close,volume,trades,gap"


def _speed(ctx, param, value):
    try:
        return parse_speed(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _replay_source(
    capture: Path,
    speed,
    start,
    end,
    streams,
    symbols,
    include_open,
    max_gap,
    recorders=None,
    follow=False,
):
    try:
        capture = readable(capture)
        return Replay(
            capture,
            speed,
            start=start,
            end=end,
            streams=split_list(streams) or None,
            symbols=split_list(symbols) or None,
            include_open=include_open,
            max_gap=max_gap,
            recorders=recorders,
            follow=follow,
        )
    except (CaptureError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command(short_help=summary("replay"))
@click.argument("capture", type=CAPTURE)
@click.option(
    "--speed",
    default="max",
    callback=_speed,
    show_default=True,
    help="1x, 10x, 0.5x, a number, or max.",
)
@click.option("--timeframes", default="1min", show_default=True, callback=timeframes_option)
@click.option("--ticks", is_flag=True, help="Print trades too.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "jsonl", "csv"]),
    default="table",
    show_default=True,
)
@click.option("--from", "start", help="Start: +5m (after the first frame), -30s, or ISO time.")
@click.option("--to", "end", help="End (exclusive), same forms as --from.")
@click.option("--streams", help="Only these streams (comma-separated).")
@click.option(
    "--symbols",
    help="Only these symbols or contract ids (a futures symbol such as MNQ takes "
    "all its contracts, across rolls).",
)
@click.option("--include-open", is_flag=True, help="Also replay an unsealed journal.")
@click.option(
    "--follow",
    is_flag=True,
    help="Keep going as a recorder writes CAPTURE: sealed rows, the journal, then each new row "
    "as it reaches the disk, until the recording ends.",
)
@recorders_option
@click.option("--max-gap", type=DURATION, help="Compress idle stretches longer than this.")
@book_options("Print the top N levels of every order book (rebuilt from depth) instead of bars.")
@click.option("--serve", is_flag=True, help="Serve the replay on a ProjectX-compatible gateway.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535))
def replay(
    capture,
    speed,
    timeframes,
    ticks,
    fmt,
    start,
    end,
    streams,
    symbols,
    include_open,
    follow,
    recorders,
    max_gap,
    book,
    every,
    serve,
    host,
    port,
) -> None:
    """Replay CAPTURE through the live codec, bar builder and event bus, printing bars as they
    close; or, with --serve, to network clients over the gateway (at 1x unless --speed says
    otherwise, starting when the first client subscribes).

    Pacing follows an absolute schedule, so a 60-second capture takes 6 seconds at 10x; bars,
    flat bars and every event are identical at every speed.
    """
    if book and (serve or ticks):
        raise click.UsageError(
            "--book prints book snapshots: it does not combine with --serve or --ticks"
        )
    if serve and click.get_current_context().get_parameter_source("speed").name == "DEFAULT":
        speed = 1.0  # clients want the session as it happened unless they ask otherwise
    source = _replay_source(
        capture, speed, start, end, streams, symbols, include_open, max_gap, recorders, follow
    )
    try:
        if serve:
            asyncio.run(_serve(source, host, port))
            return
        sampling = book_sampling(book, every)
        asyncio.run(_print(source, timeframes, ticks, fmt, sampling))
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None


async def _print(
    source: Replay,
    timeframes: list[str],
    ticks: bool,
    fmt: str,
    sampling: tuple[int, int] | None = None,
) -> None:
    bus = EventBus()
    pipeline = Pipeline(
        source.instruments,
        timeframes,
        wanted=bus.wanted,
        books=bool(sampling),
        contracts=source.contract_names,
    )
    sampler = BookSampler(pipeline, *sampling) if sampling else None
    out = ResultsOut()
    if fmt == "csv":
        out.write((BOOK_CSV_HEADER if sampler else CSV_HEADER) + "\n")

    def print_book(snapshots: list[BookSnapshot]) -> None:
        for snapshot in snapshots:
            _write_book(out, snapshot, fmt)

    def on_bar(event: Event) -> None:
        bar = event.data["bar"]
        row = bar_record(bar, event.data["bar_time"].tzinfo, event.instrument)
        if fmt == "jsonl":
            out.write(orjson.dumps(row).decode() + "\n")
        elif fmt == "csv":
            out.write(",".join(str(v) for v in row.values()) + "\n")
        else:
            o, h, low, c = (format_amount(p) for p in (bar.open, bar.high, bar.low, bar.close))
            prices = f"O {o:<10} H {h:<10} L {low:<10} C {c:<10}"
            flag = "  gap" if bar.gap else ""
            out.write(
                f"{row['timestamp']:<26} {event.instrument:<8} {bar.timeframe:<6} {prices} "
                f"V {format_amount(bar.volume):<8} n {bar.trades}{flag}\n"
            )

    def on_tick(event: Event) -> None:
        data = event.data
        if fmt == "table":
            out.write(
                f"  {data['timestamp'].isoformat():<32} {event.instrument:<8} trade "
                f"{format_amount(data['price'])} x {format_amount(data['volume'])} "
                f"{data['side'] or ''}\n"
            )
        elif fmt == "jsonl":
            row = {**data, "timestamp": data["timestamp"].isoformat(), "event": "trade"}
            out.write(orjson.dumps(row).decode() + "\n")

    if sampler is None:
        await bus.on(EventType.BAR_CLOSED, on_bar)
    if ticks:
        await bus.on(EventType.TRADE_TICK, on_tick)
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        transient=True,
        console=console,
        disable=not console.is_terminal,
    )
    first, last = source.reader.span
    task = progress.add_task("replay", total=max(1, last - first))
    started = time.monotonic()

    def show_progress() -> None:
        if source.last_recv_ns:
            elapsed = time.monotonic() - started
            achieved = (source.last_recv_ns - first) / 1e9 / max(elapsed, 1e-9)
            moment = ns_to_datetime(source.last_recv_ns).strftime("%H:%M:%S")
            progress.update(
                task,
                completed=source.last_recv_ns - first,
                description=f"{moment} | {source.frames_out:,} frames | {achieved:,.1f}x",
            )

    with progress:
        await run(
            source,
            pipeline,
            bus.dispatch,
            sampler=sampler,
            on_snapshots=print_book,
            after_batch=show_progress,
            close_at_end=True,
        )
    out.flush()
    if sampler is not None and not any(s.book for s in pipeline.instruments.values()):
        console.print("no order-book depth in this capture: nothing to print", style="yellow")
    elapsed = time.monotonic() - started
    console.print(f"replayed {source.frames_out:,} frames in {elapsed:.2f}s", style="dim")


BOOK_CSV_HEADER = "ts_ns,timestamp,instrument,level,bid_px,bid_sz,ask_px,ask_sz,valid"


def _write_book(out: ResultsOut, snapshot: BookSnapshot, fmt: str) -> None:
    moment = ns_to_datetime(snapshot.ns).isoformat()
    if fmt == "jsonl":
        row = {
            "timestamp": moment,
            "ts_ns": snapshot.ns,
            "instrument": snapshot.instrument,
            "valid": snapshot.valid,
            "crossed": snapshot.crossed,
            "bids": snapshot.bids,
            "asks": snapshot.asks,
        }
        out.write(orjson.dumps(row).decode() + "\n")
    elif fmt == "csv":
        for ns, _, instrument, level, bid_px, bid_sz, ask_px, ask_sz, valid in snapshot.rows():
            cells = (ns, moment, instrument, level, bid_px, bid_sz, ask_px, ask_sz, valid)
            out.write(",".join("" if v is None else str(v) for v in cells) + "\n")
    else:
        flags = ("" if snapshot.valid else "  INVALID (sequence break)") + (
            "  CROSSED" if snapshot.crossed else ""
        )
        out.write(f"{moment}  {snapshot.instrument}{flags}\n")
        for _, _, _, level, bid_px, bid_sz, ask_px, ask_sz, _ in snapshot.rows():
            bid = (
                f"{format_amount(bid_sz):>12} @ {format_amount(bid_px):<12}"
                if bid_px is not None
                else " " * 27
            )
            ask = (
                f"{format_amount(ask_px):>12} x {format_amount(ask_sz):<12}"
                if ask_px is not None
                else ""
            )
            out.write(f"  {level:>3}  {bid} | {ask}\n")


async def _serve(source: Replay, host: str, port: int) -> None:
    from rtcap.gateway.build import capture_gateway, endpoint_lines

    server = capture_gateway(source, host=host, port=port)
    try:
        await server.start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}"
        ) from None
    stop = asyncio.Event()
    stop_on_signals(stop)
    contracts = subscribed_contracts(source.manifest)
    click.echo(f"rtcap replay: {source.describe()} on {server.host}:{server.port}")
    for line in endpoint_lines(server):
        click.echo(line)
    click.echo(f"  contracts   {' '.join(f'{k}={v}' for k, v in contracts.items()) or 'none'}")
    click.echo("the replay starts when the first client subscribes (or connects to /ws)")
    done = asyncio.create_task(server.feed_done.wait())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({done, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if done.done() and not stop.is_set():
        click.echo("capture finished; serving until Ctrl+C")
        await stopped
    await server.stop()
    click.echo(
        f"served {server.stats['records_routed']} records to "
        f"{server.stats['connections']} connections"
    )


def _paced_speed(ctx, param, value):
    speed = _speed(ctx, param, value)
    if speed is None:
        raise click.BadParameter(
            "verify already replays at max speed; --speed is the paced run to compare it "
            "with, e.g. 10x or 20x"
        )
    return speed


@click.command(short_help=summary("verify"))
@click.argument("capture", type=CAPTURE)
@click.option(
    "--speed",
    default="20x",
    callback=_paced_speed,
    show_default=True,
    help="Speed of the paced run compared with the max-speed run.",
)
@click.option("--timeframes", default=None, help="Bars to compare (default: the live bars').")
def verify(capture, speed, timeframes) -> None:
    """Replay CAPTURE at max speed and paced; check both against each other and against the
    bars built live while recording. Exits 1 on any difference.

    A capture recorded in several sessions (rtcap record --append) is checked session by
    session, each replayed from its own start, as its recorder saw it. Gaps recorded in the
    capture (outages, silences, sequence jumps) are counted in the summary. CAPTURE may be a
    dataset root (local or a URI): each of its captures is verified on its own."""
    try:
        labels = timeframes_option(None, None, timeframes) if timeframes else None
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint="--timeframes") from None
    on_each_capture(capture, lambda _, local: _verify(local, speed, labels))


def _verify(capture: Path, speed: float, labels: list[str] | None) -> None:
    """``rtcap verify`` of one local capture."""
    try:
        manifest = open_capture(capture)
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    runs = sessions(manifest)
    problems, summaries, hashes = [], [], []
    for session in runs:
        live = session.get("live_bars") or {}
        session_labels = labels or live.get("timeframes") or ["1min"]
        seqs = (session.get("first_seq") or 0, session.get("last_seq")) if len(runs) > 1 else None
        where = f"session {session['number']}: " if len(runs) > 1 else ""
        try:
            fast = asyncio.run(replay_digest(capture, None, session_labels, seqs))
            paced = asyncio.run(replay_digest(capture, speed, session_labels, seqs))
            live_lines = (
                live_bar_lines(capture, session if len(runs) > 1 else None)
                if live.get("timeframes") and not labels
                else None
            )
        except CaptureError as exc:
            raise click.ClickException(str(exc)) from None
        diff = first_difference(fast.events, paced.events)
        if diff is not None:
            problems.append(
                f"{where}max-speed and {speed:g}x replays differ at event #{diff[0]}:\n"
                f"  max:   {diff[1]}\n  paced: {diff[2]}"
            )
        if live_lines is not None:
            diff = first_difference(live_lines, fast.bars)
            if diff is not None:
                problems.append(
                    f"{where}replayed bars differ from the live bars at bar #{diff[0]}:\n"
                    f"  live:   {_text(diff[1])}\n  replay: {_text(diff[2])}"
                )
        against = f" and the {len(live_lines)} live bars" if live_lines is not None else ""
        summaries.append(
            f"{where}{len(fast.bars)} bars ({', '.join(session_labels)}), {len(fast.events)} "
            f"events at max speed and {speed:g}x{against}"
        )
        hashes.append((where, fast))
    if problems:
        raise click.ClickException("DIFFERENT: " + "\n".join(problems))
    click.echo("identical: " + "\n           ".join(summaries))
    for where, digest in hashes:
        click.echo(f"{where}bar stream sha256 {digest.bar_hash}")
        click.echo(f"{where}event stream sha256 {digest.event_hash}")
        if digest.book_events:
            click.echo(
                f"{where}book stream sha256 {digest.book_hash} "
                f"({digest.book_events:,} order-book updates)"
            )
    gaps = gap_summary(manifest)
    if gaps:
        click.echo(f"recorded gaps: {gaps}")


def _text(line) -> str:
    return line.decode().strip() if isinstance(line, bytes) else str(line)
