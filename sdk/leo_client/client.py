"""The blocking client of the generation API."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import grpc
from google.protobuf import message

from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from leo_client.channel import credentials, sync_channel
from leo_client.errors import ApiError, ServerError, from_rpc_error
from leo_client.following import (
    DEFAULT_WAIT_TIMEOUT_S,
    ConnectionEvent,
    Follower,
    OnConnection,
    ended_early,
    final_result,
)
from leo_client.media import PartialFile, target
from leo_client.messages import asset_request, create_request, list_request
from leo_client.settings import ClientSettings
from leo_client.types import Generation, Kind, Model, Priority, Status

_Response = TypeVar("_Response", bound=message.Message)

OnUpdate = Callable[[Generation], object]
"""Called with each new state of a generation that is being waited for."""


class Client:
    """A blocking client of GenerationService over gRPC.

    Arguments left out come from the environment: `LEO_API_TARGET` (default
    `127.0.0.1:8080`, Envoy), `LEO_API_KEY`, `LEO_API_TLS`, `LEO_API_CA_FILE`,
    `LEO_API_TIMEOUT_S`, `LEO_API_RECONNECT_TIMEOUT_S` (`reconnect_timeout`:
    how long a wait tries to get a lost watch back, default 60 s). Use it as
    a context manager, or call `close()`.

        with Client() as leo:
            generation = leo.generate("a lighthouse at dusk")

    Errors are `leo_client.ApiError` subclasses; calls are retried on
    UNAVAILABLE by the channel, creates included (each carries a request_id).
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
        self._channel = sync_channel(self.settings.target, credentials(self.settings))
        self._stub = generation_pb2_grpc.GenerationServiceStub(self._channel)

    def _call(
        self, method: Callable[..., _Response], request: message.Message, timeout: float | None = None
    ) -> _Response:
        try:
            return method(request, timeout=timeout or self.settings.timeout_s, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    def create(
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
        """Create a generation and return it, PENDING, at once.

        `kind` is "image" (the default: still images) or "video" (one short
        animation). `model` defaults to SDXL, `width` and `height` to 1024 (64
        to 2048, multiples of 8). `webhook_url` receives the final state, signed
        (make a secret first with `rotate_webhook_secret`). `request_id` (a
        UUID) makes the create idempotent; without one, a new one is made for
        this call. `priority` ("low", "normal", "high") is how soon it runs
        against the others waiting, up to what the API key allows.
        """
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
        return Generation.from_proto(self._call(self._stub.CreateGeneration, request).generation)

    def get(self, generation_id: str, *, timeout: float | None = None) -> Generation:
        """The generation's current state."""
        request = generation_pb2.GetGenerationRequest(generation_id=generation_id)
        return Generation.from_proto(self._call(self._stub.GetGeneration, request, timeout).generation)

    def list(self, *, status: Status | str | None = None, page_size: int | None = None) -> Iterator[Generation]:
        """Every generation of this key's owner, newest first, optionally of one status.

        Pages (`page_size`, default 20, at most 100) are fetched as the iterator
        is consumed: `itertools.islice(client.list(), 5)` reads one page.
        """
        token = ""
        while True:
            request = list_request(status=status, page_size=page_size, page_token=token)
            page = self._call(self._stub.ListGenerations, request)
            for generation in page.generations:
                yield Generation.from_proto(generation)
            token = page.next_page_token
            if not token:
                return

    def cancel(self, generation_id: str) -> Generation:
        """Cancel a PENDING generation; a finished one raises FailedPrecondition."""
        request = generation_pb2.CancelGenerationRequest(generation_id=generation_id)
        return Generation.from_proto(self._call(self._stub.CancelGeneration, request).generation)

    def watch(self, generation_id: str, *, timeout: float | None = None) -> Iterator[Generation]:
        """The generation's current state, then each change; ends after the final state.

        This is the bare stream: if the connection breaks it raises. `wait()`
        follows a generation to its end through broken streams.
        """
        request = generation_pb2.WatchGenerationRequest(generation_id=generation_id)
        call = self._stub.WatchGeneration(request, timeout=timeout, metadata=self._metadata)
        try:
            for response in call:
                yield Generation.from_proto(response.generation)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()

    def rotate_webhook_secret(self) -> str:
        """A new secret for signing this owner's webhooks (the old one stops at once); shown only here."""
        request = generation_pb2.RotateWebhookSecretRequest()
        return self._call(self._stub.RotateWebhookSecret, request).secret

    def wait(
        self,
        generation_id: str,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT_S,
        on_update: OnUpdate | None = None,
        on_connection: OnConnection | None = None,
    ) -> Generation:
        """Follow a generation to its end and return it COMPLETE.

        Watches it; a stream that breaks is watched again with backoff, for
        at most the client's `reconnect_timeout` since the connection was
        lost (then ConnectionLost, an Unavailable). A wait the server never
        answered raises that error after 3 s of quiet tries, as any call
        would after the channel's retries. `on_update` is called with each new state,
        `on_connection` with each `Reconnecting` (why, which try, when) and
        `Reconnected`. A FAILED end raises GenerationFailed, a CANCELLED one
        GenerationCancelled; after `timeout` seconds (None: no limit)
        WaitTimeout.
        """
        return self._follow(generation_id, self._follower(timeout), on_update, on_connection)

    def generate(
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
        on_update: OnUpdate | None = None,
        on_connection: OnConnection | None = None,
    ) -> Generation:
        """Create a generation and, unless `wait` is False, follow it to its end.

        The arguments are those of `create()` and `wait()`; `timeout` counts
        from the create's answer. Returns the COMPLETE generation (or, with
        wait=False, the PENDING one).
        """
        created = self.create(
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
        self._seen(follower, created, on_update, on_connection)
        return self._follow(created.id, follower, on_update, on_connection)

    def download_asset(
        self, generation_id: str, index: int, path: str | os.PathLike[str], *, timeout: float | None = None
    ) -> Path:
        """Save one file of a COMPLETE generation, streamed (GetGenerationAsset
        with this client's key), at `path`, or into it when it is a directory
        (named "<id>-<index>.<ext>" by its content type). Returns where it went;
        a download that fails leaves no file behind."""
        request = asset_request(generation_id, index)
        chunks = self._stub.GetGenerationAsset(
            request, timeout=timeout or self.settings.timeout_s, metadata=self._metadata
        )
        try:
            first = next(chunks, None)
            if first is None:
                raise ServerError(grpc.StatusCode.DATA_LOSS, "the download ended before its first chunk")
            destination = target(path, generation_id, index, first.content_type)
            with PartialFile(destination) as file:
                file.write(first.data)
                for chunk in chunks:
                    file.write(chunk.data)
            return destination
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            chunks.cancel()

    def download(self, generation: Generation | str, directory: str | os.PathLike[str]) -> tuple[Path, ...]:
        """Save every file of a COMPLETE generation (or of the generation with
        this id) into `directory`, made if missing; the paths, in asset order."""
        if isinstance(generation, str):
            generation = self.get(generation)
        Path(directory).mkdir(parents=True, exist_ok=True)
        return tuple(self.download_asset(generation.id, asset.index, directory) for asset in generation.assets)

    def _follower(self, timeout: float | None) -> Follower:
        return Follower(timeout, reconnect_timeout=self.settings.reconnect_timeout_s)

    @staticmethod
    def _seen(
        follower: Follower, generation: Generation, on_update: OnUpdate | None, on_connection: OnConnection | None
    ) -> bool:
        """Record an answer and its state, report what is new; True when the state is final."""
        back = follower.answered()
        if back is not None:
            _report(on_connection, back)
        if follower.seen(generation) and on_update is not None:
            on_update(generation)
        return generation.done

    def _follow(
        self, generation_id: str, follower: Follower, on_update: OnUpdate | None, on_connection: OnConnection | None
    ) -> Generation:
        if follower.last is not None and follower.last.done:
            return final_result(follower.last)
        while True:
            final = None
            try:
                # Read to the stream's end: the server ends it after the final state.
                for generation in self.watch(generation_id, timeout=follower.remaining()):
                    if self._seen(follower, generation, on_update, on_connection):
                        final = generation
                error = ended_early()
            except ApiError as exc:
                error = exc
            if final is not None:
                return final_result(final)
            retry = follower.lost(error)
            if retry.event is not None:
                _report(on_connection, retry.event)
            time.sleep(retry.delay_s)

    def close(self) -> None:
        """Close the channel; open watches end."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _report(on_connection: OnConnection | None, event: ConnectionEvent) -> None:
    if on_connection is not None:
        on_connection(event)
