"""The Alembic migrations, on a real PostgreSQL.

Schemas are compared as PostgreSQL itself describes them (pg_catalog), so
spelling differences such as `TIMESTAMP(3)` vs `timestamp(3) without time
zone` do not matter and everything else does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from psycopg import sql
from sqlalchemy import Column, MetaData, Text, create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from devstack.postgres import EmbeddedPostgres
from leo_mesh.db import migrate
from leo_mesh.db.models import Base
from leo_mesh.db.urls import sqlalchemy_url

UNRECORDED_OUTCOME = "created before status tracking; the outcome was not recorded"

# Rows as the seed's Prisma client wrote them: naive UTC timestamps, every
# column given, or only the required ones.
SEED_ROWS = [
    {
        "id": uuid.UUID("00000000-0000-4000-8000-000000000001"),
        "generationId": uuid.UUID("10000000-0000-4000-8000-000000000001"),
        "createdAt": datetime(2024, 3, 1, 12, 34, 56, 789000),
        "updatedAt": datetime(2024, 3, 1, 12, 35, 10, 5000),
        "public": True,
        "flagged": False,
        "nsfw": True,
        "coreModel": "SD",
        "imageHeight": 512,
        "imageWidth": 768,
        "prompt": "a lighthouse at dusk, oil painting",
    },
    {
        "id": uuid.UUID("00000000-0000-4000-8000-000000000002"),
        "generationId": uuid.UUID("10000000-0000-4000-8000-000000000002"),
        "createdAt": datetime(2024, 12, 31, 23, 59, 59, 999000),
        "updatedAt": datetime(2025, 1, 1, 0, 0, 1),
        "prompt": "x" * 1500,
    },
]

SEED_COLUMN_DEFAULTS = {
    "public": False,
    "flagged": False,
    "nsfw": False,
    "coreModel": "SDXL",
    "imageHeight": 1024,
    "imageWidth": 1024,
}

SEED_SCHEMA = {
    "columns": [
        ("id", "uuid", True, None),
        ("generationId", "uuid", True, None),
        ("createdAt", "timestamp(3) without time zone", True, "CURRENT_TIMESTAMP"),
        ("updatedAt", "timestamp(3) without time zone", True, None),
        ("public", "boolean", True, "false"),
        ("flagged", "boolean", True, "false"),
        ("nsfw", "boolean", True, "false"),
        ("coreModel", "core_models", True, "'SDXL'::core_models"),
        ("imageHeight", "integer", True, "1024"),
        ("imageWidth", "integer", True, "1024"),
        ("prompt", "character varying(1500)", True, None),
    ],
    "constraints": {"generations_pkey": "PRIMARY KEY (id)"},
    "indexes": {
        "generations_pkey": "CREATE UNIQUE INDEX generations_pkey ON public.generations USING btree (id)",
        "generations_generationId_key": (
            'CREATE UNIQUE INDEX "generations_generationId_key" ON public.generations USING btree ("generationId")'
        ),
    },
    "enums": {"core_models": ["SD", "SDXL"]},
}


@contextmanager
def connect(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@contextmanager
def sqlalchemy_connection(database_url: str) -> Iterator[Connection]:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def schema(database_url: str) -> dict[str, Any]:
    """The generations table and the enum types, as pg_catalog describes them."""
    with connect(database_url) as db:
        table = db.execute("SELECT to_regclass('generations')").fetchone()[0]
        if table is None:
            columns, constraints, indexes = [], {}, {}
        else:
            columns = db.execute(
                """
                SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
                FROM pg_attribute a
                LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE a.attrelid = 'generations'::regclass AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum
                """
            ).fetchall()
            constraints = dict(
                db.execute(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                    " WHERE conrelid = 'generations'::regclass"
                ).fetchall()
            )
            indexes = dict(
                db.execute(
                    "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
                    " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'generations'::regclass"
                ).fetchall()
            )
        enums = dict(
            db.execute(
                """
                SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
                FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
                GROUP BY t.typname
                """
            ).fetchall()
        )
    return {"columns": columns, "constraints": constraints, "indexes": indexes, "enums": enums}


def seed_database(database_url: str) -> None:
    """A database at revision 0001 with SEED_ROWS, written in a non-UTC session.

    Later sessions (the migrations) run in that time zone too, so that a
    conversion relying on the session's zone instead of UTC shows.
    """
    migrate.upgrade(database_url, "0001_seed_schema")
    with connect(database_url) as db:
        name = db.execute("SELECT current_database()").fetchone()[0]
        db.execute(sql.SQL("ALTER DATABASE {} SET timezone TO 'America/New_York'").format(sql.Identifier(name)))
    with connect(database_url) as db:
        for row in SEED_ROWS:
            db.execute(
                sql.SQL("INSERT INTO generations ({}) VALUES ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, row)),
                    sql.SQL(", ").join(sql.Placeholder() * len(row)),
                ),
                list(row.values()),
            )


def rows_by_id(database_url: str) -> dict[uuid.UUID, dict[str, Any]]:
    with connect(database_url) as db:
        cursor = db.execute("SELECT * FROM generations")
        names = [column.name for column in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def migrated_schema_differences(connection: Connection, metadata: MetaData) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
    return compare_metadata(context, metadata)


def test_seed_schema_is_exactly_prismas(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url, "0001_seed_schema")

    assert schema(fresh_database_url) == SEED_SCHEMA


def test_seed_rows_survive_the_upgrade_as_failed(fresh_database_url: str) -> None:
    seed_database(fresh_database_url)

    migrate.upgrade(fresh_database_url)

    rows = rows_by_id(fresh_database_url)
    assert rows.keys() == {row["id"] for row in SEED_ROWS}
    for seeded in SEED_ROWS:
        row = rows[seeded["id"]]
        for name, value in (SEED_COLUMN_DEFAULTS | seeded).items():
            if name in ("createdAt", "updatedAt"):
                assert row[name] == value.replace(tzinfo=UTC), name
            else:
                assert row[name] == value, name
        assert row["status"] == "FAILED"
        assert row["failureReason"] == UNRECORDED_OUTCOME
        assert row["completedAt"] == row["updatedAt"]
        assert row["images"] == []
        assert (row["attempts"], row["lastError"], row["nextAttemptAt"]) == (0, None, None)
    with connect(fresh_database_url) as db:
        assert db.execute("SELECT count(*) FROM generations WHERE status = 'PENDING'").fetchone()[0] == 0


def test_rows_inserted_after_the_upgrade_are_pending(fresh_database_url: str) -> None:
    seed_database(fresh_database_url)
    migrate.upgrade(fresh_database_url)
    new_id = uuid.uuid4()

    with connect(fresh_database_url) as db:
        db.execute(
            """INSERT INTO generations (id, "generationId", "updatedAt", prompt) VALUES (%s, %s, now(), 'a cat')""",
            [new_id, uuid.uuid4()],
        )

    rows = rows_by_id(fresh_database_url)
    new = rows.pop(new_id)
    assert (new["status"], new["images"], new["failureReason"], new["completedAt"]) == ("PENDING", [], None, None)
    assert (new["attempts"], new["lastError"], new["nextAttemptAt"]) == (0, None, None)
    assert {row["status"] for row in rows.values()} == {"FAILED"}


def test_a_database_made_by_prisma_is_adopted(fresh_database_url: str) -> None:
    seed_database(fresh_database_url)
    with connect(fresh_database_url) as db:
        db.execute("DROP TABLE alembic_version")  # what the seed left: no alembic history

    migrate.upgrade(fresh_database_url)

    assert {row["status"] for row in rows_by_id(fresh_database_url).values()} == {"FAILED"}


def test_downgrade_and_upgrade_again(fresh_database_url: str) -> None:
    seed_database(fresh_database_url)
    migrate.upgrade(fresh_database_url)
    head_schema = schema(fresh_database_url)

    migrate.downgrade(fresh_database_url, "0001_seed_schema")
    assert schema(fresh_database_url) == SEED_SCHEMA
    rows = rows_by_id(fresh_database_url)
    assert [rows[seeded["id"]][name] for seeded in SEED_ROWS for name in seeded] == [
        value for seeded in SEED_ROWS for value in seeded.values()
    ]

    migrate.downgrade(fresh_database_url, "base")
    assert schema(fresh_database_url) == {"columns": [], "constraints": {}, "indexes": {}, "enums": {}}

    migrate.upgrade(fresh_database_url)
    assert schema(fresh_database_url) == head_schema
    assert rows_by_id(fresh_database_url) == {}


def test_models_match_the_migrated_schema(fresh_database_url: str, postgres: EmbeddedPostgres) -> None:
    migrate.upgrade(fresh_database_url)

    with sqlalchemy_connection(fresh_database_url) as connection:
        assert migrated_schema_differences(connection, Base.metadata) == []
        # The comparison does see the columns: one more in the models shows.
        extended = MetaData()
        for table in Base.metadata.sorted_tables:
            table.to_metadata(extended)
        extended.tables["generations"].append_column(Column("extra", Text))
        assert [difference[0] for difference in migrated_schema_differences(connection, extended)] == ["add_column"]

    # Alembic ignores timestamp precision, enum labels and index predicates:
    # compare the catalog of a database the models create with the migrated
    # one (the seed schema test shows that the catalog tells precisions apart).
    name = f"models_{uuid.uuid4().hex[:16]}"
    postgres.create_database(name)
    with sqlalchemy_connection(postgres.url(name)) as connection:
        Base.metadata.create_all(connection)
        connection.commit()
    assert schema(postgres.url(name)) == schema(fresh_database_url)
