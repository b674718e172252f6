"""Compacting the days a recording has closed, while it goes on recording.

When a roll closes a day's capture, ``rtcap compact`` rewrites it in the cold form
(:mod:`rtcap.storage.compact`) in a child process at low CPU priority: the recorder's own work,
journaling the open day, always comes first, and the child's memory is its own. The child
holds the capture's lock and proves every file before switching it, as the command does.

When the recording stops, a compaction still running is interrupted (SIGINT, as Ctrl+C would):
it removes what it had written and leaves each file it had not finished listed as it was, hot;
``rtcap compact`` later picks up where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("rtcap.capture")

NICENESS = 10  # added to the recorder's: the child runs when the recorder does not need the CPU
STOP_GRACE_S = 10.0  # how long an interrupted compaction may take to clean up before a kill


@dataclass
class Compacted:
    capture: Path
    code: int  # the child's exit code (0: compacted)
    said: str  # its last line of output


class ClosedDayCompactions:
    """Compactions of closed captures, one child process each, and how they ended."""

    def __init__(self) -> None:
        self.ended: list[Compacted] = []
        self._running: dict[Path, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, capture: Path) -> None:
        self._tasks.append(asyncio.create_task(self._compact(capture)))

    async def _compact(self, capture: Path) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rtcap",
            "compact",
            str(capture),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a Ctrl+C at the terminal is the recorder's to hand on
        )
        niceness = os.getpriority(os.PRIO_PROCESS, 0) + NICENESS
        with contextlib.suppress(OSError):  # it may already have ended
            os.setpriority(os.PRIO_PROCESS, process.pid, niceness)
        self._running[capture] = process
        try:
            output, _ = await process.communicate()
        finally:
            self._running.pop(capture, None)
        lines = output.decode(errors="replace").strip().splitlines()
        ended = Compacted(capture, process.returncode or 0, lines[-1] if lines else "")
        self.ended.append(ended)
        if ended.code:
            log.warning("compacting %s failed (exit %d): %s", capture, ended.code, ended.said)

    async def stop(self) -> list[Path]:
        """Interrupt the compactions still running and wait for them; the captures they were
        compacting (each still whole: see the module's docstring)."""
        interrupted = list(self._running)
        for process in self._running.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
        waiting = asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(asyncio.shield(waiting), STOP_GRACE_S)
        except TimeoutError:
            for process in self._running.values():
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await waiting
        return interrupted
