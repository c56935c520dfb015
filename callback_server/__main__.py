"""python -m callback_server: receives the AI backend's results."""

import asyncio

from callback_server.app import OTEL_SERVICE_NAME, bootstrap
from callback_server.settings import Settings
from leo_mesh import logs
from leo_mesh.grpc_server import serve
from leo_mesh.telemetry import tracing


async def run(settings: Settings) -> int:
    tracing.configure(OTEL_SERVICE_NAME)
    try:
        return await serve(bootstrap(settings))
    finally:
        tracing.shutdown()


def main() -> int:
    settings = Settings()
    logs.configure("callback_server", settings.log_level)
    return asyncio.run(run(settings))


if __name__ == "__main__":
    raise SystemExit(main())
