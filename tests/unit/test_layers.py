"""Dependencies point one way: services → leo_mesh → gen. The generic
gRPC bootstrap knows no database, the mock AI loads none, production
processes load no dev-only code, and only settings classes read the environment."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api_server", "mock_ai_server", "callback_server")
DEV_ONLY = ("leo_mesh.devstack", "pgserver", "tests")
DATABASE = ("sqlalchemy", "psycopg", "psycopg_pool", "alembic")


def modules_loaded_by(module: str) -> set[str]:
    code = f"import importlib, json, sys; importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(json.loads(result.stdout))


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_shared_package_imports_no_service():
    offenders = {
        str(path.relative_to(ROOT)): sorted(name for name in imports_of(path) if name.split(".")[0] in SERVICES)
        for path in (ROOT / "leo_mesh").rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def loaded_from(loaded: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("module", ["leo_mesh.grpc_server", "mock_ai_server.app", "mock_ai_server.__main__"])
def test_no_database_code_where_there_is_no_database(module):
    assert loaded_from(modules_loaded_by(module), DATABASE) == []


@pytest.mark.parametrize("module", [f"{s}.__main__" for s in SERVICES] + ["leo_mesh.db.migrate"])
def test_production_processes_load_no_dev_only_code(module):
    assert loaded_from(modules_loaded_by(module), DEV_ONLY) == []


def reads_environment(path: Path) -> bool:
    """Whether the file reads environment variables itself (os.environ[...],
    .get, os.getenv); handing the environment to a child process is fine."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func
            if target.attr == "getenv" or (
                target.attr == "get" and isinstance(target.value, ast.Attribute) and target.value.attr == "environ"
            ):
                return True
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
            return True
    return False


def test_only_settings_classes_read_the_environment():
    sources = [p for top in ("leo_mesh", *SERVICES, "migrations", "tools") for p in (ROOT / top).rglob("*.py")]
    assert [str(p.relative_to(ROOT)) for p in sources if reads_environment(p)] == []
