"""A real HTTP server that receives webhooks in tests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many senders connect at once


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers it
    with the next scripted status of its path (200 once the script ends)."""

    def __init__(self, script: dict[str, list[int]] | None = None, *, always: int | None = None, delay_s: float = 0):
        self.requests: list[Received] = []
        self._script = {path: list(codes) for path, codes in (script or {}).items()}
        self._always = always
        self._delay_s = delay_s
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                status = receiver._record(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(receiver._delay_s)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)

    def _record(self, request: Received) -> int:
        with self._lock:
            self.requests.append(request)
            codes = self._script.get(request.path)
            if self._always is not None:
                return self._always
            return codes.pop(0) if codes else 200

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def verified(secret: str, request: Received) -> bool:
    """What a receiver checks (with the Standard Webhooks reference library)."""
    try:
        Webhook(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True
