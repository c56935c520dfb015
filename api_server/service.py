"""GenerationService: the public API."""

from __future__ import annotations

from leo.generation.v1 import generation_pb2, generation_pb2_grpc

from api_server.convert import to_proto
from api_server.dispatcher import Dispatcher
from api_server.validation import parse_generation_id, validate_create
from leo_mesh.db.generations import GenerationStore
from leo_mesh.status import not_found


class GenerationService(generation_pb2_grpc.GenerationServiceServicer):
    def __init__(self, store: GenerationStore, dispatcher: Dispatcher) -> None:
        self._store = store
        self._dispatcher = dispatcher

    async def CreateGeneration(self, request, context):
        new = validate_create(request)
        row = await self._store.create(prompt=new.prompt, model=new.model, width=new.width, height=new.height)
        self._dispatcher.wake()
        return generation_pb2.CreateGenerationResponse(generation=to_proto(row))

    async def GetGeneration(self, request, context):
        row = await self._store.get(parse_generation_id(request.generation_id))
        if row is None:
            raise not_found(f"generation {request.generation_id}")
        return generation_pb2.GetGenerationResponse(generation=to_proto(row))
