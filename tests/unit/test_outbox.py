"""The outbox loop goes on whatever a round raises; only stop() ends it."""

from __future__ import annotations

import asyncio
import logging

from api_server.outbox import OutboxLoop
from leo_mesh.errors import DatabaseUnavailable


class Scripted(OutboxLoop):
    """Rounds that raise what the script says, then come back empty."""

    def __init__(self, script: list[BaseException | bool]) -> None:
        super().__init__(poll_interval_s=0.01, log=logging.getLogger("test.outbox"))
        self.script = script
        self.rounds = 0

    async def round(self) -> bool:
        self.rounds += 1
        step = self.script.pop(0) if self.script else False
        if isinstance(step, BaseException):
            raise step
        return step


async def test_a_round_that_raises_anything_is_logged_and_the_loop_goes_on(caplog):
    loop = Scripted([RuntimeError("a bug"), ValueError("bad row"), DatabaseUnavailable(), True, False])
    task = asyncio.create_task(loop.run())
    while loop.rounds < 6:
        await asyncio.sleep(0.01)
    assert not task.done()
    loop.stop()
    await asyncio.wait_for(task, timeout=5)
    errors = [r for r in caplog.records if r.name == "test.outbox" and r.levelno >= logging.ERROR]
    assert [r.exc_info[1].args[0] for r in errors] == ["a bug", "bad row"]
    assert any(r.getMessage().startswith("paused") for r in caplog.records)


async def test_a_woken_loop_runs_at_once_and_a_full_batch_runs_again():
    loop = Scripted([True, True, False])
    loop._poll_interval_s = 3600  # only waking or full batches make rounds here
    task = asyncio.create_task(loop.run())
    while loop.rounds < 3:
        await asyncio.sleep(0.01)
    loop.wake()
    while loop.rounds < 4:
        await asyncio.sleep(0.01)
    loop.stop()
    await asyncio.wait_for(task, timeout=5)
    assert loop.rounds == 4
