"""`leo keys`: API keys for operators, straight in the database (DATABASE_URL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.table import Table

from leo_client.cli.exits import CliFailure, ExitCode
from leo_client.cli.output import Output, local_time, rfc3339
from leo_client.cli.state import State, json_option

if TYPE_CHECKING:
    from leo_client.cli.keystore import Keys


def _keys(database_url: str | None) -> Keys:
    from leo_client.cli.keystore import Keys  # imported late: it loads the database layer

    if not database_url:
        raise CliFailure("DATABASE_URL is not set (or pass --database-url)", ExitCode.USAGE)
    return Keys(database_url)


@click.group()
@click.option(
    "--database-url",
    envvar="DATABASE_URL",
    show_envvar=True,
    metavar="URL",
    help="PostgreSQL of the mesh, e.g. postgresql://postgres@127.0.0.1:5432/leo.",
)
@click.pass_obj
def keys(state: State, database_url: str | None) -> None:
    """Make, list and revoke API keys (operators with database access).

    \b
    Examples:
      export DATABASE_URL=postgresql://postgres@127.0.0.1:5432/leo
      leo keys create --owner alice
      leo keys list --owner alice
      leo keys revoke leo_AbCdEfGh
    """
    state.database_url = database_url


@keys.command()
@click.option("--owner", required=True, help="Who the key belongs to; its generations are theirs.")
@json_option
@click.pass_obj
def create(state: State, owner: str) -> None:
    """Make a key for --owner and print it (shown only this once).

    \b
    Example:
      leo keys create --owner alice
    """
    key = _keys(state.database_url).create(owner)
    out = state.output()
    if out.json:
        out.document({"key": key, "owner": owner})
    else:
        out.line(key)
        out.note(f"API key for {owner!r}: shown only now, store it (LEO_API_KEY).")


@keys.command(name="list")
@click.option("--owner", help="Only this owner's keys.")
@json_option
@click.pass_obj
def list_keys(state: State, owner: str | None) -> None:
    """List keys: prefix, owner, when made, whether revoked (never the keys).

    \b
    Example:
      leo keys list --owner alice
    """
    records = _keys(state.database_url).listed(owner)
    out = state.output()
    if out.json:
        out.document(
            {
                "keys": [
                    {
                        "prefix": r.prefix,
                        "owner": r.owner,
                        "createTime": rfc3339(r.create_time),
                        "revokeTime": rfc3339(r.revoke_time),
                    }
                    for r in records
                ]
            }
        )
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("PREFIX", "OWNER", "CREATED", "STATE"):
        table.add_column(column, no_wrap=True)
    for r in records:
        state_text = f"revoked {local_time(r.revoke_time)}" if r.revoke_time else "live"
        table.add_row(r.prefix, r.owner, local_time(r.create_time), state_text)
    if records:
        out.table(table)
    else:
        out.note("no keys")


@keys.command()
@click.argument("prefix")
@json_option
@click.pass_obj
def revoke(state: State, prefix: str) -> None:
    """Revoke the live keys with PREFIX (as `leo keys list` shows it), at once.

    \b
    Example:
      leo keys revoke leo_AbCdEfGh
    """
    revoked = _keys(state.database_url).revoke(prefix)
    out: Output = state.output()
    if out.json:
        out.document({"revoked": revoked})
    else:
        out.note(f"revoked {revoked} key(s)")
    if not revoked:
        raise CliFailure(f"no live key with prefix {prefix!r}", ExitCode.NOT_FOUND)
