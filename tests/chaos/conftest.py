"""Fixtures of the chaos suite: a simulated gateway process and a reference recorder on it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import harness


@pytest.fixture
def sim():
    gateway = harness.start_sim()
    yield gateway
    gateway.stop()


class Reference:
    """An uninterrupted recorder of the same feed; read it once :meth:`finish` stopped it."""

    def __init__(self, sim, path: Path) -> None:
        self.path = path
        self.process = harness.start_recorder(path, sim)
        harness.wait_for_journal(path, self.process)

    def finish(self) -> Path:
        if self.process.returncode is None:
            code, _, err = harness.stop(self.process)
            assert code == 0, err
        return self.path


@pytest.fixture
def reference(sim, tmp_path):
    recorder = Reference(sim, tmp_path / "reference")
    yield recorder
    if recorder.process.poll() is None:
        recorder.process.kill()
        recorder.process.wait()
