"""A capture must say what it did not see: stalls shorter than the stale timeout become
``silence`` rows, a gateway restart is a reconnect (with a fresh login) rather than the end of
the recording, oversized messages leave an error row, and live bars survive kill -9."""

from __future__ import annotations

import signal
import time

import harness
import orjson
from click.testing import CliRunner

from rtcap.cli import main
from rtcap.storage.integrity import open_capture, read_frames


def gap_rows(capture):
    return [orjson.loads(f.payload) for f in read_frames(capture) if f.kind == "gap"]


def record_faulty_sim(capture, sim_faults, recorder_options, seconds):
    """Record ``rtcap sim`` with these faults for ``seconds`` after the first journal write (the
    faults count from the connection, not from the recorder process starting); the recorder
    must exit 0."""
    sim = harness.start_sim(rate=300, extra=sim_faults)
    try:
        process = harness.start_recorder(capture, sim, *recorder_options)
        harness.wait_for_journal(capture, process)
        time.sleep(seconds)
        code, _, err = harness.stop(process)
    finally:
        sim.stop()
    assert code == 0, err


def test_a_stall_shorter_than_the_stale_timeout_is_a_silence_row(tmp_path):
    capture = tmp_path / "cap"
    stall = ("--stall-after", "1s", "--stall-for", "2.5s")
    record_faulty_sim(capture, stall, ("--silence-after", "1s"), 5.0)
    (silence,) = [g for g in gap_rows(capture) if g["kind"] == "silence"]
    assert 2.3 <= silence["seconds"] <= 4.0  # the stall, measured between two messages
    assert not [g for g in gap_rows(capture) if g["kind"] == "connection"]  # never reconnected
    info = CliRunner().invoke(main, ["info", str(capture)])
    assert "1 silence gap (" in info.output and "s connected but silent" in info.output
    verify = CliRunner().invoke(main, ["verify", str(capture), "--speed", "50x"])
    assert verify.exit_code == 0 and "recorded gaps: 1 silence gap" in verify.output


def test_stale_detection_writes_down_the_silence_before_it(tmp_path):
    capture = tmp_path / "cap"
    stall = ("--stall-after", "1s", "--stall-for", "30s")
    record_faulty_sim(capture, stall, ("--stale-after", "2s"), 4.5)
    gaps = gap_rows(capture)
    silence = [g for g in gaps if g["kind"] == "silence"]
    connection = [g for g in gaps if g["kind"] == "connection"]
    assert silence and silence[0]["seconds"] >= 2.0  # the stale timeout's worth of silence
    assert connection and connection[0]["from_ns"] >= silence[0]["to_ns"] - 50_000_000
    covered = silence[0]["seconds"] + connection[0]["seconds"]
    assert covered >= 2.0


def test_a_gateway_restart_is_a_reconnect_with_a_fresh_login(tmp_path):
    port = harness.free_port()
    sim = harness.start_sim(rate=300, port=port)
    capture = tmp_path / "cap"
    process = harness.start_recorder(capture, sim, "--backoff-max", "0.5s", "--duration", "10s")
    try:
        harness.wait_for_journal(capture, process)
        time.sleep(1.5)
        sim.stop()  # a new gateway process: new token secret, the cached token is refused
        time.sleep(1.5)
        sim = harness.start_sim(rate=300, port=port)
        _, err = process.communicate(timeout=30)  # --duration ends it
        code, err = process.returncode, err.decode()
    finally:
        sim.stop()
    assert code == 0, err
    frames = list(read_frames(capture))
    opens = [f for f in frames if f.kind == "open"]
    assert len(opens) >= 2  # it came back after the restart
    (gap,) = [g for g in gap_rows(capture) if g["kind"] == "connection"]
    assert 1.0 <= gap["seconds"] <= 20.0  # down 1.5 s, plus a new process starting up
    errors = [orjson.loads(f.payload) for f in frames if f.kind == "error"]
    # The old gateway's token was refused once by the new one, then a fresh login worked.
    assert [e for e in errors if e.get("error") == "HTTP 401"]
    after = [f for f in frames if f.kind == "text" and f.conn == opens[-1].conn]
    assert sum(f.payload.count(b"GatewayTrade") for f in after) > 10  # data flows again


def test_a_message_over_the_limit_leaves_an_error_row(tmp_path):
    capture = tmp_path / "cap"
    oversized = ("--oversized-after", "1s", "--oversized-bytes", str(17 * 1024 * 1024))
    record_faulty_sim(capture, oversized, ("--backoff-max", "0.5s"), 4.0)
    frames = list(read_frames(capture))
    errors = [orjson.loads(f.payload) for f in frames if f.kind == "error"]
    too_big = [e for e in errors if e["event"] == "message_too_big"]
    assert too_big and too_big[0]["limit_bytes"] == 16 * 1024 * 1024
    closes = [orjson.loads(f.payload) for f in frames if f.kind == "close"]
    assert closes[0]["code"] == 1009 and closes[0]["by"] == "message_too_big"


def test_live_bars_survive_kill_9_and_verify_agrees(tmp_path, sim):
    capture = tmp_path / "cap"
    process = harness.start_recorder(capture, sim, "--bars", "1sec", "--flush-ms", "50")
    harness.wait_for_journal(capture, process)
    time.sleep(3.0)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    result = harness.recover(capture)
    assert result.returncode == 0, result.stderr
    assert "live bars sealed from their journal" in result.stdout
    manifest = open_capture(capture)
    assert manifest["live_bars"]["count"] >= 2
    assert manifest["connections"]  # rebuilt from the journaled rows
    verify = CliRunner().invoke(main, ["verify", str(capture), "--speed", "50x"])
    assert verify.exit_code == 0, verify.output
    assert f"the {manifest['live_bars']['count']} live bars" in verify.output


def test_a_short_stall_on_a_busy_stream_is_a_silence_by_its_own_rhythm(tmp_path):
    """At 1,500 messages a second a 2 s stall loses thousands of messages: the default
    --silence-after (5 s) is only the upper bound; the stream's rhythm (a few ms between
    messages) makes it a silence row."""
    capture = tmp_path / "cap"
    sim = harness.start_sim(rate=1500, extra=("--stall-after", "1.5s", "--stall-for", "2s"))
    try:
        process = harness.start_recorder(capture, sim)
        harness.wait_for_journal(capture, process)
        time.sleep(5)
        code, _, err = harness.stop(process)
    finally:
        sim.stop()
    assert code == 0, err
    silences = [g for g in gap_rows(capture) if g["kind"] == "silence"]
    (stall,) = [g for g in silences if 1.8 <= g["seconds"] <= 3.0]  # (a starved CI may add more)
    frames = [f for f in read_frames(capture) if f.kind == "text"]
    inside = [f for f in frames if stall["from_ns"] < f.recv_ns < stall["to_ns"]]
    assert inside == []  # the row spans from the last message to the next


def test_a_dropped_connection_is_a_gap_from_the_last_message_received(tmp_path):
    capture = tmp_path / "cap"
    record_faulty_sim(capture, ("--drop-after", "2s"), (), 4.0)
    frames = list(read_frames(capture))
    first_close = next(f for f in frames if f.kind == "close")
    last_before = max(f.recv_ns for f in frames if f.kind == "text" and f.seq < first_close.seq)
    connection = [g for g in gap_rows(capture) if g["kind"] == "connection"]
    assert connection and connection[0]["from_ns"] == last_before
    assert connection[0]["to_ns"] > first_close.recv_ns
