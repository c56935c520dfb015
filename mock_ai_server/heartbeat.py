"""The worker's heartbeats: how the mesh knows it (CallbackService.Heartbeat).

Every MOCK_AI_HEARTBEAT_INTERVAL_S the worker says who it is (an id new
for each start of the process), where the mesh reaches it, its room (slots,
prefetch), what it serves, whether it drains, and every job it holds. The
first heartbeat joins it to the pool; each one renews its lease; the answer
names jobs it must drop (cancelled, finished, or given to another worker
while it was silent), which it stops at once. Heartbeats are numbered
(from 1) and sent one at a time, in order; a job taken after heartbeat n
is in every heartbeat after n while the worker holds it.

A heartbeat that fails is not retried: the next one says everything anew.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import grpc

from leo.callback.v1 import callback_pb2, callback_pb2_grpc
from leo_mesh import wire
from leo_mesh.errors import JobNotHeld
from mock_ai_server.jobs import Jobs
from mock_ai_server.settings import Settings

log = logging.getLogger("mock_ai_server.heartbeat")


class Heartbeats:
    def __init__(
        self, callbacks: callback_pb2_grpc.CallbackServiceAsyncStub, settings: Settings, worker_id: uuid.UUID
    ) -> None:
        self._callbacks = callbacks
        self._settings = settings
        self.worker_id = worker_id
        self.address = ""  # set once the server listens (start)
        self.number = 0
        self.jobs: Jobs | None = None
        self._sending = asyncio.Lock()
        self.joined = asyncio.Event()
        self.left = False

    async def run(self) -> None:
        """Beat until cancelled."""
        while True:
            await self.beat()
            await asyncio.sleep(self._settings.mock_ai_heartbeat_interval_s)

    async def beat(self, *, leaving: bool = False) -> bool:
        """Send one heartbeat now and stop what its answer says; whether the
        mesh answered. After the leaving one, nothing more is sent."""
        async with self._sending:
            if self.left:
                return False
            self.left = leaving
            request = self._request(leaving)
            try:
                answer = await self._callbacks.Heartbeat(request, timeout=self._settings.mock_ai_callback_timeout_s)
            except grpc.aio.AioRpcError as exc:
                log.warning("heartbeat not delivered", extra={"heartbeat": request.heartbeat, "code": exc.code().name})
                return False
        self.joined.set()
        for generation_id in answer.drop_generation_ids:
            if self.jobs is not None:
                try:
                    self.jobs.cancel(generation_id)
                except JobNotHeld:
                    pass  # gone meanwhile (its result delivered)
        return True

    def _request(self, leaving: bool) -> callback_pb2.HeartbeatRequest:
        """The next heartbeat, numbered and filled in one step (no await), so
        that a job taken meanwhile is in it or in none before it."""
        settings, jobs = self._settings, self.jobs
        self.number += 1
        request = callback_pb2.HeartbeatRequest(
            worker_id=str(self.worker_id),
            address=self.address,
            slots=settings.mock_ai_slots,
            prefetch=settings.mock_ai_prefetch,
            models=sorted(wire.AI_MODEL.to_wire(model) for model in settings.models),
            kinds=sorted(wire.AI_KIND.to_wire(kind) for kind in settings.kinds),
            heartbeat=self.number,
            draining=jobs.draining if jobs is not None else False,
            leaving=leaving,
        )
        if jobs is not None and not leaving:
            now = asyncio.get_running_loop().time()
            for job in jobs.held():
                held = request.jobs.add(generation_id=job.request.generation_id, running=job.running)
                if job.started is not None:
                    held.running_for.FromNanoseconds(int((now - job.started) * 1e9))
        return request
