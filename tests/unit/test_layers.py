"""Dependencies point one way: services → leo_mesh → gen (and the contract).
The generic gRPC bootstrap knows no database, the mock AI loads none,
production processes and the production image hold no dev-only code, the
client loads no server code, and only settings classes read the environment."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api_server", "mock_ai_server", "callback_server")
DEV_ONLY = ("devstack", "pgserver", "tests")
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


def offenders(tops: tuple[str, ...], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """Files under `tops` that import a module of `forbidden` (top-level names)."""
    found = {
        str(path.relative_to(ROOT)): sorted(name for name in imports_of(path) if name.split(".")[0] in forbidden)
        for top in tops
        for path in (ROOT / top).rglob("*.py")
    }
    return {path: names for path, names in found.items() if names}


def test_the_shared_package_imports_no_service():
    assert offenders(("leo_mesh",), SERVICES) == {}


def test_no_runtime_code_imports_the_dev_stack():
    assert offenders(("leo_mesh", *SERVICES, "sdk", "contract", "migrations"), ("devstack", "pgserver", "tests")) == {}


def test_the_client_and_the_contract_import_no_server_code():
    server = ("leo_mesh", *SERVICES, "devstack", "psycopg", "sqlalchemy", "PIL", "boto3")
    assert offenders(("sdk", "contract"), server) == {}
    assert offenders(("contract",), ("leo_client",)) == {}


def test_the_production_image_copies_no_dev_only_code():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    copied = {line.split()[1].rstrip("/") for line in lines if line.startswith("COPY ")}
    assert copied & {"devstack", "tests", "bench", "tools", "sdk"} == set()
    assert {"leo_mesh", *SERVICES, "contract", "gen", "migrations", "envoy"} <= copied


def loaded_from(loaded: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("module", ["leo_mesh.grpc_server", "mock_ai_server.app", "mock_ai_server.__main__"])
def test_no_database_code_where_there_is_no_database(module):
    assert loaded_from(modules_loaded_by(module), DATABASE) == []


@pytest.mark.parametrize(
    "module", [f"{s}.__main__" for s in SERVICES] + ["leo_mesh.db.migrate", "leo_mesh.envoy_config", "api_server.keys"]
)
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
    tops = ("leo_mesh", *SERVICES, "migrations", "tools", "sdk", "contract")
    sources = [p for top in tops for p in (ROOT / top).rglob("*.py")]
    assert [str(p.relative_to(ROOT)) for p in sources if reads_environment(p)] == []
