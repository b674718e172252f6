"""``rtcap record``: capture a live feed, byte for byte, into a crash-safe capture directory."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rtcap.capture import rhythm
from rtcap.capture.endpoints import (
    API_KEY_VARS,
    BINANCE_URL,
    TOPSTEPX_API,
    TOPSTEPX_MARKET_HUB,
    TOPSTEPX_USER_HUB,
    USERNAME_VARS,
    projectx_urls,
)
from rtcap.capture.redact import add_secret_names, redact_url
from rtcap.capture.session import Backoff
from rtcap.cli import summary
from rtcap.cli.options import CAPTURE, DURATION, Duration, split_list, timeframes_option
from rtcap.cli.serving import stop_on_signals

if TYPE_CHECKING:
    from rtcap.capture.compaction import ClosedDayCompactions
    from rtcap.capture.recorder import Recorder
    from rtcap.capture.roll import RollSchedule
    from rtcap.storage.remote import Uploader


def _bars(ctx, param, value):
    return timeframes_option(ctx, param, value) if value else None


@click.command(short_help=summary("record"))
@click.argument("capture", required=False, type=CAPTURE)
@click.option(
    "--source",
    type=click.Choice(["sim", "projectx", "binance", "ws"]),
    default="sim",
    show_default=True,
    help="What to record (sim: the embedded simulated market).",
)
@click.option(
    "--symbols",
    default=None,
    help="Instruments: MNQ,ES (sim/projectx) or btcusdt,ethusdt (binance). Default MNQ,ES for sim.",
)
@click.option(
    "--channels",
    default="quotes,trades,depth",
    show_default=True,
    help="ProjectX market channels to subscribe per contract.",
)
@click.option("--user-hub/--no-user-hub", default=False, help="Also record the ProjectX user hub.")
@click.option(
    "--username",
    envvar=list(USERNAME_VARS),
    help="ProjectX user name [env PROJECTX_USERNAME, else the SDK's PROJECT_X_USERNAME].",
)
@click.option(
    "--api-key",
    envvar=list(API_KEY_VARS),
    help="ProjectX API key [env PROJECTX_API_KEY, else the SDK's PROJECT_X_API_KEY].",
)
@click.option(
    "--api-url",
    envvar="PROJECTX_API_URL",
    default=TOPSTEPX_API,
    show_default=True,
    help="ProjectX REST base [env PROJECTX_API_URL, as the SDK].",
)
@click.option(
    "--market-hub-url",
    envvar="PROJECTX_MARKET_HUB_URL",
    help=f"Market hub [env PROJECTX_MARKET_HUB_URL, as the SDK; default: {TOPSTEPX_MARKET_HUB} "
    "for TopstepX's API, else /hubs/market beside --api-url].",
)
@click.option(
    "--user-hub-url",
    envvar="PROJECTX_USER_HUB_URL",
    help=f"User hub [env PROJECTX_USER_HUB_URL, as the SDK; default: {TOPSTEPX_USER_HUB} for "
    "TopstepX's API, else /hubs/user beside --api-url].",
)
@click.option(
    "--streams",
    default="trade,bookTicker,depth@100ms",
    show_default=True,
    help="Binance streams per symbol.",
)
@click.option("--binance-url", default=BINANCE_URL, show_default=True)
@click.option(
    "--binance-rest-url",
    help="REST base for depth snapshots (default: beside --binance-url; fstream → fapi).",
)
@click.option(
    "--snapshot-interval",
    type=DURATION,
    default="5s",
    show_default=True,
    help="Binance diff depth: at most one REST snapshot per symbol this often (one is fetched "
    "after every connect and after every break in the update ids).",
)
@click.option("--url", help="Websocket URL (--source ws).")
@click.option(
    "--send", "sends", multiple=True, help="Message to send after connecting (ws; repeatable)."
)
@click.option("--seed", default=7, show_default=True, help="Seed of the simulated market (sim).")
@click.option("--rate", default=40.0, show_default=True, help="Messages/s of the simulated market.")
@click.option("--duration", type=DURATION, help="Stop after this long, e.g. 30s, 2h.")
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after this many data frames.")
@click.option(
    "--bars",
    default=None,
    callback=_bars,
    help="Build these bars live and store them beside the frames, e.g. 1min,5min.",
)
@click.option(
    "--flush-ms",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Journal flush interval: the most a crash can lose.",
)
@click.option(
    "--hold-mb",
    default=256,
    show_default=True,
    type=click.FloatRange(min=0),
    help="While the journal's disk is full: rows held in memory (retried every flush) before "
    "further rows are lost; an 'unrecorded' gap row then says what was lost.",
)
@click.option(
    "--fsync",
    type=click.Choice(["always", "interval", "never"]),
    default="interval",
    show_default=True,
    help="fsync every flush, about every second, or never.",
)
@click.option(
    "--segment-mb",
    default=256,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seal a segment after this much payload.",
)
@click.option(
    "--segment-minutes",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seal a segment after this long.",
)
@click.option(
    "--seal-level",
    default=6,
    show_default=True,
    type=click.IntRange(1, 22),
    help="zstd level of sealed Parquet segments.",
)
@click.option(
    "--stale-after",
    type=Duration(minimum_s=1.0),
    default="30s",
    show_default=True,
    help="Reconnect when a connection stays silent this long (at least 1s).",
)
@click.option(
    "--roll-at",
    envvar="RTCAP_ROLL_AT",
    help="Close the day's capture and go on in the next one at this time of day, without "
    "dropping the connection: HH:MM (UTC), 'HH:MM Zone/Name', or none. Default: 00:00 UTC; "
    "'17:00 America/Chicago' (CME's trading day) for --source projectx. [env RTCAP_ROLL_AT]",
)
@click.option(
    "--keep-local",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="For a URI capture that rolls: the days kept in local staging (the open day counts); "
    "older ones are removed once the store holds them whole (manifest and every file's sha256).",
)
@click.option(
    "--compact/--no-compact",
    default=True,
    show_default=True,
    help="Compact each capture a roll closes (`rtcap compact`: typed columns, about half the "
    "size of gzip) in a child process at low CPU priority while recording goes on. A "
    "capture recorded to a URI is uploaded as it seals and stays as it was sealed.",
)
@click.option(
    "--roll-every",
    type=DURATION,
    help="Roll on a fixed period instead (e.g. 1h): one capture per period.",
)
@click.option(
    "--silence-after",
    type=Duration(minimum_s=0.1),
    default="5s",
    show_default=True,
    help="The longest quiet stretch on a connected stream without a 'silence' gap row. Shorter "
    f"ones are judged by the stream's own rhythm: a silence lasts {rhythm.FACTOR:g}x the longest "
    f"of its last {rhythm.WINDOW} gaps, at least {rhythm.FLOOR_S:g}s (the user hub: "
    f"{rhythm.SPARSE_FLOOR_S:g}s, its events are sparse).",
)
@click.option(
    "--append",
    is_flag=True,
    help="Add this recording to an existing capture as a new session (verify checks each "
    "session on its own). Without it, an existing capture is refused.",
)
@click.option(
    "--redact",
    "redact_names",
    multiple=True,
    metavar="NAME",
    help="Also treat this field / query-parameter name as secret (repeatable).",
)
@click.option(
    "--backoff-max",
    type=DURATION,
    default="30s",
    show_default=True,
    help="Longest wait between reconnect attempts.",
)
@click.option(
    "--journal-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="For a CAPTURE URI (s3://…): the local folder holding the journal and sealed files "
    "until they are uploaded (default: ~/.cache/rtcap/staging).",
)
@click.option(
    "--dataset",
    metavar="ROOT",
    help="Record into a dataset shared by many recorders: the capture goes to "
    "ROOT/source=…/date=…/recorder=… (ROOT may be a URI). Replaces CAPTURE.",
)
@click.option(
    "--recorder",
    default=socket.gethostname(),
    show_default="this host's name",
    help="This recorder's id in --dataset.",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run every [[recorder]] of this TOML file in this one process, each isolated from the "
    "others (see README).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus /metrics and /healthz on this port (0: any free port, printed).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address for --metrics-port (loopback unless you ask otherwise).",
)
@click.option("--quiet", is_flag=True, help="No live status line.")
def record(config: Path | None, **params: Any) -> None:
    """Record a live websocket feed into CAPTURE (default captures/<UTC time>), a directory or
    a URI such as s3://bucket/prefix (journaled locally, sealed files uploaded as they seal).

    Every inbound frame is kept byte for byte with its receive times, every frame sent and every
    connect, close, reconnect and gap is a row too. Frames go to a journal flushed every
    --flush-ms and are sealed into zstd Parquet segments; Ctrl+C or SIGTERM flush and seal.
    """
    from rtcap.capture.recorder import RecordingError
    from rtcap.storage.errors import CaptureError

    if config is not None:
        given = [name for name in params if _given(name)]
        if given:
            raise click.UsageError(
                f"--config runs the recorders its file describes: put {', '.join(given)} in "
                "their [[recorder]] tables instead"
            )
        _record_many(config)
        return
    try:
        recording = _recording(params)
        summary = asyncio.run(recording(None))
    except (CaptureError, RecordingError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary)


def _given(name: str) -> bool:
    """Whether option ``name`` was given on the command line (an environment variable applies
    to every recorder of a --config file alike, as each table is parsed with it)."""
    source = click.get_current_context().get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def _recording(params: dict[str, Any]) -> Callable[[asyncio.Event | None], Awaitable[str]]:
    """One recording as the options ``params`` describe it, checked and ready to run: call it
    (with a group's stop event, or ``None`` to stop on this process's signals)."""
    from rtcap.capture.roll import CME_TRADING_DAY, parse_roll
    from rtcap.storage.dataset import capture_path
    from rtcap.storage.errors import CaptureError
    from rtcap.storage.lease import this_process
    from rtcap.storage.remote import Uploader, staging_path

    capture, source = params["capture"], params["source"]
    trading_day = CME_TRADING_DAY if source == "projectx" else "00:00"
    every = params["roll_every"]
    schedule = parse_roll(
        params["roll_at"], None if every is None else int(every * 1e9), trading_day
    )
    dataset = params["dataset"]
    if dataset is not None:
        if capture is not None:
            raise click.UsageError("give CAPTURE or --dataset ROOT, not both")
        if schedule is not None:
            date = schedule.day_of(time.time_ns())
        else:
            date = time.strftime("%Y-%m-%d", time.gmtime())
        where = capture_path(dataset, source, date, params["recorder"])
        capture = CAPTURE.convert(where, None, None)
    capture = capture or Path("captures") / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    uploader = None
    if isinstance(capture, str):  # a URI: record into local staging, upload as segments seal
        in_dataset = str(dataset) if dataset is not None else None
        staging = staging_path(capture, params["journal_dir"], in_dataset)
        uploader = Uploader(capture, staging)
        uploader.check_reachable()
        # One writer per prefix: refused while another recorder holds it (named), before
        # anything else is judged, so two recorders racing are told apart by the lease alone.
        uploader.claim(this_process())
        staged = (staging / "manifest.json").exists()
        if uploader.exists() and not (params["append"] and staged):
            uploader.release()
            # As locally: an existing capture is never replaced. Appending needs the staging
            # copy it was recorded from (a fresh cache would upload a shorter manifest over it).
            raise CaptureError(
                f"{capture} already holds a recording: record into a new URI"
                + (
                    ", or pass --append to add this recording to it as a new session"
                    if not params["append"]
                    else f"; --append needs its staging copy ({staging}), which is not here: "
                    "append from the machine (or --journal-dir) that recorded it"
                )
            )
        capture = staging
    api_url, market_hub_url, user_hub_url = projectx_urls(
        params["api_url"], params["market_hub_url"], params["user_hub_url"]
    )
    options = dict(
        source=source,
        symbols=split_list(params["symbols"]),
        channels=tuple(split_list(params["channels"])),
        user_hub=params["user_hub"],
        username=params["username"],
        api_key=params["api_key"],
        api_url=api_url,
        market_hub_url=market_hub_url,
        user_hub_url=user_hub_url,
        streams=split_list(params["streams"]),
        binance_url=params["binance_url"],
        binance_rest_url=params["binance_rest_url"],
        snapshot_interval=params["snapshot_interval"],
        url=params["url"],
        sends=list(params["sends"]),
        seed=params["seed"],
        rate=params["rate"],
        compact=params["compact"],
    )
    add_secret_names(list(params["redact_names"]))
    writer_options = dict(
        append=params["append"],
        fsync=params["fsync"],
        seal_level=params["seal_level"],
        segment_max_bytes=params["segment_mb"] * 1024 * 1024,
        segment_max_s=params["segment_minutes"] * 60,
        # a dataset's captures seal into the root's tables (storage.placement)
        tables=dataset is not None,
    )

    def run(group_stop: asyncio.Event | None) -> Awaitable[str]:
        return _record(
            capture,
            writer_options,
            options,
            params["duration"],
            params["max_frames"],
            params["bars"],
            params["flush_ms"],
            params["hold_mb"],
            (params["stale_after"], params["silence_after"]),
            params["backoff_max"],
            params["quiet"],
            (params["metrics_host"], params["metrics_port"]),
            uploader,
            group_stop,
            schedule,
            (dataset, params["recorder"]) if dataset is not None else None,
            (params["journal_dir"], params["keep_local"]),
        )

    return run


async def _record(
    capture,
    writer_options,
    options,
    duration,
    max_frames,
    bars,
    flush_ms,
    hold_mb,
    timeouts,
    backoff_max,
    quiet,
    metrics: tuple[str, int | None],
    uploader: Uploader | None = None,
    group_stop: asyncio.Event | None = None,
    roll: RollSchedule | None = None,
    dataset: tuple[str | Path, str] | None = None,
    staging: tuple[Path | None, int] = (None, 1),
) -> str:
    from rtcap.capture.compaction import ClosedDayCompactions
    from rtcap.capture.feeds import (
        local_gateway_feed,
    )
    from rtcap.capture.recorder import Recorder, RecordingError
    from rtcap.capture.roll import next_capture
    from rtcap.gateway.embedded import start_embedded_market
    from rtcap.storage.dataset import capture_path
    from rtcap.storage.errors import CaptureError
    from rtcap.storage.manifest import gap_count
    from rtcap.storage.remote import drop_local_copy
    from rtcap.storage.writer import CaptureWriter

    stale_after, silence_after = timeouts
    embedded = None
    if options["source"] == "sim":
        symbols = options["symbols"] or ["MNQ", "ES"]
        embedded = await start_embedded_market(options["seed"], symbols, options["rate"])
        feeds = [local_gateway_feed(embedded, symbols, options["channels"])]
        info = embedded.source_info()
    else:
        feeds, info = _live_feeds(options)
    writer = CaptureWriter(capture, source=info, **writer_options)

    journal_dir, keep_local = staging
    uploaders = {} if uploader is None else {Path(capture): uploader}  # staging → its URI's
    every_uploader = list(uploaders.values())  # for the bytes sent, pruned days included
    confirmed: list[Path] = []  # closed staging captures the store holds whole, oldest first

    def next_writer(now_ns: int) -> CaptureWriter:
        """The next day's capture (roll.py names it), opened by the recorder at the roll."""
        assert roll is not None
        day = roll.day_of(now_ns)
        if uploader is not None:  # a URI: the next day's URI, staged like the first
            next_uploader = _next_uri(uploader.uri, day, dataset, options["source"], journal_dir)
            path = next_uploader.staging
            uploaders[path] = next_uploader
            every_uploader.append(next_uploader)
        else:
            in_dataset = None
            if dataset is not None:
                in_dataset = Path(capture_path(dataset[0], options["source"], day, dataset[1]))
            path = next_capture(Path(capture), day, dataset_day_path=in_dataset)
        return CaptureWriter(path, source=info, **{**writer_options, "append": False})

    async def prune(path: Path, keep: int) -> None:
        """Upload a closed capture's last files; once the store holds it whole, its local copy
        may go: all but the ``keep`` most recent such copies are removed."""
        up = uploaders.get(path)
        if up is None:
            return
        try:
            await asyncio.to_thread(up.push)
        except CaptureError as exc:
            click.echo(f"warning: {exc}; {path} is kept: run `rtcap recover {up.uri}`", err=True)
            return
        if not up.confirmed():
            return
        await asyncio.to_thread(up.release)  # the day is closed and whole on the store
        confirmed.append(path)
        while len(confirmed) > keep:
            gone = confirmed.pop(0)
            await asyncio.to_thread(drop_local_copy, gone)
            uploaders.pop(gone, None)

    # a URI's sealed files are uploaded as they seal: its days stay as sealed
    compactions = ClosedDayCompactions() if options["compact"] and uploader is None else None

    async def after_close(old: CaptureWriter) -> None:
        if compactions is not None:
            compactions.start(old.path)
        else:
            await prune(old.path, max(0, keep_local - 1))  # the open day counts as one

    recorder = Recorder(
        feeds,
        writer=writer,
        flush_ms=flush_ms,
        hold_mb=hold_mb,
        bar_timeframes=bars,
        backoff=Backoff(max_s=backoff_max),
        stale_after_s=stale_after,
        silence_after_s=silence_after,
        max_frames=max_frames,
        roll=roll,
        next_writer=next_writer,
        after_close=after_close if uploader is not None or compactions is not None else None,
    )
    recorder.uploader = uploader
    # Before anything is on disk: a SIGTERM from the moment the capture exists seals it.
    relay = None
    if group_stop is None:
        stop_on_signals(recorder.stop)
    else:  # one of several recorders: the group's stop stops it
        relay = asyncio.create_task(group_stop.wait())
        relay.add_done_callback(lambda _: recorder.stop.set())
    metrics_server = None
    try:
        await asyncio.to_thread(writer.open)
        if metrics[1] is not None:
            from rtcap.capture.metrics import MetricsServer

            metrics_server = MetricsServer(recorder, *metrics)
            await metrics_server.start()
            click.echo(
                f"metrics  http://{metrics_server.host}:{metrics_server.port}/metrics "
                "(and /healthz)",
                err=True,
            )
        try:
            await recorder.prepare()
        except RecordingError:
            await asyncio.to_thread(writer.close)
            await asyncio.to_thread(writer.discard_if_unused)  # so the retry is not refused
            if uploader is not None:
                await asyncio.to_thread(uploader.release)  # nor by this run's lease
            raise
        status = None if quiet else asyncio.create_task(_status(recorder))
        uploading = None
        if uploader is not None:
            current = lambda: uploaders.get(recorder.writer.path)  # noqa: E731 - today's
            uploading = asyncio.create_task(_upload_loop(current))
        try:
            await recorder.run(duration)
        finally:
            for task in (status, uploading):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
        if relay is not None:
            relay.cancel()
        if metrics_server is not None:
            await metrics_server.stop()
        if embedded is not None:
            await embedded.stop()
        if compactions is not None:
            for capture_left in await compactions.stop():
                click.echo(
                    f"warning: compacting {capture_left} stopped with the recording; it is "
                    f"whole: run `rtcap compact {capture_left}` to finish",
                    err=True,
                )
    manifest = writer.manifest
    gaps = gap_count(manifest)
    where = writer.path
    if uploader is not None:
        last = uploaders.get(recorder.writer.path, uploader)
        try:
            await asyncio.to_thread(last.push)
        except CaptureError as exc:
            raise CaptureError(
                f"{exc}; everything is kept in {last.staging}: run `rtcap recover "
                f"{last.uri}` to finish the upload"
            ) from None
        if recorder.rolls:
            await prune(last.staging, keep_local)
        for held in every_uploader:  # a clean stop: the next recorder may start at once
            await asyncio.to_thread(held.release)
        sent = sum(u.bytes_sent for u in every_uploader)
        where = f"{uploader.uri} ({sent / 1e6:,.2f} MB uploaded)"
    if recorder.rolls:  # several captures: the totals of all, and where the last one is
        last = recorder.writer.path if recorder.writer is not None else writer.path
        return (
            f"recorded {recorder.rows} rows ({recorder.data_frames} data frames) into {where} "
            f"and {recorder.rolls} capture(s) after it (rolled; the last is {last}), "
            f"{recorder.status()['reconnects']} reconnects{_contract_rolls(recorder)}"
            f"{_compacted(compactions)}"
        )
    return (
        f"recorded {manifest['frames']} rows ({recorder.data_frames} data frames) into "
        f"{where}: {len(manifest['segments'])} segments, {gaps} gaps, "
        f"{recorder.status()['reconnects']} reconnects{_contract_rolls(recorder)}"
    )


def _compacted(compactions: ClosedDayCompactions | None) -> str:
    done = [ended for ended in compactions.ended if ended.code == 0] if compactions else []
    return f", {len(done)} closed capture(s) compacted" if done else ""


def _contract_rolls(recorder: Recorder) -> str:
    return f", {recorder.contract_rolls} contract roll(s)" if recorder.contract_rolls else ""


UPLOAD_EVERY_S = 2.0


def _next_uri(
    first: str, day: str, dataset: tuple[str | Path, str] | None, source: str, journal_dir
) -> Uploader:
    """The Uploader of the next day's URI: the dataset's folder of ``day``, or ``<first>.<day>``;
    ``.2``, ``.3`` … while the store or the staging cache already holds one of that name."""
    from rtcap.storage.dataset import capture_path
    from rtcap.storage.lease import this_process
    from rtcap.storage.remote import Uploader, staging_path

    base = capture_path(dataset[0], source, day, dataset[1]) if dataset else f"{first}.{day}"
    candidate, number = str(base), 1
    while True:
        staged = staging_path(candidate, journal_dir, str(dataset[0]) if dataset else None)
        up = Uploader(candidate, staged)
        if not staged.exists() and not up.exists():
            up.hold(this_process())
            return up
        number += 1
        candidate = f"{base}.{number}"


async def _upload_loop(current: Callable[[], Uploader | None]) -> None:
    """Upload what has sealed in the open capture, every few seconds; a failure is retried at
    the next round (the journal and sealed files stay in staging meanwhile, so nothing waits on
    the store)."""
    from rtcap.storage.errors import CaptureError

    warned = False
    while True:
        await asyncio.sleep(UPLOAD_EVERY_S)
        uploader = current()
        if uploader is None:
            continue
        try:
            await asyncio.to_thread(uploader.push)
            warned = False
        except CaptureError as exc:
            if not warned:
                click.echo(f"warning: upload failed, will retry: {exc}", err=True)
                warned = True


def _live_feeds(options) -> tuple[list, dict]:
    from rtcap.capture.feeds import (
        BinanceFeed,
        GenericFeed,
        ProjectXAuth,
        ProjectXMarketFeed,
        ProjectXUserFeed,
    )

    source = options["source"]
    if source == "projectx":
        if not options["username"] or not options["api_key"]:
            raise ValueError(
                "ProjectX needs credentials: set PROJECTX_USERNAME and PROJECTX_API_KEY "
                "(or the SDK's PROJECT_X_USERNAME and PROJECT_X_API_KEY, or --username/--api-key)"
            )
        if not options["symbols"]:
            raise ValueError("give --symbols, e.g. --symbols MNQ,ES")
        auth = ProjectXAuth(options["api_url"], options["username"], options["api_key"])
        feeds = [
            ProjectXMarketFeed(
                auth, options["market_hub_url"], options["symbols"], options["channels"]
            )
        ]
        if options["user_hub"]:
            feeds.append(ProjectXUserFeed(auth, options["user_hub_url"]))
        info = {
            "kind": "projectx",
            "api_url": options["api_url"],
            "username": options["username"],
            "market_hub_url": redact_url(options["market_hub_url"]),
            "symbols": options["symbols"],
        }
        return feeds, info
    if source == "binance":
        feed = BinanceFeed(
            options["symbols"],
            options["streams"],
            base_url=options["binance_url"],
            rest_url=options.get("binance_rest_url"),
            snapshot_interval_s=options.get("snapshot_interval"),
        )
        info = {"kind": "binance", "url": redact_url(options["binance_url"]), "streams": feed.names}
        if feed.snapshots is not None:
            info["depth_snapshots"] = {
                "rest_url": redact_url(feed.snapshots.rest_url),
                "path": feed.snapshots.path,
                "limit": feed.snapshots.limit,
                "min_interval_s": feed.snapshots.min_interval_s,
            }
        return [feed], info
    if not options["url"]:
        raise ValueError("--source ws needs --url wss://…")
    feed = GenericFeed(options["url"], options["sends"])
    return [feed], {"kind": "ws", "url": redact_url(options["url"]), "sends": len(options["sends"])}


async def _status(recorder: Recorder) -> None:
    from rich.console import Console
    from rich.live import Live as RichLive

    console = Console(stderr=True)
    if not console.is_terminal:
        return
    with RichLive(console=console, refresh_per_second=4, transient=True) as view:
        while True:
            s = recorder.status()
            ratio = f"{s['compression']:.1f}x" if s["compression"] else "-"
            gap = f"{s['last_gap_s']:.1f}s" if s["last_gap_s"] is not None else "none"
            view.update(
                f"[bold]{s['state']}[/] | {s['frames']:,} frames | {s['frames_per_s']:,.0f} f/s | "
                f"{s['bytes_written'] / 1e6:.2f} MB written | ratio {ratio} | "
                f"reconnects {s['reconnects']} | last gap {gap}"
            )
            await asyncio.sleep(0.25)


def _record_many(config: Path) -> None:
    """Every ``[[recorder]]`` of ``config`` at once in this process. Each table holds the
    options of one ``rtcap record`` (``capture`` and option names, ``-`` or ``_`` alike), checked
    as the command line checks them; one recorder failing (a bad symbol, refused credentials, a
    full disk) stops only itself. Ctrl+C or SIGTERM stops them all, each sealing its capture."""
    from rtcap.capture.recorder import RecordingError
    from rtcap.storage.errors import CaptureError

    expected = (CaptureError, RecordingError, ValueError, click.ClickException)
    recordings, outcomes = {}, {}
    for name, params in _config_recorders(config).items():
        try:
            recordings[name] = _recording(params)
        except expected as exc:
            outcomes[name] = exc

    async def run_all() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        names = list(recordings)
        results = await asyncio.gather(
            *(recordings[n](stop) for n in names), return_exceptions=True
        )
        outcomes.update(zip(names, results, strict=True))

    if recordings:
        asyncio.run(run_all())
    failed = []
    for name, outcome in outcomes.items():
        if isinstance(outcome, BaseException):
            failed.append(name)
            text = (
                outcome.format_message()
                if isinstance(outcome, click.ClickException)
                else str(outcome)
            )
            if not isinstance(outcome, expected):
                text = f"unexpected {type(outcome).__name__}: {text}"
            click.echo(f"[{name}] Error: {text}", err=True)
        else:
            click.echo(f"[{name}] {outcome}")
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(outcomes)} recorders failed ({', '.join(failed)}); the "
            "others recorded as reported above"
        )


def _config_recorders(config: Path) -> dict[str, dict[str, Any]]:
    """Name → checked options of every ``[[recorder]]`` table in ``config``."""
    import tomllib

    try:
        data = tomllib.loads(config.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise click.ClickException(f"cannot read {config}: {exc}") from None
    tables = data.get("recorder")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise click.ClickException(
            f"{config} has no [[recorder]] tables: give one per feed to record (see README)"
        )
    options = {opt: param for param in record.params for opt in param.opts}
    recorders: dict[str, dict[str, Any]] = {}
    for number, table in enumerate(tables, start=1):
        table = dict(table)
        name = table.pop("name", None)
        if not isinstance(name, str) or not name or name in recorders:
            raise click.ClickException(
                f'{config}: recorder #{number} needs a name of its own (name = "…")'
            )
        args = []
        capture = table.pop("capture", None)
        if capture is not None:
            args.append(str(capture))
        for key, value in table.items():
            flag = "--" + key.replace("_", "-")
            param = options.get(flag)
            if param is None or flag == "--config":
                raise click.ClickException(
                    f"{config}: recorder {name!r} has an unknown option {key!r}: use the names "
                    "of `rtcap record --help` (without --)"
                )
            values = value if isinstance(value, list) and param.multiple else [value]
            for one in values:
                if getattr(param, "is_flag", False):
                    if one is True:
                        args.append(flag)
                    continue
                args += [flag, ",".join(map(str, one)) if isinstance(one, list) else str(one)]
        args.append("--quiet")  # several status lines would overwrite each other
        try:
            context = record.make_context(f"record {name}", args)
        except click.ClickException as exc:
            raise click.ClickException(
                f"{config}: recorder {name!r}: {exc.format_message()}"
            ) from None
        params = dict(context.params)
        params.pop("config", None)
        recorders[name] = params
    return recorders
