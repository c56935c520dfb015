"""The client installs alone: built from ./contract and ./sdk into a clean
virtual environment, without the server's libraries, and works there."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.inprocess import api_server, new_key

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ("psycopg", "sqlalchemy", "alembic", "PIL", "boto3", "leo_mesh", "api_server", "leo.ai")
CLIENT_CALL = """
import json, sys
from leo_client import Client
with Client(sys.argv[1], sys.argv[2]) as leo:
    made = leo.create("a lighthouse", width=64, height=64)
    print(json.dumps({"id": made.id, "status": made.status.name, "listed": [g.id for g in leo.list()]}))
"""


async def run(*argv: str | Path) -> str:
    """Outside the clone: `python -c` would otherwise import the server's packages from it."""
    process = await asyncio.create_subprocess_exec(
        *map(str, argv), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd="/"
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.fixture(scope="module")
def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert found, "uv is installed with the dev extra"
    return found


async def test_the_client_alone_has_no_server_library_and_its_sdk_and_command_line_work(uv, tmp_path, database_url):
    venv = tmp_path / "client"
    await run(uv, "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    await run(uv, "pip", "install", "--quiet", "--python", python, ROOT / "contract", ROOT / "sdk")

    probe = f"import importlib.util as u, json; print(json.dumps([m for m in {SERVER_ONLY!r} if u.find_spec(m)]))"
    assert json.loads(await run(python, "-c", probe)) == []
    assert "generate" in await run(venv / "bin" / "leo", "--help")

    async with api_server(database_url) as app:
        key = await new_key(app)
        answer = json.loads(await run(python, "-c", CLIENT_CALL, f"127.0.0.1:{app.port}", key))
    assert answer["status"] == "PENDING" and answer["listed"] == [answer["id"]]
