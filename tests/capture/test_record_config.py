"""``rtcap record --config recorders.toml``: several recorders in one process, isolated (one
failing stops only itself), stopped together by SIGTERM, each sealing its own capture."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

from click.testing import CliRunner
from helpers import one_line_error

from rtcap.cli import main
from rtcap.storage.integrity import open_capture, read_frames


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(path, recorders: list[dict]) -> None:
    lines = []
    for recorder in recorders:
        lines.append("[[recorder]]")
        for key, value in recorder.items():
            if isinstance(value, list):
                lines.append(f"{key} = [{', '.join(repr(v) for v in value)}]".replace("'", '"'))
            elif isinstance(value, int | float) and not isinstance(value, bool):
                lines.append(f"{key} = {value}")
            else:
                lines.append(f'{key} = "{value}"')
        lines.append("")
    path.write_text("\n".join(lines))


def test_recorders_of_one_file_run_together_and_one_failing_stops_only_itself(tmp_path):
    config = tmp_path / "recorders.toml"
    write_config(config, [
        {"name": "futures", "capture": str(tmp_path / "futures"), "symbols": "MNQ,ES",
         "duration": "3s", "bars": ["1sec", "5sec"]},
        {"name": "metals", "capture": str(tmp_path / "metals"), "symbols": "GC", "seed": 9,
         "duration": "3s", "redact": ["session"]},
        {"name": "broken", "capture": str(tmp_path / "broken"), "source": "projectx",
         "symbols": "MNQ", "username": "me", "api_key": "key",
         "api_url": f"http://127.0.0.1:{closed_port()}/api"},
    ])  # fmt: skip
    started = time.monotonic()
    result = CliRunner().invoke(main, ["record", "--config", str(config)])
    took = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert "[futures] recorded" in result.output and "[metals] recorded" in result.output
    assert "[broken] Error: cannot start market feed: cannot reach" in result.output
    assert "1 of 3 recorders failed (broken)" in result.output
    assert took < 3 + 3 + 4  # side by side, not one after the other
    futures, metals = open_capture(tmp_path / "futures"), open_capture(tmp_path / "metals")
    assert futures["status"] == metals["status"] == "closed"
    assert futures["live_bars"]["timeframes"] == ["1sec", "5sec"]
    assert not (tmp_path / "broken").exists()
    symbols = {f.symbol for f in read_frames(tmp_path / "metals") if f.symbol}
    assert symbols and all(".GCE." in s for s in symbols)  # its own symbols, its own feed
    assert CliRunner().invoke(main, ["verify", str(tmp_path / "futures")]).exit_code == 0


def test_sigterm_stops_every_recorder_of_the_file_and_each_seals(tmp_path):
    config = tmp_path / "recorders.toml"
    write_config(config, [
        {"name": "a", "capture": str(tmp_path / "a"), "symbols": "MNQ"},
        {"name": "b", "capture": str(tmp_path / "b"), "symbols": "ES", "seed": 3},
    ])  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "rtcap", "record", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not all((tmp_path / n / "status.json").exists() for n in "ab"):
        assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "[a] recorded" in out and "[b] recorded" in out
    for name in "ab":
        assert open_capture(tmp_path / name)["status"] == "closed"
        assert len(list(read_frames(tmp_path / name))) > 10


def test_a_config_is_checked_as_the_command_line_is(tmp_path):
    config = tmp_path / "recorders.toml"
    write_config(config, [{"name": "a", "capture": str(tmp_path / "a"), "colour": "blue"}])
    one_line_error(
        CliRunner().invoke(main, ["record", "--config", str(config)]),
        "recorder 'a' has an unknown option 'colour'",
    )
    write_config(config, [{"name": "a", "flush_ms": "0"}])
    one_line_error(
        CliRunner().invoke(main, ["record", "--config", str(config)]), "recorder 'a'", "flush-ms"
    )
    write_config(config, [{"name": "a"}, {"name": "a"}])
    one_line_error(
        CliRunner().invoke(main, ["record", "--config", str(config)]), "needs a name of its own"
    )
    config.write_text("title = 'no recorders'\n")
    one_line_error(
        CliRunner().invoke(main, ["record", "--config", str(config)]), "no [[recorder]] tables"
    )
    mixed = CliRunner().invoke(main, ["record", "--config", str(config), "--duration", "1s"])
    assert (
        mixed.exit_code == 2 and "put --duration" in mixed.output
    ) or "put duration" in mixed.output


def test_the_readme_example_is_a_valid_config(tmp_path):
    from pathlib import Path

    from rtcap.cli.record import _config_recorders

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = readme.split("# recorders.toml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "recorders.toml"
    config.write_text(example)
    recorders = _config_recorders(config)
    assert list(recorders) == ["futures", "btc", "practice"]
    assert recorders["futures"]["bars"] == ["1min", "5min"]
    assert recorders["btc"]["dataset"] == "s3://tapes/binance"
    assert recorders["practice"]["redact_names"] == ("session",)
