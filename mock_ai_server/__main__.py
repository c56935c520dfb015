"""python -m mock_ai_server: the simulated AI backend."""

import asyncio

from leo_mesh import logs
from leo_mesh.grpc_server import serve
from leo_mesh.telemetry import tracing
from mock_ai_server.app import OTEL_SERVICE_NAME, bootstrap
from mock_ai_server.settings import Settings


async def run(settings: Settings) -> int:
    tracing.configure(OTEL_SERVICE_NAME)
    try:
        return await serve(bootstrap(settings))
    finally:
        tracing.shutdown()


def main() -> int:
    settings = Settings()
    logs.configure("mock_ai_server", settings.log_level)
    return asyncio.run(run(settings))


if __name__ == "__main__":
    raise SystemExit(main())
