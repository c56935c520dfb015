"""What the commands of one `leo` run share: the connection options, --json, the client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from leo_client.cli.output import Output
from leo_client.client import Client

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass
class State:
    """Filled by the options; the client is made when a command first needs it."""

    target: str | None = None
    api_key: str | None = None
    tls: bool | None = None
    ca_file: Path | None = None
    timeout: float | None = None
    reconnect_timeout: float | None = None
    json: bool = False
    _client: Client | None = None

    def client(self) -> Client:
        """The API client (arguments first, then LEO_API_* variables)."""
        if self._client is None:
            self._client = Client(
                self.target,
                self.api_key,
                tls=self.tls,
                ca_file=self.ca_file,
                timeout=self.timeout,
                reconnect_timeout=self.reconnect_timeout,
            )
        return self._client

    def output(self) -> Output:
        """Where this command writes, as --json asked."""
        return Output(as_json=self.json)

    def close(self) -> None:
        """Close the client, if one was made."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(State).json = True


def json_option(command: _F) -> _F:
    """--json: print one JSON document (the HTTP API's field names) instead of text."""
    return click.option(
        "--json",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_json,
        help="Print JSON with the HTTP API's field names (lowerCamelCase, enum names) instead of text.",
    )(command)
