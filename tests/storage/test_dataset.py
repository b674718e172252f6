"""One dataset, many recorders: the source=/date=/recorder= layout, views over the root, replay
and export of the root merged in receive-time order, and two recorders of the same feed
refused until one is chosen."""

import itertools
import re
from pathlib import Path

import orjson
from click.testing import CliRunner
from helpers import write_capture
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcap.cli import main
from rtcap.simulator import MarketSimulator
from rtcap.storage.dataset import DatasetReader, capture_path, find_captures
from rtcap.storage.integrity import read_frames


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def recorder(root, name, instruments, seed, *, date="2025-09-02"):
    path = Path(capture_path(root, "sim", date, name))
    frames = list(MarketSimulator(seed, instruments, rate=150).frames(duration_s=150))
    source = {"kind": "sim", "instruments": list(instruments), "seed": seed}
    write_capture(path, frames, source=source, segment_max_bytes=50_000).close()
    return path


def bars_of(output: str) -> list[str]:
    return sorted(line for line in output.splitlines()[1:] if line)


def test_a_dataset_root_reads_as_one_merged_in_receive_time_order(tmp_path):
    root = tmp_path / "tapes"
    a = recorder(root, "a", ("MNQ",), 1)
    b = recorder(root, "b", ("ES",), 2)
    assert str(a).endswith("tapes/source=sim/date=2025-09-02/recorder=a")
    assert [p.name for p in find_captures(root)] == ["recorder=a", "recorder=b"]

    counts = run("sql", root, "-c", "select capture, count(*) from frames group by 1 order by 1",
                 "--format", "json")  # fmt: skip
    assert counts.exit_code == 0, counts.output
    labels = {row["capture"]: row["count_star()"] for row in orjson.loads(counts.output)}
    assert labels == {
        "source=sim/date=2025-09-02/recorder=a": len(list(read_frames(a))),
        "source=sim/date=2025-09-02/recorder=b": len(list(read_frames(b))),
    }

    reader = DatasetReader(root, [a, b])
    merged = [
        row for table in reader.tables() for row in table.select(["recv_ns", "payload"]).to_pylist()
    ]
    assert [r["recv_ns"] for r in merged] == sorted(r["recv_ns"] for r in merged)
    every = sorted((f.recv_ns, f.payload) for c in (a, b) for f in read_frames(c))
    assert sorted((r["recv_ns"], r["payload"]) for r in merged) == every

    together = run("replay", root, "--timeframes", "1min", "--format", "csv")
    alone = [run("replay", c, "--timeframes", "1min", "--format", "csv") for c in (a, b)]
    assert together.exit_code == 0, together.output
    assert bars_of(together.stdout) == sorted(bars_of(alone[0].stdout) + bars_of(alone[1].stdout))
    assert len(bars_of(together.stdout)) >= 4
    export = run("export", root, "--out", tmp_path / "out", "--timeframes", "1min")
    assert export.exit_code == 0 and "MNQ:" in export.output and "ES:" in export.output


def test_two_recorders_of_the_same_feed_must_be_chosen_between(tmp_path):
    root = tmp_path / "tapes"
    recorder(root, "a", ("MNQ",), 1)
    recorder(root, "b", ("ES",), 2)
    recorder(root, "c", ("MNQ",), 1)  # a second machine on the same feed
    refused = run("replay", root, "--timeframes", "1min", "--format", "csv")
    assert refused.exit_code == 1
    assert re.search(r"recorder=a and .*recorder=c recorded the same feed", refused.output)
    assert "--recorders" in refused.output and "Traceback" not in refused.output
    chosen = [
        run("replay", root, "--recorders", pick, "--timeframes", "1min", "--format", "csv")
        for pick in ("a,b", "c,b")
    ]
    assert chosen[0].exit_code == chosen[1].exit_code == 0
    assert bars_of(chosen[0].stdout) == bars_of(chosen[1].stdout) != []
    missing = run("replay", root, "--recorders", "zz")
    assert missing.exit_code == 1 and "no capture of ['zz']" in missing.output


def test_record_into_a_dataset(tmp_path):
    result = run("record", "--dataset", tmp_path / "tapes", "--recorder", "box-1",
                 "--duration", "2s", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    (capture,) = find_captures(tmp_path / "tapes")
    assert re.fullmatch(r"source=sim/date=\d{4}-\d{2}-\d{2}/recorder=box-1",
                        capture.relative_to(tmp_path / "tapes").as_posix())  # fmt: skip
    both = run("record", tmp_path / "x", "--dataset", tmp_path / "tapes", "--duration", "1s")
    assert both.exit_code == 2 and "not both" in both.output


def test_captures_of_different_protocols_under_one_root_each_decode_with_their_own(
    tmp_path, binance_capture
):
    """An imported Binance capture and a ProjectX one both name their stream "market": read
    together, each is decoded by its own codec (its stream is "market@binance" or
    "market@projectx"), so the root gives every bar that each gives alone, and no errors."""
    root = tmp_path / "root"
    imported = run("import", "--format", "hftbacktest", binance_capture, root / "binance")
    assert imported.exit_code == 0, imported.output
    projectx = recorder(root, "px", ["MNQ", "ES"], 5)

    def bars(path) -> list[str]:
        result = run("replay", path, "--timeframes", "1min", "--format", "csv")
        assert result.exit_code == 0, result.output
        return bars_of(result.stdout)

    together = bars(root)
    alone = sorted(bars(root / "binance") + bars(projectx))
    assert set(alone) <= set(together)
    # Beyond them only each instrument's last bar, which the later capture's clock closed.
    for extra in set(together) - set(alone):
        symbol = extra.split(",")[1]
        assert extra == max(line for line in together if line.split(",")[1] == symbol)
    assert {line.split(",")[1] for line in together} == {"ETHUSDT", "MNQ", "ES"}
    reader = DatasetReader(root, find_captures(root))
    streams = {s for table in reader.tables() for s in table.column("stream").to_pylist()}
    assert {"market@binance", "market@projectx"} <= streams and "market" not in streams
    # A root of one protocol keeps its stream names.
    single = DatasetReader(tmp_path / "one", [projectx])
    assert single.renamed == [{}]


FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
REAL = {
    "spot": FIXTURES / "binance-spot" / "ethusdt_20240808_3min.gz",
    "usdm": FIXTURES / "binance-usdm" / "ethusdt_20240808_1min.gz",
    "coinm": FIXTURES / "binance-coinm" / "ethusd_perp_20240808_1min.gz",
}


def sql_rows(*args):
    result = run("sql", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output)


def test_overlap_is_judged_per_venue_symbol_and_channel(tmp_path):
    """Three real Binance venues recorded at the same time are read side by side; one file
    imported twice is one feed twice, refused by every reader until --recorders chooses; and a
    replay, which builds one instrument per symbol, refuses ETHUSDT from spot and USD-M at once."""
    root = tmp_path / "real"
    for name, file in REAL.items():
        imported = run("import", "--format", "hftbacktest", file, root / name)
        assert imported.exit_code == 0, imported.output
    trades = "select capture, count(*) as n from trades group by 1 order by 1"
    together = {r["capture"]: r["n"] for r in sql_rows(root, "-c", trades)}
    alone = {name: sql_rows(root / name, "-c", trades)[0]["n"] for name in REAL}
    assert together == alone and min(alone.values()) > 100

    mixed = run("replay", root, "--timeframes", "1min", "--format", "csv")
    assert mixed.exit_code == 1 and "Traceback" not in mixed.output
    assert re.search(r"spot and usdm both hold ETHUSDT \w+ at the same time", mixed.output)
    assert "--recorders spot" in mixed.output
    chosen = run("replay", root, "--recorders", "coinm,spot", "--timeframes", "1min",
                 "--format", "csv")  # fmt: skip
    assert chosen.exit_code == 0, chosen.output
    assert {line.split(",")[1] for line in bars_of(chosen.stdout)} == {"ETHUSDT", "ETHUSD_PERP"}

    again = run("import", "--format", "hftbacktest", REAL["usdm"], root / "usdm-again")
    assert again.exit_code == 0, again.output
    manifest = orjson.loads((root / "usdm-again" / "manifest.json").read_bytes())
    assert {(stream, channel, symbol) for stream, channel, symbol, _, _ in manifest["feeds"]} == {
        ("market", "trade", "ETHUSDT"), ("market", "bookTicker", "ETHUSDT"),
        ("market", "depth@0ms", "ETHUSDT"), ("market", "depthSnapshot", ""),
    }  # fmt: skip
    info = run("info", root / "usdm-again")
    assert re.search(r"^feed +import hftbacktest [0-9a-f]{16}: ETHUSDT bookTicker, depth@0ms, "
                     r"trade$", info.output, re.M), info.output  # fmt: skip
    # a capture sealed before manifests listed feeds: its files' hint columns tell them
    del manifest["feeds"]
    (root / "usdm-again" / "manifest.json").write_bytes(orjson.dumps(manifest))
    both = ["--recorders", "usdm,usdm-again"]
    for command in (["sql", root, "-c", trades], ["export", root, *both, "--out", tmp_path / "x"]):
        refused = run(*command)
        assert refused.exit_code == 1, refused.output
        assert re.search(r"usdm and usdm-again recorded the same feed at the same time "
                         r"\(ETHUSDT \w+ from import hftbacktest [0-9a-f]{16}\)", refused.output)  # fmt: skip
    picked = {r["capture"]: r["n"] for r in sql_rows(root, "--recorders", "coinm,spot,usdm-again",
                                                      "-c", trades)}  # fmt: skip
    assert picked == {"coinm": alone["coinm"], "spot": alone["spot"], "usdm-again": alone["usdm"]}


def test_one_gateway_on_mnq_and_another_on_mnq_and_es_is_refused_for_mnq(tmp_path):
    root = tmp_path / "tapes"
    recorder(root, "a", ("MNQ",), 1)
    recorder(root, "b", ("MNQ", "ES"), 1)
    for command in (["sql", root, "-c", "select 1"], ["replay", root, "--format", "csv"]):
        refused = run(*command)
        assert refused.exit_code == 1
        assert re.search(r"recorder=a and .*recorder=b recorded the same feed at the same time "
                         r"\(CON\.F\.US\.MNQ\.\w+ Gateway\w+ from sim seed=1\)", refused.output)  # fmt: skip
    # different symbols of the same venue never conflict
    other = tmp_path / "other"
    recorder(other, "a", ("MNQ",), 1)
    recorder(other, "e", ("ES",), 1)
    rows = sql_rows(other, "-c", "select capture, count(*) as n from trades group by 1")
    assert len(rows) == 2 and all(r["n"] > 50 for r in rows)


def test_a_feed_split_at_one_instant_is_not_recorded_twice():
    from rtcap.storage.identity import overlapping

    feed = ("sim seed=1", "CON.F.US.MNQ.U25", "GatewayTrade")
    touching = [("a", {feed: (0, 100)}), ("b", {feed: (100, 200)})]
    assert overlapping(touching) is None
    crossing = [("a", {feed: (0, 101)}), ("b", {feed: (100, 200)})]
    assert overlapping(crossing) == ("a", "b", feed, feed)
    other_venue = ("sim seed=2", *feed[1:])
    apart = [("a", {feed: (0, 200)}), ("b", {other_venue: (100, 200)})]
    assert overlapping(apart) is None
    assert overlapping(apart, across_venues=True) == ("a", "b", feed, other_venue)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["v1", "v2"]),
            st.sampled_from(["MNQ", "ES", ""]),
            st.integers(0, 50),
            st.integers(0, 30),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_the_overlap_sweep_agrees_with_comparing_every_pair(rows, across_venues):
    from rtcap.storage.identity import overlapping

    captures = [
        (f"c{index}", {(venue, symbol, "trade"): (start, start + length)})
        for index, (venue, symbol, start, length) in enumerate(rows)
    ]

    def same(a, b):
        if across_venues and a[1] and b[1]:
            return a[1:] == b[1:]
        return a == b

    pairs = sorted(
        (one, other)
        for (one, feeds), (other, other_feeds) in itertools.combinations(captures, 2)
        for a, (first, last) in feeds.items()
        for b, (o_first, o_last) in other_feeds.items()
        if same(a, b) and first < o_last and o_first < last
    )
    found = overlapping(captures, across_venues=across_venues)
    assert (found is None) == (not pairs)
    if found is not None:
        assert found[:2] in pairs


def test_segment_feeds_reads_blocks_whose_dictionaries_differ():
    import pyarrow as pa

    from rtcap.storage.identity import segment_feeds
    from rtcap.storage.schema import FrameColumns, frames_v2

    blocks = []
    for seed, symbol in ((1, "MNQ"), (2, "ES")):  # two journal blocks, two dictionaries
        columns = FrameColumns()
        for frame in MarketSimulator(seed, (symbol,), rate=200).frames(max_frames=300):
            columns.append(frame)
        blocks.append(frames_v2(columns.to_table()))
    table = pa.concat_tables(blocks)
    assert table.column("symbol").num_chunks == 2
    found = segment_feeds(table)
    assert {symbol.split(".")[3] for _, _, symbol in found} == {"MNQ", "EP"}
    assert {channel for _, channel, _ in found} == {"GatewayTrade", "GatewayQuote", "GatewayDepth"}
    assert found == segment_feeds(blocks[0]) | segment_feeds(blocks[1])
