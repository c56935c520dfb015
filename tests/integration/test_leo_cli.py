"""`leo` as a script runs it (a subprocess) against the whole flow in
process, where the mock AI's settings decide how a generation ends. Through
Envoy, on a terminal and the other commands: tests/e2e/test_cli.py."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.inprocess import flow

LEO = str(Path(sys.executable).parent / "leo")
FAILING = {"mock_ai_min_delay_s": 0.2, "mock_ai_max_delay_s": 0.5, "mock_ai_generation_failure_rate": 1}


async def leo(target: str, key: str, *args: str) -> tuple[int, str, str]:
    """Run `leo` with its output on pipes (not a terminal): exit code, stdout, stderr."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LEO_API_")}
    env.pop("DATABASE_URL", None)
    env.update(LEO_API_TARGET=target, LEO_API_KEY=key)
    process = await asyncio.create_subprocess_exec(
        LEO,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_failed_generation_exits_1_with_its_reason(database_url):
    async with flow(database_url, ai=FAILING) as mesh:
        code, out, err = await leo(mesh.address, await mesh.key(), "generate", "doomed", "--wait", "--json")
    assert code == 1
    generation = json.loads(out)["generation"]
    assert generation["status"] == "STATUS_FAILED" and generation["failureReason"]
    # One line, naming the reason.
    assert err.endswith("\n") and err.count("\n") == 1 and generation["failureReason"] in err
