"""Requests sent as given, past the checks a client library makes: HTTP/2
(h2c) frames with any header bytes, and HTTP/1.1 with Latin-1 header values."""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions


@dataclass
class H2Reply:
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    trailers: dict[str, str] = field(default_factory=dict)
    # The server refused the request at the protocol level (stream reset or
    # connection closed) instead of answering it.
    refused: bool = False

    @property
    def status(self) -> int | None:
        return int(self.headers[":status"]) if ":status" in self.headers else None

    @property
    def grpc_status(self) -> int:
        return int({**self.headers, **self.trailers}["grpc-status"])


def h2_request(port: int, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> H2Reply:
    """One request over a new h2c connection, headers sent as given (each
    character of a name or value one byte: Latin-1)."""
    config = h2.config.H2Configuration(
        client_side=True, header_encoding="latin-1", validate_outbound_headers=False, normalize_outbound_headers=False
    )
    connection = h2.connection.H2Connection(config)
    reply = H2Reply()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        connection.initiate_connection()
        request = [(":method", method), (":scheme", "http"), (":path", path), (":authority", "edge.test"), *headers]
        connection.send_headers(
            1, [(n.encode("latin-1"), v.encode("latin-1")) for n, v in request], end_stream=not body
        )
        if body:
            connection.send_data(1, body, end_stream=True)
        sock.sendall(connection.data_to_send())
        while True:
            data = sock.recv(65536)
            if not data:
                reply.refused = True
                return reply
            try:
                events = connection.receive_data(data)
            except h2.exceptions.ProtocolError:
                reply.refused = True
                return reply
            for event in events:
                if isinstance(event, h2.events.ResponseReceived):
                    reply.headers = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    reply.body += event.data
                    connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    reply.trailers = dict(event.headers)
                elif isinstance(event, h2.events.StreamEnded):
                    return reply
                elif isinstance(event, h2.events.StreamReset | h2.events.ConnectionTerminated):
                    reply.refused = True
                    return reply
            sock.sendall(connection.data_to_send())


def grpc_frame(message) -> bytes:
    payload = message.SerializeToString()
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def http1_request(port: int, method: str, path: str, headers: list[tuple[str, str]]) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 request whose header values http.client
    sends as Latin-1, as any client of that library does."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest(method, path)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
