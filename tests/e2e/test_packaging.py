"""The distribution installs only the ``rtcap`` package tree, shells mapped under it."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELLS = ("capture", "replay", "storage", "gateway", "analysis")


def test_wheel_holds_only_rtcap_with_shells_mapped_under_it(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("rtcap-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"rtcap", next(n for n in top_level if n.endswith(".dist-info"))}
    for shell in SHELLS:
        assert f"rtcap/{shell}/__init__.py" in names
    for folder in ("rtcap", *SHELLS):
        for module in (ROOT / folder).rglob("*.py"):
            relative = module.relative_to(ROOT / folder).as_posix()
            installed = f"rtcap/{relative}" if folder == "rtcap" else f"rtcap/{folder}/{relative}"
            assert installed in names, f"{module} is missing from the wheel"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "rtcap = rtcap.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_package_imports_shells_as_rtcap_submodules_only(tmp_path):
    probe = (
        f"import importlib, importlib.util\n"
        f"for n in {SHELLS!r}: importlib.import_module('rtcap.' + n)\n"
        "import rtcap.capture\n"
        "print(rtcap.capture.__file__)\n"
        f"print(all(importlib.util.find_spec(n) is None for n in {SHELLS!r}))\n"
    )
    # Run outside the checkout so the working directory cannot shadow what is installed.
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.splitlines()
    assert Path(out[0]) == ROOT / "capture" / "__init__.py"  # the editable install maps it
    assert out[1] == "True"
