"""Following a generation when things go wrong: the api_server restarts or
stays away while `leo` or the SDK waits, and Ctrl-C while the generation
ends. A real api_server runs in this event loop on real PostgreSQL (on a
port of its own, so it can come back on it); the test plays the AI through
the store and the callback server. `leo` runs as the process people run,
on pipes, or on a pseudo-terminal where a terminal is the point."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import re
import signal
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.ports import free_port
from leo.callback.v1 import callback_pb2
from leo_client import AsyncClient, ConnectionLost, Reconnected, Reconnecting, Status, Unavailable
from leo_mesh.db.keys import KeyStore
from tests.inprocess import FakeAi, api_server, flow
from tests.integration.ai_side import OWNER, completed, dispatched, redispatch

LEO = str(Path(sys.executable).parent / "leo")
# Styles on a terminal: colours, bold, cursor moves.
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Guards against a hang, never a measure: every wait below ends on an event.
PATIENCE_S = 60


async def until(condition: Callable[[], object]) -> None:
    async with asyncio.timeout(PATIENCE_S):
        while not condition():
            await asyncio.sleep(0.02)


async def report(callbacks, generation_id, token: str, *, percent: int) -> None:
    request = callback_pb2.ReportProgressRequest(
        reports=[callback_pb2.ProgressReport(generation_id=str(generation_id), callback_token=token, percent=percent)]
    )
    (outcome,) = (await callbacks.ReportProgress(request, timeout=5)).outcomes
    assert outcome.status.code == 0, outcome.status


async def complete(callbacks, generation_id, token: str) -> None:
    await callbacks.CompleteGeneration(completed(generation_id, token, "0.png"), timeout=5)


def environment(port: int, key: str, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LEO_API_")}
    return {**env, "LEO_API_TARGET": f"127.0.0.1:{port}", "LEO_API_KEY": key, **extra}


class Piped:
    """`leo` on pipes; what it wrote so far, read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.out = self.err = ""
        self._readers = [asyncio.create_task(self._read(name)) for name in ("out", "err")]

    @classmethod
    async def start(cls, env: dict[str, str], *args: str) -> Piped:
        process = await asyncio.create_subprocess_exec(
            LEO,
            *args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read(self, name: str) -> None:
        stream = getattr(self.process, f"std{name}")
        while chunk := await stream.read(65536):
            setattr(self, name, getattr(self, name) + chunk.decode())

    async def shows(self, pattern: str, on: str = "err") -> re.Match[str]:
        try:
            await until(lambda: re.search(pattern, getattr(self, on)))
        except TimeoutError:
            raise AssertionError(f"{pattern!r} not on std{on}; stdout {self.out!r}, stderr {self.err!r}") from None
        match = re.search(pattern, getattr(self, on))
        assert match is not None
        return match

    async def exit_code(self) -> int:
        try:
            async with asyncio.timeout(PATIENCE_S):
                code = await self.process.wait()
                await asyncio.gather(*self._readers)
        except TimeoutError:
            raise AssertionError(f"leo did not end; stdout {self.out!r}, stderr {self.err!r}") from None
        return code

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@contextlib.asynccontextmanager
async def piped(env: dict[str, str], *args: str):
    leo = await Piped.start(env, *args)
    try:
        yield leo
    finally:
        leo.kill()
        await leo.process.wait()


# --- how a wait ends ---------------------------------------------------------------


async def test_a_failed_generation_exits_1_with_its_reason(database_url):
    """Against the whole flow in process, whose mock AI fails every generation."""
    failing = {"mock_ai_min_delay_s": 0.2, "mock_ai_max_delay_s": 0.5, "mock_ai_generation_failure_rate": 1}
    async with flow(database_url, ai=failing) as mesh:
        env = environment(mesh.api.port, await mesh.key())
        async with piped(env, "generate", "doomed", "--wait", "--json") as leo:
            assert await leo.exit_code() == 1
    generation = json.loads(leo.out)["generation"]
    assert generation["status"] == "STATUS_FAILED" and generation["failureReason"]
    # One line, naming the reason.
    assert leo.err.endswith("\n") and leo.err.count("\n") == 1 and generation["failureReason"] in leo.err


# --- the api_server restarts, or stays away ------------------------------------


async def test_watch_through_an_api_server_restart_says_what_happened(database_url, db, store, callbacks):
    """The issue's case: a wait at 30 % whose api_server restarts. `leo watch`
    says why it reconnects and which try, that it is back, and what the new
    state means (sent to the AI again, progress started over),
    then ends COMPLETE as usual."""
    port = free_port()
    generation_id, token = await dispatched(store, "outlives its api_server")
    await report(callbacks, generation_id, token, percent=30)
    env = environment(port, await KeyStore(db).create(OWNER))
    async with contextlib.AsyncExitStack() as first_api:
        await first_api.enter_async_context(api_server(database_url, api_server_port=port))
        async with piped(env, "watch", str(generation_id)) as leo:
            await leo.shows(f"{generation_id}  PENDING  attempt 1  running, done in ~\\d+ s  30%", on="out")
            await first_api.aclose()  # drained: its watch ends UNAVAILABLE "the server is shutting down"
            await leo.shows(r"reconnecting, try 1 \(API unavailable: the server is shutting down")
            token = await redispatch(store, generation_id)  # its worker was lost: sent again
            async with api_server(database_url, api_server_port=port):
                await leo.shows(r"reconnected after \d+\.\d s \(\d+ tr(y|ies)\)")
                await leo.shows(
                    "PENDING  attempt 2  starting  re-dispatched, progress reset \\(was 30%\\)",
                    on="out",
                )
                await complete(callbacks, generation_id, token)
                assert await leo.exit_code() == 0
    shutting_down = "API unavailable: the server is shutting down; watch again to resume"
    assert f"{generation_id}  reconnecting, try 1 ({shutting_down}); next in" in leo.err
    assert re.search(r"status\s+COMPLETE", leo.out) and "files" in leo.out
    assert "Traceback" not in leo.err


async def test_generate_wait_gives_up_after_the_reconnect_bound_with_exit_5(database_url, db):
    port = free_port()
    env = environment(port, await KeyStore(db).create(OWNER), LEO_API_RECONNECT_TIMEOUT_S="1")
    async with contextlib.AsyncExitStack() as api:
        await api.enter_async_context(api_server(database_url, api_server_port=port))
        async with piped(env, "generate", "left behind", "--wait") as leo:
            generation_id = (await leo.shows(f"({UUID.pattern})  PENDING"))[1]
            await api.aclose()  # and it stays away
            assert await leo.exit_code() == 5
    assert f"{generation_id}  reconnecting, try 1 (API unavailable: " in leo.err
    last = leo.err.splitlines()[-1]
    assert last.startswith(f"leo: error: lost the connection while following generation {generation_id}")
    assert "Connection refused" in last and last.endswith(f"follow it with: leo watch {generation_id})")
    assert leo.out == ""


async def test_the_asyncio_client_reconnects_and_says_so(database_url, db, store, callbacks):
    port = free_port()
    generation_id, token = await dispatched(store, "asyncio outlives its api_server")
    states, events = [], []
    async with (
        AsyncClient(f"127.0.0.1:{port}", await KeyStore(db).create(OWNER)) as client,
        contextlib.AsyncExitStack() as first_api,
    ):
        await first_api.enter_async_context(api_server(database_url, api_server_port=port))
        waiting = asyncio.create_task(
            client.wait(str(generation_id), on_update=states.append, on_connection=events.append)
        )
        await until(lambda: states)
        await first_api.aclose()
        await until(lambda: events)
        async with api_server(database_url, api_server_port=port):
            await until(lambda: isinstance(events[-1], Reconnected))
            await complete(callbacks, generation_id, token)
            done = await waiting
    assert done.status is Status.COMPLETE and states[-1] == done
    first, *_, back = events
    assert isinstance(first, Reconnecting) and first.attempt == 1 and isinstance(first.error, Unavailable)
    assert "shutting down" in first.error.message
    assert back.attempts == len(events) - 1


async def test_with_a_zero_bound_the_asyncio_client_raises_connection_lost_at_once(database_url, db, store):
    port = free_port()
    generation_id, _ = await dispatched(store, "not waited for again")
    states: list = []
    async with AsyncClient(f"127.0.0.1:{port}", await KeyStore(db).create(OWNER), reconnect_timeout=0) as client:
        async with api_server(database_url, api_server_port=port):
            waiting = asyncio.create_task(client.wait(str(generation_id), on_update=states.append))
            await until(lambda: states)
        with pytest.raises(ConnectionLost) as caught:
            await waiting
    assert caught.value.generation == states[-1] and caught.value.attempts == 0
    assert "shutting down" in caught.value.last_error.message


# --- Ctrl-C while the generation ends ---------------------------------------------


class OnTerminal:
    """`leo` on a pseudo-terminal (stdin, stdout and stderr); what it showed so far."""

    def __init__(self, process: asyncio.subprocess.Process, controller: int) -> None:
        self.process = process
        self.controller = controller
        self.text = ""
        asyncio.get_running_loop().add_reader(controller, self._read)

    def _read(self) -> None:
        try:
            self.text += os.read(self.controller, 65536).decode(errors="replace")
        except OSError:  # the other side closed: leo ended
            asyncio.get_running_loop().remove_reader(self.controller)

    async def shows(self, pattern: str) -> re.Match[str]:
        try:
            await until(lambda: re.search(pattern, self.text))
        except TimeoutError:
            raise AssertionError(f"{pattern!r} not shown; the terminal showed {self.text!r}") from None
        match = re.search(pattern, self.text)
        assert match is not None
        return match

    def type(self, keys: str) -> None:
        os.write(self.controller, keys.encode())


@contextlib.asynccontextmanager
async def on_terminal(env: dict[str, str], *args: str):
    controller, terminal = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        LEO,
        *args,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "160"},
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    leo = OnTerminal(process, controller)
    try:
        yield leo
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        asyncio.get_running_loop().remove_reader(controller)
        os.close(controller)


async def test_ctrl_c_while_it_completes_pauses_the_display_and_shows_the_result(database_url, db, callbacks):
    """The live line stops while the question is on screen, though the
    generation moves on and completes meanwhile; answering y then says it
    ended first and shows it as a normal end would: files listed, exit 0."""
    ai = FakeAi()
    async with api_server(database_url, ai=ai) as api:
        env = environment(api.port, await KeyStore(db).create(OWNER))
        async with on_terminal(env, "generate", "asked about", "--wait") as leo:
            generation_id = (await leo.shows(UUID.pattern))[0]
            await until(lambda: ai.requests)
            token = ai.requests[0].callback_token
            await report(callbacks, generation_id, token, percent=30)
            await leo.shows("30%")
            leo.process.send_signal(signal.SIGINT)
            asked = (await leo.shows(rf"Cancel generation {generation_id}\? \[y/N\]: ")).end()
            await report(callbacks, generation_id, token, percent=60)
            await complete(callbacks, generation_id, token)
            await until(lambda: len(api.watches) == 0)  # the final state went out and the stream ended
            leo.type("y\n")
            async with asyncio.timeout(PATIENCE_S):
                assert await leo.process.wait() == 0
            await leo.shows("files")
    after = ESCAPES.sub("", leo.text[asked:])
    assert re.match(r"y\r?\n", after), after  # nothing was drawn over the question
    assert f"{generation_id} ended COMPLETE before it could be cancelled" in after
    assert re.search(r"status\s+COMPLETE", after) and "cancelled " not in after


async def test_a_cancel_that_finds_it_ended_shows_that_end(database_url, db):
    """The race the watch cannot win: the generation fails, the stream has
    not told yet (its row changed without the NOTIFY that would wake it), and
    Ctrl-C cancels. The cancel answers FAILED_PRECONDITION: `leo` shows the
    FAILED generation and exits 1 as its end says, not 130."""
    ai = FakeAi()
    async with api_server(database_url, ai=ai) as api:
        env = environment(api.port, await KeyStore(db).create(OWNER))
        async with piped(env, "generate", "doomed", "--wait", "--cancel-on-interrupt") as leo:
            generation_id = (await leo.shows(f"({UUID.pattern})  PENDING"))[1]
            await until(lambda: ai.requests)
            async with db.connection() as conn:
                await conn.execute(
                    "UPDATE generations SET status = 'FAILED', phase = NULL, \"failureReason\" = 'the model crashed',"
                    ' "completedAt" = now(), "updatedAt" = now(), "nextAttemptAt" = NULL WHERE "generationId" = %s',
                    (uuid.UUID(generation_id),),
                )
            leo.process.send_signal(signal.SIGINT)
            assert await leo.exit_code() == 1
    assert f"{generation_id} ended FAILED before it could be cancelled" in leo.err
    assert re.search(r"status\s+FAILED", leo.out) and re.search(r"reason\s+the model crashed", leo.out)
    assert leo.err.splitlines()[-1] == f"leo: error: generation {generation_id} failed: the model crashed"
