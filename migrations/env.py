"""Alembic environment: runs the revisions online against one PostgreSQL database.

The URL is `sqlalchemy.url` when set programmatically (leo_mesh.db.migrate),
else DATABASE_URL as the services read it (leo_mesh.settings).
"""

from __future__ import annotations

import logging.config

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from leo_mesh.db.models import Base
from leo_mesh.db.urls import sqlalchemy_url
from leo_mesh.settings import DatabaseSettings

config = context.config

# Only the alembic CLI has an ini file; called from code, leave logging alone.
if config.config_file_name is not None:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or DatabaseSettings().database_url


def run_migrations() -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline (--sql) mode is not supported: revision 0001 inspects the database")
    # Synchronous psycopg 3: the same driver as the services, without asyncio.
    engine = create_engine(sqlalchemy_url(database_url()), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                compare_server_default=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations()
