"""The recorder's ``/metrics`` (Prometheus text format) and ``/healthz`` over HTTP.

Values are read from :func:`rtcap.capture.health.snapshot` when a scraper asks, so scraping
costs the recorder nothing between scrapes; only journal flush times are observed as they
happen (a histogram cannot be rebuilt afterwards). ``/healthz`` answers ``200 ok`` or ``503
degraded: …`` by :func:`rtcap.capture.health.health`, the rule ``rtcap status`` uses too.
Bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rtcap.capture.health import health, snapshot

if TYPE_CHECKING:
    from rtcap.capture.recorder import Recorder

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RecorderCollector(Collector):
    """Every recorder figure, read from one snapshot per scrape."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def collect(self) -> Iterator[Metric]:
        state = snapshot(self.recorder)
        streams = state["streams"]

        def per_stream(kind, name, doc, key, convert=float):
            family = kind(name, doc, labels=["stream"])
            for stream, info in streams.items():
                if info[key] is not None:
                    family.add_metric([stream], convert(info[key]))
            return family

        yield per_stream(CounterMetricFamily, "rtcap_frames", "Data frames recorded.", "frames")
        yield per_stream(CounterMetricFamily, "rtcap_bytes", "Payload bytes recorded.", "bytes")
        yield per_stream(
            CounterMetricFamily, "rtcap_reconnects", "Reconnections of the stream.", "reconnects"
        )
        yield per_stream(
            GaugeMetricFamily, "rtcap_connected", "1 while the stream is connected.", "connected"
        )
        yield per_stream(
            GaugeMetricFamily,
            "rtcap_last_frame_age_seconds",
            "Seconds since the stream's last message.",
            "last_frame_age_s",
        )
        gaps = CounterMetricFamily("rtcap_gaps", "Gap rows written, by kind.", labels=["kind"])
        for kind, count in state["gaps"].items():
            gaps.add_metric([kind], count)
        yield gaps
        yield CounterMetricFamily("rtcap_rows", "Rows journaled (every kind).", value=state["rows"])
        journal = state["journal"]
        yield GaugeMetricFamily(
            "rtcap_journal_paused", "1 while the journal's disk is full.", value=journal["paused"]
        )
        yield GaugeMetricFamily(
            "rtcap_journal_held_bytes",
            "Bytes held in memory while the journal is paused.",
            value=journal["held_bytes"],
        )
        yield GaugeMetricFamily(
            "rtcap_seal_backlog_segments",
            "Segments rotated out and not sealed yet.",
            value=state["seal_backlog"],
        )
        yield GaugeMetricFamily(
            "rtcap_upload_backlog_files",
            "Sealed files not uploaded yet (URI captures).",
            value=state["upload_backlog"],
        )
        if state["disk_free_bytes"] is not None:
            yield GaugeMetricFamily(
                "rtcap_disk_free_bytes",
                "Free bytes on the capture's disk.",
                value=state["disk_free_bytes"],
            )
        verdict, _ = health(state)
        yield GaugeMetricFamily(
            "rtcap_healthy", "1 when /healthz says ok.", value=float(verdict == "ok")
        )


class MetricsServer:
    """``/metrics`` and ``/healthz`` of one recorder on ``host:port`` (port 0: any free one)."""

    def __init__(self, recorder: Recorder, host: str = "127.0.0.1", port: int = 0) -> None:
        self.recorder = recorder
        self.host, self.port = host, port
        self.registry = CollectorRegistry()
        self.registry.register(RecorderCollector(recorder))
        flushes = Histogram(
            "rtcap_journal_flush_seconds",
            "Time to write one journal block.",
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        recorder.on_flush = flushes.observe
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.get("/metrics", self._metrics), web.get("/healthz", self._healthz)])
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE}
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        verdict, reasons = health(snapshot(self.recorder))
        text = verdict if not reasons else f"{verdict}: " + "; ".join(reasons)
        return web.Response(status=200 if verdict == "ok" else 503, text=text + "\n")
