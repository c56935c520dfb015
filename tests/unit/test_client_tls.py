"""The client over TLS: a real in-process gRPC server with a certificate from a test CA."""

from __future__ import annotations

import uuid
from concurrent import futures

import grpc
import pytest
import trustme
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status

from leo_client import Client, DeadlineExceeded, NotFound, Unavailable


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_server(ca):
    """A GenerationService whose GetGeneration answers NOT_FOUND, over TLS for 'localhost'."""

    def get(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort_with_status(rpc_status.to_status(status_pb2.Status(code=code_pb2.NOT_FOUND, message="nope")))

    handler = grpc.method_handlers_generic_handler(
        "leo.generation.v1.GenerationService", {"GetGeneration": grpc.unary_unary_rpc_method_handler(get)}
    )
    cert = ca.issue_cert("localhost")
    credentials = grpc.ssl_server_credentials(
        [(cert.private_key_pem.bytes(), b"".join(blob.bytes() for blob in cert.cert_chain_pems))]
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield f"localhost:{port}"
    server.stop(None)


def test_tls_with_the_servers_ca_reaches_the_service(tls_server, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with Client(tls_server, "leo_key", tls=True, ca_file=ca_file) as client, pytest.raises(NotFound):
        client.get(str(uuid.uuid4()))


def test_tls_from_the_environment(tls_server, ca, tmp_path, monkeypatch):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("LEO_API_TLS", "1")
    monkeypatch.setenv("LEO_API_CA_FILE", str(ca_file))
    with Client(tls_server, "leo_key") as client, pytest.raises(NotFound):
        client.get(str(uuid.uuid4()))


def test_an_untrusted_certificate_is_refused(tls_server):
    # The system's roots do not include the test CA.
    with Client(tls_server, "leo_key", tls=True, timeout=2) as client, pytest.raises((Unavailable, DeadlineExceeded)):
        client.get(str(uuid.uuid4()))


def test_plaintext_does_not_reach_a_tls_server(tls_server):
    with Client(tls_server, "leo_key", timeout=2) as client, pytest.raises((Unavailable, DeadlineExceeded)):
        client.get(str(uuid.uuid4()))
