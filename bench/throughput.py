"""P1, P2, P3 and the per-RPC log's price: calls a second, echo beside ours,
and each side's p99 at half of its own maximum."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench import stacks, verify
from bench.calls import (
    CREATE,
    H2LOAD_CLIENTS,
    H2LOAD_STREAMS,
    LIST_PAGE_SIZE,
    WRK_CONNECTIONS,
    grpc_fixed_rate,
    grpc_load,
    json_create,
    json_create_fixed_rate,
)
from bench.loadgen import H2load, LoadGeneratorError, Wrk
from bench.params import Params
from bench.report import Row, Side
from bench.runs import Run, run_once, side_of
from leo.generation.v1 import generation_pb2


@dataclass
class Load:
    """How to load one method of a target, as fast as it answers."""

    key: str
    figure: str
    method: str
    make: Callable[[stacks.Target, Params], H2load | Wrk]
    counts_rows: bool = False
    # The fixed-rate twin of this load (P3), at a given total rate.
    fixed_rate: Callable[[stacks.Target, Params, float], H2load] | None = None


def throughput_loads(generation_id: Callable[[stacks.Target], str]) -> list[Load]:
    """P1 and P2. Get reads `generation_id(target)`."""

    def get(target: stacks.Target, params: Params) -> H2load:
        request = generation_pb2.GetGenerationRequest(generation_id=generation_id(target))
        return grpc_load("GetGeneration", request)(target, params)

    def get_fixed(target: stacks.Target, params: Params, rate: float) -> H2load:
        request = generation_pb2.GetGenerationRequest(generation_id=generation_id(target))
        return grpc_fixed_rate("GetGeneration", request)(target, params, rate)

    list_request = generation_pb2.ListGenerationsRequest(page_size=LIST_PAGE_SIZE)
    return [
        Load(
            "P1",
            f"gRPC CreateGeneration, h2load {H2LOAD_CLIENTS} conns x {H2LOAD_STREAMS} streams",
            "CreateGeneration",
            grpc_load("CreateGeneration", CREATE),
            counts_rows=True,
            fixed_rate=grpc_fixed_rate("CreateGeneration", CREATE),
        ),
        Load(
            "P2",
            f"JSON create through Envoy, wrk {WRK_CONNECTIONS} conns",
            "CreateGeneration",
            json_create,
            counts_rows=True,
            fixed_rate=json_create_fixed_rate,
        ),
        Load("P2", "gRPC GetGeneration, h2load", "GetGeneration", get, fixed_rate=get_fixed),
        Load(
            "P2",
            f"gRPC ListGenerations ({LIST_PAGE_SIZE} a page), h2load",
            "ListGenerations",
            grpc_load("ListGenerations", list_request),
            fixed_rate=grpc_fixed_rate("ListGenerations", list_request),
        ),
    ]


def compare(load: Load, echo: stacks.Target, ours: stacks.Target, params: Params) -> Row:
    """Echo, then ours, back to back, `repeats` times; medians."""
    row = Row(load.key, load.figure, "calls/s")
    runs: dict[str, list[Run]] = {"echo": [], "ours": []}
    try:
        for _ in range(params.repeats):
            for name, target in (("echo", echo), ("ours", ours)):
                # Nothing left over from the run before competes with this one.
                echo.settle()
                ours.settle()
                runs[name].append(
                    run_once(target, load.make(target, params), load.method, counts_rows=load.counts_rows)
                )
    except (verify.FigureFailed, LoadGeneratorError) as exc:
        row.error = str(exc)
        return row
    row.echo = side_of(runs["echo"], lambda run: run.load.rate)
    row.ours = side_of(runs["ours"], lambda run: run.load.rate)
    return row


def latency_at_half(load: Load, max_row: Row, echo: stacks.Target, ours: stacks.Target, params: Params) -> Row:
    """P3: each side at half of its own measured maximum, at a fixed rate; its p99."""
    row = Row("P3", f"p99 at half of max: {load.figure.split(',')[0]}", "ms p99")
    if max_row.error or max_row.echo is None or max_row.ours is None:
        row.error = "no maximum to halve (its throughput figure failed)"
        return row
    sides: dict[str, Side] = {}
    try:
        for name, target, maximum in (("echo", echo, max_row.echo.value), ("ours", ours, max_row.ours.value)):
            echo.settle()
            ours.settle()
            offered = max(1.0, maximum / 2)
            h2load = load.fixed_rate(target, params, offered)
            run = run_once(target, h2load, load.method, counts_rows=load.counts_rows)
            actual = h2load.clients * h2load.rps
            side = side_of([run], lambda r: r.load.latency()[1], detail=f"at {actual}/s, done {run.load.rate:.0f}/s")
            sides[name] = side
    except (verify.FigureFailed, LoadGeneratorError) as exc:
        row.error = str(exc)
        return row
    row.echo, row.ours = sides["echo"], sides["ours"]
    return row


def log_cost(plain: stacks.Target, logged: stacks.Target, params: Params) -> Row:
    """The per-RPC log interceptor's price: the echo without it ("echo") and with it ("ours")."""
    load = Load("L", "", "CreateGeneration", grpc_load("CreateGeneration", CREATE))
    row = compare(load, plain, logged, params)
    row.figure = "per-RPC log: gRPC create on echo without / with RpcInterceptor + JSON log"
    return row
