"""The asyncio client of the generation API: the same surface as `Client`, awaited."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import message

from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_client.channel import aio_channel, credentials
from leo_client.errors import ApiError, ServerError, from_rpc_error
from leo_client.following import (
    DEFAULT_WAIT_TIMEOUT_S,
    ConnectionEvent,
    Follower,
    ended_early,
    final_result,
)
from leo_client.media import PartialFile, target
from leo_client.messages import asset_request, create_request, list_request
from leo_client.settings import ClientSettings
from leo_client.types import Generation, Kind, Model, Priority, Status

AsyncOnUpdate = Callable[[Generation], object | Awaitable[object]]
"""Called (and awaited, if it returns an awaitable) with each new state of a generation being waited for."""
AsyncOnConnection = Callable[[ConnectionEvent], object | Awaitable[object]]
"""Called (and awaited, if it returns an awaitable) with each `Reconnecting` and `Reconnected` of a wait."""


class AsyncClient:
    """An asyncio client of GenerationService over gRPC; see `Client` for the settings.

        async with AsyncClient() as leo:
            generation = await leo.generate("a lighthouse at dusk")

    Its channel is opened on first use, in the running event loop; one client
    serves many concurrent calls.
    """

    def __init__(
        self,
        target: str | None = None,
        api_key: str | None = None,
        *,
        tls: bool | None = None,
        ca_file: str | Path | None = None,
        timeout: float | None = None,
        reconnect_timeout: float | None = None,
    ) -> None:
        self.settings = ClientSettings.resolve(
            target=target,
            key=api_key,
            tls=tls,
            ca_file=ca_file,
            timeout_s=timeout,
            reconnect_timeout_s=reconnect_timeout,
        )
        self._metadata = (("authorization", f"Bearer {self.settings.api_key()}"),)
        self._credentials = credentials(self.settings)
        self._channel: grpc.aio.Channel | None = None
        self._stub_instance: generation_pb2_grpc.GenerationServiceAsyncStub | None = None

    @property
    def _stub(self) -> generation_pb2_grpc.GenerationServiceAsyncStub:
        if self._stub_instance is None:
            self._channel = aio_channel(self.settings.target, self._credentials)
            self._stub_instance = generation_pb2_grpc.GenerationServiceStub(self._channel)
        return self._stub_instance

    async def _call(self, method: Callable[..., Any], request: message.Message, timeout: float | None = None) -> Any:
        try:
            return await method(request, timeout=timeout or self.settings.timeout_s, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    async def create(
        self,
        prompt: str,
        *,
        model: Model | str | None = None,
        width: int | None = None,
        height: int | None = None,
        webhook_url: str | None = None,
        request_id: str | None = None,
        kind: Kind | str | None = None,
        priority: Priority | str | None = None,
    ) -> Generation:
        """Create a generation and return it, PENDING, at once (see `Client.create`)."""
        request = create_request(
            prompt,
            model=model,
            width=width,
            height=height,
            webhook_url=webhook_url,
            request_id=request_id,
            kind=kind,
            priority=priority,
        )
        response: generation_pb2.CreateGenerationResponse = await self._call(self._stub.CreateGeneration, request)
        return Generation.from_proto(response.generation)

    async def get(self, generation_id: str, *, timeout: float | None = None) -> Generation:
        """The generation's current state."""
        request = generation_pb2.GetGenerationRequest(generation_id=generation_id)
        response: generation_pb2.GetGenerationResponse = await self._call(self._stub.GetGeneration, request, timeout)
        return Generation.from_proto(response.generation)

    async def list(
        self, *, status: Status | str | None = None, page_size: int | None = None
    ) -> AsyncGenerator[Generation, None]:
        """Every generation of this key's owner, newest first, a page fetched as needed (see `Client.list`)."""
        token = ""
        while True:
            request = list_request(status=status, page_size=page_size, page_token=token)
            page: generation_pb2.ListGenerationsResponse = await self._call(self._stub.ListGenerations, request)
            for generation in page.generations:
                yield Generation.from_proto(generation)
            token = page.next_page_token
            if not token:
                return

    async def cancel(self, generation_id: str) -> Generation:
        """Cancel a PENDING generation; a finished one raises FailedPrecondition."""
        request = generation_pb2.CancelGenerationRequest(generation_id=generation_id)
        response: generation_pb2.CancelGenerationResponse = await self._call(self._stub.CancelGeneration, request)
        return Generation.from_proto(response.generation)

    async def watch(self, generation_id: str, *, timeout: float | None = None) -> AsyncGenerator[Generation, None]:
        """The generation's current state, then each change; ends after the final state (see `Client.watch`)."""
        request = generation_pb2.WatchGenerationRequest(generation_id=generation_id)
        call = self._stub.WatchGeneration(request, timeout=timeout, metadata=self._metadata)
        try:
            async for response in call:
                yield Generation.from_proto(response.generation)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()

    async def rotate_webhook_secret(self) -> str:
        """A new secret for signing this owner's webhooks (the old one stops at once); shown only here."""
        request = generation_pb2.RotateWebhookSecretRequest()
        response: generation_pb2.RotateWebhookSecretResponse = await self._call(self._stub.RotateWebhookSecret, request)
        return response.secret

    async def wait(
        self,
        generation_id: str,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT_S,
        on_update: AsyncOnUpdate | None = None,
        on_connection: AsyncOnConnection | None = None,
    ) -> Generation:
        """Follow a generation to its end and return it COMPLETE (see `Client.wait`)."""
        return await self._follow(generation_id, self._follower(timeout), on_update, on_connection)

    async def generate(
        self,
        prompt: str,
        *,
        model: Model | str | None = None,
        width: int | None = None,
        height: int | None = None,
        webhook_url: str | None = None,
        request_id: str | None = None,
        kind: Kind | str | None = None,
        priority: Priority | str | None = None,
        wait: bool = True,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT_S,
        on_update: AsyncOnUpdate | None = None,
        on_connection: AsyncOnConnection | None = None,
    ) -> Generation:
        """Create a generation and, unless `wait` is False, follow it to its end (see `Client.generate`)."""
        created = await self.create(
            prompt,
            model=model,
            width=width,
            height=height,
            webhook_url=webhook_url,
            request_id=request_id,
            kind=kind,
            priority=priority,
        )
        if not wait:
            return created
        follower = self._follower(timeout)
        await self._seen(follower, created, on_update, on_connection)
        return await self._follow(created.id, follower, on_update, on_connection)

    def _follower(self, timeout: float | None) -> Follower:
        return Follower(timeout, reconnect_timeout=self.settings.reconnect_timeout_s)

    @staticmethod
    async def _seen(
        follower: Follower,
        generation: Generation,
        on_update: AsyncOnUpdate | None,
        on_connection: AsyncOnConnection | None,
    ) -> bool:
        """Record an answer and its state, report what is new; True when the state is final."""
        back = follower.answered()
        if back is not None:
            await _report(on_connection, back)
        if follower.seen(generation):
            await _report(on_update, generation)
        return generation.done

    async def _follow(
        self,
        generation_id: str,
        follower: Follower,
        on_update: AsyncOnUpdate | None,
        on_connection: AsyncOnConnection | None,
    ) -> Generation:
        if follower.last is not None and follower.last.done:
            return final_result(follower.last)
        while True:
            final = None
            stream = self.watch(generation_id, timeout=follower.remaining())
            try:
                # Read to the stream's end: the server ends it after the final state.
                async for generation in stream:
                    if await self._seen(follower, generation, on_update, on_connection):
                        final = generation
                error = ended_early()
            except ApiError as exc:
                error = exc
            finally:
                await stream.aclose()
            if final is not None:
                return final_result(final)
            retry = follower.lost(error)
            if retry.event is not None:
                await _report(on_connection, retry.event)
            await asyncio.sleep(retry.delay_s)

    async def download_asset(
        self, generation_id: str, index: int, path: str | os.PathLike[str], *, timeout: float | None = None
    ) -> Path:
        """Save one file of a COMPLETE generation, streamed (see `Client.download_asset`)."""
        call = self._stub.GetGenerationAsset(
            asset_request(generation_id, index), timeout=timeout or self.settings.timeout_s, metadata=self._metadata
        )
        try:
            chunks = aiter(call)
            first = await anext(chunks, None)
            if first is None:
                raise ServerError(grpc.StatusCode.DATA_LOSS, "the download ended before its first chunk")
            destination = target(path, generation_id, index, first.content_type)
            with PartialFile(destination) as file:
                await asyncio.to_thread(file.write, first.data)
                async for chunk in chunks:
                    await asyncio.to_thread(file.write, chunk.data)
            return destination
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()

    async def download(self, generation: Generation | str, directory: str | os.PathLike[str]) -> tuple[Path, ...]:
        """Save every file of a COMPLETE generation into `directory` (see `Client.download`)."""
        if isinstance(generation, str):
            generation = await self.get(generation)
        await asyncio.to_thread(Path(directory).mkdir, parents=True, exist_ok=True)
        return tuple([await self.download_asset(generation.id, asset.index, directory) for asset in generation.assets])

    async def close(self) -> None:
        """Close the channel; open watches end."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub_instance = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def _report(hook: Callable[[Any], object | Awaitable[object]] | None, value: object) -> None:
    """Call a hook, if there is one, and await what it returns if that is awaitable."""
    if hook is not None:
        reported = hook(value)
        if inspect.isawaitable(reported):
            await reported
