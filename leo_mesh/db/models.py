"""SQLAlchemy models of the migrated schema (head revision).

Column names keep the seed's Prisma spelling (camelCase, quoted) so a
database made by the seed upgrades in place. A test compares these models
with what the migrations build. The services do not go through them: their
SQL is written out in the store modules (generations, webhooks, keys), run
on psycopg directly, and every statement is exercised by the integration
tests against this schema.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from leo_mesh.rules import Kind, Model, Status
from leo_mesh.scheduling import Phase


class Base(DeclarativeBase):
    pass


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
    core_model: Mapped[Model] = mapped_column(
        "coreModel",
        Enum(Model, name="core_models"),
        nullable=False,
        server_default=text("'SDXL'"),
    )
    image_height: Mapped[int] = mapped_column("imageHeight", Integer, nullable=False, server_default=text("1024"))
    image_width: Mapped[int] = mapped_column("imageWidth", Integer, nullable=False, server_default=text("1024"))
    prompt: Mapped[str] = mapped_column(String(PROMPT_MAX_LENGTH), nullable=False)

    # Revision 2: status and result.
    status: Mapped[Status] = mapped_column(
        Enum(Status, name="generation_status"),
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

    # Revision 4: ownership, idempotent create, callback authentication.
    # NULL owner: made before API keys existed; nobody can see it.
    owner: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[uuid.UUID | None] = mapped_column("requestId", UUID(as_uuid=True))
    # Digest of the create's parameters, to refuse a reused request_id.
    request_fingerprint: Mapped[str | None] = mapped_column("requestFingerprint", Text)
    # SHA-256 of the current dispatch's callback token.
    callback_token_hash: Mapped[bytes | None] = mapped_column("callbackTokenHash", LargeBinary)

    # Revision 5: webhooks.
    webhook_url: Mapped[str | None] = mapped_column("webhookUrl", Text)

    # Revision 8: the create's W3C traceparent, which its dispatches and
    # webhook deliveries continue (leo_mesh.telemetry.tracing).
    trace_parent: Mapped[str | None] = mapped_column("traceParent", Text)

    # Revision 9: what a generation makes, and what the AI reports of the
    # current dispatch (its percent done).
    kind: Mapped[Kind] = mapped_column(
        Enum(Kind, name="generation_kind"), nullable=False, server_default=text("'IMAGE'")
    )
    progress: Mapped[int | None] = mapped_column(SmallInteger)

    # Revision 10: the mesh's queue (leo_mesh.scheduling) and the worker a
    # PENDING generation is on.
    # QUEUED by default: a PENDING row inserted by other means is queued (when due).
    phase: Mapped[Phase | None] = mapped_column(Enum(Phase, name="generation_phase"), server_default=text("'QUEUED'"))
    worker_id: Mapped[uuid.UUID | None] = mapped_column("workerId", UUID(as_uuid=True))
    # The worker's heartbeat number when it took the generation.
    taken_at: Mapped[int | None] = mapped_column("takenAt", BigInteger)
    assigned_at: Mapped[datetime | None] = mapped_column("assignedAt", Timestamp)
    started_at: Mapped[datetime | None] = mapped_column("startedAt", Timestamp)
    priority: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default=text("1"))
    fair_tag: Mapped[float] = mapped_column("fairTag", Double, nullable=False, server_default=text("0"))

    __table_args__ = (
        # A unique index, not a constraint, as Prisma made it: upserts must
        # name the column (ON CONFLICT ("generationId")), not a constraint.
        Index("generations_generationId_key", "generationId", unique=True),
        Index(
            "generations_due_idx",
            "nextAttemptAt",
            postgresql_where=text("status = 'PENDING'"),
        ),
        Index(
            "generations_owner_requestId_key",
            "owner",
            "requestId",
            unique=True,
            postgresql_where=text('"requestId" IS NOT NULL'),
        ),
        Index("generations_owner_page_idx", "owner", "createdAt", "id"),
        Index("generations_owner_pending_idx", "owner", postgresql_where=text("status = 'PENDING'")),
        Index(
            "generations_queue_idx",
            "fairTag",
            text("priority DESC"),
            "createdAt",
            postgresql_where=text("phase = 'QUEUED'"),
        ),
        Index("generations_worker_idx", "workerId", postgresql_where=text('"workerId" IS NOT NULL')),
        Index("generations_completed_idx", "completedAt", postgresql_where=text("status = 'COMPLETE'")),
        CheckConstraint("progress >= 0 AND progress <= 100", name="generations_progress_check"),
        CheckConstraint("priority BETWEEN 0 AND 2", name="generations_priority_check"),
        CheckConstraint("(status = 'PENDING') = (phase IS NOT NULL)", name="generations_phase_check"),
    )


class AiWorker(Base):
    """A worker of the AI pool, as its latest heartbeat described it (revision 10)."""

    __tablename__ = "ai_workers"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    address: Mapped[str] = mapped_column(Text, nullable=False)
    slots: Mapped[int] = mapped_column(Integer, nullable=False)
    prefetch: Mapped[int] = mapped_column(Integer, nullable=False)
    models: Mapped[list[Model]] = mapped_column(ARRAY(Enum(Model, name="core_models")), nullable=False)
    kinds: Mapped[list[Kind]] = mapped_column(ARRAY(Enum(Kind, name="generation_kind")), nullable=False)
    draining: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    # The number of its latest heartbeat.
    heartbeat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    registered_at: Mapped[datetime] = mapped_column(
        "registeredAt", Timestamp, nullable=False, server_default=text("now()")
    )
    heartbeat_at: Mapped[datetime] = mapped_column(
        "heartbeatAt", Timestamp, nullable=False, server_default=text("now()")
    )
    lease_expires_at: Mapped[datetime] = mapped_column("leaseExpiresAt", Timestamp, nullable=False)
    # Since when it has kept its lease without a break (scheduling.gone).
    alive_since: Mapped[datetime] = mapped_column("aliveSince", Timestamp, nullable=False, server_default=text("now()"))

    __table_args__ = (
        CheckConstraint("slots >= 1", name="ai_workers_slots_check"),
        CheckConstraint("prefetch >= 0", name="ai_workers_prefetch_check"),
    )


class QueueLane(Base):
    """The finish tag of the latest generation of an owner's lane in one priority class (revision 10)."""

    __tablename__ = "queue_lanes"

    owner: Mapped[str] = mapped_column(Text, primary_key=True)
    priority: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    finish: Mapped[float] = mapped_column(Double, nullable=False)


class QueueState(Base):
    """The queue's virtual time: the tag of the latest generation handed out (one row, revision 10)."""

    __tablename__ = "queue_state"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default=text("1"))
    virtual_time: Mapped[float] = mapped_column("virtualTime", Double, nullable=False, server_default=text("0"))

    __table_args__ = (CheckConstraint("id = 1", name="queue_state_one_row"),)


class OwnerQuota(Base):
    """How many PENDING generations an owner has (kept by triggers, migration 0007)."""

    __tablename__ = "owner_quotas"

    owner: Mapped[str] = mapped_column(Text, primary_key=True)
    pending: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))

    __table_args__ = (CheckConstraint("pending >= 0", name="owner_quotas_pending_check"),)


class ApiKey(Base):
    """An API key, stored as its SHA-256 (keys are random, 256 bits)."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    owner: Mapped[str] = mapped_column(Text, nullable=False)
    key_hash: Mapped[bytes] = mapped_column("keyHash", LargeBinary, nullable=False)
    # The key's first characters, to tell keys apart in listings.
    prefix: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )
    revoked_at: Mapped[datetime | None] = mapped_column("revokedAt", Timestamp)
    # Revision 10: its tier (its creates' weight in the fair share of the
    # pool) and the highest priority its creates may ask for.
    weight: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    max_priority: Mapped[int] = mapped_column("maxPriority", SmallInteger, nullable=False, server_default=text("1"))

    __table_args__ = (
        Index("api_keys_keyHash_key", "keyHash", unique=True),
        CheckConstraint("weight BETWEEN 1 AND 100", name="api_keys_weight_check"),
        CheckConstraint('"maxPriority" BETWEEN 0 AND 2', name="api_keys_maxPriority_check"),
    )


class WebhookSecret(Base):
    __tablename__ = "webhook_secrets"

    owner: Mapped[str] = mapped_column(Text, primary_key=True)
    secret: Mapped[str] = mapped_column(Text, nullable=False)
    rotated_at: Mapped[datetime] = mapped_column(
        "rotatedAt", Timestamp, nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )


class DeliveryStatus(enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class WebhookDelivery(Base):
    """One webhook to deliver, claimed like the dispatch outbox."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    generation_id: Mapped[uuid.UUID] = mapped_column(
        "generationId", UUID(as_uuid=True), ForeignKey("generations.generationId", ondelete="CASCADE"), nullable=False
    )
    owner: Mapped[str] = mapped_column(Text, nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    # The exact body sent on every attempt.
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, name="delivery_status"), nullable=False, server_default=text("'PENDING'")
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column("nextAttemptAt", Timestamp)
    last_error: Mapped[str | None] = mapped_column("lastError", Text)
    created_at: Mapped[datetime] = mapped_column(
        "createdAt", Timestamp, nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )
    updated_at: Mapped[datetime] = mapped_column(
        "updatedAt", Timestamp, nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )
    delivered_at: Mapped[datetime | None] = mapped_column("deliveredAt", Timestamp)

    __table_args__ = (
        Index("webhook_deliveries_generationId_key", "generationId", unique=True),
        Index("webhook_deliveries_due_idx", "nextAttemptAt", postgresql_where=text("status = 'PENDING'")),
    )


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        "deliveryId", UUID(as_uuid=True), ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, server_default=text("CURRENT_TIMESTAMP"))
    status_code: Mapped[int | None] = mapped_column("statusCode", Integer)
    error: Mapped[str | None] = mapped_column(Text)
    ms: Mapped[int] = mapped_column(Integer, nullable=False)
