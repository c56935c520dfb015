"""Small clients and waits shared by the end-to-end tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from leo.generation.v1 import generation_pb2, generation_pb2_grpc
from tests.rows import count_generations  # noqa: F401  (tests/e2e/test_fuzz_json.py reads it from here)

T = TypeVar("T")

FINAL = {generation_pb2.STATUS_COMPLETE, generation_pb2.STATUS_FAILED}


def wait_for(check: Callable[[], T], *, timeout_s: float = 30.0, interval_s: float = 0.1, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class Api:
    """A gRPC client of GenerationService, calling with one API key."""

    def __init__(self, address: str, key: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = generation_pb2_grpc.GenerationServiceStub(self.channel)
        self.key = key
        self.metadata = [("authorization", f"Bearer {key}")]

    def create(self, prompt: str = "a lighthouse at dusk", **fields) -> generation_pb2.Generation:
        request = generation_pb2.CreateGenerationRequest(prompt=prompt, **fields)
        return self.stub.CreateGeneration(request, timeout=10, metadata=self.metadata).generation

    def get(self, generation_id: str) -> generation_pb2.Generation:
        request = generation_pb2.GetGenerationRequest(generation_id=generation_id)
        return self.stub.GetGeneration(request, timeout=10, metadata=self.metadata).generation

    def list(self, **fields) -> generation_pb2.ListGenerationsResponse:
        request = generation_pb2.ListGenerationsRequest(**fields)
        return self.stub.ListGenerations(request, timeout=10, metadata=self.metadata)

    def cancel(self, generation_id: str) -> generation_pb2.Generation:
        request = generation_pb2.CancelGenerationRequest(generation_id=generation_id)
        return self.stub.CancelGeneration(request, timeout=10, metadata=self.metadata).generation

    def wait_final(self, generation_id: str, timeout_s: float = 30.0) -> generation_pb2.Generation:
        return wait_for(
            lambda: (g := self.get(generation_id)).status in FINAL and g,
            timeout_s=timeout_s,
            what=f"generation {generation_id} to finish",
        )

    def close(self) -> None:
        self.channel.close()


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    """The status code of a call that must fail."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def error_info(reason: str) -> dict:
    """The google.rpc.ErrorInfo detail of an error, as the JSON API shows it."""
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "generation.leo.example",
        "metadata": {},
    }


def reflect(address: str, **request: str) -> reflection_pb2.ServerReflectionResponse:
    """One server reflection request (list_services, file_containing_symbol,
    ...) to `address`, answered at once or DEADLINE_EXCEEDED after 10 s."""
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        [reply] = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10)
        return reply


def json_client(mesh, key: str | None = None, *, timeout_s: float = 10, **headers: str) -> httpx.Client:
    """An HTTP client of Envoy's JSON API, with `key` as bearer token if given."""
    if key:
        headers["authorization"] = f"Bearer {key}"
    return httpx.Client(base_url=mesh.envoy_url, timeout=timeout_s, headers=headers)


def new_owner(mesh, prefix: str = "owner") -> tuple[str, str]:
    """A new owner on this mesh and an API key of it."""
    owner = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return owner, mesh.create_api_key(owner)


def api_for(mesh, owner: str = "tester", address: str | None = None) -> Api:
    """A client with a new API key of `owner` on this mesh."""
    return Api(address or mesh.api_address, mesh.create_api_key(owner))
