"""Captures handed over by someone else (a bucket, a colleague, a backup): symbolic links among
the names rtcap owns, a journal that is not the capture's own, and manifests that lie about
their files. Nothing outside the capture is written, locked or deleted; every lie is one line
naming the file, with a non-zero exit, before any row is served."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import one_line_error

from rtcap.cli import main
from rtcap.storage.integrity import read_frames

RTCAP = [sys.executable, "-m", "rtcap"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("handed") / "cap"
    result = run("record", path, "--duration", "3s", "--rate", "200", "--quiet",
                 "--segment-minutes", "0.02")  # fmt: skip
    assert result.exit_code == 0, result.output
    return path


def copy_of(recorded: Path, tmp_path: Path, name: str = "cap") -> Path:
    target = tmp_path / name
    shutil.copytree(recorded, target)
    return target


def manifest_of(capture: Path) -> dict:
    return orjson.loads((capture / "manifest.json").read_bytes())


def write_manifest(capture: Path, manifest: dict) -> None:
    (capture / "manifest.json").write_bytes(orjson.dumps(manifest))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_lock_file_that_is_a_link_is_never_written_through(recorded, tmp_path):
    capture = copy_of(recorded, tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (capture / "capture.lock").unlink(missing_ok=True)
    (capture / "capture.lock").symlink_to(victim)
    appended = run("record", capture, "--append", "--duration", "1s", "--quiet")
    one_line_error(appended, "capture.lock is a symbolic link")
    assert victim.read_text() == "precious"
    # a dangling link: recover must not create its target outside the capture
    (capture / "capture.lock").unlink()
    outside = tmp_path / "elsewhere" / "created.txt"
    outside.parent.mkdir()
    (capture / "capture.lock").symlink_to(outside)
    one_line_error(run("recover", capture), "capture.lock is a symbolic link")
    assert not outside.exists()


def test_a_journal_linked_or_copied_from_another_capture_is_left_alone(recorded, tmp_path):
    other = tmp_path / "other"
    started = subprocess.Popen(
        [*RTCAP, "record", str(other), "--rate", "200", "--quiet", "--segment-minutes", "10"]
    )
    journal = other / "journal"
    deadline = time.monotonic() + 30
    while not any(journal.glob("*.rtj")) or next(journal.glob("*.rtj")).stat().st_size < 20_000:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    started.kill()  # leaves other/journal behind, unsealed
    started.wait()
    theirs = {p.name: digest(p) for p in journal.glob("*.rtj")}

    linked = copy_of(recorded, tmp_path, "linked")
    shutil.rmtree(linked / "journal", ignore_errors=True)  # a closed capture's is empty
    (linked / "journal").symlink_to(journal, target_is_directory=True)
    one_line_error(run("recover", linked), "journal is a symbolic link")
    assert {p.name: digest(p) for p in journal.glob("*.rtj")} == theirs

    copied = copy_of(recorded, tmp_path, "copied")  # sealed seqs 1..N, other content
    shutil.copytree(journal, copied / "journal", dirs_exist_ok=True)
    before = manifest_of(copied)
    result = run("recover", copied)
    assert result.exit_code == 0, result.output
    assert "not this capture's own journal" in result.output
    assert {p.name: digest(p) for p in (copied / "journal").glob("*.rtj")} == theirs  # untouched
    assert manifest_of(copied)["segments"] == before["segments"]  # nothing of theirs sealed in
    assert {p.name: digest(p) for p in journal.glob("*.rtj")} == theirs

    dated = copy_of(recorded, tmp_path, "dated")
    folder = next((dated / "frames").glob("date=*"))
    elsewhere = tmp_path / "elsewhere-frames"
    shutil.move(folder, elsewhere)
    folder.symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / ".part-000009.parquet.tmp").write_bytes(b"someone else's")
    one_line_error(run("recover", dated), "is a symbolic link")
    assert (elsewhere / ".part-000009.parquet.tmp").exists()


def lying(recorded: Path, tmp_path: Path, name: str, edit) -> Path:
    capture = copy_of(recorded, tmp_path, name)
    manifest = manifest_of(capture)
    edit(capture, manifest)
    write_manifest(capture, manifest)
    return capture


def every_reader_refuses(capture: Path, *needles: str) -> None:
    for args in (
        ["replay", capture, "--speed", "max"],
        ["verify", capture],
        ["sql", capture, "-c", "select count(*) from frames"],
        ["export", capture, "--out", capture.parent / f"{capture.name}-export"],
    ):
        one_line_error(run(*args), *needles)
    info = run("info", capture)  # the report names each file, then one error line
    one_line_error(info)
    assert all(needle in info.output for needle in needles), info.output


def test_readers_check_what_the_manifest_claims_against_the_files(recorded, tmp_path):
    assert len(manifest_of(recorded)["segments"]) >= 2

    def twice(capture, manifest):
        manifest["segments"].append(manifest["segments"][0])

    every_reader_refuses(lying(recorded, tmp_path, "twice", twice), "listed twice")

    def swapped_seqs(capture, manifest):
        first, second = manifest["segments"][0]["files"][0], manifest["segments"][1]["files"][0]
        first["first_seq"], second["first_seq"] = second["first_seq"], first["first_seq"]
        first["last_seq"], second["last_seq"] = second["last_seq"], first["last_seq"]

    swapped = lying(recorded, tmp_path, "swapped", swapped_seqs)
    every_reader_refuses(swapped, "does not hold what the manifest says", "seq")

    def short(capture, manifest):
        entry = manifest["segments"][0]["files"][0]
        path = capture / entry["path"]
        table = pq.read_table(path)
        pq.write_table(table.slice(0, 10), path)  # fewer rows than listed, sha256 redone
        entry["sha256"] = digest(path)
        entry["bytes"] = path.stat().st_size

    every_reader_refuses(lying(recorded, tmp_path, "short", short), "10 rows, the manifest lists")

    def wrong_columns(capture, manifest):
        entry = manifest["segments"][0]["files"][0]
        path = capture / entry["path"]
        table = pq.read_table(path)
        pq.write_table(
            table.drop_columns(["recv_ns"]).append_column("recv_ns", table["seq"].cast("string")),
            path,
        )
        entry["sha256"] = digest(path)
        entry["bytes"] = path.stat().st_size

    every_reader_refuses(lying(recorded, tmp_path, "columns", wrong_columns), "columns")

    def journal_listed(capture, manifest):
        manifest["segments"][0]["files"][0]["path"] = "journal/segment-000001.rtj"

    every_reader_refuses(
        lying(recorded, tmp_path, "journal", journal_listed), "not the name of a sealed segment"
    )


def test_a_manifest_listing_a_huge_number_of_files_fails_fast_in_bounded_memory(recorded, tmp_path):
    def huge(capture, manifest):
        template = manifest["segments"][0]
        template_file = template["files"][0]
        manifest["segments"] = [
            {
                **template,
                "number": n,
                "first_seq": n * 10,
                "last_seq": n * 10 + 9,
                "files": [
                    {
                        **template_file,
                        "path": f"frames/date=2026-01-01/part-{n:06d}.parquet",
                        "first_seq": n * 10,
                        "last_seq": n * 10 + 9,
                    }
                ],
            }
            for n in range(1, 300_001)
        ]

    capture = lying(recorded, tmp_path, "huge", huge)
    for command in (["info"], ["replay"], ["verify"]):
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                # the peak of this process's own memory (VmHWM): ru_maxrss would also count
                # the pytest worker it was started from, whatever that worker holds
                "import runpy, sys; sys.argv = ['rtcap', *sys.argv[1:]]\n"
                "try:\n    runpy.run_module('rtcap', run_name='__main__')\n"
                "finally:\n    print('maxrss_kb', open('/proc/self/status').read()"
                ".split('VmHWM:')[1].split()[0], file=sys.stderr)",
                *command,
                str(capture),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        took = time.monotonic() - started
        assert done.returncode != 0
        errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and "more than any capture rtcap writes" in errors[0], done.stderr
        rss_mb = int(done.stderr.split("maxrss_kb")[-1]) / 1024
        assert took < 30 and rss_mb < 1024, (command, took, rss_mb)
    assert resource  # the parent never loads the manifest itself
    assert os.path.getsize(capture / "manifest.json") > 50 * 1024 * 1024


def test_sql_out_never_lands_inside_another_capture(recorded, tmp_path):
    other = copy_of(recorded, tmp_path, "other")
    before = {p: digest(p) for p in other.rglob("*") if p.is_file() and p.name != "capture.lock"}
    for out in (
        other / "manifest.json",
        next((other / "frames").glob("date=*")) / "part-000777.parquet",
        other / "deeper" / "still" / "x.csv",
    ):
        one_line_error(
            run("sql", recorded, "-c", "select 1", "--format", "json", "--out", out),
            "lies inside the capture",
        )
    after = {p: digest(p) for p in other.rglob("*") if p.is_file() and p.name != "capture.lock"}
    assert after == before
    assert list(read_frames(other))


def test_every_column_of_every_view_exports_to_csv_and_json(recorded, tmp_path):
    """``select * from frames_raw`` to CSV was "unexpected ComputeError" (a binary column):
    payload bytes are written as DuckDB's text of a blob, which reads back to the same bytes."""
    import duckdb

    frames = list(read_frames(recorded))
    for view in ("frames", "frames_raw"):
        out = tmp_path / f"{view}.csv"
        result = run("sql", recorded, "-c", f"select * from {view} order by seq", "--format",
                     "csv", "--out", out)  # fmt: skip
        assert result.exit_code == 0, result.output
        back = duckdb.sql(
            f"select seq, coalesce(payload, '')::BLOB as payload from read_csv('{out}', all_varchar=true) "
            "order by seq::BIGINT"
        ).fetchall()
        assert [(int(seq), payload) for seq, payload in back] == [
            (f.seq, f.payload) for f in frames
        ]
        as_json = run("sql", recorded, "-c", f"select * from {view} limit 3", "--format", "json")
        assert as_json.exit_code == 0 and len(orjson.loads(as_json.output)) == 3
