"""python -m mock_ai_server: the simulated AI backend."""

import asyncio

from leo_mesh import logs
from leo_mesh.grpc_server import serve
from mock_ai_server.app import bootstrap
from mock_ai_server.settings import Settings


async def run(settings: Settings) -> int:
    return await serve(bootstrap(settings))


def main() -> int:
    settings = Settings()
    logs.configure("mock_ai_server", settings.log_level)
    return asyncio.run(run(settings))


if __name__ == "__main__":
    raise SystemExit(main())
