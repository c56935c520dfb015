"""Small clients and waits shared by the end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import grpc
import psycopg
from leo.generation.v1 import generation_pb2, generation_pb2_grpc

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
    """A gRPC client of GenerationService."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = generation_pb2_grpc.GenerationServiceStub(self.channel)

    def create(self, prompt: str = "a lighthouse at dusk", **fields) -> generation_pb2.Generation:
        request = generation_pb2.CreateGenerationRequest(prompt=prompt, **fields)
        return self.stub.CreateGeneration(request, timeout=10).generation

    def get(self, generation_id: str) -> generation_pb2.Generation:
        request = generation_pb2.GetGenerationRequest(generation_id=generation_id)
        return self.stub.GetGeneration(request, timeout=10).generation

    def wait_final(self, generation_id: str, timeout_s: float = 30.0) -> generation_pb2.Generation:
        return wait_for(
            lambda: (g := self.get(generation_id)).status in FINAL and g,
            timeout_s=timeout_s,
            what=f"generation {generation_id} to finish",
        )

    def close(self) -> None:
        self.channel.close()


def count_generations(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM generations").fetchone()[0]


def statuses(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT status::text, count(*) FROM generations GROUP BY 1").fetchall()
    return dict(rows)
