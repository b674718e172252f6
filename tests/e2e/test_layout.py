"""The layout is the architecture (DESIGN.md §2): every arrow points inward, and ``rtcap
--help`` loads no heavy library.

The kernel (``rtcap/`` but its faces ``cli/`` and ``suite.py``) imports no shell; each shell
imports only what sits below it; the suite reaches the shells only inside the calls that need
them. An import anywhere in a module counts, except under ``if TYPE_CHECKING:``."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHELLS = ("capture", "storage", "replay", "gateway", "analysis")
# what each folder may import, besides the kernel (which everything may import)
ALLOWED = {
    "kernel": set(),
    "storage": set(),
    "capture": {"storage"},
    "replay": {"storage"},
    "gateway": {"storage", "replay"},
    "analysis": {"storage", "replay"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[0] == "rtcap" and parts[1] in (*SHELLS, "cli"):
        return parts[1]
    return "kernel"


def imports(path: Path, *, top_level_only: bool = False):
    """(line, module) of every rtcap import in ``path``, outside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node, nested):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.ImportFrom) and child.module and not child.level:
                names = [child.module] + [f"{child.module}.{a.name}" for a in child.names]
                if not (top_level_only and inner):
                    found.extend((child.lineno, n) for n in names if n.startswith("rtcap"))
            elif isinstance(child, ast.Import) and not (top_level_only and inner):
                found.extend(
                    (child.lineno, a.name) for a in child.names if a.name.startswith("rtcap")
                )
            visit(child, inner)

    visit(tree, False)
    return found


def modules():
    for path in sorted((ROOT / "rtcap").rglob("*.py")):
        relative = path.relative_to(ROOT / "rtcap")
        if relative.parts[0] == "cli" or relative.name == "__main__.py":  # faces
            continue
        yield "kernel", path
    for shell in SHELLS:
        for path in sorted((ROOT / shell).rglob("*.py")):
            yield shell, path


def test_every_import_points_inward():
    wrong = []
    for layer, path in modules():
        lazy_face = path == ROOT / "rtcap" / "suite.py"  # a face: shells only inside calls
        for line, module in imports(path, top_level_only=lazy_face):
            target = layer_of(module)
            if target == "cli" or (
                target not in ("kernel", layer) and target not in ALLOWED[layer]
            ):
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({layer}) imports {module}")
    assert wrong == []


def test_capture_and_replay_never_import_each_other():
    for shell, other in (("capture", "replay"), ("replay", "capture")):
        for path in (ROOT / shell).rglob("*.py"):
            assert not [m for _, m in imports(path) if layer_of(m) == other], path


HEAVY = ("polars", "duckdb", "pyarrow.dataset", "aiohttp", "plotly", "pyspark")


COMMAND_NAMES = sorted(__import__("rtcap.cli", fromlist=["COMMANDS"]).COMMANDS)


@pytest.mark.parametrize("args", [["--help"], *([name, "--help"] for name in COMMAND_NAMES)])
def test_help_loads_no_heavy_library(args):
    probe = (
        "import sys\n"
        f"sys.argv = ['rtcap', *{args!r}]\n"
        "from rtcap.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert "Usage: rtcap" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_the_command_list_names_every_command_with_its_own_summary():
    from rtcap.cli import COMMANDS, main

    ctx = main.make_context("rtcap", ["--help"], resilient_parsing=True)
    for name, (_, summary) in COMMANDS.items():
        assert main.get_command(ctx, name).get_short_help_str(limit=200) == summary
