"""envoy/envoy.yaml renders and Envoy accepts it (`envoy --mode validate`)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from string import Template

import pytest
import yaml

from leo_mesh.devstack import envoy


def validate(config: Path) -> None:
    result = subprocess.run(
        [envoy.envoy_binary(), "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def api_server_address(config: Path) -> dict:
    [cluster] = yaml.safe_load(config.read_text())["static_resources"]["clusters"]
    return cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]


def test_only_addresses_and_paths_are_variables():
    assert set(Template(envoy.TEMPLATE.read_text()).get_identifiers()) == {
        "LISTEN_ADDRESS",
        "LISTEN_PORT",
        "ADMIN_ADDRESS",
        "ADMIN_PORT",
        "API_SERVER_HOST",
        "API_SERVER_PORT",
        "DESCRIPTOR_PATH",
    }


def test_default_config_is_valid(tmp_path):
    config = envoy.write_config(tmp_path / "envoy.yaml")

    assert "$" not in config.read_text()
    assert api_server_address(config) == {"address": "127.0.0.1", "port_value": 50051}
    validate(config)


def test_compose_config_from_environment_is_valid(tmp_path, monkeypatch, capsys):
    for name, value in {
        "ENVOY_LISTEN_ADDRESS": "0.0.0.0",
        "ENVOY_LISTEN_PORT": "8080",
        "ENVOY_ADMIN_ADDRESS": "0.0.0.0",
        "ENVOY_ADMIN_PORT": "9901",
        "API_SERVER_HOST": "api_server",
        "API_SERVER_PORT": "50051",
        "ENVOY_DESCRIPTOR_PATH": str(envoy.DESCRIPTOR),
    }.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "rendered" / "envoy.yaml"

    assert envoy.main([str(out)]) == 0

    assert capsys.readouterr().out.strip() == str(out)
    assert api_server_address(out) == {"address": "api_server", "port_value": 50051}
    validate(out)


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("port_value: ${LISTEN_PORT\n", ValueError),  # malformed placeholder
        ("address: ${API_SERVER_ADDRESS}\n", KeyError),  # unknown variable
    ],
)
def test_broken_placeholder_fails_to_render(tmp_path, monkeypatch, template, error):
    broken = tmp_path / "envoy.yaml"
    broken.write_text(template)
    monkeypatch.setattr(envoy, "TEMPLATE", broken)

    with pytest.raises(error):
        envoy.render()
