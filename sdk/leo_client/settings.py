"""Where the client connects and with which key: arguments first, then LEO_API_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from leo_client.errors import ConfigurationError, MissingApiKey
from leo_client.following import DEFAULT_RECONNECT_TIMEOUT_S

DEFAULT_TARGET = "127.0.0.1:8080"


class ClientSettings(BaseSettings):
    """Connection settings, read from LEO_API_TARGET, LEO_API_KEY, LEO_API_TLS, LEO_API_CA_FILE,
    LEO_API_TIMEOUT_S, LEO_API_RECONNECT_TIMEOUT_S."""

    model_config = SettingsConfigDict(env_prefix="LEO_API_", frozen=True)

    target: str = Field(DEFAULT_TARGET, min_length=1)
    """gRPC target: host:port of Envoy (the default) or of an api_server."""
    key: SecretStr | None = None
    """API key, sent as `authorization: Bearer <key>`."""
    tls: bool = False
    """Connect with TLS (server certificate checked against `ca_file` or the system roots)."""
    ca_file: Path | None = None
    """PEM file of the certificate authorities to trust for TLS instead of the system's."""
    timeout_s: float = Field(30.0, gt=0)
    """Deadline of one call, its retries included (streams that follow a generation are not bounded by it)."""
    reconnect_timeout_s: float = Field(DEFAULT_RECONNECT_TIMEOUT_S, ge=0)
    """How long a wait tries to get a lost watch back (0: not at all) before raising ConnectionLost."""

    @classmethod
    def resolve(
        cls,
        *,
        target: str | None = None,
        key: str | None = None,
        tls: bool | None = None,
        ca_file: str | Path | None = None,
        timeout_s: float | None = None,
        reconnect_timeout_s: float | None = None,
    ) -> ClientSettings:
        """Settings from the arguments given (None means "not given"), then the environment."""
        given: dict[str, Any] = {
            "target": target,
            "key": key,
            "tls": tls,
            "ca_file": ca_file,
            "timeout_s": timeout_s,
            "reconnect_timeout_s": reconnect_timeout_s,
        }
        try:
            return cls(**{name: value for name, value in given.items() if value is not None})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigurationError(f"bad client setting: {problems}") from None

    def api_key(self) -> str:
        """The key, or ConfigurationError saying how to give one."""
        if self.key is None or not self.key.get_secret_value().strip():
            raise MissingApiKey("no API key: pass api_key=… or set LEO_API_KEY")
        return self.key.get_secret_value().strip()
