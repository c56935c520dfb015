"""Where the client connects and with which key; what a create request carries (pure logic)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from leo.generation.v1 import generation_pb2
from leo_client import Client, ClientSettings, ConfigurationError, MissingApiKey
from leo_client.messages import create_request, list_request

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.fixture
def env(monkeypatch):
    for name in ("TARGET", "KEY", "TLS", "CA_FILE", "TIMEOUT_S"):
        monkeypatch.delenv(f"LEO_API_{name}", raising=False)
    return monkeypatch


def test_defaults_to_envoy_on_this_machine(env):
    settings = ClientSettings.resolve()
    assert settings.target == "127.0.0.1:8080" and not settings.tls and settings.timeout_s == 30


def test_reads_the_environment(env):
    env.setenv("LEO_API_TARGET", "api.internal:443")
    env.setenv("LEO_API_KEY", "leo_from_env")
    env.setenv("LEO_API_TLS", "true")
    env.setenv("LEO_API_TIMEOUT_S", "5")
    settings = ClientSettings.resolve()
    assert (settings.target, settings.api_key(), settings.tls, settings.timeout_s) == (
        "api.internal:443",
        "leo_from_env",
        True,
        5,
    )


def test_arguments_win_over_the_environment(env):
    env.setenv("LEO_API_TARGET", "api.internal:443")
    env.setenv("LEO_API_KEY", "leo_from_env")
    with Client("127.0.0.1:9", "leo_from_argument", timeout=2) as client:
        assert client.settings.target == "127.0.0.1:9"
        assert client.settings.api_key() == "leo_from_argument"
        assert client.settings.timeout_s == 2


def test_the_key_is_not_shown_in_reprs(env):
    assert "leo_secret" not in repr(ClientSettings.resolve(key="leo_secret"))


def test_no_key_is_a_clear_error(env):
    with pytest.raises(MissingApiKey, match="LEO_API_KEY"):
        Client()


def test_bad_settings_name_the_setting(env):
    env.setenv("LEO_API_TIMEOUT_S", "soon")
    with pytest.raises(ConfigurationError, match="timeout_s"):
        ClientSettings.resolve()


def test_an_unreadable_ca_file_is_a_clear_error(env, tmp_path):
    with pytest.raises(ConfigurationError, match="CA file"):
        Client("127.0.0.1:9", "leo_key", tls=True, ca_file=tmp_path / "missing.pem")


def test_every_client_setting_is_in_the_readme():
    names = [f"LEO_API_{name.upper()}" for name in ClientSettings.model_fields]
    assert [name for name in names if f"`{name}`" not in README] == []


def test_each_create_gets_its_own_request_id_unless_given():
    fields = dict(model="sd", width=512, height=None, webhook_url=None)
    first = create_request("a fox", request_id=None, **fields)
    second = create_request("a fox", request_id=None, **fields)
    assert uuid.UUID(first.request_id) != uuid.UUID(second.request_id)
    given = str(uuid.uuid4())
    assert create_request("a fox", request_id=given, **fields).request_id == given
    assert first.model == generation_pb2.MODEL_SD and first.width == 512 and first.height == 0


def test_list_requests_take_a_status_name():
    request = list_request(status="failed", page_size=None, page_token="t")
    assert request.status == generation_pb2.STATUS_FAILED and request.page_size == 0 and request.page_token == "t"
