"""python -m api_server: the public GenerationService and its dispatcher,
in API_SERVER_WORKERS processes on one port."""

import asyncio

from api_server.app import queue_gauges, run, run_worker
from api_server.settings import Settings
from leo_mesh import logs, workers
from leo_mesh.telemetry.exposition import worker_metrics


def main() -> int:
    settings = Settings()
    logs.configure("api_server", settings.log_level)
    if settings.api_server_workers == 1:
        return asyncio.run(run(settings))
    with worker_metrics(settings.listen_host, settings.api_server_metrics_port, [queue_gauges(settings)]) as metrics:
        return workers.supervise(settings.api_server_workers, run_worker, exited=metrics.worker_exited)


if __name__ == "__main__":
    raise SystemExit(main())
