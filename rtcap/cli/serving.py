"""What the long-running commands share: stopping cleanly on Ctrl+C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGINT/SIGTERM (only possible on the main thread; elsewhere a no-op)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
