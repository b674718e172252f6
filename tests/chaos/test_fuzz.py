"""Fuzz targets (hypothesis): every codec, the whole pipeline, the journal reader, the manifest
loader and the importer's line parser take arbitrary and mutated input without raising
anything but their documented, one-line errors."""

from __future__ import annotations

import os

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtcap.codecs import CODEC_NAMES, codec_for, frame_hints
from rtcap.models import Frame
from rtcap.pipeline import Pipeline
from rtcap.simulator import MarketSimulator
from rtcap.storage import manifest as manifests
from rtcap.storage.errors import CaptureError
from rtcap.storage.importer import FORMATS, _parse
from rtcap.storage.integrity import segment_files, sessions
from rtcap.storage.journal import JournalWriter, read_journal
from rtcap.storage.schema import FrameColumns

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("RTCAP_FUZZ_EXAMPLES", "150"))  # make test-slow: 3,000
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
SAMPLES = [f.payload for f in MarketSimulator(3, ["MNQ", "ES"]).frames(max_frames=60)] + [
    b'{"stream":"ethusdt@trade","data":{"e":"trade","E":1,"s":"ETHUSDT","t":7,"p":"2500.1",'
    b'"q":"0.5","T":1723075200000,"m":true}}',
    b'{"stream":"ethusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"ETHUSDT","U":5,'
    b'"u":9,"b":[["2500.0","1.5"]],"a":[["2500.5","0"]]}}',
    b'{"stream":"ethusdt@bookTicker","data":{"u":9,"s":"ETHUSDT","b":"2500.0","B":"1",'
    b'"a":"2500.5","A":"2"}}',
    b'{"lastUpdateId":9,"bids":[["2500.0","1.5"]],"asks":[["2500.5","2"]]}',
]


@st.composite
def mutated(draw) -> bytes:
    """A real frame, bit-flipped, cut, spliced or with bytes inserted; or pure noise."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "splice", "replace"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del data[position:]
        elif action == "insert":
            data[position:position] = draw(
                st.sampled_from([b"\x1e", b"{", b"]", b'"', b"null", b"1e999", b"-", b"\xff"])
            )
        elif action == "splice":
            data[position:] = draw(st.sampled_from(SAMPLES))
        else:
            data[position : position + 4] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


def frame_of(payload: bytes, seq: int = 0) -> Frame:
    return Frame(seq, 1_723_075_200_000_000_000 + seq, 0, 1, "market", "text", payload)


@pytest.mark.parametrize("name", CODEC_NAMES)
@FUZZ
@given(payload=mutated())
def test_codecs_never_raise(name, payload):
    codec = codec_for(name)
    decoded = codec.decode(frame_of(payload))
    assert isinstance(decoded, list)
    hints = frame_hints(payload)
    assert len(hints) == 3


@FUZZ
@given(payloads=st.lists(mutated(), min_size=1, max_size=12))
def test_the_pipeline_never_raises_and_counts_what_it_cannot_read(payloads):
    pipeline = Pipeline(None, ["1sec", "1min"], codec="auto")
    events = []
    for seq, payload in enumerate(payloads):
        events.extend(pipeline.feed(frame_of(payload, seq)))
    assert all(event.type is not None for event in events)


@pytest.fixture(scope="module")
def journal_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("journal") / "segment-000001.rtj"
    frames = [frame_of(p, i) for i, p in enumerate(SAMPLES * 3)]
    writer = JournalWriter(path, fsync="never")
    blocks = []
    for start in range(0, len(frames), 20):
        chunk = FrameColumns.of(frames[start : start + 20]).to_table()
        writer.write(chunk, 0.0)
        blocks.append(chunk)
    writer.close()
    return path.read_bytes(), blocks


@FUZZ
@given(data=st.data())
def test_the_journal_reader_keeps_exactly_the_intact_blocks(journal_bytes, tmp_path, data):
    original, blocks = journal_bytes
    damaged = bytearray(original)
    for _ in range(data.draw(st.integers(1, 5))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "garbage"]))
        position = data.draw(st.integers(0, len(damaged) - 1)) if damaged else 0
        if action == "flip" and damaged:
            damaged[position] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "cut":
            del damaged[position:]
        elif action == "insert":
            damaged[position:position] = data.draw(st.binary(max_size=64))
        else:
            damaged[position:position] = b"RTJ2" + data.draw(st.binary(max_size=40))
    path = tmp_path / "segment-000001.rtj"
    path.write_bytes(bytes(damaged))
    scan = read_journal(path)
    # Whatever it kept is intact blocks of the original, in their order.
    remaining = list(blocks)
    for table in scan.tables:
        while remaining and not remaining[0].equals(table):
            remaining.pop(0)
        assert remaining, "a block the writer never wrote came back"
        remaining.pop(0)
    if bytes(damaged) != original:
        assert scan.damage or scan.blocks < len(blocks) or len(damaged) > len(original)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
VALID_MANIFEST = {
    **manifests.new_manifest({"kind": "test"}, 1),
    "segments": [
        {
            "number": 1,
            "rows": 2,
            "payload_bytes": 10,
            "first_seq": 0,
            "last_seq": 1,
            "first_ns": 1,
            "last_ns": 2,
            "files": [
                {
                    "path": "frames/date=2025-01-01/part-000001.parquet",
                    "rows": 2,
                    "bytes": 100,
                    "sha256": "0" * 64,
                    "first_seq": 0,
                    "last_seq": 1,
                }
            ],
        }
    ],
}


@st.composite
def manifest_documents(draw) -> bytes:
    if draw(st.booleans()):
        return orjson.dumps(draw(JSON))
    document = orjson.loads(orjson.dumps(VALID_MANIFEST))
    target = document
    for _ in range(draw(st.integers(0, 3))):
        if isinstance(target, dict) and target:
            key = draw(st.sampled_from(sorted(target)))
            if isinstance(target[key], dict | list) and draw(st.booleans()):
                target = target[key]
                if isinstance(target, list) and target:
                    target = target[0]
                continue
            target[key] = draw(JSON)
    raw = orjson.dumps(document)
    if draw(st.integers(0, 4)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


@FUZZ
@given(document=manifest_documents())
def test_the_manifest_loader_accepts_or_explains(tmp_path, document):
    (tmp_path / "manifest.json").write_bytes(document)
    try:
        loaded = manifests.load(tmp_path)
    except CaptureError as exc:
        assert "manifest.json" in str(exc) and "\n" not in str(exc)
        return
    for entry in segment_files(loaded):  # what readers do next must not fall over either
        assert not entry["path"].startswith("/") and ".." not in entry["path"]
    assert isinstance(sessions(loaded), list)
    assert isinstance(manifests.gap_summary(loaded), str)


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(line=st.one_of(st.binary(max_size=200), mutated().map(lambda p: b"1723075200000 " + p)))
def test_import_lines_parse_or_give_a_reason(fmt, line):
    try:
        recv, payload, stream = _parse(line, fmt)
    except (ValueError, OverflowError, UnicodeDecodeError) as exc:
        assert str(exc)
        return
    assert 631_152_000 * 10**9 <= recv < 7_258_118_400 * 10**9
    assert isinstance(payload, bytes) and isinstance(stream, str)
