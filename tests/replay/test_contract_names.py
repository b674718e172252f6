"""A capture names its contracts as its recorder resolved them from the gateway: replay uses
that before the instrument table, so a product the table lacks replays under its own symbol."""

import orjson
from click.testing import CliRunner
from helpers import Tape, write_capture

from rtcap.cli import main
from rtcap.replay.source import Replay
from rtcap.storage.manifest import contract_names, subscribed_contracts

NEW = "CON.F.US.NEWR.H26"  # a root the table does not know, resolved for the symbol "NEW"


def test_replay_names_contracts_as_the_recorder_resolved_them(tmp_path):
    tape = Tape()
    for second, price in ((1, 10.0), (30, 10.5), (61, 11.0), (125, 11.5)):
        tape.trade(f"2025-09-02T14:{second // 60:02d}:{second % 60:02d}Z", price, contract=NEW)
    writer = write_capture(tmp_path / "cap", tape.frames)
    entry = {"symbol": "NEW", "contract": NEW, "symbolId": "F.US.NEWR", "channels": ["trades"]}
    writer.set_subscriptions([{"stream": "market", "subscriptions": [entry]}])
    writer.close()
    source = Replay(tmp_path / "cap")
    assert subscribed_contracts(source.manifest) == {"NEW": NEW}
    assert source.contract_names == contract_names(source.manifest) == {NEW: "NEW"}
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "cap"), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    bars = [orjson.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [(b["instrument"], b["close"]) for b in bars] == [("NEW", 10.5), ("NEW", 11.0)]
