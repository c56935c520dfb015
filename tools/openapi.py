"""The OpenAPI 3.1 document of the public JSON API, made from the protos.

Envoy's grpc_json_transcoder serves leo.generation.v1 as JSON over HTTP by
the methods' google.api.http bindings and the proto3 JSON mapping; this
describes the same routes and shapes. `python tools/protos.py gen` writes it
to gen/openapi.json, so it changes only with the protos.
"""

from __future__ import annotations

import re
import textwrap

# Imported for their side effect: parsing then resolves the extensions read here.
from google.api import annotations_pb2, field_behavior_pb2
from google.protobuf import descriptor_pb2

PUBLIC_PACKAGE = "leo.generation.v1"
SCHEMAS = "#/components/schemas/"
STATUS_SCHEMA = "google.rpc.Status"

_F = descriptor_pb2.FieldDescriptorProto
_FILE = descriptor_pb2.FileDescriptorProto
_MESSAGE = descriptor_pb2.DescriptorProto
_BEHAVIOR = field_behavior_pb2.FieldBehavior

SCALARS = {
    _F.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _F.TYPE_FLOAT: {"type": "number", "format": "float"},
    _F.TYPE_INT32: {"type": "integer", "format": "int32"},
    _F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _F.TYPE_UINT32: {"type": "integer", "format": "uint32"},
    _F.TYPE_FIXED32: {"type": "integer", "format": "uint32"},
    # proto3 JSON writes 64-bit integers as strings.
    _F.TYPE_INT64: {"type": "string", "format": "int64"},
    _F.TYPE_SINT64: {"type": "string", "format": "int64"},
    _F.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    _F.TYPE_UINT64: {"type": "string", "format": "uint64"},
    _F.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    _F.TYPE_BOOL: {"type": "boolean"},
    _F.TYPE_STRING: {"type": "string"},
    _F.TYPE_BYTES: {"type": "string", "format": "byte"},
}
# Well-known types with their own JSON form; any other google.protobuf message is refused.
WELL_KNOWN = {".google.protobuf.Timestamp": {"type": "string", "format": "date-time"}}

# gRPC codes as Envoy (and grpc-gateway) turn them into HTTP statuses.
ERRORS = {
    "400": "INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE; an invalid request "
    "has a google.rpc.BadRequest with its field violations in `details`.",
    "401": "UNAUTHENTICATED: no valid API key (`Authorization: Bearer <key>`).",
    "404": "NOT_FOUND.",
    "409": "ALREADY_EXISTS or ABORTED.",
    "429": "RESOURCE_EXHAUSTED, or the rate limit.",
    "500": "INTERNAL, UNKNOWN or DATA_LOSS.",
    "503": "UNAVAILABLE: retry later.",
    "504": "DEADLINE_EXCEEDED.",
    "default": "Any other error.",
}

# A path variable: `{field}` or `{field=pattern}`.
_VARIABLE = re.compile(r"\{([^}=]+)(?:=[^}]*)?\}")


def build_openapi(descriptor_set: descriptor_pb2.FileDescriptorSet) -> dict:
    """The OpenAPI document of every google.api.http binding of PUBLIC_PACKAGE's services."""
    # A set parsed before the extension modules were imported keeps the options
    # as unknown fields; parsing its bytes again resolves them.
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.SerializeToString()).file
    return _Builder(files).document()


def _doc(comment: str) -> str:
    return textwrap.dedent(comment).strip()


def _behaviors(field: descriptor_pb2.FieldDescriptorProto) -> set[int]:
    return set(field.options.Extensions[field_behavior_pb2.field_behavior])


def _verb_and_template(rule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        return rule.custom.kind.lower(), rule.custom.path
    return kind, getattr(rule, kind)


class _Builder:
    def __init__(self, files) -> None:
        self._files = files
        self._messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self._enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        # Leading comments by full name (".pkg.Message", ".pkg.Message.field", ".pkg.Service.Method").
        self._docs: dict[str, str] = {}
        self._schemas: dict[str, dict] = {}
        for file in files:
            self._index(file)

    def _index(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        comments = {tuple(loc.path): _doc(loc.leading_comments) for loc in file.source_code_info.location}

        def note(name: str, path: tuple[int, ...]) -> None:
            if comments.get(path):
                self._docs[name] = comments[path]

        def enums(found, scope: str, path: tuple[int, ...]) -> None:
            for i, enum in enumerate(found):
                self._enums[f"{scope}.{enum.name}"] = enum
                note(f"{scope}.{enum.name}", (*path, i))

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
        for file in self._files:
            if file.package != PUBLIC_PACKAGE:
                continue
            for service in file.service:
                service_name = f".{file.package}.{service.name}"
                tags.append(self._described({"name": service.name}, service_name))
                for method in service.method:
                    self._add_bindings(paths, service, f"{service_name}.{method.name}", method)
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "Leo generation mesh API",
                "version": "v1",
                "description": (
                    f"{PUBLIC_PACKAGE} as JSON over HTTP, transcoded by Envoy with the proto3 JSON "
                    "mapping: lowerCamelCase names, enums by name, 64-bit integers as strings, "
                    "timestamps in RFC 3339. Made from the protos by `make gen`; do not edit."
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
                "parameters": {
                    "IdempotencyKey": {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "format": "uuid"},
                        "description": "Makes the create idempotent; means the same as `requestId` "
                        "(send one of them, or both with the same value).",
                    }
                },
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An API key: `Authorization: Bearer <key>`.",
                    }
                },
            },
        }

    def _add_bindings(self, paths: dict, service, method_name: str, method) -> None:
        if not method.options.HasExtension(annotations_pb2.http):
            return
        rule = method.options.Extensions[annotations_pb2.http]
        for index, binding in enumerate([rule, *rule.additional_bindings]):
            verb, template = _verb_and_template(binding)
            operation = self._operation(method_name, method, binding, _VARIABLE.findall(template))
            operation["operationId"] = f"{service.name}_{method.name}{index + 1 if index else ''}"
            operation["tags"] = [service.name]
            paths.setdefault(_VARIABLE.sub(r"{\1}", template), {})[verb] = operation

    def _operation(self, method_name: str, method, binding, path_fields: list[str]) -> dict:
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
        if method.name.startswith("Create"):  # AIP-133 creates; AIP-155 idempotency
            parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
        operation = {
            "summary": method.name,
            "responses": {
                "200": self._success(method),
                **{code: {"$ref": f"#/components/responses/{code}"} for code in ERRORS},
            },
        }
        self._described(operation, method_name)
        if parameters:
            operation["parameters"] = parameters
        if binding.body:
            operation["requestBody"] = self._request_body(request_name, binding.body, path_fields, fields)
        return operation

    def _parameter(self, message_name: str, field, where: str) -> dict:
        if where == "query" and field.type == _F.TYPE_MESSAGE and field.type_name not in WELL_KNOWN:
            raise ValueError(f"{message_name}.{field.name}: message fields as query parameters are not supported")
        parameter = {
            "name": field.name if where == "path" else field.json_name,
            "in": where,
            "required": where == "path" or _BEHAVIOR.REQUIRED in _behaviors(field),
            "schema": self._field_schema(field),
        }
        return self._described(parameter, f"{message_name}.{field.name}")

    def _request_body(self, request_name: str, body: str, path_fields: list[str], fields: dict) -> dict:
        """body "*" is the request minus its path fields; otherwise it is the one named field."""
        if body == "*":
            rest = [field for name, field in fields.items() if name not in path_fields]
            if path_fields:
                schema = self._message_schema(request_name, skip=frozenset(path_fields))
            else:
                schema = self._ref(request_name)
        else:
            rest = [fields[body]]
            schema = self._field_schema(fields[body])
        required = any(_BEHAVIOR.REQUIRED in _behaviors(field) for field in rest)
        return {"required": required, "content": {"application/json": {"schema": schema}}}

    def _success(self, method) -> dict:
        response = self._ref(method.output_type)
        if not method.server_streaming:
            return {"description": "OK", "content": {"application/json": {"schema": response}}}
        name = method.output_type[1:]
        return {
            "description": (
                f"Server-sent events, each `data: ` followed by one {name} as JSON and a blank "
                "line. An error before the first event is an ordinary error response; one after it "
                "ends the stream early (an HTTP/1.1 client still sees 200)."
            ),
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    # OpenAPI 3.2's itemSchema: the shape of each event.
                    "x-itemSchema": {
                        "type": "object",
                        "required": ["data"],
                        "properties": {
                            "data": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": response,
                            }
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

    def _ref(self, type_name: str) -> dict:
        """A $ref to the message or enum, adding its schema to components once."""
        key = type_name[1:]
        if key not in self._schemas:
            self._schemas[key] = {}  # reserved first: a message may refer to itself
            if type_name in self._enums:
                values = [value.name for value in self._enums[type_name].value]
                schema = self._described({"type": "string", "enum": values}, type_name)
            else:
                schema = self._message_schema(type_name)
            self._schemas[key] = schema
        return {"$ref": SCHEMAS + key}

    def _message_schema(self, type_name: str, skip: frozenset[str] = frozenset()) -> dict:
        properties, required = {}, []
        for field in self._messages[type_name].field:
            if field.name in skip:
                continue
            properties[field.json_name] = self._described(self._field_schema(field), f"{type_name}.{field.name}")
            if _BEHAVIOR.REQUIRED in _behaviors(field):
                required.append(field.json_name)
        schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return self._described(schema, type_name)

    def _field_schema(self, field) -> dict:
        entry = self._messages.get(field.type_name)
        if entry is not None and entry.options.map_entry:
            schema = {"type": "object", "additionalProperties": self._value_schema(entry.field[1])}
        elif field.label == _F.LABEL_REPEATED:
            schema = {"type": "array", "items": self._value_schema(field)}
        else:
            schema = self._value_schema(field)
        behaviors = _behaviors(field)
        if _BEHAVIOR.OUTPUT_ONLY in behaviors:
            schema["readOnly"] = True
        if _BEHAVIOR.INPUT_ONLY in behaviors:
            schema["writeOnly"] = True
        return schema

    def _value_schema(self, field) -> dict:
        if field.type not in (_F.TYPE_MESSAGE, _F.TYPE_ENUM):
            return dict(SCALARS[field.type])
        if field.type_name in WELL_KNOWN:
            return dict(WELL_KNOWN[field.type_name])
        if field.type_name.startswith(".google.protobuf."):
            raise ValueError(f"no JSON schema for {field.type_name} yet: add it to WELL_KNOWN")
        return self._ref(field.type_name)


def _status_schema() -> dict:
    """google.rpc.Status as JSON: every error body, whichever HTTP status carries it."""
    return {
        "type": "object",
        "description": "An error. `code` is the gRPC status code, not the HTTP status.",
        "properties": {
            "code": {"type": "integer", "format": "int32", "description": "e.g. 3 for INVALID_ARGUMENT."},
            "message": {"type": "string"},
            "details": {
                "type": "array",
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
