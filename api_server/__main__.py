"""python -m api_server: the public GenerationService and its dispatcher."""

import asyncio

from api_server.app import bootstrap
from api_server.settings import Settings
from leo_mesh import logs
from leo_mesh.grpc_server import serve


async def run(settings: Settings) -> int:
    return await serve(bootstrap(settings))


def main() -> int:
    settings = Settings()
    logs.configure("api_server", settings.log_level)
    return asyncio.run(run(settings))


if __name__ == "__main__":
    raise SystemExit(main())
