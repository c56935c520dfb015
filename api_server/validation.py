"""Checks on request fields; each rule names its field.

The limits are the (leo.api.v1.rules) options of the request fields
(protos/leo/api/v1/field_rules.proto): the OpenAPI spec states the same ones
(tools/openapi.py), so the two cannot drift. Enum fields take any value
their enum defines. Defaults and the page-size cap live here.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from leo.api.v1 import field_rules_pb2
from leo.generation.v1 import generation_pb2
from leo_mesh import scheduling, wire
from leo_mesh.db.generations import NewGeneration
from leo_mesh.errors import FieldViolation, InvalidArgument
from leo_mesh.rules import Kind, Model, Status
from leo_mesh.scheduling import Priority

DEFAULT_MODEL = Model.SDXL
DEFAULT_KIND = Kind.IMAGE
DEFAULT_PRIORITY = Priority.NORMAL
DEFAULT_SIDE = 1024
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 100


IDEMPOTENCY_HEADER = "idempotency-key"

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Each format of leo.api.v1.Format: a test of a value, and the rule in words.
FORMATS: dict[int, tuple[Callable[[str], bool], str]] = {
    field_rules_pb2.FORMAT_UUID: (lambda value: _UUID.fullmatch(value) is not None, "must be a UUID"),
}


# A field descriptor as the generated code hands it out (the stubs name one
# class per protobuf backend).
Field = Any
# The generated stub types the extension as a plain field descriptor.
_RULES: Any = field_rules_pb2.rules


def rules_of(field: Field) -> field_rules_pb2.FieldRules | None:
    options = field.GetOptions()
    return options.Extensions[_RULES] if options.HasExtension(_RULES) else None


def _rules(message: type[Message], name: str) -> field_rules_pb2.FieldRules:
    """The rules of message's field `name`, which has some."""
    rules = rules_of(message.DESCRIPTOR.fields_by_name[name])
    if rules is None:
        raise LookupError(f"{message.DESCRIPTOR.full_name}.{name} has no (leo.api.v1.rules)")
    return rules


@functools.cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _number_rule(rules: field_rules_pb2.FieldRules) -> str:
    """The numeric rules in words: "must be a multiple of 8 from 64 to 2048"."""
    words = [f"a multiple of {rules.multiple_of}"] if rules.HasField("multiple_of") else []
    if rules.HasField("minimum") and rules.HasField("maximum"):
        words.append(f"from {rules.minimum} to {rules.maximum}")
    elif rules.HasField("minimum"):
        words.append(f"at least {rules.minimum}")
    elif rules.HasField("maximum"):
        words.append(f"at most {rules.maximum}")
    return f"must be {' '.join(words)}" + (" (or 0 for the default)" if rules.zero_is_unset else "")


def _number_breaks(rules: field_rules_pb2.FieldRules, value: int) -> bool:
    return (
        (rules.HasField("minimum") and value < rules.minimum)
        or (rules.HasField("maximum") and value > rules.maximum)
        or (rules.HasField("multiple_of") and value % rules.multiple_of != 0)
    )


def broken_rule(
    rules: field_rules_pb2.FieldRules, value: str | int, *, zero_is_unset: bool | None = None
) -> str | None:
    """The first rule that `value` breaks, in words; None if it keeps them all.
    `zero_is_unset` overrides the rules' own: a header is unset when it is
    absent, and an empty one breaks the rules like any other value."""
    if (rules.zero_is_unset if zero_is_unset is None else zero_is_unset) and not value:
        return None
    if isinstance(value, int):
        return _number_rule(rules) if _number_breaks(rules, value) else None
    if rules.HasField("min_length") and len(value) < rules.min_length:
        return "is required" if rules.min_length == 1 else f"must be at least {rules.min_length} characters"
    if rules.HasField("max_length") and len(value) > rules.max_length:
        return f"must be at most {rules.max_length} characters (got {len(value)})"
    if rules.format:
        matches, words = FORMATS[rules.format]
        if not matches(value):
            return words
    for pattern in rules.patterns:
        if not _regex(pattern.regex).search(value):
            return pattern.description
    return None


def _enum_rule(field: Field) -> str:
    names = [value.name for value in field.enum_type.values if value.number != 0]
    return f"must be {', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else f"must be {names[0]}"


def _field_violation(field: Field, value: Any) -> FieldViolation | None:
    """What is wrong with one field's value: a broken rule, or an enum number its enum does not define."""
    if field.type == FieldDescriptor.TYPE_ENUM:
        undefined = field.enum_type.values_by_number.get(value) is None
        return FieldViolation(field.name, _enum_rule(field)) if undefined else None
    rules = rules_of(field)
    problem = rules and broken_rule(rules, value)
    return FieldViolation(field.name, problem) if problem else None


def field_violations(request: Message) -> list[FieldViolation]:
    """Every field of `request` that breaks its rules, in field order."""
    found = []
    for field in request.DESCRIPTOR.fields:
        if field.is_repeated or field.type == FieldDescriptor.TYPE_MESSAGE:
            continue
        violation = _field_violation(field, getattr(request, field.name))
        if violation:
            found.append(violation)
    return found


def _check_one(message: type[Message], name: str, value: int) -> None:
    """INVALID_ARGUMENT if `value` breaks the rules of message's field `name`."""
    violation = _field_violation(message.DESCRIPTOR.fields_by_name[name], value)
    if violation:
        raise InvalidArgument([violation])


def _request_id(request_id: str, header: str | None, violations: list[FieldViolation]) -> uuid.UUID | None:
    """request_id and the Idempotency-Key header mean the same, under the same
    rules; an empty header is no UUID (leaving the field empty is leaving it unset)."""
    rules = _rules(generation_pb2.CreateGenerationRequest, "request_id")
    problem = header is not None and broken_rule(rules, header, zero_is_unset=False)
    if problem:
        violations.append(FieldViolation("Idempotency-Key", problem))
    given = {uuid.UUID(value) for value in (request_id, header) if value and not broken_rule(rules, value)}
    if len(given) > 1:
        violations.append(
            FieldViolation("request_id", "differs from the Idempotency-Key header; send one, or the same")
        )
    return next(iter(given), None)


def validate_create(
    request: generation_pb2.CreateGenerationRequest,
    *,
    owner: str,
    idempotency_key: str | None = None,
    max_priority: Priority = Priority.NORMAL,
) -> NewGeneration:
    """The generation to create, or INVALID_ARGUMENT listing every bad field
    (a priority above what the caller's key allows among them)."""
    violations = field_violations(request)
    request_id = _request_id(request.request_id, idempotency_key, violations)
    priority = wire.PRIORITY.from_wire(request.priority, DEFAULT_PRIORITY)
    if not scheduling.priority_allowed(priority, max_priority):
        allowed = generation_pb2.Priority.Name(wire.PRIORITY.to_wire(max_priority))
        violations.append(FieldViolation("priority", f"must be at most {allowed} for this API key"))
    if violations:
        raise InvalidArgument(violations)
    return NewGeneration(
        owner=owner,
        prompt=request.prompt,
        model=wire.MODEL.from_wire(request.model, DEFAULT_MODEL),
        width=request.width or DEFAULT_SIDE,
        height=request.height or DEFAULT_SIDE,
        request_id=request_id,
        webhook_url=request.webhook_url or None,
        kind=wire.KIND.from_wire(request.kind, DEFAULT_KIND),
        priority=priority,
    )


def parse_generation_id(value: str, field: str = "generation_id") -> uuid.UUID:
    """A generation_id under its rules (the same in every request that has one)."""
    rules = _rules(generation_pb2.GetGenerationRequest, "generation_id")
    problem = broken_rule(rules, value)
    if problem:
        raise InvalidArgument([FieldViolation(field, problem)])
    return uuid.UUID(value)


def parse_asset_request(request: generation_pb2.GetGenerationAssetRequest) -> tuple[uuid.UUID, int]:
    """GetGenerationAsset's generation id and index, or INVALID_ARGUMENT
    listing every field that breaks its rules."""
    violations = field_violations(request)
    if violations:
        raise InvalidArgument(violations)
    return uuid.UUID(request.generation_id), request.index


def parse_watch_request(request: generation_pb2.WatchGenerationRequest) -> uuid.UUID:
    """WatchGeneration's generation id, or INVALID_ARGUMENT listing every
    field that breaks its rules."""
    violations = field_violations(request)
    if violations:
        raise InvalidArgument(violations)
    return uuid.UUID(request.generation_id)


def page_size(value: int) -> int:
    """Under page_size's rules; 0 is the default, above MAX_PAGE_SIZE is taken as MAX_PAGE_SIZE."""
    _check_one(generation_pb2.ListGenerationsRequest, "page_size", value)
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def status_filter(value: int) -> Status | None:
    """The status to list, or None (STATUS_UNSPECIFIED) for all."""
    _check_one(generation_pb2.ListGenerationsRequest, "status", value)
    return wire.STATUS.from_wire(value)
