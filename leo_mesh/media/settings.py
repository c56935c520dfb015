"""Where generated files are stored and how links to them are signed (MEDIA_* variables, see README)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class MediaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIA_", extra="ignore")

    # "local": a directory every process of the mesh can read (one machine);
    # "s3": a bucket of any S3-compatible store.
    store: Literal["local", "s3"] = "local"
    local_dir: Path = Path(".run/media")
    s3_bucket: str = "leo-media"
    # Unset: AWS itself; set for MinIO and other S3-compatible stores.
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    # Unset: boto3's own chain (AWS_* variables, the instance's role, ...).
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    # Create the bucket at start when it is missing (development stores).
    s3_create_bucket: bool = False
    # Threads doing the store's blocking I/O (boto3, files) per process.
    io_threads: int = Field(16, ge=1)

    # Signed links: where clients reach the public API (Envoy), the key that
    # signs (every api_server and the callback_server must share it) and how
    # long a link lasts.
    public_base_url: str = "http://127.0.0.1:8080"
    url_signing_key: SecretStr | None = None
    url_ttl_s: int = Field(3600, ge=60)
