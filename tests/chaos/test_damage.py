"""Damage at rest, tried against every command that reads a capture.

Each kind of damage (bit flips, truncation, emptiness, missing and replaced files, broken
manifests, stray and copied files) meets replay, export, verify, sql, info, plot and recover.
A reader either gives the same answer as on the intact capture (the damage is outside what it
reads) or fails with one line naming the damaged file and what to do; never a traceback,
never a different answer with exit 0. Nothing is rewritten or deleted that rtcap does not own.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from rtcap.cli import main
from rtcap.storage.integrity import open_capture

READERS = {
    "replay": ["replay", "{cap}", "--timeframes", "1sec", "--format", "csv"],
    "export": ["export", "{cap}", "--out", "{out}", "--timeframes", "1sec"],
    "verify": ["verify", "{cap}", "--speed", "100x"],
    "sql": ["sql", "{cap}", "-c", "select count(*), sum(bytes) from frames"],
    "info": ["info", "{cap}"],
    "plot": ["plot", "{cap}", "--timeframe", "1sec", "-o", "{out}/chart.html"],
}


def run(args, cap, out):
    argv = [a.format(cap=cap, out=out) for a in args]
    return CliRunner().invoke(main, argv)


@pytest.fixture(scope="module")
def intact(tmp_path_factory):
    path = tmp_path_factory.mktemp("intact") / "cap"
    result = CliRunner().invoke(
        main,
        [
            *("record", str(path), "--duration", "3s", "--rate", "300", "--bars", "1sec"),
            *("--quiet", "--segment-minutes", "0.02"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(open_capture(path)["segments"]) >= 2
    answers = {}
    for name, args in READERS.items():
        out = tmp_path_factory.mktemp(f"out-{name}")
        answer = run(args, path, out)
        assert answer.exit_code == 0, (name, answer.output)
        answers[name] = strip_paths(answer.output, path, out)
    return path, answers


def strip_paths(text, cap, out):
    text = text.replace(str(cap), "CAP").replace(str(out), "OUT")
    text = re.sub(r"\d{8}T\d{6}Z", "STAMP", text)  # export names files by the time
    return re.sub(r" in \d+\.\d+s\b", " in Ts", text)  # replay says how long it took


def snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "capture.lock"
    }


def copy_of(intact, tmp_path):
    path = tmp_path / "cap"
    shutil.copytree(intact[0], path)
    return path


def segment(cap):
    return cap / open_capture(cap)["segments"][0]["files"][0]["path"]


def bars_file(cap):
    entry = open_capture(cap)["live_bars"]["files"][0]
    return cap / (entry if isinstance(entry, str) else entry["path"])


def flip(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


DAMAGE = {
    "segment_bit_flip": lambda cap, rng: flip(segment(cap), rng),
    "segment_truncated": lambda cap, rng: truncate(segment(cap), 0.5),
    "segment_without_footer": lambda cap, rng: truncate(segment(cap), 0.999),
    "segment_empty": lambda cap, rng: segment(cap).write_bytes(b""),
    "segment_deleted": lambda cap, rng: segment(cap).unlink(),
    "segment_is_a_directory": lambda cap, rng: segment(cap).unlink() or segment(cap).mkdir(),
    "bars_bit_flip": lambda cap, rng: flip(bars_file(cap), rng),
    "bars_truncated": lambda cap, rng: truncate(bars_file(cap), 0.5),
    "bars_deleted": lambda cap, rng: bars_file(cap).unlink(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_files_are_one_line_errors_naming_the_file(intact, tmp_path, damage):
    cap = copy_of(intact, tmp_path)
    target = bars_file(cap) if damage.startswith("bars") else segment(cap)
    DAMAGE[damage](cap, random.Random(damage))
    before = snapshot(cap)
    for name, args in READERS.items():
        out = tmp_path / f"out-{name}"
        out.mkdir()
        result = run(args, cap, out)
        assert ("Traceback" not in result.output and result.exception is None) or isinstance(
            result.exception, SystemExit
        ), (name, result.output)
        reads_bars = name in ("verify", "sql", "info")
        if damage.startswith("bars") and not reads_bars:
            # Not a file this command reads: the same answer as on the intact capture.
            assert result.exit_code == 0, (name, result.output)
            assert strip_paths(result.output, cap, out) == intact[1][name], name
            continue
        assert result.exit_code == 1, (name, damage, result.output)
        errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1, (name, result.output)
        assert str(target) in result.output, (name, result.output)
    assert snapshot(cap) == before  # readers changed nothing


@pytest.mark.slow
def test_random_bit_flips_in_sealed_files_are_always_caught(intact, tmp_path, full_length):
    rng = random.Random(24)
    flips = 200 if full_length else 24
    caught = 0
    for trial in range(flips):
        cap = tmp_path / f"cap{trial}"
        shutil.copytree(intact[0], cap)
        files = [segment(cap), bars_file(cap)] + [
            cap / f["path"] for s in open_capture(cap)["segments"] for f in s["files"]
        ]
        victim = rng.choice(files)
        flip(victim, rng)
        result = run(READERS["verify"], cap, tmp_path)
        assert result.exit_code == 1 and str(victim) in result.output, result.output
        caught += 1
    assert caught == flips
    print(f"\n{flips} random bit flips in sealed files: {caught} caught by verify")


MANIFESTS = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "garbage": lambda data: bytes(range(256)) * 4,
    "segments_null": lambda data: orjson.dumps({**orjson.loads(data), "segments": None}),
    "not_an_object": lambda data: b"[1, 2, 3]",
    "path_outside": lambda data: data.replace(b'"frames/date=', b'"../../frames/date=', 1),
}


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_broken_manifests_are_one_line_errors_and_recover_rebuilds(intact, tmp_path, kind):
    cap = copy_of(intact, tmp_path)
    manifest = cap / "manifest.json"
    frames = open_capture(cap)["frames"]
    manifest.write_bytes(MANIFESTS[kind](manifest.read_bytes()))
    for name, args in READERS.items():
        result = run(args, cap, tmp_path)
        assert result.exit_code == 1, (name, result.output)
        assert result.output.count("\n") == 1 and "manifest.json" in result.output, result.output
        assert "rtcap recover" in result.output
    result = run(["recover", "{cap}"], cap, tmp_path)
    assert result.exit_code == 0, result.output
    assert "kept as manifest.json.damaged and rebuilt" in result.output
    assert (cap / "manifest.json.damaged").exists()
    rebuilt = open_capture(cap)
    assert rebuilt["frames"] == frames and rebuilt["connections"]
    assert run(READERS["replay"], cap, tmp_path).exit_code == 0


def test_stray_and_copied_files_are_never_read_adopted_or_deleted(intact, tmp_path):
    cap = copy_of(intact, tmp_path)
    first = segment(cap)
    folder = first.parent
    strays = {
        folder / "data.parquet": first.read_bytes(),  # a foreign name
        folder / "part-000001 (copy).parquet": first.read_bytes(),  # a desktop copy
        folder / "part-777777.parquet": first.read_bytes(),  # overlaps a listed segment
        folder / "notes.tmp": b"the user's own notes",
        cap / "draft.tmp": b"also the user's",
        cap / "frames" / "README.txt": b"hello",
    }
    for path, data in strays.items():
        path.write_bytes(data)
    before = snapshot(cap)
    for name, args in READERS.items():
        out = tmp_path / f"out-{name}"
        out.mkdir()
        result = run(args, cap, out)
        assert result.exit_code == 0, (name, result.output)
        assert strip_paths(result.output, cap, out) == intact[1][name], name  # same answer
    result = run(["recover", "{cap}"], cap, tmp_path)
    assert result.exit_code == 0, result.output
    assert "ignored frames/date=" in result.output and "part-777777.parquet" in result.output
    for path, data in strays.items():
        assert path.read_bytes() == data, path  # left alone
    after = snapshot(cap)
    assert {k: v for k, v in after.items() if k != "manifest.json"} == {
        k: v for k, v in before.items() if k != "manifest.json"
    }
    assert open_capture(cap)["frames"] == open_capture(intact[0])["frames"]  # nothing adopted


def test_directories_where_files_belong_are_clear_errors(intact, tmp_path):
    cap = copy_of(intact, tmp_path)
    (cap / "journal").mkdir(exist_ok=True)
    (cap / "capture.lock").unlink(missing_ok=True)
    (cap / "capture.lock").mkdir()
    result = run(["recover", "{cap}"], cap, tmp_path)
    assert result.exit_code == 1 and "capture.lock is a directory" in result.output
    (cap / "capture.lock").rmdir()
    (cap / "journal" / "segment-000009.rtj").mkdir()
    result = run(["recover", "{cap}"], cap, tmp_path)
    assert result.exit_code == 0, result.output  # not a journal file: left alone
    assert (cap / "journal" / "segment-000009.rtj").is_dir()


def test_damaged_journal_blocks_cost_only_themselves(tmp_path):
    import helpers

    from rtcap.simulator import MarketSimulator
    from rtcap.storage.recovery import recover

    frames = list(MarketSimulator(5, ["MNQ", "ES"]).frames(max_frames=3000))
    writer = helpers.write_capture(tmp_path / "cap", frames, flush_every=100)
    writer.flush()
    helpers.crash(writer)  # a crashed recorder: every frame only in the journal
    journal = next((tmp_path / "cap" / "journal").glob("segment-*.rtj"))
    data = bytearray(journal.read_bytes())
    data[len(data) // 10] ^= 0x04  # early in the journal: one block of 100 frames
    journal.write_bytes(bytes(data))
    report = recover(tmp_path / "cap")
    assert report.frames_recovered == 2900 and report.frames_lost == 100
    assert report.damaged_kept == [f"journal/damaged/{journal.name}"]
    assert (tmp_path / "cap" / "journal" / "damaged" / journal.name).read_bytes() == data
    manifest = open_capture(tmp_path / "cap")
    (damage,) = manifest["damage"]
    (lost,) = damage["lost_seq_ranges"]
    assert lost[1] - lost[0] + 1 == 100
    result = CliRunner().invoke(main, ["info", str(tmp_path / "cap")])
    assert "damage    " + journal.name in result.output
