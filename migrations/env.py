"""Alembic environment: runs the revisions online against one PostgreSQL database.

The URL is `sqlalchemy.url` when set programmatically (leo_mesh.db.migrate),
else the DATABASE_URL environment variable.
"""

from __future__ import annotations

import logging.config
import os

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from leo_mesh.db.engine import sqlalchemy_url
from leo_mesh.db.models import Base

config = context.config

# Only the alembic CLI has an ini file; called from code, leave logging alone.
if config.config_file_name is not None:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("no database: set DATABASE_URL")
    return url


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
