"""Schema migrations from code: alembic's command API on the repository's migrations/.

`python -m leo_mesh.db.migrate` upgrades the DATABASE_URL database to head
(leo_mesh.settings; its default is the local development database).
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from leo_mesh.settings import DatabaseSettings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    """A Config without alembic.ini, so it works from any directory."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # The option values are interpolated: a %-escaped password needs %%.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s [%(name)s] %(message)s")
    upgrade(DatabaseSettings().database_url)


if __name__ == "__main__":
    main()
