"""python -m callback_server: receives the AI backend's results."""

import asyncio

from callback_server.app import bootstrap
from callback_server.settings import Settings
from leo_mesh import logs
from leo_mesh.grpc_server import serve


async def run(settings: Settings) -> int:
    return await serve(bootstrap(settings))


def main() -> int:
    settings = Settings()
    logs.configure("callback_server", settings.log_level)
    return asyncio.run(run(settings))


if __name__ == "__main__":
    raise SystemExit(main())
