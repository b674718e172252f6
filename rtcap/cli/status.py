"""``rtcap status``: each recorder's state, read from the ``status.json`` it keeps current in
its capture (so it works on a capture someone else is recording, without a lock or a port)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from rtcap.cli import summary
from rtcap.cli.options import CAPTURE


@click.command("status", short_help=summary("status"))
@click.argument("path", type=CAPTURE, default="captures", required=False)
@click.option(
    "--journal-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="For a URI: where it is recorded from (rtcap record --journal-dir).",
)
def status_command(path: Path | str, journal_dir: Path | None) -> None:
    """The state of every recorder writing PATH (a capture, a URI being recorded, or a folder
    of captures; default ./captures): connection per stream, frame rate, seconds since the last
    frame, gaps, backlogs and health. Exits 1 when a running recorder is degraded."""
    from rtcap.capture.health import read_status
    from rtcap.storage.dataset import find_captures
    from rtcap.storage.remote import staging_path

    folder = Path(staging_path(path, journal_dir)) if isinstance(path, str) else path
    if not folder.exists():
        raise click.ClickException(f"nothing at {path}: give a capture or a folder of captures")
    states = [(c, s) for c in _candidates(folder, find_captures) if (s := read_status(c))]
    if not states:
        raise click.ClickException(
            f"no recorder status under {path}: it is written by `rtcap record` while it runs "
            "(recordings made before status files existed have none)"
        )
    degraded = False
    for capture, state in states:
        for line in _describe(capture, state):
            click.echo(line)
        degraded = degraded or (state["alive"] and state.get("health") != "ok")
    if degraded:
        raise SystemExit(1)


def _candidates(folder: Path, find_captures) -> list[Path]:
    """The capture itself, or every capture below a folder (with or without a manifest yet)."""
    if (folder / "status.json").exists():
        return [folder]
    found = set(find_captures(folder))
    found.update(p.parent for p in folder.glob("**/status.json"))
    return sorted(found)


def _describe(capture: Path, state: dict) -> list[str]:
    where = state.get("uri") or str(capture)
    if not state["alive"]:
        ended = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(state["updated_ns"] / 1e9))
        how = "finished" if not state.get("running") else "not running (its status went stale)"
        return [f"{where}: {how}, last seen {ended}; {state['rows']:,} rows"]
    elapsed = max(state.get("elapsed_s") or 0.0, 1e-9)
    lines = [
        f"{where}: recording (pid {state['pid']} on {state['host']}), {state['health']}"
        + (f": {'; '.join(state['reasons'])}" if state["reasons"] else ""),
        f"  {state['rows']:,} rows, {state['data_frames'] / elapsed:,.1f} frames/s on average, "
        f"gaps {_gaps(state['gaps'])}, seal backlog {state['seal_backlog']}, "
        f"upload backlog {state['upload_backlog']}",
    ]
    for stream, info in state["streams"].items():
        age = info["last_frame_age_s"]
        lines.append(
            f"  {stream:<10} {info['state']:<24} {info['frames']:>10,} frames  "
            f"last {'-' if age is None else f'{age:.1f} s ago':<12} "
            f"reconnects {info['reconnects']}"
        )
    return lines


def _gaps(gaps: dict[str, int]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in sorted(gaps.items())) or "none"
