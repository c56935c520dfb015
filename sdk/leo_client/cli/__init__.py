"""`leo`, the command line of the Leo generation mesh (Click and Rich), built on leo_client."""

from leo_client.cli.main import cli, main

__all__ = ["cli", "main"]
