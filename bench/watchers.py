"""A process holding many WatchGeneration streams of one generation.

  python -m bench.watchers --address HOST:PORT --generation-id ID --streams N
      [--channels M] [--authorization "Bearer KEY"] [--open-timeout S] [--final-timeout S]

Opens every stream at once (one burst), spread over M connections, and
prints one JSON line when each has its first message or has ended
("opened"). After the bench has made the final state and written a line to
its stdin, it prints another when each stream has ended or --final-timeout
has passed ("done"): when the final state reached each stream (wall clock, so
the bench compares it with the moment it made that state) and how each
stream ended. The bench runs several of these so that the clients are not
one Python process's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time

import grpc

from leo.generation.v1 import generation_pb2, generation_pb2_grpc

FINAL = {generation_pb2.STATUS_COMPLETE, generation_pb2.STATUS_FAILED, generation_pb2.STATUS_CANCELLED}


class Stream:
    def __init__(self) -> None:
        self.first = asyncio.Event()
        self.final_at: float | None = None
        self.code = "OPEN"


async def _watch(stub, request, metadata, stream: Stream) -> None:
    try:
        async for reply in stub.WatchGeneration(request, metadata=metadata):
            stream.first.set()
            if reply.generation.status in FINAL:
                stream.final_at = time.time()
        stream.code = "OK"
    except grpc.aio.AioRpcError as exc:
        stream.code = exc.code().name
    except asyncio.CancelledError:
        stream.code = "STILL_OPEN"
        raise
    finally:
        stream.first.set()


def _emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def run(args: argparse.Namespace) -> None:
    # A subchannel pool of its own per channel: each is its own connection.
    channels = [
        grpc.aio.insecure_channel(args.address, options=[("grpc.use_local_subchannel_pool", 1), ("bench.channel", i)])
        for i in range(args.channels)
    ]
    stubs = [generation_pb2_grpc.GenerationServiceStub(channel) for channel in channels]
    request = generation_pb2.WatchGenerationRequest(generation_id=args.generation_id)
    metadata = [("authorization", args.authorization)] if args.authorization else []
    streams = [Stream() for _ in range(args.streams)]
    started = time.time()
    tasks = [
        asyncio.create_task(_watch(stubs[i % len(stubs)], request, metadata, stream))
        for i, stream in enumerate(streams)
    ]
    waits = [asyncio.create_task(stream.first.wait()) for stream in streams]
    await asyncio.wait(waits, timeout=args.open_timeout)
    for wait in waits:
        wait.cancel()
    ended_early = collections.Counter(stream.code for stream in streams if stream.code != "OPEN")
    held = sum(1 for stream in streams if stream.code == "OPEN" and stream.first.is_set())
    _emit("opened", started=started, opened=time.time(), held=held, ended_early=ended_early)
    # The bench makes the final state once every worker has opened, then says go.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    _, pending = await asyncio.wait(tasks, timeout=args.final_timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    arrivals = [stream.final_at for stream in streams if stream.final_at is not None]
    ended = collections.Counter(stream.code for stream in streams)
    _emit("done", arrivals=arrivals, ended=ended)
    for channel in channels:
        await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--generation-id", required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--authorization", default="")
    parser.add_argument("--open-timeout", type=float, default=120.0)
    parser.add_argument("--final-timeout", type=float, default=120.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
