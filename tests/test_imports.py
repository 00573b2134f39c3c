"""One-way imports: api → config, store, formats, pictures; worker → config, store, model,
pictures; config → store → formats; never back."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "api": {"worker", "model", "scripts"},
    "config": {"api", "worker", "model", "scripts", "formats", "pictures"},
    "store": {"api", "worker", "model", "scripts", "pictures", "config"},
    "formats": {"api", "worker", "model", "scripts", "store", "pictures", "config"},
    "pictures": {"api", "worker", "model", "scripts", "store", "formats", "config"},
    "model": {"api", "worker", "scripts", "store", "pictures", "config"},
    "worker": {"api", "scripts"},
}
# Publishing checks that a weights file loads before storing it; only the CLI and tests publish,
# inside the function, so the API's process never loads the network (the last test proves it).
ALLOWED = {("store/registry.py", "model")}


def imported_packages(path: Path) -> set[str]:
    """Return the top-level package of every module `path` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_flow_one_way(package: str) -> None:
    crossings = {
        (str(path.relative_to(ROOT)), imported)
        for path in sorted((ROOT / package).rglob("*.py"))
        for imported in imported_packages(path) & FORBIDDEN[package]
    }
    assert crossings - ALLOWED == set()


def test_the_api_never_loads_the_network() -> None:
    probe = (
        "import sys, api.app, api.batches; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'model', 'worker'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def test_pandas_is_only_the_csv_benchmark_reference() -> None:
    # pandas is in the dev and bench extras, not a dependency: nothing the service runs needs it.
    users = {
        str(path.relative_to(ROOT))
        for package in [*FORBIDDEN, "scripts"]
        for path in (ROOT / package).rglob("*.py")
        if "pandas" in imported_packages(path)
    }
    assert users == {"scripts/bench/csv_parse.py"}
