"""The OpenAPI 3.1 document of the public JSON API, made from the protos.

Envoy's grpc_json_transcoder serves leo.generation.v1 as JSON over HTTP by
the methods' google.api.http bindings and the proto3 JSON mapping; this
describes the same routes and shapes. `python tools/protos.py gen` writes it
to gen/openapi.json, so it changes only with the protos.

Where the words come from: a method's comment is its operation's summary
(first sentence) and description; a field's, a message's and an enum
value's comment its description. Where the limits come from: a field's
(leo.api.v1.rules) option (protos/leo/api/v1/field_rules.proto), which the
api_server enforces too (api_server/validation.py).

Request schemas say what the transcoder accepts, response schemas what it
writes: in a request, enums may be given by number too and a JSON null
leaves an optional body field unset; in a response, enums are names and
every field without presence is written, while a field with presence (a
message such as a timestamp, an optional number) is left out until set,
never null (the transcoder has no grpc-gateway EmitUnpopulated for them):
such a field is not `required`, and its description says so.
"""

from __future__ import annotations

import re
import textwrap
from enum import Enum

# Imported for their side effect: parsing then resolves the extensions read here.
from google.api import annotations_pb2, field_behavior_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PUBLIC_PACKAGE = "leo.generation.v1"
RULES_EXTENSION = "leo.api.v1.rules"
SCHEMAS = "#/components/schemas/"
STATUS_SCHEMA = "google.rpc.Status"
IDEMPOTENCY_FIELD = "request_id"  # AIP-155
# A method returning this answers with raw bytes: the transcoder writes each
# message's `data` as the body, with its `content_type` as Content-Type.
HTTP_BODY = ".google.api.HttpBody"
# A request field that makes the request a signed link (refused with 403).
SIGNATURE_FIELD = "signature"
# The operationId of a method's additional binding ends with it.
LEGACY_SUFFIX = "_Legacy"
# The header an EventSource resumes with (api_server/watch_events.py).
LAST_EVENT_ID = "Last-Event-ID"
# A response field with presence while it is unset.
UNSET_IN_RESPONSE = "Left out of the response while unset (never null)."
# The media types GetGenerationAsset serves (Asset.content_type's comment),
# and the one client generators read any file as (listed with them).
MEDIA_TYPES = ("image/png", "image/webp")
ANY_FILE = "application/octet-stream"

_F = descriptor_pb2.FieldDescriptorProto
_FILE = descriptor_pb2.FileDescriptorProto
_MESSAGE = descriptor_pb2.DescriptorProto
_ENUM = descriptor_pb2.EnumDescriptorProto
_BEHAVIOR = field_behavior_pb2.FieldBehavior


def decimal_pattern(minimum: int, maximum: int) -> str:
    """A regex of exactly the decimal integers from minimum to maximum (no
    leading zeros, no "+", no "-0"), where minimum is 0 or negative and
    maximum positive: JSON Schema has no bounds for numbers written as strings."""

    def up_to(limit: int) -> list[str]:
        """Alternatives that match 1 to limit."""
        digits = str(limit)
        found = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
        for i, digit in enumerate(map(int, digits)):
            lowest = 1 if i == 0 else 0
            if digit > lowest:
                rest = len(digits) - i - 1
                found.append(digits[:i] + f"[{lowest}-{digit - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
        return [*found, digits]

    negative = f"|-(?:{'|'.join(up_to(-minimum))})" if minimum < 0 else ""
    return f"^(?:0|{'|'.join(up_to(maximum))}{negative})$"


_INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_INT64 = {"type": "string", "format": "int64", "pattern": decimal_pattern(-(2**63), 2**63 - 1)}
_UINT64 = {"type": "string", "format": "uint64", "pattern": decimal_pattern(0, 2**64 - 1)}
_UINT32 = {"type": "integer", "format": "uint32", "minimum": 0, "maximum": 2**32 - 1}
SCALARS = {
    _F.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _F.TYPE_FLOAT: {"type": "number", "format": "float"},
    _F.TYPE_INT32: _INT32,
    _F.TYPE_SINT32: _INT32,
    _F.TYPE_SFIXED32: _INT32,
    _F.TYPE_UINT32: _UINT32,
    _F.TYPE_FIXED32: _UINT32,
    # proto3 JSON writes 64-bit integers as strings (of digits: the
    # transcoder refuses any other string, "" included, and any number
    # past the type's range).
    _F.TYPE_INT64: _INT64,
    _F.TYPE_SINT64: _INT64,
    _F.TYPE_SFIXED64: _INT64,
    _F.TYPE_UINT64: _UINT64,
    _F.TYPE_FIXED64: _UINT64,
    _F.TYPE_BOOL: {"type": "boolean"},
    _F.TYPE_STRING: {"type": "string"},
    _F.TYPE_BYTES: {"type": "string", "format": "byte"},
}
# The zero value of each JSON type: what a proto3 field holds when left out.
ZEROS = {"integer": 0, "number": 0, "string": "", "boolean": False}
# Well-known types with their own JSON form; any other google.protobuf message is refused.
WELL_KNOWN = {".google.protobuf.Timestamp": {"type": "string", "format": "date-time"}}

# Error responses: gRPC codes as Envoy (and grpc-gateway) turn them into
# HTTP statuses, and the replies Envoy makes itself. Each operation lists
# those it can answer (_error_statuses).
ERRORS = {
    "400": "INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE, or a request the JSON mapping cannot read; "
    "an invalid field has a google.rpc.BadRequest with its field violations in `details`.",
    "401": "UNAUTHENTICATED: no valid API key (`Authorization: Bearer <key>`).",
    "403": "PERMISSION_DENIED: a signed link that expired or whose signature does not match.",
    "404": "NOT_FOUND: no such resource, or not the caller's.",
    "408": "The request did not arrive in time.",
    "409": "ALREADY_EXISTS: the request ID was used with other parameters.",
    "413": "The request body is too large.",
    "429": "RESOURCE_EXHAUSTED (a per-caller limit), or the rate limit.",
    "431": "The request headers are too large.",
    "500": "INTERNAL, UNKNOWN or DATA_LOSS.",
    "503": "UNAVAILABLE: retry later.",
    "504": "DEADLINE_EXCEEDED.",
}

# A path variable: `{field}` or `{field=pattern}`.
_VARIABLE = re.compile(r"\{([^}=]+)(?:=[^}]*)?\}")
# The first sentence of a comment: up to a full stop that ends a line or precedes a space.
_FIRST_SENTENCE = re.compile(r"^(.+?\.)(?:\s|$)", re.DOTALL)


class Mode(Enum):
    """Where a schema is used: the JSON mapping reads more than it writes."""

    OUTPUT = "output"
    BODY = "body"
    PARAMETER = "parameter"


def build_openapi(descriptor_set: descriptor_pb2.FileDescriptorSet) -> dict:
    """The OpenAPI document of every google.api.http binding of PUBLIC_PACKAGE's services."""
    # A set parsed before the extension modules were imported keeps the options
    # as unknown fields; parsing its bytes again resolves them.
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.SerializeToString()).file
    return _Builder(files).document()


def rule_keywords(rules) -> list[tuple[str, object]]:
    """Each rule of a leo.api.v1.FieldRules (zero_is_unset aside) as a JSON
    Schema keyword and its value; one ("pattern", regex) per pattern."""
    found: list[tuple[str, object]] = [
        (keyword, getattr(rules, member))
        for member, keyword in (
            ("min_length", "minLength"),
            ("max_length", "maxLength"),
            ("minimum", "minimum"),
            ("maximum", "maximum"),
            ("multiple_of", "multipleOf"),
        )
        if rules.HasField(member)
    ]
    if rules.format:
        found.append(("format", format_name(rules)))
    found += [("pattern", pattern.regex) for pattern in rules.patterns]
    return found


def _keywords(rules: list[tuple[str, object]]) -> dict:
    """Rules as a schema: one pattern is `pattern`, several an allOf of them."""
    schema = {keyword: value for keyword, value in rules if keyword != "pattern"}
    patterns = [value for keyword, value in rules if keyword == "pattern"]
    if len(patterns) == 1:
        schema["pattern"] = patterns[0]
    elif patterns:
        schema["allOf"] = [{"pattern": pattern} for pattern in patterns]
    return schema


def _zero_keeps(keyword: str, value, zero) -> bool:
    """Whether the zero value ("" or 0) keeps the rule."""
    keeps = {
        "minLength": lambda: value <= 0,
        "maxLength": lambda: True,
        "minimum": lambda: zero >= value,
        "maximum": lambda: zero <= value,
        "multipleOf": lambda: True,
        "format": lambda: False,
        "pattern": lambda: re.search(value, "") is not None,
    }
    return keeps[keyword]()


def format_name(rules) -> str:
    """JSON Schema's name of the rules' format: FORMAT_DATE_TIME is "date-time"."""
    value = rules.DESCRIPTOR.fields_by_name["format"].enum_type.values_by_number[rules.format]
    return value.name.removeprefix("FORMAT_").lower().replace("_", "-")


def _doc(comment: str) -> str:
    """A comment as written for people: buf's lint directives left out."""
    lines = [line for line in textwrap.dedent(comment).splitlines() if not line.strip().startswith("buf:lint:")]
    return "\n".join(lines).strip()


def _summary(description: str) -> str:
    """The first sentence, on one line."""
    match = _FIRST_SENTENCE.match(description)
    return " ".join((match.group(1) if match else description).split())


def _behaviors(field: descriptor_pb2.FieldDescriptorProto) -> set[int]:
    return set(field.options.Extensions[field_behavior_pb2.field_behavior])


def _verb_and_template(rule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        return rule.custom.kind.lower(), rule.custom.path
    return kind, getattr(rule, kind)


def _or_null(schema: dict) -> dict:
    """schema, or JSON null."""
    if isinstance(schema.get("type"), str):
        nullable = {**schema, "type": [schema["type"], "null"]}
        if "anyOf" in schema:  # its members are typed: null is one more
            nullable["anyOf"] = [*schema["anyOf"], {"type": "null"}]
        return nullable
    if set(schema) == {"anyOf"}:
        return {"anyOf": [*schema["anyOf"], {"type": "null"}]}
    return {"anyOf": [schema, {"type": "null"}]}


def _narrowed(schema: dict, keywords: dict) -> dict:
    """schema with the keywords added; a bound already there (the type's
    range) stays where it is tighter."""
    merged = {**schema, **keywords}
    for keyword, tighter in (("minimum", max), ("maximum", min)):
        if keyword in schema and keyword in keywords:
            merged[keyword] = tighter(schema[keyword], keywords[keyword])
    return merged


class _Rules:
    """The (leo.api.v1.rules) option of fields, read through a pool made from
    the descriptor set itself: gen/'s generated code may be older than the
    protos while `make gen` runs."""

    def __init__(self, files) -> None:
        pool = descriptor_pool.DescriptorPool()
        for file in files:  # --include_imports lists dependencies first
            pool.Add(file)
        try:
            self._extension = pool.FindExtensionByName(RULES_EXTENSION)
        except KeyError:
            self._extension = None
        self._options = message_factory.GetMessageClass(pool.FindMessageTypeByName("google.protobuf.FieldOptions"))

    def of(self, field: descriptor_pb2.FieldDescriptorProto):
        if self._extension is None:
            return None
        options = self._options.FromString(field.options.SerializeToString())
        return options.Extensions[self._extension] if options.HasExtension(self._extension) else None


class _Builder:
    def __init__(self, files) -> None:
        self._files = files
        self._rules = _Rules(files)
        self._messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self._enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        # Leading comments by full name (".pkg.Message", ".pkg.Message.field",
        # ".pkg.Enum.VALUE", ".pkg.Service.Method").
        self._docs: dict[str, str] = {}
        self._schemas: dict[str, dict] = {}
        # The mode each message schema in _schemas was made for.
        self._modes: dict[str, Mode] = {}
        for file in files:
            self._index(file)

    def _index(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        comments = {tuple(loc.path): _doc(loc.leading_comments) for loc in file.source_code_info.location}

        def note(name: str, path: tuple[int, ...]) -> None:
            if comments.get(path):
                self._docs[name] = comments[path]

        def enums(found, scope: str, path: tuple[int, ...]) -> None:
            for i, enum in enumerate(found):
                name, here = f"{scope}.{enum.name}", (*path, i)
                self._enums[name] = enum
                note(name, here)
                for j, value in enumerate(enum.value):
                    note(f"{name}.{value.name}", (*here, _ENUM.VALUE_FIELD_NUMBER, j))

        def messages(found, scope: str, path: tuple[int, ...]) -> None:
            for i, message in enumerate(found):
                name, here = f"{scope}.{message.name}", (*path, i)
                self._messages[name] = message
                note(name, here)
                for j, field in enumerate(message.field):
                    note(f"{name}.{field.name}", (*here, _MESSAGE.FIELD_FIELD_NUMBER, j))
                messages(message.nested_type, name, (*here, _MESSAGE.NESTED_TYPE_FIELD_NUMBER))
                enums(message.enum_type, name, (*here, _MESSAGE.ENUM_TYPE_FIELD_NUMBER))

        scope = f".{file.package}" if file.package else ""
        messages(file.message_type, scope, (_FILE.MESSAGE_TYPE_FIELD_NUMBER,))
        enums(file.enum_type, scope, (_FILE.ENUM_TYPE_FIELD_NUMBER,))
        for i, service in enumerate(file.service):
            note(f"{scope}.{service.name}", (_FILE.SERVICE_FIELD_NUMBER, i))
            for j, method in enumerate(service.method):
                path = (_FILE.SERVICE_FIELD_NUMBER, i, descriptor_pb2.ServiceDescriptorProto.METHOD_FIELD_NUMBER, j)
                note(f"{scope}.{service.name}.{method.name}", path)

    def document(self) -> dict:
        paths: dict[str, dict] = {}
        tags = []
        parameters: dict[str, dict] = {}
        for file in self._files:
            if file.package != PUBLIC_PACKAGE:
                continue
            for service in file.service:
                service_name = f".{file.package}.{service.name}"
                tags.append(self._described({"name": service.name}, service_name))
                for method in service.method:
                    self._add_bindings(paths, parameters, service, f"{service_name}.{method.name}", method)
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "Leo generation mesh API",
                "version": "v1",
                "description": (
                    f"{PUBLIC_PACKAGE} as JSON over HTTP, transcoded by Envoy with the proto3 JSON "
                    "mapping: lowerCamelCase names, enums by name, 64-bit integers as strings, "
                    "timestamps in RFC 3339. Requests may also give enums by number, and null for an "
                    "optional body field means the field is left out. Responses write every field without "
                    "presence; one with presence (a timestamp, an optional number) is left out while unset, "
                    "never null. Errors are a google.rpc.Status. "
                    "A path answers only the methods listed for it. "
                    "Made from the protos by `make gen`; do not edit."
                ),
            },
            "servers": [{"url": "http://localhost:8080"}],
            "security": [{"bearerAuth": []}],
            "tags": tags,
            "paths": paths,
            "components": {
                "schemas": {**self._schemas, STATUS_SCHEMA: _status_schema()},
                "responses": {
                    code: {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": SCHEMAS + STATUS_SCHEMA}}},
                    }
                    for code, description in ERRORS.items()
                },
                "parameters": parameters,
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An API key: `Authorization: Bearer <key>`.",
                    },
                    "signedLink": {
                        "type": "apiKey",
                        "in": "query",
                        "name": SIGNATURE_FIELD,
                        "description": (
                            "A signed link, as an asset's `url` or a `watchUrl` carries it: `signature` with the "
                            "`expires` it was made for; it opens that one file or watch until then, without an API key."
                        ),
                    },
                },
            },
        }

    def _add_bindings(self, paths: dict, parameters: dict, service, method_name: str, method) -> None:
        if not method.options.HasExtension(annotations_pb2.http):
            return
        rule = method.options.Extensions[annotations_pb2.http]
        for index, binding in enumerate([rule, *rule.additional_bindings]):
            verb, template = _verb_and_template(binding)
            operation = self._operation(method_name, method, binding, _VARIABLE.findall(template), parameters)
            operation["operationId"] = f"{service.name}_{method.name}"
            if index:
                # An additional binding keeps an older path working (the seed's
                # /api/generation): the same operation, for old clients only.
                operation["operationId"] += LEGACY_SUFFIX + (str(index) if len(rule.additional_bindings) > 1 else "")
                operation["deprecated"] = True
            operation["tags"] = [service.name]
            paths.setdefault(_VARIABLE.sub(r"{\1}", template), {})[verb] = operation

    def _operation(self, method_name: str, method, binding, path_fields: list[str], shared: dict) -> dict:
        request_name = method.input_type
        fields = {field.name: field for field in self._messages[request_name].field}
        for name in path_fields:
            if name not in fields:
                raise ValueError(f"{method_name}: path variable {{{name}}} is not a field of {request_name}")
        parameters = [self._parameter(request_name, fields[name], "path") for name in path_fields]
        if binding.body != "*":
            parameters += [
                self._parameter(request_name, field, "query")
                for field in fields.values()
                if field.name not in path_fields and field.name != binding.body
            ]
        if IDEMPOTENCY_FIELD in fields:
            shared["IdempotencyKey"] = self._idempotency_header(request_name, fields[IDEMPOTENCY_FIELD])
            parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
        if _streams_events(method):
            shared["LastEventId"] = _last_event_id_header()
            parameters.append({"$ref": "#/components/parameters/LastEventId"})
        operation: dict = {}
        if method_name in self._docs:
            operation["summary"] = _summary(self._docs[method_name])
        self._described(operation, method_name)
        if SIGNATURE_FIELD in fields:
            # The API key, or a signed link instead of it.
            operation["security"] = [{"bearerAuth": []}, {"signedLink": []}]
        operation["responses"] = {
            "200": self._success(method),
            **({"204": _EVENTS_OVER} if _streams_events(method) else {}),
            **{code: {"$ref": f"#/components/responses/{code}"} for code in self._error_statuses(binding, fields)},
        }
        if parameters:
            operation["parameters"] = parameters
        if binding.body:
            operation["requestBody"] = self._request_body(request_name, binding.body, path_fields, fields)
        return operation

    @staticmethod
    def _error_statuses(binding, fields: dict) -> list[str]:
        """What an operation can answer besides 200: any call may be refused at
        the edge, be unauthenticated, rate-limited or meet a failure; a
        resource named in the path may not exist; a request ID may be reused
        with other parameters; a body may be too large; a signed link may be refused."""
        statuses = {"400", "401", "408", "429", "431", "500", "503", "504"}
        if _VARIABLE.search(_verb_and_template(binding)[1]):
            statuses.add("404")
        if IDEMPOTENCY_FIELD in fields:
            statuses.add("409")
        if SIGNATURE_FIELD in fields:
            statuses.add("403")
        if binding.body:
            statuses.add("413")
        return sorted(statuses)

    def _idempotency_header(self, request_name: str, field) -> dict:
        """The header under the field's rules, without its zero value: a
        header left out is unset, and one sent empty is refused."""
        return {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": self._constrained(dict(SCALARS[field.type]), field, zero_is_unset=False),
            "description": (
                f"Means the same as `{field.json_name}` (send one of them, or both with the same value). "
                "Leave it out for none: an empty value is refused."
            ),
        }

    def _parameter(self, message_name: str, field, where: str) -> dict:
        if where == "query" and field.type == _F.TYPE_MESSAGE and field.type_name not in WELL_KNOWN:
            raise ValueError(f"{message_name}.{field.name}: message fields as query parameters are not supported")
        parameter = {
            "name": field.name if where == "path" else field.json_name,
            "in": where,
            "required": where == "path" or _BEHAVIOR.REQUIRED in _behaviors(field),
            "schema": self._field_schema(field, Mode.PARAMETER),
        }
        return self._described(parameter, f"{message_name}.{field.name}")

    def _request_body(self, request_name: str, body: str, path_fields: list[str], fields: dict) -> dict:
        """body "*" is the request minus its path fields; otherwise it is the one named field."""
        if body == "*":
            rest = [field for name, field in fields.items() if name not in path_fields]
            if path_fields:
                schema = self._message_schema(request_name, Mode.BODY, skip=frozenset(path_fields))
            else:
                schema = self._ref(request_name, Mode.BODY)
        else:
            rest = [fields[body]]
            schema = self._field_schema(fields[body], Mode.BODY)
        required = any(_BEHAVIOR.REQUIRED in _behaviors(field) for field in rest)
        return {"required": required, "content": {"application/json": {"schema": schema}}}

    def _success(self, method) -> dict:
        if method.output_type == HTTP_BODY:
            binary = {"type": "string", "format": "binary"}
            return {
                "description": (
                    "The file's bytes, with its media type as Content-Type (one of the image types "
                    f"listed; `{ANY_FILE}` is listed for clients that read any file as bytes), an ETag "
                    "and Cache-Control (private, for as long as a signed link lasts)."
                ),
                "headers": {
                    "ETag": {"description": "Names this version of the file.", "schema": {"type": "string"}},
                    "Cache-Control": {"description": "How long the answer may be kept.", "schema": {"type": "string"}},
                },
                "content": {media_type: {"schema": binary} for media_type in (*MEDIA_TYPES, ANY_FILE)},
            }
        response = self._ref(method.output_type, Mode.OUTPUT)
        if not method.server_streaming:
            return {"description": "OK", "content": {"application/json": {"schema": response}}}
        name = method.output_type[1:]
        return {
            "description": (
                f"Server-sent events, one per {name}: a `retry:` line (how long an EventSource waits "
                "before it reconnects), an `id:` line (the message's eventId, which an EventSource sends "
                f"back as {LAST_EVENT_ID} when it reconnects), `data: ` followed by the message as JSON, "
                "and a blank line. The stream ends after the final state. An error before the first event "
                "is an ordinary error response; one after it ends the stream early (an HTTP/1.1 client "
                "still sees 200)."
            ),
            "headers": {
                "Cache-Control": {
                    "description": "`no-cache`: events are not to be stored.",
                    "schema": {"type": "string"},
                }
            },
            "content": {
                "text/event-stream": {
                    # The stream as text, as OpenAPI 3.1 tools read a response (a
                    # generated client returns it whole when the stream ends).
                    "schema": {"type": "string", "description": "The events, as text."},
                    # One event, as OpenAPI 3.2's itemSchema describes it.
                    "x-itemSchema": {
                        "type": "object",
                        "description": "One server-sent event.",
                        "required": ["data", "id", "retry"],
                        "properties": {
                            "data": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": response,
                            },
                            "id": {"type": "string", "description": "The message's eventId."},
                            "retry": {"type": "integer", "description": "Milliseconds to wait before reconnecting."},
                        },
                    },
                }
            },
        }

    def _described(self, item: dict, name: str) -> dict:
        """item with the proto comment of `name` as its description, if it has one."""
        if name in self._docs:
            item["description"] = self._docs[name]
        return item

    def _ref(self, type_name: str, mode: Mode) -> dict:
        """A $ref to the message or enum, adding its schema to components once."""
        key = type_name[1:]
        if type_name in self._messages:
            made_for = self._modes.setdefault(key, mode)
            if made_for is not mode:
                raise ValueError(f"{key} is used in both a {made_for.value} and a {mode.value}: split the message")
        if key not in self._schemas:
            self._schemas[key] = {}  # reserved first: a message may refer to itself
            is_enum = type_name in self._enums
            self._schemas[key] = self._enum_schema(type_name) if is_enum else self._message_schema(type_name, mode)
        return {"$ref": SCHEMAS + key}

    def _enum_schema(self, type_name: str) -> dict:
        """The enum by name (how responses write it); each value's comment in
        x-enumDescriptions and as a list in the description."""
        values = self._enums[type_name].value
        notes = {value.name: self._docs.get(f"{type_name}.{value.name}", "") for value in values}
        lines = [f"- `{name}`: {' '.join(note.split())}" for name, note in notes.items() if note]
        description = "\n\n".join(part for part in (self._docs.get(type_name, ""), "\n".join(lines)) if part)
        schema = {"type": "string", "enum": [value.name for value in values], "x-enumDescriptions": notes}
        if description:
            schema["description"] = description
        return schema

    def _message_schema(self, type_name: str, mode: Mode, skip: frozenset[str] = frozenset()) -> dict:
        properties, required = {}, []
        for field in self._messages[type_name].field:
            if field.name in skip:
                continue
            schema = self._described(self._field_schema(field, mode), f"{type_name}.{field.name}")
            if _is_required(field, mode):
                required.append(field.json_name)
            elif mode is Mode.OUTPUT:
                schema["description"] = " ".join(filter(None, [schema.get("description"), UNSET_IN_RESPONSE]))
            properties[field.json_name] = schema
        schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return self._described(schema, type_name)

    def _field_schema(self, field, mode: Mode) -> dict:
        entry = self._messages.get(field.type_name)
        if entry is not None and entry.options.map_entry:
            schema = {"type": "object", "additionalProperties": self._value_schema(entry.field[1], mode)}
        elif field.label == _F.LABEL_REPEATED:
            schema = {"type": "array", "items": self._value_schema(field, mode)}
        else:
            schema = self._value_schema(field, mode)
        behaviors = _behaviors(field)
        if _BEHAVIOR.OUTPUT_ONLY in behaviors:
            schema["readOnly"] = True
        if _BEHAVIOR.INPUT_ONLY in behaviors:
            schema["writeOnly"] = True
        if mode is Mode.BODY and _BEHAVIOR.REQUIRED not in behaviors:
            schema = _or_null(schema)
        return schema

    def _value_schema(self, field, mode: Mode) -> dict:
        """One value of the field: its type, limited by its rules."""
        if field.type not in (_F.TYPE_MESSAGE, _F.TYPE_ENUM):
            return self._constrained(dict(SCALARS[field.type]), field)
        if self._rules.of(field) is not None:
            raise ValueError(f"{field.name}: (leo.api.v1.rules) limit scalar fields only")
        if field.type_name in WELL_KNOWN:
            return dict(WELL_KNOWN[field.type_name])
        if field.type_name.startswith(".google.protobuf."):
            raise ValueError(f"no JSON schema for {field.type_name} yet: add it to WELL_KNOWN")
        if field.type == _F.TYPE_ENUM and mode is not Mode.OUTPUT:
            numbers = [value.number for value in self._enums[field.type_name].value]
            by_number = {"type": "integer", "enum": numbers, "description": "The same values by number."}
            return {"anyOf": [self._ref(field.type_name, mode), by_number]}
        return self._ref(field.type_name, mode)

    def _constrained(self, schema: dict, field, *, zero_is_unset: bool | None = None) -> dict:
        """schema limited by the field's rules. With zero_is_unset (the
        rules' own unless given), the rules the zero value breaks become an
        anyOf of the zero and them, each of the field's type (client
        generators make a typed field of it, not `Any`); the others stay
        plain keywords (simpler for tools, and the same meaning)."""
        rules = self._rules.of(field)
        if rules is None:
            return schema
        found = rule_keywords(rules)
        if not (rules.zero_is_unset if zero_is_unset is None else zero_is_unset):
            return _narrowed(schema, _keywords(found))
        zero = ZEROS[schema["type"]]
        kept = [(keyword, value) for keyword, value in found if _zero_keeps(keyword, value, zero)]
        broken = [rule for rule in found if rule not in kept]
        schema = _narrowed(schema, _keywords(kept))
        if broken:
            unset = {"type": schema["type"], "const": zero, "description": "Unset, as when the field is left out."}
            schema["anyOf"] = [unset, {"type": schema["type"], **_keywords(broken)}]
        return schema


def _streams_events(method) -> bool:
    """A server stream of messages: server-sent events over HTTP."""
    return method.server_streaming and method.output_type != HTTP_BODY


# A watch resumed (Last-Event-ID) after its final event.
_EVENTS_OVER = {
    "description": (
        f"The {LAST_EVENT_ID} named the final event: nothing more will come. An EventSource stops reconnecting on it."
    )
}


def _last_event_id_header() -> dict:
    return {
        "name": LAST_EVENT_ID,
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": (
            "The `id:` of the last event received (an EventSource sends it when it reconnects): the "
            "stream starts after it, with the current state only if it is another, or answers 204 "
            "when it was the final state's."
        ),
    }


def _is_required(field, mode: Mode) -> bool:
    """In a request, a field marked REQUIRED; in a response, a field the
    transcoder always writes (always_print_primitive_fields): any field
    without presence, that is neither a message nor in a oneof."""
    if mode is not Mode.OUTPUT:
        return _BEHAVIOR.REQUIRED in _behaviors(field)
    is_message = field.type == _F.TYPE_MESSAGE and field.label != _F.LABEL_REPEATED
    return not is_message and not field.HasField("oneof_index")


def _status_schema() -> dict:
    """google.rpc.Status as JSON: every error body, whichever HTTP status carries it."""
    return {
        "type": "object",
        "description": "An error. `code` is the gRPC status code, not the HTTP status.",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "e.g. 3 for INVALID_ARGUMENT."},
            "message": {"type": "string", "description": "What went wrong, for a developer to read."},
            "details": {
                "type": "array",
                "description": "More about the error, e.g. a google.rpc.BadRequest naming each invalid field.",
                "items": {
                    "type": "object",
                    "description": "A google.protobuf.Any: its type URL and that message's fields.",
                    "properties": {
                        "@type": {
                            "type": "string",
                            "description": "e.g. type.googleapis.com/google.rpc.BadRequest",
                        }
                    },
                    "required": ["@type"],
                    "additionalProperties": True,
                },
            },
        },
    }
