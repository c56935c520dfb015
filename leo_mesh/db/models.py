"""SQLAlchemy models of the migrated schema (head revision).

Column names keep the seed's Prisma spelling (camelCase, quoted) so a
database made by the seed upgrades in place. A test compares these models
with what the migrations build.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, Enum, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class CoreModel(enum.Enum):
    SD = "SD"
    SDXL = "SDXL"


class GenerationStatus(enum.Enum):
    PENDING = "PENDING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


FINAL_STATUSES = frozenset({GenerationStatus.COMPLETE, GenerationStatus.FAILED})

PROMPT_MAX_LENGTH = 1500

# Prisma's millisecond precision, kept by the migrations.
Timestamp = TIMESTAMP(timezone=True, precision=3)


class Generation(Base):
    __tablename__ = "generations"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    generation_id: Mapped[uuid.UUID] = mapped_column("generationId", UUID(as_uuid=True), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )
    updated_at: Mapped[datetime] = mapped_column("updatedAt", Timestamp, nullable=False)
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    flagged: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    nsfw: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    core_model: Mapped[CoreModel] = mapped_column(
        "coreModel",
        Enum(CoreModel, name="core_models"),
        nullable=False,
        server_default=text("'SDXL'"),
    )
    image_height: Mapped[int] = mapped_column("imageHeight", Integer, nullable=False, server_default=text("1024"))
    image_width: Mapped[int] = mapped_column("imageWidth", Integer, nullable=False, server_default=text("1024"))
    prompt: Mapped[str] = mapped_column(String(PROMPT_MAX_LENGTH), nullable=False)

    # Revision 2: status and result.
    status: Mapped[GenerationStatus] = mapped_column(
        Enum(GenerationStatus, name="generation_status"),
        nullable=False,
        server_default=text("'PENDING'"),
    )
    images: Mapped[list[dict]] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    failure_reason: Mapped[str | None] = mapped_column("failureReason", Text)
    completed_at: Mapped[datetime | None] = mapped_column("completedAt", Timestamp)

    # Revision 3: dispatch bookkeeping (the row is its own outbox).
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column("lastError", Text)
    # When the dispatcher must next look at this PENDING row: a retry, the
    # end of a claim lease, or the completion deadline. NULL: nothing due.
    next_attempt_at: Mapped[datetime | None] = mapped_column("nextAttemptAt", Timestamp)

    __table_args__ = (
        # A unique index, not a constraint, as Prisma made it: upserts must
        # name the column (ON CONFLICT ("generationId")), not a constraint.
        Index("generations_generationId_key", "generationId", unique=True),
        Index(
            "generations_due_idx",
            "nextAttemptAt",
            postgresql_where=text("status = 'PENDING'"),
        ),
    )
