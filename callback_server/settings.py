"""callback_server settings, read from environment variables (see README)."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/leo"
    listen_host: str = "127.0.0.1"
    callback_server_port: int = 50053
    log_level: str = "INFO"
