"""DATABASE_URL spellings: what people write, what libpq and SQLAlchemy want."""

from __future__ import annotations

SCHEMES = ("postgresql", "postgres")


def _split(database_url: str) -> tuple[str, str]:
    scheme, separator, rest = database_url.partition("://")
    if not separator or scheme.split("+")[0] not in SCHEMES:
        raise ValueError("DATABASE_URL must be a postgresql:// URL")
    return scheme, rest


def libpq_url(database_url: str) -> str:
    """Any `postgresql[+driver]://…` as the plain libpq URL psycopg connects with."""
    return "postgresql://" + _split(database_url)[1]


def sqlalchemy_url(database_url: str) -> str:
    """The same database as SQLAlchemy's psycopg 3 dialect URL (Alembic uses it)."""
    return "postgresql+psycopg://" + _split(database_url)[1]
