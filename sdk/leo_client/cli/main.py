"""The `leo` command: its options, its commands, and how errors become one line and an exit code."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from click.shell_completion import get_completion_class

from leo_client.cli import generations
from leo_client.cli.exits import HELP, ExitCode, exit_code, one_line
from leo_client.cli.output import Output
from leo_client.cli.state import State
from leo_client.errors import ApiError, LeoError
from leo_client.types import message_to_dict

PROG = "leo"


@click.group(
    epilog=HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--target",
    metavar="HOST:PORT",
    help="The API's gRPC address (Envoy).  [env: LEO_API_TARGET; default 127.0.0.1:8080]",
)
@click.option("--api-key", metavar="KEY", help="API key; prefer the variable.  [env: LEO_API_KEY]")
@click.option(
    "--tls/--plaintext", default=None, help="Connect with TLS, or not.  [env: LEO_API_TLS; default plaintext]"
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM of the CAs to trust for TLS.  [env: LEO_API_CA_FILE]",
)
@click.option(
    "--rpc-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Deadline of each call.  [env: LEO_API_TIMEOUT_S; default 30]",
)
@click.option(
    "--reconnect-timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="How long `generate --wait` and `watch` try to get a lost connection back before exiting 5;"
    " one that never answered exits 5 as any call does.  [env: LEO_API_RECONNECT_TIMEOUT_S; default 60]",
)
@click.version_option(package_name="leo-generation-mesh", prog_name=PROG)
@click.pass_context
def cli(
    ctx: click.Context,
    target: str | None,
    api_key: str | None,
    tls: bool | None,
    ca_file: Path | None,
    rpc_timeout: float | None,
    reconnect_timeout: float | None,
) -> None:
    """Create, follow and manage image generations of the Leo mesh.

    Connects over gRPC to LEO_API_TARGET with the key in LEO_API_KEY. Add
    --json to any command for JSON with the HTTP API's field names.

    \b
    Examples:
      export LEO_API_KEY=leo_…
      leo generate "a lighthouse at dusk" --size 1024x768 --wait
      leo list --status complete
      leo watch ID
      leo generate --help
    """
    state = ctx.ensure_object(State)
    state.target, state.api_key, state.tls, state.ca_file = target, api_key, tls, ca_file
    state.timeout, state.reconnect_timeout = rpc_timeout, reconnect_timeout


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    Examples:
      eval "$(leo completion bash)"                       # in ~/.bashrc
      leo completion zsh > "${fpath[1]}/_leo"
      leo completion fish > ~/.config/fish/completions/leo.fish
    """
    complete_class = get_completion_class(shell)
    assert complete_class is not None  # every choice is one of click's shells
    click.echo(complete_class(cli, {}, PROG, f"_{PROG.upper()}_COMPLETE").source())


for command in (
    generations.generate,
    generations.get,
    generations.list_generations,
    generations.watch,
    generations.cancel,
    generations.webhook_secret,
):
    cli.add_command(command)


def _report(error: LeoError, state: State) -> ExitCode:
    """Print an error of the client (one line on stderr; with --json, the
    google.rpc.Status on stdout as the HTTP API would) and return its exit code."""
    if state.json and isinstance(error, ApiError):
        Output(as_json=True).document(message_to_dict(error.to_status()))
    click.echo(f"{PROG}: error: {one_line(error)}", err=True)
    return exit_code(error)


def main(argv: list[str] | None = None) -> int:
    """Run `leo` and return its exit code."""
    state = State()
    try:
        result = cli.main(args=argv, prog_name=PROG, standalone_mode=False, obj=state)
        return result if isinstance(result, int) else ExitCode.OK
    except LeoError as error:
        return _report(error, state)
    except click.exceptions.Abort:
        click.echo(f"{PROG}: interrupted", err=True)
        return ExitCode.INTERRUPTED
    except click.ClickException as error:
        hint = ""
        if isinstance(error, click.UsageError) and error.ctx is not None:
            hint = f" (see '{error.ctx.command_path} --help')"
        click.echo(f"{PROG}: error: {' '.join(error.format_message().split())}{hint}", err=True)
        return error.exit_code
    except BrokenPipeError:
        # The reader went away (`leo list | head`): nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    finally:
        state.close()
