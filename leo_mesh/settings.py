"""What every process of the mesh reads from its environment.

Each service's settings class extends one of these; Alembic's env.py, the
migrate command, the keys CLI and the dev stack read them too. Environment
variables are read only through settings classes.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/leo"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    listen_host: str = "127.0.0.1"
    log_level: str = "INFO"


class DatabaseSettings(CommonSettings):
    """What the processes that use the database read (the mock AI has none)."""

    database_url: str = DEFAULT_DATABASE_URL
