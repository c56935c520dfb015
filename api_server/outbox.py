"""The loop shared by the api_server's outbox workers (dispatch, webhooks)."""

from __future__ import annotations

import abc
import asyncio
import logging

from leo_mesh.errors import DatabaseUnavailable, ServerBusy


class OutboxLoop(abc.ABC):
    """Runs rounds of due work: at once when woken, otherwise every poll
    interval, and back to back while rounds come back full.

    Nothing ends the loop but stop(): a database outage pauses it, and any
    other error of a round is logged and the next round runs after a poll
    interval. (Each worker records the failure of one item against that
    item; a round fails only around the claim itself, and claimed rows
    come back after their lease, one attempt used.)
    """

    def __init__(self, *, poll_interval_s: float, log: logging.Logger) -> None:
        self._poll_interval_s = poll_interval_s
        self._log = log
        self._wake = asyncio.Event()
        self._stopping = False

    @abc.abstractmethod
    async def round(self) -> bool:
        """Claim and handle due work once; True if the batch was full."""

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finish the current round, then return from run()."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                full_batch = await self.round()
            except (DatabaseUnavailable, ServerBusy) as exc:
                self._log.warning("paused: database unavailable or busy", extra={"error": str(exc)})
                await asyncio.sleep(self._poll_interval_s)
                continue
            except Exception:
                self._log.exception("round failed; trying again after the poll interval")
                await asyncio.sleep(self._poll_interval_s)
                continue
            if full_batch or self._stopping:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
            except TimeoutError:
                pass
