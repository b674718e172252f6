"""``rtcap sql`` as users drive it: scripts of several statements, and DuckDB's errors in one
line that names the views."""

import pytest
from click.testing import CliRunner
from helpers import write_capture

from rtcap.cli import main
from rtcap.models import Frame
from rtcap.simulator import MarketSimulator


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("sql") / "cap"
    write_capture(path, list(MarketSimulator(7, ["MNQ"]).frames(max_frames=500))).close()
    return path


def sql(*args, stdin=None):
    return CliRunner().invoke(main, ["sql", *map(str, args)], input=stdin)


def test_a_piped_script_prints_every_statements_result(capture):
    script = "select 1 as first_one;\nselect count(*) as frames from frames;\nselect 'a;b' as s;\n"
    result = sql(capture, "--format", "csv", stdin=script)
    assert result.exit_code == 0, result.output
    assert result.output == "first_one\n1\n\nframes\n500\n\ns\na;b\n"
    assert sql(capture, "-c", "select 1 as x; select 2 as y", "--format", "csv").output == (
        "x\n1\n\ny\n2\n"
    )


def test_duckdb_errors_are_one_line_naming_the_views(capture):
    for statement in ("select * from nope", "select frobnicate(1)", "selec 1"):
        result = sql(capture, "-c", statement)
        assert result.exit_code == 1
        (line,) = result.output.strip().splitlines()
        assert line.startswith("Error: ") and "(views: frames, lifecycle, gaps, trades" in line


def test_out_takes_one_statement(capture, tmp_path):
    result = sql(capture, "-c", "select 1; select 2", "--out", tmp_path / "x.csv")
    assert result.exit_code == 2 and "one statement" in result.output
    assert not (tmp_path / "x.csv").exists()


def test_a_running_recording_is_queried_with_include_open(tmp_path):
    """A capture whose recorder is still writing: the error names --include-open (recover is
    refused while recording), and --include-open counts the journaled frames too."""
    frames = list(MarketSimulator(7, ["MNQ"]).frames(max_frames=700))
    writer = write_capture(tmp_path / "live", frames[:500])
    writer.seal_now(writer.rotate())
    for frame in frames[500:]:
        writer.append(Frame(0, frame.recv_ns, 0, 0, frame.stream, frame.kind, frame.payload))
    writer.flush()  # journaled, not sealed: a recorder still at work
    try:
        refused = sql(tmp_path / "live", "-c", "select count(*) from frames")
        assert refused.exit_code == 1 and "--include-open" in refused.output
        opened = sql(
            tmp_path / "live", "--include-open", "--format", "csv",
            "-c", "select count(*) as n, count(distinct seq) as seqs, max(seq) as last from frames",
        )  # fmt: skip
        assert opened.exit_code == 0, opened.output
        assert opened.output == "n,seqs,last\n700,700,699\n"
    finally:
        writer.close()
    sealed = sql(tmp_path / "live", "--format", "csv", "-c", "select count(*) as n from frames")
    assert sealed.output == "n\n700\n"
