"""Captures on object storage, against a real S3-compatible server (moto's standalone server)
on loopback: recording straight to s3://, every reader on the URI, kill -9 mid-recording then
``recover`` finishing the upload with nothing sealed or journaled lost, and one-line errors."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pyarrow.fs as pafs
import pytest
from chaos.harness import start_moto, store_env, store_fs
from click.testing import CliRunner

from rtcap.cli import main
from rtcap.storage.integrity import read_frames
from rtcap.storage.journal import read_journal
from rtcap.storage.remote import mirror_path, pull, staging_path

RTCAP = [sys.executable, "-m", "rtcap"]


@pytest.fixture(scope="module")
def s3_server():
    server, endpoint = start_moto()
    yield endpoint
    server.terminate()
    server.wait(10)


@pytest.fixture
def s3(s3_server, tmp_path, monkeypatch):
    """AWS environment for the local server, a fresh bucket, and a private rtcap cache."""
    env = store_env(s3_server, tmp_path / "cache")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bucket = f"tapes-{uuid.uuid4().hex[:12]}"
    fs = store_fs(s3_server)
    fs.create_dir(bucket)
    return {"bucket": bucket, "env": {**os.environ, **env}, "fs": fs}


def record_cli(s3, *args, env=None, timeout=120) -> subprocess.CompletedProcess:
    """``rtcap record ARGS`` in its own process, against the test store (or ``env``)."""
    return subprocess.run(
        [*RTCAP, "record", *map(str, args)],
        env=env or s3["env"], capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def hashes(output: str) -> list[str]:
    return re.findall(r"(?:bar|event|book) stream sha256 [0-9a-f]+", output)


def test_record_to_s3_then_every_reader_reads_the_uri_as_local(s3):
    uri = f"s3://{s3['bucket']}/mnq/day1"
    done = record_cli(
        s3,
        uri,
        "--duration",
        "4s",
        "--rate",
        "200",
        "--bars",
        "1sec",
        "--segment-minutes",
        "0.02",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert re.search(rf"into {re.escape(uri)} \([\d.]+ MB uploaded\): (\d+) segments", done.stdout)
    staged = staging_path(uri)
    listed = s3["fs"].get_file_info(pafs.FileSelector(f"{s3['bucket']}/mnq/day1", recursive=True))
    names = sorted(i.path.split("/mnq/day1/")[1] for i in listed if i.type == pafs.FileType.File)
    assert "manifest.json" in names and any(n.startswith("frames/date=") for n in names)
    assert not any("journal" in n or n.endswith(".tmp") for n in names)  # sealed files only

    remote_verify = run("verify", uri, "--speed", "20x")
    local_verify = run("verify", staged, "--speed", "20x")
    assert remote_verify.exit_code == local_verify.exit_code == 0, remote_verify.output
    assert hashes(remote_verify.output) == hashes(local_verify.output) != []
    assert list(read_frames(mirror_path(uri))) == list(read_frames(staged))
    query = "select kind, count(*), sum(bytes) from frames group by 1 order by 1"
    assert run("sql", uri, "-c", query).output == run("sql", staged, "-c", query).output
    replayed = run("replay", uri, "--timeframes", "1sec", "--format", "csv")
    assert replayed.exit_code == 0 and replayed.stdout.count("\n") > 3
    info = run("info", uri)
    assert info.exit_code == 0, info.output
    lines = info.output.splitlines()
    assert lines[0].startswith(f"capture   {uri}  (")  # the URI the user named, not a cache path
    assert lines[1] == f"mirror    {mirror_path(uri)}" and "/mirror/s3/" in lines[1]
    assert "/staging/s3/" in str(staged)  # where README says recordings stage
    secret = b"testing-secret"
    for path in [*staged.rglob("*"), *mirror_path(uri).rglob("*")]:
        assert not path.is_file() or secret not in path.read_bytes(), path


def test_kill_9_while_recording_to_s3_then_recover_finishes_the_upload(s3, tmp_path):
    uri = f"s3://{s3['bucket']}/crash"
    journal_dir = tmp_path / "staging"
    recorder = subprocess.Popen(
        [*RTCAP, "record", uri, "--duration", "60s", "--rate", "300", "--journal-dir",
         journal_dir, "--segment-minutes", "0.03", "--quiet"],
        env=s3["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    staged = staging_path(uri, journal_dir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(s3["fs"].get_file_info(
        pafs.FileSelector(f"{s3['bucket']}/crash", recursive=True, allow_not_found=True))):  # fmt: skip
        time.sleep(0.2)
    time.sleep(4)  # some segments sealed and uploaded, more journaled
    assert recorder.poll() is None, "the recorder ended before the kill"
    recorder.send_signal(signal.SIGKILL)
    recorder.wait(10)
    # At the crash, readers see what was uploaded: a readable capture, not yet all of it.
    uploaded_before = {f.seq for f in read_frames(pull(uri))}
    journaled = {
        seq
        for j in (staged / "journal").glob("*.rtj")
        for seq in read_journal(j).table().column("seq").to_pylist()
    }
    sealed_locally = {
        f["first_seq"]
        for s in orjson.loads((staged / "manifest.json").read_bytes())["segments"]
        for f in s["files"]
    }
    assert journaled and uploaded_before and sealed_locally
    recovered = run("recover", uri, "--journal-dir", journal_dir)
    assert recovered.exit_code == 0, recovered.output
    assert re.search(
        r"uploaded \d+ file\(s\) and the manifest to " + re.escape(uri), recovered.output
    )
    remote = list(read_frames(pull(uri)))
    local = list(read_frames(staged))
    assert remote == local and len(remote) > len(uploaded_before)
    assert (journaled | uploaded_before) <= {f.seq for f in remote}  # nothing lost
    assert [f.seq for f in remote] == list(range(len(remote)))
    again = run("recover", uri, "--journal-dir", journal_dir)
    assert again.exit_code == 0 and "uploaded" in again.output


def test_bad_uris_are_one_line_errors(s3, tmp_path):
    missing_bucket = run("info", "s3://no-such-bucket-here/x")
    assert missing_bucket.exit_code == 1
    assert "no capture at s3://no-such-bucket-here/x" in missing_bucket.output or (
        "bucket" in missing_bucket.output
    )
    nothing = run("replay", f"s3://{s3['bucket']}/empty")
    assert nothing.exit_code == 1 and "no manifest.json" in nothing.output
    record = run("record", "s3://no-such-bucket-here/x", "--duration", "1s", "--quiet")
    assert record.exit_code == 1 and "create the bucket" in record.output
    unreachable = run("--endpoint-url", "http://127.0.0.1:9", "info", f"s3://{s3['bucket']}/x")
    assert unreachable.exit_code == 1 and "reachable" in unreachable.output
    for result in (missing_bucket, nothing, record, unreachable):
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_import_to_s3_reads_back_identical(s3, tmp_path, binance_capture):
    uri = f"s3://{s3['bucket']}/binance/eth"
    remote = run("import", "--format", "hftbacktest", binance_capture, uri)
    local = run("import", "--format", "hftbacktest", binance_capture, tmp_path / "eth")
    assert remote.exit_code == local.exit_code == 0, remote.output
    assert f"into {uri}" in remote.output
    query = "select count(*), sum(bytes), count(distinct symbol) from frames"
    assert run("sql", uri, "-c", query).output == run("sql", tmp_path / "eth", "-c", query).output


def test_wrong_credentials_are_one_line_naming_the_fix(tmp_path, monkeypatch):
    """A server that checks signatures (moto with IAM auth on) refuses unknown keys."""
    server, endpoint = start_moto({**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1",
            "AWS_SECRET_ACCESS_KEY": "not-the-secret",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "us-east-1",
            "RTCAP_CACHE": str(tmp_path / "cache"),
        }.items():
            monkeypatch.setenv(key, value)
        for result in (
            run("info", "s3://tapes/x"),
            run("record", "s3://tapes/x", "--duration", "1s", "--quiet"),
        ):
            assert result.exit_code == 1, result.output
            assert "AWS_ACCESS_KEY_ID" in result.output and "not-the-secret" not in result.output
            assert len(result.output.strip().splitlines()) == 1
    finally:
        server.terminate()
        server.wait(10)


def test_local_folders_for_a_uri_never_hold_its_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("RTCAP_CACHE", str(tmp_path))
    uri = "s3://AKIAEXAMPLE:very-secret@tapes/mnq/day1?session=token123"
    for path in (staging_path(uri), mirror_path(uri)):
        assert "very-secret" not in str(path) and "AKIAEXAMPLE" not in str(path)
        assert "token123" not in str(path) and str(path).endswith("s3/tapes_mnq_day1")


def test_a_remote_manifest_listing_anything_but_sealed_files_is_refused_and_nothing_fetched(s3):
    """A bucket's manifest that lists its journal or its lock: the mirror would have fetched
    them and every later read of the URI failed ("unsealed journal"). Now the manifest itself is
    refused, naming the entry, and nothing is written into the mirror."""
    uri = f"s3://{s3['bucket']}/mnq/hostile"
    done = record_cli(s3, uri, "--duration", "2s", "--rate", "100", "--quiet")
    assert done.returncode == 0, done.stderr
    fs, base = s3["fs"], f"{s3['bucket']}/mnq/hostile"
    with fs.open_input_stream(f"{base}/manifest.json") as stream:
        manifest = json.loads(stream.readall())
    for name in ("journal/segment-000001.rtj", "capture.lock", "../../elsewhere.parquet"):
        edited = json.loads(json.dumps(manifest))
        edited["segments"][0]["files"][0]["path"] = name
        with fs.open_output_stream(f"{base}/journal/segment-000001.rtj") as out:
            out.write(b"RTJ not a sealed file")
        with fs.open_output_stream(f"{base}/manifest.json") as out:
            out.write(json.dumps(edited).encode())
        shutil.rmtree(mirror_path(uri), ignore_errors=True)
        result = run("info", uri)
        assert result.exit_code == 1 and "is not the name of a sealed segment file" in result.output
        assert name in result.output
        fetched = [p for p in mirror_path(uri).rglob("*") if p.is_file()]
        assert fetched == [], fetched


def test_every_uri_has_staging_and_mirror_folders_of_its_own(tmp_path, monkeypatch):
    """``s3://tapes/col/x_y`` and ``s3://tapes/col/x/y`` shared one staging folder, and
    following the error's advice uploaded one capture into the other."""
    monkeypatch.setenv("RTCAP_CACHE", str(tmp_path))
    uris = [
        "s3://tapes/col/x_y",
        "s3://tapes/col/x/y",
        "s3://tapes/col_x/y",
        "s3://tapes/col/x%5Fy",
        "s3://tapes/col/x y",
        "s3://tapes/col/x",
        "s3://tapes/ds/source=sim/date=2026-12-05/recorder=a",
    ]
    for where in (staging_path, mirror_path):
        folders = [where(uri) for uri in uris]
        assert len(set(folders)) == len(uris), folders
        for one in folders:  # none inside another
            assert not any(other != one and one.is_relative_to(other) for other in folders)
    assert mirror_path(uris[-1]).name == "tapes_ds_source=sim_date=2026-12-05_recorder=a"


def test_a_rolling_recording_to_s3_keeps_only_the_open_day_in_staging(s3, tmp_path):
    """Each rolled day goes to its own URI; once the store holds a closed day whole, its local
    staging copy goes (--keep-local 1), so staging holds one capture whatever the run's length;
    every day reads back from the store and verifies."""
    uri = f"s3://{s3['bucket']}/rolling/cap"
    done = record_cli(
        s3,
        uri,
        "--duration",
        "7s",
        "--rate",
        "150",
        "--bars",
        "1sec",
        "--roll-every",
        "2s",
        "--quiet",
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "capture(s) after it (rolled" in done.stdout
    listed = s3["fs"].get_file_info(pafs.FileSelector(f"{s3['bucket']}/rolling", recursive=True))
    days = sorted(
        {
            i.path.split("/rolling/")[1].split("/")[0]
            for i in listed
            if i.path.endswith("manifest.json")
        }
    )
    assert len(days) >= 3 and days[0] == "cap", days
    staged = list((tmp_path / "cache" / "staging" / "s3").iterdir())
    assert staged == [staging_path(f"s3://{s3['bucket']}/rolling/{days[-1]}")], staged
    total = 0
    for day in days:
        day_uri = f"s3://{s3['bucket']}/rolling/{day}"
        verified = run("verify", day_uri, "--speed", "50x")
        assert verified.exit_code == 0, (day, verified.output)
        total += len(list(read_frames(mirror_path(day_uri))))
    assert total > 500


def test_a_uri_that_holds_a_capture_is_never_recorded_over(s3, tmp_path):
    """As locally: recording into a URI that holds a capture is refused without --append, and
    --append from a fresh cache (which would upload a shorter manifest over it) is refused too;
    nothing in the store changes."""
    uri = f"s3://{s3['bucket']}/mnq/once"
    first = record_cli(s3, uri, "--duration", "2s", "--rate", "100", "--quiet")
    assert first.returncode == 0, first.stderr
    with s3["fs"].open_input_stream(f"{s3['bucket']}/mnq/once/manifest.json") as stream:
        before = stream.readall()
    again = run("record", uri, "--duration", "1s", "--quiet")
    assert again.exit_code == 1 and "already holds a recording" in again.output
    assert "--append" in again.output
    fresh = {**s3["env"], "RTCAP_CACHE": str(tmp_path / "fresh-cache")}
    appended = record_cli(s3, uri, "--append", "--duration", "1s", "--quiet", env=fresh)
    assert appended.returncode == 1 and "needs its staging copy" in appended.stderr
    with s3["fs"].open_input_stream(f"{s3['bucket']}/mnq/once/manifest.json") as stream:
        assert stream.readall() == before
    same_cache = record_cli(s3, uri, "--append", "--duration", "1s", "--rate", "100", "--quiet")
    assert same_cache.returncode == 0, same_cache.stderr  # from where it was recorded: fine
    assert len(open_capture_uri(uri)["sessions"]) == 2


def open_capture_uri(uri):
    from rtcap.storage.integrity import open_capture

    return open_capture(pull(uri))


def test_every_reader_takes_a_dataset_root_on_the_store(s3, tmp_path):
    """Two recorders write one dataset on the store; sql, replay, export, info, verify and plot
    each take the root's URI, listing its captures through the store, and answer as they do
    for the same root copied to a local folder."""
    root = f"s3://{s3['bucket']}/ds"
    for recorder in ("a", "b"):  # one after the other: the same feed, never overlapping
        done = record_cli(
            s3,
            "--dataset",
            root,
            "--recorder",
            recorder,
            "--duration",
            "2s",
            "--rate",
            "200",
            "--bars",
            "1sec",
            "--quiet",
        )
        assert done.returncode == 0, done.stderr
    local = tmp_path / "copy"
    for info in s3["fs"].get_file_info(pafs.FileSelector(f"{s3['bucket']}/ds", recursive=True)):
        if info.type == pafs.FileType.File:
            target = local / info.path.split("/ds/", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            with s3["fs"].open_input_stream(info.path) as stream:
                target.write_bytes(stream.readall())
    query = "select capture, count(*) from frames group by 1 order by 1"
    on_store, copied = run("sql", root, "-c", query), run("sql", local, "-c", query)
    assert on_store.exit_code == 0, on_store.output
    assert on_store.output == copied.output and "recorder=a" in on_store.output
    assert "recorder=b" in on_store.output
    bars = run("replay", root, "--timeframes", "1sec", "--format", "csv")
    assert bars.exit_code == 0, bars.output
    assert bars.stdout == run("replay", local, "--timeframes", "1sec", "--format", "csv").stdout
    assert len(bars.stdout.splitlines()) > 3
    info = run("info", root)
    assert info.exit_code == 0, info.output
    assert info.output.count("capture   s3://") == 2 and "mirror    " in info.output
    assert info.output.count("== s3://") == 2
    verified = run("verify", root, "--speed", "50x")
    assert verified.exit_code == 0, verified.output
    assert verified.output.count("== s3://") == 2 and verified.output.count("identical") == 2
    exported = run("export", root, "--out", tmp_path / "out")
    assert exported.exit_code == 0, exported.output
    plotted = run("plot", root, "--out", tmp_path / "chart.html")
    assert plotted.exit_code == 0, plotted.output
    # A capture removed from the store is gone from the next read too.
    listing = s3["fs"].get_file_info(pafs.FileSelector(f"{s3['bucket']}/ds", recursive=True))
    b = next(i.path for i in listing if i.path.endswith("recorder=b/manifest.json"))
    s3["fs"].delete_dir(b.rsplit("/", 1)[0])
    after = run("sql", root, "-c", query)
    assert (
        after.exit_code == 0 and "recorder=b" not in after.output and "recorder=a" in after.output
    )
    missing = run("info", f"s3://{s3['bucket']}/nothing-here")
    assert missing.exit_code == 1 and "no capture at" in missing.output


def test_one_writer_per_prefix_on_the_store(s3, tmp_path):
    """Two machines (two caches) recording one dataset path: the second is refused while the
    first records, naming it; started at the same moment, exactly one records; a recorder
    whose lease someone else took stops uploading and says so, keeping its rows in staging."""
    root = f"s3://{s3['bucket']}/ds"
    fs, bucket = s3["fs"], s3["bucket"]

    def recorder(name: str, cache: str, *more: str) -> subprocess.Popen:
        return subprocess.Popen(
            [*RTCAP, "record", "--dataset", root, "--recorder", name, "--rate", "200",
             "--quiet", *more],
            env={**s3["env"], "RTCAP_CACHE": str(tmp_path / cache)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def leases() -> list[str]:
        listing = fs.get_file_info(pafs.FileSelector(f"{bucket}/ds", recursive=True,
                                                     allow_not_found=True))  # fmt: skip
        return [i.path for i in listing if i.path.endswith("/capture.lease")]

    first = recorder("dup", "machine1", "--duration", "6s")
    deadline = time.monotonic() + 30
    while not leases() and time.monotonic() < deadline:
        time.sleep(0.1)
    [lease] = leases()
    holder = orjson.loads(fs.open_input_stream(lease).readall())["holder"]
    second = recorder("dup", "machine2", "--duration", "2s")
    _, err = second.communicate(timeout=60)
    assert second.returncode == 1
    assert "is being recorded by" in err and holder in err and "refused" in err
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert leases() == []  # a clean stop gives the prefix up
    uploaded = orjson.loads(
        fs.open_input_stream(lease.replace("capture.lease", "manifest.json")).readall()
    )
    assert f"recorded {uploaded['frames']} rows" in out  # the store holds the first one's

    # Both at once on a fresh prefix: one records, the other is refused.
    racers = [recorder("race", f"racer{i}", "--duration", "3s") for i in range(2)]
    results = [(r.wait(timeout=60), r.stderr.read()) for r in racers]
    assert sorted(code for code, _ in results) == [0, 1], results
    assert "is being recorded by" in next(err for code, err in results if code == 1)

    # Someone else's lease appears under a running recorder: its uploads stop and it says so.
    victim = recorder("victim", "machine3", "--duration", "8s")

    def uploading() -> list[str]:  # its lease, once its first upload is on the store
        held = [p for p in leases() if "recorder=victim" in p]
        manifest = [p.replace("capture.lease", "manifest.json") for p in held]
        return held if manifest and fs.get_file_info(manifest[0]).type == pafs.FileType.File else []

    deadline = time.monotonic() + 30
    while not uploading() and time.monotonic() < deadline:
        time.sleep(0.1)
    [taken] = uploading()
    intruder = {"holder": "intruder:1:x", "expires_ns": time.time_ns() + 600 * 10**9,
                "expires": "later"}  # fmt: skip
    with fs.open_output_stream(taken) as stream:
        stream.write(orjson.dumps(intruder))
    _, err = victim.communicate(timeout=60)
    assert victim.returncode == 1
    assert "intruder:1:x" in err and "run `rtcap recover" in err


def test_push_and_pull_move_captures_between_disk_and_the_store(s3, tmp_path):
    def recorded(name: str) -> Path:
        done = run("record", tmp_path / name, "--duration", "2s", "--rate", "200",
                   "--segment-minutes", "0.01", "--quiet")  # fmt: skip
        assert done.exit_code == 0, done.output
        return tmp_path / name

    def count(where) -> str:
        result = run("sql", where, "-c", "select count(*), sum(bytes) from frames")
        assert result.exit_code == 0, result.output
        return result.output

    first, other = recorded("first"), recorded("other")
    uri = f"s3://{s3['bucket']}/pushed"
    pushed = run("push", first, uri)
    assert pushed.exit_code == 0, pushed.output
    assert count(uri) == count(first)
    remote = f"{s3['bucket']}/pushed"
    assert (
        s3["fs"].open_input_stream(f"{remote}/manifest.json").readall()
        == (first / "manifest.json").read_bytes()
    )
    # A push that stopped half-way (a part and the manifest missing) goes on where it stopped.
    parts = [i.path for i in s3["fs"].get_file_info(pafs.FileSelector(remote, recursive=True))
             if i.path.endswith(".parquet")]  # fmt: skip
    assert len(parts) >= 2
    s3["fs"].delete_file(parts[0])
    s3["fs"].delete_file(f"{remote}/manifest.json")
    again = run("push", first, uri)
    assert again.exit_code == 0, again.output
    assert re.search(r"[1-9][\d,.]* MB sent now|0\.\d*[1-9]\d* MB sent now", again.output)
    assert count(uri) == count(first)
    # Another capture to the same URI, one still journaling, and a damaged one: refused.
    refused = run("push", other, uri)
    assert refused.exit_code == 1 and "already holds another capture" in refused.output
    journaling = tmp_path / "journaling"
    shutil.copytree(other, journaling)
    (journaling / "journal").mkdir(exist_ok=True)
    (journaling / "journal" / "segment-000009.rtj").write_bytes(b"RTJ")
    refused = run("push", journaling, f"{uri}-2")
    assert refused.exit_code == 1 and "unsealed journal" in refused.output
    damaged = tmp_path / "damaged"
    shutil.copytree(other, damaged)
    part = next(damaged.glob("frames/date=*/part-*.parquet"))
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    refused = run("push", damaged, f"{uri}-3")
    assert refused.exit_code == 1 and part.name in refused.output
    assert s3["fs"].get_file_info(f"{s3['bucket']}/pushed-3/manifest.json").type == (
        pafs.FileType.NotFound
    )
    # Pull: the capture back, byte for byte; again (nothing changed); not over another capture.
    back = tmp_path / "back"
    pulled = run("pull", uri, back)
    assert pulled.exit_code == 0, pulled.output
    assert (back / "manifest.json").read_bytes() == (first / "manifest.json").read_bytes()
    assert count(back) == count(first)
    assert run("pull", uri, back).exit_code == 0
    assert "another capture" in run("pull", uri, other).output
    # A dataset root comes down as the same tree.
    assert run("push", other, f"s3://{s3['bucket']}/root/b").exit_code == 0
    assert run("push", first, f"s3://{s3['bucket']}/root/a").exit_code == 0
    tree = run("pull", f"s3://{s3['bucket']}/root", tmp_path / "tree")
    assert tree.exit_code == 0 and "2 capture(s)" in tree.output, tree.output
    assert count(tmp_path / "tree" / "a") == count(first)
    assert count(tmp_path / "tree" / "b") == count(other)
